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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The claims each OIDC scope releases (OIDC Core §5.4).
const PROFILE_CLAIMS: [&str; 11] = [
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
];
const EMAIL_CLAIMS: [&str; 2] = ["email", "email_verified"];
const PHONE_CLAIMS: [&str; 2] = ["phone_number", "phone_number_verified"];

/// Every claim Tessera can release, for discovery's `claims_supported`.
pub const CLAIMS_SUPPORTED: [&str; 19] = [
    "sub",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "auth_time",
];

impl User {
    /// The user's claims that `scope` releases (OIDC Core §5.4), without `sub`.
    #[must_use]
    pub fn claims_for_scope(&self, scope: &crate::Scope) -> serde_json::Map<String, serde_json::Value> {
        let mut released = serde_json::Map::new();
        let all = match serde_json::to_value(&self.claims) {
            Ok(serde_json::Value::Object(all)) => all,
            _ => serde_json::Map::new(),
        };
        let mut release = |names: &[&str]| {
            for name in names {
                if let Some(value) = all.get(*name) {
                    released.insert((*name).to_owned(), value.clone());
                }
            }
        };
        if scope.contains("profile") {
            release(&PROFILE_CLAIMS);
        }
        if scope.contains("email") {
            release(&EMAIL_CLAIMS);
        }
        if scope.contains("phone") {
            release(&PHONE_CLAIMS);
        }
        if scope.contains("profile") {
            released.insert("preferred_username".into(), self.username.clone().into());
            released.insert("updated_at".into(), self.updated_at.0.into());
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_release_their_claims() {
        let user = User {
            id: "u1".into(),
            username: "ada".into(),
            password_hash: None,
            claims: UserClaims {
                name: Some("Ada".into()),
                email: Some("ada@example.org".into()),
                email_verified: Some(true),
                phone_number: Some("+47".into()),
                ..UserClaims::default()
            },
            is_disabled: false,
            password_changed_at: None,
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
        };
        let claims = |scope: &str| {
            serde_json::Value::Object(user.claims_for_scope(&crate::Scope::parse(scope).unwrap_or_default()))
        };
        assert_eq!(claims("openid"), serde_json::json!({}));
        assert_eq!(
            claims("openid email"),
            serde_json::json!({ "email": "ada@example.org", "email_verified": true })
        );
        assert_eq!(
            claims("profile"),
            serde_json::json!({ "name": "Ada", "preferred_username": "ada", "updated_at": 2 })
        );
        assert_eq!(claims("phone"), serde_json::json!({ "phone_number": "+47" }));
    }
}
