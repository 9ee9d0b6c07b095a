//! The authorization-code flow (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1): a real relying party
//! (the `openidconnect` crate), every failure the flow must catch, SSO, session limits and logout.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse as _,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse as _,
};
use tessera_core::{Clock as _, TokenHash};

use crate::login_flow::{
    ada, authorize_url, code_for, exchange, web_app, Agent, Step, PASSWORD, REDIRECT_URI, VERIFIER,
};
use crate::support::{peek, TestServer};

#[tokio::test]
async fn the_openidconnect_crate_completes_the_flow() {
    let server = TestServer::start().await;
    // The relying party checks `exp`/`iat` against the wall clock: run the server on it.
    server.clock.set(tessera_server::clock::SystemClock.now());
    let (client_id, secret) = server.client("rp", web_app()).await;
    let user = ada(&server).await;

    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(server.base.clone()).unwrap(), &http)
        .await
        .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id),
        Some(ClientSecret::new(secret.unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf_state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let agent = Agent::new();
    let (_, login_page) = agent.get(url.as_str()).await.page();
    let params = agent.login(&server, &login_page, "ada", PASSWORD).await.redirect();
    assert_eq!(params.get("state"), Some(csrf_state.secret()));
    assert_eq!(params.get("iss"), Some(&server.base), "RFC 9207 iss");

    let tokens = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token for scope openid");
    let id_token_verifier = client.id_token_verifier();
    let claims = id_token.claims(&id_token_verifier, &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), user.id);
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.org"));
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_token_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual_hash, expected_hash);
    assert_eq!(
        peek(&id_token.to_string()).0["alg"],
        "RS256",
        "ID tokens default to RS256"
    );

    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(userinfo.subject().as_str(), user.id);
    assert_eq!(
        userinfo.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Ada Lovelace")
    );
    assert_eq!(userinfo.email().map(|e| e.as_str()), Some("ada@example.org"));
    assert_eq!(userinfo.email_verified(), Some(true));
}

#[tokio::test]
async fn tokens_carry_session_facts_and_the_grant_is_recorded() {
    let server = TestServer::start().await;
    let (client_id, secret) = server.client("rp", web_app()).await;
    let user = ada(&server).await;
    let agent = Agent::new();
    let code = code_for(&server, &agent, &client_id, &[("resource", "https://api.example")]).await;
    let (status, body) = exchange(&server, (&client_id, secret.as_deref().unwrap()), &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "refresh tokens come with the refresh-token issue"
    );
    let (_, access) = peek(body["access_token"].as_str().unwrap());
    let (_, id) = peek(body["id_token"].as_str().unwrap());
    assert_eq!(access["sub"], user.id.as_str());
    assert_eq!(access["aud"], "https://api.example");
    assert_eq!(access["scope"], "email openid profile");
    assert_eq!(access["amr"], serde_json::json!(["pwd"]));
    assert_eq!(access["auth_time"], crate::support::EPOCH.0);
    assert_eq!(access["sid"], id["sid"]);
    assert_eq!(id["aud"], client_id.as_str());
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["name"], "Ada Lovelace");
    let grants = server.storage.grants().list_by_user(&user.id).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (grants[0].client_id.as_str(), grants[0].kind, grants[0].revoked_at),
        (client_id.as_str(), tessera_core::GrantKind::Online, None)
    );
}

