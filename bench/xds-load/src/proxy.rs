//! One simulated sidecar: an Istio-style node on a state-of-the-world ADS stream that asks
//! and ACKs the way Envoy does (CDS, then EDS for its EDS clusters, then LDS, then RDS for the
//! route configurations its listeners name), recording when it ACKed and what it received.

use crate::mesh::{Endpoint, Service};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use prost::Message;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

pub const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const HCM: &str = "envoy.filters.network.http_connection_manager";

/// State every simulated proxy shares with the coordinator.
#[derive(Debug)]
pub struct Shared {
    pub base: Instant,
    /// Nanoseconds since `base` of the latest response any proxy received.
    pub last_response: AtomicU64,
    /// Bytes that mark the change under way; a proxy notes when an EDS or RDS response
    /// carrying them arrives.
    pub marker: RwLock<Option<Arc<Vec<u8>>>>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            base: Instant::now(),
            last_response: AtomicU64::new(0),
            marker: RwLock::new(None),
        }
    }

    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// What one proxy records; times are nanoseconds since [`Shared::base`], 0 for never.
#[derive(Debug, Default)]
pub struct Stats {
    pub last_ack: AtomicU64,
    pub marker_seen: AtomicU64,
    pub bytes: AtomicU64,
    pub responses: AtomicU64,
    /// Every subscribed type has been answered and ACKed at least once.
    pub synced: AtomicBool,
    pub synced_at: AtomicU64,
    pub failed: AtomicBool,
}

/// The node a sidecar next to `e` sends, with the metadata istio-agent puts there.
pub fn node(s: &Service, e: &Endpoint) -> Node {
    let text = |v: &str| Value {
        kind: Some(Kind::StringValue(v.to_string())),
    };
    let labels = Struct {
        fields: [
            ("app".to_string(), text(&s.name)),
            ("version".to_string(), text("v1")),
        ]
        .into(),
    };
    let fields = [
        ("NAMESPACE", text(&s.namespace)),
        ("INSTANCE_IPS", text(&e.address)),
        ("WORKLOAD_NAME", text(&s.name)),
        ("SERVICE_ACCOUNT", text(&s.name)),
        ("INTERCEPTION_MODE", text("REDIRECT")),
        ("CLUSTER_ID", text("Kubernetes")),
        ("MESH_ID", text("cluster.local")),
        ("ISTIO_VERSION", text("1.24.0")),
        ("NODE_NAME", text("bench-node")),
        (
            "POD_PORTS",
            text(r#"[{"name":"http","containerPort":8080,"protocol":"TCP"}]"#),
        ),
        (
            "LABELS",
            Value {
                kind: Some(Kind::StructValue(labels)),
            },
        ),
    ];
    Node {
        id: format!(
            "sidecar~{}~{}.{}~{}.svc.cluster.local",
            e.address, e.name, s.namespace, s.namespace
        ),
        cluster: format!("{}.{}", s.name, s.namespace),
        metadata: Some(Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }),
        user_agent_name: "envoy".to_string(),
        ..Node::default()
    }
}

/// The two fields of a Cluster that say whether (and under which name) it uses EDS;
/// decoding only these keeps the load tool's CPU small next to weftd's.
#[derive(Clone, PartialEq, Message)]
struct ClusterHead {
    #[prost(string, tag = "1")]
    name: String,
    /// `type` in the `cluster_discovery_type` oneof; 3 is EDS.
    #[prost(int32, tag = "2")]
    discovery: i32,
    #[prost(message, optional, tag = "3")]
    eds: Option<EdsHead>,
}

#[derive(Clone, PartialEq, Message)]
struct EdsHead {
    #[prost(string, tag = "2")]
    service_name: String,
}

const EDS_DISCOVERY: i32 = 3;

fn eds_names(resp: &DiscoveryResponse) -> BTreeSet<String> {
    resp.resources
        .iter()
        .filter_map(|any| ClusterHead::decode(any.value.as_slice()).ok())
        .filter(|c| c.discovery == EDS_DISCOVERY)
        .map(|c| match c.eds {
            Some(e) if !e.service_name.is_empty() => e.service_name,
            _ => c.name,
        })
        .collect()
}

