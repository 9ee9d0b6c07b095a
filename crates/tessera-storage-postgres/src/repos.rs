//! The repository traits over [`PostgresStorage`].

use async_trait::async_trait;
use tessera_core::keys::SigningKeyRecord;
use tessera_core::{Client, Timestamp, TokenHash};
use tessera_storage::{
    AccessTokenRecord, AccessTokenRepository, ClientAssertionRepository, ClientRepository, RepositoryError,
    SigningKeyRepository,
};
use tessera_types::JwsAlgorithm;
use tokio_postgres::Row;

use crate::error::{column, decode_hash, decode_json, encode_json, inconsistent, map_pg};
use crate::PostgresStorage;

/// Expired `jti` rows deleted, at most, by each `register_jti`.
const JTI_CLEANUP_BATCH: i64 = 100;

fn decode_client(row: &Row) -> Result<Client, RepositoryError> {
    let id: String = row.try_get(0).map_err(map_pg)?;
    let secret_hash: Option<Vec<u8>> = row.try_get(1).map_err(map_pg)?;
    let settings: String = row.try_get(2).map_err(map_pg)?;
    Ok(Client {
        secret_hash: secret_hash
            .map(|hash| decode_hash(hash, "clients", "secret_hash", &id))
            .transpose()?,
        settings: decode_json(&settings, "clients", "settings", &id)?,
        created_at: Timestamp(row.try_get(3).map_err(map_pg)?),
        updated_at: Timestamp(row.try_get(4).map_err(map_pg)?),
        id,
    })
}

#[async_trait]
impl ClientRepository for PostgresStorage {
    #[tracing::instrument(name = "db.clients.add", skip_all)]
    async fn add(&self, client: &Client) -> Result<(), RepositoryError> {
        let settings = encode_json(&client.settings)?;
        let secret_hash = client.secret_hash.as_ref().map(|h| &h.0[..]);
        self.execute(
            "INSERT INTO clients (client_id, secret_hash, settings, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &client.id,
                &secret_hash,
                &settings,
                &client.created_at.0,
                &client.updated_at.0,
            ],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.clients.lookup", skip_all)]
    async fn lookup(&self, client_id: &str) -> Result<Option<Client>, RepositoryError> {
        self.query_opt(
            "SELECT client_id, secret_hash, settings, created_at, updated_at
             FROM clients WHERE client_id = $1",
            &[&client_id],
        )
        .await?
        .as_ref()
        .map(decode_client)
        .transpose()
    }

    #[tracing::instrument(name = "db.clients.list", skip_all)]
    async fn list(&self) -> Result<Vec<Client>, RepositoryError> {
        self.query(
            "SELECT client_id, secret_hash, settings, created_at, updated_at
             FROM clients ORDER BY client_id",
            &[],
        )
        .await?
        .iter()
        .map(decode_client)
        .collect()
    }

    #[tracing::instrument(name = "db.clients.update", skip_all)]
    async fn update(&self, client: &Client) -> Result<bool, RepositoryError> {
        let settings = encode_json(&client.settings)?;
        let secret_hash = client.secret_hash.as_ref().map(|h| &h.0[..]);
        self.execute(
            "UPDATE clients SET secret_hash = $2, settings = $3, updated_at = $4
             WHERE client_id = $1",
            &[&client.id, &secret_hash, &settings, &client.updated_at.0],
        )
        .await
        .map(|changed| changed == 1)
    }

    #[tracing::instrument(name = "db.clients.remove", skip_all)]
    async fn remove(&self, client_id: &str) -> Result<bool, RepositoryError> {
        self.execute("DELETE FROM clients WHERE client_id = $1", &[&client_id])
            .await
            .map(|changed| changed == 1)
    }
}

fn decode_key(row: &Row) -> Result<SigningKeyRecord, RepositoryError> {
    let kid: String = row.try_get(0).map_err(map_pg)?;
    let algorithm: String = row.try_get(1).map_err(map_pg)?;
    Ok(SigningKeyRecord {
        algorithm: JwsAlgorithm::parse(&algorithm).ok_or_else(|| inconsistent("signing_keys", "algorithm", &kid))?,
        kid,
        public_jwk: row.try_get(2).map_err(map_pg)?,
        encrypted_private_key: row.try_get(3).map_err(map_pg)?,
        created_at: Timestamp(row.try_get(4).map_err(map_pg)?),
        activates_at: Timestamp(row.try_get(5).map_err(map_pg)?),
        retires_at: row.try_get::<_, Option<i64>>(6).map_err(map_pg)?.map(Timestamp),
    })
}

#[async_trait]
impl SigningKeyRepository for PostgresStorage {
    #[tracing::instrument(name = "db.signing_keys.list", skip_all)]
    async fn list(&self) -> Result<Vec<SigningKeyRecord>, RepositoryError> {
        self.query(
            "SELECT kid, algorithm, public_jwk, encrypted_private_key, created_at, activates_at,
                    retires_at
             FROM signing_keys ORDER BY created_at, kid",
            &[],
        )
        .await?
        .iter()
        .map(decode_key)
        .collect()
    }

