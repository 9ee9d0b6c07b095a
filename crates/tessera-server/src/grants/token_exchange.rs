//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693, DESIGN B13): a client
//! trades a subject token — our access, refresh or ID token, or a JWT from a trusted external
//! issuer — and, for delegation, an actor token, for a new token for another audience.
//!
//! Every presented token is fully validated here (signature, expiry, issuer, revocation, whose it
//! is) and described to `tessera_core::grant::token_exchange::decide`, which applies the client's
//! policy; this module then issues what the plan says. A bad subject or actor token is
//! `invalid_grant` without saying why on the wire (the log has the reason).

use serde_json::json;
use tessera_core::grant::token_exchange::{self, ExchangePlan, ExchangeRequest, ExchangeToken};
use tessera_core::grant::GrantError;
use tessera_core::refresh;
use tessera_core::{Client, Grant, GrantKind, Scope, Timestamp, User};
use tessera_types::token::{TokenExchangeGrant, TokenResponse, TokenType};

use crate::audit::{Actor, Event, EventKind};
use crate::config::SubjectMapping;
use crate::error::OAuthError;
use crate::grants::common::{self, refresh_policy};
use crate::state::AppState;
use crate::tokens::id_token::{self, IdTokenParams};
use crate::tokens::introspection::active_refresh_token;
use crate::tokens::{external, issue_access_token, validate_access_token, UserContext};

/// `token_type` of a result that is not an access token (RFC 8693 §2.2.1).
const NOT_APPLICABLE: &str = "N_A";

/// A validated token and, when it stands for a local user, that user.
struct Presented {
    token: ExchangeToken,
    user: Option<User>,
    session_id: Option<String>,
    /// When the subject's user authenticated, when the token says (else the results say now).
    auth_time: Option<Timestamp>,
}

/// Exchanges the subject (and actor) token for the requested token.
///
/// # Errors
/// `invalid_request` (missing or unknown parameters), `invalid_grant` (a bad subject or actor
/// token), `unauthorized_client`, `invalid_target`, `invalid_scope`, or a storage/signing failure.
pub async fn handle(
    state: &AppState,
    client: &Client,
    request: &TokenExchangeGrant,
) -> Result<TokenResponse, OAuthError> {
    let (Some(subject_token), Some(subject_type)) = (&request.subject_token, &request.subject_token_type) else {
        return Err(OAuthError::invalid_request(
            "subject_token and subject_token_type are required",
        ));
    };
    let subject_type = token_type(subject_type, "subject_token_type")?;
    let actor = match (&request.actor_token, &request.actor_token_type) {
        (None, None) => None,
        (Some(token), Some(kind)) => Some((token, token_type(kind, "actor_token_type")?)),
        // RFC 8693 §2.1: actor_token_type is required with actor_token and forbidden without.
        _ => {
            return Err(OAuthError::invalid_request(
                "actor_token and actor_token_type go together",
            ))
        }
    };
    let requested = match &request.requested_token_type {
        None => TokenType::AccessToken,
        Some(kind) => token_type(kind, "requested_token_type")?,
    };
    // The client's policy is checked before any token is looked at, so a client that may not
    // exchange learns nothing about the tokens it presents.
    precheck(client, subject_type)?;
    let subject = match presented(state, client, subject_token, subject_type, Role::Subject).await? {
        Ok(subject) => subject,
        Err(reason) => return Err(bad_token("subject", &reason)),
    };
    let actor = match actor {
        None => None,
        Some((token, kind)) => match presented(state, client, token, kind, Role::Actor).await? {
            Ok(actor) => Some(actor),
            Err(reason) => return Err(bad_token("actor", &reason)),
        },
    };
    let targets: Vec<String> = request.audience.iter().chain(&request.resource).cloned().collect();
    let now = state.now();
    let plan = token_exchange::decide(
        client,
        &ExchangeRequest {
            subject: &subject.token,
            actor: actor.as_ref().map(|a| &a.token),
            requested,
            targets: &targets,
            scope: request.scope.as_deref(),
        },
        state.access_token_policy(),
        now,
    )?;
    let response = issue(state, client, &subject, &plan).await?;
    let mut event = Event::new(EventKind::TokenExchanged, Actor::Client)
        .client(client.id.clone())
        .detail("subject", subject.token.subject.clone())
        .detail("subject_token_type", subject_type.as_str())
        .detail("issued_token_type", plan.issued_token_type.as_str())
        .detail("audience", json!(targets))
        .detail("scope", plan.access.scope.to_string());
    if let Some(user) = &subject.user {
        event = event.user(user.id.clone());
    }
    if let Some(actor) = &actor {
        event = event.detail("actor", actor.token.subject.clone());
    }
    state.audit.record(now, event);
    tracing::info!(
        client.id = %client.id,
        delegation = actor.is_some(),
        issued = plan.issued_token_type.as_str(),
        "token exchanged"
    );
    Ok(response)
}

