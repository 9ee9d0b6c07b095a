//! SSO sessions: the server-side login behind the browser cookie (DESIGN §1).

use crate::time::Timestamp;
use crate::token::TokenHash;

/// A login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSession {
    /// Public id, used as the `sid` claim (OIDC Front/Back-Channel Logout); not a credential.
    pub id: String,
    /// SHA-256 of the cookie value (the credential).
    pub token_hash: TokenHash,
    /// The user.
    pub user_id: String,
    /// When the user authenticated (`auth_time`).
    pub auth_time: Timestamp,
    /// Authentication methods (`amr`, RFC 8176), e.g. `["pwd"]`.
    pub amr: Vec<String>,
    /// Authentication context class (`acr`), if any.
    pub acr: Option<String>,
    /// Last activity: a login, an authorization, or a refresh of one of its online grants.
    pub last_active_at: Timestamp,
    /// Hard end: `auth_time` + `sessions.max_lifetime`; nothing extends it.
    pub expires_at: Timestamp,
    /// When it was ended (logout, admin), if it was.
    pub ended_at: Option<Timestamp>,
}

impl SsoSession {
    /// Whether the session is usable at `now`: not ended, before its hard end, and active within
    /// the last `idle_timeout` seconds.
    #[must_use]
    pub fn is_active(&self, now: Timestamp, idle_timeout: u64) -> bool {
        self.ended_at.is_none() && now < self.expires_at && now < self.last_active_at.plus(idle_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(ended_at: Option<i64>, now: i64, expected: bool) {
        let session = SsoSession {
            id: "s".into(),
            token_hash: TokenHash::of("t"),
            user_id: "u".into(),
            auth_time: Timestamp(0),
            amr: vec!["pwd".into()],
            acr: None,
            last_active_at: Timestamp(100),
            expires_at: Timestamp(1000),
            ended_at: ended_at.map(Timestamp),
        };
        assert_eq!(session.is_active(Timestamp(now), 300), expected, "at {now}");
    }

    #[test]
    fn activity() {
        check(None, 100, true);
        check(None, 399, true);
        check(None, 400, false); // idle
        check(Some(200), 150, false); // ended
        let mut late = 999;
        check(None, late, false); // idle as well as near the hard end
        late = 1000;
        check(None, late, false);
    }
}
