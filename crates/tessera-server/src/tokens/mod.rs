//! Issuing tokens: access tokens in the client's format — a signed JWT (RFC 9068) or an opaque
//! reference — and ID tokens (OIDC Core §2, §3.1.3.6); checking our own access tokens; revoking
//! (RFC 7009, `revocation`) and describing (RFC 7662, `introspection`) tokens.

pub mod external;
pub mod id_token;
pub mod introspection;
pub mod revocation;

use rand::RngCore;
use serde::Serialize;
use tessera_core::grant::AccessTokenPlan;
use tessera_core::{AccessTokenFormat, Client, Timestamp, TokenHash, TokenKind};
use tessera_storage::AccessTokenRecord;
use tessera_types::ErrorCode;

use crate::error::OAuthError;
use crate::state::AppState;

/// Who an access token is for, when it is a user (not the client itself).
#[derive(Debug, Clone, Copy)]
pub struct UserContext<'a> {
    /// The user's `sub`.
    pub user_id: &'a str,
    /// The SSO session (`sid`).
    pub session_id: Option<&'a str>,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// How (`amr`).
    pub amr: &'a [String],
    /// Authentication context class (`acr`).
    pub acr: Option<&'a str>,
    /// The grant the token was issued from.
    pub grant_id: Option<&'a str>,
}

/// The claims of a JWT access token (RFC 9068 §2.2, §2.2.1).
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Audience: one string, or an array when there are several (RFC 7519 §4.1.3).
    pub aud: Audience<'a>,
    /// Subject: the user, or the client itself for client credentials (RFC 9068 §2.2).
    pub sub: &'a str,
    /// The client the token was issued to.
    pub client_id: &'a str,
    /// Issue time.
    pub iat: i64,
    /// Unique id.
    pub jti: &'a str,
    /// Space-delimited scope, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    /// The SSO session, for user tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    /// RFC 9068 §2.2.1: when the user authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 9068 §2.2.1: authentication context class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<&'a str>,
    /// RFC 9068 §2.2.1: authentication methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<&'a [String]>,
    /// RFC 8693 §4.1: who acts for the subject (token exchange with delegation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<&'a serde_json::Value>,
}

