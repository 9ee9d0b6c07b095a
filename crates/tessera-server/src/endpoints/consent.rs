//! `POST /consent`: the consent page's form. Checks the CSRF token and the session, records the
//! user's decision (remembered per user, client and scopes), and continues the authorization;
//! a denial is answered to the client with `access_denied` (RFC 6749 §4.1.2.1).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::endpoints::authorize::{continue_authorization, Interaction};
use crate::endpoints::login::{interaction_form, started_at};
use crate::state::AppState;

/// `POST /consent`.
#[tracing::instrument(name = "handler.consent.post", skip_all)]
pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(mut form) = interaction_form(&state, &headers, &body) else {
        return state.pages.error(
            StatusCode::FORBIDDEN,
            "Please try again",
            "This form has expired or did not come from this site. Go back to the application and try again.",
        );
    };
    let Some(raw) = form.take("authorization_request") else {
        return state.pages.error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The consent form is incomplete.",
        );
    };
    let consent = match form.take("decision").as_deref() {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return state
                .pages
                .error(StatusCode::BAD_REQUEST, "Invalid request", "Choose Allow or Deny.")
        }
    };
    let started_at = started_at(&mut form, state.now());
    // Without a live session, continue_authorization shows the login page again.
    continue_authorization(
        &state,
        &headers,
        &raw,
        Interaction {
            started_at,
            consent: Some(consent),
            ..Interaction::default()
        },
    )
    .await
}
