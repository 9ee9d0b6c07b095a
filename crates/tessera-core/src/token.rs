//! Opaque token values: `tsr_<kind>_<54 chars of base64url body><6 chars of checksum>`.
//!
//! The prefix tells revocation and introspection what a token is without a hint, and lets secret
//! scanners find leaked tokens. The checksum rejects garbage before any storage lookup.
//! Only a hash of a token ([`TokenHash`]) is ever stored (DESIGN §5).
//!
//! **Ordered tokens.** A token's 40-byte body is an 8-byte *order* (the issuing node's
//! microseconds since the Unix epoch, big-endian) followed by 256 random bits, and its stored
//! hash is that order followed by the first 24 bytes of the token's SHA-256. So the storage keys
//! of new tokens grow with time, and a database index on them takes each insert at its right-hand
//! edge: a group commit of many rotations writes one or two index pages instead of one random
//! page per token (docs/PERFORMANCE.md: +27 % rotations/s on SQLite, half the bytes written).
//! The order tells when the token was issued, which its holder knows anyway; the 256 random bits
//! are what make it unguessable, and 192 bits of SHA-256 are what a thief of the database would
//! have to invert.
//!
//! Tokens of the earlier format (`tsr_<kind>_<43 chars: 256 random bits><6 chars of checksum>`,
//! stored as their plain SHA-256) are told apart by their length and keep that hash, so the
//! tokens issued before an upgrade stay valid.

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

