//! The delta client against an in-process ADS server fake: subscriptions that follow
//! clusters and listeners, removals, ACK/NACK, and resuming with initial versions.

use super::*;
use crate::stats::UpdateStats;
use crate::xds::convert::listener::HCM_TYPE;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source::ConfigSourceSpecifier, socket_address::PortSpecifier, Address,
    AggregatedConfigSource, ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use std::pin::Pin;
use std::time::Duration;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Streaming};

type Responses = mpsc::UnboundedSender<Result<DeltaDiscoveryResponse, tonic::Status>>;

/// One delta stream the proxy opened: what it sends, and where the test answers.
struct Opened {
    requests: mpsc::UnboundedReceiver<DeltaDiscoveryRequest>,
    responses: Responses,
}

struct Fake {
    opened: mpsc::UnboundedSender<Opened>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Fake {
    type StreamAggregatedResourcesStream =
        Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, tonic::Status>> + Send>>;
    type DeltaAggregatedResourcesStream =
        Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, tonic::Status>> + Send>>;

    async fn stream_aggregated_resources(
        &self,
        _: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("delta only"))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        let mut inbound = request.into_inner();
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let (resp_tx, resp_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                if req_tx.send(r).is_err() {
                    break;
                }
            }
        });
        let _ = self.opened.send(Opened {
            requests: req_rx,
            responses: resp_tx,
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(
            resp_rx,
        ))))
    }
}

/// Starts the fake and a delta client pointed at it.
async fn start() -> (Arc<Proxy>, mpsc::UnboundedReceiver<Opened>) {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (opened, streams) = mpsc::unbounded_channel();
    let incoming = futures::stream::unfold(socket, |s| async move {
        let accepted = s.accept().await.map(|(c, _)| c);
        Some((accepted, s))
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(Fake { opened }))
            .serve_with_incoming(incoming),
    );
    let settings = Settings {
        node_id: "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local".into(),
        node_cluster: "sleep.default".into(),
        metadata: Default::default(),
        admin: None,
        xds: addr.to_string(),
        delta: true,
        drain_time: Duration::from_secs(5),
        bootstrap: serde_json::Value::Null,
    };
    let proxy = Proxy::new();
    tokio::spawn(run(proxy.clone(), Arc::new(settings)));
    (proxy, streams)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the proxy sends within 10s")
        .expect("channel open")
}

fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.into(),
        value: m.encode_to_vec(),
    }
}

fn ads() -> Option<ConfigSource> {
    Some(ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    })
}

fn eds_cluster(name: &str) -> Any {
    any(
        CDS,
        &Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            ..Default::default()
        },
    )
}

fn addr(port: u32) -> Option<Address> {
    Some(Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    })
}

