//! `/admin/v1/users`: create, read, change and delete local users; reset passwords and disable
//! accounts, which revoke the user's grants as `refresh_tokens.revoke_on_password_change` says
//! (DESIGN B10). `{user_id}` is the user's id or username.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tessera_core::{User, UserClaims};
use utoipa::{IntoParams, ToSchema};

use crate::admin::{decode_cursor, encode_cursor, page_limit, Admin, AdminError, ErrorBody, PageOf};
use crate::audit::EventKind;
use crate::state::AppState;
use crate::users::{self, UserError};

/// A user as the admin API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The id (the `sub` claim).
    pub id: String,
    /// The login name.
    pub username: String,
    /// OIDC standard claims.
    pub claims: UserClaims,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// Whether the user has a password.
    pub has_password: bool,
    /// When the password was last set, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_changed_at: Option<i64>,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// Last change, seconds since the epoch.
    pub updated_at: i64,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            username: user.username.clone(),
            claims: user.claims.clone(),
            disabled: user.is_disabled,
            has_password: user.password_hash.is_some(),
            password_changed_at: user.password_changed_at.map(|t| t.0),
            created_at: user.created_at.0,
            updated_at: user.updated_at.0,
        }
    }
}

/// `POST /admin/v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The login name (1–255 characters, no spaces).
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\s\x00-\x1f\x7f]+$")]
    pub username: String,
    /// The initial password (at least 8 characters); none: the user cannot sign in yet.
    #[serde(default)]
    #[schema(min_length = 8)]
    pub password: Option<String>,
    /// OIDC standard claims.
    #[serde(default)]
    pub claims: UserClaims,
}

/// `PATCH /admin/v1/users/{user_id}`: the fields given are changed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New claims (replacing all of them).
    #[serde(default)]
    pub claims: Option<UserClaims>,
    /// Disable (revoking the user's grants per policy) or enable the account.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// `POST /admin/v1/users/{user_id}/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The new password (at least 8 characters).
    #[schema(min_length = 8)]
    pub password: String,
}

/// A page of users.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Page size, 1–500. Default 50.
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Users in username order, a page at a time (a national user base does not fit in one answer).
#[utoipa::path(get, path = "/admin/v1/users", tag = "users", params(UsersQuery),
    responses(
        (status = 200, body = PageOf<UserView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Json<PageOf<UserView>>, AdminError> {
    let Query(query) = query?;
    let limit = page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let users = state.storage.users().list_page(after.as_deref(), limit).await?;
    let next_cursor = (users.len() >= limit as usize)
        .then(|| users.last())
        .flatten()
        .map(|last| encode_cursor(&last.username));
    Ok(Json(PageOf {
        items: users.iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// Creates a user.
#[utoipa::path(post, path = "/admin/v1/users", tag = "users", request_body = NewUser,
    responses(
        (status = 201, body = UserView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<impl IntoResponse, AdminError> {
    let Json(body) = body?;
    let now = state.now();
    let user = users::create(
        state.storage.as_ref(),
        &mut rand::rngs::OsRng,
        now,
        &body.username,
        body.password.as_deref(),
        body.claims,
    )
    .await
    .map_err(user_error)?;
    state
        .audit
        .record(now, admin.event(EventKind::UserCreated).user(user.id.clone()));
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// One user.
#[utoipa::path(get, path = "/admin/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's id or username")),
    responses(
        (status = 200, body = UserView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<UserView>, AdminError> {
    let Path(id) = id?;
    let user = users::show(state.storage.as_ref(), &id).await.map_err(user_error)?;
    Ok(Json(UserView::from(&user)))
}

/// Changes a user's claims, or disables (revoking their grants per policy) or enables the account.
#[utoipa::path(patch, path = "/admin/v1/users/{user_id}", tag = "users", request_body = UserChange,
    params(("user_id" = String, Path, description = "The user's id or username")),
    responses(
        (status = 200, body = UserView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Json<UserView>, AdminError> {
    let Path(id) = id?;
    let Json(change) = body?;
    let now = state.now();
    let storage = state.storage.as_ref();
    let mut user = users::show(storage, &id).await.map_err(user_error)?;
    if let Some(claims) = change.claims {
        user = users::set_claims(storage, now, &user.id, claims)
            .await
            .map_err(user_error)?;
    }
    if let Some(disabled) = change.disabled {
        let revocation = state.config.refresh_tokens.revoke_on_password_change;
        user = users::set_disabled(storage, now, &user.id, disabled, revocation)
            .await
            .map_err(user_error)?;
    }
    state.audit.record(
        now,
        admin
            .event(EventKind::UserUpdated)
            .user(user.id.clone())
            .detail("disabled", user.is_disabled),
    );
    Ok(Json(UserView::from(&user)))
}

/// Deletes a user and revokes all their grants.
#[utoipa::path(delete, path = "/admin/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's id or username")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AdminError> {
    let Path(id) = id?;
    let now = state.now();
    let user = users::show(state.storage.as_ref(), &id).await.map_err(user_error)?;
    users::delete(state.storage.as_ref(), now, &user.id)
        .await
        .map_err(user_error)?;
    state
        .audit
        .record(now, admin.event(EventKind::UserDeleted).user(user.id));
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new password (a reset) and revokes the user's grants as
/// `refresh_tokens.revoke_on_password_change` says.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/password", tag = "users", request_body = NewPassword,
    params(("user_id" = String, Path, description = "The user's id or username")),
    responses(
        (status = 204, description = "Set"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn set_password(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> Result<StatusCode, AdminError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let now = state.now();
    let revocation = state.config.refresh_tokens.revoke_on_password_change;
    let user = users::set_password(state.storage.as_ref(), now, &id, &body.password, revocation)
        .await
        .map_err(user_error)?;
    state
        .audit
        .record(now, admin.event(EventKind::PasswordChanged).user(user.id));
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn user_error(error: UserError) -> AdminError {
    match error {
        UserError::Invalid(message) => AdminError::invalid(message),
        UserError::NotFound(_) => AdminError::not_found(error.to_string()),
        UserError::Exists(_) => AdminError::conflict(error.to_string()),
        UserError::Hashing(message) => AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message),
        UserError::Storage(error) => error.into(),
    }
}
