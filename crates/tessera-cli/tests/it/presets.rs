//! The seed systems, walked through step by step as their documents describe them (DESIGN §6),
//! with time moved by the injected clock.

use tessera_core::client::{ClientType, RefreshTokenSettings};
use tessera_core::AuthMethod;
use tessera_server::config::Config;

use crate::login_flow::{ada, authorize_url, code_for, exchange, Agent, Step, VERIFIER};
use crate::refresh_token::{login, refresh, refreshing_app, rt};
use crate::support::TestServer;

async fn with_preset(preset: &str) -> TestServer {
    let text = format!("preset = \"{preset}\"\n");
    TestServer::start_with(move |config| {
        let issuer = config.server.issuer.clone();
        *config = Config::parse(&text, "test", Vec::new()).unwrap();
        config.server.issuer = issuer;
        config.keys.reload_interval = 3600;
    })
    .await
}

/// Seed 000: "By default RTs expire after 30 minutes of inactivity, while the session can be kept
/// alive for 10 hours by exchanging tokens at least every 30 minutes … Offline tokens … survive
/// logout, session expiry and server restart … expire after 30 days if not used … the AS may be
/// configured to revoke RTs after a certain number of uses."
#[tokio::test]
async fn ehealth() {
    let server = with_preset("ehealth").await;
    let (id, secret) = server.client("ehealth-app", refreshing_app()).await;
    let client = (id.clone(), secret.unwrap());
    let client = (client.0.as_str(), client.1.as_str());
    ada(&server).await;

    // Log in: AT + RT (every login gets one); each refresh returns a new RT that replaces the old,
    // and the session lasts 10 hours if tokens are exchanged at least every 30 minutes.
    let mut body = login(&server, &Agent::new(), client, "openid").await;
    assert_eq!(body["refresh_expires_in"], 1800);
    let mut elapsed = 0;
    loop {
        server.clock.advance(29 * 60);
        elapsed += 29 * 60;
        let (status, next) = refresh(&server, client, &rt(&body), None).await;
        if elapsed < 36_000 {
            assert_eq!(status, 200, "at {elapsed} s: {next}");
            assert_ne!(rt(&next), rt(&body), "a new RT replaces the old one");
            body = next;
        } else {
            assert_eq!(status, 400, "after the 10 h hard end the user must log in again");
            break;
        }
    }

    // Stop refreshing for 31 minutes: refused.
    let body = login(&server, &Agent::new(), client, "openid").await;
    server.clock.advance(31 * 60);
    assert_eq!(refresh(&server, client, &rt(&body), None).await.0, 400);

    // Offline token: survives logout and a restart, expires after 30 idle days.
    let agent = Agent::new();
    let offline = login(&server, &agent, client, "openid offline_access").await;
    assert_eq!(offline["refresh_expires_in"], 2_592_000);
    agent
        .get(&server.url(&format!(
            "/logout?id_token_hint={}",
            offline["id_token"].as_str().unwrap()
        )))
        .await;
    server.clock.advance(11 * 3600);
    let (status, offline) = refresh(&server, client, &rt(&offline), None).await;
    assert_eq!(status, 200, "after logout and the session's end: {offline}");
    let server = server.restart().await;
    let (status, offline) = refresh(&server, client, &rt(&offline), None).await;
    assert_eq!(status, 200, "after a restart: {offline}");
    server.clock.advance(2_592_000 - 1);
    let (status, offline) = refresh(&server, client, &rt(&offline), None).await;
    assert_eq!(status, 200, "29 days, 23:59:59 unused is fine");
    server.clock.advance(2_592_000);
    assert_eq!(
        refresh(&server, client, &rt(&offline), None).await.0,
        400,
        "30 days unused: expired"
    );

    // "Revoke RTs after a certain number of uses": with max_reuse = 2, an RT works 3 times.
    let mut settings = refreshing_app();
    settings.refresh_tokens = RefreshTokenSettings {
        max_reuse: Some(2),
        ..RefreshTokenSettings::default()
    };
    let (limited, limited_secret) = server.client("limited", settings).await;
    let limited = (limited.as_str(), limited_secret.as_deref().unwrap());
    let body = login(&server, &Agent::new(), limited, "openid").await;
    for use_number in 1..=3 {
        assert_eq!(
            refresh(&server, limited, &rt(&body), None).await.0,
            200,
            "use {use_number}"
        );
    }
    assert_eq!(
        refresh(&server, limited, &rt(&body), None).await.0,
        400,
        "the 4th use is refused"
    );
}

