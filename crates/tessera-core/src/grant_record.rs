//! Grants (token families) and authorization codes as stored.

use crate::time::Timestamp;
use crate::token::TokenHash;

/// Whether a grant lives with its SSO session or independently of it (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// Bound to the SSO session: dies with it.
    Online,
    /// From `offline_access`: survives logout and session expiry.
    Offline,
}

impl GrantKind {
    /// `online` or `offline`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }

    /// Parses `online` or `offline`.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "online" => Some(Self::Online),
            "offline" => Some(Self::Offline),
            _ => None,
        }
    }
}

/// What one authorization produced for one (user, client): every token of the family hangs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Random id.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// The granted scope (space-delimited).
    pub scope: String,
    /// Online or offline.
    pub kind: GrantKind,
    /// The SSO session it came from.
    pub session_id: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last used (code exchange, refresh).
    pub last_used_at: Timestamp,
    /// Hard end, if any.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked (`code_reuse`, `logout`, …).
    pub revocation_reason: Option<String>,
}

/// An authorization code as stored (the code itself never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code.
    pub hash: TokenHash,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who authorized.
    pub user_id: String,
    /// The SSO session it came from.
    pub session_id: String,
    /// The grant its exchange creates (id chosen at issue, so reuse can revoke it).
    pub grant_id: String,
    /// The `redirect_uri` of the request (RFC 6749 §4.1.3: must match at exchange).
    pub redirect_uri: String,
    /// The granted scope.
    pub scope: String,
    /// The `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// PKCE `code_challenge`.
    pub code_challenge: Option<String>,
    /// PKCE `code_challenge_method` (`S256` or `plain`).
    pub code_challenge_method: Option<String>,
    /// Audiences of the access token (RFC 8707).
    pub audience: Vec<String>,
    /// The session's `auth_time`.
    pub auth_time: Timestamp,
    /// The session's `amr`.
    pub amr: Vec<String>,
    /// The session's `acr`.
    pub acr: Option<String>,
    /// Issue time.
    pub created_at: Timestamp,
    /// Expiry (`tokens.authorization_code_lifetime` after issue).
    pub expires_at: Timestamp,
    /// When it was exchanged; a code is single use.
    pub consumed_at: Option<Timestamp>,
}
