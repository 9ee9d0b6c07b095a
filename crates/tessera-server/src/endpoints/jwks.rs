//! `GET /jwks`: the JWK Set of every published signing key (RFC 7517 §5), with `kid`, `use`, `alg`.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::state::AppState;

/// `GET /jwks`.
pub async fn get(State(state): State<AppState>) -> Response {
    let mut response = Json(state.keys.jwks(state.now())).into_response();
    // Short enough that a newly published key is seen well within the publication delay.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    response
}
