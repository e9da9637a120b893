//! `istioctl analyze` for Weft: IST-coded messages about a set of resources.
//!
//! Analyzers look across resources (a VirtualService and the DestinationRule it names),
//! unlike validation, which looks at one resource at a time. Each analyzer carries Istio's
//! name, so `weft analyze` and istioctl agree on what ran and what it found.

pub mod context;
mod destination_rule;
mod envoy_filter;
mod gateway;
pub mod hosts;
pub mod mesh;
pub mod messages;
mod route_rules;
mod schema;
mod service_entry;
mod telemetry;
mod virtual_service;

use crate::resource::Resource;
use context::Context;
pub use mesh::MeshConfig;
pub use messages::MessageType;
use serde::Serialize;
use std::fmt;

/// Severity, as istioctl prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        })
    }
}

/// One analyzer finding, with the fields `istioctl analyze -o json` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// "IST0101".
    pub code: &'static str,
    pub level: Level,
    pub message: String,
    /// "Kind namespace/name" of the resource the message is about ("Kind name" when the
    /// resource has no namespace).
    pub origin: String,
    pub documentation_url: String,
}

impl fmt::Display for Message {
    /// `Error [IST0101] (VirtualService default/reviews) Referenced host+subset ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] ({}) {}",
            self.level, self.code, self.origin, self.message
        )
    }
}

/// Settings that change what analyzers report (the parts of MeshConfig they read).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Mesh root namespace; overrides `mesh.root_namespace` when set.
    pub root_namespace: Option<String>,
    /// The mesh config in force (Istio's defaults unless given).
    pub mesh: MeshConfig,
}

/// One analyzer: Istio's name for it and the function that runs it.
pub struct Analyzer {
    /// Istio's analyzer name, e.g. "virtualservice.DestinationRuleAnalyzer".
    pub name: &'static str,
    /// Other names the same analyzer is known by (Istio's Go type name where it differs
    /// from the registered name), accepted by [`analyze_only`].
    pub aliases: &'static [&'static str],
    pub description: &'static str,
    run: fn(&Context<'_>, &mut Vec<Message>),
}

impl fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analyzer")
            .field("name", &self.name)
            .finish()
    }
}

impl Analyzer {
    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// Every analyzer Weft runs, in the order their messages are produced.
pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "gateway.IngressGatewayPortAnalyzer",
        aliases: &[],
        description: "Checks a gateway's ports against the gateway's Kubernetes service ports",
        run: gateway::ingress_gateway_port,
    },
    Analyzer {
        name: "gateway.ConflictingGatewayAnalyzer",
        aliases: &[],
        description: "Checks a gateway's selector, port number and hosts",
        run: gateway::conflicting_gateways,
    },
    Analyzer {
        name: "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        aliases: &[],
        description: "Checks if multiple virtual services associated with the mesh gateway have conflicting hosts",
        run: virtual_service::conflicting_mesh_gateway_hosts,
    },
    Analyzer {
        name: "virtualservice.DestinationRuleAnalyzer",
        aliases: &[],
        description: "Checks the destination rules associated with each virtual service",
        run: virtual_service::destination_rules,
    },
    Analyzer {
        name: "virtualservice.GatewayAnalyzer",
        aliases: &[],
        description: "Checks the gateways associated with each virtual service",
        run: virtual_service::gateways,
    },
    Analyzer {
        name: "virtualservice.JWTClaimRouteAnalyzer",
        aliases: &[],
        description: "Checks that VirtualServices routing on JWT claims have a RequestAuthentication",
        run: virtual_service::jwt_claim_routes,
    },
    Analyzer {
        name: "schema.ValidationAnalyzer",
        aliases: &[],
        description: "Checks every resource against Istio's validation rules",
        run: schema::validation_errors,
    },
    Analyzer {
        name: "schema.ValidationAnalyzer.VirtualService",
        aliases: &["schemaValidation.CollectionValidationAnalyzer"],
        description: "Checks VirtualService rules for matches that earlier rules already take",
        run: route_rules::unreachable_rules,
    },
    Analyzer {
        name: "destinationrule.CaCertificateAnalyzer",
        aliases: &[],
        description: "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL",
        run: destination_rule::ca_certificates,
    },
    Analyzer {
        name: "destinationrule.SubsetSelectPodAnalyzer",
        aliases: &["destinationrule.PodNotSelectedAnalyzer"],
        description: "Checks that DestinationRule hosts name a service and subsets select workloads",
        run: destination_rule::subsets_select_workloads,
    },
    Analyzer {
        name: "serviceentry.Analyzer",
        aliases: &["serviceentry.ProtocolAddressesAnalyzer"],
        description: "Checks that TCP ServiceEntries have addresses",
        run: service_entry::protocol_addresses,
    },
    Analyzer {
        name: "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
        aliases: &[],
        description: "Checks if multiple ServiceEntries define the same host and port with different protocols",
        run: service_entry::conflicting_protocols,
    },
    Analyzer {
        name: "envoyfilter.EnvoyPatchAnalyzer",
        aliases: &[],
        description: "Checks EnvoyFilter patch operations",
        run: envoy_filter::envoy_patches,
    },
    Analyzer {
        name: "telemetry.ProviderAnalyzer",
        aliases: &[],
        description: "Checks that access logging in Telemetry resources has a provider",
        run: telemetry::providers,
    },
    Analyzer {
        name: "telemetry.DefaultSelectorAnalyzer",
        aliases: &[],
        description: "Checks that at most one Telemetry per namespace has no selector",
        run: telemetry::default_selectors,
    },
    Analyzer {
        name: "telemetry.LightstepAnalyzer",
        aliases: &[],
        description: "Checks for tracing through the deprecated Lightstep provider",
        run: telemetry::lightstep,
    },
];

