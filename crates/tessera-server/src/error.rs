//! The one OAuth-facing error type and its single rendering (RFC 6749 §5.2).
//!
//! The wire sees `{error, error_description?}` only. The *reason* — why exactly the request failed —
//! travels in the response extensions as [`ErrorReason`] and is logged once by the `log_errors`
//! middleware inside the request span, never sent to the client.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::grant::GrantError;
use tessera_storage::RepositoryError;
use tessera_types::error::ErrorResponse;
use tessera_types::ErrorCode;

/// An error answered to an OAuth client.
#[derive(Debug)]
pub struct OAuthError {
    code: ErrorCode,
    description: Option<Cow<'static, str>>,
    status: StatusCode,
    www_authenticate: bool,
    reason: String,
}

/// Why a request failed, for the log line (never for the wire).
#[derive(Debug, Clone)]
pub struct ErrorReason {
    /// The wire code.
    pub code: ErrorCode,
    /// The internal reason.
    pub reason: String,
    /// Whether this is the server's fault (logged at `error`) or the client's (`debug`).
    pub is_internal: bool,
}

impl OAuthError {
    /// An error with the code's status (400, or 401 for `invalid_client`, 5xx for server codes).
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            code,
            description: None,
            status,
            www_authenticate: false,
            reason: reason.into(),
        }
    }

    /// `invalid_request` with a description safe to show the client developer.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        let description = description.into();
        Self {
            reason: description.to_string(),
            description: Some(description),
            ..Self::new(ErrorCode::InvalidRequest, String::new())
        }
    }

    /// `invalid_client` (401). With `used_authorization_header`, adds `WWW-Authenticate` (RFC 6749 §5.2).
    pub fn invalid_client(reason: impl Into<String>, used_authorization_header: bool) -> Self {
        Self {
            www_authenticate: used_authorization_header,
            ..Self::new(ErrorCode::InvalidClient, reason)
        }
    }

    /// Adds a client-safe description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<Cow<'static, str>>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The wire code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The internal reason.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl From<GrantError> for OAuthError {
    fn from(error: GrantError) -> Self {
        let code = error.code();
        // Scope and target errors may name what was refused: the client asked for it.
        let description: Option<Cow<'static, str>> = match &error {
            GrantError::ScopeNotAllowed { missing } => Some(format!("scope not allowed: {}", missing.join(" ")).into()),
            GrantError::TargetNotAllowed { target } => Some(format!("target not allowed: {target}").into()),
            GrantError::MalformedScope(_) => Some("scope is malformed".into()),
            // Every invalid_grant reason stays in the log (DESIGN B8: never say why).
            _ => None,
        };
        Self {
            description,
            ..Self::new(code, error.to_string())
        }
    }
}

impl From<RepositoryError> for OAuthError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(_) => Self::new(ErrorCode::TemporarilyUnavailable, error.to_string()),
            _ => Self::new(ErrorCode::ServerError, error.to_string()),
        }
    }
}

/// Marks a response of the token, revocation or introspection endpoint as not to be cached
/// (RFC 6749 §5.1: `Cache-Control: no-store` and `Pragma: no-cache`).
#[must_use]
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: self.code,
            error_description: Some(
                self.description
                    .map_or_else(|| self.code.default_description().to_owned(), Cow::into_owned),
            ),
        };
        let mut response = no_store((self.status, axum::Json(body)).into_response());
        let headers = response.headers_mut();
        if self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        let is_internal = self.status.is_server_error();
        response.extensions_mut().insert(ErrorReason {
            code: self.code,
            reason: self.reason,
            is_internal,
        });
        response
    }
}
