//! The configuration tree. One struct per `[section]`; every field says its unit and default.
//! README.md's configuration reference lists the same keys (a test keeps the two in step).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tessera_core::client::RefreshTokenIssuance;
use tessera_core::refresh::{PublicClientRefresh, RefreshPolicy};
use tessera_types::JwsAlgorithm;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A seed system's defaults to start from: `ehealth`, `helseid` or `identity-engine` (DESIGN §6);
    /// settings given explicitly override the preset's. Default: none.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// `development` (default: generated key-encryption key file allowed, loud warnings) or
    /// `production` (explicit https issuer and key-encryption key required).
    #[serde(default)]
    pub mode: Mode,
    /// HTTP listener and issuer.
    #[serde(default)]
    pub server: ServerConfig,
    /// Storage backend.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Signing keys and their encryption at rest.
    #[serde(default)]
    pub keys: KeysConfig,
    /// Access, ID token and code lifetimes.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// Refresh-token policy (DESIGN §2).
    #[serde(default)]
    pub refresh_tokens: RefreshTokensConfig,
    /// SSO session limits.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// Client authentication.
    #[serde(default)]
    pub client_auth: ClientAuthConfig,
    /// Token exchange (RFC 8693): the external issuers whose JWTs are accepted as subject and
    /// actor tokens.
    #[serde(default)]
    pub token_exchange: TokenExchangeConfig,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// The seed systems' policies as presets (DESIGN §6, ../shared/seeds/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// A national eHealth service (Keycloak-based): RTs rotate and idle out after 30 min, sessions
    /// end after 10 h, offline tokens idle out after 30 days.
    Ehealth,
    /// HelseID (IdentityServer-based): RTs only with `offline_access` for clients allowed them;
    /// public clients never get RTs.
    Helseid,
    /// "Identity Engine" (Auth0-style): rotation with reuse detection for SPAs with PKCE, per-app
    /// "Allow Offline Access".
    IdentityEngine,
}

impl Preset {
    /// The preset's settings, as configuration (lower precedence than the file and environment).
    #[must_use]
    pub fn settings(self) -> &'static str {
        match self {
            Self::Ehealth => include_str!("presets/ehealth.toml"),
            Self::Helseid => include_str!("presets/helseid.toml"),
            Self::IdentityEngine => include_str!("presets/identity-engine.toml"),
        }
    }
}

/// Whether operator-must-change settings may fall back to generated values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Generated key-encryption key file and http issuer allowed, with warnings.
    #[default]
    Development,
    /// Refuses to start without an https issuer and a key-encryption key.
    Production,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Issuer identifier (RFC 8414 §2). Default `http://<listen>`; production requires https.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Largest accepted request body, bytes. Default 65536.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Seconds a request may take before it is answered 503. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: u64,
    /// Seconds to let in-flight requests finish after SIGTERM. Default 30.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: u64,
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://<path>` (default `sqlite://tessera.db`, relative to the working directory) or
    /// `postgres://user@host:port/database`.
    #[serde(default = "default_database_url")]
    pub url: String,
    /// PostgreSQL: connections in the pool. SQLite: reader connections. Default 16.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// SQLite busy timeout and PostgreSQL connect timeout, milliseconds. Default 5000.
    #[serde(default = "default_busy_timeout_ms")]
    pub timeout_ms: u64,
    /// Seconds between purges of expired tokens and retired keys (in small batches). Default 300.
    #[serde(default = "default_purge_interval")]
    pub purge_interval: u64,
    /// How long revoked grants, grants past their hard end and SSO sessions past their hard end
    /// are kept (for the admin API's listings) before the purge deletes them, seconds.
    /// Default 2592000 (30 days).
    #[serde(default = "default_ended_retention")]
    pub ended_retention: u64,
}

