//! Istio's certificate signing API, `istio.v1.auth.IstioCertificateService`, as weftd serves
//! it and weft-proxy calls it: the two messages (field numbers as in Istio's ca.proto), the
//! method path, a client call, and SPIFFE identities (`spiffe://<td>/ns/<ns>/sa/<sa>`).
//!
//! Hand-written prost messages instead of generated code: two small messages do not
//! justify a protoc dependency in every build.

pub mod client;
pub mod server;
pub mod spiffe;

pub use spiffe::{SpiffeId, SpiffeIdError};

/// The gRPC service name.
pub const SERVICE: &str = "istio.v1.auth.IstioCertificateService";
/// The method path of CreateCertificate.
pub const CREATE_CERTIFICATE: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// A certificate request. Callers authenticate with a bearer token in the `authorization`
/// request metadata (or a client certificate); the CSR's SANs must be the caller's identity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded PKCS#10 certificate signing request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds; the CA may shorten it.
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
    /// Optional request metadata (Istio uses it for impersonation by trusted callers).
    #[prost(message, optional, tag = "4")]
    pub metadata: Option<prost_types::Struct>,
}

/// The signed certificate: the leaf first, then intermediates, the root last.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}
