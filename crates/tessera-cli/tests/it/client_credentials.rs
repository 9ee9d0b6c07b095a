//! Client credentials (RFC 6749 §4.4) with every authentication method, through real clients.

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse as _, TokenUrl};
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use tessera_core::client::{AccessTokenFormat, AuthMethod};
use tessera_core::{TokenHash, TokenKind};

use crate::support::{peek, read, service_client, verify_with_jwks, TestServer, EPOCH};

fn oauth2_http() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Checks every RFC 9068 §2.2 claim and header of a client-credentials JWT access token.
async fn check_rfc9068(
    server: &TestServer,
    jwt: &str,
    client_id: &str,
    scope: &str,
    audience: &str,
    expected_aud: serde_json::Value,
) {
    let (header, _) = peek(jwt);
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 §2.1 typ");
    assert_eq!(header["alg"], "ES256", "default access-token algorithm");
    let claims = verify_with_jwks(server, jwt, audience).await;
    assert_eq!(claims["iss"], server.base.as_str());
    assert_eq!(
        claims["sub"], client_id,
        "RFC 9068 §2.2: sub is the client for client credentials"
    );
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["aud"], expected_aud);
    assert_eq!(claims["scope"], scope);
    assert_eq!(claims["iat"], EPOCH.0);
    assert_eq!(claims["exp"], EPOCH.0 + 300);
    assert!(
        claims["jti"].as_str().is_some_and(|jti| jti.len() >= 16),
        "jti: {claims}"
    );
}

#[tokio::test]
async fn client_secret_basic_with_the_oauth2_crate() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc-basic",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.unwrap()))
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .add_extra_param("resource", "https://api.example")
        .request_async(&oauth2_http())
        .await
        .unwrap();
    assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(300)));
    assert!(
        token.refresh_token().is_none(),
        "client credentials never get a refresh token (B14)"
    );
    assert_eq!(
        token
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["read".to_owned()])
    );
    check_rfc9068(
        &server,
        token.access_token().secret(),
        &id,
        "read",
        "https://api.example",
        "https://api.example".into(),
    )
    .await;
}

#[tokio::test]
async fn client_secret_post_with_the_oauth2_crate() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc-post",
            service_client(AuthMethod::ClientSecretPost, AccessTokenFormat::Jwt),
        )
        .await;
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone().unwrap()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("write".into()))
        .add_extra_param("audience", "https://reports.example")
        .request_async(&oauth2_http())
        .await
        .unwrap();
    check_rfc9068(
        &server,
        token.access_token().secret(),
        &id,
        "write",
        "https://reports.example",
        "https://reports.example".into(),
    )
    .await;

    // A client registered for client_secret_post may not switch to Basic.
    let (status, headers, body) = server
        .token(
            Some((&id, secret.as_deref().unwrap())),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn secrets_are_form_decoded_in_basic_auth() {
    // RFC 6749 §2.3.1: id and secret are application/x-www-form-urlencoded before Basic encoding;
    // our secrets are URL-safe, so both encodings must work for an id with reserved characters.
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc:colon",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let (status, _, body) = server
        .token(
            Some(("svc%3Acolon", secret.as_deref().unwrap())),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(peek(body["access_token"].as_str().unwrap()).1["client_id"], id);
}

#[tokio::test]
async fn a_client_changed_by_another_process_applies_within_the_cache_ttl() {
    // Clients are cached for `client_auth.client_cache_ttl_ms`; a change made elsewhere (the CLI
    // writes the database directly) must apply once that time has passed, and a deleted client
    // must stop working.
    let server = TestServer::start_with(|config| config.client_auth.client_cache_ttl_ms = 200).await;
    let (id, secret) = server
        .client(
            "svc",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let old = secret.unwrap();
    let grant = [("grant_type", "client_credentials")];
    assert_eq!(server.token(Some((&id, &old)), &grant).await.0, 200);

    let rotated = tessera_server::clients::rotate_secret(
        server.storage.as_ref(),
        &mut rand::rngs::OsRng,
        server.clock_now(),
        &id,
    )
    .await
    .unwrap();
    let new = rotated.secret.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _, body) = server.token(Some((&id, &old)), &grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "old secret after the TTL"
    );
    let (status, _, body) = server.token(Some((&id, &new)), &grant).await;
    assert_eq!(status, 200, "new secret: {body}");

    tessera_server::clients::delete(server.storage.as_ref(), &id)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _, body) = server.token(Some((&id, &new)), &grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "deleted client"
    );
}

/// A client key pair for `private_key_jwt`, made with `ring` directly.
struct ClientKey {
    pkcs8: Vec<u8>,
    jwk: serde_json::Value,
}

fn client_key(kid: &str) -> ClientKey {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": tessera_jose::base64url_encode(&point[1..33]), "y": tessera_jose::base64url_encode(&point[33..65]),
    });
    ClientKey { pkcs8, jwk }
}

