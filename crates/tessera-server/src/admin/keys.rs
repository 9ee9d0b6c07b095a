//! `/admin/v1/keys`: the signing keys (public parts and lifecycle only) and their rotation.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tessera_core::keys::{KeyState, SigningKeyRecord};
use tessera_types::JwsAlgorithm;
use utoipa::ToSchema;

use crate::admin::{Admin, AdminError, ErrorBody};
use crate::audit::EventKind;
use crate::keys::KeyError;
use crate::state::AppState;

/// A signing key as the admin API shows it (never the private key).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The JWK `kid`.
    pub kid: String,
    /// The algorithm it signs with.
    pub algorithm: JwsAlgorithm,
    /// `pending` (published, not signing yet), `active`, `retiring` (verifies, no longer signs)
    /// or `retired`.
    pub state: String,
    /// Creation (publication) time, seconds since the epoch.
    pub created_at: i64,
    /// When it starts signing, seconds since the epoch.
    pub activates_at: i64,
    /// When it leaves the JWKS, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<i64>,
    /// The public JWK, as published.
    pub public_jwk: serde_json::Value,
}

impl KeyView {
    fn new(record: &SigningKeyRecord, now: tessera_core::Timestamp) -> Self {
        Self {
            kid: record.kid.clone(),
            algorithm: record.algorithm,
            state: match record.state(now) {
                KeyState::Pending => "pending",
                KeyState::Active => "active",
                KeyState::Retiring => "retiring",
                KeyState::Retired => "retired",
            }
            .to_owned(),
            created_at: record.created_at.0,
            activates_at: record.activates_at.0,
            retires_at: record.retires_at.map(|t| t.0),
            public_jwk: serde_json::from_str(&record.public_jwk).unwrap_or_default(),
        }
    }
}

/// `POST /admin/v1/keys/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// The algorithms to rotate; all (ES256, RS256, EdDSA) when absent or empty.
    #[serde(default)]
    pub algorithms: Vec<JwsAlgorithm>,
}

/// A key added by a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKeyView {
    /// The new key's id.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: JwsAlgorithm,
    /// When it starts signing, seconds since the epoch (after `keys.publication_delay`).
    pub activates_at: i64,
    /// When the keys it replaces leave the JWKS, seconds since the epoch.
    pub previous_retire_at: i64,
}

/// Every stored signing key, as the database has it (so a rotation by another node shows).
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys",
    responses(
        (status = 200, body = Vec<KeyView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<KeyView>>, AdminError> {
    let now = state.now();
    let records = state.storage.signing_keys().list().await?;
    Ok(Json(records.iter().map(|r| KeyView::new(r, now)).collect()))
}

/// Adds a new key per algorithm: published at once, signing after `keys.publication_delay`; the
/// keys it replaces retire once every token they signed has expired.
#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "keys", request_body = Rotate,
    responses(
        (status = 200, body = Vec<RotatedKeyView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    Extension(admin): Extension<Admin>,
    body: Result<Json<Rotate>, JsonRejection>,
) -> Result<Json<Vec<RotatedKeyView>>, AdminError> {
    let Json(body) = body?;
    let algorithms = if body.algorithms.is_empty() {
        JwsAlgorithm::ALL.to_vec()
    } else {
        body.algorithms
    };
    let now = state.now();
    let config = &state.config;
    let retire_after = config
        .tokens
        .access_token_max_lifetime
        .max(config.tokens.id_token_lifetime);
    let rotated = state
        .keys
        .rotate(
            state.storage.as_ref(),
            &algorithms,
            now,
            config.keys.publication_delay,
            retire_after,
        )
        .await
        .map_err(|error| match error {
            KeyError::Storage(error) => AdminError::from(error),
            other => AdminError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                other.to_string(),
            ),
        })?;
    for key in &rotated {
        state.audit.record(
            now,
            admin
                .event(EventKind::KeyRotated)
                .detail("kid", key.kid.clone())
                .detail("algorithm", key.algorithm.as_str()),
        );
    }
    Ok(Json(
        rotated
            .into_iter()
            .map(|key| RotatedKeyView {
                kid: key.kid,
                algorithm: key.algorithm,
                activates_at: key.activates_at.0,
                previous_retire_at: key.previous_retire_at.0,
            })
            .collect(),
    ))
}
