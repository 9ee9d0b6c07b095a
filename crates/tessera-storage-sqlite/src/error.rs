//! Mapping SQLite errors and undecodable values onto [`RepositoryError`].

use rusqlite::ErrorCode;
use tessera_core::TokenHash;
use tessera_storage::RepositoryError;

/// Maps a SQLite error: uniqueness violations are conflicts, lock contention and I/O trouble mean
/// the database is unavailable, anything else is a backend error.
pub(crate) fn map_err(error: rusqlite::Error) -> RepositoryError {
    if let rusqlite::Error::SqliteFailure(failure, _) = &error {
        match failure.code {
            ErrorCode::ConstraintViolation
                if matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                return RepositoryError::Conflict(error.to_string());
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OutOfMemory => return RepositoryError::Unavailable(Box::new(error)),
            _ => {}
        }
    }
    RepositoryError::Backend(Box::new(error))
}

/// An [`RepositoryError::Unavailable`] with a message.
pub(crate) fn unavailable(message: &str) -> RepositoryError {
    RepositoryError::Unavailable(message.into())
}

/// Decodes a 32-byte hash column.
pub(crate) fn decode_hash(
    bytes: Vec<u8>,
    table: &'static str,
    column: &'static str,
    id: &str,
) -> Result<TokenHash, RepositoryError> {
    bytes
        .try_into()
        .map(TokenHash)
        .map_err(|_| inconsistent(table, column, id))
}

/// Decodes a JSON column.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    text: &str,
    table: &'static str,
    column: &'static str,
    id: &str,
) -> Result<T, RepositoryError> {
    serde_json::from_str(text).map_err(|_| inconsistent(table, column, id))
}

/// Encodes a value for a JSON column.
pub(crate) fn encode_json<T: serde::Serialize>(value: &T) -> Result<String, RepositoryError> {
    serde_json::to_string(value).map_err(|e| RepositoryError::Backend(Box::new(e)))
}

pub(crate) fn inconsistent(table: &'static str, column: &'static str, id: &str) -> RepositoryError {
    RepositoryError::Inconsistent {
        table,
        column,
        id: id.to_owned(),
    }
}
