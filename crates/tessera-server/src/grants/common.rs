//! Steps the user grants share: starting a grant with its first refresh token, and issuing the
//! access and ID tokens of a response.

use tessera_core::authorize::OPENID;
use tessera_core::grant::AccessTokenPlan;
use tessera_core::refresh::{self, RefreshPolicy, RefreshToken};
use tessera_core::{Client, Grant, GrantKind, Scope, SsoSession, Timestamp, TokenHash, TokenKind, User};
use tessera_types::token::{GrantType, TokenResponse};

use crate::audit::{Actor, Event, EventKind};
use crate::error::OAuthError;
use crate::state::AppState;
use crate::tokens::id_token::{self, IdTokenParams};
use crate::tokens::{issue_access_token, UserContext};

/// The client's effective refresh policy: server defaults with its overrides.
#[must_use]
pub fn refresh_policy(state: &AppState, client: &Client) -> RefreshPolicy {
    state
        .config
        .refresh_tokens
        .policy()
        .with_overrides(&client.settings.refresh_tokens)
}

/// A new grant for `user` at `client` from `session`, and — if the client's policy issues one —
/// its first refresh token (value and record; nothing is stored yet).
#[must_use]
pub fn new_grant(
    state: &AppState,
    client: &Client,
    user: &User,
    session: &SsoSession,
    scope: &Scope,
    grant_id: String,
    now: Timestamp,
) -> (Grant, Option<(String, RefreshToken)>) {
    let policy = refresh_policy(state, client);
    // Refresh tokens only for clients allowed the refresh_token grant (DESIGN §2, seed 001).
    let refresh_kind = client
        .allows_grant(GrantType::RefreshToken)
        .then(|| refresh::issuance(&policy, client.settings.client_type, scope))
        .flatten();
    let kind = refresh_kind.unwrap_or(GrantKind::Online);
    let expires_at = refresh::grant_hard_end(kind, &policy, session.expires_at, now);
    let grant = Grant {
        id: grant_id,
        user_id: user.id.clone(),
        client_id: client.id.clone(),
        scope: scope.to_string(),
        kind,
        session_id: Some(session.id.clone()),
        created_at: now,
        last_used_at: now,
        expires_at,
        revoked_at: None,
        revocation_reason: None,
    };
    let refresh_token =
        refresh_kind.map(|kind| new_refresh_token(&grant, None, refresh::expiry(kind, &policy, expires_at, now), now));
    (grant, refresh_token)
}

/// A new refresh token of `grant` (value and record).
#[must_use]
pub fn new_refresh_token(
    grant: &Grant,
    parent: Option<TokenHash>,
    expires_at: Timestamp,
    now: Timestamp,
) -> (String, RefreshToken) {
    let value = TokenKind::RefreshToken.generate(crate::clock::token_order(), &mut rand::rngs::OsRng);
    let record = RefreshToken {
        hash: TokenHash::of(&value),
        grant_id: grant.id.clone(),
        parent,
        client_id: grant.client_id.clone(),
        issued_at: now,
        expires_at,
        use_count: 0,
        spent_at: None,
    };
    (value, record)
}

/// Stores a new grant's first refresh token and enforces the per-(user, client) grant limit.
///
/// # Errors
/// Storage failures.
pub async fn store_first_refresh_token(
    state: &AppState,
    client: &Client,
    grant: &Grant,
    token: &RefreshToken,
) -> Result<(), OAuthError> {
    state.storage.refresh_tokens().add(token).await?;
    let limit = refresh_policy(state, client).max_active_grants;
    if limit == 0 {
        return Ok(()); // 0 = no limit
    }
    let revoked = state
        .storage
        .grants()
        .enforce_limit(&grant.user_id, &client.id, limit, grant.created_at)
        .await?;
    if revoked > 0 {
        tracing::info!(user.id = %grant.user_id, client.id = %client.id, revoked, limit, "grant limit reached: least recently used grants revoked");
        state.audit.record(
            grant.created_at,
            Event::new(EventKind::GrantRevoked, Actor::Policy)
                .user(grant.user_id.clone())
                .client(client.id.clone())
                .detail("reason", "grant_limit")
                .detail("count", revoked),
        );
    }
    Ok(())
}

/// What goes into a token response for a user.
pub struct UserTokens<'a> {
    /// The client.
    pub client: &'a Client,
    /// The user.
    pub user: &'a User,
    /// Session facts for the claims.
    pub context: UserContext<'a>,
    /// The access token's scope.
    pub access_scope: &'a Scope,
    /// Audiences of the access token.
    pub audience: Vec<String>,
    /// The `nonce` (code flow only; never on refresh, OIDC Core §12.2).
    pub nonce: Option<&'a str>,
    /// The refresh token and its expiry, when one is issued.
    pub refresh_token: Option<(String, Timestamp)>,
    /// An opaque access token for [`access_plan`] of these tokens, already stored (a refresh
    /// stores it with its rotation); `None`: issue one here.
    pub stored_access_token: Option<String>,
    /// Now.
    pub now: Timestamp,
}

/// The access token a user token response carries.
#[must_use]
pub fn access_plan(
    state: &AppState,
    client: &Client,
    scope: &Scope,
    audience: Vec<String>,
    now: Timestamp,
) -> AccessTokenPlan {
    AccessTokenPlan::new(client, scope.clone(), audience, state.access_token_policy(), now)
}

/// Signs the access token (and an ID token when `openid` is in scope) and builds the response.
///
/// # Errors
/// Signing or storage failures.
pub async fn respond(state: &AppState, tokens: UserTokens<'_>) -> Result<TokenResponse, OAuthError> {
    let UserTokens {
        client,
        user,
        context,
        access_scope,
        audience,
        nonce,
        refresh_token,
        stored_access_token,
        now,
    } = tokens;
    let plan = access_plan(state, client, access_scope, audience, now);
    let access_token = match stored_access_token {
        Some(token) => token,
        None => issue_access_token(state, client, Some(context), &plan).await?,
    };
    let id_token = if access_scope.contains(OPENID) {
        let params = IdTokenParams {
            context,
            scope: access_scope,
            nonce,
            access_token: Some(&access_token),
            now,
        };
        Some(id_token::issue(state, client, user, &params)?)
    } else {
        None
    };
    let (refresh_token, refresh_expires_in) = match refresh_token {
        Some((value, expires_at)) => (Some(value), Some(refresh::expires_in(now, expires_at))),
        None => (None, None),
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        issued_token_type: None,
        expires_in: now.seconds_until(plan.expires_at),
        scope: (!access_scope.is_empty()).then(|| access_scope.to_string()),
        refresh_token,
        refresh_expires_in,
        id_token,
    })
}
