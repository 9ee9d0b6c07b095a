//! Tessera's storage contract: one repository trait per concern.
//!
//! **Operations, not transactions.** Every method is one atomic unit of work that either happens
//! entirely or not at all, and returns only after it is durable. Callers never hold a transaction
//! open across an `await` of their own. That lets a backend commit many requests' operations in
//! one transaction and one fsync (group commit, DESIGN §7), and lets conditional updates
//! (`… WHERE state = 'active'`, "exactly one row") decide races inside the database, which is what
//! keeps rotation atomic across nodes. (One method is two of them by default:
//! `RefreshTokenRepository::refresh` reads, lets the caller plan and rotates; a backend may do it
//! in one transaction, and the rotation's compare-and-set makes the default safe too.) Backends: `tessera-storage-sqlite`, `tessera-storage-postgres`;
//! both pass the contract suite in `tessera-testkit`.
//!
//! "Not found" is `Ok(None)` (or `Ok(false)`), never an error.
#![deny(missing_docs)]

pub mod codec;

use async_trait::async_trait;
use tessera_core::keys::SigningKeyRecord;
use tessera_core::refresh::RefreshToken;
use tessera_core::{AuthorizationCode, Client, Grant, SsoSession, Timestamp, TokenHash, User};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A uniqueness or state condition did not hold (e.g. the id exists, the row changed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row holds an impossible combination of values.
    #[error("inconsistent row in {table}.{column} for {id}")]
    Inconsistent {
        /// The table.
        table: &'static str,
        /// The column holding the bad value.
        column: &'static str,
        /// The row's id.
        id: String,
    },
    /// The database cannot be reached or is overloaded: a real outage, answered with 503.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other backend failure.
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One failure reported to every caller of a group of operations that failed together (a group
/// commit): [`RepositoryError`] is not `Clone`, so each caller gets its own copy, of the same kind
/// (an outage stays [`RepositoryError::Unavailable`], anything else becomes
/// [`RepositoryError::Backend`]) and with the same message.
#[derive(Debug, Clone)]
pub struct SharedFailure {
    unavailable: bool,
    message: String,
}

impl SharedFailure {
    /// The failure of a group, from the error that ended it; `context` says what the group was.
    #[must_use]
    pub fn new(context: &str, error: &RepositoryError) -> Self {
        Self {
            unavailable: matches!(error, RepositoryError::Unavailable(_)),
            message: format!("{context}: {error}"),
        }
    }

    /// What it says, for logs.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A caller's copy.
    #[must_use]
    pub fn to_error(&self) -> RepositoryError {
        let source = self.message.clone().into();
        if self.unavailable {
            RepositoryError::Unavailable(source)
        } else {
            RepositoryError::Backend(source)
        }
    }
}

/// Registered clients.
#[async_trait]
pub trait ClientRepository: Send + Sync {
    /// Stores a new client.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] when a client with this id exists; backend errors.
    async fn add(&self, client: &Client) -> Result<(), RepositoryError>;

    /// The client with this id.
    ///
    /// # Errors
    /// Backend errors; an undecodable row is [`RepositoryError::Inconsistent`].
    async fn lookup(&self, client_id: &str) -> Result<Option<Client>, RepositoryError>;

    /// Every client, ordered by id.
    ///
    /// # Errors
    /// Backend errors.
    async fn list(&self) -> Result<Vec<Client>, RepositoryError>;

    /// Replaces the stored client with the same id (settings, secret hash, `updated_at`).
    /// Returns `false` when no such client exists.
    ///
    /// # Errors
    /// Backend errors.
    async fn update(&self, client: &Client) -> Result<bool, RepositoryError>;

    /// Deletes a client. Returns `false` when no such client exists.
    ///
    /// # Errors
    /// Backend errors.
    async fn remove(&self, client_id: &str) -> Result<bool, RepositoryError>;
}

/// Signing keys (private parts encrypted by the caller).
#[async_trait]
pub trait SigningKeyRepository: Send + Sync {
    /// Every stored key, oldest first (by `created_at`, then `kid`).
    ///
    /// # Errors
    /// Backend errors.
    async fn list(&self) -> Result<Vec<SigningKeyRecord>, RepositoryError>;

    /// Adds `key`, and in the same transaction sets `retires_at = retire_at` on every other key of
    /// the same algorithm whose `retires_at` is unset. With `retire_at = None`, only adds.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] when the `kid` exists; backend errors.
    async fn rotate(&self, key: &SigningKeyRecord, retire_at: Option<Timestamp>) -> Result<(), RepositoryError>;

    /// Deletes keys that retired at or before `now`; returns how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn remove_retired(&self, now: Timestamp) -> Result<u64, RepositoryError>;
}

/// `jti` values of `private_key_jwt` client assertions, remembered until they expire (RFC 7523 §3).
#[async_trait]
pub trait ClientAssertionRepository: Send + Sync {
    /// Records that `client_id` used `jti`, valid until `expires_at`. Returns `true` if the `jti`
    /// was unused (or its earlier record expired before `now`), `false` if this is a replay.
    /// Atomic: of two concurrent calls with the same pair, at most one gets `true`.
    ///
    /// # Errors
    /// Backend errors.
    async fn register_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, RepositoryError>;
}

/// Local users.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] when the id or the username is taken; backend errors.
    async fn add(&self, user: &User) -> Result<(), RepositoryError>;

    /// The user with this id.
    ///
    /// # Errors
    /// Backend errors; an undecodable row is [`RepositoryError::Inconsistent`].
    async fn lookup(&self, user_id: &str) -> Result<Option<User>, RepositoryError>;

    /// The user with this username (exact, case-sensitive match).
    ///
    /// # Errors
    /// Backend errors.
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, RepositoryError>;

    /// Every user, ordered by username.
    ///
    /// # Errors
    /// Backend errors.
    async fn list(&self) -> Result<Vec<User>, RepositoryError>;

    /// One page of users in username order (the database's order for text, so the username
    /// index serves it): at most `limit` users whose username sorts after `after` (all when
    /// `None`). Pass the last username of a page to get the next.
    ///
    /// # Errors
    /// Backend errors; an undecodable row is [`RepositoryError::Inconsistent`].
    async fn list_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, RepositoryError>;

    /// Replaces the stored user with the same id (every field but `id` and `created_at`).
    /// Returns `false` when no such user exists.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] when the new username is taken; backend errors.
    async fn update(&self, user: &User) -> Result<bool, RepositoryError>;

    /// Deletes a user. Returns `false` when no such user exists.
    ///
    /// # Errors
    /// Backend errors.
    async fn remove(&self, user_id: &str) -> Result<bool, RepositoryError>;
}

/// SSO sessions.
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] on a duplicate id or token hash; backend errors.
    async fn add(&self, session: &SsoSession) -> Result<(), RepositoryError>;

    /// The session with this id (ended and expired ones included: the caller decides).
    ///
    /// # Errors
    /// Backend errors.
    async fn lookup(&self, session_id: &str) -> Result<Option<SsoSession>, RepositoryError>;

    /// The session whose cookie hashes to `token_hash`.
    ///
    /// # Errors
    /// Backend errors.
    async fn find_by_token_hash(&self, token_hash: &TokenHash) -> Result<Option<SsoSession>, RepositoryError>;

    /// Records activity: sets `last_active_at = now` if the session is not ended and `now` is later
    /// than the stored value. Returns `false` when the session does not exist or is ended.
    ///
    /// # Errors
    /// Backend errors.
    async fn touch(&self, session_id: &str, now: Timestamp) -> Result<bool, RepositoryError>;

    /// Ends the session (`ended_at = now`) if it is not ended yet. Returns whether it was ended now.
    ///
    /// # Errors
    /// Backend errors.
    async fn end(&self, session_id: &str, now: Timestamp) -> Result<bool, RepositoryError>;

    /// Every session of a user (ended and expired ones included: the caller decides), newest
    /// `auth_time` first.
    ///
    /// # Errors
    /// Backend errors.
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SsoSession>, RepositoryError>;

    /// Deletes up to `limit` sessions whose hard end (`expires_at`) is before `before`; returns
    /// how many. (An online grant of a deleted session is refused like one of an ended session.)
    ///
    /// # Errors
    /// Backend errors.
    async fn cleanup_expired(&self, before: Timestamp, limit: u32) -> Result<u64, RepositoryError>;
}

