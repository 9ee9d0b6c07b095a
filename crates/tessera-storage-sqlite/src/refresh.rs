//! Refresh tokens over [`SqliteStorage`].

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use tessera_core::refresh::RefreshToken;
use tessera_core::{Timestamp, TokenHash};
use tessera_storage::{RefreshContext, RefreshPlanner, RefreshTokenRepository, Refreshed, RepositoryError, Rotation};

use crate::accounts::{SessionRow, UserRow, SESSION_BY_ID, USER_BY_ID};
use crate::error::{decode_hash, inconsistent, map_err};
use crate::grants::{GrantRow, GRANT_BY_ID};
use crate::SqliteStorage;

/// A token by hash, its columns in the order [`TokenRow::read`] reads them.
const TOKEN_BY_HASH: &str = "SELECT hash, grant_id, parent_hash, client_id, issued_at, expires_at, use_count, spent_at
                             FROM refresh_tokens WHERE hash = ?1";

/// A `refresh_tokens` row as read, before its hashes and count are decoded.
struct TokenRow {
    hash: Vec<u8>,
    grant_id: String,
    parent_hash: Option<Vec<u8>>,
    client_id: String,
    issued_at: i64,
    expires_at: i64,
    use_count: i64,
    spent_at: Option<i64>,
}

impl TokenRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            hash: row.get(0)?,
            grant_id: row.get(1)?,
            parent_hash: row.get(2)?,
            client_id: row.get(3)?,
            issued_at: row.get(4)?,
            expires_at: row.get(5)?,
            use_count: row.get(6)?,
            spent_at: row.get(7)?,
        })
    }

    /// Decodes the row; errors name the token by its `grant_id` (the hash is not for logs).
    fn decode(self) -> Result<RefreshToken, RepositoryError> {
        let id = self.grant_id.as_str();
        Ok(RefreshToken {
            hash: decode_hash(self.hash, "refresh_tokens", "hash", id)?,
            parent: self
                .parent_hash
                .map(|parent| decode_hash(parent, "refresh_tokens", "parent_hash", id))
                .transpose()?,
            use_count: u32::try_from(self.use_count).map_err(|_| inconsistent("refresh_tokens", "use_count", id))?,
            grant_id: self.grant_id,
            client_id: self.client_id,
            issued_at: Timestamp(self.issued_at),
            expires_at: Timestamp(self.expires_at),
            spent_at: self.spent_at.map(Timestamp),
        })
    }
}

fn insert(conn: &Connection, token: &RefreshToken) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (hash, grant_id, parent_hash, client_id, issued_at, expires_at,
                                     use_count, spent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        token.hash.0,
        token.grant_id,
        token.parent.map(|p| p.0),
        token.client_id,
        token.issued_at.0,
        token.expires_at.0,
        token.use_count,
        token.spent_at.map(|t| t.0),
    ])
    .map(|_| ())
}

