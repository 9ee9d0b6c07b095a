//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `/logout`, GET or POST.
//!
//! Ends the SSO session and revokes its online grants; offline grants stay (DESIGN B9). With a
//! valid `id_token_hint` the logout happens at once; without one, the user confirms on a page
//! (CSRF-protected), so a third-party page cannot sign the user out. The browser is sent to
//! `post_logout_redirect_uri` only if the client registered it exactly; otherwise a page says the
//! user is signed out.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tessera_types::form::FormParams;

use crate::audit::{Actor, Event, EventKind};
use crate::endpoints::authorize::is_form;
use crate::pages::{csrf_matches, csrf_token, with_cookies};
use crate::sessions;
use crate::state::AppState;

/// `GET /logout`.
#[tracing::instrument(name = "handler.oidc.logout.get", skip_all)]
pub async fn get(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    logout(&state, &headers, query.as_deref().unwrap_or("").as_bytes(), false).await
}

/// `POST /logout`: from an RP (form-encoded parameters) or from the confirmation page.
#[tracing::instrument(name = "handler.oidc.logout.post", skip_all)]
pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return state.pages.error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Invalid request",
            "The logout request must be a form.",
        );
    }
    logout(&state, &headers, &body, true).await
}

async fn logout(state: &AppState, headers: &HeaderMap, raw: &[u8], is_post: bool) -> Response {
    let Ok(mut form) = FormParams::parse(raw) else {
        return state.pages.error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The logout request is malformed.",
        );
    };
    let now = state.now();
    // The hint's signature is checked with our keys; its expiry is not (OIDC RP-Initiated Logout §2).
    let hint = match form.take("id_token_hint") {
        Some(token) => match state.keys.verify(&token, now) {
            Ok((_, claims)) if claims.get("iss").and_then(|v| v.as_str()) == Some(state.urls.issuer.as_str()) => {
                Some(claims)
            }
            _ => {
                return state.pages.error(
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "The logout request carries an ID token this server did not issue.",
                )
            }
        },
        None => None,
    };
    let hint_client = hint.as_ref().and_then(|c| c.get("aud")).and_then(|aud| {
        aud.as_str()
            .map(str::to_owned)
            .or_else(|| aud.get(0).and_then(|a| a.as_str()).map(str::to_owned))
    });
    let client_id = match (form.take("client_id"), hint_client) {
        (Some(given), Some(from_hint)) if given != from_hint => {
            return state.pages.error(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "client_id does not match the ID token.",
            );
        }
        (given, from_hint) => given.or(from_hint),
    };
    let redirect = form.take("post_logout_redirect_uri");
    let client_state = form.take("state");
    if let Some(uri) = &redirect {
        let client = match &client_id {
            Some(id) => state.storage.clients().lookup(id).await.ok().flatten(),
            None => None,
        };
        if !client.is_some_and(|c| c.settings.post_logout_redirect_uris.contains(uri)) {
            return state.pages.error(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "The address to return to after signing out is not registered for this application.",
            );
        }
    }
    let current = match sessions::current(state, headers).await {
        Ok(current) => current,
        Err(error) => return crate::error::OAuthError::from(error).into_response(),
    };
    let hint_sid = hint
        .as_ref()
        .and_then(|c| c.get("sid"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let is_confirmed = hint.is_some() || (is_post && csrf_matches(headers, form.take("csrf_token").as_deref()));
    if !is_confirmed {
        // No proof the RP or the user asked: ask the user (a forged link cannot sign them out).
        let (csrf, csrf_cookie) = csrf_token(headers, state.is_https());
        let page = state.pages.render(
            StatusCode::OK,
            "logout.html",
            minijinja::context! {
                signed_out => false, csrf_token => csrf, client_id, post_logout_redirect_uri => redirect.clone(), state => client_state,
                username => current.as_ref().map(|(_, user)| user.username.clone()),
            },
            redirect.as_deref(),
        );
        return with_cookies(page, csrf_cookie);
    }
    let user_id = current.as_ref().map(|(_, user)| user.id.clone());
    let session_id = current.map(|(session, _)| session.id).or(hint_sid);
    if let Some(session_id) = session_id {
        if let Err(error) = sessions::end(state, &session_id, "logout").await {
            return crate::error::OAuthError::from(error).into_response();
        }
        let mut event = Event::new(EventKind::SessionEnded, Actor::User)
            .session(session_id)
            .detail("reason", "logout");
        if let Some(user_id) = user_id {
            event = event.user(user_id);
        }
        if let Some(client_id) = &client_id {
            event = event.client(client_id.clone());
        }
        state.audit.record(state.now(), event);
    }
    let response = match redirect {
        Some(mut uri) => {
            if let Some(client_state) = client_state {
                uri.push(if uri.contains('?') { '&' } else { '?' });
                uri.push_str(
                    &form_urlencoded::Serializer::new(String::new())
                        .append_pair("state", &client_state)
                        .finish(),
                );
            }
            Redirect::to(&uri).into_response()
        }
        None => state.pages.render(
            StatusCode::OK,
            "logout.html",
            minijinja::context! { signed_out => true },
            None,
        ),
    };
    with_cookies(response, [sessions::clear_cookie(state)])
}