fn token_type(value: &str, parameter: &str) -> Result<TokenType, OAuthError> {
    TokenType::parse(value).ok_or_else(|| OAuthError::invalid_request(format!("unsupported {parameter}")))
}

fn bad_token(role: &str, reason: &str) -> OAuthError {
    OAuthError::from(GrantError::InvalidExchangeToken(format!("{role} token: {reason}")))
}

/// The policy checks that need no token: the grant, a policy, the subject type.
fn precheck(client: &Client, subject_type: TokenType) -> Result<(), OAuthError> {
    let allowed = client.allows_grant(tessera_types::token::GrantType::TokenExchange)
        && client
            .settings
            .token_exchange
            .as_ref()
            .is_some_and(|policy| policy.subject_token_types.contains(&subject_type));
    if allowed {
        Ok(())
    } else {
        Err(GrantError::ExchangeNotAllowed(format!(
            "client {} may not exchange a {}",
            client.id,
            subject_type.as_str()
        ))
        .into())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Subject,
    Actor,
}

/// Validates a presented token of type `kind`; `Ok(Err(reason))` when it is not acceptable.
async fn presented(
    state: &AppState,
    client: &Client,
    token: &str,
    kind: TokenType,
    role: Role,
) -> Result<Result<Presented, String>, OAuthError> {
    let issuer = state.urls.issuer.clone();
    match kind {
        TokenType::AccessToken => {
            let info = match validate_access_token(state, token).await? {
                Ok(info) => info,
                Err(reason) => return Ok(Err(reason)),
            };
            // A subject access token must be one this client holds or one sent to it (its `aud`
            // names the client): a client cannot trade tokens it was never meant to see.
            if role == Role::Subject && info.client_id != client.id && !info.audience.contains(&client.id) {
                return Ok(Err(format!(
                    "access token of client {} not addressed to {}",
                    info.client_id, client.id
                )));
            }
            let is_client_token = info.subject == info.client_id;
            let user = if is_client_token {
                None
            } else {
                match enabled_user(state, &info.subject).await? {
                    Some(user) => Some(user),
                    None => return Ok(Err("the token's user is disabled or gone".into())),
                }
            };
            Ok(Ok(Presented {
                token: ExchangeToken {
                    token_type: kind,
                    user_id: user.as_ref().map(|u| u.id.clone()),
                    subject: info.subject,
                    issuer,
                    client_id: Some(info.client_id),
                    scope: info.scope,
                    expires_at: info.expires_at,
                    act: info.act,
                    may_act: None,
                },
                user,
                session_id: info.session_id,
                auth_time: info.auth_time,
            }))
        }
        TokenType::RefreshToken => {
            if role == Role::Actor {
                return Ok(Err("a refresh token cannot be an actor token".into()));
            }
            refresh_token(state, client, token, issuer).await
        }
        TokenType::IdToken => id_token(state, client, token, role, issuer).await,
        TokenType::Jwt => {
            let external = match external::verify(state, token).await {
                Ok(external) => external,
                Err(reason) => return Ok(Err(reason)),
            };
            let user = match external.mapping {
                SubjectMapping::Username => state.storage.users().find_by_username(&external.subject).await?,
                SubjectMapping::UserId => state.storage.users().lookup(&external.subject).await?,
                SubjectMapping::PassThrough => None,
            };
            let user = match (external.mapping, user) {
                (SubjectMapping::PassThrough, _) => None,
                (_, Some(user)) if !user.is_disabled => Some(user),
                _ => return Ok(Err(format!("no enabled local user for {}", external.subject))),
            };
            let scope = Scope::from_tokens(
                external
                    .scope
                    .as_deref()
                    .unwrap_or_default()
                    .split(' ')
                    .filter(|s| !s.is_empty()),
            );
            Ok(Ok(Presented {
                token: ExchangeToken {
                    token_type: kind,
                    subject: user.as_ref().map_or_else(|| external.subject.clone(), |u| u.id.clone()),
                    user_id: user.as_ref().map(|u| u.id.clone()),
                    issuer: external.issuer,
                    client_id: external.client_id,
                    scope,
                    expires_at: external.expires_at,
                    act: external.act,
                    may_act: external.may_act,
                },
                user,
                session_id: None,
                auth_time: external
                    .claims
                    .get("auth_time")
                    .and_then(serde_json::Value::as_i64)
                    .map(Timestamp)
                    .or(external.issued_at),
            }))
        }
    }
}

/// Our refresh token, active exactly when a refresh would rotate it now (as introspection judges
/// it), and only the client's own (DESIGN B8).
async fn refresh_token(
    state: &AppState,
    client: &Client,
    token: &str,
    issuer: String,
) -> Result<Result<Presented, String>, OAuthError> {
    let Some((token, grant, user)) = active_refresh_token(state, client, token).await? else {
        return Ok(Err(
            "refresh token not active (unknown, spent, expired, revoked or another client's)".into(),
        ));
    };
    Ok(Ok(Presented {
        token: ExchangeToken {
            token_type: TokenType::RefreshToken,
            subject: user.id.clone(),
            user_id: Some(user.id.clone()),
            issuer,
            client_id: Some(grant.client_id.clone()),
            scope: Scope::from_tokens(grant.scope.split(' ').filter(|s| !s.is_empty())),
            expires_at: token.expires_at,
            act: None,
            may_act: None,
        },
        user: Some(user),
        session_id: grant.session_id,
        auth_time: Some(grant.created_at),
    }))
}

/// Our ID token: signed by one of our keys, our issuer, not expired; as a subject it must have
/// been issued to this client (`aud`).
async fn id_token(
    state: &AppState,
    client: &Client,
    token: &str,
    role: Role,
    issuer: String,
) -> Result<Result<Presented, String>, OAuthError> {
    let now = state.now();
    let (header, claims) = match state.keys.verify(token, now) {
        Ok(verified) => verified,
        Err(reason) => return Ok(Err(reason)),
    };
    if header.typ.as_deref() == Some("at+jwt") {
        return Ok(Err("an access token presented as an ID token".into()));
    }
    let string = |name: &str| claims.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
    if string("iss").as_deref() != Some(issuer.as_str()) {
        return Ok(Err("ID token from another issuer".into()));
    }
    let (Some(subject), Some(exp)) = (string("sub"), claims.get("exp").and_then(serde_json::Value::as_i64)) else {
        return Ok(Err("ID token lacks sub or exp".into()));
    };
    if now.0 >= exp {
        return Ok(Err("ID token expired".into()));
    }
    let audience_names_client = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => *aud == client.id,
        Some(serde_json::Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client.id.as_str())),
        _ => false,
    };
    if role == Role::Subject && !audience_names_client {
        return Ok(Err("ID token issued to another client".into()));
    }
    let Some(user) = enabled_user(state, &subject).await? else {
        return Ok(Err("the ID token's user is disabled or gone".into()));
    };
    Ok(Ok(Presented {
        token: ExchangeToken {
            token_type: TokenType::IdToken,
            subject: user.id.clone(),
            user_id: Some(user.id.clone()),
            issuer,
            client_id: string("azp"),
            scope: Scope::from_tokens(["openid"]),
            expires_at: Timestamp(exp),
            act: None,
            may_act: None,
        },
        user: Some(user),
        session_id: string("sid"),
        auth_time: claims
            .get("auth_time")
            .and_then(serde_json::Value::as_i64)
            .map(Timestamp),
    }))
}

