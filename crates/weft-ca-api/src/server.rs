//! Serving CreateCertificate on a tonic server: [`CertificateServer`] routes the method to a
//! [`CertificateService`] the CA implements, so weftd mounts it beside ADS on one port.

use crate::{IstioCertificateRequest, IstioCertificateResponse, CREATE_CERTIFICATE, SERVICE};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};

/// What a CA does with one request. The request carries the caller's metadata
/// (`authorization: Bearer <token>`), which the implementation checks before signing.
#[tonic::async_trait]
pub trait CertificateService: Send + Sync + 'static {
    async fn create_certificate(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> Result<tonic::Response<IstioCertificateResponse>, tonic::Status>;
}

/// `istio.v1.auth.IstioCertificateService` as a tower service for
/// `tonic::transport::Server::add_service`.
#[derive(Debug)]
pub struct CertificateServer<T> {
    inner: Arc<T>,
}

impl<T> CertificateServer<T> {
    pub fn new(inner: T) -> Self {
        Self::from_arc(Arc::new(inner))
    }

    pub fn from_arc(inner: Arc<T>) -> Self {
        CertificateServer { inner }
    }
}

impl<T> Clone for CertificateServer<T> {
    fn clone(&self) -> Self {
        CertificateServer {
            inner: self.inner.clone(),
        }
    }
}

impl<T> tonic::server::NamedService for CertificateServer<T> {
    const NAME: &'static str = SERVICE;
}

/// Adapts the trait to tonic's unary handler.
struct Unary<T>(Arc<T>);

impl<T: CertificateService> tonic::server::UnaryService<IstioCertificateRequest> for Unary<T> {
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<tonic::Response<IstioCertificateResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<IstioCertificateRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.create_certificate(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for CertificateServer<T>
where
    T: CertificateService,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CREATE_CERTIFICATE {
            // The service's only method; anything else is answered as gRPC does.
            return Box::pin(async move {
                Ok(
                    tonic::Status::unimplemented(format!("{SERVICE} has only CreateCertificate"))
                        .into_http(),
                )
            });
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Unary(inner), request).await)
        })
    }
}
