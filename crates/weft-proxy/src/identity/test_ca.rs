//! An in-process CA for tests: a self-signed root (rcgen) that signs workload CSRs the
//! way weftd's CA does (the CSR's URI SAN, server and client auth, chosen validity).

use super::{csr, Identity, Issued};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use weft_ca_api::SpiffeId;

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub root_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(10);
        let root = params.self_signed(&key).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            root_pem: root.pem(),
        }
    }

    /// Signs `csr_pem` for `[now + from, now + until]`.
    pub fn sign(&self, csr_pem: &str, from: time::Duration, until: time::Duration) -> String {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
        let now = OffsetDateTime::now_utc();
        csr.params.not_before = now + from;
        csr.params.not_after = now + until;
        csr.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        csr.params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        csr.signed_by(&self.issuer).unwrap().pem()
    }

    /// A certificate for `id` valid `[now + from, now + until]`, as the CA's response
    /// turns into one (leaf, then root).
    pub fn issue_between(
        &self,
        id: &SpiffeId,
        from: time::Duration,
        until: time::Duration,
    ) -> Issued {
        let request = csr::request(id).unwrap();
        let leaf = self.sign(&request.csr_pem, from, until);
        Issued::new(
            id,
            &[leaf, self.root_pem.clone()],
            request.key,
            &crate::cluster::tls::provider(),
        )
        .unwrap()
    }

    /// A certificate for `id` valid from a minute ago for `ttl`.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Issued {
        self.issue_between(
            id,
            -time::Duration::minutes(1),
            time::Duration::try_from(ttl).unwrap(),
        )
    }

    /// An identity holding a certificate from this CA.
    pub fn identity(&self, namespace: &str, sa: &str) -> Arc<Identity> {
        let id = SpiffeId::new("cluster.local", namespace, sa);
        let identity = Identity::new(id.clone());
        identity.install(self.issue(&id, Duration::from_secs(3600)));
        identity
    }
}
