//! The authorization endpoint (RFC 6749 §3.1, §4.1.1–4.1.2; OIDC Core §3.1.2; RFC 7636; RFC 8707;
//! RFC 9207 `iss`; OAuth 2.0 Form Post Response Mode), and the one function the login and consent
//! pages call to continue an authorization once the user has acted.
//!
//! Stores the authorization code (hashed) and touches the SSO session. Until the client and its
//! redirect URI are validated, errors are shown on a page and the browser is never redirected, so
//! Tessera cannot be used as an open redirector (RFC 6749 §4.1.2.1, RFC 9700 §4.11).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tessera_core::authorize::{self, PageError, RedirectError, ResponseMode, ValidatedRequest, OFFLINE_ACCESS};
use tessera_core::{AuthorizationCode, Client, SsoSession, Timestamp, TokenHash, TokenKind, User};
use tessera_types::authorize::AuthorizationRequest;
use tessera_types::form::FormParams;
use tessera_types::ErrorCode;

use crate::audit::{Actor, Event, EventKind};
use crate::pages::{csrf_token, random_token, with_cookies};
use crate::sessions;
use crate::state::AppState;

/// `GET /authorize`.
#[tracing::instrument(name = "handler.oauth2.authorize.get", skip_all)]
pub async fn get(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let now = state.now();
    continue_authorization(
        &state,
        &headers,
        query.as_deref().unwrap_or(""),
        Interaction::fresh(now),
    )
    .await
}

/// `POST /authorize` (OIDC Core §3.1.2.1: the same parameters, form-encoded).
#[tracing::instrument(name = "handler.oauth2.authorize.post", skip_all)]
pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return state.pages.error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Invalid request",
            "The authorization request must be a form.",
        );
    }
    let now = state.now();
    continue_authorization(
        &state,
        &headers,
        &String::from_utf8_lossy(&body),
        Interaction::fresh(now),
    )
    .await
}

/// Whether the request body is `application/x-www-form-urlencoded`.
#[must_use]
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// What the user has done so far in this authorization.
#[derive(Debug, Default)]
pub struct Interaction {
    /// When this authorization began: a login after it satisfies `prompt=login`.
    pub started_at: Timestamp,
    /// The session the user just logged into (its cookie is not in the request yet).
    pub new_session: Option<(SsoSession, User, String)>,
    /// A failed login to report on the login page, with the username to prefill.
    pub login_error: Option<(&'static str, String)>,
    /// The user's answer on the consent page.
    pub consent: Option<bool>,
}

impl Interaction {
    /// A new authorization starting at `now`.
    #[must_use]
    pub fn fresh(now: Timestamp) -> Self {
        Self {
            started_at: now,
            ..Self::default()
        }
    }
}

/// Runs (or resumes) the authorization request `raw` (its query or form body): validate, then
/// ask for a login or consent if needed, else issue a code and send the browser back.
pub async fn continue_authorization(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
    interaction: Interaction,
) -> Response {
    let mut form = match FormParams::parse(raw.as_bytes()) {
        Ok(form) => form,
        Err(error) => {
            return state.pages.error(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                &format!("The authorization request is malformed: {error}."),
            )
        }
    };
    let request = AuthorizationRequest::from_form(&mut form);
    let client = match find_client(state, &request).await {
        Ok(client) => client,
        Err(response) => return *response,
    };
    let redirect_uri = match authorize::redirect_uri(&client, &request) {
        Ok(uri) => uri,
        Err(error) => {
            tracing::info!(client.id = %client.id, %error, "authorization refused without redirect");
            return state
                .pages
                .error(StatusCode::BAD_REQUEST, "Invalid request", &page_message(&error));
        }
    };
    let reply = Reply {
        state,
        redirect_uri: redirect_uri.clone(),
        mode: authorize::response_mode(&request),
        client_state: request.state.clone(),
    };
    let validated = match authorize::validate(&client, &request, redirect_uri) {
        Ok(validated) => validated,
        Err(error) => return reply.error(&error),
    };
    let reply = Reply {
        mode: validated.response_mode,
        ..reply
    };
    match authorize_validated(state, headers, raw, &client, &validated, interaction, &reply).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "storage failed during authorization");
            state.pages.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "Please try again in a moment.",
            )
        }
    }
}

