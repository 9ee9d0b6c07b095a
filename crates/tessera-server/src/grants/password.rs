//! The resource-owner password grant (RFC 6749 §4.3): off unless a client lists `password` in its
//! grant types (RFC 9700 §2.4 says it should not be used; HelseID still documents it). Creates an
//! SSO session record without a cookie so that the grant follows the same session rules, and
//! issues refresh tokens by the same rules as the code flow.

use tessera_core::authorize::OPENID;
use tessera_core::grant::GrantError;
use tessera_core::Scope;
use tessera_types::token::{GrantType, PasswordGrant, TokenResponse};

use crate::audit::{Actor, Event, EventKind};
use crate::error::OAuthError;
use crate::grants::common;
use crate::sessions;
use crate::state::AppState;
use crate::tokens::UserContext;
use crate::users::{self, Authentication};

/// Handles `grant_type=password`.
///
/// # Errors
/// `unauthorized_client`, `invalid_request`, `invalid_scope`, `invalid_grant` (wrong credentials or
/// a disabled user), storage failures.
pub async fn handle(
    state: &AppState,
    client: &tessera_core::Client,
    request: &PasswordGrant,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::Password) {
        return Err(GrantError::GrantNotAllowed {
            grant_type: GrantType::Password.as_str(),
        }
        .into());
    }
    let (Some(username), Some(password)) = (request.username.as_deref(), request.password.as_deref()) else {
        return Err(OAuthError::invalid_request("username and password are required"));
    };
    let scope =
        Scope::parse(request.scope.as_deref().unwrap_or("")).map_err(|e| GrantError::MalformedScope(e.to_string()))?;
    let allowed = Scope::from_tokens(
        client
            .settings
            .scopes
            .iter()
            .map(String::as_str)
            .chain([OPENID])
            .map(str::to_owned),
    );
    let missing = scope.missing_from(&allowed);
    if !missing.is_empty() {
        return Err(GrantError::ScopeNotAllowed { missing }.into());
    }
    let user = match users::authenticate(state.storage.as_ref(), username, password).await? {
        Authentication::Success(user) => *user,
        Authentication::Disabled | Authentication::Failed => {
            return Err(OAuthError::new(
                tessera_types::ErrorCode::InvalidGrant,
                "wrong username or password, or user disabled",
            ))
        }
    };
    let now = state.now();
    let (session, _cookie) = sessions::start(state, &user).await?;
    let (grant, refresh_token) = common::new_grant(
        state,
        client,
        &user,
        &session,
        &scope,
        crate::pages::random_token(16),
        now,
    );
    state.storage.grants().add(&grant).await?;
    if let Some((_, record)) = &refresh_token {
        common::store_first_refresh_token(state, client, &grant, record).await?;
    }
    let context = UserContext {
        user_id: &user.id,
        session_id: Some(&session.id),
        auth_time: session.auth_time,
        amr: &session.amr,
        acr: None,
        grant_id: Some(&grant.id),
    };
    let response = common::respond(
        state,
        common::UserTokens {
            client,
            user: &user,
            context,
            access_scope: &scope,
            audience: Vec::new(),
            nonce: None,
            refresh_token: refresh_token.map(|(value, record)| (value, record.expires_at)),
            stored_access_token: None,
            now,
        },
    )
    .await?;
    state.audit.record(
        now,
        Event::new(EventKind::TokenIssued, Actor::Client)
            .user(user.id.clone())
            .client(client.id.clone())
            .grant(grant.id.clone())
            .session(session.id.clone())
            .detail("grant_type", "password"),
    );
    Ok(response)
}
