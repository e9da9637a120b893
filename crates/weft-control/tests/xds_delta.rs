//! Incremental ADS and WorkloadGroup auto-registration against the in-process server.

mod xds_support;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use serde_json::json;
use std::time::Duration;
use weft_config::Kind;
use weft_control::store::ObjectKey;
use xds_support::*;

const ID: &str = "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local";

fn ack(type_url: &str, response: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        response_nonce: response.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn delta_sends_changes_and_removals_only() {
    let h = Harness::start(Duration::from_secs(10)).await;
    h.put_service_entry("a", 80).await;
    h.put_service_entry("b", 80).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A reconnecting proxy: it already has "a" at some version and a cluster that is gone.
    let (tx, rx) = requests();
    tx.send(DeltaDiscoveryRequest {
        node: Some(node(ID, &[])),
        type_url: CDS.into(),
        initial_resource_versions: [("gone".to_string(), "x".to_string())].into(),
        ..DeltaDiscoveryRequest::default()
    })
    .await
    .unwrap();
    let mut inbound = h
        .client()
        .await
        .delta_aggregated_resources(rx)
        .await
        .unwrap()
        .into_inner();
    let cds = next(&mut inbound).await;
    assert_eq!(cds.type_url, CDS);
    assert_eq!(names(&cds), ["a", "b"]);
    assert_eq!(cds.removed_resources, ["gone"]);
    assert!(cds.resources.iter().all(|r| !r.version.is_empty()));
    tx.send(ack(CDS, &cds)).await.unwrap();

    // Endpoints by name.
    tx.send(DeltaDiscoveryRequest {
        type_url: EDS.into(),
        resource_names_subscribe: vec!["a".into()],
        ..DeltaDiscoveryRequest::default()
    })
    .await
    .unwrap();
    let eds = next(&mut inbound).await;
    assert_eq!(names(&eds), ["a"]);
    tx.send(ack(EDS, &eds)).await.unwrap();
    assert_eq!(
        h.wait_sync(ID, "cds", |s| s["status"] == "SYNCED").await["status"],
        "SYNCED"
    );
    assert_eq!(h.proxies().await[0]["mode"], "delta");
    quiet(&mut inbound).await;

    // Editing b sends b alone; deleting a names a as removed (CDS, then its EDS).
    h.put_service_entry("b", 9090).await;
    let changed = next(&mut inbound).await;
    assert_eq!(changed.type_url, CDS);
    assert_eq!(names(&changed), ["b"]);
    assert!(changed.removed_resources.is_empty());
    tx.send(ack(CDS, &changed)).await.unwrap();
    quiet(&mut inbound).await;

    h.delete(Kind::ServiceEntry, "a").await;
    let removed = next(&mut inbound).await;
    assert_eq!(removed.type_url, CDS);
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, ["a"]);
    let removed_eds = next(&mut inbound).await;
    assert_eq!(removed_eds.type_url, EDS);
    assert_eq!(removed_eds.removed_resources, ["a"]);

    // Unsubscribing then resubscribing sends the resource again.
    tx.send(DeltaDiscoveryRequest {
        type_url: EDS.into(),
        resource_names_subscribe: vec!["b".into()],
        response_nonce: removed_eds.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    })
    .await
    .unwrap();
    let eds_b = next(&mut inbound).await;
    assert_eq!(names(&eds_b), ["b"]);
}

