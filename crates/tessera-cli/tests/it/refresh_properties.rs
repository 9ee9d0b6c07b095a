//! A property test of the refresh-token lifecycle (DESIGN B2–B10, B18): random sequences of
//! logins, refreshes (of current and old tokens), parallel refreshes, revocations, logouts,
//! password changes and clock moves run against the real server and a simple model of the
//! policy. Every refresh must succeed exactly when the model says the token is alive, which checks
//! the invariants: no RT is valid after its grant is revoked; a used RT never works again (one live
//! RT per chain — no grace window here); no online RT outlives its session; scope never widens;
//! and `refresh_expires_in` is the stored expiry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use proptest::prelude::*;
use tessera_core::client::RefreshTokenIssuance;
use tessera_core::TokenHash;
use tessera_types::token::GrantType;

use crate::refresh_token::refreshing_app;
use crate::support::TestServer;

const IDLE: i64 = 1800;
const OFFLINE_IDLE: i64 = 2_592_000;
const SESSION_MAX: i64 = 36_000;

#[derive(Debug, Clone)]
enum Op {
    Login { offline: bool },
    Refresh { token: usize, narrower: bool },
    Parallel { token: usize, requests: usize },
    Revoke { grant: usize },
    Logout { session: usize },
    PasswordChange,
    Advance { seconds: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(|offline| Op::Login { offline }),
        6 => (0usize..16, any::<bool>()).prop_map(|(token, narrower)| Op::Refresh { token, narrower }),
        1 => (0usize..16, 2usize..5).prop_map(|(token, requests)| Op::Parallel { token, requests }),
        1 => (0usize..8).prop_map(|grant| Op::Revoke { grant }),
        1 => (0usize..8).prop_map(|session| Op::Logout { session }),
        1 => Just(Op::PasswordChange),
        4 => prop_oneof![1u64..120, 1000u64..2000, 1799u64..1802, 30_000u64..40_000].prop_map(|seconds| Op::Advance { seconds }),
    ]
}

struct Session {
    id: String,
    last_active: i64,
    hard_end: i64,
    ended: bool,
}

struct Grant {
    offline: bool,
    session: usize,
    revoked: bool,
}

struct Token {
    value: String,
    grant: usize,
    expires_at: i64,
    spent: bool,
}

#[derive(Default)]
struct Model {
    sessions: Vec<Session>,
    grants: Vec<Grant>,
    tokens: Vec<Token>,
}

impl Model {
    /// Whether the model says refreshing `token` at `now` succeeds.
    fn is_alive(&self, token: &Token, now: i64) -> bool {
        let grant = &self.grants[token.grant];
        let session = &self.sessions[grant.session];
        let session_alive = !session.ended && now < session.hard_end && now < session.last_active + IDLE;
        !grant.revoked && (grant.offline || session_alive) && now < token.expires_at && !token.spent
    }

    /// Whether presenting `token` at `now` is a reuse that revokes its grant (spent, otherwise valid).
    fn is_reuse(&self, token: &Token, now: i64) -> bool {
        let grant = &self.grants[token.grant];
        let session = &self.sessions[grant.session];
        let session_alive = !session.ended && now < session.hard_end && now < session.last_active + IDLE;
        token.spent && !grant.revoked && (grant.offline || session_alive) && now < token.expires_at
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        runtime().block_on(TestServer::start_with(|config| {
            config.refresh_tokens.issuance = RefreshTokenIssuance::Always;
            config.refresh_tokens.max_active_grants = 1000;
        }))
    })
}

