//! The TCP proxy network filter: one upstream connection per downstream one, bytes copied
//! both ways until either side closes.

use super::Downstream;
use crate::cluster;
use crate::model::{Discovery, WeightedCluster};
use crate::state::Proxy;
use crate::stats::inc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Serves `downstream` (plaintext, or already TLS-terminated by the chain, as `facts`
/// tell); the upstream connection originates TLS when the cluster says so. An
/// ORIGINAL_DST cluster connects to the connection's original destination (before it was
/// redirected).
pub async fn serve<S>(
    proxy: &Proxy,
    clusters: &[WeightedCluster],
    mut downstream: S,
    facts: &Downstream,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let original_dst = facts.original_dst;
    let security = facts.security();
    inc(&proxy.stats.downstream_cx_total);
    let name = &crate::http::choose(clusters).name;
    let (cluster, authority) = {
        let snapshot = proxy.snapshot.load();
        let Some(cluster) = snapshot.clusters.get(name) else {
            tracing::debug!(cluster = %name, "tcp_proxy: no such cluster");
            return;
        };
        if matches!(cluster.config.discovery, Discovery::OriginalDst { .. }) {
            // `use_http_header` needs HTTP; a TCP connection has only its destination.
            if let Some(dst) = original_dst {
                (cluster.clone(), dst.to_string())
            } else {
                inc(&proxy.stats.rq_no_healthy_upstream);
                inc(&proxy.stats.cluster(name).upstream_cx_none_healthy);
                proxy.telemetry.tcp_failed(name, "UH", &security);
                tracing::debug!(cluster = %name, "tcp_proxy: no original destination (UH)");
                return;
            }
        } else {
            let Some(host) = cluster::pick(cluster) else {
                inc(&proxy.stats.rq_no_healthy_upstream);
                inc(&proxy.stats.cluster(name).upstream_cx_none_healthy);
                proxy.telemetry.tcp_failed(name, "UH", &security);
                tracing::debug!(cluster = %name, "tcp_proxy: no healthy upstream (UH)");
                return;
            };
            (cluster.clone(), host.endpoint.authority())
        }
    };
    let mut up = match cluster.connect(&authority).await {
        Ok(s) => s,
        Err(error) => {
            inc(&proxy.stats.rq_upstream_failure);
            inc(&proxy.stats.cluster(name).upstream_cx_connect_fail);
            proxy.telemetry.tcp_failed(name, "UF", &security);
            tracing::debug!(cluster = %name, %authority, %error, "tcp_proxy: connect failed (UF)");
            return;
        }
    };
    let upstream = cluster.security(&authority);
    let mut metrics = proxy.telemetry.tcp_opened(name, &security, &upstream);
    match tokio::io::copy_bidirectional(&mut downstream, &mut up).await {
        Ok((received, sent)) => (metrics.received, metrics.sent) = (received, sent),
        Err(e) => tracing::debug!(error = %e, "tcp_proxy: connection ended with an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Upstream;
    use crate::model::{Cluster, LbPolicy};
    use crate::state::Snapshot;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn passthrough() -> Arc<Proxy> {
        let config = Cluster::new(
            "PassthroughCluster",
            Discovery::OriginalDst {
                use_http_header: false,
            },
            LbPolicy::Random,
        );
        let upstream = Arc::new(Upstream::new(config, Vec::new(), None, Arc::default()));
        let proxy = Proxy::new();
        proxy.publish(Snapshot {
            clusters: [("PassthroughCluster".to_string(), upstream)]
                .into_iter()
                .collect(),
            ..Default::default()
        });
        proxy
    }

    fn cluster() -> Vec<WeightedCluster> {
        vec![WeightedCluster {
            name: "PassthroughCluster".into(),
            weight: 1,
        }]
    }

    #[tokio::test]
    async fn original_dst_cluster_connects_to_the_original_destination() {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dst = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let proxy = passthrough();
        let (mut client, downstream) = tokio::io::duplex(64);
        let served = tokio::spawn(async move {
            let facts = Downstream {
                original_dst: Some(dst),
                ..Downstream::default()
            };
            serve(&proxy, &cluster(), downstream, &facts).await;
        });
        client.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        drop(client);
        served.await.unwrap();
    }

    #[tokio::test]
    async fn original_dst_cluster_without_one_closes_the_connection() {
        let proxy = passthrough();
        let (mut client, downstream) = tokio::io::duplex(64);
        serve(&proxy, &cluster(), downstream, &Downstream::default()).await;
        let mut buf = Vec::new();
        assert_eq!(client.read_to_end(&mut buf).await.unwrap(), 0);
        assert_eq!(
            proxy
                .stats
                .cluster("PassthroughCluster")
                .upstream_cx_none_healthy
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
