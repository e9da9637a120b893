//! The config dump of resources accepted through the store: Envoy's shape, versions, the
//! bootstrap, redaction, `include_eds`, `resource=` and `mask=`.

use super::*;
use crate::stats::Stats;
use crate::xds::store::Store;
use crate::xds::{CDS, EDS, SDS};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::{
    config_source::ConfigSourceSpecifier, data_source::Specifier, transport_socket::ConfigType,
    AggregatedConfigSource, ConfigSource, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, CommonTlsContext, SdsSecretConfig, TlsCertificate, UpstreamTlsContext,
};

const BOOTSTRAP: &str = r#"
node: {id: "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local", cluster: sleep.default,
       metadata: {NAMESPACE: default}}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 15000}}}
dynamic_resources:
  ads_config: {api_type: GRPC, transport_api_version: V3,
               grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]}
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15010}}}}]}]
"#;

fn boot() -> Static {
    let b: crate::bootstrap::Bootstrap = serde_yaml::from_str(BOOTSTRAP).unwrap();
    let settings = Settings {
        bootstrap: serde_yaml::from_str(BOOTSTRAP).unwrap(),
        ..b.settings().unwrap()
    };
    Static {
        settings: Arc::new(settings),
        started: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
    }
}

const CLUSTER: &str = "outbound|9080||ratings.default.svc.cluster.local";
const SECRET: &str = "kubernetes://ratings-cred";

/// An EDS cluster whose upstream TLS names an SDS secret, so EDS and SDS stay referenced.
fn cluster() -> Cluster {
    let ads = ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    };
    let tls = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                name: SECRET.into(),
                sds_config: Some(ads.clone()),
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    Cluster {
        name: CLUSTER.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads),
            service_name: CLUSTER.into(),
        }),
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(ConfigType::TypedConfig(any(&tls))),
        }),
        ..Default::default()
    }
}

fn secret() -> Secret {
    let pem = |t: &str| DataSource {
        specifier: Some(Specifier::InlineString(t.into())),
        ..Default::default()
    };
    Secret {
        name: SECRET.into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(pem("CHAIN PEM")),
            private_key: Some(pem("VERY SECRET KEY")),
            ..Default::default()
        })),
    }
}

fn snapshot() -> Snapshot {
    let mut store = Store::default();
    store.apply(CDS, "cds-1", &[any(&cluster())]).unwrap();
    let cla = ClusterLoadAssignment {
        cluster_name: CLUSTER.into(),
        ..Default::default()
    };
    store.apply(EDS, "eds-1", &[any(&cla)]).unwrap();
    store.apply(SDS, "sds-1", &[any(&secret())]).unwrap();
    // Resent unchanged under a new version: the cluster keeps the version it came with.
    store.apply(CDS, "cds-2", &[any(&cluster())]).unwrap();
    store.snapshot(&Snapshot::default(), &Stats::default())
}

fn types(dump: &Value) -> Vec<&str> {
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["@type"].as_str().unwrap().rsplit('.').next().unwrap())
        .collect()
}

