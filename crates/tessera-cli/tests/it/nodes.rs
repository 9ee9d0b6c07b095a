//! Many nodes on one PostgreSQL database (DESIGN B4, B5): real `tessera serve` processes sharing
//! a fresh test database, one key-encryption key and one issuer, as behind a load balancer.
//!
//! Skipped (like every PostgreSQL test) when `TESSERA_TEST_DATABASE_URL` is unset.
//!
//! The crash test runs the benchmark's `refresh` scenario (`tessera_bench::run`) against two
//! nodes, its workers spread over them, and kills one node with SIGKILL mid-run; the bench's
//! `--record-tokens` file gives every refresh token a chain received in a 200 and the one it was
//! presenting when an answer was lost, and [`check_consistency`] judges them against the database.
//! The outage test drives its own refresh chains ([`run_chain`]): it needs each request's phase
//! and node, and clients that retry the same token after a 503.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use tessera_core::TokenHash;
use tessera_storage::Storage as _;
use tessera_storage_postgres::PostgresStorage;
use tessera_testkit::postgres::{TestDatabase, DATABASE_URL_ENV};

use crate::login_flow::{hidden_fields, Agent, Step, CHALLENGE, PASSWORD, REDIRECT_URI, VERIFIER};

/// The issuer every node shares (nodes behind one load balancer have one public name).
const ISSUER: &str = "http://tessera.test";
/// No request may take longer than this: a slower answer counts as a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node may take to start (debug build, migrations, first keys on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the chains may take to reach each milestone.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(40);