/// Seed 001 (HelseID): "A client must be configured to be allowed RTs, and asks for one with
/// offline_access … Public clients cannot receive RTs … ATs and ID tokens cannot be revoked, so
/// their lifetime is kept as short as possible; RTs can be revoked."
#[tokio::test]
async fn helseid() {
    let server = with_preset("helseid").await;
    ada(&server).await;
    // A client not configured for offline access: no RT even when it asks.
    let (plain, plain_secret) = server.client("plain", refreshing_app()).await;
    let body = login(
        &server,
        &Agent::new(),
        (&plain, plain_secret.as_deref().unwrap()),
        "openid offline_access",
    )
    .await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["expires_in"], 300, "short-lived access tokens");

    // A client allowed RTs: one only when it asks with offline_access.
    let mut settings = refreshing_app();
    settings.refresh_tokens.allow_offline_access = Some(true);
    let (allowed, allowed_secret) = server.client("allowed", settings).await;
    let client = (allowed.as_str(), allowed_secret.as_deref().unwrap());
    assert!(login(&server, &Agent::new(), client, "openid")
        .await
        .get("refresh_token")
        .is_none());
    let body = login(&server, &Agent::new(), client, "openid offline_access").await;
    let (status, refreshed) = refresh(&server, client, &rt(&body), None).await;
    assert_eq!(status, 200, "{refreshed}");
    // RTs can be revoked: a revoked grant's RT stops working.
    let grant = server
        .storage
        .refresh_tokens()
        .find_by_hash(&tessera_core::TokenHash::of(&rt(&refreshed)))
        .await
        .unwrap()
        .unwrap()
        .grant_id;
    server
        .storage
        .grants()
        .revoke(&grant, server.clock_now(), "admin")
        .await
        .unwrap();
    assert_eq!(refresh(&server, client, &rt(&refreshed), None).await.0, 400);

    // A public client never gets an RT, even configured for offline access.
    let mut public = refreshing_app();
    public.client_type = ClientType::Public;
    public.auth_method = AuthMethod::None;
    public.refresh_tokens.allow_offline_access = Some(true);
    let (spa, _) = server.client("spa", public).await;
    let code = code_for(&server, &Agent::new(), &spa, &[("scope", "openid offline_access")]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", crate::login_flow::REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", spa.as_str()),
    ];
    let (status, _, body) = server.token(None, &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "public clients cannot receive RTs: {body}"
    );
}

/// Seed 002 ("Identity Engine"): "Refresh token rotation: each use issues a new RT and invalidates
/// its predecessor … per-application Allow Offline Access … SPAs: authorization code + PKCE with
/// rotation."
#[tokio::test]
async fn identity_engine() {
    let server = with_preset("identity-engine").await;
    ada(&server).await;
    let mut spa = refreshing_app();
    spa.client_type = ClientType::Public;
    spa.auth_method = AuthMethod::None;
    spa.refresh_tokens.allow_offline_access = Some(true);
    let (spa_id, _) = server.client("spa", spa).await;

    // The SPA must use PKCE.
    let agent = Agent::new();
    let step = agent
        .get(&authorize_url(
            &server,
            &spa_id,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        ))
        .await;
    assert_eq!(
        step.redirect().get("error").map(String::as_str),
        Some("invalid_request")
    );

    // With PKCE and offline access allowed for the app: an RT that rotates.
    let code = code_for(&server, &agent, &spa_id, &[("scope", "openid offline_access")]).await;
    let exchange_form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", crate::login_flow::REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", spa_id.as_str()),
    ];
    let (status, _, body) = server.token(None, &exchange_form).await;
    assert_eq!(status, 200, "{body}");
    let first = rt(&body);
    let (status, second) = refresh_public(&server, &spa_id, &first).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(rt(&second), first, "each use issues a new RT");
    // Its predecessor is invalidated; presenting it revokes the family (reuse detection).
    assert_eq!(refresh_public(&server, &spa_id, &first).await.0, 400);
    assert_eq!(
        refresh_public(&server, &spa_id, &rt(&second)).await.0,
        400,
        "the whole family is revoked"
    );

    // An app without "Allow Offline Access" gets no RT.
    let (web_id, web_secret) = server.client("web", refreshing_app()).await;
    let code = code_for(&server, &agent, &web_id, &[("scope", "openid offline_access")]).await;
    let (_, body) = exchange(
        &server,
        (&web_id, web_secret.as_deref().unwrap()),
        &code,
        Some(VERIFIER),
    )
    .await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(matches!(
        agent.get(&authorize_url(&server, &web_id, &[])).await,
        Step::Redirect(_)
    ));
}

async fn refresh_public(server: &TestServer, client_id: &str, token: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = server
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", client_id),
            ],
        )
        .await;
    (status, body)
}
