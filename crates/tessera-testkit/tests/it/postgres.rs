use std::time::Duration;

use tessera_core::TokenHash;
use tessera_storage::{RepositoryError, Storage as _};
use tessera_storage_postgres::{PostgresOptions, PostgresStorage};
use tessera_testkit::contract;
use tessera_testkit::postgres::with_test_database;
use tokio_postgres::NoTls;

use crate::TestResult;

/// Runs `body` against a fresh test database; the outer `Option` is `None` when skipped.
async fn on_test_database<F, Fut>(body: F) -> TestResult
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    with_test_database(body).await.unwrap_or(Ok(()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_contract_postgres() -> TestResult {
    on_test_database(|url| async move {
        let storage = PostgresStorage::connect(&url, PostgresOptions::default()).await?;
        contract::run_all(&storage).await;
        // Again on the same database: ids are unique per run and migrate applies nothing.
        contract::run_all(&storage).await;
        Ok(())
    })
    .await
}

/// The contract again with the smallest pools: the connections the storage holds for itself
/// (shared reads, rotation groups) must never leave the rest of it waiting for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_contract_postgres_small_pools() -> TestResult {
    on_test_database(|url| async move {
        for max_connections in [1, 4] {
            let options = PostgresOptions {
                max_connections,
                ..PostgresOptions::default()
            };
            let storage = PostgresStorage::connect(&url, options).await?;
            contract::run_all(&storage).await;
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_migrating_at_once_apply_each_migration_once() -> TestResult {
    on_test_database(|url| async move {
        let a = PostgresStorage::connect(&url, PostgresOptions::default()).await?;
        let b = PostgresStorage::connect(&url, PostgresOptions::default()).await?;
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        let mut applied = [ra?, rb?];
        applied.sort();
        assert_eq!(applied, [vec![], vec![1, 2, 3, 4, 5, 6, 7, 8]]);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_newer_schema_and_reports_bad_rows() -> TestResult {
    on_test_database(|url| async move {
        let storage = PostgresStorage::connect(&url, PostgresOptions::default()).await?;
        storage.migrate().await?;
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(
                "INSERT INTO clients VALUES ('broken', NULL, 'not json', 0, 0);
                 INSERT INTO users (id, username, claims, is_disabled, created_at, updated_at)
                     VALUES ('u', 'unknown-claim', '{\"shoe_size\":42}', FALSE, 0, 0);
                 INSERT INTO grants (id, user_id, client_id, scope, kind, created_at, last_used_at)
                     VALUES ('g', 'u', 'c', '', 'forever', 0, 0);
                 INSERT INTO refresh_tokens (hash, grant_id, parent_hash, client_id, issued_at, expires_at, use_count)
                     VALUES (decode(repeat('00', 32), 'hex'), 'g-parent', '\\x02', 'c', 0, 0, 0),
                            (decode(repeat('01', 32), 'hex'), 'g-count', NULL, 'c', 0, 0, -1);
                 INSERT INTO tessera_migrations VALUES (999, 'future', 0);",
            )
            .await?;
        let lookup = storage.clients().lookup("broken").await;
        assert!(
            matches!(
                &lookup,
                Err(RepositoryError::Inconsistent { table: "clients", column: "settings", id })
                    if id == "broken"
            ),
            "{lookup:?}"
        );
        let user = storage.users().find_by_username("unknown-claim").await;
        assert!(
            matches!(&user, Err(RepositoryError::Inconsistent { table: "users", column: "claims", id }) if id == "u"),
            "{user:?}"
        );
        let grant = storage.grants().lookup("g").await;
        assert!(
            matches!(&grant, Err(RepositoryError::Inconsistent { table: "grants", column: "kind", id }) if id == "g"),
            "{grant:?}"
        );
        for (hash, expected_column, grant_id) in [
            (TokenHash([0; 32]), "parent_hash", "g-parent"),
            (TokenHash([1; 32]), "use_count", "g-count"),
        ] {
            let result = storage.refresh_tokens().find_by_hash(&hash).await;
            assert!(
                matches!(&result, Err(RepositoryError::Inconsistent { table: "refresh_tokens", column, id })
                    if *column == expected_column && id == grant_id),
                "{grant_id}: {result:?}"
            );
        }
        let migrate = storage.migrate().await;
        assert!(
            matches!(&migrate, Err(RepositoryError::Backend(e)) if e.to_string().contains("999")),
            "{migrate:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn postgres_unreachable_is_unavailable() {
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(2),
        ..PostgresOptions::default()
    };
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let result = PostgresStorage::connect("postgres://postgres@127.0.0.1:1/postgres", options).await;
    assert!(matches!(result, Err(RepositoryError::Unavailable(_))), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_database_is_dropped_even_if_the_body_panics() -> TestResult {
    use futures::FutureExt as _;
    use std::sync::{Arc, Mutex};

    let seen = Arc::new(Mutex::new(None::<String>));
    let seen_in_body = Arc::clone(&seen);
    let outcome = std::panic::AssertUnwindSafe(with_test_database(|url| async move {
        *seen_in_body.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(url);
        panic!("deliberate panic inside a test body");
    }))
    .catch_unwind()
    .await;
    let Some(url) = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
        return Ok(()); // skipped: TESSERA_TEST_DATABASE_URL is unset
    };
    assert!(outcome.is_err(), "the body's panic must propagate");
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let admin_url = std::env::var(tessera_testkit::postgres::DATABASE_URL_ENV)?;
    let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await?;
    tokio::spawn(connection);
    let rows = client
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?;
    assert!(rows.is_empty(), "test database {name} must be dropped after a panic");
    Ok(())
}
