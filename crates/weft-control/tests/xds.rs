//! State-of-the-world ADS against the in-process server: initial fetch, ACK/NACK, push on
//! change of only the changed types, named EDS/RDS responses, debug API and metrics.

mod xds_support;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use std::time::Duration;
use weft_config::Kind;
use xds_support::*;

const ID: &str = "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local";

fn request(type_url: &str, names: &[&str], last: Option<&DiscoveryResponse>) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: last.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: last.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..DiscoveryRequest::default()
    }
}

fn cluster_names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| Cluster::decode(&any.value[..]).unwrap().name)
        .collect()
}

#[tokio::test]
async fn sotw_initial_fetch_ack_nack_and_push_on_change() {
    let h = Harness::start(Duration::from_secs(10)).await;
    h.put_service_entry("a", 80).await;
    // Let the pipeline publish the entry before the proxy connects.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (tx, rx) = requests();
    let mut first = request(CDS, &[], None);
    first.node = Some(node(ID, &[]));
    tx.send(first).await.unwrap();
    let mut inbound = h
        .client()
        .await
        .stream_aggregated_resources(rx)
        .await
        .unwrap()
        .into_inner();

    let cds = next(&mut inbound).await;
    assert_eq!(cds.type_url, CDS);
    assert_eq!(cluster_names(&cds), ["a"]);
    assert!(!cds.nonce.is_empty() && !cds.version_info.is_empty());
    assert_eq!(
        h.sync(ID, "cds").await["status"],
        "STALE",
        "sent, not yet ACKed"
    );
    assert_eq!(h.sync(ID, "lds").await["status"], "NOT SENT");

    // ACK CDS, then ask for LDS and for the endpoints CDS named.
    tx.send(request(CDS, &[], Some(&cds))).await.unwrap();
    tx.send(request(LDS, &[], None)).await.unwrap();
    let lds = next(&mut inbound).await;
    assert_eq!(lds.type_url, LDS);
    assert_eq!(lds.resources.len(), 1);
    tx.send(request(LDS, &[], Some(&lds))).await.unwrap();
    tx.send(request(EDS, &["a", "missing"], None))
        .await
        .unwrap();
    let eds = next(&mut inbound).await;
    assert_eq!(eds.type_url, EDS);
    assert_eq!(
        eds.resources.len(),
        1,
        "exactly the requested names that exist"
    );
    tx.send(request(EDS, &["a", "missing"], Some(&eds)))
        .await
        .unwrap();

    let cds_sync = h.wait_sync(ID, "cds", |s| s["status"] == "SYNCED").await;
    assert_eq!(cds_sync["status"], "SYNCED");
    assert_eq!(cds_sync["acked"], cds.version_info);
    assert_eq!(
        h.wait_sync(ID, "eds", |s| s["status"] == "SYNCED").await["status"],
        "SYNCED"
    );
    assert_eq!(h.sync(ID, "rds").await["status"], "NOT SENT");
    quiet(&mut inbound).await;

    // A new ServiceEntry changes CDS only: the endpoints Envoy asked for did not change,
    // nor did the listener.
    h.put_service_entry("b", 80).await;
    let cds2 = next(&mut inbound).await;
    assert_eq!(cds2.type_url, CDS);
    assert_eq!(cluster_names(&cds2), ["a", "b"]);
    assert_ne!(cds2.version_info, cds.version_info);
    assert_ne!(cds2.nonce, cds.nonce);
    quiet(&mut inbound).await;

    // Envoy rejects it: STALE with the reason, the last ACKed version stays.
    let mut nack = request(CDS, &[], Some(&cds2));
    nack.version_info = cds.version_info.clone();
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "cluster b: bad circuit breaker".into(),
        ..RpcStatus::default()
    });
    tx.send(nack).await.unwrap();
    let stale = h.wait_sync(ID, "cds", |s| !s["nack"].is_null()).await;
    assert_eq!(stale["status"], "STALE");
    assert_eq!(stale["nack"], "cluster b: bad circuit breaker");
    assert_eq!(stale["acked"], cds.version_info);
    assert_eq!(stale["sent"], cds2.version_info);
    let metrics = h.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("pilot_total_xds_rejects{type=\"cds\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pilot_xds 1"), "{metrics}");
    assert!(
        metrics.contains("pilot_xds_pushes{type=\"cds\"} 2"),
        "{metrics}"
    );

    // Envoy asks for b's endpoints alongside the EDS ACK: answered with both.
    tx.send(request(EDS, &["a", "b"], Some(&eds)))
        .await
        .unwrap();
    let eds2 = next(&mut inbound).await;
    assert_eq!(eds2.type_url, EDS);
    assert_eq!(eds2.resources.len(), 2);

    // Editing a cluster pushes CDS and then its endpoints again (cluster warming).
    tx.send(request(EDS, &["a", "b"], Some(&eds2)))
        .await
        .unwrap();
    h.put_service_entry("a", 8080).await;
    let cds3 = next(&mut inbound).await;
    assert_eq!(cds3.type_url, CDS);
    let eds3 = next(&mut inbound).await;
    assert_eq!(eds3.type_url, EDS);
    // Only what changed: b's assignment is the same, and the proxy keeps what it holds.
    let sent: Vec<String> = eds3
        .resources
        .iter()
        .map(|any| {
            ClusterLoadAssignment::decode(&any.value[..])
                .unwrap()
                .cluster_name
        })
        .collect();
    assert_eq!(sent, ["a"]);

    // The config dump shows what was sent, shaped like Envoy's.
    let dump: serde_json::Value = h
        .get(&format!("/debug/config_dump?proxy={}", urlencode(ID)))
        .await
        .json()
        .await
        .unwrap();
    let clusters = &dump["configs"][0];
    assert_eq!(
        clusters["@type"],
        "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
    );
    let names: Vec<_> = clusters["dynamic_active_clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        clusters["dynamic_active_clusters"][0]["cluster"]["per_connection_buffer_limit_bytes"],
        8080
    );
    assert_eq!(h.get("/debug/config_dump?proxy=nobody").await.status(), 404);

    // Deleting everything empties CDS; the listener goes too.
    h.delete(Kind::ServiceEntry, "a").await;
    h.delete(Kind::ServiceEntry, "b").await;
    let cds4 = next(&mut inbound).await;
    assert_eq!(cds4.type_url, CDS);
    assert!(cds4.resources.is_empty());

    drop(tx);
    drop(inbound);
    for _ in 0..50 {
        if h.proxies().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        h.proxies().await.is_empty(),
        "a closed stream leaves /debug/proxies"
    );
}

