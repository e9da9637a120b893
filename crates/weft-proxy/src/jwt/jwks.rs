//! JSON Web Key Sets (RFC 7517) as the `jwt_authn` filter reads them: the keys weft-proxy
//! can verify with (RSA, EC P-256/P-384, OKP Ed25519, oct for HMAC). A key of a type or
//! curve it cannot use is skipped, as Envoy's verifier skips it; a set that is not JSON
//! holds no keys, so every token fails against it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// Public key material of one JWK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyMaterial {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 point (`04 || x || y`) on P-256 (`ES256`) or P-384 (`ES384`).
    Ec { curve: EcCurve, point: Vec<u8> },
    /// An Ed25519 public key (`EdDSA`).
    Ed25519(Vec<u8>),
    /// A shared secret (`HS256`/`HS384`/`HS512`).
    Oct(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcCurve {
    P256,
    P384,
}

/// One usable key: its `kid` and `alg` when the set names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub material: KeyMaterial,
}

/// The usable keys of a JWKS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

/// Why a JWKS cannot be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("not a JSON object with a \"keys\" array: {0}")]
    Json(String),
    #[error("no usable key (RSA, EC P-256/P-384, Ed25519 or oct)")]
    NoUsableKey,
}

impl Jwks {
    /// Parses a JWKS document, keeping the keys weft-proxy can verify with.
    pub fn parse(text: &str) -> Result<Jwks, JwksError> {
        let raw: RawSet = serde_json::from_str(text).map_err(|e| JwksError::Json(e.to_string()))?;
        let keys: Vec<Jwk> = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<RawKey>(v).ok())
            .filter_map(|k| {
                let material = material(&k)?;
                Some(Jwk {
                    kid: k.kid,
                    alg: k.alg,
                    material,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Jwks { keys })
    }
}

fn b64(s: &Option<String>) -> Option<Vec<u8>> {
    // Some issuers pad their base64url; RFC 7518 says they should not, Envoy tolerates it.
    URL_SAFE_NO_PAD
        .decode(s.as_deref()?.trim_end_matches('='))
        .ok()
}

fn material(k: &RawKey) -> Option<KeyMaterial> {
    match k.kty.as_str() {
        "RSA" => Some(KeyMaterial::Rsa {
            n: b64(&k.n)?,
            e: b64(&k.e)?,
        }),
        "EC" => {
            let (curve, len) = match k.crv.as_deref()? {
                "P-256" => (EcCurve::P256, 32),
                "P-384" => (EcCurve::P384, 48),
                _ => return None,
            };
            let (x, y) = (b64(&k.x)?, b64(&k.y)?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = vec![4u8];
            point.extend(x);
            point.extend(y);
            Some(KeyMaterial::Ec { curve, point })
        }
        "OKP" if k.crv.as_deref() == Some("Ed25519") => Some(KeyMaterial::Ed25519(b64(&k.x)?)),
        "oct" => Some(KeyMaterial::Oct(b64(&k.k)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_usable_keys_and_skips_the_rest() {
        let set = r#"{"keys":[
            {"kty":"RSA","kid":"r1","alg":"RS256","n":"AQAB","e":"AQAB"},
            {"kty":"EC","crv":"P-521","x":"AA","y":"AA"},
            {"kty":"OKP","crv":"Ed25519","x":"AAEC"},
            {"kty":"oct","k":"c2VjcmV0"},
            {"kty":"unknown"}
        ]}"#;
        let jwks = Jwks::parse(set).unwrap();
        assert_eq!(jwks.keys.len(), 3);
        assert_eq!(jwks.keys[0].kid.as_deref(), Some("r1"));
        assert_eq!(jwks.keys[2].material, KeyMaterial::Oct(b"secret".to_vec()));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(matches!(Jwks::parse("nope"), Err(JwksError::Json(_))));
        assert_eq!(
            Jwks::parse(r#"{"keys":[{"kty":"EC","crv":"P-521"}]}"#),
            Err(JwksError::NoUsableKey)
        );
    }
}
