//! Opaque token values: `tsr_<kind>_<43 chars of base64url randomness><6 chars of checksum>`.
//!
//! The prefix tells revocation and introspection what a token is without a hint, and lets secret
//! scanners find leaked tokens. The checksum rejects garbage before any storage lookup.
//! Only the SHA-256 of a token ([`TokenHash`]) is ever stored (DESIGN §5).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What an opaque token is, as told by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An opaque (reference) access token: `tsr_at_`.
    AccessToken,
    /// A refresh token: `tsr_rt_`.
    RefreshToken,
    /// An authorization code: `tsr_ac_`.
    AuthorizationCode,
    /// A server-generated client secret: `tsr_cs_`.
    ClientSecret,
    /// An SSO session cookie: `tsr_ss_`.
    SessionCookie,
}

const RANDOM_BYTES: usize = 32;
const BODY_LEN: usize = 43; // base64url of 32 bytes, unpadded
const CHECKSUM_LEN: usize = 6; // base64url of 4 bytes of SHA-256, unpadded, truncated
const PREFIX_LEN: usize = 7;
/// The length of every token Tessera generates.
pub const TOKEN_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;

impl TokenKind {
    /// The prefix of tokens of this kind.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Self::AccessToken => "tsr_at_",
            Self::RefreshToken => "tsr_rt_",
            Self::AuthorizationCode => "tsr_ac_",
            Self::ClientSecret => "tsr_cs_",
            Self::SessionCookie => "tsr_ss_",
        }
    }

    const ALL: [Self; 5] = [
        Self::AccessToken,
        Self::RefreshToken,
        Self::AuthorizationCode,
        Self::ClientSecret,
        Self::SessionCookie,
    ];

    /// Generates a fresh token of this kind from 256 bits of `rng`.
    #[must_use]
    pub fn generate(self, rng: &mut dyn RngCore) -> String {
        let mut random = [0u8; RANDOM_BYTES];
        rng.fill_bytes(&mut random);
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(self.prefix());
        URL_SAFE_NO_PAD.encode_string(random, &mut token);
        let checksum = checksum(&token);
        token.push_str(&checksum);
        token
    }

    /// Tells the kind of a well-formed token; `None` for anything with a wrong prefix, length,
    /// alphabet or checksum.
    #[must_use]
    pub fn recognise(token: &str) -> Option<Self> {
        if token.len() != TOKEN_LEN || !token.is_ascii() {
            return None;
        }
        let kind = Self::ALL.into_iter().find(|kind| token.starts_with(kind.prefix()))?;
        let (head, tail) = token.split_at(PREFIX_LEN + BODY_LEN);
        let body = &head[PREFIX_LEN..];
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let expected = checksum(head);
        bool::from(expected.as_bytes().ct_eq(tail.as_bytes())).then_some(kind)
    }
}

fn checksum(head: &str) -> String {
    let digest = Sha256::digest(head.as_bytes());
    let mut encoded = URL_SAFE_NO_PAD.encode(&digest[..4]);
    encoded.truncate(CHECKSUM_LEN);
    encoded
}

/// The SHA-256 of a token or secret: the only form in which one is stored or compared.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a presented token or secret.
    #[must_use]
    pub fn of(value: &str) -> Self {
        Self(Sha256::digest(value.as_bytes()).into())
    }

    /// Constant-time comparison with another hash.
    #[must_use]
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lower-case hex, for logs and ids (a hash reveals nothing of the token).
    #[must_use]
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", &self.to_hex()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_tokens_are_recognised() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for kind in TokenKind::ALL {
            for _ in 0..200 {
                let token = kind.generate(&mut rng);
                assert_eq!(token.len(), TOKEN_LEN);
                assert_eq!(TokenKind::recognise(&token), Some(kind), "{token}");
            }
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let token = TokenKind::RefreshToken.generate(&mut rng);
        let mut flipped = token.clone().into_bytes();
        flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        for bad in [
            "",
            "tsr_rt_",
            &token[..TOKEN_LEN - 1],
            &flipped,
            &token.replace("tsr_rt_", "tsr_xx_"),
        ] {
            assert_eq!(TokenKind::recognise(bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_compare() {
        assert!(TokenHash::of("a").matches(&TokenHash::of("a")));
        assert!(!TokenHash::of("a").matches(&TokenHash::of("b")));
        assert_eq!(TokenHash::of("abc").to_hex().len(), 64);
    }
}
