//! `OAuthForm`: a form body whose every rejection is an OAuth `invalid_request`.
//!
//! RFC 6749 §3.2: the token endpoint takes `application/x-www-form-urlencoded` POST bodies, and
//! parameters must not repeat (except those whose specs allow it, see `tessera_types::form`).

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use tessera_types::form::FormParams;

use crate::error::OAuthError;
use crate::state::AppState;

/// The parsed form, plus the request headers (client authentication needs both).
pub struct OAuthForm {
    /// The parameters.
    pub params: FormParams,
    /// The request headers.
    pub headers: HeaderMap,
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, OAuthError> {
        let (parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        let limit = state.config.server.max_body_bytes;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            OAuthError::invalid_request(format!(
                "the request body is larger than {limit} bytes or could not be read"
            ))
        })?;
        let params = FormParams::parse(&bytes).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        Ok(Self {
            params,
            headers: parts.headers,
        })
    }
}
