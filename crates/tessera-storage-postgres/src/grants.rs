//! Authorization codes and grants over [`PostgresStorage`].

use async_trait::async_trait;
use tessera_core::{AuthorizationCode, Grant, GrantKind, Timestamp, TokenHash};
use tessera_storage::{AuthorizationCodeRepository, GrantRepository, Page, RepositoryError};
use tokio_postgres::Row;

use crate::columns::{count, grant_columns};
use crate::error::{column, decode_hash, decode_json, encode_json, inconsistent};
use crate::PostgresStorage;

/// The revocation reason [`GrantRepository::enforce_limit`] records.
const GRANT_LIMIT: &str = "grant_limit";

/// Decodes a code; errors name it by its `grant_id` (the hash is not for logs).
fn decode_code(row: &Row) -> Result<AuthorizationCode, RepositoryError> {
    let grant_id: String = column(row, 4)?;
    let audience: String = column(row, 10)?;
    let amr: String = column(row, 12)?;
    Ok(AuthorizationCode {
        hash: decode_hash(column(row, 0)?, "authorization_codes", "hash", &grant_id)?,
        audience: decode_json(&audience, "authorization_codes", "audience", &grant_id)?,
        amr: decode_json(&amr, "authorization_codes", "amr", &grant_id)?,
        client_id: column(row, 1)?,
        user_id: column(row, 2)?,
        session_id: column(row, 3)?,
        redirect_uri: column(row, 5)?,
        scope: column(row, 6)?,
        nonce: column(row, 7)?,
        code_challenge: column(row, 8)?,
        code_challenge_method: column(row, 9)?,
        auth_time: Timestamp(column(row, 11)?),
        acr: column(row, 13)?,
        created_at: Timestamp(column(row, 14)?),
        expires_at: Timestamp(column(row, 15)?),
        consumed_at: column::<Option<i64>>(row, 16)?.map(Timestamp),
        grant_id,
    })
}

#[async_trait]
impl AuthorizationCodeRepository for PostgresStorage {
    #[tracing::instrument(name = "db.authorization_codes.add", skip_all)]
    async fn add(&self, code: &AuthorizationCode) -> Result<(), RepositoryError> {
        let audience = encode_json(&code.audience)?;
        let amr = encode_json(&code.amr)?;
        self.execute(
            "INSERT INTO authorization_codes (hash, client_id, user_id, session_id, grant_id,
                 redirect_uri, scope, nonce, code_challenge, code_challenge_method, audience,
                 auth_time, amr, acr, created_at, expires_at, consumed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            &[
                &&code.hash.0[..],
                &code.client_id,
                &code.user_id,
                &code.session_id,
                &code.grant_id,
                &code.redirect_uri,
                &code.scope,
                &code.nonce,
                &code.code_challenge,
                &code.code_challenge_method,
                &audience,
                &code.auth_time.0,
                &amr,
                &code.acr,
                &code.created_at.0,
                &code.expires_at.0,
                &code.consumed_at.map(|t| t.0),
            ],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.authorization_codes.find_by_hash", skip_all)]
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<AuthorizationCode>, RepositoryError> {
        self.query_opt(
            "SELECT hash, client_id, user_id, session_id, grant_id, redirect_uri, scope, nonce,
                    code_challenge, code_challenge_method, audience, auth_time, amr, acr,
                    created_at, expires_at, consumed_at
             FROM authorization_codes WHERE hash = $1",
            &[&&hash.0[..]],
        )
        .await?
        .as_ref()
        .map(decode_code)
        .transpose()
    }

    #[tracing::instrument(name = "db.authorization_codes.consume", skip_all)]
    async fn consume(&self, hash: &TokenHash, now: Timestamp) -> Result<bool, RepositoryError> {
        // One conditional update: a concurrent caller waits for the row lock, re-checks
        // `consumed_at IS NULL` against the committed row, and changes nothing.
        self.execute(
            "UPDATE authorization_codes SET consumed_at = $2 WHERE hash = $1 AND consumed_at IS NULL",
            &[&&hash.0[..], &now.0],
        )
        .await
        .map(|changed| changed == 1)
    }

    #[tracing::instrument(name = "db.authorization_codes.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        self.execute(
            "DELETE FROM authorization_codes WHERE hash IN (
                 SELECT hash FROM authorization_codes WHERE expires_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&now.0, &i64::from(limit)],
        )
        .await
    }
}

/// The first page of a client's grants, newest first: $1 the client, $2 the page size. `id` in
/// byte order, as everywhere (and as the `grants_client_id` index holds it).
const GRANTS_BY_CLIENT: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE client_id = $1 ORDER BY created_at DESC, id COLLATE \"C\" DESC LIMIT $2"
);

