//! The column lists of the tables whose rows are decoded by position, written once each.
//!
//! They are macros so that every statement stays a string literal (`concat!`), prepared and cached
//! as such; each decoder's doc names its list, and its width for offsets in joined rows is
//! [`count`] of it.

/// `users`, in the order `accounts::decode_user` reads them.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, claims, is_disabled, password_changed_at, created_at, updated_at"
    };
}

/// `sso_sessions`, in the order `accounts::decode_session` reads them.
macro_rules! session_columns {
    () => {
        "id, token_hash, user_id, auth_time, amr, acr, last_active_at, expires_at, ended_at"
    };
}

/// `grants`, in the order `grants::decode_grant` reads them.
macro_rules! grant_columns {
    () => {
        "id, user_id, client_id, scope, kind, session_id, created_at, last_used_at, expires_at, revoked_at, \
         revocation_reason"
    };
}

/// `refresh_tokens`, in the order `refresh::decode_token` reads them.
macro_rules! token_columns {
    () => {
        "hash, grant_id, parent_hash, client_id, issued_at, expires_at, use_count, spent_at"
    };
}

/// `events`, in the order `events::decode_event` reads them.
macro_rules! event_columns {
    () => {
        "id, at, kind, actor, user_id, client_id, grant_id, session_id, details"
    };
}

pub(crate) use {event_columns, grant_columns, session_columns, token_columns, user_columns};

/// How many columns a comma-separated list names.
pub(crate) const fn count(list: &str) -> usize {
    let bytes = list.as_bytes();
    let mut columns = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b',' {
            columns += 1;
        }
        i += 1;
    }
    columns
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_the_columns() {
        assert_eq!(super::count("id"), 1);
        assert_eq!(super::count("id, user_id, client_id"), 3);
        // The widths the joined refresh read relies on.
        assert_eq!(super::count(grant_columns!()), 11);
        assert_eq!(super::count(session_columns!()), 9);
    }
}
