//! The refresh-token lifecycle against the real server (DESIGN B1–B10, B18): issuance, rotation,
//! reuse detection and the grace window, concurrency on both backends, restarts, scopes, clients,
//! logout, password changes, the grant limit, and the password grant.

use std::sync::Arc;

use tessera_core::client::RefreshTokenIssuance;
use tessera_core::{ClientSettings, TokenHash};
use tessera_types::token::GrantType;

use crate::login_flow::{ada, code_for, exchange, web_app, Agent, PASSWORD, VERIFIER};
use crate::support::{peek, TestServer};

/// A confidential web app allowed refresh tokens.
pub fn refreshing_app() -> ClientSettings {
    let mut settings = web_app();
    settings.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    settings
}

/// Logs `ada` in through the code flow and returns the token response.
pub async fn login(server: &TestServer, agent: &Agent, client: (&str, &str), scope: &str) -> serde_json::Value {
    let code = code_for(server, agent, client.0, &[("scope", scope)]).await;
    let (status, body) = exchange(server, client, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn refresh(
    server: &TestServer,
    client: (&str, &str),
    refresh_token: &str,
    scope: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let (status, _, body) = server.token(Some(client), &form).await;
    (status, body)
}

/// The refresh token of a token response.
pub fn rt(body: &serde_json::Value) -> String {
    body["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh_token in {body}"))
        .to_owned()
}

#[tokio::test]
async fn rotation_and_reuse_detection() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    let user = ada(&server).await;
    let agent = Agent::new();

    // B1: offline_access asked and allowed → an (offline) refresh token; without it, none.
    let body = login(&server, &agent, client, "openid").await;
    assert!(
        body.get("refresh_token").is_none(),
        "offline_access issuance: no RT without the scope"
    );
    let body = login(&server, &agent, client, "openid offline_access").await;
    let first = rt(&body);
    assert_eq!(body["refresh_expires_in"], 2_592_000, "B18: offline RT, 30 days");

    // B2: a refresh returns a new AT and RT; the presented one is spent.
    server.clock.advance(60);
    let (status, second) = refresh(&server, client, &first, None).await;
    assert_eq!(status, 200, "{second}");
    let second_rt = rt(&second);
    assert_ne!(second_rt, first);
    assert_eq!(second["scope"], "offline_access openid");
    let (_, id_token) = peek(second["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], user.id.as_str());
    assert_eq!(
        id_token["auth_time"],
        crate::support::EPOCH.0,
        "OIDC §12.2: auth_time of the original login"
    );
    assert!(id_token.get("nonce").is_none(), "OIDC §12.2: no nonce on refresh");

    // B3: the spent RT presented again: invalid_grant, and the whole grant dies.
    let (status, error) = refresh(&server, client, &first, None).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = refresh(&server, client, &second_rt, None).await;
    assert_eq!(status, 400, "the victim's RT died with the grant");
    let grant = server
        .storage
        .grants()
        .list_by_user(&user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.revoked_at.is_some())
        .unwrap();
    assert_eq!(grant.revocation_reason.as_deref(), Some("refresh_token_reuse"));
}

#[tokio::test]
async fn the_grace_window_gives_a_sibling() {
    let server = TestServer::start_with(|config| config.refresh_tokens.reuse_grace_window = 10).await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let first = rt(&login(&server, &Agent::new(), client, "openid offline_access").await);
    let (_, second) = refresh(&server, client, &first, None).await;
    server.clock.advance(9);
    let (status, sibling) = refresh(&server, client, &first, None).await;
    assert_eq!(status, 200, "inside the grace window: a sibling, {sibling}");
    assert_eq!(
        refresh(&server, client, &rt(&second), None).await.0,
        200,
        "the grant lives"
    );
    assert_eq!(refresh(&server, client, &rt(&sibling), None).await.0, 200);
    server.clock.advance(1);
    assert_eq!(
        refresh(&server, client, &first, None).await.0,
        400,
        "outside the window: reuse"
    );
}

async fn concurrent_refreshes(server: TestServer, grace: bool) {
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let secret = secret.unwrap();
    ada(&server).await;
    let first = rt(&login(&server, &Agent::new(), (&id, &secret), "openid offline_access").await);
    let attempts = (0..50).map(|_| refresh(&server, (&id, &secret), &first, None));
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|(status, _)| *status == 200).count();
    let invalid = results
        .iter()
        .filter(|(status, body)| *status == 400 && body["error"] == "invalid_grant")
        .count();
    assert!(results.iter().all(|(status, _)| *status < 500), "no 5xx: {results:?}");
    if grace {
        assert_eq!(ok, 50, "with a grace window every parallel refresh succeeds");
        let live = results.iter().map(|(_, body)| rt(body)).next().unwrap();
        assert_eq!(
            refresh(&server, (&id, &secret), &live, None).await.0,
            200,
            "and the grant stays live"
        );
    } else {
        assert_eq!((ok, invalid), (1, 49), "B4: exactly one rotates");
    }
}

#[tokio::test]
async fn fifty_parallel_refreshes_on_sqlite() {
    concurrent_refreshes(TestServer::start().await, false).await;
    concurrent_refreshes(
        TestServer::start_with(|config| config.refresh_tokens.reuse_grace_window = 10).await,
        true,
    )
    .await;
}

#[tokio::test]
async fn fifty_parallel_refreshes_on_postgresql() {
    for grace in [false, true] {
        tessera_testkit::postgres::with_test_database(|url| async move {
            let storage = tessera_storage_postgres::PostgresStorage::connect(&url, Default::default())
                .await
                .unwrap();
            let server = TestServer::start_on(Arc::new(storage), tempfile::tempdir().unwrap(), |config| {
                config.refresh_tokens.reuse_grace_window = if grace { 10 } else { 0 };
            })
            .await;
            concurrent_refreshes(server, grace).await;
        })
        .await;
    }
}

#[tokio::test]
async fn offline_tokens_survive_logout_and_restart_online_ones_do_not() {
    let server = TestServer::start_with(|config| config.refresh_tokens.issuance = RefreshTokenIssuance::Always).await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.clone(), secret.clone().unwrap());
    ada(&server).await;
    let agent = Agent::new();
    let offline = login(&server, &agent, (&client.0, &client.1), "openid offline_access").await;
    let online = login(&server, &agent, (&client.0, &client.1), "openid").await;
    assert_eq!(online["refresh_expires_in"], 1800, "B18: online RT, 30 min idle");
    let id_token = online["id_token"].as_str().unwrap().to_owned();

    // Logout ends the session: the online RT dies (B9), the offline one lives (B6).
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", &id_token)
        .finish();
    agent.get(&server.url(&format!("/logout?{query}"))).await;
    assert_eq!(
        refresh(&server, (&client.0, &client.1), &rt(&online), None).await.0,
        400
    );
    let (status, body) = refresh(&server, (&client.0, &client.1), &rt(&offline), None).await;
    assert_eq!(status, 200, "{body}");

    // A restart: the offline RT issued before it works after it; an online RT of a live session
    // does too, and still follows its session's rules.
    let online = login(&server, &Agent::new(), (&client.0, &client.1), "openid").await;
    let server = server.restart().await;
    let (status, online) = refresh(&server, (&client.0, &client.1), &rt(&online), None).await;
    assert_eq!(status, 200, "{online}");
    assert!(online["refresh_expires_in"].as_u64().unwrap() <= 1800);
    let (status, body) = refresh(&server, (&client.0, &client.1), &rt(&body), None).await;
    assert_eq!(status, 200, "{body}");
    server.clock.advance(1800);
    assert_eq!(
        refresh(&server, (&client.0, &client.1), &rt(&online), None).await.0,
        400,
        "the online RT idled out with its session"
    );
    // And the offline one idles out after 30 days unused.
    server.clock.advance(2_592_000 - 1800);
    assert_eq!(refresh(&server, (&client.0, &client.1), &rt(&body), None).await.0, 400);
}

