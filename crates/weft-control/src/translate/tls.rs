//! TLS transport sockets: upstream (DestinationRule `tls`) and downstream (Gateway server
//! `tls`). Certificates are referenced by Istio's SDS names and delivered over ADS (see
//! [`super::sds`]): `kubernetes://<credentialName>`, `file-cert:<cert>~<key>`,
//! `file-root:<ca>`.

use super::proto::{ads, any, seconds};
use crate::model::MeshSnapshot;
use envoy_types::pb::envoy::config::core::v3::{
    data_source, transport_socket, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    subject_alt_name_matcher::SanType,
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::google::protobuf::BoolValue;
use weft_config::kubernetes::secret::{KeyAndCert, Secret, CA_SECRET_SUFFIX};
use weft_config::networking::destination_rule::{ClientTlsMode, ClientTlsSettings};
use weft_config::networking::gateway::{ServerTlsMode, ServerTlsSettings};
use weft_config::Spec;

const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
pub const DOWNSTREAM_TLS_CONTEXT: &str =
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub const UPSTREAM_TLS_CONTEXT: &str =
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
/// The OS trust store, for upstream TLS without `caCertificates`.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Istio's SDS name prefixes: a Secret (credentialName), a certificate and key pair from
/// files, a CA bundle from a file.
pub const KUBERNETES_PREFIX: &str = "kubernetes://";
pub const FILE_CERT_PREFIX: &str = "file-cert:";
pub const FILE_ROOT_PREFIX: &str = "file-root:";

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

/// A secret fetched over the ADS stream that carries the listener or cluster.
fn sds(name: String) -> SdsSecretConfig {
    SdsSecretConfig {
        name,
        sds_config: Some(ads()),
    }
}

/// How long a cluster waits for its secrets before it starts without them (its TLS
/// connections then fail). Envoy pauses CDS, ACKs included, while any cluster warms, so a
/// certificate that never arrives (a file weftd cannot read) would otherwise hold every
/// later cluster update of the proxy; listeners warm one by one and keep Envoy's default,
/// except mesh mTLS ones, which share the clusters' configs ([`istio_mutual_downstream`]).
pub const UPSTREAM_SDS_FETCH_TIMEOUT_SECS: i64 = 3;

/// [`sds`] for an upstream TLS context: see [`UPSTREAM_SDS_FETCH_TIMEOUT_SECS`].
fn upstream_sds(mut config: SdsSecretConfig) -> SdsSecretConfig {
    if let Some(source) = config.sds_config.as_mut() {
        source.initial_fetch_timeout = Some(seconds(UPSTREAM_SDS_FETCH_TIMEOUT_SECS));
    }
    config
}

fn file_cert(chain: Option<&String>, key: Option<&String>) -> Option<SdsSecretConfig> {
    match (chain, key) {
        (Some(chain), Some(key)) => Some(sds(format!("{FILE_CERT_PREFIX}{chain}~{key}"))),
        _ => None,
    }
}

fn file_root(path: &str) -> String {
    format!("{FILE_ROOT_PREFIX}{path}")
}

/// `kubernetes://<name>`: a credential's certificate and key.
fn kubernetes(name: &str) -> String {
    format!("{KUBERNETES_PREFIX}{name}")
}

/// `kubernetes://<name>-cacert`: the CA of credential `name`, Istio's naming.
fn kubernetes_ca(name: &str) -> String {
    let base = name.strip_suffix(CA_SECRET_SUFFIX).unwrap_or(name);
    format!("{KUBERNETES_PREFIX}{base}{CA_SECRET_SUFFIX}")
}

/// Why a `credentialName` cannot be used; the server's TLS is left out.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("secret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("secret {namespace}/{name}: {source}")]
    Unusable {
        namespace: String,
        name: String,
        source: weft_config::kubernetes::secret::CredentialError,
    },
}

/// The Secrets a resource's `credentialName` may name: those in one namespace.
///
/// Istio looks them up in the namespace of the gateway workload; Weft has no workload
/// namespace for a Gateway resource's servers, so it uses the Gateway's own namespace
/// (the same thing in Istio's usual layout, where both sit in `istio-system`).
pub struct Secrets<'a> {
    snapshot: &'a MeshSnapshot,
    namespace: &'a str,
}

impl<'a> Secrets<'a> {
    pub fn new(snapshot: &'a MeshSnapshot, namespace: &'a str) -> Self {
        Secrets {
            snapshot,
            namespace,
        }
    }

