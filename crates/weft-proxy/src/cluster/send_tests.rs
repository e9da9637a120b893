//! [`Upstream::send`] against a real local HTTP/1.1 server: circuit breakers overflow with
//! UO, outlier detection ejects a failing host, bodies keep requests counted.

use super::*;
use crate::model::{OutlierDetection, Thresholds};
use http_body_util::{BodyExt, Empty};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server answering every request with `status` after `delay`; returns its port.
async fn server(status: u16, delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn upstream(ports: &[u16], f: impl FnOnce(&mut Cluster)) -> Arc<Upstream> {
    let mut config = Cluster::new("c", Discovery::Static, LbPolicy::RoundRobin);
    f(&mut config);
    let endpoints = ports
        .iter()
        .map(|&port| Endpoint {
            host: "127.0.0.1".into(),
            port,
            weight: 1,
            healthy: true,
            workload: None,
            transport_socket_match: Default::default(),
        })
        .collect();
    Arc::new(Upstream::new(config, endpoints, None, Arc::default()))
}

fn get() -> Request<UpstreamBody> {
    Request::builder()
        .uri("/x")
        .header("host", "svc")
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .unwrap()
}

#[tokio::test]
async fn over_the_connection_and_pending_limits_is_uo() {
    let port = server(200, Duration::from_millis(300)).await;
    let u = upstream(&[port], |c| {
        c.circuit_breakers = Thresholds {
            max_connections: 1,
            max_pending_requests: 1,
            ..Thresholds::default()
        }
    });
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let u = u.clone();
            tokio::spawn(async move {
                match u.send(get(), None).await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.into_body().collect().await.unwrap();
                        Ok(status)
                    }
                    Err(e) => Err((e.response_flag(), e.body())),
                }
            })
        })
        .collect();
    let mut ok = 0;
    let mut overflow = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(200) => ok += 1,
            Err(("UO", body)) => {
                assert_eq!(
                    body,
                    "upstream connect error or disconnect/reset before headers. reset reason: overflow"
                );
                overflow += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // One on the connection, one waiting for it, two refused.
    assert_eq!((ok, overflow), (2, 2));
    assert_eq!(
        u.stats
            .upstream_rq_pending_overflow
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn max_requests_counts_until_the_body_ends() {
    let port = server(200, Duration::ZERO).await;
    let u = upstream(&[port], |c| c.circuit_breakers.max_requests = 1);
    let first = u.send(get(), None).await.unwrap();
    assert_eq!(u.hosts[0].active.load(Ordering::Relaxed), 1);
    assert!(matches!(
        u.send(get(), None).await,
        Err(UpstreamError::Overflow)
    ));
    first.into_body().collect().await.unwrap();
    assert_eq!(u.hosts[0].active.load(Ordering::Relaxed), 0);
    let again = u.send(get(), None).await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn a_host_answering_5xx_is_ejected() {
    let good = server(200, Duration::ZERO).await;
    let bad = server(503, Duration::ZERO).await;
    let u = upstream(&[good, bad], |c| {
        c.healthy_panic_threshold = 0.0;
        c.outlier_detection = Some(OutlierDetection {
            consecutive_5xx: 1,
            max_ejection_percent: 100,
            ..Default::default()
        })
    });
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = u.send(get(), None).await.unwrap();
        statuses.push(r.status().as_u16());
        r.into_body().collect().await.unwrap();
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        u.stats
            .outlier_ejections_enforced_total
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn connect_failure_is_uf() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let u = upstream(&[closed], |_| {});
    let e = u.send(get(), None).await.unwrap_err();
    assert_eq!(e.response_flag(), "UF");
}

#[tokio::test]
async fn original_dst_connects_to_the_downstream_destination_or_the_header() {
    let (captured, by_header) = (
        server(201, Duration::ZERO).await,
        server(202, Duration::ZERO).await,
    );
    let cluster = |use_http_header| {
        let config = Cluster::new(
            "PassthroughCluster",
            Discovery::OriginalDst { use_http_header },
            LbPolicy::RoundRobin,
        );
        Arc::new(Upstream::new(config, Vec::new(), None, Arc::default()))
    };
    let original: std::net::SocketAddr = ([127, 0, 0, 1], captured).into();
    let with_header = |value: &str| {
        let mut r = get();
        r.headers_mut()
            .insert(ORIGINAL_DST_HOST, HeaderValue::from_str(value).unwrap());
        r
    };
    let status = |r: Result<Response<UpstreamBody>, UpstreamError>| {
        r.map(|r| r.status().as_u16())
            .map_err(|e| e.response_flag())
    };

    // Transparent capture: where the client was going.
    let plain = cluster(false);
    assert_eq!(
        status(plain.send_to(get(), None, Some(original)).await),
        Ok(201)
    );
    let answered = plain.send_to(get(), None, Some(original)).await.unwrap();
    let host = answered.extensions().get::<UpstreamHost>().unwrap();
    assert_eq!(&*host.authority, original.to_string());
    // Without use_http_header the header is ignored; with neither there is no host.
    let header = format!("127.0.0.1:{by_header}");
    assert_eq!(
        status(
            plain
                .send_to(with_header(&header), None, Some(original))
                .await
        ),
        Ok(201)
    );
    assert_eq!(status(plain.send_to(get(), None, None).await), Err("UH"));

    // use_http_header: a valid header wins; an invalid one falls back to the destination.
    let headed = cluster(true);
    assert_eq!(
        status(
            headed
                .send_to(with_header(&header), None, Some(original))
                .await
        ),
        Ok(202)
    );
    assert_eq!(
        status(headed.send_to(with_header(&header), None, None).await),
        Ok(202)
    );
    assert_eq!(
        status(
            headed
                .send_to(with_header("nowhere:80"), None, Some(original))
                .await
        ),
        Ok(201)
    );
    assert_eq!(
        status(headed.send_to(with_header("nowhere:80"), None, None).await),
        Err("UH")
    );
}
