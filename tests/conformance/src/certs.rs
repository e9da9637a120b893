//! A throwaway CA and server certificates, made with the `openssl` CLI, for TLS scenarios.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Files of one server certificate signed by the suite's CA.
#[derive(Clone, Debug)]
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The suite's CA and the certificates it signed, in `dir`.
#[derive(Clone, Debug)]
pub struct Certs {
    /// PEM of the CA certificate: what clients and Envoy (`caCertificates`) trust.
    pub ca: PathBuf,
    dir: PathBuf,
}

impl Certs {
    /// Creates a P-256 CA in `dir`.
    pub fn new_ca(dir: &Path) -> Result<Certs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ca = dir.join("ca.pem");
        let key = dir.join("ca.key");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=weft conformance CA",
            // webpki insists on a real CA: basic constraints and key usage present.
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&key)?,
            "-out",
            path(&ca)?,
        ])?;
        Ok(Certs {
            ca,
            dir: dir.to_path_buf(),
        })
    }

    /// A server certificate for `dns_name` (its only subject alternative name).
    pub fn server(&self, dns_name: &str) -> Result<ServerCert, String> {
        let cert = self.dir.join(format!("{dns_name}.pem"));
        let key = self.dir.join(format!("{dns_name}.key"));
        let csr = self.dir.join(format!("{dns_name}.csr"));
        let ext = self.dir.join(format!("{dns_name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:{dns_name}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .map_err(|e| format!("{}: {e}", ext.display()))?;
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={dns_name}"),
            "-keyout",
            path(&key)?,
            "-out",
            path(&csr)?,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr)?,
            "-CA",
            path(&self.ca)?,
            "-CAkey",
            path(&self.dir.join("ca.key"))?,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            path(&ext)?,
            "-out",
            path(&cert)?,
        ])?;
        Ok(ServerCert { cert, key })
    }
}

fn path(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

fn openssl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run openssl (needed for TLS scenarios): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_certificates_chain_to_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::new_ca(dir.path()).unwrap();
        let server = certs.server("a.example.com").unwrap();
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&certs.ca)
            .arg(&server.cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&server.cert)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&text.stdout).contains("DNS:a.example.com"));
    }
}
