//! `tessera`: the one binary. `serve`, `migrate`, `client …`, `keys …`.
//!
//! Every command reads the same configuration as the server (`--config`/`TESSERA_CONFIG`, then
//! `TESSERA_…` variables) and works directly on the configured database, with or without a running
//! server. Output is for humans by default and JSON with `--json`; failures exit non-zero with a
//! one-line reason on stderr.

mod client;
mod keys;
mod user;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tessera_server::audit::Audit;
use tessera_server::clock::SystemClock;
use tessera_server::config::{Config, LogFormat};
use tessera_server::keys::{load_encryption_key, KeyStore};
use tessera_server::serve::{shutdown_signal, Server};
use tessera_server::AppState;
use tessera_storage::Storage;
use tessera_storage_postgres::{PostgresOptions, PostgresStorage};
use tessera_storage_sqlite::{SqliteOptions, SqliteStorage};

/// mimalloc instead of the system allocator: a token request allocates many small, short-lived
/// buffers (HTTP, JSON, JWT), and glibc malloc was 7–10 % of the request threads' CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tessera: an OAuth 2.0 / OpenID Connect authorization server.
#[derive(Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    /// Configuration file (TOML). Without one, defaults and TESSERA_… variables apply.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage clients.
    #[command(subcommand)]
    Client(Box<client::ClientCommand>),
    /// Manage local users.
    #[command(subcommand)]
    User(Box<user::UserCommand>),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

fn one_line(error: &anyhow::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    let is_serve = matches!(cli.command, Command::Serve);
    init_tracing(&config, is_serve);
    if is_serve {
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            mode = ?config.mode,
            "starting Tessera on {} with issuer {} and database {}",
            config.server.listen,
            config.issuer(),
            redact_url(&config.database.url)
        );
    }
    let storage = open_storage(&config).await?;
    let applied = storage.migrate().await.context("applying migrations")?;
    match cli.command {
        Command::Serve => serve(config, storage, &applied).await,
        Command::Migrate => {
            if cli.json {
                println!("{}", serde_json::json!({ "applied": applied }));
            } else if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied migrations: {applied:?}");
            }
            Ok(())
        }
        Command::Client(command) => {
            let audit = Audit::new(storage.clone(), &config.audit);
            let result = client::run(*command, storage.as_ref(), &audit, cli.json).await;
            audit.flush().await;
            result
        }
        Command::User(command) => {
            let audit = Audit::new(storage.clone(), &config.audit);
            let result = user::run(*command, &config, storage.as_ref(), &audit, cli.json).await;
            audit.flush().await;
            result
        }
        Command::Keys(command) => {
            let audit = Audit::new(storage.clone(), &config.audit);
            let result = keys::run(command, &config, storage.as_ref(), &audit, cli.json).await;
            audit.flush().await;
            result
        }
    }
}

async fn serve(config: Config, storage: Arc<dyn Storage>, applied: &[i64]) -> anyhow::Result<()> {
    let backend = storage.backend_name();
    if !applied.is_empty() {
        tracing::info!(?applied, "applied database migrations");
    }
    if config.server.issuer.is_none() {
        tracing::warn!(
            "server.issuer is not set: using http://{} (set it to your public https URL in production)",
            config.server.listen
        );
    }
    let clock = Arc::new(SystemClock);
    let kek = load_encryption_key(&config)?;
    let keys = KeyStore::open(storage.as_ref(), kek, tessera_core::Clock::now(clock.as_ref()))
        .await
        .context("loading signing keys")?;
    let listen = config.server.listen;
    let state = AppState::new(config, storage, clock, Arc::new(keys));
    let server = Server::bind(state, listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %server.local_addr()?, backend = backend, "listening");
    server.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the configured backend: `sqlite://<path>` or `postgres://…`.
async fn open_storage(config: &Config) -> anyhow::Result<Arc<dyn Storage>> {
    let url = config.database.url.as_str();
    let timeout = std::time::Duration::from_millis(config.database.timeout_ms);
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let options = SqliteOptions {
            busy_timeout: timeout,
            readers: config.database.max_connections.clamp(1, 64),
            ..SqliteOptions::default()
        };
        let storage = SqliteStorage::open(std::path::Path::new(path), options)
            .with_context(|| format!("opening SQLite database {path}"))?;
        Ok(Arc::new(storage))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PostgresOptions {
            max_connections: config.database.max_connections,
            connect_timeout: timeout,
        };
        let storage = PostgresStorage::connect(url, options)
            .await
            .with_context(|| format!("connecting to {}", redact_url(url)))?;
        Ok(Arc::new(storage))
    } else {
        anyhow::bail!(
            "database.url {:?} must start with sqlite:// or postgres://",
            redact_url(url)
        )
    }
}

/// Hides a password in a connection URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn init_tracing(config: &Config, is_serve: bool) {
    use tracing_subscriber::EnvFilter;
    // CLI commands other than serve stay quiet unless asked: their output is the answer.
    let default_filter = if is_serve {
        config.log.filter.clone()
    } else {
        "warn".to_owned()
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://tessera.db"), "sqlite://tessera.db");
    }
}
