//! The user's account page `/account` (DESIGN §4, B6, B9): signing in to it, what it lists (the
//! user's active sessions, the apps holding offline access — and nobody else's), removing an app's
//! access (its refresh token is then refused at `/token`), signing sessions out, the CSRF checks,
//! and the same flow in a real browser.

use std::time::Duration;

use tessera_core::{Clock as _, Grant, GrantKind, UserClaims};

use crate::browser::{Browser, RedirectCatcher};
use crate::login_flow::{hidden_fields, Agent, PASSWORD, VERIFIER};
use crate::refresh_token::{login, refresh, refreshing_app, rt};
use crate::support::TestServer;

/// Creates a user with [`PASSWORD`].
async fn user(server: &TestServer, username: &str) -> tessera_core::User {
    tessera_server::users::create(
        server.storage.as_ref(),
        &mut rand::rngs::OsRng,
        server.clock_now(),
        username,
        Some(PASSWORD),
        UserClaims::default(),
    )
    .await
    .unwrap()
}

/// A new agent signed in as `username` through the login page `/account` shows.
async fn sign_in(server: &TestServer, username: &str) -> Agent {
    let agent = Agent::new();
    let (status, html) = agent.get(&server.url("/account")).await.page();
    assert_eq!(status, 200, "{html}");
    let step = agent.login(server, &html, username, PASSWORD).await;
    assert_eq!(step.redirect_url(), Some("/account"), "{step:?}");
    agent
}

/// The account page of a signed-in agent.
async fn account_page(server: &TestServer, agent: &Agent) -> String {
    let (status, html) = agent.get(&server.url("/account")).await.page();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Your account"), "expected the account page: {html}");
    html
}

/// The CSRF token of a page's forms.
fn csrf(html: &str) -> String {
    hidden_fields(html)
        .into_iter()
        .find(|(name, _)| name == "csrf_token")
        .unwrap_or_else(|| panic!("no csrf_token in {html}"))
        .1
}

