//! Issuing access tokens in the client's format: a signed JWT (RFC 9068) or an opaque reference.

use rand::RngCore;
use serde::Serialize;
use tessera_core::grant::client_credentials::Plan;
use tessera_core::{AccessTokenFormat, Client, TokenHash, TokenKind};
use tessera_storage::AccessTokenRecord;

use crate::error::OAuthError;
use crate::state::AppState;

/// The claims of a JWT access token (RFC 9068 §2.2).
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

/// Issues the access token `plan` describes for `client` (acting as `subject`, or itself).
/// Opaque tokens are stored durably before this returns.
///
/// # Errors
/// No signing key for the algorithm (a server error), or storage failures.
pub async fn issue_access_token(
    state: &AppState,
    client: &Client,
    subject: Option<&str>,
    plan: &Plan,
) -> Result<String, OAuthError> {
    let jti = new_jti();
    let scope = plan.scope.to_string();
    let audience = if plan.audience.is_empty() {
        vec![state.urls.issuer.clone()]
    } else {
        plan.audience.clone()
    };
    match plan.format {
        AccessTokenFormat::Jwt => {
            let algorithm = client
                .settings
                .access_token_algorithm
                .unwrap_or(state.config.keys.access_token_algorithm);
            let key = state.keys.signer(algorithm, plan.issued_at).ok_or_else(|| {
                OAuthError::new(
                    tessera_types::ErrorCode::ServerError,
                    format!("no active {algorithm} signing key"),
                )
            })?;
            let claims = AccessTokenClaims {
                iss: &state.urls.issuer,
                exp: plan.expires_at.0,
                aud: match audience.as_slice() {
                    [one] => Audience::One(one),
                    many => Audience::Many(many),
                },
                sub: subject.unwrap_or(&client.id),
                client_id: &client.id,
                iat: plan.issued_at.0,
                jti: &jti,
                scope: (!scope.is_empty()).then_some(scope.as_str()),
            };
            key.sign_jwt("at+jwt", &claims)
                .map_err(|e| OAuthError::new(tessera_types::ErrorCode::ServerError, format!("signing failed: {e}")))
        }
        AccessTokenFormat::Opaque => {
            let token = TokenKind::AccessToken.generate(&mut rand::rngs::OsRng);
            let record = AccessTokenRecord {
                hash: TokenHash::of(&token),
                jti,
                client_id: client.id.clone(),
                subject: subject.map(str::to_owned),
                scope,
                audience,
                issued_at: plan.issued_at,
                expires_at: plan.expires_at,
            };
            state.storage.access_tokens().add(&record).await?;
            Ok(token)
        }
    }
}

/// A fresh random token id (128 bits, base64url).
#[must_use]
pub fn new_jti() -> String {
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random);
    tessera_jose::base64url_encode(&random)
}
