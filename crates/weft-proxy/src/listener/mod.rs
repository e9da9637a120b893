//! The listener manager: binds a socket per LDS listener, unbinds removed ones, chooses
//! each accepted connection's filter chain and hands the connection to its network filter.
//! Transparent capture: a `use_original_dst` listener hands a connection to the listener
//! of its original destination, `bind_to_port: false` listeners only serve such handoffs.

pub mod chain;
mod downstream;
pub mod inspector;
pub mod original_dst;
mod tcp_proxy;
pub mod tls;

pub use downstream::Downstream;

use crate::model::{Listener, NetworkFilter};
use crate::state::Proxy;
use crate::xds::store::Accepted;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Runs until the process ends: reconciles bound sockets with every new snapshot.
pub async fn run(proxy: Arc<Proxy>) {
    let mut changed = proxy.changed.subscribe();
    let mut bound: HashMap<String, (SocketAddr, JoinHandle<()>)> = HashMap::new();
    loop {
        if proxy.drain.is_draining() {
            // Draining: close every listening socket and never bind again.
            for (_, (_, task)) in bound.drain() {
                task.abort();
            }
            return;
        }
        let snapshot = proxy.snapshot.load_full();
        bound.retain(|name, (addr, task)| {
            let keep = snapshot
                .listeners
                .get(name)
                .is_some_and(|l| l.address == *addr && l.bind_to_port);
            if !keep {
                // Stops accepting; connections already accepted run to their end.
                task.abort();
                tracing::info!(listener = %name, "listener removed");
            }
            keep
        });
        for (name, l) in &snapshot.listeners {
            if bound.contains_key(name) || !l.bind_to_port {
                continue;
            }
            match TcpListener::bind(l.address).await {
                Ok(socket) => {
                    tracing::info!(listener = %name, address = %l.address, "listening");
                    let task = tokio::spawn(accept(proxy.clone(), l.clone(), socket));
                    bound.insert(name.clone(), (l.address, task));
                }
                Err(e) => {
                    tracing::error!(listener = %name, address = %l.address, error = %e, "cannot bind listener")
                }
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}

async fn accept(proxy: Arc<Proxy>, first: Arc<Listener>, socket: TcpListener) {
    loop {
        let (stream, _peer) = match socket.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(listener = %first.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The listener's current config, read once per connection, with the accepted
        // encoding of that same snapshot (what a later update is compared with).
        let snapshot = proxy.snapshot.load();
        let listener = snapshot
            .listeners
            .get(&first.name)
            .cloned()
            .unwrap_or_else(|| first.clone());
        let config = snapshot.accepted.listeners.get(&listener.name).cloned();
        drop(snapshot);
        let proxy = proxy.clone();
        tokio::spawn(serve(proxy, listener, config, stream));
    }
}

/// Chooses the connection's filter chain (inspecting its first bytes when a chain needs
/// it) and runs the chain's network filter to the connection's end.
async fn serve(
    proxy: Arc<Proxy>,
    listener: Arc<Listener>,
    config: Option<Arc<Accepted>>,
    stream: TcpStream,
) {
    // Counted until it closes: a drain waits for these.
    let _open = proxy.drain.connection();
    let local = stream.local_addr().ok();
    let restored = match local {
        Some(local) if listener.use_original_dst || listener.original_dst_filter => {
            original_dst::original_dst(&stream, local)
                .inspect_err(|e| {
                    tracing::debug!(listener = %listener.name, error = %e, "no original destination")
                })
                .ok()
        }
        _ => None,
    };
    let (listener, config) = match restored {
        Some(dst) if listener.use_original_dst => {
            let snapshot = proxy.snapshot.load();
            match original_dst::handoff(snapshot.listeners.values().map(|l| l.as_ref()), dst) {
                Some(target) if target.name != listener.name => {
                    tracing::trace!(from = %listener.name, to = %target.name, %dst, "original destination handoff");
                    match snapshot.listeners.get(&target.name) {
                        Some(l) => (
                            l.clone(),
                            snapshot.accepted.listeners.get(&target.name).cloned(),
                        ),
                        None => (listener, config),
                    }
                }
                _ => (listener, config),
            }
        }
        _ => (listener, config),
    };
    let destination = restored.or(local);
    let needs = |f: fn(&crate::model::FilterChainMatch) -> bool| {
        listener.filter_chains.iter().any(|c| f(&c.matcher))
    };
    let peek_tls = listener.tls_inspector
        || needs(|m| !m.server_names.is_empty() || m.transport_protocol.is_some());
    let peek_http = listener.http_inspector && needs(|m| !m.application_protocols.is_empty());
    let found = if peek_tls || peek_http {
        inspector::inspect(&stream, peek_tls, peek_http).await
    } else {
        inspector::Inspected::default()
    };
    let info = chain::ConnectionInfo {
        destination_port: destination.map(|a| a.port()).unwrap_or_default(),
        destination_ip: destination.map(|a| a.ip()),
        original_dst: restored,
        server_name: found.server_name,
        transport_protocol: if found.tls { "tls" } else { "raw_buffer" },
        application_protocols: match found.http {
            Some(p) => vec![p.to_string()],
            None => found.alpn,
        },
    };
    let Some(chain) = chain::select(&listener.filter_chains, &info) else {
        tracing::debug!(listener = %listener.name, ?info, "no filter chain matches; closing");
        return;
    };
    let mut downstream = Downstream {
        remote: stream.peer_addr().ok(),
        local,
        original_dst: restored,
        server_name: info.server_name.clone(),
        tls: false,
        peer_principal: None,
        local_principal: None,
        peer_certificate: None,
        listener: listener.name.clone(),
        listener_config: config,
    };
    let Some(context) = &chain.tls else {
        return network_filter(proxy, &chain.filter, stream, downstream).await;
    };
    let termination = proxy
        .snapshot
        .load()
        .tls_servers
        .iter()
        .find(|t| t.config == *context)
        .cloned();
    let Some(termination) = termination else {
        tracing::debug!(listener = %listener.name, chain = %chain.name, "TLS chain not ready; closing");
        return;
    };
    if let Err(why) = termination.ready() {
        tracing::debug!(listener = %listener.name, chain = %chain.name, %why, "TLS chain not ready; closing");
        return;
    }
    match termination.accept(stream).await {
        Ok(tls) => {
            downstream.tls = true;
            downstream.peer_principal =
                crate::identity::verify::peer_spiffe_id(tls.get_ref().1).map(Into::into);
            downstream.local_principal = termination.local_principal();
            downstream.peer_certificate =
                crate::http::xfcc::PeerCertificate::of(tls.get_ref().1).map(Arc::new);
            network_filter(proxy, &chain.filter, tls, downstream).await
        }
        Err(e) => {
            // Refused client certificates (expired, another root) are an operator's
            // business; the reason is in `error`.
            tracing::info!(listener = %listener.name, chain = %chain.name, remote = ?downstream.remote, error = %e, "downstream TLS handshake failed")
        }
    }
}

/// Runs the chain's network filter on a (plaintext or TLS-terminated) connection.
async fn network_filter<S>(
    proxy: Arc<Proxy>,
    filter: &NetworkFilter,
    stream: S,
    downstream: Downstream,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match filter {
        NetworkFilter::Http(hcm) => {
            crate::http::serve_connection_from(
                proxy.clone(),
                hcm.clone(),
                stream,
                Arc::new(downstream),
            )
            .await
        }
        NetworkFilter::TcpProxy { clusters, rbac, .. } => {
            if let Err(policy) = crate::rbac::check_all(rbac, &crate::rbac::connection(&downstream))
            {
                // Envoy's network RBAC decides on the first bytes and closes the connection
                // without answering; reading them first makes the close a FIN, not a reset.
                let mut stream = stream;
                let mut first = [0u8; 4096];
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    tokio::io::AsyncReadExt::read(&mut stream, &mut first),
                )
                .await;
                tracing::debug!(
                    details = crate::rbac::denied_details(policy.as_deref()),
                    remote = ?downstream.remote,
                    "connection refused by RBAC"
                );
                return;
            }
            tcp_proxy::serve(&proxy, clusters, stream, &downstream).await
        }
    }
}
