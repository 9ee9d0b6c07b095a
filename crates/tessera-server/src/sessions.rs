//! SSO sessions behind the `tessera_session` cookie: created at login, found by the cookie's
//! hash, alive while active within `sessions.idle_timeout` and before `sessions.max_lifetime`.

use axum::http::HeaderMap;
use tessera_core::{SsoSession, TokenHash, TokenKind, User};
use tessera_storage::RepositoryError;

use crate::pages::{cookie, set_cookie};
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tessera_session";

/// The active session of the request's cookie, with its user — if both are still good
/// (session active at `now`, user present and not disabled).
///
/// # Errors
/// Storage failures.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<(SsoSession, User)>, RepositoryError> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if TokenKind::recognise(&value) != Some(TokenKind::SessionCookie) {
        return Ok(None);
    }
    let Some(session) = state
        .storage
        .sessions()
        .find_by_token_hash(&TokenHash::of(&value))
        .await?
    else {
        return Ok(None);
    };
    if !session.is_active(state.now(), state.config.sessions.idle_timeout) {
        return Ok(None);
    }
    match state.storage.users().lookup(&session.user_id).await? {
        Some(user) if !user.is_disabled => Ok(Some((session, user))),
        _ => Ok(None),
    }
}

/// Starts a session for `user` after a password login; returns it and the `Set-Cookie` value.
///
/// # Errors
/// Storage failures.
pub async fn start(state: &AppState, user: &User) -> Result<(SsoSession, String), RepositoryError> {
    let now = state.now();
    let token = TokenKind::SessionCookie.generate(crate::clock::token_order(), &mut rand::rngs::OsRng);
    let session = SsoSession {
        id: crate::pages::random_token(16),
        token_hash: TokenHash::of(&token),
        user_id: user.id.clone(),
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: None,
        last_active_at: now,
        expires_at: now.plus(state.config.sessions.max_lifetime),
        ended_at: None,
    };
    state.storage.sessions().add(&session).await?;
    let max_age = state.config.sessions.max_lifetime;
    Ok((
        session,
        set_cookie(SESSION_COOKIE, &token, "Lax", Some(max_age), state.is_https()),
    ))
}

/// Ends a session and revokes its online grants (offline grants stay, DESIGN B9).
///
/// # Errors
/// Storage failures.
pub async fn end(state: &AppState, session_id: &str, reason: &str) -> Result<(), RepositoryError> {
    let now = state.now();
    state.storage.sessions().end(session_id, now).await?;
    let revoked = state
        .storage
        .grants()
        .revoke_online_for_session(session_id, now, reason)
        .await?;
    tracing::info!(
        session.id = session_id,
        revoked_grants = revoked,
        reason,
        "ended SSO session"
    );
    Ok(())
}

/// The `Set-Cookie` value that deletes the session cookie.
#[must_use]
pub fn clear_cookie(state: &AppState) -> String {
    set_cookie(SESSION_COOKIE, "", "Lax", Some(0), state.is_https())
}
