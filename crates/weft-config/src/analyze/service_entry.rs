//! ServiceEntry analyzers: TCP entries without addresses, and one host:port declared with
//! different protocols.

use super::context::{full_name, origin, Context};
use super::hosts::{export_scopes, EXPORT_TO_ALL};
use super::messages::{CONFLICTING_SERVICE_ENTRY_PROTOCOL, SERVICE_ENTRY_ADDRESSES_REQUIRED};
use super::Message;
use crate::resource::Resource;
use std::collections::{BTreeMap, BTreeSet};

/// serviceentry.Analyzer: plain TCP can only be told apart by destination IP, so a TCP (or
/// protocol-less) port needs `addresses` unless the proxies allocate addresses themselves
/// (DNS capture with auto-allocation) or the controller already allocated some (status).
pub(super) fn protocol_addresses(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mesh = ctx.mesh;
    let auto_allocated = mesh.proxy_flag("ISTIO_META_DNS_CAPTURE")
        && (mesh.proxy_flag("ISTIO_META_DNS_AUTO_ALLOCATE")
            || mesh.proxy_flag("PILOT_ENABLE_IP_AUTOALLOCATE"));
    if auto_allocated {
        return;
    }
    for (r, se) in ctx.service_entries() {
        if !se.addresses.is_empty() || has_allocated_addresses(r) {
            continue;
        }
        for port in &se.ports {
            if port.protocol.is_empty() || port.protocol.eq_ignore_ascii_case("TCP") {
                out.push(SERVICE_ENTRY_ADDRESSES_REQUIRED.message(origin(r), &[]));
            }
        }
    }
}

/// Whether the controller wrote auto-allocated addresses into the entry's status.
fn has_allocated_addresses(r: &Resource) -> bool {
    r.status
        .as_ref()
        .and_then(|s| s.get("addresses"))
        .and_then(|a| a.as_array())
        .is_some_and(|a| !a.is_empty())
}

/// (visibility scope, host, port): what one listener on a proxy is built for.
type ScopedHostPort<'a> = (String, &'a str, u32);

/// serviceentry.ConflictingServiceEntryProtocolAnalyzer: a proxy builds one listener per
/// host and port, so entries that are visible together must agree on its protocol.
pub(super) fn conflicting_protocols(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mut index: BTreeMap<ScopedHostPort<'_>, Vec<(&str, &Resource)>> = BTreeMap::new();
    for (r, se) in ctx.service_entries() {
        for scope in export_scopes(&se.export_to, &r.metadata.namespace) {
            for host in &se.hosts {
                for port in &se.ports {
                    index
                        .entry((scope.clone(), host, port.number))
                        .or_default()
                        .push((&port.protocol, r));
                }
            }
        }
    }
    let mut reported = BTreeSet::new();
    for ((scope, host, port), entries) in &index {
        let mut entries = entries.clone();
        if scope != EXPORT_TO_ALL {
            if let Some(global) = index.get(&(EXPORT_TO_ALL.to_string(), *host, *port)) {
                entries.extend(global);
            }
        }
        let protocols: BTreeSet<String> = entries
            .iter()
            .map(|(p, _)| p.to_ascii_uppercase())
            .collect();
        if protocols.len() < 2 {
            continue;
        }
        let names: BTreeSet<String> = entries
            .iter()
            .map(|(_, r)| full_name(r).to_string())
            .collect();
        let names = names.into_iter().collect::<Vec<_>>().join(", ");
        let protocols = protocols.into_iter().collect::<Vec<_>>().join(", ");
        for (_, r) in entries {
            if reported.insert(full_name(r)) {
                out.push(CONFLICTING_SERVICE_ENTRY_PROTOCOL.message(
                    origin(r),
                    &[
                        names.clone().into(),
                        (*host).into(),
                        (*port).into(),
                        protocols.clone().into(),
                    ],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze::{MeshConfig, Options};

    use crate::analyze::testing::run_with as run;

    fn entry(name: &str, protocol: &str, extra: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{hosts: [db.example.com], ports: [{{number: 5432, name: p, protocol: {protocol}}}]{extra}}}\n---\n"
        )
    }

    #[test]
    fn tcp_needs_addresses_unless_auto_allocated() {
        let yaml = entry("tcp", "tcp", "")
            + &entry("with-ip", "TCP", ", addresses: [10.0.0.1]")
            + &entry("http", "HTTP", "");
        let analyzer = "serviceentry.Analyzer";
        assert_eq!(
            run(analyzer, &yaml, &Options::default()),
            vec!["Warning [IST0134] (ServiceEntry default/tcp) ServiceEntry addresses are required for this protocol."]
        );
        let mesh = MeshConfig::from_yaml(
            "defaultConfig: {proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\", ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"}}",
        )
        .unwrap();
        let options = Options {
            mesh,
            ..Options::default()
        };
        assert!(run(analyzer, &yaml, &options).is_empty());
    }

    #[test]
    fn same_host_and_port_with_two_protocols() {
        let yaml = entry("a", "HTTP", "")
            + &entry("b", "TCP", ", addresses: [10.0.0.1]")
            + &entry("hidden", "GRPC", ", exportTo: [other]");
        let got = run(
            "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
            &yaml,
            &Options::default(),
        );
        assert_eq!(
            got,
            vec![
                "Warning [IST0177] (ServiceEntry default/a) Multiple ServiceEntries (default/a, default/b) define the same host \"db.example.com\" and port 5432 with conflicting protocols (HTTP, TCP).",
                "Warning [IST0177] (ServiceEntry default/b) Multiple ServiceEntries (default/a, default/b) define the same host \"db.example.com\" and port 5432 with conflicting protocols (HTTP, TCP).",
                "Warning [IST0177] (ServiceEntry default/hidden) Multiple ServiceEntries (default/a, default/b, default/hidden) define the same host \"db.example.com\" and port 5432 with conflicting protocols (GRPC, HTTP, TCP).",
            ]
        );
    }
}
