//! `istio.v1.auth.IstioCertificateService/CreateCertificate` over the [`Ca`]: authenticate
//! the caller by its bootstrap token, sign the CSR for that identity only, and account for
//! every refusal with a log line and a citadel metric.

use super::sign::SignError;
use super::Ca;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use weft_ca_api::server::{CertificateServer, CertificateService};
use weft_ca_api::{IstioCertificateRequest, IstioCertificateResponse};

/// The gRPC face of the CA.
#[derive(Clone, Debug)]
pub struct CaService {
    ca: Arc<Ca>,
}

impl CaService {
    pub fn new(ca: Arc<Ca>) -> Self {
        CaService { ca }
    }

    /// The tonic service to mount beside ADS.
    pub fn server(self) -> CertificateServer<CaService> {
        CertificateServer::new(self)
    }

    /// Signs or refuses one request; synchronous since signing is a few microseconds of CPU.
    pub fn handle(
        &self,
        authorization: Option<&str>,
        peer: &str,
        request: &IstioCertificateRequest,
    ) -> Result<IstioCertificateResponse, Status> {
        let ca = &self.ca;
        let metrics = &ca.metrics;
        metrics.csr.inc();
        let binding = ca.authenticate(authorization).map_err(|e| {
            metrics.authentication_failure.inc();
            tracing::warn!(%peer, error = %e, "CreateCertificate refused: not authenticated");
            Status::unauthenticated(e.to_string())
        })?;
        let identity = ca.identity(&binding);
        let requested = Duration::from_secs(request.validity_duration.max(0).unsigned_abs());
        match ca.signer().sign_csr(&request.csr, &identity, requested) {
            Ok(signed) => {
                metrics.success.inc();
                tracing::info!(%peer, %identity, not_after = %signed.not_after, "signed a workload certificate");
                Ok(IstioCertificateResponse {
                    cert_chain: signed.chain,
                })
            }
            Err(e @ SignError::Malformed(_)) => {
                metrics.csr_parsing_err.inc();
                tracing::warn!(%peer, %identity, error = %e, "CreateCertificate refused: malformed CSR");
                Err(Status::invalid_argument(e.to_string()))
            }
            Err(e @ SignError::Identity { .. }) => {
                metrics.id_extraction_err.inc();
                tracing::warn!(%peer, %identity, error = %e, "CreateCertificate refused: identity mismatch");
                Err(Status::permission_denied(e.to_string()))
            }
            Err(e @ SignError::Ttl { .. }) => {
                metrics.sign_error("ttl_error");
                tracing::warn!(%peer, %identity, error = %e, "CreateCertificate refused: lifetime too long");
                Err(Status::invalid_argument(e.to_string()))
            }
            Err(e @ SignError::Sign(_)) => {
                metrics.sign_error("cert_gen_error");
                tracing::error!(%peer, %identity, error = %e, "CreateCertificate failed");
                Err(Status::internal(e.to_string()))
            }
        }
    }
}

#[tonic::async_trait]
impl CertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        self.handle(authorization.as_deref(), &peer, request.get_ref())
            .map(Response::new)
    }
}