/// Consent a user gave a client, remembered per (user, client) as a set of scopes.
#[async_trait]
pub trait ConsentRepository: Send + Sync {
    /// The scopes `user_id` has consented to for `client_id` (empty if none).
    ///
    /// # Errors
    /// Backend errors.
    async fn find(&self, user_id: &str, client_id: &str) -> Result<Vec<String>, RepositoryError>;

    /// Adds `scopes` to the consented set for (user, client) — a union with what was there.
    ///
    /// # Errors
    /// Backend errors.
    async fn grant(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), RepositoryError>;

    /// Forgets every consent of `user_id` for `client_id`. Returns whether there was one.
    ///
    /// # Errors
    /// Backend errors.
    async fn revoke(&self, user_id: &str, client_id: &str) -> Result<bool, RepositoryError>;
}

/// Authorization codes (RFC 6749 §4.1.2), single use.
#[async_trait]
pub trait AuthorizationCodeRepository: Send + Sync {
    /// Stores an issued code.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] on a duplicate hash; backend errors.
    async fn add(&self, code: &AuthorizationCode) -> Result<(), RepositoryError>;

    /// The code with this hash, consumed or not.
    ///
    /// # Errors
    /// Backend errors.
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<AuthorizationCode>, RepositoryError>;

    /// Marks the code consumed at `now` if it is not consumed yet — one conditional update.
    /// Returns `true` for exactly one of any number of concurrent callers; `false` if it was
    /// already consumed or does not exist.
    ///
    /// # Errors
    /// Backend errors.
    async fn consume(&self, hash: &TokenHash, now: Timestamp) -> Result<bool, RepositoryError>;