/// `[keys]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Key-encryption key: 32 bytes, base64. Encrypts signing keys at rest. No default.
    #[serde(default)]
    pub encryption_key: Option<SecretString>,
    /// File holding the key-encryption key (base64). In development mode, when neither this nor
    /// `encryption_key` is set, `tessera.kek` beside the working directory is generated and used.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// Algorithm of access tokens (ES256, RS256 or EdDSA), overridable per client. Default ES256.
    #[serde(default = "default_access_token_algorithm")]
    pub access_token_algorithm: JwsAlgorithm,
    /// Algorithm of ID tokens, overridable per client. Default RS256 (the OIDC default).
    #[serde(default = "default_id_token_algorithm")]
    pub id_token_algorithm: JwsAlgorithm,
    /// Seconds a new key is published in JWKS before it signs. Default 3600.
    #[serde(default = "default_publication_delay")]
    pub publication_delay: u64,
    /// Seconds between reloads of the key set from the database (to see other nodes' and the
    /// CLI's rotations). Default 30.
    #[serde(default = "default_reload_interval")]
    pub reload_interval: u64,
}

/// `[tokens]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Access-token lifetime, seconds. Default 300.
    #[serde(default = "default_access_token_lifetime")]
    pub access_token_lifetime: u64,
    /// Cap on any access-token lifetime, including per-client settings, seconds. Default 28800.
    #[serde(default = "default_access_token_max_lifetime")]
    pub access_token_max_lifetime: u64,
    /// ID-token lifetime, seconds. Default 300.
    #[serde(default = "default_id_token_lifetime")]
    pub id_token_lifetime: u64,
    /// Authorization-code lifetime, seconds (single use). Default 60.
    #[serde(default = "default_authorization_code_lifetime")]
    pub authorization_code_lifetime: u64,
}

/// `[refresh_tokens]` (DESIGN §2; every number is also settable per client)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokensConfig {
    /// When RTs are issued: `offline_access` (default), `always` or `never`.
    #[serde(default = "default_issuance")]
    pub issuance: RefreshTokenIssuance,
    /// Online RT idle timeout, seconds: an RT expires this long after issue unless used. Default 1800.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
    /// Offline RT idle timeout, seconds. Default 2592000 (30 days).
    #[serde(default = "default_offline_idle_timeout")]
    pub offline_idle_timeout: u64,
    /// Offline grant maximum lifetime, seconds; 0 = unlimited. Default 0.
    #[serde(default)]
    pub offline_max_lifetime: u64,
    /// Whether every refresh returns a new RT and spends the presented one. Default true.
    #[serde(default = "default_true")]
    pub rotation: bool,
    /// Uses of one RT beyond the first (with rotation off: uses allowed − 1). Default 0.
    #[serde(default)]
    pub max_reuse: u32,
    /// Whether a spent RT presented outside the grace window revokes its grant. Default true.
    #[serde(default = "default_true")]
    pub reuse_detection: bool,
    /// Seconds after spending in which a re-presented RT gets a sibling instead of revoking the
    /// grant; at most 60. Default 0.
    #[serde(default)]
    pub reuse_grace_window: u64,
    /// Public clients: `rotation_required` (default: RTs only with rotation and reuse detection
    /// on) or `deny` (never).
    #[serde(default)]
    pub public_clients: PublicClientRefresh,
    /// Active grants per (user, client); issuing one more revokes the least recently used. Default 50.
    #[serde(default = "default_max_active_grants")]
    pub max_active_grants: u32,
    /// Which grants a password change or disabling the user revokes: `all` (default), `online`, `none`.
    #[serde(default)]
    pub revoke_on_password_change: RevocationScope,
    /// Whether clients may hold offline grants (`offline_access`) unless their own setting says
    /// otherwise. Default true (the client must still be allowed the `offline_access` scope).
    #[serde(default = "default_true")]
    pub allow_offline_access: bool,
    /// Whether user claims are re-read at refresh (a disabled or deleted user then fails). Default true.
    #[serde(default = "default_true")]
    pub reread_user_claims: bool,
}

