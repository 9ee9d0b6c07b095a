//! Server-rendered pages (minijinja, autoescaped): login, consent, errors, form-post responses,
//! logout. Every page carries the security headers: a strict CSP with a per-response nonce,
//! `frame-ancestors 'none'` (no clickjacking), `no-store`, `nosniff` and no referrer.
//!
//! Also the small pieces every form needs: cookies and the CSRF token (double-submit: a random
//! value in a `SameSite=Strict`, `HttpOnly` cookie that the form must echo).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use rand::RngCore;
use serde::Serialize;
use subtle::ConstantTimeEq as _;

/// The CSRF cookie's name.
pub const CSRF_COOKIE: &str = "tessera_csrf";

/// The compiled templates.
pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    /// Loads the embedded templates.
    #[must_use]
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("../templates/layout.html")),
            ("login.html", include_str!("../templates/login.html")),
            ("consent.html", include_str!("../templates/consent.html")),
            ("error.html", include_str!("../templates/error.html")),
            ("form_post.html", include_str!("../templates/form_post.html")),
            ("logout.html", include_str!("../templates/logout.html")),
            ("account.html", include_str!("../templates/account.html")),
        ] {
            // The templates are compiled into the binary; a syntax error is caught by the tests.
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(%error, template = name, "template does not compile");
            }
        }
        Self { env }
    }

    /// Renders `template` with `context` into a response with the security headers.
    /// `form_action` widens the CSP's `form-action` (for form-post responses to a client).
    pub fn render<C: Serialize>(
        &self,
        status: StatusCode,
        template: &str,
        context: C,
        form_action: Option<&str>,
    ) -> Response {
        let nonce = random_token(16);
        let rendered = self.env.get_template(template).and_then(|t| {
            t.render(minijinja::context! { csp_nonce => &nonce, ..minijinja::Value::from_serialize(&context) })
        });
        let (status, body) = match rendered {
            Ok(body) => (status, body),
            Err(error) => {
                tracing::error!(%error, template, "rendering a page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.".to_owned())
            }
        };
        let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
        security_headers(response.headers_mut(), &nonce, form_action);
        response
    }

    /// An error page (never a redirect: used when the client or redirect URI cannot be trusted).
    pub fn error(&self, status: StatusCode, title: &str, message: &str) -> Response {
        self.render(status, "error.html", minijinja::context! { title, message }, None)
    }
}

/// Adds the page security headers.
pub fn security_headers(headers: &mut HeaderMap, nonce: &str, form_action: Option<&str>) {
    let form_action = form_action.map_or_else(
        || "'self'".to_owned(),
        |target| format!("'self' {}", csp_source(target)),
    );
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; img-src 'self' data:; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// The origin of a URL for a CSP source list (scheme://host[:port]); private-use schemes as `scheme:`.
fn csp_source(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{authority}")
        }
        None => format!("{}:", url.split(':').next().unwrap_or("")),
    }
    .chars()
    .filter(|c| !c.is_whitespace() && *c != ';' && *c != ',')
    .collect()
}

/// A random base64url token of `bytes` bytes.
#[must_use]
pub fn random_token(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut random);
    tessera_jose::base64url_encode(&random)
}

/// The value of cookie `name` in the request's `Cookie` headers.
#[must_use]
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `Path=/`, `Secure` when the issuer is https.
#[must_use]
pub fn set_cookie(name: &str, value: &str, same_site: &str, max_age: Option<u64>, is_secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if let Some(max_age) = max_age {
        cookie.push_str(&format!("; Max-Age={max_age}"));
    }
    if is_secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The CSRF token for a form: the existing cookie's value, or a new one (returned with the
/// `Set-Cookie` to send).
#[must_use]
pub fn csrf_token(headers: &HeaderMap, is_secure: bool) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE).filter(|value| value.len() >= 32) {
        Some(token) => (token, None),
        None => {
            let token = random_token(32);
            let set = set_cookie(CSRF_COOKIE, &token, "Strict", None, is_secure);
            (token, Some(set))
        }
    }
}

/// Whether the form's CSRF token matches the cookie (constant time).
#[must_use]
pub fn csrf_matches(headers: &HeaderMap, form_token: Option<&str>) -> bool {
    match (cookie(headers, CSRF_COOKIE), form_token) {
        (Some(cookie), Some(form)) if cookie.len() >= 32 => cookie.as_bytes().ct_eq(form.as_bytes()).into(),
        _ => false,
    }
}

/// Adds `Set-Cookie` headers to a response.
pub fn with_cookies(mut response: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders() {
        let pages = Pages::new();
        for template in [
            "login.html",
            "consent.html",
            "error.html",
            "form_post.html",
            "logout.html",
            "account.html",
        ] {
            let response = pages.render(StatusCode::OK, template, minijinja::context! { client_name => "<App>", scopes => vec!["a"], fields => vec![("code", "x")], action => "https://app.example/cb" }, None);
            assert_eq!(response.status(), StatusCode::OK, "{template}");
            assert!(response.headers().get(header::CONTENT_SECURITY_POLICY).is_some());
        }
    }

    #[test]
    fn cookies_and_csp_sources() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; tessera_csrf=abc; b=2"));
        assert_eq!(cookie(&headers, "tessera_csrf").as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(
            csp_source("https://app.example:8443/cb?x=1"),
            "https://app.example:8443"
        );
        assert_eq!(csp_source("com.example.app:/cb"), "com.example.app:");
        assert_eq!(
            csp_source("https://a.example;script-src *"),
            "https://a.examplescript-src*"
        );
    }
}
