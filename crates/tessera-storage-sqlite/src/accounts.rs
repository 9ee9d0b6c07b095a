//! Users, SSO sessions and remembered consent over [`SqliteStorage`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use tessera_core::{SsoSession, Timestamp, TokenHash, User};
use tessera_storage::{ConsentRepository, RepositoryError, SessionRepository, UserRepository};

use crate::error::{decode_hash, decode_json, encode_json};
use crate::SqliteStorage;

/// A `users` row as read, before its JSON is decoded.
pub(crate) struct UserRow {
    id: String,
    username: String,
    password_hash: Option<String>,
    claims: String,
    is_disabled: bool,
    password_changed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// The `users` columns [`UserRow::read`] reads, in order (a macro, so statements stay literals).
macro_rules! user_columns {
    () => {
        "id, username, password_hash, claims, is_disabled, password_changed_at, created_at, updated_at"
    };
}

/// A user by id (also read by `find_with_context`).
pub(crate) const USER_BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1");
const USER_BY_USERNAME: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?1");

impl UserRow {
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            username: row.get(1)?,
            password_hash: row.get(2)?,
            claims: row.get(3)?,
            is_disabled: row.get(4)?,
            password_changed_at: row.get(5)?,
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
        })
    }

    pub(crate) fn decode(self) -> Result<User, RepositoryError> {
        Ok(User {
            claims: decode_json(&self.claims, "users", "claims", &self.id)?,
            id: self.id,
            username: self.username,
            password_hash: self.password_hash,
            is_disabled: self.is_disabled,
            password_changed_at: self.password_changed_at.map(Timestamp),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

impl SqliteStorage {
    /// The user `sql` ([`USER_BY_ID`] or [`USER_BY_USERNAME`]) finds for `key`.
    async fn user_where(&self, sql: &'static str, key: String) -> Result<Option<User>, RepositoryError> {
        self.read(move |conn| conn.prepare_cached(sql)?.query_row([key], UserRow::read).optional())
            .await?
            .map(UserRow::decode)
            .transpose()
    }
}

#[async_trait]
impl UserRepository for SqliteStorage {
    #[tracing::instrument(name = "db.users.add", skip_all)]
    async fn add(&self, user: &User) -> Result<(), RepositoryError> {
        let claims = encode_json(&user.claims)?;
        let user = user.clone();
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "INSERT INTO users (id, username, password_hash, claims, is_disabled,
                                    password_changed_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                user.id,
                user.username,
                user.password_hash,
                claims,
                user.is_disabled,
                user.password_changed_at.map(|t| t.0),
                user.created_at.0,
                user.updated_at.0,
            ])
            .map(|_| ())
        })
        .await
    }

    #[tracing::instrument(name = "db.users.lookup", skip_all)]
    async fn lookup(&self, user_id: &str) -> Result<Option<User>, RepositoryError> {
        self.user_where(USER_BY_ID, user_id.to_owned()).await
    }

    #[tracing::instrument(name = "db.users.find_by_username", skip_all)]
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, RepositoryError> {
        self.user_where(USER_BY_USERNAME, username.to_owned()).await
    }

    #[tracing::instrument(name = "db.users.list", skip_all)]
    async fn list(&self) -> Result<Vec<User>, RepositoryError> {
        self.read_blocking(|conn| {
            conn.prepare_cached(concat!("SELECT ", user_columns!(), " FROM users ORDER BY username"))?
                .query_map([], UserRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(UserRow::decode)
        .collect()
    }

    #[tracing::instrument(name = "db.users.list_page", skip_all)]
    async fn list_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, RepositoryError> {
        let after = after.unwrap_or_default().to_owned();
        self.read_blocking(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE username > ?1 ORDER BY username LIMIT ?2"
            ))?
            .query_map(params![after, limit], UserRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(UserRow::decode)
        .collect()
    }

    #[tracing::instrument(name = "db.users.update", skip_all)]
    async fn update(&self, user: &User) -> Result<bool, RepositoryError> {
        let claims = encode_json(&user.claims)?;
        let user = user.clone();
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "UPDATE users SET username = ?2, password_hash = ?3, claims = ?4, is_disabled = ?5,
                                  password_changed_at = ?6, updated_at = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                user.id,
                user.username,
                user.password_hash,
                claims,
                user.is_disabled,
                user.password_changed_at.map(|t| t.0),
                user.updated_at.0,
            ])
            .map(|changed| changed == 1)
        })
        .await
    }

    #[tracing::instrument(name = "db.users.remove", skip_all)]
    async fn remove(&self, user_id: &str) -> Result<bool, RepositoryError> {
        let id = user_id.to_owned();
        self.write_sql(move |conn| {
            conn.prepare_cached("DELETE FROM users WHERE id = ?1")?
                .execute([id])
                .map(|changed| changed == 1)
        })
        .await
    }
}