/// Runs every analyzer over `resources` and returns distinct messages sorted by origin
/// and code.
pub fn analyze(resources: &[Resource], options: &Options) -> Vec<Message> {
    run(resources, options, ANALYZERS.iter())
}

/// Runs only the analyzer called `name` (see [`ANALYZERS`]); `None` if there is none.
pub fn analyze_only(resources: &[Resource], options: &Options, name: &str) -> Option<Vec<Message>> {
    let analyzer = ANALYZERS.iter().find(|a| a.answers_to(name))?;
    Some(run(resources, options, std::iter::once(analyzer)))
}

fn run<'a>(
    resources: &[Resource],
    options: &Options,
    analyzers: impl Iterator<Item = &'a Analyzer>,
) -> Vec<Message> {
    let root = options
        .root_namespace
        .as_deref()
        .unwrap_or(&options.mesh.root_namespace);
    let ctx = Context::new(resources, &options.mesh, root);
    let mut out = Vec::new();
    for analyzer in analyzers {
        (analyzer.run)(&ctx, &mut out);
    }
    // One finding reported from several places (say, once per patch of the same
    // EnvoyFilter) is one finding to the user.
    out.sort_by(|a, b| (&a.origin, a.code, &a.message).cmp(&(&b.origin, b.code, &b.message)));
    out.dedup();
    out
}

/// Helpers for the analyzers' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{analyze_only, Options};

    /// Runs one analyzer over YAML and returns its messages as istioctl prints them.
    pub fn run_with(analyzer: &str, yaml: &str, options: &Options) -> Vec<String> {
        let resources: Vec<_> = crate::parse_documents(yaml)
            .into_iter()
            .map(|r| r.expect("test YAML parses"))
            .collect();
        analyze_only(&resources, options, analyzer)
            .expect("analyzer exists")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// [`run_with`] with default options.
    pub fn run(analyzer: &str, yaml: &str) -> Vec<String> {
        run_with(analyzer, yaml, &Options::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_documents;

    #[test]
    fn analyzer_names_are_unique_and_resolvable() {
        let mut names: Vec<&str> = ANALYZERS
            .iter()
            .flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied()))
            .collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total);
        assert!(analyze_only(&[], &Options::default(), "no.SuchAnalyzer").is_none());
        assert_eq!(
            analyze_only(
                &[],
                &Options::default(),
                "serviceentry.ProtocolAddressesAnalyzer"
            ),
            Some(Vec::new())
        );
    }

    #[test]
    fn analyze_runs_everything_and_reports_each_finding_once() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
                    metadata: {name: r, namespace: default}\n\
                    spec: {hosts: [r], gateways: [nope], http: [{route: [{destination: {host: r, subset: v1}}]}, {route: [{destination: {host: r, subset: v1}}]}]}\n";
        let resources: Vec<Resource> = parse_documents(yaml)
            .into_iter()
            .map(|r| r.expect("parses"))
            .collect();
        let codes: Vec<(&str, String)> = analyze(&resources, &Options::default())
            .into_iter()
            .map(|m| (m.code, m.message))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("IST0101", "Referenced gateway not found: \"nope\"".to_string()),
                (
                    "IST0101",
                    "Referenced host+subset in destinationrule not found: \"r+v1\"".to_string()
                ),
                (
                    "IST0130",
                    "VirtualService rule #1 not used (only the last rule can have no matches)."
                        .to_string()
                ),
                (
                    "IST0132",
                    "one or more host [r] defined in VirtualService default/r not found in Gateway default/nope."
                        .to_string()
                ),
            ]
        );
    }
}