    /// Deletes up to `limit` codes that expired before `now`; returns how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError>;
}

/// Grants (token families).
#[async_trait]
pub trait GrantRepository: Send + Sync {
    /// Stores a new grant.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] on a duplicate id; backend errors.
    async fn add(&self, grant: &Grant) -> Result<(), RepositoryError>;

    /// The grant with this id (revoked ones included).
    ///
    /// # Errors
    /// Backend errors.
    async fn lookup(&self, grant_id: &str) -> Result<Option<Grant>, RepositoryError>;

    /// Revokes the grant if it is not revoked yet (`revoked_at = now`, `revocation_reason = reason`),
    /// and deletes the opaque access tokens issued from it, in one transaction.
    /// Returns whether it was revoked now.
    ///
    /// # Errors
    /// Backend errors.
    async fn revoke(&self, grant_id: &str, now: Timestamp, reason: &str) -> Result<bool, RepositoryError>;

    /// Revokes every unrevoked *online* grant of the session (offline grants stay, DESIGN B9) and
    /// deletes their opaque access tokens, in one transaction. Returns how many were revoked.
    ///
    /// # Errors
    /// Backend errors.
    async fn revoke_online_for_session(
        &self,
        session_id: &str,
        now: Timestamp,
        reason: &str,
    ) -> Result<u64, RepositoryError>;

    /// Revokes every unrevoked grant of `user_id` (only online ones when `only_online`) and deletes
    /// their opaque access tokens, in one transaction (DESIGN B10). Returns how many were revoked.
    ///
    /// # Errors
    /// Backend errors.
    async fn revoke_for_user(
        &self,
        user_id: &str,
        only_online: bool,
        now: Timestamp,
        reason: &str,
    ) -> Result<u64, RepositoryError>;

    /// Keeps at most `max_active` unrevoked grants for (user, client): revokes the least recently
    /// used (`last_used_at`, then `created_at`, oldest first) beyond that, with reason
    /// `grant_limit`, in one transaction. Returns how many were revoked.
    ///
    /// # Errors
    /// Backend errors.
    async fn enforce_limit(
        &self,
        user_id: &str,
        client_id: &str,
        max_active: u32,
        now: Timestamp,
    ) -> Result<u64, RepositoryError>;

    /// Every grant of a user, newest first.
    ///
    /// # Errors
    /// Backend errors.
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<Grant>, RepositoryError>;

    /// One page of a client's grants (revoked ones included), newest first: ordered by
    /// `created_at` descending, then `id` descending; `page.before` continues after the last
    /// (`created_at`, `id`) of the previous page.
    ///
    /// # Errors
    /// Backend errors.
    async fn list_by_client(&self, client_id: &str, page: &Page) -> Result<Vec<Grant>, RepositoryError>;

