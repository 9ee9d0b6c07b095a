//! The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.6): checks a presented code against
//! its stored record. Consuming it (single use) and what a reuse revokes are the server's job.

use tessera_types::token::{AuthorizationCodeGrant, GrantType};

use super::GrantError;
use crate::client::Client;
use crate::grant_record::AuthorizationCode;
use crate::pkce;
use crate::time::Timestamp;

/// Checks everything about a presented, unconsumed code except single use.
///
/// # Errors
/// [`GrantError`]: the client may not use the grant; the code belongs to another client, has
/// expired, or was issued for another redirect URI; the PKCE verifier is missing, unexpected or wrong.
pub fn check(
    client: &Client,
    request: &AuthorizationCodeGrant,
    code: &AuthorizationCode,
    now: Timestamp,
) -> Result<(), GrantError> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(GrantError::GrantNotAllowed {
            grant_type: GrantType::AuthorizationCode.as_str(),
        });
    }
    // RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
    if code.client_id != client.id {
        return Err(GrantError::ClientMismatch {
            expected: code.client_id.clone(),
            actual: client.id.clone(),
        });
    }
    if now >= code.expires_at {
        return Err(GrantError::Expired);
    }
    // RFC 6749 §4.1.3: redirect_uri must be identical to the one in the authorization request
    // (which Tessera always requires).
    if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Err(GrantError::RedirectUriMismatch);
    }
    match (&code.code_challenge, &request.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let method = code
                .code_challenge_method
                .as_deref()
                .and_then(pkce::Method::parse)
                .unwrap_or(pkce::Method::S256);
            if !pkce::verify(method, challenge, verifier) {
                return Err(GrantError::PkceMismatch);
            }
        }
        (Some(_), None) => return Err(GrantError::PkceMissing),
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade attempt.
        (None, Some(_)) => return Err(GrantError::PkceUnexpected),
        (None, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientSettings;
    use crate::token::TokenHash;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            secret_hash: None,
            settings: ClientSettings {
                grant_types: vec![GrantType::AuthorizationCode],
                ..ClientSettings::default()
            },
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn code(challenge: Option<&str>) -> AuthorizationCode {
        AuthorizationCode {
            hash: TokenHash::of("code"),
            client_id: "app".into(),
            user_id: "u".into(),
            session_id: "s".into(),
            grant_id: "g".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "openid".into(),
            nonce: None,
            code_challenge: challenge.map(str::to_owned),
            code_challenge_method: challenge.map(|_| "S256".to_owned()),
            audience: vec![],
            auth_time: Timestamp(0),
            amr: vec![],
            acr: None,
            created_at: Timestamp(100),
            expires_at: Timestamp(160),
            consumed_at: None,
        }
    }

    #[track_caller]
    fn check_case(
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        challenge: Option<&str>,
        now: i64,
        expected: Result<(), &str>,
    ) {
        let request = AuthorizationCodeGrant {
            code: Some("code".into()),
            redirect_uri: redirect_uri.map(str::to_owned),
            code_verifier: verifier.map(str::to_owned),
        };
        let actual = check(&client(client_id), &request, &code(challenge), Timestamp(now)).map_err(|e| e.to_string());
        assert_eq!(actual, expected.map_err(str::to_owned));
    }

    #[test]
    fn checks() {
        let cb = Some("https://app.example/cb");
        check_case("app", cb, Some(VERIFIER), Some(CHALLENGE), 120, Ok(()));
        check_case("app", cb, None, None, 120, Ok(()));
        check_case(
            "other",
            cb,
            Some(VERIFIER),
            Some(CHALLENGE),
            120,
            Err("code was issued to client app, not other"),
        );
        // 60 s codes: one second before expiry, and at it.
        check_case("app", cb, Some(VERIFIER), Some(CHALLENGE), 159, Ok(()));
        check_case(
            "app",
            cb,
            Some(VERIFIER),
            Some(CHALLENGE),
            160,
            Err("the grant has expired"),
        );
        check_case(
            "app",
            Some("https://app.example/cb2"),
            Some(VERIFIER),
            Some(CHALLENGE),
            120,
            Err("redirect_uri differs from the authorization request's"),
        );
        check_case(
            "app",
            None,
            Some(VERIFIER),
            Some(CHALLENGE),
            120,
            Err("redirect_uri differs from the authorization request's"),
        );
        check_case(
            "app",
            cb,
            None,
            Some(CHALLENGE),
            120,
            Err("code_verifier is missing (PKCE)"),
        );
        check_case(
            "app",
            cb,
            Some(&VERIFIER.replace('d', "e")),
            Some(CHALLENGE),
            120,
            Err("code_verifier does not match the code_challenge (PKCE)"),
        );
        check_case(
            "app",
            cb,
            Some(VERIFIER),
            None,
            120,
            Err("code_verifier given for a code issued without code_challenge"),
        );
    }
}
