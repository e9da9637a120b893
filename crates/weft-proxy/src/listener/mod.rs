//! The listener manager: binds a socket per LDS listener, unbinds removed ones, and hands
//! each accepted connection to its network filter.

mod tcp_proxy;

use crate::model::{Listener, NetworkFilter};
use crate::state::Proxy;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Runs until the process ends: reconciles bound sockets with every new snapshot.
pub async fn run(proxy: Arc<Proxy>) {
    let mut changed = proxy.changed.subscribe();
    let mut bound: HashMap<String, (SocketAddr, JoinHandle<()>)> = HashMap::new();
    loop {
        let snapshot = proxy.snapshot.load_full();
        bound.retain(|name, (addr, task)| {
            let keep = snapshot
                .listeners
                .get(name)
                .is_some_and(|l| l.address == *addr);
            if !keep {
                // Stops accepting; connections already accepted run to their end.
                task.abort();
                tracing::info!(listener = %name, "listener removed");
            }
            keep
        });
        for (name, l) in &snapshot.listeners {
            if bound.contains_key(name) {
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
        // The listener's current config, read once per connection.
        let listener = proxy
            .snapshot
            .load()
            .listeners
            .get(&first.name)
            .cloned()
            .unwrap_or_else(|| first.clone());
        let proxy = proxy.clone();
        tokio::spawn(async move {
            match &listener.filter {
                NetworkFilter::Http(_) => {
                    crate::http::serve_connection(proxy, listener, stream).await
                }
                NetworkFilter::TcpProxy { clusters, .. } => {
                    tcp_proxy::serve(&proxy, clusters, stream).await
                }
            }
        });
    }
}
