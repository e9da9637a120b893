//! `weft bootstrap envoy`: an Envoy v3 bootstrap that joins the mesh as a workload, as pilot-agent writes one.

use super::{Context, Error};
use crate::client::ClientError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use weft_config::Kind;

/// Port weftd serves xDS on when nothing else is said (docs/xds.md).
const DEFAULT_XDS_PORT: u16 = 15010;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub proxy: Proxy,
}

#[derive(Debug, clap::Subcommand)]
pub enum Proxy {
    /// Print a bootstrap for real Envoy (or weft-proxy) that connects to weftd over ADS.
    Envoy(EnvoyArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyType {
    /// Next to one workload.
    Sidecar,
    /// A gateway; give it the labels its Gateways select (`--label istio=ingressgateway`).
    Router,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Capture {
    /// No root: the application calls the sidecar directly (INTERCEPTION_MODE NONE).
    Explicit,
    /// iptables REDIRECT set up around the proxy (INTERCEPTION_MODE REDIRECT).
    Transparent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct EnvoyArgs {
    /// WorkloadGroup the proxy registers through (AUTO_REGISTER_GROUP).
    #[arg(long)]
    pub workload_group: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Workload name in the node id [default: the WorkloadGroup's name]; set it to run
    /// several instances of one group on one address.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long = "type", value_enum, default_value_t = ProxyType::Sidecar)]
    pub proxy_type: ProxyType,
    #[arg(long, value_enum, default_value_t = Capture::Explicit)]
    pub capture: Capture,
    /// The workload's address: first of INSTANCE_IPS and the ip in the node id.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Explicit mode: where the application listens on 127.0.0.1 for a named port
    /// of its WorkloadEntry, NAME=PORT; repeatable.
    #[arg(long = "app-port", value_name = "NAME=PORT", value_parser = parse_app_port)]
    pub app_ports: Vec<(String, u16)>,
    /// Explicit mode: port of the outbound HTTP proxy listener on 127.0.0.1.
    #[arg(long, default_value_t = 15001)]
    pub outbound_port: u16,
    /// Port of Envoy's admin endpoint on 127.0.0.1.
    #[arg(long, default_value_t = 15000)]
    pub admin_port: u16,
    /// weftd's xDS address, HOST:PORT [default: what weftd announces, else --server's host, port 15010].
    #[arg(long, env = "WEFT_XDS_ADDR")]
    pub xds: Option<String>,
    /// A workload label, K=V; repeatable. Given labels replace the WorkloadGroup's.
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Service account [default: the WorkloadGroup's, else "default"].
    #[arg(long)]
    pub service_account: Option<String>,
    /// Bootstrap token from `weft token create` for this workload's namespace and service
    /// account: sent to weftd on the ADS stream, it lets weftd serve the workload's mTLS
    /// certificate over SDS. (`--token` is the CLI's own write token, hence the name.)
    #[arg(
        long,
        env = "WEFT_BOOTSTRAP_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub bootstrap_token: Option<String>,
    /// Read the bootstrap token from this file.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// Use incremental xDS (DELTA_GRPC) instead of state-of-the-world.
    #[arg(long)]
    pub delta: bool,
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
}

fn parse_app_port(s: &str) -> Result<(String, u16), String> {
    let (name, port) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PORT, got {s:?}"))?;
    if name.is_empty() {
        return Err(format!(
            "expected NAME=PORT, got {s:?}: the port name is empty"
        ));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port number (1-65535)"))?;
    Ok((name.to_string(), port))
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected K=V, got {s:?}")),
    }
}

/// What the WorkloadGroup contributes: the labels and service account of its workloads.
#[derive(Debug, Default, PartialEq)]
struct GroupTemplate {
    labels: BTreeMap<String, String>,
    service_account: Option<String>,
}

impl GroupTemplate {
    /// Istio copies `spec.metadata.labels` onto generated WorkloadEntries; the template's
    /// own labels are taken too, for groups written that way, with metadata winning.
    fn from_object(group: &Value) -> GroupTemplate {
        let strings = |ptr: &str| -> BTreeMap<String, String> {
            group
                .pointer(ptr)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        };
        let mut labels = strings("/spec/template/labels");
        labels.extend(strings("/spec/metadata/labels"));
        let service_account = group
            .pointer("/spec/template/serviceAccount")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        GroupTemplate {
            labels,
            service_account,
        }
    }
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let Proxy::Envoy(a) = &args.proxy;
    // weftd says where its xDS server listens; offline, guess its host and port 15010.
    let announced = || {
        let root = ctx.client().root().ok()?;
        root.get("xdsAddr")?.as_str().map(str::to_string)
    };
    let xds = match &a.xds {
        Some(x) => x.clone(),
        None => match announced() {
            Some(addr) => addr,
            None => default_xds(&ctx.server)?,
        },
    };
    // Labels and account only need weftd when the user left them out; a bootstrap can
    // still be written offline (weftd down, or on another machine).
    let template = if a.labels.is_empty() || a.service_account.is_none() {
        match ctx
            .client()
            .get(Kind::WorkloadGroup, &a.namespace, &a.workload_group)
        {
            Ok(group) => GroupTemplate::from_object(&group),
            Err(e) if e.is_not_found() => {
                writeln!(
                    err,
                    "warning: WorkloadGroup {}/{} does not exist yet; weftd cannot register \
                     this proxy until it does",
                    a.namespace, a.workload_group
                )?;
                GroupTemplate::default()
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Transport { .. })) => {
                writeln!(
                    err,
                    "warning: labels and service account not taken from WorkloadGroup {}/{}: {e}",
                    a.namespace, a.workload_group
                )?;
                GroupTemplate::default()
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        GroupTemplate::default()
    };
    let bootstrap = render(a, &xds, template)?;
    match a.output {
        Format::Json => {
            let text = serde_json::to_string_pretty(&bootstrap).expect("JSON values serialize");
            writeln!(out, "{text}")?;
        }
        Format::Yaml => {
            let text = serde_yaml::to_string(&bootstrap).expect("JSON values serialize as YAML");
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(0)
}

/// `--server http://HOST:15014` -> `HOST:15010`: weftd serves xDS next to its API.
fn default_xds(server: &str) -> Result<String, Error> {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| format!("[{h}]"))
    } else {
        authority.split(':').next().map(str::to_string)
    };
    match host.filter(|h| !h.is_empty()) {
        Some(h) => Ok(format!("{h}:{DEFAULT_XDS_PORT}")),
        None => Err(Error::Usage(format!(
            "cannot tell weftd's host from --server {server:?}; pass --xds HOST:PORT"
        ))),
    }
}

/// Splits `HOST:PORT` (`[v6]:PORT` for IPv6) and tells whether HOST is an IP literal.
fn split_xds(xds: &str) -> Result<(String, u16, bool), Error> {
    let bad = || Error::Usage(format!("--xds {xds:?} is not HOST:PORT"));
    let (host, port) = xds.rsplit_once(':').ok_or_else(bad)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let is_ip = host.parse::<IpAddr>().is_ok();
    Ok((host.to_string(), port, is_ip))
}

/// The bootstrap itself, as JSON; YAML output is the same tree.
fn render(a: &EnvoyArgs, xds: &str, template: GroupTemplate) -> Result<Value, Error> {
    let (xds_host, xds_port, xds_is_ip) = split_xds(xds)?;
    let workload = a.name.as_deref().unwrap_or(&a.workload_group);
    let ns = &a.namespace;
    let kind = match a.proxy_type {
        ProxyType::Sidecar => "sidecar",
        ProxyType::Router => "router",
    };
    let node_id = format!("{kind}~{}~{workload}.{ns}~{ns}.svc.cluster.local", a.ip);

    let labels: BTreeMap<String, String> = if a.labels.is_empty() {
        template.labels
    } else {
        a.labels.iter().cloned().collect()
    };
    let service_account = a
        .service_account
        .clone()
        .or(template.service_account)
        .unwrap_or_else(|| "default".into());
    let mut metadata = Map::new();
    let mut put = |k: &str, v: Value| metadata.insert(k.to_string(), v);
    put("NAMESPACE", json!(ns));
    put("LABELS", json!(labels));
    put("WORKLOAD_NAME", json!(workload));
    put("SERVICE_ACCOUNT", json!(service_account));
    put("INSTANCE_IPS", json!(a.ip.to_string()));
    let mode = match a.capture {
        Capture::Explicit => "NONE",
        Capture::Transparent => "REDIRECT",
    };
    put("INTERCEPTION_MODE", json!(mode));
    put("AUTO_REGISTER_GROUP", json!(a.workload_group));
    // Only explicit-mode sidecars need to be told where the app and the outbound proxy
    // are; with capture, iptables and the original destination say it.
    if a.capture == Capture::Explicit && a.proxy_type == ProxyType::Sidecar {
        let ports: Vec<String> = a
            .app_ports
            .iter()
            .map(|(n, p)| format!("{n}={p}"))
            .collect();
        put("WEFT_APP_PORTS", json!(ports.join(",")));
        put("WEFT_OUTBOUND_PORT", json!(a.outbound_port.to_string()));
    }

    let api_type = if a.delta { "DELTA_GRPC" } else { "GRPC" };
    let mut grpc_service = json!({"envoy_grpc": {"cluster_name": "xds-grpc"}});
    if let Some(token) = bootstrap_token(a)? {
        // Envoy sends initial_metadata on every ADS stream, as a header weftd reads.
        grpc_service["initial_metadata"] =
            json!([{"key": "authorization", "value": format!("Bearer {token}")}]);
    }
    let ads_source = json!({"ads": {}, "resource_api_version": "V3"});
    Ok(json!({
        "node": {
            "id": node_id,
            // Istio's service cluster: `<workload>.<namespace>`; names the proxy in stats.
            "cluster": format!("{workload}.{ns}"),
            "metadata": metadata,
        },
        "admin": {
            "address": socket_address("127.0.0.1", a.admin_port),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [grpc_service],
                "set_node_on_first_message_only": true,
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {
            "clusters": [{
                "name": "xds-grpc",
                // A name is resolved (and re-resolved when weftd moves); an IP needs no DNS.
                "type": if xds_is_ip { "STATIC" } else { "STRICT_DNS" },
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": "xds-grpc",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {
                        "address": socket_address(&xds_host, xds_port),
                    }}]}],
                },
                // ADS is gRPC: the connection to weftd must be HTTP/2.
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    },
                },
            }],
        },
    }))
}

