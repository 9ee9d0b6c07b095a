//! SQLite backend for Tessera: the embedded default, one file, no server.
//!
//! # Design (DESIGN §7)
//!
//! The database runs in WAL mode with `synchronous=FULL`, so a commit is durable (fsynced) when it
//! returns, and readers never block the writer or each other.
//!
//! **Writes: one writer thread with group commit.** SQLite allows one writer at a time, and with
//! `synchronous=FULL` each commit costs an fsync. Rather than have request tasks fight over the
//! write lock, every write is sent as a boxed command over a bounded channel to one dedicated
//! `std::thread` that owns the only read-write connection. The thread takes the first pending
//! command, drains up to [`SqliteOptions::max_batch`] commands in all that are already queued,
//! and runs them in **one** `BEGIN IMMEDIATE … COMMIT` transaction. Each command runs inside its
//! own `SAVEPOINT`, so a command that fails (say, a duplicate id) is rolled back alone and the
//! others still commit. Only after the single `COMMIT` (one fsync for the whole batch) does the
//! thread reply to each caller through a `tokio::sync::oneshot`; so a response carrying a token is
//! never sent before the token is on disk. Under load, batches grow by themselves: while one
//! batch is being fsynced, the next one queues up. If the commit itself fails, every command of
//! the batch reports the failure. Callers only `await` their reply; no async task ever blocks on
//! SQLite. A caller that gives up (a cancelled request) does not cancel its command: it is atomic
//! and simply commits or not. Dropping [`SqliteStorage`] closes the channel and joins the thread
//! after the batch in hand.
//!
//! **Checkpoints: mostly in the background.** A thread of its own runs `wal_checkpoint(PASSIVE)`
//! every 20 ms while the WAL grows (module `checkpoint`), so the writer's automatic checkpoint
//! (every 1 000 WAL pages, on the commit path) finds almost everything copied and synced already.
//! Measured: open-loop refresh p99 at 9 560/s 10.6–13.9 ms against 14.2–39.1 ms without it.
//!
//! **Reads: a small pool of read-only connections** ([`SqliteOptions::readers`]). Point lookups run
//! on the calling thread (a WAL read never waits for the writer and takes microseconds; a thread
//! hop per query cost more than the query); listings, whose length grows with the data, run on
//! tokio's blocking pool.
//!
//! **A whole refresh is one writer command** ([`RefreshTokenRepository::refresh`]): the token's
//! context is read on the writer's connection, the caller's planner decides there, and the
//! rotation runs in the same savepoint. A reader's page cache is emptied by every commit since
//! its last read (SQLite cannot tell which pages changed), so under load each refresh read
//! re-fetched its ten or so pages from the WAL; the writer's cache stays warm because only it
//! writes. Measured: server CPU per refresh, median of four alternating pairs, 126 → 103 µs. A
//! planner that panics fails its own command only (the writer catches the unwind).
//!
//! Statements are prepared once per connection and cached (`prepare_cached`).
//!
//! Operations that touch several rows or tables (signing-key rotation, revoking grants and
//! deleting their opaque access tokens, merging consent, a refresh-token rotation, a batch of audit
//! events) are one write command, so one savepoint: they commit together or not at all. Conditional updates (`consume`,
//! `end`, `revoke`, the refresh token's compare-and-set) are decided by the single writer, which
//! runs commands one after another. A rotation whose compare-and-set or grant check changes no row
//! rolls back to a savepoint of its own, so it changes nothing and still reports `false`.
//!
//! # Schema
//!
//! Timestamps are INTEGER seconds, token hashes 32-byte BLOBs, client settings, user claims,
//! audiences, `amr` lists and consented scope sets JSON TEXT. There are no foreign keys between
//! tables: rows are deleted independently (cleanup jobs, admin removal). [`SqliteStorage::open`] does not touch the schema;
//! [`Storage::migrate`] applies the embedded `migrations/*.sql` files, recorded in
//! `tessera_migrations`, all pending ones in one transaction.
//!
//! # Errors
//!
//! Uniqueness violations become [`RepositoryError::Conflict`]; busy/locked databases, files that
//! cannot be opened, I/O errors and a stopped writer thread become
//! [`RepositoryError::Unavailable`]; anything else is [`RepositoryError::Backend`]; an undecodable
//! JSON or hash column is [`RepositoryError::Inconsistent`].
#![deny(missing_docs)]

