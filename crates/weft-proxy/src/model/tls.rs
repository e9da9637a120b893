//! TLS transport sockets: what a cluster originates (`UpstreamTlsContext`), what a filter
//! chain terminates (`DownstreamTlsContext`), and the SDS secrets both name.

use serde::Serialize;

/// Where a certificate or key comes from: an SDS secret fetched over ADS by name.
pub type SecretName = String;

/// Envoy's `UpstreamTlsContext`, as weft-proxy honours it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UpstreamTls {
    /// SNI sent in the ClientHello; empty = none (then only an IP-less check is possible).
    pub sni: String,
    /// Client certificate (`tls_certificate_sds_secret_configs`, MUTUAL).
    pub certificate: Option<SecretName>,
    /// How the server's certificate is verified; None = not verified (Envoy's behaviour
    /// without a validation context).
    pub validation: Option<Validation>,
    pub alpn: Vec<String>,
}

/// Envoy's `DownstreamTlsContext`, as weft-proxy honours it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DownstreamTls {
    /// Server certificates; the first usable one is served.
    pub certificates: Vec<SecretName>,
    /// Client certificates are verified against this when given.
    pub validation: Option<Validation>,
    /// `require_client_certificate`: a client without a valid certificate is refused.
    pub require_client_certificate: bool,
    pub alpn: Vec<String>,
}

/// A certificate validation context: trusted CA and SAN matchers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Validation {
    pub trusted_ca: Option<CaSource>,
    /// `match_typed_subject_alt_names` of type DNS, exact: one must match a SAN of the
    /// peer's certificate (wildcard certificates included).
    pub dns_sans: Vec<String>,
    /// `match_typed_subject_alt_names` of type URI, exact: SPIFFE ids, as Istio's
    /// ISTIO_MUTUAL contexts list the destination's service accounts. A peer matching
    /// any DNS or URI matcher is accepted.
    pub uri_sans: Vec<String>,
}

/// The trusted CA bundle of a validation context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaSource {
    /// A `ValidationContext` secret over SDS (`validation_context_sds_secret_config`, or
    /// the SDS half of a `combined_validation_context`).
    Sds(SecretName),
    /// Inline in the context (`trusted_ca` as PEM, from a file or inline data).
    Pem(#[serde(skip)] Vec<u8>),
}

/// An SDS `Secret` resource: PEM data, files already read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    TlsCertificate {
        #[serde(skip)]
        certificate_chain: Vec<u8>,
        #[serde(skip)]
        private_key: Vec<u8>,
    },
    ValidationContext {
        #[serde(skip)]
        trusted_ca: Vec<u8>,
        dns_sans: Vec<String>,
    },
    /// The workload's own certificate (Istio's `default`), never received over SDS: the
    /// identity manager's current key and chain, read at each handshake.
    Workload(crate::identity::LocalCertificate),
}

impl UpstreamTls {
    /// Secret names this context needs before it can connect.
    pub fn secret_names(&self) -> impl Iterator<Item = &SecretName> {
        self.certificate
            .iter()
            .chain(self.validation.iter().flat_map(Validation::secret_name))
    }
}

impl DownstreamTls {
    /// Secret names this context needs before it can accept handshakes.
    pub fn secret_names(&self) -> impl Iterator<Item = &SecretName> {
        self.certificates
            .iter()
            .chain(self.validation.iter().flat_map(Validation::secret_name))
    }
}

impl Validation {
    fn secret_name(&self) -> Option<&SecretName> {
        match &self.trusted_ca {
            Some(CaSource::Sds(name)) => Some(name),
            _ => None,
        }
    }
}
