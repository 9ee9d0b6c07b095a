//! Running the server: bind, serve, reload keys and purge expired rows in the background, shut
//! down gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use tessera_core::Timestamp;

use tokio::net::TcpListener;

use crate::state::AppState;

/// A bound server, ready to run.
pub struct Server {
    state: AppState,
    listener: TcpListener,
}

impl Server {
    /// Binds `addr` (port 0 picks a free one).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(state: AppState, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { state, listener })
    }

    /// Serves on an already bound listener (tests bind first to learn the port for the issuer).
    #[must_use]
    pub fn with_listener(state: AppState, listener: TcpListener) -> Self {
        Self { state, listener }
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for up to
    /// `server.shutdown_timeout` seconds.
    ///
    /// # Errors
    /// I/O errors of the listener.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state;
        let grace = Duration::from_secs(state.config.server.shutdown_timeout);
        let reload = tokio::spawn(reload_keys(state.clone()));
        let purge = tokio::spawn(purge_expired(state.clone()));
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(());
        };
        let server = axum::serve(self.listener, crate::app(state)).with_graceful_shutdown(signal);
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            result = server => result,
            () = deadline => {
                tracing::warn!("shutdown grace period over: dropping remaining connections");
                Ok(())
            }
        };
        reload.abort();
        purge.abort();
        result
    }
}

/// Re-reads the key set every `keys.reload_interval` seconds, so rotations by the CLI or another
/// node are seen without a restart.
async fn reload_keys(state: AppState) {
    let interval = Duration::from_secs(state.config.keys.reload_interval.max(1));
    loop {
        tokio::time::sleep(interval).await;
        if let Err(error) = state.keys.reload(state.storage.as_ref()).await {
            tracing::warn!(%error, "reloading signing keys failed; keeping the current set");
        }
    }
}

/// What the purge deletes, one table at a time.
#[derive(Clone, Copy)]
enum Table {
    AccessTokens,
    RefreshTokens,
    AuthorizationCodes,
    Events,
    Grants,
    Sessions,
}

/// Rows deleted per statement by the purge job: small, so it never holds the writer for long.
const PURGE_BATCH: u32 = 500;

/// Every `database.purge_interval` seconds, deletes expired opaque access tokens, refresh tokens
/// (expired; a revoked grant's tokens too, once they expire), revoked JWT `jti`s whose token
/// expired, authorization codes, audit events older than `audit.retention`, grants and SSO
/// sessions that ended more than `database.ended_retention` ago (in small batches), and retired
/// signing keys (DESIGN §5: the tables do not grow without bound, and requests are never blocked
/// behind a large delete).
async fn purge_expired(state: AppState) {
    let interval = Duration::from_secs(state.config.database.purge_interval.max(1));
    loop {
        tokio::time::sleep(interval).await;
        if let Err(error) = purge_once(&state).await {
            tracing::warn!(%error, "purging expired rows failed; will retry");
        }
    }
}

/// One purge pass; returns how many rows were deleted.
///
/// # Errors
/// Storage failures.
pub async fn purge_once(state: &AppState) -> Result<u64, tessera_storage::RepositoryError> {
    let now = state.now();
    let ago = |seconds: u64| Timestamp(now.0.saturating_sub(i64::try_from(seconds).unwrap_or(i64::MAX)));
    let events_before = ago(state.config.audit.retention);
    let ended_before = ago(state.config.database.ended_retention);
    let storage = state.storage.as_ref();
    let mut deleted = 0;
    // Spent refresh tokens stay until they expire: reuse detection needs them until then.
    for table in [
        Table::AccessTokens,
        Table::RefreshTokens,
        Table::AuthorizationCodes,
        Table::Events,
        Table::Grants,
        Table::Sessions,
    ] {
        loop {
            let batch = match table {
                Table::AccessTokens => storage.access_tokens().cleanup_expired(now, PURGE_BATCH).await?,
                Table::RefreshTokens => storage.refresh_tokens().cleanup_expired(now, PURGE_BATCH).await?,
                Table::AuthorizationCodes => storage.authorization_codes().cleanup_expired(now, PURGE_BATCH).await?,
                Table::Events => storage.events().cleanup_before(events_before, PURGE_BATCH).await?,
                Table::Grants => storage.grants().cleanup_ended(ended_before, PURGE_BATCH).await?,
                Table::Sessions => storage.sessions().cleanup_expired(ended_before, PURGE_BATCH).await?,
            };
            deleted += batch;
            if batch < u64::from(PURGE_BATCH) {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    let retired = storage.signing_keys().remove_retired(now).await?;
    if retired > 0 {
        if let Err(error) = state.keys.reload(storage).await {
            tracing::warn!(%error, "reloading signing keys after purge failed");
        }
    }
    if deleted + retired > 0 {
        tracing::info!(rows = deleted, signing_keys = retired, "purged expired rows");
    }
    Ok(deleted + retired)
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
