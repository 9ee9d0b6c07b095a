//! Local users: a username, an argon2id password hash (PHC string), standard OIDC claims.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A local user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The stable subject identifier (`sub`): random, never reused, never the username.
    pub id: String,
    /// The login name, unique.
    pub username: String,
    /// argon2id PHC string; `None` means the user cannot log in with a password.
    pub password_hash: Option<String>,
    /// Standard claims (OIDC Core §5.1).
    pub claims: UserClaims,
    /// A disabled user cannot log in, and their tokens stop working (DESIGN B10).
    pub is_disabled: bool,
    /// When the password was last set.
    pub password_changed_at: Option<Timestamp>,
    /// When the user was created.
    pub created_at: Timestamp,
    /// When the user was last changed.
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_disabled", &self.is_disabled)
            .finish_non_exhaustive()
    }
}

/// OIDC Core §5.1 standard claims a local user may have. Stored as one JSON document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(missing_docs, reason = "each field is the OIDC Core §5.1 claim of the same name")]
pub struct UserClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
}
