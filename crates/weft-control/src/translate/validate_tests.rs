//! Real Envoy (`envoy --mode validate`) accepts every generated listener and cluster, and
//! every endpoint assignment, rendered into a static bootstrap (binary proto, `.pb`).

use super::tests::{gateway_proxy, mesh, sidecar};
use super::*;
use envoy_types::pb::envoy::config::bootstrap::v3::{bootstrap, Bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{
    api_config_source::ApiType, grpc_service, ApiConfigSource, ApiVersion, GrpcService, Node,
};
use prost::Message;
use std::path::Path;
use std::process::Command;

/// EDS clusters become STATIC with their assignment inline, so Envoy validates the
/// endpoints too; listeners keep asking for routes over ADS from an `xds-grpc` cluster.
fn bootstrap(generated: &Generated) -> Bootstrap {
    let mut clusters = generated.clusters.clone();
    for c in &mut clusters {
        if let Some(cla) = generated
            .endpoints
            .iter()
            .find(|e| e.cluster_name == c.name)
        {
            c.eds_cluster_config = None;
            c.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
            c.load_assignment = Some(cla.clone());
        }
    }
    let mut xds = cluster::inbound(0, 15010);
    xds.name = "xds-grpc".into();
    xds.load_assignment.as_mut().unwrap().cluster_name = "xds-grpc".into();
    xds.typed_extension_protocol_options.insert(
        cluster_policy::HTTP_PROTOCOL_OPTIONS.into(),
        proto::any(
            cluster_policy::HTTP_PROTOCOL_OPTIONS,
            &envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions {
                upstream_protocol_options: Some(envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(Default::default())),
                    },
                )),
                ..Default::default()
            },
        ),
    );
    clusters.push(xds);
    Bootstrap {
        node: Some(Node {
            id: "validate".into(),
            cluster: "validate".into(),
            ..Default::default()
        }),
        static_resources: Some(bootstrap::StaticResources {
            listeners: generated.listeners.clone(),
            clusters,
            ..Default::default()
        }),
        dynamic_resources: Some(bootstrap::DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: "xds-grpc".into(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn validate(dir: &Path, name: &str, generated: &Generated) {
    let Some(envoy) = weft_testkit::envoy::find() else {
        return;
    };
    let path = dir.join(format!("{name}.pb"));
    std::fs::write(&path, bootstrap(generated).encode_to_vec()).unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&path)
        .output()
        .expect("envoy runs");
    assert!(
        out.status.success(),
        "envoy rejected the {name} config:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn envoy_accepts_generated_resources() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=bookinfo.example.com",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(status.status.success());
    let snapshot = mesh(cert.to_str().unwrap(), key.to_str().unwrap());
    let side = generate(&snapshot, &sidecar());
    assert!(!side.endpoints.is_empty() && side.listeners.len() == 3);
    validate(dir.path(), "sidecar", &side);
    let gw = generate(&snapshot, &gateway_proxy());
    assert_eq!(gw.listeners.len(), 3);
    validate(dir.path(), "gateway", &gw);
}

#[test]
fn envoy_accepts_transparent_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let side = generate(&capture_tests::bookinfo(), &capture_tests::reviews());
    assert!(side
        .listeners
        .iter()
        .any(|l| l.name == names::VIRTUAL_INBOUND));
    validate(dir.path(), "transparent", &side);
}