/// Signs a client assertion with the `jsonwebtoken` crate.
fn assertion(key: &ClientKey, kid: &str, claims: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

fn assertion_claims(client_id: &str, aud: &str, jti: &str) -> serde_json::Value {
    serde_json::json!({ "iss": client_id, "sub": client_id, "aud": aud, "jti": jti, "iat": EPOCH.0, "exp": EPOCH.0 + 60 })
}

async fn assertion_request(server: &TestServer, assertion: &str) -> (u16, serde_json::Value) {
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ];
    let (status, headers, body) = server.token(None, &form).await;
    assert_eq!(
        headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    (status, body)
}

#[tokio::test]
async fn private_key_jwt_with_inline_jwks_and_jti_replay() {
    let server = TestServer::start().await;
    let key = client_key("client-key-1");
    let mut settings = service_client(AuthMethod::PrivateKeyJwt, AccessTokenFormat::Jwt);
    settings.jwks = Some(serde_json::json!({ "keys": [key.jwk.clone()] }));
    let (id, secret) = server.client("svc-jwt", settings).await;
    assert!(secret.is_none(), "private_key_jwt clients get no secret");

    let token_endpoint = server.url("/token");
    let signed = assertion(&key, "client-key-1", &assertion_claims(&id, &token_endpoint, "jti-1"));
    let (status, body) = assertion_request(&server, &signed).await;
    assert_eq!(status, 200, "{body}");
    let both = serde_json::json!(["https://api.example", "https://reports.example"]);
    check_rfc9068(
        &server,
        body["access_token"].as_str().unwrap(),
        &id,
        "read write",
        "https://api.example",
        both,
    )
    .await;

    // RFC 7523 §3: the same jti again is a replay.
    let (status, body) = assertion_request(&server, &signed).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    // The issuer is also an acceptable audience; a fresh jti works.
    let signed = assertion(&key, "client-key-1", &assertion_claims(&id, &server.base, "jti-2"));
    assert_eq!(assertion_request(&server, &signed).await.0, 200);

    // Wrong audience, wrong issuer, expired, too far in the future, missing jti, other key: all 401.
    let other = client_key("client-key-1");
    let mut cases = vec![
        (
            "wrong aud",
            assertion(
                &key,
                "client-key-1",
                &assertion_claims(&id, "https://elsewhere.example/token", "jti-3"),
            ),
        ),
        (
            "other key",
            assertion(&other, "client-key-1", &assertion_claims(&id, &token_endpoint, "jti-4")),
        ),
    ];
    let mut claims = assertion_claims(&id, &token_endpoint, "jti-5");
    claims["iss"] = "someone-else".into();
    cases.push(("iss differs from sub", assertion(&key, "client-key-1", &claims)));
    let mut claims = assertion_claims(&id, &token_endpoint, "jti-6");
    claims["exp"] = (EPOCH.0 - 120).into();
    cases.push(("expired", assertion(&key, "client-key-1", &claims)));
    let mut claims = assertion_claims(&id, &token_endpoint, "jti-7");
    claims["exp"] = (EPOCH.0 + 3600).into();
    cases.push(("exp too far ahead", assertion(&key, "client-key-1", &claims)));
    let mut claims = assertion_claims(&id, &token_endpoint, "jti-8");
    claims.as_object_mut().unwrap().remove("jti");
    cases.push(("no jti", assertion(&key, "client-key-1", &claims)));
    for (case, signed) in cases {
        let (status, body) = assertion_request(&server, &signed).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{case}: {body}"
        );
    }

    // An assertion from a secret client is refused: the method is the registered one.
    let (basic_id, _) = server
        .client(
            "svc-secret",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let signed = assertion(
        &key,
        "client-key-1",
        &assertion_claims(&basic_id, &token_endpoint, "jti-9"),
    );
    assert_eq!(assertion_request(&server, &signed).await.0, 401);
}

#[tokio::test]
async fn private_key_jwt_with_jwks_uri() {
    let key = client_key("remote-key");
    let jwks = serde_json::json!({ "keys": [key.jwk.clone()] });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = TestServer::start().await;
    let mut settings = service_client(AuthMethod::PrivateKeyJwt, AccessTokenFormat::Jwt);
    settings.jwks_uri = Some(jwks_uri);
    let (id, _) = server.client("svc-jwks-uri", settings).await;
    let signed = assertion(
        &key,
        "remote-key",
        &assertion_claims(&id, &server.url("/token"), "remote-1"),
    );
    let (status, body) = assertion_request(&server, &signed).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn opaque_access_tokens_are_prefixed_and_stored_hashed() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc-opaque",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque),
        )
        .await;
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.unwrap()))
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .request_async(&oauth2_http())
        .await
        .unwrap();
    let value = token.access_token().secret();
    assert_eq!(TokenKind::recognise(value), Some(TokenKind::AccessToken), "{value}");
    let stored = server
        .storage
        .access_tokens()
        .find_by_hash(&TokenHash::of(value))
        .await
        .unwrap()
        .expect("the opaque token is stored before the response");
    assert_eq!(stored.client_id, id);
    assert_eq!(stored.scope, "read");
    assert_eq!(stored.subject, None);
    assert_eq!(stored.expires_at.0, EPOCH.0 + 300);
    assert_eq!(
        stored.audience,
        vec!["https://api.example".to_owned(), "https://reports.example".to_owned()]
    );
}

