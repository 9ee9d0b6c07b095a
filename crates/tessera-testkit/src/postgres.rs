//! A throwaway PostgreSQL database per test.
//!
//! `TESSERA_TEST_DATABASE_URL` names a server and a database to connect to for administration
//! (e.g. `postgres://postgres@127.0.0.1:5432/postgres`). Unset: PostgreSQL tests are skipped, with
//! a banner written straight to the process's stderr so it shows even under the test harness's
//! output capture. Set but unreachable: the test panics, so CI cannot pass without PostgreSQL.

use std::future::Future;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
use tokio_postgres::NoTls;

/// The environment variable naming the administration database.
pub const DATABASE_URL_ENV: &str = "TESSERA_TEST_DATABASE_URL";

const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A uniquely named database created for one test. Drop it with [`TestDatabase::drop_database`]
/// (or use [`with_test_database`], which always does).
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `tessera_test_<pid>_<random hex>` on the server named by
    /// `TESSERA_TEST_DATABASE_URL`. Returns `None`, after printing a skip banner, when the
    /// variable is unset or empty.
    ///
    /// # Panics
    /// When the variable is set but the server cannot be reached or the database cannot be made.
    pub async fn create() -> Option<Self> {
        let admin_url = match std::env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                skip_banner();
                return None;
            }
        };
        let admin = admin_connect(&admin_url).await;
        let name = format!("tessera_test_{}_{:016x}", std::process::id(), rand::random::<u64>());
        if let Err(error) = admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await {
            panic!("creating test database {name} failed: {error}");
        }
        Some(Self {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }

    /// The URL of the test database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of the test database.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, disconnecting anyone still connected. A failure is reported on stderr,
    /// not raised: it must not hide the test's own outcome.
    ///
    /// # Panics
    /// When the server has become unreachable.
    pub async fn drop_database(self) {
        let admin = admin_connect(&self.admin_url).await;
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(error) = admin.batch_execute(&sql).await {
            let _ = writeln!(
                std::io::stderr(),
                "warning: dropping test database {} failed: {error}",
                self.name
            );
        }
    }
}

/// Runs `body` with the URL of a fresh test database, then drops the database, even if `body`
/// panicked (the panic is then resumed). Returns `None` without running `body` when PostgreSQL
/// tests are skipped.
///
/// # Panics
/// As [`TestDatabase::create`], and with `body`'s panic.
pub async fn with_test_database<T, F, Fut>(body: F) -> Option<T>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = T>,
{
    let database = TestDatabase::create().await?;
    let url = database.url().to_owned();
    let outcome = AssertUnwindSafe(async move { body(url).await }).catch_unwind().await;
    database.drop_database().await;
    match outcome {
        Ok(value) => Some(value),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn admin_connect(url: &str) -> tokio_postgres::Client {
    let connected = tokio::time::timeout(ADMIN_CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
        .await
        .map_err(|_| format!("timed out after {ADMIN_CONNECT_TIMEOUT:?}"))
        .and_then(|result| result.map_err(|e| with_sources(&e)));
    match connected {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        Err(error) => panic!(
            "{DATABASE_URL_ENV} is set but PostgreSQL is unreachable ({error}). Start PostgreSQL, \
             fix the URL, or unset {DATABASE_URL_ENV} to skip the PostgreSQL tests."
        ),
    }
}

/// An error's message followed by its sources' (the driver's own message is terse).
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// `url` with its database replaced by `name` (URL or `key=value` form).
fn with_database(url: &str, name: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (path, query) = rest.find('?').map_or((rest, ""), |at| rest.split_at(at));
            let authority = path.split_once('/').map_or(path, |(authority, _)| authority);
            format!("{scheme}://{authority}/{name}{query}")
        }
        None => format!("{url} dbname={name}"),
    }
}

fn skip_banner() {
    // Straight to the process's stderr: `eprintln!` would be captured by the test harness.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n!!! PostgreSQL tests SKIPPED: {DATABASE_URL_ENV} is not set. Run with \
         {DATABASE_URL_ENV}=postgres://postgres@127.0.0.1:5432/postgres to include them \
         (.ci/run does). !!!\n"
    );
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_urls() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/t"),
            (
                "postgres://u:p@h/postgres?sslmode=disable",
                "postgres://u:p@h/t?sslmode=disable",
            ),
            ("postgresql://h", "postgresql://h/t"),
            ("host=h user=u", "host=h user=u dbname=t"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "t"), expected, "{url}");
        }
    }
}