    fn find(&self, name: &str) -> Option<&'a Secret> {
        self.snapshot
            .resources
            .iter()
            .filter(|r| r.metadata.namespace == self.namespace && r.metadata.name == name)
            .find_map(|r| match &r.spec {
                Spec::Secret(s) => Some(s.as_ref()),
                _ => None,
            })
    }

    fn get(&self, name: &str) -> Result<&'a Secret, CredentialError> {
        self.find(name).ok_or_else(|| CredentialError::NotFound {
            namespace: self.namespace.to_string(),
            name: name.to_string(),
        })
    }

    fn unusable(
        &self,
        name: &str,
    ) -> impl FnOnce(weft_config::kubernetes::secret::CredentialError) -> CredentialError {
        let (namespace, name) = (self.namespace.to_string(), name.to_string());
        move |source| CredentialError::Unusable {
            namespace,
            name,
            source,
        }
    }

    /// Credential `name`'s certificate chain and private key.
    pub fn key_and_cert(&self, name: &str) -> Result<KeyAndCert, CredentialError> {
        self.get(name)?.key_and_cert().map_err(self.unusable(name))
    }

    /// The CA of credential `name`, as Istio finds it: the `<name>-cacert` secret first,
    /// then `name` itself.
    pub fn ca(&self, name: &str) -> Result<Vec<u8>, CredentialError> {
        let base = name.strip_suffix(CA_SECRET_SUFFIX).unwrap_or(name);
        let ca_name = format!("{base}{CA_SECRET_SUFFIX}");
        let (secret, found) = match self.find(&ca_name) {
            Some(s) => (s, ca_name),
            None => (self.get(base)?, base.to_string()),
        };
        secret.ca_certificate().map_err(self.unusable(&found))
    }
}

/// `kubernetes://name` is the SDS resource name form of a plain secret name.
fn secret_name(credential: &str) -> &str {
    credential
        .strip_prefix(KUBERNETES_PREFIX)
        .unwrap_or(credential)
}

/// SANs that look like URIs (SPIFFE ids) are matched as URI SANs, the rest as DNS names.
/// A CA comes over SDS (its name is `ca`); with SANs to check too, the two are combined as
/// Istio does. Without a CA, an upstream is verified against the OS roots (Istio's
/// VERIFY_CERTIFICATE_AT_CLIENT default) at the bundle path of Debian-family systems, which
/// Istio's proxy image uses too (Envoy refuses SAN checks without a trusted CA); a
/// downstream without one is not verified.
fn validation(
    ca: Option<String>,
    sans: &[String],
    system_roots: bool,
) -> Option<ValidationContextType> {
    let matchers: Vec<SubjectAltNameMatcher> = sans
        .iter()
        .map(|san| SubjectAltNameMatcher {
            san_type: if san.contains("://") {
                SanType::Uri
            } else {
                SanType::Dns
            } as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(san.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    match ca {
        Some(name) if matchers.is_empty() => Some(
            ValidationContextType::ValidationContextSdsSecretConfig(sds(name)),
        ),
        Some(name) => Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: matchers,
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(sds(name)),
                ..Default::default()
            },
        )),
        None if system_roots => Some(ValidationContextType::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(file(SYSTEM_CA_BUNDLE)),
                match_typed_subject_alt_names: matchers,
                ..Default::default()
            },
        )),
        None => None,
    }
}

fn socket(config: envoy_types::pb::google::protobuf::Any) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(config)),
    }
}

/// Origination for SIMPLE and MUTUAL. DISABLE is plaintext; ISTIO_MUTUAL needs the mesh's
/// certificates over SDS, which the security work supplies, so it stays plaintext here.
/// `sni` defaults to the service host, as Istio does for external services.
///
/// Certificates are SDS references: `credentialName: X` names `kubernetes://X` (the client
/// certificate, MUTUAL only) and `kubernetes://X-cacert` (the CA), read from the proxy's
/// namespace when served; files name `file-cert:<cert>~<key>` and `file-root:<ca>`.
pub fn upstream(settings: &ClientTlsSettings, default_sni: &str) -> Option<TransportSocket> {
    let mutual = match settings.mode {
        ClientTlsMode::Simple => false,
        ClientTlsMode::Mutual => true,
        _ => return None,
    };
    let credential = settings
        .credential_name
        .as_deref()
        .map(secret_name)
        .filter(|c| !c.is_empty());
    let certs = match credential {
        Some(name) if mutual => vec![sds(kubernetes(name))],
        Some(_) => Vec::new(),
        None if mutual => file_cert(
            settings.client_certificate.as_ref(),
            settings.private_key.as_ref(),
        )
        .into_iter()
        .collect(),
        None => Vec::new(),
    };
    let ca = match credential {
        Some(name) => Some(kubernetes_ca(name)),
        None => settings.ca_certificates.as_deref().map(file_root),
    };
    let verify = !settings.insecure_skip_verify.unwrap_or(false);
    let validation_context_type = verify
        .then(|| validation(ca, &settings.subject_alt_names, true))
        .flatten()
        .map(|v| match v {
            ValidationContextType::ValidationContextSdsSecretConfig(c) => {
                ValidationContextType::ValidationContextSdsSecretConfig(upstream_sds(c))
            }
            ValidationContextType::CombinedValidationContext(mut c) => {
                c.validation_context_sds_secret_config =
                    c.validation_context_sds_secret_config.map(upstream_sds);
                ValidationContextType::CombinedValidationContext(c)
            }
            other => other,
        });
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: certs.into_iter().map(upstream_sds).collect(),
            validation_context_type,
            ..Default::default()
        }),
        sni: settings
            .sni
            .clone()
            .unwrap_or_else(|| default_sni.trim_start_matches("*.").to_string()),
        ..Default::default()
    };
    Some(socket(any(UPSTREAM_TLS_CONTEXT, &context)))
}

