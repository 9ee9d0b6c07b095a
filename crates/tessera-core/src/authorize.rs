//! Authorization requests (RFC 6749 §4.1.1, OIDC Core §3.1.2, RFC 7636, RFC 8707): validation and
//! the login and consent decisions. The server does the I/O (session cookie, pages, storage).
//!
//! Validation has two stages because their errors go to different places (RFC 6749 §4.1.2.1):
//! until the client and its redirect URI are known good, errors are shown to the user and the
//! browser is never redirected ([`PageError`]); after that, errors are redirected to the client
//! ([`RedirectError`]).

use tessera_types::authorize::AuthorizationRequest;
use tessera_types::token::GrantType;
use tessera_types::ErrorCode;

use crate::client::{Client, ClientType};
use crate::pkce;
use crate::scope::Scope;
use crate::session::SsoSession;
use crate::time::Timestamp;

/// Scopes the OIDC layer understands; `openid` is allowed to every code-flow client, the others
/// must be among the client's allowed scopes like any scope.
pub const OPENID: &str = "openid";
/// Asks for an offline grant; always needs the user's consent.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// An error that must not be redirected (unknown client, bad redirect URI): shown on a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// No `client_id`.
    #[error("the request has no client_id")]
    MissingClientId,
    /// No such client.
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    /// No `redirect_uri` (required: we never guess where to send a code).
    #[error("the request has no redirect_uri")]
    MissingRedirectUri,
    /// The `redirect_uri` is not one the client registered (exact match, RFC 9700 §4.1.3).
    #[error("redirect_uri {0:?} is not registered for this client")]
    RedirectUriNotRegistered(String),
}

/// An error redirected to the client with `error`, `error_description`, `state` and `iss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    /// The code.
    pub code: ErrorCode,
    /// A description safe for the client developer.
    pub description: String,
}

impl RedirectError {
    fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

/// How the response reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query (RFC 6749 §4.1.2).
    Query,
    /// An auto-submitting HTML form POSTed to the redirect URI (OAuth 2.0 Form Post Response Mode).
    FormPost,
}

