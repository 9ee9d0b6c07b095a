//! PostgreSQL backend for Tessera: many stateless nodes sharing one database.
//!
//! # Design
//!
//! A `deadpool-postgres` pool of `tokio-postgres` connections ([`PostgresOptions::max_connections`]).
//! Every repository method is one statement in autocommit mode (so it is durable when it returns,
//! and is one round trip), except [`SigningKeyRepository::rotate`] and [`Storage::migrate`], which
//! run in a transaction, and [`RefreshTokenRepository::rotate`], whose statement is committed with
//! the other rotations queued at the same time (`group_commit`: one pipelined `BEGIN`, statements,
//! `COMMIT`; a failing statement rolls its group back and the rotations rerun alone, so each
//! answers as its statement alone would); [`EventRepository::record`] stores a whole batch in one statement too
//! (`INSERT … SELECT FROM UNNEST`, one array per column). A statement reads one snapshot:
//! [`RefreshTokenRepository::find_with_context`] reads a refresh token with its grant, the grant's
//! session and user in one `LEFT JOIN`, on one of two connections that concurrent reads share (the
//! driver pipelines them; `SharedClients`). [`RefreshTokenRepository::refresh`] is the trait's
//! default, that read then the rotation below, whose compare-and-set catches anything in between.
//! Races between nodes are decided inside the database: `register_jti` is a single
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE` whose row count says whether the `jti` was fresh;
//! `consume`, `end` and grant revocation are conditional `UPDATE … WHERE … IS NULL`s that change a
//! row for exactly one caller; consent is merged by one `INSERT … ON CONFLICT DO UPDATE` computing
//! the union in SQL; [`GrantRepository::revoke`], [`GrantRepository::revoke_online_for_session`],
//! [`GrantRepository::revoke_for_user`] and [`GrantRepository::enforce_limit`] revoke and delete
//! the grants' opaque access tokens in one statement (data-modifying CTEs; `enforce_limit` first
//! locks the (user, client)'s active grants, so concurrent calls do not over-revoke); a refresh
//! ([`RefreshTokenRepository::rotate`]) is one statement of data-modifying CTEs, each gated on the
//! one before: it locks the unrevoked grant (by updating its last use; held until it commits), then
//! compare-and-sets the presented token, records the grant's use, inserts the new token and
//! touches the session, so of concurrent rotations of one token exactly one changes anything, no
//! token is issued from a grant revoked meanwhile, and a refused rotation changes nothing; and
//! `migrate` takes a transaction-scoped advisory lock so two nodes starting at once apply each
//! migration exactly once. Statements are prepared once per connection and cached
//! (`prepare_cached`).
//!
//! # Schema
//!
//! Timestamps are BIGINT seconds, token hashes 32-byte BYTEA, client settings, user claims,
//! audiences, `amr` lists and consented scope sets JSON TEXT. There are no foreign keys between
//! tables: rows are deleted independently (cleanup jobs, admin removal). The embedded `migrations/*.sql` files are recorded in
//! `tessera_migrations`; a database with a version newer than this binary knows is refused.
//!
//! # Errors
//!
//! SQLSTATE 23505 is [`RepositoryError::Conflict`]; pool timeouts, connection failures,
//! SQLSTATE classes 08 and 53, 57P01–57P04, 3D000, 40001 and 40P01 are
//! [`RepositoryError::Unavailable`]; anything else
//! is [`RepositoryError::Backend`]; an undecodable column is [`RepositoryError::Inconsistent`].
#![deny(missing_docs)]

mod accounts;
mod columns;
mod error;
mod events;
mod grants;
mod group_commit;
mod refresh;
mod repos;

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tessera_storage::{
    AccessTokenRepository, AuthorizationCodeRepository, ClientAssertionRepository, ClientRepository, ConsentRepository,
    EventRepository, GrantRepository, RefreshTokenRepository, RepositoryError, SessionRepository, SigningKeyRepository,
    Storage, UserRepository,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::error::{map_pg, map_pool};

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

/// The advisory lock serialising migrations across nodes ("tessera" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_6573_7365_7261;

/// Tuning for [`PostgresStorage`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The most connections the pool opens. Default 16.
    pub max_connections: usize,
    /// How long to wait to connect, or for a free pooled connection, before the database counts
    /// as unavailable. Default 5 s.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Tessera's storage in a PostgreSQL database. See the [crate docs](crate).
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Pool,
    /// Refresh-token rotations, committed in groups ([`group_commit`]).
    rotations: group_commit::Rotations,
    /// Connections that hot point reads share, so concurrent reads are pipelined.
    shared: Arc<SharedClients>,
}

/// A few pooled connections kept out of the pool and shared by concurrent point reads.
///
/// A `tokio-postgres` client takes requests from many tasks at once and pipelines them: they go
/// out back to back and PostgreSQL answers them in order, so one backend wakes once for many
/// reads instead of once for each (with a connection per request, the refresh path's read was a
/// round trip, a backend wake-up and a context switch each). Only single-statement reads that do
/// not care which connection runs them use this: no transactions, no session state.
struct SharedClients {
    pool: Pool,
    slots: Vec<std::sync::Mutex<Option<Arc<deadpool_postgres::Object>>>>,
    next: AtomicUsize,
}

impl SharedClients {
    /// Two shared connections out of a pool of `max_connections`, one out of a pool of 4 to 7,
    /// none out of a smaller one (a pool that small needs every connection for itself).
    fn new(pool: Pool, max_connections: usize) -> Self {
        let shared = match max_connections {
            0..=3 => 0,
            4..=7 => 1,
            _ => 2,
        };
        Self {
            pool,
            slots: (0..shared).map(|_| std::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next shared connection, round robin (a closed one is replaced from the pool), or
    /// `None` when none are shared.
    async fn get(&self) -> Result<Option<Arc<deadpool_postgres::Object>>, RepositoryError> {
        if self.slots.is_empty() {
            return Ok(None);
        }
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let current = slot.lock().map_or(None, |held| held.clone());
        if let Some(client) = current.filter(|client| !client.is_closed()) {
            return Ok(Some(client));
        }
        let fresh = Arc::new(self.pool.get().await.map_err(map_pool)?);
        if let Ok(mut held) = slot.lock() {
            *held = Some(Arc::clone(&fresh));
        }
        Ok(Some(fresh))
    }
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the configuration: it may hold a password.
        f.debug_struct("PostgresStorage")
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Builds the pool for `url` (`postgres://user[:password]@host:port/database`, no TLS) and
    /// opens one connection to check the database answers. Does not run migrations: call
    /// [`Storage::migrate`].
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] for a malformed URL; [`RepositoryError::Unavailable`] when the
    /// database cannot be reached within `connect_timeout`.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, RepositoryError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| RepositoryError::Backend(format!("invalid PostgreSQL connection URL: {e}").into()))?;
        config.connect_timeout(options.connect_timeout);
        // Every statement is a prepared point lookup or a keyed write whose best plan does not
        // depend on the parameter values: plan it once per connection, not at every execution
        // (PostgreSQL's default keeps re-planning when the generic plan is not estimated cheaper,
        // and planning was most of its CPU time in a refresh profile).
        let generic = "-c plan_cache_mode=force_generic_plan";
        let session_options = match config.get_options() {
            Some(given) => format!("{given} {generic}"),
            None => generic.to_owned(),
        };
        config.options(&session_options);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(options.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| RepositoryError::Backend(Box::new(e)))?;
        let rotations = group_commit::Rotations::start(pool.clone());
        let shared = Arc::new(SharedClients::new(pool.clone(), options.max_connections));
        let storage = Self {
            pool,
            rotations,
            shared,
        };
        drop(storage.client().await?);
        Ok(storage)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, RepositoryError> {
        self.pool.get().await.map_err(map_pool)
    }

    /// Runs one cached statement; returns the rows changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, RepositoryError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(map_pg)?;
        client.execute(&statement, params).await.map_err(map_pg)
    }

    /// Runs one cached query; returns its rows.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, RepositoryError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(map_pg)?;
        client.query(&statement, params).await.map_err(map_pg)
    }

    /// Runs one cached query expected to return exactly one row.
    async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, RepositoryError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(map_pg)?;
        client.query_one(&statement, params).await.map_err(map_pg)
    }

    /// [`Self::query_opt`] on a shared connection ([`SharedClients`]), pipelined with other reads.
    async fn query_opt_shared(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, RepositoryError> {
        let Some(client) = self.shared.get().await? else {
            return self.query_opt(sql, params).await;
        };
        let statement = client.prepare_cached(sql).await.map_err(map_pg)?;
        client.query_opt(&statement, params).await.map_err(map_pg)
    }

    /// Runs one cached query expected to return at most one row.
    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, RepositoryError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(map_pg)?;
        client.query_opt(&statement, params).await.map_err(map_pg)
    }
}

#[async_trait]
impl Storage for PostgresStorage {
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
        "postgres"
    }

    #[tracing::instrument(name = "db.ping", skip_all)]
    async fn ping(&self) -> Result<(), RepositoryError> {
        let as_unavailable = |e: RepositoryError| match e {
            RepositoryError::Unavailable(source) => RepositoryError::Unavailable(source),
            other => RepositoryError::Unavailable(Box::new(other)),
        };
        self.query("SELECT 1", &[]).await.map(|_| ()).map_err(as_unavailable)
    }

    #[tracing::instrument(name = "db.migrate", skip_all)]
    async fn migrate(&self) -> Result<Vec<i64>, RepositoryError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_pg)?;
        // Held until commit or rollback: a second node waits here, then finds nothing to do.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(map_pg)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tessera_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .await
        .map_err(map_pg)?;
        let current: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM tessera_migrations", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(map_pg)?;
        let latest = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
        if current > latest {
            return Err(RepositoryError::Backend(
                format!(
                    "the database schema is at version {current}, but this Tessera binary only \
                     knows migrations up to {latest}: refusing to run against a newer schema \
                     (upgrade Tessera)"
                )
                .into(),
            ));
        }
        let mut applied = Vec::new();
        for &(version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
            tx.batch_execute(sql).await.map_err(map_pg)?;
            tx.execute(
                "INSERT INTO tessera_migrations (version, name, applied_at)
                 VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
                &[&version, &name],
            )
            .await
            .map_err(map_pg)?;
            applied.push(version);
        }
        tx.commit().await.map_err(map_pg)?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied PostgreSQL migrations");
        }
        Ok(applied)
    }
}
