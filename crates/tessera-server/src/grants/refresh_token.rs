//! The refresh-token grant (RFC 6749 §6; RFC 9700 §4.14; OIDC Core §12; DESIGN B2–B8, B18).
//!
//! The core decides (`tessera_core::refresh::decide`); this module hands storage a planner that
//! takes the decision on the token's context and builds the rotation, and storage runs the read,
//! the planner and the rotation as one operation (`RefreshTokenRepository::refresh`): the rotation
//! is a conditional update of the presented token that must change exactly one row, a conditional
//! touch of the grant that fails if it was revoked, and the insert of the new token — committed
//! before the response. SQLite runs all of it in one writer command, so nothing comes between
//! the read and the write; a backend that reads and writes separately may report that another
//! request won the race, and then the decision is taken again with the token's new state: a lost
//! race is a reuse like any other (inside the grace window a sibling, outside it the grant is
//! revoked), because the server cannot tell a parallel request from a stolen token.

use tessera_core::grant::GrantError;
use tessera_core::refresh::{self, RefreshPlan, RefreshPolicy, RefreshRequest, RefreshToken};
use tessera_core::{
    AccessTokenFormat, Client, Grant, GrantKind, Scope, SsoSession, Timestamp, TokenHash, TokenKind, User,
};
use tessera_storage::{AccessTokenRecord, RefreshContext, Refreshed, Rotation};
use tessera_types::token::{GrantType, RefreshTokenGrant, TokenResponse};
use tessera_types::ErrorCode;
use tokio::sync::oneshot;

use crate::audit::{Actor, Event, EventKind};
use crate::error::OAuthError;
use crate::grants::common::{self, refresh_policy};
use crate::state::AppState;
use crate::tokens::{new_opaque_access_token, UserContext};

/// How often a lost race is re-decided before giving up (each retry sees a newer state).
const ATTEMPTS: usize = 3;

/// Handles `grant_type=refresh_token` for an authenticated client.
///
/// # Errors
/// `unauthorized_client`; `invalid_request` without a token; `invalid_scope` for a wider scope;
/// `invalid_grant` for everything else about the token (the reason goes to the log only).
pub async fn handle(
    state: &AppState,
    client: &Client,
    request: &RefreshTokenGrant,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(GrantError::GrantNotAllowed {
            grant_type: GrantType::RefreshToken.as_str(),
        }
        .into());
    }
    let value = request
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    if TokenKind::recognise(value) != Some(TokenKind::RefreshToken) {
        return Err(GrantError::NotFound.into());
    }
    let hash = TokenHash::of(value);
    let policy = refresh_policy(state, client);
    for _ in 0..ATTEMPTS {
        let now = state.now();
        // Generated and hashed here, so the planner (which may run on the storage's one writer
        // thread) only assembles records.
        let new_value = TokenKind::RefreshToken.generate(crate::clock::token_order(), &mut rand::rngs::OsRng);
        let (planned, outcome) = oneshot::channel();
        let planner = Planner {
            state: state.clone(),
            client_id: client.id.clone(),
            // Only an opaque access token is built (and stored) inside the rotation.
            opaque_client: (client.settings.access_token_format == AccessTokenFormat::Opaque).then(|| client.clone()),
            requested_scope: request.scope.clone(),
            policy,
            hash,
            new_hash: TokenHash::of(&new_value),
            new_value,
            now,
        };
        let refreshed = state
            .storage
            .refresh_tokens()
            .refresh(&hash, Box::new(move |context| planner.plan(context, planned)))
            .await?;
        let Some(Refreshed { context, rotated }) = refreshed else {
            return Err(GrantError::NotFound.into());
        };
        let Ok(planned) = outcome.await else {
            return Err(OAuthError::new(
                ErrorCode::ServerError,
                "the refresh planner did not report its decision",
            ));
        };
        let RefreshContext {
            grant, session, user, ..
        } = context;
        let Planned::Rotate {
            access_scope,
            expires_at,
            sibling,
            new_value,
            opaque,
        } = planned
        else {
            return Err(refused(state, client, grant.as_ref(), planned, now).await);
        };
        if !rotated {
            let grant_id = grant.as_ref().map_or("", |g| g.id.as_str());
            tracing::info!(client.id = %client.id, grant.id = %grant_id, "refresh raced another request or a revocation; deciding again");
            continue;
        }
        let (Some(grant), Some(user)) = (grant, user) else {
            return Err(OAuthError::new(
                ErrorCode::ServerError,
                "a refresh was planned without its grant or user",
            ));
        };
        let context = user_context(&user, &grant, session.as_ref());
        let response = common::respond(
            state,
            common::UserTokens {
                client,
                user: &user,
                context,
                access_scope: &access_scope,
                audience: Vec::new(),
                nonce: None,
                refresh_token: Some((new_value, expires_at)),
                stored_access_token: opaque,
                now,
            },
        )
        .await?;
        tracing::debug!(client.id = %client.id, grant.id = %grant.id, sibling, "refreshed");
        state.audit.record(
            now,
            Event::new(EventKind::RefreshTokenRotated, Actor::Client)
                .user(grant.user_id.clone())
                .client(client.id.clone())
                .grant(grant.id.clone())
                .detail("sibling", sibling),
        );
        return Ok(response);
    }
    Err(OAuthError::new(
        ErrorCode::InvalidGrant,
        "refresh lost the race repeatedly",
    ))
}