/// `aud` as RFC 7519 allows it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Audience<'a> {
    /// A single audience.
    One(&'a str),
    /// Several.
    Many(&'a [String]),
}

impl<'a> Audience<'a> {
    /// One string for a single audience, else an array.
    #[must_use]
    pub fn of(audience: &'a [String]) -> Self {
        match audience {
            [one] => Self::One(one),
            many => Self::Many(many),
        }
    }
}

/// Issues the access token `plan` describes for `client`, on behalf of `user` or of the client
/// itself. Opaque tokens are stored durably before this returns.
///
/// # Errors
/// No signing key for the algorithm (a server error), or storage failures.
pub async fn issue_access_token(
    state: &AppState,
    client: &Client,
    user: Option<UserContext<'_>>,
    plan: &AccessTokenPlan,
) -> Result<String, OAuthError> {
    match plan.format {
        AccessTokenFormat::Jwt => {
            let jti = new_jti();
            let scope = plan.scope.to_string();
            let audience = audience(state, plan);
            let algorithm = client
                .settings
                .access_token_algorithm
                .unwrap_or(state.config.keys.access_token_algorithm);
            let key = signer(state, algorithm, plan.issued_at)?;
            let claims = AccessTokenClaims {
                iss: &state.urls.issuer,
                exp: plan.expires_at.0,
                aud: Audience::of(&audience),
                sub: user.map_or(client.id.as_str(), |u| u.user_id),
                client_id: &client.id,
                iat: plan.issued_at.0,
                jti: &jti,
                scope: (!scope.is_empty()).then_some(scope.as_str()),
                sid: user.and_then(|u| u.session_id),
                auth_time: user.map(|u| u.auth_time.0),
                acr: user.and_then(|u| u.acr),
                amr: user.map(|u| u.amr).filter(|amr| !amr.is_empty()),
                act: plan.act.as_ref(),
            };
            key.sign_jwt("at+jwt", &claims)
                .map_err(|e| OAuthError::new(ErrorCode::ServerError, format!("signing failed: {e}")))
        }
        AccessTokenFormat::Opaque => {
            let (token, record) = new_opaque_access_token(state, client, user, plan);
            state.storage.access_tokens().add(&record).await?;
            Ok(token)
        }
    }
}

/// The `aud` of an access token: the plan's, or our issuer when the plan names none.
fn audience(state: &AppState, plan: &AccessTokenPlan) -> Vec<String> {
    if plan.audience.is_empty() {
        vec![state.urls.issuer.clone()]
    } else {
        plan.audience.clone()
    }
}

/// A new opaque access token for `plan` and the record to store for it, not stored yet: a
/// refresh stores it in the same transaction as its rotation ([`tessera_storage::Rotation`]).
#[must_use]
pub fn new_opaque_access_token(
    state: &AppState,
    client: &Client,
    user: Option<UserContext<'_>>,
    plan: &AccessTokenPlan,
) -> (String, AccessTokenRecord) {
    let token = TokenKind::AccessToken.generate(crate::clock::token_order(), &mut rand::rngs::OsRng);
    let record = AccessTokenRecord {
        hash: TokenHash::of(&token),
        jti: new_jti(),
        client_id: client.id.clone(),
        subject: user.map(|u| u.user_id.to_owned()),
        grant_id: user.and_then(|u| u.grant_id).map(str::to_owned),
        scope: plan.scope.to_string(),
        audience: audience(state, plan),
        issued_at: plan.issued_at,
        expires_at: plan.expires_at,
        act: plan.act.as_ref().map(serde_json::Value::to_string),
    };
    (token, record)
}

/// What a valid access token says, whatever its format.
#[derive(Debug, Clone)]
pub struct AccessTokenInfo {
    /// `sub`: the user, or the client for client credentials.
    pub subject: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The scope.
    pub scope: tessera_core::Scope,
    /// Audiences.
    pub audience: Vec<String>,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// The token's id (`jti`).
    pub jti: String,
    /// The SSO session (`sid`), when the token says.
    pub session_id: Option<String>,
    /// Who acts for the subject (`act`, RFC 8693 §4.1), for a token from a delegation exchange.
    pub act: Option<serde_json::Value>,
    /// When the user authenticated (`auth_time`), when a JWT says.
    pub auth_time: Option<Timestamp>,
}

/// Checks an access token presented to one of our own endpoints (userinfo, introspection): a JWT
/// signed by one of our published keys with `typ: at+jwt`, our issuer, an `exp` in the future and
/// a `jti` not revoked (RFC 7009); or an opaque token we stored that has not expired (a revoked
/// one is deleted). The reason for a refusal is returned for the log.
///
/// # Errors
/// The reason the token is not acceptable, or a storage failure.
pub async fn validate_access_token(
    state: &AppState,
    token: &str,
) -> Result<Result<AccessTokenInfo, String>, tessera_storage::RepositoryError> {
    let now = state.now();
    if TokenKind::recognise(token) == Some(TokenKind::AccessToken) {
        let Some(record) = state
            .storage
            .access_tokens()
            .find_by_hash(&TokenHash::of(token))
            .await?
        else {
            return Ok(Err("unknown or revoked opaque access token".into()));
        };
        if now >= record.expires_at {
            return Ok(Err("access token expired".into()));
        }
        return Ok(Ok(AccessTokenInfo {
            subject: record.subject.unwrap_or_else(|| record.client_id.clone()),
            client_id: record.client_id,
            scope: tessera_core::Scope::from_tokens(record.scope.split(' ').filter(|s| !s.is_empty())),
            audience: record.audience,
            issued_at: record.issued_at,
            expires_at: record.expires_at,
            jti: record.jti,
            session_id: None,
            act: record.act.and_then(|act| serde_json::from_str(&act).ok()),
            auth_time: None,
        }));
    }
    let claims = match verified_jwt_claims(state, token, now) {
        Ok(claims) => claims,
        Err(reason) => return Ok(Err(reason)),
    };
    if now.0 >= claims.expires_at.0 {
        return Ok(Err("access token expired".into()));
    }
    if state.storage.access_tokens().is_jwt_revoked(&claims.jti).await? {
        return Ok(Err("access token revoked".into()));
    }
    Ok(Ok(claims))
}

/// The claims of a JWT access token signed by one of our keys for our issuer, expired or not
/// (revocation needs the `exp` of an expired token too). The reason when it is not ours.
///
/// # Errors
/// Why the token is not one of our access tokens.
pub fn verified_jwt_claims(state: &AppState, token: &str, now: Timestamp) -> Result<AccessTokenInfo, String> {
    let (header, claims) = state.keys.verify(token, now)?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err("not an access token (typ is not at+jwt)".into());
    }
    let string = |name: &str| claims.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
    let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    if string("iss").as_deref() != Some(state.urls.issuer.as_str()) {
        return Err("access token from another issuer".into());
    }
    let (Some(subject), Some(client_id), Some(jti), Some(exp)) =
        (string("sub"), string("client_id"), string("jti"), number("exp"))
    else {
        return Err("access token lacks sub, client_id, jti or exp".into());
    };
    let audience = match claims.get("aud") {
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        Some(serde_json::Value::Array(many)) => many
            .iter()
            .filter_map(serde_json::Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(AccessTokenInfo {
        subject,
        client_id,
        scope: tessera_core::Scope::from_tokens(
            string("scope")
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        ),
        audience,
        issued_at: Timestamp(number("iat").unwrap_or(0)),
        expires_at: Timestamp(exp),
        jti,
        session_id: string("sid"),
        act: claims.get("act").cloned(),
        auth_time: number("auth_time").map(Timestamp),
    })
}

/// The key that signs with `algorithm` now.
///
/// # Errors
/// A server error when no key of that algorithm is active (the key set is loaded at start and
/// always has one per algorithm, so this means a broken database).
pub fn signer(
    state: &AppState,
    algorithm: tessera_types::JwsAlgorithm,
    now: Timestamp,
) -> Result<std::sync::Arc<tessera_jose::SigningKey>, OAuthError> {
    state
        .keys
        .signer(algorithm, now)
        .ok_or_else(|| OAuthError::new(ErrorCode::ServerError, format!("no active {algorithm} signing key")))
}

/// A fresh random token id (128 bits, base64url).
#[must_use]
pub fn new_jti() -> String {
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random);
    tessera_jose::base64url_encode(&random)
}
