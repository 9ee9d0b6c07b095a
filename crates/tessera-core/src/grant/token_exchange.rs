//! Token exchange (RFC 8693): deciding what a client may get for a subject token (and an actor
//! token), under the client's [`TokenExchangeSettings`].
//!
//! The server validates the presented tokens (signature, expiry, issuer, revocation) and describes
//! each as an [`ExchangeToken`]; this module applies the policy and returns an [`ExchangePlan`].
//! The checks, in order: the client may use the grant and has a policy; the subject token type
//! is allowed; the requested type is allowed; delegation (an actor token) or impersonation (none)
//! is allowed, the actor is one the policy names, and the subject's `may_act` (RFC 8693 §4.4)
//! names it; each audience or resource is allowed (`invalid_target`); the scope is within the
//! subject's scope, the client's scopes and every target's scopes (`invalid_scope`); the lifetime
//! is capped by the subject token's remaining life unless the policy says otherwise.

use serde_json::{Map, Value};
use tessera_types::token::{GrantType, TokenType};

use crate::authorize::OPENID;
use crate::client::{Client, TokenExchangeSettings};
use crate::grant::{AccessTokenPlan, AccessTokenPolicy, GrantError};
use crate::scope::Scope;
use crate::time::Timestamp;

/// A validated subject or actor token, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeToken {
    /// The type it was presented as.
    pub token_type: TokenType,
    /// Its `sub`: a local user's id, a client's id (client credentials) or an external subject.
    pub subject: String,
    /// The local user it stands for, if any (a client-credentials token or a pass-through
    /// external subject has none).
    pub user_id: Option<String>,
    /// Who issued it: our issuer, or the trusted external issuer.
    pub issuer: String,
    /// The client it was issued to (`client_id`, or `azp` for external tokens), if known.
    pub client_id: Option<String>,
    /// The scope it carries.
    pub scope: Scope,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Its `act` claim: the chain of actors already acting for the subject.
    pub act: Option<Value>,
    /// Its `may_act` claim: who may act for the subject (RFC 8693 §4.4).
    pub may_act: Option<Value>,
}

/// A token-exchange request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeRequest<'a> {
    /// The validated subject token.
    pub subject: &'a ExchangeToken,
    /// The validated actor token, for delegation.
    pub actor: Option<&'a ExchangeToken>,
    /// The type asked for (an access token by default).
    pub requested: TokenType,
    /// `audience` and `resource` values together.
    pub targets: &'a [String],
    /// The `scope` parameter.
    pub scope: Option<&'a str>,
}

/// What to issue.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangePlan {
    /// The access token (for every requested type but the ID token, and beside a new refresh
    /// token): scope, audience, format and lifetime, and `act` for delegation: the actor, with the
    /// subject's earlier actors nested inside (RFC 8693 §4.1); `None` for impersonation.
    pub access: AccessTokenPlan,
    /// The type of the issued token (`issued_token_type`).
    pub issued_token_type: TokenType,
    /// The latest a result may expire: the subject token's expiry, unless the policy lets results
    /// outlive it.
    pub not_after: Option<Timestamp>,
}

/// Decides a token exchange for `client`.
///
/// # Errors
/// `unauthorized_client` (grant, subject type, requested type, impersonation, delegation or actor
/// not allowed), `invalid_grant` (an expired subject, or an actor the subject's `may_act` does not
/// name), `invalid_target`, `invalid_scope`.
pub fn decide(
    client: &Client,
    request: &ExchangeRequest<'_>,
    policy: AccessTokenPolicy,
    now: Timestamp,
) -> Result<ExchangePlan, GrantError> {
    if !client.allows_grant(GrantType::TokenExchange) {
        return Err(GrantError::GrantNotAllowed {
            grant_type: GrantType::TokenExchange.as_str(),
        });
    }
    let Some(settings) = &client.settings.token_exchange else {
        return Err(refused("the client has no token-exchange policy"));
    };
    let subject = request.subject;
    if !settings.subject_token_types.contains(&subject.token_type) {
        return Err(refused(format!(
            "subject token type {} not allowed",
            subject.token_type.as_str()
        )));
    }
    let requested = request.requested;
    if requested != TokenType::AccessToken && !settings.requested_token_types.contains(&requested) {
        return Err(refused(format!(
            "requested token type {} not allowed",
            requested.as_str()
        )));
    }
    if now >= subject.expires_at {
        return Err(GrantError::Expired);
    }
    let act = match request.actor {
        None if settings.impersonation => None,
        None => return Err(refused("impersonation (no actor token) not allowed")),
        Some(actor) => Some(delegation(client, settings, subject, actor, now)?),
    };
    let audiences = targets(settings, request.targets)?;
    let scope = scope(client, subject, &audiences, request.scope)?;
    let not_after = (!settings.may_outlive_subject).then_some(subject.expires_at);
    let audience = request.targets.to_vec();
    let mut access = AccessTokenPlan::new(client, scope, audience, policy, now);
    if let Some(not_after) = not_after {
        access.expires_at = access.expires_at.min(not_after);
    }
    if requested == TokenType::Jwt {
        access.format = crate::client::AccessTokenFormat::Jwt;
    }
    access.act = act;
    Ok(ExchangePlan {
        access,
        issued_token_type: requested,
        not_after,
    })
}

