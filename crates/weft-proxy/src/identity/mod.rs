//! Workload identity: the proxy's own key and certificate, served to TLS contexts as
//! Istio's SDS secret `default`, obtained from weftd's CA and renewed before it expires.
//!
//! The key is generated here and never leaves the process: the CA sees a CSR naming
//! `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, and a bootstrap token
//! (`weft token create`) proves that namespace and service account. The certificate is
//! renewed at half its lifetime, jittered so that proxies started together do not renew
//! together ([`rotation`]).
//!
//! TLS contexts do not copy the certificate: the secret `default` is a handle on
//! [`Identity`], read at every handshake (rustls certificate resolvers). A renewal is in
//! force for the next handshake without rebuilding any context or pool: new connections
//! use the new certificate, open ones keep going. Until the first certificate arrives,
//! contexts that need it refuse to connect, as Envoy's warming does; plaintext works.
//! `ROOTCA`, the trust bundle, is an ordinary SDS secret from weftd.

pub mod csr;
pub mod issued;
pub mod resolver;
pub mod rotation;
#[cfg(test)]
pub mod test_ca;
pub mod verify;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use weft_ca_api::SpiffeId;

pub use issued::Issued;

/// Istio's name for the workload certificate secret; resolved locally, never over SDS.
pub const DEFAULT_SECRET: &str = "default";
/// Istio's name for the trust bundle secret (fetched from weftd over SDS).
pub const ROOT_SECRET: &str = "ROOTCA";
/// `--trust-domain` when not given, as in Istio.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// `--cert-ttl` when not given: Istio's default workload certificate lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Secret names the proxy provides itself; the xDS clients never subscribe to these.
pub fn is_local_secret(name: &str) -> bool {
    name == DEFAULT_SECRET
}

/// Where the bootstrap token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token-file`: read before every request, so a token written later is picked up.
    File(PathBuf),
    /// `WEFT_TOKEN`.
    Value(String),
}

/// How to obtain the workload certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: SpiffeId,
    /// `host:port` (or a URL) of the CA's gRPC endpoint.
    pub ca_addr: String,
    pub token: TokenSource,
    /// Requested lifetime; the CA may shorten it.
    pub ttl: Duration,
}

impl Config {
    /// The identity from the node metadata (`NAMESPACE`, `SERVICE_ACCOUNT`, as `weft
    /// bootstrap envoy` writes them; Istio's defaults `default` and `default`), with
    /// explicit `namespace`/`service_account` winning.
    pub fn from_metadata(
        metadata: &serde_json::Map<String, serde_json::Value>,
        trust_domain: &str,
        namespace: Option<&str>,
        service_account: Option<&str>,
    ) -> SpiffeId {
        let meta = |k: &str| {
            metadata
                .get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        };
        SpiffeId::new(
            trust_domain,
            namespace.or(meta("NAMESPACE")).unwrap_or("default"),
            service_account
                .or(meta("SERVICE_ACCOUNT"))
                .unwrap_or("default"),
        )
    }
}

