//! `weft proxy-status`: which proxies weftd serves and whether each took its config, like istioctl's.

use super::{Context, Error};
use crate::client::{ClientError, Status};
use crate::table::{cell, render};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

/// The xDS types shown, in istioctl's column order, with the keys weftd reports them under.
const TYPES: [(&str, &str); 4] = [
    ("CDS", "cds"),
    ("LDS", "lds"),
    ("EDS", "eds"),
    ("RDS", "rds"),
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One proxy to show in detail: its node id, `workload.namespace`, or a unique part of the id.
    pub proxy: Option<String>,
}

/// One entry of weftd's `GET /debug/proxies` (docs/xds.md).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProxyEntry {
    /// The node id.
    pub proxy: String,
    #[serde(default, rename = "type")]
    pub proxy_type: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub workload_group: Option<String>,
    #[serde(default)]
    pub connected_at: Option<String>,
    /// `sotw` or `delta`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Optional fields a control plane may add: the proxy's cluster id and build version.
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub xds: BTreeMap<String, TypeSync>,
}

/// Sync state of one xDS type on one proxy.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct TypeSync {
    #[serde(default)]
    pub status: String,
    /// Nonces or versions, as weftd prints them (strings or numbers).
    #[serde(default)]
    pub sent: Value,
    #[serde(default)]
    pub acked: Value,
    /// Envoy's `error_detail` of the last NACK.
    #[serde(default)]
    pub nack: Option<String>,
}

impl ProxyEntry {
    /// `workload.namespace`, the third part of an Istio node id, as istioctl names pods;
    /// the whole id when it is not shaped that way.
    pub fn short_name(&self) -> &str {
        let parts: Vec<&str> = self.proxy.split('~').collect();
        match parts[..] {
            [_, _, name, _] if !name.is_empty() => name,
            _ => &self.proxy,
        }
    }

    /// SYNCED, NOT SENT or STALE; a NACK is always STALE whatever else was said.
    fn state(&self, key: &str) -> String {
        match self.xds.get(key) {
            Some(s) if s.nack.is_some() => "STALE".into(),
            Some(s) if !s.status.is_empty() => s.status.clone(),
            _ => "NOT SENT".into(),
        }
    }
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let proxies = list_proxies(&ctx.server)?;
    let weftd = authority(&ctx.server);
    if let Some(query) = &args.proxy {
        let p = resolve(&proxies, query)?;
        out.write_all(detail(p, weftd).as_bytes())?;
        return Ok(0);
    }
    if proxies.is_empty() {
        writeln!(err, "No proxies are connected to weftd at {weftd}.")?;
        return Ok(0);
    }
    out.write_all(summary(&proxies, weftd).as_bytes())?;
    Ok(0)
}

/// `GET /debug/proxies` on weftd.
pub fn list_proxies(server: &str) -> Result<Vec<ProxyEntry>, Error> {
    let body = http_get(server, "/debug/proxies", Peer::Weftd)?;
    serde_json::from_str(&body).map_err(|e| {
        ClientError::Unexpected {
            server: server.trim_end_matches('/').to_string(),
            what: format!("GET /debug/proxies ({e})"),
            code: 200,
            body: body.chars().take(200).collect(),
        }
        .into()
    })
}