fn refused(reason: impl Into<String>) -> GrantError {
    GrantError::ExchangeNotAllowed(reason.into())
}

/// RFC 8693 §4.1: the result's `act` names the actor, with the subject's own `act` (the earlier
/// actors of a chain) nested inside.
fn delegation(
    client: &Client,
    settings: &TokenExchangeSettings,
    subject: &ExchangeToken,
    actor: &ExchangeToken,
    now: Timestamp,
) -> Result<Value, GrantError> {
    if !settings.delegation {
        return Err(refused("delegation (an actor token) not allowed"));
    }
    if now >= actor.expires_at {
        return Err(GrantError::InvalidExchangeToken("the actor token has expired".into()));
    }
    let allowed = if settings.actors.is_empty() {
        // Only the client itself, with its own client-credentials token.
        actor.subject == client.id && actor.user_id.is_none()
    } else {
        settings.actors.contains(&actor.subject)
    };
    if !allowed {
        return Err(refused(format!("actor {} not allowed", actor.subject)));
    }
    // RFC 8693 §4.4: when the subject token says who may act for it, the actor must be that party.
    if let Some(may_act) = &subject.may_act {
        let sub_matches = may_act.get("sub").and_then(Value::as_str) == Some(actor.subject.as_str());
        let iss_matches = may_act
            .get("iss")
            .and_then(Value::as_str)
            .is_none_or(|iss| iss == actor.issuer);
        if !(sub_matches && iss_matches) {
            return Err(GrantError::InvalidExchangeToken(format!(
                "the subject token's may_act does not name actor {}",
                actor.subject
            )));
        }
    }
    let mut act = Map::new();
    act.insert("sub".into(), Value::from(actor.subject.clone()));
    if let Some(client_id) = actor.client_id.as_ref().filter(|c| **c != actor.subject) {
        act.insert("client_id".into(), Value::from(client_id.clone()));
    }
    if let Some(earlier) = &subject.act {
        act.insert("act".into(), earlier.clone());
    }
    Ok(Value::Object(act))
}

/// The policy entries of the asked targets; any target not listed is `invalid_target`.
fn targets<'s>(
    settings: &'s TokenExchangeSettings,
    asked: &[String],
) -> Result<Vec<&'s crate::client::ExchangeAudience>, GrantError> {
    asked
        .iter()
        .map(|target| {
            settings
                .audiences
                .iter()
                .find(|a| a.audience == *target)
                .ok_or_else(|| GrantError::TargetNotAllowed { target: target.clone() })
        })
        .collect()
}

