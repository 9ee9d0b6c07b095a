//! Signing-key lifecycle, derived from timestamps alone.
//!
//! A key is *published* (in JWKS) from its creation until `retires_at`; it *signs* from
//! `activates_at` (creation + publication delay, so verifiers have fetched it before they meet it)
//! until a newer key of the same algorithm activates. `keys rotate` sets the old key's
//! `retires_at` to the new key's activation plus the longest token lifetime, so every token the old
//! key signed still verifies until it has expired. No background job is needed: the state at any
//! instant follows from the stored times.

use tessera_types::JwsAlgorithm;

use crate::time::Timestamp;

/// A signing key as stored: the private part encrypted under the key-encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The JWK `kid`.
    pub kid: String,
    /// The algorithm this key signs with.
    pub algorithm: JwsAlgorithm,
    /// The public JWK (JSON text), as published.
    pub public_jwk: String,
    /// Nonce and ciphertext of the PKCS#8 private key (AES-256-GCM under the key-encryption key).
    pub encrypted_private_key: Vec<u8>,
    /// When the key was created (and published).
    pub created_at: Timestamp,
    /// When the key starts signing.
    pub activates_at: Timestamp,
    /// When the key leaves JWKS; `None` while it is current.
    pub retires_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}

/// Where a key is in its life at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// Published and eligible to sign (the newest eligible key of its algorithm signs).
    Active,
    /// Published so old tokens verify, no longer signing.
    Retiring,
    /// Gone from JWKS.
    Retired,
}

impl SigningKeyRecord {
    /// The state of this key at `now`.
    #[must_use]
    pub fn state(&self, now: Timestamp) -> KeyState {
        match self.retires_at {
            Some(retires_at) if now >= retires_at => KeyState::Retired,
            Some(_) => KeyState::Retiring,
            None if now < self.activates_at => KeyState::Pending,
            None => KeyState::Active,
        }
    }

    /// Whether JWKS lists this key at `now`.
    #[must_use]
    pub fn is_published(&self, now: Timestamp) -> bool {
        self.state(now) != KeyState::Retired
    }
}

/// The key that signs for `algorithm` at `now`: the newest key whose activation has passed and that
/// has not retired. A retiring key still signs if nothing newer has activated yet, so a rotation
/// never leaves an algorithm without a signer.
#[must_use]
pub fn signer_for(keys: &[SigningKeyRecord], algorithm: JwsAlgorithm, now: Timestamp) -> Option<&SigningKeyRecord> {
    keys.iter()
        .filter(|key| key.algorithm == algorithm && key.activates_at <= now && key.is_published(now))
        .max_by_key(|key| (key.activates_at, key.created_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, activates_at: i64, retires_at: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            algorithm: JwsAlgorithm::ES256,
            public_jwk: String::new(),
            encrypted_private_key: Vec::new(),
            created_at: Timestamp(0),
            activates_at: Timestamp(activates_at),
            retires_at: retires_at.map(Timestamp),
        }
    }

    #[track_caller]
    fn check(keys: &[SigningKeyRecord], now: i64, expected_signer: Option<&str>, expected_published: &[&str]) {
        let signer = signer_for(keys, JwsAlgorithm::ES256, Timestamp(now)).map(|k| k.kid.as_str());
        assert_eq!(signer, expected_signer, "signer at {now}");
        let published: Vec<_> = keys
            .iter()
            .filter(|k| k.is_published(Timestamp(now)))
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(published, expected_published, "published at {now}");
    }

    #[test]
    fn rotation_timeline() {
        // Old key retires at 100 (new activation 40 + longest lifetime 60); new key activates at 40.
        let keys = [key("old", 0, Some(100)), key("new", 40, None)];
        check(&keys, 10, Some("old"), &["old", "new"]);
        check(&keys, 39, Some("old"), &["old", "new"]);
        check(&keys, 40, Some("new"), &["old", "new"]);
        check(&keys, 99, Some("new"), &["old", "new"]);
        check(&keys, 100, Some("new"), &["new"]);
    }

    #[test]
    fn a_single_pending_key_does_not_sign() {
        check(&[key("k", 10, None)], 5, None, &["k"]);
    }
}
