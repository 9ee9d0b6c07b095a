//! `TestServer`: the real server, in process, on `127.0.0.1:0`, with a mock clock.

use std::sync::Arc;

use tessera_core::client::{AccessTokenFormat, AuthMethod, ClientSettings, ClientType, RefreshTokenSettings};
use tessera_core::Timestamp;
use tessera_server::config::Config;
use tessera_server::keys::KeyStore;
use tessera_server::serve::Server;
use tessera_server::AppState;
use tessera_storage::Storage;
use tessera_storage_sqlite::{SqliteOptions, SqliteStorage};
use tessera_testkit::MockClock;
use tessera_types::token::GrantType;

/// The start of every test clock (2026-01-01T00:00:00Z).
pub const EPOCH: Timestamp = Timestamp(1_767_225_600);

pub struct TestServer {
    pub base: String,
    pub clock: MockClock,
    pub storage: Arc<dyn Storage>,
    pub keys: Arc<KeyStore>,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    kek: String,
    config: Config,
    dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server on a fresh SQLite file with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose configuration `adjust` may change first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("tessera.db"), SqliteOptions::default()).unwrap();
        Self::start_on(Arc::new(storage), dir, adjust).await
    }

    /// A server on the given storage.
    pub async fn start_on(storage: Arc<dyn Storage>, dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Self {
        storage.migrate().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = Config::default();
        config.server.issuer = Some(base.clone());
        config.keys.reload_interval = 3600;
        adjust(&mut config);
        config.validate().unwrap();
        let kek = tessera_jose::KeyEncryptionKey::generate().unwrap().to_base64();
        Self::run(storage, dir, config, MockClock::new(EPOCH), kek, listener).await
    }

    /// Stops this server and starts a new process-equivalent on the same SQLite file, key-encryption
    /// key, configuration and clock (a restart: only what the database holds survives).
    pub async fn restart(mut self) -> Self {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let dir = self.dir.take().unwrap();
        let (config, clock, kek) = (self.config.clone(), self.clock.clone(), self.kek.clone());
        drop(self);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let storage = SqliteStorage::open(&dir.path().join("tessera.db"), SqliteOptions::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = config;
        config.server.issuer = Some(format!("http://{}", listener.local_addr().unwrap()));
        Self::run(Arc::new(storage), dir, config, clock, kek, listener).await
    }

    async fn run(
        storage: Arc<dyn Storage>,
        dir: tempfile::TempDir,
        config: Config,
        clock: MockClock,
        kek: String,
        listener: tokio::net::TcpListener,
    ) -> Self {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let key_encryption_key = tessera_jose::KeyEncryptionKey::from_base64(&kek).unwrap();
        let keys = Arc::new(
            KeyStore::open(storage.as_ref(), key_encryption_key, tessera_core::Clock::now(&clock))
                .await
                .unwrap(),
        );
        let state = AppState::new(
            config.clone(),
            Arc::clone(&storage),
            Arc::new(clock.clone()),
            Arc::clone(&keys),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(Server::with_listener(state.clone(), listener).run(async {
            let _ = rx.await;
        }));
        Self {
            base,
            clock,
            storage,
            keys,
            state,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            kek,
            config,
            dir: Some(dir),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a client; returns its id and secret (if any).
    pub async fn client(&self, id: &str, settings: ClientSettings) -> (String, Option<String>) {
        let registered = tessera_server::clients::create(
            self.storage.as_ref(),
            &mut rand::rngs::OsRng,
            self.clock_now(),
            Some(id.to_owned()),
            settings,
        )
        .await
        .unwrap();
        (registered.client.id, registered.secret)
    }

    pub fn clock_now(&self) -> Timestamp {
        tessera_core::Clock::now(&self.clock)
    }

    /// POSTs a form to `/token` with optional Basic credentials.
    pub async fn token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        self.post_form("/token", basic, form).await
    }

    /// POSTs a form to `path` with optional Basic credentials.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn read(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, headers, json)
}

/// A confidential client-credentials client: scopes `read write`, audience `https://api.example`.
pub fn service_client(auth_method: AuthMethod, format: AccessTokenFormat) -> ClientSettings {
    ClientSettings {
        name: Some("test service".into()),
        client_type: ClientType::Confidential,
        auth_method,
        jwks: None,
        jwks_uri: None,
        redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.example".into(), "https://reports.example".into()],
        access_token_format: format,
        access_token_algorithm: None,
        id_token_algorithm: None,
        access_token_lifetime: None,
        id_token_lifetime: None,
        refresh_tokens: RefreshTokenSettings::default(),
        ..ClientSettings::default()
    }
}

/// Decodes a JWT's header and claims without verifying (for assertions on their content).
pub fn peek(jwt: &str) -> (serde_json::Value, serde_json::Value) {
    let mut parts = jwt.split('.');
    let mut next = || serde_json::from_slice(&tessera_jose::base64url_decode(parts.next().unwrap()).unwrap()).unwrap();
    (next(), next())
}

/// Verifies a JWT against the server's JWKS fetched over HTTP, with the `jsonwebtoken` crate.
pub async fn verify_with_jwks(server: &TestServer, jwt: &str, audience: &str) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet = server
        .http
        .get(server.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.clone().expect("kid in header");
    let jwk = jwks.find(&kid).unwrap_or_else(|| panic!("kid {kid} not in JWKS"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[server.base.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    // The server's clock is mocked; check `exp` against it below, not against the wall clock.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).unwrap();
    data.claims
}

/// Whether an external test tool runs (`program args…` exits 0). When it does not: panics if
/// `required_var` is set to `required` (CI), else prints a loud SKIPPED banner and returns false.
pub fn tool_available(program: &str, args: &[&str], required_var: &str, what: &str, install: &str) -> bool {
    let found = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return true;
    }
    if std::env::var(required_var).as_deref() == Ok("required") {
        panic!("{required_var}=required, but {what} is not installed: {install}");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n!!! Tests with {what} SKIPPED: not installed ({install}); .ci/run installs it !!!\n\n").as_bytes(),
    );
    false
}