#[tokio::test]
async fn sds_serves_named_secrets_pushes_changes_and_dumps_them_redacted() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    let h = Harness::start(Duration::from_secs(10)).await;
    h.put_service_entry("a", 80).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx, rx) = requests();
    let mut first = request(SDS, &["kubernetes://a", "kubernetes://missing"], None);
    first.node = Some(node(ID, &[]));
    tx.send(first).await.unwrap();
    let mut inbound = h
        .client()
        .await
        .stream_aggregated_resources(rx)
        .await
        .unwrap()
        .into_inner();
    let sds = next(&mut inbound).await;
    assert_eq!(sds.type_url, SDS);
    let names: Vec<String> = sds
        .resources
        .iter()
        .map(|any| Secret::decode(&any.value[..]).unwrap().name)
        .collect();
    assert_eq!(names, ["kubernetes://a"], "only what exists is sent");
    assert_eq!(h.sync(ID, "sds").await["status"], "STALE");
    tx.send(request(
        SDS,
        &["kubernetes://a", "kubernetes://missing"],
        Some(&sds),
    ))
    .await
    .unwrap();
    h.wait_sync(ID, "sds", |s| s["status"] == "SYNCED").await;
    // The other types keep their keys.
    let proxy = h.proxies().await.remove(0);
    for key in ["cds", "eds", "lds", "rds", "sds"] {
        assert!(proxy["xds"][key]["status"].is_string(), "{key}: {proxy}");
    }

    // The stored secret changes: pushed again.
    h.put_service_entry("a", 8443).await;
    let sds2 = next(&mut inbound).await;
    assert_eq!(sds2.type_url, SDS);
    assert_ne!(sds2.version_info, sds.version_info);

    let dump: serde_json::Value = h
        .get(&format!("/debug/config_dump?proxy={}", urlencode(ID)))
        .await
        .json()
        .await
        .unwrap();
    let secrets = &dump["configs"][4];
    assert_eq!(
        secrets["@type"],
        "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
    );
    let active = &secrets["dynamic_active_secrets"][0];
    assert_eq!(active["name"], "kubernetes://a");
    assert_eq!(
        active["secret"]["tls_certificate"]["certificate_chain"]["inline_string"],
        "CERT a"
    );
    assert_eq!(
        active["secret"]["tls_certificate"]["private_key"],
        "[redacted]"
    );
    assert!(!dump.to_string().contains("PRIVATE KEY"), "{dump}");
}

