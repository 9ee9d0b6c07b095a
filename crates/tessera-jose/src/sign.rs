//! Private signing keys and JWS compact signing (RFC 7515 §5.1, §7.1).

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use serde_json::{json, Value};

use crate::{base64url_encode, JoseError, JwsAlgorithm};

/// Modulus size of generated RSA keys.
const RSA_BITS: usize = 2048;

/// `typ` values whose protected header is pre-encoded when the key is loaded.
const CACHED_TYPS: [&str; 2] = ["at+jwt", "JWT"];

enum KeyPair {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key, parsed once from PKCS#8; signing never re-parses.
///
/// `Debug` shows only the `kid` and algorithm, never key material.
pub struct SigningKey {
    kid: String,
    algorithm: JwsAlgorithm,
    key_pair: KeyPair,
    rng: SystemRandom,
    jwk: Value,
    /// Base64url protected headers for [`CACHED_TYPS`], in the same order.
    headers: [String; CACHED_TYPS.len()],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key from the OS RNG (RSA keys are 2048-bit).
    ///
    /// Returns the key and its PKCS#8 v1/v2 DER private key, for the caller to seal and store.
    ///
    /// # Errors
    /// [`JoseError::Crypto`] if the RNG or key generation fails.
    pub fn generate(algorithm: JwsAlgorithm, kid: String) -> Result<(Self, Vec<u8>), JoseError> {
        let rng = SystemRandom::new();
        let der = match algorithm {
            JwsAlgorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| JoseError::Crypto("ECDSA key generation failed"))?
                .as_ref()
                .to_vec(),
            JwsAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| JoseError::Crypto("Ed25519 key generation failed"))?
                .as_ref()
                .to_vec(),
            JwsAlgorithm::RS256 => {
                use rsa::pkcs8::EncodePrivateKey as _;
                rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
                    .map_err(|_| JoseError::Crypto("RSA key generation failed"))?
                    .to_pkcs8_der()
                    .map_err(|_| JoseError::Crypto("RSA key encoding failed"))?
                    .as_bytes()
                    .to_vec()
            }
        };
        let key = Self::from_pkcs8(algorithm, kid, &der)?;
        Ok((key, der))
    }

    /// Loads a PKCS#8 DER private key (RFC 5958) for `algorithm`.
    ///
    /// Ed25519 accepts both PKCS#8 v1 (as written by OpenSSL) and v2.
    ///
    /// # Errors
    /// [`JoseError::InvalidKey`] if the DER is malformed or not a key for `algorithm`.
    pub fn from_pkcs8(algorithm: JwsAlgorithm, kid: String, pkcs8_der: &[u8]) -> Result<Self, JoseError> {
        let rng = SystemRandom::new();
        let rejected =
            |e: ring::error::KeyRejected| JoseError::InvalidKey(format!("{algorithm} PKCS#8 key rejected: {e}"));
        let (key_pair, mut jwk) = match algorithm {
            JwsAlgorithm::ES256 => {
                let kp =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8_der, &rng).map_err(rejected)?;
                // Uncompressed SEC1 point 0x04 || x || y; JWK members per RFC 7518 §6.2.1.
                let (x, y) = match kp.public_key().as_ref() {
                    [4, xy @ ..] if xy.len() == 64 => xy.split_at(32),
                    _ => return Err(JoseError::Crypto("unexpected P-256 public key encoding")),
                };
                let jwk = json!({"kty": "EC", "crv": "P-256",
                    "x": base64url_encode(x), "y": base64url_encode(y)});
                (KeyPair::Ecdsa(kp), jwk)
            }
            JwsAlgorithm::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(pkcs8_der).map_err(rejected)?;
                // RFC 7518 §6.3.1: big-endian unsigned integers without leading zeros.
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
                let jwk = json!({"kty": "RSA",
                    "n": base64url_encode(strip_leading_zeros(&c.n)),
                    "e": base64url_encode(strip_leading_zeros(&c.e))});
                (KeyPair::Rsa(kp), jwk)
            }
            JwsAlgorithm::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8_der).map_err(rejected)?;
                // RFC 8037 §2.
                let jwk = json!({"kty": "OKP", "crv": "Ed25519",
                    "x": base64url_encode(kp.public_key().as_ref())});
                (KeyPair::Ed25519(kp), jwk)
            }
        };
        if let Value::Object(members) = &mut jwk {
            members.insert("kid".into(), Value::String(kid.clone()));
            members.insert("use".into(), Value::String("sig".into()));
            members.insert("alg".into(), Value::String(algorithm.as_str().into()));
        }
        let headers = CACHED_TYPS.map(|typ| encode_header(algorithm, typ, &kid));
        Ok(Self {
            kid,
            algorithm,
            key_pair,
            rng,
            jwk,
            headers,
        })
    }

    /// The key ID, published in the JWK and in every JWS header.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm.
    #[must_use]
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.algorithm
    }

    /// The public JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2) with `kid`, `use: "sig"` and `alg`.
    #[must_use]
    pub fn public_jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// Signs `claims` as a JWS compact serialization (RFC 7515 §7.1) with the protected header
    /// `{"alg","kid","typ"}` (e.g. `typ` `"at+jwt"` per RFC 9068, or `"JWT"`).
    ///
    /// Signatures follow RFC 7518 §3: ES256 is the fixed 64-byte `r || s`, RS256 is
    /// RSASSA-PKCS1-v1_5 with SHA-256, EdDSA is Ed25519 (RFC 8037 §3.1).
    ///
    /// # Errors
    /// [`JoseError::InvalidClaims`] if `claims` does not serialize to a JSON object;
    /// [`JoseError::Crypto`] if signing fails.
    pub fn sign_jwt<T: serde::Serialize>(&self, typ: &str, claims: &T) -> Result<String, JoseError> {
        let payload = serde_json::to_vec(claims).map_err(|e| JoseError::InvalidClaims(e.to_string()))?;
        if payload.first() != Some(&b'{') {
            return Err(JoseError::InvalidClaims(
                "claims must serialize to a JSON object".into(),
            ));
        }
        let header = CACHED_TYPS
            .iter()
            .zip(&self.headers)
            .find(|(cached, _)| **cached == typ)
            .map_or_else(
                || Cow::Owned(encode_header(self.algorithm, typ, &self.kid)),
                |(_, header)| Cow::Borrowed(header.as_str()),
            );
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.sign_bytes(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// Raw JWS signature over `message` (the JWS signing input).
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        match &self.key_pair {
            KeyPair::Ecdsa(kp) => kp
                .sign(&self.rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| JoseError::Crypto("ECDSA signing failed")),
            KeyPair::Rsa(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| JoseError::Crypto("RSA signing failed"))?;
                Ok(sig)
            }
            KeyPair::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }
}

/// Base64url of the JSON protected header (RFC 7515 §4.1).
fn encode_header(algorithm: JwsAlgorithm, typ: &str, kid: &str) -> String {
    let header = json!({"alg": algorithm.as_str(), "typ": typ, "kid": kid});
    base64url_encode(header.to_string().as_bytes())
}

pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}