fn assignment(name: &str, port: u32) -> Any {
    any(
        EDS,
        &ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: addr(port),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

fn rds_listener(name: &str, port: u32, route: &str) -> Any {
    let hcm = HttpConnectionManager {
        stat_prefix: "outbound".into(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: ads(),
            route_config_name: route.into(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                    .into(),
                value: Vec::new(),
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    any(
        LDS,
        &Listener {
            name: name.into(),
            address: addr(port),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(Any {
                        type_url: format!("type.googleapis.com/{HCM_TYPE}"),
                        value: hcm.encode_to_vec(),
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

fn route(name: &str) -> Any {
    any(
        RDS,
        &RouteConfiguration {
            name: name.into(),
            ..Default::default()
        },
    )
}

fn resource(name: &str, version: &str, any: Any) -> Resource {
    Resource {
        name: name.into(),
        version: version.into(),
        resource: Some(any),
        ..Default::default()
    }
}

fn response(
    type_url: &str,
    nonce: &str,
    resources: Vec<Resource>,
    removed: &[&str],
) -> Result<DeltaDiscoveryResponse, tonic::Status> {
    Ok(DeltaDiscoveryResponse {
        system_version_info: nonce.into(),
        resources,
        type_url: type_url.into(),
        removed_resources: removed.iter().map(|s| s.to_string()).collect(),
        nonce: nonce.into(),
        ..Default::default()
    })
}

fn sorted(names: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = names.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
}

/// Reads requests until the ACK/NACK of `nonce`; returns it and the requests that came along.
async fn answer_to(
    s: &mut Opened,
    nonce: &str,
) -> (DeltaDiscoveryRequest, Vec<DeltaDiscoveryRequest>) {
    let mut others = Vec::new();
    loop {
        let r = next(&mut s.requests).await;
        if r.response_nonce == nonce {
            return (r, others);
        }
        others.push(r);
    }
}

#[tokio::test]
async fn follows_references_applies_removals_nacks_and_resumes() {
    let (proxy, mut streams) = start().await;
    let mut s = next(&mut streams).await;

    // Wildcard CDS (with the node) then LDS; nothing named yet.
    let cds = next(&mut s.requests).await;
    assert_eq!(cds.type_url, CDS);
    assert_eq!(cds.resource_names_subscribe, ["*"]);
    assert_eq!(
        cds.node.as_ref().map(|n| n.id.as_str()),
        Some("sidecar~127.0.0.1~sleep.default~default.svc.cluster.local")
    );
    let lds = next(&mut s.requests).await;
    assert_eq!(
        (
            lds.type_url.as_str(),
            lds.resource_names_subscribe.as_slice()
        ),
        (LDS, &["*".to_string()][..])
    );
    assert!(
        lds.node.is_none(),
        "the node goes on the first request only"
    );

    // Two EDS clusters: ACK, then a subscription to exactly their endpoints.
    s.responses
        .send(response(
            CDS,
            "c1",
            vec![
                resource("a", "1", eds_cluster("a")),
                resource("b", "1", eds_cluster("b")),
            ],
            &[],
        ))
        .unwrap();
    let (ack, _) = answer_to(&mut s, "c1").await;
    assert_eq!(ack.type_url, CDS);
    assert!(ack.error_detail.is_none());
    let sub = next(&mut s.requests).await;
    assert_eq!(sub.type_url, EDS);
    assert_eq!(sorted(&sub.resource_names_subscribe), ["a", "b"]);
    assert!(sub.resource_names_unsubscribe.is_empty());

    s.responses
        .send(response(
            EDS,
            "e1",
            vec![
                resource("a", "1", assignment("a", 9001)),
                resource("b", "1", assignment("b", 9002)),
            ],
            &[],
        ))
        .unwrap();
    let (ack, _) = answer_to(&mut s, "e1").await;
    assert!(ack.error_detail.is_none());
    let snap = proxy.snapshot.load();
    assert_eq!(snap.clusters["a"].hosts.len(), 1);
    assert_eq!(
        snap.clusters["b"].hosts[0].endpoint.authority(),
        "127.0.0.1:9002"
    );

    // A listener naming route "r": RDS follows; the routes arrive and the proxy is ready.
    s.responses
        .send(response(
            LDS,
            "l1",
            vec![resource("out", "1", rds_listener("out", 15001, "r"))],
            &[],
        ))
        .unwrap();
    let (ack, _) = answer_to(&mut s, "l1").await;
    assert!(ack.error_detail.is_none());
    let sub = next(&mut s.requests).await;
    assert_eq!(
        (sub.type_url.as_str(), sorted(&sub.resource_names_subscribe)),
        (RDS, vec!["r"])
    );
    s.responses
        .send(response(
            RDS,
            "r1",
            vec![resource("r", "1", route("r"))],
            &[],
        ))
        .unwrap();
    answer_to(&mut s, "r1").await;
    let snap = proxy.snapshot.load();
    assert!(snap.lds_applied);
    assert!(snap.routes.contains_key("r"));

    // Delta CDS: only "c" is new and "a" removed; "b" stays though it was not resent.
    s.responses
        .send(response(
            CDS,
            "c2",
            vec![resource("c", "1", eds_cluster("c"))],
            &["a"],
        ))
        .unwrap();
    let (ack, _) = answer_to(&mut s, "c2").await;
    assert!(ack.error_detail.is_none());
    let sub = next(&mut s.requests).await;
    assert_eq!(sub.type_url, EDS);
    assert_eq!(sorted(&sub.resource_names_subscribe), ["c"]);
    assert_eq!(sorted(&sub.resource_names_unsubscribe), ["a"]);
    let snap = proxy.snapshot.load();
    let names: Vec<&str> = snap.clusters.keys().map(String::as_str).collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(snap.clusters["b"].hosts.len(), 1, "b keeps its endpoints");

    // A bad resource: NACK naming it, nothing changes, no subscription moves.
    let mut bad = eds_cluster("d");
    bad.value = vec![0xff, 0xff, 0xff];
    s.responses
        .send(response(CDS, "c3", vec![resource("d", "1", bad)], &["b"]))
        .unwrap();
    let (nack, others) = answer_to(&mut s, "c3").await;
    assert!(others.is_empty(), "{others:?}");
    let detail = nack.error_detail.expect("a NACK carries error_detail");
    // gRPC INVALID_ARGUMENT, as Envoy NACKs.
    assert_eq!(detail.code, 3);
    assert!(detail.message.contains("Cluster"), "{}", detail.message);
    let names: Vec<String> = proxy.snapshot.load().clusters.keys().cloned().collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(
        proxy
            .stats
            .cds
            .update_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // The stream breaks: the proxy reconnects, keeps its config, and tells the server what
    // it holds so only changes come back.
    drop(s);
    let mut s = next(&mut streams).await;
    assert_eq!(proxy.snapshot.load().clusters.len(), 2);
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(next(&mut s.requests).await);
    }
    let types: Vec<&str> = first.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CDS, EDS, LDS, RDS]);
    let versions = |i: usize| {
        let mut v: Vec<(String, String)> = first[i]
            .initial_resource_versions
            .clone()
            .into_iter()
            .collect();
        v.sort();
        v
    };
    let v = |n: &str| (n.to_string(), "1".to_string());
    assert_eq!(versions(0), [v("b"), v("c")]);
    assert_eq!(sorted(&first[1].resource_names_subscribe), ["b", "c"]);
    assert_eq!(
        versions(1),
        [v("b")],
        "only endpoints received are reported"
    );
    assert_eq!(versions(2), [v("out")]);
    assert_eq!(sorted(&first[3].resource_names_subscribe), ["r"]);
    assert_eq!(versions(3), [v("r")]);
}

/// An EDS cluster whose upstream TLS context takes its certificate and CA over SDS.
fn tls_cluster(name: &str, secrets: &[&str]) -> Any {
    use crate::xds::convert::tls::{TLS_SOCKET, UPSTREAM_TLS_CONTEXT};
    use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        common_tls_context::ValidationContextType, CommonTlsContext, SdsSecretConfig,
        UpstreamTlsContext,
    };
    let sds = |n: &str| SdsSecretConfig {
        name: n.into(),
        sds_config: ads(),
    };
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: secrets[..1].iter().map(|n| sds(n)).collect(),
            validation_context_type: secrets
                .get(1)
                .map(|n| ValidationContextType::ValidationContextSdsSecretConfig(sds(n))),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut c = Cluster::decode(eds_cluster(name).value.as_slice()).unwrap();
    c.transport_socket = Some(TransportSocket {
        name: TLS_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(Any {
            type_url: format!("type.googleapis.com/{UPSTREAM_TLS_CONTEXT}"),
            value: ctx.encode_to_vec(),
        })),
    });
    any(CDS, &c)
}

fn secret(name: &str, kind: &str) -> Any {
    use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        secret, CertificateValidationContext, Secret, TlsCertificate,
    };
    let pem = |s: &str| {
        Some(DataSource {
            specifier: Some(Specifier::InlineString(s.into())),
            ..Default::default()
        })
    };
    let r#type = match kind {
        "cert" => Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: pem("chain"),
            private_key: pem("key"),
            ..Default::default()
        })),
        "ca" => Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: pem("ca"),
                ..Default::default()
            },
        )),
        _ => None,
    };
    any(
        SDS,
        &Secret {
            name: name.into(),
            r#type,
        },
    )
}

