//! Authorization codes and grants over [`SqliteStorage`].

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use tessera_core::{AuthorizationCode, Grant, GrantKind, Timestamp, TokenHash};
use tessera_storage::{AuthorizationCodeRepository, GrantRepository, Page, RepositoryError};

use crate::error::{decode_hash, decode_json, encode_json, inconsistent};
use crate::SqliteStorage;

/// The revocation reason [`GrantRepository::enforce_limit`] records.
const GRANT_LIMIT: &str = "grant_limit";

/// An `authorization_codes` row as read, before its hash and JSON are decoded.
struct CodeRow {
    hash: Vec<u8>,
    client_id: String,
    user_id: String,
    session_id: String,
    grant_id: String,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    audience: String,
    auth_time: i64,
    amr: String,
    acr: Option<String>,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
}

impl CodeRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            hash: row.get(0)?,
            client_id: row.get(1)?,
            user_id: row.get(2)?,
            session_id: row.get(3)?,
            grant_id: row.get(4)?,
            redirect_uri: row.get(5)?,
            scope: row.get(6)?,
            nonce: row.get(7)?,
            code_challenge: row.get(8)?,
            code_challenge_method: row.get(9)?,
            audience: row.get(10)?,
            auth_time: row.get(11)?,
            amr: row.get(12)?,
            acr: row.get(13)?,
            created_at: row.get(14)?,
            expires_at: row.get(15)?,
            consumed_at: row.get(16)?,
        })
    }

    /// Decodes the row; errors name the code by its `grant_id` (the hash is not for logs).
    fn decode(self) -> Result<AuthorizationCode, RepositoryError> {
        let id = self.grant_id.as_str();
        Ok(AuthorizationCode {
            hash: decode_hash(self.hash, "authorization_codes", "hash", id)?,
            audience: decode_json(&self.audience, "authorization_codes", "audience", id)?,
            amr: decode_json(&self.amr, "authorization_codes", "amr", id)?,
            client_id: self.client_id,
            user_id: self.user_id,
            session_id: self.session_id,
            grant_id: self.grant_id,
            redirect_uri: self.redirect_uri,
            scope: self.scope,
            nonce: self.nonce,
            code_challenge: self.code_challenge,
            code_challenge_method: self.code_challenge_method,
            auth_time: Timestamp(self.auth_time),
            acr: self.acr,
            created_at: Timestamp(self.created_at),
            expires_at: Timestamp(self.expires_at),
            consumed_at: self.consumed_at.map(Timestamp),
        })
    }
}

#[async_trait]
impl AuthorizationCodeRepository for SqliteStorage {
    #[tracing::instrument(name = "db.authorization_codes.add", skip_all)]
    async fn add(&self, code: &AuthorizationCode) -> Result<(), RepositoryError> {
        let audience = encode_json(&code.audience)?;
        let amr = encode_json(&code.amr)?;
        let code = code.clone();
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "INSERT INTO authorization_codes (hash, client_id, user_id, session_id, grant_id,
                     redirect_uri, scope, nonce, code_challenge, code_challenge_method, audience,
                     auth_time, amr, acr, created_at, expires_at, consumed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?
            .execute(params![
                code.hash.0,
                code.client_id,
                code.user_id,
                code.session_id,
                code.grant_id,
                code.redirect_uri,
                code.scope,
                code.nonce,
                code.code_challenge,
                code.code_challenge_method,
                audience,
                code.auth_time.0,
                amr,
                code.acr,
                code.created_at.0,
                code.expires_at.0,
                code.consumed_at.map(|t| t.0),
            ])
            .map(|_| ())
        })
        .await
    }

    #[tracing::instrument(name = "db.authorization_codes.find_by_hash", skip_all)]
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<AuthorizationCode>, RepositoryError> {
        let hash = hash.0;
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT hash, client_id, user_id, session_id, grant_id, redirect_uri, scope, nonce,
                        code_challenge, code_challenge_method, audience, auth_time, amr, acr,
                        created_at, expires_at, consumed_at
                 FROM authorization_codes WHERE hash = ?1",
            )?
            .query_row([hash], CodeRow::read)
            .optional()
        })
        .await?
        .map(CodeRow::decode)
        .transpose()
    }

    #[tracing::instrument(name = "db.authorization_codes.consume", skip_all)]
    async fn consume(&self, hash: &TokenHash, now: Timestamp) -> Result<bool, RepositoryError> {
        let hash = hash.0;
        // One conditional update on the single writer: of concurrent callers, only the first to
        // run finds `consumed_at IS NULL`.
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "UPDATE authorization_codes SET consumed_at = ?2 WHERE hash = ?1 AND consumed_at IS NULL",
            )?
            .execute(params![hash, now.0])
            .map(|changed| changed == 1)
        })
        .await
    }

    #[tracing::instrument(name = "db.authorization_codes.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "DELETE FROM authorization_codes WHERE rowid IN (
                     SELECT rowid FROM authorization_codes WHERE expires_at < ?1 LIMIT ?2)",
            )?
            .execute(params![now.0, limit])
            .map(|deleted| deleted as u64)
        })
        .await
    }
}

