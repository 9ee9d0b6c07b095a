//! Client authentication at the token endpoint: one function for every method.
//!
//! - `client_secret_basic` and `client_secret_post` (RFC 6749 §2.3.1), secrets compared as SHA-256
//!   hashes in constant time;
//! - `private_key_jwt` (RFC 7523 §2.2, §3; OIDC Core §9): signature against the client's JWKS,
//!   `iss` = `sub` = client_id, `aud` naming the issuer or the endpoint, a bounded `exp`,
//!   and a `jti` that may be used once until it expires;
//! - `none` for public clients.
//!
//! A client must authenticate with the method it registered, and with one method only
//! (RFC 6749 §2.3). Every failure is `invalid_client` (401); when the Authorization header was
//! used, the response carries `WWW-Authenticate` (RFC 6749 §5.2). The reason goes to the log only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tessera_core::{secret, AuthMethod, Client, Timestamp};
use tessera_types::form::FormParams;

use crate::config::ClientAuthConfig;
use crate::error::OAuthError;
use crate::extract::form::OAuthForm;
use crate::state::AppState;

/// RFC 7523 §2.2: the only `client_assertion_type` defined for JWTs.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Signature algorithms accepted in client assertions (never `none`, never HMAC).
pub const ASSERTION_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The credentials a request presented, before any lookup.
enum Presented {
    Secret {
        client_id: String,
        secret: String,
        method: AuthMethod,
    },
    Assertion {
        client_id: String,
        assertion: String,
    },
    None {
        client_id: String,
    },
}

/// The caller and the `token` parameter of a revocation or introspection request (RFC 7009 §2.1,
/// RFC 7662 §2.1), the client authenticated like at `/token`. `token_type_hint` is taken and
/// ignored: our tokens say their type themselves.
///
/// # Errors
/// What [`authenticate`] refuses; `invalid_request` without a token.
pub async fn token_request(state: &AppState, form: OAuthForm) -> Result<(Arc<Client>, String), OAuthError> {
    let OAuthForm { mut params, headers } = form;
    let client = authenticate(state, &headers, &mut params).await?;
    tracing::Span::current().record("client.id", client.id.as_str());
    let token = params
        .take("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let _hint = params.take("token_type_hint");
    Ok((client, token))
}

/// Authenticates the client of a token-endpoint request, taking the authentication parameters out
/// of `form`.
///
/// # Errors
/// `invalid_request` for malformed or conflicting credentials, `invalid_client` for failed
/// authentication, 503 when storage is unavailable.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &mut FormParams,
) -> Result<Arc<Client>, OAuthError> {
    let authorization = headers.get(header::AUTHORIZATION);
    let used_header = authorization.is_some();
    let presented = presented_credentials(authorization.map(|value| value.as_bytes()), form)?;
    let client_id = match &presented {
        Presented::Secret { client_id, .. }
        | Presented::Assertion { client_id, .. }
        | Presented::None { client_id } => client_id.clone(),
    };
    let fail = |reason: String| OAuthError::invalid_client(reason, used_header);
    let Some(client) = state.clients.lookup(state.storage.as_ref(), &client_id).await? else {
        return Err(fail(format!("unknown client {client_id:?}")));
    };
    let registered = client.settings.auth_method;
    match presented {
        Presented::Secret {
            secret: presented_secret,
            method,
            ..
        } => {
            if method != registered {
                return Err(fail(format!(
                    "client {client_id} registered {} but used {}",
                    registered.as_str(),
                    method.as_str()
                )));
            }
            let Some(stored) = &client.secret_hash else {
                return Err(fail(format!("client {client_id} has no secret")));
            };
            if !secret::verify(stored, &presented_secret) {
                return Err(fail(format!("wrong secret for client {client_id}")));
            }
        }
        Presented::Assertion { assertion, .. } => {
            if registered != AuthMethod::PrivateKeyJwt {
                return Err(fail(format!(
                    "client {client_id} registered {} but used private_key_jwt",
                    registered.as_str()
                )));
            }
            verify_assertion(state, &client, &assertion)
                .await
                .map_err(|reason| fail(format!("client {client_id}: {reason}")))?;
        }
        Presented::None { .. } => {
            if registered != AuthMethod::None {
                return Err(fail(format!(
                    "client {client_id} must authenticate with {}",
                    registered.as_str()
                )));
            }
        }
    }
    Ok(client)
}

