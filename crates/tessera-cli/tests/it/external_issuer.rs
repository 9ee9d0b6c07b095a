//! JWTs from trusted external issuers (RFC 8693 token exchange subject and actor tokens):
//! `tessera_server::tokens::external::verify` against a real issuer of our own — its own key and
//! a JWK Set served on an ephemeral port.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tessera_jose::{JwsAlgorithm, SigningKey};
use tessera_server::config::{SubjectMapping, TrustedIssuer};
use tessera_server::tokens::external::{verify, ExternalToken};

use crate::support::{TestServer, EPOCH};

/// An external OAuth/OIDC issuer: an ES256 key and its JWK Set at `GET /jwks` on `127.0.0.1:0`.
pub struct ExternalIssuer {
    base: String,
    shared: Arc<IssuerKeys>,
}

struct IssuerKeys {
    /// The key that signs and is served; replaced by `rotate`.
    current: Mutex<Arc<SigningKey>>,
    /// How many keys this issuer has had.
    generation: AtomicUsize,
    /// How many times `GET /jwks` was answered.
    fetches: AtomicUsize,
}

impl IssuerKeys {
    fn current(&self) -> Arc<SigningKey> {
        Arc::clone(&self.current.lock().unwrap())
    }

    fn jwks(&self) -> Value {
        json!({ "keys": [self.current().public_jwk()] })
    }
}

