//! The renewal task: CreateCertificate at start, then again at half of each certificate's
//! lifetime (jittered), with exponential back-off while the CA cannot be reached or
//! refuses. Each failure is one log line saying what failed and when the next try is.

use super::csr::{self, CsrError};
use super::issued::{Issued, IssuedError};
use super::{Config, Identity, TokenSource};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thiserror::Error;
use weft_ca_api::IstioCertificateRequest;

/// Renew half-way through the lifetime, as Istio's agent does ...
const RENEW_RATIO: f64 = 0.5;
/// ... give or take this share of the lifetime, so that proxies started together spread
/// their requests.
const RENEW_JITTER: f64 = 0.05;
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A renewal never comes sooner than this after the last one (clock skew, tiny TTLs).
const MIN_WAIT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum RenewError {
    #[error("bootstrap token file {path}: {reason} (create one with `weft token create`)")]
    TokenFile { path: String, reason: String },
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error("CA at {addr} not reachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("CA at {addr} refused the certificate request: {code:?}: {message}")]
    Refused {
        addr: String,
        code: tonic::Code,
        message: String,
    },
    #[error("CA at {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("CA at {addr} answered with an unusable certificate: {source}")]
    Issued { addr: String, source: IssuedError },
}

/// Runs forever: keeps `identity` supplied with a valid certificate.
pub async fn run(identity: Arc<Identity>, config: Config) {
    let mut backoff = BACKOFF_START;
    loop {
        match renew(&identity, &config).await {
            Ok(issued) => {
                let ratio = RENEW_RATIO + rand::rng().random_range(-RENEW_JITTER..=RENEW_JITTER);
                let wait = issued
                    .refresh_at(ratio)
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .max(MIN_WAIT);
                tracing::info!(
                    spiffe_id = %identity.id(),
                    serial = %issued.serial,
                    valid_for = ?issued.not_after.duration_since(SystemTime::now()).unwrap_or_default(),
                    renew_in = ?wait,
                    "workload certificate issued"
                );
                identity.install(issued);
                backoff = BACKOFF_START;
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 4);
                let wait = backoff + Duration::from_millis(jitter);
                let valid = identity
                    .current()
                    .is_some_and(|c| c.not_after > SystemTime::now());
                tracing::warn!(
                    spiffe_id = %identity.id(),
                    error = %e,
                    retry_in = ?wait,
                    current_certificate_valid = valid,
                    "cannot obtain a workload certificate"
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The bootstrap token, read now.
pub fn token(source: &TokenSource) -> Result<String, RenewError> {
    match source {
        TokenSource::Value(v) => Ok(v.trim().to_string()),
        TokenSource::File(path) => {
            let bad = |reason: String| RenewError::TokenFile {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let token = text.trim();
            if token.is_empty() {
                return Err(bad("empty".into()));
            }
            Ok(token.to_string())
        }
    }
}

/// One CreateCertificate round: new key, CSR, signed chain checked against the request.
pub async fn renew(identity: &Identity, config: &Config) -> Result<Issued, RenewError> {
    let token = token(&config.token)?;
    let request = csr::request(identity.id())?;
    let addr = config.ca_addr.clone();
    let url = if addr.contains("://") {
        addr.clone()
    } else {
        format!("http://{addr}")
    };
    let unreachable = |reason: String| RenewError::Unreachable {
        addr: addr.clone(),
        reason,
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    let call = weft_ca_api::client::create_certificate(
        channel,
        &token,
        IstioCertificateRequest {
            csr: request.csr_pem,
            validity_duration: config.ttl.as_secs() as i64,
            metadata: None,
        },
    );
    let response = tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .map_err(|_| RenewError::Timeout {
            addr: addr.clone(),
            timeout: REQUEST_TIMEOUT,
        })?
        .map_err(|status| match status.code() {
            tonic::Code::Unavailable => unreachable(status.message().to_string()),
            code => RenewError::Refused {
                addr: addr.clone(),
                code,
                message: status.message().to_string(),
            },
        })?;
    Issued::new(
        identity.id(),
        &response.cert_chain,
        request.key,
        &crate::cluster::tls::provider(),
    )
    .map_err(|source| RenewError::Issued { addr, source })
}

/// An error with its sources, which tonic keeps the useful part in.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
