//! The scenarios: what one measured request does, and a chain's unmeasured set-up.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::http::{Conn, Reply};
use crate::record::TokenLog;
use crate::report::{Failure, Outcome};
use crate::{Error, Options, Scenario};

/// The cookies the login flow carries (a fresh jar per flow: a new browser each time).
const COOKIES: [&str; 2] = ["tessera_csrf", "tessera_session"];

/// What every worker shares: the scenario and its credentials.
pub(crate) struct Flow {
    scenario: Scenario,
    client_id: String,
    basic: HeaderValue,
    username: String,
    password: String,
    redirect_uri: String,
}

/// How long the `introspect` scenario uses one access token before fetching another (access
/// tokens live 300 s by default).
const ACCESS_TOKEN_REUSE: std::time::Duration = std::time::Duration::from_secs(60);

/// A worker's state between requests: the refresh token its next request presents, or the access
/// token it introspects (and when it was fetched); and with `--record-tokens`, its lines.
pub(crate) struct Chain {
    refresh_token: Option<String>,
    access_token: Option<(String, std::time::Instant)>,
    log: Option<TokenLog>,
}

impl Chain {
    pub(crate) fn new(log: Option<TokenLog>) -> Self {
        Self {
            refresh_token: None,
            access_token: None,
            log,
        }
    }

    /// Writes out the recorded lines (before a pause, and at the end).
    pub(crate) fn flush_log(&mut self) {
        if let Some(log) = &mut self.log {
            log.flush();
        }
    }
}

impl Flow {
    pub(crate) fn new(options: &Options) -> Result<Self, Error> {
        let missing = |name: &str| Error::Option(format!("the {} scenario needs --{name}", options.scenario.name()));
        let password = match options.scenario {
            Scenario::ClientCredentials | Scenario::Introspect => String::new(),
            Scenario::Refresh | Scenario::Login => options.password.clone().ok_or_else(|| missing("password"))?,
        };
        let redirect_uri = match options.scenario {
            Scenario::Login => options.redirect_uri.clone().ok_or_else(|| missing("redirect-uri"))?,
            Scenario::Refresh | Scenario::ClientCredentials | Scenario::Introspect => String::new(),
        };
        // RFC 6749 §2.3.1: the id and secret are form-encoded before the Basic encoding.
        let form_encode = |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
        let credentials = format!(
            "{}:{}",
            form_encode(&options.client_id),
            form_encode(&options.client_secret)
        );
        let basic = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
            .map_err(|_| Error::Option("--client-id/--client-secret: not a valid header".into()))?;
        Ok(Self {
            scenario: options.scenario,
            client_id: options.client_id.clone(),
            basic,
            username: options.username.clone(),
            password,
            redirect_uri,
        })
    }

    /// Unmeasured set-up before a request: a refresh chain without a token gets one.
    pub(crate) async fn prepare(&self, conn: &mut Conn, chain: &mut Chain) -> Result<(), Failure> {
        if self.scenario == Scenario::Refresh && chain.refresh_token.is_none() {
            let form = encode(&[
                ("grant_type", "password"),
                ("username", &self.username),
                ("password", &self.password),
                ("scope", "offline_access"),
            ]);
            let reply = self.token(conn, form, "password grant").await?;
            let refresh_token = refresh_token_of(&reply)?;
            if let Some(log) = &mut chain.log {
                log.granted(&refresh_token);
            }
            chain.refresh_token = Some(refresh_token);
        }
        let stale = chain
            .access_token
            .as_ref()
            .is_none_or(|(_, fetched)| fetched.elapsed() >= ACCESS_TOKEN_REUSE);
        if self.scenario == Scenario::Introspect && stale {
            let form = encode(&[("grant_type", "client_credentials")]);
            let reply = self.token(conn, form, "client credentials").await?;
            chain.access_token = Some((access_token_of(&reply)?, std::time::Instant::now()));
        }
        Ok(())
    }

    /// One measured request.
    pub(crate) async fn run_once(&self, conn: &mut Conn, chain: &mut Chain) -> Result<(), Failure> {
        match self.scenario {
            Scenario::Refresh => {
                // Taken: after a failure the chain starts again from `prepare`.
                let Some(refresh_token) = chain.refresh_token.take() else {
                    return Err(Failure::unexpected("no refresh token to present".into()));
                };
                let form = encode(&[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]);
                let result = self
                    .token(conn, form, "refresh")
                    .await
                    .and_then(|reply| refresh_token_of(&reply));
                if let Some(log) = &mut chain.log {
                    log.refreshed(&refresh_token, &result);
                }
                chain.refresh_token = Some(result?);
            }
            Scenario::ClientCredentials => {
                let form = encode(&[("grant_type", "client_credentials")]);
                self.token(conn, form, "client credentials").await?;
            }
            Scenario::Login => self.login(conn).await?,
            Scenario::Introspect => {
                let Some((access_token, _)) = &chain.access_token else {
                    return Err(Failure::unexpected("no access token to introspect".into()));
                };
                let form = encode(&[("token", access_token)]);
                let request = conn.target().post_form("/introspect", form, Some(&self.basic), None)?;
                let reply = success(conn.send(request).await?, "introspect")?;
                if !is_active(&reply) {
                    chain.access_token = None;
                    return Err(Failure::unexpected(format!(
                        "introspect: not active: {}",
                        snippet(&reply.body)
                    )));
                }
            }
        }
        Ok(())
    }

