//! The UserInfo endpoint (OIDC Core §5.3): the signed-in user's claims, by the access token's scope.
//!
//! The token comes in the `Authorization: Bearer` header, or in a form body (RFC 6750 §2.2);
//! never in the query string (RFC 6750 §2.3 discourages it; RFC 9700 §4.3.2). Failures are
//! RFC 6750 §3 errors with `WWW-Authenticate: Bearer`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tessera_core::authorize::OPENID;
use tessera_types::form::FormParams;
use tessera_types::ErrorCode;

use crate::endpoints::authorize::is_form;
use crate::error::ErrorReason;
use crate::state::AppState;
use crate::tokens::validate_access_token;

/// `GET /userinfo`.
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(&state, &headers, None).await
}

/// `POST /userinfo`.
pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, Some(&body)).await
}

#[tracing::instrument(name = "handler.oidc.userinfo", skip_all)]
async fn respond(state: &AppState, headers: &HeaderMap, body: Option<&[u8]>) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        });
    let from_body = body
        .filter(|_| is_form(headers))
        .and_then(|body| FormParams::parse(body).ok())
        .and_then(|mut form| form.take("access_token"));
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return bearer_error(
                StatusCode::BAD_REQUEST,
                Some(ErrorCode::InvalidRequest),
                "token in more than one place (RFC 6750 §2)",
            )
        }
        (Some(token), None) | (None, Some(token)) => token,
        // RFC 6750 §3.1: no credentials, no error code.
        (None, None) => return bearer_error(StatusCode::UNAUTHORIZED, None, "no access token"),
    };
    let info = match validate_access_token(state, &token).await {
        Ok(Ok(info)) => info,
        Ok(Err(reason)) => return bearer_error(StatusCode::UNAUTHORIZED, Some(ErrorCode::InvalidToken), &reason),
        Err(error) => {
            tracing::error!(%error, "userinfo lookup failed");
            return crate::error::OAuthError::from(error).into_response();
        }
    };
    if !info.scope.contains(OPENID) {
        return bearer_error(
            StatusCode::FORBIDDEN,
            Some(ErrorCode::InsufficientScope),
            "the access token lacks the openid scope",
        );
    }
    let user = match state.storage.users().lookup(&info.subject).await {
        Ok(Some(user)) if !user.is_disabled => user,
        Ok(_) => {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                Some(ErrorCode::InvalidToken),
                "the user is disabled or gone",
            )
        }
        Err(error) => return crate::error::OAuthError::from(error).into_response(),
    };
    let mut claims = user.claims_for_scope(&info.scope);
    claims.insert("sub".into(), user.id.clone().into());
    let mut response = Json(serde_json::Value::Object(claims)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An RFC 6750 §3 error: `WWW-Authenticate: Bearer [error=…]`, and a JSON body for humans.
fn bearer_error(status: StatusCode, code: Option<ErrorCode>, reason: &str) -> Response {
    let challenge = match code {
        Some(code) => format!(
            "Bearer realm=\"tessera\", error=\"{}\", error_description=\"{}\"",
            code.as_str(),
            code.default_description()
        ),
        None => "Bearer realm=\"tessera\"".to_owned(),
    };
    let body = code.map_or_else(
        || serde_json::json!({}),
        |code| serde_json::json!({ "error": code, "error_description": code.default_description() }),
    );
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(ErrorReason {
        code: code.unwrap_or(ErrorCode::InvalidToken),
        reason: reason.to_owned(),
        is_internal: false,
    });
    response
}
