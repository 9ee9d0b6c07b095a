//! `/admin/v1/events`: the audit trail, by user, client, type and time range, a page at a time.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_core::Timestamp;
use tessera_storage::{AuditEvent, EventFilter};
use utoipa::{IntoParams, ToSchema};

use crate::admin::{next_cursor, page, AdminError, ErrorBody, PageOf};
use crate::state::AppState;

/// An audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// The event id.
    pub id: String,
    /// When it happened, seconds since the epoch.
    pub at: i64,
    /// The type, e.g. `login.succeeded`, `refresh_token.reuse_detected`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who caused it: `user`, `client`, `admin` or `policy`.
    pub actor: String,
    /// The user concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The client concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The grant concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// The SSO session concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Further facts (e.g. `grant_type`, `reason`).
    pub details: serde_json::Value,
}

impl From<AuditEvent> for EventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            details: serde_json::from_str(&event.details).unwrap_or_default(),
            id: event.id,
            at: event.at.0,
            kind: event.kind,
            actor: event.actor,
            user_id: event.user_id,
            client_id: event.client_id,
            grant_id: event.grant_id,
            session_id: event.session_id,
        }
    }
}

/// Which events to return.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events about this user (id).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Only events about this client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Only events of this type.
    #[serde(default, rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only events at or after this time, seconds since the epoch.
    #[serde(default)]
    pub since: Option<i64>,
    /// Only events before this time, seconds since the epoch.
    #[serde(default)]
    pub until: Option<i64>,
    /// Page size, 1–500. Default 50.
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Audit events, newest first. Events this node recorded before the request are included.
#[utoipa::path(get, path = "/admin/v1/events", tag = "events", params(EventQuery),
    responses(
        (status = 200, body = PageOf<EventView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn query(
    State(state): State<AppState>,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Json<PageOf<EventView>>, AdminError> {
    let Query(query) = query?;
    let page = page(query.limit, query.cursor.as_deref())?;
    let filter = EventFilter {
        user_id: query.user_id,
        client_id: query.client_id,
        kind: query.kind,
        since: query.since.map(Timestamp),
        until: query.until.map(Timestamp),
    };
    state.audit.flush().await;
    let events = state.storage.events().query(&filter, &page).await?;
    let next_cursor = next_cursor(&page, events.len(), events.last().map(|e| (e.at, e.id.as_str())));
    Ok(Json(PageOf {
        items: events.into_iter().map(EventView::from).collect(),
        next_cursor,
    }))
}
