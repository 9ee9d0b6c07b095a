//! Decoding stored columns into domain values, shared by every backend: a column that cannot be
//! decoded is [`RepositoryError::Inconsistent`], naming the table, column and row.

use tessera_core::TokenHash;

use crate::RepositoryError;

/// The error for an undecodable column of row `id`.
#[must_use]
pub fn inconsistent(table: &'static str, column: &'static str, id: &str) -> RepositoryError {
    RepositoryError::Inconsistent {
        table,
        column,
        id: id.to_owned(),
    }
}

/// Decodes a 32-byte hash column.
///
/// # Errors
/// [`RepositoryError::Inconsistent`] when the column is not 32 bytes.
pub fn decode_hash(
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
///
/// # Errors
/// [`RepositoryError::Inconsistent`] when the text is not the expected JSON.
pub fn decode_json<T: serde::de::DeserializeOwned>(
    text: &str,
    table: &'static str,
    column: &'static str,
    id: &str,
) -> Result<T, RepositoryError> {
    serde_json::from_str(text).map_err(|_| inconsistent(table, column, id))
}

/// Encodes a value for a JSON column.
///
/// # Errors
/// [`RepositoryError::Backend`] if the value cannot be serialised.
pub fn encode_json<T: serde::Serialize>(value: &T) -> Result<String, RepositoryError> {
    serde_json::to_string(value).map_err(|e| RepositoryError::Backend(Box::new(e)))
}