#[tokio::test]
async fn auto_registration_creates_and_removes_the_workload_entry() {
    let grace = Duration::from_millis(600);
    let h = Harness::start(grace).await;
    h.store
        .put(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
                   "metadata": {"name": "reviews", "namespace": "default"},
                   "spec": {"metadata": {"labels": {"app": "reviews", "tier": "backend"}},
                            "template": {"ports": {"http": 9080}, "serviceAccount": "bookinfo-reviews",
                                         "network": "vm-net", "weight": 2}}}),
            None,
        )
        .await
        .unwrap();
    let key = ObjectKey::new(Kind::WorkloadEntry, "default", "reviews-127-0-0-9");
    let id = "sidecar~127.0.0.9~reviews-v1.default~default.svc.cluster.local";
    let connect = || async {
        let (tx, rx) = requests();
        tx.send(DeltaDiscoveryRequest {
            node: Some(node(
                id,
                &[
                    ("AUTO_REGISTER_GROUP", "reviews"),
                    ("INSTANCE_IPS", "127.0.0.9"),
                ],
            )),
            type_url: CDS.into(),
            ..DeltaDiscoveryRequest::default()
        })
        .await
        .unwrap();
        let mut inbound = h
            .client()
            .await
            .delta_aggregated_resources(rx)
            .await
            .unwrap()
            .into_inner();
        next(&mut inbound).await;
        (tx, inbound)
    };

    let (tx, inbound) = connect().await;
    let entry = h
        .store
        .get(key.clone())
        .await
        .unwrap()
        .expect("entry registered");
    assert_eq!(entry["spec"]["address"], "127.0.0.9");
    assert_eq!(entry["spec"]["ports"]["http"], 9080);
    assert_eq!(entry["spec"]["serviceAccount"], "bookinfo-reviews");
    assert_eq!(entry["spec"]["network"], "vm-net");
    assert_eq!(entry["spec"]["weight"], 2);
    assert_eq!(entry["spec"]["labels"]["tier"], "backend");
    assert_eq!(entry["spec"]["labels"]["app"], "reviews");
    assert_eq!(
        entry["metadata"]["annotations"]["istio.io/autoRegistrationGroup"],
        "reviews"
    );
    assert_eq!(entry["metadata"]["annotations"]["weft.io/proxy"], id);
    assert_eq!(h.proxies().await[0]["workloadGroup"], "reviews");

    // The agent reports its probe failing, then passing: the entry's Healthy condition.
    let health = |error: Option<&str>| DeltaDiscoveryRequest {
        type_url: "istio.io/health".into(),
        error_detail: error.map(|m| envoy_types::pb::google::rpc::Status {
            code: 14,
            message: m.into(),
            ..Default::default()
        }),
        ..DeltaDiscoveryRequest::default()
    };
    let condition = |want: &'static str| {
        let key = key.clone();
        let store = h.store.clone();
        async move {
            for _ in 0..100 {
                let entry = store.get(key.clone()).await.unwrap().unwrap();
                let c = entry["status"]["conditions"][0].clone();
                if c["status"] == want {
                    return c;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("Healthy never became {want}");
        }
    };
    tx.send(health(Some("connection refused on 9080")))
        .await
        .unwrap();
    let c = condition("False").await;
    assert_eq!(c["type"], "Healthy");
    assert_eq!(c["message"], "connection refused on 9080");
    tx.send(health(None)).await.unwrap();
    condition("True").await;

    // Disconnect and come back within the grace: the entry stays.
    drop((tx, inbound));
    tokio::time::sleep(grace / 3).await;
    let (tx, inbound) = connect().await;
    tokio::time::sleep(grace * 2).await;
    assert!(
        h.store.get(key.clone()).await.unwrap().is_some(),
        "a reconnect keeps the entry"
    );

    // Gone for longer than the grace: the entry is deleted.
    drop((tx, inbound));
    tokio::time::sleep(grace / 2).await;
    assert!(
        h.store.get(key.clone()).await.unwrap().is_some(),
        "kept during the grace"
    );
    tokio::time::sleep(grace * 2).await;
    assert!(
        h.store.get(key).await.unwrap().is_none(),
        "removed after the grace"
    );
}

#[tokio::test]
async fn auto_registration_to_a_missing_group_is_refused() {
    let h = Harness::start(Duration::from_secs(1)).await;
    let (tx, rx) = requests();
    tx.send(DeltaDiscoveryRequest {
        node: Some(node(ID, &[("AUTO_REGISTER_GROUP", "nope")])),
        type_url: CDS.into(),
        ..DeltaDiscoveryRequest::default()
    })
    .await
    .unwrap();
    let status = match h.client().await.delta_aggregated_resources(rx).await {
        Err(status) => status,
        Ok(r) => r.into_inner().message().await.expect_err("refused"),
    };
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("WorkloadGroup default/nope"),
        "{}",
        status.message()
    );
}
