//! Token revocation (RFC 7009; DESIGN B11).
//!
//! - A refresh token revokes its whole grant: every refresh token of the grant stops working and
//!   its opaque access tokens are deleted (`GrantRepository::revoke`).
//! - An opaque access token is deleted.
//! - A JWT access token (one of ours, not yet expired) has its `jti` recorded until its `exp`, so
//!   introspection and userinfo refuse it.
//! - A token issued to another client is not revoked, and the caller is told so (RFC 7009 §2.1).
//! - Anything else — unknown, expired, malformed, not a token this endpoint handles — is
//!   answered 200 like a success (RFC 7009 §2.2): revoking it has nothing to do.

use tessera_core::{Client, TokenHash, TokenKind};
use tessera_types::ErrorCode;

use crate::error::OAuthError;
use crate::state::AppState;
use crate::tokens::verified_jwt_claims;

/// What a revocation did, for the log and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Nothing (unknown, expired or already revoked).
    Nothing,
    /// The grant of a refresh token, by id.
    Grant(String),
    /// An opaque access token.
    OpaqueAccessToken,
    /// A JWT access token, by `jti`.
    JwtAccessToken(String),
}

/// Revokes `token` on behalf of the authenticated `client`.
///
/// # Errors
/// `unauthorized_client` when the token was issued to another client; storage failures.
pub async fn revoke(state: &AppState, client: &Client, token: &str) -> Result<Revoked, OAuthError> {
    let now = state.now();
    let storage = &state.storage;
    match TokenKind::recognise(token) {
        Some(TokenKind::RefreshToken) => {
            let Some(context) = storage
                .refresh_tokens()
                .find_with_context(&TokenHash::of(token))
                .await?
            else {
                return Ok(Revoked::Nothing);
            };
            ensure_owner(client, &context.token.client_id)?;
            match context.grant {
                Some(grant) if grant.revoked_at.is_none() => {
                    storage.grants().revoke(&grant.id, now, "revoked_by_client").await?;
                    Ok(Revoked::Grant(grant.id))
                }
                _ => Ok(Revoked::Nothing),
            }
        }
        Some(TokenKind::AccessToken) => {
            let hash = TokenHash::of(token);
            let Some(record) = storage.access_tokens().find_by_hash(&hash).await? else {
                return Ok(Revoked::Nothing);
            };
            ensure_owner(client, &record.client_id)?;
            Ok(if storage.access_tokens().remove(&hash).await? {
                Revoked::OpaqueAccessToken
            } else {
                Revoked::Nothing
            })
        }
        // Codes and session cookies are not revoked here; to this endpoint they are unknown.
        Some(_) => Ok(Revoked::Nothing),
        None => {
            let Ok(claims) = verified_jwt_claims(state, token, now) else {
                return Ok(Revoked::Nothing);
            };
            ensure_owner(client, &claims.client_id)?;
            if now >= claims.expires_at {
                return Ok(Revoked::Nothing);
            }
            storage
                .access_tokens()
                .revoke_jwt(&claims.jti, &claims.client_id, claims.expires_at, now)
                .await?;
            Ok(Revoked::JwtAccessToken(claims.jti))
        }
    }
}

/// RFC 7009 §2.1: the server verifies that the token was issued to the client asking.
fn ensure_owner(client: &Client, owner: &str) -> Result<(), OAuthError> {
    if owner == client.id {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("client {} may not revoke a token issued to {owner}", client.id),
        ))
    }
}