/// Envoy drops its EDS watch with its last EDS cluster: a request with no names, carrying
/// the nonce it last saw. weftd sends no EDS response for the removed cluster, and EDS
/// must not be left pending.
#[tokio::test]
async fn unsubscribing_from_every_endpoint_leaves_nothing_pending() {
    let h = Harness::start(Duration::from_secs(10)).await;
    h.put_service_entry("a", 80).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx, rx) = requests();
    let mut first = request(CDS, &[], None);
    first.node = Some(node(ID, &[]));
    tx.send(first).await.unwrap();
    let mut inbound = h
        .client()
        .await
        .stream_aggregated_resources(rx)
        .await
        .unwrap()
        .into_inner();
    let cds = next(&mut inbound).await;
    tx.send(request(EDS, &["a"], None)).await.unwrap();
    let eds = next(&mut inbound).await;
    assert_eq!(eds.resources.len(), 1);
    tx.send(request(CDS, &[], Some(&cds))).await.unwrap();
    tx.send(request(EDS, &["a"], Some(&eds))).await.unwrap();
    h.wait_sync(ID, "eds", |s| s["status"] == "SYNCED").await;

    h.delete(Kind::ServiceEntry, "a").await;
    let cds2 = next(&mut inbound).await;
    assert_eq!(cds2.type_url, CDS);
    // No EDS response: a's assignment is gone, and a state-of-the-world EDS response
    // carries only what changed; the proxy drops a's endpoints with the cluster.
    quiet(&mut inbound).await;
    // Envoy ACKs CDS, then unsubscribes from EDS with the nonce of its last EDS response.
    tx.send(request(CDS, &[], Some(&cds2))).await.unwrap();
    tx.send(request(EDS, &[], Some(&eds))).await.unwrap();
    let eds_status = h.wait_sync(ID, "eds", |s| s["status"] == "SYNCED").await;
    assert!(eds_status["nack"].is_null());
    quiet(&mut inbound).await;
    let dump: serde_json::Value = h
        .get(&format!("/debug/config_dump?proxy={}", urlencode(ID)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        dump["configs"][1]["dynamic_endpoint_configs"]
            .as_array()
            .map_or(0, Vec::len),
        0
    );

    // A new endpoint watch later is answered as usual.
    h.put_service_entry("b", 80).await;
    let cds3 = next(&mut inbound).await;
    assert_eq!(cds3.type_url, CDS);
    quiet(&mut inbound).await;
    tx.send(request(EDS, &["b"], Some(&eds))).await.unwrap();
    let eds3 = next(&mut inbound).await;
    assert_eq!(eds3.type_url, EDS);
    assert_eq!(eds3.resources.len(), 1);
}

fn urlencode(s: &str) -> String {
    s.replace('|', "%7C").replace('~', "%7E")
}

#[tokio::test]
async fn malformed_node_is_refused_with_the_reason() {
    let h = Harness::start(Duration::from_secs(10)).await;
    let (tx, rx) = requests();
    let mut first = request(CDS, &[], None);
    first.node = Some(node("envoy-1", &[]));
    tx.send(first).await.unwrap();
    let status = match h.client().await.stream_aggregated_resources(rx).await {
        Err(status) => status,
        Ok(response) => response
            .into_inner()
            .message()
            .await
            .expect_err("the stream is refused"),
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("envoy-1"), "{}", status.message());
    assert!(
        status.message().contains("<type>~<ip>"),
        "{}",
        status.message()
    );
    assert!(h.proxies().await.is_empty());
}

#[tokio::test]
async fn debug_config_dump_needs_a_proxy() {
    let h = Harness::start(Duration::from_secs(10)).await;
    assert_eq!(h.get("/debug/config_dump").await.status(), 400);
    let metrics = h.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("# TYPE pilot_xds gauge"), "{metrics}");
    assert!(
        metrics.contains("pilot_proxy_convergence_time"),
        "{metrics}"
    );
}
