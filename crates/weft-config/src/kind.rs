//! The kinds Weft serves (Istio's, plus Kubernetes' core `Secret` that gateways read
//! certificates from): group, served versions, plural and short names.

use std::fmt;

/// One resource kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    VirtualService,
    DestinationRule,
    Gateway,
    ServiceEntry,
    WorkloadEntry,
    WorkloadGroup,
    Sidecar,
    EnvoyFilter,
    ProxyConfig,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication,
    Telemetry,
    WasmPlugin,
    /// Kubernetes' core `v1` Secret: certificates for `credentialName`.
    Secret,
}

/// What the API server and CLI need to know about a kind.
#[derive(Debug)]
pub struct KindInfo {
    pub kind: Kind,
    pub name: &'static str,
    pub group: &'static str,
    /// Served versions; the first is the storage (preferred) version.
    pub versions: &'static [&'static str],
    pub plural: &'static str,
    pub short_names: &'static [&'static str],
}

const NET3: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SEC: &[&str] = &["v1", "v1beta1"];

/// Every kind, in the order `weft get all` lists them.
pub const KINDS: &[KindInfo] = &[
    info(
        Kind::Gateway,
        "Gateway",
        NETWORKING,
        NET3,
        "gateways",
        &["gw"],
    ),
    info(
        Kind::VirtualService,
        "VirtualService",
        NETWORKING,
        NET3,
        "virtualservices",
        &["vs"],
    ),
    info(
        Kind::DestinationRule,
        "DestinationRule",
        NETWORKING,
        NET3,
        "destinationrules",
        &["dr"],
    ),
    info(
        Kind::ServiceEntry,
        "ServiceEntry",
        NETWORKING,
        NET3,
        "serviceentries",
        &["se"],
    ),
    info(
        Kind::WorkloadEntry,
        "WorkloadEntry",
        NETWORKING,
        NET3,
        "workloadentries",
        &["we"],
    ),
    info(
        Kind::WorkloadGroup,
        "WorkloadGroup",
        NETWORKING,
        NET3,
        "workloadgroups",
        &["wg"],
    ),
    info(Kind::Sidecar, "Sidecar", NETWORKING, NET3, "sidecars", &[]),
    info(
        Kind::EnvoyFilter,
        "EnvoyFilter",
        NETWORKING,
        &["v1alpha3"],
        "envoyfilters",
        &[],
    ),
    info(
        Kind::ProxyConfig,
        "ProxyConfig",
        NETWORKING,
        &["v1beta1"],
        "proxyconfigs",
        &[],
    ),
    info(
        Kind::PeerAuthentication,
        "PeerAuthentication",
        SECURITY,
        SEC,
        "peerauthentications",
        &["pa"],
    ),
    info(
        Kind::AuthorizationPolicy,
        "AuthorizationPolicy",
        SECURITY,
        SEC,
        "authorizationpolicies",
        &["ap"],
    ),
    info(
        Kind::RequestAuthentication,
        "RequestAuthentication",
        SECURITY,
        SEC,
        "requestauthentications",
        &["ra"],
    ),
    info(
        Kind::Telemetry,
        "Telemetry",
        TELEMETRY,
        &["v1", "v1alpha1"],
        "telemetries",
        &["telemetry"],
    ),
    info(
        Kind::WasmPlugin,
        "WasmPlugin",
        EXTENSIONS,
        &["v1alpha1"],
        "wasmplugins",
        &[],
    ),
    info(Kind::Secret, "Secret", CORE, &["v1"], "secrets", &[]),
];

pub const NETWORKING: &str = "networking.istio.io";
pub const SECURITY: &str = "security.istio.io";
pub const TELEMETRY: &str = "telemetry.istio.io";
pub const EXTENSIONS: &str = "extensions.istio.io";
/// Kubernetes' core group: empty, so its apiVersion is the bare version (`v1`) and its API
/// paths live under `/api/{version}` instead of `/apis/{group}/{version}`.
pub const CORE: &str = "";

const fn info(
    kind: Kind,
    name: &'static str,
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    short_names: &'static [&'static str],
) -> KindInfo {
    KindInfo {
        kind,
        name,
        group,
        versions,
        plural,
        short_names,
    }
}

