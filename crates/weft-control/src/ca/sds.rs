//! The mesh's SDS secrets, served by weftd from its CA: `ROOTCA` (the trust bundle) to
//! every proxy that asks, and `default` (key and certificate) to a proxy without an agent
//! of its own (Envoy) whose ADS stream carried a bootstrap token for its identity.
//!
//! Certificates are cached per identity and re-signed once half their lifetime has passed
//! (as Istio's agent rotates at half-life): [`MeshSecrets::run_rotation`] drops each one
//! when its renewal time comes and signals [`MeshSecrets::rotations`], on which the streams
//! of token-bearing proxies regenerate, so the new certificate is pushed without waiting
//! for a config change.

use super::sign::Signed;
use super::Ca;
use crate::model::{MeshSnapshot, Proxy};
use crate::translate::listener::own_workload;
use crate::translate::mtls::{ROOT_SECRET, WORKLOAD_SECRET};
use crate::translate::Generated;
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, CertificateValidationContext, Secret, TlsCertificate,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use weft_ca_api::SpiffeId;

/// A key and certificate weftd made for one identity.
#[derive(Clone)]
struct Issued {
    key_pem: String,
    signed: Signed,
    renew_at: OffsetDateTime,
}

/// Adds the CA's secrets to generated configurations.
pub struct MeshSecrets {
    ca: Arc<Ca>,
    issued: Mutex<HashMap<SpiffeId, Issued>>,
    /// Proxies already told why they get no `default`, so each is logged once.
    refused: Mutex<BTreeSet<String>>,
    /// Counts rotations: bumped when cached certificates were dropped or replaced.
    rotations: watch::Sender<u64>,
    /// Wakes the rotation timer when a certificate was issued (an earlier renewal time).
    issued_one: Notify,
}

impl std::fmt::Debug for MeshSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshSecrets").finish_non_exhaustive()
    }
}

fn inline(pem: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(pem.as_bytes().to_vec())),
        ..Default::default()
    }
}

impl MeshSecrets {
    pub fn new(ca: Arc<Ca>) -> MeshSecrets {
        MeshSecrets {
            ca,
            issued: Mutex::default(),
            refused: Mutex::default(),
            rotations: watch::Sender::new(0),
            issued_one: Notify::new(),
        }
    }

    /// Changes whenever certificates weftd issued for SDS were renewed: a proxy that may
    /// hold one (its ADS stream carries a bootstrap token) regenerates then, so it gets
    /// the new certificate even when no configuration changed.
    pub fn rotations(&self) -> watch::Receiver<u64> {
        self.rotations.subscribe()
    }