#[tokio::test]
async fn every_failure_of_the_exchange() {
    let server = TestServer::start().await;
    let (client_id, secret) = server.client("rp", web_app()).await;
    let (other_id, other_secret) = server.client("other", web_app()).await;
    let creds = (client_id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let agent = Agent::new();

    // Wrong and missing PKCE verifiers.
    let code = code_for(&server, &agent, &client_id, &[]).await;
    let wrong = VERIFIER.replace('d', "e");
    assert_eq!(
        exchange(&server, creds, &code, Some(&wrong)).await.1["error"],
        "invalid_grant"
    );
    assert_eq!(exchange(&server, creds, &code, None).await.1["error"], "invalid_grant");
    // A failed attempt does not burn the code for its rightful holder.
    assert_eq!(exchange(&server, creds, &code, Some(VERIFIER)).await.0, 200);

    // Code used by another client.
    let code = code_for(&server, &agent, &client_id, &[]).await;
    let (status, body) = exchange(
        &server,
        (&other_id, other_secret.as_deref().unwrap()),
        &code,
        Some(VERIFIER),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // redirect_uri differing from the authorization request's.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://app.example/other"),
        ("code_verifier", VERIFIER),
    ];
    assert_eq!(server.token(Some(creds), &form).await.2["error"], "invalid_grant");

    // Expired code (60 s).
    let code = code_for(&server, &agent, &client_id, &[]).await;
    server.clock.advance(60);
    assert_eq!(
        exchange(&server, creds, &code, Some(VERIFIER)).await.1["error"],
        "invalid_grant"
    );

    // Garbage and missing codes.
    assert_eq!(
        exchange(&server, creds, "tsr_ac_garbage", Some(VERIFIER)).await.1["error"],
        "invalid_grant"
    );
    let (status, _, body) = server
        .token(
            Some(creds),
            &[("grant_type", "authorization_code"), ("redirect_uri", REDIRECT_URI)],
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn a_reused_code_fails_and_revokes_what_the_first_use_produced() {
    let server = TestServer::start().await;
    let mut settings = web_app();
    settings.access_token_format = tessera_core::AccessTokenFormat::Opaque;
    let (client_id, secret) = server.client("rp", settings).await;
    let creds = (client_id.as_str(), secret.as_deref().unwrap());
    let user = ada(&server).await;
    let agent = Agent::new();
    let code = code_for(&server, &agent, &client_id, &[]).await;
    let (status, first) = exchange(&server, creds, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200);
    let access_token = first["access_token"].as_str().unwrap();
    let userinfo = |token: String| {
        let http = server.http.clone();
        let url = server.url("/userinfo");
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(userinfo(access_token.to_owned()).await, 200);

    let (status, second) = exchange(&server, creds, &code, Some(VERIFIER)).await;
    assert_eq!((status, second["error"].as_str()), (400, Some("invalid_grant")));
    let grant = &server.storage.grants().list_by_user(&user.id).await.unwrap()[0];
    assert_eq!(
        grant.revocation_reason.as_deref(),
        Some("code_reuse"),
        "B15: the grant of the first use is revoked"
    );
    assert!(server
        .storage
        .access_tokens()
        .find_by_hash(&TokenHash::of(access_token))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        userinfo(access_token.to_owned()).await,
        401,
        "the first use's access token no longer works"
    );
}

#[tokio::test]
async fn concurrent_exchanges_of_one_code_yield_one_success() {
    let server = TestServer::start().await;
    let (client_id, secret) = server.client("rp", web_app()).await;
    let secret = secret.unwrap();
    ada(&server).await;
    let code = code_for(&server, &Agent::new(), &client_id, &[]).await;
    let attempts = (0..8).map(|_| exchange(&server, (&client_id, &secret), &code, Some(VERIFIER)));
    let results = futures::future::join_all(attempts).await;
    let successes = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(successes, 1, "{results:?}");
    assert!(results
        .iter()
        .all(|(status, body)| *status == 200 || body["error"] == "invalid_grant"));
}

#[tokio::test]
async fn authorization_errors_go_to_the_right_place() {
    let server = TestServer::start().await;
    let (client_id, _) = server.client("rp", web_app()).await;
    ada(&server).await;
    let agent = Agent::new();

    // A redirect URI that is not registered, or an unknown client: a page, never a redirect.
    for url in [
        authorize_url(
            &server,
            &client_id,
            &[("redirect_uri", "https://evil.example/callback")],
        ),
        authorize_url(
            &server,
            &client_id,
            &[("redirect_uri", "https://app.example/callback/extra")],
        ),
        authorize_url(&server, &client_id, &[("redirect_uri", "")]),
        authorize_url(&server, "nobody", &[]),
    ] {
        let step = agent.get(&url).await;
        assert!(step.redirect_url().is_none(), "{url} redirected: {step:?}");
        let (status, html) = step.page();
        assert_eq!(status, 400);
        assert!(html.contains("not"), "{html}");
    }

    // Errors about the request itself go back to the client, with state and iss.
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("scope", "openid admin")], "invalid_scope"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("resource", "https://evil.example")], "invalid_target"),
        (&[("prompt", "none")], "login_required"),
    ];
    for (extra, error) in cases {
        let params = agent.get(&authorize_url(&server, &client_id, extra)).await.redirect();
        assert_eq!(
            params.get("error").map(String::as_str),
            Some(error),
            "{extra:?}: {params:?}"
        );
        assert_eq!(params.get("state").map(String::as_str), Some("xyz"));
        assert_eq!(params.get("iss"), Some(&server.base));
    }
}