fn rds_names(resp: &DiscoveryResponse) -> BTreeSet<String> {
    resp.resources
        .iter()
        .filter_map(|any| Listener::decode(any.value.as_slice()).ok())
        .flat_map(|l| l.filter_chains)
        .flat_map(|c| c.filters)
        .filter(|f| f.name == HCM)
        .filter_map(|f| match f.config_type {
            Some(ConfigType::TypedConfig(any)) => {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .filter_map(|hcm| match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
            _ => None,
        })
        .collect()
}

/// Per type: names subscribed, last nonce, whether any response was ACKed.
#[derive(Debug, Default)]
struct Sub {
    requested: bool,
    names: BTreeSet<String>,
    nonce: String,
    version: String,
    acked: bool,
}

fn request(type_url: &str, sub: &Sub, node: Option<Node>) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: sub.version.clone(),
        node,
        resource_names: sub.names.iter().cloned().collect(),
        type_url: type_url.to_string(),
        response_nonce: sub.nonce.clone(),
        ..DiscoveryRequest::default()
    }
}

/// Runs one proxy's stream until it ends; failures are recorded in `stats`.
pub async fn run(channel: Channel, node: Node, stats: Arc<Stats>, shared: Arc<Shared>) {
    if let Err(status) = session(channel, node, &stats, &shared).await {
        tracing::warn!(%status, "ADS stream failed");
    }
    stats.failed.store(true, Ordering::Relaxed);
}

async fn session(
    channel: Channel,
    node: Node,
    stats: &Stats,
    shared: &Shared,
) -> Result<(), tonic::Status> {
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
    let mut cds = Sub {
        requested: true,
        ..Sub::default()
    };
    let (mut eds, mut lds, mut rds) = (Sub::default(), Sub::default(), Sub::default());
    let send = |r: DiscoveryRequest| {
        // The receiver lives as long as the stream below.
        let _ = tx.send(r);
    };
    send(request(CDS, &cds, Some(node)));
    let mut stream = client
        .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(resp) = stream.message().await? {
        let now = shared.now();
        shared.last_response.fetch_max(now, Ordering::Relaxed);
        stats.responses.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes
            .fetch_add(resp.encoded_len() as u64, Ordering::Relaxed);
        if resp.type_url == EDS || resp.type_url == RDS {
            let marker = shared.marker.read().map(|m| m.clone()).unwrap_or_default();
            if let Some(marker) = marker {
                let finder = memchr::memmem::Finder::new(marker.as_slice());
                if resp
                    .resources
                    .iter()
                    .any(|any| finder.find(&any.value).is_some())
                {
                    stats.marker_seen.store(now, Ordering::Relaxed);
                }
            }
        }
        let sub = match resp.type_url.as_str() {
            CDS => &mut cds,
            EDS => &mut eds,
            LDS => &mut lds,
            RDS => &mut rds,
            _ => continue,
        };
        sub.nonce = resp.nonce.clone();
        sub.version = resp.version_info.clone();
        sub.acked = true;
        // ACK first, as Envoy does once the update is applied; then follow-up subscriptions.
        send(request(&resp.type_url, sub, None));
        stats.last_ack.store(shared.now(), Ordering::Relaxed);
        match resp.type_url.as_str() {
            CDS => {
                let names = eds_names(&resp);
                if names != eds.names || !eds.requested {
                    eds.names = names;
                    if !eds.names.is_empty() || eds.requested {
                        eds.requested = true;
                        send(request(EDS, &eds, None));
                    }
                }
                if eds.names.is_empty() && !lds.requested {
                    lds.requested = true;
                    send(request(LDS, &lds, None));
                }
            }
            EDS if !lds.requested => {
                // Clusters are warm: Envoy asks for listeners now.
                lds.requested = true;
                send(request(LDS, &lds, None));
            }
            LDS => {
                let names = rds_names(&resp);
                if names != rds.names {
                    rds.names = names;
                    rds.requested = true;
                    send(request(RDS, &rds, None));
                }
            }
            _ => {}
        }
        if !stats.synced.load(Ordering::Relaxed)
            && cds.acked
            && (eds.names.is_empty() || eds.acked)
            && lds.acked
            && (rds.names.is_empty() || rds.acked)
        {
            stats.synced_at.store(shared.now(), Ordering::Relaxed);
            stats.synced.store(true, Ordering::Relaxed);
        }
    }
    Err(tonic::Status::unavailable("weftd closed the stream"))
}
