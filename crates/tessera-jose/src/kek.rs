//! The key-encryption key: AES-256-GCM sealing of private keys at rest.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

use crate::JoseError;

const KEY_LEN: usize = 32;

/// A 256-bit key-encryption key for private keys at rest: AES-256-GCM with a random 96-bit
/// nonce per seal. Sealed form: `nonce (12 bytes) || ciphertext || tag (16 bytes)`.
///
/// The raw key is zeroed on drop; `Debug` is redacted.
pub struct KeyEncryptionKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

impl KeyEncryptionKey {
    /// A new random key from the OS RNG.
    ///
    /// # Errors
    /// [`JoseError::Crypto`] if the RNG fails.
    pub fn generate() -> Result<Self, JoseError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut_slice())
            .map_err(|_| JoseError::Crypto("random generation failed"))?;
        Self::from_bytes(bytes)
    }

    /// Parses standard or URL-safe base64 (padding optional, surrounding whitespace trimmed) of
    /// exactly 32 bytes.
    ///
    /// # Errors
    /// [`JoseError::InvalidKey`] if `value` is not base64 of 32 bytes.
    pub fn from_base64(value: &str) -> Result<Self, JoseError> {
        let config = GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(false);
        let value = value.trim();
        let decoded = Zeroizing::new(
            GeneralPurpose::new(&alphabet::STANDARD, config)
                .decode(value)
                .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(value))
                .map_err(|_| JoseError::InvalidKey("key-encryption key is not base64".into()))?,
        );
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| JoseError::InvalidKey("key-encryption key must be exactly 32 bytes".into()))?;
        Self::from_bytes(Zeroizing::new(bytes))
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Result<Self, JoseError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes.as_slice())
            .map_err(|_| JoseError::Crypto("AES-256-GCM key setup failed"))?;
        Ok(Self {
            bytes,
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// Standard padded base64 of the raw key, for configuration files and secret stores.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes.as_slice())
    }

    /// Encrypts `plaintext`; `aad` (e.g. the key's `kid`) is authenticated but not stored, and
    /// must be passed again to [`open`](Self::open).
    ///
    /// # Errors
    /// [`JoseError::Crypto`] if the RNG or encryption fails.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, JoseError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| JoseError::Crypto("random generation failed"))?;
        let tag_len = AES_256_GCM.tag_len();
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + tag_len);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed[NONCE_LEN..],
            )
            .map_err(|_| JoseError::Crypto("AES-256-GCM encryption failed"))?;
        sealed.extend_from_slice(tag.as_ref());
        Ok(sealed)
    }

    /// Decrypts the output of [`seal`](Self::seal) made with this key and the same `aad`.
    ///
    /// # Errors
    /// [`JoseError::Decryption`] for a wrong key or `aad`, or tampered or truncated input.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, JoseError> {
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN).ok_or(JoseError::Decryption)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| JoseError::Decryption)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .map_err(|_| JoseError::Decryption)?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn seal_open_round_trip() -> TestResult {
        let kek = KeyEncryptionKey::generate()?;
        for plaintext in [&b""[..], b"x", &[7u8; 1000]] {
            let sealed = kek.seal(plaintext, b"kid-1")?;
            assert_eq!(sealed.len(), NONCE_LEN + plaintext.len() + 16);
            assert_eq!(kek.open(&sealed, b"kid-1")?, plaintext);
        }
        // Fresh nonce per seal.
        assert_ne!(kek.seal(b"same", b"")?, kek.seal(b"same", b"")?);
        Ok(())
    }

    #[test]
    fn open_rejects_wrong_aad_key_tampering_and_truncation() -> TestResult {
        let kek = KeyEncryptionKey::generate()?;
        let other = KeyEncryptionKey::generate()?;
        let sealed = kek.seal(b"private key bytes", b"kid-1")?;
        assert_eq!(kek.open(&sealed, b"kid-1")?, b"private key bytes");
        assert!(matches!(kek.open(&sealed, b"kid-2"), Err(JoseError::Decryption)));
        assert!(matches!(kek.open(&sealed, b""), Err(JoseError::Decryption)));
        assert!(matches!(other.open(&sealed, b"kid-1"), Err(JoseError::Decryption)));
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(matches!(kek.open(&tampered, b"kid-1"), Err(JoseError::Decryption)));
            assert!(matches!(kek.open(&sealed[..i], b"kid-1"), Err(JoseError::Decryption)));
        }
        Ok(())
    }

    #[test]
    fn base64_round_trip_and_parsing() -> TestResult {
        let kek = KeyEncryptionKey::generate()?;
        let encoded = kek.to_base64();
        let sealed = kek.seal(b"secret", b"")?;
        let url_safe = encoded.replace('+', "-").replace('/', "_");
        for variant in [
            encoded.clone(),
            format!("  {encoded}\n"),
            url_safe.clone(),
            url_safe.trim_end_matches('=').to_owned(),
        ] {
            let reloaded = KeyEncryptionKey::from_base64(&variant)?;
            assert_eq!(reloaded.to_base64(), encoded);
            assert_eq!(reloaded.open(&sealed, b"")?, b"secret");
        }
        let (short, long) = (STANDARD.encode([0u8; 31]), STANDARD.encode([0u8; 33]));
        for bad in ["", "not base64!", "AAAA====", &short, &long] {
            assert!(matches!(
                KeyEncryptionKey::from_base64(bad),
                Err(JoseError::InvalidKey(_))
            ));
        }
        Ok(())
    }

    #[test]
    fn debug_is_redacted() -> TestResult {
        let kek = KeyEncryptionKey::generate()?;
        let debug = format!("{kek:?}");
        assert!(!debug.contains(&kek.to_base64()));
        assert!(debug.contains("redacted"));
        Ok(())
    }
}