/// What [`Planner::plan`] decided, reported back to the handler.
enum Planned {
    /// The core refused the refresh (or the grant is gone).
    Refused(GrantError),
    /// The user is disabled or deleted: the grant ends (DESIGN §2).
    UserUnavailable,
    /// A rotation was handed to storage (`rotated` says whether it committed).
    Rotate {
        access_scope: Scope,
        expires_at: Timestamp,
        /// A sibling inside the grace window: the presented token stays as it is.
        sibling: bool,
        /// The new refresh token.
        new_value: String,
        /// The opaque access token stored with the rotation, if the client's tokens are opaque.
        opaque: Option<String>,
    },
}

/// Everything the decision needs besides the stored records, owned, so storage can run it on
/// its own thread.
struct Planner {
    state: AppState,
    client_id: String,
    opaque_client: Option<Client>,
    requested_scope: Option<String>,
    policy: RefreshPolicy,
    hash: TokenHash,
    new_value: String,
    new_hash: TokenHash,
    now: Timestamp,
}

impl Planner {
    /// Decides on `context` and builds the rotation; the decision goes to `report` either way.
    fn plan(self, context: &RefreshContext, report: oneshot::Sender<Planned>) -> Option<Rotation> {
        let (planned, rotation) = match self.decide(context) {
            Ok((planned, rotation)) => (planned, Some(rotation)),
            Err(refused) => (refused, None),
        };
        // The handler is waiting for it, unless its request was cancelled.
        let _ = report.send(planned);
        rotation
    }

