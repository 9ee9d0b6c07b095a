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
    if client_type == ClientType::Public && (policy.public_clients == PublicClientRefresh::Deny || !(policy.rotation && policy.reuse_detection)) {
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
pub fn grant_hard_end(kind: GrantKind, policy: &RefreshPolicy, session_expires_at: Timestamp, now: Timestamp) -> Option<Timestamp> {
    match kind {
        GrantKind::Online => Some(session_expires_at),
        GrantKind::Offline => (policy.offline_max_lifetime > 0).then(|| now.plus(policy.offline_max_lifetime)),
    }
}

/// When a refresh token issued at `now` expires if unused (B2): online at
/// `min(now + idle, session hard end)`, offline at `min(now + offline idle, grant max)`.
#[must_use]
pub fn expiry(kind: GrantKind, policy: &RefreshPolicy, grant_expires_at: Option<Timestamp>, now: Timestamp) -> Timestamp {
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
    let RefreshRequest { client_id, token, grant, session, requested_scope, policy, session_idle_timeout, now } = *request;
    // B8: a token works only for its client; we do not say why it failed.
    if token.client_id != client_id || grant.client_id != client_id {
        return Err(GrantError::ClientMismatch { expected: token.client_id.clone(), actual: client_id.to_owned() });
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
        Some(_) if policy.rotation && policy.reuse_detection => return Err(GrantError::RefreshTokenReused { grant_id: grant.id.clone() }),
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
        Ok(RefreshPlan::Sibling { access_scope, expires_at })
    } else {
        Ok(RefreshPlan::Rotate { access_scope, expires_at, expected_use_count: token.use_count })
    }
}

/// `refresh_expires_in` (B18): seconds until the new token expires if unused; at least 1.
#[must_use]
pub fn expires_in(now: Timestamp, expires_at: Timestamp) -> u64 {
    now.seconds_until(expires_at).max(1)
}
