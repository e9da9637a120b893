//! Gateway analyzers: does a Gateway select a workload, is its port on the workload's
//! Service, and do two Gateways claim the same host on the same port?

use super::context::{full_name, origin, Context, Selector};
use super::hosts::FullName;
use super::messages::{
    CONFLICTING_GATEWAYS, GATEWAY_PORT_NOT_DEFINED_ON_SERVICE, REFERENCED_RESOURCE_NOT_FOUND,
};
use super::Message;
use crate::networking::gateway::Server;
use std::collections::{BTreeMap, BTreeSet};

/// gateway.IngressGatewayPortAnalyzer: every Gateway must select some workload, and each
/// server port must be reachable through a Service in front of those workloads.
pub(super) fn ingress_gateway_port(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, gw) in ctx.gateways() {
        let selector = Selector::new(&gw.selector);
        // A Gateway's port is where the proxy listens, so it is the Service's targetPort
        // that has to match; the Service port itself is accepted too, as users often
        // write that instead.
        let mut target_ports = BTreeSet::new();
        let mut service_ports = BTreeSet::new();
        let mut selected = 0;
        for workload in ctx.workloads.iter().filter(|w| selector.matches(&w.labels)) {
            selected += 1;
            let fronting = ctx.services.iter().filter(|s| {
                s.name.namespace == workload.name.namespace && s.selector.matches(&workload.labels)
            });
            for port in fronting.flat_map(|s| &s.ports) {
                if port.protocol != "TCP" {
                    continue;
                }
                if port.target_port != 0 {
                    target_ports.insert(port.target_port);
                    service_ports.insert(port.port);
                } else {
                    target_ports.insert(port.port);
                }
            }
        }
        if selected == 0 {
            out.push(
                REFERENCED_RESOURCE_NOT_FOUND
                    .message(origin(r), &["selector".into(), selector.to_string().into()]),
            );
            continue;
        }
        for server in &gw.servers {
            let Some(port) = &server.port else { continue };
            let number = port.number;
            if !target_ports.contains(&number) && !service_ports.contains(&number) {
                out.push(
                    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE
                        .message(origin(r), &[number.into(), selector.to_string().into()]),
                );
            }
        }
    }
}

/// Hosts a Gateway server serves on one port, each with its bind address.
type HostBinds = BTreeMap<String, String>;

/// gateway.ConflictingGatewayAnalyzer: two Gateways on the same workloads and port must
/// not both serve a host on the same bind address; the proxy would keep only one.
pub(super) fn conflicting_gateways(ctx: &Context<'_>, out: &mut Vec<Message>) {
    // (selector, port) -> gateway -> hosts served there.
    let mut index: BTreeMap<(String, u32), BTreeMap<FullName, HostBinds>> = BTreeMap::new();
    for (r, gw) in ctx.gateways() {
        let selector = Selector::new(&gw.selector).to_string();
        for server in &gw.servers {
            let binds = server
                .hosts
                .iter()
                .map(|h| (h.clone(), bind(server).to_string()))
                .collect();
            index
                .entry((selector.clone(), server_port(server)))
                .or_default()
                .insert(full_name(r), binds);
        }
    }

    for (r, gw) in ctx.gateways() {
        let name = full_name(r);
        let selector = Selector::new(&gw.selector);
        let selector_text = selector.to_string();
        let same_workloads: Vec<&(String, u32)> = index
            .keys()
            .filter(|(other, _)| {
                *other == selector_text
                    || ((other.contains(&selector_text) || selector_text.contains(other.as_str()))
                        && selects_common_workload(ctx, &selector, &Selector::parse(other)))
            })
            .collect();
        if !selector.is_empty() && same_workloads.is_empty() {
            out.push(
                REFERENCED_RESOURCE_NOT_FOUND
                    .message(origin(r), &["selector".into(), selector_text.into()]),
            );
            continue;
        }
        for server in &gw.servers {
            let mut conflicting: Vec<String> = same_workloads
                .iter()
                .filter(|(_, port)| *port == server_port(server))
                .flat_map(|key| &index[*key])
                .filter(|(other, binds)| **other != name && shares_host(server, binds))
                .map(|(other, _)| other.to_string())
                .collect();
            if conflicting.is_empty() {
                continue;
            }
            conflicting.sort();
            out.push(CONFLICTING_GATEWAYS.message(
                origin(r),
                &[
                    conflicting.join(",").into(),
                    selector_text.clone().into(),
                    server_port(server).to_string().into(),
                    server.hosts.join(",").into(),
                ],
            ));
        }
    }
}

/// The server's port number, 0 when missing (as Istio's getters read an unset port).
fn server_port(server: &Server) -> u32 {
    server.port.as_ref().map_or(0, |p| p.number)
}

fn bind(server: &Server) -> &str {
    server.bind.as_deref().unwrap_or_default()
}

fn shares_host(server: &Server, binds: &HostBinds) -> bool {
    server
        .hosts
        .iter()
        .any(|h| binds.get(h).map(String::as_str) == Some(bind(server)))
}

fn selects_common_workload(ctx: &Context<'_>, a: &Selector, b: &Selector) -> bool {
    ctx.workloads
        .iter()
        .any(|w| a.matches(&w.labels) && b.matches(&w.labels))
}

#[cfg(test)]
mod tests {

    use crate::analyze::testing::run;

    fn gateway(name: &str, selector: &str, port: u32, host: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: web}}\n\
             spec:\n  selector: {{{selector}}}\n  servers:\n  - port: {{number: {port}, name: p, protocol: HTTP}}\n    hosts: [\"{host}\"]\n---\n"
        )
    }

    #[test]
    fn gateway_without_workload_or_service_port() {
        let yaml = gateway("orphan", "app: nothing", 80, "a.com")
            + &gateway("odd-port", "istio: ingressgateway", 8080, "a.com")
            + &gateway("fine", "istio: ingressgateway", 443, "a.com");
        assert_eq!(
            run("gateway.IngressGatewayPortAnalyzer", &yaml),
            vec![
                "Warning [IST0162] (Gateway web/odd-port) The gateway is listening on a target port (port 8080) that is not defined in the Service associated with its workload instances (Pod selector istio=ingressgateway). If you need to access the gateway port through the gateway Service, it will not be available.",
                "Error [IST0101] (Gateway web/orphan) Referenced selector not found: \"app=nothing\"",
            ]
        );
    }

    #[test]
    fn same_host_and_port_on_same_workload_conflicts() {
        let yaml = gateway("a", "istio: ingressgateway", 80, "x.com")
            + &gateway("b", "istio: ingressgateway", 80, "x.com")
            + &gateway("c", "istio: ingressgateway", 81, "x.com")
            + &gateway("d", "istio: ingressgateway", 80, "y.com");
        assert_eq!(
            run("gateway.ConflictingGatewayAnalyzer", &yaml),
            vec![
                "Error [IST0145] (Gateway web/a) Conflict with gateways web/b (workload selector istio=ingressgateway, port 80, hosts x.com).",
                "Error [IST0145] (Gateway web/b) Conflict with gateways web/a (workload selector istio=ingressgateway, port 80, hosts x.com).",
            ]
        );
    }
}