/// The bootstrap token a bootstrap file carries for Envoy (`weft bootstrap envoy
/// --bootstrap-token`): `authorization: Bearer <token>` in the ADS service's
/// `initial_metadata`, so one bootstrap serves either data plane.
pub fn token_from_bootstrap(bootstrap: &serde_json::Value) -> Option<String> {
    bootstrap
        .pointer("/dynamic_resources/ads_config/grpc_services")?
        .as_array()?
        .iter()
        .filter_map(|g| g.get("initial_metadata")?.as_array())
        .flatten()
        .filter(|m| m.get("key").and_then(|k| k.as_str()) == Some("authorization"))
        .filter_map(|m| m.get("value")?.as_str()?.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .find(|t| !t.is_empty())
}

/// A lifetime like `24h`, `90m`, `20s` or `2d` (`--cert-ttl`).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (a number with s, m, h or d)"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h or d)")),
    };
    if secs == 0 {
        return Err("a certificate lifetime must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

/// The workload's identity and its current certificate, shared by the renewal task
/// (writer) and every TLS context (readers).
#[derive(Debug)]
pub struct Identity {
    id: SpiffeId,
    current: ArcSwapOption<Issued>,
    /// Bumped on every new certificate.
    generation: watch::Sender<u64>,
}

impl Identity {
    pub fn new(id: SpiffeId) -> Arc<Identity> {
        Arc::new(Identity {
            id,
            current: ArcSwapOption::empty(),
            generation: watch::channel(0).0,
        })
    }

    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// The certificate in force; None until the CA has answered once.
    pub fn current(&self) -> Option<Arc<Issued>> {
        self.current.load_full()
    }

    /// Puts `issued` in force for the next handshakes.
    pub fn install(&self, issued: Issued) {
        self.current.store(Some(Arc::new(issued)));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Changes whenever a certificate is installed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// The secret `default` as it sits in the proxy's secret map: a handle on the identity,
/// equal only to itself, so a renewal never looks like a config change.
#[derive(Clone, Debug)]
pub struct LocalCertificate(pub Arc<Identity>);

impl PartialEq for LocalCertificate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LocalCertificate {}

impl Serialize for LocalCertificate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View {
            spiffe_id: String,
            serial: Option<String>,
            not_after_unix: Option<u64>,
        }
        let current = self.0.current();
        View {
            spiffe_id: self.0.id.to_string(),
            serial: current.as_ref().map(|c| c.serial.clone()),
            not_after_unix: current.as_ref().and_then(|c| {
                c.not_after
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs())
            }),
        }
        .serialize(s)
    }
}

/// `secrets` with the locally provided ones added (the identity's `default`).
pub fn with_local_secrets(
    secrets: &std::collections::BTreeMap<String, Arc<crate::model::Secret>>,
    identity: Option<&Arc<Identity>>,
) -> std::collections::BTreeMap<String, Arc<crate::model::Secret>> {
    let mut all = secrets.clone();
    if let Some(identity) = identity {
        all.insert(
            DEFAULT_SECRET.to_string(),
            Arc::new(crate::model::Secret::Workload(LocalCertificate(
                identity.clone(),
            ))),
        );
    }
    all
}

/// Starts the renewal task for `config` and puts the identity into `proxy`'s snapshots.
pub fn start(proxy: &crate::state::Proxy, config: Config) -> Arc<Identity> {
    let identity = Identity::new(config.id.clone());
    proxy.set_identity(identity.clone());
    tokio::spawn(rotation::run(identity.clone(), config));
    identity
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_in_the_envoy_bootstrap() {
        let b = json!({"dynamic_resources": {"ads_config": {"grpc_services": [{
            "envoy_grpc": {"cluster_name": "xds-grpc"},
            "initial_metadata": [{"key": "authorization", "value": "Bearer weft-bt-1"}]}]}}});
        assert_eq!(token_from_bootstrap(&b).as_deref(), Some("weft-bt-1"));
        let none = json!({"dynamic_resources": {"ads_config": {"grpc_services": [{}]}}});
        assert_eq!(token_from_bootstrap(&none), None);
    }

    #[test]
    fn lifetimes() {
        assert_eq!(parse_ttl("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_ttl("24h"), Ok(DEFAULT_TTL));
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("1w").unwrap_err().contains("unknown unit"));
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn identity_from_metadata_and_flags() {
        let m = json!({"NAMESPACE": "shop", "SERVICE_ACCOUNT": "reviews"});
        let m = m.as_object().unwrap();
        assert_eq!(
            Config::from_metadata(m, "cluster.local", None, None).to_string(),
            "spiffe://cluster.local/ns/shop/sa/reviews"
        );
        assert_eq!(
            Config::from_metadata(m, "example.org", Some("other"), Some("sa1")).to_string(),
            "spiffe://example.org/ns/other/sa/sa1"
        );
        assert_eq!(
            Config::from_metadata(&Default::default(), "cluster.local", None, None).to_string(),
            "spiffe://cluster.local/ns/default/sa/default"
        );
    }
}
