//! Client registration: the one service the CLI (and later the admin API) calls to create,
//! change and delete clients. Validates settings and generates secrets (shown once, stored hashed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::RngCore;
use tessera_core::client::{AccessTokenFormat, AuthMethod, ClientSettings, ClientType};
use tessera_core::{secret, Client, Timestamp};
use tessera_storage::{RepositoryError, Storage};
use tessera_types::token::GrantType;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The settings are not acceptable.
    #[error("invalid client: {0}")]
    Invalid(String),
    /// No such client.
    #[error("client {0:?} not found")]
    NotFound(String),
    /// The id is taken.
    #[error("client {0:?} already exists")]
    Exists(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(RepositoryError),
}

impl From<RepositoryError> for ClientError {
    fn from(error: RepositoryError) -> Self {
        Self::Storage(error)
    }
}

/// A client together with the secret generated for it, which is never stored and shown once.
#[derive(Debug)]
pub struct RegisteredClient {
    /// The stored client.
    pub client: Client,
    /// The new secret, for `client_secret_*` clients.
    pub secret: Option<String>,
}

/// Registers a client with `id` (or a generated one) and `settings`, generating a secret when its
/// method needs one.
///
/// # Errors
/// Invalid settings, a taken id, storage failures.
pub async fn create(
    storage: &dyn Storage,
    rng: &mut (dyn RngCore + Send),
    now: Timestamp,
    id: Option<String>,
    settings: ClientSettings,
) -> Result<RegisteredClient, ClientError> {
    validate(&settings)?;
    let id = match id {
        Some(id) => validate_id(id)?,
        None => generated_id(rng),
    };
    let generated = settings.auth_method.uses_secret().then(|| secret::generate(now, rng));
    let client = Client {
        id: id.clone(),
        secret_hash: generated.as_ref().map(|s| s.hash),
        settings,
        created_at: now,
        updated_at: now,
    };
    match storage.clients().add(&client).await {
        Ok(()) => Ok(RegisteredClient {
            client,
            secret: generated.map(|s| s.value),
        }),
        Err(RepositoryError::Conflict(_)) => Err(ClientError::Exists(id)),
        Err(error) => Err(error.into()),
    }
}

/// Replaces a client's settings. A secret is generated if the new method needs one and the client
/// has none; an existing secret is kept (use [`rotate_secret`] to change it) and dropped when the
/// new method uses none.
///
/// # Errors
/// Invalid settings, an unknown client, storage failures.
pub async fn update(
    storage: &dyn Storage,
    rng: &mut (dyn RngCore + Send),
    now: Timestamp,
    id: &str,
    settings: ClientSettings,
) -> Result<RegisteredClient, ClientError> {
    validate(&settings)?;
    let mut client = show(storage, id).await?;
    let mut new_secret = None;
    if settings.auth_method.uses_secret() {
        if client.secret_hash.is_none() {
            let generated = secret::generate(now, rng);
            client.secret_hash = Some(generated.hash);
            new_secret = Some(generated.value);
        }
    } else {
        client.secret_hash = None;
    }
    client.settings = settings;
    client.updated_at = now;
    if !storage.clients().update(&client).await? {
        return Err(ClientError::NotFound(id.to_owned()));
    }
    Ok(RegisteredClient {
        client,
        secret: new_secret,
    })
}

/// Generates a new secret for a `client_secret_*` client; the old one stops working at once.
///
/// # Errors
/// An unknown client or one without a secret-based method; storage failures.
pub async fn rotate_secret(
    storage: &dyn Storage,
    rng: &mut (dyn RngCore + Send),
    now: Timestamp,
    id: &str,
) -> Result<RegisteredClient, ClientError> {
    let mut client = show(storage, id).await?;
    if !client.settings.auth_method.uses_secret() {
        return Err(ClientError::Invalid(format!(
            "client {id:?} authenticates with {}, which uses no secret",
            client.settings.auth_method.as_str()
        )));
    }
    let generated = secret::generate(now, rng);
    client.secret_hash = Some(generated.hash);
    client.updated_at = now;
    if !storage.clients().update(&client).await? {
        return Err(ClientError::NotFound(id.to_owned()));
    }
    Ok(RegisteredClient {
        client,
        secret: Some(generated.value),
    })
}

/// The client with `id`.
///
/// # Errors
/// An unknown client; storage failures.
pub async fn show(storage: &dyn Storage, id: &str) -> Result<Client, ClientError> {
    storage
        .clients()
        .lookup(id)
        .await?
        .ok_or_else(|| ClientError::NotFound(id.to_owned()))
}

/// Deletes the client with `id`.
///
/// # Errors
/// An unknown client; storage failures.
pub async fn delete(storage: &dyn Storage, id: &str) -> Result<(), ClientError> {
    if storage.clients().remove(id).await? {
        Ok(())
    } else {
        Err(ClientError::NotFound(id.to_owned()))
    }
}

