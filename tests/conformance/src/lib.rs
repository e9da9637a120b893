//! Conformance suite: Istio config applied to weftd, checked on a real data plane.
//!
//! One shared mesh (weftd, an echo fleet, proxies started through a [`dataplane::DataPlane`])
//! runs every scenario of [`scenarios::all`] in turn; [`runner::run`] reports and judges them.

pub mod certs;
pub mod client;
pub mod control;
pub mod dataplane;
pub mod echo;
pub mod mesh;
pub mod mesh_user;
pub mod pending;
pub mod runner;
pub mod scenario;
pub mod scenarios;
pub mod verdict;

use scenario::Source;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Values of `{{name}}` placeholders in scenario YAML and requests: what only the running
/// mesh knows (`{{port:tcp-a}}`, an echo's port; `{{ca}}`, the CA file; `{{gateway_port_2}}`).
#[derive(Clone, Debug, Default)]
pub struct Vars {
    pub values: BTreeMap<String, String>,
    /// Gateway server ports a scenario chose itself: not moved to the gateway port.
    pub fixed_ports: Vec<u16>,
}

impl Vars {
    /// `text` with every `{{name}}` replaced; an unknown name is an error, not left as is.
    pub fn render(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
            let name = after[..end].trim();
            let value = self
                .values
                .get(name)
                .ok_or_else(|| format!("no value for placeholder {{{{{name}}}}}"))?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Istio's test data beside the checkout (`../shared/istio-testdata`), or `$WEFT_ISTIO_TESTDATA`.
pub fn istio_testdata() -> PathBuf {
    std::env::var_os("WEFT_ISTIO_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/istio-testdata")
        })
}

/// The documents of a config source as JSON, Gateways' server ports moved to
/// `gateway_port` (Bookinfo's gateway says 8080; the suite uses only ephemeral ports).
pub fn load_source(source: &Source, gateway_port: u16) -> Result<Vec<Value>, String> {
    load_source_with(source, gateway_port, &Vars::default())
}

/// [`load_source`] with `{{placeholders}}` filled from `vars`; servers on one of
/// `vars.fixed_ports` keep their port.
pub fn load_source_with(
    source: &Source,
    gateway_port: u16,
    vars: &Vars,
) -> Result<Vec<Value>, String> {
    let text = match source {
        Source::Yaml(text) => vars.render(text)?,
        Source::Bookinfo(file) => {
            let path = istio_testdata()
                .join("samples/bookinfo/networking")
                .join(file);
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        docs.push(with_gateway_port(value, gateway_port, &vars.fixed_ports));
    }
    Ok(docs)
}

fn with_gateway_port(mut doc: Value, port: u16, fixed: &[u16]) -> Value {
    if doc["kind"] == "Gateway" {
        if let Some(servers) = doc
            .pointer_mut("/spec/servers")
            .and_then(Value::as_array_mut)
        {
            for server in servers {
                let current = server["port"]["number"].as_u64();
                if current.is_some_and(|p| fixed.iter().any(|f| u64::from(*f) == p)) {
                    continue;
                }
                server["port"]["number"] = port.into();
            }
        }
    }
    doc
}

/// The last `lines` lines of a log.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_ports_move_and_other_kinds_stay() {
        let yaml = "kind: Gateway\nspec:\n  servers:\n  - port: {number: 8080}\n---\n\
                    kind: VirtualService\nspec:\n  http:\n  - route: [{destination: {port: {number: 8080}}}]\n";
        let docs = load_source(&Source::Yaml(yaml), 31000).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["spec"]["servers"][0]["port"]["number"], 31000);
        assert_eq!(
            docs[1]["spec"]["http"][0]["route"][0]["destination"]["port"]["number"],
            8080
        );
    }

    #[test]
    fn placeholders_are_filled_and_fixed_ports_stay() {
        let vars = Vars {
            values: [("p".to_owned(), "4242".to_owned())].into(),
            fixed_ports: vec![4242],
        };
        assert_eq!(vars.render("a {{p}} b {{ p }}").unwrap(), "a 4242 b 4242");
        assert!(vars.render("{{nope}}").unwrap_err().contains("nope"));
        assert!(vars.render("{{p").is_err());
        let yaml =
            "kind: Gateway\nspec:\n  servers:\n  - port: {number: {{p}}}\n  - port: {number: 80}\n";
        let docs = load_source_with(&Source::Yaml(yaml), 31000, &vars).unwrap();
        assert_eq!(docs[0]["spec"]["servers"][0]["port"]["number"], 4242);
        assert_eq!(docs[0]["spec"]["servers"][1]["port"]["number"], 31000);
    }

    #[test]
    fn bookinfo_samples_are_readable() {
        let docs = load_source(&Source::Bookinfo("virtual-service-all-v1.yaml"), 1).unwrap();
        assert!(docs.iter().all(|d| d["kind"] == "VirtualService"));
        assert!(docs.len() >= 4);
    }
}
