//! CreateCertificate load against weftd's CA: how many CSRs it signs per second and per
//! CPU-second of its own.
//!
//! Each client has its own HTTP/2 connection, its own bootstrap token (namespace + service
//! account, from `--tokens`) and a CSR for that identity made before the clock starts (a
//! fresh ECDSA P-256 key, as weft-proxy makes), and calls CreateCertificate again as soon
//! as the previous call returns (closed loop). Key generation stays out of the figures:
//! it is the proxy's cost, not the CA's. The first certificate of every client is checked:
//! its leaf must carry the client's SPIFFE id as URI SAN.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;
use weft_ca_api::{IstioCertificateRequest, SpiffeId};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// weftd's CA (its xDS address): HOST:PORT.
    #[arg(long)]
    ca: String,
    /// Bootstrap tokens, one per line: `NAMESPACE SERVICE_ACCOUNT TOKEN`; client i uses
    /// line i modulo the number of lines.
    #[arg(long)]
    tokens: PathBuf,
    /// Concurrent clients (one connection and one call in flight each).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds of calls.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// weftd's pid: its CPU time is read from /proc before and after.
    #[arg(long)]
    weftd_pid: Option<u32>,
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Requested certificate lifetime in seconds.
    #[arg(long, default_value_t = 86400)]
    ttl: i64,
}

struct Client {
    id: SpiffeId,
    token: String,
    csr: String,
    channel: Channel,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ok: u64,
    failures: BTreeMap<String, u64>,
}

pub async fn run(a: Args) -> Result<String, String> {
    let text = std::fs::read_to_string(&a.tokens)
        .map_err(|e| format!("--tokens {}: {e}", a.tokens.display()))?;
    let identities: Vec<(SpiffeId, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [ns, sa, token] => Ok((SpiffeId::new(&a.trust_domain, ns, sa), token.to_string())),
            _ => Err(format!(
                "--tokens {}: line {l:?} is not `NAMESPACE SERVICE_ACCOUNT TOKEN`",
                a.tokens.display()
            )),
        })
        .collect::<Result<_, _>>()?;
    if identities.is_empty() || a.clients == 0 {
        return Err("need at least one token and one client".into());
    }
    let url = format!("http://{}", a.ca);
    let mut clients = Vec::new();
    for i in 0..a.clients {
        let (id, token) = identities[i % identities.len()].clone();
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| format!("--ca {}: {e}", a.ca))?
            .connect()
            .await
            .map_err(|e| format!("connect to the CA at {}: {e}", a.ca))?;
        let csr = csr_for(&id)?;
        clients.push(Client {
            id,
            token,
            csr,
            channel,
        });
    }

    let own_cpu_before = crate::stats::cpu(std::process::id());
    let weftd_before = a.weftd_pid.and_then(crate::stats::cpu);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration);
    let ttl = a.ttl;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(client(c, end, ttl)))
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let one = t.await.map_err(|e| format!("client task: {e}"))?;
        all.latencies_us.extend(one.latencies_us);
        all.ok += one.ok;
        for (k, v) in one.failures {
            *all.failures.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let weftd_cpu = match (weftd_before, a.weftd_pid.and_then(crate::stats::cpu)) {
        (Some(b), Some(e)) => Some((e - b).as_secs_f64()),
        _ => None,
    };
    let own_cpu = match (own_cpu_before, crate::stats::cpu(std::process::id())) {
        (Some(b), Some(e)) => Some((e - b).as_secs_f64()),
        _ => None,
    };
    let requests = all.latencies_us.len();
    let latency = crate::stats::percentiles_ms(&mut all.latencies_us);
    Ok(json!({
        "clients": a.clients,
        "identities": identities.len(),
        "requests": requests,
        "ok": all.ok,
        "failures": all.failures,
        "elapsed_s": elapsed,
        "csrs_per_s": all.ok as f64 / elapsed,
        "weftd_cpu_s": weftd_cpu,
        "csrs_per_weftd_cpu_s": weftd_cpu.filter(|c| *c > 0.0).map(|c| all.ok as f64 / c),
        "load_tool_cpu_s": own_cpu,
        "latency_ms": latency,
    })
    .to_string())
}

/// A PEM CSR for `id`: new P-256 key, empty subject, the SPIFFE URI as the only SAN.
fn csr_for(id: &SpiffeId) -> Result<String, String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("key: {e}"))?;
    let uri = id.to_string();
    let san = uri
        .clone()
        .try_into()
        .map_err(|e| format!("{uri} as a URI SAN: {e}"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(san)];
    params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| format!("CSR for {uri}: {e}"))
}

async fn client(c: Client, end: Instant, ttl: i64) -> Tally {
    let mut t = Tally::default();
    let mut checked = false;
    while Instant::now() < end {
        let began = Instant::now();
        let call = weft_ca_api::client::create_certificate(
            c.channel.clone(),
            &c.token,
            IstioCertificateRequest {
                csr: c.csr.clone(),
                validity_duration: ttl,
                metadata: None,
            },
        )
        .await;
        t.latencies_us.push(began.elapsed().as_micros() as u64);
        match call {
            Ok(r) if !checked => match leaf_names(&r.cert_chain, &c.id) {
                Ok(()) => {
                    checked = true;
                    t.ok += 1;
                }
                Err(e) => *t.failures.entry(e).or_default() += 1,
            },
            Ok(r) if !r.cert_chain.is_empty() => t.ok += 1,
            Ok(_) => *t.failures.entry("empty chain".into()).or_default() += 1,
            Err(s) => {
                *t.failures
                    .entry(format!("{:?}: {}", s.code(), s.message()))
                    .or_default() += 1
            }
        }
    }
    t
}

/// Ok when the chain's first certificate names `id` as a URI SAN.
fn leaf_names(chain: &[String], id: &SpiffeId) -> Result<(), String> {
    let first = chain.first().ok_or("empty chain")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(first.as_bytes())
        .map_err(|e| format!("leaf is not PEM: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("leaf is not X.509: {e}"))?;
    let want = id.to_string();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("leaf SAN: {e}"))?
        .ok_or("leaf has no SAN")?;
    let found = san
        .value
        .general_names
        .iter()
        .any(|n| matches!(n, x509_parser::extensions::GeneralName::URI(u) if *u == want));
    if found {
        Ok(())
    } else {
        Err(format!("leaf does not name {want}"))
    }
}
