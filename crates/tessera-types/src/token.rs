//! The token endpoint's requests and responses (RFC 6749 §4, §5).

use serde::{Deserialize, Serialize};

use crate::form::FormParams;

/// A grant type Tessera knows by name (RFC 6749 §4, RFC 8693).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum GrantType {
    /// RFC 6749 §4.1.
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    /// RFC 6749 §6.
    #[serde(rename = "refresh_token")]
    RefreshToken,
    /// RFC 6749 §4.4.
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    /// RFC 6749 §4.3 (off unless a client enables it).
    #[serde(rename = "password")]
    Password,
    /// RFC 8693.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    /// Every grant type, in a stable order.
    pub const ALL: [Self; 5] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::Password,
        Self::TokenExchange,
    ];

    /// The `grant_type` value on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    /// Parses a `grant_type` value.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|grant| grant.as_str() == value)
    }
}

/// A token request, parsed once at the edge: one variant per grant type the server implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessTokenRequest {
    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    AuthorizationCode(AuthorizationCodeGrant),
    /// `grant_type=client_credentials` (RFC 6749 §4.4.2).
    ClientCredentials(ClientCredentialsGrant),
    /// `grant_type=refresh_token` (RFC 6749 §6).
    RefreshToken(RefreshTokenGrant),
    /// `grant_type=password` (RFC 6749 §4.3.2), only for clients that enable it.
    Password(PasswordGrant),
    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693 §2.1).
    TokenExchange(TokenExchangeGrant),
}

/// RFC 8693 §3 token type identifiers that Tessera accepts or issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TokenType {
    /// `urn:ietf:params:oauth:token-type:access_token`: an access token of ours.
    #[serde(rename = "urn:ietf:params:oauth:token-type:access_token")]
    AccessToken,
    /// `urn:ietf:params:oauth:token-type:refresh_token`: a refresh token of ours.
    #[serde(rename = "urn:ietf:params:oauth:token-type:refresh_token")]
    RefreshToken,
    /// `urn:ietf:params:oauth:token-type:id_token`: an ID token of ours.
    #[serde(rename = "urn:ietf:params:oauth:token-type:id_token")]
    IdToken,
    /// `urn:ietf:params:oauth:token-type:jwt`: a JWT (from a trusted external issuer, as a subject
    /// or actor; a JWT access token of ours, as a result).
    #[serde(rename = "urn:ietf:params:oauth:token-type:jwt")]
    Jwt,
}

impl TokenType {
    /// Every type, in a stable order.
    pub const ALL: [Self; 4] = [Self::AccessToken, Self::RefreshToken, Self::IdToken, Self::Jwt];

    /// The URN on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "urn:ietf:params:oauth:token-type:access_token",
            Self::RefreshToken => "urn:ietf:params:oauth:token-type:refresh_token",
            Self::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            Self::Jwt => "urn:ietf:params:oauth:token-type:jwt",
        }
    }

    /// Parses a token type URN.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// The parameters of a token-exchange request (RFC 8693 §2.1). Tokens are redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TokenExchangeGrant {
    /// The token that represents the party on whose behalf the request is made.
    pub subject_token: Option<String>,
    /// Its type URN.
    pub subject_token_type: Option<String>,
    /// The token of the acting party (delegation).
    pub actor_token: Option<String>,
    /// Its type URN; required with `actor_token`.
    pub actor_token_type: Option<String>,
    /// The type of token asked for; an access token when absent.
    pub requested_token_type: Option<String>,
    /// Logical names of the target services.
    pub audience: Vec<String>,
    /// RFC 8707 resource URIs of the target services.
    pub resource: Vec<String>,
    /// Space-delimited scope asked for.
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenExchangeGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchangeGrant")
            .field("subject_token_type", &self.subject_token_type)
            .field("actor_token_type", &self.actor_token_type)
            .field("requested_token_type", &self.requested_token_type)
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The parameters of a refresh request.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RefreshTokenGrant {
    /// The refresh token (a secret: redacted from `Debug`).
    pub refresh_token: Option<String>,
    /// A scope narrower than the grant's, for the access token only.
    pub scope: Option<String>,
}

