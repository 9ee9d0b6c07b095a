//! The revocation endpoint (RFC 7009 §2): authenticate the client, revoke the token, answer 200
//! with an empty body — also for unknown tokens. The work is in `tokens::revocation`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::audit::{Actor, Event, EventKind};
use crate::error::{no_store, OAuthError};
use crate::extract::client_auth;
use crate::extract::form::OAuthForm;
use crate::state::AppState;
use crate::tokens::revocation::{self, Revoked};

/// `POST /revoke`.
#[tracing::instrument(name = "handler.oauth2.revoke.post", skip_all, fields(client.id))]
pub async fn post(State(state): State<AppState>, form: Result<OAuthForm, OAuthError>) -> Response {
    let result = async {
        let (client, token) = client_auth::token_request(&state, form?).await?;
        let revoked = revocation::revoke(&state, &client, &token).await?;
        tracing::info!(client.id = %client.id, ?revoked, "revocation request");
        let event = |kind| Event::new(kind, Actor::Client).client(client.id.clone());
        match revoked {
            Revoked::Nothing => {}
            Revoked::Grant(grant_id) => state.audit.record(
                state.now(),
                event(EventKind::GrantRevoked)
                    .grant(grant_id)
                    .detail("reason", "revoked_by_client")
                    .detail("token_type", "refresh_token"),
            ),
            Revoked::OpaqueAccessToken => state.audit.record(
                state.now(),
                event(EventKind::AccessTokenRevoked).detail("format", "opaque"),
            ),
            Revoked::JwtAccessToken(jti) => state.audit.record(
                state.now(),
                event(EventKind::AccessTokenRevoked)
                    .detail("format", "jwt")
                    .detail("jti", jti),
            ),
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => no_store(().into_response()),
        Err(error) => error.into_response(),
    }
}
