//! Running the server: bind, serve, reload keys in the background, shut down gracefully.

use std::net::SocketAddr;
use std::time::Duration;

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