async fn enabled_user(state: &AppState, id: &str) -> Result<Option<User>, OAuthError> {
    Ok(state.storage.users().lookup(id).await?.filter(|user| !user.is_disabled))
}

/// Issues what the plan says.
async fn issue(
    state: &AppState,
    client: &Client,
    subject: &Presented,
    plan: &ExchangePlan,
) -> Result<TokenResponse, OAuthError> {
    let now = plan.access.issued_at;
    let amr = Vec::new();
    let context = UserContext {
        user_id: &subject.token.subject,
        session_id: subject.session_id.as_deref(),
        auth_time: subject.auth_time.unwrap_or(now),
        amr: &amr,
        acr: None,
        grant_id: None,
    };
    // The result speaks for the subject: a user, a pass-through external subject, or the client
    // whose client-credentials token was exchanged (never silently the exchanging client).
    let user_context = Some(context);
    let scope = (!plan.access.scope.is_empty()).then(|| plan.access.scope.to_string());
    match plan.issued_token_type {
        TokenType::AccessToken | TokenType::Jwt => {
            let access_token = issue_access_token(state, client, user_context, &plan.access).await?;
            Ok(TokenResponse {
                access_token,
                token_type: "Bearer".into(),
                issued_token_type: Some(plan.issued_token_type.as_str().to_owned()),
                expires_in: now.seconds_until(plan.access.expires_at),
                scope,
                refresh_token: None,
                refresh_expires_in: None,
                id_token: None,
            })
        }
        TokenType::IdToken => {
            let Some(user) = &subject.user else {
                return Err(OAuthError::invalid_request(
                    "an ID token needs a subject that is a local user",
                ));
            };
            let openid = Scope::from_tokens(["openid"]);
            let params = IdTokenParams {
                context,
                scope: &openid,
                nonce: None,
                access_token: None,
                now,
            };
            let token = id_token::issue(state, client, user, &params)?;
            let lifetime = client
                .settings
                .id_token_lifetime
                .unwrap_or(state.config.tokens.id_token_lifetime);
            let mut expires_at = now.plus(lifetime);
            if let Some(not_after) = plan.not_after {
                if not_after < expires_at {
                    // The ID token's own `exp` follows the client's lifetime; the response says
                    // how long the exchange allowed.
                    expires_at = not_after;
                }
            }
            Ok(TokenResponse {
                access_token: token,
                token_type: NOT_APPLICABLE.into(),
                issued_token_type: Some(TokenType::IdToken.as_str().to_owned()),
                expires_in: now.seconds_until(expires_at),
                scope: Some("openid".into()),
                refresh_token: None,
                refresh_expires_in: None,
                id_token: None,
            })
        }
        TokenType::RefreshToken => refresh_grant(state, client, subject, plan).await,
    }
}