async fn authorize_validated(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
    client: &Client,
    request: &ValidatedRequest,
    interaction: Interaction,
    reply: &Reply<'_>,
) -> Result<Response, tessera_storage::RepositoryError> {
    let now = state.now();
    let mut set_cookies = Vec::new();
    let current = match interaction.new_session {
        Some((session, user, cookie)) => {
            set_cookies.push(cookie);
            Some((session, user))
        }
        None => sessions::current(state, headers).await?,
    };
    let idle_timeout = state.config.sessions.idle_timeout;
    if authorize::needs_login(
        current.as_ref().map(|(session, _)| session),
        request,
        now,
        idle_timeout,
        interaction.started_at,
    ) {
        if request.prompt.none {
            return Ok(reply.error(&RedirectError {
                code: ErrorCode::LoginRequired,
                description: "the user is not signed in".into(),
            }));
        }
        let (error, username) = interaction
            .login_error
            .map_or((None, request.login_hint.clone().unwrap_or_default()), |(e, u)| {
                (Some(e), u)
            });
        let status = if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        let (csrf, csrf_cookie) = csrf_token(headers, state.is_https());
        set_cookies.extend(csrf_cookie);
        let page = state.pages.render(
            status,
            "login.html",
            minijinja::context! {
                client_name => client_name(client), csrf_token => csrf, authorization_request => raw,
                interaction_started_at => interaction.started_at.0, username, error,
            },
            // The form's POST is answered with a redirect to the client: CSP form-action covers it.
            Some(&request.redirect_uri),
        );
        return Ok(with_cookies(page, set_cookies));
    }
    let Some((session, user)) = current else {
        return Ok(state.pages.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Please try again.",
        ));
    };
    let scope_tokens: Vec<String> = request.scope.iter().map(str::to_owned).collect();
    match interaction.consent {
        Some(false) => {
            tracing::info!(client.id = %client.id, user.id = %user.id, "user denied consent");
            return Ok(with_cookies(
                reply.error(&RedirectError {
                    code: ErrorCode::AccessDenied,
                    description: "the user denied access".into(),
                }),
                set_cookies,
            ));
        }
        Some(true) => {
            state
                .storage
                .consents()
                .grant(&user.id, &client.id, &scope_tokens, now)
                .await?;
            state.audit.record(
                now,
                Event::new(EventKind::ConsentGiven, Actor::User)
                    .user(user.id.clone())
                    .client(client.id.clone())
                    .session(session.id.clone())
                    .detail("scope", request.scope.to_string()),
            );
        }
        None => {}
    }
    let consented = state.storage.consents().find(&user.id, &client.id).await?;
    if authorize::needs_consent(
        client,
        &request.scope,
        &consented,
        request.prompt.consent,
        interaction.consent == Some(true),
    ) {
        if request.prompt.none {
            return Ok(with_cookies(
                reply.error(&RedirectError {
                    code: ErrorCode::ConsentRequired,
                    description: "the user has not consented".into(),
                }),
                set_cookies,
            ));
        }
        let (csrf, csrf_cookie) = csrf_token(headers, state.is_https());
        set_cookies.extend(csrf_cookie);
        let scopes: Vec<String> = request.scope.iter().map(describe_scope).collect();
        let page = state.pages.render(
            StatusCode::OK,
            "consent.html",
            minijinja::context! {
                client_name => client_name(client), csrf_token => csrf, authorization_request => raw,
                interaction_started_at => interaction.started_at.0, scopes, username => &user.username,
                offline => request.scope.contains(OFFLINE_ACCESS),
            },
            Some(&request.redirect_uri),
        );
        return Ok(with_cookies(page, set_cookies));
    }

    // Everything is in place: issue the code.
    let code_value = TokenKind::AuthorizationCode.generate(crate::clock::token_order(), &mut rand::rngs::OsRng);
    let code = AuthorizationCode {
        hash: TokenHash::of(&code_value),
        client_id: client.id.clone(),
        user_id: user.id.clone(),
        session_id: session.id.clone(),
        grant_id: random_token(16),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.to_string(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.as_ref().map(|(challenge, _)| challenge.clone()),
        code_challenge_method: request
            .code_challenge
            .as_ref()
            .map(|(_, method)| method.as_str().to_owned()),
        audience: request.audience.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        acr: session.acr.clone(),
        created_at: now,
        expires_at: now.plus(state.config.tokens.authorization_code_lifetime),
        consumed_at: None,
    };
    state.storage.authorization_codes().add(&code).await?;
    state.storage.sessions().touch(&session.id, now).await?;
    tracing::debug!(client.id = %client.id, user.id = %user.id, "issued authorization code");
    state.audit.record(
        now,
        Event::new(EventKind::AuthorizationCodeIssued, Actor::User)
            .user(user.id.clone())
            .client(client.id.clone())
            .session(session.id.clone())
            .grant(code.grant_id.clone())
            .detail("scope", code.scope.clone()),
    );
    Ok(with_cookies(reply.success(&code_value), set_cookies))
}

