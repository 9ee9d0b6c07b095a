//! Users, SSO sessions and remembered consent over [`PostgresStorage`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use tessera_core::{SsoSession, Timestamp, TokenHash, User};
use tessera_storage::{ConsentRepository, RepositoryError, SessionRepository, UserRepository};
use tokio_postgres::Row;

use crate::columns::{count, session_columns, user_columns};
use crate::error::{column, decode_hash, decode_json, encode_json};
use crate::PostgresStorage;

/// Decodes a user from the columns of `row` starting at `at`, in the order of `user_columns!`.
pub(crate) fn decode_user(row: &Row, at: usize) -> Result<User, RepositoryError> {
    let id: String = column(row, at)?;
    let claims: String = column(row, at + 3)?;
    Ok(User {
        claims: decode_json(&claims, "users", "claims", &id)?,
        username: column(row, at + 1)?,
        password_hash: column(row, at + 2)?,
        is_disabled: column(row, at + 4)?,
        password_changed_at: column::<Option<i64>>(row, at + 5)?.map(Timestamp),
        created_at: Timestamp(column(row, at + 6)?),
        updated_at: Timestamp(column(row, at + 7)?),
        id,
    })
}

#[async_trait]
impl UserRepository for PostgresStorage {
    #[tracing::instrument(name = "db.users.add", skip_all)]
    async fn add(&self, user: &User) -> Result<(), RepositoryError> {
        let claims = encode_json(&user.claims)?;
        self.execute(
            "INSERT INTO users (id, username, password_hash, claims, is_disabled, password_changed_at,
                                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &user.id,
                &user.username,
                &user.password_hash,
                &claims,
                &user.is_disabled,
                &user.password_changed_at.map(|t| t.0),
                &user.created_at.0,
                &user.updated_at.0,
            ],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.users.lookup", skip_all)]
    async fn lookup(&self, user_id: &str) -> Result<Option<User>, RepositoryError> {
        self.query_opt(
            concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
            &[&user_id],
        )
        .await?
        .as_ref()
        .map(|row| decode_user(row, 0))
        .transpose()
    }

    #[tracing::instrument(name = "db.users.find_by_username", skip_all)]
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, RepositoryError> {
        self.query_opt(
            concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1"),
            &[&username],
        )
        .await?
        .as_ref()
        .map(|row| decode_user(row, 0))
        .transpose()
    }

    #[tracing::instrument(name = "db.users.list", skip_all)]
    async fn list(&self) -> Result<Vec<User>, RepositoryError> {
        // Byte order whatever the database's collation, like SQLite's BINARY.
        self.query(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users ORDER BY username COLLATE \"C\""
            ),
            &[],
        )
        .await?
        .iter()
        .map(|row| decode_user(row, 0))
        .collect()
    }

    #[tracing::instrument(name = "db.users.list_page", skip_all)]
    async fn list_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, RepositoryError> {
        // The database's collation for both the order and the cursor, so the unique index on
        // username serves the page (no sort of the whole table).
        self.query(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE username > $1 ORDER BY username LIMIT $2"
            ),
            &[&after.unwrap_or_default(), &i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| decode_user(row, 0))
        .collect()
    }

    #[tracing::instrument(name = "db.users.update", skip_all)]
    async fn update(&self, user: &User) -> Result<bool, RepositoryError> {
        let claims = encode_json(&user.claims)?;
        self.execute(
            "UPDATE users SET username = $2, password_hash = $3, claims = $4, is_disabled = $5,
                              password_changed_at = $6, updated_at = $7
             WHERE id = $1",
            &[
                &user.id,
                &user.username,
                &user.password_hash,
                &claims,
                &user.is_disabled,
                &user.password_changed_at.map(|t| t.0),
                &user.updated_at.0,
            ],
        )
        .await
        .map(|changed| changed == 1)
    }

    #[tracing::instrument(name = "db.users.remove", skip_all)]
    async fn remove(&self, user_id: &str) -> Result<bool, RepositoryError> {
        self.execute("DELETE FROM users WHERE id = $1", &[&user_id])
            .await
            .map(|changed| changed == 1)
    }
}

/// The columns [`decode_session`] reads.
pub(crate) const SESSION_COLUMNS: usize = count(session_columns!());

/// Decodes a session from the [`SESSION_COLUMNS`] columns of `row` starting at `at`, in the order
/// of `session_columns!`.
pub(crate) fn decode_session(row: &Row, at: usize) -> Result<SsoSession, RepositoryError> {
    let id: String = column(row, at)?;
    let amr: String = column(row, at + 4)?;
    Ok(SsoSession {
        token_hash: decode_hash(column(row, at + 1)?, "sso_sessions", "token_hash", &id)?,
        amr: decode_json(&amr, "sso_sessions", "amr", &id)?,
        user_id: column(row, at + 2)?,
        auth_time: Timestamp(column(row, at + 3)?),
        acr: column(row, at + 5)?,
        last_active_at: Timestamp(column(row, at + 6)?),
        expires_at: Timestamp(column(row, at + 7)?),
        ended_at: column::<Option<i64>>(row, at + 8)?.map(Timestamp),
        id,
    })
}

