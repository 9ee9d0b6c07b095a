//! The acceptance flow in a real browser: headless Chromium opens `/authorize`, signs in on the
//! real page, consents, and lands on the client's redirect URI with a code; the code is exchanged
//! and the ID token validated against JWKS. Then single sign-on: a second client gets a code
//! without the password. Then logout: the next authorization asks for the password again.

use std::time::Duration;

use tessera_core::Clock as _;

use crate::browser::{Browser, RedirectCatcher};
use crate::login_flow::{ada, web_app, PASSWORD};
use crate::support::{verify_with_jwks, TestServer};

const VERIFIER: &str = crate::login_flow::VERIFIER;

fn authorize_url(server: &TestServer, client_id: &str, redirect_uri: &str, nonce: &str) -> String {
    crate::login_flow::authorize_url(
        server,
        client_id,
        &[
            ("redirect_uri", redirect_uri),
            ("state", "browser-state"),
            ("nonce", nonce),
        ],
    )
}

#[tokio::test]
async fn a_person_signs_in_with_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let server = TestServer::start().await;
    server.clock.set(tessera_server::clock::SystemClock.now());
    let catcher = RedirectCatcher::start().await;
    let mut first = web_app();
    first.redirect_uris = vec![catcher.redirect_uri()];
    first.require_consent = true;
    let (first_id, first_secret) = server.client("first-app", first).await;
    let mut second = web_app();
    second.redirect_uris = vec![catcher.redirect_uri()];
    second.name = Some("Second App".into());
    let (second_id, second_secret) = server.client("second-app", second).await;
    let user = ada(&server).await;

    // Sign in and consent on the real pages.
    browser
        .goto(&authorize_url(&server, &first_id, &catcher.redirect_uri(), "nonce-1"))
        .await;
    browser.fill("#username", "ada").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#sign-in").await;
    browser.wait_for("#allow").await;
    assert!(browser.page_source().await.contains("See your email address"));
    browser.click("#allow").await;
    let hit = catcher.next_hit(Duration::from_secs(10)).await;
    assert_eq!(hit.get("state").map(String::as_str), Some("browser-state"));
    assert_eq!(hit.get("iss"), Some(&server.base));
    let code = hit.get("code").expect("a code on the redirect URI").clone();

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &catcher.redirect_uri()),
        ("code_verifier", VERIFIER),
    ];
    let (status, _, tokens) = server
        .token(Some((&first_id, first_secret.as_deref().unwrap())), &form)
        .await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = verify_with_jwks(&server, tokens["id_token"].as_str().unwrap(), &first_id).await;
    assert_eq!(id_token["sub"], user.id.as_str());
    assert_eq!(id_token["nonce"], "nonce-1");
    assert_eq!(id_token["email"], "ada@example.org");

    // Single sign-on: the second app gets a code without the password.
    browser
        .goto(&authorize_url(&server, &second_id, &catcher.redirect_uri(), "nonce-2"))
        .await;
    let hit = catcher.next_hit(Duration::from_secs(10)).await;
    let code = hit.get("code").expect("SSO: a code without a login page").clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &catcher.redirect_uri()),
        ("code_verifier", VERIFIER),
    ];
    let (status, _, tokens) = server
        .token(Some((&second_id, second_secret.as_deref().unwrap())), &form)
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        verify_with_jwks(&server, tokens["id_token"].as_str().unwrap(), &second_id).await["sub"],
        user.id.as_str()
    );

    // Logout (confirmed on the page): the next authorization shows the login page again.
    browser.goto(&server.url("/logout")).await;
    browser.click("#sign-out").await;
    browser.wait_for("#signed-out").await;
    browser
        .goto(&authorize_url(&server, &second_id, &catcher.redirect_uri(), "nonce-3"))
        .await;
    browser.wait_for("#password").await;
}
