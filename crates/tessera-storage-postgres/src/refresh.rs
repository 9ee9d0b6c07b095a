//! Refresh tokens over [`PostgresStorage`].

use async_trait::async_trait;
use tessera_core::refresh::RefreshToken;
use tessera_core::{Timestamp, TokenHash};
use tessera_storage::{RefreshTokenRepository, RepositoryError, Rotation};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::{column, decode_hash, inconsistent, map_pg};
use crate::PostgresStorage;

const INSERT: &str = "INSERT INTO refresh_tokens (hash, grant_id, parent_hash, client_id, issued_at,
                                                  expires_at, use_count, spent_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Decodes a token; errors name it by its `grant_id` (the hash is not for logs).
fn decode_token(row: &Row) -> Result<RefreshToken, RepositoryError> {
    let grant_id: String = column(row, 1)?;
    let parent: Option<Vec<u8>> = column(row, 2)?;
    let use_count: i64 = column(row, 6)?;
    Ok(RefreshToken {
        hash: decode_hash(column(row, 0)?, "refresh_tokens", "hash", &grant_id)?,
        parent: parent
            .map(|p| decode_hash(p, "refresh_tokens", "parent_hash", &grant_id))
            .transpose()?,
        use_count: u32::try_from(use_count).map_err(|_| inconsistent("refresh_tokens", "use_count", &grant_id))?,
        client_id: column(row, 3)?,
        issued_at: Timestamp(column(row, 4)?),
        expires_at: Timestamp(column(row, 5)?),
        spent_at: column::<Option<i64>>(row, 7)?.map(Timestamp),
        grant_id,
    })
}

/// The values of [`INSERT`] that need converting first.
struct InsertValues<'a> {
    hash: &'a [u8],
    parent: Option<&'a [u8]>,
    use_count: i64,
    spent_at: Option<i64>,
}

impl<'a> InsertValues<'a> {
    fn of(token: &'a RefreshToken) -> Self {
        Self {
            hash: &token.hash.0[..],
            parent: token.parent.as_ref().map(|p| &p.0[..]),
            use_count: i64::from(token.use_count),
            spent_at: token.spent_at.map(|t| t.0),
        }
    }

    fn params(&'a self, token: &'a RefreshToken) -> [&'a (dyn ToSql + Sync); 8] {
        [
            &self.hash,
            &token.grant_id,
            &self.parent,
            &token.client_id,
            &token.issued_at.0,
            &token.expires_at.0,
            &self.use_count,
            &self.spent_at,
        ]
    }
}

#[async_trait]
impl RefreshTokenRepository for PostgresStorage {
    #[tracing::instrument(name = "db.refresh_tokens.add", skip_all)]
    async fn add(&self, token: &RefreshToken) -> Result<(), RepositoryError> {
        let values = InsertValues::of(token);
        self.execute(INSERT, &values.params(token)).await.map(|_| ())
    }

    #[tracing::instrument(name = "db.refresh_tokens.find_by_hash", skip_all)]
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, RepositoryError> {
        self.query_opt(
            "SELECT hash, grant_id, parent_hash, client_id, issued_at, expires_at, use_count, spent_at
             FROM refresh_tokens WHERE hash = $1",
            &[&&hash.0[..]],
        )
        .await?
        .as_ref()
        .map(decode_token)
        .transpose()
    }

    #[tracing::instrument(name = "db.refresh_tokens.rotate", skip_all)]
    async fn rotate(&self, rotation: &Rotation) -> Result<bool, RepositoryError> {
        let now = rotation.now.0;
        let mut client = self.client().await?;
        // READ COMMITTED. Returning before `commit` drops the transaction: rolled back, so a lost
        // race or a revoked grant changes nothing. Locks are taken in one order (the presented
        // token, then the grant, then the session) and nothing else locks a token and then a
        // grant, so concurrent rotations and revocations cannot deadlock.
        let tx = client.transaction().await.map_err(map_pg)?;
        if let Some(expected) = rotation.expected_use_count {
            // One conditional UPDATE, never read-then-write: a concurrent rotation of the same
            // token waits for this row lock, then re-checks the WHERE against the committed row
            // (use_count has moved on) and changes nothing. Exactly one of them wins.
            let statement = tx
                .prepare_cached(
                    "UPDATE refresh_tokens
                     SET use_count = $2::BIGINT + 1,
                         spent_at = CASE WHEN $2::BIGINT + 1 >= $3::BIGINT THEN $4::BIGINT END
                     WHERE hash = $1 AND use_count = $2 AND spent_at IS NULL",
                )
                .await
                .map_err(map_pg)?;
            let used = tx
                .execute(
                    &statement,
                    &[
                        &&rotation.presented.0[..],
                        &i64::from(expected),
                        &i64::from(rotation.allowed_uses),
                        &now,
                    ],
                )
                .await
                .map_err(map_pg)?;
            if used != 1 {
                return Ok(false);
            }
        }
        // The grant's row lock serialises this against `revoke` (and the user-wide revocations):
        // either the revocation committed first and this changes no row, or it waits for this
        // transaction and revokes the grant with the new token in it.
        let statement = tx
            .prepare_cached("UPDATE grants SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .await
            .map_err(map_pg)?;
        let grant = tx
            .execute(&statement, &[&rotation.new_token.grant_id, &now])
            .await
            .map_err(map_pg)?;
        if grant != 1 {
            return Ok(false);
        }
        let statement = tx.prepare_cached(INSERT).await.map_err(map_pg)?;
        let values = InsertValues::of(&rotation.new_token);
        tx.execute(&statement, &values.params(&rotation.new_token))
            .await
            .map_err(map_pg)?;
        if let Some(session) = &rotation.touch_session {
            let statement = tx
                .prepare_cached(
                    "UPDATE sso_sessions SET last_active_at = $2
                     WHERE id = $1 AND ended_at IS NULL AND last_active_at < $2",
                )
                .await
                .map_err(map_pg)?;
            tx.execute(&statement, &[session, &now]).await.map_err(map_pg)?;
        }
        tx.commit().await.map_err(map_pg)?;
        Ok(true)
    }

    #[tracing::instrument(name = "db.refresh_tokens.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        // Two disjoint sets, each walked through an index (expiry; revoked grants, then their
        // tokens); the CTEs are read lazily, so the second only runs when the first falls short.
        // SKIP LOCKED: a token being rotated, or taken by another node's cleanup, waits for the
        // next batch.
        self.execute(
            "WITH expired AS (
                 SELECT hash FROM refresh_tokens WHERE expires_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED),
             of_revoked AS (
                 SELECT t.hash FROM grants g JOIN refresh_tokens t ON t.grant_id = g.id
                 WHERE g.revoked_at < $1 AND t.expires_at >= $1
                 LIMIT $2 FOR UPDATE OF t SKIP LOCKED)
             DELETE FROM refresh_tokens WHERE hash IN (
                 SELECT hash FROM expired UNION ALL SELECT hash FROM of_revoked LIMIT $2)",
            &[&now.0, &i64::from(limit)],
        )
        .await
    }
}
