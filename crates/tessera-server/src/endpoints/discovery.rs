//! Discovery (RFC 8414 §3; OIDC Discovery §4): `/.well-known/oauth-authorization-server` and
//! `/.well-known/openid-configuration` serve the same document, listing only what is implemented.

use axum::extract::State;
use axum::Json;
use tessera_core::AuthMethod;
use tessera_types::discovery::ProviderMetadata;
use tessera_types::token::GrantType;
use tessera_types::JwsAlgorithm;

use crate::extract::client_auth::ASSERTION_ALGORITHMS;
use crate::state::AppState;

/// The grant types `/token` implements. Keep in step with `grants::handle`.
pub const IMPLEMENTED_GRANT_TYPES: [GrantType; 5] = [
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
    GrantType::Password,
    GrantType::TokenExchange,
];

/// Builds the metadata document.
#[must_use]
pub fn metadata(state: &AppState) -> ProviderMetadata {
    let mut id_token_algorithms = vec![state.config.keys.id_token_algorithm.as_str().to_owned()];
    for alg in tessera_types::JwsAlgorithm::ALL {
        if !id_token_algorithms.iter().any(|a| a == alg.as_str()) {
            id_token_algorithms.push(alg.as_str().to_owned());
        }
    }
    let auth_methods: Vec<String> = AuthMethod::ALL.iter().map(|m| m.as_str().to_owned()).collect();
    ProviderMetadata {
        issuer: state.urls.issuer.clone(),
        authorization_endpoint: Some(state.urls.authorization_endpoint.clone()),
        token_endpoint: state.urls.token_endpoint.clone(),
        jwks_uri: state.urls.jwks_uri.clone(),
        userinfo_endpoint: Some(state.urls.userinfo_endpoint.clone()),
        end_session_endpoint: Some(state.urls.end_session_endpoint.clone()),
        response_types_supported: vec!["code".into()],
        response_modes_supported: vec!["query".into(), "form_post".into()],
        // `plain` is accepted only from clients configured for it, so only S256 is advertised.
        code_challenge_methods_supported: vec!["S256".into()],
        prompt_values_supported: vec!["none".into(), "login".into(), "consent".into(), "select_account".into()],
        claims_supported: tessera_core::user::CLAIMS_SUPPORTED
            .iter()
            .map(|c| (*c).to_owned())
            .chain(
                [
                    "iss", "aud", "exp", "iat", "nonce", "acr", "amr", "sid", "at_hash", "azp",
                ]
                .map(str::to_owned),
            )
            .collect(),
        grant_types_supported: IMPLEMENTED_GRANT_TYPES.iter().map(|g| g.as_str().to_owned()).collect(),
        scopes_supported: ["openid", "profile", "email", "phone", "offline_access"]
            .map(str::to_owned)
            .to_vec(),
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        subject_types_supported: vec!["public".into()],
        id_token_signing_alg_values_supported: id_token_algorithms,
        authorization_response_iss_parameter_supported: true,
        revocation_endpoint: state.urls.revocation_endpoint.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods.clone(),
        introspection_endpoint: state.urls.introspection_endpoint.clone(),
        // Introspection needs an authenticated caller (RFC 7662 §2.1): not `none`.
        introspection_endpoint_auth_methods_supported: auth_methods
            .iter()
            .filter(|m| *m != AuthMethod::None.as_str())
            .cloned()
            .collect(),
        // Signed with the access-token algorithm of the calling client (server default ES256).
        introspection_signing_alg_values_supported: JwsAlgorithm::ALL.iter().map(|a| a.as_str().to_owned()).collect(),
    }
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn get(State(state): State<AppState>) -> Json<ProviderMetadata> {
    Json(metadata(&state))
}
