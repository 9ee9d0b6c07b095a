//! Shared application state, reached by handlers through `State<AppState>`.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::grant::client_credentials::AccessTokenPolicy;
use tessera_core::{Clock, Timestamp};
use tessera_storage::Storage;

use crate::audit::Audit;
use crate::clients::ClientCache;
use crate::config::Config;
use crate::endpoints::metrics::Metrics;
use crate::extract::client_auth::JwksCache;
use crate::keys::KeyStore;
use crate::pages::Pages;

/// Everything a request may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// The loaded configuration.
    pub config: Config,
    /// Derived once from `config`.
    pub urls: Urls,
    /// The storage backend.
    pub storage: Arc<dyn Storage>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Signing keys.
    pub keys: Arc<KeyStore>,
    /// Request counters and latency histograms.
    pub metrics: Metrics,
    /// Clients' fetched `jwks_uri` documents.
    pub jwks_cache: JwksCache,
    /// Client registrations as recently read.
    pub clients: ClientCache,
    /// The compiled page templates.
    pub pages: Pages,
    /// The audit trail.
    pub audit: Audit,
}

/// The server's own URLs, derived from the issuer.
#[derive(Debug, Clone)]
pub struct Urls {
    /// The issuer identifier.
    pub issuer: String,
    /// `<issuer>/token`.
    pub token_endpoint: String,
    /// `<issuer>/jwks`.
    pub jwks_uri: String,
    /// `<issuer>/authorize`.
    pub authorization_endpoint: String,
    /// `<issuer>/userinfo`.
    pub userinfo_endpoint: String,
    /// `<issuer>/logout`.
    pub end_session_endpoint: String,
    /// `<issuer>/revoke`.
    pub revocation_endpoint: String,
    /// `<issuer>/introspect`.
    pub introspection_endpoint: String,
}

impl AppState {
    /// Builds the state.
    #[must_use]
    pub fn new(config: Config, storage: Arc<dyn Storage>, clock: Arc<dyn Clock>, keys: Arc<KeyStore>) -> Self {
        let issuer = config.issuer();
        let urls = Urls {
            token_endpoint: format!("{issuer}/token"),
            jwks_uri: format!("{issuer}/jwks"),
            authorization_endpoint: format!("{issuer}/authorize"),
            userinfo_endpoint: format!("{issuer}/userinfo"),
            end_session_endpoint: format!("{issuer}/logout"),
            revocation_endpoint: format!("{issuer}/revoke"),
            introspection_endpoint: format!("{issuer}/introspect"),
            issuer,
        };
        let jwks_cache = JwksCache::new(&config.client_auth);
        let clients = ClientCache::new(Duration::from_millis(config.client_auth.client_cache_ttl_ms));
        let audit = Audit::new(storage.clone(), &config.audit);
        Self(Arc::new(Inner {
            audit,
            config,
            urls,
            storage,
            clock,
            keys,
            metrics: Metrics::default(),
            jwks_cache,
            clients,
            pages: Pages::new(),
        }))
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    /// Whether the issuer is https (cookies are then `Secure`).
    #[must_use]
    pub fn is_https(&self) -> bool {
        self.0.urls.issuer.starts_with("https://")
    }

    /// The access-token numbers the grant decisions need.
    #[must_use]
    pub fn access_token_policy(&self) -> AccessTokenPolicy {
        AccessTokenPolicy {
            lifetime: self.0.config.tokens.access_token_lifetime,
            max_lifetime: self.0.config.tokens.access_token_max_lifetime,
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