impl RefreshTokensConfig {
    /// The server-wide refresh policy (clients may override parts of it).
    #[must_use]
    pub fn policy(&self) -> RefreshPolicy {
        RefreshPolicy {
            issuance: self.issuance,
            idle_timeout: self.idle_timeout,
            offline_idle_timeout: self.offline_idle_timeout,
            offline_max_lifetime: self.offline_max_lifetime,
            rotation: self.rotation,
            max_reuse: self.max_reuse,
            reuse_detection: self.reuse_detection,
            reuse_grace_window: self.reuse_grace_window,
            public_clients: self.public_clients,
            allow_offline_access: self.allow_offline_access,
            max_active_grants: self.max_active_grants,
        }
    }
}

/// `[sessions]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// SSO session hard end after `auth_time`, seconds; no online RT outlives it. Default 36000.
    #[serde(default = "default_session_max_lifetime")]
    pub max_lifetime: u64,
    /// SSO session idle timeout, seconds (a refresh counts as activity). Default 1800.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
}

/// `[client_auth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// `private_key_jwt`: longest accepted assertion lifetime (`exp` − now), seconds. Default 300.
    #[serde(default = "default_assertion_max_lifetime")]
    pub assertion_max_lifetime: u64,
    /// Tolerated clock difference for `exp`/`nbf`/`iat` of assertions, seconds. Default 30.
    #[serde(default = "default_clock_skew")]
    pub clock_skew: u64,
    /// How long a client's fetched `jwks_uri` document is cached, seconds. Default 300.
    #[serde(default = "default_jwks_cache_ttl")]
    pub jwks_cache_ttl: u64,
    /// Timeout for fetching a client's `jwks_uri`, milliseconds. Default 5000.
    #[serde(default = "default_busy_timeout_ms")]
    pub jwks_fetch_timeout_ms: u64,
    /// How long a client's registration, once read, is used without reading it again,
    /// milliseconds; so a change made by another process (the CLI, another node) applies within
    /// this time. 0 reads it on every request. Default 1000.
    #[serde(default = "default_client_cache_ttl_ms")]
    pub client_cache_ttl_ms: u64,
}

/// `[token_exchange]` (RFC 8693, DESIGN B13)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeConfig {
    /// The external issuers whose JWTs (`urn:ietf:params:oauth:token-type:jwt`) are accepted as
    /// subject and actor tokens, as `[[token_exchange.trusted_issuers]]` tables. Default: none.
    #[serde(default)]
    pub trusted_issuers: Vec<TrustedIssuer>,
}

/// `[[token_exchange.trusted_issuers]]`: one external issuer whose JWTs we accept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The `iss` value of its tokens, compared exactly. Required; must not be our own issuer.
    pub issuer: String,
    /// Where its JWK Set is fetched (cached for `client_auth.jwks_cache_ttl`): https, or http on a
    /// loopback host. Exactly one of `jwks_uri` and `jwks`. Default: none.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Its JWK Set inline (`{"keys": [...]}`): a TOML inline table, or a string holding the JSON
    /// document. Exactly one of `jwks_uri` and `jwks`. Default: none.
    #[serde(default, deserialize_with = "deserialize_jwks")]
    pub jwks: Option<serde_json::Value>,
    /// Signature algorithms its tokens may use (never `none` or HMAC). Default `["RS256", "ES256"]`.
    #[serde(default = "default_trusted_issuer_algorithms")]
    pub algorithms: Vec<JwsAlgorithm>,
    /// The `aud` its tokens must carry. Default: none, and then our issuer identifier or our token
    /// endpoint URL.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim naming the subject. Default `sub`.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// What the subject claim names: `username` (default) or `user_id` of a local user, or
    /// `pass_through` (carried into our tokens as is, no local user).
    #[serde(default)]
    pub subject: SubjectMapping,
    /// Oldest accepted token, seconds since its `iat`; 0 = no limit (`iat` is then optional).
    /// Default 3600.
    #[serde(default = "default_trusted_issuer_max_age")]
    pub max_age: u64,
    /// The scopes its tokens convey when they carry no `scope` (or `scp`) claim. Default: none.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// What the subject claim of a trusted issuer's token names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectMapping {
    /// A local user's username.
    #[default]
    Username,
    /// A local user's id (our `sub`).
    UserId,
    /// Not a local user: the value becomes the `sub` of the tokens we issue.
    PassThrough,
}

