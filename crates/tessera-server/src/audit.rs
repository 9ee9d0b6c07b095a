//! The audit trail: who did what to which user, client, grant or session, and when.
//!
//! Every event is logged at once as a structured `tracing` event (target `tessera::audit`) and,
//! with `audit.store` on, queued for storage (the high-volume token events only with
//! `audit.store_token_events`). A background task writes the queue in batches (one
//! transaction per batch), so a refresh does not wait for its audit row: the token's own write is
//! what must be durable before the response (DESIGN B5), and an event is at most one batch
//! behind it. The price: events queued when the process is killed are in the log but not in the
//! table. [`Audit::flush`] waits for everything queued so far (the admin API's event query calls
//! it, so a node reads its own events back at once).
//!
//! An event never holds a token, secret, code or password: only ids, types and reasons.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};
use tessera_core::Timestamp;
use tessera_storage::{AuditEvent, Storage};
use tokio::sync::{mpsc, oneshot};

use crate::config::AuditConfig;

/// Events waiting to be stored; beyond this (a database outage, say), new events are only logged.
const QUEUE_CAPACITY: usize = 65_536;
/// Most events written in one transaction.
const BATCH: usize = 1024;

/// Every event type, with its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A user signed in with the right password.
    LoginSucceeded,
    /// A sign-in failed (unknown user, wrong password, disabled account).
    LoginFailed,
    /// A user consented to a client's scopes.
    ConsentGiven,
    /// An authorization code was issued.
    AuthorizationCodeIssued,
    /// Tokens were issued by a grant other than refresh (`details.grant_type`).
    TokenIssued,
    /// A refresh token was rotated (or a sibling issued inside the grace window).
    RefreshTokenRotated,
    /// A token was exchanged (RFC 8693): subject, actor, audience and result type in `details`.
    TokenExchanged,
    /// A spent refresh token was presented again: the grant was revoked.
    RefreshTokenReuseDetected,
    /// A grant was revoked (`actor` says by whom, `details.reason` why).
    GrantRevoked,
    /// An access token was revoked through `/revoke`.
    AccessTokenRevoked,
    /// An SSO session ended (logout, the account page, an admin).
    SessionEnded,
    /// A user's password was set by an admin or the user.
    PasswordChanged,
    /// A client was registered.
    ClientCreated,
    /// A client's settings were changed.
    ClientUpdated,
    /// A client's secret was rotated.
    ClientSecretRotated,
    /// A client was deleted.
    ClientDeleted,
    /// A user was created.
    UserCreated,
    /// A user's claims or state (disabled) were changed.
    UserUpdated,
    /// A user was deleted.
    UserDeleted,
    /// The signing key was rotated.
    KeyRotated,
}

impl EventKind {
    /// Every kind, for documentation and tests.
    pub const ALL: [Self; 20] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::ConsentGiven,
        Self::AuthorizationCodeIssued,
        Self::TokenIssued,
        Self::RefreshTokenRotated,
        Self::TokenExchanged,
        Self::RefreshTokenReuseDetected,
        Self::GrantRevoked,
        Self::AccessTokenRevoked,
        Self::SessionEnded,
        Self::PasswordChanged,
        Self::ClientCreated,
        Self::ClientUpdated,
        Self::ClientSecretRotated,
        Self::ClientDeleted,
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserDeleted,
        Self::KeyRotated,
    ];

    /// Whether this kind happens on nearly every token request (stored only with
    /// `audit.store_token_events`).
    #[must_use]
    pub fn is_high_volume(self) -> bool {
        matches!(
            self,
            Self::TokenIssued | Self::RefreshTokenRotated | Self::AuthorizationCodeIssued
        )
    }

    /// The stable name stored and logged, e.g. `refresh_token.reuse_detected`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::ConsentGiven => "consent.given",
            Self::AuthorizationCodeIssued => "authorization_code.issued",
            Self::TokenIssued => "token.issued",
            Self::RefreshTokenRotated => "refresh_token.rotated",
            Self::TokenExchanged => "token.exchanged",
            Self::RefreshTokenReuseDetected => "refresh_token.reuse_detected",
            Self::GrantRevoked => "grant.revoked",
            Self::AccessTokenRevoked => "access_token.revoked",
            Self::SessionEnded => "session.ended",
            Self::PasswordChanged => "user.password_changed",
            Self::ClientCreated => "client.created",
            Self::ClientUpdated => "client.updated",
            Self::ClientSecretRotated => "client.secret_rotated",
            Self::ClientDeleted => "client.deleted",
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::UserDeleted => "user.deleted",
            Self::KeyRotated => "key.rotated",
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user, through the pages.
    User,
    /// A client, through the token, revocation or introspection endpoints.
    Client,
    /// An administrator, through the admin API or the CLI.
    Admin,
    /// The server's own policy (reuse detection, the grant limit, a password change's revocation).
    Policy,
}

