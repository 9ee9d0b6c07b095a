//! Token-endpoint errors (RFC 6749 §5.2, DESIGN B16): exact code and status, `no-store`, no 5xx.

use tessera_core::client::{AccessTokenFormat, AuthMethod};
use tessera_types::token::GrantType;

use crate::support::{read, service_client, TestServer};

/// Sends a raw request body and checks code, status and headers.
#[track_caller]
fn check_error(
    response: (u16, reqwest::header::HeaderMap, serde_json::Value),
    status: u16,
    code: &str,
    has_www_authenticate: bool,
) {
    let (actual_status, headers, body) = response;
    assert_eq!((actual_status, body["error"].as_str()), (status, Some(code)), "{body}");
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(
        headers.contains_key("www-authenticate"),
        has_www_authenticate,
        "WWW-Authenticate on {code}"
    );
    let object = body.as_object().unwrap();
    assert!(
        object.keys().all(|k| k == "error" || k == "error_description"),
        "only RFC 6749 §5.2 members: {body}"
    );
}

async fn raw(
    server: &TestServer,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    basic: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = server
        .http
        .post(server.url("/token"))
        .header("content-type", content_type)
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn every_error_is_exact() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let secret = secret.unwrap();
    let good = Some((id.as_str(), secret.as_str()));
    let form = "application/x-www-form-urlencoded";

    // Client authentication.
    check_error(
        server
            .token(Some((&id, "tsr_cs_wrong")), &[("grant_type", "client_credentials")])
            .await,
        401,
        "invalid_client",
        true,
    );
    check_error(
        server
            .token(Some(("nobody", "x")), &[("grant_type", "client_credentials")])
            .await,
        401,
        "invalid_client",
        true,
    );
    check_error(
        server
            .token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "nobody"),
                    ("client_secret", "x"),
                ],
            )
            .await,
        401,
        "invalid_client",
        false,
    );
    check_error(
        server.token(None, &[("grant_type", "client_credentials")]).await,
        401,
        "invalid_client",
        false,
    );
    check_error(
        server
            .token(None, &[("grant_type", "client_credentials"), ("client_id", &id)])
            .await,
        401,
        "invalid_client",
        false,
    );
    check_error(
        raw(&server, form, "grant_type=client_credentials", None).await,
        401,
        "invalid_client",
        false,
    );
    let garbage_basic = server
        .http
        .post(server.url("/token"))
        .header("authorization", "Basic !!!")
        .form(&[("grant_type", "client_credentials")]);
    check_error(
        read(garbage_basic.send().await.unwrap()).await,
        401,
        "invalid_client",
        true,
    );
    // RFC 6749 §2.3: one method per request.
    check_error(
        server
            .token(
                good,
                &[("grant_type", "client_credentials"), ("client_secret", &secret)],
            )
            .await,
        400,
        "invalid_request",
        false,
    );
    check_error(
        server
            .token(good, &[("grant_type", "client_credentials"), ("client_id", "other")])
            .await,
        400,
        "invalid_request",
        false,
    );

    // Grant type.
    check_error(
        server.token(good, &[("grant_type", "urn:example:made-up")]).await,
        400,
        "unsupported_grant_type",
        false,
    );
    check_error(
        server
            .token(
                good,
                &[("grant_type", "password"), ("username", "x"), ("password", "y")],
            )
            .await,
        400,
        "unauthorized_client",
        false,
    );
    check_error(
        server
            .token(good, &[("grant_type", "authorization_code"), ("code", "x")])
            .await,
        400,
        "unauthorized_client",
        false,
    );
    check_error(
        server.token(good, &[("scope", "read")]).await,
        400,
        "invalid_request",
        false,
    );

    // Malformed requests.
    check_error(
        raw(
            &server,
            form,
            "grant_type=client_credentials&scope=read&scope=write",
            good,
        )
        .await,
        400,
        "invalid_request",
        false,
    );
    check_error(
        raw(
            &server,
            form,
            "grant_type=client_credentials&grant_type=client_credentials",
            good,
        )
        .await,
        400,
        "invalid_request",
        false,
    );
    check_error(
        raw(
            &server,
            "application/json",
            r#"{"grant_type":"client_credentials"}"#,
            good,
        )
        .await,
        400,
        "invalid_request",
        false,
    );
    check_error(
        raw(&server, "text/plain", "grant_type=client_credentials", good).await,
        400,
        "invalid_request",
        false,
    );
    let huge = format!("grant_type=client_credentials&pad={}", "a".repeat(200_000));
    check_error(raw(&server, form, huge, good).await, 400, "invalid_request", false);

    // Scope and target.
    check_error(
        server
            .token(good, &[("grant_type", "client_credentials"), ("scope", "read admin")])
            .await,
        400,
        "invalid_scope",
        false,
    );
    check_error(
        server
            .token(good, &[("grant_type", "client_credentials"), ("scope", "re\"ad")])
            .await,
        400,
        "invalid_scope",
        false,
    );
    check_error(
        server
            .token(
                good,
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", "https://evil.example"),
                ],
            )
            .await,
        400,
        "invalid_target",
        false,
    );
    check_error(
        server
            .token(
                good,
                &[
                    ("grant_type", "client_credentials"),
                    ("audience", "https://evil.example"),
                ],
            )
            .await,
        400,
        "invalid_target",
        false,
    );

    // A client without the grant type.
    let mut settings = service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt);
    settings.grant_types = vec![GrantType::RefreshToken];
    let (other_id, other_secret) = server.client("no-cc", settings).await;
    check_error(
        server
            .token(
                Some((&other_id, other_secret.as_deref().unwrap())),
                &[("grant_type", "client_credentials")],
            )
            .await,
        400,
        "unauthorized_client",
        false,
    );

    // The server still works after all that.
    let (status, _, body) = server.token(good, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn no_input_yields_a_server_error() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque),
        )
        .await;
    let secret = secret.unwrap();
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"&&&===&".to_vec(),
        b"grant_type".to_vec(),
        b"grant_type=%FF%FE&scope=%00".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"grant_type=client_credentials&resource=%".to_vec(),
        b"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c".to_vec(),
        b"grant_type=client_credentials&client_assertion_type=x&client_assertion=eyJ9.eyJzdWIiOiJzdmMifQ.x".to_vec(),
        "grant_type=client_credentials&scope=\u{1F600}".as_bytes().to_vec(),
        b"token=%FF%FE".to_vec(),
        b"token=a.b.c&token_type_hint=access_token".to_vec(),
        b"token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdmMifQ.&token_type_hint=%00".to_vec(),
        b"token=tsr_rt_x&token=tsr_at_y".to_vec(),
    ];
    let authorizations = [
        None,
        Some("Basic"),
        Some("Basic Og=="),
        Some("Bearer x"),
        Some("Basic c3ZjOg=="),
    ];
    for (path, body) in ["/token", "/revoke", "/introspect"]
        .into_iter()
        .flat_map(|path| bodies.iter().map(move |body| (path, body)))
    {
        for authorization in authorizations {
            for with_good_client in [false, true] {
                let mut request = server
                    .http
                    .post(server.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone());
                if with_good_client {
                    request = request.basic_auth(&id, Some(&secret));
                } else if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let (status, _, response) = read(request.send().await.unwrap()).await;
                assert!(
                    (200..500).contains(&status),
                    "{status} for {path} {body:?} / {authorization:?}: {response}"
                );
                if status != 200 {
                    assert!(response["error"].is_string(), "{response}");
                }
            }
        }
    }
    for path in ["/token", "/revoke", "/introspect"] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405, "{path}");
    }
}

#[tokio::test]
async fn public_clients_authenticate_with_none_only() {
    let server = TestServer::start().await;
    let mut settings = service_client(AuthMethod::None, AccessTokenFormat::Jwt);
    settings.client_type = tessera_core::ClientType::Public;
    settings.grant_types = vec![GrantType::RefreshToken];
    let (id, secret) = server.client("spa", settings).await;
    assert!(secret.is_none());
    // Authenticated by `none`; then refused for the grant, not for authentication.
    check_error(
        server
            .token(None, &[("grant_type", "client_credentials"), ("client_id", &id)])
            .await,
        400,
        "unauthorized_client",
        false,
    );
    // A public client cannot authenticate with a secret.
    check_error(
        server
            .token(Some((&id, "anything")), &[("grant_type", "client_credentials")])
            .await,
        401,
        "invalid_client",
        true,
    );
    check_error(
        server
            .token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", "x"),
                ],
            )
            .await,
        401,
        "invalid_client",
        false,
    );
}
