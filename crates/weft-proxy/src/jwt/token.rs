//! One JWT (RFC 7519, compact JWS): parsing, the checks Envoy's `jwt_authn` makes in its
//! order (issuer, time window with clock skew, audiences, then the signature against the
//! provider's keys), and the failure statuses with the texts Envoy answers with.

use super::jwks::{EcCurve, Jwks, KeyMaterial};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

/// Why a token was not accepted; `Display` is the body of Envoy's 401/403.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Status {
    #[error("Jwt is missing")]
    Missing,
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")]
    BadFormat,
    #[error("Jwt header is an invalid Base64url encoded")]
    HeaderBadBase64,
    #[error("Jwt header is an invalid JSON")]
    HeaderBadJson,
    #[error("Jwt header [alg] field is required and must be a string")]
    HeaderBadAlg,
    #[error("Jwt header [alg] is not supported")]
    HeaderNotImplementedAlg,
    #[error("Jwt header [kid] field is not a string")]
    HeaderBadKid,
    #[error("Jwt payload is an invalid Base64url encoded")]
    PayloadBadBase64,
    #[error("Jwt payload is an invalid JSON")]
    PayloadBadJson,
    #[error("Jwt payload [iss] field is not a string")]
    PayloadIssNotString,
    #[error("Jwt payload [sub] field is not a string")]
    PayloadSubNotString,
    #[error("Jwt payload [iat] field is not an integer")]
    PayloadIatNotInteger,
    #[error("Jwt payload [nbf] field is not an integer")]
    PayloadNbfNotInteger,
    #[error("Jwt payload [exp] field is not an integer")]
    PayloadExpNotInteger,
    #[error("Jwt payload [aud] field is not a string or string list")]
    PayloadAudNotList,
    #[error("Jwt signature is an invalid Base64url encoded")]
    SignatureBadBase64,
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    #[error("Jwt not yet valid")]
    NotYetValid,
    #[error("Jwt is expired")]
    Expired,
    #[error("Audiences in Jwt are not allowed")]
    AudienceNotAllowed,
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    KidAlgMismatch,
    #[error("Jwt verification fails")]
    VerificationFail,
}

/// A parsed, not yet verified token.
#[derive(Clone, Debug)]
pub struct Jwt {
    pub alg: String,
    pub kid: Option<String>,
    pub payload: Map<String, Value>,
    pub iss: Option<String>,
    pub audiences: Vec<String>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    /// The payload segment as it came (base64url), for `forward_payload_header`.
    pub payload_b64: String,
    signed: Vec<u8>,
    signature: Vec<u8>,
}

const ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256", "HS384",
    "HS512", "EdDSA",
];

fn int_claim(payload: &Map<String, Value>, name: &str, err: Status) -> Result<Option<u64>, Status> {
    match payload.get(name) {
        None => Ok(None),
        // A fractional or negative time is not an integer to Envoy either.
        Some(v) => v.as_u64().map(Some).ok_or(err),
    }
}