impl Actor {
    /// `user`, `client`, `admin` or `policy`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
            Self::Admin => "admin",
            Self::Policy => "policy",
        }
    }
}

/// An event being built: `Event::new(kind, actor).user(id).client(id).detail("reason", "logout")`.
#[derive(Debug, Clone)]
pub struct Event {
    kind: EventKind,
    actor: Actor,
    user_id: Option<String>,
    client_id: Option<String>,
    grant_id: Option<String>,
    session_id: Option<String>,
    details: Map<String, Value>,
}

impl Event {
    /// An event of `kind` caused by `actor`.
    #[must_use]
    pub fn new(kind: EventKind, actor: Actor) -> Self {
        Self {
            kind,
            actor,
            user_id: None,
            client_id: None,
            grant_id: None,
            session_id: None,
            details: Map::new(),
        }
    }

    /// The user concerned.
    #[must_use]
    pub fn user(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// The client concerned.
    #[must_use]
    pub fn client(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The grant concerned.
    #[must_use]
    pub fn grant(mut self, id: impl Into<String>) -> Self {
        self.grant_id = Some(id.into());
        self
    }

    /// The SSO session concerned.
    #[must_use]
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// A further fact. Never a token, secret, code or password.
    #[must_use]
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

enum Command {
    Store(AuditEvent),
    Flush(oneshot::Sender<()>),
}

/// The audit sink: logs each event and queues it for storage.
pub struct Audit {
    queue: Option<mpsc::Sender<Command>>,
    store_token_events: bool,
    dropped: Arc<AtomicU64>,
}

impl Audit {
    /// A sink that stores events in `storage` as `config` says (the writer task runs on the
    /// current Tokio runtime; without one, events are only logged).
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>, config: &AuditConfig) -> Self {
        let dropped = Arc::new(AtomicU64::new(0));
        let queue = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if config.store => {
                let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
                runtime.spawn(write_events(storage, receiver));
                Some(sender)
            }
            _ => None,
        };
        Self {
            queue,
            store_token_events: config.store_token_events,
            dropped,
        }
    }

    /// Logs the event and queues it for storage; never waits and never fails the caller.
    pub fn record(&self, now: Timestamp, event: Event) {
        let details = Value::Object(event.details).to_string();
        let kind = event.kind.as_str();
        let actor = event.actor.as_str();
        let (user, client, grant, session) = (
            event.user_id.as_deref().unwrap_or(""),
            event.client_id.as_deref().unwrap_or(""),
            event.grant_id.as_deref().unwrap_or(""),
            event.session_id.as_deref().unwrap_or(""),
        );
        if event.kind == EventKind::RefreshTokenReuseDetected || event.kind == EventKind::LoginFailed {
            tracing::warn!(target: "tessera::audit", kind, actor, user, client, grant, session, details, "audit");
        } else {
            tracing::info!(target: "tessera::audit", kind, actor, user, client, grant, session, details, "audit");
        }
        let Some(queue) = &self.queue else { return };
        if event.kind.is_high_volume() && !self.store_token_events {
            return;
        }
        let stored = AuditEvent {
            id: crate::tokens::new_jti(),
            at: now,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            user_id: event.user_id,
            client_id: event.client_id,
            grant_id: event.grant_id,
            session_id: event.session_id,
            details,
        };
        if queue.try_send(Command::Store(stored)).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::error!(dropped, "the audit queue is full: events are logged but not stored");
            }
        }
    }

    /// Waits until every event recorded before this call has been written (or its write failed).
    pub async fn flush(&self) {
        let Some(queue) = &self.queue else { return };
        let (done, wait) = oneshot::channel();
        if queue.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// How many events could not be queued for storage since start.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_events(storage: Arc<dyn Storage>, mut receiver: mpsc::Receiver<Command>) {
    let mut commands = Vec::with_capacity(BATCH);
    loop {
        if receiver.recv_many(&mut commands, BATCH).await == 0 {
            return;
        }
        let mut events = Vec::with_capacity(commands.len());
        let mut flushes = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Store(event) => events.push(event),
                Command::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty() {
            if let Err(error) = storage.events().record(&events).await {
                tracing::error!(%error, count = events.len(), "storing audit events failed; they are in the log");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
