//! The signing-key store: keys parsed once, swapped atomically, reloaded from the database.
//!
//! Keys are created on first start (one per algorithm), kept in the database with their private
//! part sealed under the key-encryption key, and decrypted and parsed only when the set is
//! (re)loaded — never per request. Which key signs, and which are published, follows from the
//! stored timestamps and the current time (see `tessera_core::keys`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rand::RngCore;
use tessera_core::keys::{signer_for, SigningKeyRecord};
use tessera_core::Timestamp;
use tessera_jose::{KeyEncryptionKey, SigningKey};
use tessera_storage::{RepositoryError, Storage};
use tessera_types::JwsAlgorithm;

use crate::config::{Config, Mode};

/// A key-store failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] RepositoryError),
    /// A key could not be generated, decrypted or parsed.
    #[error("signing key {kid}: {source}")]
    Crypto {
        /// The key.
        kid: String,
        /// Why.
        source: tessera_jose::JoseError,
    },
    /// The key-encryption key is missing or unreadable.
    #[error("key-encryption key: {0}")]
    EncryptionKey(String),
}

/// The parsed key set at one moment.
struct KeySet {
    records: Vec<SigningKeyRecord>,
    parsed: HashMap<String, Arc<SigningKey>>,
    /// Each key's public half, parsed once, with the time it leaves JWKS.
    verifying: Vec<(Option<Timestamp>, tessera_jose::VerifyingKey)>,
}

/// Signing keys, shared by all requests.
pub struct KeyStore {
    kek: KeyEncryptionKey,
    current: ArcSwap<KeySet>,
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotatedKey {
    /// The new key's id.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: JwsAlgorithm,
    /// When it starts signing.
    pub activates_at: Timestamp,
    /// When the keys it replaces leave JWKS.
    pub previous_retire_at: Timestamp,
}

impl KeyStore {
    /// Loads the key set, creating a key for every algorithm that has none.
    ///
    /// # Errors
    /// Storage failures, or a stored key that cannot be decrypted with `kek` (wrong key-encryption key).
    pub async fn open(storage: &dyn Storage, kek: KeyEncryptionKey, now: Timestamp) -> Result<Self, KeyError> {
        let store = Self {
            kek,
            current: ArcSwap::from_pointee(KeySet {
                records: Vec::new(),
                parsed: HashMap::new(),
                verifying: Vec::new(),
            }),
        };
        store.reload(storage).await?;
        let missing: Vec<JwsAlgorithm> = JwsAlgorithm::ALL
            .into_iter()
            .filter(|alg| {
                !store
                    .current
                    .load()
                    .records
                    .iter()
                    .any(|k| k.algorithm == *alg && k.is_published(now))
            })
            .collect();
        for algorithm in missing {
            // The first key of an algorithm signs at once: nothing was signed before it.
            let record = store.create_record(algorithm, now, now)?;
            tracing::info!(kid = %record.kid, %algorithm, "created signing key");
            storage.signing_keys().rotate(&record, None).await?;
        }
        store.reload(storage).await?;
        Ok(store)
    }

    /// Re-reads the key set from storage and swaps it in. Keys already parsed are reused.
    ///
    /// # Errors
    /// Storage failures or undecryptable keys (the previous set stays in place).
    pub async fn reload(&self, storage: &dyn Storage) -> Result<(), KeyError> {
        let records = storage.signing_keys().list().await?;
        let previous = self.current.load();
        let mut parsed = HashMap::with_capacity(records.len());
        for record in &records {
            let key = match previous.parsed.get(&record.kid) {
                Some(key) => Arc::clone(key),
                None => Arc::new(self.decrypt(record)?),
            };
            parsed.insert(record.kid.clone(), key);
        }
        let verifying = records
            .iter()
            .filter_map(|record| {
                let key = parsed.get(&record.kid)?;
                tessera_jose::VerifyingKey::from_jwk(&key.public_jwk())
                    .ok()
                    .map(|verifying| (record.retires_at, verifying))
            })
            .collect();
        self.current.store(Arc::new(KeySet {
            records,
            parsed,
            verifying,
        }));
        Ok(())
    }

    /// The key that signs `algorithm` at `now`.
    #[must_use]
    pub fn signer(&self, algorithm: JwsAlgorithm, now: Timestamp) -> Option<Arc<SigningKey>> {
        let set = self.current.load();
        let record = signer_for(&set.records, algorithm, now)?;
        set.parsed.get(&record.kid).cloned()
    }

