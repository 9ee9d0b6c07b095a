//! Health, readiness, metrics, request ids, and the PostgreSQL backend end to end.

use std::sync::Arc;

use tessera_core::client::{AccessTokenFormat, AuthMethod};
use tessera_core::TokenHash;

use crate::support::{service_client, TestServer};

#[tokio::test]
async fn health_readiness_metrics_and_request_ids() {
    let server = TestServer::start().await;
    let healthz = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status().as_u16(), 200);
    assert!(healthz.headers().contains_key("x-request-id"));
    assert_eq!(
        server
            .http
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let (id, secret) = server
        .client(
            "svc",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    server
        .token(
            Some((&id, secret.as_deref().unwrap())),
            &[("grant_type", "client_credentials")],
        )
        .await;
    server
        .token(Some((&id, "wrong")), &[("grant_type", "client_credentials")])
        .await;
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"tessera_http_requests_total{endpoint="/token",grant_type="client_credentials",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tessera_http_requests_total{endpoint="/token",grant_type="",status="401"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tessera_http_request_duration_seconds_count{endpoint="/token"} 2"#),
        "{metrics}"
    );

    let unknown = server.http.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn the_token_endpoint_on_postgresql() {
    tessera_testkit::postgres::with_test_database(|url| async move {
        let storage = tessera_storage_postgres::PostgresStorage::connect(&url, Default::default())
            .await
            .unwrap();
        let server = TestServer::start_on(Arc::new(storage), tempfile::tempdir().unwrap(), |_| {}).await;
        let (id, secret) = server
            .client(
                "svc-pg",
                service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque),
            )
            .await;
        let (status, _, body) = server
            .token(
                Some((&id, secret.as_deref().unwrap())),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap();
        assert!(server
            .storage
            .access_tokens()
            .find_by_hash(&TokenHash::of(token))
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            server
                .http
                .get(server.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );
    })
    .await;
}
