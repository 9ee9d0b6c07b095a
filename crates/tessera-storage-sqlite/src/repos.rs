//! The repository traits over [`SqliteStorage`]: reads on the pool, writes on the writer thread.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use tessera_core::keys::SigningKeyRecord;
use tessera_core::{Client, Timestamp, TokenHash};
use tessera_storage::{
    AccessTokenRecord, AccessTokenRepository, ClientAssertionRepository, ClientRepository, RepositoryError,
    SigningKeyRepository,
};
use tessera_types::JwsAlgorithm;

use crate::error::{decode_hash, decode_json, encode_json, inconsistent};
use crate::SqliteStorage;

/// Expired `jti` rows deleted, at most, by each `register_jti`.
const JTI_CLEANUP_BATCH: i64 = 100;

type ClientRow = (String, Option<Vec<u8>>, String, i64, i64);

fn client_row(row: &Row<'_>) -> rusqlite::Result<ClientRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn decode_client((id, secret_hash, settings, created_at, updated_at): ClientRow) -> Result<Client, RepositoryError> {
    Ok(Client {
        secret_hash: secret_hash
            .map(|hash| decode_hash(hash, "clients", "secret_hash", &id))
            .transpose()?,
        settings: decode_json(&settings, "clients", "settings", &id)?,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
        id,
    })
}