impl ExternalIssuer {
    /// Starts the issuer's JWKS endpoint with a fresh key (`kid` `key-1`).
    pub async fn start() -> Self {
        let shared = Arc::new(IssuerKeys {
            current: Mutex::new(Arc::new(new_key("key-1"))),
            generation: AtomicUsize::new(1),
            fetches: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::clone(&shared);
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let served = Arc::clone(&served);
                async move {
                    served.fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(served.jwks())
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, shared }
    }

    /// Its issuer identifier (the base URL).
    pub fn issuer(&self) -> String {
        self.base.clone()
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base)
    }

    /// The JWK Set it serves now.
    pub fn jwks(&self) -> Value {
        self.shared.jwks()
    }

    /// A JWT of `claims` signed with its current key.
    pub fn sign(&self, claims: &Value) -> String {
        self.shared.current().sign_jwt("JWT", claims).unwrap()
    }

    /// A JWT of `claims` signed with a key it does not publish, under its current key's `kid`.
    pub fn sign_with_other_key(&self, claims: &Value) -> String {
        let kid = self.shared.current().kid().to_owned();
        new_key(&kid).sign_jwt("JWT", claims).unwrap()
    }

    /// Replaces its key with a new one (`kid` `key-<n>`), the only one served from now on.
    pub fn rotate(&self) {
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *self.shared.current.lock().unwrap() = Arc::new(new_key(&format!("key-{generation}")));
    }

    /// How many times its JWK Set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Its configuration as a trusted issuer (keys from `jwks_uri`), every other setting default.
    pub fn trusted(&self) -> TrustedIssuer {
        serde_json::from_value(json!({ "issuer": self.issuer(), "jwks_uri": self.jwks_uri() })).unwrap()
    }

    /// Its configuration as a trusted issuer with its current JWK Set inline.
    pub fn trusted_inline(&self) -> TrustedIssuer {
        serde_json::from_value(json!({ "issuer": self.issuer(), "jwks": self.jwks() })).unwrap()
    }
}

fn new_key(kid: &str) -> SigningKey {
    SigningKey::generate(JwsAlgorithm::ES256, kid.to_owned()).unwrap().0
}

/// A server trusting `trusted`.
async fn server_trusting(trusted: Vec<TrustedIssuer>) -> TestServer {
    TestServer::start_with(|config| config.token_exchange.trusted_issuers = trusted).await
}

/// Claims a trusted issuer would put in a token for us: `sub` `ada`, issued now, valid 5 minutes.
fn claims(server: &TestServer, issuer: &ExternalIssuer) -> Value {
    let now = server.clock_now().0;
    json!({
        "iss": issuer.issuer(),
        "sub": "ada",
        "aud": server.base,
        "iat": now,
        "exp": now + 300,
    })
}

/// `claims` with `changes` applied (a `null` removes the claim).
fn with(mut claims: Value, changes: &Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

async fn accepted(server: &TestServer, jwt: &str) -> ExternalToken {
    match verify(&server.state, jwt).await {
        Ok(token) => token,
        Err(reason) => panic!("refused: {reason}"),
    }
}

#[track_caller]
fn assert_refused(result: Result<ExternalToken, String>, expected: &str) {
    match result {
        Ok(token) => panic!("accepted {token:?}, expected a refusal containing {expected:?}"),
        Err(reason) => assert!(reason.contains(expected), "{reason:?} does not contain {expected:?}"),
    }
}

#[tokio::test]
async fn accepted_with_jwks_uri() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    let jwt = issuer.sign(&with(
        claims(&server, &issuer),
        &json!({"azp": "partner-app", "act": {"sub": "robot"}, "may_act": {"sub": "svc"}, "extra": 7}),
    ));
    let token = accepted(&server, &jwt).await;
    assert_eq!(token.issuer, issuer.issuer());
    assert_eq!(
        (token.subject.as_str(), token.mapping),
        ("ada", SubjectMapping::Username)
    );
    assert_eq!(token.scope, None);
    assert_eq!(token.audience, [server.base.as_str()]);
    assert_eq!(token.issued_at, Some(EPOCH));
    assert_eq!(token.expires_at.0, EPOCH.0 + 300);
    assert_eq!(token.client_id.as_deref(), Some("partner-app"));
    assert_eq!(token.act, Some(json!({"sub": "robot"})));
    assert_eq!(token.may_act, Some(json!({"sub": "svc"})));
    assert_eq!(token.claims["extra"], 7);

    // Our token endpoint is a name for us too, alone or among other audiences; `client_id` wins over `azp`.
    let jwt = issuer.sign(&with(
        claims(&server, &issuer),
        &json!({"aud": ["https://api.example", server.url("/token")], "client_id": "cid", "azp": "azp"}),
    ));
    let token = accepted(&server, &jwt).await;
    assert_eq!(token.audience.len(), 2);
    assert_eq!(token.client_id.as_deref(), Some("cid"));
    // The JWK Set was fetched once and then cached.
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn accepted_with_inline_jwks() {
    let issuer = ExternalIssuer::start().await;
    let mut trusted = issuer.trusted_inline();
    trusted.subject = SubjectMapping::PassThrough;
    let server = server_trusting(vec![trusted]).await;
    let token = accepted(&server, &issuer.sign(&claims(&server, &issuer))).await;
    assert_eq!(
        (token.subject.as_str(), token.mapping),
        ("ada", SubjectMapping::PassThrough)
    );
    assert_eq!(issuer.jwks_fetches(), 0, "inline keys are never fetched");
    // A rotated key is not in the inline set.
    issuer.rotate();
    assert_refused(
        verify(&server.state, &issuer.sign(&claims(&server, &issuer))).await,
        "no matching key found",
    );
}

#[tokio::test]
async fn bad_signature_is_refused_without_refetching() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    let claims = claims(&server, &issuer);
    accepted(&server, &issuer.sign(&claims)).await;
    assert_refused(
        verify(&server.state, &issuer.sign_with_other_key(&claims)).await,
        "invalid signature",
    );
    // A tampered payload under a genuine signature.
    let genuine = issuer.sign(&claims);
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged_payload =
        tessera_jose::base64url_encode(with(claims.clone(), &json!({"sub": "root"})).to_string().as_bytes());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(verify(&server.state, &forged).await, "invalid signature");
    // A known kid with a bad signature is a forgery, not a rotation: no refetch, even when one is allowed.
    server.clock.advance(60);
    let claims = with(claims, &json!({"exp": server.clock_now().0 + 300}));
    assert_refused(
        verify(&server.state, &issuer.sign_with_other_key(&claims)).await,
        "invalid signature",
    );
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn unknown_issuer_is_refused() {
    let trusted = ExternalIssuer::start().await;
    let stranger = ExternalIssuer::start().await;
    let server = server_trusting(vec![trusted.trusted()]).await;
    assert_refused(
        verify(&server.state, &stranger.sign(&claims(&server, &stranger))).await,
        "untrusted issuer",
    );
    // The stranger claiming to be the trusted issuer: its key is not the trusted issuer's.
    let impostor = stranger.sign(&claims(&server, &trusted));
    assert_refused(verify(&server.state, &impostor).await, "invalid signature");
    stranger.rotate();
    let impostor = stranger.sign(&claims(&server, &trusted));
    assert_refused(verify(&server.state, &impostor).await, "no matching key found");
    // Not a JWT at all, or without `iss`.
    assert_refused(verify(&server.state, "not-a-jwt").await, "not a JWT with an iss claim");
    let no_iss = trusted.sign(&with(claims(&server, &trusted), &json!({"iss": null})));
    assert_refused(verify(&server.state, &no_iss).await, "not a JWT with an iss claim");
}

#[tokio::test]
async fn audience_must_name_us() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    for aud in [
        json!("https://api.example"),
        json!(["https://a.example", "https://b.example"]),
        json!([]),
        json!(7),
    ] {
        let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({ "aud": aud })));
        assert_refused(verify(&server.state, &jwt).await, "aud does not name this server");
    }
    let missing = issuer.sign(&with(claims(&server, &issuer), &json!({"aud": null})));
    assert_refused(verify(&server.state, &missing).await, "aud does not name this server");

    // A configured audience is the only one accepted.
    let mut trusted = issuer.trusted();
    trusted.audience = Some("https://tessera.example".into());
    let server = server_trusting(vec![trusted]).await;
    let ours = issuer.sign(&claims(&server, &issuer));
    assert_refused(verify(&server.state, &ours).await, "aud does not name this server");
    let configured = issuer.sign(&with(
        claims(&server, &issuer),
        &json!({"aud": "https://tessera.example"}),
    ));
    assert_eq!(
        accepted(&server, &configured).await.audience,
        ["https://tessera.example"]
    );
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    let now = server.clock_now().0;
    // `client_auth.clock_skew` (30 s) is tolerated, no more.
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"exp": now - 29})));
    accepted(&server, &jwt).await;
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"exp": now - 30})));
    assert_refused(verify(&server.state, &jwt).await, "token expired");
    // A token that was valid expires as the clock moves.
    let jwt = issuer.sign(&claims(&server, &issuer));
    accepted(&server, &jwt).await;
    server.clock.advance(330);
    assert_refused(verify(&server.state, &jwt).await, "token expired");
    // `exp` is required, and must be a NumericDate.
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"exp": null})));
    assert_refused(verify(&server.state, &jwt).await, "exp is missing");
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"exp": "tomorrow"})));
    assert_refused(verify(&server.state, &jwt).await, "exp is not a NumericDate");
    // A fractional NumericDate is fine.
    let later = server.clock_now().0 as f64 + 60.5;
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"exp": later})));
    assert_eq!(accepted(&server, &jwt).await.expires_at.0, server.clock_now().0 + 60);
}