#[test]
fn dump_has_envoys_shape_order_and_versions() {
    let dump = render(&snapshot(), &boot(), &Query::default()).unwrap();
    assert_eq!(
        types(&dump),
        [
            "BootstrapConfigDump",
            "ClustersConfigDump",
            "ListenersConfigDump",
            "RoutesConfigDump",
            "SecretsConfigDump"
        ]
    );
    let boot = &dump["configs"][0];
    assert_eq!(
        boot["bootstrap"]["node"]["id"],
        "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local"
    );
    assert_eq!(boot["bootstrap"]["node"]["user_agent_name"], "weft-proxy");
    // Durations print as Envoy prints them.
    assert_eq!(
        boot["bootstrap"]["static_resources"]["clusters"][0]["connect_timeout"],
        "1s"
    );
    assert_eq!(boot["last_updated"], "2023-11-14T22:13:20Z");

    let clusters = &dump["configs"][1];
    assert_eq!(clusters["version_info"], "cds-2");
    assert_eq!(
        clusters["static_clusters"][0]["cluster"]["name"],
        "xds-grpc"
    );
    assert_eq!(
        clusters["static_clusters"][0]["cluster"]["@type"],
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    );
    let active = &clusters["dynamic_active_clusters"][0];
    assert_eq!(active["version_info"], "cds-1");
    assert_eq!(active["cluster"]["name"], CLUSTER);
    assert_eq!(active["cluster"]["type"], "EDS");
    assert!(active["last_updated"].as_str().unwrap().ends_with('Z'));
    // Nested Anys print with their @type.
    assert_eq!(
        active["cluster"]["transport_socket"]["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    assert_eq!(dump["configs"][2]["dynamic_listeners"], Value::Null);
}

#[test]
fn private_keys_are_redacted_and_the_rest_of_the_secret_stays() {
    let dump = render(&snapshot(), &boot(), &Query::default()).unwrap();
    let secrets = &dump["configs"][4];
    let active = &secrets["dynamic_active_secrets"][0];
    assert_eq!(active["name"], SECRET);
    assert_eq!(active["version_info"], "sds-1");
    let cert = &active["secret"]["tls_certificate"];
    assert_eq!(cert["private_key"]["inline_string"], REDACTED);
    assert_eq!(cert["certificate_chain"]["inline_string"], "CHAIN PEM");
    assert!(!dump.to_string().contains("VERY SECRET KEY"));
}

#[test]
fn include_eds_adds_the_endpoints_dump_after_the_clusters() {
    let q = Query {
        include_eds: true,
        ..Default::default()
    };
    let dump = render(&snapshot(), &boot(), &q).unwrap();
    assert_eq!(types(&dump)[2], "EndpointsConfigDump");
    let eds = &dump["configs"][2]["dynamic_endpoint_configs"][0];
    assert_eq!(eds["version_info"], "eds-1");
    assert_eq!(eds["endpoint_config"]["cluster_name"], CLUSTER);
}

#[test]
fn resource_lists_one_field_and_mask_trims_it() {
    let q = Query {
        resource: Some("dynamic_active_clusters".into()),
        mask: Some("cluster.name,version_info".into()),
        ..Default::default()
    };
    let dump = render(&snapshot(), &boot(), &q).unwrap();
    assert_eq!(
        dump,
        json!({"configs": [{
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster",
            "version_info": "cds-1",
            "cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                        "name": CLUSTER},
        }]})
    );
    let q = Query {
        resource: Some("no_such_field".into()),
        ..Default::default()
    };
    assert_eq!(
        render(&snapshot(), &boot(), &q),
        Err(DumpError::UnknownResource("no_such_field".into()))
    );
}

#[test]
fn the_workload_certificate_is_listed_first_as_default_with_its_key_redacted() {
    use base64::Engine;
    let ca = crate::identity::test_ca::TestCa::new("mesh");
    let identity = ca.identity("default", "reviews");
    let issued = identity.current().unwrap();
    let snapshot = Snapshot {
        identity: Some(identity.clone()),
        ..snapshot()
    };
    let dump = render(&snapshot, &boot(), &Query::default()).unwrap();
    let active = &dump["configs"][4]["dynamic_active_secrets"];
    let names: Vec<&str> = active
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", SECRET]);
    let default = &active[0];
    assert_eq!(default["version_info"], issued.serial.as_str());
    assert!(default["last_updated"].as_str().is_some());
    let cert = &default["secret"]["tls_certificate"];
    let b64 = base64::engine::general_purpose::STANDARD;
    let chain = b64
        .decode(cert["certificate_chain"]["inline_bytes"].as_str().unwrap())
        .unwrap();
    let chain = String::from_utf8(chain).unwrap();
    let leaf = crate::http::xfcc::certificate_pem(&issued.key.cert[0]);
    assert!(chain.starts_with(&leaf), "{chain}");
    let key = b64
        .decode(cert["private_key"]["inline_bytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(key, REDACTED.as_bytes());
    // Without descriptors the names-only dump lists it too.
    let names_only = names_only(&snapshot, false);
    assert_eq!(
        names_only["configs"][3]["dynamic_active_secrets"][0]["name"],
        "default"
    );
}