const ORDER_BYTES: usize = 8;
const RANDOM_BYTES: usize = 32;
const BODY_BYTES: usize = ORDER_BYTES + RANDOM_BYTES;
const BODY_LEN: usize = 54; // base64url of 40 bytes, unpadded
/// Base64url characters that hold exactly the first 9 bytes of a body (the order and one more).
const ORDER_CHARS: usize = 12;
/// An earlier token's body: base64url of 32 random bytes, unpadded.
const RANDOM_BODY_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6; // base64url of 4 bytes of SHA-256, unpadded, truncated
const PREFIX_LEN: usize = 7;
/// The length of every token Tessera generates.
pub const TOKEN_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;
/// The length of a token of the earlier format (no order), still accepted.
const RANDOM_TOKEN_LEN: usize = PREFIX_LEN + RANDOM_BODY_LEN + CHECKSUM_LEN;

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

    /// Generates a fresh token of this kind: `order` (the caller's clock in microseconds since
    /// the Unix epoch; it only needs to grow) and 256 bits of `rng`.
    #[must_use]
    pub fn generate(self, order: u64, rng: &mut dyn RngCore) -> String {
        let mut body = [0u8; BODY_BYTES];
        body[..ORDER_BYTES].copy_from_slice(&order.to_be_bytes());
        rng.fill_bytes(&mut body[ORDER_BYTES..]);
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(self.prefix());
        URL_SAFE_NO_PAD.encode_string(body, &mut token);
        let checksum = checksum(&token);
        token.push_str(&checksum);
        token
    }

    /// Tells the kind of a well-formed token; `None` for anything with a wrong prefix, length,
    /// alphabet or checksum.
    #[must_use]
    pub fn recognise(token: &str) -> Option<Self> {
        if (token.len() != TOKEN_LEN && token.len() != RANDOM_TOKEN_LEN) || !token.is_ascii() {
            return None;
        }
        let kind = Self::ALL.into_iter().find(|kind| token.starts_with(kind.prefix()))?;
        let (head, tail) = token.split_at(token.len() - CHECKSUM_LEN);
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

/// The order bytes of a well-formed token of the current format.
fn order_of(value: &str) -> Option<[u8; ORDER_BYTES]> {
    if value.len() != TOKEN_LEN || TokenKind::recognise(value).is_none() {
        return None;
    }
    let mut bytes = [0u8; ORDER_CHARS / 4 * 3];
    let encoded = value.as_bytes().get(PREFIX_LEN..PREFIX_LEN + ORDER_CHARS)?;
    URL_SAFE_NO_PAD.decode_slice(encoded, &mut bytes).ok()?;
    bytes[..ORDER_BYTES].try_into().ok()
}

fn checksum(head: &str) -> String {
    let digest = Sha256::digest(head.as_bytes());
    let mut encoded = URL_SAFE_NO_PAD.encode(&digest[..4]);
    encoded.truncate(CHECKSUM_LEN);
    encoded
}

/// The hash of a token or secret: the only form in which one is stored or compared.
///
/// For a token of the current format (see the module docs) it is the token's 8-byte order
/// followed by the first 24 bytes of its SHA-256; for anything else (tokens of the earlier
/// format, strings that are no token), the plain SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a presented token or secret.
    #[must_use]
    pub fn of(value: &str) -> Self {
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        match order_of(value) {
            Some(order) => {
                let mut hash = [0u8; 32];
                hash[..ORDER_BYTES].copy_from_slice(&order);
                hash[ORDER_BYTES..].copy_from_slice(&digest[..32 - ORDER_BYTES]);
                Self(hash)
            }
            None => Self(digest),
        }
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
        // The last bytes: a token's first ones are its order, shared with its neighbours.
        write!(f, "TokenHash(..{})", &self.to_hex()[52..])
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
                let token = kind.generate(1_796_000_000_000_000, &mut rng);
                assert_eq!(token.len(), TOKEN_LEN);
                assert_eq!(TokenKind::recognise(&token), Some(kind), "{token}");
            }
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let token = TokenKind::RefreshToken.generate(1, &mut rng);
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

    /// A token of the earlier format: 256 random bits, no order.
    fn random_token(kind: TokenKind, rng: &mut dyn RngCore) -> String {
        let mut body = [0u8; RANDOM_BYTES];
        rng.fill_bytes(&mut body);
        let mut token = kind.prefix().to_owned();
        URL_SAFE_NO_PAD.encode_string(body, &mut token);
        let checksum = checksum(&token);
        token + &checksum
    }

    #[test]
    fn tokens_of_the_earlier_format_are_recognised_and_keep_their_plain_hash() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for kind in TokenKind::ALL {
            let token = random_token(kind, &mut rng);
            assert_eq!(token.len(), RANDOM_TOKEN_LEN);
            assert_eq!(TokenKind::recognise(&token), Some(kind), "{token}");
            let plain: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            assert_eq!(TokenHash::of(&token).0, plain);
        }
    }

    #[test]
    fn a_tokens_hash_is_its_order_then_its_sha256() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
        let order = 1_796_000_000_123_456_u64;
        let token = TokenKind::RefreshToken.generate(order, &mut rng);
        let hash = TokenHash::of(&token).0;
        assert_eq!(hash[..8], order.to_be_bytes());
        let plain: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert_eq!(hash[8..], plain[..24]);
        // A string that is no token of ours hashes plainly, whatever its length.
        let other = "x".repeat(TOKEN_LEN);
        assert_eq!(
            TokenHash::of(&other).0,
            <[u8; 32]>::from(Sha256::digest(other.as_bytes()))
        );
    }

    #[test]
    fn hashes_of_later_tokens_sort_after_earlier_ones() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let hashes: Vec<[u8; 32]> = (0..100u64)
            .map(|i| TokenHash::of(&TokenKind::RefreshToken.generate(1_796_000_000_000_000 + i, &mut rng)).0)
            .collect();
        assert!(hashes.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn tokens_of_the_same_order_differ() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let a = TokenKind::RefreshToken.generate(5, &mut rng);
        let b = TokenKind::RefreshToken.generate(5, &mut rng);
        assert_ne!(a, b);
        assert!(!TokenHash::of(&a).matches(&TokenHash::of(&b)));
    }

    #[test]
    fn hashes_compare() {
        assert!(TokenHash::of("a").matches(&TokenHash::of("a")));
        assert!(!TokenHash::of("a").matches(&TokenHash::of("b")));
        assert_eq!(TokenHash::of("abc").to_hex().len(), 64);
    }
}