/// Termination for SIMPLE, MUTUAL and OPTIONAL_MUTUAL gateway servers; `Ok(None)` for modes
/// that do not terminate here (PASSTHROUGH, AUTO_PASSTHROUGH) or need the mesh CA
/// (ISTIO_MUTUAL). Certificates are SDS references to files or to `credentialName(s)`; a
/// credential must exist and be usable in `secrets` now, or this is an error and Istio
/// leaves the server's filter chain out rather than serve it without its certificate.
pub fn downstream(
    settings: &ServerTlsSettings,
    alpn: &[&str],
    secrets: &Secrets,
) -> Result<Option<TransportSocket>, CredentialError> {
    let require_client = match settings.mode {
        ServerTlsMode::Simple => None,
        ServerTlsMode::Mutual => Some(true),
        ServerTlsMode::OptionalMutual => Some(false),
        _ => return Ok(None),
    };
    let mut certs: Vec<SdsSecretConfig> = file_cert(
        settings.server_certificate.as_ref(),
        settings.private_key.as_ref(),
    )
    .into_iter()
    .collect();
    for c in &settings.tls_certificates {
        certs.extend(file_cert(
            c.server_certificate.as_ref(),
            c.private_key.as_ref(),
        ));
    }
    let credentials: Vec<&str> = settings
        .credential_name
        .iter()
        .chain(&settings.credential_names)
        .map(|c| secret_name(c))
        .filter(|c| !c.is_empty())
        .collect();
    for name in &credentials {
        secrets.key_and_cert(name)?;
        certs.push(sds(kubernetes(name)));
    }
    let mut ca = settings.ca_certificates.as_deref().map(file_root);
    if require_client.is_some() {
        // Verifying clients needs a CA: without one, Istio does not serve the server.
        let ca_credential = settings
            .ca_cert_credential_name
            .as_deref()
            .map(secret_name)
            .or(credentials.first().copied());
        if let Some(name) = ca_credential {
            secrets.ca(name)?;
            ca = Some(kubernetes_ca(name));
        }
    }
    let validation_context_type =
        require_client.and_then(|_| validation(ca, &settings.subject_alt_names, false));
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: certs,
            validation_context_type,
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        require_client_certificate: require_client.map(|value| BoolValue { value }),
        ..Default::default()
    };
    Ok(Some(socket(any(DOWNSTREAM_TLS_CONTEXT, &context))))
}

/// The mesh's mutual TLS towards a sidecar: the workload certificate (SDS `default`), the
/// peer checked against the trust bundle (SDS `ROOTCA`) and, when known, the SPIFFE
/// identities the service runs as.
pub fn istio_mutual_upstream(sni: String, sans: &[String], alpn: &[&str]) -> TransportSocket {
    use super::mtls::{ROOT_SECRET, WORKLOAD_SECRET};
    let validation_context_type =
        validation(Some(ROOT_SECRET.to_string()), sans, false).map(|v| match v {
            ValidationContextType::ValidationContextSdsSecretConfig(c) => {
                ValidationContextType::ValidationContextSdsSecretConfig(upstream_sds(c))
            }
            ValidationContextType::CombinedValidationContext(mut c) => {
                c.validation_context_sds_secret_config =
                    c.validation_context_sds_secret_config.map(upstream_sds);
                ValidationContextType::CombinedValidationContext(c)
            }
            other => other,
        });
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![upstream_sds(sds(WORKLOAD_SECRET.into()))],
            validation_context_type,
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        sni,
        ..Default::default()
    };
    socket(any(UPSTREAM_TLS_CONTEXT, &context))
}

/// The mesh's mutual TLS on an inbound port: the workload certificate, a client
/// certificate required and checked against the trust bundle.
///
/// Its SDS configs equal [`istio_mutual_upstream`]'s: Envoy keeps one subscription per
/// config and name, and a second one (another `initial_fetch_timeout`) for names it already
/// watches gets nothing until weftd answers again, which delta xDS never asks for; the
/// inbound listener then warms until its fetch timeout and resets every handshake.
pub fn istio_mutual_downstream(alpn: &[&str]) -> TransportSocket {
    use super::mtls::{ROOT_SECRET, WORKLOAD_SECRET};
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![upstream_sds(sds(WORKLOAD_SECRET.into()))],
            validation_context_type: Some(ValidationContextType::ValidationContextSdsSecretConfig(
                upstream_sds(sds(ROOT_SECRET.into())),
            )),
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    socket(any(DOWNSTREAM_TLS_CONTEXT, &context))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
