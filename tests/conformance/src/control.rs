//! weftd for the suite: started on free API and xDS ports, configured through its HTTP API.

use reqwest::blocking::Client;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use weft_testkit::{binary, free_port};

/// How long weftd may take to answer `GET /`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One weftd process with its own data dir; killed when dropped.
pub struct ControlPlane {
    child: Child,
    api: SocketAddr,
    xds: SocketAddr,
    dir: TempDir,
    token: String,
    http: Client,
}

/// Identifies one stored resource: what a scenario must undo when it ends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResourceKey {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    /// The key of a parsed resource; the namespace defaults to `default` as weftd does.
    pub fn of(doc: &Value) -> Result<ResourceKey, String> {
        let field = |ptr: &str| doc.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
        Ok(ResourceKey {
            api_version: field("/apiVersion").ok_or("resource without apiVersion")?,
            kind: field("/kind").ok_or("resource without kind")?,
            namespace: field("/metadata/namespace").unwrap_or_else(|| "default".into()),
            name: field("/metadata/name").ok_or("resource without metadata.name")?,
        })
    }

    /// `/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`.
    fn path(&self) -> String {
        format!(
            "/apis/{}/namespaces/{}/{}/{}",
            self.api_version,
            self.namespace,
            plural(&self.kind),
            self.name
        )
    }
}

/// Kubernetes-style plural of a kind: `ServiceEntry` -> `serviceentries`, `Gateway` -> `gateways`.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{stem}ies"),
        _ => format!("{lower}s"),
    }
}

impl ControlPlane {
    /// Starts weftd and waits until its API answers.
    pub fn start() -> Result<ControlPlane, String> {
        ControlPlane::start_with_args(&[])
    }

    /// Starts weftd with extra command-line arguments (e.g. `--mesh-config FILE`).
    /// A port picked free can be taken by a parallel test before weftd binds it: then
    /// weftd exits naming it, and it is started again on other ports.
    pub fn start_with_args(extra: &[String]) -> Result<ControlPlane, String> {
        let mut attempt = 1;
        loop {
            match ControlPlane::start_once(extra) {
                Err(e) if attempt < 3 && e.contains("Address already in use") => attempt += 1,
                result => return result,
            }
        }
    }

    fn start_once(extra: &[String]) -> Result<ControlPlane, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let api: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let xds: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.path().join("weftd.log"))
            .map_err(|e| format!("weftd log: {e}"))?;
        let child = Command::new(binary("weftd"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--api-addr",
                &api.to_string(),
                "--xds-addr",
                &xds.to_string(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: nobody drains a pipe during the run.
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start weftd: {e}"))?;
        let http = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let mut cp = ControlPlane {
            child,
            api,
            xds,
            dir,
            token: String::new(),
            http,
        };
        cp.wait_ready()?;
        cp.token = std::fs::read_to_string(cp.data_dir().join("token"))
            .map_err(|e| format!("read weftd's token: {e}"))?
            .trim()
            .to_owned();
        Ok(cp)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("weftd exited with {status}\n{}", self.log()));
            }
            if self
                .http
                .get(self.url("/"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "weftd not ready in {READY_TIMEOUT:?}\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// `http://127.0.0.1:PORT` of the API, for `WEFT_SERVER`.
    pub fn server(&self) -> String {
        self.url("")
    }

    pub fn xds_addr(&self) -> SocketAddr {
        self.xds
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory removed with weftd.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Creates or replaces one resource (what `weft apply` does).
    pub fn apply(&self, doc: &Value) -> Result<(), String> {
        let key = ResourceKey::of(doc)?;
        let resp = self
            .http
            .put(self.url(&key.path()))
            .bearer_auth(&self.token)
            .json(doc)
            .send()
            .map_err(|e| format!("PUT {}: {e}", key.path()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().unwrap_or_default();
        Err(format!(
            "weftd refused {} {}: {status} {body}",
            key.kind, key.name
        ))
    }

    /// Deletes one resource; a missing one is not an error.
    pub fn delete(&self, key: &ResourceKey) -> Result<(), String> {
        let resp = self
            .http
            .delete(self.url(&key.path()))
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| format!("DELETE {}: {e}", key.path()))?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            code => Err(format!("DELETE {}: {code}", key.path())),
        }
    }

    /// A bootstrap token for service account `sa` of namespace `ns` (`weft token create`),
    /// written to `<scratch>/tokens/<ns>.<sa>`; the file's path.
    pub fn token_file(&self, ns: &str, sa: &str) -> Result<PathBuf, String> {
        let out = Command::new(binary("weft"))
            .args(["token", "create", "-n", ns, "--service-account", sa])
            .env("WEFT_SERVER", self.server())
            .env("WEFT_DATA_DIR", self.data_dir())
            .env_remove("WEFT_TOKEN")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run weft token create: {e}"))?;
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || token.is_empty() {
            return Err(format!(
                "weft token create -n {ns} --service-account {sa}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let dir = self.scratch().join("tokens");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{ns}.{sa}"));
        std::fs::write(&path, token).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// `GET /debug/proxies`, or None while weftd does not serve it.
    pub fn proxies(&self) -> Option<Value> {
        let resp = self.http.get(self.url("/debug/proxies")).send().ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().ok()
    }

    /// Waits (bounded) until weftd reports every connected proxy's pushes ACKed. Returns
    /// false on timeout or when weftd has no debug endpoint yet; callers still verify by
    /// sending traffic, so this only saves time and never decides a result.
    pub fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.proxies() {
                None => return false,
                Some(list) if all_synced(&list) => return true,
                Some(_) => {}
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The tail of what weftd logged.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weftd.log")).unwrap_or_default();
        crate::tail(&text, 40)
    }
}

/// Whether every proxy's every xDS type is SYNCED or not sent at all.
fn all_synced(list: &Value) -> bool {
    let Some(proxies) = list.as_array() else {
        return false;
    };
    !proxies.is_empty()
        && proxies.iter().all(|p| {
            p.get("xds")
                .and_then(Value::as_object)
                .is_some_and(|types| {
                    types.values().all(|t| {
                        matches!(
                            t.get("status").and_then(Value::as_str),
                            Some("SYNCED" | "NOT SENT")
                        )
                    })
                })
        })
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // An error means it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plurals_follow_kubernetes() {
        assert_eq!(plural("ServiceEntry"), "serviceentries");
        assert_eq!(plural("Gateway"), "gateways");
        assert_eq!(plural("VirtualService"), "virtualservices");
        assert_eq!(plural("AuthorizationPolicy"), "authorizationpolicies");
    }

    #[test]
    fn resource_paths_default_the_namespace() {
        let doc = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                         "metadata": {"name": "reviews"}});
        let key = ResourceKey::of(&doc).unwrap();
        assert_eq!(
            key.path(),
            "/apis/networking.istio.io/v1/namespaces/default/destinationrules/reviews"
        );
        assert!(ResourceKey::of(&json!({"kind": "X"})).is_err());
    }

    #[test]
    fn synced_needs_every_type_acked() {
        let ok = json!([{"xds": {"cds": {"status": "SYNCED"}, "rds": {"status": "NOT SENT"}}}]);
        let stale = json!([{"xds": {"cds": {"status": "SYNCED"}, "lds": {"status": "STALE"}}}]);
        assert!(all_synced(&ok));
        assert!(!all_synced(&stale));
        assert!(!all_synced(&json!([])));
    }
}
