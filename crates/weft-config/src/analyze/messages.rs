//! The catalog of IST message codes Weft's analyzers emit, and Go-style template formatting.
//!
//! Codes, names, levels and templates are Istio's, so that `weft analyze` output reads exactly
//! like `istioctl analyze` and existing runbooks and searches keep working.

use super::{Level, Message};
use std::fmt::Write as _;

/// One kind of analyzer finding: its stable code and how its text is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageType {
    pub code: &'static str,
    pub name: &'static str,
    pub level: Level,
    /// Istio's template, with Go verbs (`%s`, `%q`, `%v`, `%d`).
    pub template: &'static str,
}

/// An argument for a template verb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Str(String),
    Int(i64),
    /// A list renders like Go's `%v` of a `[]string`: `[a b c]`.
    List(Vec<String>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Str(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Str(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg::Str(s.clone())
    }
}

impl From<u32> for Arg {
    fn from(n: u32) -> Self {
        Arg::Int(n.into())
    }
}

impl From<Vec<String>> for Arg {
    fn from(list: Vec<String>) -> Self {
        Arg::List(list)
    }
}

impl MessageType {
    /// Istio's documentation page for this code.
    pub fn documentation_url(&self) -> String {
        format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/",
            self.code.to_ascii_lowercase()
        )
    }

    /// Renders a finding about the resource named by `origin` ("Kind namespace/name").
    pub fn message(&self, origin: impl Into<String>, args: &[Arg]) -> Message {
        Message {
            code: self.code,
            level: self.level,
            message: render(self.template, args),
            origin: origin.into(),
            documentation_url: self.documentation_url(),
        }
    }
}

/// Fills Go verbs in `template` from `args`, in order. A missing argument renders as Go's
/// `%!s(MISSING)` would, so a catalog mistake shows up in the text instead of panicking.
pub fn render(template: &str, args: &[Arg]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut args = args.iter();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = chars.next() else {
            out.push('%');
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.next() {
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
            Some(Arg::Str(s)) if verb == 'q' => {
                let _ = write!(out, "{}", go_quote(s));
            }
            Some(Arg::Str(s)) => out.push_str(s),
            Some(Arg::Int(n)) => {
                let _ = write!(out, "{n}");
            }
            Some(Arg::List(items)) if verb == 'q' => {
                let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
                let _ = write!(out, "[{}]", quoted.join(" "));
            }
            Some(Arg::List(items)) => {
                let _ = write!(out, "[{}]", items.join(" "));
            }
        }
    }
    out
}

/// Go's `%q` for a string: double quotes, with backslash, quote and control characters escaped.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// IST0002; arguments: detail.
pub const DEPRECATED: MessageType = MessageType {
    code: "IST0002",
    name: "Deprecated",
    level: Level::Warning,
    template: "Deprecated: %s",
};

/// IST0106; arguments: err.
pub const SCHEMA_VALIDATION_ERROR: MessageType = MessageType {
    code: "IST0106",
    name: "SchemaValidationError",
    level: Level::Error,
    template: "Schema validation error: %v",
};

/// IST0101; arguments: reftype, refval.
pub const REFERENCED_RESOURCE_NOT_FOUND: MessageType = MessageType {
    code: "IST0101",
    name: "ReferencedResourceNotFound",
    level: Level::Error,
    template: "Referenced %s not found: %q",
};

/// IST0109; arguments: virtualServices, host.
pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: MessageType = MessageType {
    code: "IST0109",
    name: "ConflictingMeshGatewayVirtualServiceHosts",
    level: Level::Error,
    template: "The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
};

/// IST0128; arguments: destinationrule, namespace, mode, host.
pub const NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL: MessageType = MessageType {
    code: "IST0128",
    name: "NoServerCertificateVerificationDestinationLevel",
    level: Level::Warning,
    template: "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s",
};