#[tokio::test]
async fn per_client_algorithm_and_lifetime() {
    let server = TestServer::start().await;
    for (id, algorithm) in [
        ("svc-rs256", tessera_types::JwsAlgorithm::RS256),
        ("svc-eddsa", tessera_types::JwsAlgorithm::EdDSA),
    ] {
        let mut settings = service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt);
        settings.access_token_algorithm = Some(algorithm);
        settings.access_token_lifetime = Some(60);
        let (id, secret) = server.client(id, settings).await;
        let (status, _, body) = server
            .token(
                Some((&id, secret.as_deref().unwrap())),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", "https://api.example"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["expires_in"], 60);
        let jwt = body["access_token"].as_str().unwrap();
        assert_eq!(peek(jwt).0["alg"], algorithm.as_str());
        if algorithm == tessera_types::JwsAlgorithm::RS256 {
            // jsonwebtoken 9 verifies RSA and EC keys from JWKs; EdDSA is checked with our verifier.
            verify_with_jwks(&server, jwt, "https://api.example").await;
        } else {
            let jwks = server.get_json("/jwks").await;
            tessera_jose::verify_jwt(jwt, &jwks, &["EdDSA"]).unwrap();
        }
    }
}

#[tokio::test]
async fn many_resources_and_the_default_audience() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc-multi",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let secret = secret.unwrap();
    // RFC 8707 §2: resource may be repeated; the token then names every audience.
    let response = server
        .http
        .post(server.url("/token"))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example&resource=https%3A%2F%2Freports.example")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        peek(body["access_token"].as_str().unwrap()).1["aud"],
        serde_json::json!(["https://api.example", "https://reports.example"])
    );
}