    /// Deletes up to `limit` grants revoked before `before` or whose hard end (`expires_at`) is
    /// before `before`; returns how many. Their refresh tokens, refused already, are deleted when
    /// they expire; a refresh token whose grant is gone is refused.
    ///
    /// # Errors
    /// Backend errors.
    async fn cleanup_ended(&self, before: Timestamp, limit: u32) -> Result<u64, RepositoryError>;
}

/// Keyset pagination, newest first: at most `limit` rows strictly before the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The (time, id) of the last row of the previous page; `None` for the first page.
    pub before: Option<(Timestamp, String)>,
    /// The page size.
    pub limit: u32,
}

/// One refresh: everything [`RefreshTokenRepository::rotate`] does in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The presented token.
    pub presented: TokenHash,
    /// `Some(n)`: use the presented token once more, if its `use_count` is still `n` and it is not
    /// spent (compare-and-set); it becomes spent (`spent_at = now`) when `n + 1 >= allowed_uses`
    /// . `None`: a sibling inside the grace window; the presented token is
    /// left as it is.
    pub expected_use_count: Option<u32>,
    /// `max_reuse + 1`.
    pub allowed_uses: u32,
    /// The token to issue (its `parent` is the presented token).
    pub new_token: RefreshToken,
    /// The online grant's session, to record activity (`last_active_at = now`, forward only).
    pub touch_session: Option<String>,
    /// The opaque access token issued beside the new refresh token, stored in the same
    /// transaction (so a refresh never spends its token without storing what it answers with);
    /// `None` for JWT access tokens.
    pub access_token: Option<AccessTokenRecord>,
    /// Now.
    pub now: Timestamp,
}

/// A refresh token and the records a refresh of it is decided on, as one snapshot
/// ([`RefreshTokenRepository::find_with_context`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshContext {
    /// The presented token.
    pub token: RefreshToken,
    /// Its grant, unless the row is gone.
    pub grant: Option<Grant>,
    /// The grant's SSO session, when the grant names one and it still exists (ended or not).
    pub session: Option<SsoSession>,
    /// The grant's user, unless the row is gone (disabled users included).
    pub user: Option<User>,
}

/// The decision of a refresh, given the presented token's context: the rotation to apply, or
/// `None` to change nothing. [`RefreshTokenRepository::refresh`] calls it at most once, and may
/// call it on a storage thread inside a transaction, so it must be quick and do no I/O.
pub type RefreshPlanner = Box<dyn FnOnce(&RefreshContext) -> Option<Rotation> + Send>;

/// What [`RefreshTokenRepository::refresh`] did.
#[derive(Debug)]
pub struct Refreshed {
    /// The context the planner was given.
    pub context: RefreshContext,
    /// Whether a rotation committed. `false`: the planner returned `None`, or its rotation found
    /// the token or grant changed since the read, as [`RefreshTokenRepository::rotate`]'s `false`
    /// (a backend that reads and rotates in one transaction never reports that).
    pub rotated: bool,
}

/// Refresh tokens (DESIGN §5: hash, grant, parent, state, expiry, spent_at).
#[async_trait]
pub trait RefreshTokenRepository: Send + Sync {
    /// Stores the first refresh token of a grant.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] on a duplicate hash; backend errors.
    async fn add(&self, token: &RefreshToken) -> Result<(), RepositoryError>;

    /// The token with this hash (spent and expired ones included: the caller decides).
    ///
    /// # Errors
    /// Backend errors; an undecodable row is [`RepositoryError::Inconsistent`].
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, RepositoryError>;

    /// The token with this hash together with what a refresh decides on — its grant, the grant's
    /// SSO session and the grant's user — read in one snapshot (one round trip where the backend
    /// allows). `None` when there is no such token; a missing grant, session or user is `None`
    /// in the result.
    ///
    /// # Errors
    /// Backend errors; an undecodable row is [`RepositoryError::Inconsistent`].
    async fn find_with_context(&self, hash: &TokenHash) -> Result<Option<RefreshContext>, RepositoryError>;