    /// The JWK Set to publish at `now` (RFC 7517 §5): every key not yet retired.
    #[must_use]
    pub fn jwks(&self, now: Timestamp) -> serde_json::Value {
        let set = self.current.load();
        let keys: Vec<serde_json::Value> = set
            .records
            .iter()
            .filter(|record| record.is_published(now))
            .filter_map(|record| serde_json::from_str(&record.public_jwk).ok())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Verifies a JWT signed by one of our published keys at `now` (keys parsed once, at load);
    /// returns its header and claims.
    /// Expiry and the other claims are the caller's to check.
    ///
    /// # Errors
    /// The reason the signature does not verify.
    pub fn verify(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(tessera_jose::JwsHeader, serde_json::Map<String, serde_json::Value>), String> {
        let algorithms = JwsAlgorithm::ALL.map(JwsAlgorithm::as_str);
        let set = self.current.load();
        let published: Vec<_> = set
            .verifying
            .iter()
            .filter(|(retires_at, _)| retires_at.is_none_or(|t| now < t))
            .map(|(_, key)| key.clone())
            .collect();
        tessera_jose::verify_jwt_with_keys(token, &published, &algorithms).map_err(|e| format!("token signature: {e}"))
    }

    /// Every stored key with its state at `now`, for `tessera keys list`.
    #[must_use]
    pub fn records(&self) -> Vec<SigningKeyRecord> {
        self.current.load().records.clone()
    }

    /// Adds a new key for each of `algorithms`, published now and signing after
    /// `publication_delay`; the keys it replaces retire `retire_after` seconds after that
    /// (the longest token lifetime), so every token they signed still verifies. Then reloads.
    ///
    /// # Errors
    /// Storage or crypto failures.
    pub async fn rotate(
        &self,
        storage: &dyn Storage,
        algorithms: &[JwsAlgorithm],
        now: Timestamp,
        publication_delay: u64,
        retire_after: u64,
    ) -> Result<Vec<RotatedKey>, KeyError> {
        let mut rotated = Vec::new();
        for &algorithm in algorithms {
            let activates_at = now.plus(publication_delay);
            let previous_retire_at = activates_at.plus(retire_after);
            let record = self.create_record(algorithm, now, activates_at)?;
            storage.signing_keys().rotate(&record, Some(previous_retire_at)).await?;
            tracing::info!(kid = %record.kid, %algorithm, activates_at = activates_at.0, "rotated signing key");
            rotated.push(RotatedKey {
                kid: record.kid,
                algorithm,
                activates_at,
                previous_retire_at,
            });
        }
        self.reload(storage).await?;
        Ok(rotated)
    }

    fn create_record(
        &self,
        algorithm: JwsAlgorithm,
        now: Timestamp,
        activates_at: Timestamp,
    ) -> Result<SigningKeyRecord, KeyError> {
        let mut random = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let kid = format!(
            "{}-{}",
            algorithm.as_str().to_ascii_lowercase(),
            tessera_jose::base64url_encode(&random)
        );
        let crypto = |source| KeyError::Crypto {
            kid: kid.clone(),
            source,
        };
        let (key, pkcs8) = SigningKey::generate(algorithm, kid.clone()).map_err(crypto)?;
        let encrypted_private_key = self.kek.seal(&pkcs8, kid.as_bytes()).map_err(crypto)?;
        Ok(SigningKeyRecord {
            public_jwk: key.public_jwk().to_string(),
            kid,
            algorithm,
            encrypted_private_key,
            created_at: now,
            activates_at,
            retires_at: None,
        })
    }

    fn decrypt(&self, record: &SigningKeyRecord) -> Result<SigningKey, KeyError> {
        let crypto = |source| KeyError::Crypto {
            kid: record.kid.clone(),
            source,
        };
        let pkcs8 = self
            .kek
            .open(&record.encrypted_private_key, record.kid.as_bytes())
            .map_err(crypto)?;
        SigningKey::from_pkcs8(record.algorithm, record.kid.clone(), &pkcs8).map_err(crypto)
    }
}

/// Finds the key-encryption key: `keys.encryption_key`, else `keys.encryption_key_file`, else — in
/// development mode only — `tessera.kek` in the working directory, generated if missing.
///
/// # Errors
/// An unreadable or malformed key, or production mode without one.
pub fn load_encryption_key(config: &Config) -> Result<KeyEncryptionKey, KeyError> {
    let parse = |text: &str, source: &str| {
        KeyEncryptionKey::from_base64(text).map_err(|e| KeyError::EncryptionKey(format!("{source}: {e}")))
    };
    if let Some(secret) = &config.keys.encryption_key {
        return parse(&secret.0, "keys.encryption_key");
    }
    let (path, is_generated_default) = match &config.keys.encryption_key_file {
        Some(path) => (path.clone(), false),
        None if config.mode == Mode::Development => (Path::new("tessera.kek").to_path_buf(), true),
        None => {
            return Err(KeyError::EncryptionKey(
                "production mode requires keys.encryption_key or keys.encryption_key_file".into(),
            ))
        }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            if is_generated_default {
                tracing::warn!(path = %path.display(), "DEVELOPMENT MODE: signing keys are encrypted with a generated key file; set keys.encryption_key_file (or TESSERA_KEYS__ENCRYPTION_KEY) in production");
            }
            parse(&text, &path.display().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_generated_default => {
            let kek = KeyEncryptionKey::generate().map_err(|e| KeyError::EncryptionKey(e.to_string()))?;
            write_private_file(&path, &kek.to_base64())
                .map_err(|e| KeyError::EncryptionKey(format!("cannot write {}: {e}", path.display())))?;
            tracing::warn!(path = %path.display(), "DEVELOPMENT MODE: generated a key-encryption key file; keep it with the database, and configure a real one in production");
            Ok(kek)
        }
        Err(e) => Err(KeyError::EncryptionKey(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
