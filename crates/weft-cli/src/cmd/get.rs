//! `weft get`: list or show resources as a table, YAML, JSON or names, like `kubectl get`.

use super::{lookup_kind, Context, Error};
use crate::client::ClientError;
use crate::source::resource_type;
use crate::table::{age, cell, render, wide_columns};
use serde_json::{json, Value};
use std::io::Write;
use weft_config::{Kind, KINDS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
    Wide,
    Name,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kind (vs, dr, gw, se, ...; kind name or plural), a comma list, or "all".
    pub kind: String,
    /// Names to show; all resources when none.
    pub names: Vec<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector: app=reviews,version!=v1,tier,!canary.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let kinds = parse_kinds(&args.kind)?;
    let ns = args.namespace.as_deref().unwrap_or("default");
    let multi = kinds.len() > 1;
    let client = ctx.client();
    let mut groups: Vec<(Kind, Vec<Value>)> = Vec::new();
    let mut failed = false;
    if !args.names.is_empty() {
        let [kind] = kinds[..] else {
            return Err(Error::Usage(
                "names can only be given with a single kind".into(),
            ));
        };
        if args.all_namespaces {
            return Err(Error::Usage(
                "a resource cannot be retrieved by name across all namespaces; use -n NAMESPACE"
                    .into(),
            ));
        }
        let mut found = Vec::new();
        for name in &args.names {
            match client.get(kind, ns, name) {
                Ok(obj) => found.push(obj),
                Err(e @ ClientError::Server(_)) => {
                    failed = true;
                    writeln!(err, "{e}")?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        groups.push((kind, found));
    } else {
        let scope = (!args.all_namespaces).then_some(ns);
        for &kind in &kinds {
            let mut items = client.list(kind, scope, args.selector.as_deref())?;
            items.sort_by_key(|o| (text(o, "/metadata/namespace"), text(o, "/metadata/name")));
            groups.push((kind, items));
        }
    }

    let total: usize = groups.iter().map(|(_, items)| items.len()).sum();
    match args.output {
        Some(Format::Yaml | Format::Json) => {
            let mut items: Vec<Value> = groups.into_iter().flat_map(|(_, i)| i).collect();
            // One named object prints bare; anything else is a List, as kubectl does.
            let doc = if args.names.len() == 1 && items.len() == 1 {
                items.remove(0)
            } else if args.names.len() == 1 {
                return Ok(1);
            } else {
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
            };
            if args.output == Some(Format::Yaml) {
                let yaml = serde_yaml::to_string(&doc).expect("JSON values serialize as YAML");
                out.write_all(yaml.as_bytes())?;
            } else {
                let text = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
                writeln!(out, "{text}")?;
            }
        }
        Some(Format::Name) => {
            for (kind, items) in &groups {
                for o in items {
                    writeln!(
                        out,
                        "{}/{}",
                        resource_type(*kind),
                        text(o, "/metadata/name")
                    )?;
                }
            }
        }
        Some(Format::Wide) | None => {
            let wide = args.output == Some(Format::Wide);
            let mut first = true;
            for (kind, items) in &groups {
                if items.is_empty() {
                    continue;
                }
                if !first {
                    writeln!(out)?;
                }
                first = false;
                let t = table(*kind, items, args.all_namespaces, wide, multi);
                out.write_all(t.as_bytes())?;
            }
            if total == 0 && args.names.is_empty() {
                if args.all_namespaces {
                    writeln!(err, "No resources found")?;
                } else {
                    writeln!(err, "No resources found in {ns} namespace.")?;
                }
            }
        }
    }
    Ok(u8::from(failed))
}

/// `vs`, `vs,dr` or `all` (every kind, in `KINDS` order, but secrets: like `kubectl get
/// all`, and their reads need the token).
fn parse_kinds(word: &str) -> Result<Vec<Kind>, Error> {
    if word.eq_ignore_ascii_case("all") {
        return Ok(KINDS
            .iter()
            .map(|i| i.kind)
            .filter(|k| !k.is_sensitive())
            .collect());
    }
    let mut kinds = Vec::new();
    for w in word.split(',').filter(|w| !w.is_empty()) {
        let k = lookup_kind(w)?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    if kinds.is_empty() {
        return Err(Error::Usage(
            "a kind is required, e.g. \"weft get vs\"".into(),
        ));
    }
    Ok(kinds)
}

/// One kind's table. With several kinds, names carry their type (`virtualservice.networking.istio.io/reviews`)
/// so the tables can be told apart, as in `kubectl get all`.
fn table(kind: Kind, items: &[Value], all_ns: bool, wide: bool, qualify: bool) -> String {
    let extra = if wide { wide_columns(kind) } else { &[] };
    let mut header = Vec::new();
    if all_ns {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    // A secret shows its type and how many keys it holds, never their values (kubectl's
    // columns).
    let secret = kind == Kind::Secret;
    if secret {
        header.extend(["TYPE", "DATA"]);
    }
    header.extend(extra.iter().map(|(h, _)| *h));
    header.push("AGE");
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            let mut row = Vec::new();
            if all_ns {
                row.push(text(o, "/metadata/namespace"));
            }
            let name = text(o, "/metadata/name");
            row.push(match qualify {
                true => format!("{}/{name}", resource_type(kind)),
                false => name,
            });
            if secret {
                row.push(text(o, "/type"));
                let keys = o
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |d| d.len());
                row.push(keys.to_string());
            }
            row.extend(extra.iter().map(|(_, p)| cell(o.pointer(p))));
            row.push(age(o
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)));
            row
        })
        .collect();
    render(&header, &rows)
}

fn text(o: &Value, pointer: &str) -> String {
    o.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(ns: &str, name: &str, gateways: Value) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"hosts": [name], "gateways": gateways}})
    }

    #[test]
    fn wide_all_namespaces_table() {
        let items = [
            vs("default", "reviews", Value::Null),
            vs("prod", "bookinfo", json!(["bookinfo-gateway"])),
        ];
        let t = table(Kind::VirtualService, &items, true, true, false);
        assert_eq!(
            t,
            "NAMESPACE   NAME       GATEWAYS               HOSTS          AGE\n\
             default     reviews                           [\"reviews\"]    <unknown>\n\
             prod        bookinfo   [\"bookinfo-gateway\"]   [\"bookinfo\"]   <unknown>\n"
        );
    }

    #[test]
    fn secrets_show_type_and_key_count_but_no_data() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "cred", "namespace": "istio-system"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}});
        let t = table(Kind::Secret, &[secret], false, false, false);
        assert_eq!(
            t,
            "NAME   TYPE                DATA   AGE\ncred   kubernetes.io/tls   2      <unknown>\n"
        );
        assert!(!t.contains("Y2VydA"));
    }

    #[test]
    fn several_kinds_qualify_names() {
        let t = table(
            Kind::VirtualService,
            &[vs("default", "reviews", Value::Null)],
            false,
            false,
            true,
        );
        assert_eq!(t, "NAME                                         AGE\nvirtualservice.networking.istio.io/reviews   <unknown>\n");
    }

    #[test]
    fn kinds_by_short_name_list_and_all() {
        assert_eq!(
            parse_kinds("vs,dr,vs").unwrap(),
            vec![Kind::VirtualService, Kind::DestinationRule]
        );
        let all = parse_kinds("all").unwrap();
        assert_eq!(all.len(), KINDS.len() - 1);
        assert!(!all.contains(&Kind::Secret));
        assert_eq!(parse_kinds("secrets").unwrap(), vec![Kind::Secret]);
        let e = parse_kinds("pods").unwrap_err();
        assert_eq!(
            e.report(),
            "error: the server doesn't have a resource type \"pods\"; see the kinds with \"weft get all\""
        );
    }
}