#[tokio::test]
async fn login_page_failures() {
    let server = TestServer::start().await;
    let (client_id, _) = server.client("rp", web_app()).await;
    ada(&server).await;
    let agent = Agent::new();
    let (_, html) = agent.get(&authorize_url(&server, &client_id, &[])).await.page();
    assert!(html.contains("Example App"));

    // Wrong password and unknown user: the same message, no session.
    let (status, wrong_password) = agent.login(&server, &html, "ada", "wrong password").await.page();
    let (_, unknown_user) = agent.login(&server, &html, "nobody", PASSWORD).await.page();
    assert_eq!(status, 401);
    assert!(
        wrong_password.contains("Incorrect username or password.")
            && unknown_user.contains("Incorrect username or password.")
    );

    // CSRF token missing or wrong: refused, no session.
    let mut fields = crate::login_flow::hidden_fields(&html);
    fields.retain(|(name, _)| name != "csrf_token");
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.extend([("username", "ada"), ("password", PASSWORD)]);
    let (status, _) = agent.post(&server.url("/login"), &form).await.page();
    assert_eq!(status, 403);
    form.push(("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(agent.post(&server.url("/login"), &form).await.page().0, 403);
    let fresh = Agent::new();
    assert_eq!(
        fresh.login(&server, &html, "ada", PASSWORD).await.page().0,
        403,
        "a token without its cookie is refused"
    );

    // Still no session: prompt=none says so.
    let params = agent
        .get(&authorize_url(&server, &client_id, &[("prompt", "none")]))
        .await
        .redirect();
    assert_eq!(params["error"], "login_required");

    // A disabled user cannot log in.
    tessera_server::users::set_disabled(
        server.storage.as_ref(),
        server.clock_now(),
        "ada",
        true,
        tessera_server::config::RevocationScope::All,
    )
    .await
    .unwrap();
    let (status, page) = agent.login(&server, &html, "ada", PASSWORD).await.page();
    assert_eq!(status, 401);
    assert!(page.contains("This account is disabled."));
}

#[tokio::test]
async fn consent_is_asked_remembered_and_can_be_denied() {
    let server = TestServer::start().await;
    let mut settings = web_app();
    settings.require_consent = true;
    let (client_id, _) = server.client("rp", settings).await;
    ada(&server).await;
    let agent = Agent::new();
    let (_, login) = agent.get(&authorize_url(&server, &client_id, &[])).await.page();
    let (status, consent) = agent.login(&server, &login, "ada", PASSWORD).await.page();
    assert_eq!(status, 200);
    assert!(consent.contains("See your email address"), "{consent}");

    // Denied: access_denied to the client.
    let params = agent.consent(&server, &consent, "deny").await.redirect();
    assert_eq!(
        (params["error"].as_str(), params["state"].as_str()),
        ("access_denied", "xyz")
    );

    // prompt=none without consent: consent_required.
    let params = agent
        .get(&authorize_url(&server, &client_id, &[("prompt", "none")]))
        .await
        .redirect();
    assert_eq!(params["error"], "consent_required");

    // Allowed: a code, and the consent is remembered for the same scopes.
    let (_, consent) = agent.get(&authorize_url(&server, &client_id, &[])).await.page();
    assert!(agent
        .consent(&server, &consent, "allow")
        .await
        .redirect()
        .contains_key("code"));
    assert!(
        agent
            .get(&authorize_url(&server, &client_id, &[]))
            .await
            .redirect()
            .contains_key("code"),
        "remembered"
    );
    // offline_access is asked for separately, in words the user understands.
    let (_, offline) = agent
        .get(&authorize_url(
            &server,
            &client_id,
            &[("scope", "openid offline_access")],
        ))
        .await
        .page();
    assert!(offline.contains("wants to keep access while you are away"), "{offline}");
    // prompt=consent asks again.
    assert!(matches!(
        agent
            .get(&authorize_url(&server, &client_id, &[("prompt", "consent")]))
            .await,
        Step::Page(200, _)
    ));
}

#[tokio::test]
async fn single_sign_on_and_session_limits() {
    let server = TestServer::start().await;
    let (first, _) = server.client("first", web_app()).await;
    let (second, _) = server.client("second", web_app()).await;
    ada(&server).await;
    let agent = Agent::new();
    code_for(&server, &agent, &first, &[]).await;

    // A second client within the session: no password.
    assert!(agent
        .get(&authorize_url(&server, &second, &[]))
        .await
        .redirect()
        .contains_key("code"));
    // prompt=login and max_age force a new login (time has second resolution: move past the login).
    server.clock.advance(1);
    assert!(matches!(
        agent
            .get(&authorize_url(&server, &second, &[("prompt", "login")]))
            .await,
        Step::Page(200, _)
    ));
    server.clock.advance(120);
    assert!(matches!(
        agent.get(&authorize_url(&server, &second, &[("max_age", "60")])).await,
        Step::Page(200, _)
    ));
    assert!(agent
        .get(&authorize_url(&server, &second, &[("max_age", "600")]))
        .await
        .redirect()
        .contains_key("code"));

    // Idle timeout (30 min without activity).
    server.clock.advance(1800);
    assert!(
        matches!(
            agent.get(&authorize_url(&server, &first, &[])).await,
            Step::Page(200, _)
        ),
        "idle session is over"
    );

    // Hard end (10 h) even with steady activity.
    code_for(&server, &agent, &first, &[]).await;
    for _ in 0..20 {
        server.clock.advance(1790);
        assert!(agent
            .get(&authorize_url(&server, &first, &[]))
            .await
            .redirect()
            .contains_key("code"));
    }
    server.clock.advance(1790);
    assert!(
        matches!(
            agent.get(&authorize_url(&server, &first, &[])).await,
            Step::Page(200, _)
        ),
        "past the 10 h hard end"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let server = TestServer::start().await;
    let (client_id, secret) = server.client("rp", web_app()).await;
    ada(&server).await;
    let agent = Agent::new();
    let code = code_for(&server, &agent, &client_id, &[]).await;
    let (_, tokens) = exchange(&server, (&client_id, secret.as_deref().unwrap()), &code, Some(VERIFIER)).await;
    let id_token = tokens["id_token"].as_str().unwrap();

    // Without an id_token_hint, the user is asked (a forged link cannot sign them out).
    let (status, confirm) = agent.get(&server.url("/logout")).await.page();
    assert_eq!(status, 200);
    assert!(confirm.contains("Sign out?"));
    assert!(
        agent
            .get(&authorize_url(&server, &client_id, &[]))
            .await
            .redirect()
            .contains_key("code"),
        "still signed in"
    );

    // An unregistered post_logout_redirect_uri is refused without redirecting.
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
            ("state", "s1"),
        ])
        .finish();
    assert_eq!(agent.get(&server.url(&format!("/logout?{query}"))).await.page().0, 400);

    // With the hint and a registered URI: signed out and sent back with state.
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://app.example/signed-out"),
            ("state", "s1"),
        ])
        .finish();
    let step = agent.get(&server.url(&format!("/logout?{query}"))).await;
    assert_eq!(step.redirect_url(), Some("https://app.example/signed-out?state=s1"));
    let (status, _) = agent.get(&authorize_url(&server, &client_id, &[])).await.page();
    assert_eq!(status, 200, "the next /authorize asks for the password again");
    let grants = server
        .storage
        .grants()
        .list_by_user(&tokens_subject(&tokens))
        .await
        .unwrap();
    assert_eq!(
        grants[0].revocation_reason.as_deref(),
        Some("logout"),
        "B9: online grants die with the session"
    );
}