/// Reads the credentials from the Authorization header and the form, refusing more than one method.
fn presented_credentials(authorization: Option<&[u8]>, form: &mut FormParams) -> Result<Presented, OAuthError> {
    let basic = match authorization {
        Some(value) => Some(
            parse_basic(value)
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic authorization header", true))?,
        ),
        None => None,
    };
    let body_client_id = form.take("client_id");
    let body_secret = form.take("client_secret");
    let assertion_type = form.take("client_assertion_type");
    let assertion = form.take("client_assertion");
    let methods_used = usize::from(basic.is_some())
        + usize::from(body_secret.is_some())
        + usize::from(assertion.is_some() || assertion_type.is_some());
    if methods_used > 1 {
        // RFC 6749 §2.3: the client MUST NOT use more than one authentication method per request.
        return Err(OAuthError::invalid_request(
            "more than one client authentication method was used",
        ));
    }
    if let Some((client_id, secret)) = basic {
        if body_client_id.as_ref().is_some_and(|id| *id != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the Authorization header",
            ));
        }
        return Ok(Presented::Secret {
            client_id,
            secret,
            method: AuthMethod::ClientSecretBasic,
        });
    }
    if let Some(secret) = body_secret {
        let client_id =
            body_client_id.ok_or_else(|| OAuthError::invalid_request("client_secret given without client_id"))?;
        return Ok(Presented::Secret {
            client_id,
            secret,
            method: AuthMethod::ClientSecretPost,
        });
    }
    if assertion.is_some() || assertion_type.is_some() {
        if assertion_type.as_deref() != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::invalid_request(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
        }
        let assertion = assertion.ok_or_else(|| OAuthError::invalid_request("client_assertion is missing"))?;
        // RFC 7523 §3: the client is the assertion's `sub`; a `client_id` parameter must agree.
        let subject = unverified_subject(&assertion)
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is not a JWT with a sub claim", false))?;
        if body_client_id.as_ref().is_some_and(|id| *id != subject) {
            return Err(OAuthError::invalid_client(
                "client_id differs from the assertion's sub",
                false,
            ));
        }
        return Ok(Presented::Assertion {
            client_id: subject,
            assertion,
        });
    }
    match body_client_id {
        Some(client_id) => Ok(Presented::None { client_id }),
        None => Err(OAuthError::invalid_client("no client authentication", false)),
    }
}

/// RFC 6749 §2.3.1 / RFC 7617: `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

fn form_decode(value: &str) -> Option<String> {
    let pair = format!("v={value}");
    let mut parsed = form_urlencoded::parse(pair.as_bytes());
    parsed.next().map(|(_, decoded)| decoded.into_owned())
}

fn unverified_subject(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = tessera_jose::base64url_decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// Checks a `private_key_jwt` assertion. Returns the reason on failure.
async fn verify_assertion(state: &AppState, client: &Client, assertion: &str) -> Result<(), String> {
    let (_, claims) = match (&client.settings.jwks, &client.settings.jwks_uri) {
        (Some(jwks), _) => verify_signature(assertion, jwks)?,
        (None, Some(uri)) => {
            let now = state.now();
            let jwks = state.jwks_cache.get(uri, now, false).await?;
            match verify_signature(assertion, &jwks) {
                // The client may have rotated its keys since we cached its JWKS: fetch once more.
                Err(_) if state.jwks_cache.may_refresh(uri, now) => {
                    verify_signature(assertion, &state.jwks_cache.get(uri, now, true).await?)?
                }
                result => result?,
            }
        }
        (None, None) => return Err("no jwks or jwks_uri registered".into()),
    };
    let now = state.now();
    let policy = &state.config.client_auth;
    let string = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    // RFC 7523 §3 items 1 and 2: iss and sub are the client_id.
    if string("iss") != Some(client.id.as_str()) || string("sub") != Some(client.id.as_str()) {
        return Err("iss and sub must both be the client_id".into());
    }
    // RFC 7523 §3 item 3: aud identifies this server (its issuer, or the endpoint the client
    // authenticates at: token, revocation or introspection).
    let accepted = [
        state.urls.issuer.as_str(),
        state.urls.token_endpoint.as_str(),
        state.urls.revocation_endpoint.as_str(),
        state.urls.introspection_endpoint.as_str(),
    ];
    let names_us = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => accepted.contains(&aud.as_str()),
        Some(serde_json::Value::Array(auds)) => auds
            .iter()
            .filter_map(serde_json::Value::as_str)
            .any(|aud| accepted.contains(&aud)),
        _ => false,
    };
    if !names_us {
        return Err("aud does not name this server".into());
    }
    // RFC 7523 §3 item 4: exp is required and must not have passed; we also bound its distance.
    let skew = i64::try_from(policy.clock_skew).unwrap_or(0);
    let max_lifetime = i64::try_from(policy.assertion_max_lifetime).unwrap_or(0);
    let exp = number("exp").ok_or("exp is missing")?;
    if exp + skew <= now.0 {
        return Err("assertion expired".into());
    }
    if exp - now.0 > max_lifetime + skew {
        return Err(format!("exp is more than {max_lifetime} s ahead"));
    }
    if number("nbf").is_some_and(|nbf| nbf > now.0 + skew) || number("iat").is_some_and(|iat| iat > now.0 + skew) {
        return Err("assertion is not valid yet".into());
    }
    // RFC 7523 §3 item 7: the jti may be used once; remember it until the assertion expires.
    let jti = string("jti").ok_or("jti is missing")?;
    let is_fresh = state
        .storage
        .client_assertions()
        .register_jti(&client.id, jti, Timestamp(exp + skew), now)
        .await
        .map_err(|e| format!("cannot record jti: {e}"))?;
    if !is_fresh {
        return Err("assertion jti was already used (replay)".into());
    }
    Ok(())
}

