//! Upgrades end to end through [`super::super::serve_connection`]: a raw HTTP/1.1 Upgrade
//! handshake to an upstream that answers 101 and then echoes bytes, and the 403 when the
//! connection manager does not enable the upgrade type.

use super::*;
use crate::cluster::Upstream;
use crate::model::{
    Cluster, Codec, Discovery, Endpoint, HttpConnectionManager, LbPolicy, RouteSource,
};
use crate::state::{Proxy, Snapshot};
use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads up to the end of an HTTP/1.1 head; returns it lowercased.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// An upstream that accepts any upgrade with 101, then echoes what it reads; counts the
/// requests it saw and keeps the last request head.
async fn echo_upstream() -> (u16, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(std::sync::Mutex::new(String::new()));
    let (count, head) = (seen.clone(), last.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let req = read_head(&mut s).await;
            count.fetch_add(1, Ordering::SeqCst);
            *head.lock().unwrap() = req;
            let resp = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
            s.write_all(resp.as_bytes()).await.unwrap();
            let (mut r, mut w) = s.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, seen, last)
}

/// A proxy whose only route sends everything to a static cluster on `port`, behind a
/// connection manager enabling `upgrades`; returns the proxy's listening address.
async fn proxy_to(port: u16, upgrades: &[&str]) -> std::net::SocketAddr {
    let rc = RouteConfiguration {
        name: "r".into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c".into())),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let rc = crate::xds::convert::route::route_configuration(&rc).unwrap();
    let hcm = Arc::new(HttpConnectionManager {
        stat_prefix: "test".into(),
        routes: RouteSource::Inline(Arc::new(rc)),
        codec: Codec::Auto,
        upgrades: upgrades.iter().map(|u| u.to_string()).collect(),
        rbac: Vec::new(),
        jwt: None,
        forwarding: Default::default(),
    });
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port,
        weight: 1,
        healthy: true,
        workload: None,
        transport_socket_match: Default::default(),
    };
    let cluster = Cluster::new("c", Discovery::Static, LbPolicy::RoundRobin);
    let upstream = Arc::new(Upstream::new(cluster, vec![endpoint], None, Arc::default()));
    let proxy = Proxy::new();
    proxy.publish(Snapshot {
        clusters: [("c".to_string(), upstream)].into_iter().collect(),
        lds_applied: true,
        ..Default::default()
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(crate::http::serve_connection(proxy.clone(), hcm.clone(), s));
        }
    });
    addr
}

const HANDSHAKE: &str =
    "GET /chat HTTP/1.1\r\nHost: echo\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";

#[tokio::test]
async fn an_enabled_upgrade_is_spliced_end_to_end() {
    let (port, seen, last) = echo_upstream().await;
    let addr = proxy_to(port, &["websocket"]).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(HANDSHAKE.as_bytes()).await.unwrap();
    let head = read_head(&mut c).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    let upstream_head = last.lock().unwrap().clone();
    assert!(
        upstream_head.contains("upgrade: websocket"),
        "{upstream_head}"
    );
    assert!(
        upstream_head.contains("connection: upgrade"),
        "{upstream_head}"
    );
    // Bytes both ways, several times, over the spliced connections.
    for msg in [&b"ping"[..], b"\x81\x05hello", b"not http at all\r\n\r\n"] {
        c.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut back))
            .await
            .expect("echo within 5s")
            .unwrap();
        assert_eq!(back, msg);
    }
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_upgrade_the_connection_manager_does_not_enable_is_403() {
    let (port, seen, _) = echo_upstream().await;
    let addr = proxy_to(port, &[]).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(HANDSHAKE.as_bytes()).await.unwrap();
    let mut all = String::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut all))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    assert!(all.starts_with("HTTP/1.1 403"), "{all}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
}

#[test]
fn requested_needs_both_headers_on_http_1_1() {
    let mut h = HeaderMap::new();
    h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
    assert_eq!(
        requested(Version::HTTP_11, &h),
        None,
        "no Connection: upgrade"
    );
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    assert_eq!(
        requested(Version::HTTP_11, &h).as_deref(),
        Some("websocket")
    );
    assert_eq!(requested(Version::HTTP_10, &h), None);
}
