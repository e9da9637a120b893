//! The TCP proxy network filter: one upstream connection per downstream one, bytes copied
//! both ways until either side closes.

use crate::cluster;
use crate::model::WeightedCluster;
use crate::state::Proxy;
use crate::stats::inc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Serves `downstream` (plaintext, or already TLS-terminated by the chain); the upstream
/// connection originates TLS when the cluster says so.
pub async fn serve<S>(proxy: &Proxy, clusters: &[WeightedCluster], mut downstream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    inc(&proxy.stats.downstream_cx_total);
    let name = &crate::http::choose(clusters).name;
    let (cluster, authority) = {
        let snapshot = proxy.snapshot.load();
        let Some(cluster) = snapshot.clusters.get(name) else {
            tracing::debug!(cluster = %name, "tcp_proxy: no such cluster");
            return;
        };
        let Some(host) = cluster::pick(cluster) else {
            inc(&proxy.stats.rq_no_healthy_upstream);
            inc(&proxy.stats.cluster(name).upstream_cx_none_healthy);
            proxy.telemetry.tcp_failed(name, "UH");
            tracing::debug!(cluster = %name, "tcp_proxy: no healthy upstream (UH)");
            return;
        };
        (cluster.clone(), host.endpoint.authority())
    };
    let mut up = match cluster.connect(&authority).await {
        Ok(s) => s,
        Err(error) => {
            inc(&proxy.stats.rq_upstream_failure);
            inc(&proxy.stats.cluster(name).upstream_cx_connect_fail);
            proxy.telemetry.tcp_failed(name, "UF");
            tracing::debug!(cluster = %name, %authority, %error, "tcp_proxy: connect failed (UF)");
            return;
        }
    };
    let mut metrics = proxy.telemetry.tcp_opened(name);
    match tokio::io::copy_bidirectional(&mut downstream, &mut up).await {
        Ok((received, sent)) => (metrics.received, metrics.sent) = (received, sent),
        Err(e) => tracing::debug!(error = %e, "tcp_proxy: connection ended with an error"),
    }
}
