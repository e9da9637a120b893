//! DestinationRule analyzers: TLS origination without server verification, hosts that
//! name no service, and subsets that select no workload.

use super::context::{full_name, origin, Context, Selector};
use super::hosts::{to_fqdn, ScopedFqdn, EXPORT_TO_ALL, EXPORT_TO_LOCAL};
use super::messages::{
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL, UNKNOWN_DESTINATION_RULE_HOST,
};
use super::Message;
use crate::networking::destination_rule::{ClientTlsMode, ClientTlsSettings};
use std::collections::BTreeMap;

/// The TLS modes that originate TLS with certificates Weft does not issue, and so need a
/// CA to check the server against.
fn unverified_mode(tls: &ClientTlsSettings, has_selector: bool) -> Option<&'static str> {
    let mode = match tls.mode {
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        _ => return None,
    };
    let has_ca = tls
        .ca_certificates
        .as_deref()
        .is_some_and(|c| !c.is_empty());
    // A credentialName holds the CA too, but it is only read for rules bound to
    // specific workloads (gateways), hence the selector condition.
    let has_credential = tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        && has_selector;
    (!has_ca && !has_credential).then_some(mode)
}

/// destinationrule.CaCertificateAnalyzer: SIMPLE or MUTUAL TLS without caCertificates
/// encrypts but accepts any server certificate.
pub(super) fn ca_certificates(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, dr) in ctx.destination_rules() {
        let name = full_name(r).to_string();
        let ns = &r.metadata.namespace;
        let has_selector = dr.workload_selector.is_some();
        let Some(policy) = &dr.traffic_policy else {
            continue;
        };
        if let Some(mode) = policy
            .tls
            .as_ref()
            .and_then(|tls| unverified_mode(tls, has_selector))
        {
            out.push(
                NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL.message(
                    origin(r),
                    &[
                        name.clone().into(),
                        ns.into(),
                        mode.into(),
                        (&dr.host).into(),
                    ],
                ),
            );
        }
        for port_policy in &policy.port_level_settings {
            let Some(mode) = port_policy
                .tls
                .as_ref()
                .and_then(|tls| unverified_mode(tls, has_selector))
            else {
                continue;
            };
            // Istio prints the port selector in protobuf text form.
            let port = port_policy
                .port
                .as_ref()
                .and_then(|p| p.number)
                .map(|n| format!("number:{n}"))
                .unwrap_or_default();
            out.push(NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL.message(
                origin(r),
                &[
                    name.clone().into(),
                    ns.into(),
                    mode.into(),
                    (&dr.host).into(),
                    port.into(),
                ],
            ));
        }
    }
}

/// A service a DestinationRule host can name: its hosts' visibility and the labels of the
/// workloads behind it (a Kubernetes Service's selector is not used, as Istio does not).
#[derive(Clone, Debug, Default)]
struct KnownService {
    workload_labels: BTreeMap<String, String>,
}

/// Every service host by the scopes it is visible in: ServiceEntries by exportTo, the
/// Kubernetes Services Weft assumes (the ingress gateway) everywhere.
fn service_hosts(ctx: &Context<'_>) -> BTreeMap<ScopedFqdn, KnownService> {
    let mut out = BTreeMap::new();
    for (r, se) in ctx.service_entries() {
        let ns = &r.metadata.namespace;
        let known = KnownService {
            workload_labels: se
                .workload_selector
                .as_ref()
                .map(|s| s.labels.clone())
                .unwrap_or_default(),
        };
        let scopes = super::hosts::export_scopes(&se.export_to, ns);
        for host in &se.hosts {
            for scope in &scopes {
                out.insert(ScopedFqdn::new(scope, ns, host), known.clone());
            }
        }
    }
    for svc in &ctx.services {
        let host = ScopedFqdn::new(EXPORT_TO_ALL, &svc.name.namespace, &svc.name.name);
        out.insert(host, KnownService::default());
    }
    out
}

