//! The refresh-token lifecycle (DESIGN §2, B1–B10, B18; RFC 6749 §6; RFC 9700 §4.14): when refresh
//! tokens are issued, when they expire, and what a refresh does. Pure: the server loads the
//! records, asks [`decide`], and carries out the plan in one atomic store operation.
//!
//! Every refresh token belongs to a grant (token family) and may be used `max_reuse + 1` times;
//! each use returns a new refresh token (its child) with a fresh expiry. With rotation on, a token
//! used up is *spent*; presenting it again means it leaked (or a response was lost): within the
//! grace window the caller gets a sibling and the grant lives, outside it the whole grant is
//! revoked, because the server cannot tell the thief from the victim and must stop both. With
//! rotation off (Keycloak's default mode), a used-up token is simply refused.

use serde::{Deserialize, Serialize};

use crate::authorize::OFFLINE_ACCESS;
use crate::client::{ClientType, RefreshTokenIssuance, RefreshTokenSettings};
use crate::grant::GrantError;
use crate::grant_record::{Grant, GrantKind};
use crate::scope::Scope;
use crate::session::SsoSession;
use crate::time::Timestamp;
use crate::token::TokenHash;

/// Refresh tokens for public clients (DESIGN §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicClientRefresh {
    /// Only with rotation and reuse detection on (or, later, DPoP-bound).
    #[default]
    RotationRequired,
    /// Never (HelseID's rule).
    Deny,
}

/// The effective refresh policy for one client: server defaults with the client's overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// When refresh tokens are issued.
    pub issuance: RefreshTokenIssuance,
    /// Online RT idle timeout, seconds.
    pub idle_timeout: u64,
    /// Offline RT idle timeout, seconds.
    pub offline_idle_timeout: u64,
    /// Offline grant maximum lifetime, seconds; 0 = unlimited.
    pub offline_max_lifetime: u64,
    /// Whether a used-up RT is *spent* (reuse detection and grace apply).
    pub rotation: bool,
    /// Uses of one RT beyond the first.
    pub max_reuse: u32,
    /// Whether a spent RT outside the grace window revokes its grant.
    pub reuse_detection: bool,
    /// Seconds after spending during which a re-presented RT gets a sibling.
    pub reuse_grace_window: u64,
    /// Public clients' rule.
    pub public_clients: PublicClientRefresh,
    /// Whether the client may hold offline grants.
    pub allow_offline_access: bool,
    /// Active grants per (user, client).
    pub max_active_grants: u32,
}

impl RefreshPolicy {
    /// This policy with a client's overrides applied.
    #[must_use]
    pub fn with_overrides(mut self, settings: &RefreshTokenSettings) -> Self {
        self.issuance = settings.issuance.unwrap_or(self.issuance);
        self.idle_timeout = settings.idle_timeout.unwrap_or(self.idle_timeout);
        self.offline_idle_timeout = settings.offline_idle_timeout.unwrap_or(self.offline_idle_timeout);
        self.offline_max_lifetime = settings.offline_max_lifetime.unwrap_or(self.offline_max_lifetime);
        self.rotation = settings.rotation.unwrap_or(self.rotation);
        self.max_reuse = settings.max_reuse.unwrap_or(self.max_reuse);
        self.reuse_detection = settings.reuse_detection.unwrap_or(self.reuse_detection);
        self.reuse_grace_window = settings.reuse_grace_window.unwrap_or(self.reuse_grace_window).min(60);
        self.allow_offline_access = settings.allow_offline_access.unwrap_or(self.allow_offline_access);
        self
    }

    /// How many times one refresh token may be used.
    #[must_use]
    pub fn allowed_uses(&self) -> u32 {
        self.max_reuse.saturating_add(1)
    }
}

/// A refresh token as stored (the token itself never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Its grant.
    pub grant_id: String,
    /// The token whose use issued it; `None` for the first of a grant.
    pub parent: Option<TokenHash>,
    /// The client it was issued to (DESIGN B8).
    pub client_id: String,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry if unused.
    pub expires_at: Timestamp,
    /// Times it has been used.
    pub use_count: u32,
    /// When it was used up (rotation on); a spent token presented again is a reuse.
    pub spent_at: Option<Timestamp>,
}

