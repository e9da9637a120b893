//! Signing JWTs for tests: an RSA key (a 2048-bit test key generated for this repository),
//! and ES256 / Ed25519 keys generated per run; each signs tokens and publishes its JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

/// A signing key with its `kid`.
pub struct Signer {
    kid: String,
    key: Key,
}

enum Key {
    Rsa(RsaKeyPair),
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    /// The repository's RSA test key (RS256 and the other RSA algorithms).
    pub fn rsa(kid: &str) -> Signer {
        let der = include_bytes!("../testdata/rsa2048.pkcs1.der");
        let key = RsaKeyPair::from_der(der).expect("test RSA key");
        Signer {
            kid: kid.into(),
            key: Key::Rsa(key),
        }
    }

    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("P-256 key");
        Signer {
            kid: kid.into(),
            key: Key::Es256(key),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 key");
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
        Signer {
            kid: kid.into(),
            key: Key::Ed25519(key),
        }
    }

    /// The public key as one JWK object.
    pub fn jwk(&self) -> serde_json::Value {
        match &self.key {
            Key::Rsa(k) => {
                let public = k.public().as_ref();
                // SubjectPublicKey of RSA is DER RSAPublicKey { n, e }: read both integers.
                let (n, rest) = der_integer(der_sequence_body(public));
                let (e, _) = der_integer(rest);
                serde_json::json!({"kty": "RSA", "kid": self.kid, "n": b64(n), "e": b64(e)})
            }
            Key::Es256(k) => {
                let point = k.public_key().as_ref();
                serde_json::json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Key::Ed25519(k) => serde_json::json!({"kty": "OKP", "crv": "Ed25519",
                "kid": self.kid, "x": b64(k.public_key().as_ref())}),
        }
    }

    /// `{"keys": [this key]}` as text.
    pub fn jwks(&self) -> String {
        serde_json::json!({ "keys": [self.jwk()] }).to_string()
    }

    /// The default algorithm of the key.
    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "RS256",
            Key::Es256(_) => "ES256",
            Key::Ed25519(_) => "EdDSA",
        }
    }

    /// A compact JWS of `claims`, signed with the key's default algorithm.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_with(self.alg(), claims)
    }

    /// A compact JWS with `alg` (RSA keys: RS256/384/512, PS256/384/512).
    pub fn sign_with(&self, alg: &str, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Key::Rsa(k) => {
                let padding: &dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    other => panic!("RSA cannot sign {other}"),
                };
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(padding, &rng, input.as_bytes(), &mut sig)
                    .expect("RSA signature");
                sig
            }
            Key::Es256(k) => k
                .sign(&rng, input.as_bytes())
                .expect("ES256")
                .as_ref()
                .to_vec(),
            Key::Ed25519(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Length of a DER length field at `d`, and where its content starts.
fn der_len(d: &[u8]) -> (usize, usize) {
    if d[0] < 0x80 {
        (usize::from(d[0]), 1)
    } else {
        let n = usize::from(d[0] & 0x7f);
        let len = d[1..=n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, 1 + n)
    }
}

fn der_sequence_body(d: &[u8]) -> &[u8] {
    assert_eq!(d[0], 0x30, "DER SEQUENCE");
    let (len, off) = der_len(&d[1..]);
    &d[1 + off..1 + off + len]
}

/// One INTEGER without its sign byte, and what follows it.
fn der_integer(d: &[u8]) -> (&[u8], &[u8]) {
    assert_eq!(d[0], 0x02, "DER INTEGER");
    let (len, off) = der_len(&d[1..]);
    let mut v = &d[1 + off..1 + off + len];
    while v.len() > 1 && v[0] == 0 {
        v = &v[1..];
    }
    (v, &d[1 + off + len..])
}
