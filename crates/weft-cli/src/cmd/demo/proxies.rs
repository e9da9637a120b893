//! Starting the demo's data plane: each Bookinfo app with its sidecar, and the ingress
//! gateway, every proxy with its bootstrap and its workload identity.
//!
//! weft-proxy gets the identity flags (`--ca-addr`, `--token-file`, `--namespace`,
//! `--service-account`, `--trust-domain`) and makes its own key; Envoy gets the token in its
//! bootstrap (`weft bootstrap envoy --token-file`) and its certificate from weftd over SDS.

use super::identity::{write_private, Account, Identities};
use super::mesh::{Workload, GATEWAY_GROUP, GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT, NAMESPACE};
use super::plan::Plan;
use super::supervisor::Supervisor;
use super::{cli, DataPlane, DemoError};
use crate::cmd::bootstrap::{self, Capture, EnvoyArgs, Format, Proxy, ProxyType};
use std::net::{IpAddr, Ipv4Addr};

/// One proxy to start: its WorkloadGroup, kind, identity and ports.
struct ProxySpec<'a> {
    group: &'a str,
    namespace: &'a str,
    kind: ProxyType,
    account: Account,
    app: Option<u16>,
    admin: u16,
    outbound: u16,
    stats: u16,
}

/// What `weft bootstrap envoy` gets for a demo proxy.
fn envoy_args(plan: &Plan, p: &ProxySpec, ids: &Identities) -> EnvoyArgs {
    EnvoyArgs {
        workload_group: p.group.to_string(),
        namespace: p.namespace.into(),
        name: None,
        proxy_type: p.kind,
        capture: Capture::Explicit,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        app_ports: p
            .app
            .map(|port| ("http".to_string(), port))
            .into_iter()
            .collect(),
        outbound_port: p.outbound,
        admin_port: p.admin,
        xds: Some(plan.xds_addr.to_string()),
        // Labels and service account come from the WorkloadGroup, as for any workload.
        labels: Vec::new(),
        service_account: None,
        // Envoy has no agent: the token goes into the bootstrap's ADS metadata, and weftd
        // serves Envoy its certificate over SDS. weft-proxy gets the file itself instead.
        bootstrap_token: None,
        token_file: (plan.data_plane == DataPlane::Envoy)
            .then(|| ids.token_file(&p.account).to_path_buf()),
        delta: false,
        output: Format::Yaml,
    }
}

/// Writes the proxy's bootstrap and starts the data plane with it.
async fn start_proxy(
    plan: &Plan,
    sup: &mut Supervisor,
    ids: &Identities,
    name: &str,
    p: ProxySpec<'_>,
) -> Result<(), DemoError> {
    let args = bootstrap::Args {
        proxy: Proxy::Envoy(envoy_args(plan, &p, ids)),
    };
    let yaml = cli(plan, move |ctx, out, err| {
        bootstrap::run(&args, ctx, out, err)
    })
    .await?;
    let path = plan.dir.join("bootstrap").join(format!("{name}.yaml"));
    // Envoy's bootstrap holds its bootstrap token: owner-only, like the token files.
    write_private(&path, String::from_utf8_lossy(&yaml).trim_end())?;
    let mut argv = vec!["-c".to_string(), path.display().to_string()];
    match plan.data_plane {
        DataPlane::Envoy => {
            // Seven Envoys share the machine: one worker thread each, and no hot-restart
            // shared memory for them to fight over.
            argv.extend(
                [
                    "--disable-hot-restart",
                    "--concurrency",
                    "1",
                    "-l",
                    "warning",
                ]
                .map(String::from),
            );
        }
        DataPlane::Weft => {
            argv.extend([
                "--ca-addr".to_string(),
                plan.xds_addr.to_string(),
                "--token-file".into(),
                ids.token_file(&p.account).display().to_string(),
                "--trust-domain".into(),
                ids.trust_domain.clone(),
                "--namespace".into(),
                p.account.namespace.clone(),
                "--service-account".into(),
                p.account.service_account.clone(),
                // Istio's 15090, one per proxy: they share the machine.
                "--stats-port".into(),
                p.stats.to_string(),
            ]);
        }
    }
    sup.spawn(&format!("{name}-proxy"), &plan.proxy, &argv)?;
    Ok(())
}

/// Starts Bookinfo workload `i` and its sidecar.
pub(super) async fn start_workload(
    plan: &Plan,
    sup: &mut Supervisor,
    ids: &Identities,
    i: usize,
    w: &Workload,
) -> Result<(), DemoError> {
    let ports = plan.ports;
    let mut app = w.app_args();
    app.extend([
        "--listen".to_string(),
        format!("127.0.0.1:{}", ports.app(i)),
        "--upstream-proxy".into(),
        format!("http://127.0.0.1:{}", ports.outbound(i)),
    ]);
    let name = w.name();
    sup.spawn(&name, &plan.bookinfo, &app)?;
    let spec = ProxySpec {
        group: &name,
        namespace: NAMESPACE,
        kind: ProxyType::Sidecar,
        account: Account::new(NAMESPACE, &w.service_account()),
        app: Some(ports.app(i)),
        admin: ports.admin(i),
        outbound: ports.outbound(i),
        stats: ports.stats(i),
    };
    start_proxy(plan, sup, ids, &name, spec).await
}

/// Starts the ingress gateway, in `istio-system` under Istio's gateway service account.
pub(super) async fn start_gateway(
    plan: &Plan,
    sup: &mut Supervisor,
    ids: &Identities,
) -> Result<(), DemoError> {
    let admin = plan.ports.gateway_admin();
    let spec = ProxySpec {
        group: GATEWAY_GROUP,
        namespace: GATEWAY_NAMESPACE,
        kind: ProxyType::Router,
        account: Account::new(GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT),
        app: None,
        admin,
        // A router has no outbound HTTP proxy listener; the port is not used.
        outbound: admin,
        stats: plan.ports.gateway_stats(),
    };
    start_proxy(plan, sup, ids, GATEWAY_GROUP, spec).await
}
