//! `weft proxy-config`: a proxy's listeners, routes, clusters and endpoints, like istioctl's.
//!
//! The config comes from weftd (what it last sent the proxy) or from the data plane's own
//! admin endpoint (what the proxy actually runs); both speak Envoy's `/config_dump` shape.

mod secrets;
mod summary;

use super::proxy_status::{http_get, list_proxies, resolve, Peer};
use super::{Context, Error};
use serde_json::Value;
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    #[value(alias = "listener", alias = "l")]
    Listeners,
    #[value(alias = "route", alias = "r")]
    Routes,
    #[value(alias = "cluster", alias = "c")]
    Clusters,
    #[value(alias = "endpoint", alias = "ep")]
    Endpoints,
    #[value(alias = "secrets", alias = "s")]
    Secret,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The resources as JSON, exactly as the source reported them.
    Json,
    /// A table per section.
    Short,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    pub section: Section,
    /// The proxy: node id, `workload.namespace`, or a unique part of the id. Not needed
    /// with --admin.
    pub proxy: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Short)]
    pub output: Format,
    /// Read from a data plane's admin endpoint (http://127.0.0.1:15000) instead of weftd.
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
}

/// Where the config was read, which decides where endpoints come from.
enum Source {
    Weftd,
    /// The admin's base URL.
    Admin(String),
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let (source, dump) = match (&args.admin, &args.proxy) {
        (Some(admin), _) => {
            let admin = admin.trim_end_matches('/');
            let admin = if admin.contains("://") {
                admin.to_string()
            } else {
                format!("http://{admin}")
            };
            let body = http_get(&admin, "/config_dump", Peer::Admin)?;
            let dump = parse(&admin, "/config_dump", &body)?;
            (Source::Admin(admin), dump)
        }
        (None, Some(query)) => {
            let proxies = list_proxies(&ctx.server)?;
            let id = &resolve(&proxies, query)?.proxy;
            let path = format!("/debug/config_dump?proxy={}", encode(id));
            let body = http_get(&ctx.server, &path, Peer::Weftd)?;
            (Source::Weftd, parse(&ctx.server, &path, &body)?)
        }
        (None, None) => {
            return Err(Error::Usage(
                "name the proxy (see \"weft proxy-status\"), or pass --admin URL".into(),
            ))
        }
    };
    let endpoints = || -> Result<Value, Error> {
        match &source {
            Source::Weftd => Ok(summary::endpoint_configs(&dump)),
            Source::Admin(admin) => {
                let path = "/clusters?format=json";
                let body = http_get(admin, path, Peer::Admin)?;
                parse(admin, path, &body)
            }
        }
    };

    if args.output == Format::Json {
        let doc = match args.section {
            Section::All => dump.clone(),
            Section::Clusters => Value::Array(summary::clusters(&dump)),
            Section::Listeners => Value::Array(summary::listeners(&dump)),
            Section::Routes => Value::Array(summary::routes(&dump)),
            Section::Endpoints => endpoints()?,
            Section::Secret => Value::Array(secrets::secrets(&dump)),
        };
        let text = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
        writeln!(out, "{text}")?;
        return Ok(0);
    }

    let sections = match args.section {
        Section::All => vec![
            Section::Clusters,
            Section::Listeners,
            Section::Routes,
            Section::Endpoints,
            Section::Secret,
        ],
        one => vec![one],
    };
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let (table, empty) = match section {
            Section::Clusters => (
                summary::cluster_table(&dump),
                summary::clusters(&dump).is_empty(),
            ),
            Section::Listeners => (
                summary::listener_table(&dump),
                summary::listeners(&dump).is_empty(),
            ),
            Section::Routes => (
                summary::route_table(&dump),
                summary::routes(&dump).is_empty(),
            ),
            Section::Secret => (
                secrets::secret_table(&dump),
                secrets::secrets(&dump).is_empty(),
            ),
            _ => {
                let rows = summary::endpoint_rows(&endpoints()?);
                (summary::endpoint_table(&rows), rows.is_empty())
            }
        };
        out.write_all(table.as_bytes())?;
        if empty {
            writeln!(err, "No {} found.", section_name(*section))?;
        }
    }
    Ok(0)
}

fn section_name(s: Section) -> &'static str {
    match s {
        Section::Listeners => "listeners",
        Section::Routes => "routes",
        Section::Clusters => "clusters",
        Section::Endpoints => "endpoints",
        Section::Secret => "secrets",
        Section::All => "config",
    }
}

fn parse(base: &str, path: &str, body: &str) -> Result<Value, Error> {
    serde_json::from_str(body).map_err(|e| {
        Error::Usage(format!(
            "{base}{path} did not answer JSON ({e}); is that a proxy's admin endpoint?"
        ))
    })
}

/// Percent-encodes a node id for a query string; ids hold `~`, `.` and `-`, which are
/// safe, but a user's odd id must not break the URL.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
