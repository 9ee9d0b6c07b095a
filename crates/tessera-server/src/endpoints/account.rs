//! The user's own account page (DESIGN §4, B6, B9): `GET /account` lists the signed-in user's
//! active SSO sessions and the apps that hold offline access; `POST /account/sessions/{id}/end`
//! signs a session out (ending it and revoking its online grants; offline grants stay) and
//! `POST /account/grants/{id}/revoke` removes an app's access (revokes the grant, so every refresh
//! token of it is refused at `/token`).
//!
//! Without a session, `GET /account` shows the login page, whose form carries `return_to=account`
//! instead of an authorization request; `POST /login` then answers with a 303 to `/account`.
//! The forms are CSRF-protected (double-submit token), and a session or grant id that is not the
//! signed-in user's is a 404, exactly like an unknown one, so ids of other users cannot be probed
//! or acted on.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use tessera_core::{Grant, GrantKind, SsoSession, Timestamp, User};
use tessera_storage::RepositoryError;

use crate::audit::{Actor, Event, EventKind};
use crate::endpoints::login::{interaction_form, unavailable};
use crate::pages::{csrf_token, random_token, security_headers, with_cookies};
use crate::sessions;
use crate::state::AppState;

/// The only accepted value of the login form's `return_to` field.
pub const RETURN_TO_ACCOUNT: &str = "account";

/// Where the account page lives (a fixed path of ours: the only place `return_to` leads to).
const ACCOUNT_PATH: &str = "/account";

/// The revocation reason recorded for grants and sessions ended from this page.
const REASON: &str = "account";

/// `GET /account`.
#[tracing::instrument(name = "handler.account.get", skip_all)]
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (session, user) = match sessions::current(&state, &headers).await {
        Ok(Some(current)) => current,
        Ok(None) => return login_page(&state, &headers, state.now(), None, ""),
        Err(error) => {
            tracing::error!(%error, "session lookup failed");
            return unavailable(&state);
        }
    };
    match render(&state, &headers, &session, &user).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "storage failed while listing the account");
            unavailable(&state)
        }
    }
}

/// `POST /account/sessions/{id}/end`: signs one of the user's sessions out.
#[tracing::instrument(name = "handler.account.session.end", skip_all)]
pub async fn end_session(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (current, user) = match signed_in_form(&state, &headers, &body).await {
        Ok(signed_in) => signed_in,
        Err(response) => return *response,
    };
    let result = async {
        let Some(session) = state.storage.sessions().lookup(&session_id).await? else {
            return Ok(None);
        };
        // Only the user's own sessions: anything else looks exactly like an unknown id.
        if session.user_id != user.id {
            return Ok(None);
        }
        sessions::end(&state, &session.id, REASON).await?;
        Ok::<_, RepositoryError>(Some(session.id == current.id))
    }
    .await;
    match result {
        Ok(Some(is_current)) => {
            tracing::info!(user.id = %user.id, session.id = %session_id, is_current, "account: session signed out");
            state.audit.record(
                state.now(),
                Event::new(EventKind::SessionEnded, Actor::User)
                    .user(user.id.clone())
                    .session(session_id.clone())
                    .detail("reason", "account"),
            );
            // Signing out this browser's own session also deletes its cookie.
            let cookies = if is_current {
                vec![sessions::clear_cookie(&state)]
            } else {
                Vec::new()
            };
            redirect_to_account(cookies)
        }
        Ok(None) => not_found(&state),
        Err(error) => {
            tracing::error!(%error, "ending a session failed");
            unavailable(&state)
        }
    }
}

/// `POST /account/grants/{id}/revoke`: removes an app's access (revokes one of the user's grants).
#[tracing::instrument(name = "handler.account.grant.revoke", skip_all)]
pub async fn revoke_grant(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, user) = match signed_in_form(&state, &headers, &body).await {
        Ok(signed_in) => signed_in,
        Err(response) => return *response,
    };
    let result = async {
        let Some(grant) = state.storage.grants().lookup(&grant_id).await? else {
            return Ok(None);
        };
        // Only the user's own grants: anything else looks exactly like an unknown id.
        if grant.user_id != user.id {
            return Ok(None);
        }
        // Revoking the grant kills every refresh token of it and its opaque access tokens.
        state.storage.grants().revoke(&grant.id, state.now(), REASON).await?;
        Ok::<_, RepositoryError>(Some(grant))
    }
    .await;
    match result {
        Ok(Some(grant)) => {
            tracing::info!(user.id = %user.id, grant.id = %grant.id, client.id = %grant.client_id, "account: access removed");
            state.audit.record(
                state.now(),
                Event::new(EventKind::GrantRevoked, Actor::User)
                    .user(user.id.clone())
                    .client(grant.client_id.clone())
                    .grant(grant.id.clone())
                    .detail("reason", "account"),
            );
            redirect_to_account(Vec::new())
        }
        Ok(None) => not_found(&state),
        Err(error) => {
            tracing::error!(%error, "revoking a grant failed");
            unavailable(&state)
        }
    }
}

/// The login page shown by `/account` (and again by `POST /login` after a failed attempt): the
/// form carries `return_to=account` instead of an authorization request.
pub fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    started_at: Timestamp,
    error: Option<&'static str>,
    username: &str,
) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let (csrf, csrf_cookie) = csrf_token(headers, state.is_https());
    let page = state.pages.render(
        status,
        "login.html",
        minijinja::context! {
            return_to => RETURN_TO_ACCOUNT, csrf_token => csrf, interaction_started_at => started_at.0, username, error,
        },
        None,
    );
    with_cookies(page, csrf_cookie)
}

