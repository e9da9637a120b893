//! In-process weftd xDS for tests: an embedded store, the snapshot pipeline, the ADS server
//! with a deterministic generator, and the debug API, all on ephemeral loopback ports.
#![allow(dead_code)] // each test file uses a different part

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, Secret, TlsCertificate,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{value::Kind as ValueKind, Struct, Value as PbValue};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use weft_config::Kind;
use weft_control::model::{MeshSnapshot, Proxy};
use weft_control::store::{EmbeddedStore, ObjectKey, Store};
use weft_control::translate::Generated;
use weft_control::xds::pipeline::{self, Debounce};
use weft_control::xds::{Generator, Xds, XdsConfig};

pub const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const SDS: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// A test generator: one cluster and one endpoint assignment per ServiceEntry (named after
/// it, with the entry's first port as the cluster's buffer limit so edits change it), one
/// listener `main` and one route configuration `main` when any entry exists; one secret
/// `kubernetes://<entry>` per entry, whose (fake) private key is the entry's first port.
pub fn generator() -> Generator {
    Arc::new(|snapshot: &MeshSnapshot, _proxy: &Proxy| {
        let mut generated = Generated::default();
        for se in snapshot.of_kind(Kind::ServiceEntry) {
            let name = se.metadata.name.clone();
            let port = se.spec_json["ports"][0]["number"].as_u64().unwrap_or(0) as u32;
            generated.clusters.push(Cluster {
                name: name.clone(),
                per_connection_buffer_limit_bytes: Some(
                    envoy_types::pb::google::protobuf::UInt32Value { value: port },
                ),
                ..Cluster::default()
            });
            generated.secrets.push(test_secret(&name, port));
            generated.endpoints.push(ClusterLoadAssignment {
                cluster_name: name,
                ..ClusterLoadAssignment::default()
            });
        }
        if !generated.clusters.is_empty() {
            generated.listeners.push(Listener {
                name: "main".into(),
                ..Listener::default()
            });
            generated.routes.push(RouteConfiguration {
                name: "main".into(),
                ..RouteConfiguration::default()
            });
        }
        generated
    })
}

fn test_secret(name: &str, port: u32) -> Secret {
    let pem = |text: String| DataSource {
        specifier: Some(data_source::Specifier::InlineString(text)),
        ..DataSource::default()
    };
    Secret {
        name: format!("kubernetes://{name}"),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(pem(format!("CERT {name}"))),
            private_key: Some(pem(format!("PRIVATE KEY {port}"))),
            ..TlsCertificate::default()
        })),
    }
}

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub xds_addr: SocketAddr,
    pub api: String,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(grace: Duration) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let (stop, stop_rx) = watch::channel(false);
        let config = XdsConfig {
            debounce: Debounce {
                after: Duration::from_millis(20),
                max: Duration::from_millis(200),
            },
            auto_register_grace: grace,
        };
        let (snapshots, _task) = pipeline::start(
            store.clone(),
            Default::default(),
            config.debounce,
            stop_rx.clone(),
        )
        .await
        .unwrap();
        let xds = Xds::with_generator(snapshots, store.clone(), config, stop_rx, generator());
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let xds_addr = grpc.local_addr().unwrap();
        let service = xds.service();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc))
                .await
                .unwrap();
        });
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", http.local_addr().unwrap());
        let app = weft_control::api::debug::router(xds);
        tokio::spawn(async move { axum::serve(http, app).await.unwrap() });
        Harness {
            store,
            xds_addr,
            api,
            stop,
            _dir: dir,
        }
    }

    pub async fn client(&self) -> AggregatedDiscoveryServiceClient<Channel> {
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.xds_addr))
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.api)).await.unwrap()
    }

    pub async fn proxies(&self) -> Vec<Value> {
        self.get("/debug/proxies").await.json().await.unwrap()
    }

    /// The `xds` status of one type of the proxy with this id.
    pub async fn sync(&self, id: &str, short: &str) -> Value {
        let proxies = self.proxies().await;
        let proxy = proxies
            .iter()
            .find(|p| p["proxy"] == id)
            .unwrap_or_else(|| panic!("{id} not in /debug/proxies: {proxies:?}"));
        proxy["xds"][short].clone()
    }

    /// Waits until `check` holds for the sync status of one type.
    pub async fn wait_sync(&self, id: &str, short: &str, check: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let s = self.sync(id, short).await;
            if check(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sync(id, short).await
    }

    pub async fn put_service_entry(&self, name: &str, port: u32) {
        self.store
            .put(
                json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {"hosts": [format!("{name}.example.com")],
                                "ports": [{"number": port, "name": "http", "protocol": "HTTP"}],
                                "resolution": "DNS"}}),
                None,
            )
            .await
            .unwrap();
    }

    pub async fn delete(&self, kind: Kind, name: &str) {
        self.store
            .delete(ObjectKey::new(kind, "default", name), None)
            .await
            .unwrap();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn text(s: &str) -> PbValue {
    PbValue {
        kind: Some(ValueKind::StringValue(s.to_string())),
    }
}

/// A sidecar node as docs/xds.md describes it.
pub fn node(id: &str, extra: &[(&str, &str)]) -> Node {
    let mut fields: std::collections::HashMap<String, PbValue> = [
        ("NAMESPACE", "default"),
        ("INTERCEPTION_MODE", "NONE"),
        ("WORKLOAD_NAME", "reviews-v1"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), text(v)))
    .collect();
    fields.insert(
        "LABELS".into(),
        PbValue {
            kind: Some(ValueKind::StructValue(Struct {
                fields: [("app".to_string(), text("reviews"))].into(),
            })),
        },
    );
    Node {
        id: id.to_string(),
        metadata: Some(Struct { fields }),
        ..Node::default()
    }
}

/// The sending half of a request stream and the stream to hand to the client.
pub fn requests<T: Send + 'static>() -> (mpsc::Sender<T>, ReceiverStream<T>) {
    let (tx, rx) = mpsc::channel(16);
    (tx, ReceiverStream::new(rx))
}

/// The next message, failing the test after 5 s.
pub async fn next<T>(stream: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a response within 5 s")
        .expect("stream is healthy")
        .expect("stream is open")
}

/// Asserts nothing arrives for a while: pushes happen only on real changes.
pub async fn quiet<T: std::fmt::Debug>(stream: &mut tonic::Streaming<T>) {
    if let Ok(message) = tokio::time::timeout(Duration::from_millis(400), stream.message()).await {
        panic!("expected no push, got {message:?}");
    }
}