/// The table of all proxies, then one line per NACK so the reason is not lost in a cell.
fn summary(proxies: &[ProxyEntry], weftd: &str) -> String {
    let mut sorted: Vec<&ProxyEntry> = proxies.iter().collect();
    sorted.sort_by(|a, b| (a.short_name(), &a.proxy).cmp(&(b.short_name(), &b.proxy)));
    // Two proxies of one workload on different addresses share a short name; those show
    // their full ids so every row can be named on the command line again.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in &sorted {
        *seen.entry(p.short_name()).or_default() += 1;
    }
    let name = |p: &ProxyEntry| match seen[p.short_name()] {
        1 => p.short_name().to_string(),
        _ => p.proxy.clone(),
    };
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|p| {
            let mut row = vec![name(p), dash(p.cluster.as_deref())];
            row.extend(TYPES.iter().map(|(_, key)| p.state(key)));
            row.push(weftd.to_string());
            row.push(dash(p.version.as_deref()));
            row
        })
        .collect();
    let mut header = vec!["NAME", "CLUSTER"];
    header.extend(TYPES.iter().map(|(col, _)| *col));
    header.extend(["ISTIOD", "VERSION"]);
    let mut text = render(&header, &rows);
    let nacks: Vec<String> = sorted
        .iter()
        .flat_map(|p| {
            TYPES.iter().filter_map(move |(col, key)| {
                let reason = p.xds.get(*key)?.nack.as_deref()?;
                Some(format!("{} {col} NACK: {reason}", name(p)))
            })
        })
        .collect();
    if !nacks.is_empty() {
        text.push('\n');
        for line in nacks {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// Everything weftd knows about one proxy's connection and sync state.
fn detail(p: &ProxyEntry, weftd: &str) -> String {
    let fields = [
        ("Proxy", p.proxy.clone()),
        (
            "Type",
            dash(
                Some(&p.proxy_type)
                    .filter(|t| !t.is_empty())
                    .map(String::as_str),
            ),
        ),
        (
            "Namespace",
            dash(Some(p.namespace.as_str()).filter(|n| !n.is_empty())),
        ),
        ("WorkloadGroup", dash(p.workload_group.as_deref())),
        ("Connected", dash(p.connected_at.as_deref())),
        ("Mode", dash(p.mode.as_deref())),
        ("Istiod", weftd.to_string()),
    ];
    let mut text = String::new();
    for (k, v) in fields {
        text.push_str(&format!("{:<15}{v}\n", format!("{k}:")));
    }
    text.push('\n');
    let rows: Vec<Vec<String>> = TYPES
        .iter()
        .map(|(col, key)| {
            let s = p.xds.get(*key);
            vec![
                col.to_string(),
                p.state(key),
                s.map(|s| cell(Some(&s.sent))).unwrap_or_default(),
                s.map(|s| cell(Some(&s.acked))).unwrap_or_default(),
                s.and_then(|s| s.nack.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    text.push_str(&render(&["TYPE", "STATUS", "SENT", "ACKED", "NACK"], &rows));
    text
}

fn dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// Finds one proxy by full node id, by `workload.namespace`, or by a unique part of its id.
pub fn resolve<'a>(proxies: &'a [ProxyEntry], query: &str) -> Result<&'a ProxyEntry, Error> {
    if let Some(p) = proxies.iter().find(|p| p.proxy == query) {
        return Ok(p);
    }
    let by_name: Vec<&ProxyEntry> = proxies.iter().filter(|p| p.short_name() == query).collect();
    let candidates = if by_name.is_empty() {
        proxies.iter().filter(|p| p.proxy.contains(query)).collect()
    } else {
        by_name
    };
    match candidates[..] {
        [one] => Ok(one),
        [] => Err(Error::Usage(format!(
            "no connected proxy matches {query:?}; see the connected ones with \"weft proxy-status\""
        ))),
        ref many => {
            let ids: Vec<&str> = many.iter().map(|p| p.proxy.as_str()).collect();
            Err(Error::Usage(format!(
                "{query:?} matches {} proxies, name one by its full id: {}",
                many.len(),
                ids.join(", ")
            )))
        }
    }
}

/// `host:port` of a URL, the way ISTIOD names the control plane a proxy talks to.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Who answers a GET, so that failures name the right program and the right cure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Weftd,
    /// A data plane's admin endpoint (Envoy or weft-proxy).
    Admin,
}

/// GETs `base` + `path_and_query`; a status >= 400 is an error, weftd's as a `Status`.
pub fn http_get(base: &str, path_and_query: &str, peer: Peer) -> Result<String, Error> {
    let base = base.trim_end_matches('/');
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("TLS backend initializes");
    let url = format!("{base}{path_and_query}");
    let fail = |e: reqwest::Error| -> Error {
        let reason = root_cause(&e);
        match peer {
            Peer::Weftd if e.is_connect() || e.is_timeout() => ClientError::Unreachable {
                server: base.to_string(),
                reason,
            }
            .into(),
            Peer::Weftd => ClientError::Transport {
                server: base.to_string(),
                reason,
            }
            .into(),
            Peer::Admin => Error::Usage(format!(
                "cannot read {url} ({reason}); is the proxy running with its admin on that address?"
            )),
        }
    };
    let resp = http.get(&url).send().map_err(fail)?;
    let code = resp.status().as_u16();
    let body = resp.text().map_err(fail)?;
    if code < 400 {
        return Ok(body);
    }
    if peer == Peer::Weftd {
        if let Ok(status) = serde_json::from_str::<Status>(&body) {
            if !status.message.is_empty() || !status.reason.is_empty() {
                return Err(ClientError::Server(Box::new(Status { code, ..status })).into());
            }
        }
        if code == 404 {
            return Err(Error::Usage(format!(
                "weftd at {base} has no {path_and_query} (HTTP 404); is it older than this weft?"
            )));
        }
    }
    let snippet: String = body.trim().chars().take(200).collect();
    Err(Error::Usage(format!(
        "GET {url} answered HTTP {code}: {snippet}"
    )))
}

/// The innermost error in words a user knows ("connection refused", not a hyper chain).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    loop {
        if let Some(io) = cur.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::TimedOut => "timed out".into(),
                _ => io.to_string(),
            };
        }
        match cur.source() {
            Some(next) => cur = next,
            None => return cur.to_string(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// Serves `answers` (path prefix -> status and JSON body) on a loopback port until
    /// the test process ends; returns its base URL.
    pub(crate) fn serve(answers: Vec<(&'static str, u16, String)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (code, body) = answers
                    .iter()
                    .find(|(p, _, _)| path.starts_with(p))
                    .map_or((404, "{}".to_string()), |(_, c, b)| (*c, b.clone()));
                let resp = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
            }
        });
        url
    }

    pub(crate) fn proxies_json() -> String {
        serde_json::json!([
            {"proxy": "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local",
             "type": "sidecar", "namespace": "default", "workloadGroup": "reviews-v1",
             "connectedAt": "2026-11-22T02:00:00Z", "mode": "sotw",
             "xds": {"cds": {"status": "SYNCED", "sent": "7", "acked": "7", "nack": null},
                     "lds": {"status": "STALE", "sent": "8", "acked": "7",
                             "nack": "Error adding/updating listener(s) 127.0.0.1_15001: bad"},
                     "eds": {"status": "SYNCED", "sent": "3", "acked": "3", "nack": null}}},
            {"proxy": "router~127.0.0.1~ingress.istio-system~istio-system.svc.cluster.local",
             "type": "router", "namespace": "istio-system", "mode": "delta",
             "xds": {"cds": {"status": "STALE", "sent": "2", "acked": null, "nack": null}}}
        ])
        .to_string()
    }

    fn ctx(server: &str) -> Context {
        Context {
            server: server.to_string(),
            token: None,
            data_dir: std::path::PathBuf::from("/nonexistent"),
        }
    }

    fn run_args(server: &str, proxy: Option<&str>) -> (Result<u8, Error>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = Args {
            proxy: proxy.map(str::to_string),
        };
        let r = run(&args, &ctx(server), &mut out, &mut err);
        let s = |v: Vec<u8>| String::from_utf8(v).unwrap();
        (r, s(out), s(err))
    }

    #[test]
    fn table_shows_sync_state_per_type_and_nacks_below() {
        let url = serve(vec![("/debug/proxies", 200, proxies_json())]);
        let (r, out, _) = run_args(&url, None);
        assert_eq!(r.unwrap(), 0);
        let weftd = authority(&url);
        let lines: Vec<&str> = out.lines().collect();
        let cols = |l: &str| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cols(lines[0]),
            ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION"]
        );
        assert_eq!(
            cols(lines[1]),
            [
                "ingress.istio-system",
                "-",
                "STALE",
                "NOT SENT",
                "NOT SENT",
                "NOT SENT",
                weftd,
                "-"
            ]
        );
        assert_eq!(
            cols(lines[2]),
            [
                "reviews-v1.default",
                "-",
                "SYNCED",
                "STALE",
                "SYNCED",
                "NOT SENT",
                weftd,
                "-"
            ]
        );
        assert_eq!(lines[3], "");
        assert_eq!(
            lines[4],
            "reviews-v1.default LDS NACK: Error adding/updating listener(s) 127.0.0.1_15001: bad"
        );
        assert_eq!(lines.len(), 5, "{out}");
    }

    #[test]
    fn one_proxy_in_detail() {
        let url = serve(vec![("/debug/proxies", 200, proxies_json())]);
        let (r, out, _) = run_args(&url, Some("reviews"));
        assert_eq!(r.unwrap(), 0);
        assert!(
            out.starts_with(
                "Proxy:         sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local\n"
            ),
            "{out}"
        );
        assert!(out.contains("WorkloadGroup: reviews-v1\n"), "{out}");
        assert!(out.contains("Mode:          sotw\n"), "{out}");
        let lds = out.lines().find(|l| l.starts_with("LDS")).unwrap();
        assert!(
            lds.contains("STALE") && lds.ends_with("listener(s) 127.0.0.1_15001: bad"),
            "{lds}"
        );
        let rds = out.lines().find(|l| l.starts_with("RDS")).unwrap();
        assert_eq!(rds.trim_end(), "RDS    NOT SENT");
    }

    #[test]
    fn no_proxies_says_so_on_stderr() {
        let url = serve(vec![("/debug/proxies", 200, "[]".into())]);
        let (r, out, err) = run_args(&url, None);
        assert_eq!(r.unwrap(), 0);
        assert_eq!(out, "");
        assert!(
            err.starts_with("No proxies are connected to weftd at 127.0.0.1:"),
            "{err}"
        );
    }

    #[test]
    fn unreachable_weftd_is_named() {
        let (r, _, _) = run_args("http://127.0.0.1:1", None);
        let e = r.unwrap_err().report();
        assert!(
            e.contains("cannot reach weftd at http://127.0.0.1:1 (connection refused)"),
            "{e}"
        );
    }

    #[test]
    fn proxies_resolve_by_id_name_or_unique_part() {
        let proxies: Vec<ProxyEntry> = serde_json::from_str(&proxies_json()).unwrap();
        let id = "router~127.0.0.1~ingress.istio-system~istio-system.svc.cluster.local";
        assert_eq!(resolve(&proxies, id).unwrap().proxy, id);
        assert_eq!(resolve(&proxies, "ingress.istio-system").unwrap().proxy, id);
        assert_eq!(resolve(&proxies, "ingress").unwrap().proxy, id);
        let many = resolve(&proxies, "127.0.0.1").unwrap_err().to_string();
        assert!(many.contains("matches 2 proxies"), "{many}");
        let none = resolve(&proxies, "ratings").unwrap_err().to_string();
        assert!(
            none.contains("no connected proxy matches \"ratings\""),
            "{none}"
        );
    }
}
