//! The router end to end through [`crate::http::serve_connection_from`]: a connection
//! whose original destination was restored (transparent capture) reaches it through an
//! ORIGINAL_DST cluster (Istio's PassthroughCluster), and the edge's forwarding headers
//! reach the upstream.

use crate::cluster::Upstream;
use crate::listener::Downstream;
use crate::model::listener::Forwarding;
use crate::model::{Cluster, Codec, Discovery, HttpConnectionManager, LbPolicy, RouteSource};
use crate::state::{Proxy, Snapshot};
use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream answering each request with 200 and the request head as its body.
async fn mirror_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    head.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.write_all(&head).await;
            });
        }
    });
    addr
}

/// A proxy routing everything to PassthroughCluster (ORIGINAL_DST), each accepted
/// connection served as if its original destination were `original_dst`.
async fn passthrough_proxy(original_dst: Option<SocketAddr>, forwarding: Forwarding) -> SocketAddr {
    let rc = RouteConfiguration {
        name: "r".into(),
        virtual_hosts: vec![VirtualHost {
            name: "allow_any".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        "PassthroughCluster".into(),
                    )),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let hcm = Arc::new(HttpConnectionManager {
        stat_prefix: "outbound_0.0.0.0_15001".into(),
        routes: RouteSource::Inline(Arc::new(
            crate::xds::convert::route::route_configuration(&rc).unwrap(),
        )),
        codec: Codec::Auto,
        upgrades: Vec::new(),
        rbac: Vec::new(),
        jwt: None,
        forwarding,
    });
    let cluster = Cluster::new(
        "PassthroughCluster",
        Discovery::OriginalDst {
            use_http_header: false,
        },
        LbPolicy::RoundRobin,
    );
    let upstream = Arc::new(Upstream::new(cluster, Vec::new(), None, Arc::default()));
    let proxy = Proxy::new();
    proxy.publish(Snapshot {
        clusters: [("PassthroughCluster".to_string(), upstream)]
            .into_iter()
            .collect(),
        lds_applied: true,
        ..Default::default()
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, remote)) = l.accept().await {
            let downstream = Arc::new(Downstream {
                remote: Some(remote),
                local: s.local_addr().ok(),
                original_dst,
                ..Downstream::default()
            });
            tokio::spawn(crate::http::serve_connection_from(
                proxy.clone(),
                hcm.clone(),
                s,
                downstream,
            ));
        }
    });
    addr
}

/// One request over a new connection; the whole response, lowercased.
async fn get(proxy: SocketAddr, extra: &str) -> String {
    let mut c = TcpStream::connect(proxy).await.unwrap();
    let req = format!(
        "GET /where HTTP/1.1\r\nhost: somewhere.example\r\n{extra}connection: close\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    out.to_ascii_lowercase()
}

#[tokio::test]
async fn passthrough_reaches_the_original_destination() {
    let upstream = mirror_upstream().await;
    let proxy = passthrough_proxy(Some(upstream), Forwarding::default()).await;
    let resp = get(proxy, "").await;
    assert!(resp.starts_with("http/1.1 200"), "{resp}");
    assert!(resp.contains("get /where http/1.1"), "{resp}");
    assert!(resp.contains("host: somewhere.example"), "{resp}");

    // No original destination (not captured): nowhere to go, 503 UH as in Envoy.
    let lost = passthrough_proxy(None, Forwarding::default()).await;
    let resp = get(lost, "").await;
    assert!(resp.starts_with("http/1.1 503"), "{resp}");
    assert!(resp.ends_with("no healthy upstream"), "{resp}");
}

#[tokio::test]
async fn the_edge_sets_forwarding_headers_upstream() {
    let upstream = mirror_upstream().await;
    let edge = Forwarding {
        use_remote_address: true,
        ..Forwarding::default()
    };
    let proxy = passthrough_proxy(Some(upstream), edge).await;
    let resp = get(
        proxy,
        "x-forwarded-for: 198.51.100.1\r\nx-forwarded-proto: https\r\n",
    )
    .await;
    let head = resp.split_once("\r\n\r\n").unwrap().1;
    // A loopback client is recorded as the node's address; the scheme is the connection's.
    assert!(head.contains("x-forwarded-for: 198.51.100.1,"), "{head}");
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    assert!(
        head.contains("x-envoy-external-address: 127.0.0.1"),
        "{head}"
    );
    // A sidecar trusts what it is given.
    let sidecar = passthrough_proxy(Some(upstream), Forwarding::default()).await;
    let resp = get(
        sidecar,
        "x-forwarded-for: 198.51.100.1\r\nx-forwarded-proto: https\r\n",
    )
    .await;
    let head = resp.split_once("\r\n\r\n").unwrap().1;
    assert!(head.contains("x-forwarded-for: 198.51.100.1\r\n"), "{head}");
    assert!(head.contains("x-forwarded-proto: https"), "{head}");
    assert!(!head.contains("x-envoy-external-address"), "{head}");
}
