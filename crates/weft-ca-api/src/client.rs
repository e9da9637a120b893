//! Calling CreateCertificate over a tonic channel.

use crate::{IstioCertificateRequest, IstioCertificateResponse, CREATE_CERTIFICATE};
use http::uri::PathAndQuery;
use tonic::transport::Channel;

/// Sends one CreateCertificate request with `token` as the bearer credential.
pub async fn create_certificate(
    channel: Channel,
    token: &str,
    request: IstioCertificateRequest,
) -> Result<IstioCertificateResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("CA not reachable: {e}")))?;
    let mut request = tonic::Request::new(request);
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| tonic::Status::invalid_argument("token is not a valid header value"))?;
    request.metadata_mut().insert("authorization", bearer);
    let codec = tonic_prost::ProstCodec::default();
    let response = grpc
        .unary(
            request,
            PathAndQuery::from_static(CREATE_CERTIFICATE),
            codec,
        )
        .await?;
    Ok(response.into_inner())
}
