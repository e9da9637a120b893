//! The ADS client (state-of-the-world): subscribes to CDS and LDS (wildcard), then EDS, RDS
//! and SDS for the names they reference (SDS: the secrets of clusters' and listeners' TLS
//! contexts); ACKs what it applied and NACKs, with the reason, what
//! it could not; reconnects with exponential backoff and keeps the last good config.

use super::session::{connect, nack, update_stats, Backoff, SessionError};
use super::store::Store;
use super::{CDS, EDS, LDS, RDS, SDS};
use crate::bootstrap::Settings;
use crate::state::Proxy;
use crate::stats::inc;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};
use envoy_types::pb::google::rpc::Status;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Per type: the nonce of the last response and the names subscribed to.
#[derive(Debug, Default)]
struct Subscription {
    nonce: String,
    names: BTreeSet<String>,
}

/// Runs the ADS client forever.
pub async fn run(proxy: Arc<Proxy>, settings: Arc<Settings>) {
    if settings.delta {
        tracing::warn!(
            "ads_config.api_type DELTA_GRPC: weft-proxy speaks state-of-the-world (GRPC) for now"
        );
    }
    let mut store = Store::default();
    let mut backoff = Backoff::default();
    loop {
        let mut got_response = false;
        let ended = session(&proxy, &settings, &mut store, &mut got_response).await;
        backoff.after("ADS", ended, got_response).await;
    }
}

async fn session(
    proxy: &Proxy,
    settings: &Settings,
    store: &mut Store,
    got_response: &mut bool,
) -> Result<(), SessionError> {
    let mut client = connect(settings).await?;
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(16);
    let node = node(settings);
    let mut subs: BTreeMap<&'static str, Subscription> = BTreeMap::new();
    // Resume where the last stream left off: versions tell weftd what is already applied.
    let initial = [
        (CDS, BTreeSet::new(), store.versions.cds.clone()),
        (LDS, BTreeSet::new(), store.versions.lds.clone()),
        (EDS, store.eds_names(), store.versions.eds.clone()),
        (RDS, store.rds_names(), store.versions.rds.clone()),
        (SDS, store.sds_names(), store.versions.sds.clone()),
    ];
    for (i, (type_url, names, version)) in initial.into_iter().enumerate() {
        if i >= 2 && names.is_empty() {
            continue;
        }
        let req = DiscoveryRequest {
            version_info: version,
            node: (i == 0).then(|| node.clone()),
            resource_names: names.iter().cloned().collect(),
            type_url: type_url.to_string(),
            ..Default::default()
        };
        subs.insert(
            type_url,
            Subscription {
                nonce: String::new(),
                names,
            },
        );
        tx.send(req).await.map_err(|_| SessionError::Closed)?;
    }
    let mut stream = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    tracing::info!(xds = %settings.xds, "ADS stream open");
    while let Some(resp) = stream.message().await? {
        *got_response = true;
        for req in on_response(proxy, store, &mut subs, resp) {
            tx.send(req).await.map_err(|_| SessionError::Closed)?;
        }
    }
    Ok(())
}

/// Applies one response; returns the ACK or NACK and any subscription changes it causes.
fn on_response(
    proxy: &Proxy,
    store: &mut Store,
    subs: &mut BTreeMap<&'static str, Subscription>,
    resp: DiscoveryResponse,
) -> Vec<DiscoveryRequest> {
    let Some(type_url) = [CDS, LDS, RDS, EDS, SDS]
        .into_iter()
        .find(|t| *t == resp.type_url)
    else {
        tracing::warn!(type_url = %resp.type_url, "ignoring a response of a type never asked for");
        return Vec::new();
    };
    let stats = update_stats(proxy, type_url);
    let result = store.apply(type_url, &resp.version_info, &resp.resources);
    let sub = subs.entry(type_url).or_default();
    sub.nonce = resp.nonce.clone();
    let version = |store: &Store, type_url: &str| match type_url {
        CDS => store.versions.cds.clone(),
        LDS => store.versions.lds.clone(),
        RDS => store.versions.rds.clone(),
        SDS => store.versions.sds.clone(),
        _ => store.versions.eds.clone(),
    };
    let mut out = Vec::new();
    match result {
        Ok(()) => {
            inc(&stats.update_success);
            tracing::info!(type_url, version = %resp.version_info, resources = resp.resources.len(), "applied");
            proxy.publish(store.snapshot(&proxy.snapshot.load(), &proxy.stats));
            out.push(request(
                type_url,
                &version(store, type_url),
                &sub.nonce,
                &sub.names,
                None,
            ));
        }
        Err(errors) => {
            inc(&stats.update_rejected);
            let status = nack(&errors);
            let message = &status.message;
            tracing::warn!(type_url, version = %resp.version_info, %message, "rejected (NACK)");
            out.push(request(
                type_url,
                &version(store, type_url),
                &sub.nonce,
                &sub.names,
                Some(status),
            ));
        }
    }
    // New clusters or listeners may reference other endpoints, route configurations or
    // secrets. A resource whose secret is not here yet is in force but waits for it
    // (connections to a cluster fail UF, a listener's TLS chain refuses handshakes), the
    // way Envoy warms it.
    for (dep, names) in [
        (EDS, store.eds_names()),
        (RDS, store.rds_names()),
        (SDS, store.sds_names()),
    ] {
        if !matches!(
            (type_url, dep),
            (CDS, EDS) | (LDS, RDS) | (CDS, SDS) | (LDS, SDS)
        ) {
            continue;
        }
        let sub = subs.entry(dep).or_default();
        if sub.names != names {
            sub.names = names;
            out.push(request(
                dep,
                &version(store, dep),
                &sub.nonce,
                &sub.names,
                None,
            ));
        }
    }
    out
}

fn request(
    type_url: &str,
    version: &str,
    nonce: &str,
    names: &BTreeSet<String>,
    error: Option<Status>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.to_string(),
        resource_names: names.iter().cloned().collect(),
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        error_detail: error,
        ..Default::default()
    }
}

pub(super) fn node(s: &Settings) -> Node {
    Node {
        id: s.node_id.clone(),
        cluster: s.node_cluster.clone(),
        metadata: Some(to_struct(&s.metadata)),
        user_agent_name: "weft-proxy".into(),
        ..Default::default()
    }
}

fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

fn to_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(to_struct(o)),
    };
    Value { kind: Some(kind) }
}
