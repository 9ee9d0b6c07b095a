//! ID tokens (OIDC Core §2, §3.1.3.6): signed with the client's algorithm (RS256 by default),
//! with `at_hash` binding the access token issued beside it.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256, Sha512};
use tessera_core::{Client, Scope, Timestamp, User};
use tessera_types::{ErrorCode, JwsAlgorithm};

use super::UserContext;
use crate::error::OAuthError;
use crate::state::AppState;

/// What goes into an ID token besides the user.
pub struct IdTokenParams<'a> {
    /// The session and authentication facts.
    pub context: UserContext<'a>,
    /// The granted scope: decides which user claims are included.
    pub scope: &'a Scope,
    /// The `nonce` of the authorization request.
    pub nonce: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// Issue time.
    pub now: Timestamp,
}

/// Signs an ID token for `user` and `client`.
///
/// # Errors
/// No active signing key for the client's algorithm, or a signing failure (server errors).
pub fn issue(state: &AppState, client: &Client, user: &User, params: &IdTokenParams<'_>) -> Result<String, OAuthError> {
    let algorithm = client
        .settings
        .id_token_algorithm
        .unwrap_or(state.config.keys.id_token_algorithm);
    let key = super::signer(state, algorithm, params.now)?;
    let lifetime = client
        .settings
        .id_token_lifetime
        .unwrap_or(state.config.tokens.id_token_lifetime);
    let context = params.context;
    let mut claims: Map<String, Value> = user.claims_for_scope(params.scope);
    let standard = json!({
        "iss": state.urls.issuer,
        "sub": user.id,
        "aud": client.id,
        "azp": client.id,
        "exp": params.now.plus(lifetime).0,
        "iat": params.now.0,
        "auth_time": context.auth_time.0,
    });
    if let Value::Object(standard) = standard {
        claims.extend(standard);
    }
    let mut optional = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            claims.insert(name.to_owned(), value);
        }
    };
    optional("nonce", params.nonce.map(Value::from));
    optional("sid", context.session_id.map(Value::from));
    optional("acr", context.acr.map(Value::from));
    optional("amr", (!context.amr.is_empty()).then(|| json!(context.amr)));
    optional(
        "at_hash",
        params.access_token.map(|token| Value::from(at_hash(algorithm, token))),
    );
    key.sign_jwt("JWT", &Value::Object(claims))
        .map_err(|e| OAuthError::new(ErrorCode::ServerError, format!("signing failed: {e}")))
}

/// OIDC Core §3.1.3.6: base64url of the left half of the hash of the access token, with the hash
/// of the signing algorithm (SHA-256 for RS256/ES256, SHA-512 for Ed25519).
#[must_use]
pub fn at_hash(algorithm: JwsAlgorithm, access_token: &str) -> String {
    let digest: Vec<u8> = match algorithm {
        JwsAlgorithm::RS256 | JwsAlgorithm::ES256 => Sha256::digest(access_token.as_bytes()).to_vec(),
        JwsAlgorithm::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    tessera_jose::base64url_encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_example() {
        // OIDC Core Appendix A.3 (RS256).
        assert_eq!(
            at_hash(JwsAlgorithm::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