mod accounts;
mod checkpoint;
mod error;
mod events;
mod grants;
mod refresh;
mod repos;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tessera_storage::{
    AccessTokenRepository, AuthorizationCodeRepository, ClientAssertionRepository, ClientRepository, ConsentRepository,
    EventRepository, GrantRepository, RefreshTokenRepository, RepositoryError, SessionRepository, SigningKeyRepository,
    Storage, UserRepository,
};
use tokio::sync::Semaphore;

use crate::checkpoint::Checkpointer;
use crate::error::{map_err, unavailable};
pub use crate::writer::WriteStats;
use crate::writer::Writer;

/// The embedded migrations: (version, name, SQL), in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "users_sessions_codes_grants",
        include_str!("../migrations/0002_users_sessions_codes_grants.sql"),
    ),
    (
        3,
        "refresh_tokens",
        include_str!("../migrations/0003_refresh_tokens.sql"),
    ),
    (
        4,
        "revoked_access_tokens",
        include_str!("../migrations/0004_revoked_access_tokens.sql"),
    ),
    (
        5,
        "refresh_tokens_without_grant_index",
        include_str!("../migrations/0005_refresh_tokens_without_grant_index.sql"),
    ),
    (6, "events", include_str!("../migrations/0006_events.sql")),
    (
        7,
        "access_token_act",
        include_str!("../migrations/0007_access_token_act.sql"),
    ),
    (
        8,
        "purge_ended_grants_and_sessions",
        include_str!("../migrations/0008_purge_ended_grants_and_sessions.sql"),
    ),
];

/// Tuning for [`SqliteStorage`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a connection waits for a lock held by another process before giving up
    /// ([`RepositoryError::Unavailable`]). Default 5 s.
    pub busy_timeout: Duration,
    /// Read-only connections in the pool (at least 1). Default 4.
    pub readers: usize,
    /// The most write commands committed in one transaction (at least 1). Default 256.
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            max_batch: 256,
        }
    }
}

/// Tessera's storage in one SQLite file. See the [crate docs](crate) for the design.
pub struct SqliteStorage {
    writer: Writer,
    /// Copies the WAL into the database file in the background (see `checkpoint`).
    _checkpointer: Checkpointer,
    readers: Arc<Readers>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("writer_alive", &self.writer.is_alive())
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens (creating if missing) the database at `path`, switches it to WAL, opens the read
    /// pool and starts the writer thread. Does not run migrations: call [`Storage::migrate`].
    ///
    /// Synchronous (a few milliseconds of file I/O); call it at startup, not per request. The
    /// returned storage must be used from within a tokio runtime.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the file cannot be opened or is locked;
    /// [`RepositoryError::Backend`] when it cannot be put in WAL mode (e.g. `:memory:`).
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, RepositoryError> {
        let conn = Connection::open(path).map_err(map_err)?;
        conn.busy_timeout(options.busy_timeout).map_err(map_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(RepositoryError::Backend(
                format!(
                    "SQLite database {} cannot use WAL (journal_mode = {mode})",
                    path.display()
                )
                .into(),
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(map_err)?;
        conn.set_prepared_statement_cache_capacity(64);

        let count = options.readers.max(1);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let readers = (0..count)
            .map(|_| {
                let reader = Connection::open_with_flags(path, flags)?;
                reader.busy_timeout(options.busy_timeout)?;
                reader.set_prepared_statement_cache_capacity(64);
                Ok(reader)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?;

        Ok(Self {
            writer: Writer::start(conn, options.max_batch)?,
            _checkpointer: Checkpointer::start(Connection::open(path).map_err(map_err)?)?,
            readers: Arc::new(Readers {
                connections: Mutex::new(readers),
                permits: Arc::new(Semaphore::new(count)),
            }),
        })
    }

    /// How many transactions and commands the writer thread has run: `commands / transactions`
    /// is the average group-commit batch size.
    #[must_use]
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// Runs `op` on the writer thread inside its own savepoint; returns once its batch committed.
    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, RepositoryError> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        self.writer.submit(Box::new(op)).await
    }

    /// [`Self::write`] for operations that only fail with SQLite errors.
    async fn write_sql<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        self.write(move |conn| op(conn).map_err(map_err)).await
    }

    /// Runs `op` on a pooled read-only connection, on the calling thread.
    ///
    /// Reads in WAL mode never wait for the writer, and every read here is an indexed lookup of a
    /// few microseconds, so it runs inline: moving each one to the blocking pool cost two thread
    /// switches per query, and the profile of a refresh (five reads) was then 40 % context
    /// switching. Listing reads that may be long (`list`) use [`Self::read_blocking`].
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        let _permit = self
            .readers
            .permits
            .acquire()
            .await
            .map_err(|_| unavailable("the SQLite reader pool is closed"))?;
        let lease = self.readers.lease()?;
        op(lease.connection()?).map_err(map_err)
    }

    /// Runs `op` on a pooled read-only connection on the blocking thread pool, for reads whose
    /// length grows with the data (listings).
    async fn read_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        let permit = Arc::clone(&self.readers.permits)
            .acquire_owned()
            .await
            .map_err(|_| unavailable("the SQLite reader pool is closed"))?;
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let lease = readers.lease()?;
            op(lease.connection()?).map_err(map_err)
        })
        .await
        .map_err(|e| RepositoryError::Backend(Box::new(e)))?
    }
}

