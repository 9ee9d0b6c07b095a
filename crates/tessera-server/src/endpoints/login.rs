//! `POST /login`: the login page's form. Checks the CSRF token and the password (argon2id, on the
//! blocking pool), starts an SSO session, then continues the authorization it was shown for.
//!
//! A wrong username and a wrong password give the same message and take the same time, so the
//! page does not reveal who has an account.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::Timestamp;
use tessera_types::form::FormParams;

use crate::endpoints::authorize::{continue_authorization, is_form, Interaction};
use crate::pages::csrf_matches;
use crate::sessions;
use crate::state::AppState;
use crate::users::{self, Authentication};

/// The message for any wrong username/password combination.
pub const WRONG_CREDENTIALS: &str = "Incorrect username or password.";
/// The message for a disabled account (only after the right password).
pub const ACCOUNT_DISABLED: &str = "This account is disabled.";

/// `POST /login`.
#[tracing::instrument(name = "handler.login.post", skip_all)]
pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(mut form) = interaction_form(&state, &headers, &body) else {
        return state.pages.error(
            StatusCode::FORBIDDEN,
            "Please try again",
            "This form has expired or did not come from this site. Go back to the application and sign in again.",
        );
    };
    let Some(raw) = form.take("authorization_request") else {
        return state.pages.error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The sign-in form is incomplete.",
        );
    };
    let started_at = started_at(&mut form, state.now());
    let username = form.take("username").unwrap_or_default();
    let password = form.take("password").unwrap_or_default();
    let interaction = match users::authenticate(state.storage.as_ref(), &username, &password).await {
        Ok(Authentication::Success(user)) => match sessions::start(&state, &user).await {
            Ok((session, cookie)) => {
                tracing::info!(user.id = %user.id, session.id = %session.id, "login succeeded");
                Interaction {
                    started_at,
                    new_session: Some((session, *user, cookie)),
                    ..Interaction::default()
                }
            }
            Err(error) => {
                tracing::error!(%error, "starting a session failed");
                return state.pages.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "Please try again in a moment.",
                );
            }
        },
        Ok(Authentication::Disabled) => {
            tracing::info!("login refused: user disabled");
            Interaction {
                started_at,
                login_error: Some((ACCOUNT_DISABLED, username)),
                ..Interaction::default()
            }
        }
        Ok(Authentication::Failed) => {
            tracing::info!("login failed: wrong username or password");
            Interaction {
                started_at,
                login_error: Some((WRONG_CREDENTIALS, username)),
                ..Interaction::default()
            }
        }
        Err(error) => {
            tracing::error!(%error, "user lookup failed");
            return state.pages.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "Please try again in a moment.",
            );
        }
    };
    continue_authorization(&state, &headers, &raw, interaction).await
}

/// Parses a page form and checks its CSRF token; `None` when either fails.
pub fn interaction_form(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Option<FormParams> {
    if !is_form(headers) || body.len() > state.config.server.max_body_bytes {
        return None;
    }
    let mut form = FormParams::parse(body).ok()?;
    let token = form.take("csrf_token");
    if csrf_matches(headers, token.as_deref()) {
        Some(form)
    } else {
        tracing::info!("form refused: CSRF token missing or wrong");
        None
    }
}

/// The interaction's start, carried by the page (never later than `now`).
pub fn started_at(form: &mut FormParams, now: Timestamp) -> Timestamp {
    form.take("interaction_started_at")
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(now, |t| Timestamp(t.min(now.0)))
}