/// The `grants` columns [`GrantRow::read`] reads, in order (a macro, so statements stay literals).
macro_rules! grant_columns {
    () => {
        "id, user_id, client_id, scope, kind, session_id, created_at, last_used_at, expires_at, revoked_at, \
         revocation_reason"
    };
}

/// A grant by id (also read by `find_with_context`).
pub(crate) const GRANT_BY_ID: &str = concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = ?1");

/// The first page of a client's grants, newest first: ?1 the client, ?2 the page size.
const GRANTS_BY_CLIENT: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE client_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
);

/// A further page of a client's grants: those strictly before (?3 `created_at`, ?4 `id`), the last
/// row of the previous page. A row-value comparison, so it is one range of the
/// `grants_client_id` index (client_id, created_at, id), walked backwards.
const GRANTS_BY_CLIENT_BEFORE: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE client_id = ?1 AND (created_at, id) < (?3, ?4)
      ORDER BY created_at DESC, id DESC LIMIT ?2"
);

/// A `grants` row as read, before its kind is decoded.
pub(crate) struct GrantRow {
    id: String,
    pub(crate) user_id: String,
    client_id: String,
    scope: String,
    kind: String,
    pub(crate) session_id: Option<String>,
    created_at: i64,
    last_used_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
}

impl GrantRow {
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            user_id: row.get(1)?,
            client_id: row.get(2)?,
            scope: row.get(3)?,
            kind: row.get(4)?,
            session_id: row.get(5)?,
            created_at: row.get(6)?,
            last_used_at: row.get(7)?,
            expires_at: row.get(8)?,
            revoked_at: row.get(9)?,
            revocation_reason: row.get(10)?,
        })
    }

    pub(crate) fn decode(self) -> Result<Grant, RepositoryError> {
        Ok(Grant {
            kind: GrantKind::parse(&self.kind).ok_or_else(|| inconsistent("grants", "kind", &self.id))?,
            id: self.id,
            user_id: self.user_id,
            client_id: self.client_id,
            scope: self.scope,
            session_id: self.session_id,
            created_at: Timestamp(self.created_at),
            last_used_at: Timestamp(self.last_used_at),
            expires_at: self.expires_at.map(Timestamp),
            revoked_at: self.revoked_at.map(Timestamp),
            revocation_reason: self.revocation_reason,
        })
    }
}