    /// One refresh, atomically, in one transaction:
    /// 1. with `expected_use_count = Some(n)`: `UPDATE refresh_tokens SET use_count = n + 1,
    ///    spent_at = CASE WHEN n + 1 >= allowed_uses THEN now ELSE NULL END WHERE hash = presented
    ///    AND use_count = n AND spent_at IS NULL` must change exactly one row;
    /// 2. `UPDATE grants SET last_used_at = now WHERE id = new_token.grant_id AND revoked_at IS NULL`
    ///    must change exactly one row (no token is ever issued from a revoked grant);
    /// 3. insert `new_token`;
    /// 4. with `touch_session`: `last_active_at = now` if the session is not ended and was active earlier;
    /// 5. with `access_token`: insert it.
    ///
    /// Returns `true` when all of it committed, `false` when step 1 or 2 changed no row (a lost
    /// race, or a revoked grant) — then nothing changed, except that a backend may keep step 2's
    /// `last_used_at` when only step 1 failed (the grant was in use: another request rotated the
    /// token).
    ///
    /// # Errors
    /// Backend errors.
    async fn rotate(&self, rotation: &Rotation) -> Result<bool, RepositoryError>;

    /// A whole refresh: reads the token with this hash and its context (as
    /// [`Self::find_with_context`]), asks `plan` what to do, and applies the rotation it returns
    /// (as [`Self::rotate`]). `None` when there is no such token (`plan` is not called).
    ///
    /// The default is those three steps, so another request may change the token between the
    /// read and the rotation (then `rotated` is `false`, and the caller decides again). A backend
    /// that can should do all of it in one transaction, where nothing can come between; the
    /// SQLite backend runs it as one command of its writer, so a refresh is one trip to storage.
    ///
    /// # Errors
    /// As [`Self::find_with_context`] and [`Self::rotate`]; when the transaction fails, nothing
    /// changed.
    async fn refresh(&self, hash: &TokenHash, plan: RefreshPlanner) -> Result<Option<Refreshed>, RepositoryError> {
        let Some(context) = self.find_with_context(hash).await? else {
            return Ok(None);
        };
        let rotated = match plan(&context) {
            Some(rotation) => self.rotate(&rotation).await?,
            None => false,
        };
        Ok(Some(Refreshed { context, rotated }))
    }

    /// Deletes up to `limit` tokens that expired before `now`; returns how many. The tokens of a
    /// revoked grant are deleted the same way, when they expire (they are refused before that:
    /// every use checks the grant); tokens are not indexed by grant, which would cost every
    /// rotation a write at a random place in that index.
    ///
    /// # Errors
    /// Backend errors.
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError>;
}

/// An opaque access token as stored (the token itself never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// A unique id for logs and revocation lists.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user it was issued for; `None` for client credentials.
    pub subject: Option<String>,
    /// The grant it was issued from; `None` for client credentials.
    pub grant_id: Option<String>,
    /// The granted scope, space-delimited.
    pub scope: String,
    /// The audiences.
    pub audience: Vec<String>,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// The RFC 8693 `act` claim (JSON) of a token issued by a delegation exchange: who acts on the
    /// subject's behalf. `None` for every other token.
    pub act: Option<String>,
}

/// Opaque (reference) access tokens, and the revoked `jti`s of JWT access tokens (RFC 7009).
#[async_trait]
pub trait AccessTokenRepository: Send + Sync {
    /// Stores an issued opaque access token.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] on a duplicate hash; backend errors.
    async fn add(&self, token: &AccessTokenRecord) -> Result<(), RepositoryError>;

    /// The token with this hash (expired ones included: the caller decides).
    ///
    /// # Errors
    /// Backend errors.
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<AccessTokenRecord>, RepositoryError>;

    /// Deletes the opaque token with this hash (revocation). Returns `false` when there is no
    /// such token.
    ///
    /// # Errors
    /// Backend errors.
    async fn remove(&self, hash: &TokenHash) -> Result<bool, RepositoryError>;

    /// Records that the JWT access token with this `jti`, issued to `client_id` and expiring at
    /// `expires_at`, is revoked (`revoked_at = now`); the record is kept until the token expires
    /// ([`Self::cleanup_expired`]). Idempotent: revoking a `jti` again succeeds and changes
    /// nothing (the first `revoked_at` stays).
    ///
    /// # Errors
    /// Backend errors.
    async fn revoke_jwt(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), RepositoryError>;