/// What kind of grant (and refresh token) a new authorization gets, if any refresh token at all.
#[must_use]
pub fn issuance(policy: &RefreshPolicy, client_type: ClientType, scope: &Scope) -> Option<GrantKind> {
    if policy.issuance == RefreshTokenIssuance::Never {
        return None;
    }
    // DESIGN §2 (seeds 001, 002): a public client cannot keep a secret, so its refresh tokens must
    // at least rotate with reuse detection; or it gets none at all.
    if client_type == ClientType::Public
        && (policy.public_clients == PublicClientRefresh::Deny || !(policy.rotation && policy.reuse_detection))
    {
        return None;
    }
    if scope.contains(OFFLINE_ACCESS) && policy.allow_offline_access {
        return Some(GrantKind::Offline);
    }
    (policy.issuance == RefreshTokenIssuance::Always).then_some(GrantKind::Online)
}

/// A new grant's hard end: the session's for an online grant; `offline_max_lifetime` (if set)
/// after creation for an offline one.
#[must_use]
pub fn grant_hard_end(
    kind: GrantKind,
    policy: &RefreshPolicy,
    session_expires_at: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    match kind {
        GrantKind::Online => Some(session_expires_at),
        GrantKind::Offline => (policy.offline_max_lifetime > 0).then(|| now.plus(policy.offline_max_lifetime)),
    }
}

/// When a refresh token issued at `now` expires if unused (B2): online at
/// `min(now + idle, session hard end)`, offline at `min(now + offline idle, grant max)`.
#[must_use]
pub fn expiry(
    kind: GrantKind,
    policy: &RefreshPolicy,
    grant_expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Timestamp {
    let idle = match kind {
        GrantKind::Online => policy.idle_timeout,
        GrantKind::Offline => policy.offline_idle_timeout,
    };
    let by_idle = now.plus(idle);
    grant_expires_at.map_or(by_idle, |hard_end| by_idle.min(hard_end))
}

/// Everything a refresh decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRequest<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    /// The presented token's record.
    pub token: &'a RefreshToken,
    /// Its grant.
    pub grant: &'a Grant,
    /// The grant's SSO session (online grants).
    pub session: Option<&'a SsoSession>,
    /// `scope` of the request, if any.
    pub requested_scope: Option<&'a str>,
    /// The client's policy.
    pub policy: &'a RefreshPolicy,
    /// The SSO session idle timeout.
    pub session_idle_timeout: u64,
    /// Now.
    pub now: Timestamp,
}

/// What a refresh does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshPlan {
    /// Use the token once more and issue its child.
    Rotate {
        /// The access token's scope (⊆ the grant's; RFC 6749 §6).
        access_scope: Scope,
        /// When the new refresh token expires.
        expires_at: Timestamp,
        /// The use count the store must still see (compare-and-set).
        expected_use_count: u32,
    },
    /// A spent token inside the grace window: issue a sibling, the grant lives.
    Sibling {
        /// The access token's scope.
        access_scope: Scope,
        /// When the new refresh token expires.
        expires_at: Timestamp,
    },
}

/// Decides a refresh (RFC 6749 §6, DESIGN B2–B8).
///
/// # Errors
/// [`GrantError`]: every refusal is `invalid_grant` except a too-wide scope (`invalid_scope`);
/// [`GrantError::RefreshTokenReused`] tells the caller to revoke the grant first.
pub fn decide(request: &RefreshRequest<'_>) -> Result<RefreshPlan, GrantError> {
    let RefreshRequest {
        client_id,
        token,
        grant,
        session,
        requested_scope,
        policy,
        session_idle_timeout,
        now,
    } = *request;
    // B8: a token works only for its client; we do not say why it failed.
    if token.client_id != client_id || grant.client_id != client_id {
        return Err(GrantError::ClientMismatch {
            expected: token.client_id.clone(),
            actual: client_id.to_owned(),
        });
    }
    if grant.revoked_at.is_some() {
        return Err(GrantError::GrantRevoked(grant.id.clone()));
    }
    // B9: an online grant dies with its session (logout, idle, hard end).
    if grant.kind == GrantKind::Online && !session.is_some_and(|s| s.is_active(now, session_idle_timeout)) {
        return Err(GrantError::SessionEnded(grant.session_id.clone().unwrap_or_default()));
    }
    if grant.expires_at.is_some_and(|hard_end| now >= hard_end) || now >= token.expires_at {
        return Err(GrantError::Expired);
    }
    // B3: reuse is judged before anything the caller controls (such as the scope it asks for).
    let is_sibling = match token.spent_at {
        None => false,
        Some(spent_at) if policy.rotation && now < spent_at.plus(policy.reuse_grace_window) => true,
        Some(_) if policy.rotation && policy.reuse_detection => {
            return Err(GrantError::RefreshTokenReused {
                grant_id: grant.id.clone(),
            })
        }
        Some(_) => return Err(GrantError::RefreshTokenSpent),
    };
    let grant_scope = Scope::parse(&grant.scope).unwrap_or_default();
    let access_scope = match requested_scope {
        None => grant_scope.clone(),
        Some(asked) => {
            let asked = Scope::parse(asked).map_err(|e| GrantError::MalformedScope(e.to_string()))?;
            // B7, RFC 6749 §6: narrower is fine (for the access token only); wider never.
            let missing = asked.missing_from(&grant_scope);
            if !missing.is_empty() {
                return Err(GrantError::ScopeNotAllowed { missing });
            }
            asked
        }
    };
    let expires_at = expiry(grant.kind, policy, grant.expires_at, now);
    if expires_at <= now {
        return Err(GrantError::Expired);
    }
    if is_sibling {
        Ok(RefreshPlan::Sibling {
            access_scope,
            expires_at,
        })
    } else {
        Ok(RefreshPlan::Rotate {
            access_scope,
            expires_at,
            expected_use_count: token.use_count,
        })
    }
}