impl Kind {
    pub fn info(self) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|i| i.kind == self)
            .expect("every kind is in KINDS")
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Finds a kind by its exact `kind:` name ("VirtualService").
    pub fn from_kind_name(name: &str) -> Option<Kind> {
        KINDS.iter().find(|i| i.name == name).map(|i| i.kind)
    }

    /// Finds a kind the way kubectl does on the command line: kind name, plural or short
    /// name, any case, singular or plural ("vs", "virtualservice", "VirtualServices").
    pub fn lookup(word: &str) -> Option<Kind> {
        let w = word.to_ascii_lowercase();
        let w = w.split('.').next().unwrap_or_default();
        KINDS
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(w) || i.plural == w || i.short_names.contains(&w))
            .map(|i| i.kind)
    }

    /// Finds a kind by API group and plural, as in `/apis/{group}/{version}/.../{plural}`.
    pub fn from_plural(group: &str, plural: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|i| i.group == group && i.plural == plural)
            .map(|i| i.kind)
    }

    /// The apiVersion a stored resource is written back with ("networking.istio.io/v1",
    /// or "v1" for the core group).
    pub fn preferred_api_version(self) -> String {
        let i = self.info();
        api_version(i.group, i.versions[0])
    }

    /// Whether `api_version` ("group/version", or a bare "version" in the core group) is
    /// one this kind is served in.
    pub fn serves(self, api_version: &str) -> bool {
        let i = self.info();
        let (g, v) = api_version.split_once('/').unwrap_or((CORE, api_version));
        g == i.group && i.versions.contains(&v)
    }

    /// Whether the kind is in Kubernetes' core group (served under `/api/{version}`).
    pub fn is_core(self) -> bool {
        self.info().group == CORE
    }

    /// Kinds holding private material (a Secret's keys): reading them needs the API token,
    /// and listings that cover "all" kinds leave them out, as `kubectl get all` does.
    pub fn is_sensitive(self) -> bool {
        self == Kind::Secret
    }

    /// Top-level fields that stand in for `spec` in kinds that have none (a Secret's
    /// `type`, `data`, `stringData`, `immutable`); `None` for kinds with a `spec`.
    pub fn top_level_fields(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Secret => Some(crate::kubernetes::secret::FIELDS),
            _ => None,
        }
    }
}

/// `group/version`, or the bare version in the core group (`v1`).
pub fn api_version(group: &str, version: &str) -> String {
    if group == CORE {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_short_plural_and_name() {
        assert_eq!(Kind::lookup("vs"), Some(Kind::VirtualService));
        assert_eq!(Kind::lookup("VirtualServices"), Some(Kind::VirtualService));
        assert_eq!(
            Kind::lookup("authorizationpolicy"),
            Some(Kind::AuthorizationPolicy)
        );
        assert_eq!(Kind::lookup("ra"), Some(Kind::RequestAuthentication));
        assert_eq!(
            Kind::lookup("gateways.networking.istio.io"),
            Some(Kind::Gateway)
        );
        assert_eq!(Kind::lookup("pods"), None);
    }

    #[test]
    fn served_versions() {
        assert!(Kind::VirtualService.serves("networking.istio.io/v1alpha3"));
        assert!(!Kind::VirtualService.serves("security.istio.io/v1"));
        assert!(Kind::Telemetry.serves("telemetry.istio.io/v1alpha1"));
        assert!(!Kind::EnvoyFilter.serves("networking.istio.io/v1"));
        assert!(Kind::Secret.serves("v1"));
        assert!(!Kind::Secret.serves("networking.istio.io/v1"));
        assert!(!Kind::Gateway.serves("v1"));
        assert_eq!(Kind::Secret.preferred_api_version(), "v1");
    }

    #[test]
    fn secrets_are_core_and_found_like_kubectl_finds_them() {
        assert_eq!(Kind::lookup("secret"), Some(Kind::Secret));
        assert_eq!(Kind::lookup("secrets"), Some(Kind::Secret));
        assert_eq!(Kind::lookup("Secret"), Some(Kind::Secret));
        assert_eq!(Kind::from_plural("", "secrets"), Some(Kind::Secret));
        assert_eq!(Kind::from_plural("networking.istio.io", "secrets"), None);
        assert!(Kind::Secret.is_core() && !Kind::Gateway.is_core());
    }
}