/// `requested_token_type=refresh_token`: a new offline grant of the subject's user for this
/// client, under the client's refresh-token rules; the response carries an access token and the
/// grant's first refresh token (as Keycloak does), with `issued_token_type` naming the refresh
/// token.
async fn refresh_grant(
    state: &AppState,
    client: &Client,
    subject: &Presented,
    plan: &ExchangePlan,
) -> Result<TokenResponse, OAuthError> {
    let Some(user) = &subject.user else {
        return Err(OAuthError::invalid_request(
            "a refresh token needs a subject that is a local user",
        ));
    };
    if !client.allows_grant(tessera_types::token::GrantType::RefreshToken) {
        return Err(GrantError::ExchangeNotAllowed(format!("client {} may not use refresh tokens", client.id)).into());
    }
    let now = plan.access.issued_at;
    let policy = refresh_policy(state, client);
    let mut expires_at = refresh::grant_hard_end(GrantKind::Offline, &policy, now, now);
    if let Some(not_after) = plan.not_after {
        expires_at = Some(expires_at.map_or(not_after, |end| end.min(not_after)));
    }
    let grant = Grant {
        id: crate::pages::random_token(16),
        user_id: user.id.clone(),
        client_id: client.id.clone(),
        scope: plan.access.scope.to_string(),
        kind: GrantKind::Offline,
        session_id: None,
        created_at: now,
        last_used_at: now,
        expires_at,
        revoked_at: None,
        revocation_reason: None,
    };
    let refresh_expires_at = refresh::expiry(GrantKind::Offline, &policy, expires_at, now);
    let (value, record) = common::new_refresh_token(&grant, None, refresh_expires_at, now);
    state.storage.grants().add(&grant).await?;
    common::store_first_refresh_token(state, client, &grant, &record).await?;
    let amr = Vec::new();
    let context = UserContext {
        user_id: &user.id,
        session_id: None,
        auth_time: subject.auth_time.unwrap_or(now),
        amr: &amr,
        acr: None,
        grant_id: Some(&grant.id),
    };
    let access_token = issue_access_token(state, client, Some(context), &plan.access).await?;
    let scope = (!plan.access.scope.is_empty()).then(|| plan.access.scope.to_string());
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        issued_token_type: Some(TokenType::RefreshToken.as_str().to_owned()),
        expires_in: now.seconds_until(plan.access.expires_at),
        scope,
        refresh_token: Some(value),
        refresh_expires_in: Some(refresh::expires_in(now, refresh_expires_at)),
        id_token: None,
    })
}
