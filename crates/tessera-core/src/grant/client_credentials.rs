//! The client-credentials grant (RFC 6749 §4.4): a client gets an access token for itself.
//!
//! Never a refresh token (RFC 6749 §4.4.3, DESIGN B14).

use tessera_types::token::{ClientCredentialsGrant, GrantType};

use super::GrantError;
use crate::client::Client;
use crate::scope::Scope;
use crate::time::Timestamp;

pub use super::AccessTokenPlan as Plan;
pub use super::AccessTokenPolicy;

/// Decides a client-credentials request for an authenticated `client`.
///
/// Without `scope`, the client gets every scope it is allowed (RFC 6749 §3.3 lets the server pick a
/// documented default). Without `resource`/`audience`, the token's audience is every audience the
/// client is allowed.
///
/// # Errors
/// See [`GrantError`]: the grant type, scope or target is not allowed.
pub fn decide(
    client: &Client,
    request: &ClientCredentialsGrant,
    policy: AccessTokenPolicy,
    now: Timestamp,
) -> Result<Plan, GrantError> {
    // RFC 6749 §5.2: unauthorized_client when the client may not use this grant type.
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(GrantError::GrantNotAllowed {
            grant_type: GrantType::ClientCredentials.as_str(),
        });
    }
    let allowed_scope = Scope::from_tokens(client.settings.scopes.iter().cloned());
    let scope = match &request.scope {
        None => allowed_scope,
        Some(asked) => {
            let asked = Scope::parse(asked).map_err(|e| GrantError::MalformedScope(e.to_string()))?;
            // RFC 6749 §4.4.2 / §3.3: a scope the client may not have is invalid_scope.
            let missing = asked.missing_from(&allowed_scope);
            if !missing.is_empty() {
                return Err(GrantError::ScopeNotAllowed { missing });
            }
            asked
        }
    };
    // RFC 8707 §2: every requested resource must be one this client may get tokens for.
    let mut audience: Vec<String> = Vec::new();
    for target in request.resource.iter().chain(&request.audience) {
        if !client.settings.audiences.iter().any(|allowed| allowed == target) {
            return Err(GrantError::TargetNotAllowed { target: target.clone() });
        }
        if !audience.contains(target) {
            audience.push(target.clone());
        }
    }
    if audience.is_empty() {
        audience.clone_from(&client.settings.audiences);
    }
    let lifetime = client
        .settings
        .access_token_lifetime
        .unwrap_or(policy.lifetime)
        .min(policy.max_lifetime);
    Ok(Plan {
        scope,
        audience,
        format: client.settings.access_token_format,
        issued_at: now,
        expires_at: now.plus(lifetime),
        act: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{AccessTokenFormat, AuthMethod, ClientSettings, ClientType};

    fn client(grants: &[GrantType], lifetime: Option<u64>) -> Client {
        Client {
            id: "svc".into(),
            secret_hash: None,
            settings: ClientSettings {
                name: None,
                client_type: ClientType::Confidential,
                auth_method: AuthMethod::ClientSecretBasic,
                jwks: None,
                jwks_uri: None,
                redirect_uris: vec![],
                grant_types: grants.to_vec(),
                scopes: vec!["read".into(), "write".into()],
                audiences: vec!["https://api.example".into(), "https://other.example".into()],
                access_token_format: AccessTokenFormat::Jwt,
                access_token_algorithm: None,
                id_token_algorithm: None,
                access_token_lifetime: lifetime,
                id_token_lifetime: None,
                refresh_tokens: Default::default(),
                ..ClientSettings::default()
            },
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    const POLICY: AccessTokenPolicy = AccessTokenPolicy {
        lifetime: 300,
        max_lifetime: 28_800,
    };

    #[track_caller]
    fn check(client: &Client, scope: Option<&str>, resource: &[&str], expected: Result<(&str, &[&str], i64), &str>) {
        let request = ClientCredentialsGrant {
            scope: scope.map(str::to_owned),
            resource: resource.iter().map(|s| (*s).to_owned()).collect(),
            audience: vec![],
        };
        let actual = decide(client, &request, POLICY, Timestamp(1000))
            .map(|plan| (plan.scope.to_string(), plan.audience, plan.expires_at.0))
            .map_err(|e| e.to_string());
        let expected = expected
            .map(|(s, a, e)| (s.to_owned(), a.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>(), e))
            .map_err(str::to_owned);
        assert_eq!(actual, expected);
    }

    #[test]
    fn decisions() {
        let cc = client(&[GrantType::ClientCredentials], None);
        check(
            &cc,
            None,
            &[],
            Ok(("read write", &["https://api.example", "https://other.example"], 1300)),
        );
        check(
            &cc,
            Some("read"),
            &["https://api.example"],
            Ok(("read", &["https://api.example"], 1300)),
        );
        check(
            &cc,
            Some("read admin"),
            &[],
            Err("scopes not allowed for client: admin"),
        );
        check(
            &cc,
            Some("re\"ad"),
            &[],
            Err("scope is malformed: scope token \"re\\\"ad\" contains a character outside %x21 / %x23-5B / %x5D-7E"),
        );
        check(
            &cc,
            None,
            &["https://evil.example"],
            Err("target not allowed for client: https://evil.example"),
        );
        check(
            &client(&[], None),
            None,
            &[],
            Err("client is not allowed grant type client_credentials"),
        );
        check(
            &client(&[GrantType::ClientCredentials], Some(99_999)),
            None,
            &[],
            Ok((
                "read write",
                &["https://api.example", "https://other.example"],
                1000 + 28_800,
            )),
        );
    }
}
