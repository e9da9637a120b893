//! JWKS for `jwksUri` rules, fetched by weftd and inlined into the proxies' `local_jwks`,
//! as istiod does by default (its JwksResolver): fetched on first use (HTTP or HTTPS, the
//! rule's timeout, 5 s by default), or found through the issuer's OpenID discovery document
//! when a rule names no URI; cached; refreshed every 20 minutes; a failed fetch is retried
//! with back-off from 1 s. While a URI cannot be fetched its rules get a JWKS holding only
//! a key nobody has, so every token fails (Istio's "fake JWKS"); tokenless requests still
//! pass. A refresh that changes keys calls the change hook so the mesh is pushed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL default.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(20 * 60);
/// First retry after a failed fetch, doubled up to [`REFRESH_INTERVAL`].
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Istio's default `JWTRule.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys not asked for by any translation for this long are dropped (Istio: 24 h).
const EVICT_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A JWKS with one RSA key whose private half was thrown away: no token verifies.
pub const FAKE_JWKS: &str = concat!(
    r#"{"keys":[{"kty":"RSA","kid":"weft-jwks-unavailable","alg":"RS256","e":"AQAB","n":""#,
    "-7ZWhnFKVO1DIrrtQGSrbEBxfiS1MyVF1z9p_Ogwfp4URPkeuZRRZp5wL0JEosxy7YtwNOjiFNxI1o4uzzgekCi8dlqBKTHbSmxdwMd8-s3Z4lJPb04wIHh8hR732kMEuuY0NPB-xPxDb7Rel6vqx9t7vYx1kduzDMrezg6VMglbGS9i6OkHppv6eay6I542oTolHzVBbbdAWDxy7dnBXx3xRegCvQyBinCItb9ZNVkVMCxAojCTGj45n48J6IkPlr5LNZXXaQuu4xRtTrhyyVUfUnDLdFaE_CQrKSlASYd1ZUD8tSZsl6rZI2WfgAJeaJv_8MEStKYIFSg3LYgqkQ",
    r#""}]}"#
);

/// Why keys could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {uri}: {reason}")]
    Http { uri: String, reason: String },
    #[error("{uri}: not a JWKS (a JSON object with a \"keys\" array)")]
    NotJwks { uri: String },
    #[error("{uri}: the OpenID discovery document has no jwks_uri")]
    NoJwksUri { uri: String },
}

#[derive(Clone, Debug)]
struct Entry {
    /// The last good JWKS; `None` until a fetch succeeds.
    jwks: Option<String>,
    timeout: Duration,
    last_used: Instant,
    /// Consecutive failed fetches.
    failures: u32,
    next_fetch: Instant,
}

/// Where the keys of a rule come from: its URI, or its issuer's discovery document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Uri(String),
    Issuer(String),
}

/// The cache of fetched key sets.
#[derive(Debug)]
pub struct JwksResolver {
    entries: Mutex<HashMap<Source, Entry>>,
    refresh: Duration,
}

impl Default for JwksResolver {
    fn default() -> Self {
        JwksResolver::new(REFRESH_INTERVAL)
    }
}

impl JwksResolver {
    pub fn new(refresh: Duration) -> Self {
        JwksResolver {
            entries: Mutex::default(),
            refresh,
        }
    }

