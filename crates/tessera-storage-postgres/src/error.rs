//! Mapping PostgreSQL and pool errors onto [`RepositoryError`].

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tessera_storage::RepositoryError;
use tokio_postgres::error::SqlState;

/// Maps a driver error: SQLSTATE 23505 is a conflict; connection exceptions (class 08),
/// insufficient resources (53), shutdowns (57P01–57P04), a missing database (3D000), retryable
/// transaction failures (40001, 40P01), I/O failures, timeouts and closed connections mean the
/// database is unavailable; anything else is a backend error.
pub(crate) fn map_pg(error: tokio_postgres::Error) -> RepositoryError {
    if let Some(state) = error.code() {
        if *state == SqlState::UNIQUE_VIOLATION {
            let message = error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_owned());
            return RepositoryError::Conflict(message);
        }
        let code = state.code();
        // Transient: the database is down, overloaded, gone for now (3D000 while a database is
        // renamed or being restored, 57P04 dropped), or asks the transaction to be retried
        // (40001 serialization failure, 40P01 deadlock): 503, which clients retry.
        if code.starts_with("08")
            || code.starts_with("53")
            || matches!(
                code,
                "57P01" | "57P02" | "57P03" | "57P04" | "3D000" | "40001" | "40P01"
            )
        {
            return RepositoryError::Unavailable(Box::new(error));
        }
        return RepositoryError::Backend(Box::new(error));
    }
    if is_connection_failure(&error) {
        RepositoryError::Unavailable(Box::new(error))
    } else {
        RepositoryError::Backend(Box::new(error))
    }
}

/// Whether a non-SQLSTATE error is about the connection rather than the query. The driver's error
/// kinds are private, so this looks at `is_closed`, an I/O source and the kind's fixed text.
fn is_connection_failure(error: &tokio_postgres::Error) -> bool {
    let text = error.to_string();
    error.is_closed()
        || error.source().is_some_and(|source| source.is::<std::io::Error>())
        || [
            "error connecting to server",
            "timeout waiting for server",
            "error communicating with the server",
            "error performing TLS handshake",
        ]
        .iter()
        .any(|prefix| text.starts_with(prefix))
}

/// Maps a failure to obtain a pooled connection: always unavailable, except a misbuilt pool.
pub(crate) fn map_pool(error: PoolError) -> RepositoryError {
    match error {
        PoolError::NoRuntimeSpecified => RepositoryError::Backend(Box::new(error)),
        PoolError::Backend(error) => match map_pg(error) {
            RepositoryError::Backend(source) => RepositoryError::Unavailable(source),
            other => other,
        },
        other => RepositoryError::Unavailable(Box::new(other)),
    }
}

pub(crate) use tessera_storage::codec::{decode_hash, decode_json, encode_json, inconsistent};

/// Reads column `index` of `row`.
pub(crate) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    index: usize,
) -> Result<T, RepositoryError> {
    row.try_get(index).map_err(map_pg)
}