/// IST0129; arguments: destinationrule, namespace, mode, host, port.
pub const NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL: MessageType = MessageType {
    code: "IST0129",
    name: "NoServerCertificateVerificationPortLevel",
    level: Level::Warning,
    template: "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s at port %s",
};

/// IST0130; arguments: ruleno, reason.
pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: MessageType = MessageType {
    code: "IST0130",
    name: "VirtualServiceUnreachableRule",
    level: Level::Warning,
    template: "VirtualService rule %v not used (%s).",
};

/// IST0131; arguments: ruleno, matchno, dupno.
pub const VIRTUAL_SERVICE_INEFFECTIVE_MATCH: MessageType = MessageType {
    code: "IST0131",
    name: "VirtualServiceIneffectiveMatch",
    level: Level::Info,
    template:
        "VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v).",
};

/// IST0132; arguments: host, virtualservice, gateway.
pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: MessageType = MessageType {
    code: "IST0132",
    name: "VirtualServiceHostNotFoundInGateway",
    level: Level::Warning,
    template: "one or more host %v defined in VirtualService %s not found in Gateway %s.",
};

/// IST0134, no arguments.
pub const SERVICE_ENTRY_ADDRESSES_REQUIRED: MessageType = MessageType {
    code: "IST0134",
    name: "ServiceEntryAddressesRequired",
    level: Level::Warning,
    template: "ServiceEntry addresses are required for this protocol.",
};

/// IST0145; arguments: gateway, selector, portnumber, hosts.
pub const CONFLICTING_GATEWAYS: MessageType = MessageType {
    code: "IST0145",
    name: "ConflictingGateways",
    level: Level::Error,
    template: "Conflict with gateways %s (workload selector %s, port %s, hosts %v).",
};

/// IST0149; arguments: key, gateway, pod.
pub const JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN: MessageType = MessageType {
    code: "IST0149",
    name: "JwtClaimBasedRoutingWithoutRequestAuthN",
    level: Level::Error,
    template: "The virtual service uses the JWT claim based routing (key: %s) but found no request authentication for the gateway (%s) pod (%s). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
};

/// IST0151, no arguments.
pub const ENVOY_FILTER_USES_RELATIVE_OPERATION: MessageType = MessageType {
    code: "IST0151",
    name: "EnvoyFilterUsesRelativeOperation",
    level: Level::Warning,
    template: "This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.",
};

/// IST0152, no arguments.
pub const ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY: MessageType = MessageType {
    code: "IST0152",
    name: "EnvoyFilterUsesReplaceOperationIncorrectly",
    level: Level::Error,
    template: "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.",
};

/// IST0153, no arguments.
pub const ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY: MessageType = MessageType {
    code: "IST0153",
    name: "EnvoyFilterUsesAddOperationIncorrectly",
    level: Level::Error,
    template: "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
};

/// IST0154, no arguments.
pub const ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY: MessageType = MessageType {
    code: "IST0154",
    name: "EnvoyFilterUsesRemoveOperationIncorrectly",
    level: Level::Error,
    template: "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
};

/// IST0155, no arguments.
pub const ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION: MessageType = MessageType {
    code: "IST0155",
    name: "EnvoyFilterUsesRelativeOperationWithProxyVersion",
    level: Level::Warning,
    template: "This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.",
};

/// IST0157; arguments: name, namespace.
pub const INVALID_TELEMETRY_PROVIDER: MessageType = MessageType {
    code: "IST0157",
    name: "InvalidTelemetryProvider",
    level: Level::Warning,
    template: "The Telemetry %v in namespace %q with empty providers will be ignored.",
};

/// IST0160; arguments: conflictingTelemetries, namespace.
pub const MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS: MessageType = MessageType {
    code: "IST0160",
    name: "MultipleTelemetriesWithoutWorkloadSelectors",
    level: Level::Error,
    template: "The Telemetries %v in namespace %q have no workload selector, which can lead to undefined behavior.",
};

