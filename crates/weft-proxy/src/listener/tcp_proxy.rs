//! The TCP proxy network filter: one upstream connection per downstream one, bytes copied
//! both ways until either side closes.

use crate::cluster;
use crate::model::WeightedCluster;
use crate::state::Proxy;
use crate::stats::inc;
use tokio::net::TcpStream;

pub async fn serve(proxy: &Proxy, clusters: &[WeightedCluster], mut downstream: TcpStream) {
    inc(&proxy.stats.downstream_cx_total);
    let name = &crate::http::choose(clusters).name;
    let upstream = {
        let snapshot = proxy.snapshot.load();
        let Some(cluster) = snapshot.clusters.get(name) else {
            tracing::debug!(cluster = %name, "tcp_proxy: no such cluster");
            return;
        };
        let Some(host) = cluster::pick(cluster) else {
            inc(&proxy.stats.rq_no_healthy_upstream);
            tracing::debug!(cluster = %name, "tcp_proxy: no healthy upstream (UH)");
            return;
        };
        (host.endpoint.authority(), cluster.config.connect_timeout)
    };
    let (authority, timeout) = upstream;
    let mut up = match tokio::time::timeout(timeout, TcpStream::connect(&authority)).await {
        Ok(Ok(s)) => s,
        _ => {
            inc(&proxy.stats.rq_upstream_failure);
            tracing::debug!(cluster = %name, %authority, "tcp_proxy: connect failed (UF)");
            return;
        }
    };
    let _ = up.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut downstream, &mut up).await {
        tracing::debug!(error = %e, "tcp_proxy: connection ended with an error");
    }
}