    fn decide(self, context: &RefreshContext) -> Result<(Planned, Rotation), Planned> {
        let RefreshContext {
            token,
            grant,
            session,
            user,
        } = context;
        let grant = grant.as_ref().ok_or(Planned::Refused(GrantError::NotFound))?;
        let plan = refresh::decide(&RefreshRequest {
            client_id: &self.client_id,
            token,
            grant,
            session: session.as_ref(),
            requested_scope: self.requested_scope.as_deref(),
            policy: &self.policy,
            session_idle_timeout: self.state.config.sessions.idle_timeout,
            now: self.now,
        })
        .map_err(Planned::Refused)?;
        // User claims are re-read; a disabled or deleted user ends the grant (DESIGN §2).
        let user = match user {
            Some(user) if !user.is_disabled => user,
            _ => return Err(Planned::UserUnavailable),
        };
        let (access_scope, expires_at, expected_use_count) = match plan {
            RefreshPlan::Rotate {
                access_scope,
                expires_at,
                expected_use_count,
            } => (access_scope, expires_at, Some(expected_use_count)),
            RefreshPlan::Sibling {
                access_scope,
                expires_at,
            } => (access_scope, expires_at, None),
        };
        let new_token = RefreshToken {
            hash: self.new_hash,
            grant_id: grant.id.clone(),
            parent: Some(self.hash),
            client_id: grant.client_id.clone(),
            issued_at: self.now,
            expires_at,
            use_count: 0,
            spent_at: None,
        };
        // B5: an opaque access token is stored in the rotation's transaction, so the refresh
        // token is never spent without the token the response carries being stored too.
        let opaque: Option<(String, AccessTokenRecord)> = self.opaque_client.as_ref().map(|client| {
            let access_plan = common::access_plan(&self.state, client, &access_scope, Vec::new(), self.now);
            let context = user_context(user, grant, session.as_ref());
            new_opaque_access_token(&self.state, client, Some(context), &access_plan)
        });
        let (opaque_value, access_token) = opaque.unzip();
        let rotation = Rotation {
            presented: self.hash,
            expected_use_count,
            allowed_uses: self.policy.allowed_uses(),
            new_token,
            // B2: a refresh is activity of the session an online grant belongs to.
            touch_session: (grant.kind == GrantKind::Online)
                .then(|| grant.session_id.clone())
                .flatten(),
            access_token,
            now: self.now,
        };
        let planned = Planned::Rotate {
            access_scope,
            expires_at,
            sibling: expected_use_count.is_none(),
            new_value: self.new_value,
            opaque: opaque_value,
        };
        Ok((planned, rotation))
    }
}

/// Who the tokens of a refresh are about: the grant's user and the session it was signed in with
/// (an offline grant whose session is gone keeps the grant's creation as its `auth_time`).
fn user_context<'a>(user: &'a User, grant: &'a Grant, session: Option<&'a SsoSession>) -> UserContext<'a> {
    UserContext {
        user_id: &user.id,
        session_id: grant.session_id.as_deref(),
        auth_time: session.map_or(grant.created_at, |s| s.auth_time),
        amr: session.map_or(&[][..], |s| &s.amr[..]),
        acr: session.and_then(|s| s.acr.as_deref()),
        grant_id: Some(&grant.id),
    }
}

/// The error for a refused refresh, after what the refusal requires is committed: reuse outside
/// the grace window revokes the whole family (B3), an unavailable user ends the grant (DESIGN §2).
async fn refused(
    state: &AppState,
    client: &Client,
    grant: Option<&Grant>,
    planned: Planned,
    now: Timestamp,
) -> OAuthError {
    match (planned, grant) {
        (Planned::Refused(GrantError::RefreshTokenReused { grant_id }), grant) => {
            let revoked = match state
                .storage
                .grants()
                .revoke(&grant_id, now, "refresh_token_reuse")
                .await
            {
                Ok(revoked) => revoked,
                Err(error) => return error.into(),
            };
            let user_id = grant.map(|g| g.user_id.clone()).unwrap_or_default();
            state.audit.record(
                now,
                Event::new(EventKind::RefreshTokenReuseDetected, Actor::Policy)
                    .user(user_id.clone())
                    .client(client.id.clone())
                    .grant(grant_id.clone())
                    .detail("grant_revoked", revoked),
            );
            tracing::warn!(grant.id = %grant_id, client.id = %client.id, user.id = %user_id, event = "refresh_token.reuse_detected", "refresh token reused outside the grace window: grant revoked");
            GrantError::RefreshTokenReused { grant_id }.into()
        }
        (Planned::UserUnavailable, Some(grant)) => {
            match state.storage.grants().revoke(&grant.id, now, "user_unavailable").await {
                Ok(_) => GrantError::UserUnavailable(grant.user_id.clone()).into(),
                Err(error) => error.into(),
            }
        }
        (Planned::Refused(error), _) => error.into(),
        // The planner reports these only with a grant, and a rotation is not a refusal.
        (Planned::UserUnavailable | Planned::Rotate { .. }, _) => GrantError::NotFound.into(),
    }
}