/// IST0162; arguments: port, selector.
pub const GATEWAY_PORT_NOT_DEFINED_ON_SERVICE: MessageType = MessageType {
    code: "IST0162",
    name: "GatewayPortNotDefinedOnService",
    level: Level::Warning,
    template: "The gateway is listening on a target port (port %d) that is not defined in the Service associated with its workload instances (Pod selector %s). If you need to access the gateway port through the gateway Service, it will not be available.",
};

/// IST0165; arguments: virtualservice, gateway.
pub const REFERENCED_INTERNAL_GATEWAY: MessageType = MessageType {
    code: "IST0165",
    name: "ReferencedInternalGateway",
    level: Level::Warning,
    template: "Gateway reference in VirtualService %s is to an implementation-generated internal Gateway: %s.",
};

/// IST0173; arguments: subset.
pub const DESTINATION_RULE_SUBSET_NOT_SELECT_PODS: MessageType = MessageType {
    code: "IST0173",
    name: "DestinationRuleSubsetNotSelectPods",
    level: Level::Error,
    template: "The Subset %s defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
};

/// IST0174; arguments: host.
pub const UNKNOWN_DESTINATION_RULE_HOST: MessageType = MessageType {
    code: "IST0174",
    name: "UnknownDestinationRuleHost",
    level: Level::Warning,
    template: "The host %s defined in the DestinationRule does not match any services in the mesh.",
};

/// IST0177; arguments: serviceEntryNames, host, port, protocols.
pub const CONFLICTING_SERVICE_ENTRY_PROTOCOL: MessageType = MessageType {
    code: "IST0177",
    name: "ConflictingServiceEntryProtocol",
    level: Level::Warning,
    template: "Multiple ServiceEntries (%s) define the same host %q and port %d with conflicting protocols (%s).",
};

/// Every code this module defines, for listings and uniqueness checks.
pub const ALL: &[MessageType] = &[
    DEPRECATED,
    SCHEMA_VALIDATION_ERROR,
    REFERENCED_RESOURCE_NOT_FOUND,
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
    VIRTUAL_SERVICE_UNREACHABLE_RULE,
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    SERVICE_ENTRY_ADDRESSES_REQUIRED,
    CONFLICTING_GATEWAYS,
    JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
    ENVOY_FILTER_USES_RELATIVE_OPERATION,
    ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY,
    ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY,
    ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
    ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
    INVALID_TELEMETRY_PROVIDER,
    MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    REFERENCED_INTERNAL_GATEWAY,
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
    UNKNOWN_DESTINATION_RULE_HOST,
    CONFLICTING_SERVICE_ENTRY_PROTOCOL,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_istioctl() {
        let m = REFERENCED_RESOURCE_NOT_FOUND.message(
            "VirtualService default/reviews",
            &["host+subset in destinationrule".into(), "reviews+v9".into()],
        );
        assert_eq!(m.code, "IST0101");
        assert_eq!(m.level, Level::Error);
        assert_eq!(
            m.message,
            "Referenced host+subset in destinationrule not found: \"reviews+v9\""
        );
        assert_eq!(
            m.documentation_url,
            "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
        );
        assert_eq!(
            m.to_string(),
            "Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: \"reviews+v9\""
        );
    }

    #[test]
    fn lists_ints_and_missing_arguments() {
        assert_eq!(
            render(
                "hosts %v port %d",
                &[vec!["a".to_string(), "b".to_string()].into(), 80u32.into()]
            ),
            "hosts [a b] port 80"
        );
        assert_eq!(
            render("%q and %s", &["x\"y".into()]),
            "\"x\\\"y\" and %!s(MISSING)"
        );
        assert_eq!(render("100%% sure", &[]), "100% sure");
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut codes: Vec<&str> = ALL.iter().map(|t| t.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
        assert!(ALL
            .iter()
            .all(|t| t.code.len() == 7 && t.code.starts_with("IST")));
    }
}