/// A 303 to `/account` (a fixed relative path) with the page security headers and `cookies`.
pub fn redirect_to_account(cookies: Vec<String>) -> Response {
    let mut response = Redirect::to(ACCOUNT_PATH).into_response();
    security_headers(response.headers_mut(), &random_token(8), None);
    with_cookies(response, cookies)
}

/// A session as the page shows it.
#[derive(Serialize)]
struct SessionView {
    id: String,
    is_current: bool,
    signed_in_at: String,
    last_active_at: String,
    /// The apps signed in through this session (its unrevoked online grants).
    apps: Vec<String>,
}

/// An app holding offline access, with its grants.
#[derive(Serialize)]
struct AppView {
    client_id: String,
    name: String,
    grants: Vec<GrantView>,
}

#[derive(Serialize)]
struct GrantView {
    id: String,
    scope: String,
    granted_at: String,
    last_used_at: String,
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    current: &SsoSession,
    user: &User,
) -> Result<Response, RepositoryError> {
    let now = state.now();
    let idle_timeout = state.config.sessions.idle_timeout;
    let mut user_sessions: Vec<SsoSession> = state
        .storage
        .sessions()
        .list_by_user(&user.id)
        .await?
        .into_iter()
        .filter(|session| session.is_active(now, idle_timeout))
        .collect();
    if !user_sessions.iter().any(|session| session.id == current.id) {
        user_sessions.insert(0, current.clone());
    }
    let live_grants: Vec<Grant> = state
        .storage
        .grants()
        .list_by_user(&user.id)
        .await?
        .into_iter()
        .filter(|grant| grant.revoked_at.is_none() && grant.expires_at.is_none_or(|end| now < end))
        .collect();

    let mut names: HashMap<String, String> = HashMap::new();
    for grant in &live_grants {
        if !names.contains_key(&grant.client_id) {
            let name = state
                .clients
                .lookup(state.storage.as_ref(), &grant.client_id)
                .await?
                .and_then(|client| client.settings.name.clone())
                .unwrap_or_else(|| grant.client_id.clone());
            names.insert(grant.client_id.clone(), name);
        }
    }
    let name_of = |client_id: &str| names.get(client_id).cloned().unwrap_or_else(|| client_id.to_owned());

    let sessions: Vec<SessionView> = user_sessions
        .iter()
        .map(|session| {
            let mut apps: Vec<String> = live_grants
                .iter()
                .filter(|grant| grant.kind == GrantKind::Online && grant.session_id.as_deref() == Some(&session.id))
                .map(|grant| name_of(&grant.client_id))
                .collect();
            apps.sort();
            apps.dedup();
            SessionView {
                id: session.id.clone(),
                is_current: session.id == current.id,
                signed_in_at: format_time(session.auth_time),
                last_active_at: format_time(session.last_active_at),
                apps,
            }
        })
        .collect();

    // Offline grants, grouped by client in the order of their newest grant.
    let mut apps: Vec<AppView> = Vec::new();
    for grant in live_grants.iter().filter(|grant| grant.kind == GrantKind::Offline) {
        let view = GrantView {
            id: grant.id.clone(),
            scope: grant.scope.clone(),
            granted_at: format_time(grant.created_at),
            last_used_at: format_time(grant.last_used_at),
        };
        match apps.iter_mut().find(|app| app.client_id == grant.client_id) {
            Some(app) => app.grants.push(view),
            None => apps.push(AppView {
                client_id: grant.client_id.clone(),
                name: name_of(&grant.client_id),
                grants: vec![view],
            }),
        }
    }

    let (csrf, csrf_cookie) = csrf_token(headers, state.is_https());
    let page = state.pages.render(
        StatusCode::OK,
        "account.html",
        minijinja::context! { username => &user.username, csrf_token => csrf, sessions, apps },
        None,
    );
    Ok(with_cookies(page, csrf_cookie))
}

/// Checks a form posted from the account page: its CSRF token (else 403), then the session (none:
/// back to `/account`, which asks the user to sign in).
async fn signed_in_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(SsoSession, User), Box<Response>> {
    if interaction_form(state, headers, body).is_none() {
        return Err(Box::new(state.pages.error(
            StatusCode::FORBIDDEN,
            "Please try again",
            "This form has expired or did not come from this site. Open your account page and try again.",
        )));
    }
    match sessions::current(state, headers).await {
        Ok(Some(current)) => Ok(current),
        Ok(None) => Err(Box::new(redirect_to_account(Vec::new()))),
        Err(error) => {
            tracing::error!(%error, "session lookup failed");
            Err(Box::new(unavailable(state)))
        }
    }
}

fn not_found(state: &AppState) -> Response {
    state.pages.error(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such session or app on your account.",
    )
}

/// `YYYY-MM-DD HH:MM UTC` for a Unix time.
fn format_time(at: Timestamp) -> String {
    let days = at.0.div_euclid(86_400);
    let seconds = at.0.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        seconds / 3600,
        seconds % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(unix: i64, expected: &str) {
        assert_eq!(format_time(Timestamp(unix)), expected);
    }

    #[test]
    fn times_are_shown_in_utc() {
        check(0, "1970-01-01 00:00 UTC");
        check(1_767_225_600, "2026-01-01 00:00 UTC");
        check(951_782_400 + 3_599, "2000-02-29 00:59 UTC");
        check(1_709_251_199, "2024-02-29 23:59 UTC");
        check(-1, "1969-12-31 23:59 UTC");
    }
}
