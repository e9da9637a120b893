//! weftd's AuthorizationPolicy translation decides like Istio's. Istio's builder corpus
//! (../shared/istio-testdata/pilot/pkg/security/authz/builder/testdata) pairs policies with
//! the RBAC filters Istio generates for them. For each pair, weftd's translation of the
//! policies and Istio's expected filters are both loaded into weft-proxy's RBAC engine and
//! asked about the same few thousand generated requests (principals, namespaces, IPs,
//! methods, paths, hosts, ports, headers, SNI, JWT claims in dynamic metadata): every
//! decision, enforced and shadow (dry-run), must be the same. Bytes are never compared.

use envoy_types::pb::google::protobuf::Any;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use weft_control::translate::authz::{self, PolicyRef, TrustDomains};
use weft_proxy::rbac::convert::{http_filter, network_filter};
use weft_proxy::rbac::{RbacFilter, RequestAttrs, Subject};

/// One test of Istio's builder_test.go: input, expected filters, trust domain bundle.
struct Case {
    input: &'static str,
    outputs: &'static [&'static str],
    /// (trust domain, aliases); none: no alias migration.
    tds: Option<(&'static str, &'static [&'static str])>,
    tcp: bool,
}

const fn http(input: &'static str, outputs: &'static [&'static str]) -> Case {
    Case {
        input,
        outputs,
        tds: None,
        tcp: false,
    }
}

const fn tcp(input: &'static str, outputs: &'static [&'static str]) -> Case {
    Case {
        input,
        outputs,
        tds: None,
        tcp: true,
    }
}

const fn aliased(
    input: &'static str,
    outputs: &'static [&'static str],
    td: &'static str,
    aliases: &'static [&'static str],
) -> Case {
    Case {
        input,
        outputs,
        tds: Some((td, aliases)),
        tcp: false,
    }
}

/// Every non-CUSTOM case (CUSTOM needs ext_authz, which weftd does not configure).
const CASES: &[Case] = &[
    http("allow-empty-rule-in.yaml", &["allow-empty-rule-out.yaml"]),
    http("allow-full-rule-in.yaml", &["allow-full-rule-out.yaml"]),
    http("allow-nil-rule-in.yaml", &["allow-nil-rule-out.yaml"]),
    http("allow-path-in.yaml", &["allow-path-out.yaml"]),
    // Istio's output for proxies before 1.11 (hosts as case-insensitive regexes).
    http(
        "allow-host-before-111-in.yaml",
        &["allow-host-before-111-out.yaml"],
    ),
    http("audit-full-rule-in.yaml", &["audit-full-rule-out.yaml"]),
    http(
        "deny-and-allow-in.yaml",
        &["deny-and-allow-out1.yaml", "deny-and-allow-out2.yaml"],
    ),
    http("deny-empty-rule-in.yaml", &["deny-empty-rule-out.yaml"]),
    http(
        "dry-run-allow-and-deny-in.yaml",
        &[
            "dry-run-allow-and-deny-out1.yaml",
            "dry-run-allow-and-deny-out2.yaml",
        ],
    ),
    http("dry-run-allow-in.yaml", &["dry-run-allow-out.yaml"]),
    http("dry-run-mix-in.yaml", &["dry-run-mix-out.yaml"]),
    http("multiple-policies-in.yaml", &["multiple-policies-out.yaml"]),
    http("single-policy-in.yaml", &["single-policy-out.yaml"]),
    aliased(
        "simple-policy-td-aliases-in.yaml",
        &["simple-policy-td-aliases-out.yaml"],
        "td1",
        &["cluster.local"],
    ),
    aliased(
        "simple-policy-multiple-td-aliases-in.yaml",
        &["simple-policy-multiple-td-aliases-out.yaml"],
        "td1",
        &["cluster.local", "some-td"],
    ),
    aliased(
        "simple-policy-principal-with-wildcard-in.yaml",
        &["simple-policy-principal-with-wildcard-out.yaml"],
        "td1",
        &["foobar"],
    ),
    aliased(
        "td-aliases-source-principal-in.yaml",
        &["td-aliases-source-principal-out.yaml"],
        "new-td",
        &["old-td", "some-trustdomain"],
    ),
    tcp(
        "allow-both-http-tcp-in.yaml",
        &["allow-both-http-tcp-out.yaml"],
    ),
    tcp("allow-only-http-in.yaml", &["allow-only-http-out.yaml"]),
    tcp(
        "audit-both-http-tcp-in.yaml",
        &["audit-both-http-tcp-out.yaml"],
    ),
    tcp(
        "deny-both-http-tcp-in.yaml",
        &["deny-both-http-tcp-out.yaml"],
    ),
    tcp("dry-run-mix-in.yaml", &["dry-run-mix-out.yaml"]),
];

const REQUESTS_PER_CASE: usize = 4000;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/istio-testdata/pilot/pkg/security/authz/builder/testdata")
}

