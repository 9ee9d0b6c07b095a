//! JOSE vocabulary shared by the wire and the signing code (RFC 7518 §3.1, RFC 8037).

use serde::{Deserialize, Serialize};

/// A JWS signature algorithm Tessera signs with.
///
/// `none` is deliberately absent: it can never be named, parsed or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JwsAlgorithm {
    /// ECDSA with P-256 and SHA-256: the default for access tokens (fast to sign and verify).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: the OIDC default for ID tokens.
    RS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl JwsAlgorithm {
    /// Every algorithm Tessera can sign with, in a stable order.
    pub const ALL: [Self; 3] = [Self::ES256, Self::RS256, Self::EdDSA];

    /// The `alg` value on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses an `alg` value; `None` for anything Tessera does not sign with (including `none`).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == value)
    }
}

impl std::fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