#[tokio::test]
async fn not_before_in_the_future_is_refused() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    let now = server.clock_now().0;
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"nbf": now + 60})));
    assert_refused(verify(&server.state, &jwt).await, "not valid yet (nbf)");
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"nbf": now + 30})));
    accepted(&server, &jwt).await;
}

#[tokio::test]
async fn issued_at_bounds_the_age() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    let now = server.clock_now().0;
    // Default max_age 3600 s, plus the 30 s skew.
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"iat": now - 3630})));
    accepted(&server, &jwt).await;
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"iat": now - 3631})));
    assert_refused(verify(&server.state, &jwt).await, "older than max_age (3600 s)");
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"iat": null})));
    assert_refused(verify(&server.state, &jwt).await, "iat is missing");
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"iat": now + 31})));
    assert_refused(verify(&server.state, &jwt).await, "iat is in the future");

    // max_age = 0: no limit, and `iat` is optional.
    let mut trusted = issuer.trusted();
    trusted.max_age = 0;
    let server = server_trusting(vec![trusted]).await;
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"iat": null})));
    assert_eq!(accepted(&server, &jwt).await.issued_at, None);
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"iat": now - 86_400 * 365})));
    accepted(&server, &jwt).await;
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"iat": now + 31})));
    assert_refused(verify(&server.state, &jwt).await, "iat is in the future");
}

#[tokio::test]
async fn subject_claim_is_required() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    for sub in [Value::Null, json!(""), json!(42)] {
        let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({ "sub": sub })));
        assert_refused(
            verify(&server.state, &jwt).await,
            "sub is missing or not a non-empty string",
        );
    }
    // Another subject claim, when configured.
    let mut trusted = issuer.trusted();
    trusted.subject_claim = "preferred_username".into();
    let server = server_trusting(vec![trusted]).await;
    let jwt = issuer.sign(&claims(&server, &issuer));
    assert_refused(verify(&server.state, &jwt).await, "preferred_username is missing");
    let jwt = issuer.sign(&with(
        claims(&server, &issuer),
        &json!({"preferred_username": "ada.lovelace"}),
    ));
    assert_eq!(accepted(&server, &jwt).await.subject, "ada.lovelace");
}