/// `refresh_expires_in` (B18): seconds until the new token expires if unused; at least 1.
#[must_use]
pub fn expires_in(now: Timestamp, expires_at: Timestamp) -> u64 {
    now.seconds_until(expires_at).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: RefreshPolicy = RefreshPolicy {
        issuance: RefreshTokenIssuance::OfflineAccess,
        idle_timeout: 1800,
        offline_idle_timeout: 2_592_000,
        offline_max_lifetime: 0,
        rotation: true,
        max_reuse: 0,
        reuse_detection: true,
        reuse_grace_window: 0,
        public_clients: PublicClientRefresh::RotationRequired,
        allow_offline_access: true,
        max_active_grants: 50,
    };

    /// Login at 0: the session ends at 36 000 (10 h); the first RT was issued at `issued_at`.
    struct Case {
        policy: RefreshPolicy,
        kind: GrantKind,
        grant_expires_at: Option<i64>,
        session_last_active: i64,
        session_ended_at: Option<i64>,
        issued_at: i64,
        use_count: u32,
        spent_at: Option<i64>,
        revoked: bool,
        client: &'static str,
        scope: Option<&'static str>,
    }

    impl Default for Case {
        fn default() -> Self {
            Self {
                policy: DEFAULTS,
                kind: GrantKind::Online,
                grant_expires_at: Some(36_000),
                session_last_active: 0,
                session_ended_at: None,
                issued_at: 0,
                use_count: 0,
                spent_at: None,
                revoked: false,
                client: "app",
                scope: None,
            }
        }
    }

    #[track_caller]
    fn check(case: &Case, now: i64, expected: Result<&str, &str>) {
        let grant = Grant {
            id: "g".into(),
            user_id: "u".into(),
            client_id: "app".into(),
            scope: "openid profile offline_access".into(),
            kind: case.kind,
            session_id: Some("s".into()),
            created_at: Timestamp(0),
            last_used_at: Timestamp(0),
            expires_at: case.grant_expires_at.map(Timestamp),
            revoked_at: case.revoked.then_some(Timestamp(0)),
            revocation_reason: None,
        };
        let session = SsoSession {
            id: "s".into(),
            token_hash: TokenHash::of("cookie"),
            user_id: "u".into(),
            auth_time: Timestamp(0),
            amr: vec!["pwd".into()],
            acr: None,
            last_active_at: Timestamp(case.session_last_active),
            expires_at: Timestamp(36_000),
            ended_at: case.session_ended_at.map(Timestamp),
        };
        let token = RefreshToken {
            hash: TokenHash::of("rt"),
            grant_id: "g".into(),
            parent: None,
            client_id: "app".into(),
            issued_at: Timestamp(case.issued_at),
            expires_at: expiry(case.kind, &case.policy, grant.expires_at, Timestamp(case.issued_at)),
            use_count: case.use_count,
            spent_at: case.spent_at.map(Timestamp),
        };
        let request = RefreshRequest {
            client_id: case.client,
            token: &token,
            grant: &grant,
            session: Some(&session),
            requested_scope: case.scope,
            policy: &case.policy,
            session_idle_timeout: 1800,
            now: Timestamp(now),
        };
        let actual = decide(&request).map(|plan| match plan {
            RefreshPlan::Rotate {
                access_scope,
                expires_at,
                ..
            } => format!(
                "rotate {access_scope} until {} (in {})",
                expires_at.0,
                expires_in(Timestamp(now), expires_at)
            ),
            RefreshPlan::Sibling {
                access_scope,
                expires_at,
            } => format!("sibling {access_scope} until {}", expires_at.0),
        });
        let actual = actual.map_err(|e| e.to_string());
        let expected = expected.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(actual, expected, "now = {now}");
    }

    #[test]
    fn online_refresh_tokens_idle_out_and_end_with_the_session() {
        // B2: a new RT expires at min(now + 1800, session end 36 000); refresh_expires_in says so.
        // (Another client kept the session active until 2000, so only the RT's own idle expiry applies.)
        let case = Case {
            issued_at: 1000,
            session_last_active: 2000,
            ..Case::default()
        };
        check(
            &case,
            2799,
            Ok("rotate offline_access openid profile until 4599 (in 1800)"),
        );
        check(&case, 2800, Err("the grant has expired"));
        // Near the hard end the new RT is capped by the session (B18: never 0 or negative).
        let late = Case {
            issued_at: 35_000,
            session_last_active: 35_000,
            ..Case::default()
        };
        check(
            &late,
            35_999,
            Ok("rotate offline_access openid profile until 36000 (in 1)"),
        );
        check(&late, 36_000, Err("the SSO session s has ended"));
        // B9: the session ended (logout) or went idle.
        check(
            &Case {
                session_ended_at: Some(10),
                ..Case::default()
            },
            20,
            Err("the SSO session s has ended"),
        );
        let idle = Case {
            issued_at: 0,
            session_last_active: 0,
            policy: RefreshPolicy {
                idle_timeout: 3600,
                ..DEFAULTS
            },
            ..Case::default()
        };
        check(
            &idle,
            1799,
            Ok("rotate offline_access openid profile until 5399 (in 3600)"),
        );
        check(&idle, 1800, Err("the SSO session s has ended"));
    }

    #[test]
    fn offline_refresh_tokens_outlive_the_session_and_idle_out() {
        // B6: offline RTs survive logout and session expiry; 30 days idle; grant max if set.
        let offline = Case {
            kind: GrantKind::Offline,
            grant_expires_at: None,
            session_ended_at: Some(5),
            ..Case::default()
        };
        check(
            &offline,
            2_591_999,
            Ok("rotate offline_access openid profile until 5183999 (in 2592000)"),
        );
        check(&offline, 2_592_000, Err("the grant has expired"));
        let capped = Case {
            kind: GrantKind::Offline,
            grant_expires_at: Some(100_000),
            ..Case::default()
        };
        check(
            &capped,
            99_999,
            Ok("rotate offline_access openid profile until 100000 (in 1)"),
        );
        check(&capped, 100_000, Err("the grant has expired"));
    }

    #[test]
    fn reuse_grace_and_rotation_off() {
        // B3: a spent RT outside the grace window revokes the grant; inside it gets a sibling.
        let spent = Case {
            use_count: 1,
            spent_at: Some(100),
            ..Case::default()
        };
        check(
            &spent,
            100,
            Err("refresh token reused outside the grace window; revoking grant g"),
        );
        let grace = Case {
            use_count: 1,
            spent_at: Some(100),
            policy: RefreshPolicy {
                reuse_grace_window: 10,
                ..DEFAULTS
            },
            ..Case::default()
        };
        check(&grace, 109, Ok("sibling offline_access openid profile until 1909"));
        check(
            &grace,
            110,
            Err("refresh token reused outside the grace window; revoking grant g"),
        );
        // Reuse is judged before the scope: a wider scope does not dodge detection.
        check(
            &Case {
                scope: Some("admin"),
                ..Case {
                    use_count: 1,
                    spent_at: Some(100),
                    ..Case::default()
                }
            },
            101,
            Err("refresh token reused outside the grace window; revoking grant g"),
        );
        // Without reuse detection, or with rotation off: refused, the grant lives.
        let no_detection = Case {
            use_count: 1,
            spent_at: Some(100),
            policy: RefreshPolicy {
                reuse_detection: false,
                ..DEFAULTS
            },
            ..Case::default()
        };
        check(&no_detection, 101, Err("refresh token has no uses left"));
        let rotation_off = Case {
            use_count: 3,
            spent_at: Some(100),
            policy: RefreshPolicy {
                rotation: false,
                max_reuse: 2,
                reuse_grace_window: 10,
                ..DEFAULTS
            },
            ..Case::default()
        };
        check(&rotation_off, 101, Err("refresh token has no uses left"));
        // max_reuse: an RT with uses left rotates again.
        let reusable = Case {
            use_count: 2,
            policy: RefreshPolicy {
                max_reuse: 2,
                ..DEFAULTS
            },
            ..Case::default()
        };
        check(
            &reusable,
            10,
            Ok("rotate offline_access openid profile until 1810 (in 1800)"),
        );
        assert_eq!(
            RefreshPolicy {
                max_reuse: 2,
                ..DEFAULTS
            }
            .allowed_uses(),
            3
        );
    }

    #[test]
    fn scope_client_and_revocation() {
        // B7: narrower scope for the access token; wider is invalid_scope.
        check(
            &Case {
                scope: Some("openid"),
                ..Case::default()
            },
            10,
            Ok("rotate openid until 1810 (in 1800)"),
        );
        check(
            &Case {
                scope: Some("openid admin"),
                ..Case::default()
            },
            10,
            Err("scopes not allowed for client: admin"),
        );
        // B8: another client's RT.
        check(
            &Case {
                client: "other",
                ..Case::default()
            },
            10,
            Err("code was issued to client app, not other"),
        );
        // A revoked grant's RTs are dead.
        check(
            &Case {
                revoked: true,
                ..Case::default()
            },
            10,
            Err("grant g is revoked"),
        );
    }

    #[test]
    fn when_refresh_tokens_are_issued() {
        let scope = |s: &str| Scope::parse(s).unwrap_or_default();
        let offline = scope("openid offline_access");
        let online = scope("openid");
        #[track_caller]
        fn check_issuance(policy: RefreshPolicy, client_type: ClientType, scope: &Scope, expected: Option<GrantKind>) {
            assert_eq!(
                issuance(&policy, client_type, scope),
                expected,
                "{policy:?} {client_type:?} {scope}"
            );
        }
        use ClientType::{Confidential, Public};
        check_issuance(DEFAULTS, Confidential, &offline, Some(GrantKind::Offline));
        check_issuance(DEFAULTS, Confidential, &online, None);
        check_issuance(
            RefreshPolicy {
                issuance: RefreshTokenIssuance::Always,
                ..DEFAULTS
            },
            Confidential,
            &online,
            Some(GrantKind::Online),
        );
        check_issuance(
            RefreshPolicy {
                issuance: RefreshTokenIssuance::Never,
                ..DEFAULTS
            },
            Confidential,
            &offline,
            None,
        );
        check_issuance(
            RefreshPolicy {
                allow_offline_access: false,
                ..DEFAULTS
            },
            Confidential,
            &offline,
            None,
        );
        check_issuance(DEFAULTS, Public, &offline, Some(GrantKind::Offline));
        check_issuance(
            RefreshPolicy {
                public_clients: PublicClientRefresh::Deny,
                ..DEFAULTS
            },
            Public,
            &offline,
            None,
        );
        check_issuance(
            RefreshPolicy {
                rotation: false,
                ..DEFAULTS
            },
            Public,
            &offline,
            None,
        );
        check_issuance(
            RefreshPolicy {
                reuse_detection: false,
                ..DEFAULTS
            },
            Public,
            &offline,
            None,
        );
        // Hard ends: the session's for online grants; the offline maximum if set.
        assert_eq!(
            grant_hard_end(GrantKind::Online, &DEFAULTS, Timestamp(36_000), Timestamp(0)),
            Some(Timestamp(36_000))
        );
        assert_eq!(
            grant_hard_end(GrantKind::Offline, &DEFAULTS, Timestamp(36_000), Timestamp(0)),
            None
        );
        assert_eq!(
            grant_hard_end(
                GrantKind::Offline,
                &RefreshPolicy {
                    offline_max_lifetime: 100,
                    ..DEFAULTS
                },
                Timestamp(36_000),
                Timestamp(5)
            ),
            Some(Timestamp(105))
        );
    }
}
