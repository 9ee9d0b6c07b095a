//! JWTs from configured trusted external issuers (`[[token_exchange.trusted_issuers]]`): the
//! `urn:ietf:params:oauth:token-type:jwt` subject and actor tokens of token exchange
//! (RFC 8693 §3), validated as RFC 7519 §7.2 and RFC 7523 §3 ask before anything is issued for them.
//!
//! - `iss` picks the trusted issuer; an issuer not configured is refused (RFC 7523 §3 item 1);
//! - the signature must verify with one of its keys (inline `jwks`, or its `jwks_uri` through the
//!   shared [`JwksCache`](crate::extract::client_auth::JwksCache)) and one of its `algorithms`;
//!   `none` and HMAC never verify (RFC 7519 §7.2 step 6, RFC 8725 §3.1);
//! - `exp` is required and must not have passed (RFC 7523 §3 item 4);
//! - `nbf`, when present, must have arrived (RFC 7523 §3 item 5);
//! - `iat` is required when the issuer has a `max_age`, and must not be older than it nor in the
//!   future (RFC 7523 §3 item 6);
//! - `aud` must name us: the configured audience, else our issuer or token endpoint (RFC 7523 §3
//!   item 3);
//! - the subject claim must be a non-empty string (RFC 7523 §3 item 2).
//!
//! Times allow `client_auth.clock_skew`. Nothing is stored; what the subject maps to (a local user
//! or a pass-through subject) is the caller's decision, from [`ExternalToken::mapping`].

use serde_json::{Map, Value};
use tessera_core::Timestamp;
use tessera_jose::JoseError;

use crate::config::{SubjectMapping, TrustedIssuer};
use crate::state::AppState;

/// A JWT from a trusted external issuer, verified.
#[derive(Debug, Clone)]
pub struct ExternalToken {
    /// The issuer (`iss`), one of `token_exchange.trusted_issuers`.
    pub issuer: String,
    /// The value of the issuer's `subject_claim`.
    pub subject: String,
    /// What `subject` names, as configured for the issuer.
    pub mapping: SubjectMapping,
    /// Space-delimited scope: the `scope` claim (a string) or `scp` (an array, joined, or a
    /// string), else the issuer's configured `scopes`; `None` when empty.
    pub scope: Option<String>,
    /// The `aud` values.
    pub audience: Vec<String>,
    /// `iat`, if present.
    pub issued_at: Option<Timestamp>,
    /// `exp`.
    pub expires_at: Timestamp,
    /// The `act` claim (RFC 8693 §4.1): who is acting for the subject, if anyone.
    pub act: Option<Value>,
    /// The `may_act` claim (RFC 8693 §4.4): who may act for the subject.
    pub may_act: Option<Value>,
    /// The `client_id` claim (RFC 9068 §2.2), or else `azp` (OIDC Core §2).
    pub client_id: Option<String>,
    /// Every claim, as signed.
    pub claims: Map<String, Value>,
}

/// Verifies `token` as a JWT from one of `token_exchange.trusted_issuers`.
///
/// # Errors
/// The reason, for logs; the caller turns it into `invalid_grant`.
pub async fn verify(state: &AppState, token: &str) -> Result<ExternalToken, String> {
    // RFC 7523 §3 item 1: the (as yet unverified) issuer only picks the keys to verify with.
    let issuer = unverified_issuer(token).ok_or("not a JWT with an iss claim")?;
    let Some(trusted) = state
        .config
        .token_exchange
        .trusted_issuers
        .iter()
        .find(|trusted| trusted.issuer == issuer)
    else {
        return Err(format!("untrusted issuer {issuer:?}"));
    };
    let claims = verify_signature(state, trusted, token).await?;
    check_claims(state, trusted, claims)
}

/// RFC 7519 §7.2 steps 1–9 with the issuer's keys and algorithms: the verified claims.
async fn verify_signature(
    state: &AppState,
    trusted: &TrustedIssuer,
    token: &str,
) -> Result<Map<String, Value>, String> {
    let algorithms: Vec<&str> = trusted.algorithms.iter().map(|alg| alg.as_str()).collect();
    let verify = |jwks: &Value| tessera_jose::verify_jwt(token, jwks, &algorithms).map(|(_, claims)| claims);
    let result = match (&trusted.jwks, &trusted.jwks_uri) {
        (Some(jwks), _) => verify(jwks),
        (None, Some(uri)) => {
            let now = state.now();
            match verify(&state.jwks_cache.get(uri, now, false).await?) {
                // No key with the token's kid: the issuer may have rotated its keys since we cached
                // its JWK Set, so fetch it once more — at most every few seconds, so that tokens with
                // made-up kids cannot make us hammer the issuer.
                Err(JoseError::KeyNotFound) if state.jwks_cache.may_refresh(uri, now) => {
                    verify(&state.jwks_cache.get(uri, now, true).await?)
                }
                result => result,
            }
        }
        (None, None) => return Err(format!("trusted issuer {:?} has no keys", trusted.issuer)),
    };
    result.map_err(|e| format!("signature of a token from {:?}: {e}", trusted.issuer))
}

