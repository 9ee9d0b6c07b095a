//! The introspection endpoint (RFC 7662 §2): authenticate the caller, describe the token. The
//! rules (who may see what, when a token is active) are in `tokens::introspection`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{no_store, OAuthError};
use crate::extract::client_auth;
use crate::extract::form::OAuthForm;
use crate::state::AppState;
use crate::tokens::introspection;

/// `POST /introspect`.
#[tracing::instrument(name = "handler.oauth2.introspect.post", skip_all, fields(client.id))]
pub async fn post(State(state): State<AppState>, form: Result<OAuthForm, OAuthError>) -> Response {
    let result = async {
        let (client, token) = client_auth::token_request(&state, form?).await?;
        introspection::introspect(&state, &client, &token).await
    }
    .await;
    match result {
        Ok(answer) => no_store(Json(answer).into_response()),
        Err(error) => error.into_response(),
    }
}