#[tokio::test]
async fn sds_follows_the_secrets_clusters_name_and_resumes() {
    let (proxy, mut streams) = start().await;
    let mut s = next(&mut streams).await;
    let sds_stats = |f: fn(&UpdateStats) -> &std::sync::atomic::AtomicU64| {
        f(&proxy.stats.sds).load(std::sync::atomic::Ordering::Relaxed)
    };
    s.responses
        .send(response(
            CDS,
            "c1",
            vec![resource("t", "1", tls_cluster("t", &["cert", "root"]))],
            &[],
        ))
        .unwrap();
    let (ack, _) = answer_to(&mut s, "c1").await;
    assert!(ack.error_detail.is_none(), "{:?}", ack.error_detail);
    // After the ACK: endpoints, then the secrets, as Envoy orders them.
    let eds = next(&mut s.requests).await;
    assert_eq!(eds.type_url, EDS);
    let sub = next(&mut s.requests).await;
    assert_eq!(sub.type_url, SDS);
    assert_eq!(sorted(&sub.resource_names_subscribe), ["cert", "root"]);

    s.responses
        .send(response(
            SDS,
            "s1",
            vec![
                resource("cert", "1", secret("cert", "cert")),
                resource("root", "1", secret("root", "ca")),
            ],
            &[],
        ))
        .unwrap();
    let (ack, _) = answer_to(&mut s, "s1").await;
    assert_eq!(ack.type_url, SDS);
    assert!(ack.error_detail.is_none(), "{:?}", ack.error_detail);
    assert_eq!(sds_stats(|s| &s.update_success), 1);

    // A secret of no supported type: NACKed as a whole, counted as rejected.
    s.responses
        .send(response(
            SDS,
            "s2",
            vec![resource("root", "2", secret("root", "none"))],
            &[],
        ))
        .unwrap();
    let (nack, _) = answer_to(&mut s, "s2").await;
    let detail = nack.error_detail.expect("a NACK carries error_detail");
    assert!(detail.message.contains("root"), "{}", detail.message);
    assert_eq!(sds_stats(|s| &s.update_rejected), 1);

    // The cluster stops naming the CA: SDS unsubscribes from it.
    s.responses
        .send(response(
            CDS,
            "c2",
            vec![resource("t", "2", tls_cluster("t", &["cert"]))],
            &[],
        ))
        .unwrap();
    let (_, _) = answer_to(&mut s, "c2").await;
    let sub = next(&mut s.requests).await;
    assert_eq!(sub.type_url, SDS);
    assert!(sub.resource_names_subscribe.is_empty());
    assert_eq!(sorted(&sub.resource_names_unsubscribe), ["root"]);

    // Reconnect: SDS comes between EDS and LDS with the one secret still held.
    drop(s);
    let mut s = next(&mut streams).await;
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(next(&mut s.requests).await);
    }
    let types: Vec<&str> = first.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CDS, EDS, SDS, LDS]);
    assert_eq!(sorted(&first[2].resource_names_subscribe), ["cert"]);
    let held: Vec<(&String, &String)> = first[2].initial_resource_versions.iter().collect();
    assert_eq!(held, [(&"cert".to_string(), &"1".to_string())]);
}
