//! What the state-of-the-world and delta ADS clients share around their streams: the
//! connection to the xDS server, the reconnect backoff, and NACK details.

use super::convert::ResourceError;
use super::{CDS, LDS, RDS, SDS};
use crate::bootstrap::Settings;
use crate::state::Proxy;
use crate::stats::UpdateStats;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status;
use rand::Rng;
use std::time::Duration;
use thiserror::Error;
use tonic::transport::Channel;

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// gRPC INVALID_ARGUMENT, the code Envoy puts in a NACK's error_detail.
const INVALID_ARGUMENT: i32 = 3;

/// Why one ADS stream ended.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("cannot connect to the xDS server at {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("ADS stream failed: {0}")]
    Stream(#[from] tonic::Status),
    #[error("ADS request queue closed")]
    Closed,
}

/// An ADS client on a new connection to the settings' xDS server.
pub async fn connect(
    settings: &Settings,
) -> Result<AggregatedDiscoveryServiceClient<Channel>, SessionError> {
    let addr = format!("http://{}", settings.xds);
    let connect = |source| SessionError::Connect {
        addr: addr.clone(),
        source,
    };
    let channel = tonic::transport::Endpoint::from_shared(addr.clone())
        .map_err(connect)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(connect)?;
    Ok(AggregatedDiscoveryServiceClient::new(channel))
}

/// Jittered exponential backoff between streams, restarted by a stream that got a
/// response; the last good config stays in force meanwhile.
#[derive(Debug)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff(BACKOFF_START)
    }
}

impl Backoff {
    /// Reports how a stream (`kind`: "ADS", "delta ADS") ended and waits before the next.
    pub async fn after(&mut self, kind: &str, ended: Result<(), SessionError>, got_response: bool) {
        match ended {
            Ok(()) => tracing::warn!("xDS server closed the {kind} stream"),
            Err(e) => {
                tracing::warn!(error = %e, "{kind} session ended; keeping the last good config")
            }
        }
        if got_response {
            self.0 = BACKOFF_START;
        }
        let jitter = rand::rng().random_range(0..=self.0.as_millis() as u64 / 2);
        tokio::time::sleep(self.0 + Duration::from_millis(jitter)).await;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
    }
}

/// The NACK's `error_detail`: every resource's error, in order.
pub fn nack(errors: &[ResourceError]) -> Status {
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Status {
        code: INVALID_ARGUMENT,
        message,
        details: Vec::new(),
    }
}

/// The `update_success` / `update_rejected` counters of a type.
pub fn update_stats<'a>(proxy: &'a Proxy, type_url: &str) -> &'a UpdateStats {
    match type_url {
        CDS => &proxy.stats.cds,
        LDS => &proxy.stats.lds,
        RDS => &proxy.stats.rds,
        SDS => &proxy.stats.sds,
        _ => &proxy.stats.eds,
    }
}
