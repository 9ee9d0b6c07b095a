//! The token endpoint (RFC 6749 §3.2, §5): authenticate the client, parse the grant, run it.
//!
//! Every response — success or error — carries `Cache-Control: no-store` (RFC 6749 §5.1).
//! Tokens are in the response only after whatever must be stored for them has been committed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tessera_types::token::{AccessTokenRequest, TokenRequestError};

use crate::endpoints::metrics::GrantTypeLabel;
use crate::error::{no_store, OAuthError};
use crate::extract::client_auth;
use crate::extract::form::OAuthForm;
use crate::grants;
use crate::state::AppState;

/// `POST /token`.
#[tracing::instrument(name = "handler.oauth2.token.post", skip_all, fields(client.id, grant_type))]
pub async fn post(State(state): State<AppState>, form: Result<OAuthForm, OAuthError>) -> Response {
    let mut grant_label = None;
    let result = async {
        let OAuthForm { mut params, headers } = form?;
        let client = client_auth::authenticate(&state, &headers, &mut params).await?;
        tracing::Span::current().record("client.id", client.id.as_str());
        let request = AccessTokenRequest::from_form(&mut params).map_err(|e| match e {
            TokenRequestError::MissingGrantType => OAuthError::invalid_request("grant_type is missing"),
            TokenRequestError::UnsupportedGrantType(name) => OAuthError::new(
                tessera_types::ErrorCode::UnsupportedGrantType,
                format!("grant type {name:?} is not supported"),
            ),
        })?;
        let grant_type = request.grant_type();
        grant_label = Some(grant_type.as_str());
        tracing::Span::current().record("grant_type", grant_type.as_str());
        grants::handle(&state, &client, request).await
    }
    .await;
    let mut response = match result {
        Ok(token_response) => no_store(Json(token_response).into_response()),
        Err(error) => error.into_response(),
    };
    if let Some(label) = grant_label {
        response.extensions_mut().insert(GrantTypeLabel(label));
    }
    response
}
