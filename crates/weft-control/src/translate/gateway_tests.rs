//! Gateway servers with `credentialName`: served with the Secret's certificate, or left out.

use super::*;
use crate::model::ProxyKind;
use envoy_types::pb::envoy::config::core::v3::transport_socket;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use prost::Message;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nbookinfo\n-----END CERTIFICATE-----\n";

const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cred}
  - port: {number: 443, name: https-shop, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cred}
---
"#;

fn secret(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {CERT:?}\n  tls.key: key\n---\n"
    )
}

fn router() -> Proxy {
    Proxy {
        kind: ProxyKind::Router,
        namespace: "istio-system".into(),
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
        ..Default::default()
    }
}

fn listeners_for(docs: &str) -> Vec<Listener> {
    let resources = weft_config::parse_documents(docs)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    listeners(&MeshSnapshot::build(1, resources), &router())
}

fn served_names(l: &Listener) -> Vec<Vec<String>> {
    l.filter_chains
        .iter()
        .map(|c| {
            c.filter_chain_match
                .clone()
                .unwrap_or_default()
                .server_names
        })
        .collect()
}

#[test]
fn credential_name_references_the_secret_over_sds() {
    let ls = listeners_for(&format!(
        "{GATEWAY}{}{}",
        secret("istio-system", "bookinfo-cred"),
        secret("istio-system", "shop-cred")
    ));
    assert_eq!(ls.len(), 1);
    assert_eq!(
        served_names(&ls[0]),
        [["bookinfo.example.com"], ["shop.example.com"]]
    );
    let socket = ls[0].filter_chains[0].transport_socket.clone().unwrap();
    let Some(transport_socket::ConfigType::TypedConfig(any)) = socket.config_type else {
        panic!("no typed config");
    };
    let ctx = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
    let common = ctx.common_tls_context.unwrap();
    // Referenced over SDS: the key never sits in the listener.
    assert!(common.tls_certificates.is_empty());
    let names: Vec<String> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["kubernetes://bookinfo-cred"]);
    assert!(!any.value.windows(CERT.len()).any(|w| w == CERT.as_bytes()));
}

#[test]
fn a_server_whose_secret_is_missing_is_left_out() {
    // shop-cred is absent, and bookinfo-cred exists only in another namespace at first.
    let ls = listeners_for(&format!("{GATEWAY}{}", secret("default", "bookinfo-cred")));
    assert!(ls.is_empty(), "{ls:?}");
    let ls = listeners_for(&format!(
        "{GATEWAY}{}",
        secret("istio-system", "bookinfo-cred")
    ));
    assert_eq!(served_names(&ls[0]), [["bookinfo.example.com"]]);
}
