//! Workload identities for the demo's proxies, as Istio's default install gives them: one
//! bootstrap token per service account, made by weftd (`POST /api/weft/v1/tokens`, what
//! `weft token create` does) and handed to the proxies in files only their owner can read.
//!
//! A token never appears on a command line (where `ps` would show it): weft-proxy reads it
//! from `--token-file`, and Envoy's bootstrap, which carries it in the ADS metadata, is
//! itself written owner-only.

use super::mesh::{GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT, NAMESPACE, WORKLOADS};
use super::plan::{fs_err, Plan};
use super::{cli, DemoError};
use crate::cmd::token;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Trust domain weft-proxy assumes when weftd's answer names none (Istio's default).
const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A namespace and service account: what a bootstrap token is bound to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Account {
    pub(super) namespace: String,
    pub(super) service_account: String,
}

impl Account {
    pub(super) fn new(namespace: &str, service_account: &str) -> Account {
        Account {
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// `<dir>/<namespace>.<service account>.token`; both are Kubernetes names, so the
    /// dot cannot be ambiguous.
    fn file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.{}.token", self.namespace, self.service_account))
    }
}

/// Every account the demo's proxies run under: Bookinfo's four, then the gateway's.
pub(super) fn accounts() -> Vec<Account> {
    let mut out: Vec<Account> = Vec::new();
    for w in WORKLOADS {
        let a = Account::new(NAMESPACE, &w.service_account());
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out.push(Account::new(GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT));
    out
}

/// The tokens the demo made: where each account's token file is, and the SPIFFE identity
/// weftd bound it to.
pub(super) struct Identities {
    files: BTreeMap<Account, PathBuf>,
    spiffe: BTreeMap<Account, String>,
    /// The mesh's trust domain, as weftd's CA names identities.
    pub(super) trust_domain: String,
}

impl Identities {
    /// Asks weftd for one token per account and writes each to an owner-only file in
    /// the demo's `tokens/` dir.
    pub(super) async fn create(plan: &Plan) -> Result<Identities, DemoError> {
        let dir = plan.tokens_dir();
        let mut ids = Identities {
            files: BTreeMap::new(),
            spiffe: BTreeMap::new(),
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
        };
        for account in accounts() {
            let args = token::Args {
                command: token::Command::Create(token::CreateArgs {
                    namespace: account.namespace.clone(),
                    service_account: account.service_account.clone(),
                    ttl: None,
                    output: Some("json".into()),
                }),
            };
            let out = cli(plan, move |ctx, out, err| token::run(&args, ctx, out, err)).await?;
            let answer: serde_json::Value = serde_json::from_slice(&out)
                .map_err(|e| DemoError::Cli(format!("weftd's token answer is not JSON: {e}")))?;
            let token = answer["token"].as_str().unwrap_or_default();
            if token.is_empty() {
                return Err(DemoError::Cli(format!(
                    "weftd made no token for {}/{}: {answer}",
                    account.namespace, account.service_account
                )));
            }
            let identity = answer["identity"].as_str().unwrap_or_default().to_string();
            if let Some(td) = trust_domain(&identity) {
                ids.trust_domain = td.to_string();
            }
            let path = account.file(&dir);
            write_private(&path, token)?;
            ids.spiffe.insert(account.clone(), identity);
            ids.files.insert(account, path);
        }
        Ok(ids)
    }

    /// The token file of an account made by [`Identities::create`].
    pub(super) fn token_file(&self, account: &Account) -> &Path {
        self.files
            .get(account)
            .map(PathBuf::as_path)
            .expect("a token was made for every account the demo runs")
    }

    /// The SPIFFE identities, in [`accounts`] order, for the progress line.
    pub(super) fn names(&self) -> Vec<&str> {
        accounts()
            .iter()
            .filter_map(|a| self.spiffe.get(a).map(String::as_str))
            .collect()
    }
}

/// `spiffe://<trust domain>/ns/...` -> the trust domain.
fn trust_domain(identity: &str) -> Option<&str> {
    identity
        .strip_prefix("spiffe://")?
        .split('/')
        .next()
        .filter(|td| !td.is_empty())
}

/// Creates `path` readable and writable by its owner only (mode 0600 from the start, not
/// changed after the secret is already in it).
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), DemoError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fs_err("cannot create", path))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(fs_err("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn one_account_per_bookinfo_service_and_istios_gateway_account() {
        let names: Vec<String> = accounts()
            .iter()
            .map(|a| format!("{}/{}", a.namespace, a.service_account))
            .collect();
        assert_eq!(
            names,
            [
                "default/bookinfo-ratings",
                "default/bookinfo-details",
                "default/bookinfo-reviews",
                "default/bookinfo-productpage",
                "istio-system/istio-ingressgateway-service-account",
            ]
        );
    }

    #[test]
    fn trust_domain_comes_from_the_identity() {
        assert_eq!(
            trust_domain("spiffe://example.org/ns/default/sa/bookinfo-ratings"),
            Some("example.org")
        );
        assert_eq!(trust_domain("bookinfo-ratings"), None);
    }

    #[test]
    fn token_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = Account::new("default", "bookinfo-ratings").file(dir.path());
        write_private(&path, "weft-bt-x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "weft-bt-x\n");
        assert!(path.ends_with("default.bookinfo-ratings.token"));
    }
}