/// `[audit]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Whether audit events are stored in the database (readable through the admin API) as well
    /// as logged. Default true.
    #[serde(default = "default_true")]
    pub store: bool,
    /// Whether the high-volume events — `token.issued`, `refresh_token.rotated` and
    /// `authorization_code.issued` — are stored too (they are always logged). Storing one per
    /// refresh roughly halves SQLite's rotations per second (docs/PERFORMANCE.md). Default false.
    #[serde(default)]
    pub store_token_events: bool,
    /// How long stored events are kept, seconds. Default 7776000 (90 days).
    #[serde(default = "default_audit_retention")]
    pub retention: u64,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tessera_server=debug,info`. Default `info`.
    /// `RUST_LOG`, when set, wins.
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which grants a user-level event revokes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationScope {
    /// Online and offline grants.
    #[default]
    All,
    /// Online grants only.
    Online,
    /// None.
    None,
}

/// A secret configuration value: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> usize {
    65_536
}
fn default_request_timeout() -> u64 {
    30
}
fn default_shutdown_timeout() -> u64 {
    30
}
fn default_database_url() -> String {
    "sqlite://tessera.db".into()
}
fn default_max_connections() -> usize {
    16
}
fn default_busy_timeout_ms() -> u64 {
    5000
}
fn default_ended_retention() -> u64 {
    30 * 24 * 3600
}
fn default_purge_interval() -> u64 {
    300
}
fn default_access_token_algorithm() -> JwsAlgorithm {
    JwsAlgorithm::ES256
}
fn default_id_token_algorithm() -> JwsAlgorithm {
    JwsAlgorithm::RS256
}
fn default_publication_delay() -> u64 {
    3600
}
fn default_reload_interval() -> u64 {
    30
}
fn default_access_token_lifetime() -> u64 {
    300
}
fn default_access_token_max_lifetime() -> u64 {
    28_800
}
fn default_id_token_lifetime() -> u64 {
    300
}
fn default_authorization_code_lifetime() -> u64 {
    60
}
fn default_issuance() -> RefreshTokenIssuance {
    RefreshTokenIssuance::OfflineAccess
}
fn default_idle_timeout() -> u64 {
    1800
}
fn default_offline_idle_timeout() -> u64 {
    2_592_000
}
fn default_true() -> bool {
    true
}
fn default_max_active_grants() -> u32 {
    50
}
fn default_session_max_lifetime() -> u64 {
    36_000
}
fn default_assertion_max_lifetime() -> u64 {
    300
}
fn default_clock_skew() -> u64 {
    30
}
fn default_jwks_cache_ttl() -> u64 {
    300
}
fn default_client_cache_ttl_ms() -> u64 {
    1000
}
fn default_trusted_issuer_algorithms() -> Vec<JwsAlgorithm> {
    vec![JwsAlgorithm::RS256, JwsAlgorithm::ES256]
}
fn default_subject_claim() -> String {
    "sub".into()
}
fn default_trusted_issuer_max_age() -> u64 {
    3600
}
fn default_audit_retention() -> u64 {
    90 * 24 * 3600
}
fn default_log_filter() -> String {
    "info".into()
}

/// An inline JWK Set: a table, or a string holding the JSON document.
fn deserialize_jwks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        Some(serde_json::Value::String(text)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("not a JSON document: {e}"))),
        other => Ok(other),
    }
}

macro_rules! default_from_serde {
    ($($ty:ty),*) => {$(
        impl Default for $ty {
            fn default() -> Self {
                // Every field has a serde default, so an empty table is the default value.
                match serde::Deserialize::deserialize(serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(std::iter::empty::<(String, String)>())) {
                    Ok(value) => value,
                    Err(_) => unreachable!("every field of {} has a default", stringify!($ty)),
                }
            }
        }
    )*};
}
default_from_serde!(
    ServerConfig,
    DatabaseConfig,
    KeysConfig,
    TokensConfig,
    RefreshTokensConfig,
    SessionsConfig,
    ClientAuthConfig,
    TokenExchangeConfig,
    AuditConfig,
    LogConfig
);