/// The result's scope: what was asked (or everything allowed), where allowed is the subject's
/// scope ∩ the client's scopes ∩ each target's scopes.
fn scope(
    client: &Client,
    subject: &ExchangeToken,
    audiences: &[&crate::client::ExchangeAudience],
    asked: Option<&str>,
) -> Result<Scope, GrantError> {
    let allowed: Vec<&str> = subject
        .scope
        .iter()
        .filter(|s| *s == OPENID || client.settings.scopes.iter().any(|c| c == s))
        .filter(|s| audiences.iter().all(|a| a.scopes.iter().any(|t| t == s)))
        .collect();
    let allowed = Scope::from_tokens(allowed);
    match asked {
        None => Ok(allowed),
        Some(asked) => {
            let asked = Scope::parse(asked).map_err(|e| GrantError::MalformedScope(e.to_string()))?;
            let missing = asked.missing_from(&allowed);
            if missing.is_empty() {
                Ok(asked)
            } else {
                Err(GrantError::ScopeNotAllowed { missing })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;
    use crate::client::{ClientSettings, ExchangeAudience};

    const NOW: Timestamp = Timestamp(1_000_000);
    const POLICY: AccessTokenPolicy = AccessTokenPolicy {
        lifetime: 300,
        max_lifetime: 3600,
    };

    fn client(settings: TokenExchangeSettings) -> Client {
        Client {
            id: "frontend".into(),
            secret_hash: None,
            settings: ClientSettings {
                grant_types: vec![GrantType::TokenExchange],
                scopes: vec!["orders.read".into(), "orders.write".into(), "profile".into()],
                token_exchange: Some(settings),
                ..ClientSettings::default()
            },
            created_at: NOW,
            updated_at: NOW,
        }
    }

    fn settings() -> TokenExchangeSettings {
        TokenExchangeSettings {
            subject_token_types: vec![TokenType::AccessToken],
            audiences: vec![ExchangeAudience {
                audience: "https://backend.example".into(),
                scopes: vec!["orders.read".into(), "orders.write".into()],
            }],
            impersonation: true,
            delegation: true,
            ..TokenExchangeSettings::default()
        }
    }

    fn user_token() -> ExchangeToken {
        ExchangeToken {
            token_type: TokenType::AccessToken,
            subject: "ada".into(),
            user_id: Some("ada".into()),
            issuer: "https://id.example".into(),
            client_id: Some("spa".into()),
            scope: Scope::parse("openid orders.read profile").unwrap(),
            expires_at: NOW.plus(100),
            act: None,
            may_act: None,
        }
    }

    fn service_token(sub: &str) -> ExchangeToken {
        ExchangeToken {
            subject: sub.into(),
            user_id: None,
            client_id: Some(sub.into()),
            ..user_token()
        }
    }

    fn exchange(
        client: &Client,
        subject: &ExchangeToken,
        actor: Option<&ExchangeToken>,
        targets: &[String],
        scope: Option<&str>,
    ) -> Result<ExchangePlan, GrantError> {
        let request = ExchangeRequest {
            subject,
            actor,
            requested: TokenType::AccessToken,
            targets,
            scope,
        };
        decide(client, &request, POLICY, NOW)
    }

    #[test]
    fn the_scope_narrows_to_subject_client_and_audience_and_the_life_to_the_subjects() {
        let backend = ["https://backend.example".to_owned()];
        let plan = exchange(&client(settings()), &user_token(), None, &backend, None).unwrap();
        assert_eq!(plan.access.scope.to_string(), "orders.read");
        assert_eq!(plan.access.audience, backend);
        assert_eq!(
            plan.access.expires_at,
            NOW.plus(100),
            "capped by the subject's remaining life"
        );
        assert_eq!(plan.access.act, None);
        let err = exchange(&client(settings()), &user_token(), None, &backend, Some("orders.write")).unwrap_err();
        assert!(matches!(err, GrantError::ScopeNotAllowed { .. }), "{err:?}");
        let err = exchange(
            &client(settings()),
            &user_token(),
            None,
            &["https://other".into()],
            None,
        )
        .unwrap_err();
        assert!(matches!(err, GrantError::TargetNotAllowed { .. }), "{err:?}");
        let mut outliving = settings();
        outliving.may_outlive_subject = true;
        let plan = exchange(&client(outliving), &user_token(), None, &backend, None).unwrap();
        assert_eq!(plan.access.expires_at, NOW.plus(300));
    }

    #[test]
    fn impersonation_and_delegation_follow_the_policy_and_nest_act() {
        let backend = ["https://backend.example".to_owned()];
        let mut no_impersonation = settings();
        no_impersonation.impersonation = false;
        let err = exchange(&client(no_impersonation), &user_token(), None, &backend, None).unwrap_err();
        assert_eq!(err.code(), tessera_types::ErrorCode::UnauthorizedClient);

        let me = service_token("frontend");
        let plan = exchange(&client(settings()), &user_token(), Some(&me), &backend, None).unwrap();
        assert_eq!(plan.access.act, Some(json!({ "sub": "frontend" })));
        let stranger = service_token("stranger");
        let err = exchange(&client(settings()), &user_token(), Some(&stranger), &backend, None).unwrap_err();
        assert_eq!(err.code(), tessera_types::ErrorCode::UnauthorizedClient);

        // A chain: the subject already carries an actor; the new actor wraps it.
        let mut listed = settings();
        listed.actors = vec!["gateway".into()];
        let mut delegated = user_token();
        delegated.act = Some(json!({ "sub": "frontend" }));
        let gateway = service_token("gateway");
        let plan = exchange(&client(listed.clone()), &delegated, Some(&gateway), &backend, None).unwrap();
        assert_eq!(
            plan.access.act,
            Some(json!({ "sub": "gateway", "act": { "sub": "frontend" } }))
        );

        // may_act names who may act for the subject.
        let mut restricted = user_token();
        restricted.may_act = Some(json!({ "sub": "someone-else" }));
        let err = exchange(&client(listed), &restricted, Some(&gateway), &backend, None).unwrap_err();
        assert_eq!(err.code(), tessera_types::ErrorCode::InvalidGrant);
    }

    #[test]
    fn types_and_expiry_are_checked() {
        let mut id_token = user_token();
        id_token.token_type = TokenType::IdToken;
        let err = exchange(&client(settings()), &id_token, None, &[], None).unwrap_err();
        assert_eq!(err.code(), tessera_types::ErrorCode::UnauthorizedClient);
        let mut expired = user_token();
        expired.expires_at = NOW;
        let err = exchange(&client(settings()), &expired, None, &[], None).unwrap_err();
        assert_eq!(err.code(), tessera_types::ErrorCode::InvalidGrant);
        let request = ExchangeRequest {
            subject: &user_token(),
            actor: None,
            requested: TokenType::RefreshToken,
            targets: &[],
            scope: None,
        };
        let err = decide(&client(settings()), &request, POLICY, NOW).unwrap_err();
        assert_eq!(err.code(), tessera_types::ErrorCode::UnauthorizedClient);
    }
}