/// A further page of a client's grants: those strictly before ($3 `created_at`, $4 `id`), the last
/// row of the previous page. A row comparison in the order's collation, so it is one range of the
/// `grants_client_id` index (client_id, created_at, id COLLATE "C"), walked backwards.
const GRANTS_BY_CLIENT_BEFORE: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE client_id = $1 AND (created_at, id COLLATE \"C\") < ($3, $4)
      ORDER BY created_at DESC, id COLLATE \"C\" DESC LIMIT $2"
);

/// The columns [`decode_grant`] reads.
pub(crate) const GRANT_COLUMNS: usize = count(grant_columns!());

/// Decodes a grant from the [`GRANT_COLUMNS`] columns of `row` starting at `at`, in the order of
/// `grant_columns!`.
pub(crate) fn decode_grant(row: &Row, at: usize) -> Result<Grant, RepositoryError> {
    let id: String = column(row, at)?;
    let kind: String = column(row, at + 4)?;
    Ok(Grant {
        kind: GrantKind::parse(&kind).ok_or_else(|| inconsistent("grants", "kind", &id))?,
        user_id: column(row, at + 1)?,
        client_id: column(row, at + 2)?,
        scope: column(row, at + 3)?,
        session_id: column(row, at + 5)?,
        created_at: Timestamp(column(row, at + 6)?),
        last_used_at: Timestamp(column(row, at + 7)?),
        expires_at: column::<Option<i64>>(row, at + 8)?.map(Timestamp),
        revoked_at: column::<Option<i64>>(row, at + 9)?.map(Timestamp),
        revocation_reason: column(row, at + 10)?,
        id,
    })
}

#[async_trait]
impl GrantRepository for PostgresStorage {
    #[tracing::instrument(name = "db.grants.add", skip_all)]
    async fn add(&self, grant: &Grant) -> Result<(), RepositoryError> {
        self.execute(
            "INSERT INTO grants (id, user_id, client_id, scope, kind, session_id, created_at,
                                 last_used_at, expires_at, revoked_at, revocation_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &grant.id,
                &grant.user_id,
                &grant.client_id,
                &grant.scope,
                &grant.kind.as_str(),
                &grant.session_id,
                &grant.created_at.0,
                &grant.last_used_at.0,
                &grant.expires_at.map(|t| t.0),
                &grant.revoked_at.map(|t| t.0),
                &grant.revocation_reason,
            ],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.grants.lookup", skip_all)]
    async fn lookup(&self, grant_id: &str) -> Result<Option<Grant>, RepositoryError> {
        self.query_opt(
            concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"),
            &[&grant_id],
        )
        .await?
        .as_ref()
        .map(|row| decode_grant(row, 0))
        .transpose()
    }

    #[tracing::instrument(name = "db.grants.revoke", skip_all)]
    async fn revoke(&self, grant_id: &str, now: Timestamp, reason: &str) -> Result<bool, RepositoryError> {
        // One statement, so one transaction: the conditional update decides the race (a second
        // revoker waits for the row lock and finds it revoked); the token deletion is
        // unconditional, so a token stored after an earlier revocation does not outlive it.
        let row = self
            .query_one(
                "WITH revoked AS (
                     UPDATE grants SET revoked_at = $2, revocation_reason = $3
                     WHERE id = $1 AND revoked_at IS NULL
                     RETURNING id),
                 deleted AS (
                     DELETE FROM access_tokens WHERE grant_id = $1)
                 SELECT COUNT(*) FROM revoked",
                &[&grant_id, &now.0, &reason],
            )
            .await?;
        Ok(column::<i64>(&row, 0)? == 1)
    }

