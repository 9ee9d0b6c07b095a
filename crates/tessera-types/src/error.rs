//! OAuth 2.0 error codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 8707 §2).

use serde::{Deserialize, Serialize};

/// A registered OAuth 2.0 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// RFC 6749 §5.2: the request is missing a parameter, repeats one, or is otherwise malformed.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant (code, refresh token, credentials) is invalid, expired or revoked.
    InvalidGrant,
    /// RFC 6749 §5.2: the client is not allowed to use this grant type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the grant type is not supported by this server.
    UnsupportedGrantType,
    /// RFC 6749 §5.2: the requested scope is invalid, unknown or exceeds what is allowed.
    InvalidScope,
    /// RFC 8707 §2: the requested resource or audience is not allowed.
    InvalidTarget,
    /// RFC 7009 §2.2.1: the token type cannot be revoked.
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1: the server met an unexpected condition.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server is temporarily unable to handle the request.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// A short, spec-worded description, used when nothing more specific may be said.
    #[must_use]
    pub fn default_description(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is missing a required parameter, includes an unsupported parameter value, repeats a parameter, or is otherwise malformed.",
            Self::InvalidClient => "Client authentication failed.",
            Self::InvalidGrant => "The provided authorization grant or refresh token is invalid, expired, revoked, or was issued to another client.",
            Self::UnauthorizedClient => "The authenticated client is not authorized to use this authorization grant type.",
            Self::UnsupportedGrantType => "The authorization grant type is not supported by the authorization server.",
            Self::InvalidScope => "The requested scope is invalid, unknown, malformed, or exceeds the scope allowed.",
            Self::InvalidTarget => "The requested resource or audience is invalid, unknown, or not allowed for this client.",
            Self::UnsupportedTokenType => "The authorization server does not support the revocation of the presented token type.",
            Self::ServerError => "The authorization server encountered an unexpected condition.",
            Self::TemporarilyUnavailable => "The authorization server is temporarily unable to handle the request.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of an OAuth 2.0 error response (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error code.
    pub error: ErrorCode,
    /// Human-readable text for the client developer; never carries secrets or internal reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}