/// The session ids the account page offers to sign out.
fn listed_sessions(html: &str) -> Vec<String> {
    html.split("id=\"end-session-")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

async fn grants(server: &TestServer, user_id: &str) -> Vec<Grant> {
    server.storage.grants().list_by_user(user_id).await.unwrap()
}

async fn grant(server: &TestServer, grant_id: &str) -> Grant {
    server.storage.grants().lookup(grant_id).await.unwrap().unwrap()
}

/// The one unrevoked grant of `kind` of the user.
async fn live_grant(server: &TestServer, user_id: &str, kind: GrantKind) -> Grant {
    let mut live: Vec<Grant> = grants(server, user_id)
        .await
        .into_iter()
        .filter(|g| g.kind == kind && g.revoked_at.is_none())
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    live.remove(0)
}

async fn post(server: &TestServer, agent: &Agent, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    agent.http.post(server.url(path)).form(form).send().await.unwrap()
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn without_a_session_the_account_page_asks_to_sign_in_and_comes_back() {
    let server = TestServer::start().await;
    user(&server, "ada").await;
    let agent = Agent::new();
    let response = agent.http.get(server.url("/account")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self';"),
        "{csp}"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(
        html.contains("id=\"login-form\"") && html.contains("to manage your account"),
        "{html}"
    );
    let fields = hidden_fields(&html);
    let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["csrf_token", "return_to", "interaction_started_at"]);
    assert!(fields.contains(&("return_to".into(), "account".into())));

    // A wrong password: the same page again, with the message and the username.
    let (status, again) = agent.login(&server, &html, "ada", "wrong password").await.page();
    assert_eq!(status, 401);
    assert!(again.contains("Incorrect username or password.") && again.contains("value=\"ada\""));
    assert!(again.contains("name=\"return_to\""), "{again}");

    // return_to names a page of ours, never a URL: anything else is refused, and nobody signs in.
    let mut form: Vec<(String, String)> = fields.clone();
    form.retain(|(name, _)| name != "return_to");
    for evil in [
        Some("https://evil.example/"),
        Some("//evil.example"),
        Some("/account"),
        Some("Account"),
        None,
    ] {
        let mut form = form.clone();
        form.extend([("username".into(), "ada".into()), ("password".into(), PASSWORD.into())]);
        if let Some(evil) = evil {
            form.push(("return_to".into(), evil.into()));
        }
        let response = agent.http.post(server.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "return_to={evil:?}");
        assert!(response.headers().get("location").is_none());
        assert!(!set_cookies(&response).iter().any(|c| c.starts_with("tessera_session=")));
    }

    // Without the CSRF token (or its cookie): refused like the authorization's login form.
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.retain(|(name, _)| *name != "csrf_token");
    form.extend([("username", "ada"), ("password", PASSWORD)]);
    assert_eq!(agent.post(&server.url("/login"), &form).await.page().0, 403);
    assert_eq!(Agent::new().login(&server, &html, "ada", PASSWORD).await.page().0, 403);

    // The right password: a session, and a 303 to /account (a fixed path of ours).
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.extend([("username", "ada"), ("password", PASSWORD)]);
    let response = agent.http.post(server.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/account");
    assert!(set_cookies(&response).iter().any(|c| c.starts_with("tessera_session=")));
    let page = account_page(&server, &agent).await;
    assert!(page.contains("ada"));
    assert!(page.contains("id=\"no-apps\""), "{page}");
    assert_eq!(listed_sessions(&page).len(), 1);
    assert!(page.contains("current-session"));
}

#[tokio::test]
async fn the_page_lists_the_users_offline_grants_only() {
    let server = TestServer::start().await;
    let (rp, rp_secret) = server.client("rp", refreshing_app()).await;
    let mut online = refreshing_app();
    online.name = None;
    let (online_id, online_secret) = server.client("online-app", online).await;
    let ada = user(&server, "ada").await;
    let bob = user(&server, "bob").await;

    let agent = sign_in(&server, "ada").await;
    login(
        &server,
        &agent,
        (&rp, rp_secret.as_deref().unwrap()),
        "openid offline_access",
    )
    .await;
    login(
        &server,
        &agent,
        (&online_id, online_secret.as_deref().unwrap()),
        "openid profile",
    )
    .await;
    let bob_agent = sign_in(&server, "bob").await;
    login(
        &server,
        &bob_agent,
        (&rp, rp_secret.as_deref().unwrap()),
        "openid offline_access",
    )
    .await;
    let offline = live_grant(&server, &ada.id, GrantKind::Offline).await;
    let online = live_grant(&server, &ada.id, GrantKind::Online).await;
    let bobs = live_grant(&server, &bob.id, GrantKind::Offline).await;

    let html = account_page(&server, &agent).await;
    assert!(html.contains("Example App"), "the client's display name: {html}");
    assert!(html.contains("data-client-id=\"rp\""));
    assert!(html.contains("offline_access openid"), "the scope: {html}");
    assert!(html.contains("2026-01-01 00:00 UTC"), "when given: {html}");
    assert!(html.contains(&format!("id=\"remove-access-{}\"", offline.id)));
    assert!(
        !html.contains(&format!("remove-access-{}", online.id)),
        "an online grant is not listed as offline access"
    );
    assert!(
        html.contains("Apps: online-app"),
        "the session's online app (named by its id: no display name): {html}"
    );
    assert!(!html.contains(&bobs.id), "never another user's grant");
    let sessions = listed_sessions(&html);
    assert_eq!(sessions, [online.session_id.clone().unwrap()], "only ada's session");

    // A revoked grant is not listed.
    server
        .storage
        .grants()
        .revoke(&offline.id, server.clock_now(), "test")
        .await
        .unwrap();
    let html = account_page(&server, &agent).await;
    assert!(!html.contains(&offline.id) && html.contains("id=\"no-apps\""), "{html}");
}

#[tokio::test]
async fn removing_access_needs_the_csrf_token_and_kills_the_refresh_token() {
    let server = TestServer::start().await;
    let (rp, rp_secret) = server.client("rp", refreshing_app()).await;
    let client = (rp.as_str(), rp_secret.as_deref().unwrap());
    let ada = user(&server, "ada").await;
    let agent = sign_in(&server, "ada").await;
    let refresh_token = rt(&login(&server, &agent, client, "openid offline_access").await);
    let offline = live_grant(&server, &ada.id, GrantKind::Offline).await;
    let html = account_page(&server, &agent).await;
    let token = csrf(&html);
    let path = format!("/account/grants/{}/revoke", offline.id);

    // Without the token, with a wrong one, or with the token but without its cookie: 403.
    assert_eq!(post(&server, &agent, &path, &[]).await.status().as_u16(), 403);
    let wrong = "A".repeat(token.len());
    assert_eq!(
        post(&server, &agent, &path, &[("csrf_token", &wrong)])
            .await
            .status()
            .as_u16(),
        403
    );
    let response = server
        .http
        .post(server.url(&path))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(grant(&server, &offline.id).await.revoked_at, None, "still live");

    // With the token: revoked, back to the page, and the refresh token is refused.
    let response = post(&server, &agent, &path, &[("csrf_token", &token)]).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/account");
    let revoked = grant(&server, &offline.id).await;
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.revocation_reason.as_deref(), Some("account"));
    let (status, body) = refresh(&server, client, &refresh_token, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let html = account_page(&server, &agent).await;
    assert!(html.contains("id=\"no-apps\""), "{html}");
    assert_eq!(listed_sessions(&html).len(), 1, "the session stays");
}

#[tokio::test]
async fn another_users_grant_or_session_is_not_found() {
    let server = TestServer::start().await;
    let (rp, rp_secret) = server.client("rp", refreshing_app()).await;
    let client = (rp.as_str(), rp_secret.as_deref().unwrap());
    user(&server, "ada").await;
    let bob = user(&server, "bob").await;
    let bob_agent = sign_in(&server, "bob").await;
    let bobs_rt = rt(&login(&server, &bob_agent, client, "openid offline_access").await);
    let bobs = live_grant(&server, &bob.id, GrantKind::Offline).await;
    let bobs_session = bobs.session_id.clone().unwrap();

    let agent = sign_in(&server, "ada").await;
    let token = csrf(&account_page(&server, &agent).await);
    for path in [
        format!("/account/grants/{}/revoke", bobs.id),
        "/account/grants/no-such-grant/revoke".to_owned(),
        format!("/account/sessions/{bobs_session}/end"),
        "/account/sessions/no-such-session/end".to_owned(),
    ] {
        let response = post(&server, &agent, &path, &[("csrf_token", &token)]).await;
        assert_eq!(response.status().as_u16(), 404, "{path}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("There is no such session or app on your account."));
    }
    assert_eq!(
        grant(&server, &bobs.id).await.revoked_at,
        None,
        "bob's grant stays live"
    );
    let session = server.storage.sessions().lookup(&bobs_session).await.unwrap().unwrap();
    assert_eq!(session.ended_at, None, "bob's session stays");
    assert_eq!(refresh(&server, client, &bobs_rt, None).await.0, 200);
    account_page(&server, &bob_agent).await;
}

#[tokio::test]
async fn signing_out_another_session_ends_it_and_its_online_grants() {
    let server = TestServer::start().await;
    let (rp, rp_secret) = server.client("rp", refreshing_app()).await;
    let client = (rp.as_str(), rp_secret.as_deref().unwrap());
    let ada = user(&server, "ada").await;

    // The laptop: signed in through an app, with an online and an offline grant.
    let laptop = sign_in(&server, "ada").await;
    login(&server, &laptop, client, "openid").await;
    let offline_rt = rt(&login(&server, &laptop, client, "openid offline_access").await);
    let online = live_grant(&server, &ada.id, GrantKind::Online).await;
    let laptop_session = online.session_id.clone().unwrap();

    // The phone signs the laptop out.
    server.clock.advance(60);
    let phone = sign_in(&server, "ada").await;
    let html = account_page(&server, &phone).await;
    let sessions = listed_sessions(&html);
    assert_eq!(sessions.len(), 2, "{html}");
    assert!(sessions.contains(&laptop_session));
    let phone_session = sessions.iter().find(|id| **id != laptop_session).unwrap().clone();
    assert!(
        html.contains(&format!(
            "class=\"session current-session\" id=\"session-{phone_session}\""
        )),
        "the phone's own session is marked: {html}"
    );
    let response = post(
        &server,
        &phone,
        &format!("/account/sessions/{laptop_session}/end"),
        &[("csrf_token", &csrf(&html))],
    )
    .await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(
        !set_cookies(&response).iter().any(|c| c.starts_with("tessera_session=")),
        "the phone keeps its cookie"
    );
    let ended = server
        .storage
        .sessions()
        .lookup(&laptop_session)
        .await
        .unwrap()
        .unwrap();
    assert!(ended.ended_at.is_some());
    let online = grant(&server, &online.id).await;
    assert_eq!(
        online.revocation_reason.as_deref(),
        Some("account"),
        "B9: online grants die with it"
    );
    assert_eq!(
        refresh(&server, client, &offline_rt, None).await.0,
        200,
        "B9: offline grants stay"
    );

    // The laptop is signed out; the phone is not.
    let (status, html) = laptop.get(&server.url("/account")).await.page();
    assert_eq!(status, 200);
    assert!(html.contains("id=\"login-form\""), "{html}");
    assert_eq!(listed_sessions(&account_page(&server, &phone).await), [phone_session]);
}

#[tokio::test]
async fn signing_out_the_current_session_clears_the_cookie() {
    let server = TestServer::start().await;
    user(&server, "ada").await;
    let agent = sign_in(&server, "ada").await;
    let html = account_page(&server, &agent).await;
    let sessions = listed_sessions(&html);
    assert_eq!(sessions.len(), 1);
    let response = post(
        &server,
        &agent,
        &format!("/account/sessions/{}/end", sessions[0]),
        &[("csrf_token", &csrf(&html))],
    )
    .await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/account");
    let cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("tessera_session="))
        .expect("the session cookie is cleared");
    assert!(
        cookie.starts_with("tessera_session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    let session = server.storage.sessions().lookup(&sessions[0]).await.unwrap().unwrap();
    assert!(session.ended_at.is_some());
    let (status, html) = agent.get(&server.url("/account")).await.page();
    assert_eq!(status, 200);
    assert!(html.contains("id=\"login-form\""), "signed out: {html}");

    // A form posted after signing out goes back to the page (which asks to sign in).
    let response = post(
        &server,
        &agent,
        &format!("/account/sessions/{}/end", sessions[0]),
        &[("csrf_token", &csrf(&html))],
    )
    .await;
    assert_eq!(response.status().as_u16(), 303);
}

/// The acceptance test: sign in with a real browser through an app asking for offline access,
/// see the app on `/account`, remove its access, and its refresh token is refused at `/token`.
#[tokio::test]
async fn a_person_removes_an_apps_offline_access_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let server = TestServer::start().await;
    server.clock.set(tessera_server::clock::SystemClock.now());
    let catcher = RedirectCatcher::start().await;
    let mut settings = refreshing_app();
    settings.redirect_uris = vec![catcher.redirect_uri()];
    let (rp, rp_secret) = server.client("rp", settings).await;
    let client = (rp.as_str(), rp_secret.as_deref().unwrap());
    let ada = user(&server, "ada").await;

    // Sign in through the app with offline_access (the consent page asks for it).
    browser
        .goto(&crate::login_flow::authorize_url(
            &server,
            &rp,
            &[
                ("redirect_uri", &catcher.redirect_uri()),
                ("scope", "openid offline_access"),
            ],
        ))
        .await;
    browser.fill("#username", "ada").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#sign-in").await;
    browser.click("#allow").await;
    let hit = catcher.next_hit(Duration::from_secs(10)).await;
    let code = hit.get("code").expect("a code on the redirect URI").clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &catcher.redirect_uri()),
        ("code_verifier", VERIFIER),
    ];
    let (status, _, tokens) = server.token(Some(client), &form).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh_token = rt(&tokens);
    let offline = live_grant(&server, &ada.id, GrantKind::Offline).await;

    // The account page in the same browser lists the app; remove its access.
    browser.goto(&server.url("/account")).await;
    browser.wait_for("[data-client-id=\"rp\"] .remove-access").await;
    assert!(browser.page_source().await.contains("Example App"));
    browser.click(&format!("#remove-access-{}", offline.id)).await;
    browser.wait_for("#no-apps").await;
    assert!(browser.current_url().await.ends_with("/account"));

    assert!(grant(&server, &offline.id).await.revoked_at.is_some());
    let (status, body) = refresh(&server, client, &refresh_token, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}