/// Looks up the client named by the request; any failure is a page, never a redirect.
async fn find_client(state: &AppState, request: &AuthorizationRequest) -> Result<Client, Box<Response>> {
    let page = |error: PageError| {
        Box::new(
            state
                .pages
                .error(StatusCode::BAD_REQUEST, "Invalid request", &page_message(&error)),
        )
    };
    let client_id = request
        .client_id
        .as_deref()
        .ok_or_else(|| page(PageError::MissingClientId))?;
    match state.storage.clients().lookup(client_id).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(page(PageError::UnknownClient(client_id.to_owned()))),
        Err(error) => {
            tracing::error!(%error, "client lookup failed");
            Err(Box::new(state.pages.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "Please try again in a moment.",
            )))
        }
    }
}

fn page_message(error: &PageError) -> String {
    match error {
        PageError::MissingClientId | PageError::UnknownClient(_) => "The application that sent you here is not known to this server.".into(),
        PageError::MissingRedirectUri | PageError::RedirectUriNotRegistered(_) => {
            "The application that sent you here gave an address to return to that is not registered. You were not sent back to it.".into()
        }
    }
}

fn client_name(client: &Client) -> String {
    client.settings.name.clone().unwrap_or_else(|| client.id.clone())
}

/// What a scope means, in words for the consent page.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Sign you in".into(),
        "profile" => "See your name and profile".into(),
        "email" => "See your email address".into(),
        "phone" => "See your phone number".into(),
        OFFLINE_ACCESS => "Keep access while you are away".into(),
        other => format!("Use \u{201c}{other}\u{201d}"),
    }
}

/// How to answer the client: its redirect URI, response mode and `state`.
struct Reply<'a> {
    state: &'a AppState,
    redirect_uri: String,
    mode: ResponseMode,
    client_state: Option<String>,
}

impl Reply<'_> {
    fn success(&self, code: &str) -> Response {
        self.send(vec![("code", code.to_owned())])
    }

    /// RFC 6749 §4.1.2.1: the error goes to the client.
    fn error(&self, error: &RedirectError) -> Response {
        tracing::info!(error = %error.code, reason = %error.description, "authorization refused");
        self.send(vec![
            ("error", error.code.as_str().to_owned()),
            ("error_description", error.description.clone()),
        ])
    }

    fn send(&self, mut fields: Vec<(&'static str, String)>) -> Response {
        if let Some(client_state) = &self.client_state {
            fields.push(("state", client_state.clone()));
        }
        // RFC 9207: the issuer, so the client can tell which server answered (mix-up defence).
        fields.push(("iss", self.state.urls.issuer.clone()));
        match self.mode {
            ResponseMode::Query => {
                let mut url = self.redirect_uri.clone();
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&query);
                let mut response = Redirect::to(&url).into_response();
                crate::pages::security_headers(response.headers_mut(), &random_token(8), None);
                response
            }
            ResponseMode::FormPost => self.state.pages.render(
                StatusCode::OK,
                "form_post.html",
                minijinja::context! { action => &self.redirect_uri, fields },
                Some(&self.redirect_uri),
            ),
        }
    }
}