#[async_trait]
impl ClientRepository for SqliteStorage {
    #[tracing::instrument(name = "db.clients.add", skip_all)]
    async fn add(&self, client: &Client) -> Result<(), RepositoryError> {
        let settings = encode_json(&client.settings)?;
        let (id, secret_hash) = (client.id.clone(), client.secret_hash.map(|h| h.0));
        let (created_at, updated_at) = (client.created_at.0, client.updated_at.0);
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "INSERT INTO clients (client_id, secret_hash, settings, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, secret_hash, settings, created_at, updated_at])
            .map(|_| ())
        })
        .await
    }

    #[tracing::instrument(name = "db.clients.lookup", skip_all)]
    async fn lookup(&self, client_id: &str) -> Result<Option<Client>, RepositoryError> {
        let id = client_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT client_id, secret_hash, settings, created_at, updated_at
                 FROM clients WHERE client_id = ?1",
            )?
            .query_row([id], client_row)
            .optional()
        })
        .await?
        .map(decode_client)
        .transpose()
    }

    #[tracing::instrument(name = "db.clients.list", skip_all)]
    async fn list(&self) -> Result<Vec<Client>, RepositoryError> {
        self.read_blocking(|conn| {
            conn.prepare_cached(
                "SELECT client_id, secret_hash, settings, created_at, updated_at
                 FROM clients ORDER BY client_id",
            )?
            .query_map([], client_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(decode_client)
        .collect()
    }

    #[tracing::instrument(name = "db.clients.update", skip_all)]
    async fn update(&self, client: &Client) -> Result<bool, RepositoryError> {
        let settings = encode_json(&client.settings)?;
        let (id, secret_hash, updated_at) = (client.id.clone(), client.secret_hash.map(|h| h.0), client.updated_at.0);
        self.write_sql(move |conn| {
            conn.prepare_cached(
                "UPDATE clients SET secret_hash = ?2, settings = ?3, updated_at = ?4
                 WHERE client_id = ?1",
            )?
            .execute(params![id, secret_hash, settings, updated_at])
            .map(|changed| changed == 1)
        })
        .await
    }

    #[tracing::instrument(name = "db.clients.remove", skip_all)]
    async fn remove(&self, client_id: &str) -> Result<bool, RepositoryError> {
        let id = client_id.to_owned();
        self.write_sql(move |conn| {
            conn.prepare_cached("DELETE FROM clients WHERE client_id = ?1")?
                .execute([id])
                .map(|changed| changed == 1)
        })
        .await
    }
}

type KeyRow = (String, String, String, Vec<u8>, i64, i64, Option<i64>);

fn decode_key(
    (kid, algorithm, public_jwk, encrypted_private_key, created_at, activates_at, retires_at): KeyRow,
) -> Result<SigningKeyRecord, RepositoryError> {
    Ok(SigningKeyRecord {
        algorithm: JwsAlgorithm::parse(&algorithm).ok_or_else(|| inconsistent("signing_keys", "algorithm", &kid))?,
        kid,
        public_jwk,
        encrypted_private_key,
        created_at: Timestamp(created_at),
        activates_at: Timestamp(activates_at),
        retires_at: retires_at.map(Timestamp),
    })
}

#[async_trait]
impl SigningKeyRepository for SqliteStorage {
    #[tracing::instrument(name = "db.signing_keys.list", skip_all)]
    async fn list(&self) -> Result<Vec<SigningKeyRecord>, RepositoryError> {
        self.read_blocking(|conn| {
            conn.prepare_cached(
                "SELECT kid, algorithm, public_jwk, encrypted_private_key, created_at,
                        activates_at, retires_at
                 FROM signing_keys ORDER BY created_at, kid",
            )?
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<KeyRow>>>()
        })
        .await?
        .into_iter()
        .map(decode_key)
        .collect()
    }

    #[tracing::instrument(name = "db.signing_keys.rotate", skip_all)]
    async fn rotate(&self, key: &SigningKeyRecord, retire_at: Option<Timestamp>) -> Result<(), RepositoryError> {
        let key = key.clone();
        // One command = one savepoint: the insert and the retirements commit together or not at all.
        self.write_sql(move |conn| {
            let algorithm = key.algorithm.as_str();
            conn.prepare_cached(
                "INSERT INTO signing_keys (kid, algorithm, public_jwk, encrypted_private_key,
                                           created_at, activates_at, retires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                key.kid,
                algorithm,
                key.public_jwk,
                key.encrypted_private_key,
                key.created_at.0,
                key.activates_at.0,
                key.retires_at.map(|t| t.0),
            ])?;
            if let Some(retire_at) = retire_at {
                conn.prepare_cached(
                    "UPDATE signing_keys SET retires_at = ?1
                     WHERE algorithm = ?2 AND kid <> ?3 AND retires_at IS NULL",
                )?
                .execute(params![retire_at.0, algorithm, key.kid])?;
            }
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "db.signing_keys.remove_retired", skip_all)]
    async fn remove_retired(&self, now: Timestamp) -> Result<u64, RepositoryError> {
        self.write_sql(move |conn| {
            conn.prepare_cached("DELETE FROM signing_keys WHERE retires_at IS NOT NULL AND retires_at <= ?1")?
                .execute([now.0])
                .map(|deleted| deleted as u64)
        })
        .await
    }
}

#[async_trait]
impl ClientAssertionRepository for SqliteStorage {
    #[tracing::instrument(name = "db.client_assertion_jtis.register", skip_all)]
    async fn register_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, RepositoryError> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        self.write_sql(move |conn| {
            // One statement decides: a new pair inserts, an expired pair is taken over, a live
            // pair changes nothing (0 rows) and is a replay.
            let fresh = conn
                .prepare_cached(
                    "INSERT INTO client_assertion_jtis (client_id, jti, expires_at)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE client_assertion_jtis.expires_at <= ?4",
                )?
                .execute(params![client_id, jti, expires_at.0, now.0])?
                == 1;
            // Opportunistic cleanup, bounded so no single call pays for a large backlog.
            conn.prepare_cached(
                "DELETE FROM client_assertion_jtis WHERE rowid IN (
                     SELECT rowid FROM client_assertion_jtis WHERE expires_at <= ?1 LIMIT ?2)",
            )?
            .execute(params![now.0, JTI_CLEANUP_BATCH])?;
            Ok(fresh)
        })
        .await
    }
}

/// An `access_tokens` row as read, before its hash and audiences are decoded.
struct TokenRow {
    hash: Vec<u8>,
    jti: String,
    client_id: String,
    subject: Option<String>,
    grant_id: Option<String>,
    scope: String,
    audience: String,
    issued_at: i64,
    expires_at: i64,
    act: Option<String>,
}

impl TokenRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            hash: row.get(0)?,
            jti: row.get(1)?,
            client_id: row.get(2)?,
            subject: row.get(3)?,
            grant_id: row.get(4)?,
            scope: row.get(5)?,
            audience: row.get(6)?,
            issued_at: row.get(7)?,
            expires_at: row.get(8)?,
            act: row.get(9)?,
        })
    }

    fn decode(self) -> Result<AccessTokenRecord, RepositoryError> {
        Ok(AccessTokenRecord {
            hash: decode_hash(self.hash, "access_tokens", "hash", &self.jti)?,
            audience: decode_json(&self.audience, "access_tokens", "audience", &self.jti)?,
            jti: self.jti,
            client_id: self.client_id,
            subject: self.subject,
            grant_id: self.grant_id,
            scope: self.scope,
            issued_at: Timestamp(self.issued_at),
            expires_at: Timestamp(self.expires_at),
            act: self.act,
        })
    }
}