#[tokio::test]
async fn none_hmac_and_unlisted_algorithms_are_refused() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    let payload = tessera_jose::base64url_encode(claims(&server, &issuer).to_string().as_bytes());
    let header = |alg: &str| {
        tessera_jose::base64url_encode(json!({"alg": alg, "typ": "JWT", "kid": "key-1"}).to_string().as_bytes())
    };
    // `alg: none`, with and without a signature part.
    let unsigned = format!("{}.{payload}.", header("none"));
    assert_refused(verify(&server.state, &unsigned).await, "disallowed algorithm \"none\"");
    assert_refused(
        verify(&server.state, &format!("{}.{payload}", header("none"))).await,
        "malformed JWT",
    );
    // HS256 keyed with the issuer's public key (the algorithm-confusion attack).
    let signing_input = format!("{}.{payload}", header("HS256"));
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, issuer.jwks()["keys"][0].to_string().as_bytes());
    let tag = ring::hmac::sign(&hmac_key, signing_input.as_bytes());
    let hs256 = format!("{signing_input}.{}", tessera_jose::base64url_encode(tag.as_ref()));
    assert_refused(verify(&server.state, &hs256).await, "disallowed algorithm \"HS256\"");

    // An algorithm the issuer is not configured for.
    let mut trusted = issuer.trusted();
    trusted.algorithms = vec![JwsAlgorithm::RS256];
    let server = server_trusting(vec![trusted]).await;
    assert_refused(
        verify(&server.state, &issuer.sign(&claims(&server, &issuer))).await,
        "disallowed algorithm \"ES256\"",
    );
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_one_refetch() {
    let issuer = ExternalIssuer::start().await;
    let server = server_trusting(vec![issuer.trusted()]).await;
    let old_jwt = issuer.sign(&claims(&server, &issuer));
    accepted(&server, &old_jwt).await;
    assert_eq!(issuer.jwks_fetches(), 1);

    issuer.rotate();
    let new_jwt = issuer.sign(&claims(&server, &issuer));
    // Right after a fetch, an unknown kid does not trigger another (tokens with made-up kids
    // must not make us hammer the issuer).
    assert_refused(verify(&server.state, &new_jwt).await, "no matching key found");
    assert_eq!(issuer.jwks_fetches(), 1);
    // Ten seconds on (still within the cache's lifetime), it does, once.
    server.clock.advance(10);
    let token = accepted(&server, &new_jwt).await;
    assert_eq!(token.subject, "ada");
    assert_eq!(issuer.jwks_fetches(), 2);
    accepted(&server, &new_jwt).await;
    assert_eq!(issuer.jwks_fetches(), 2, "the new set is cached");
    // The old key is no longer published.
    assert_refused(verify(&server.state, &old_jwt).await, "no matching key found");
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn scope_from_claims_or_issuer_default() {
    let issuer = ExternalIssuer::start().await;
    let mut trusted = issuer.trusted();
    trusted.scopes = vec!["deploy".into(), "read".into()];
    let server = server_trusting(vec![trusted]).await;
    async fn scope_of(server: &TestServer, issuer: &ExternalIssuer, changes: Value) -> Option<String> {
        accepted(server, &issuer.sign(&with(claims(server, issuer), &changes)))
            .await
            .scope
    }
    let scope = |changes| scope_of(&server, &issuer, changes);
    assert_eq!(
        scope(json!({"scope": "read  write"})).await.as_deref(),
        Some("read write")
    );
    assert_eq!(
        scope(json!({"scp": ["read", "write"]})).await.as_deref(),
        Some("read write")
    );
    assert_eq!(
        scope(json!({"scp": "openid profile"})).await.as_deref(),
        Some("openid profile")
    );
    assert_eq!(
        scope(json!({"scope": "a", "scp": ["b"]})).await.as_deref(),
        Some("a"),
        "scope wins over scp"
    );
    assert_eq!(scope(json!({})).await.as_deref(), Some("deploy read"));
    assert_eq!(
        scope(json!({"scope": ""})).await,
        None,
        "an empty scope claim conveys nothing"
    );
    let jwt = issuer.sign(&with(claims(&server, &issuer), &json!({"scope": ["read"]})));
    assert_refused(verify(&server.state, &jwt).await, "scope (or scp) is neither");

    // Without configured scopes, a token without a scope claim conveys none.
    let server = server_trusting(vec![issuer.trusted()]).await;
    assert_eq!(
        accepted(&server, &issuer.sign(&claims(&server, &issuer))).await.scope,
        None
    );
}

#[tokio::test]
async fn several_trusted_issuers_each_with_their_own_keys() {
    let first = ExternalIssuer::start().await;
    let second = ExternalIssuer::start().await;
    let server = server_trusting(vec![first.trusted(), second.trusted_inline()]).await;
    assert_eq!(
        accepted(&server, &first.sign(&claims(&server, &first))).await.issuer,
        first.issuer()
    );
    assert_eq!(
        accepted(&server, &second.sign(&claims(&server, &second))).await.issuer,
        second.issuer()
    );
    // One issuer's key never vouches for the other's `iss`.
    assert_refused(
        verify(&server.state, &second.sign(&claims(&server, &first))).await,
        "invalid signature",
    );
}