impl Jwt {
    /// Parses a compact JWS, checking the claim types Envoy checks.
    pub fn parse(token: &str) -> Result<Jwt, Status> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(Status::BadFormat);
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| Status::HeaderBadBase64)?;
        let header_map: Map<String, Value> =
            serde_json::from_slice(&header_json).map_err(|_| Status::HeaderBadJson)?;
        let alg = header_map
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(Status::HeaderBadAlg)?
            .to_string();
        if !ALGS.contains(&alg.as_str()) {
            return Err(Status::HeaderNotImplementedAlg);
        }
        let kid = match header_map.get("kid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Status::HeaderBadKid),
        };
        let payload_json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Status::PayloadBadBase64)?;
        let payload_map: Map<String, Value> =
            serde_json::from_slice(&payload_json).map_err(|_| Status::PayloadBadJson)?;
        let iss = match payload_map.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Status::PayloadIssNotString),
        };
        if payload_map.get("sub").is_some_and(|s| !s.is_string()) {
            return Err(Status::PayloadSubNotString);
        }
        int_claim(&payload_map, "iat", Status::PayloadIatNotInteger)?;
        let nbf = int_claim(&payload_map, "nbf", Status::PayloadNbfNotInteger)?;
        let exp = int_claim(&payload_map, "exp", Status::PayloadExpNotInteger)?;
        let audiences = match payload_map.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(Status::PayloadAudNotList)?,
            Some(_) => return Err(Status::PayloadAudNotList),
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Status::SignatureBadBase64)?;
        Ok(Jwt {
            alg,
            kid,
            payload: payload_map,
            iss,
            audiences,
            exp,
            nbf,
            payload_b64: payload.to_string(),
            signed: format!("{header}.{payload}").into_bytes(),
            signature,
        })
    }

    /// `exp` and `nbf` against `now` (Unix seconds), each widened by `skew` seconds.
    pub fn check_time(&self, now: u64, skew: u64) -> Result<(), Status> {
        if self.nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
            return Err(Status::NotYetValid);
        }
        if self.exp.is_some_and(|exp| now > exp.saturating_add(skew)) {
            return Err(Status::Expired);
        }
        Ok(())
    }

    /// Whether one of the token's audiences is allowed; no configured audience allows all.
    pub fn audience_allowed(&self, allowed: &[String]) -> bool {
        allowed.is_empty() || self.audiences.iter().any(|a| allowed.contains(a))
    }

    /// The signature against the keys whose `kid` (when both name one) and `alg` (when the
    /// key names one) fit the token's header. As in Envoy, such a key counts as a match even
    /// when its type cannot verify the algorithm: the failure is then "verification fails",
    /// not "no key".
    pub fn verify_signature(&self, jwks: &Jwks) -> Result<(), Status> {
        let mut candidate = false;
        for key in &jwks.keys {
            if let (Some(want), Some(have)) = (&self.kid, &key.kid) {
                if want != have {
                    continue;
                }
            }
            if key.alg.as_deref().is_some_and(|a| a != self.alg) {
                continue;
            }
            candidate = true;
            if verify_with(&self.alg, &key.material, &self.signed, &self.signature) == Some(true) {
                return Ok(());
            }
        }
        Err(if candidate {
            Status::VerificationFail
        } else {
            Status::KidAlgMismatch
        })
    }
}

/// `None` when the key cannot be used for `alg`; else whether the signature verifies.
fn verify_with(alg: &str, key: &KeyMaterial, msg: &[u8], sig: &[u8]) -> Option<bool> {
    use signature::{
        VerificationAlgorithm, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519,
        RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
        RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512,
    };
    match (alg, key) {
        (_, KeyMaterial::Rsa { n, e }) => {
            let params = match alg {
                "RS256" => &RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &RSA_PSS_2048_8192_SHA256,
                "PS384" => &RSA_PSS_2048_8192_SHA384,
                "PS512" => &RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            Some(
                RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .is_ok(),
            )
        }
        (_, KeyMaterial::Ec { curve, point }) => {
            let params: &dyn VerificationAlgorithm = match (alg, curve) {
                ("ES256", EcCurve::P256) => &ECDSA_P256_SHA256_FIXED,
                ("ES384", EcCurve::P384) => &ECDSA_P384_SHA384_FIXED,
                _ => return None,
            };
            Some(
                UnparsedPublicKey::new(params, point)
                    .verify(msg, sig)
                    .is_ok(),
            )
        }
        ("EdDSA", KeyMaterial::Ed25519(x)) => {
            Some(UnparsedPublicKey::new(&ED25519, x).verify(msg, sig).is_ok())
        }
        (_, KeyMaterial::Oct(secret)) => {
            let algorithm = match alg {
                "HS256" => ring::hmac::HMAC_SHA256,
                "HS384" => ring::hmac::HMAC_SHA384,
                "HS512" => ring::hmac::HMAC_SHA512,
                _ => return None,
            };
            let key = ring::hmac::Key::new(algorithm, secret);
            Some(ring::hmac::verify(&key, msg, sig).is_ok())
        }
        _ => None,
    }
}