    #[tracing::instrument(name = "db.signing_keys.rotate", skip_all)]
    async fn rotate(&self, key: &SigningKeyRecord, retire_at: Option<Timestamp>) -> Result<(), RepositoryError> {
        let algorithm = key.algorithm.as_str();
        let mut client = self.client().await?;
        // Dropped without commit (any error below) = rolled back.
        let tx = client.transaction().await.map_err(map_pg)?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO signing_keys (kid, algorithm, public_jwk, encrypted_private_key,
                                           created_at, activates_at, retires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await
            .map_err(map_pg)?;
        tx.execute(
            &insert,
            &[
                &key.kid,
                &algorithm,
                &key.public_jwk,
                &key.encrypted_private_key,
                &key.created_at.0,
                &key.activates_at.0,
                &key.retires_at.map(|t| t.0),
            ],
        )
        .await
        .map_err(map_pg)?;
        if let Some(retire_at) = retire_at {
            let retire = tx
                .prepare_cached(
                    "UPDATE signing_keys SET retires_at = $1
                     WHERE algorithm = $2 AND kid <> $3 AND retires_at IS NULL",
                )
                .await
                .map_err(map_pg)?;
            tx.execute(&retire, &[&retire_at.0, &algorithm, &key.kid])
                .await
                .map_err(map_pg)?;
        }
        tx.commit().await.map_err(map_pg)
    }

    #[tracing::instrument(name = "db.signing_keys.remove_retired", skip_all)]
    async fn remove_retired(&self, now: Timestamp) -> Result<u64, RepositoryError> {
        self.execute(
            "DELETE FROM signing_keys WHERE retires_at IS NOT NULL AND retires_at <= $1",
            &[&now.0],
        )
        .await
    }
}

#[async_trait]
impl ClientAssertionRepository for PostgresStorage {
    #[tracing::instrument(name = "db.client_assertion_jtis.register", skip_all)]
    async fn register_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, RepositoryError> {
        // One statement decides, under the row lock: a new pair inserts, an expired pair is taken
        // over, a live pair changes nothing (0 rows) and is a replay.
        let fresh = self
            .execute(
                "INSERT INTO client_assertion_jtis (client_id, jti, expires_at)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
                 WHERE client_assertion_jtis.expires_at <= $4",
                &[&client_id, &jti, &expires_at.0, &now.0],
            )
            .await?
            == 1;
        // Opportunistic, bounded cleanup; skips rows other nodes are touching. Its failure does not
        // undo the registration above, which has committed.
        if let Err(error) = self
            .execute(
                "DELETE FROM client_assertion_jtis WHERE (client_id, jti) IN (
                     SELECT client_id, jti FROM client_assertion_jtis WHERE expires_at <= $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&now.0, &JTI_CLEANUP_BATCH],
            )
            .await
        {
            tracing::warn!(%error, "cleaning up expired client assertion jtis failed");
        }
        Ok(fresh)
    }
}

fn decode_token(row: &Row) -> Result<AccessTokenRecord, RepositoryError> {
    let jti: String = row.try_get(1).map_err(map_pg)?;
    let audience: String = row.try_get(6).map_err(map_pg)?;
    Ok(AccessTokenRecord {
        hash: decode_hash(row.try_get(0).map_err(map_pg)?, "access_tokens", "hash", &jti)?,
        audience: decode_json(&audience, "access_tokens", "audience", &jti)?,
        client_id: row.try_get(2).map_err(map_pg)?,
        subject: row.try_get(3).map_err(map_pg)?,
        grant_id: row.try_get(4).map_err(map_pg)?,
        scope: row.try_get(5).map_err(map_pg)?,
        issued_at: Timestamp(row.try_get(7).map_err(map_pg)?),
        expires_at: Timestamp(row.try_get(8).map_err(map_pg)?),
        act: row.try_get(9).map_err(map_pg)?,
        jti,
    })
}

#[async_trait]
impl AccessTokenRepository for PostgresStorage {
    #[tracing::instrument(name = "db.access_tokens.add", skip_all)]
    async fn add(&self, token: &AccessTokenRecord) -> Result<(), RepositoryError> {
        let audience = encode_json(&token.audience)?;
        self.execute(
            "INSERT INTO access_tokens (hash, jti, client_id, subject, grant_id, scope, audience,
                                        issued_at, expires_at, act)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &&token.hash.0[..],
                &token.jti,
                &token.client_id,
                &token.subject,
                &token.grant_id,
                &token.scope,
                &audience,
                &token.issued_at.0,
                &token.expires_at.0,
                &token.act,
            ],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.access_tokens.find_by_hash", skip_all)]
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<AccessTokenRecord>, RepositoryError> {
        self.query_opt(
            "SELECT hash, jti, client_id, subject, grant_id, scope, audience, issued_at, expires_at, act
             FROM access_tokens WHERE hash = $1",
            &[&&hash.0[..]],
        )
        .await?
        .as_ref()
        .map(decode_token)
        .transpose()
    }

