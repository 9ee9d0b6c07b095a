//! `/admin/v1/…/grants`: grants (token families) by user and by client, online and offline, and
//! their revocation (every refresh token of a revoked grant is refused; its opaque access tokens
//! are deleted). Seed 003: list a user's refresh tokens and revoke one; revoke everything.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tessera_core::grant_record::GrantKind;
use tessera_core::refresh;
use tessera_core::Grant;
use utoipa::{IntoParams, ToSchema};

use crate::admin::{next_cursor, page, Admin, AdminError, ErrorBody, PageOf};
use crate::audit::EventKind;
use crate::grants::common::refresh_policy;
use crate::state::AppState;
use crate::users;

/// A grant as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    /// The grant id.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// `online` (lives with its SSO session) or `offline` (`offline_access`).
    pub kind: String,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// The SSO session it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// Last use (code exchange or refresh), seconds since the epoch.
    pub last_used_at: i64,
    /// When its current refresh token expires if unused, seconds since the epoch: the client's
    /// idle timeout after the last use, capped by the grant's hard end.
    pub expires_at: i64,
    /// The grant's hard end, if any, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_expires_at: Option<i64>,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Why it was revoked (`logout`, `password_changed`, `refresh_token_reuse`, `admin`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
}

/// Which of a user's grants to list or revoke.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserGrantsQuery {
    /// Only `online` or only `offline` grants; both when absent.
    #[serde(default)]
    #[param(inline)]
    pub kind: Option<KindFilter>,
    /// Listing only: include revoked grants. Default false.
    #[serde(default)]
    pub include_revoked: Option<bool>,
}

/// `online` or `offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindFilter {
    /// Online grants.
    Online,
    /// Offline grants.
    Offline,
}

/// A page of a client's grants.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientGrantsQuery {
    /// Page size, 1–500. Default 50.
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// How many grants a request revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// Grants revoked by this request.
    pub revoked: u64,
}