/// One `tessera serve` process.
struct Node {
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Node {
    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh PostgreSQL database and N real `tessera serve` processes on it. Dropping it kills the
/// processes (printing their logs' tails if the test is failing) and drops the database.
struct Cluster {
    database: Option<TestDatabase>,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    nodes: Vec<Node>,
    http: reqwest::Client,
}

/// A registered client's credentials.
#[derive(Clone)]
struct Credentials {
    id: String,
    secret: String,
}

impl Cluster {
    /// Starts `count` nodes at once (so they race for migrations and first keys, as a fleet
    /// does), with `settings` as extra `TESSERA_…` variables. `None` when PostgreSQL tests are
    /// skipped.
    async fn start(count: usize, settings: &[(&str, &str)]) -> Option<Self> {
        let database = TestDatabase::create().await?;
        let kek = tessera_jose::KeyEncryptionKey::generate().unwrap().to_base64();
        let mut env: Vec<(String, String)> = [
            ("TESSERA_DATABASE__URL", database.url()),
            // Several clusters may share one PostgreSQL server (max_connections 100 by default).
            ("TESSERA_DATABASE__MAX_CONNECTIONS", "8"),
            ("TESSERA_KEYS__ENCRYPTION_KEY", &kek),
            ("TESSERA_SERVER__ISSUER", ISSUER),
            ("TESSERA_KEYS__RELOAD_INTERVAL", "1"),
            ("TESSERA_LOG__FORMAT", "json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut cluster = Self {
            database: Some(database),
            dir: tempfile::tempdir().unwrap(),
            env,
            nodes: Vec::new(),
            http: reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap(),
        };
        for index in 0..count {
            let log = cluster.dir.path().join(format!("node{index}.log"));
            let child = cluster
                .command(&["serve"])
                .env("TESSERA_SERVER__LISTEN", "127.0.0.1:0")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            cluster.nodes.push(Node {
                child: Some(child),
                base: String::new(),
                log,
            });
        }
        for index in 0..count {
            cluster.wait_ready(index).await;
        }
        Some(cluster)
    }

    /// Waits for node `index` to log where it listens, then for its `/readyz`.
    async fn wait_ready(&mut self, index: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        let node = &mut self.nodes[index];
        while node.base.is_empty() {
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("node {index} exited at start ({status}):\n{}", node.log_tail(40));
            }
            assert!(Instant::now() < deadline, "node {index} did not start listening");
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let address = text
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .find(|line| line["fields"]["message"] == "listening")
                .and_then(|line| line["fields"]["address"].as_str().map(str::to_owned));
            match address {
                Some(address) => node.base = format!("http://{address}"),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let readyz = format!("{}/readyz", node.base);
        loop {
            let ready = self.http.get(&readyz).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "node {index} did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `tessera` binary with the cluster's configuration.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Runs a CLI command against the cluster's database; it must succeed with JSON on stdout.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Creates a client with the CLI; `args` are `client create` options.
    fn client(&self, id: &str, args: &[&str]) -> Credentials {
        let mut command = vec!["client", "create", "--id", id];
        command.extend_from_slice(args);
        let created = self.cli(&command, None);
        Credentials {
            id: created["client_id"].as_str().unwrap().to_owned(),
            secret: created["client_secret"].as_str().unwrap().to_owned(),
        }
    }

    /// User `ada` and a confidential client `app` allowed the password grant and offline refresh
    /// tokens.
    fn password_client(&self) -> Credentials {
        self.cli(&["user", "create", "ada", "--password-stdin"], Some(PASSWORD));
        self.client(
            "app",
            &[
                "--grant-type",
                "password",
                "--grant-type",
                "refresh_token",
                "--scope",
                "offline_access",
            ],
        )
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[node].base)
    }

    fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base.clone()).collect()
    }

    /// POSTs a form with Basic credentials to `path` on `node`.
    async fn post(
        &self,
        node: usize,
        path: &str,
        client: &Credentials,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(self.url(node, path))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let (status, _, body) = crate::support::read(response).await;
        (status, body)
    }

    /// An offline grant for `ada` through the password grant at `node`; returns its first RT.
    async fn offline_refresh_token(&self, node: usize, client: &Credentials) -> String {
        let (status, body) = self
            .post(
                node,
                "/token",
                client,
                &[
                    ("grant_type", "password"),
                    ("username", "ada"),
                    ("password", PASSWORD),
                    ("scope", "offline_access"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["refresh_token"].as_str().unwrap().to_owned()
    }

    async fn refresh(&self, node: usize, client: &Credentials, refresh_token: &str) -> Outcome {
        refresh(&self.http, &self.nodes[node].base, client, refresh_token).await
    }

    async fn introspect(&self, node: usize, client: &Credentials, token: &str) -> serde_json::Value {
        let (status, body) = self.post(node, "/introspect", client, &[("token", token)]).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn readyz(&self, node: usize) -> u16 {
        let response = self.http.get(self.url(node, "/readyz")).send().await.unwrap();
        response.status().as_u16()
    }

    /// Kills node `index` with SIGKILL.
    fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// The test's own view of the database.
    async fn storage(&self) -> PostgresStorage {
        PostgresStorage::connect(self.database().url(), Default::default())
            .await
            .unwrap()
    }

    /// A plain connection to the test database, for what no repository method shows.
    async fn sql(&self) -> tokio_postgres::Client {
        connect(self.database().url()).await
    }

    fn database(&self) -> &TestDatabase {
        self.database.as_ref().unwrap()
    }

    /// Cuts the nodes off the database: no new connections, every open one terminated, and the
    /// database renamed away (a name that no longer exists, as after a failover to nowhere).
    async fn cut_database(&self) {
        let admin = connect(&admin_url()).await;
        let name = self.database().name().to_owned();
        admin
            .batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&name],
                )
                .await
                .unwrap();
            // Fails while a terminated backend has not exited yet.
            match admin
                .batch_execute(&format!("ALTER DATABASE \"{name}\" RENAME TO \"{name}_away\""))
                .await
            {
                Ok(()) => return,
                Err(error) => assert!(Instant::now() < deadline, "renaming {name} away: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Undoes [`Cluster::cut_database`].
    async fn restore_database(&self) {
        let admin = connect(&admin_url()).await;
        let name = self.database().name();
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{name}_away\" RENAME TO \"{name}\";
                 ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"
            ))
            .await
            .unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() {
            for (index, node) in self.nodes.iter().enumerate() {
                eprintln!("--- node {index} ({}) log tail ---\n{}", node.base, node.log_tail(40));
            }
        }
        let Some(database) = self.database.take() else {
            return;
        };
        // Async work in a destructor: on a thread of its own, so it also works while unwinding
        // inside the test's runtime. Failures are only reported: they must not hide the test's.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                // The outage test may have left the database renamed.
                if let Ok((admin, connection)) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let away = format!("DROP DATABASE IF EXISTS \"{}_away\" WITH (FORCE)", database.name());
                    if let Err(error) = admin.batch_execute(&away).await {
                        eprintln!("warning: {away}: {error}");
                    }
                }
                database.drop_database().await;
            });
        });
        let _ = cleanup.join();
    }
}

fn admin_url() -> String {
    std::env::var(DATABASE_URL_ENV).unwrap_or_default()
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// What a refresh request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 200 with this new refresh token.
    Refreshed(String),
    /// 400 `invalid_grant`.
    Refused,
    /// 503 `temporarily_unavailable`.
    Unavailable,
    /// No HTTP answer (connection refused or reset, or no answer within [`REQUEST_TIMEOUT`]).
    Transport(String),
    /// Anything else: always a failure.
    Other(u16, String),
}

impl Outcome {
    fn kind(&self) -> &'static str {
        match self {
            Self::Refreshed(_) => "200",
            Self::Refused => "400 invalid_grant",
            Self::Unavailable => "503 temporarily_unavailable",
            Self::Transport(_) => "no answer",
            Self::Other(..) => "other",
        }
    }
}