    #[tracing::instrument(name = "db.access_tokens.remove", skip_all)]
    async fn remove(&self, hash: &TokenHash) -> Result<bool, RepositoryError> {
        self.execute("DELETE FROM access_tokens WHERE hash = $1", &[&&hash.0[..]])
            .await
            .map(|deleted| deleted == 1)
    }

    #[tracing::instrument(name = "db.revoked_access_tokens.revoke", skip_all)]
    async fn revoke_jwt(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), RepositoryError> {
        // Revoking again (on any node) changes nothing: the first revocation (and its time) stands.
        self.execute(
            "INSERT INTO revoked_access_tokens (jti, client_id, expires_at, revoked_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (jti) DO NOTHING",
            &[&jti, &client_id, &expires_at.0, &now.0],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.revoked_access_tokens.is_revoked", skip_all)]
    async fn is_jwt_revoked(&self, jti: &str) -> Result<bool, RepositoryError> {
        let row = self
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)",
                &[&jti],
            )
            .await?;
        column(&row, 0)
    }

    #[tracing::instrument(name = "db.access_tokens.cleanup_expired", skip_all)]
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        // Two disjoint sets, each walked through its expiry index, `limit` rows in all: expired
        // opaque tokens first, then revoked jtis whose token has expired (the second LIMIT reads
        // what the first DELETE returned). SKIP LOCKED: rows another node's cleanup holds wait
        // for the next batch.
        let row = self
            .query_one(
                "WITH tokens AS (
                     DELETE FROM access_tokens WHERE hash IN (
                         SELECT hash FROM access_tokens WHERE expires_at < $1
                         LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING 1),
                 revoked AS (
                     DELETE FROM revoked_access_tokens WHERE jti IN (
                         SELECT jti FROM revoked_access_tokens WHERE expires_at < $1
                         LIMIT $2 - (SELECT COUNT(*) FROM tokens) FOR UPDATE SKIP LOCKED)
                     RETURNING 1)
                 SELECT (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM revoked)",
                &[&now.0, &i64::from(limit)],
            )
            .await?;
        let deleted: i64 = column(&row, 0)?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}
