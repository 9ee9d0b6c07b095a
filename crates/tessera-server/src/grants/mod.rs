//! Grant dispatch: one exhaustive `match` over the parsed request, one module per grant type.
//!
//! A grant type is handled only if it is implemented here; anything else was already refused
//! with `unsupported_grant_type` when the request was parsed (`tessera_types::token`).

pub mod authorization_code;
pub mod client_credentials;
pub mod common;
pub mod password;
pub mod refresh_token;
pub mod token_exchange;

use tessera_core::Client;
use tessera_types::token::{AccessTokenRequest, TokenResponse};

use crate::error::OAuthError;
use crate::state::AppState;

/// Runs the grant for an authenticated client.
///
/// # Errors
/// The grant's OAuth error.
pub async fn handle(
    state: &AppState,
    client: &Client,
    request: AccessTokenRequest,
) -> Result<TokenResponse, OAuthError> {
    match request {
        AccessTokenRequest::AuthorizationCode(grant) => authorization_code::handle(state, client, &grant).await,
        AccessTokenRequest::RefreshToken(grant) => refresh_token::handle(state, client, &grant).await,
        AccessTokenRequest::Password(grant) => password::handle(state, client, &grant).await,
        AccessTokenRequest::ClientCredentials(grant) => client_credentials::handle(state, client, &grant).await,
        AccessTokenRequest::TokenExchange(grant) => token_exchange::handle(state, client, &grant).await,
    }
}
