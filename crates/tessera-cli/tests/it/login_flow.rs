//! A browserless user agent for the login flow: follows Tessera's pages with a cookie jar,
//! reading the forms' hidden fields from the HTML as a browser would submit them.

use std::collections::HashMap;

use tessera_core::client::{AccessTokenFormat, AuthMethod, ClientSettings, ClientType};
use tessera_core::UserClaims;
use tessera_types::token::GrantType;

use crate::support::TestServer;

/// The PKCE pair of RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT_URI: &str = "https://app.example/callback";
pub const PASSWORD: &str = "correct horse battery staple";

/// A browser without a browser: a cookie jar and no automatic redirects.
pub struct Agent {
    pub http: reqwest::Client,
}

/// What a step of the flow answered.
#[derive(Debug)]
pub enum Step {
    /// A page (status, HTML).
    Page(u16, String),
    /// A redirect to this URL.
    Redirect(String),
}

impl Step {
    pub fn page(self) -> (u16, String) {
        match self {
            Self::Page(status, html) => (status, html),
            Self::Redirect(url) => panic!("expected a page, got a redirect to {url}"),
        }
    }

    /// The query parameters of a redirect.
    pub fn redirect(self) -> HashMap<String, String> {
        match self {
            Self::Redirect(url) => {
                let query = url.split_once('?').map_or("", |(_, q)| q);
                form_urlencoded::parse(query.as_bytes()).into_owned().collect()
            }
            Self::Page(status, html) => panic!("expected a redirect, got {status}: {html}"),
        }
    }

    pub fn redirect_url(&self) -> Option<&str> {
        match self {
            Self::Redirect(url) => Some(url),
            Self::Page(..) => None,
        }
    }
}

impl Agent {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Step {
        Self::step(self.http.get(url).send().await.unwrap()).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Step {
        Self::step(self.http.post(url).form(form).send().await.unwrap()).await
    }

    async fn step(response: reqwest::Response) -> Step {
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            let location = response.headers().get("location").unwrap().to_str().unwrap().to_owned();
            return Step::Redirect(location);
        }
        Step::Page(status, response.text().await.unwrap())
    }

    /// Fills and submits the login page `html`.
    pub async fn login(&self, server: &TestServer, html: &str, username: &str, password: &str) -> Step {
        let fields = hidden_fields(html);
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        form.push(("username", username));
        form.push(("password", password));
        self.post(&server.url("/login"), &form).await
    }

    /// Answers the consent page `html`.
    pub async fn consent(&self, server: &TestServer, html: &str, decision: &str) -> Step {
        let fields = hidden_fields(html);
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        form.push(("decision", decision));
        self.post(&server.url("/consent"), &form).await
    }
}

/// The `<input type="hidden">` fields of a page, unescaped.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split("name=\"").nth(1)?.split('"').next()?;
            let value = rest.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), unescape(value)))
        })
        .collect()
}

fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A web-app client for the code flow: confidential, PKCE, `openid profile email offline_access`.
pub fn web_app() -> ClientSettings {
    ClientSettings {
        name: Some("Example App".into()),
        client_type: ClientType::Confidential,
        auth_method: AuthMethod::ClientSecretBasic,
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec!["https://app.example/signed-out".into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: vec!["profile".into(), "email".into(), "offline_access".into()],
        audiences: vec!["https://api.example".into()],
        access_token_format: AccessTokenFormat::Jwt,
        ..ClientSettings::default()
    }
}

/// Creates user `ada` with password [`PASSWORD`].
pub async fn ada(server: &TestServer) -> tessera_core::User {
    let claims = UserClaims {
        name: Some("Ada Lovelace".into()),
        email: Some("ada@example.org".into()),
        email_verified: Some(true),
        ..UserClaims::default()
    };
    tessera_server::users::create(
        server.storage.as_ref(),
        &mut rand::rngs::OsRng,
        server.clock_now(),
        "ada",
        Some(PASSWORD),
        claims,
    )
    .await
    .unwrap()
}

/// The authorization URL for `client_id` with the RFC 7636 challenge and `extra` parameters.
pub fn authorize_url(server: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile email"),
        ("state", "xyz"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    server.url(&format!("/authorize?{query}"))
}

/// Gets a code for `client_id`, logging `ada` in if the agent has no session and allowing a
/// consent page if one is shown.
pub async fn code_for(server: &TestServer, agent: &Agent, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut step = agent.get(&authorize_url(server, client_id, extra)).await;
    if let Step::Page(status, html) = &step {
        assert_eq!(*status, 200, "{html}");
        if html.contains("action=\"&#x2f;login\"") || html.contains("action=\"/login\"") {
            step = agent.login(server, html, "ada", PASSWORD).await;
        }
    }
    if let Step::Page(_, html) = &step {
        assert!(html.contains("consent-form"), "expected a consent page: {html}");
        step = agent.consent(server, html, "allow").await;
    }
    let params = step.redirect();
    params
        .get("code")
        .unwrap_or_else(|| panic!("no code in {params:?}"))
        .clone()
}

/// Exchanges a code at `/token` with Basic authentication.
pub async fn exchange(
    server: &TestServer,
    client: (&str, &str),
    code: &str,
    verifier: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let (status, _, body) = server.token(Some(client), &form).await;
    (status, body)
}