static CASE: AtomicUsize = AtomicUsize::new(0);

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let server = server();
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let mut settings = refreshing_app();
    settings.grant_types.push(GrantType::Password);
    let (client_id, secret) = server.client(&format!("prop-{case}"), settings).await;
    let secret = secret.unwrap();
    let client = (client_id.as_str(), secret.as_str());
    let username = format!("user-{case}");
    let mut password = "initial password".to_owned();
    tessera_server::users::create(
        server.storage.as_ref(),
        &mut rand::rngs::OsRng,
        server.clock_now(),
        &username,
        Some(&password),
        Default::default(),
    )
    .await
    .unwrap();
    let mut model = Model::default();

    for op in ops {
        let now = server.clock_now().0;
        match op {
            Op::Login { offline } => {
                let scope = if offline {
                    "openid profile offline_access"
                } else {
                    "openid profile"
                };
                let form = [
                    ("grant_type", "password"),
                    ("username", username.as_str()),
                    ("password", password.as_str()),
                    ("scope", scope),
                ];
                let (status, _, body) = server.token(Some(client), &form).await;
                prop_assert_eq!(status, 200, "{}", body);
                let sid = crate::support::peek(body["access_token"].as_str().unwrap()).1["sid"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                model.sessions.push(Session {
                    id: sid,
                    last_active: now,
                    hard_end: now + SESSION_MAX,
                    ended: false,
                });
                model.grants.push(Grant {
                    offline,
                    session: model.sessions.len() - 1,
                    revoked: false,
                });
                let expires_at = if offline {
                    now + OFFLINE_IDLE
                } else {
                    (now + IDLE).min(now + SESSION_MAX)
                };
                prop_assert_eq!(body["refresh_expires_in"].as_i64(), Some(expires_at - now));
                model.tokens.push(Token {
                    value: body["refresh_token"].as_str().unwrap().to_owned(),
                    grant: model.grants.len() - 1,
                    expires_at,
                    spent: false,
                });
            }
            Op::Refresh { token, narrower } => {
                let Some(index) = (!model.tokens.is_empty()).then(|| token % model.tokens.len()) else {
                    continue;
                };
                let (alive, reuse) = (
                    model.is_alive(&model.tokens[index], now),
                    model.is_reuse(&model.tokens[index], now),
                );
                let value = model.tokens[index].value.clone();
                let scope = narrower.then_some("openid");
                let (status, body) = crate::refresh_token::refresh(server, client, &value, scope).await;
                prop_assert_eq!(
                    status == 200,
                    alive,
                    "model says alive={} for token {}: {} {}",
                    alive,
                    index,
                    status,
                    body
                );
                if status != 200 {
                    prop_assert_eq!(body["error"].as_str(), Some("invalid_grant"));
                    if reuse {
                        let grant = model.tokens[index].grant;
                        model.grants[grant].revoked = true;
                    }
                    continue;
                }
                // Scope never widens; narrower applies to the access token only.
                let granted = body["scope"].as_str().unwrap_or("");
                prop_assert!(
                    granted
                        .split(' ')
                        .all(|s| ["openid", "profile", "offline_access"].contains(&s)),
                    "{}",
                    granted
                );
                if narrower {
                    prop_assert_eq!(granted, "openid");
                }
                record_rotation(server, &mut model, index, now, &body).await?;
            }
            Op::Parallel { token, requests } => {
                let Some(index) = (!model.tokens.is_empty()).then(|| token % model.tokens.len()) else {
                    continue;
                };
                let alive = model.is_alive(&model.tokens[index], now);
                let value = model.tokens[index].value.clone();
                let results = futures::future::join_all(
                    (0..requests).map(|_| crate::refresh_token::refresh(server, client, &value, None)),
                )
                .await;
                let successes: Vec<_> = results.iter().filter(|(status, _)| *status == 200).collect();
                prop_assert!(results.iter().all(|(status, _)| *status < 500));
                prop_assert_eq!(successes.len(), usize::from(alive), "{:?}", results);
                let grant = model.tokens[index].grant;
                if let Some((_, body)) = successes.first() {
                    let body = body.clone();
                    record_rotation(server, &mut model, index, now, &body).await?;
                    // The losers presented a spent token with no grace window: the family is revoked.
                    model.grants[grant].revoked = true;
                } else if model.is_reuse(&model.tokens[index], now) {
                    model.grants[grant].revoked = true;
                }
            }
            Op::Revoke { grant } => {
                if model.grants.is_empty() {
                    continue;
                }
                let index = grant % model.grants.len();
                let token = model.tokens.iter().find(|t| t.grant == index).unwrap();
                let record = server
                    .storage
                    .refresh_tokens()
                    .find_by_hash(&TokenHash::of(&token.value))
                    .await
                    .unwrap()
                    .unwrap();
                server
                    .storage
                    .grants()
                    .revoke(&record.grant_id, server.clock_now(), "admin")
                    .await
                    .unwrap();
                model.grants[index].revoked = true;
            }
            Op::Logout { session } => {
                if model.sessions.is_empty() {
                    continue;
                }
                let index = session % model.sessions.len();
                tessera_server::sessions::end(&server.state, &model.sessions[index].id, "logout")
                    .await
                    .unwrap();
                model.sessions[index].ended = true;
                for grant in model.grants.iter_mut().filter(|g| g.session == index && !g.offline) {
                    grant.revoked = true;
                }
            }
            Op::PasswordChange => {
                password = format!("new password {now}");
                tessera_server::users::set_password(
                    server.storage.as_ref(),
                    server.clock_now(),
                    &username,
                    &password,
                    tessera_server::config::RevocationScope::All,
                )
                .await
                .unwrap();
                for grant in &mut model.grants {
                    grant.revoked = true;
                }
            }
            Op::Advance { seconds } => server.clock.advance(seconds),
        }
    }
    Ok(())
}

/// Records a successful refresh of token `index` in the model and checks `refresh_expires_in`
/// against the stored record and the policy.
async fn record_rotation(
    server: &TestServer,
    model: &mut Model,
    index: usize,
    now: i64,
    body: &serde_json::Value,
) -> Result<(), TestCaseError> {
    let grant = model.tokens[index].grant;
    let session = model.grants[grant].session;
    let expected = if model.grants[grant].offline {
        now + OFFLINE_IDLE
    } else {
        (now + IDLE).min(model.sessions[session].hard_end)
    };
    let value = body["refresh_token"].as_str().unwrap().to_owned();
    let stored = server
        .storage
        .refresh_tokens()
        .find_by_hash(&TokenHash::of(&value))
        .await
        .unwrap()
        .unwrap();
    prop_assert_eq!(stored.expires_at.0, expected);
    prop_assert_eq!(body["refresh_expires_in"].as_i64(), Some(expected - now), "B18");
    prop_assert!(body["refresh_expires_in"].as_i64().unwrap_or(0) > 0);
    model.tokens[index].spent = true;
    if !model.grants[grant].offline {
        model.sessions[session].last_active = now;
    }
    model.tokens.push(Token {
        value,
        grant,
        expires_at: expected,
        spent: false,
    });
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn refresh_lifecycle_matches_the_model(ops in proptest::collection::vec(op(), 1..24)) {
        server(); // started outside the runtime's block_on: it blocks on its own start
        runtime().block_on(run(ops))?;
    }
}