/// An `sso_sessions` row as read, before its hash and JSON are decoded.
pub(crate) struct SessionRow {
    id: String,
    token_hash: Vec<u8>,
    user_id: String,
    auth_time: i64,
    amr: String,
    acr: Option<String>,
    last_active_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
}

/// The `sso_sessions` columns [`SessionRow::read`] reads, in order.
macro_rules! session_columns {
    () => {
        "id, token_hash, user_id, auth_time, amr, acr, last_active_at, expires_at, ended_at"
    };
}

/// A session by id (also read by `find_with_context`).
pub(crate) const SESSION_BY_ID: &str = concat!("SELECT ", session_columns!(), " FROM sso_sessions WHERE id = ?1");

/// A user's sessions, newest `auth_time` first (ties by id, so the order is stable).
const SESSIONS_BY_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sso_sessions WHERE user_id = ?1 ORDER BY auth_time DESC, id DESC"
);

impl SessionRow {
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            token_hash: row.get(1)?,
            user_id: row.get(2)?,
            auth_time: row.get(3)?,
            amr: row.get(4)?,
            acr: row.get(5)?,
            last_active_at: row.get(6)?,
            expires_at: row.get(7)?,
            ended_at: row.get(8)?,
        })
    }

    pub(crate) fn decode(self) -> Result<SsoSession, RepositoryError> {
        Ok(SsoSession {
            token_hash: decode_hash(self.token_hash, "sso_sessions", "token_hash", &self.id)?,
            amr: decode_json(&self.amr, "sso_sessions", "amr", &self.id)?,
            id: self.id,
            user_id: self.user_id,
            auth_time: Timestamp(self.auth_time),
            acr: self.acr,
            last_active_at: Timestamp(self.last_active_at),
            expires_at: Timestamp(self.expires_at),
            ended_at: self.ended_at.map(Timestamp),
        })
    }
}

#[async_trait]
impl SessionRepository for SqliteStorage {
    #[tracing::instrument(name = "db.sso_sessions.add", skip_all)]
    async fn add(&self, session: &SsoSession) -> Result<(), RepositoryError> {
        let amr = encode_json(&session.amr)?;
        let session = session.clone();
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "INSERT INTO sso_sessions (id, token_hash, user_id, auth_time, amr, acr,
                                           last_active_at, expires_at, ended_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                session.id,
                session.token_hash.0,
                session.user_id,
                session.auth_time.0,
                amr,
                session.acr,
                session.last_active_at.0,
                session.expires_at.0,
                session.ended_at.map(|t| t.0),
            ])
            .map(|_| ())
        })
        .await
    }

    #[tracing::instrument(name = "db.sso_sessions.lookup", skip_all)]
    async fn lookup(&self, session_id: &str) -> Result<Option<SsoSession>, RepositoryError> {
        let id = session_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(SESSION_BY_ID)?
                .query_row([id], SessionRow::read)
                .optional()
        })
        .await?
        .map(SessionRow::decode)
        .transpose()
    }

    #[tracing::instrument(name = "db.sso_sessions.find_by_token_hash", skip_all)]
    async fn find_by_token_hash(&self, token_hash: &TokenHash) -> Result<Option<SsoSession>, RepositoryError> {
        let hash = token_hash.0;
        self.read(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sso_sessions WHERE token_hash = ?1"
            ))?
            .query_row([hash], SessionRow::read)
            .optional()
        })
        .await?
        .map(SessionRow::decode)
        .transpose()
    }

    #[tracing::instrument(name = "db.sso_sessions.touch", skip_all)]
    async fn touch(&self, session_id: &str, now: Timestamp) -> Result<bool, RepositoryError> {
        let id = session_id.to_owned();
        // SQLite counts every row the WHERE matched as changed, even when MAX keeps the old value:
        // the result says "exists and not ended", the timestamp only ever moves forward.
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "UPDATE sso_sessions SET last_active_at = MAX(last_active_at, ?2)
                 WHERE id = ?1 AND ended_at IS NULL",
            )?
            .execute(params![id, now.0])
            .map(|changed| changed == 1)
        })
        .await
    }

    #[tracing::instrument(name = "db.sso_sessions.end", skip_all)]
    async fn end(&self, session_id: &str, now: Timestamp) -> Result<bool, RepositoryError> {
        let id = session_id.to_owned();
        self.write_sql(move |conn| {
            conn.prepare_cached("UPDATE sso_sessions SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL")?
                .execute(params![id, now.0])
                .map(|changed| changed == 1)
        })
        .await
    }

    #[tracing::instrument(name = "db.sso_sessions.list_by_user", skip_all)]
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SsoSession>, RepositoryError> {
        let user = user_id.to_owned();
        self.read_blocking(move |conn| {
            conn.prepare_cached(SESSIONS_BY_USER)?
                .query_map([user], SessionRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(SessionRow::decode)
        .collect()
    }

    #[tracing::instrument(name = "db.sessions.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, before: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "DELETE FROM sso_sessions WHERE rowid IN (
                     SELECT rowid FROM sso_sessions WHERE expires_at < ?1 LIMIT ?2)",
            )?
            .execute(params![before.0, limit])
            .map(|deleted| deleted as u64)
        })
        .await
    }
}