fn tokens_subject(tokens: &serde_json::Value) -> String {
    peek(tokens["access_token"].as_str().unwrap()).1["sub"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn form_post_response_mode() {
    let server = TestServer::start().await;
    let (client_id, _) = server.client("rp", web_app()).await;
    ada(&server).await;
    let agent = Agent::new();
    let (_, html) = agent
        .get(&authorize_url(&server, &client_id, &[("response_mode", "form_post")]))
        .await
        .page();
    let (status, page) = agent.login(&server, &html, "ada", PASSWORD).await.page();
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("action=\"{}\"", REDIRECT_URI.replace('/', "&#x2f;")))
            || page.contains(&format!("action=\"{REDIRECT_URI}\"")),
        "{page}"
    );
    let fields = crate::login_flow::hidden_fields(&page);
    let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["code", "state", "iss"]);
}

#[tokio::test]
async fn userinfo_errors() {
    let server = TestServer::start().await;
    let url = server.url("/userinfo");
    let response = server.http.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"tessera\"");
    let response = server.http.get(&url).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
    // A client-credentials token has no openid scope and no user.
    let (id, secret) = server
        .client(
            "svc",
            crate::support::service_client(
                tessera_core::AuthMethod::ClientSecretBasic,
                tessera_core::AccessTokenFormat::Jwt,
            ),
        )
        .await;
    let (_, _, body) = server
        .token(
            Some((&id, secret.as_deref().unwrap())),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let response = server
        .http
        .get(&url)
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // Never from the query string.
    let response = server.http.get(format!("{url}?access_token=x")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn pages_cookies_and_the_post_forms_of_each_endpoint() {
    let server = TestServer::start().await;
    let (client_id, secret) = server.client("rp", web_app()).await;
    ada(&server).await;

    // POST /authorize takes the same parameters; login_hint prefills the username.
    let url = authorize_url(&server, &client_id, &[("login_hint", "ada")]);
    let query = url.split_once('?').unwrap().1.to_owned();
    let response = server
        .http
        .post(server.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = response.text().await.unwrap();
    assert!(html.contains("value=\"ada\""), "login_hint prefills the username");

    // The session cookie: HttpOnly, SameSite=Lax, bounded by the session's hard end.
    let agent = Agent::new();
    let (_, html) = agent.get(&authorize_url(&server, &client_id, &[])).await.page();
    let fields = crate::login_flow::hidden_fields(&html);
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.extend([("username", "ada"), ("password", PASSWORD)]);
    let response = agent.http.post(server.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tessera_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Max-Age=36000"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http issuer in tests; Secure is set for https issuers"
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let code = form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();

    // Userinfo by POST with the token in the form body (RFC 6750 §2.2).
    let (_, tokens) = exchange(&server, (&client_id, secret.as_deref().unwrap()), &code, Some(VERIFIER)).await;
    let access_token = tokens["access_token"].as_str().unwrap();
    let response = server
        .http
        .post(server.url("/userinfo"))
        .form(&[("access_token", access_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let claims: serde_json::Value = response.json().await.unwrap();
    assert_eq!(claims["email"], "ada@example.org");
    assert_eq!(claims["preferred_username"], "ada");
    // Both header and body: refused (RFC 6750 §2).
    let response = server
        .http
        .post(server.url("/userinfo"))
        .bearer_auth(access_token)
        .form(&[("access_token", access_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}