/// The read-only connections; a semaphore permit entitles its holder to one of them.
struct Readers {
    connections: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    fn lease(&self) -> Result<Lease<'_>, RepositoryError> {
        let conn = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .ok_or_else(|| RepositoryError::Backend("SQLite reader pool is empty".into()))?;
        Ok(Lease {
            readers: self,
            conn: Some(conn),
        })
    }
}

/// A borrowed reader connection, returned to the pool on drop (even if the query panicked).
struct Lease<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Lease<'_> {
    fn connection(&self) -> Result<&Connection, RepositoryError> {
        self.conn
            .as_ref()
            .ok_or_else(|| RepositoryError::Backend("SQLite reader lease is empty".into()))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    fn clients(&self) -> &dyn ClientRepository {
        self
    }

    fn signing_keys(&self) -> &dyn SigningKeyRepository {
        self
    }

    fn client_assertions(&self) -> &dyn ClientAssertionRepository {
        self
    }

    fn access_tokens(&self) -> &dyn AccessTokenRepository {
        self
    }

    fn users(&self) -> &dyn UserRepository {
        self
    }

    fn sessions(&self) -> &dyn SessionRepository {
        self
    }

    fn consents(&self) -> &dyn ConsentRepository {
        self
    }

    fn authorization_codes(&self) -> &dyn AuthorizationCodeRepository {
        self
    }

    fn grants(&self) -> &dyn GrantRepository {
        self
    }

    fn refresh_tokens(&self) -> &dyn RefreshTokenRepository {
        self
    }

    fn events(&self) -> &dyn EventRepository {
        self
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    #[tracing::instrument(name = "db.ping", skip_all)]
    async fn ping(&self) -> Result<(), RepositoryError> {
        if !self.writer.is_alive() {
            return Err(unavailable("the SQLite writer thread has stopped"));
        }
        self.read(|conn| conn.prepare_cached("SELECT 1")?.query_row([], |_| Ok(())))
            .await
            .map_err(|e| match e {
                RepositoryError::Unavailable(source) => RepositoryError::Unavailable(source),
                other => RepositoryError::Unavailable(Box::new(other)),
            })
    }

    #[tracing::instrument(name = "db.migrate", skip_all)]
    async fn migrate(&self) -> Result<Vec<i64>, RepositoryError> {
        let applied = self.write(apply_migrations).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied SQLite migrations");
        }
        Ok(applied)
    }
}