#[tokio::test]
async fn scope_client_binding_and_user_changes() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let (other, other_secret) = server.client("other", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let agent = Agent::new();
    let body = login(&server, &agent, client, "openid email offline_access").await;

    // B7: narrower scope for the access token; the RT keeps the grant's scope.
    let (status, narrow) = refresh(&server, client, &rt(&body), Some("openid")).await;
    assert_eq!((status, narrow["scope"].as_str()), (200, Some("openid")));
    assert!(narrow.get("id_token").is_some());
    let (_, full) = refresh(&server, client, &rt(&narrow), None).await;
    assert_eq!(full["scope"], "email offline_access openid");
    let (status, wide) = refresh(&server, client, &rt(&full), Some("openid admin")).await;
    assert_eq!((status, wide["error"].as_str()), (400, Some("invalid_scope")));

    // B8: another client presenting it: invalid_grant; the owner can still use it.
    let (status, error) = refresh(&server, (&other, other_secret.as_deref().unwrap()), &rt(&full), None).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")));
    let (status, current) = refresh(&server, client, &rt(&full), None).await;
    assert_eq!(status, 200, "{current}");

    // B10: a password change revokes the user's grants.
    tessera_server::users::set_password(
        server.storage.as_ref(),
        server.clock_now(),
        "ada",
        "another good password",
        tessera_server::config::RevocationScope::All,
    )
    .await
    .unwrap();
    assert_eq!(refresh(&server, client, &rt(&current), None).await.0, 400);
    // B10: so does disabling the user.
    let agent = Agent::new();
    let (_, html) = agent
        .get(&crate::login_flow::authorize_url(
            &server,
            client.0,
            &[("scope", "openid offline_access")],
        ))
        .await
        .page();
    let params = agent
        .login(&server, &html, "ada", "another good password")
        .await
        .redirect();
    let (_, body) = exchange(&server, client, &params["code"], Some(VERIFIER)).await;
    tessera_server::users::set_disabled(
        server.storage.as_ref(),
        server.clock_now(),
        "ada",
        true,
        tessera_server::config::RevocationScope::All,
    )
    .await
    .unwrap();
    assert_eq!(refresh(&server, client, &rt(&body), None).await.0, 400);
}

