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

#[tokio::test]
async fn expired_tokens_and_retired_keys_are_purged() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(
            "svc",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque),
        )
        .await;
    let (_, _, body) = server
        .token(
            Some((&id, secret.as_deref().unwrap())),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let hash = TokenHash::of(body["access_token"].as_str().unwrap());
    server
        .keys
        .rotate(
            server.storage.as_ref(),
            &[tessera_types::JwsAlgorithm::ES256],
            server.clock_now(),
            0,
            600,
        )
        .await
        .unwrap();
    assert_eq!(server.keys.records().len(), 4);

    // Nothing has expired yet.
    assert_eq!(tessera_server::serve::purge_once(&server.state).await.unwrap(), 0);
    // The token expires after 300 s; the old ES256 key retires 600 s after the rotation.
    server.clock.advance(301);
    assert_eq!(tessera_server::serve::purge_once(&server.state).await.unwrap(), 1);
    assert!(server
        .storage
        .access_tokens()
        .find_by_hash(&hash)
        .await
        .unwrap()
        .is_none());
    server.clock.advance(300);
    assert_eq!(tessera_server::serve::purge_once(&server.state).await.unwrap(), 1);
    assert_eq!(
        server.keys.records().len(),
        3,
        "the retired key is gone from storage and from the key set"
    );
}

#[tokio::test]
async fn ended_grants_and_sessions_are_purged_after_the_retention() {
    let server = TestServer::start_with(|config| config.database.ended_retention = 3600).await;
    let (id, secret) = server.client("rp", crate::refresh_token::refreshing_app()).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());
    crate::login_flow::ada(&server).await;
    let agent = crate::login_flow::Agent::new();
    let revoked = crate::refresh_token::login(&server, &agent, rp, "openid offline_access").await;
    let kept = crate::refresh_token::login(&server, &agent, rp, "openid offline_access").await;
    let (status, _, _) = server
        .post_form(
            "/revoke",
            Some(rp),
            &[("token", revoked["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(status, 200);
    let user = server.storage.users().find_by_username("ada").await.unwrap().unwrap();
    let grants = server.storage.grants().list_by_user(&user.id).await.unwrap();
    assert_eq!(grants.len(), 2);
    let sessions = server.storage.sessions().list_by_user(&user.id).await.unwrap();
    assert_eq!(sessions.len(), 1);

    // Within the retention the revoked grant is kept (the admin API lists it).
    server.clock.advance(3000);
    tessera_server::serve::purge_once(&server.state).await.unwrap();
    assert_eq!(server.storage.grants().list_by_user(&user.id).await.unwrap().len(), 2);
    // After it, the revoked grant goes; the live offline grant stays; the session, past its hard
    // end (10 h) plus the retention, goes too.
    server.clock.advance(1000);
    tessera_server::serve::purge_once(&server.state).await.unwrap();
    let left = server.storage.grants().list_by_user(&user.id).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].revoked_at.is_none());
    assert_eq!(server.storage.sessions().list_by_user(&user.id).await.unwrap().len(), 1);
    server.clock.advance(36_000);
    tessera_server::serve::purge_once(&server.state).await.unwrap();
    assert!(server
        .storage
        .sessions()
        .list_by_user(&user.id)
        .await
        .unwrap()
        .is_empty());
    // The offline grant outlives its session (B6): its refresh token still works.
    let (status, body) =
        crate::refresh_token::refresh(&server, rp, kept["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_database_outage_is_503_not_500() {
    let Some(database) = tessera_testkit::postgres::TestDatabase::create().await else {
        return;
    };
    let storage = tessera_storage_postgres::PostgresStorage::connect(database.url(), Default::default())
        .await
        .unwrap();
    let server = TestServer::start_on(Arc::new(storage), tempfile::tempdir().unwrap(), |_| {}).await;
    let (id, secret) = server
        .client(
            "svc-pg",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque),
        )
        .await;
    let secret = secret.unwrap();
    assert_eq!(
        server
            .token(Some((&id, &secret)), &[("grant_type", "client_credentials")])
            .await
            .0,
        200
    );

    // The database goes away (its connections are terminated and it is dropped).
    database.drop_database().await;
    let readyz = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status().as_u16(), 503);
    let (status, headers, body) = server
        .token(Some((&id, &secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    assert_eq!(headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    // Discovery and JWKS need no database and keep working.
    assert_eq!(
        server
            .http
            .get(server.url("/jwks"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}