/// The descriptor set `envoy-types` ships in its sources, to read Istio's YAML protos.
fn pool() -> DescriptorPool {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let registry = cargo_home.join("registry/src");
    let found = std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("{}: {e}", registry.display()))
        .flatten()
        .map(|index| {
            index
                .path()
                .join("envoy-types-0.7.7/src/generated/types.bin")
        })
        .find(|p| p.is_file())
        .expect("envoy-types 0.7.7 sources are in the cargo registry");
    DescriptorPool::decode(std::fs::read(found).unwrap().as_slice()).unwrap()
}

fn yaml_to_json(text: &str) -> Value {
    let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    serde_json::to_value(v).unwrap()
}

/// An RBAC filter as Istio wrote it (`name` + `typedConfig` in proto JSON), converted by
/// weft-proxy like any xDS filter.
fn istio_filter(pool: &DescriptorPool, file: &str, tcp: bool) -> RbacFilter {
    let path = testdata().join(if tcp { "tcp" } else { "http" }).join(file);
    let doc = yaml_to_json(&std::fs::read_to_string(&path).unwrap());
    let mut config = doc["typedConfig"].clone();
    let type_url = config
        .as_object_mut()
        .and_then(|o| o.remove("@type"))
        .and_then(|t| t.as_str().map(str::to_string))
        .expect("typedConfig has @type");
    let name = type_url.rsplit('/').next().unwrap();
    let descriptor = pool.get_message_by_name(name).expect("known type");
    let message =
        DynamicMessage::deserialize(descriptor, config).unwrap_or_else(|e| panic!("{file}: {e}"));
    let any = Any {
        type_url,
        value: prost::Message::encode_to_vec(&message),
    };
    convert(&any, tcp).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn convert(any: &Any, tcp: bool) -> Result<RbacFilter, String> {
    if tcp {
        network_filter("", any).map_err(|e| e.to_string())
    } else {
        http_filter("", any).map_err(|e| e.to_string())
    }
}

/// weftd's filters for the policies of `input` as they apply to Istio's test workload
/// (namespace `foo`, labels app=httpbin, version=v1).
fn weft_filters(case: &Case) -> Vec<RbacFilter> {
    let dir = if case.tcp { "tcp" } else { "http" };
    let text = std::fs::read_to_string(testdata().join(dir).join(case.input)).unwrap();
    let resources: Vec<weft_config::Resource> = weft_config::parse_documents(&text)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", case.input)))
        .collect();
    let labels = BTreeMap::from([
        ("app".to_string(), "httpbin".to_string()),
        ("version".to_string(), "v1".to_string()),
    ]);
    let refs: Vec<PolicyRef<'_>> = resources
        .iter()
        .filter(|r| authz::applies(r, "foo", &labels, "istio-system"))
        .map(|r| PolicyRef {
            namespace: &r.metadata.namespace,
            name: &r.metadata.name,
            dry_run: r
                .metadata
                .annotations
                .get(authz::DRY_RUN_ANNOTATION)
                .is_some_and(|v| v == "true"),
            spec: match &r.spec {
                weft_config::Spec::AuthorizationPolicy(p) => p.as_ref(),
                _ => unreachable!("filtered"),
            },
        })
        .collect();
    let tds = match case.tds {
        Some((td, aliases)) => TrustDomains::new(
            td,
            &aliases.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ),
        None => TrustDomains::new("cluster.local", &[]),
    };
    let built = authz::build(&refs, &tds);
    let anys: Vec<Any> = if case.tcp {
        built
            .tcp
            .iter()
            .map(|f| match &f.config_type {
                Some(
                    envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(
                        a,
                    ),
                ) => a.clone(),
                _ => panic!("typed config"),
            })
            .collect()
    } else {
        built
            .http
            .iter()
            .map(|f| match &f.config_type {
                Some(envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType::TypedConfig(a)) => a.clone(),
                _ => panic!("typed config"),
            })
            .collect()
    };
    anys.iter()
        .map(|a| convert(a, case.tcp).unwrap_or_else(|e| panic!("{}: {e}", case.input)))
        .collect()
}

/// Values worth asking about, gathered from the policies themselves.
#[derive(Default)]
struct Pools {
    methods: Vec<String>,
    paths: Vec<String>,
    hosts: Vec<String>,
    ports: Vec<u16>,
    dest_ips: Vec<IpAddr>,
    src_ips: Vec<IpAddr>,
    remote_ips: Vec<IpAddr>,
    principals: Vec<String>,
    headers: BTreeMap<String, Vec<String>>,
    snis: Vec<String>,
    /// JWT payload claim path -> candidate values.
    claims: BTreeMap<Vec<String>, Vec<String>>,
    /// (filter, key) -> candidate values for `experimental.envoy.filters.*`.
    envoy_md: BTreeMap<(String, String), Vec<String>>,
}

/// Concrete values a (wildcard) pattern matches, and nearly matches.
fn expand(v: &str) -> Vec<String> {
    if v == "*" {
        vec!["any-value".into()]
    } else if let Some(rest) = v.strip_prefix('*') {
        vec![rest.into(), format!("zz{rest}"), format!("zz{rest}x")]
    } else if let Some(head) = v.strip_suffix('*') {
        vec![head.into(), format!("{head}zz"), format!("x{head}zz")]
    } else {
        vec![v.into(), format!("{v}x")]
    }
}

fn ip_of(v: &str) -> Option<IpAddr> {
    v.split('/').next()?.parse().ok()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Pools {
    fn from_input(text: &str, tds: &[&str]) -> Pools {
        let mut p = Pools {
            methods: vec!["GET".into(), "POST".into()],
            paths: vec!["/".into(), "/other?x=1".into()],
            hosts: vec!["other.com".into()],
            ports: vec![80, 8080, 9999],
            dest_ips: vec!["10.0.0.1".parse().unwrap()],
            src_ips: vec!["127.0.0.1".parse().unwrap()],
            remote_ips: vec!["127.0.0.1".parse().unwrap()],
            principals: vec![
                "spiffe://cluster.local/ns/foo/sa/default".into(),
                "spiffe://other/ns/bar/sa/x".into(),
            ],
            snis: vec!["other.com".into()],
            ..Default::default()
        };
        let mut namespaces = vec!["foo".to_string()];
        let mut sas = Vec::new();
        for doc in text.split("\n---") {
            let v = yaml_to_json(doc);
            if v.is_null() {
                continue;
            }
            for rule in v["spec"]["rules"].as_array().cloned().unwrap_or_default() {
                for from in rule["from"].as_array().cloned().unwrap_or_default() {
                    let s = &from["source"];
                    for k in ["principals", "notPrincipals"] {
                        p.add_principals(&strings(&s[k]));
                    }
                    for k in ["requestPrincipals", "notRequestPrincipals"] {
                        p.add_request_principals(&strings(&s[k]));
                    }
                    for k in ["namespaces", "notNamespaces"] {
                        namespaces.extend(strings(&s[k]).iter().flat_map(|n| expand(n)));
                    }
                    for k in ["serviceAccounts", "notServiceAccounts"] {
                        sas.extend(strings(&s[k]));
                    }
                    for k in ["ipBlocks", "notIpBlocks"] {
                        p.src_ips
                            .extend(strings(&s[k]).iter().filter_map(|x| ip_of(x)));
                    }
                    for k in ["remoteIpBlocks", "notRemoteIpBlocks"] {
                        p.remote_ips
                            .extend(strings(&s[k]).iter().filter_map(|x| ip_of(x)));
                    }
                }
                for to in rule["to"].as_array().cloned().unwrap_or_default() {
                    let o = &to["operation"];
                    for k in ["methods", "notMethods"] {
                        p.methods
                            .extend(strings(&o[k]).iter().flat_map(|x| expand(x)));
                    }
                    for k in ["paths", "notPaths"] {
                        for path in strings(&o[k]) {
                            let concrete = path.replace("{**}", "a/b").replace("{*}", "x");
                            p.paths.extend(expand(&concrete));
                            p.paths.push(format!("{concrete}?q=1"));
                        }
                    }
                    for k in ["hosts", "notHosts"] {
                        for h in strings(&o[k]).iter().flat_map(|x| expand(x)) {
                            p.hosts.push(h.to_uppercase());
                            p.hosts.push(h);
                        }
                    }
                    for k in ["ports", "notPorts"] {
                        p.ports
                            .extend(strings(&o[k]).iter().filter_map(|x| x.parse::<u16>().ok()));
                    }
                }
                for when in rule["when"].as_array().cloned().unwrap_or_default() {
                    let key = when["key"].as_str().unwrap_or_default().to_string();
                    let mut values = strings(&when["values"]);
                    values.extend(strings(&when["notValues"]));
                    p.add_condition(&key, &values, &mut namespaces);
                }
            }
        }
        // Identities: each namespace with each service account, in each trust domain.
        let mut sa_names = vec!["default".to_string()];
        for sa in &sas {
            match sa.split_once('/') {
                Some((ns, name)) => {
                    namespaces.push(ns.into());
                    sa_names.push(name.into());
                }
                None => sa_names.push(sa.clone()),
            }
        }
        let mut domains = vec!["cluster.local"];
        domains.extend_from_slice(tds);
        for td in &domains {
            for ns in &namespaces {
                for sa in &sa_names {
                    p.principals.push(format!("spiffe://{td}/ns/{ns}/sa/{sa}"));
                }
            }
        }
        p
    }

    fn add_principals(&mut self, values: &[String]) {
        for v in values.iter().flat_map(|x| expand(x)) {
            self.principals.push(format!("spiffe://{v}"));
            // The same identity in the trust domains the cases alias.
            if let Some((_, rest)) = v.split_once('/') {
                for td in [
                    "td1",
                    "cluster.local",
                    "some-td",
                    "foobar",
                    "old-td",
                    "new-td",
                    "some-trustdomain",
                ] {
                    self.principals.push(format!("spiffe://{td}/{rest}"));
                }
            }
        }
    }

    fn add_request_principals(&mut self, values: &[String]) {
        for v in values {
            let (iss, sub) = match v.rfind('/') {
                Some(i) => (&v[..i], &v[i + 1..]),
                None => (v.as_str(), ""),
            };
            let claim = |p: &mut Pools, name: &str, x: &str| {
                p.claims
                    .entry(vec![name.to_string()])
                    .or_default()
                    .extend(expand(x));
            };
            claim(self, "iss", iss);
            claim(self, "sub", sub);
            if sub.is_empty() {
                claim(self, "sub", "")
            }
        }
    }

    fn add_condition(&mut self, key: &str, values: &[String], namespaces: &mut Vec<String>) {
        let all = || values.iter().flat_map(|x| expand(x)).collect::<Vec<_>>();
        match key {
            "source.ip" => self.src_ips.extend(values.iter().filter_map(|x| ip_of(x))),
            "remote.ip" => self
                .remote_ips
                .extend(values.iter().filter_map(|x| ip_of(x))),
            "destination.ip" => self.dest_ips.extend(values.iter().filter_map(|x| ip_of(x))),
            "destination.port" => self
                .ports
                .extend(values.iter().filter_map(|x| x.parse::<u16>().ok())),
            "connection.sni" => self.snis.extend(all()),
            "source.namespace" => namespaces.extend(all()),
            "source.principal" => self.add_principals(values),
            "request.auth.principal" => self.add_request_principals(values),
            "request.auth.audiences" => self
                .claims
                .entry(vec!["aud".into()])
                .or_default()
                .extend(all()),
            "request.auth.presenter" => self
                .claims
                .entry(vec!["azp".into()])
                .or_default()
                .extend(all()),
            _ => {
                if let Some(rest) = key.strip_prefix("request.headers[") {
                    let name = rest.trim_end_matches(']').to_ascii_lowercase();
                    self.headers.entry(name).or_default().extend(all());
                } else if let Some(rest) = key.strip_prefix("request.auth.claims") {
                    let path: Vec<String> = rest
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .split("][")
                        .map(str::to_string)
                        .collect();
                    self.claims.entry(path).or_default().extend(all());
                } else if let Some(rest) = key.strip_prefix("experimental.") {
                    if let Some((filter, k)) = rest.split_once('[') {
                        let k = k.trim_end_matches(']').to_string();
                        self.envoy_md
                            .entry((filter.to_string(), k))
                            .or_default()
                            .extend(
                                values
                                    .iter()
                                    .map(|v| v.trim_matches(['[', ']']).to_string())
                                    .flat_map(|v| expand(&v)),
                            );
                    }
                }
            }
        }
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// One generated request (or connection).
struct Request {
    method: String,
    path: String,
    host: String,
    headers: http::HeaderMap,
    direct_remote: SocketAddr,
    remote: SocketAddr,
    destination: SocketAddr,
    sni: Option<String>,
    tls: bool,
    principal: Option<String>,
    metadata: Map<String, Value>,
}

fn generate(p: &Pools, rng: &mut Rng) -> Request {
    let mut headers = http::HeaderMap::new();
    for (name, values) in &p.headers {
        if rng.chance(70) {
            let v = rng.pick(values);
            if let (Ok(n), Ok(v)) = (
                http::header::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                headers.insert(n, v);
            }
        }
    }
    let mut payload = Map::new();
    for (path, values) in &p.claims {
        if !rng.chance(70) {
            continue;
        }
        let v = rng.pick(values).clone();
        let value = if rng.chance(30) {
            json!([v, "other"])
        } else {
            json!(v)
        };
        insert_path(&mut payload, path, value);
    }
    let mut metadata = Map::new();
    if !payload.is_empty() {
        metadata.insert(
            "envoy.filters.http.jwt_authn".into(),
            json!({ "payload": payload }),
        );
    }
    for ((filter, key), values) in &p.envoy_md {
        if rng.chance(70) {
            let v = rng.pick(values).clone();
            let value = if rng.chance(30) { json!([v]) } else { json!(v) };
            let entry = metadata.entry(filter.clone()).or_insert_with(|| json!({}));
            entry.as_object_mut().unwrap().insert(key.clone(), value);
        }
    }
    Request {
        method: rng.pick(&p.methods).clone(),
        path: rng.pick(&p.paths).clone(),
        host: rng.pick(&p.hosts).clone(),
        headers,
        direct_remote: SocketAddr::new(*rng.pick(&p.src_ips), 40000),
        remote: SocketAddr::new(*rng.pick(&p.remote_ips), 0),
        destination: SocketAddr::new(*rng.pick(&p.dest_ips), *rng.pick(&p.ports)),
        sni: rng.chance(70).then(|| rng.pick(&p.snis).clone()),
        tls: rng.chance(80),
        principal: rng.chance(85).then(|| rng.pick(&p.principals).clone()),
        metadata,
    }
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = map;
    for k in parents {
        at = at
            .entry(k.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap();
    }
    at.insert(last.clone(), value);
}

/// Every verdict a chain of filters gives: the enforced one (first refusal wins) and each
/// filter's shadow rules.
fn decisions(filters: &[RbacFilter], s: &Subject<'_>) -> (bool, Vec<Option<bool>>) {
    let enforced = filters.iter().all(|f| {
        f.rules
            .as_ref()
            .is_none_or(|r| weft_proxy::rbac::evaluate(r, s).allowed)
    });
    let shadow = filters
        .iter()
        .map(|f| {
            f.shadow_rules
                .as_ref()
                .map(|r| weft_proxy::rbac::evaluate(r, s).allowed)
        })
        .collect();
    (enforced, shadow)
}

struct Outcome {
    agreed: bool,
    allowed: usize,
    denied: usize,
    first_difference: Option<String>,
}

fn run_case(pool: &DescriptorPool, case: &Case) -> Outcome {
    let expected: Vec<RbacFilter> = case
        .outputs
        .iter()
        .map(|f| istio_filter(pool, f, case.tcp))
        .collect();
    let ours = weft_filters(case);
    if ours.len() != expected.len() {
        return Outcome {
            agreed: false,
            allowed: 0,
            denied: 0,
            first_difference: Some(format!(
                "{} filters from weftd, {} from Istio",
                ours.len(),
                expected.len()
            )),
        };
    }
    let dir = if case.tcp { "tcp" } else { "http" };
    let text = std::fs::read_to_string(testdata().join(dir).join(case.input)).unwrap();
    let aliases: Vec<&str> = case
        .tds
        .map(|(td, a)| std::iter::once(td).chain(a.iter().copied()).collect())
        .unwrap_or_default();
    let pools = Pools::from_input(&text, &aliases);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ case.input.len() as u64);
    let (mut allowed, mut denied) = (0, 0);
    for _ in 0..REQUESTS_PER_CASE {
        let r = generate(&pools, &mut rng);
        let subject = Subject {
            request: (!case.tcp).then_some(RequestAttrs {
                method: &r.method,
                authority: &r.host,
                path: &r.path,
                scheme: "http",
                headers: &r.headers,
            }),
            direct_remote: Some(r.direct_remote),
            remote: Some(if case.tcp { r.direct_remote } else { r.remote }),
            destination: Some(r.destination),
            server_name: r.sni.as_deref(),
            tls: r.tls,
            peer_principal: r.principal.as_deref(),
            metadata: Some(&r.metadata),
        };
        let want = decisions(&expected, &subject);
        let got = decisions(&ours, &subject);
        if want.0 {
            allowed += 1;
        } else {
            denied += 1;
        }
        if want != got {
            return Outcome {
                agreed: false,
                allowed,
                denied,
                first_difference: Some(format!(
                    "Istio {want:?}, weftd {got:?} for {} {} host={} dst={} src={} remote={} sni={:?} tls={} principal={:?} headers={:?} metadata={}",
                    r.method,
                    r.path,
                    r.host,
                    r.destination,
                    r.direct_remote,
                    r.remote,
                    r.sni,
                    r.tls,
                    r.principal,
                    r.headers,
                    Value::Object(r.metadata.clone())
                )),
            };
        }
    }
    Outcome {
        agreed: true,
        allowed,
        denied,
        first_difference: None,
    }
}

#[test]
fn weftd_decides_like_istio_on_istios_builder_corpus() {
    if !testdata().is_dir() {
        panic!(
            "Istio's corpus is missing at {}: check out ../shared/istio-testdata",
            testdata().display()
        );
    }
    let pool = pool();
    let mut agreed = 0;
    let mut report = Vec::new();
    let (mut total_allowed, mut total_denied) = (0, 0);
    for case in CASES {
        let o = run_case(&pool, case);
        total_allowed += o.allowed;
        total_denied += o.denied;
        let label = format!("{}/{}", if case.tcp { "tcp" } else { "http" }, case.input);
        if o.agreed {
            agreed += 1;
            println!(
                "agree    {label}: {} allowed, {} denied of {REQUESTS_PER_CASE}",
                o.allowed, o.denied
            );
        } else {
            let why = o.first_difference.unwrap_or_default();
            println!("DISAGREE {label}: {why}");
            report.push(format!("{label}: {why}"));
        }
    }
    println!(
        "{agreed} of {} Istio builder cases agree ({} requests each; {total_allowed} allowed, {total_denied} denied by Istio's filters)",
        CASES.len(),
        REQUESTS_PER_CASE
    );
    assert!(
        total_allowed > 0 && total_denied > 0,
        "generated requests must exercise both outcomes"
    );
    assert!(report.is_empty(), "disagreements:\n{}", report.join("\n"));
}

/// The harness can fail: Istio's filters for one input against weftd's for another.
#[test]
fn a_different_translation_is_noticed() {
    let pool = pool();
    let swapped = Case {
        input: "deny-and-allow-in.yaml",
        outputs: &["allow-empty-rule-out.yaml"],
        tds: None,
        tcp: false,
    };
    let o = run_case(&pool, &swapped);
    assert!(!o.agreed, "filter counts or decisions must differ");
    let single = Case {
        input: "allow-path-in.yaml",
        outputs: &["allow-empty-rule-out.yaml"],
        tds: None,
        tcp: false,
    };
    let o = run_case(&pool, &single);
    assert!(!o.agreed);
    assert!(o.first_difference.unwrap().starts_with("Istio (true"));
}
