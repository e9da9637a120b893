//! Unary gRPC calls over h2c, open loop with coordinated-omission correction.
//!
//! `connections` HTTP/2 connections carry `streams` concurrent callers each. In open loop,
//! caller `k` of `W` makes its n-th call at `t0 + (n*W + k) / rate` and the call's latency
//! is counted from that due time, not from when the caller got to send it, so a stall
//! shows in the percentiles instead of quietly lowering the rate (oha's
//! `--latency-correction` does the same). Without a rate each caller calls again as soon as
//! its previous call returns (closed loop). No call is started after the deadline; calls
//! in flight then are waited for. Connections are not re-established: a closed one fails
//! every call due on it (closed loop: its callers stop after their first failure).
//!
//! A call succeeds only with HTTP 200, `grpc-status: 0` (trailer, or header of a
//! trailers-only answer) and one whole length-prefixed message in the body.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to connect: HOST:PORT (a proxy's listener, or the server itself).
    #[arg(long)]
    target: String,
    /// :authority of every call (the service a sidecar routes by), e.g. bench-weft:9082.
    #[arg(long)]
    authority: String,
    /// The method path.
    #[arg(long, default_value = "/bench.Echo/Call")]
    path: String,
    /// Calls per second over all connections; 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Concurrent calls per connection.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Seconds of calls.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Size of the request message (bytes of payload inside the 5-byte gRPC frame).
    #[arg(long, default_value_t = 64)]
    message_bytes: usize,
    /// Give up on one call after this many seconds (counted as a failure).
    #[arg(long, default_value_t = 10.0)]
    call_timeout: f64,
}

/// What one caller saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ok: u64,
    failures: BTreeMap<String, u64>,
    grpc_status: BTreeMap<String, u64>,
    response_bytes: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        self.response_bytes += other.response_bytes;
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        for (k, v) in other.grpc_status {
            *self.grpc_status.entry(k).or_default() += v;
        }
    }
}

pub async fn run(a: Args) -> Result<String, String> {
    if a.connections == 0 || a.streams == 0 {
        return Err("--connections and --streams must be at least 1".into());
    }
    let uri: http::Uri = format!("http://{}{}", a.authority, a.path)
        .parse()
        .map_err(|e| format!("--authority/--path do not make a URI: {e}"))?;
    let mut message = vec![0u8];
    message.extend_from_slice(&(a.message_bytes as u32).to_be_bytes());
    message.resize(5 + a.message_bytes, b'z');
    let body = Bytes::from(message);

    let mut senders = Vec::new();
    for _ in 0..a.connections {
        senders.push(connect(&a.target).await?);
    }
    let callers = a.connections * a.streams;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration);
    let timeout = Duration::from_secs_f64(a.call_timeout);
    let mut tasks = Vec::new();
    for k in 0..callers {
        let sender = senders[k % a.connections].clone();
        let (uri, body) = (uri.clone(), body.clone());
        let rate = a.rate;
        tasks.push(tokio::spawn(async move {
            caller(k, callers, rate, start, end, timeout, sender, uri, body).await
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        all.merge(t.await.map_err(|e| format!("caller task: {e}"))?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let requests = all.latencies_us.len() as u64;
    let latency = crate::stats::percentiles_ms(&mut all.latencies_us);
    Ok(json!({
        "requests": requests,
        "ok": all.ok,
        "failures": all.failures,
        "grpc_status": all.grpc_status,
        "rps": requests as f64 / elapsed,
        "elapsed_s": elapsed,
        "latency_ms": latency,
        "response_bytes": all.response_bytes,
        "rate": a.rate,
        "connections": a.connections,
        "streams": a.streams,
    })
    .to_string())
}

async fn connect(target: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect {target}: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY on {target}: {e}"))?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP/2 handshake with {target}: {e}"))?;
    tokio::spawn(async move {
        // Ends when the run drops its senders or the peer closes; a failure then shows
        // in the calls.
        let _ = conn.await;
    });
    Ok(sender)
}

#[allow(clippy::too_many_arguments)]
async fn caller(
    k: usize,
    callers: usize,
    rate: f64,
    start: Instant,
    end: Instant,
    timeout: Duration,
    mut sender: SendRequest<Full<Bytes>>,
    uri: http::Uri,
    body: Bytes,
) -> Tally {
    let mut t = Tally::default();
    for n in 0u64.. {
        let from = if rate > 0.0 {
            let due =
                start + Duration::from_secs_f64((n * callers as u64 + k as u64) as f64 / rate);
            if due >= end {
                break;
            }
            if due > Instant::now() {
                // Idle until the call is due: tokio's timer wakes up to a millisecond
                // late, which is the load generator's delay, not the server's, so the
                // call is timed from when it is really sent.
                tokio::time::sleep_until(due).await;
                Instant::now()
            } else {
                // Late because this caller's previous call was slow: timed from when it
                // was due (coordinated-omission correction).
                due
            }
        } else {
            let now = Instant::now();
            if now >= end {
                break;
            }
            now
        };
        let outcome = tokio::time::timeout(timeout, call(&mut sender, &uri, &body)).await;
        t.latencies_us.push(from.elapsed().as_micros() as u64);
        match outcome {
            Ok(Ok((status, bytes))) => {
                *t.grpc_status.entry(status.clone()).or_default() += 1;
                t.response_bytes += bytes;
                if status == "0" {
                    t.ok += 1;
                } else {
                    *t.failures
                        .entry(format!("grpc-status {status}"))
                        .or_default() += 1;
                }
            }
            Ok(Err(reason)) => *t.failures.entry(reason).or_default() += 1,
            Err(_) => *t.failures.entry("call timed out".into()).or_default() += 1,
        }
        if rate <= 0.0 && sender.is_closed() {
            // No reconnects: in closed loop a dead connection would fail calls as fast as
            // the CPU allows. Open loop keeps counting every due call as a failure.
            break;
        }
    }
    t
}

/// One unary call: Ok((grpc-status, response bytes)) when an answer with a status came,
/// Err(reason) otherwise. A status 0 answer without exactly one whole message is an error.
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    uri: &http::Uri,
    body: &Bytes,
) -> Result<(String, u64), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let req = http::Request::post(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let http_status = resp.status();
    let in_headers = resp.headers().get("grpc-status").cloned();
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    let in_trailers = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .cloned();
    let data = collected.to_bytes();
    if http_status != http::StatusCode::OK {
        return Err(format!("http {}", http_status.as_u16()));
    }
    let Some(status) = in_trailers.or(in_headers) else {
        return Err("no grpc-status".into());
    };
    let status = status.to_str().unwrap_or("?").to_string();
    if status == "0" && !one_message(&data) {
        return Err(format!(
            "grpc-status 0 with a malformed body of {} bytes",
            data.len()
        ));
    }
    Ok((status, data.len() as u64))
}

/// Whether `data` is exactly one uncompressed length-prefixed gRPC message.
fn one_message(data: &[u8]) -> bool {
    data.len() >= 5
        && data[0] == 0
        && u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize == data.len() - 5
}

#[cfg(test)]
mod tests {
    use super::one_message;

    #[test]
    fn whole_message_only() {
        assert!(one_message(&[0, 0, 0, 0, 2, b'a', b'b']));
        assert!(!one_message(&[0, 0, 0, 0, 3, b'a', b'b']));
        assert!(!one_message(&[1, 0, 0, 0, 0]));
        assert!(!one_message(&[]));
    }
}
