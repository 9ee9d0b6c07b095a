//! The authorization endpoint's request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636 §4.3).

use crate::form::FormParams;

/// An authorization request as received: every parameter optional; validation is the core's job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `response_type` (only `code` is supported).
    pub response_type: Option<String>,
    /// `response_mode` (`query` or `form_post`).
    pub response_mode: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`, echoed back.
    pub state: Option<String>,
    /// `nonce`, carried into the ID token.
    pub nonce: Option<String>,
    /// PKCE `code_challenge`.
    pub code_challenge: Option<String>,
    /// PKCE `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `prompt` (space-delimited: `none`, `login`, `consent`, `select_account`).
    pub prompt: Option<String>,
    /// `max_age`, seconds.
    pub max_age: Option<String>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// RFC 8707 `resource` values.
    pub resource: Vec<String>,
    /// `audience` values.
    pub audience: Vec<String>,
    /// OIDC `request` (request objects are not supported).
    pub request: Option<String>,
    /// OIDC `request_uri` (not supported).
    pub request_uri: Option<String>,
}

impl AuthorizationRequest {
    /// Takes the request's parameters out of a parsed query or form.
    pub fn from_form(form: &mut FormParams) -> Self {
        Self {
            client_id: form.take("client_id"),
            redirect_uri: form.take("redirect_uri"),
            response_type: form.take("response_type"),
            response_mode: form.take("response_mode"),
            scope: form.take("scope"),
            state: form.take("state"),
            nonce: form.take("nonce"),
            code_challenge: form.take("code_challenge"),
            code_challenge_method: form.take("code_challenge_method"),
            prompt: form.take("prompt"),
            max_age: form.take("max_age"),
            login_hint: form.take("login_hint"),
            resource: form.take_all("resource"),
            audience: form.take_all("audience"),
            request: form.take("request"),
            request_uri: form.take("request_uri"),
        }
    }
}
