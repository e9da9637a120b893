//! `--config-dir`: a folder of Istio YAML/JSON mirrored into the store (GitOps).
//!
//! The folder is scanned at start and then once a second. Polling is used rather than
//! file events because editors, `git checkout` and ConfigMap mounts replace files in ways
//! (renames, symlink swaps) that event APIs report inconsistently; a content digest per
//! file makes an unchanged scan cost only reads.

use crate::store::{ListOptions, ObjectKey, Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use weft_config::ConfigError;

/// The annotation naming the file an object came from; objects without it are the API's.
pub const SOURCE_ANNOTATION: &str = "weft.io/config-source";

/// How often the folder is scanned.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Mirrors one folder into the store.
pub struct ConfigDir {
    dir: PathBuf,
    store: Arc<dyn Store>,
    files: BTreeMap<String, FileState>,
    seeded: bool,
}

#[derive(Default)]
struct FileState {
    /// Digest of the content last looked at (good or bad), so a bad file is logged once.
    digest: Option<[u8; 32]>,
    /// Objects from the file's last good content: what is in force.
    applied: BTreeSet<ObjectKey>,
}

impl ConfigDir {
    pub fn new(dir: PathBuf, store: Arc<dyn Store>) -> Self {
        ConfigDir {
            dir,
            store,
            files: BTreeMap::new(),
            seeded: false,
        }
    }

    /// Scans until `stop` turns true.
    pub async fn follow(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(dir = %self.dir.display(), "following config folder");
        loop {
            self.sync().await;
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.wait_for(|down| *down) => return,
            }
        }
    }

    /// One scan: apply changed files, delete what vanished.
    pub async fn sync(&mut self) {
        if !self.seeded {
            match self.seed().await {
                Ok(()) => self.seeded = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the store; config folder not applied yet");
                    return;
                }
            }
        }
        let names = match self.list_files() {
            Ok(names) => names,
            Err(e) => {
                // A folder that cannot be read is not a folder that was emptied: keep all.
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read config folder");
                return;
            }
        };
        for name in &names {
            match std::fs::read(self.dir.join(name)) {
                Ok(bytes) => self.apply_file(name, &bytes).await,
                Err(e) => tracing::warn!(file = %name, error = %e, "cannot read config file"),
            }
        }
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|f| !names.contains(*f))
            .cloned()
            .collect();
        for file in gone {
            let state = self.files.remove(&file).unwrap_or_default();
            tracing::info!(file = %file, resources = state.applied.len(), "config file removed");
            let failed = self.delete_from(&file, state.applied.iter()).await;
            if !failed.is_empty() {
                // Try again on the next scan.
                self.files.insert(
                    file,
                    FileState {
                        digest: None,
                        applied: failed,
                    },
                );
            }
        }
    }

    /// Learns which stored objects earlier runs loaded from the folder, so that files
    /// removed while weftd was down are noticed too.
    async fn seed(&mut self) -> Result<(), StoreError> {
        let listing = self.store.list(ListOptions::default()).await?;
        for object in &listing.items {
            let source = object["metadata"]["annotations"][SOURCE_ANNOTATION].as_str();
            if let (Some(file), Ok(key)) = (source, ObjectKey::of(object)) {
                self.files
                    .entry(file.to_string())
                    .or_default()
                    .applied
                    .insert(key);
            }
        }
        Ok(())
    }

    fn list_files(&self) -> std::io::Result<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = !name.starts_with('.')
                && [".yaml", ".yml", ".json"]
                    .iter()
                    .any(|ext| name.ends_with(ext));
            // `metadata` follows symlinks, as ConfigMap mounts need.
            if wanted && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                names.insert(name);
            }
        }
        Ok(names)
    }

    async fn apply_file(&mut self, file: &str, bytes: &[u8]) {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let state = self.files.entry(file.to_string()).or_default();
        if state.digest == Some(digest) {
            return;
        }
        state.digest = Some(digest);
        let Ok(text) = std::str::from_utf8(bytes) else {
            tracing::warn!(
                file,
                "config file is not UTF-8; keeping its last good state"
            );
            return;
        };
        let mut objects = Vec::new();
        let mut invalid = false;
        for result in weft_config::parse_and_validate(text) {
            match result {
                Ok((mut resource, warnings)) => {
                    for w in warnings {
                        tracing::warn!(file, resource = %resource.origin(), warning = %w, "config warning");
                    }
                    resource.metadata.namespace =
                        namespace_or_default(&resource.metadata.namespace).into();
                    resource
                        .metadata
                        .annotations
                        .insert(SOURCE_ANNOTATION.into(), file.into());
                    objects.push(resource.to_json());
                }
                // Folders often hold other Kubernetes objects too; they are not ours.
                Err(ConfigError::UnknownKind { document, kind, .. }) => {
                    tracing::info!(file, document, kind, "skipping a kind weftd does not serve");
                }
                Err(e) => {
                    invalid = true;
                    log_invalid(file, &e);
                }
            }
        }
        if invalid {
            tracing::warn!(
                file,
                "config file rejected; its last good state stays in force"
            );
            return;
        }
        let mut applied = BTreeSet::new();
        let mut failed = false;
        for object in objects {
            let Ok(key) = ObjectKey::of(&object) else {
                continue;
            };
            match self.store.put(object, None).await {
                Ok(_) => {
                    applied.insert(key);
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(file, key = %key, error = %e, "cannot store resource from config file");
                }
            }
        }
        let state = self.files.entry(file.to_string()).or_default();
        let removed: Vec<ObjectKey> = state.applied.difference(&applied).cloned().collect();
        state.applied.extend(applied.iter().cloned());
        if failed {
            // Forget the digest so the next scan tries the whole file again.
            state.digest = None;
            return;
        }
        let still_there = self.delete_from(file, removed.iter()).await;
        let state = self.files.entry(file.to_string()).or_default();
        state.applied = applied.union(&still_there).cloned().collect();
        if !still_there.is_empty() {
            state.digest = None;
        }
        tracing::info!(file, resources = applied.len(), "applied config file");
    }

    /// Deletes objects that came from `file`; returns those that could not be deleted.
    /// An object that meanwhile belongs to another file or to the API is left alone.
    async fn delete_from(
        &self,
        file: &str,
        keys: impl Iterator<Item = &ObjectKey>,
    ) -> BTreeSet<ObjectKey> {
        let mut failed = BTreeSet::new();
        for key in keys {
            let result = match self.store.get(key.clone()).await {
                Ok(Some(object))
                    if object["metadata"]["annotations"][SOURCE_ANNOTATION].as_str()
                        == Some(file) =>
                {
                    self.store.delete(key.clone(), None).await.map(|_| true)
                }
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            match result {
                Ok(true) => {
                    tracing::info!(file, key = %key, "deleted resource no longer in config folder");
                }
                Ok(false) | Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(file, key = %key, error = %e, "cannot delete resource");
                    failed.insert(key.clone());
                }
            }
        }
        failed
    }
}

/// Objects in the folder without a namespace go to `default`, as with `kubectl apply`.
fn namespace_or_default(ns: &str) -> &str {
    if ns.is_empty() {
        "default"
    } else {
        ns
    }
}

fn log_invalid(file: &str, error: &ConfigError) {
    match error {
        ConfigError::Invalid { origin, errors } => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            tracing::warn!(
                file,
                document = origin.document,
                resource = %format!("{} {}/{}", origin.kind, namespace_or_default(&origin.namespace), origin.name),
                errors = %errors.join("; "),
                "invalid resource in config file"
            );
        }
        ConfigError::Syntax { document, message } => {
            tracing::warn!(file, document, errors = %message, "unreadable document in config file");
        }
        ConfigError::UnknownKind { .. } => {}
    }
}

#[cfg(test)]
#[path = "config_dir_tests.rs"]
mod tests;