    /// The resolver weftd's translation uses; [`spawn_refresher`] keeps it fresh.
    pub fn global() -> &'static Arc<JwksResolver> {
        static GLOBAL: OnceLock<Arc<JwksResolver>> = OnceLock::new();
        GLOBAL.get_or_init(Arc::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Source, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The JWKS text for `source`: cached, else fetched now (blocking for at most
    /// `timeout`), else the fake JWKS until a background retry succeeds.
    pub fn resolve(&self, source: &Source, timeout: Duration) -> String {
        if let Some(e) = self.lock().get_mut(source) {
            e.last_used = Instant::now();
            e.timeout = timeout;
            return e.jwks.clone().unwrap_or_else(|| FAKE_JWKS.to_string());
        }
        let fetched = fetch_in_thread(source.clone(), timeout);
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.entry(source.clone()).or_insert(Entry {
            jwks: None,
            timeout,
            last_used: now,
            failures: 0,
            next_fetch: now,
        });
        match fetched {
            Ok(jwks) => {
                entry.jwks = Some(jwks);
                entry.failures = 0;
                entry.next_fetch = now + self.refresh;
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS not fetched; its tokens are refused until it is");
                entry.failures = 1;
                entry.next_fetch = now + RETRY_AFTER_FAILURE;
            }
        }
        entry.jwks.clone().unwrap_or_else(|| FAKE_JWKS.to_string())
    }

    /// Fetches every entry that is due; true when some key set changed. Entries nobody
    /// asked for in a day are dropped.
    pub fn refresh_due(&self) -> bool {
        let now = Instant::now();
        let due: Vec<(Source, Duration)> = {
            let mut entries = self.lock();
            entries.retain(|_, e| now.duration_since(e.last_used) < EVICT_AFTER);
            entries
                .iter()
                .filter(|(_, e)| e.next_fetch <= now)
                .map(|(s, e)| (s.clone(), e.timeout))
                .collect()
        };
        let mut changed = false;
        for (source, timeout) in due {
            let fetched = fetch(&source, timeout);
            let now = Instant::now();
            let mut entries = self.lock();
            let Some(entry) = entries.get_mut(&source) else {
                continue;
            };
            match fetched {
                Ok(jwks) => {
                    if entry.jwks.as_deref() != Some(jwks.as_str()) {
                        tracing::info!(?source, "JWKS changed");
                        changed = true;
                    }
                    entry.jwks = Some(jwks);
                    entry.failures = 0;
                    entry.next_fetch = now + self.refresh;
                }
                Err(e) => {
                    // Keys fetched before stay in use; istiod keeps them too.
                    entry.failures = entry.failures.saturating_add(1);
                    let backoff = RETRY_AFTER_FAILURE
                        .saturating_mul(1 << entry.failures.min(16).saturating_sub(1))
                        .min(self.refresh);
                    tracing::warn!(error = %e, retry_in = ?backoff, "JWKS refresh failed");
                    entry.next_fetch = now + backoff;
                }
            }
        }
        changed
    }

    /// When the next entry is due (the refresh interval when there is none).
    fn next_due(&self) -> Duration {
        let now = Instant::now();
        self.lock()
            .values()
            .map(|e| e.next_fetch.saturating_duration_since(now))
            .min()
            .unwrap_or(self.refresh)
            .min(self.refresh)
    }
}

/// Refreshes `resolver` in the background until `stop` turns true; `changed` runs after
/// a refresh that changed keys (weftd republishes its snapshot).
pub fn spawn_refresher(
    resolver: Arc<JwksResolver>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    changed: impl Fn() + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Entries appear when translation first asks; look again at least every second.
            let pause = resolver
                .next_due()
                .clamp(Duration::from_millis(200), Duration::from_secs(1));
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(pause) => {}
            }
            let r = resolver.clone();
            let did_change = tokio::task::spawn_blocking(move || r.refresh_due())
                .await
                .unwrap_or(false);
            if did_change {
                changed();
            }
        }
    })
}

/// [`fetch`] on a thread of its own: translation may run on an async runtime, where a
/// blocking HTTP client must not run.
fn fetch_in_thread(source: Source, timeout: Duration) -> Result<String, FetchError> {
    std::thread::spawn(move || fetch(&source, timeout))
        .join()
        .unwrap_or_else(|_| {
            Err(FetchError::Http {
                uri: String::new(),
                reason: "fetch thread panicked".into(),
            })
        })
}

fn get(uri: &str, timeout: Duration) -> Result<String, FetchError> {
    let err = |reason: String| FetchError::Http {
        uri: uri.to_string(),
        reason,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let resp = client.get(uri).send().map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(err(format!("status {status}")));
    }
    resp.text().map_err(|e| err(e.to_string()))
}

/// Fetches a key set (through OpenID discovery for an issuer) and checks it is a JWKS.
pub fn fetch(source: &Source, timeout: Duration) -> Result<String, FetchError> {
    let uri = match source {
        Source::Uri(u) => u.clone(),
        Source::Issuer(issuer) => {
            let discovery = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let doc = get(&discovery, timeout)?;
            serde_json::from_str::<serde_json::Value>(&doc)
                .ok()
                .and_then(|v| v.get("jwks_uri")?.as_str().map(str::to_string))
                .ok_or(FetchError::NoJwksUri { uri: discovery })?
        }
    };
    let text = get(&uri, timeout)?;
    let is_jwks = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .is_some_and(|v| v.get("keys").is_some_and(serde_json::Value::is_array));
    if !is_jwks {
        return Err(FetchError::NotJwks { uri });
    }
    Ok(text)
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
pub(crate) mod tests;
