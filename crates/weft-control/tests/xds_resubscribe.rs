//! State-of-the-world ADS: a request that repeats the nonce and names of a response the
//! proxy already ACKed is answered. Envoy sends one when a new subscription starts on names
//! it already watches (a listener's SDS config for `default` that differs from its
//! clusters' one): that subscription holds nothing until a response comes, and a listener
//! waiting for it never serves TLS.

mod xds_support;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use prost::Message;
use std::time::Duration;
use xds_support::*;

const ID: &str = "sidecar~127.0.0.1~ratings-v1.default~default.svc.cluster.local";

fn sds_request(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: SDS.to_string(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: version.to_string(),
        response_nonce: nonce.to_string(),
        ..DiscoveryRequest::default()
    }
}

#[tokio::test]
async fn a_second_request_after_the_ack_gets_the_secrets_again() {
    let h = Harness::start(Duration::from_secs(10)).await;
    h.put_service_entry("a", 80).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx, rx) = requests();
    let mut first = sds_request(&["kubernetes://a"], "", "");
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
    assert_eq!(sds.resources.len(), 1);

    // The ACK: nothing more.
    let ack = sds_request(&["kubernetes://a"], &sds.version_info, &sds.nonce);
    tx.send(ack.clone()).await.unwrap();
    h.wait_sync(ID, "sds", |s| s["status"] == "SYNCED").await;
    quiet(&mut inbound).await;

    // A new subscription to the same name: the same request again, answered in full.
    tx.send(ack).await.unwrap();
    let again = next(&mut inbound).await;
    assert_eq!(again.type_url, SDS);
    assert_ne!(again.nonce, sds.nonce);
    let names: Vec<String> = again
        .resources
        .iter()
        .map(|any| Secret::decode(&any.value[..]).unwrap().name)
        .collect();
    assert_eq!(names, ["kubernetes://a"]);

    // Its ACK ends the exchange: no response loop.
    tx.send(sds_request(
        &["kubernetes://a"],
        &again.version_info,
        &again.nonce,
    ))
    .await
    .unwrap();
    quiet(&mut inbound).await;
    h.wait_sync(ID, "sds", |s| s["status"] == "SYNCED").await;
}
