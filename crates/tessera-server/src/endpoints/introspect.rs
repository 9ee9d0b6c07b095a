//! The introspection endpoint (RFC 7662 §2): authenticate the caller, describe the token. The
//! rules (who may see what, when a token is active) are in `tokens::introspection`.
//!
//! A caller that sends `Accept: application/token-introspection+jwt` gets the answer as a JWT
//! signed by the server (RFC 9701 §4), so a resource server can keep or forward a verifiable
//! statement of what it was told: `iss` (us), `aud` (the caller), `iat`, and the RFC 7662 answer
//! in `token_introspection`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tessera_types::ErrorCode;

use crate::error::{no_store, OAuthError};
use crate::extract::client_auth;
use crate::extract::form::OAuthForm;
use crate::state::AppState;
use crate::tokens::introspection;

/// The media type of a signed introspection response (RFC 9701 §5).
pub const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

/// `POST /introspect`.
#[tracing::instrument(name = "handler.oauth2.introspect.post", skip_all, fields(client.id))]
pub async fn post(State(state): State<AppState>, headers: HeaderMap, form: Result<OAuthForm, OAuthError>) -> Response {
    let wants_jwt = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(JWT_MEDIA_TYPE))
        });
    let result = async {
        let (client, token) = client_auth::token_request(&state, form?).await?;
        let answer = introspection::introspect(&state, &client, &token).await?;
        if !wants_jwt {
            return Ok(Json(answer).into_response());
        }
        let now = state.now();
        let algorithm = client
            .settings
            .access_token_algorithm
            .unwrap_or(state.config.keys.access_token_algorithm);
        let key = crate::tokens::signer(&state, algorithm, now)?;
        let claims = json!({
            "iss": state.urls.issuer,
            "aud": client.id,
            "iat": now.0,
            "token_introspection": answer,
        });
        let jwt = key
            .sign_jwt("token-introspection+jwt", &claims)
            .map_err(|e| OAuthError::new(ErrorCode::ServerError, format!("signing failed: {e}")))?;
        let mut response = jwt.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JWT_MEDIA_TYPE));
        Ok::<_, OAuthError>(response)
    }
    .await;
    match result {
        Ok(response) => no_store(response),
        Err(error) => error.into_response(),
    }
}
