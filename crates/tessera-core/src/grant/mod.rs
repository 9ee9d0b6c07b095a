//! Grant decisions: each module validates a token request against a client and policy and returns a
//! *plan* that the server carries out. Validation never touches storage; issuing never re-decides.

pub mod authorization_code;
pub mod client_credentials;
pub mod token_exchange;

use tessera_types::ErrorCode;

use crate::client::{AccessTokenFormat, Client};
use crate::scope::Scope;
use crate::time::Timestamp;

/// Server-wide access-token numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenPolicy {
    /// Default access-token lifetime, seconds.
    pub lifetime: u64,
    /// No access token lives longer than this, seconds.
    pub max_lifetime: u64,
}

/// What access token to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenPlan {
    /// The granted scope.
    pub scope: Scope,
    /// The `aud` of the access token; empty means "the issuer's default audience".
    pub audience: Vec<String>,
    /// JWT or opaque.
    pub format: AccessTokenFormat,
    /// When the access token is issued.
    pub issued_at: Timestamp,
    /// When the access token expires.
    pub expires_at: Timestamp,
    /// The RFC 8693 `act` claim: who acts for the subject (token exchange with delegation).
    pub act: Option<serde_json::Value>,
}

impl AccessTokenPlan {
    /// A plan for `client` with its lifetime (or the default), capped by the policy.
    #[must_use]
    pub fn new(
        client: &Client,
        scope: Scope,
        audience: Vec<String>,
        policy: AccessTokenPolicy,
        now: Timestamp,
    ) -> Self {
        let lifetime = client
            .settings
            .access_token_lifetime
            .unwrap_or(policy.lifetime)
            .min(policy.max_lifetime);
        Self {
            scope,
            audience,
            format: client.settings.access_token_format,
            issued_at: now,
            expires_at: now.plus(lifetime),
            act: None,
        }
    }
}

/// Why the core refused a grant. The `Display` text is the reason for logs; the wire only sees
/// [`GrantError::code`] (and at most a generic description).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The client is not allowed this grant type.
    #[error("client is not allowed grant type {grant_type}")]
    GrantNotAllowed {
        /// The grant type asked for.
        grant_type: &'static str,
    },
    /// `scope` is not well-formed.
    #[error("scope is malformed: {0}")]
    MalformedScope(String),
    /// Some requested scopes are not allowed for this client.
    #[error("scopes not allowed for client: {}", missing.join(" "))]
    ScopeNotAllowed {
        /// The scopes that are not allowed.
        missing: Vec<String>,
    },
    /// The code or token was issued to another client (RFC 6749 §4.1.3, DESIGN B8).
    #[error("code was issued to client {expected}, not {actual}")]
    ClientMismatch {
        /// The client it was issued to.
        expected: String,
        /// The client that presented it.
        actual: String,
    },
    /// The code, token or grant does not exist (or is malformed).
    #[error("unknown or malformed code")]
    NotFound,
    /// The code was already used; what it produced is being revoked (DESIGN B15).
    #[error("code was already used; revoking grant {grant_id}")]
    CodeReused {
        /// The grant the first use created.
        grant_id: String,
    },
    /// The code, token or grant has expired.
    #[error("the grant has expired")]
    Expired,
    /// `redirect_uri` differs from the authorization request's.
    #[error("redirect_uri differs from the authorization request's")]
    RedirectUriMismatch,
    /// The PKCE verifier is missing.
    #[error("code_verifier is missing (PKCE)")]
    PkceMissing,
    /// The PKCE verifier does not match.
    #[error("code_verifier does not match the code_challenge (PKCE)")]
    PkceMismatch,
    /// A verifier for a code issued without a challenge.
    #[error("code_verifier given for a code issued without code_challenge")]
    PkceUnexpected,
    /// The user is disabled or gone.
    #[error("user {0} is disabled or no longer exists")]
    UserUnavailable(String),
    /// The grant was revoked.
    #[error("grant {0} is revoked")]
    GrantRevoked(String),
    /// A spent refresh token outside the grace window: the grant must be revoked (DESIGN B3).
    #[error("refresh token reused outside the grace window; revoking grant {grant_id}")]
    RefreshTokenReused {
        /// The grant to revoke.
        grant_id: String,
    },
    /// A used-up refresh token with rotation off (no reuse detection).
    #[error("refresh token has no uses left")]
    RefreshTokenSpent,
    /// The SSO session the code came from has ended.
    #[error("the SSO session {0} has ended")]
    SessionEnded(String),
    /// Token exchange: the client's policy does not allow this exchange.
    #[error("token exchange not allowed: {0}")]
    ExchangeNotAllowed(String),
    /// Token exchange: a subject or actor token is not acceptable.
    #[error("token exchange: {0}")]
    InvalidExchangeToken(String),
    /// A requested audience or resource is not allowed for this client.
    #[error("target not allowed for client: {target}")]
    TargetNotAllowed {
        /// The audience or resource asked for.
        target: String,
    },
}

impl GrantError {
    /// The RFC 6749 §5.2 code this reason maps to.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::GrantNotAllowed { .. } | Self::ExchangeNotAllowed(_) => ErrorCode::UnauthorizedClient,
            Self::MalformedScope(_) | Self::ScopeNotAllowed { .. } => ErrorCode::InvalidScope,
            Self::TargetNotAllowed { .. } => ErrorCode::InvalidTarget,
            Self::ClientMismatch { .. }
            | Self::NotFound
            | Self::CodeReused { .. }
            | Self::Expired
            | Self::RedirectUriMismatch
            | Self::PkceMissing
            | Self::PkceMismatch
            | Self::PkceUnexpected
            | Self::UserUnavailable(_)
            | Self::SessionEnded(_)
            | Self::GrantRevoked(_)
            | Self::RefreshTokenReused { .. }
            | Self::RefreshTokenSpent
            | Self::InvalidExchangeToken(_) => ErrorCode::InvalidGrant,
        }
    }
}