/// The id used in [`RepositoryError::Inconsistent`] for a consent row.
fn consent_id(user_id: &str, client_id: &str) -> String {
    format!("{user_id}/{client_id}")
}

#[async_trait]
impl ConsentRepository for SqliteStorage {
    #[tracing::instrument(name = "db.consents.find", skip_all)]
    async fn find(&self, user_id: &str, client_id: &str) -> Result<Vec<String>, RepositoryError> {
        let (user, client) = (user_id.to_owned(), client_id.to_owned());
        let stored = self
            .read(move |conn| {
                conn.prepare_cached("SELECT scopes FROM consents WHERE user_id = ?1 AND client_id = ?2")?
                    .query_row([user, client], |row| row.get::<_, String>(0))
                    .optional()
            })
            .await?;
        match stored {
            None => Ok(Vec::new()),
            Some(text) => {
                let scopes: BTreeSet<String> =
                    decode_json(&text, "consents", "scopes", &consent_id(user_id, client_id))?;
                Ok(scopes.into_iter().collect())
            }
        }
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
        let (user, client) = (user_id.to_owned(), client_id.to_owned());
        let added: BTreeSet<String> = scopes.iter().cloned().collect();
        // Read, merge and write in one command: the writer holds the write lock (BEGIN IMMEDIATE)
        // for the whole batch, so no other grant can slip in between.
        self.write(move |conn| {
            let stored: Option<String> = conn
                .prepare_cached("SELECT scopes FROM consents WHERE user_id = ?1 AND client_id = ?2")
                .and_then(|mut statement| statement.query_row([&user, &client], |row| row.get(0)).optional())
                .map_err(crate::error::map_err)?;
            let mut merged: BTreeSet<String> = match stored {
                Some(text) => decode_json(&text, "consents", "scopes", &consent_id(&user, &client))?,
                None => BTreeSet::new(),
            };
            merged.extend(added);
            let merged = encode_json(&merged)?;
            conn.prepare_cached(
                "INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id, client_id)
                 DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
            )
            .and_then(|mut statement| statement.execute(params![user, client, merged, now.0]))
            .map(|_| ())
            .map_err(crate::error::map_err)
        })
        .await
    }

    #[tracing::instrument(name = "db.consents.revoke", skip_all)]
    async fn revoke(&self, user_id: &str, client_id: &str) -> Result<bool, RepositoryError> {
        let (user, client) = (user_id.to_owned(), client_id.to_owned());
        self.write_sql(move |conn| {
            conn.prepare_cached("DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2")?
                .execute([user, client])
                .map(|changed| changed == 1)
        })
        .await
    }
}
