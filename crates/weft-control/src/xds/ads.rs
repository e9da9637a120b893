//! The gRPC face: `AggregatedDiscoveryService` for [`Xds`]. Reads the first request to know
//! the proxy (refusing a malformed node), then hands the stream to its variant.

use super::connection::Connection;
use super::status::Mode;
use super::{delta, sotw, Xds};
use crate::model::proxy::NodeError;
use crate::model::Proxy;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Responses queued per stream before a slow proxy holds up its own pushes.
const QUEUE: usize = 8;

fn proxy_of(node: Option<&Node>) -> Result<Proxy, Status> {
    node.ok_or(NodeError::MissingNode)
        .and_then(Proxy::from_node)
        .map_err(|e| {
            tracing::warn!(error = %e, "xDS stream refused");
            Status::invalid_argument(e.to_string())
        })
}

/// The stream's `authorization: Bearer <token>` metadata (Envoy sends it from the ADS
/// grpc_service's initial_metadata), kept for the CA.
fn bearer<T>(request: &Request<T>) -> Option<crate::model::proxy::BearerToken> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::model::proxy::BearerToken::from_authorization)
}

async fn first<T: Send + 'static>(inbound: &mut Streaming<T>) -> Result<T, Status> {
    inbound
        .message()
        .await?
        .ok_or_else(|| Status::cancelled("the stream closed before its first request"))
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Xds {
    type StreamAggregatedResourcesStream = Responses<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Responses<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let token = bearer(&request);
        let mut inbound = request.into_inner();
        let first = first(&mut inbound).await?;
        let mut proxy = proxy_of(first.node.as_ref())?;
        proxy.bootstrap_token = token;
        let conn = Connection::open(self.clone(), proxy, Mode::Sotw).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            if let Err(status) = sotw::run(conn, first, inbound, tx.clone()).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let token = bearer(&request);
        let mut inbound = request.into_inner();
        let first = first(&mut inbound).await?;
        let mut proxy = proxy_of(first.node.as_ref())?;
        proxy.bootstrap_token = token;
        let conn = Connection::open(self.clone(), proxy, Mode::Delta).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            if let Err(status) = delta::run(conn, first, inbound, tx.clone()).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
