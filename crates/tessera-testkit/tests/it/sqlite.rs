use std::sync::Arc;

use tessera_core::{Timestamp, TokenHash};
use tessera_storage::{AccessTokenRecord, Storage as _};
use tessera_storage_sqlite::{SqliteOptions, SqliteStorage};
use tessera_testkit::contract;

use crate::TestResult;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_contract_sqlite() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = SqliteStorage::open(&dir.path().join("tessera.db"), SqliteOptions::default())?;
    contract::run_all(&storage).await;
    // Again on the same database: ids are unique per run and migrate applies nothing.
    contract::run_all(&storage).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_contract_sqlite_with_tiny_batches_and_one_reader() -> TestResult {
    let dir = tempfile::tempdir()?;
    let options = SqliteOptions {
        readers: 1,
        max_batch: 1,
        ..SqliteOptions::default()
    };
    let storage = SqliteStorage::open(&dir.path().join("tessera.db"), options)?;
    contract::run_all(&storage).await;
    Ok(())
}

fn token(n: usize) -> AccessTokenRecord {
    AccessTokenRecord {
        hash: TokenHash::of(&format!("token {n}")),
        jti: format!("jti-{n}"),
        client_id: "client".into(),
        subject: (n < 100).then(|| format!("user-{n}")),
        grant_id: (n < 100).then(|| format!("grant-{n}")),
        scope: "read".into(),
        audience: vec![format!("aud-{n}")],
        issued_at: Timestamp(1_700_000_000),
        expires_at: Timestamp(1_700_003_600),
        act: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commit_under_concurrency() -> TestResult {
    let (_dir, storage) = tessera_testkit::temp_sqlite().await;
    let storage = Arc::new(storage);
    let before = storage.write_stats();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move { storage.access_tokens().add(&token(n)).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let after = storage.write_stats();
    let (transactions, commands) = (
        after.transactions - before.transactions,
        after.commands - before.commands,
    );
    println!("group commit: {commands} commands in {transactions} transactions");
    assert_eq!(commands, 200, "every add is one write command");
    assert!(
        transactions < commands,
        "200 concurrent writes must share transactions (group commit): {transactions} transactions"
    );
    for n in 0..200 {
        let expected = token(n);
        let found = storage.access_tokens().find_by_hash(&expected.hash).await?;
        assert_eq!(found, Some(expected), "token {n} after concurrent adds");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_failing_command_does_not_sink_its_batch() -> TestResult {
    let (_dir, storage) = tessera_testkit::temp_sqlite().await;
    // 50 concurrent adds, every fifth a duplicate of the one before: those conflict, the rest land.
    let records: Vec<_> = (0..50).map(|n| token(n - n % 5 / 4)).collect();
    let results = futures::future::join_all(records.iter().map(|t| storage.access_tokens().add(t))).await;
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(tessera_storage::RepositoryError::Conflict(_))))
        .count();
    assert_eq!(conflicts, 10, "{results:?}");
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(tessera_storage::RepositoryError::Conflict(_)))));
    for t in &records {
        assert_eq!(storage.access_tokens().find_by_hash(&t.hash).await?.as_ref(), Some(t));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_survive_reopening() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tessera.db");
    {
        let storage = SqliteStorage::open(&path, SqliteOptions::default())?;
        assert_eq!(storage.migrate().await?, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        storage.access_tokens().add(&token(7)).await?;
    }
    let storage = SqliteStorage::open(&path, SqliteOptions::default())?;
    assert_eq!(storage.migrate().await?, Vec::<i64>::new(), "schema already migrated");
    let found = storage.access_tokens().find_by_hash(&token(7).hash).await?;
    assert_eq!(found, Some(token(7)));
    Ok(())
}

#[tokio::test]
async fn sqlite_unopenable_path_is_unavailable() {
    let result = SqliteStorage::open(
        std::path::Path::new("/nonexistent-dir/tessera.db"),
        SqliteOptions::default(),
    );
    assert!(
        matches!(result, Err(tessera_storage::RepositoryError::Unavailable(_))),
        "{result:?}"
    );
}
