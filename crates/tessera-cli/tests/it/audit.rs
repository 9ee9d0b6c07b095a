//! Audit events: every event type is triggered through the real endpoints and read back through
//! the admin API (`GET /admin/v1/events`), with its filters and pagination; and after a full flow
//! neither the server's log nor the events table holds a token, secret, code or password.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::Method;
use serde_json::{json, Value};
use tessera_core::{AccessTokenFormat, AuthMethod};
use tessera_server::audit::EventKind;
use tessera_storage::{EventFilter, Page};
use tessera_types::token::GrantType;

use crate::admin::Admin;
use crate::login_flow::{ada, authorize_url, code_for, exchange, Agent, Step, PASSWORD, VERIFIER};
use crate::refresh_token::{refresh, refreshing_app, rt};
use crate::support::{service_client, TestServer};

/// The events of `kind`, newest first, through the admin API.
async fn events(admin: &Admin<'_>, query: &str) -> Vec<Value> {
    admin.get(&format!("/admin/v1/events?{query}")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn every_event_type_is_stored_and_read_back_through_the_admin_api() {
    let server = TestServer::start_with(|config| config.audit.store_token_events = true).await;
    // client.created … key.rotated, and token.issued (client_credentials) for the admin's token.
    let admin = Admin::new(&server).await;
    let mut app = refreshing_app();
    app.require_consent = true;
    app.grant_types.extend([GrantType::Password, GrantType::TokenExchange]);
    app.token_exchange = Some(tessera_core::client::TokenExchangeSettings {
        subject_token_types: vec![tessera_types::token::TokenType::AccessToken],
        impersonation: true,
        ..Default::default()
    });
    let (id, secret) = server.client("rp", app).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());
    let user = ada(&server).await;

    // login.failed, login.succeeded, consent.given, authorization_code.issued, token.issued.
    let agent = Agent::new();
    let (_, html) = agent
        .get(&authorize_url(&server, rp.0, &[("scope", "openid offline_access")]))
        .await
        .page();
    let (_, html) = agent.login(&server, &html, "ada", "not the password").await.page();
    let Step::Page(_, html) = agent.login(&server, &html, "ada", PASSWORD).await else {
        panic!("consent page expected")
    };
    let code = agent.consent(&server, &html, "allow").await.redirect()["code"].clone();
    let (status, tokens) = exchange(&server, rp, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    // token.exchanged.
    let (status, _, exchanged) = server
        .token(
            Some(rp),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("subject_token", tokens["access_token"].as_str().unwrap()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{exchanged}");
    // refresh_token.rotated, then refresh_token.reuse_detected (and the grant is revoked).
    let first = rt(&tokens);
    let (status, body) = refresh(&server, rp, &first, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refresh(&server, rp, &first, None).await.0, 400);
    // token.issued by the password grant; grant.revoked and access_token.revoked by the client.
    let (status, _, password_tokens) = server
        .token(
            Some(rp),
            &[
                ("grant_type", "password"),
                ("username", "ada"),
                ("password", PASSWORD),
                ("scope", "openid offline_access"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{password_tokens}");
    for token in [&password_tokens["refresh_token"], &password_tokens["access_token"]] {
        let (status, _, _) = server
            .post_form("/revoke", Some(rp), &[("token", token.as_str().unwrap())])
            .await;
        assert_eq!(status, 200);
    }
    // session.ended, user.password_changed, user.*, client.*, key.rotated by the admin.
    let sessions = admin.get("/admin/v1/users/ada/sessions").await;
    let session_id = sessions[0]["id"].as_str().unwrap();
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::DELETE, format!("/admin/v1/sessions/{session_id}"), None),
        (
            Method::POST,
            "/admin/v1/users/ada/password".into(),
            Some(json!({ "password": "another long password" })),
        ),
        (
            Method::POST,
            "/admin/v1/users".into(),
            Some(json!({ "username": "bob", "password": "bob's long password" })),
        ),
        (
            Method::PATCH,
            "/admin/v1/users/bob".into(),
            Some(json!({ "disabled": true })),
        ),
        (Method::DELETE, "/admin/v1/users/bob".into(), None),
        (
            Method::POST,
            "/admin/v1/clients".into(),
            Some(
                json!({ "client_id": "temp", "settings": service_client(AuthMethod::ClientSecretPost, AccessTokenFormat::Jwt) }),
            ),
        ),
        (
            Method::PUT,
            "/admin/v1/clients/temp".into(),
            Some(serde_json::to_value(service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt)).unwrap()),
        ),
        (Method::POST, "/admin/v1/clients/temp/secret".into(), None),
        (Method::DELETE, "/admin/v1/clients/temp".into(), None),
        (
            Method::POST,
            "/admin/v1/keys/rotate".into(),
            Some(json!({ "algorithms": ["EdDSA"] })),
        ),
    ];
    for (method, path, body) in calls {
        let (status, answer) = admin.call(method.clone(), &path, body).await;
        assert!(status < 300, "{method} {path}: {status} {answer}");
    }

    let mut by_kind: HashMap<&str, Vec<Value>> = HashMap::new();
    for kind in EventKind::ALL {
        let found = events(&admin, &format!("type={}&limit=500", kind.as_str())).await;
        assert!(!found.is_empty(), "no {} event was stored", kind.as_str());
        assert!(found.iter().all(|e| e["type"] == kind.as_str()));
        by_kind.insert(kind.as_str(), found);
    }

    // What the events say.
    let reuse = &by_kind["refresh_token.reuse_detected"][0];
    assert_eq!(
        (reuse["actor"].as_str(), reuse["client_id"].as_str()),
        (Some("policy"), Some("rp"))
    );
    assert_eq!(reuse["user_id"], user.id.as_str());
    assert!(reuse["grant_id"].is_string());
    let failed = &by_kind["login.failed"][0];
    assert_eq!(failed["user_id"], user.id.as_str());
    assert_eq!(failed["details"]["reason"], "wrong_credentials");
    let issued: Vec<&str> = by_kind["token.issued"]
        .iter()
        .map(|e| e["details"]["grant_type"].as_str().unwrap())
        .collect();
    for grant_type in ["authorization_code", "client_credentials", "password"] {
        assert!(
            issued.contains(&grant_type),
            "token.issued for {grant_type}: {issued:?}"
        );
    }
    let by_client = by_kind["grant.revoked"]
        .iter()
        .find(|e| e["actor"] == "client")
        .expect("a grant revoked by its client through /revoke");
    assert_eq!(by_client["details"]["reason"], "revoked_by_client");
    let ended = &by_kind["session.ended"][0];
    assert_eq!(
        (ended["actor"].as_str(), ended["session_id"].as_str()),
        (Some("admin"), Some(session_id))
    );
    assert_eq!(ended["details"]["admin_client"], admin.client_id.as_str());

    // Filters: by user, by client, by time; pagination without repeats or gaps.
    let ada_events = events(&admin, &format!("user_id={}&limit=500", user.id)).await;
    assert!(ada_events.len() >= 8, "{ada_events:?}");
    assert!(ada_events.iter().all(|e| e["user_id"] == user.id.as_str()));
    let rp_events = events(&admin, "client_id=rp&limit=500").await;
    assert!(rp_events.iter().all(|e| e["client_id"] == "rp"));
    let now = server.clock_now().0;
    assert!(
        events(&admin, &format!("until={now}")).await.is_empty(),
        "the mock clock has not moved"
    );
    let all = events(&admin, &format!("since={now}&limit=500")).await;
    let mut paged = Vec::new();
    let mut path = "/admin/v1/events?limit=7".to_owned();
    loop {
        let page = admin.get(&path).await;
        paged.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/events?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(paged, ids, "pages of 7 give the same events in the same order");
    let (status, _) = admin.call(Method::GET, "/admin/v1/events?limit=0", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn by_default_the_token_events_are_logged_but_not_stored() {
    let server = TestServer::start().await;
    let admin = Admin::new(&server).await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let code = code_for(&server, &Agent::new(), rp.0, &[("scope", "openid offline_access")]).await;
    let (_, tokens) = exchange(&server, rp, &code, Some(VERIFIER)).await;
    let first = rt(&tokens);
    assert_eq!(refresh(&server, rp, &first, None).await.0, 200);
    assert_eq!(refresh(&server, rp, &first, None).await.0, 400);
    for kind in EventKind::ALL.into_iter().filter(|k| k.is_high_volume()) {
        let found = events(&admin, &format!("type={}", kind.as_str())).await;
        assert!(
            found.is_empty(),
            "{} stored without audit.store_token_events",
            kind.as_str()
        );
    }
    for kind in ["login.succeeded", "refresh_token.reuse_detected"] {
        assert_eq!(events(&admin, &format!("type={kind}")).await.len(), 1, "{kind}");
    }
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line this test process writes from now on (all tests' servers included), as JSON.
/// A process-wide subscriber: a thread-scoped one misses events whose callsites other tests'
/// threads registered first.
fn capture_log() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "tessera=trace,tessera_server=trace,tessera_storage_sqlite=trace,tessera_core=trace,info",
                ))
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in the tests");
            capture
        })
        .clone()
}

#[tokio::test]
async fn no_token_secret_code_or_password_reaches_the_log_or_the_events_table() {
    let capture = capture_log();
    let server = TestServer::start_with(|config| config.audit.store_token_events = true).await;
    let admin = Admin::new(&server).await;
    let mut app = refreshing_app();
    app.grant_types.push(GrantType::Password);
    let (id, secret) = server.client("rp", app).await;
    let secret = secret.unwrap();
    let rp = (id.as_str(), secret.as_str());
    ada(&server).await;
    let mut secrets = vec![secret.clone(), PASSWORD.to_owned(), admin.token().to_owned()];

    // A full flow: sign-in with a wrong and a right password, code, tokens, refresh, reuse,
    // userinfo, introspection, revocation, a password reset and a secret rotation.
    let agent = Agent::new();
    let (_, html) = agent
        .get(&authorize_url(&server, rp.0, &[("scope", "openid offline_access")]))
        .await
        .page();
    let wrong = "Tr0ub4dor&3-wrong";
    secrets.push(wrong.to_owned());
    agent.login(&server, &html, "ada", wrong).await.page();
    let agent = Agent::new();
    let code = code_for(&server, &agent, rp.0, &[("scope", "openid offline_access")]).await;
    secrets.push(code.clone());
    let (status, tokens) = exchange(&server, rp, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200);
    let (status, _) = exchange(&server, rp, &code, Some(VERIFIER)).await;
    assert_eq!(status, 400, "a reused code");
    let code = code_for(&server, &agent, rp.0, &[("scope", "openid offline_access")]).await;
    secrets.push(code.clone());
    let (_, tokens_b) = exchange(&server, rp, &code, Some(VERIFIER)).await;
    for body in [&tokens, &tokens_b] {
        for field in ["access_token", "refresh_token", "id_token"] {
            secrets.push(body[field].as_str().unwrap().to_owned());
        }
    }
    let (status, refreshed) = refresh(&server, rp, &rt(&tokens_b), None).await;
    assert_eq!(status, 200);
    secrets.push(rt(&refreshed));
    secrets.push(refreshed["access_token"].as_str().unwrap().to_owned());
    assert_eq!(refresh(&server, rp, &rt(&tokens_b), None).await.0, 400, "reuse");
    server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    server
        .post_form("/introspect", Some(rp), &[("token", &rt(&tokens))])
        .await;
    server.post_form("/revoke", Some(rp), &[("token", &rt(&tokens))]).await;
    let (_, _, password_tokens) = server
        .token(
            Some(rp),
            &[("grant_type", "password"), ("username", "ada"), ("password", PASSWORD)],
        )
        .await;
    secrets.push(password_tokens["access_token"].as_str().unwrap().to_owned());
    let new_password = "a brand new long password";
    secrets.push(new_password.to_owned());
    admin
        .call(
            Method::POST,
            "/admin/v1/users/ada/password",
            Some(json!({ "password": new_password })),
        )
        .await;
    let (_, rotated) = admin.call(Method::POST, "/admin/v1/clients/rp/secret", None).await;
    secrets.push(rotated["client_secret"].as_str().unwrap().to_owned());

    server.state.audit.flush().await;
    let stored = server
        .storage
        .events()
        .query(
            &EventFilter::default(),
            &Page {
                before: None,
                limit: 10_000,
            },
        )
        .await
        .unwrap();
    assert!(stored.len() >= 10, "{stored:?}");
    let table = format!("{stored:?}");
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("tessera::audit"), "the log has the audit events: {log}");
    for secret in &secrets {
        // Also the JWTs' signatures alone, and any long enough piece of a secret.
        let needle: &str = secret.rsplit('.').next().unwrap();
        assert!(needle.len() >= 8, "{secret}");
        assert!(!log.contains(needle), "a secret is in the log: {secret}");
        assert!(!table.contains(needle), "a secret is in the events table: {secret}");
    }
}
