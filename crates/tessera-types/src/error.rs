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
    /// RFC 6749 §4.1.2.1: the resource owner or the server denied the request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: the server does not support this `response_type`.
    UnsupportedResponseType,
    /// OIDC Core §3.1.2.6: `prompt=none` but the user must log in.
    LoginRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` but the user must consent.
    ConsentRequired,
    /// OIDC Core §3.1.2.6: request objects are not supported.
    RequestNotSupported,
    /// OIDC Core §3.1.2.6: `request_uri` is not supported.
    RequestUriNotSupported,
    /// RFC 6750 §3.1: the access token is expired, revoked, malformed or invalid.
    InvalidToken,
    /// RFC 6750 §3.1: the access token lacks a required scope.
    InsufficientScope,
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
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
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
            Self::AccessDenied => "The resource owner or authorization server denied the request.",
            Self::UnsupportedResponseType => "The authorization server does not support obtaining an authorization code using this method.",
            Self::LoginRequired => "The user must authenticate.",
            Self::ConsentRequired => "The user must consent.",
            Self::RequestNotSupported => "Request objects are not supported.",
            Self::RequestUriNotSupported => "The request_uri parameter is not supported.",
            Self::InvalidToken => "The access token is expired, revoked, malformed, or invalid.",
            Self::InsufficientScope => "The access token does not have the scope this request requires.",
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
