//! The write token: created on first start in `<data-dir>/token` (mode 0600), checked on
//! every write as `Authorization: Bearer <token>`.

use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TokenError {
    #[error(
        "cannot create the token file {path}: {source}; check that the data directory is writable"
    )]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot read the token file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// The token weftd accepts for writes. Only its digest is kept in memory for comparison.
pub struct Token {
    digest: [u8; 32],
    path: PathBuf,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("path", &self.path).finish()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Token {
    /// Reads `<data_dir>/token`, creating it with a fresh random token if absent or empty.
    pub fn load_or_create(data_dir: &Path) -> Result<Token, TokenError> {
        let path = data_dir.join("token");
        let existing = match fs::read_to_string(&path) {
            Ok(text) => text.trim().to_string(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(TokenError::Read { path, source }),
        };
        let token = if existing.is_empty() {
            let created = write_new(&path).map_err(|source| TokenError::Create {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), "created API token");
            created
        } else {
            existing
        };
        Ok(Token {
            digest: digest(&token),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `presented` is the token. Comparing digests keeps the comparison's timing
    /// unrelated to how many leading characters of the real token were guessed right.
    pub fn verify(&self, presented: &str) -> bool {
        digest(presented) == self.digest
    }
}

fn write_new(path: &Path) -> io::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` only applies on creation; an existing empty file may have looser rights.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = Token::load_or_create(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join("token")).unwrap();
        let mode = fs::metadata(first.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(first.verify(text.trim()));
        assert!(!first.verify("guess"));
        let again = Token::load_or_create(dir.path()).unwrap();
        assert!(again.verify(text.trim()));
    }
}
