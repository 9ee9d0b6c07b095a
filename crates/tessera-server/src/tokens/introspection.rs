//! Token introspection (RFC 7662; DESIGN B12).
//!
//! Who may ask: an authenticated client (not `none`). It may introspect its own tokens; a client
//! registered with `introspection: true` (a resource server) may also introspect access tokens
//! issued to other clients. A refresh token is only ever described to the client it was issued to.
//! Everything else — unknown, expired, revoked, spent, from a revoked grant or a disabled user,
//! or not the caller's to see — is `{"active": false}`, with no hint why.

use serde::Serialize;
use tessera_core::refresh::{self, RefreshPlan, RefreshRequest, RefreshToken};
use tessera_core::{AuthMethod, Client, Grant, TokenHash, TokenKind, User};
use tessera_storage::RefreshContext;

use crate::error::OAuthError;
use crate::grants::common::refresh_policy;
use crate::state::AppState;
use crate::tokens::validate_access_token;

/// An introspection response (RFC 7662 §2.2). Inactive tokens carry `active` only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// Whether the token is currently usable.
    pub active: bool,
    /// Space-separated scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user's username, for user tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Subject: the user, or the client for client credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audiences of an access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Vec<String>>,
    /// Our issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// An access token's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The SSO session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Who acts for the subject (RFC 8693 §4.1), for a token from a delegation exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
}

impl Introspection {
    /// `{"active": false}`.
    #[must_use]
    pub fn inactive() -> Self {
        Self::default()
    }
}

/// Describes `token` to the authenticated `client`.
///
/// # Errors
/// `invalid_client` for a client without authentication (`none`); storage failures.
pub async fn introspect(state: &AppState, client: &Client, token: &str) -> Result<Introspection, OAuthError> {
    if client.settings.auth_method == AuthMethod::None {
        return Err(OAuthError::invalid_client(
            format!("client {} does not authenticate, and introspection needs it", client.id),
            false,
        ));
    }
    if TokenKind::recognise(token) == Some(TokenKind::RefreshToken) {
        return refresh_token(state, client, token).await;
    }
    let info = match validate_access_token(state, token).await? {
        Ok(info) => info,
        Err(reason) => {
            tracing::debug!(client.id = %client.id, %reason, "introspection: inactive access token");
            return Ok(Introspection::inactive());
        }
    };
    if info.client_id != client.id && !client.settings.introspection {
        tracing::info!(client.id = %client.id, "introspection of another client's token refused: the client is not a resource server");
        return Ok(Introspection::inactive());
    }
    // A user token is active only while its user is (DESIGN §2: a disabled user's tokens stop).
    let username = if info.subject == info.client_id {
        None
    } else {
        match state.storage.users().lookup(&info.subject).await? {
            Some(user) if !user.is_disabled => Some(user.username),
            _ => return Ok(Introspection::inactive()),
        }
    };
    Ok(Introspection {
        active: true,
        scope: (!info.scope.is_empty()).then(|| info.scope.to_string()),
        client_id: Some(info.client_id),
        username,
        token_type: Some("Bearer"),
        exp: Some(info.expires_at.0),
        iat: Some(info.issued_at.0),
        sub: Some(info.subject),
        aud: (!info.audience.is_empty()).then_some(info.audience),
        iss: Some(state.urls.issuer.clone()),
        jti: Some(info.jti),
        sid: info.session_id,
        act: info.act,
    })
}

/// The refresh token `value` with its grant and user, when it is **active**: a refresh by
/// `client` would rotate it now (the same decision as the refresh grant: the client's own token,
/// grant not revoked, session alive for online grants, not expired, not spent) and its user is
/// enabled. Introspection and token exchange both judge refresh tokens by this.
///
/// # Errors
/// Storage failures.
pub async fn active_refresh_token(
    state: &AppState,
    client: &Client,
    value: &str,
) -> Result<Option<(RefreshToken, Grant, User)>, OAuthError> {
    if TokenKind::recognise(value) != Some(TokenKind::RefreshToken) {
        return Ok(None);
    }
    let Some(RefreshContext {
        token,
        grant: Some(grant),
        session,
        user: Some(user),
    }) = state
        .storage
        .refresh_tokens()
        .find_with_context(&TokenHash::of(value))
        .await?
    else {
        return Ok(None);
    };
    let decision = refresh::decide(&RefreshRequest {
        client_id: &client.id,
        token: &token,
        grant: &grant,
        session: session.as_ref(),
        requested_scope: None,
        policy: &refresh_policy(state, client),
        session_idle_timeout: state.config.sessions.idle_timeout,
        now: state.now(),
    });
    if !matches!(decision, Ok(RefreshPlan::Rotate { .. })) || user.is_disabled {
        return Ok(None);
    }
    Ok(Some((token, grant, user)))
}

async fn refresh_token(state: &AppState, client: &Client, token: &str) -> Result<Introspection, OAuthError> {
    let Some((token, grant, user)) = active_refresh_token(state, client, token).await? else {
        return Ok(Introspection::inactive());
    };
    Ok(Introspection {
        active: true,
        scope: (!grant.scope.is_empty()).then_some(grant.scope),
        client_id: Some(grant.client_id),
        username: Some(user.username),
        token_type: Some("refresh_token"),
        exp: Some(token.expires_at.0),
        iat: Some(token.issued_at.0),
        sub: Some(grant.user_id),
        aud: None,
        iss: Some(state.urls.issuer.clone()),
        jti: None,
        sid: grant.session_id,
        act: None,
    })
}