#[async_trait]
impl AccessTokenRepository for SqliteStorage {
    #[tracing::instrument(name = "db.access_tokens.add", skip_all)]
    async fn add(&self, token: &AccessTokenRecord) -> Result<(), RepositoryError> {
        let audience = encode_json(&token.audience)?;
        let token = token.clone();
        self.write_sql(move |conn| insert_access_token(conn, &token, &audience))
            .await
    }

    #[tracing::instrument(name = "db.access_tokens.find_by_hash", skip_all)]
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<AccessTokenRecord>, RepositoryError> {
        let hash = hash.0;
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT hash, jti, client_id, subject, grant_id, scope, audience, issued_at, expires_at, act
                 FROM access_tokens WHERE hash = ?1",
            )?
            .query_row([hash], TokenRow::read)
            .optional()
        })
        .await?
        .map(TokenRow::decode)
        .transpose()
    }

    #[tracing::instrument(name = "db.access_tokens.remove", skip_all)]
    async fn remove(&self, hash: &TokenHash) -> Result<bool, RepositoryError> {
        let hash = hash.0;
        self.write_sql(move |conn| {
            conn.prepare_cached("DELETE FROM access_tokens WHERE hash = ?1")?
                .execute([hash])
                .map(|deleted| deleted == 1)
        })
        .await
    }

    #[tracing::instrument(name = "db.revoked_access_tokens.revoke", skip_all)]
    async fn revoke_jwt(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), RepositoryError> {
        let (jti, client_id) = (jti.to_owned(), client_id.to_owned());
        self.write_sql(move |conn| {
            // Revoking again changes nothing: the first revocation (and its time) stands.
            conn.prepare_cached(
                "INSERT INTO revoked_access_tokens (jti, client_id, expires_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (jti) DO NOTHING",
            )?
            .execute(params![jti, client_id, expires_at.0, now.0])
            .map(|_| ())
        })
        .await
    }

    #[tracing::instrument(name = "db.revoked_access_tokens.is_revoked", skip_all)]
    async fn is_jwt_revoked(&self, jti: &str) -> Result<bool, RepositoryError> {
        let jti = jti.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = ?1)")?
                .query_row([jti], |row| row.get(0))
        })
        .await
    }

    #[tracing::instrument(name = "db.access_tokens.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        // Two disjoint sets, each walked through its expiry index, `limit` rows in all: expired
        // opaque tokens first, then revoked jtis whose token has expired. One command, so one
        // savepoint.
        self.write_sql(move |conn| {
            let tokens = conn
                .prepare_cached(
                    "DELETE FROM access_tokens WHERE rowid IN (
                         SELECT rowid FROM access_tokens WHERE expires_at < ?1 LIMIT ?2)",
                )?
                .execute(params![now.0, limit])?;
            let remaining = i64::from(limit).saturating_sub(tokens as i64);
            let revoked = if remaining > 0 {
                conn.prepare_cached(
                    "DELETE FROM revoked_access_tokens WHERE rowid IN (
                         SELECT rowid FROM revoked_access_tokens WHERE expires_at < ?1 LIMIT ?2)",
                )?
                .execute(params![now.0, remaining])?
            } else {
                0
            };
            Ok((tokens + revoked) as u64)
        })
        .await
    }
}

/// Inserts an opaque access token (`audience` already encoded as JSON): for
/// [`AccessTokenRepository::add`] and, in the same transaction as the rotation, for a refresh.
pub(crate) fn insert_access_token(
    conn: &rusqlite::Connection,
    token: &AccessTokenRecord,
    audience: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO access_tokens (hash, jti, client_id, subject, grant_id, scope, audience,
                                    issued_at, expires_at, act)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        token.hash.0,
        token.jti,
        token.client_id,
        token.subject,
        token.grant_id,
        token.scope,
        audience,
        token.issued_at.0,
        token.expires_at.0,
        token.act,
    ])
    .map(|_| ())
}
