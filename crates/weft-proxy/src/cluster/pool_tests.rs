//! HTTP/1.1 connections run by the requests' own tasks: kept for the next request,
//! replaced when the server closed them while idle, and their places under
//! `max_connections` given back when they close, whichever host they were for.

use crate::cluster::{Upstream, UpstreamBody};
use crate::model::{Cluster, Discovery, Endpoint, LbPolicy, Thresholds};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Body;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server answering `200 ok`; with `idle_close`, it closes each connection that long
/// after its first response (without `Connection: close`, as a server's idle timeout
/// does). Returns its port and how many connections it accepted.
async fn server(idle_close: Option<Duration>) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let resp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        break;
                    }
                    if let Some(after) = idle_close {
                        tokio::time::sleep(after).await;
                        break;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// How long the closing servers keep a connection idle.
const IDLE: Duration = Duration::from_millis(50);

fn upstream(ports: &[u16], limits: Thresholds) -> Arc<Upstream> {
    let mut config = Cluster::new("c", Discovery::Static, LbPolicy::RoundRobin);
    config.circuit_breakers = limits;
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

/// One GET, its body read to the end; the status and body, or the response flag.
async fn get(u: &Upstream) -> Result<(u16, String), &'static str> {
    let req: Request<UpstreamBody> = Request::builder()
        .uri("/x")
        .header("host", "svc")
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .unwrap();
    let send = tokio::time::timeout(Duration::from_secs(5), u.send(req, None));
    let resp = send
        .await
        .expect("no answer in 5 s")
        .map_err(|e| e.response_flag())?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn a_connection_serves_one_request_after_another() {
    let (port, accepted) = server(None).await;
    let u = upstream(&[port], Thresholds::default());
    for _ in 0..3 {
        assert_eq!(get(&u).await, Ok((200, "ok".to_string())));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    let (port, accepted) = server(Some(IDLE)).await;
    let u = upstream(&[port], Thresholds::default());
    assert_eq!(get(&u).await, Ok((200, "ok".to_string())));
    // Let the close arrive while the connection sits idle, run by nobody.
    tokio::time::sleep(IDLE * 4).await;
    assert_eq!(get(&u).await, Ok((200, "ok".to_string())));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_closed_idle_connection_gives_its_place_to_another_host() {
    let (a, _) = server(Some(IDLE)).await;
    let (b, _) = server(None).await;
    // One connection for the whole cluster: the next request (round robin: host b)
    // needs the place of the connection to a, which a has closed.
    let u = upstream(
        &[a, b],
        Thresholds {
            max_connections: 1,
            max_pending_requests: 1,
            ..Thresholds::default()
        },
    );
    assert_eq!(get(&u).await, Ok((200, "ok".to_string())));
    tokio::time::sleep(IDLE * 4).await;
    assert_eq!(get(&u).await, Ok((200, "ok".to_string())));
}

#[tokio::test]
async fn a_response_without_body_leaves_its_connection_for_the_next_request() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0
                        || s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    let u = upstream(&[port], Thresholds::default());
    for _ in 0..3 {
        let req: Request<UpstreamBody> = Request::builder()
            .uri("/x")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        let resp = u.send(req, None).await.unwrap();
        assert_eq!(resp.status(), 204);
        // As hyper's server does: a body that has ended is dropped, never read.
        assert!(resp.body().is_end_stream());
        drop(resp);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