async fn refresh(http: &reqwest::Client, base: &str, client: &Credentials, refresh_token: &str) -> Outcome {
    let sent = http
        .post(format!("{base}/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Outcome::Transport(error.to_string()),
    };
    let status = response.status().as_u16();
    let body = match response.text().await {
        Ok(body) => body,
        Err(error) => return Outcome::Transport(error.to_string()),
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match (status, json["error"].as_str(), json["refresh_token"].as_str()) {
        (200, _, Some(new)) => Outcome::Refreshed(new.to_owned()),
        (400, Some("invalid_grant"), _) => Outcome::Refused,
        (503, Some("temporarily_unavailable"), _) => Outcome::Unavailable,
        _ => Outcome::Other(status, body),
    }
}

#[tokio::test]
async fn fifty_simultaneous_refreshes_over_three_nodes_rotate_exactly_once() {
    let Some(cluster) = Cluster::start(3, &[]).await else {
        return;
    };
    let client = cluster.password_client();
    let refresh_token = cluster.offline_refresh_token(0, &client).await;

    let outcomes = futures::future::join_all((0..50).map(|i| cluster.refresh(i % 3, &client, &refresh_token))).await;
    let mut by_kind: HashMap<&str, usize> = HashMap::new();
    for outcome in &outcomes {
        *by_kind.entry(outcome.kind()).or_default() += 1;
    }
    assert_eq!(
        (by_kind.get("200"), by_kind.get("400 invalid_grant")),
        (Some(&1), Some(&49)),
        "exactly one rotation, every other request refused, no 5xx: {outcomes:?}"
    );
    let winner = outcomes
        .iter()
        .find_map(|o| match o {
            Outcome::Refreshed(new) => Some(new.clone()),
            _ => None,
        })
        .unwrap();

    // One successor in the database; and without a grace window the losers were reuse, which
    // revoked the grant, so even the winner's token is refused now (README, Refresh tokens).
    let children = cluster
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE parent_hash = $1",
            &[&TokenHash::of(&refresh_token).0.as_slice()],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(children, 1);
    assert_eq!(cluster.refresh(1, &client, &winner).await, Outcome::Refused);
}

#[tokio::test]
async fn a_key_rotated_on_one_node_verifies_through_the_others_jwks() {
    let Some(cluster) = Cluster::start(2, &[("TESSERA_KEYS__PUBLICATION_DELAY", "2")]).await else {
        return;
    };
    let admin = cluster.client("ops", &["--admin"]);
    let service = cluster.client(
        "svc",
        &[
            "--grant-type",
            "client_credentials",
            "--scope",
            "read",
            "--audience",
            "https://api.example",
        ],
    );
    let issue = || async {
        let (status, body) = cluster
            .post(0, "/token", &service, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    };
    let kid_of = |jwt: &str| jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let before = issue().await;

    let (status, body) = cluster
        .post(
            0,
            "/token",
            &admin,
            &[("grant_type", "client_credentials"), ("scope", "tessera:admin")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rotated: serde_json::Value = cluster
        .http
        .post(cluster.url(0, "/admin/v1/keys/rotate"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .json(&serde_json::json!({ "algorithms": ["ES256"] }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_kid = rotated[0]["kid"].as_str().unwrap().to_owned();

    // Node 1 re-reads keys every second: the new key shows in its JWKS without a restart.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !jwks(&cluster, 1).await.contains(&new_kid) {
        assert!(Instant::now() < deadline, "{new_kid} never appeared in node 1's JWKS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Node 0 signs with it once the publication delay has passed.
    let after = loop {
        let token = issue().await;
        if kid_of(&token) == new_kid {
            break token;
        }
        assert!(Instant::now() < deadline, "node 0 never signed with {new_kid}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(kid_of(&before), new_kid);

    // Both the new token and one of the retiring key verify through node 1: with a real client
    // against its JWKS, and by node 1 itself.
    for token in [&after, &before] {
        let claims = verify_with_node_jwks(&cluster, 1, token, "https://api.example").await;
        assert_eq!(claims["client_id"], "svc");
        let introspected = cluster.introspect(1, &service, token).await;
        assert_eq!(introspected["active"], true, "{introspected}");
        assert_eq!(introspected["iss"], ISSUER);
    }
}

async fn jwks(cluster: &Cluster, node: usize) -> String {
    let response = cluster.http.get(cluster.url(node, "/jwks")).send().await.unwrap();
    response.text().await.unwrap()
}

/// Verifies a JWT with the `jsonwebtoken` crate against `node`'s JWKS and the shared issuer.
async fn verify_with_node_jwks(cluster: &Cluster, node: usize, jwt: &str, audience: &str) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks(cluster, node).await).unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.clone().expect("kid in header");
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} not in node {node}'s JWKS"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_grant_revoked_on_one_node_is_refused_on_the_other_at_once() {
    let Some(cluster) = Cluster::start(2, &[]).await else {
        return;
    };
    let client = cluster.password_client();
    let first = cluster.offline_refresh_token(0, &client).await;
    let Outcome::Refreshed(current) = cluster.refresh(1, &client, &first).await else {
        panic!("the first refresh failed");
    };

    let (status, body) = cluster
        .post(0, "/revoke", &client, &[("token", current.as_str())])
        .await;
    assert_eq!(status, 200, "{body}");
    // No node caches grants: the very next request at the other node is refused.
    assert_eq!(cluster.refresh(1, &client, &current).await, Outcome::Refused);
    assert_eq!(cluster.introspect(1, &client, &current).await["active"], false);
}

#[tokio::test]
async fn an_authorization_code_used_at_two_nodes_at_once_succeeds_once() {
    let Some(cluster) = Cluster::start(2, &[]).await else {
        return;
    };
    cluster.cli(&["user", "create", "ada", "--password-stdin"], Some(PASSWORD));
    let web = cluster.client(
        "web",
        &[
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "offline_access",
        ],
    );
    let code = code_at(&cluster.nodes[0].base, &cluster.nodes[1].base, &web.id).await;

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    let (at_0, at_1) = tokio::join!(
        cluster.post(0, "/token", &web, &form),
        cluster.post(1, "/token", &web, &form)
    );
    let mut statuses = [at_0.0, at_1.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "exactly one exchange succeeds: {at_0:?} {at_1:?}");
    let (winner, loser) = if at_0.0 == 200 {
        (at_0.1, at_1.1)
    } else {
        (at_1.1, at_0.1)
    };
    assert_eq!(loser["error"], "invalid_grant", "{loser}");
    // B15: the second use revoked what the first produced, whichever node it reached.
    let refresh_token = winner["refresh_token"].as_str().unwrap();
    assert_eq!(cluster.refresh(1, &web, refresh_token).await, Outcome::Refused);
}

/// Signs `ada` in with a fresh browserless agent and returns a code for `client_id` (scope
/// `openid offline_access`, so the consent page is answered too). The browser's requests are
/// spread over the nodes as a load balancer would: `/authorize` and `/consent` at `first`, `/login`
/// at `second`.
async fn code_at(first: &str, second: &str, client_id: &str) -> String {
    let agent = Agent::new();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid offline_access"),
            ("state", "xyz"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let (status, html) = agent.get(&format!("{first}/authorize?{query}")).await.page();
    assert_eq!(status, 200, "{html}");
    let login = [("username", "ada"), ("password", PASSWORD)];
    let mut step = submit(&agent, &format!("{second}/login"), &html, &login).await;
    if let Step::Page(_, html) = &step {
        assert!(html.contains("consent-form"), "expected a consent page: {html}");
        step = submit(&agent, &format!("{first}/consent"), html, &[("decision", "allow")]).await;
    }
    let params = step.redirect();
    params
        .get("code")
        .unwrap_or_else(|| panic!("no code in {params:?}"))
        .clone()
}

/// Submits the form of page `html` to `url` with its hidden fields and `fields`.
async fn submit(agent: &Agent, url: &str, html: &str, fields: &[(&str, &str)]) -> Step {
    let hidden = hidden_fields(html);
    let mut form: Vec<(&str, &str)> = hidden.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.extend_from_slice(fields);
    agent.post(url, &form).await
}

/// Phases of the outage test, as seen by a request when it starts and when it ends.
const BEFORE: usize = 0;
/// Between two phases (the test is cutting or restoring the database).
const CHANGING: usize = 1;
/// While the database is cut off.
const DURING: usize = 2;
/// After the database came back.
const RESTORED: usize = 3;
const PHASES: usize = 4;

/// What the chains share with the test: when to stop, the phase, and counters the test polls for
/// progress.
struct Shared {
    stop: AtomicBool,
    phase: AtomicUsize,
    nodes: usize,
    /// 200s by (chain, phase at the end, node).
    refreshed: Vec<AtomicUsize>,
    /// 503s by (chain, phase at the end, node).
    unavailable: Vec<AtomicUsize>,
    /// Chains that ended (their grant is gone).
    ended: Vec<AtomicBool>,
}

impl Shared {
    fn new(chains: usize, nodes: usize) -> Arc<Self> {
        let counters = || (0..chains * PHASES * nodes).map(|_| AtomicUsize::new(0)).collect();
        Arc::new(Self {
            stop: AtomicBool::new(false),
            phase: AtomicUsize::new(BEFORE),
            nodes,
            refreshed: counters(),
            unavailable: counters(),
            ended: (0..chains).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    fn index(&self, chain: usize, phase: usize, node: usize) -> usize {
        (chain * PHASES + phase) * self.nodes + node
    }

    fn phase(&self) -> usize {
        self.phase.load(Ordering::SeqCst)
    }

    fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    fn refreshed(&self, chain: usize, phase: usize, node: usize) -> usize {
        self.refreshed[self.index(chain, phase, node)].load(Ordering::SeqCst)
    }

    fn unavailable(&self, chain: usize, phase: usize, node: usize) -> usize {
        self.unavailable[self.index(chain, phase, node)].load(Ordering::SeqCst)
    }

    /// Whether every chain still running satisfies `condition`.
    fn every_live_chain(&self, condition: impl Fn(usize) -> bool) -> bool {
        (0..self.ended.len()).all(|chain| self.ended[chain].load(Ordering::SeqCst) || condition(chain))
    }
}

/// One request of a chain.
#[derive(Debug)]
struct Request {
    node: usize,
    started: usize,
    ended: usize,
    outcome: Outcome,
}

/// Everything one refresh chain saw.
#[derive(Debug, Default)]
struct ChainLog {
    /// The chain's name in failure messages.
    name: String,
    /// Every refresh token the chain received in a 200, in order; the first is the password
    /// grant's.
    received: Vec<String>,
    /// The token presented in a request that got no definite answer (no HTTP answer, or 503),
    /// while it is still the chain's current token: its rotation may have committed.
    uncertain: Option<String>,
    /// The chain's current token was refused after such a request: the lost answer rotated it
    /// (and the retry, a reuse, revoked the grant). The check below verifies that in the database.
    lost: bool,
    /// The requests of a chain of [`run_chain`] (the bench's chains have none).
    requests: Vec<Request>,
}

/// A client refreshing as fast as it can, alternating nodes, retrying the same token after an
/// answer it did not get.
async fn run_chain(
    chain: usize,
    http: reqwest::Client,
    bases: Arc<Vec<String>>,
    client: Arc<Credentials>,
    first: String,
    shared: Arc<Shared>,
) -> ChainLog {
    let mut log = ChainLog {
        name: format!("chain {chain}"),
        received: vec![first],
        ..ChainLog::default()
    };
    let mut turn = chain;
    while !shared.stop.load(Ordering::SeqCst) {
        let node = turn % shared.nodes;
        turn += 1;
        let current = log.received.last().unwrap().clone();
        let started = shared.phase();
        let outcome = refresh(&http, &bases[node], &client, &current).await;
        let ended = shared.phase();
        let mut finished = false;
        match &outcome {
            Outcome::Refreshed(new) => {
                shared.refreshed[shared.index(chain, ended, node)].fetch_add(1, Ordering::SeqCst);
                log.received.push(new.clone());
                log.uncertain = None;
            }
            Outcome::Refused => {
                log.lost = log.uncertain.as_ref() == Some(&current);
                finished = true;
            }
            Outcome::Unavailable | Outcome::Transport(_) | Outcome::Other(..) => {
                if outcome == Outcome::Unavailable {
                    shared.unavailable[shared.index(chain, ended, node)].fetch_add(1, Ordering::SeqCst);
                }
                log.uncertain = Some(current);
                // A client's back-off before retrying (the server says `Retry-After: 1`).
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        log.requests.push(Request {
            node,
            started,
            ended,
            outcome,
        });
        if finished {
            shared.ended[chain].store(true, Ordering::SeqCst);
            break;
        }
    }
    log
}

/// Number of concurrent refresh chains in the crash test (bench workers) and the outage test.
const CHAINS: usize = 16;

/// Starts [`CHAINS`] chains, each with its own offline grant.
async fn start_chains(
    cluster: &Cluster,
    client: &Credentials,
    shared: &Arc<Shared>,
) -> Vec<tokio::task::JoinHandle<ChainLog>> {
    let bases = Arc::new(cluster.bases());
    let client_arc = Arc::new(client.clone());
    let mut chains = Vec::new();
    for chain in 0..CHAINS {
        let first = cluster.offline_refresh_token(chain % bases.len(), client).await;
        chains.push(tokio::spawn(run_chain(
            chain,
            cluster.http.clone(),
            Arc::clone(&bases),
            Arc::clone(&client_arc),
            first,
            Arc::clone(shared),
        )));
    }
    chains
}

async fn stop_chains(shared: &Shared, chains: Vec<tokio::task::JoinHandle<ChainLog>>) -> Vec<ChainLog> {
    shared.stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for chain in chains {
        logs.push(chain.await.unwrap());
    }
    logs
}

/// Polls `condition` until it holds (without a fixed sleep), failing after `timeout`.
async fn eventually(what: &str, timeout: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request summary for failure messages.
fn describe(logs: &[ChainLog], keep: impl Fn(&Request) -> bool) -> Vec<String> {
    logs.iter()
        .flat_map(|log| {
            log.requests.iter().filter(|r| keep(r)).map(move |r| {
                format!(
                    "{} node {} {}→{}: {:?}",
                    log.name, r.node, r.started, r.ended, r.outcome
                )
            })
        })
        .collect()
}

/// A refresh token's row, as the consistency check reads it.
struct StoredToken {
    parent: Option<Vec<u8>>,
    use_count: i64,
    spent: bool,
}

/// DESIGN B4/B5 after the chains ran, using node `node`: every refresh token a client received
/// in a 200 is still usable exactly once, or was rotated by a request whose answer was lost
/// (the database shows it spent, with its one successor); no token was ever usable twice; and
/// every earlier token of every chain is refused.
async fn check_consistency(cluster: &Cluster, client: &Credentials, logs: &[ChainLog], node: usize) {
    let storage = cluster.storage().await;
    let sql = cluster.sql().await;

    // No two live successors of any token, anywhere (no grace window: no siblings either).
    let doubled = sql
        .query(
            "SELECT encode(parent_hash, 'hex') FROM refresh_tokens
             WHERE parent_hash IS NOT NULL GROUP BY parent_hash HAVING count(*) > 1",
            &[],
        )
        .await
        .unwrap();
    assert!(doubled.is_empty(), "tokens with two successors: {doubled:?}");
    // Every stored token, by hash.
    let rows = sql
        .query(
            "SELECT hash, parent_hash, use_count, spent_at IS NOT NULL FROM refresh_tokens",
            &[],
        )
        .await
        .unwrap();
    let stored: HashMap<Vec<u8>, StoredToken> = rows
        .iter()
        .map(|row| {
            let token = StoredToken {
                parent: row.get(1),
                use_count: row.get(2),
                spent: row.get(3),
            };
            (row.get(0), token)
        })
        .collect();
    let children = |hash: &TokenHash| {
        stored
            .values()
            .filter(|token| token.parent.as_deref() == Some(hash.0.as_slice()))
            .count()
    };

    let mut seen = HashSet::new();
    for log in logs {
        let chain = &log.name;
        for (k, token) in log.received.iter().enumerate() {
            assert!(seen.insert(token.clone()), "{chain}: token {k} was received twice");
            let hash = TokenHash::of(token);
            let Some(StoredToken {
                parent,
                use_count,
                spent,
            }) = stored.get(hash.0.as_slice())
            else {
                panic!("{chain}: token {k}, received in a 200, is not in the database");
            };
            assert!(*use_count <= 1, "{chain}: token {k} was used {use_count} times");
            if k > 0 {
                let previous = TokenHash::of(&log.received[k - 1]);
                assert_eq!(
                    parent.as_deref(),
                    Some(previous.0.as_slice()),
                    "{chain}: token {k} is not the successor of token {}",
                    k - 1
                );
            }
            if k + 1 < log.received.len() {
                assert!(*spent, "{chain}: token {k} was rotated but is not spent");
            }
        }

        let last = log.received.last().unwrap();
        let hash = TokenHash::of(last);
        let token = storage
            .refresh_tokens()
            .find_by_hash(&hash)
            .await
            .unwrap()
            .expect("the last token is stored");
        let earlier: Vec<&String> = log.received.iter().rev().skip(1).take(3).collect();
        if token.spent_at.is_some() {
            // Rotated behind the client's back: only by a request whose answer it never got.
            assert!(
                log.uncertain.as_ref() == Some(last),
                "{chain}: its current token was spent though every request with it was answered \
                 (lost: {})",
                log.lost
            );
            assert_eq!(children(&hash), 1, "{chain}: a spent token has exactly one successor");
            assert_eq!(cluster.refresh(node, client, last).await, Outcome::Refused);
        } else {
            assert!(!log.lost, "{chain}: its current token was refused yet is not spent");
            assert_eq!(children(&hash), 0, "{chain}: an unspent token has a successor");
            for old in &earlier {
                assert_eq!(
                    cluster.introspect(node, client, old).await["active"],
                    false,
                    "{chain}: an earlier token is still active"
                );
            }
            assert_eq!(cluster.introspect(node, client, last).await["active"], true);
            let once = cluster.refresh(node, client, last).await;
            assert!(
                matches!(once, Outcome::Refreshed(_)),
                "{chain}: its current token does not refresh: {once:?}"
            );
            assert_eq!(
                cluster.refresh(node, client, last).await,
                Outcome::Refused,
                "{chain}: a token refreshed twice"
            );
        }
        for old in earlier {
            assert_eq!(
                cluster.refresh(node, client, old).await,
                Outcome::Refused,
                "{chain}: an earlier token refreshed"
            );
        }
    }
}

/// How long the crash test's benchmark runs.
const CRASH_RUN: Duration = Duration::from_secs(6);
/// By when (from the run's start) the crash test's chains must have made progress at both nodes,
/// so that node 0 has the rest of the run to show that it kept serving.
const CRASH_KILL_BY: Duration = Duration::from_secs(3);

/// The refresh tokens each bench worker has recorded so far (`granted` and `received` lines) in
/// a `--record-tokens` file being written (whole lines only).
fn tokens_per_worker(path: &Path, workers: usize) -> Vec<usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let mut counts = vec![0; workers];
    for line in complete.lines() {
        let mut fields = line.split(' ');
        if let (Some(worker), Some("granted" | "received")) = (fields.next(), fields.next()) {
            counts[worker.parse::<usize>().unwrap()] += 1;
        }
    }
    counts
}

/// A refresh chain of the bench: the worker that ran it, and what it saw.
struct BenchChain {
    worker: usize,
    log: ChainLog,
}

/// What a `tessera-bench --record-tokens` file says.
struct Recorded {
    chains: Vec<BenchChain>,
    /// The workers of the `lost` lines (a refresh that got no answer), in order.
    lost: Vec<usize>,
    /// The `refused` lines.
    refused: Vec<String>,
}

/// Reads a `--record-tokens` file: a `granted` line starts a worker's chain, `received` lines
/// extend it, and a `lost` or `refused` line (for the chain's current token) ends it.
fn read_recorded(path: &Path) -> Recorded {
    let text = std::fs::read_to_string(path).unwrap();
    let mut recorded = Recorded {
        chains: Vec::new(),
        lost: Vec::new(),
        refused: Vec::new(),
    };
    // The chain each worker is running, as an index into `recorded.chains`.
    let mut current: HashMap<usize, usize> = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [worker, kind, token, ..] = fields[..] else {
            panic!("not a token line: {line:?}");
        };
        let (worker, token) = (worker.parse::<usize>().unwrap(), token.to_owned());
        if kind == "granted" {
            let earlier = recorded.chains.iter().filter(|c| c.worker == worker).count();
            let log = ChainLog {
                name: format!("worker {worker} (node {}) chain {earlier}", worker % 2),
                received: vec![token],
                ..ChainLog::default()
            };
            current.insert(worker, recorded.chains.len());
            recorded.chains.push(BenchChain { worker, log });
            continue;
        }
        let chain = *current
            .get(&worker)
            .unwrap_or_else(|| panic!("{line:?}: the worker runs no chain"));
        let log = &mut recorded.chains[chain].log;
        match kind {
            "received" => log.received.push(token),
            "lost" | "refused" => {
                assert_eq!(log.received.last(), Some(&token), "{line:?}: not the chain's token");
                current.remove(&worker);
                if kind == "lost" {
                    log.uncertain = Some(token);
                    recorded.lost.push(worker);
                } else {
                    recorded.refused.push(line.to_owned());
                }
            }
            _ => panic!("not a token line: {line:?}"),
        }
    }
    recorded
}

/// The issue's crash test: while the benchmark's `refresh` scenario runs against two nodes, node 1
/// is killed with SIGKILL; afterwards every refresh token a client received in a 200 is usable
/// exactly once or was rotated by a request whose answer was lost, none is usable twice, and node 0
/// kept serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_refresh_loses_no_refresh_token() {
    let Some(mut cluster) = Cluster::start(2, &[]).await else {
        return;
    };
    let client = cluster.password_client();
    let file = cluster.dir.path().join("tokens");
    let bases = cluster.bases();
    let (workers, duration) = (CHAINS.to_string(), CRASH_RUN.as_secs_f64().to_string());
    let timeout = REQUEST_TIMEOUT.as_secs_f64().to_string();
    // Worker i at node i mod 2, one chain (one offline grant of `ada`) each.
    let options = tessera_bench::Options::try_parse_from([
        "tessera-bench",
        "refresh",
        "--url",
        &bases[0],
        "--url",
        &bases[1],
        "--concurrency",
        &workers,
        "--warmup",
        "0",
        "--duration",
        &duration,
        "--timeout",
        &timeout,
        "--client-id",
        &client.id,
        "--client-secret",
        &client.secret,
        "--username",
        "ada",
        "--password",
        PASSWORD,
        "--record-tokens",
        file.to_str().unwrap(),
    ])
    .unwrap();
    let sql = cluster.sql().await;
    let started = Instant::now();
    let bench = tokio::spawn(async move { tessera_bench::run(&options).await });
    loop {
        let counts = tokens_per_worker(&file, CHAINS);
        if counts.iter().all(|&count| count >= 10) {
            break;
        }
        if bench.is_finished() {
            panic!("the bench ended before the kill: {:?}", bench.await);
        }
        assert!(
            started.elapsed() < CRASH_KILL_BY,
            "no 10 tokens per chain at both nodes within {CRASH_KILL_BY:?}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Requests in flight at node 1 die with it; its workers' connections are refused from now on.
    cluster.kill(1);
    let killed_at = started.elapsed();
    // Every token that exists now: what node 0 issues from here on is not in it.
    let before_kill: HashSet<Vec<u8>> = sql
        .query("SELECT hash FROM refresh_tokens", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let report = bench.await.unwrap().unwrap();
    let ran = started.elapsed();
    assert!(
        ran < CRASH_RUN + Duration::from_secs(3),
        "the run ended on time, not after {ran:?}: {report}"
    );

    let recorded = read_recorded(&file);
    assert!(
        recorded.refused.is_empty(),
        "a token was refused: {:#?}",
        recorded.refused
    );
    let mut lost = recorded.lost.clone();
    lost.sort_unstable();
    let node_1_workers: Vec<usize> = (1..CHAINS).step_by(2).collect();
    assert_eq!(
        lost, node_1_workers,
        "every chain at node 1, and only those, lost the answer to the request it sent when (or after) \
         node 1 died"
    );
    let mut workers: Vec<usize> = recorded.chains.iter().map(|chain| chain.worker).collect();
    workers.sort_unstable();
    assert_eq!(
        workers,
        (0..CHAINS).collect::<Vec<_>>(),
        "one chain per worker, none restarted"
    );
    // No warm-up: every refresh was measured, so the report counts what the file shows.
    let received: usize = recorded.chains.iter().map(|chain| chain.log.received.len() - 1).sum();
    assert_eq!(report.succeeded(), received as u64, "{report}");
    let failed: Vec<(&str, u64)> = report
        .outcomes
        .iter()
        .filter(|(outcome, _)| *outcome != "2xx")
        .map(|(outcome, count)| (outcome.as_str(), *count))
        .collect();
    assert_eq!(failed, [("transport_error", lost.len() as u64)], "{report}");
    // Node 1's workers then failed their password grants fast, 100 ms apart (one more for the
    // moments between node 1's death and `killed_at`), until the end.
    let pauses = u64::try_from((ran - killed_at).as_millis() / 100).unwrap() + 2;
    assert!(
        (lost.len() as u64..=lost.len() as u64 * pauses).contains(&report.setup_failures),
        "set-up failures: {report}"
    );
    assert_eq!(report.errors, lost.len() as u64 + report.setup_failures, "{report}");

    // Node 0 kept serving: each of its chains received tokens issued after the kill.
    let mut after_kill = 0;
    for chain in recorded.chains.iter().filter(|chain| chain.worker % 2 == 0) {
        let fresh = chain
            .log
            .received
            .iter()
            .filter(|token| !before_kill.contains(TokenHash::of(token).0.as_slice()))
            .count();
        assert!(fresh > 0, "{}: no token from node 0 after the kill", chain.log.name);
        after_kill += fresh;
    }
    eprintln!(
        "crash test: {received} rotations over {CHAINS} chains, {after_kill} by node 0 after the kill at \
         {killed_at:?}; {} set-up failures at node 1 afterwards",
        report.setup_failures
    );
    let logs: Vec<ChainLog> = recorded.chains.into_iter().map(|chain| chain.log).collect();
    check_consistency(&cluster, &client, &logs, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_without_restart() {
    let Some(cluster) = Cluster::start(2, &[]).await else {
        return;
    };
    let client = cluster.password_client();
    let shared = Shared::new(CHAINS, 2);
    // A grant outside the chains, to show what a 503 leaves behind: nothing.
    let probe = cluster.offline_refresh_token(0, &client).await;
    let chains = start_chains(&cluster, &client, &shared).await;
    eventually(
        "every chain has refreshed 5 times at each node",
        PROGRESS_TIMEOUT,
        || shared.every_live_chain(|c| shared.refreshed(c, BEFORE, 0) >= 5 && shared.refreshed(c, BEFORE, 1) >= 5),
    )
    .await;

    shared.set_phase(CHANGING);
    cluster.cut_database().await;
    shared.set_phase(DURING);
    eventually("every chain has had 503s from both nodes", PROGRESS_TIMEOUT, || {
        shared.every_live_chain(|c| shared.unavailable(c, DURING, 0) >= 2 && shared.unavailable(c, DURING, 1) >= 2)
    })
    .await;
    for node in 0..2 {
        assert_eq!(
            cluster.readyz(node).await,
            503,
            "node {node} is not ready during the outage"
        );
        // Answered within the client's timeout (a hang would be `Transport`).
        assert_eq!(cluster.refresh(node, &client, &probe).await, Outcome::Unavailable);
    }

    shared.set_phase(CHANGING);
    cluster.restore_database().await;
    shared.set_phase(RESTORED);
    eventually("both nodes refresh every chain again", PROGRESS_TIMEOUT, || {
        shared.every_live_chain(|c| shared.refreshed(c, RESTORED, 0) >= 5 && shared.refreshed(c, RESTORED, 1) >= 5)
    })
    .await;
    for node in 0..2 {
        assert_eq!(cluster.readyz(node).await, 200, "node {node} recovered");
    }
    let logs = stop_chains(&shared, chains).await;
    assert!(
        matches!(cluster.refresh(1, &client, &probe).await, Outcome::Refreshed(_)),
        "the 503s did not use up the probe token"
    );

    let never = describe(&logs, |r| {
        matches!(r.outcome, Outcome::Transport(_) | Outcome::Other(..))
    });
    assert!(never.is_empty(), "no hang, no 5xx but 503, ever: {never:#?}");
    let before = describe(&logs, |r| {
        r.started == BEFORE && r.ended == BEFORE && !matches!(r.outcome, Outcome::Refreshed(_))
    });
    assert!(
        before.is_empty(),
        "before the outage every refresh succeeds: {before:#?}"
    );
    let during = describe(&logs, |r| {
        r.started == DURING && r.ended == DURING && r.outcome != Outcome::Unavailable
    });
    assert!(during.is_empty(), "during the outage every refresh is 503: {during:#?}");
    let refused = describe(&logs, |r| r.outcome == Outcome::Refused);
    let lost = logs.iter().filter(|log| log.lost).count();
    assert_eq!(
        refused.len(),
        lost,
        "a token is refused only after an answer was lost: {refused:#?}"
    );
    let total: usize = logs.iter().map(|log| log.received.len() - 1).sum();
    let unavailable = logs
        .iter()
        .flat_map(|log| &log.requests)
        .filter(|r| r.outcome == Outcome::Unavailable)
        .count();
    eprintln!("outage test: {total} rotations, {unavailable} 503s; {lost} chains lost a rotation's answer");
    check_consistency(&cluster, &client, &logs, 0).await;
}
