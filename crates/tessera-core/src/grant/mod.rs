//! Grant decisions: each module validates a token request against a client and policy and returns a
//! *plan* that the server carries out. Validation never touches storage; issuing never re-decides.

pub mod client_credentials;

use tessera_types::ErrorCode;

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
            Self::GrantNotAllowed { .. } => ErrorCode::UnauthorizedClient,
            Self::MalformedScope(_) | Self::ScopeNotAllowed { .. } => ErrorCode::InvalidScope,
            Self::TargetNotAllowed { .. } => ErrorCode::InvalidTarget,
        }
    }
}
