//! Local users: the one service the CLI (and later the admin API) calls. Passwords are hashed with
//! argon2id (RFC 9106 parameters as recommended by OWASP) on a fixed pool of one thread per core,
//! never on the async executor, and never on the token path.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use tessera_core::{Timestamp, User, UserClaims};
use tessera_storage::{RepositoryError, Storage};

use crate::config::RevocationScope;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The input is not acceptable.
    #[error("invalid user: {0}")]
    Invalid(String),
    /// No such user.
    #[error("user {0:?} not found")]
    NotFound(String),
    /// The username is taken.
    #[error("username {0:?} is taken")]
    Exists(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(RepositoryError),
}

impl From<RepositoryError> for UserError {
    fn from(error: RepositoryError) -> Self {
        Self::Storage(error)
    }
}

/// Shortest accepted password (NIST SP 800-63B §5.1.1.2: at least 8).
pub const MIN_PASSWORD_LEN: usize = 8;

/// Creates a user with a random id.
///
/// # Errors
/// An invalid username or password, a taken username, storage failures.
pub async fn create(
    storage: &dyn Storage,
    rng: &mut (dyn RngCore + Send),
    now: Timestamp,
    username: &str,
    password: Option<&str>,
    claims: UserClaims,
) -> Result<User, UserError> {
    validate_username(username)?;
    let password_hash = match password {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    let mut random = [0u8; 16];
    rng.fill_bytes(&mut random);
    let user = User {
        id: tessera_jose::base64url_encode(&random),
        username: username.to_owned(),
        password_hash,
        claims,
        is_disabled: false,
        password_changed_at: password.map(|_| now),
        created_at: now,
        updated_at: now,
    };
    match storage.users().add(&user).await {
        Ok(()) => Ok(user),
        Err(RepositoryError::Conflict(_)) => Err(UserError::Exists(username.to_owned())),
        Err(error) => Err(error.into()),
    }
}

/// Finds a user by username, else by id.
///
/// # Errors
/// An unknown user; storage failures.
pub async fn show(storage: &dyn Storage, username_or_id: &str) -> Result<User, UserError> {
    if let Some(user) = storage.users().find_by_username(username_or_id).await? {
        return Ok(user);
    }
    storage
        .users()
        .lookup(username_or_id)
        .await?
        .ok_or_else(|| UserError::NotFound(username_or_id.to_owned()))
}

/// Sets a new password and revokes the user's grants as `revocation` says (DESIGN B10: a stolen
/// password's tokens must not outlive the change).
///
/// # Errors
/// A too-short password, an unknown user, storage failures.
pub async fn set_password(
    storage: &dyn Storage,
    now: Timestamp,
    username_or_id: &str,
    password: &str,
    revocation: RevocationScope,
) -> Result<User, UserError> {
    let mut user = show(storage, username_or_id).await?;
    user.password_hash = Some(hash_password(password).await?);
    user.password_changed_at = Some(now);
    let user = save(storage, now, user).await?;
    revoke_grants(storage, &user, now, revocation, "password_changed").await?;
    Ok(user)
}

/// Disables or enables a user. A disabled user cannot log in, and disabling revokes their grants
/// as `revocation` says (DESIGN B10).
///
/// # Errors
/// An unknown user, storage failures.
pub async fn set_disabled(
    storage: &dyn Storage,
    now: Timestamp,
    username_or_id: &str,
    is_disabled: bool,
    revocation: RevocationScope,
) -> Result<User, UserError> {
    let mut user = show(storage, username_or_id).await?;
    user.is_disabled = is_disabled;
    let user = save(storage, now, user).await?;
    if is_disabled {
        revoke_grants(storage, &user, now, revocation, "user_disabled").await?;
    }
    Ok(user)
}

async fn revoke_grants(
    storage: &dyn Storage,
    user: &User,
    now: Timestamp,
    revocation: RevocationScope,
    reason: &str,
) -> Result<(), UserError> {
    let revoked = match revocation {
        RevocationScope::All => storage.grants().revoke_for_user(&user.id, false, now, reason).await?,
        RevocationScope::Online => storage.grants().revoke_for_user(&user.id, true, now, reason).await?,
        RevocationScope::None => 0,
    };
    tracing::info!(user.id = %user.id, revoked, reason, "revoked the user's grants");
    Ok(())
}

/// Replaces a user's claims.
///
/// # Errors
/// An unknown user, storage failures.
pub async fn set_claims(
    storage: &dyn Storage,
    now: Timestamp,
    username_or_id: &str,
    claims: UserClaims,
) -> Result<User, UserError> {
    let mut user = show(storage, username_or_id).await?;
    user.claims = claims;
    save(storage, now, user).await
}

/// Deletes a user.
///
/// # Errors
/// An unknown user, storage failures.
pub async fn delete(storage: &dyn Storage, now: Timestamp, username_or_id: &str) -> Result<(), UserError> {
    let user = show(storage, username_or_id).await?;
    // A deleted user's tokens die with them, whatever the policy for password changes.
    revoke_grants(storage, &user, now, RevocationScope::All, "user_deleted").await?;
    if storage.users().remove(&user.id).await? {
        Ok(())
    } else {
        Err(UserError::NotFound(username_or_id.to_owned()))
    }
}

async fn save(storage: &dyn Storage, now: Timestamp, mut user: User) -> Result<User, UserError> {
    user.updated_at = now;
    if storage.users().update(&user).await? {
        Ok(user)
    } else {
        Err(UserError::NotFound(user.username))
    }
}

fn validate_username(username: &str) -> Result<(), UserError> {
    let is_valid = !username.is_empty()
        && username.chars().count() <= 255
        && !username.chars().any(|c| c.is_control() || c.is_whitespace());
    if is_valid {
        Ok(())
    } else {
        Err(UserError::Invalid(format!(
            "username {username:?} must be 1-255 characters without spaces or control characters"
        )))
    }
}

/// Hashes a password with argon2id on the password-hashing pool.
///
/// # Errors
/// A password shorter than [`MIN_PASSWORD_LEN`]; hashing failures.
pub async fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(UserError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let password = password.to_owned();
    on_argon2_pool(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| UserError::Hashing(e.to_string()))
    })
    .await
    .ok_or_else(|| UserError::Hashing("the password-hashing pool has stopped".into()))?
}