    #[tracing::instrument(name = "db.grants.revoke_online_for_session", skip_all)]
    async fn revoke_online_for_session(
        &self,
        session_id: &str,
        now: Timestamp,
        reason: &str,
    ) -> Result<u64, RepositoryError> {
        // One statement. The DELETE's subquery sees the grants as they were when the statement
        // began, so it covers the grants revoked by the UPDATE as well as earlier-revoked ones.
        let row = self
            .query_one(
                "WITH revoked AS (
                     UPDATE grants SET revoked_at = $3, revocation_reason = $4
                     WHERE session_id = $1 AND kind = $2 AND revoked_at IS NULL
                     RETURNING id),
                 deleted AS (
                     DELETE FROM access_tokens WHERE grant_id IN (
                         SELECT id FROM grants WHERE session_id = $1 AND kind = $2))
                 SELECT COUNT(*) FROM revoked",
                &[&session_id, &GrantKind::Online.as_str(), &now.0, &reason],
            )
            .await?;
        let revoked: i64 = column(&row, 0)?;
        Ok(u64::try_from(revoked).unwrap_or(0))
    }

    #[tracing::instrument(name = "db.grants.revoke_for_user", skip_all)]
    async fn revoke_for_user(
        &self,
        user_id: &str,
        only_online: bool,
        now: Timestamp,
        reason: &str,
    ) -> Result<u64, RepositoryError> {
        // One statement, as in `revoke_online_for_session`: the DELETE covers the grants revoked
        // by the UPDATE and the matching ones revoked earlier.
        let row = self
            .query_one(
                "WITH revoked AS (
                     UPDATE grants SET revoked_at = $4, revocation_reason = $5
                     WHERE user_id = $1 AND (NOT $2 OR kind = $3) AND revoked_at IS NULL
                     RETURNING id),
                 deleted AS (
                     DELETE FROM access_tokens WHERE grant_id IN (
                         SELECT id FROM grants WHERE user_id = $1 AND (NOT $2 OR kind = $3)))
                 SELECT COUNT(*) FROM revoked",
                &[&user_id, &only_online, &GrantKind::Online.as_str(), &now.0, &reason],
            )
            .await?;
        let revoked: i64 = column(&row, 0)?;
        Ok(u64::try_from(revoked).unwrap_or(0))
    }

    #[tracing::instrument(name = "db.grants.enforce_limit", skip_all)]
    async fn enforce_limit(
        &self,
        user_id: &str,
        client_id: &str,
        max_active: u32,
        now: Timestamp,
    ) -> Result<u64, RepositoryError> {
        // One statement. `active` locks the pair's unrevoked grants (in id order, so two callers
        // cannot deadlock each other) and, having waited for any lock, sees their committed
        // values: a concurrent `enforce_limit` for the pair is done first (its revoked grants drop
        // out), and a concurrent rotation's `last_used_at` counts. So two concurrent calls never
        // revoke more than the limit requires between them.
        let row = self
            .query_one(
                "WITH active AS MATERIALIZED (
                     SELECT id, last_used_at, created_at FROM grants
                     WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL
                     ORDER BY id COLLATE \"C\"
                     FOR UPDATE),
                 doomed AS (
                     SELECT id FROM active
                     ORDER BY last_used_at DESC, created_at DESC, id COLLATE \"C\" DESC
                     OFFSET $3),
                 revoked AS (
                     UPDATE grants SET revoked_at = $4, revocation_reason = $5
                     WHERE id IN (SELECT id FROM doomed)
                     RETURNING id),
                 deleted AS (
                     DELETE FROM access_tokens WHERE grant_id IN (SELECT id FROM doomed))
                 SELECT COUNT(*) FROM revoked",
                &[&user_id, &client_id, &i64::from(max_active), &now.0, &GRANT_LIMIT],
            )
            .await?;
        let revoked: i64 = column(&row, 0)?;
        Ok(u64::try_from(revoked).unwrap_or(0))
    }

    #[tracing::instrument(name = "db.grants.list_by_user", skip_all)]
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<Grant>, RepositoryError> {
        self.query(
            concat!(
                "SELECT ",
                grant_columns!(),
                " FROM grants WHERE user_id = $1 ORDER BY created_at DESC, id COLLATE \"C\" DESC"
            ),
            &[&user_id],
        )
        .await?
        .iter()
        .map(|row| decode_grant(row, 0))
        .collect()
    }

    #[tracing::instrument(name = "db.grants.list_by_client", skip_all)]
    async fn list_by_client(&self, client_id: &str, page: &Page) -> Result<Vec<Grant>, RepositoryError> {
        let limit = i64::from(page.limit);
        let rows = match &page.before {
            None => self.query(GRANTS_BY_CLIENT, &[&client_id, &limit]).await?,
            Some((created_at, id)) => {
                self.query(GRANTS_BY_CLIENT_BEFORE, &[&client_id, &limit, &created_at.0, id])
                    .await?
            }
        };
        rows.iter().map(|row| decode_grant(row, 0)).collect()
    }

    #[tracing::instrument(name = "db.grants.cleanup_ended", skip_all)]
    async fn cleanup_ended(&self, before: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        // SKIP LOCKED: a grant being rotated or revoked right now waits for the next batch.
        self.execute(
            "DELETE FROM grants WHERE id IN (
                 SELECT id FROM grants WHERE revoked_at < $1 OR expires_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&before.0, &i64::from(limit)],
        )
        .await
    }
}