fn verify_signature(
    assertion: &str,
    jwks: &serde_json::Value,
) -> Result<(tessera_jose::JwsHeader, serde_json::Map<String, serde_json::Value>), String> {
    tessera_jose::verify_jwt(assertion, jwks, &ASSERTION_ALGORITHMS).map_err(|e| format!("assertion signature: {e}"))
}

/// Least time between two fetches of one `jwks_uri` forced by a failed verification, seconds.
const MIN_REFRESH_INTERVAL: i64 = 10;

/// Clients' and trusted issuers' `jwks_uri` documents, fetched on demand and kept for
/// `jwks_cache_ttl`. Ages are measured with the server's clock (`now`), so tests move them with
/// the mock clock.
pub struct JwksCache {
    http: reqwest::Client,
    /// Seconds.
    ttl: i64,
    entries: Mutex<HashMap<String, (Timestamp, serde_json::Value)>>,
}

impl JwksCache {
    /// A cache configured from `[client_auth]`.
    #[must_use]
    pub fn new(config: &ClientAuthConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.jwks_fetch_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            ttl: i64::try_from(config.jwks_cache_ttl).unwrap_or(i64::MAX),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a verification failure may trigger a refetch: the cached copy is old enough that
    /// refetching cannot be used to make us hammer the key owner's server.
    pub(crate) fn may_refresh(&self, uri: &str, now: Timestamp) -> bool {
        self.entries
            .lock()
            .ok()
            .and_then(|entries| {
                entries
                    .get(uri)
                    .map(|(fetched, _)| now.0.saturating_sub(fetched.0) >= MIN_REFRESH_INTERVAL)
            })
            .unwrap_or(false)
    }

    /// The JWK Set at `uri`: the cached copy while younger than the TTL (unless `force`), else
    /// fetched and cached.
    pub(crate) async fn get(&self, uri: &str, now: Timestamp, force: bool) -> Result<serde_json::Value, String> {
        if !force {
            if let Ok(entries) = self.entries.lock() {
                if let Some((fetched, jwks)) = entries.get(uri) {
                    if now.0.saturating_sub(fetched.0) < self.ttl {
                        return Ok(jwks.clone());
                    }
                }
            }
        }
        let response = self
            .http
            .get(uri)
            .send()
            .await
            .map_err(|e| format!("fetching jwks_uri: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("jwks_uri answered {}", response.status()));
        }
        let jwks: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("jwks_uri is not JSON: {e}"))?;
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(uri.to_owned(), (now, jwks.clone()));
        }
        Ok(jwks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(header: &str, expected: Option<(&str, &str)>) {
        let actual = parse_basic(header.as_bytes());
        assert_eq!(actual, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    }

    #[test]
    fn basic_header() {
        let encode = |s: &str| STANDARD.encode(s);
        check(
            &format!("Basic {}", encode("client:secret")),
            Some(("client", "secret")),
        );
        check(
            &format!("basic {}", encode("client:se:cret")),
            Some(("client", "se:cret")),
        );
        // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
        check(
            &format!("Basic {}", encode("my%3Aclient:p%40ss+word")),
            Some(("my:client", "p@ss word")),
        );
        check(&format!("Basic {}", encode("nocolon")), None);
        check(&format!("Basic {}", encode(":secret")), None);
        check("Basic !!!", None);
        check("Bearer abc", None);
        check("Basic", None);
    }
}
