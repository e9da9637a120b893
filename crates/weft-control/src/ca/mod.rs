//! weftd's certificate authority: its keys ([`root`]), signing ([`sign`]), the bootstrap
//! tokens callers prove their identity with ([`tokens`]), Istio's CreateCertificate gRPC
//! method ([`service`]) and the citadel metrics ([`metrics`]). docs/security.md describes
//! the setup and the rotation of roots.

pub mod metrics;
pub mod root;
pub mod sds;
pub mod service;
pub mod sign;
pub mod tokens;

use metrics::CaMetrics;
use root::{CaKeys, RootError, Source};
use sign::{Lifetimes, SignError, Signer};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokens::{Binding, Rejection, TokenStore, TokenStoreError};
use weft_ca_api::SpiffeId;

#[derive(Debug, Error)]
pub enum CaError {
    #[error("CA: {0}")]
    Root(#[from] RootError),
    #[error("CA: {0}")]
    Sign(#[from] SignError),
    #[error("CA tokens: {0}")]
    Tokens(#[from] TokenStoreError),
    #[error("--workload-cert-ttl {default:?} is longer than --max-workload-cert-ttl {max:?}")]
    Lifetimes {
        default: std::time::Duration,
        max: std::time::Duration,
    },
}

/// How the CA is set up.
#[derive(Clone, Debug, Default)]
pub struct CaOptions {
    /// Istio's cacerts layout; none: a self-signed root in `<data-dir>/ca`.
    pub cacerts: Option<PathBuf>,
    pub lifetimes: Lifetimes,
}

/// The CA with its token store and metrics; shared by the gRPC service, the HTTP API
/// (token creation) and SDS.
pub struct Ca {
    signer: Signer,
    pub tokens: TokenStore,
    pub metrics: CaMetrics,
    trust_domain: String,
    source: Source,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Ca {
    pub fn open(options: &CaOptions, data_dir: &Path, trust_domain: &str) -> Result<Ca, CaError> {
        let lifetimes = options.lifetimes;
        if lifetimes.default > lifetimes.max {
            return Err(CaError::Lifetimes {
                default: lifetimes.default,
                max: lifetimes.max,
            });
        }
        let keys = CaKeys::load(options.cacerts.as_deref(), data_dir, trust_domain)?;
        let source = keys.source.clone();
        let metrics = CaMetrics::default();
        metrics.root_cert_expiry.set(keys.not_after);
        let tokens = TokenStore::open(&data_dir.join("ca"))?;
        Ok(Ca {
            signer: Signer::new(keys, lifetimes)?,
            tokens,
            metrics,
            trust_domain: trust_domain.to_string(),
            source,
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Where the keys were read from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The trust bundle served as SDS `ROOTCA`.
    pub fn roots_pem(&self) -> &str {
        self.signer.roots_pem()
    }

    /// The SPIFFE identity a token binding stands for in this trust domain.
    pub fn identity(&self, binding: &Binding) -> SpiffeId {
        SpiffeId::new(
            &self.trust_domain,
            &binding.namespace,
            &binding.service_account,
        )
    }

    /// The identity proved by `authorization: Bearer <token>`, as gRPC metadata or an HTTP
    /// header value (`None`: absent).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Binding, Unauthenticated> {
        let value = authorization.ok_or(Unauthenticated::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Unauthenticated::NotBearer)?;
        self.tokens.verify(token).map_err(Unauthenticated::Rejected)
    }
}

/// Why a caller is not authenticated.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Unauthenticated {
    #[error(
        "no \"authorization: Bearer <token>\" metadata; create a token with \
         \"weft token create -n <namespace> --service-account <sa>\""
    )]
    Missing,
    #[error("the authorization metadata is not \"Bearer <token>\"")]
    NotBearer,
    #[error(transparent)]
    Rejected(Rejection),
}