    /// The rotation timer, until `stop` turns true: at each certificate's renewal time
    /// (half its lifetime) drops it from the cache and signals [`Self::rotations`]; the
    /// first regeneration for that identity then issues a new one, the others share it.
    /// An identity no proxy asks for any more is thus not renewed.
    pub async fn run_rotation(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let wait = match self.next_renewal() {
                Some(at) => (at - OffsetDateTime::now_utc())
                    .try_into()
                    .unwrap_or(std::time::Duration::ZERO),
                // Nothing issued yet: only a new certificate (or stop) wakes the timer.
                None => std::time::Duration::from_secs(24 * 3600),
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = self.issued_one.notified() => continue,
                () = tokio::time::sleep(wait) => {}
            }
            let due = self.drop_due(OffsetDateTime::now_utc());
            if !due.is_empty() {
                tracing::info!(identities = ?due, "workload certificates at half-life: re-issuing them for SDS");
                self.rotations.send_modify(|n| *n += 1);
            }
        }
    }

    fn next_renewal(&self) -> Option<OffsetDateTime> {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.values().map(|i| i.renew_at).min()
    }

    /// Removes the certificates whose renewal time has come; returns their identities.
    fn drop_due(&self, now: OffsetDateTime) -> Vec<String> {
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let due: Vec<SpiffeId> = issued
            .iter()
            .filter(|(_, i)| i.renew_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            issued.remove(id);
        }
        due.iter().map(ToString::to_string).collect()
    }

    /// Adds `ROOTCA` and `default` when the proxy's listeners or clusters name them and
    /// weftd may serve them, keeping the secrets sorted by name.
    pub fn add(&self, snapshot: &MeshSnapshot, proxy: &Proxy, generated: &mut Generated) {
        // Includes what the shared outbound part refers to when `generated` is a local part.
        let wanted = generated.referenced_secrets();
        let has = |name: &str| wanted.iter().any(|w| w == name);
        if has(ROOT_SECRET) {
            generated.secrets.push(Secret {
                name: ROOT_SECRET.into(),
                r#type: Some(secret::Type::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: Some(inline(self.ca.roots_pem())),
                        ..Default::default()
                    },
                )),
            });
        }
        if has(WORKLOAD_SECRET) {
            if let Some(issued) = self.workload_certificate(snapshot, proxy) {
                generated.secrets.push(Secret {
                    name: WORKLOAD_SECRET.into(),
                    r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                        certificate_chain: Some(inline(&issued.signed.presented_chain())),
                        private_key: Some(inline(&issued.key_pem)),
                        ..Default::default()
                    })),
                });
            }
        }
        generated.secrets.sort_by(|a, b| a.name.cmp(&b.name));
        generated.secrets.dedup_by(|a, b| a.name == b.name);
    }

    /// The proxy's identity: its namespace and service account (node metadata, else its
    /// WorkloadEntry's, else `default`).
    pub fn identity(&self, snapshot: &MeshSnapshot, proxy: &Proxy) -> SpiffeId {
        let sa = if !proxy.service_account.is_empty() {
            proxy.service_account.clone()
        } else {
            own_workload(snapshot, proxy)
                .and_then(|(_, w)| w.service_account.clone())
                .filter(|sa| !sa.is_empty())
                .unwrap_or_else(|| "default".into())
        };
        SpiffeId::new(self.ca.trust_domain(), &proxy.namespace, &sa)
    }

    fn workload_certificate(&self, snapshot: &MeshSnapshot, proxy: &Proxy) -> Option<Issued> {
        let identity = self.identity(snapshot, proxy);
        let refuse = |why: String| {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            if refused.insert(format!("{}|{why}", proxy.id)) {
                tracing::warn!(proxy = %proxy.id, %identity, reason = %why,
                    "no workload certificate (SDS \"default\") for this proxy; its mTLS listeners and clusters wait");
            }
            None
        };
        let Some(token) = &proxy.bootstrap_token else {
            return refuse(
                "its ADS stream carries no bootstrap token (weft bootstrap envoy --token)".into(),
            );
        };
        let binding = match self.ca.tokens.verify(&token.0) {
            Ok(b) => b,
            Err(e) => {
                self.ca.metrics.authentication_failure.inc();
                return refuse(e.to_string());
            }
        };
        if self.ca.identity(&binding) != identity {
            self.ca.metrics.id_extraction_err.inc();
            return refuse(format!(
                "its bootstrap token is for {}",
                self.ca.identity(&binding)
            ));
        }
        let now = OffsetDateTime::now_utc();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = issued.get(&identity).filter(|i| i.renew_at > now) {
            return Some(current.clone());
        }
        self.ca.metrics.csr.inc();
        match self.ca.signer().issue(&identity) {
            Ok((key_pem, signed)) => {
                self.ca.metrics.success.inc();
                let renew_at = now + (signed.not_after - now) / 2;
                tracing::info!(proxy = %proxy.id, %identity, not_after = %signed.not_after,
                    "issued a workload certificate for SDS");
                let entry = Issued {
                    key_pem,
                    signed,
                    renew_at,
                };
                // Replacing a certificate (renewed during a regeneration before the timer
                // ran): other proxies of this identity must get the new one too.
                if issued.insert(identity, entry.clone()).is_some() {
                    self.rotations.send_modify(|n| *n += 1);
                }
                self.issued_one.notify_one();
                Some(entry)
            }
            Err(e) => {
                self.ca.metrics.sign_error("cert_gen_error");
                tracing::error!(proxy = %proxy.id, %identity, error = %e, "cannot issue a workload certificate");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaOptions;
    use crate::model::proxy::BearerToken;
    use crate::translate::generate;

    const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 10.0.0.13}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"#;

    fn setup() -> (tempfile::TempDir, Arc<Ca>, MeshSnapshot) {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(Ca::open(&CaOptions::default(), dir.path(), "cluster.local").unwrap());
        let resources = weft_config::parse_documents(CONFIG)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        (dir, ca, MeshSnapshot::build(1, resources))
    }

    fn proxy(sa: &str, token: Option<&str>) -> Proxy {
        Proxy {
            id: "sidecar~10.0.0.11~reviews.default~default.svc.cluster.local".into(),
            ip: "10.0.0.11".into(),
            namespace: "default".into(),
            service_account: sa.into(),
            bootstrap_token: token.map(|t| BearerToken(t.into())),
            ..Default::default()
        }
    }

    fn served(secrets: &MeshSecrets, snapshot: &MeshSnapshot, proxy: &Proxy) -> Generated {
        let mut g = generate(snapshot, proxy);
        secrets.add(snapshot, proxy, &mut g);
        g
    }

    fn names(g: &Generated) -> Vec<&str> {
        g.secrets.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn default_only_for_the_tokens_own_identity() {
        let (_dir, ca, snapshot) = setup();
        let token = ca.tokens.create("default", "reviews", None).unwrap().token;
        let secrets = MeshSecrets::new(ca.clone());
        // The right token: both secrets; the certificate is the proxy's identity's.
        let g = served(&secrets, &snapshot, &proxy("reviews", Some(&token)));
        assert_eq!(names(&g), ["ROOTCA", "default"]);
        let Some(secret::Type::TlsCertificate(cert)) = &g.secrets[1].r#type else {
            panic!("default is a certificate")
        };
        let Some(data_source::Specifier::InlineBytes(chain)) =
            &cert.certificate_chain.as_ref().unwrap().specifier
        else {
            panic!("inline chain")
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(chain).unwrap();
        let leaf = pem.parse_x509().unwrap();
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            "[URI(\"spiffe://cluster.local/ns/default/sa/reviews\")]"
        );
        // Cached: the same certificate again, so regenerating does not push a new one.
        let again = served(&secrets, &snapshot, &proxy("reviews", Some(&token)));
        assert_eq!(g.secrets, again.secrets);
        // Another identity with this token, no token, a made-up token: ROOTCA only.
        for p in [
            proxy("ratings", Some(&token)),
            proxy("reviews", None),
            proxy("reviews", Some("weft-bt-guess")),
        ] {
            assert_eq!(names(&served(&secrets, &snapshot, &p)), ["ROOTCA"], "{p:?}");
        }
        assert_eq!(ca.metrics.success.get(), 1);
        assert_eq!(ca.metrics.authentication_failure.get(), 1);
        assert_eq!(ca.metrics.id_extraction_err.get(), 1);
    }

    fn default_secret(g: &Generated) -> &Secret {
        g.secrets
            .iter()
            .find(|s| s.name == WORKLOAD_SECRET)
            .unwrap()
    }

    #[tokio::test]
    async fn rotation_timer_renews_at_half_life_and_signals() {
        let dir = tempfile::tempdir().unwrap();
        let options = CaOptions {
            lifetimes: crate::ca::sign::Lifetimes {
                default: std::time::Duration::from_secs(2),
                ..Default::default()
            },
            ..Default::default()
        };
        let ca = Arc::new(Ca::open(&options, dir.path(), "cluster.local").unwrap());
        let (_, _, snapshot) = setup();
        let token = ca.tokens.create("default", "reviews", None).unwrap().token;
        let secrets = Arc::new(MeshSecrets::new(ca.clone()));
        let mut rotations = secrets.rotations();
        let (stop_tx, stop) = watch::channel(false);
        let timer = tokio::spawn(secrets.clone().run_rotation(stop));
        let p = proxy("reviews", Some(&token));
        let before = served(&secrets, &snapshot, &p);
        // Issued for 2 s: the timer fires at about 1 s, not before 0.5 s.
        let started = std::time::Instant::now();
        tokio::time::timeout(std::time::Duration::from_secs(3), rotations.changed())
            .await
            .expect("a rotation within 3 s")
            .unwrap();
        assert!(started.elapsed() > std::time::Duration::from_millis(500));
        let after = served(&secrets, &snapshot, &p);
        assert_ne!(default_secret(&before), default_secret(&after), "re-issued");
        assert_eq!(ca.metrics.success.get(), 2);
        // The new certificate is cached again until its own half-life.
        assert_eq!(served(&secrets, &snapshot, &p).secrets, after.secrets);
        stop_tx.send(true).unwrap();
        timer.await.unwrap();
    }
}
