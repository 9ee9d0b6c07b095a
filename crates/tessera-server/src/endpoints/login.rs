//! `POST /login`: the login page's form. Checks the CSRF token and the password (argon2id, on the
//! blocking pool), starts an SSO session, then continues the authorization it was shown for — or,
//! when the page was shown by `/account` (hidden `return_to=account` instead of an authorization
//! request), sends the browser to `/account`.
//!
//! A wrong username and a wrong password give the same message and take the same time, so the
//! page does not reveal who has an account.
//!
//! `return_to` is not a URL: its only accepted value is `account`, and the redirect target is the
//! fixed relative path `/account`, so the form cannot be used as an open redirector (RFC 9700 §4.11).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::{SsoSession, Timestamp, User};
use tessera_types::form::FormParams;

use crate::audit::{Actor, Event, EventKind};
use crate::endpoints::account::{self, RETURN_TO_ACCOUNT};
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
    // What the form was shown for: an authorization request (as before), or else the account page.
    // `return_to` names a page of ours; it is never a URL, so no input chooses where we redirect.
    let target = match form.take("authorization_request") {
        Some(raw) => Target::Authorization(raw),
        None if form.take("return_to").as_deref() == Some(RETURN_TO_ACCOUNT) => Target::Account,
        None => {
            return state.pages.error(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "The sign-in form is incomplete.",
            )
        }
    };
    let started_at = started_at(&mut form, state.now());
    let username = form.take("username").unwrap_or_default();
    let password = form.take("password").unwrap_or_default();
    let outcome = match sign_in(&state, &username, &password).await {
        Ok(outcome) => outcome,
        Err(response) => return *response,
    };
    match target {
        Target::Authorization(raw) => {
            let interaction = match outcome {
                Outcome::SignedIn(signed_in) => Interaction {
                    started_at,
                    new_session: Some(*signed_in),
                    ..Interaction::default()
                },
                Outcome::Refused(message) => Interaction {
                    started_at,
                    login_error: Some((message, username)),
                    ..Interaction::default()
                },
            };
            continue_authorization(&state, &headers, &raw, interaction).await
        }
        Target::Account => match outcome {
            Outcome::SignedIn(signed_in) => account::redirect_to_account(vec![signed_in.2]),
            Outcome::Refused(message) => account::login_page(&state, &headers, started_at, Some(message), &username),
        },
    }
}

/// What the login form was shown for.
enum Target {
    /// The raw authorization request to continue.
    Authorization(String),
    /// The user's account page (`return_to=account`).
    Account,
}

/// The result of checking the credentials.
enum Outcome {
    /// A new session, its user and its `Set-Cookie` value.
    SignedIn(Box<(SsoSession, User, String)>),
    /// The message to show on the login page.
    Refused(&'static str),
}

/// Checks the credentials and starts a session; storage failures are the 503 page.
async fn sign_in(state: &AppState, username: &str, password: &str) -> Result<Outcome, Box<Response>> {
    match users::authenticate(state.storage.as_ref(), username, password).await {
        Ok(Authentication::Success(user)) => match sessions::start(state, &user).await {
            Ok((session, cookie)) => {
                tracing::info!(user.id = %user.id, session.id = %session.id, "login succeeded");
                state.audit.record(
                    state.now(),
                    Event::new(EventKind::LoginSucceeded, Actor::User)
                        .user(user.id.clone())
                        .session(session.id.clone())
                        .detail("amr", "pwd"),
                );
                Ok(Outcome::SignedIn(Box::new((session, *user, cookie))))
            }
            Err(error) => {
                tracing::error!(%error, "starting a session failed");
                Err(Box::new(unavailable(state)))
            }
        },
        Ok(Authentication::Disabled) => {
            tracing::info!("login refused: user disabled");
            login_failed(state, username, "user_disabled").await;
            Ok(Outcome::Refused(ACCOUNT_DISABLED))
        }
        Ok(Authentication::Failed) => {
            tracing::info!("login failed: wrong username or password");
            login_failed(state, username, "wrong_credentials").await;
            Ok(Outcome::Refused(WRONG_CREDENTIALS))
        }
        Err(error) => {
            tracing::error!(%error, "user lookup failed");
            Err(Box::new(unavailable(state)))
        }
    }
}

/// Records a failed sign-in. The event names the account when the username exists, never the
/// username as typed: people sometimes type their password into that field.
async fn login_failed(state: &AppState, username: &str, reason: &str) {
    let mut event = Event::new(EventKind::LoginFailed, Actor::User).detail("reason", reason);
    if let Ok(Some(user)) = state.storage.users().find_by_username(username).await {
        event = event.user(user.id);
    }
    state.audit.record(state.now(), event);
}

/// The page for a storage outage.
pub fn unavailable(state: &AppState) -> Response {
    state.pages.error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "Please try again in a moment.",
    )
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
