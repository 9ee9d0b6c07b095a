//! Clients (RFC 6749 §2): who may ask for tokens, how they authenticate, and what they may get.

use serde::{Deserialize, Serialize};
use tessera_types::token::{GrantType, TokenType};
use tessera_types::JwsAlgorithm;

use crate::time::Timestamp;
use crate::token::TokenHash;

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// SHA-256 of the client secret, for the `client_secret_*` methods.
    pub secret_hash: Option<TokenHash>,
    /// Everything else; stored as one JSON document so later settings need no migration.
    pub settings: ClientSettings,
    /// When the client was registered.
    pub created_at: Timestamp,
    /// When the client was last changed.
    pub updated_at: Timestamp,
}

/// RFC 6749 §2.1 client types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClientType {
    /// Can keep a secret (a server-side application).
    Confidential,
    /// Cannot keep a secret (a browser or native app): authenticates with `none` and PKCE.
    Public,
}

/// Token endpoint authentication methods (RFC 7591 §2, OIDC Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2, OIDC Core §9).
    PrivateKeyJwt,
    /// No authentication: public clients only.
    None,
}

impl AuthMethod {
    /// Every method, in a stable order.
    pub const ALL: [Self; 4] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::PrivateKeyJwt,
        Self::None,
    ];

    /// The registered name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    /// Parses a registered name.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }

    /// Whether the method uses a shared secret.
    #[must_use]
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }
}

/// How access tokens are issued to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccessTokenFormat {
    /// A signed JWT per RFC 9068, verifiable by resource servers against `/jwks`.
    Jwt,
    /// An opaque reference token (`tsr_at_…`), checked by introspection.
    Opaque,
}

/// When a client gets refresh tokens (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefreshTokenIssuance {
    /// Only when `offline_access` is asked and allowed.
    OfflineAccess,
    /// An online RT at every code exchange (Keycloak style).
    Always,
    /// Never.
    Never,
}

/// Per-client refresh-token settings; `None` means the server-wide default (DESIGN §2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenSettings {
    /// When RTs are issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuance: Option<RefreshTokenIssuance>,
    /// Online RT idle timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Offline RT idle timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_idle_timeout: Option<u64>,
    /// Offline grant maximum lifetime, seconds (0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_max_lifetime: Option<u64>,
    /// Whether every refresh returns a new RT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<bool>,
    /// Uses allowed beyond the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reuse: Option<u32>,
    /// Whether a spent RT outside the grace window revokes the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_detection: Option<bool>,
    /// Grace window, seconds (at most 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_grace_window: Option<u64>,
    /// Whether the client may hold offline grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_offline_access: Option<bool>,
}

/// The settings of a client other than its id and secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Confidential or public.
    pub client_type: ClientType,
    /// How the client authenticates at the token endpoint.
    pub auth_method: AuthMethod,
    /// The client's public keys for `private_key_jwt`, as a JWK Set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where to fetch the client's JWK Set for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Redirect URIs, matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grant types the client may use.
    #[serde(default)]
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences (resource indicators) the client may ask tokens for.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// JWT (RFC 9068) or opaque access tokens.
    pub access_token_format: AccessTokenFormat,
    /// Signing algorithm for this client's JWT access tokens; `None` = server default (ES256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_algorithm: Option<JwsAlgorithm>,
    /// Signing algorithm for this client's ID tokens; `None` = server default (RS256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_algorithm: Option<JwsAlgorithm>,
    /// Access-token lifetime, seconds; `None` = server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime: Option<u64>,
    /// ID-token lifetime, seconds; `None` = server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_lifetime: Option<u64>,
    /// Refresh-token settings; empty = server defaults.
    #[serde(default)]
    pub refresh_tokens: RefreshTokenSettings,
    /// Whether `/authorize` requires PKCE (RFC 7636). Always true for public clients. Default true.
    #[serde(default = "default_true")]
    pub require_pkce: bool,
    /// Whether the `plain` PKCE method is accepted (legacy clients only). Default false.
    #[serde(default)]
    pub allow_plain_pkce: bool,
    /// Whether the user must consent to this client's scopes (remembered per user, client and
    /// scopes). Consent is always asked for `offline_access`. Default false (first-party app).
    #[serde(default)]
    pub require_consent: bool,
    /// Where RP-initiated logout may send the browser afterwards, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Whether the client may introspect access tokens issued to other clients (RFC 7662): set
    /// for resource servers. Any authenticated client may introspect its own tokens. Default false.
    #[serde(default)]
    pub introspection: bool,
    /// What this client may do with token exchange (RFC 8693); `None`: nothing, even with the
    /// grant type allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<TokenExchangeSettings>,
}

/// A client's token-exchange policy (RFC 8693, DESIGN B13). Everything is refused unless listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeSettings {
    /// The subject token types the client may present.
    #[serde(default)]
    pub subject_token_types: Vec<TokenType>,
    /// The token types it may ask for; an access token is always allowed. `refresh_token` starts
    /// a new grant for the subject's user with this client's refresh-token rules.
    #[serde(default)]
    pub requested_token_types: Vec<TokenType>,
    /// The audiences (or resource URIs) it may ask tokens for, each with the scopes a token for
    /// it may carry.
    #[serde(default)]
    pub audiences: Vec<ExchangeAudience>,
    /// Whether it may exchange without an actor token (the result is the subject's token: no
    /// `act` claim).
    #[serde(default)]
    pub impersonation: bool,
    /// Whether it may exchange with an actor token (the result carries `act`).
    #[serde(default)]
    pub delegation: bool,
    /// The actors (the `sub` of the actor token) allowed to act; empty: only the client itself
    /// (an access token it got with client credentials).
    #[serde(default)]
    pub actors: Vec<String>,
    /// Whether a result may outlive the subject token. Default false: its lifetime is capped by
    /// the subject token's remaining life.
    #[serde(default)]
    pub may_outlive_subject: bool,
}

/// An audience a client may exchange tokens for, and the scopes such tokens may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExchangeAudience {
    /// The `audience` name or `resource` URI, matched exactly.
    pub audience: String,
    /// The scopes a token for this audience may carry.
    #[serde(default)]
    pub scopes: Vec<String>,
}

fn default_true() -> bool {
    true
}

impl Default for ClientSettings {
    /// A confidential `client_secret_basic` client with JWT access tokens, no grants, no scopes.
    fn default() -> Self {
        Self {
            name: None,
            client_type: ClientType::Confidential,
            auth_method: AuthMethod::ClientSecretBasic,
            jwks: None,
            jwks_uri: None,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            scopes: Vec::new(),
            audiences: Vec::new(),
            access_token_format: AccessTokenFormat::Jwt,
            access_token_algorithm: None,
            id_token_algorithm: None,
            access_token_lifetime: None,
            id_token_lifetime: None,
            refresh_tokens: RefreshTokenSettings::default(),
            require_pkce: true,
            allow_plain_pkce: false,
            require_consent: false,
            post_logout_redirect_uris: Vec::new(),
            introspection: false,
            token_exchange: None,
        }
    }
}

impl Client {
    /// Whether the client may use `grant_type`.
    #[must_use]
    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.settings.grant_types.contains(&grant_type)
    }
}
