//! The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3).
//!
//! Stores the grant (token family) the code's exchange creates, and the hash of an opaque access
//! token; signs the access token (JWT) and the ID token. A code is single use: the first exchange
//! consumes it with one conditional update, and any later presentation fails and revokes the grant
//! the first one created, with everything issued from it (RFC 6749 §4.1.2, DESIGN B15) — a code
//! used twice has leaked, and the tokens of the first use may be in an attacker's hands.

use tessera_core::grant::{authorization_code, GrantError};
use tessera_core::{Client, Scope, TokenHash, TokenKind};
use tessera_types::token::{AuthorizationCodeGrant, TokenResponse};

use crate::audit::{Actor, Event, EventKind};
use crate::error::OAuthError;
use crate::grants::common;
use crate::state::AppState;
use crate::tokens::UserContext;

/// Handles `grant_type=authorization_code` for an authenticated client.
///
/// # Errors
/// `invalid_request` without a code; `unauthorized_client`; `invalid_grant` for every problem with
/// the code (the reason goes to the log only); storage or signing failures.
pub async fn handle(
    state: &AppState,
    client: &Client,
    request: &AuthorizationCodeGrant,
) -> Result<TokenResponse, OAuthError> {
    let now = state.now();
    if !client.allows_grant(tessera_types::token::GrantType::AuthorizationCode) {
        return Err(GrantError::GrantNotAllowed {
            grant_type: "authorization_code",
        }
        .into());
    }
    let code_value = request
        .code
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    if TokenKind::recognise(code_value) != Some(TokenKind::AuthorizationCode) {
        return Err(GrantError::NotFound.into());
    }
    let hash = TokenHash::of(code_value);
    let code = state
        .storage
        .authorization_codes()
        .find_by_hash(&hash)
        .await?
        .ok_or(GrantError::NotFound)?;
    if code.consumed_at.is_some() {
        return Err(revoke_after_reuse(state, &code.grant_id).await);
    }
    authorization_code::check(client, request, &code, now)?;
    let user = match state.storage.users().lookup(&code.user_id).await? {
        Some(user) if !user.is_disabled => user,
        _ => return Err(GrantError::UserUnavailable(code.user_id.clone()).into()),
    };
    let session = state.storage.sessions().lookup(&code.session_id).await?;
    if !session
        .as_ref()
        .is_some_and(|s| s.is_active(now, state.config.sessions.idle_timeout))
    {
        return Err(GrantError::SessionEnded(code.session_id.clone()).into());
    }
    let scope = Scope::from_tokens(code.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
    let Some(session) = session else {
        return Err(GrantError::SessionEnded(code.session_id.clone()).into());
    };
    let (grant, refresh_token) = common::new_grant(state, client, &user, &session, &scope, code.grant_id.clone(), now);
    // The grant is stored before the code is consumed, so a concurrent second use always finds
    // something to revoke: either its own `add` conflicts or its `consume` loses.
    match state.storage.grants().add(&grant).await {
        Ok(()) => {}
        Err(tessera_storage::RepositoryError::Conflict(_)) => {
            return Err(revoke_after_reuse(state, &code.grant_id).await)
        }
        Err(error) => return Err(error.into()),
    }
    // Single use, decided by the database: of concurrent exchanges exactly one gets `true`.
    if !state.storage.authorization_codes().consume(&hash, now).await? {
        return Err(revoke_after_reuse(state, &code.grant_id).await);
    }
    state.storage.sessions().touch(&code.session_id, now).await?;
    if let Some((_, record)) = &refresh_token {
        common::store_first_refresh_token(state, client, &grant, record).await?;
    }
    let context = UserContext {
        user_id: &user.id,
        session_id: Some(&code.session_id),
        auth_time: code.auth_time,
        amr: &code.amr,
        acr: code.acr.as_deref(),
        grant_id: Some(&grant.id),
    };
    let response = common::respond(
        state,
        common::UserTokens {
            client,
            user: &user,
            context,
            access_scope: &scope,
            audience: code.audience.clone(),
            nonce: code.nonce.as_deref(),
            refresh_token: refresh_token.map(|(value, record)| (value, record.expires_at)),
            stored_access_token: None,
            now,
        },
    )
    .await?;
    tracing::debug!(client.id = %client.id, grant.id = %grant.id, kind = grant.kind.as_str(), "exchanged authorization code");
    state.audit.record(
        now,
        Event::new(EventKind::TokenIssued, Actor::Client)
            .user(grant.user_id.clone())
            .client(client.id.clone())
            .grant(grant.id.clone())
            .detail("grant_type", "authorization_code")
            .detail("kind", grant.kind.as_str()),
    );
    Ok(response)
}

/// A second use of a code: revoke the grant of the first use (committed before answering), then
/// refuse with `invalid_grant`.
async fn revoke_after_reuse(state: &AppState, grant_id: &str) -> OAuthError {
    match state.storage.grants().revoke(grant_id, state.now(), "code_reuse").await {
        Ok(revoked) => {
            tracing::warn!(grant.id = grant_id, revoked, "authorization code reused: grant revoked");
            if revoked {
                state.audit.record(
                    state.now(),
                    Event::new(EventKind::GrantRevoked, Actor::Policy)
                        .grant(grant_id)
                        .detail("reason", "code_reuse"),
                );
            }
            GrantError::CodeReused {
                grant_id: grant_id.to_owned(),
            }
            .into()
        }
        Err(error) => error.into(),
    }
}