/// `--bootstrap-token`, or the first line of `--token-file`.
fn bootstrap_token(a: &EnvoyArgs) -> Result<Option<String>, Error> {
    let token = match (&a.bootstrap_token, &a.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("--token-file {}: {e}", path.display())))?
            .trim()
            .to_string(),
        (None, None) => return Ok(None),
    };
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::Usage(
            "the bootstrap token is empty or has spaces; use what `weft token create` printed"
                .into(),
        ));
    }
    Ok(Some(token))
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Parses `weft bootstrap envoy ...` the way the binary does.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        proxy: Proxy,
    }

    fn args(extra: &[&str]) -> EnvoyArgs {
        let argv = ["bootstrap", "envoy", "--workload-group", "reviews-v1"];
        let Proxy::Envoy(a) = Cli::try_parse_from(argv.iter().chain(extra))
            .expect("arguments parse")
            .proxy;
        a
    }

    fn bootstrap(extra: &[&str], template: GroupTemplate) -> Value {
        let a = args(extra);
        render(&a, "127.0.0.1:15010", template).expect("renders")
    }

    #[test]
    fn bootstrap_token_goes_into_the_ads_metadata() {
        let plain = bootstrap(&[], GroupTemplate::default());
        let ads = &plain["dynamic_resources"]["ads_config"]["grpc_services"][0];
        assert!(ads.get("initial_metadata").is_none(), "{ads}");
        let b = bootstrap(
            &["--bootstrap-token", "weft-bt-abc"],
            GroupTemplate::default(),
        );
        let ads = &b["dynamic_resources"]["ads_config"]["grpc_services"][0];
        assert_eq!(
            ads["initial_metadata"],
            json!([{"key": "authorization", "value": "Bearer weft-bt-abc"}])
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "weft-bt-from-file\n").unwrap();
        let b = bootstrap(
            &["--token-file", file.to_str().unwrap()],
            GroupTemplate::default(),
        );
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["grpc_services"][0]["initial_metadata"][0]
                ["value"],
            "Bearer weft-bt-from-file"
        );
        let missing = args(&["--token-file", "/nonexistent/token"]);
        assert!(render(&missing, "127.0.0.1:15010", GroupTemplate::default()).is_err());
    }

    #[test]
    fn explicit_sidecar_node_reads_like_istio() {
        let b = bootstrap(
            &[
                "-n",
                "shop",
                "--app-port",
                "http=18080",
                "--app-port",
                "grpc=18081",
            ],
            GroupTemplate::default(),
        );
        assert_eq!(
            b["node"]["id"],
            "sidecar~127.0.0.1~reviews-v1.shop~shop.svc.cluster.local"
        );
        let m = &b["node"]["metadata"];
        assert_eq!(m["NAMESPACE"], "shop");
        assert_eq!(m["WORKLOAD_NAME"], "reviews-v1");
        assert_eq!(m["AUTO_REGISTER_GROUP"], "reviews-v1");
        assert_eq!(m["INSTANCE_IPS"], "127.0.0.1");
        assert_eq!(m["INTERCEPTION_MODE"], "NONE");
        assert_eq!(m["SERVICE_ACCOUNT"], "default");
        assert_eq!(m["WEFT_APP_PORTS"], "http=18080,grpc=18081");
        assert_eq!(m["WEFT_OUTBOUND_PORT"], "15001");
        assert_eq!(m["LABELS"], json!({}));
    }

    #[test]
    fn transparent_router_has_redirect_and_no_explicit_ports() {
        let b = bootstrap(
            &[
                "--type",
                "router",
                "--capture",
                "transparent",
                "--label",
                "istio=ingressgateway",
                "--ip",
                "10.0.0.7",
            ],
            GroupTemplate::default(),
        );
        assert_eq!(
            b["node"]["id"],
            "router~10.0.0.7~reviews-v1.default~default.svc.cluster.local"
        );
        let m = &b["node"]["metadata"];
        assert_eq!(m["INTERCEPTION_MODE"], "REDIRECT");
        assert_eq!(m["LABELS"], json!({"istio": "ingressgateway"}));
        assert!(m.get("WEFT_APP_PORTS").is_none(), "{m}");
        assert!(m.get("WEFT_OUTBOUND_PORT").is_none(), "{m}");
    }

    #[test]
    fn group_template_fills_what_the_user_left_out() {
        let group = json!({"spec": {
            "metadata": {"labels": {"app": "reviews", "version": "v1"}},
            "template": {"serviceAccount": "bookinfo-reviews", "labels": {"version": "old", "tier": "web"}},
        }});
        let t = GroupTemplate::from_object(&group);
        let b = bootstrap(&[], t);
        let m = &b["node"]["metadata"];
        assert_eq!(
            m["LABELS"],
            json!({"app": "reviews", "tier": "web", "version": "v1"})
        );
        assert_eq!(m["SERVICE_ACCOUNT"], "bookinfo-reviews");

        // What the user says wins over the group.
        let t = GroupTemplate::from_object(&group);
        let b = bootstrap(&["--label", "app=other", "--service-account", "sa"], t);
        let m = &b["node"]["metadata"];
        assert_eq!(m["LABELS"], json!({"app": "other"}));
        assert_eq!(m["SERVICE_ACCOUNT"], "sa");
    }

    #[test]
    fn ads_is_grpc_or_delta_to_the_xds_cluster() {
        let sotw = bootstrap(&[], GroupTemplate::default());
        let ads = &sotw["dynamic_resources"]["ads_config"];
        assert_eq!(ads["api_type"], "GRPC");
        assert_eq!(
            ads["grpc_services"][0]["envoy_grpc"]["cluster_name"],
            "xds-grpc"
        );
        assert_eq!(
            sotw["dynamic_resources"]["cds_config"]["resource_api_version"],
            "V3"
        );
        let delta = bootstrap(&["--delta"], GroupTemplate::default());
        assert_eq!(
            delta["dynamic_resources"]["ads_config"]["api_type"],
            "DELTA_GRPC"
        );
        let xds = &sotw["static_resources"]["clusters"][0];
        assert_eq!(xds["name"], "xds-grpc");
        assert_eq!(xds["type"], "STATIC");
        assert_eq!(
            xds.pointer("/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"),
            Some(&json!(15010))
        );
    }

    #[test]
    fn xds_address_comes_from_the_server_unless_given() {
        assert_eq!(
            default_xds("http://127.0.0.1:15014").unwrap(),
            "127.0.0.1:15010"
        );
        assert_eq!(
            default_xds("http://weftd.mesh:8080/").unwrap(),
            "weftd.mesh:15010"
        );
        assert_eq!(default_xds("https://[::1]:15014").unwrap(), "[::1]:15010");
        assert!(default_xds("http://").is_err());

        let a = args(&[]);
        let named = render(&a, "weftd.mesh:15010", GroupTemplate::default()).unwrap();
        let xds = &named["static_resources"]["clusters"][0];
        assert_eq!(xds["type"], "STRICT_DNS");
        let v6 = render(&a, "[::1]:15010", GroupTemplate::default()).unwrap();
        assert_eq!(
            v6.pointer("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/address"),
            Some(&json!("::1"))
        );
        assert!(render(&a, "no-port", GroupTemplate::default()).is_err());
    }

    #[test]
    fn malformed_flags_are_rejected_with_the_expected_shape() {
        assert!(parse_app_port("http").unwrap_err().contains("NAME=PORT"));
        assert!(parse_app_port("http=0").is_err());
        assert!(parse_app_port("=80").is_err());
        assert_eq!(parse_app_port("http=80").unwrap(), ("http".into(), 80));
        assert!(parse_label("=v").is_err());
        assert_eq!(parse_label("a=").unwrap(), ("a".into(), String::new()));
    }
}
