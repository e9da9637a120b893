//! Clusters at run time: their healthy hosts, load balancing and the pooled HTTP/1.1
//! client that reaches them.

mod lb;

use crate::model::{Cluster, Endpoint};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use lb::pick;

/// Body of requests sent upstream: the downstream body, streamed.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;
/// A connection pool per cluster: HTTP/1.1 keep-alive connections reused across requests.
pub type HttpClient = Client<HttpConnector, UpstreamBody>;

/// A cluster with its resolved endpoints, as the data path uses it.
#[derive(Debug, Serialize)]
pub struct Upstream {
    pub config: Cluster,
    pub hosts: Vec<Host>,
    /// Round-robin position; restarts at 0 when the cluster's endpoints change.
    #[serde(skip)]
    next: AtomicUsize,
    #[serde(skip)]
    pub client: HttpClient,
}

/// One endpoint with its count of requests in flight (for least request).
#[derive(Debug, Serialize)]
pub struct Host {
    pub endpoint: Endpoint,
    #[serde(skip)]
    pub active: Arc<AtomicUsize>,
}

impl Upstream {
    /// `previous`: the same cluster in the snapshot being replaced; its connection pool is
    /// kept when the connect timeout did not change, so updates do not drop connections.
    pub fn new(config: Cluster, endpoints: Vec<Endpoint>, previous: Option<&Upstream>) -> Upstream {
        let client = match previous {
            Some(p) if p.config.connect_timeout == config.connect_timeout => p.client.clone(),
            _ => client(&config),
        };
        Upstream {
            hosts: endpoints
                .into_iter()
                .map(|endpoint| Host {
                    endpoint,
                    active: Arc::default(),
                })
                .collect(),
            config,
            next: AtomicUsize::new(0),
            client,
        }
    }

    /// The next round-robin ticket.
    fn ticket(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

fn client(config: &Cluster) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Counts a request in flight on a host until dropped.
#[derive(Debug)]
pub struct ActiveRequest(Arc<AtomicUsize>);

impl ActiveRequest {
    pub fn start(host: &Host) -> ActiveRequest {
        host.active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(host.active.clone())
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
