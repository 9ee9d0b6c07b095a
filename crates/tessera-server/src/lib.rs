//! Tessera's HTTP layer: endpoints, grants, client authentication, configuration, key store.
//!
//! Entry points: [`app`] builds the router (tests use it too), [`serve::Server`] binds and runs it
//! with graceful shutdown. Handlers are thin: extract, call one grant or service function, render.
//! Policy lives in `tessera-core`; SQL lives in the storage crates.

pub mod admin;
pub mod audit;
pub mod clients;
pub mod clock;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod extract;
pub mod grants;
pub mod keys;
pub mod pages;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod tokens;
pub mod users;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::{ErrorReason, OAuthError};
pub use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application router over `state`.
pub fn app(state: AppState) -> Router {
    let request_timeout = Duration::from_secs(state.config.server.request_timeout);
    Router::new()
        .route("/.well-known/openid-configuration", get(endpoints::discovery::get))
        .route(
            "/.well-known/oauth-authorization-server",
            get(endpoints::discovery::get),
        )
        .route("/jwks", get(endpoints::jwks::get))
        .route("/token", post(endpoints::token::post))
        .route("/revoke", post(endpoints::revoke::post))
        .route("/introspect", post(endpoints::introspect::post))
        .route(
            "/authorize",
            get(endpoints::authorize::get).post(endpoints::authorize::post),
        )
        .route("/login", post(endpoints::login::post))
        .route("/account", get(endpoints::account::get))
        .route("/account/sessions/{id}/end", post(endpoints::account::end_session))
        .route("/account/grants/{id}/revoke", post(endpoints::account::revoke_grant))
        .route("/consent", post(endpoints::consent::post))
        .route(
            "/userinfo",
            get(endpoints::userinfo::get).post(endpoints::userinfo::post),
        )
        .route("/logout", get(endpoints::logout::get).post(endpoints::logout::post))
        .route("/healthz", get(endpoints::health::healthz))
        .route("/readyz", get(endpoints::health::readyz))
        .route("/metrics", get(endpoints::metrics::get))
        .merge(admin::router(&state))
        .fallback(not_found)
        .layer(middleware::from_fn(log_errors))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            time_limit(request_timeout, request, next)
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            endpoints::metrics::record,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            OAuthError::new(tessera_types::ErrorCode::ServerError, "handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RequestIds::default()))
        .with_state(state)
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// Logs the reason of every error response once, inside the request span.
async fn log_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(reason) = response.extensions().get::<ErrorReason>() {
        if reason.is_internal {
            tracing::error!(error = %reason.code, reason = %reason.reason, "request failed");
        } else {
            tracing::info!(error = %reason.code, reason = %reason.reason, "request refused");
        }
    }
    response
}

/// Answers 503 `temporarily_unavailable` when a request takes longer than `server.request_timeout`.
async fn time_limit(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            OAuthError::new(tessera_types::ErrorCode::TemporarilyUnavailable, "request timed out").into_response()
        }
    }
}

/// Request ids: a per-process random prefix and a counter (unique, cheap, not secret).
#[derive(Clone)]
struct RequestIds {
    prefix: String,
    counter: std::sync::Arc<AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let prefix = tokens::new_jti().chars().take(8).collect();
        Self {
            prefix,
            counter: std::sync::Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