#[async_trait]
impl SessionRepository for PostgresStorage {
    #[tracing::instrument(name = "db.sso_sessions.add", skip_all)]
    async fn add(&self, session: &SsoSession) -> Result<(), RepositoryError> {
        let amr = encode_json(&session.amr)?;
        self.execute(
            "INSERT INTO sso_sessions (id, token_hash, user_id, auth_time, amr, acr, last_active_at,
                                       expires_at, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &session.id,
                &&session.token_hash.0[..],
                &session.user_id,
                &session.auth_time.0,
                &amr,
                &session.acr,
                &session.last_active_at.0,
                &session.expires_at.0,
                &session.ended_at.map(|t| t.0),
            ],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.sso_sessions.lookup", skip_all)]
    async fn lookup(&self, session_id: &str) -> Result<Option<SsoSession>, RepositoryError> {
        self.query_opt(
            concat!("SELECT ", session_columns!(), " FROM sso_sessions WHERE id = $1"),
            &[&session_id],
        )
        .await?
        .as_ref()
        .map(|row| decode_session(row, 0))
        .transpose()
    }

    #[tracing::instrument(name = "db.sso_sessions.find_by_token_hash", skip_all)]
    async fn find_by_token_hash(&self, token_hash: &TokenHash) -> Result<Option<SsoSession>, RepositoryError> {
        self.query_opt(
            concat!(
                "SELECT ",
                session_columns!(),
                " FROM sso_sessions WHERE token_hash = $1"
            ),
            &[&&token_hash.0[..]],
        )
        .await?
        .as_ref()
        .map(|row| decode_session(row, 0))
        .transpose()
    }

    #[tracing::instrument(name = "db.sso_sessions.touch", skip_all)]
    async fn touch(&self, session_id: &str, now: Timestamp) -> Result<bool, RepositoryError> {
        // The row count says "exists and not ended"; GREATEST keeps the timestamp from moving back.
        self.execute(
            "UPDATE sso_sessions SET last_active_at = GREATEST(last_active_at, $2)
             WHERE id = $1 AND ended_at IS NULL",
            &[&session_id, &now.0],
        )
        .await
        .map(|changed| changed == 1)
    }

    #[tracing::instrument(name = "db.sso_sessions.end", skip_all)]
    async fn end(&self, session_id: &str, now: Timestamp) -> Result<bool, RepositoryError> {
        self.execute(
            "UPDATE sso_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
            &[&session_id, &now.0],
        )
        .await
        .map(|changed| changed == 1)
    }

    #[tracing::instrument(name = "db.sso_sessions.list_by_user", skip_all)]
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SsoSession>, RepositoryError> {
        // Ties in `auth_time` by id in byte order, as SQLite does, so the order is stable.
        self.query(
            concat!(
                "SELECT ",
                session_columns!(),
                " FROM sso_sessions WHERE user_id = $1 ORDER BY auth_time DESC, id COLLATE \"C\" DESC"
            ),
            &[&user_id],
        )
        .await?
        .iter()
        .map(|row| decode_session(row, 0))
        .collect()
    }

    #[tracing::instrument(name = "db.sessions.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, before: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        self.execute(
            "DELETE FROM sso_sessions WHERE id IN (
                 SELECT id FROM sso_sessions WHERE expires_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&before.0, &i64::from(limit)],
        )
        .await
    }
}

#[async_trait]
impl ConsentRepository for PostgresStorage {
    #[tracing::instrument(name = "db.consents.find", skip_all)]
    async fn find(&self, user_id: &str, client_id: &str) -> Result<Vec<String>, RepositoryError> {
        let Some(row) = self
            .query_opt(
                "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2",
                &[&user_id, &client_id],
            )
            .await?
        else {
            return Ok(Vec::new());
        };
        let text: String = column(&row, 0)?;
        let id = format!("{user_id}/{client_id}");
        let scopes: BTreeSet<String> = decode_json(&text, "consents", "scopes", &id)?;
        Ok(scopes.into_iter().collect())
    }

    #[tracing::instrument(name = "db.consents.grant", skip_all)]
    async fn grant(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), RepositoryError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let added = encode_json(&scopes.iter().collect::<BTreeSet<_>>())?;
        // One statement merges under the row lock, so concurrent grants (on any node) all land.
        self.execute(
            "INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, client_id) DO UPDATE SET
                 scopes = (SELECT COALESCE(json_agg(scope ORDER BY scope COLLATE \"C\")::text, '[]')
                           FROM (SELECT json_array_elements_text(consents.scopes::json) AS scope
                                 UNION
                                 SELECT json_array_elements_text(EXCLUDED.scopes::json)) AS merged),
                 updated_at = EXCLUDED.updated_at",
            &[&user_id, &client_id, &added, &now.0],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.consents.revoke", skip_all)]
    async fn revoke(&self, user_id: &str, client_id: &str) -> Result<bool, RepositoryError> {
        self.execute(
            "DELETE FROM consents WHERE user_id = $1 AND client_id = $2",
            &[&user_id, &client_id],
        )
        .await
        .map(|changed| changed == 1)
    }
}