/// Each argon2id computation takes 19 MiB and tens of milliseconds of one core. They run on a
/// fixed pool of one thread per core, in arrival order: memory stays bounded (on tokio's blocking
/// pool, a burst of logins grew to 145 threads, each malloc arena keeping its 19 MiB blocks, and a
/// 3.9 GB heap) and a login flood becomes a queue, not an outage.
async fn on_argon2_pool<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    type Job = Box<dyn FnOnce() + Send>;
    static POOL: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = std::sync::OnceLock::new();
    let sender = POOL.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        for index in 0..threads {
            let receiver = std::sync::Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{index}"))
                .spawn(move || loop {
                    let next = receiver.lock().ok().and_then(|r| r.recv().ok());
                    match next {
                        Some(job) => job(),
                        None => break,
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password-hashing thread");
            }
        }
        std::sync::Mutex::new(sender)
    });
    let (reply, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(job());
    });
    sender.lock().ok()?.send(job).ok()?;
    result.await.ok()
}

/// A fixed hash to verify against when the username is unknown, so that a wrong username and a
/// wrong password take the same time and the login page cannot be used to find usernames.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Wy8g3ihKtFb0Qk7QK2cIx8ZxI7yB5GEMDoDcoJ3Qvw";

/// The outcome of checking a username and password.
#[derive(Debug)]
pub enum Authentication {
    /// Username and password are right, and the user may log in.
    Success(Box<User>),
    /// Username and password are right, but the user is disabled.
    Disabled,
    /// Wrong username or password (indistinguishable on purpose).
    Failed,
}

/// Checks a username and password, always spending one argon2id verification.
///
/// # Errors
/// Storage failures.
pub async fn authenticate(
    storage: &dyn Storage,
    username: &str,
    password: &str,
) -> Result<Authentication, RepositoryError> {
    let user = storage.users().find_by_username(username).await?;
    let stored_hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_owned());
    let password = password.to_owned();
    let is_match = on_argon2_pool(move || {
        PasswordHash::new(&stored_hash)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
    })
    .await
    .unwrap_or(false);
    Ok(match user {
        Some(user) if is_match && user.password_hash.is_some() => {
            if user.is_disabled {
                Authentication::Disabled
            } else {
                Authentication::Success(Box::new(user))
            }
        }
        _ => Authentication::Failed,
    })
}
