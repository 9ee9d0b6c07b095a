//! Refresh tokens over [`PostgresStorage`].

use async_trait::async_trait;
use tessera_core::refresh::RefreshToken;
use tessera_core::{Timestamp, TokenHash};
use tessera_storage::{AccessTokenRecord, RefreshContext, RefreshTokenRepository, RepositoryError, Rotation};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::accounts::{decode_session, decode_user, SESSION_COLUMNS};
use crate::columns::{count, grant_columns, session_columns, token_columns, user_columns};
use crate::error::{column, decode_hash, inconsistent};
use crate::grants::{decode_grant, GRANT_COLUMNS};
use crate::PostgresStorage;

const INSERT: &str = "INSERT INTO refresh_tokens (hash, grant_id, parent_hash, client_id, issued_at,
                                                  expires_at, use_count, spent_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// The columns [`decode_token`] reads.
const TOKEN_COLUMNS: usize = count(token_columns!());
/// Where [`FIND_WITH_CONTEXT`]'s grant, session and user columns start.
const GRANT_AT: usize = TOKEN_COLUMNS;
const SESSION_AT: usize = GRANT_AT + GRANT_COLUMNS;
const USER_AT: usize = SESSION_AT + SESSION_COLUMNS;

/// The token and its context in one statement, so one snapshot: each table's columns (the same
/// lists the single-table lookups use) in the order its decoder reads them, at [`GRANT_AT`],
/// [`SESSION_AT`] and [`USER_AT`]. A row the LEFT JOIN did not find has a NULL `id`; a missing
/// grant has no session or user either.
const FIND_WITH_CONTEXT: &str = concat!(
    "SELECT t.*, g.*, s.*, u.*
     FROM (SELECT ",
    token_columns!(),
    " FROM refresh_tokens WHERE hash = $1) t
     LEFT JOIN LATERAL (SELECT ",
    grant_columns!(),
    " FROM grants WHERE id = t.grant_id) g ON TRUE
     LEFT JOIN LATERAL (SELECT ",
    session_columns!(),
    " FROM sso_sessions WHERE id = g.session_id) s ON TRUE
     LEFT JOIN LATERAL (SELECT ",
    user_columns!(),
    " FROM users WHERE id = g.user_id) u ON TRUE"
);

/// [`RefreshTokenRepository::rotate`] as one statement (READ COMMITTED; committed with the other
/// rotations of its group, see [`crate::group_commit`], or alone), so one round
/// trip. Parameters: $1 the presented hash, $2 the expected use count (NULL for a sibling),
/// $3 allowed uses, $4 now, $5 the grant, $6 the session to touch (NULL: none), $7–$13 the new
/// token's hash, parent, client, issued_at, expires_at, use_count and spent_at.
///
/// All parts see one snapshot and cannot see each other's writes, so each is gated on the one
/// before it having returned a row (an `EXISTS` on it: a one-time filter, evaluated before the
/// part scans or locks anything), and the grant is locked first:
/// - `touched` records the grant's last use, and so takes its row lock. Under READ COMMITTED it
///   waits for any transaction holding it (a rotation or a revocation of this grant) and then
///   re-checks `revoked_at IS NULL` against the newest committed version; it holds the lock until
///   this statement commits, so no revocation can slip in between the checks and the insert: a
///   revocation waiting on it revokes the grant with the new token in it. Nothing changes when the
///   grant is revoked or gone. (A rotation that then loses its compare-and-set still leaves this
///   `last_used_at`: the grant was in use, by the request that won. The storage contract allows
///   it; taking the lock with a separate `SELECT … FOR UPDATE` step cost 5 % of PostgreSQL's
///   rotations per second.)
/// - `used` (the compare-and-set; skipped when $2 is NULL) is gated on `touched`, so a rotation
///   locks its grant before its token, the same order for all of them (nothing else locks a token
///   and then waits for a grant: cleanup skips locked rows), so they cannot deadlock. A
///   concurrent rotation of the same token holds the grant's lock until it commits; this one then
///   finds `use_count` moved on (the UPDATE re-checks its WHERE against the newest version) and
///   changes nothing: exactly one of them wins.
/// - `issued` inserts the new token once `touched` did and, unless a sibling, `used` did; a
///   duplicate hash fails the whole statement with SQLSTATE 23505 ([`RepositoryError::Conflict`])
///   and nothing is kept.
/// - `session` touches the session (forward only, never an ended one); finding nothing there does
///   not fail the rotation. A data-modifying CTE runs even though the final SELECT ignores it.
macro_rules! rotate_ctes {
    () => {
        "
    WITH touched AS (
        UPDATE grants SET last_used_at = $4
        WHERE id = $5 AND revoked_at IS NULL
        RETURNING 1),
    used AS (
        UPDATE refresh_tokens
        SET use_count = $2::BIGINT + 1,
            spent_at = CASE WHEN $2::BIGINT + 1 >= $3::BIGINT THEN $4::BIGINT END
        WHERE hash = $1 AND use_count = $2::BIGINT AND spent_at IS NULL
          AND EXISTS (SELECT 1 FROM touched)
        RETURNING 1),
    issued AS (
        INSERT INTO refresh_tokens (hash, grant_id, parent_hash, client_id, issued_at, expires_at,
                                    use_count, spent_at)
        SELECT $7::BYTEA, $5::TEXT, $8::BYTEA, $9::TEXT, $10::BIGINT, $11::BIGINT, $12::BIGINT,
               $13::BIGINT
        WHERE EXISTS (SELECT 1 FROM touched)
          AND ($2::BIGINT IS NULL OR EXISTS (SELECT 1 FROM used))
        RETURNING 1),
    session AS (
        UPDATE sso_sessions SET last_active_at = $4
        WHERE id = $6::TEXT AND ended_at IS NULL AND last_active_at < $4
          AND EXISTS (SELECT 1 FROM issued)
        RETURNING 1)"
    };
}
const ROTATE: &str = concat!(
    rotate_ctes!(),
    "
    SELECT EXISTS (SELECT 1 FROM issued)"
);

/// [`ROTATE`] that also stores the opaque access token issued with the new refresh token
/// ($14–$23: hash, jti, client, subject, grant, scope, audience, issued_at, expires_at, act), once
/// `issued` did: in the same statement, so a refresh never spends its token without storing what
/// it answers with.
const ROTATE_WITH_ACCESS_TOKEN: &str = concat!(
    rotate_ctes!(),
    ",
    stored AS (
        INSERT INTO access_tokens (hash, jti, client_id, subject, grant_id, scope, audience,
                                   issued_at, expires_at, act)
        SELECT $14::BYTEA, $15::TEXT, $16::TEXT, $17::TEXT, $18::TEXT, $19::TEXT, $20::TEXT,
               $21::BIGINT, $22::BIGINT, $23::TEXT
        WHERE EXISTS (SELECT 1 FROM issued)
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM issued)"
);

/// Decodes the columns of `row` from `at` with `decode`, unless the LEFT JOIN found no row there
/// (its first column, the `id`, is NULL).
fn joined<T>(
    row: &Row,
    at: usize,
    decode: fn(&Row, usize) -> Result<T, RepositoryError>,
) -> Result<Option<T>, RepositoryError> {
    match column::<Option<&str>>(row, at)? {
        Some(_) => decode(row, at).map(Some),
        None => Ok(None),
    }
}

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

/// A rotation's statement ([`ROTATE`] or [`ROTATE_WITH_ACCESS_TOKEN`]) and its parameters,
/// converted and borrowed from the [`Rotation`].
pub(crate) struct RotateValues<'a> {
    rotation: &'a Rotation,
    insert: InsertValues<'a>,
    presented: &'a [u8],
    expected_use_count: Option<i64>,
    allowed_uses: i64,
    /// The opaque access token to store with it: the record, its hash and its audience as JSON.
    access: Option<(&'a AccessTokenRecord, &'a [u8], String)>,
}

impl<'a> RotateValues<'a> {
    pub(crate) fn of(rotation: &'a Rotation) -> Result<Self, RepositoryError> {
        let access = match &rotation.access_token {
            Some(access) => Some((
                access,
                &access.hash.0[..],
                tessera_storage::codec::encode_json(&access.audience)?,
            )),
            None => None,
        };
        Ok(Self {
            rotation,
            insert: InsertValues::of(&rotation.new_token),
            presented: &rotation.presented.0[..],
            expected_use_count: rotation.expected_use_count.map(i64::from),
            allowed_uses: i64::from(rotation.allowed_uses),
            access,
        })
    }

    /// The statement to run: one row, one boolean column (whether the rotation happened).
    pub(crate) fn statement(&self) -> &'static str {
        if self.access.is_some() {
            ROTATE_WITH_ACCESS_TOKEN
        } else {
            ROTATE
        }
    }

    /// The statement's parameters, in `$n` order.
    pub(crate) fn params(&'a self) -> Vec<&'a (dyn ToSql + Sync)> {
        let rotation = self.rotation;
        let token = &rotation.new_token;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.presented,
            &self.expected_use_count,
            &self.allowed_uses,
            &rotation.now.0,
            &token.grant_id,
            &rotation.touch_session,
            &self.insert.hash,
            &self.insert.parent,
            &token.client_id,
            &token.issued_at.0,
            &token.expires_at.0,
            &self.insert.use_count,
            &self.insert.spent_at,
        ];
        if let Some((access, hash, audience)) = &self.access {
            params.extend_from_slice(&[
                hash,
                &access.jti,
                &access.client_id,
                &access.subject,
                &access.grant_id,
                &access.scope,
                audience,
                &access.issued_at.0,
                &access.expires_at.0,
                &access.act,
            ]);
        }
        params
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
            concat!("SELECT ", token_columns!(), " FROM refresh_tokens WHERE hash = $1"),
            &[&&hash.0[..]],
        )
        .await?
        .as_ref()
        .map(decode_token)
        .transpose()
    }

    #[tracing::instrument(name = "db.refresh_tokens.find_with_context", skip_all)]
    async fn find_with_context(&self, hash: &TokenHash) -> Result<Option<RefreshContext>, RepositoryError> {
        let Some(row) = self.query_opt_shared(FIND_WITH_CONTEXT, &[&&hash.0[..]]).await? else {
            return Ok(None);
        };
        Ok(Some(RefreshContext {
            token: decode_token(&row)?,
            grant: joined(&row, GRANT_AT, decode_grant)?,
            session: joined(&row, SESSION_AT, decode_session)?,
            user: joined(&row, USER_AT, decode_user)?,
        }))
    }

    #[tracing::instrument(name = "db.refresh_tokens.rotate", skip_all)]
    async fn rotate(&self, rotation: &Rotation) -> Result<bool, RepositoryError> {
        self.rotations.rotate(rotation.clone()).await
    }

    #[tracing::instrument(name = "db.refresh_tokens.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        // Walks the expiry index; a revoked grant's tokens go when they expire (see migration 5).
        // SKIP LOCKED: a token being rotated, or taken by another node's cleanup, waits for the
        // next batch.
        self.execute(
            "DELETE FROM refresh_tokens WHERE hash IN (
                 SELECT hash FROM refresh_tokens WHERE expires_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&now.0, &i64::from(limit)],
        )
        .await
    }
}