/// The four steps of a rotation; `Ok(false)` when step 1 or 2 changed no row. The caller undoes
/// whatever ran when this does not return `Ok(true)`.
fn rotate_steps(conn: &Connection, rotation: &Rotation, access_audience: Option<&str>) -> rusqlite::Result<bool> {
    let now = rotation.now.0;
    if let Some(expected) = rotation.expected_use_count {
        // Compare-and-set: the writer runs commands one at a time, so of any number of
        // rotations with the same expected count, only the first still finds it.
        let used = conn
            .prepare_cached(
                "UPDATE refresh_tokens
                 SET use_count = ?2 + 1,
                     spent_at = CASE WHEN ?2 + 1 >= ?3 THEN ?4 ELSE NULL END
                 WHERE hash = ?1 AND use_count = ?2 AND spent_at IS NULL",
            )?
            .execute(params![rotation.presented.0, expected, rotation.allowed_uses, now])?;
        if used != 1 {
            return Ok(false);
        }
    }
    // No token is ever issued from a revoked (or missing) grant.
    let grant = conn
        .prepare_cached("UPDATE grants SET last_used_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
        .execute(params![rotation.new_token.grant_id, now])?;
    if grant != 1 {
        return Ok(false);
    }
    insert(conn, &rotation.new_token)?;
    if let Some(session) = &rotation.touch_session {
        conn.prepare_cached(
            "UPDATE sso_sessions SET last_active_at = ?2
             WHERE id = ?1 AND ended_at IS NULL AND last_active_at < ?2",
        )?
        .execute(params![session, now])?;
    }
    if let (Some(token), Some(audience)) = (&rotation.access_token, access_audience) {
        crate::repos::insert_access_token(conn, token, audience)?;
    }
    Ok(true)
}

/// The rows of [`RefreshTokenRepository::find_with_context`], undecoded.
type ContextRows = (TokenRow, Option<GrantRow>, Option<SessionRow>, Option<UserRow>);

fn context_rows(conn: &Connection, hash: [u8; 32]) -> rusqlite::Result<Option<ContextRows>> {
    let Some(token) = conn
        .prepare_cached(TOKEN_BY_HASH)?
        .query_row([hash], TokenRow::read)
        .optional()?
    else {
        return Ok(None);
    };
    let grant = conn
        .prepare_cached(GRANT_BY_ID)?
        .query_row([&token.grant_id], GrantRow::read)
        .optional()?;
    let (mut session, mut user) = (None, None);
    if let Some(grant) = &grant {
        if let Some(session_id) = &grant.session_id {
            session = conn
                .prepare_cached(SESSION_BY_ID)?
                .query_row([session_id], SessionRow::read)
                .optional()?;
        }
        user = conn
            .prepare_cached(USER_BY_ID)?
            .query_row([&grant.user_id], UserRow::read)
            .optional()?;
    }
    Ok(Some((token, grant, session, user)))
}

/// Decodes the rows of [`context_rows`].
fn decode_context((token, grant, session, user): ContextRows) -> Result<RefreshContext, RepositoryError> {
    Ok(RefreshContext {
        token: token.decode()?,
        grant: grant.map(GrantRow::decode).transpose()?,
        session: session.map(SessionRow::decode).transpose()?,
        user: user.map(UserRow::decode).transpose()?,
    })
}

/// The opaque access token's audience, encoded as stored.
fn access_audience(rotation: &Rotation) -> Result<Option<String>, RepositoryError> {
    rotation
        .access_token
        .as_ref()
        .map(|token| tessera_storage::codec::encode_json(&token.audience))
        .transpose()
}

/// Runs a rotation on the writer's connection inside its own savepoint (inside the command's),
/// which undoes step 1 when step 2 finds the grant revoked: a lost race or a revoked grant changes
/// nothing. An error rolls back the whole command anyway.
fn apply(conn: &Connection, rotation: &Rotation, access_audience: Option<&str>) -> Result<bool, RepositoryError> {
    exec(conn, "SAVEPOINT rotation").map_err(map_err)?;
    let rotated = rotate_steps(conn, rotation, access_audience).map_err(map_err)?;
    if !rotated {
        exec(conn, "ROLLBACK TO rotation").map_err(map_err)?;
    }
    exec(conn, "RELEASE rotation").map_err(map_err)?;
    Ok(rotated)
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[async_trait]
impl RefreshTokenRepository for SqliteStorage {
    #[tracing::instrument(name = "db.refresh_tokens.add", skip_all)]
    async fn add(&self, token: &RefreshToken) -> Result<(), RepositoryError> {
        let token = token.clone();
        self.write_sql(move |conn| insert(conn, &token)).await
    }

    #[tracing::instrument(name = "db.refresh_tokens.find_by_hash", skip_all)]
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, RepositoryError> {
        let hash = hash.0;
        self.read(move |conn| {
            conn.prepare_cached(TOKEN_BY_HASH)?
                .query_row([hash], TokenRow::read)
                .optional()
        })
        .await?
        .map(TokenRow::decode)
        .transpose()
    }

    #[tracing::instrument(name = "db.refresh_tokens.find_with_context", skip_all)]
    async fn find_with_context(&self, hash: &TokenHash) -> Result<Option<RefreshContext>, RepositoryError> {
        let hash = hash.0;
        // One read transaction, so one snapshot (and one look at the WAL) for the four rows.
        let rows = self
            .read(move |conn| {
                exec(conn, "BEGIN")?;
                let rows = context_rows(conn, hash);
                // Ends the read transaction even when a query failed (unless SQLite already did),
                // so the pooled connection goes back clean.
                let ended = if conn.is_autocommit() {
                    Ok(())
                } else {
                    exec(conn, "COMMIT")
                };
                let rows = rows?;
                ended.map(|()| rows)
            })
            .await?;
        rows.map(decode_context).transpose()
    }

    #[tracing::instrument(name = "db.refresh_tokens.rotate", skip_all)]
    async fn rotate(&self, rotation: &Rotation) -> Result<bool, RepositoryError> {
        let rotation = rotation.clone();
        let access_audience = access_audience(&rotation)?;
        self.write(move |conn| apply(conn, &rotation, access_audience.as_deref()))
            .await
    }

    /// One writer command: the read, the plan and the rotation in the writer's transaction, so
    /// nothing comes between them and `rotated` is never a lost race. The writer's page cache
    /// is warm (only it writes), where a reader's is emptied by every commit since its last read,
    /// so the read costs a few page lookups instead of re-reading each page from the WAL.
    #[tracing::instrument(name = "db.refresh_tokens.refresh", skip_all)]
    async fn refresh(&self, hash: &TokenHash, plan: RefreshPlanner) -> Result<Option<Refreshed>, RepositoryError> {
        let hash = hash.0;
        self.write(move |conn| {
            let Some(rows) = context_rows(conn, hash).map_err(map_err)? else {
                return Ok(None);
            };
            let context = decode_context(rows)?;
            let rotated = match plan(&context) {
                Some(rotation) => apply(conn, &rotation, access_audience(&rotation)?.as_deref())?,
                None => false,
            };
            Ok(Some(Refreshed { context, rotated }))
        })
        .await
    }

    #[tracing::instrument(name = "db.refresh_tokens.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        // Walks the expiry index; a revoked grant's tokens go when they expire (see migration 5).
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "DELETE FROM refresh_tokens WHERE rowid IN (
                     SELECT rowid FROM refresh_tokens WHERE expires_at < ?1 LIMIT ?2)",
            )?
            .execute(params![now.0, limit])
            .map(|deleted| deleted as u64)
        })
        .await
    }
}