impl std::fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The parameters of a resource-owner password request.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PasswordGrant {
    /// The username.
    pub username: Option<String>,
    /// The password (a secret: redacted from `Debug`).
    pub password: Option<String>,
    /// The requested scope.
    pub scope: Option<String>,
}

impl std::fmt::Debug for PasswordGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordGrant")
            .field("username", &self.username)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The parameters of an authorization-code request.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AuthorizationCodeGrant {
    /// The code (a secret: redacted from `Debug`).
    pub code: Option<String>,
    /// Must equal the `redirect_uri` of the authorization request.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier (a secret: redacted from `Debug`).
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for AuthorizationCodeGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCodeGrant")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// The parameters of a client-credentials request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientCredentialsGrant {
    /// Space-delimited scope (RFC 6749 §3.3); `None` means the client's default.
    pub scope: Option<String>,
    /// RFC 8707 `resource` values (absolute URIs naming the APIs the token is for).
    pub resource: Vec<String>,
    /// `audience` values (RFC 8693 §2.1 vocabulary, also sent by Auth0-style clients).
    pub audience: Vec<String>,
}

/// Why a token request could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequestError {
    /// `grant_type` is missing.
    MissingGrantType,
    /// `grant_type` names something this server does not implement.
    UnsupportedGrantType(String),
}

impl AccessTokenRequest {
    /// Builds the typed request from the form, after client-authentication parameters were taken out.
    ///
    /// # Errors
    /// When `grant_type` is missing or not implemented.
    pub fn from_form(form: &mut FormParams) -> Result<Self, TokenRequestError> {
        let grant_type = form.take("grant_type").ok_or(TokenRequestError::MissingGrantType)?;
        match GrantType::parse(&grant_type) {
            Some(GrantType::AuthorizationCode) => Ok(Self::AuthorizationCode(AuthorizationCodeGrant {
                code: form.take("code"),
                redirect_uri: form.take("redirect_uri"),
                code_verifier: form.take("code_verifier"),
            })),
            Some(GrantType::RefreshToken) => Ok(Self::RefreshToken(RefreshTokenGrant {
                refresh_token: form.take("refresh_token"),
                scope: form.take("scope"),
            })),
            Some(GrantType::Password) => Ok(Self::Password(PasswordGrant {
                username: form.take("username"),
                password: form.take("password"),
                scope: form.take("scope"),
            })),
            Some(GrantType::ClientCredentials) => Ok(Self::ClientCredentials(ClientCredentialsGrant {
                scope: form.take("scope"),
                resource: form.take_all("resource"),
                audience: form.take_all("audience"),
            })),
            Some(GrantType::TokenExchange) => Ok(Self::TokenExchange(TokenExchangeGrant {
                subject_token: form.take("subject_token"),
                subject_token_type: form.take("subject_token_type"),
                actor_token: form.take("actor_token"),
                actor_token_type: form.take("actor_token_type"),
                requested_token_type: form.take("requested_token_type"),
                audience: form.take_all("audience"),
                resource: form.take_all("resource"),
                scope: form.take("scope"),
            })),
            None => Err(TokenRequestError::UnsupportedGrantType(grant_type)),
        }
    }

    /// The grant type of this request.
    #[must_use]
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode(_) => GrantType::AuthorizationCode,
            Self::ClientCredentials(_) => GrantType::ClientCredentials,
            Self::RefreshToken(_) => GrantType::RefreshToken,
            Self::Password(_) => GrantType::Password,
            Self::TokenExchange(_) => GrantType::TokenExchange,
        }
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token (token exchange: the issued token, whatever its type).
    pub access_token: String,
    /// `Bearer` for access tokens; `N_A` for a token exchange's result that is not one (RFC 8693 §2.2.1).
    pub token_type: String,
    /// Token exchange: the type of the issued token (RFC 8693 §2.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scope, space-delimited; present when non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The refresh token, when one is issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires if unused (a Keycloak habit clients rely on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
    /// The ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
