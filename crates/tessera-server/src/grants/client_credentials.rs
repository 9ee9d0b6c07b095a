//! The client-credentials grant (RFC 6749 §4.4; RFC 8707 resource indicators; RFC 9068 JWT access
//! tokens). Stores nothing for JWT access tokens; stores the hash of an opaque one. Never issues a
//! refresh token (RFC 6749 §4.4.3).

use tessera_core::grant::client_credentials;
use tessera_core::Client;
use tessera_types::token::{ClientCredentialsGrant, TokenResponse};

use crate::audit::{Actor, Event, EventKind};
use crate::error::OAuthError;
use crate::state::AppState;
use crate::tokens::issue_access_token;

/// Handles `grant_type=client_credentials` for an authenticated client.
///
/// # Errors
/// `unauthorized_client`, `invalid_scope`, `invalid_target`, or a storage/signing failure.
pub async fn handle(
    state: &AppState,
    client: &Client,
    request: &ClientCredentialsGrant,
) -> Result<TokenResponse, OAuthError> {
    let now = state.now();
    let plan = client_credentials::decide(client, request, state.access_token_policy(), now)?;
    let access_token = issue_access_token(state, client, None, &plan).await?;
    tracing::debug!(client.id = %client.id, scope = %plan.scope, "issued client-credentials access token");
    state.audit.record(
        now,
        Event::new(EventKind::TokenIssued, Actor::Client)
            .client(client.id.clone())
            .detail("grant_type", "client_credentials")
            .detail("scope", plan.scope.to_string()),
    );
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        issued_token_type: None,
        expires_in: now.seconds_until(plan.expires_at),
        scope: (!plan.scope.is_empty()).then(|| plan.scope.to_string()),
        refresh_token: None,
        refresh_expires_in: None,
        id_token: None,
    })
}