/// DESIGN §2: user claims are re-read at every refresh, and a disabled user's grant ends there
/// even when disabling kept the grants (`RevocationScope::None`): the refresh is refused and the
/// grant revoked, so enabling the user again does not bring the token back.
#[tokio::test]
async fn a_refresh_ends_the_grant_of_a_disabled_user_whose_grants_were_kept() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let body = login(&server, &Agent::new(), client, "openid offline_access").await;
    let disable = |disabled: bool| {
        tessera_server::users::set_disabled(
            server.storage.as_ref(),
            server.clock_now(),
            "ada",
            disabled,
            tessera_server::config::RevocationScope::None,
        )
    };
    disable(true).await.unwrap();
    let (status, error) = refresh(&server, client, &rt(&body), None).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant")),
        "{error}"
    );
    let user = server.storage.users().find_by_username("ada").await.unwrap().unwrap();
    let grants = server.storage.grants().list_by_user(&user.id).await.unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(
        grants[0].revocation_reason.as_deref(),
        Some("user_unavailable"),
        "{grants:?}"
    );

    disable(false).await.unwrap();
    let (status, error) = refresh(&server, client, &rt(&body), None).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant")),
        "{error}"
    );
}

#[tokio::test]
async fn refresh_keeps_the_session_alive_until_its_hard_end() {
    let server = TestServer::start_with(|config| config.refresh_tokens.issuance = RefreshTokenIssuance::Always).await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let agent = Agent::new();
    let mut body = login(&server, &agent, client, "openid").await;
    // Refresh every 29 minutes: the session never idles out...
    for _ in 0..20 {
        server.clock.advance(29 * 60);
        let (status, next) = refresh(&server, client, &rt(&body), None).await;
        assert_eq!(status, 200, "{next}");
        body = next;
    }
    // ...and the browser is still signed in, because refreshes count as activity (B2).
    assert!(agent
        .get(&crate::login_flow::authorize_url(&server, client.0, &[]))
        .await
        .redirect()
        .contains_key("code"));
    // Near the 10 h hard end the RT's expiry is capped by it (B18) and then refused.
    server.clock.advance(36_000 - 20 * 29 * 60 - 100);
    let (status, last) = refresh(&server, client, &rt(&body), None).await;
    assert_eq!(status, 200);
    assert_eq!(last["refresh_expires_in"], 100, "capped by the session's hard end");
    server.clock.advance(last["refresh_expires_in"].as_u64().unwrap());
    assert_eq!(refresh(&server, client, &rt(&last), None).await.0, 400);
}