#[async_trait]
impl GrantRepository for SqliteStorage {
    #[tracing::instrument(name = "db.grants.add", skip_all)]
    async fn add(&self, grant: &Grant) -> Result<(), RepositoryError> {
        let grant = grant.clone();
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "INSERT INTO grants (id, user_id, client_id, scope, kind, session_id, created_at,
                                     last_used_at, expires_at, revoked_at, revocation_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                grant.id,
                grant.user_id,
                grant.client_id,
                grant.scope,
                grant.kind.as_str(),
                grant.session_id,
                grant.created_at.0,
                grant.last_used_at.0,
                grant.expires_at.map(|t| t.0),
                grant.revoked_at.map(|t| t.0),
                grant.revocation_reason,
            ])
            .map(|_| ())
        })
        .await
    }

    #[tracing::instrument(name = "db.grants.lookup", skip_all)]
    async fn lookup(&self, grant_id: &str) -> Result<Option<Grant>, RepositoryError> {
        let id = grant_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(GRANT_BY_ID)?
                .query_row([id], GrantRow::read)
                .optional()
        })
        .await?
        .map(GrantRow::decode)
        .transpose()
    }

    #[tracing::instrument(name = "db.grants.revoke", skip_all)]
    async fn revoke(&self, grant_id: &str, now: Timestamp, reason: &str) -> Result<bool, RepositoryError> {
        let (id, reason) = (grant_id.to_owned(), reason.to_owned());
        // One command = one savepoint: the revocation and the token deletion commit together.
        self.write_sql(move |conn| {
            let revoked = conn
                .prepare_cached(
                    "UPDATE grants SET revoked_at = ?2, revocation_reason = ?3
                     WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, now.0, reason])?
                == 1;
            // Unconditionally: a token stored after an earlier revocation must not outlive it.
            conn.prepare_cached("DELETE FROM access_tokens WHERE grant_id = ?1")?
                .execute([&id])?;
            Ok(revoked)
        })
        .await
    }

    #[tracing::instrument(name = "db.grants.revoke_online_for_session", skip_all)]
    async fn revoke_online_for_session(
        &self,
        session_id: &str,
        now: Timestamp,
        reason: &str,
    ) -> Result<u64, RepositoryError> {
        let (session, reason) = (session_id.to_owned(), reason.to_owned());
        let online = GrantKind::Online.as_str();
        // Tokens of the session's online grants revoked earlier go too, as in `revoke`.
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "DELETE FROM access_tokens WHERE grant_id IN (
                     SELECT id FROM grants WHERE session_id = ?1 AND kind = ?2)",
            )?
            .execute(params![session, online])?;
            conn.prepare_cached(
                "UPDATE grants SET revoked_at = ?3, revocation_reason = ?4
                 WHERE session_id = ?1 AND kind = ?2 AND revoked_at IS NULL",
            )?
            .execute(params![session, online, now.0, reason])
            .map(|revoked| revoked as u64)
        })
        .await
    }

    #[tracing::instrument(name = "db.grants.revoke_for_user", skip_all)]
    async fn revoke_for_user(
        &self,
        user_id: &str,
        only_online: bool,
        now: Timestamp,
        reason: &str,
    ) -> Result<u64, RepositoryError> {
        let (user, reason) = (user_id.to_owned(), reason.to_owned());
        let online = GrantKind::Online.as_str();
        // As in `revoke_online_for_session`: tokens of matching grants revoked earlier go too.
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "DELETE FROM access_tokens WHERE grant_id IN (
                     SELECT id FROM grants WHERE user_id = ?1 AND (NOT ?2 OR kind = ?3))",
            )?
            .execute(params![user, only_online, online])?;
            conn.prepare_cached(
                "UPDATE grants SET revoked_at = ?4, revocation_reason = ?5
                 WHERE user_id = ?1 AND (NOT ?2 OR kind = ?3) AND revoked_at IS NULL",
            )?
            .execute(params![user, only_online, online, now.0, reason])
            .map(|revoked| revoked as u64)
        })
        .await
    }

    #[tracing::instrument(name = "db.grants.enforce_limit", skip_all)]
    async fn enforce_limit(
        &self,
        user_id: &str,
        client_id: &str,
        max_active: u32,
        now: Timestamp,
    ) -> Result<u64, RepositoryError> {
        let (user, client) = (user_id.to_owned(), client_id.to_owned());
        // One command, so the single writer sees the same unrevoked grants in both statements:
        // every one after the newest `max_active` (by last use, then creation, then id).
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "DELETE FROM access_tokens WHERE grant_id IN (
                     SELECT id FROM grants
                     WHERE user_id = ?1 AND client_id = ?2 AND revoked_at IS NULL
                     ORDER BY last_used_at DESC, created_at DESC, id DESC
                     LIMIT -1 OFFSET ?3)",
            )?
            .execute(params![user, client, max_active])?;
            conn.prepare_cached(
                "UPDATE grants SET revoked_at = ?4, revocation_reason = ?5
                 WHERE id IN (
                     SELECT id FROM grants
                     WHERE user_id = ?1 AND client_id = ?2 AND revoked_at IS NULL
                     ORDER BY last_used_at DESC, created_at DESC, id DESC
                     LIMIT -1 OFFSET ?3)",
            )?
            .execute(params![user, client, max_active, now.0, GRANT_LIMIT])
            .map(|revoked| revoked as u64)
        })
        .await
    }

    #[tracing::instrument(name = "db.grants.list_by_user", skip_all)]
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<Grant>, RepositoryError> {
        let user = user_id.to_owned();
        self.read_blocking(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                grant_columns!(),
                " FROM grants WHERE user_id = ?1 ORDER BY created_at DESC, id DESC"
            ))?
            .query_map([user], GrantRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(GrantRow::decode)
        .collect()
    }

    #[tracing::instrument(name = "db.grants.list_by_client", skip_all)]
    async fn list_by_client(&self, client_id: &str, page: &Page) -> Result<Vec<Grant>, RepositoryError> {
        let (client, limit, before) = (client_id.to_owned(), page.limit, page.before.clone());
        self.read_blocking(move |conn| match before {
            None => conn
                .prepare_cached(GRANTS_BY_CLIENT)?
                .query_map(params![client, limit], GrantRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            Some((created_at, id)) => conn
                .prepare_cached(GRANTS_BY_CLIENT_BEFORE)?
                .query_map(params![client, limit, created_at.0, id], GrantRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>(),
        })
        .await?
        .into_iter()
        .map(GrantRow::decode)
        .collect()
    }
    #[tracing::instrument(name = "db.grants.cleanup_ended", skip_all)]
    async fn cleanup_ended(&self, before: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        // Two index ranges (revoked, expired); a grant in both is deleted once.
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "DELETE FROM grants WHERE rowid IN (
                     SELECT rowid FROM grants WHERE revoked_at < ?1
                     UNION
                     SELECT rowid FROM grants WHERE expires_at < ?1
                     LIMIT ?2)",
            )?
            .execute(params![before.0, limit])
            .map(|deleted| deleted as u64)
        })
        .await
    }
}