/// Checks settings that types cannot express.
///
/// # Errors
/// [`ClientError::Invalid`] with the reason.
pub fn validate(settings: &ClientSettings) -> Result<(), ClientError> {
    let invalid = |reason: String| Err(ClientError::Invalid(reason));
    match (settings.client_type, settings.auth_method) {
        (ClientType::Public, AuthMethod::None)
        | (
            ClientType::Confidential,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost | AuthMethod::PrivateKeyJwt,
        ) => {}
        (ClientType::Public, method) => {
            return invalid(format!(
                "a public client cannot authenticate with {}; use none",
                method.as_str()
            ))
        }
        (ClientType::Confidential, AuthMethod::None) => {
            return invalid("a confidential client must authenticate (not none)".into())
        }
    }
    if settings.client_type == ClientType::Public && settings.grant_types.contains(&GrantType::ClientCredentials) {
        return invalid("client_credentials needs a confidential client (RFC 6749 §4.4)".into());
    }
    if settings.client_type == ClientType::Public && settings.introspection {
        return invalid("introspection needs a confidential client (RFC 7662 §2.1)".into());
    }
    if settings.auth_method == AuthMethod::PrivateKeyJwt {
        match (&settings.jwks, &settings.jwks_uri) {
            (Some(jwks), None) => {
                let keys = jwks
                    .get("keys")
                    .and_then(serde_json::Value::as_array)
                    .ok_or_else(|| ClientError::Invalid("jwks must be a JWK Set: {\"keys\": [...]}".into()))?;
                if keys.is_empty() {
                    return invalid("jwks has no keys".into());
                }
                for key in keys {
                    if key.get("d").is_some() {
                        return invalid("jwks must hold public keys only (a key has a private \"d\" member)".into());
                    }
                    tessera_jose::VerifyingKey::from_jwk(key)
                        .map_err(|e| ClientError::Invalid(format!("jwks: {e}")))?;
                }
            }
            (None, Some(uri)) => {
                if !(uri.starts_with("https://") || uri.starts_with("http://")) {
                    return invalid(format!("jwks_uri {uri:?} must be an http(s) URL"));
                }
            }
            (Some(_), Some(_)) => return invalid("give jwks or jwks_uri, not both".into()),
            (None, None) => return invalid("private_key_jwt needs jwks or jwks_uri".into()),
        }
    }
    for uri in &settings.redirect_uris {
        let is_absolute = uri.starts_with("https://")
            || uri.starts_with("http://")
            || uri.split_once(':').is_some_and(|(scheme, _)| scheme.contains('.'));
        if !is_absolute || uri.contains('#') {
            // RFC 6749 §3.1.2: absolute, no fragment (private-use schemes like com.example.app: allowed).
            return invalid(format!("redirect URI {uri:?} must be absolute and without a fragment"));
        }
    }
    for scope in &settings.scopes {
        if tessera_core::Scope::parse(scope).map(|s| s.iter().count()) != Ok(1) {
            return invalid(format!("scope {scope:?} is not a single scope token"));
        }
    }
    if settings.access_token_format == AccessTokenFormat::Opaque && settings.access_token_algorithm.is_some() {
        return invalid("access_token_algorithm applies to jwt access tokens only".into());
    }
    Ok(())
}

fn validate_id(id: String) -> Result<String, ClientError> {
    // RFC 6749 Appendix A.1: client_id = *VSCHAR; we also exclude the space.
    let is_valid = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if is_valid {
        Ok(id)
    } else {
        Err(ClientError::Invalid(format!(
            "client id {id:?} must be 1–128 printable ASCII characters without spaces"
        )))
    }
}

fn generated_id(rng: &mut dyn RngCore) -> String {
    let mut random = [0u8; 12];
    rng.fill_bytes(&mut random);
    format!(
        "client-{}",
        tessera_jose::base64url_encode(&random).replace(['-', '_'], "x")
    )
}

/// Clients as recently read, so that authenticating a client does not read and decode its
/// registration on every request (it was a sixth of a refresh's CPU time).
///
/// An entry is used for `ttl` after it was read, then read again, so a change made by another
/// process (the CLI writes the database directly; other nodes) applies within `ttl`. Code in this
/// process that changes a client should call [`ClientCache::forget`] (today only the CLI changes
/// clients; the admin API will). Only clients that exist are kept, so a client registered after a
/// failed attempt works on the next request, and the cache holds at most one entry per client
/// ever looked up. A `ttl` of zero turns the cache off.
pub struct ClientCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<Client>)>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ClientCache {
    /// An empty cache whose entries live for `ttl`.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The client `id`, from the cache while its entry is fresh, else from `storage`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn lookup(&self, storage: &dyn Storage, id: &str) -> Result<Option<Arc<Client>>, RepositoryError> {
        if self.ttl.is_zero() {
            return Ok(storage.clients().lookup(id).await?.map(Arc::new));
        }
        let now = Instant::now();
        if let Some((read_at, client)) = self.lock().get(id) {
            if now.saturating_duration_since(*read_at) < self.ttl {
                return Ok(Some(Arc::clone(client)));
            }
        }
        let Some(client) = storage.clients().lookup(id).await? else {
            self.forget(id);
            return Ok(None);
        };
        let client = Arc::new(client);
        self.lock().insert(id.to_owned(), (now, Arc::clone(&client)));
        Ok(Some(client))
    }

    /// Drops the entry of `id`, after this process changed or deleted the client.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, Arc<Client>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