#[tokio::test]
async fn the_grant_limit_revokes_the_least_recently_used() {
    let server = TestServer::start_with(|config| config.refresh_tokens.max_active_grants = 2).await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let agent = Agent::new();
    let first = login(&server, &agent, client, "openid offline_access").await;
    server.clock.advance(1);
    let second = login(&server, &agent, client, "openid offline_access").await;
    server.clock.advance(1);
    // Using the first makes the second the least recently used.
    let (_, first) = refresh(&server, client, &rt(&first), None).await;
    server.clock.advance(1);
    let third = login(&server, &agent, client, "openid offline_access").await;
    assert_eq!(
        refresh(&server, client, &rt(&second), None).await.0,
        400,
        "the 3rd grant revoked the LRU one"
    );
    assert_eq!(refresh(&server, client, &rt(&first), None).await.0, 200);
    assert_eq!(refresh(&server, client, &rt(&third), None).await.0, 200);
}

#[tokio::test]
async fn the_password_grant_is_off_unless_enabled() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    ada(&server).await;
    let form = [
        ("grant_type", "password"),
        ("username", "ada"),
        ("password", PASSWORD),
        ("scope", "openid offline_access"),
    ];
    let (status, _, body) = server.token(Some((&id, secret.as_deref().unwrap())), &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));

    let mut settings = refreshing_app();
    settings.grant_types.push(GrantType::Password);
    let (id, secret) = server.client("legacy", settings).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    let (status, _, body) = server.token(Some(client), &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string());
    assert_eq!(
        refresh(&server, client, &rt(&body), None).await.0,
        200,
        "RTs by the same rules"
    );
    let wrong = [
        ("grant_type", "password"),
        ("username", "ada"),
        ("password", "wrong password"),
    ];
    assert_eq!(server.token(Some(client), &wrong).await.2["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_token_errors() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    let (status, _, body) = server.token(Some(client), &[("grant_type", "refresh_token")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(
        refresh(&server, client, "garbage", None).await.1["error"],
        "invalid_grant"
    );
    let unknown =
        tessera_core::TokenKind::RefreshToken.generate(tessera_server::clock::token_order(), &mut rand::rngs::OsRng);
    assert_eq!(
        refresh(&server, client, &unknown, None).await.1["error"],
        "invalid_grant"
    );
    assert!(server
        .storage
        .refresh_tokens()
        .find_by_hash(&TokenHash::of(&unknown))
        .await
        .unwrap()
        .is_none());
    // A client without the refresh_token grant.
    let (plain, plain_secret) = server.client("plain", web_app()).await;
    assert_eq!(
        refresh(&server, (&plain, plain_secret.as_deref().unwrap()), &unknown, None)
            .await
            .1["error"],
        "unauthorized_client"
    );
}

/// A refresh token of the format before ordered tokens (`tsr_rt_`, 256 random bits, no order),
/// stored as its plain SHA-256, as a server before the upgrade stored it: it still rotates, and
/// its successor is a token of the current format.
#[tokio::test]
async fn a_refresh_token_issued_before_ordered_tokens_still_rotates() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let client = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let agent = Agent::new();
    let current = rt(&login(&server, &agent, client, "openid offline_access").await);
    assert_eq!(current.len(), tessera_core::token::TOKEN_LEN);
    let record = server
        .storage
        .refresh_tokens()
        .find_by_hash(&TokenHash::of(&current))
        .await
        .unwrap()
        .unwrap();

    // The earlier format, written out by hand: prefix, 43 characters of randomness, checksum.
    let mut old = String::from("tsr_rt_");
    URL_SAFE_NO_PAD.encode_string(
        ring::rand::generate::<[u8; 32]>(&ring::rand::SystemRandom::new())
            .unwrap()
            .expose(),
        &mut old,
    );
    let checksum = ring::digest::digest(&ring::digest::SHA256, old.as_bytes());
    old.push_str(&URL_SAFE_NO_PAD.encode(&checksum.as_ref()[..4])[..6]);
    assert_eq!(old.len(), 56);
    let plain = ring::digest::digest(&ring::digest::SHA256, old.as_bytes());
    assert_eq!(
        TokenHash::of(&old).0[..],
        plain.as_ref()[..],
        "stored as its plain SHA-256"
    );
    let mut earlier = record.clone();
    earlier.hash = TokenHash::of(&old);
    server.storage.refresh_tokens().add(&earlier).await.unwrap();

    let (status, body) = refresh(&server, client, &old, None).await;
    assert_eq!(status, 200, "{body}");
    let next = rt(&body);
    assert_eq!(
        next.len(),
        tessera_core::token::TOKEN_LEN,
        "its successor is of the current format"
    );
    let (status, body) = refresh(&server, client, &next, None).await;
    assert_eq!(status, 200, "{body}");
}