    /// POST /token with the client's Basic credentials; a 2xx answer.
    async fn token(&self, conn: &mut Conn, form: String, step: &str) -> Result<Reply, Failure> {
        let request = conn.target().post_form("/token", form, Some(&self.basic), None)?;
        success(conn.send(request).await?, step)
    }

    /// The browser code flow with PKCE, from a new browser (no session).
    async fn login(&self, conn: &mut Conn) -> Result<(), Failure> {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let verifier = URL_SAFE_NO_PAD.encode(random);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let query = encode(&[
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", "openid"),
            ("state", "bench"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let mut jar = Jar::default();
        let page = conn
            .send(conn.target().get(&format!("/authorize?{query}"), None)?)
            .await?;
        jar.update(&page.headers);
        let page = success(page, "GET /authorize")?;
        let mut form = hidden_fields(&String::from_utf8_lossy(&page.body));
        if !form.iter().any(|(name, _)| name == "csrf_token") {
            return Err(Failure::unexpected(format!(
                "GET /authorize: no login form in {}",
                snippet(&page.body)
            )));
        }
        form.push(("username".into(), self.username.clone()));
        form.push(("password".into(), self.password.clone()));
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let reply = conn
            .send(conn.target().post_form("/login", form, None, jar.header())?)
            .await?;
        jar.update(&reply.headers);
        let code = self.code_from(&reply)?;
        let form = encode(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", &verifier),
        ]);
        self.token(conn, form, "code exchange").await?;
        Ok(())
    }

    /// The `code` of the redirect back to the client that `POST /login` answers.
    fn code_from(&self, reply: &Reply) -> Result<String, Failure> {
        let location = reply.headers.get(LOCATION).and_then(|v| v.to_str().ok());
        let query = location
            .filter(|_| reply.status.is_redirection())
            .and_then(|l| l.strip_prefix(self.redirect_uri.as_str()))
            .and_then(|l| l.strip_prefix('?'));
        let Some(query) = query else {
            let failure = failure(reply, "POST /login (expected a redirect with a code)");
            return Err(match failure.outcome {
                Outcome::Status(status) if status < 300 => Failure::unexpected(failure.detail),
                _ => failure,
            });
        };
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "code")
            .map(|(_, code)| code.into_owned())
            .ok_or_else(|| Failure::unexpected(format!("POST /login: redirected without a code: {query}")))
    }
}

/// The tessera cookies a flow has been given.
#[derive(Default)]
struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    fn update(&mut self, headers: &HeaderMap) {
        let pairs = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next()?.trim().split_once('='))
            .filter(|(name, _)| COOKIES.contains(name));
        for (name, value) in pairs {
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn header(&self) -> Option<String> {
        let pairs: Vec<String> = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// The `<input type="hidden">` fields of a page, unescaped.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let attribute = |tag: &str, name: &str| {
        let value = tag.split(&format!("{name}=\"")).nth(1)?.split('"').next()?;
        Some(unescape(value))
    };
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
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

fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `reply` if it is a 2xx, else its status as the failure.
fn success(reply: Reply, step: &str) -> Result<Reply, Failure> {
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(failure(&reply, step))
    }
}

fn failure(reply: &Reply, step: &str) -> Failure {
    Failure {
        outcome: Outcome::Status(reply.status.as_u16()),
        detail: format!("{step}: {} {}", reply.status, snippet(&reply.body)),
    }
}

fn refresh_token_of(reply: &Reply) -> Result<String, Failure> {
    #[derive(serde::Deserialize)]
    struct Tokens {
        refresh_token: Option<String>,
    }
    serde_json::from_slice::<Tokens>(&reply.body)
        .ok()
        .and_then(|tokens| tokens.refresh_token)
        .ok_or_else(|| Failure::unexpected(format!("no refresh_token in {}", snippet(&reply.body))))
}

fn access_token_of(reply: &Reply) -> Result<String, Failure> {
    #[derive(serde::Deserialize)]
    struct Tokens {
        access_token: Option<String>,
    }
    serde_json::from_slice::<Tokens>(&reply.body)
        .ok()
        .and_then(|tokens| tokens.access_token)
        .ok_or_else(|| Failure::unexpected(format!("no access_token in {}", snippet(&reply.body))))
}

/// Whether an introspection answer says `"active": true`.
fn is_active(reply: &Reply) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        active: bool,
    }
    serde_json::from_slice::<Answer>(&reply.body).is_ok_and(|answer| answer.active)
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_fields_are_read_and_unescaped() {
        let html = r#"<form><input type="hidden" name="csrf_token" value="abc">
            <input type="hidden" name="authorization_request" value="client_id=x&amp;redirect_uri=https:&#x2f;&#x2f;a">
            <input type="text" name="username" value=""></form>"#;
        assert_eq!(
            hidden_fields(html),
            vec![
                ("csrf_token".to_owned(), "abc".to_owned()),
                (
                    "authorization_request".to_owned(),
                    "client_id=x&redirect_uri=https://a".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_jar_keeps_only_tessera_cookies() {
        let mut headers = HeaderMap::new();
        for cookie in [
            "tessera_csrf=one; Path=/; HttpOnly",
            "other=x",
            "tessera_session=two; Path=/",
        ] {
            headers.append(SET_COOKIE, HeaderValue::from_static(cookie));
        }
        let mut jar = Jar::default();
        jar.update(&headers);
        assert_eq!(jar.header().as_deref(), Some("tessera_csrf=one; tessera_session=two"));
    }
}
