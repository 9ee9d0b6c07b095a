//! The admin API, `/admin/v1`: JSON over HTTP for operators and their tools, described by the
//! OpenAPI document at `/admin/v1/openapi.json` (generated from these handlers by utoipa).
//!
//! **Who may call it.** A bearer access token (JWT or opaque, validated like at userinfo: our
//! signature or our store, not expired, not revoked) that carries the [`ADMIN_SCOPE`] and was
//! issued by the client credentials grant, so it names a client and no user. A user's token never
//! opens the admin API, whatever scopes a misconfigured client could hand out; `tessera client
//! create --admin` registers a client allowed exactly that scope and grant.
//!
//! **What it calls.** The same service functions the CLI calls (`crate::clients`,
//! `crate::users`, `crate::sessions`, the key store): there is one implementation of each
//! operation. Each change is recorded as an audit event with `actor = admin` and the admin
//! client's id in `details.admin_client`.
//!
//! **Errors** are JSON `{"error": code, "message": text}` with stable codes ([`ErrorBody`]); a
//! request the API cannot parse is a 400 with `invalid_request`, never a 5xx.

pub mod clients;
pub mod events;
pub mod grants;
pub mod keys;
pub mod sessions;
pub mod users;

pub(crate) use users::user_error as users_error;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Serialize;
use tessera_core::Timestamp;
use tessera_storage::RepositoryError;
use tessera_types::ErrorCode;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{Actor, Event, EventKind};
use crate::error::ErrorReason;
use crate::state::AppState;
use crate::tokens::validate_access_token;

/// The scope an access token needs to call the admin API.
pub const ADMIN_SCOPE: &str = "tessera:admin";
/// Default page size of listings.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of listings.
pub const MAX_PAGE_SIZE: u32 = 500;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera admin API",
        description = "Clients, users, sessions, grants, signing keys and audit events. \
            Every operation needs a bearer access token with the `tessera:admin` scope from the client credentials grant."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "clients", description = "Registered clients"),
        (name = "users", description = "Local users"),
        (name = "sessions", description = "SSO sessions"),
        (name = "grants", description = "Grants (token families): online and offline access"),
        (name = "keys", description = "Signing keys"),
        (name = "events", description = "The audit trail"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The admin routes (under `/admin/v1`) and their OpenAPI document.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(clients::list, clients::create))
        .routes(routes!(clients::get, clients::replace, clients::delete))
        .routes(routes!(clients::rotate_secret))
        .routes(routes!(grants::list_by_client))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::set_password))
        .routes(routes!(sessions::list_by_user, sessions::end_all_for_user))
        .routes(routes!(sessions::end))
        .routes(routes!(grants::list_by_user, grants::revoke_all_for_user))
        .routes(routes!(grants::get, grants::revoke))
        .routes(routes!(keys::list))
        .routes(routes!(keys::rotate))
        .routes(routes!(events::query))
        .split_for_parts()
}

/// The OpenAPI document of the admin API (paths relative to the server root).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The `/admin/v1` router: the operations behind the admin-token check, and the OpenAPI
/// document (public: it holds no data).
pub fn router(state: &AppState) -> Router<AppState> {
    let (routes, doc) = api();
    let doc = serde_json::to_value(&doc).unwrap_or_default();
    routes
        .layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .route(
            "/admin/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc) }
            }),
        )
}

/// The caller of an admin operation, as its access token says.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin client's id.
    pub client_id: String,
}

impl Admin {
    /// An audit event of `kind` by this admin.
    #[must_use]
    pub fn event(&self, kind: EventKind) -> Event {
        Event::new(kind, Actor::Admin).detail("admin_client", self.client_id.clone())
    }
}

async fn require_admin(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        });
    let Some(token) = token else {
        return AdminError::unauthorized("a bearer access token is required").into_response();
    };
    let info = match validate_access_token(&state, &token).await {
        Ok(Ok(info)) => info,
        Ok(Err(reason)) => return AdminError::unauthorized(reason).into_response(),
        Err(error) => return AdminError::from(error).into_response(),
    };
    // Client credentials tokens name the client as their subject; a user's token never does.
    let is_client_token = info.subject == info.client_id;
    if !is_client_token || !info.scope.contains(ADMIN_SCOPE) {
        return AdminError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token needs the {ADMIN_SCOPE} scope from the client credentials grant"),
        )
        .into_response();
    }
    request.extensions_mut().insert(Admin {
        client_id: info.client_id,
    });
    next.run(request).await
}

/// The body of every admin API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `temporarily_unavailable` or `server_error`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// An admin API error: a status and an [`ErrorBody`].
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AdminError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let is_internal = self.status.is_server_error();
        // The message of an internal error may name database details: the log gets it, the
        // caller a generic text.
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_owned()
        } else {
            self.message.clone()
        };
        let body = ErrorBody {
            error: self.code.to_owned(),
            message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(ErrorReason {
            code: if is_internal {
                ErrorCode::ServerError
            } else {
                ErrorCode::InvalidRequest
            },
            reason: format!("admin {}: {}", self.code, self.message),
            is_internal,
        });
        response
    }
}

impl From<RepositoryError> for AdminError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                error.to_string(),
            ),
            RepositoryError::Conflict(message) => Self::conflict(message),
            RepositoryError::Inconsistent { .. } | RepositoryError::Backend(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", error.to_string())
            }
        }
    }
}

impl From<JsonRejection> for AdminError {
    fn from(rejection: JsonRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<QueryRejection> for AdminError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for AdminError {
    fn from(rejection: PathRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

/// A page of a listing: the items and, when there may be more, the cursor of the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOf<T: ToSchema> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The `limit` query parameter, checked (default [`DEFAULT_PAGE_SIZE`]).
///
/// # Errors
/// A limit out of range.
pub fn page_limit(limit: Option<u32>) -> Result<u32, AdminError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(AdminError::invalid(format!("limit must be 1 to {MAX_PAGE_SIZE}")));
    }
    Ok(limit)
}

/// A cursor as handed out: the position's text, base64url so it is opaque in URLs.
#[must_use]
pub fn encode_cursor(position: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position)
}

/// The position a cursor stands for.
///
/// # Errors
/// A cursor this server did not hand out.
pub fn decode_cursor(cursor: &str) -> Result<String, AdminError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| AdminError::invalid("unknown cursor"))
}

/// Turns `limit` and `cursor` query parameters into a storage page (cursor: `<time>:<id>`).
///
/// # Errors
/// A limit out of range or a cursor this server did not hand out.
pub fn page(limit: Option<u32>, cursor: Option<&str>) -> Result<tessera_storage::Page, AdminError> {
    let limit = page_limit(limit)?;
    let before = match cursor {
        None => None,
        Some(cursor) => {
            let position = decode_cursor(cursor)?;
            let (at, id) = position
                .split_once(':')
                .and_then(|(at, id)| Some((Timestamp(at.parse().ok()?), id.to_owned())))
                .ok_or_else(|| AdminError::invalid("unknown cursor"))?;
            Some((at, id))
        }
    };
    Ok(tessera_storage::Page { before, limit })
}

/// The cursor of the page after a full page ending with (`at`, `id`).
#[must_use]
pub fn next_cursor(page: &tessera_storage::Page, returned: usize, last: Option<(Timestamp, &str)>) -> Option<String> {
    let (at, id) = last?;
    (returned >= page.limit as usize).then(|| encode_cursor(&format!("{}:{id}", at.0)))
}
