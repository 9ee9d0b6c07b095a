//! JOSE for Tessera: signing keys, JWS compact signing and verification, JWKs, and the
//! key-encryption key that protects private keys at rest.
//!
//! - [`SigningKey`]: a private key (ES256, RS256 or EdDSA) parsed once from PKCS#8; it signs JWTs
//!   in the JWS compact serialization (RFC 7515 §7.1) and publishes its public JWK (RFC 7517).
//! - [`verify_jwt`] / [`VerifyingKey`]: verification against a JWK Set, e.g. client assertions
//!   for `private_key_jwt` (RFC 7523). `none`, unlisted algorithms and algorithm/key-type
//!   confusion are rejected.
//! - [`KeyEncryptionKey`]: AES-256-GCM sealing of private keys at rest.
//!
//! All cryptography is done by `ring`; the `rsa` crate is only used to generate RSA keys.
//!
//! ```
//! use tessera_jose::{verify_jwt, JwsAlgorithm, KeyEncryptionKey, SigningKey};
//!
//! let (key, pkcs8) = SigningKey::generate(JwsAlgorithm::ES256, "2024-01".into())?;
//! let token = key.sign_jwt("at+jwt", &serde_json::json!({"sub": "client-1"}))?;
//! let jwks = serde_json::json!({"keys": [key.public_jwk()]});
//! let (header, claims) = verify_jwt(&token, &jwks, &["ES256"])?;
//! assert_eq!((header.typ.as_deref(), &claims["sub"]), (Some("at+jwt"), &"client-1".into()));
//!
//! // Private keys are stored sealed, bound to their kid.
//! let kek = KeyEncryptionKey::generate()?;
//! let sealed = kek.seal(&pkcs8, key.kid().as_bytes())?;
//! let reloaded = SigningKey::from_pkcs8(
//!     JwsAlgorithm::ES256,
//!     "2024-01".into(),
//!     &kek.open(&sealed, b"2024-01")?,
//! )?;
//! assert_eq!(reloaded.public_jwk(), key.public_jwk());
//! # Ok::<(), tessera_jose::JoseError>(())
//! ```
#![deny(missing_docs)]

mod kek;
mod sign;
mod verify;

#[cfg(test)]
mod tests;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub use kek::KeyEncryptionKey;
pub use sign::SigningKey;
pub use tessera_types::JwsAlgorithm;
pub use verify::{verify_jwt, verify_jwt_with_keys, JwsHeader, VerifyingKey};

/// Everything that can go wrong in this crate. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    /// The algorithm is unknown, not implemented, not allowed here, or `none`.
    #[error("unsupported or disallowed algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// Key material (PKCS#8, JWK, JWK Set, key-encryption key) is malformed or unusable.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The token is not a well-formed JWS compact serialization carrying a JSON object.
    #[error("malformed JWT: {0}")]
    MalformedJwt(&'static str),
    /// The claims to sign do not serialize to a JSON object.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// No candidate key verified the signature.
    #[error("invalid signature")]
    InvalidSignature,
    /// The JWK Set holds no key that matches the token's `kid` and `alg`.
    #[error("no matching key found")]
    KeyNotFound,
    /// A cryptographic primitive (random generation, key generation, signing) failed.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
    /// Sealed data could not be opened: wrong key, wrong associated data, or tampered/truncated.
    #[error("decryption failed")]
    Decryption,
    /// Input is not valid unpadded base64url.
    #[error("invalid base64url")]
    InvalidBase64,
}

/// Unpadded base64url (RFC 7515 §2, "Base64url Encoding").
#[must_use]
pub fn base64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict unpadded base64url decoding: padding, `+`, `/`, whitespace and non-canonical trailing
/// bits are rejected, so every encoded string has exactly one decoding.
///
/// # Errors
/// [`JoseError::InvalidBase64`] when `s` is not canonical unpadded base64url.
pub fn base64url_decode(s: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| JoseError::InvalidBase64)
}