/// RFC 7523 §3 items 1–6 on the verified claims.
fn check_claims(
    state: &AppState,
    trusted: &TrustedIssuer,
    claims: Map<String, Value>,
) -> Result<ExternalToken, String> {
    let now = state.now().0;
    let skew = i64::try_from(state.config.client_auth.clock_skew).unwrap_or(0);
    let string = |name: &str| claims.get(name).and_then(Value::as_str);
    // The signed iss must be the one that chose the keys (it is the same payload; checked anyway).
    if string("iss") != Some(trusted.issuer.as_str()) {
        return Err("iss does not match the trusted issuer".into());
    }
    // RFC 7523 §3 item 4: exp is required, and the token must not have expired.
    let expires_at = numeric_date(&claims, "exp")?.ok_or("exp is missing")?;
    if expires_at.saturating_add(skew) <= now {
        return Err("token expired".into());
    }
    // RFC 7523 §3 item 5: not before nbf.
    if numeric_date(&claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err("token is not valid yet (nbf)".into());
    }
    // RFC 7523 §3 item 6: iat bounds the token's age when the issuer has a max_age; a token issued
    // in the future is refused either way.
    let issued_at = numeric_date(&claims, "iat")?;
    if issued_at.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err("iat is in the future".into());
    }
    if trusted.max_age > 0 {
        let iat = issued_at.ok_or("iat is missing")?;
        let max_age = i64::try_from(trusted.max_age).unwrap_or(i64::MAX);
        if now.saturating_sub(iat) > max_age.saturating_add(skew) {
            return Err(format!("token is older than max_age ({max_age} s)"));
        }
    }
    // RFC 7523 §3 item 3: the token must be meant for us, else a token minted for another relying
    // party of the same issuer could be replayed here.
    let audience: Vec<String> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let names_us = |aud: &String| match &trusted.audience {
        Some(expected) => aud == expected,
        None => *aud == state.urls.issuer || *aud == state.urls.token_endpoint,
    };
    if !audience.iter().any(names_us) {
        return Err("aud does not name this server".into());
    }
    // RFC 7523 §3 item 2: the subject.
    let subject = string(&trusted.subject_claim)
        .filter(|subject| !subject.is_empty())
        .ok_or_else(|| format!("{} is missing or not a non-empty string", trusted.subject_claim))?
        .to_owned();
    let scope = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) | (None, Some(Value::String(scope))) => normalise_scope(scope.split(' ')),
        (None, Some(Value::Array(scopes))) => normalise_scope(scopes.iter().filter_map(Value::as_str)),
        (Some(_), _) | (None, Some(_)) => return Err("scope (or scp) is neither a string nor an array".into()),
        (None, None) => normalise_scope(trusted.scopes.iter().map(String::as_str)),
    };
    let client_id = string("client_id").or_else(|| string("azp")).map(str::to_owned);
    Ok(ExternalToken {
        issuer: trusted.issuer.clone(),
        subject,
        mapping: trusted.subject,
        scope,
        audience,
        issued_at: issued_at.map(Timestamp),
        expires_at: Timestamp(expires_at),
        act: claims.get("act").cloned(),
        may_act: claims.get("may_act").cloned(),
        client_id,
        claims,
    })
}

/// The `iss` claim of a JWT, read without verifying it.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = tessera_jose::base64url_decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional); `None` when absent.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|seconds| seconds.is_finite() && seconds.abs() < 1e15)
                    .map(|seconds| seconds.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("{name} is not a NumericDate")),
    }
}

/// Space-delimited, without empty items; `None` when nothing is left.
fn normalise_scope<'a>(items: impl Iterator<Item = &'a str>) -> Option<String> {
    let scope = items.flat_map(str::split_whitespace).collect::<Vec<_>>().join(" ");
    (!scope.is_empty()).then_some(scope)
}