/// Applies pending migrations (runs on the writer, so inside one savepoint of one transaction).
fn apply_migrations(conn: &Connection) -> Result<Vec<i64>, RepositoryError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tessera_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )
    .map_err(map_err)?;
    let current: i64 = conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM tessera_migrations", [], |row| {
            row.get(0)
        })
        .map_err(map_err)?;
    let latest = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if current > latest {
        return Err(RepositoryError::Backend(
            format!(
                "the database schema is at version {current}, but this Tessera binary only knows \
                 migrations up to {latest}: refusing to run against a newer schema (upgrade Tessera)"
            )
            .into(),
        ));
    }
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        conn.execute_batch(sql).map_err(map_err)?;
        conn.execute(
            "INSERT INTO tessera_migrations (version, name, applied_at)
             VALUES (?1, ?2, CAST(strftime('%s', 'now') AS INTEGER))",
            rusqlite::params![version, name],
        )
        .map_err(map_err)?;
        applied.push(version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use tessera_core::refresh::RefreshToken;
    use tessera_core::{Timestamp, TokenHash};

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A migrated storage plus a raw connection to the same file, to plant bad rows.
    async fn storage_and_raw() -> Result<(tempfile::TempDir, SqliteStorage, Connection), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.db");
        let storage = SqliteStorage::open(&path, SqliteOptions::default())?;
        assert_eq!(storage.migrate().await?, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let raw = Connection::open(&path)?;
        raw.busy_timeout(Duration::from_secs(5))?;
        Ok((dir, storage, raw))
    }

    #[tokio::test]
    async fn refuses_a_newer_schema() -> TestResult {
        let (_dir, storage, raw) = storage_and_raw().await?;
        raw.execute("INSERT INTO tessera_migrations VALUES (999, 'future', 0)", [])?;
        let result = storage.migrate().await;
        assert!(
            matches!(&result, Err(RepositoryError::Backend(e)) if e.to_string().contains("999")),
            "{result:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn undecodable_rows_are_inconsistent() -> TestResult {
        let (_dir, storage, raw) = storage_and_raw().await?;
        raw.execute_batch(
            "INSERT INTO clients VALUES ('bad-json', NULL, '{', 0, 0);
             INSERT INTO clients VALUES ('bad-hash', x'0102', '{}', 0, 0);
             INSERT INTO signing_keys VALUES ('k', 'none', '{}', x'00', 0, 0, NULL);
             INSERT INTO users (id, username, claims, is_disabled, created_at, updated_at)
                 VALUES ('u', 'unknown-claim', '{\"shoe_size\":42}', 0, 0, 0);
             INSERT INTO grants (id, user_id, client_id, scope, kind, created_at, last_used_at)
                 VALUES ('g', 'u', 'c', '', 'forever', 0, 0), ('g-ok', 'u', 'c', '', 'offline', 0, 0);
             INSERT INTO refresh_tokens (hash, grant_id, parent_hash, client_id, issued_at, expires_at, use_count)
                 VALUES (zeroblob(32), 'g-parent', x'02', 'c', 0, 0, 0),
                        (x'0101010101010101010101010101010101010101010101010101010101010101', 'g-count', NULL, 'c', 0, 0, -1),
                        (x'0202020202020202020202020202020202020202020202020202020202020202', 'g', NULL, 'c', 0, 0, 0),
                        (x'0303030303030303030303030303030303030303030303030303030303030303', 'g-ok', NULL, 'c', 0, 0, 0);",
        )?;
        let cases: [(&str, &str); 2] = [("bad-json", "settings"), ("bad-hash", "secret_hash")];
        for (id, expected_column) in cases {
            let result = storage.clients().lookup(id).await;
            assert!(
                matches!(&result, Err(RepositoryError::Inconsistent { table: "clients", column, id: got })
                    if *column == expected_column && got == id),
                "{id}: {result:?}"
            );
        }
        let keys = storage.signing_keys().list().await;
        assert!(
            matches!(
                &keys,
                Err(RepositoryError::Inconsistent {
                    column: "algorithm",
                    ..
                })
            ),
            "{keys:?}"
        );
        let user = storage.users().find_by_username("unknown-claim").await;
        assert!(
            matches!(&user, Err(RepositoryError::Inconsistent { table: "users", column: "claims", id }) if id == "u"),
            "{user:?}"
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
        let grant = storage.grants().lookup("g").await;
        assert!(
            matches!(&grant, Err(RepositoryError::Inconsistent { table: "grants", column: "kind", id }) if id == "g"),
            "{grant:?}"
        );
        // The refresh context decodes with the same rules: any undecodable row fails the read.
        for (hash, expected_table, expected_column, expected_id) in [
            (TokenHash([1; 32]), "refresh_tokens", "use_count", "g-count"),
            (TokenHash([2; 32]), "grants", "kind", "g"),
            (TokenHash([3; 32]), "users", "claims", "u"),
        ] {
            let result = storage.refresh_tokens().find_with_context(&hash).await;
            assert!(
                matches!(&result, Err(RepositoryError::Inconsistent { table, column, id })
                    if *table == expected_table && *column == expected_column && id == expected_id),
                "{expected_table}.{expected_column}: {result:?}"
            );
            // The writer's read for a whole refresh decodes them the same way.
            let result = storage.refresh_tokens().refresh(&hash, Box::new(|_| None)).await;
            assert!(
                matches!(&result, Err(RepositoryError::Inconsistent { table, column, id })
                    if *table == expected_table && *column == expected_column && id == expected_id),
                "refresh, {expected_table}.{expected_column}: {result:?}"
            );
        }
        // A row SQLite cannot even convert fails inside the read transaction, which must still end.
        raw.execute_batch(
            "INSERT INTO refresh_tokens (hash, grant_id, client_id, issued_at, expires_at, use_count)
                 VALUES (x'0404040404040404040404040404040404040404040404040404040404040404',
                         'g-ok', 'c', 'soon', 0, 0)",
        )?;
        let result = storage.refresh_tokens().find_with_context(&TokenHash([4; 32])).await;
        assert!(matches!(result, Err(RepositoryError::Backend(_))), "{result:?}");
        // Every failed read ended its transaction: the connection it used (back on top of the pool)
        // sees a later write, and can begin a new read transaction.
        raw.execute_batch(
            "INSERT INTO users (id, username, claims, is_disabled, created_at, updated_at)
                 VALUES ('later', 'later', '{}', 0, 0, 0)",
        )?;
        assert!(storage.users().lookup("later").await?.is_some(), "a stale snapshot");
        let missing = storage.refresh_tokens().find_with_context(&TokenHash([9; 32])).await?;
        assert!(missing.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn the_background_checkpointer_copies_commits_into_the_database_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.db");
        let storage = SqliteStorage::open(&path, SqliteOptions::default())?;
        storage.migrate().await?;
        // Far below the writer's own auto-checkpoint (1 000 pages): only the background thread
        // copies this commit out of the WAL.
        let raw = Connection::open(&path)?;
        raw.execute("INSERT INTO clients VALUES ('checkpointed', NULL, '{}', 0, 0)", [])?;
        drop(raw);
        // `immutable=1` reads the database file alone, ignoring the WAL.
        let uri = format!("file:{}?immutable=1", path.display());
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        for _ in 0..100 {
            let file = Connection::open_with_flags(&uri, flags)?;
            // Before the first checkpoint the file does not even have the tables.
            let found = file
                .query_row(
                    "SELECT count(*) FROM clients WHERE client_id = 'checkpointed'",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .unwrap_or(0);
            if found == 1 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err("the commit never reached the database file".into())
    }

    #[tokio::test]
    async fn a_panicking_refresh_planner_fails_alone_and_the_writer_carries_on() -> TestResult {
        let dir = tempfile::tempdir()?;
        let storage = SqliteStorage::open(&dir.path().join("t.db"), SqliteOptions::default())?;
        storage.migrate().await?;
        let token = |hash: u8| RefreshToken {
            hash: TokenHash([hash; 32]),
            grant_id: "g".into(),
            parent: None,
            client_id: "c".into(),
            issued_at: Timestamp(0),
            expires_at: Timestamp(60),
            use_count: 0,
            spent_at: None,
        };
        storage.refresh_tokens().add(&token(1)).await?;
        let result = storage
            .refresh_tokens()
            .refresh(&TokenHash([1; 32]), Box::new(|_| panic!("a planner bug")))
            .await;
        assert!(matches!(result, Err(RepositoryError::Backend(_))), "{result:?}");
        // The writer thread is still there and commits the next command.
        storage.refresh_tokens().add(&token(2)).await?;
        assert!(storage
            .refresh_tokens()
            .find_by_hash(&TokenHash([2; 32]))
            .await?
            .is_some());
        assert_eq!(
            storage.refresh_tokens().find_by_hash(&TokenHash([1; 32])).await?,
            Some(token(1))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_write_lock_held_elsewhere_makes_writes_unavailable() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.db");
        let options = SqliteOptions {
            busy_timeout: Duration::from_millis(50),
            ..SqliteOptions::default()
        };
        let storage = SqliteStorage::open(&path, options)?;
        storage.migrate().await?;
        let raw = Connection::open(&path)?;
        raw.execute_batch("BEGIN IMMEDIATE")?;
        let result = storage.clients().remove("anyone").await;
        assert!(matches!(result, Err(RepositoryError::Unavailable(_))), "{result:?}");
        raw.execute_batch("ROLLBACK")?;
        assert!(!storage.clients().remove("anyone").await?);
        storage.ping().await?;
        Ok(())
    }
}