/// A user's grants, newest first.
#[utoipa::path(get, path = "/admin/v1/users/{user_id}/grants", tag = "grants",
    params(("user_id" = String, Path, description = "The user's id or username"), UserGrantsQuery),
    responses(
        (status = 200, body = Vec<GrantView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn list_by_user(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<UserGrantsQuery>, QueryRejection>,
) -> Result<Json<Vec<GrantView>>, AdminError> {
    let Path(id) = id?;
    let Query(query) = query?;
    let user = users::show(state.storage.as_ref(), &id)
        .await
        .map_err(super::users_error)?;
    let grants = state.storage.grants().list_by_user(&user.id).await?;
    let include_revoked = query.include_revoked.unwrap_or(false);
    let grants: Vec<Grant> = grants
        .into_iter()
        .filter(|g| include_revoked || g.revoked_at.is_none())
        .filter(|g| matches_kind(g, query.kind))
        .collect();
    Ok(Json(views(&state, &grants).await?))
}

/// Revokes a user's grants: all, or only online or only offline ones.
#[utoipa::path(delete, path = "/admin/v1/users/{user_id}/grants", tag = "grants",
    params(("user_id" = String, Path, description = "The user's id or username"), UserGrantsQuery),
    responses(
        (status = 200, body = Revoked),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn revoke_all_for_user(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<UserGrantsQuery>, QueryRejection>,
) -> Result<Json<Revoked>, AdminError> {
    let Path(id) = id?;
    let Query(query) = query?;
    let user = users::show(state.storage.as_ref(), &id)
        .await
        .map_err(super::users_error)?;
    let now = state.now();
    let grants = state.storage.grants();
    let revoked = match query.kind {
        None => grants.revoke_for_user(&user.id, false, now, "admin").await?,
        Some(KindFilter::Online) => grants.revoke_for_user(&user.id, true, now, "admin").await?,
        Some(KindFilter::Offline) => {
            // There is no bulk "offline only" statement: revoke them one by one.
            let mut revoked = 0;
            for grant in grants.list_by_user(&user.id).await? {
                if grant.revoked_at.is_none()
                    && grant.kind == GrantKind::Offline
                    && grants.revoke(&grant.id, now, "admin").await?
                {
                    revoked += 1;
                }
            }
            revoked
        }
    };
    state.audit.record(
        now,
        admin
            .event(EventKind::GrantRevoked)
            .user(user.id)
            .detail("reason", "admin")
            .detail("count", revoked)
            .detail("kind", query.kind.map_or("all", kind_name)),
    );
    Ok(Json(Revoked { revoked }))
}

/// One grant.
#[utoipa::path(get, path = "/admin/v1/grants/{grant_id}", tag = "grants",
    params(("grant_id" = String, Path, description = "The grant")),
    responses(
        (status = 200, body = GrantView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<GrantView>, AdminError> {
    let Path(id) = id?;
    let Some(grant) = state.storage.grants().lookup(&id).await? else {
        return Err(AdminError::not_found(format!("grant {id:?} not found")));
    };
    let mut views = views(&state, std::slice::from_ref(&grant)).await?;
    views
        .pop()
        .map(Json)
        .ok_or_else(|| AdminError::not_found(format!("grant {id:?} not found")))
}

/// Revokes one grant: its refresh tokens stop working at once.
#[utoipa::path(delete, path = "/admin/v1/grants/{grant_id}", tag = "grants",
    params(("grant_id" = String, Path, description = "The grant")),
    responses(
        (status = 204, description = "Revoked (or was already)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AdminError> {
    let Path(id) = id?;
    let Some(grant) = state.storage.grants().lookup(&id).await? else {
        return Err(AdminError::not_found(format!("grant {id:?} not found")));
    };
    let now = state.now();
    if state.storage.grants().revoke(&grant.id, now, "admin").await? {
        state.audit.record(
            now,
            admin
                .event(EventKind::GrantRevoked)
                .user(grant.user_id)
                .client(grant.client_id)
                .grant(grant.id)
                .detail("reason", "admin"),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A client's grants (revoked ones included), newest first, a page at a time.
#[utoipa::path(get, path = "/admin/v1/clients/{client_id}/grants", tag = "grants",
    params(("client_id" = String, Path, description = "The client"), ClientGrantsQuery),
    responses(
        (status = 200, body = PageOf<GrantView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn list_by_client(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ClientGrantsQuery>, QueryRejection>,
) -> Result<Json<PageOf<GrantView>>, AdminError> {
    let Path(id) = id?;
    let Query(query) = query?;
    let page = page(query.limit, query.cursor.as_deref())?;
    if state.storage.clients().lookup(&id).await?.is_none() {
        return Err(AdminError::not_found(format!("client {id:?} not found")));
    }
    let grants = state.storage.grants().list_by_client(&id, &page).await?;
    let next_cursor = next_cursor(
        &page,
        grants.len(),
        grants.last().map(|g| (g.created_at, g.id.as_str())),
    );
    Ok(Json(PageOf {
        items: views(&state, &grants).await?,
        next_cursor,
    }))
}

fn matches_kind(grant: &Grant, kind: Option<KindFilter>) -> bool {
    match kind {
        None => true,
        Some(KindFilter::Online) => grant.kind == GrantKind::Online,
        Some(KindFilter::Offline) => grant.kind == GrantKind::Offline,
    }
}

fn kind_name(kind: KindFilter) -> &'static str {
    match kind {
        KindFilter::Online => "online",
        KindFilter::Offline => "offline",
    }
}

async fn views(state: &AppState, grants: &[Grant]) -> Result<Vec<GrantView>, AdminError> {
    let mut policies = HashMap::new();
    let mut views = Vec::with_capacity(grants.len());
    for grant in grants {
        if !policies.contains_key(&grant.client_id) {
            let policy = match state.clients.lookup(state.storage.as_ref(), &grant.client_id).await? {
                Some(client) => refresh_policy(state, &client),
                None => state.config.refresh_tokens.policy(),
            };
            policies.insert(grant.client_id.clone(), policy);
        }
        let policy = policies
            .get(&grant.client_id)
            .cloned()
            .unwrap_or_else(|| state.config.refresh_tokens.policy());
        views.push(GrantView {
            id: grant.id.clone(),
            user_id: grant.user_id.clone(),
            client_id: grant.client_id.clone(),
            kind: grant.kind.as_str().to_owned(),
            scopes: grant
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            session_id: grant.session_id.clone(),
            created_at: grant.created_at.0,
            last_used_at: grant.last_used_at.0,
            expires_at: refresh::expiry(grant.kind, &policy, grant.expires_at, grant.last_used_at).0,
            max_expires_at: grant.expires_at.map(|t| t.0),
            revoked_at: grant.revoked_at.map(|t| t.0),
            revocation_reason: grant.revocation_reason.clone(),
        });
    }
    Ok(views)
}
