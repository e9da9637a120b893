//! Bootstrap tokens: how a workload outside Kubernetes proves its identity to the CA. Each
//! token binds one namespace and service account; only its SHA-256 digest is stored
//! (`<data-dir>/ca/tokens.json`, owner only), so a copy of the data dir cannot be used to
//! obtain certificates.

use super::root::{write_file, RootError};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Tokens start with this, so one found in a log or a file is recognisable.
pub const TOKEN_PREFIX: &str = "weft-bt-";

#[derive(Debug, Error)]
pub enum TokenStoreError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] RootError),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Why a presented token is not accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("the bootstrap token is not known to this CA")]
    Unknown,
    #[error("the bootstrap token expired")]
    Expired,
}

/// What a token proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub namespace: String,
    pub service_account: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    sha256: String,
    namespace: String,
    service_account: String,
    created: u64,
    /// Seconds since the epoch; none: valid until weftd's data dir is reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
}

/// A newly created token: shown once, never stored in clear.
#[derive(Clone, Debug)]
pub struct Issued {
    pub token: String,
    pub binding: Binding,
    pub expires: Option<u64>,
}

pub struct TokenStore {
    path: PathBuf,
    entries: RwLock<Vec<Entry>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Kubernetes' DNS-1123 label (namespaces) or subdomain (service accounts).
fn check_name(field: &'static str, value: &str, subdomain: bool) -> Result<(), TokenStoreError> {
    let invalid = |reason: &str| TokenStoreError::Invalid {
        field,
        reason: format!("{value:?} {reason}"),
    };
    let max = if subdomain { 253 } else { 63 };
    if value.is_empty() {
        return Err(TokenStoreError::Invalid {
            field,
            reason: "required".into(),
        });
    }
    if value.len() > max {
        return Err(invalid(&format!("is longer than {max} characters")));
    }
    let parts: Vec<&str> = if subdomain {
        value.split('.').collect()
    } else {
        vec![value]
    };
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    });
    if !ok {
        return Err(invalid(
            "must be lower-case letters, digits and '-', starting and ending alphanumeric",
        ));
    }
    Ok(())
}

impl TokenStore {
    /// Opens the store in `dir` (`tokens.json`), empty when the file does not exist.
    pub fn open(dir: &Path) -> Result<TokenStore, TokenStoreError> {
        // With a plug-in CA nothing else creates the folder.
        std::fs::create_dir_all(dir).map_err(|e| TokenStoreError::Read {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let path = dir.join("tokens.json");
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| TokenStoreError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(TokenStoreError::Read {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        Ok(TokenStore {
            path,
            entries: RwLock::new(entries),
        })
    }

    /// Creates a token for `namespace`/`service_account`, valid for `ttl` (forever when
    /// none), and persists its digest before returning it.
    pub fn create(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Option<Duration>,
    ) -> Result<Issued, TokenStoreError> {
        check_name("namespace", namespace, false)?;
        check_name("serviceAccount", service_account, true)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
        let created = now();
        let expires = ttl.map(|t| created.saturating_add(t.as_secs().max(1)));
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Entry> = entries
            .iter()
            .filter(|e| e.expires.is_none_or(|at| at > created))
            .cloned()
            .collect();
        next.push(Entry {
            sha256: digest(&token),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            created,
            expires,
        });
        let text = serde_json::to_string_pretty(&next).expect("entries serialize");
        write_file(&self.path, &text, 0o600)?;
        *entries = next;
        Ok(Issued {
            token,
            binding: Binding {
                namespace: namespace.to_string(),
                service_account: service_account.to_string(),
            },
            expires,
        })
    }

    /// The identity `presented` proves. Digests are compared, so the time taken does not
    /// depend on how much of a real token was guessed.
    pub fn verify(&self, presented: &str) -> Result<Binding, Rejection> {
        let wanted = digest(presented);
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries
            .iter()
            .find(|e| e.sha256 == wanted)
            .ok_or(Rejection::Unknown)?;
        if entry.expires.is_some_and(|at| at <= now()) {
            return Err(Rejection::Expired);
        }
        Ok(Binding {
            namespace: entry.namespace.clone(),
            service_account: entry.service_account.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_stored_hashed_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let issued = store.create("bookinfo", "reviews", None).unwrap();
        assert!(issued.token.starts_with(TOKEN_PREFIX));
        let text = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(
            !text.contains(&issued.token),
            "token stored in clear: {text}"
        );
        assert!(text.contains(&digest(&issued.token)));
        let mode = std::fs::metadata(dir.path().join("tokens.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let reopened = TokenStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.verify(&issued.token),
            Ok(Binding {
                namespace: "bookinfo".into(),
                service_account: "reviews".into()
            })
        );
        assert_eq!(reopened.verify("weft-bt-guess"), Err(Rejection::Unknown));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let issued = store
            .create("default", "sleep", Some(Duration::from_secs(1)))
            .unwrap();
        assert!(store.verify(&issued.token).is_ok());
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(store.verify(&issued.token), Err(Rejection::Expired));
    }

    #[test]
    fn names_are_checked_and_the_field_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let err = store.create("Bad_NS", "sa", None).unwrap_err().to_string();
        assert!(err.starts_with("namespace: \"Bad_NS\""), "{err}");
        let err = store.create("ns", "", None).unwrap_err().to_string();
        assert_eq!(err, "serviceAccount: required");
        assert!(store.create("ns", "a.b-c", None).is_ok());
    }
}
