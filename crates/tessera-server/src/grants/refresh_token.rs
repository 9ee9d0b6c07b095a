//! The refresh-token grant (RFC 6749 §6; RFC 9700 §4.14; OIDC Core §12; DESIGN B2–B8, B18).
//!
//! The core decides (`tessera_core::refresh::decide`); this module loads the records in one read
//! (`RefreshTokenRepository::find_with_context`) and carries the plan out in one atomic store
//! operation (`RefreshTokenRepository::rotate`): a conditional update of the presented token that
//! must change exactly one row, a conditional touch of the grant that fails if it was revoked,
//! and the insert of the new token — committed before the response. If another request won the race, the store says so and the decision is taken again
//! with the token's new state: a lost race is a reuse like any other (inside the grace window a
//! sibling, outside it the grant is revoked), because the server cannot tell a parallel request
//! from a stolen token.

use tessera_core::grant::GrantError;
use tessera_core::refresh::{self, RefreshPlan, RefreshRequest};
use tessera_core::{AccessTokenFormat, Client, GrantKind, TokenHash, TokenKind};
use tessera_storage::{RefreshContext, Rotation};
use tessera_types::token::{GrantType, RefreshTokenGrant, TokenResponse};

use crate::audit::{Actor, Event, EventKind};
use crate::error::OAuthError;
use crate::grants::common::{self, refresh_policy};
use crate::state::AppState;
use crate::tokens::{new_opaque_access_token, UserContext};

/// How often a lost race is re-decided before giving up (each retry sees a newer state).
const ATTEMPTS: usize = 3;

/// Handles `grant_type=refresh_token` for an authenticated client.
///
/// # Errors
/// `unauthorized_client`; `invalid_request` without a token; `invalid_scope` for a wider scope;
/// `invalid_grant` for everything else about the token (the reason goes to the log only).
pub async fn handle(
    state: &AppState,
    client: &Client,
    request: &RefreshTokenGrant,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(GrantError::GrantNotAllowed {
            grant_type: GrantType::RefreshToken.as_str(),
        }
        .into());
    }
    let value = request
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    if TokenKind::recognise(value) != Some(TokenKind::RefreshToken) {
        return Err(GrantError::NotFound.into());
    }
    let hash = TokenHash::of(value);
    let policy = refresh_policy(state, client);
    for _ in 0..ATTEMPTS {
        let now = state.now();
        // The token, its grant, session and user in one read (one snapshot).
        let RefreshContext {
            token,
            grant,
            session,
            user,
        } = state
            .storage
            .refresh_tokens()
            .find_with_context(&hash)
            .await?
            .ok_or(GrantError::NotFound)?;
        let grant = grant.ok_or(GrantError::NotFound)?;
        let decision = refresh::decide(&RefreshRequest {
            client_id: &client.id,
            token: &token,
            grant: &grant,
            session: session.as_ref(),
            requested_scope: request.scope.as_deref(),
            policy: &policy,
            session_idle_timeout: state.config.sessions.idle_timeout,
            now,
        });
        let plan = match decision {
            Ok(plan) => plan,
            Err(GrantError::RefreshTokenReused { grant_id }) => {
                // B3: revoke the whole family, committed before the error goes out.
                let revoked = state
                    .storage
                    .grants()
                    .revoke(&grant_id, now, "refresh_token_reuse")
                    .await?;
                state.audit.record(
                    now,
                    Event::new(EventKind::RefreshTokenReuseDetected, Actor::Policy)
                        .user(grant.user_id.clone())
                        .client(client.id.clone())
                        .grant(grant_id.clone())
                        .detail("grant_revoked", revoked),
                );
                tracing::warn!(grant.id = %grant_id, client.id = %client.id, user.id = %grant.user_id, event = "refresh_token.reuse_detected", "refresh token reused outside the grace window: grant revoked");
                return Err(GrantError::RefreshTokenReused { grant_id }.into());
            }
            Err(error) => return Err(error.into()),
        };
        // User claims are re-read; a disabled or deleted user ends the grant (DESIGN §2).
        let user = match user {
            Some(user) if !user.is_disabled => user,
            _ => {
                state
                    .storage
                    .grants()
                    .revoke(&grant.id, now, "user_unavailable")
                    .await?;
                return Err(GrantError::UserUnavailable(grant.user_id.clone()).into());
            }
        };
        let (access_scope, expires_at, expected_use_count) = match plan {
            RefreshPlan::Rotate {
                access_scope,
                expires_at,
                expected_use_count,
            } => (access_scope, expires_at, Some(expected_use_count)),
            RefreshPlan::Sibling {
                access_scope,
                expires_at,
            } => (access_scope, expires_at, None),
        };
        let (new_value, new_token) = common::new_refresh_token(&grant, Some(hash), expires_at, now);
        let context = UserContext {
            user_id: &user.id,
            session_id: grant.session_id.as_deref(),
            auth_time: session.as_ref().map_or(grant.created_at, |s| s.auth_time),
            amr: session.as_ref().map_or(&[][..], |s| &s.amr[..]),
            acr: session.as_ref().and_then(|s| s.acr.as_deref()),
            grant_id: Some(&grant.id),
        };
        // B5: an opaque access token is stored in the rotation's transaction, so the refresh
        // token is never spent without the token the response carries being stored too.
        let access_plan = common::access_plan(state, client, &access_scope, Vec::new(), now);
        let opaque = (access_plan.format == AccessTokenFormat::Opaque)
            .then(|| new_opaque_access_token(state, client, Some(context), &access_plan));
        let rotation = Rotation {
            presented: hash,
            expected_use_count,
            allowed_uses: policy.allowed_uses(),
            new_token,
            // B2: a refresh is activity of the session an online grant belongs to.
            touch_session: (grant.kind == GrantKind::Online)
                .then(|| grant.session_id.clone())
                .flatten(),
            access_token: opaque.as_ref().map(|(_, record)| record.clone()),
            now,
        };
        if !state.storage.refresh_tokens().rotate(&rotation).await? {
            tracing::info!(grant.id = %grant.id, "refresh raced another request or a revocation; deciding again");
            continue;
        }
        let response = common::respond(
            state,
            common::UserTokens {
                client,
                user: &user,
                context,
                access_scope: &access_scope,
                audience: Vec::new(),
                nonce: None,
                refresh_token: Some((new_value, expires_at)),
                stored_access_token: opaque.map(|(value, _)| value),
                now,
            },
        )
        .await?;
        tracing::debug!(client.id = %client.id, grant.id = %grant.id, sibling = expected_use_count.is_none(), "refreshed");
        state.audit.record(
            now,
            Event::new(EventKind::RefreshTokenRotated, Actor::Client)
                .user(grant.user_id.clone())
                .client(client.id.clone())
                .grant(grant.id.clone())
                .detail("sibling", expected_use_count.is_none()),
        );
        return Ok(response);
    }
    Err(OAuthError::new(
        tessera_types::ErrorCode::InvalidGrant,
        "refresh lost the race repeatedly",
    ))
}