    /// Whether the JWT access token with this `jti` has been revoked (and the record not yet
    /// cleaned up, which happens only after the token expired).
    ///
    /// # Errors
    /// Backend errors.
    async fn is_jwt_revoked(&self, jti: &str) -> Result<bool, RepositoryError>;

    /// Deletes opaque tokens that expired before `now` and revoked-`jti` records whose token
    /// expired before `now`: two disjoint sets, up to `limit` rows in all per call (opaque
    /// tokens first). Returns how many rows were deleted.
    ///
    /// # Errors
    /// Backend errors.
    async fn cleanup_expired(&self, now: Timestamp, limit: u32) -> Result<u64, RepositoryError>;
}

/// One audit event as stored (DESIGN §5 `events`). Never holds a token, secret, code or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Random id; with `at`, the pagination key.
    pub id: String,
    /// When it happened.
    pub at: Timestamp,
    /// The event type, e.g. `login.succeeded`, `refresh_token.reuse_detected`.
    pub kind: String,
    /// Who caused it: `user`, `client`, `admin` or `policy`.
    pub actor: String,
    /// The user concerned, if any.
    pub user_id: Option<String>,
    /// The client concerned, if any.
    pub client_id: Option<String>,
    /// The grant concerned, if any.
    pub grant_id: Option<String>,
    /// The SSO session concerned, if any.
    pub session_id: Option<String>,
    /// Further facts as a JSON object (e.g. `{"grant_type":"refresh_token"}`).
    pub details: String,
}

/// Which events [`EventRepository::query`] returns; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events about this user.
    pub user_id: Option<String>,
    /// Only events about this client.
    pub client_id: Option<String>,
    /// Only events of this type.
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
}

/// The audit trail (DESIGN §5 `events`), kept for a retention period.
#[async_trait]
pub trait EventRepository: Send + Sync {
    /// Stores a batch of events in one transaction.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] on a duplicate id; backend errors.
    async fn record(&self, events: &[AuditEvent]) -> Result<(), RepositoryError>;

    /// One page of the events matching `filter`, newest first: ordered by `at` descending, then
    /// `id` descending; `page.before` continues after the last (`at`, `id`) of the previous page.
    ///
    /// # Errors
    /// Backend errors.
    async fn query(&self, filter: &EventFilter, page: &Page) -> Result<Vec<AuditEvent>, RepositoryError>;

    /// Deletes up to `limit` events older than `cutoff` (retention). Returns how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn cleanup_before(&self, cutoff: Timestamp, limit: u32) -> Result<u64, RepositoryError>;
}

/// A storage backend: the repositories plus health and schema management.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Registered clients.
    fn clients(&self) -> &dyn ClientRepository;
    /// Signing keys.
    fn signing_keys(&self) -> &dyn SigningKeyRepository;
    /// Client-assertion `jti` replay cache.
    fn client_assertions(&self) -> &dyn ClientAssertionRepository;
    /// Opaque access tokens.
    fn access_tokens(&self) -> &dyn AccessTokenRepository;
    /// Local users.
    fn users(&self) -> &dyn UserRepository;
    /// SSO sessions.
    fn sessions(&self) -> &dyn SessionRepository;
    /// Remembered consent.
    fn consents(&self) -> &dyn ConsentRepository;
    /// Authorization codes.
    fn authorization_codes(&self) -> &dyn AuthorizationCodeRepository;
    /// Grants (token families).
    fn grants(&self) -> &dyn GrantRepository;
    /// Refresh tokens.
    fn refresh_tokens(&self) -> &dyn RefreshTokenRepository;
    /// The audit trail.
    fn events(&self) -> &dyn EventRepository;

    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend_name(&self) -> &'static str;

    /// Checks that the database answers (for `/readyz`).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when it does not.
    async fn ping(&self) -> Result<(), RepositoryError>;

    /// Applies pending embedded migrations; returns the versions applied.
    ///
    /// # Errors
    /// Backend errors, or a database whose schema is newer than this binary.
    async fn migrate(&self) -> Result<Vec<i64>, RepositoryError>;
}