/// The `prompt` values (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Never show a page: fail with `login_required`/`consent_required` instead.
    pub none: bool,
    /// Re-authenticate even with a session.
    pub login: bool,
    /// Ask for consent even if it was given before.
    pub consent: bool,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedRequest {
    /// The client's registered redirect URI the request named.
    pub redirect_uri: String,
    /// How to answer.
    pub response_mode: ResponseMode,
    /// The requested scope (⊆ the client's allowed scopes ∪ {openid}).
    pub scope: Scope,
    /// `state`, echoed.
    pub state: Option<String>,
    /// `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// PKCE challenge and method.
    pub code_challenge: Option<(String, pkce::Method)>,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age`, seconds.
    pub max_age: Option<u64>,
    /// `login_hint`, to prefill the username.
    pub login_hint: Option<String>,
    /// Access-token audiences (⊆ the client's allowed audiences).
    pub audience: Vec<String>,
}

/// Stage one: the redirect URI of `client` that the request names, exactly.
///
/// # Errors
/// [`PageError`] when there is none or it is not registered.
pub fn redirect_uri(client: &Client, request: &AuthorizationRequest) -> Result<String, PageError> {
    let uri = request.redirect_uri.as_deref().ok_or(PageError::MissingRedirectUri)?;
    // RFC 9700 §4.1.3 and RFC 6749 §3.1.2.3: exact string match, no prefixes or patterns.
    if client.settings.redirect_uris.iter().any(|registered| registered == uri) {
        Ok(uri.to_owned())
    } else {
        Err(PageError::RedirectUriNotRegistered(uri.to_owned()))
    }
}

/// The response mode a (possibly invalid) request asked for; errors about it go by query.
#[must_use]
pub fn response_mode(request: &AuthorizationRequest) -> ResponseMode {
    match request.response_mode.as_deref() {
        Some("form_post") => ResponseMode::FormPost,
        _ => ResponseMode::Query,
    }
}

/// Stage two: everything else, once the redirect URI is known good.
///
/// # Errors
/// [`RedirectError`] with the RFC 6749 §4.1.2.1 / OIDC Core §3.1.2.6 code.
pub fn validate(
    client: &Client,
    request: &AuthorizationRequest,
    redirect_uri: String,
) -> Result<ValidatedRequest, RedirectError> {
    use ErrorCode::{
        InvalidRequest, InvalidScope, InvalidTarget, RequestNotSupported, RequestUriNotSupported, UnauthorizedClient,
        UnsupportedResponseType,
    };
    let response_mode = match request.response_mode.as_deref() {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(other) => {
            return Err(RedirectError::new(
                InvalidRequest,
                format!("response_mode {other:?} is not supported"),
            ))
        }
    };
    if request.request.is_some() {
        return Err(RedirectError::new(
            RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if request.request_uri.is_some() {
        return Err(RedirectError::new(
            RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    match request.response_type.as_deref() {
        Some("code") => {}
        None => return Err(RedirectError::new(InvalidRequest, "response_type is missing")),
        Some(other) => {
            return Err(RedirectError::new(
                UnsupportedResponseType,
                format!("response_type {other:?} is not supported"),
            ))
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(RedirectError::new(
            UnauthorizedClient,
            "the client may not use the authorization code flow",
        ));
    }
    let scope = Scope::parse(request.scope.as_deref().unwrap_or(""))
        .map_err(|_| RedirectError::new(InvalidScope, "scope is malformed"))?;
    let mut allowed = Scope::from_tokens(client.settings.scopes.iter().cloned());
    allowed = Scope::from_tokens(allowed.iter().chain([OPENID]).map(str::to_owned));
    let missing = scope.missing_from(&allowed);
    if !missing.is_empty() {
        return Err(RedirectError::new(
            InvalidScope,
            format!("scope not allowed: {}", missing.join(" ")),
        ));
    }
    let code_challenge = pkce_challenge(client, request)?;
    let mut audience = Vec::new();
    for target in request.resource.iter().chain(&request.audience) {
        if !client.settings.audiences.contains(target) {
            return Err(RedirectError::new(
                InvalidTarget,
                format!("target not allowed: {target}"),
            ));
        }
        if !audience.contains(target) {
            audience.push(target.clone());
        }
    }
    let mut prompt = Prompt::default();
    for value in request
        .prompt
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|v| !v.is_empty())
    {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            other => {
                return Err(RedirectError::new(
                    InvalidRequest,
                    format!("prompt value {other:?} is not supported"),
                ))
            }
        }
    }
    // OIDC Core §3.1.2.1: `none` must not be combined with any other value.
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(RedirectError::new(
            InvalidRequest,
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match request.max_age.as_deref() {
        None => None,
        Some(value) => Some(
            value
                .parse::<u64>()
                .map_err(|_| RedirectError::new(InvalidRequest, "max_age must be a non-negative integer"))?,
        ),
    };
    Ok(ValidatedRequest {
        redirect_uri,
        response_mode,
        scope,
        state: request.state.clone(),
        nonce: request.nonce.clone(),
        code_challenge,
        prompt,
        max_age,
        login_hint: request.login_hint.clone(),
        audience,
    })
}

fn pkce_challenge(
    client: &Client,
    request: &AuthorizationRequest,
) -> Result<Option<(String, pkce::Method)>, RedirectError> {
    let invalid = |description: &str| RedirectError::new(ErrorCode::InvalidRequest, description);
    let Some(challenge) = request.code_challenge.as_deref() else {
        // RFC 9700 §2.1.1: PKCE for public clients always, for confidential ones by default.
        if client.settings.client_type == ClientType::Public || client.settings.require_pkce {
            return Err(invalid("code_challenge is required (PKCE, RFC 7636)"));
        }
        return if request.code_challenge_method.is_some() {
            Err(invalid("code_challenge_method without code_challenge"))
        } else {
            Ok(None)
        };
    };
    // RFC 7636 §4.3: the method defaults to plain when absent.
    let method = pkce::Method::parse(request.code_challenge_method.as_deref().unwrap_or("plain"))
        .ok_or_else(|| invalid("code_challenge_method must be S256"))?;
    if method == pkce::Method::Plain && !client.settings.allow_plain_pkce {
        return Err(invalid("code_challenge_method must be S256"));
    }
    if !pkce::is_well_formed(challenge) {
        return Err(invalid("code_challenge must be 43-128 characters of [A-Za-z0-9-._~]"));
    }
    Ok(Some((challenge.to_owned(), method)))
}

/// Whether the user must (re-)authenticate before a code can be issued.
///
/// `authenticated_since` is when this interaction began: a login after it satisfies
/// `prompt=login`, so the user is asked once, not in a loop.
#[must_use]
pub fn needs_login(
    session: Option<&SsoSession>,
    request: &ValidatedRequest,
    now: Timestamp,
    idle_timeout: u64,
    authenticated_since: Timestamp,
) -> bool {
    let Some(session) = session.filter(|session| session.is_active(now, idle_timeout)) else {
        return true;
    };
    if request.prompt.login && session.auth_time < authenticated_since {
        return true;
    }
    // OIDC Core §3.1.2.1: max_age bounds the time since the user last actively authenticated.
    request
        .max_age
        .is_some_and(|max_age| now.0.saturating_sub(session.auth_time.0) > i64::try_from(max_age).unwrap_or(i64::MAX))
}

/// Whether the user must consent before a code can be issued: the client requires consent or
/// `offline_access` is asked, and the user has not consented to every requested scope before
/// (or `prompt=consent` asks again and this interaction has not just collected it).
#[must_use]
pub fn needs_consent(
    client: &Client,
    scope: &Scope,
    consented: &[String],
    prompt_consent: bool,
    just_consented: bool,
) -> bool {
    if just_consented {
        return false;
    }
    let is_required = client.settings.require_consent || scope.contains(OFFLINE_ACCESS);
    if !is_required {
        return false;
    }
    prompt_consent
        || !scope
            .missing_from(&Scope::from_tokens(consented.iter().cloned()))
            .is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientSettings;

    fn client(client_type: ClientType) -> Client {
        Client {
            id: "app".into(),
            secret_hash: None,
            settings: ClientSettings {
                client_type,
                redirect_uris: vec!["https://app.example/cb".into()],
                grant_types: vec![GrantType::AuthorizationCode],
                scopes: vec!["profile".into(), "email".into(), OFFLINE_ACCESS.into()],
                audiences: vec!["https://api.example".into()],
                ..ClientSettings::default()
            },
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn request(pairs: &[(&str, &str)]) -> AuthorizationRequest {
        let mut form = tessera_types::form::FormParams::default();
        form.insert("response_type", "code");
        form.insert("redirect_uri", "https://app.example/cb");
        form.insert("code_challenge", CHALLENGE);
        form.insert("code_challenge_method", "S256");
        for (name, value) in pairs {
            form.take(name);
            if !value.is_empty() {
                form.insert(*name, *value);
            }
        }
        AuthorizationRequest::from_form(&mut form)
    }

    #[track_caller]
    fn check(client_type: ClientType, pairs: &[(&str, &str)], expected: Result<&str, (&str, &str)>) {
        let client = client(client_type);
        let request = request(pairs);
        let actual = redirect_uri(&client, &request)
            .map_err(|e| ("page", e.to_string()))
            .and_then(|uri| validate(&client, &request, uri).map_err(|e| (e.code.as_str(), e.description)))
            .map(|v| v.scope.to_string());
        assert_eq!(actual, expected.map(str::to_owned).map_err(|(c, d)| (c, d.to_owned())));
    }

    #[test]
    fn validation() {
        use ClientType::{Confidential, Public};
        check(Public, &[("scope", "openid profile")], Ok("openid profile"));
        check(
            Public,
            &[("redirect_uri", "https://app.example/cb/")],
            Err((
                "page",
                "redirect_uri \"https://app.example/cb/\" is not registered for this client",
            )),
        );
        check(
            Public,
            &[("redirect_uri", "")],
            Err(("page", "the request has no redirect_uri")),
        );
        check(
            Public,
            &[("response_type", "token")],
            Err(("unsupported_response_type", "response_type \"token\" is not supported")),
        );
        check(
            Public,
            &[("scope", "openid admin")],
            Err(("invalid_scope", "scope not allowed: admin")),
        );
        check(
            Public,
            &[("code_challenge", "")],
            Err(("invalid_request", "code_challenge is required (PKCE, RFC 7636)")),
        );
        check(
            Public,
            &[("code_challenge_method", "plain")],
            Err(("invalid_request", "code_challenge_method must be S256")),
        );
        check(
            Public,
            &[("code_challenge_method", "")],
            Err(("invalid_request", "code_challenge_method must be S256")),
        );
        check(
            Public,
            &[("code_challenge", "short")],
            Err((
                "invalid_request",
                "code_challenge must be 43-128 characters of [A-Za-z0-9-._~]",
            )),
        );
        check(
            Confidential,
            &[("code_challenge", ""), ("code_challenge_method", "")],
            Err(("invalid_request", "code_challenge is required (PKCE, RFC 7636)")),
        );
        check(
            Public,
            &[("resource", "https://evil.example")],
            Err(("invalid_target", "target not allowed: https://evil.example")),
        );
        check(
            Public,
            &[("prompt", "none login")],
            Err(("invalid_request", "prompt=none cannot be combined with other values")),
        );
        check(
            Public,
            &[("max_age", "-1")],
            Err(("invalid_request", "max_age must be a non-negative integer")),
        );
        check(
            Public,
            &[("response_mode", "fragment")],
            Err(("invalid_request", "response_mode \"fragment\" is not supported")),
        );
        check(
            Public,
            &[("request", "eyJ...")],
            Err(("request_not_supported", "request objects are not supported")),
        );
    }

    #[test]
    fn confidential_clients_may_opt_out_of_pkce() {
        let mut client = client(ClientType::Confidential);
        client.settings.require_pkce = false;
        let request = request(&[("code_challenge", ""), ("code_challenge_method", "")]);
        assert!(validate(&client, &request, "https://app.example/cb".into()).is_ok_and(|v| v.code_challenge.is_none()));
    }

    fn session(auth_time: i64, last_active_at: i64) -> SsoSession {
        SsoSession {
            id: "s".into(),
            token_hash: crate::TokenHash::of("t"),
            user_id: "u".into(),
            auth_time: Timestamp(auth_time),
            amr: vec!["pwd".into()],
            acr: None,
            last_active_at: Timestamp(last_active_at),
            expires_at: Timestamp(auth_time + 36_000),
            ended_at: None,
        }
    }

    #[test]
    fn login_decisions() {
        let client = client(ClientType::Public);
        let validated = |pairs: &[(&str, &str)]| {
            validate(&client, &request(pairs), "https://app.example/cb".into()).unwrap_or_else(|e| panic!("{e:?}"))
        };
        let plain = validated(&[]);
        let now = Timestamp(1000);
        assert!(needs_login(None, &plain, now, 1800, now));
        assert!(!needs_login(Some(&session(100, 900)), &plain, now, 1800, now));
        assert!(
            needs_login(Some(&session(100, 100)), &plain, Timestamp(1900), 1800, now),
            "idle"
        );
        assert!(needs_login(
            Some(&session(100, 900)),
            &validated(&[("prompt", "login")]),
            now,
            1800,
            now
        ));
        assert!(
            !needs_login(
                Some(&session(1000, 1000)),
                &validated(&[("prompt", "login")]),
                now,
                1800,
                now
            ),
            "just logged in"
        );
        assert!(needs_login(
            Some(&session(100, 900)),
            &validated(&[("max_age", "60")]),
            now,
            1800,
            now
        ));
        assert!(!needs_login(
            Some(&session(950, 950)),
            &validated(&[("max_age", "60")]),
            now,
            1800,
            now
        ));
    }

    #[test]
    fn consent_decisions() {
        let mut client = client(ClientType::Public);
        let scope = |s: &str| Scope::parse(s).unwrap_or_default();
        assert!(
            !needs_consent(&client, &scope("openid profile"), &[], false, false),
            "first-party client, no offline"
        );
        assert!(
            needs_consent(&client, &scope("openid offline_access"), &[], false, false),
            "offline always asks"
        );
        assert!(
            !needs_consent(
                &client,
                &scope("openid offline_access"),
                &["openid".into(), "offline_access".into()],
                false,
                false
            ),
            "remembered"
        );
        assert!(
            needs_consent(
                &client,
                &scope("openid offline_access"),
                &["openid".into(), "offline_access".into()],
                true,
                false
            ),
            "prompt=consent"
        );
        client.settings.require_consent = true;
        assert!(
            needs_consent(&client, &scope("openid email"), &["openid".into()], false, false),
            "new scope"
        );
        assert!(
            !needs_consent(&client, &scope("openid email"), &[], false, true),
            "just consented"
        );
    }
}
