//! Mapping SQLite errors and undecodable values onto [`RepositoryError`].

use rusqlite::ErrorCode;
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

pub(crate) use tessera_storage::codec::{decode_hash, decode_json, encode_json, inconsistent};
