//! Authorization server metadata (RFC 8414 §2) and OpenID Provider metadata (OIDC Discovery §3).

use serde::{Deserialize, Serialize};

/// The metadata document. Only what is implemented is ever listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// RFC 8414 §2 (required): the issuer identifier, an https (or loopback http) URL without query or fragment.
    pub issuer: String,
    /// RFC 8414 §2: required unless no grant uses it; omitted while `/authorize` does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// RFC 8414 §2: the token endpoint.
    pub token_endpoint: String,
    /// OIDC Discovery §3: the UserInfo endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// OIDC RP-Initiated Logout §2.1: where RPs send the browser to log out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// RFC 8414 §2: the JWK Set document.
    pub jwks_uri: String,
    /// RFC 8414 §2 (required): the `response_type` values supported; empty while no front channel exists.
    pub response_types_supported: Vec<String>,
    /// RFC 8414 §2: the `response_mode` values supported.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_modes_supported: Vec<String>,
    /// RFC 8414 §2 / RFC 7636: PKCE methods supported.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// OIDC Discovery (OpenID Connect Prompt Create §4.1): `prompt` values supported.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompt_values_supported: Vec<String>,
    /// OIDC Discovery §3: claims the server can supply.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims_supported: Vec<String>,
    /// RFC 8414 §2: the grant types supported.
    pub grant_types_supported: Vec<String>,
    /// RFC 8414 §2: the scopes this server knows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// RFC 8414 §2: client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2: `alg` values accepted in `private_key_jwt` assertions.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// OIDC Discovery §3 (required for OpenID Providers): subject identifier types.
    pub subject_types_supported: Vec<String>,
    /// OIDC Discovery §3 (required for OpenID Providers): ID token signing algorithms.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// RFC 9207: whether the `iss` authorization response parameter is sent.
    pub authorization_response_iss_parameter_supported: bool,
    /// RFC 8414 §2 / RFC 7009: the revocation endpoint.
    pub revocation_endpoint: String,
    /// RFC 8414 §2: client authentication methods at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2 / RFC 7662: the introspection endpoint.
    pub introspection_endpoint: String,
    /// RFC 8414 §2: client authentication methods at the introspection endpoint.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9701 §7: algorithms of signed introspection responses.
    pub introspection_signing_alg_values_supported: Vec<String>,
}
