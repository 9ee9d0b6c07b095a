//! `/admin/v1/…/sessions`: a user's SSO sessions; ending one (or all) revokes their online grants
//! and leaves offline grants alone (DESIGN B9).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use tessera_core::SsoSession;
use utoipa::ToSchema;

use crate::admin::{Admin, AdminError, ErrorBody};
use crate::audit::EventKind;
use crate::sessions;
use crate::state::AppState;
use crate::users;

/// An SSO session as the admin API shows it (never its cookie).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session id (the `sid` claim).
    pub id: String,
    /// The user.
    pub user_id: String,
    /// When the user authenticated, seconds since the epoch.
    pub auth_time: i64,
    /// Authentication methods (RFC 8176).
    pub amr: Vec<String>,
    /// Last activity, seconds since the epoch.
    pub last_active_at: i64,
    /// Hard end, seconds since the epoch.
    pub expires_at: i64,
    /// When it was ended, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// Whether it is usable now (not ended, not idle, before its hard end).
    pub active: bool,
}

impl SessionView {
    fn new(session: &SsoSession, state: &AppState) -> Self {
        Self {
            id: session.id.clone(),
            user_id: session.user_id.clone(),
            auth_time: session.auth_time.0,
            amr: session.amr.clone(),
            last_active_at: session.last_active_at.0,
            expires_at: session.expires_at.0,
            ended_at: session.ended_at.map(|t| t.0),
            active: session.is_active(state.now(), state.config.sessions.idle_timeout),
        }
    }
}

/// How many sessions a request ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    /// Sessions ended by this request.
    pub ended: u64,
}

/// A user's sessions, newest first (ended and expired ones included; see `active`).
#[utoipa::path(get, path = "/admin/v1/users/{user_id}/sessions", tag = "sessions",
    params(("user_id" = String, Path, description = "The user's id or username")),
    responses(
        (status = 200, body = Vec<SessionView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn list_by_user(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<SessionView>>, AdminError> {
    let Path(id) = id?;
    let user = users::show(state.storage.as_ref(), &id)
        .await
        .map_err(super::users_error)?;
    let sessions = state.storage.sessions().list_by_user(&user.id).await?;
    Ok(Json(sessions.iter().map(|s| SessionView::new(s, &state)).collect()))
}

/// Ends every session of a user that is not ended yet.
#[utoipa::path(delete, path = "/admin/v1/users/{user_id}/sessions", tag = "sessions",
    params(("user_id" = String, Path, description = "The user's id or username")),
    responses(
        (status = 200, body = Ended),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn end_all_for_user(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Ended>, AdminError> {
    let Path(id) = id?;
    let user = users::show(state.storage.as_ref(), &id)
        .await
        .map_err(super::users_error)?;
    let mut ended = 0;
    for session in state.storage.sessions().list_by_user(&user.id).await? {
        if session.ended_at.is_none() {
            sessions::end(&state, &session.id, "admin").await?;
            state.audit.record(
                state.now(),
                admin
                    .event(EventKind::SessionEnded)
                    .user(user.id.clone())
                    .session(session.id),
            );
            ended += 1;
        }
    }
    Ok(Json(Ended { ended }))
}

/// Ends one session.
#[utoipa::path(delete, path = "/admin/v1/sessions/{session_id}", tag = "sessions",
    params(("session_id" = String, Path, description = "The session")),
    responses(
        (status = 204, description = "Ended (or was already)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn end(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AdminError> {
    let Path(id) = id?;
    let Some(session) = state.storage.sessions().lookup(&id).await? else {
        return Err(AdminError::not_found(format!("session {id:?} not found")));
    };
    if session.ended_at.is_none() {
        sessions::end(&state, &session.id, "admin").await?;
        state.audit.record(
            state.now(),
            admin
                .event(EventKind::SessionEnded)
                .user(session.user_id)
                .session(session.id),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}