/// Finds the service a DestinationRule in `ns` with `export_to` means by `host`: exact
/// hosts visible to it first, then wildcard entries that cover it.
fn destination_service<'s>(
    services: &'s BTreeMap<ScopedFqdn, KnownService>,
    ns: &str,
    export_to: &[String],
    host: &str,
) -> Option<&'s KnownService> {
    let exact = |scope: &str| services.get(&ScopedFqdn::new(scope, ns, host));
    if let Some(s) = exact(EXPORT_TO_ALL) {
        return Some(s);
    }
    let scopes: Vec<&str> = if export_to.is_empty() {
        vec![ns]
    } else {
        export_to
            .iter()
            .map(|e| if e == EXPORT_TO_LOCAL { ns } else { e.as_str() })
            .collect()
    };
    if let Some(s) = scopes.into_iter().find_map(exact) {
        return Some(s);
    }
    let wanted = to_fqdn(ns, host);
    let wanted = wanted.trim_start_matches('*');
    services.iter().find_map(|(scoped, s)| {
        let suffix = scoped.fqdn.strip_prefix('*')?;
        let visible = scoped.scope == EXPORT_TO_ALL || scoped.scope == ns;
        (visible && wanted.ends_with(suffix)).then_some(s)
    })
}

/// destinationrule.SubsetSelectPodAnalyzer: a DestinationRule for an unknown host does
/// nothing, and a subset that selects no workload sends its traffic nowhere (503 UH).
pub(super) fn subsets_select_workloads(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let services = service_hosts(ctx);
    for (r, dr) in ctx.destination_rules() {
        let Some(service) =
            destination_service(&services, &r.metadata.namespace, &dr.export_to, &dr.host)
        else {
            out.push(UNKNOWN_DESTINATION_RULE_HOST.message(origin(r), &[(&dr.host).into()]));
            continue;
        };
        for subset in &dr.subsets {
            let mut labels = service.workload_labels.clone();
            labels.extend(subset.labels.clone());
            let selector = Selector(labels);
            if !ctx.workloads.iter().any(|w| selector.matches(&w.labels)) {
                out.push(
                    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS
                        .message(origin(r), &[(&subset.name).into()]),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use crate::analyze::testing::run;

    fn rule(name: &str, spec: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{name: {name}, namespace: db}}\nspec: {spec}\n---\n"
        )
    }

    #[test]
    fn tls_without_ca_at_both_levels() {
        let yaml = rule(
            "pg",
            "{host: pg.example.com, trafficPolicy: {tls: {mode: SIMPLE}, portLevelSettings: [{port: {number: 5432}, tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k}}]}}",
        ) + &rule(
            "verified",
            "{host: x.example.com, trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /ca.pem}}}",
        ) + &rule(
            "gateway-credential",
            "{host: y.example.com, workloadSelector: {matchLabels: {app: gw}}, trafficPolicy: {tls: {mode: SIMPLE, credentialName: y}}}",
        );
        assert_eq!(
            run("destinationrule.CaCertificateAnalyzer", &yaml),
            vec![
                "Warning [IST0128] (DestinationRule db/pg) DestinationRule db/pg in namespace db has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: pg.example.com",
                "Warning [IST0129] (DestinationRule db/pg) DestinationRule db/pg in namespace db has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: pg.example.com at port number:5432",
            ]
        );
    }

    #[test]
    fn unknown_hosts_and_empty_subsets() {
        let yaml = rule("fake", "{host: fake.db.svc.cluster.local}")
            + &rule(
                "ingress",
                "{host: istio-ingressgateway.istio-system.svc.cluster.local, subsets: [{name: gw, labels: {istio: ingressgateway}}, {name: none, labels: {istio: egressgateway}}]}",
            )
            + "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: db}\n\
               spec: {hosts: [\"*.example.com\"], ports: [{number: 443, name: https, protocol: HTTPS}]}\n---\n"
            + &rule("wild", "{host: api.example.com}");
        assert_eq!(
            run("destinationrule.SubsetSelectPodAnalyzer", &yaml),
            vec![
                "Warning [IST0174] (DestinationRule db/fake) The host fake.db.svc.cluster.local defined in the DestinationRule does not match any services in the mesh.",
                "Error [IST0173] (DestinationRule db/ingress) The Subset none defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
            ]
        );
    }

    #[test]
    fn workload_entries_are_workloads() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm1, namespace: db}\n\
                    spec: {address: 10.0.0.5, labels: {app: pg, version: v1}}\n---\n\
                    apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: pg, namespace: db}\n\
                    spec: {hosts: [pg.db.svc.cluster.local], ports: [{number: 5432, name: tcp, protocol: TCP}], workloadSelector: {labels: {app: pg}}, location: MESH_INTERNAL, resolution: STATIC}\n---\n"
            .to_string()
            + &rule(
                "pg",
                "{host: pg, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}",
            );
        let got = run("destinationrule.SubsetSelectPodAnalyzer", &yaml);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("The Subset v2 defined"), "{got:?}");
    }
}
