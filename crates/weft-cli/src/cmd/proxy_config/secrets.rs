//! The SECRET section: the SDS secrets of a `SecretsConfigDump` (certificates, CA bundles),
//! named, typed and with their state; private keys never reach this table (both Envoy's
//! and weft-proxy's admin redact them).

use super::summary::collect;
use crate::table::render;
use serde_json::Value;

/// Where a secret sits in Envoy's dump, and the state the table shows for it.
const LISTS: [(&str, &str); 3] = [
    ("dynamic_active_secrets", "ACTIVE"),
    ("dynamic_warming_secrets", "WARMING"),
    ("static_secrets", "ACTIVE"),
];

/// Every secret entry (`{name, version_info, secret, ...}`), active, warming and static.
pub fn secrets(dump: &Value) -> Vec<Value> {
    LISTS
        .iter()
        .flat_map(|(list, _)| collect(dump, "SecretsConfigDump", &[(list, &[])]))
        .collect()
}

/// What a secret holds, in istioctl's words.
fn kind(secret: &Value) -> &'static str {
    if secret.get("tls_certificate").is_some() {
        "Cert Chain"
    } else if secret.get("validation_context").is_some() {
        "CA"
    } else if secret.get("session_ticket_keys").is_some() {
        "Session Ticket Keys"
    } else if secret.get("generic_secret").is_some() {
        "Generic"
    } else {
        "-"
    }
}

/// RESOURCE NAME, TYPE, STATUS, VERSION: one row per secret, sorted by name.
pub fn secret_table(dump: &Value) -> String {
    let mut rows = Vec::new();
    for (list, status) in LISTS {
        for entry in collect(dump, "SecretsConfigDump", &[(list, &[])]) {
            let secret = entry.get("secret").unwrap_or(&Value::Null);
            let name = entry
                .get("name")
                .or_else(|| secret.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            let version = entry.get("version_info").and_then(Value::as_str);
            rows.push(vec![
                name.to_string(),
                kind(secret).to_string(),
                status.to_string(),
                version.filter(|v| !v.is_empty()).unwrap_or("-").to_string(),
            ]);
        }
    }
    rows.sort();
    render(&["RESOURCE NAME", "TYPE", "STATUS", "VERSION"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_table_names_types_and_states() {
        let dump = json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"},
            {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
             "dynamic_active_secrets": [
                {"name": "default", "version_info": "3", "secret": {
                    "name": "default",
                    "tls_certificate": {"certificate_chain": {"inline_bytes": "Q0VSVA=="},
                                        "private_key": {"inline_bytes": "W3JlZGFjdGVkXQ=="}}}},
                {"name": "ROOTCA", "version_info": "3", "secret": {
                    "name": "ROOTCA", "validation_context": {}}}
             ],
             "dynamic_warming_secrets": [{"name": "kubernetes://cred", "secret": {}}]}
        ]});
        assert_eq!(secrets(&dump).len(), 3);
        let table = secret_table(&dump);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            rows,
            [
                vec!["RESOURCE NAME", "TYPE", "STATUS", "VERSION"],
                vec!["ROOTCA", "CA", "ACTIVE", "3"],
                vec!["default", "Cert Chain", "ACTIVE", "3"],
                vec!["kubernetes://cred", "-", "WARMING", "-"],
            ]
        );
    }
}
