//! Revocation (RFC 7009) and introspection (RFC 7662) against the real server (DESIGN B11, B12):
//! every token kind in every state, who may revoke and introspect what, and the errors.

use tessera_core::{AccessTokenFormat, AuthMethod, ClientSettings, ClientType};
use tessera_types::token::GrantType;

use crate::login_flow::{ada, Agent};
use crate::refresh_token::{login, refresh, refreshing_app, rt};
use crate::support::{peek, service_client, TestServer};

async fn revoke(server: &TestServer, client: (&str, &str), token: &str) -> (u16, serde_json::Value) {
    let (status, headers, body) = server.post_form("/revoke", Some(client), &[("token", token)]).await;
    assert_eq!(headers["cache-control"], "no-store");
    (status, body)
}

async fn introspect(server: &TestServer, client: (&str, &str), token: &str) -> serde_json::Value {
    let (status, headers, body) = server.post_form("/introspect", Some(client), &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    body
}

fn inactive() -> serde_json::Value {
    serde_json::json!({ "active": false })
}

/// A resource server: may introspect other clients' access tokens.
fn resource_server() -> ClientSettings {
    ClientSettings {
        introspection: true,
        ..service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt)
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_every_refresh_token_of_its_grant() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());
    let (other_id, other_secret) = server.client("other", refreshing_app()).await;
    let other = (other_id.as_str(), other_secret.as_deref().unwrap());
    let (api_id, api_secret) = server.client("api", resource_server()).await;
    let api = (api_id.as_str(), api_secret.as_deref().unwrap());
    let user = ada(&server).await;
    let agent = Agent::new();

    let first = rt(&login(&server, &agent, rp, "openid offline_access").await);
    server.clock.advance(10);
    let (status, body) = refresh(&server, rp, &first, None).await;
    assert_eq!(status, 200, "{body}");
    let second = rt(&body);
    let now = server.clock_now().0;

    // The live RT, to its own client: active, with what RFC 7662 §2.2 lists.
    let described = introspect(&server, rp, &second).await;
    assert_eq!(
        described,
        serde_json::json!({
            "active": true,
            "scope": "offline_access openid",
            "client_id": "rp",
            "username": "ada",
            "token_type": "refresh_token",
            "exp": now + 2_592_000,
            "iat": now,
            "sub": user.id,
            "iss": server.base,
            "sid": described["sid"],
        })
    );
    assert!(described["sid"].is_string(), "{described}");
    // The spent RT is inactive; an RT is described to nobody but its own client.
    assert_eq!(introspect(&server, rp, &first).await, inactive());
    assert_eq!(introspect(&server, other, &second).await, inactive());
    assert_eq!(introspect(&server, api, &second).await, inactive());

    // Another client cannot revoke it (RFC 7009 §2.1), and it keeps working.
    let (status, body) = revoke(&server, other, &second).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    assert_eq!(introspect(&server, rp, &second).await["active"], true);

    // Revoking the old, spent RT revokes the grant: the live one stops working too.
    let (status, _, body) = server
        .post_form(
            "/revoke",
            Some(rp),
            &[("token", first.as_str()), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "", "an empty body");
    let (status, body) = refresh(&server, rp, &second, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(introspect(&server, rp, &second).await, inactive());
    // Revoking again, or an unknown token, is a success with nothing to do.
    assert_eq!(revoke(&server, rp, &second).await.0, 200);
    assert_eq!(revoke(&server, rp, "tsr_rt_not-a-real-token").await.0, 200);
    assert_eq!(revoke(&server, rp, "garbage").await.0, 200);
}

#[tokio::test]
async fn revoking_a_jwt_access_token_makes_it_inactive_everywhere() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());
    let (other_id, other_secret) = server.client("other", refreshing_app()).await;
    let other = (other_id.as_str(), other_secret.as_deref().unwrap());
    let (api_id, api_secret) = server.client("api", resource_server()).await;
    let api = (api_id.as_str(), api_secret.as_deref().unwrap());
    let user = ada(&server).await;
    let agent = Agent::new();
    let body = login(&server, &agent, rp, "openid profile").await;
    let access_token = body["access_token"].as_str().unwrap();
    let (_, claims) = peek(access_token);

    // The resource server and the token's own client see it; another app does not.
    let described = introspect(&server, api, access_token).await;
    assert_eq!(
        described,
        serde_json::json!({
            "active": true,
            "scope": "openid profile",
            "client_id": "rp",
            "username": "ada",
            "token_type": "Bearer",
            "exp": claims["exp"],
            "iat": claims["iat"],
            "sub": user.id,
            "aud": [claims["aud"]],
            "iss": server.base,
            "jti": claims["jti"],
            "sid": claims["sid"],
        })
    );
    assert_eq!(introspect(&server, rp, access_token).await, described);
    assert_eq!(introspect(&server, other, access_token).await, inactive());

    let (status, body) = revoke(&server, other, access_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    assert_eq!(revoke(&server, rp, access_token).await.0, 200);
    assert_eq!(introspect(&server, api, access_token).await, inactive());
    let userinfo = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401, "userinfo refuses a revoked access token");

    // Expired JWTs are inactive.
    let fresh = login(&server, &agent, rp, "openid").await;
    let fresh = fresh["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, api, fresh).await["active"], true);
    server.clock.advance(301);
    assert_eq!(introspect(&server, api, fresh).await, inactive());
}

#[tokio::test]
async fn opaque_access_tokens_and_refresh_tokens_in_every_state() {
    let server = TestServer::start().await;
    // Client credentials, opaque: live, revoked, expired.
    let (cc_id, cc_secret) = server
        .client(
            "svc",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque),
        )
        .await;
    let svc = (cc_id.as_str(), cc_secret.as_deref().unwrap());
    let grant = [("grant_type", "client_credentials")];
    let issue = || async {
        server.token(Some(svc), &grant).await.2["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let live = issue().await;
    let described = introspect(&server, svc, &live).await;
    assert_eq!(described["active"], true, "{described}");
    assert_eq!(described["sub"], "svc");
    assert_eq!(described["client_id"], "svc");
    assert!(described.get("username").is_none(), "no user: {described}");
    assert_eq!(
        described["aud"],
        serde_json::json!(["https://api.example", "https://reports.example"])
    );
    let revoked = issue().await;
    assert_eq!(revoke(&server, svc, &revoked).await.0, 200);
    assert_eq!(introspect(&server, svc, &revoked).await, inactive());
    assert_eq!(
        introspect(&server, svc, &live).await["active"],
        true,
        "others unaffected"
    );
    server.clock.advance(301);
    assert_eq!(introspect(&server, svc, &live).await, inactive(), "expired");

    // An opaque access token of a grant that is revoked, and refresh tokens that expired.
    let mut app = refreshing_app();
    app.access_token_format = AccessTokenFormat::Opaque;
    let (id, secret) = server.client("rp", app).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());
    ada(&server).await;
    let agent = Agent::new();
    let body = login(&server, &agent, rp, "openid offline_access").await;
    let access_token = body["access_token"].as_str().unwrap();
    assert!(access_token.starts_with("tsr_at_"));
    assert_eq!(introspect(&server, rp, access_token).await["active"], true);
    assert_eq!(revoke(&server, rp, &rt(&body)).await.0, 200);
    assert_eq!(introspect(&server, rp, access_token).await, inactive(), "grant revoked");

    // A refresh's opaque access token (stored with the rotation) is live, and dies with its grant.
    let body = login(&server, &agent, rp, "openid offline_access").await;
    let (status, refreshed) = refresh(&server, rp, &rt(&body), None).await;
    assert_eq!(status, 200, "{refreshed}");
    let refreshed_access = refreshed["access_token"].as_str().unwrap();
    assert!(refreshed_access.starts_with("tsr_at_"));
    let described = introspect(&server, rp, refreshed_access).await;
    assert_eq!(
        (described["active"].as_bool(), described["username"].as_str()),
        (Some(true), Some("ada"))
    );
    assert_eq!(revoke(&server, rp, &rt(&refreshed)).await.0, 200);
    assert_eq!(
        introspect(&server, rp, refreshed_access).await,
        inactive(),
        "grant revoked"
    );

    let body = login(&server, &agent, rp, "openid offline_access").await;
    let refresh_token = rt(&body);
    assert_eq!(introspect(&server, rp, &refresh_token).await["active"], true);
    server.clock.advance(2_592_000);
    assert_eq!(introspect(&server, rp, &refresh_token).await, inactive(), "expired");

    // Unknown and malformed tokens are inactive.
    for token in ["tsr_at_unknown", "tsr_rt_unknown", "a.b.c", "tsr_ac_unknown"] {
        assert_eq!(introspect(&server, rp, token).await, inactive(), "{token:?}");
    }
}

#[tokio::test]
async fn who_may_call_and_the_errors() {
    let server = TestServer::start().await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());
    let public = ClientSettings {
        client_type: ClientType::Public,
        auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode],
        ..refreshing_app()
    };
    server.client("spa", public).await;

    for path in ["/revoke", "/introspect"] {
        // No token.
        let (status, _, body) = server.post_form(path, Some(rp), &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{path}: {body}"
        );
        // Wrong secret.
        let (status, headers, body) = server.post_form(path, Some(("rp", "wrong")), &[("token", "x")]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{path}: {body}"
        );
        assert!(headers.contains_key("www-authenticate"));
        // Repeated parameters.
        let (status, _, body) = server
            .post_form(path, Some(rp), &[("token", "x"), ("token", "y")])
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{path}: {body}"
        );
    }
    // A public client may revoke (its own tokens; RFC 7009 §2.1) but not introspect (B12).
    let (status, _, body) = server
        .post_form("/revoke", None, &[("client_id", "spa"), ("token", "tsr_rt_unknown")])
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = server
        .post_form(
            "/introspect",
            None,
            &[("client_id", "spa"), ("token", "tsr_rt_unknown")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
}

#[tokio::test]
async fn a_signed_introspection_response_when_asked_for_one() {
    // RFC 9701: `Accept: application/token-introspection+jwt` gets the answer as a signed JWT.
    let server = TestServer::start().await;
    let (id, secret) = server.client("rs", resource_server()).await;
    let rs = (id.as_str(), secret.as_deref().unwrap());
    let (_, _, body) = server.token(Some(rs), &[("grant_type", "client_credentials")]).await;
    let token = body["access_token"].as_str().unwrap();
    let response = server
        .http
        .post(server.url("/introspect"))
        .basic_auth(rs.0, Some(rs.1))
        .header("accept", "application/token-introspection+jwt")
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/token-introspection+jwt"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let jwt = response.text().await.unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = server
        .http
        .get(server.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some("token-introspection+jwt"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["rs"]);
    validation.set_issuer(&[server.base.as_str()]);
    validation.set_required_spec_claims(&["iss", "aud", "iat"]);
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["token_introspection"]["active"], true);
    assert_eq!(claims["token_introspection"]["client_id"], "rs");
    // Without the header: plain JSON, as before.
    assert_eq!(introspect(&server, rs, token).await["active"], true);
    let discovery = server.get_json("/.well-known/openid-configuration").await;
    assert!(discovery["introspection_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("ES256")));
}
