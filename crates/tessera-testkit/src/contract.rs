//! The storage contract suite: the behaviour every [`Storage`] backend must show.
//!
//! [`run_all`] runs every check; each is also public to run alone. Checks panic with a message
//! naming the backend and what went wrong. Every check uses fresh random ids, so the suite can
//! run twice on one database (which is itself a useful check), and asserts only about its own
//! rows, except where a bulk operation's count is at least what it added.

use std::fmt::Debug;

use futures::future::join_all;
use tessera_core::client::{RefreshTokenIssuance, RefreshTokenSettings};
use tessera_core::keys::SigningKeyRecord;
use tessera_core::{AccessTokenFormat, AuthMethod, Client, ClientSettings, ClientType, Timestamp, TokenHash};
use tessera_storage::{AccessTokenRecord, RepositoryError, Storage};
use tessera_types::token::GrantType;
use tessera_types::JwsAlgorithm;

/// A fixed "now" for the suite (2023-11-14T22:13:20Z).
const NOW: Timestamp = Timestamp(1_700_000_000);

/// Runs every check, in order, against `storage`. Runs [`Storage::migrate`] first.
///
/// # Panics
/// On the first behaviour that breaks the contract.
pub async fn run_all(storage: &dyn Storage) {
    migrate_is_idempotent(storage).await;
    ping_answers(storage).await;
    clients_crud(storage).await;
    client_settings_round_trip(storage).await;
    signing_key_rotation(storage).await;
    signing_key_remove_retired(storage).await;
    jti_fresh_replay_and_expiry(storage).await;
    jti_concurrent_registration(storage).await;
    access_tokens_add_find_cleanup(storage).await;
}

/// `migrate` succeeds, and a second call applies nothing.
pub async fn migrate_is_idempotent(storage: &dyn Storage) {
    let first = ok(storage, "first migrate", storage.migrate().await);
    let second = ok(storage, "second migrate", storage.migrate().await);
    check(
        storage,
        second.is_empty(),
        format!("a second migrate must apply nothing; applied {second:?} (first call: {first:?})"),
    );
}

/// `ping` answers.
pub async fn ping_answers(storage: &dyn Storage) {
    ok(storage, "ping", storage.ping().await);
}

/// Clients: add, duplicate add (conflict), lookup, list, update, remove, and the missing cases.
pub async fn clients_crud(storage: &dyn Storage) {
    let repo = storage.clients();
    let id = unique("client");
    let client = minimal_client(&id);
    ok(storage, "add client", repo.add(&client).await);
    expect_conflict(storage, "adding a client id twice", repo.add(&client).await);

    let found = ok(storage, "lookup client", repo.lookup(&id).await);
    check_eq(storage, "looked-up client", found.as_ref(), Some(&client));
    let missing = ok(storage, "lookup missing client", repo.lookup(&unique("nobody")).await);
    check_eq(storage, "lookup of a missing client", missing, None);

    let other = minimal_client(&format!("{id}-b"));
    ok(storage, "add second client", repo.add(&other).await);
    let all = ok(storage, "list clients", repo.list().await);
    check(
        storage,
        all.windows(2).all(|pair| pair[0].id < pair[1].id),
        "clients.list must be ordered by id",
    );
    for expected in [&client, &other] {
        check(
            storage,
            all.contains(expected),
            format!("clients.list must contain {}", expected.id),
        );
    }

    let mut changed = client.clone();
    changed.secret_hash = Some(TokenHash::of("a new secret"));
    changed.settings.name = Some("renamed".into());
    changed.settings.scopes = vec!["read".into(), "write".into()];
    changed.updated_at = NOW.plus(60);
    check(
        storage,
        ok(storage, "update client", repo.update(&changed).await),
        "updating an existing client must return true",
    );
    let found = ok(storage, "lookup updated client", repo.lookup(&id).await);
    check_eq(storage, "updated client", found.as_ref(), Some(&changed));
    changed.secret_hash = None;
    ok(storage, "clear secret", repo.update(&changed).await);
    let found = ok(storage, "lookup client without secret", repo.lookup(&id).await);
    check_eq(storage, "client with cleared secret", found.as_ref(), Some(&changed));
    let ghost = minimal_client(&unique("ghost"));
    check(
        storage,
        !ok(storage, "update missing client", repo.update(&ghost).await),
        "updating a missing client must return false",
    );

    check(
        storage,
        ok(storage, "remove client", repo.remove(&id).await),
        "removing an existing client must return true",
    );
    check(
        storage,
        !ok(storage, "remove client again", repo.remove(&id).await),
        "removing a missing client must return false",
    );
    let gone = ok(storage, "lookup removed client", repo.lookup(&id).await);
    check_eq(storage, "lookup of a removed client", gone, None);
    ok(storage, "remove second client", repo.remove(&other.id).await);
}

/// A client with every setting set survives storage unchanged.
pub async fn client_settings_round_trip(storage: &dyn Storage) {
    let repo = storage.clients();
    let id = unique("full-client");
    let client = Client {
        id: id.clone(),
        secret_hash: Some(TokenHash::of("secret")),
        settings: ClientSettings {
            name: Some("Every Setting «ünïcødé»".into()),
            client_type: ClientType::Confidential,
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks: Some(serde_json::json!({
                "keys": [{"kty": "EC", "crv": "P-256", "x": "abc", "y": "def", "kid": "k1"}]
            })),
            jwks_uri: Some("https://client.example/jwks".into()),
            redirect_uris: vec!["https://client.example/cb".into(), "http://127.0.0.1:8080/cb".into()],
            grant_types: GrantType::ALL.to_vec(),
            scopes: vec!["openid".into(), "offline_access".into(), "api:read".into()],
            audiences: vec!["https://api.example".into(), "urn:other".into()],
            access_token_format: AccessTokenFormat::Opaque,
            access_token_algorithm: Some(JwsAlgorithm::EdDSA),
            id_token_algorithm: Some(JwsAlgorithm::RS256),
            access_token_lifetime: Some(300),
            id_token_lifetime: Some(600),
            refresh_tokens: RefreshTokenSettings {
                issuance: Some(RefreshTokenIssuance::Always),
                idle_timeout: Some(1800),
                offline_idle_timeout: Some(2_592_000),
                offline_max_lifetime: Some(0),
                rotation: Some(true),
                max_reuse: Some(2),
                reuse_detection: Some(false),
                reuse_grace_window: Some(30),
                allow_offline_access: Some(true),
            },
        },
        created_at: NOW,
        updated_at: NOW.plus(1),
    };
    ok(storage, "add full client", repo.add(&client).await);
    let found = ok(storage, "lookup full client", repo.lookup(&id).await);
    check_eq(storage, "client with every setting", found.as_ref(), Some(&client));
    let listed = ok(storage, "list clients", repo.list().await);
    check(
        storage,
        listed.contains(&client),
        "clients.list must return the full client unchanged",
    );
    ok(storage, "remove full client", repo.remove(&id).await);
}

/// `rotate` adds the key and retires the other current keys of its algorithm only; a duplicate
/// `kid` is a conflict that changes nothing; `list` is ordered by creation then `kid`.
pub async fn signing_key_rotation(storage: &dyn Storage) {
    let repo = storage.signing_keys();
    let prefix = unique("kid");
    let old_es = key(&format!("{prefix}-a"), JwsAlgorithm::ES256, NOW, None);
    let rs = key(&format!("{prefix}-b"), JwsAlgorithm::RS256, NOW, None);
    let new_es = key(&format!("{prefix}-c"), JwsAlgorithm::ES256, NOW.plus(10), None);
    let retire_at = NOW.plus(3600);

    ok(storage, "add first ES256 key", repo.rotate(&old_es, None).await);
    ok(storage, "add RS256 key", repo.rotate(&rs, None).await);
    let mine = own_keys(storage, &prefix).await;
    check_eq(
        storage,
        "keys added without retiring",
        mine,
        vec![old_es.clone(), rs.clone()],
    );

    ok(storage, "rotate ES256", repo.rotate(&new_es, Some(retire_at)).await);
    let mut retired_es = old_es.clone();
    retired_es.retires_at = Some(retire_at);
    let expected = vec![retired_es, rs, new_es.clone()];
    let mine = own_keys(storage, &prefix).await;
    check_eq(
        storage,
        "keys after rotation (old ES256 retiring, RS256 and new key untouched)",
        &mine,
        &expected,
    );

    let mut duplicate = new_es.clone();
    duplicate.public_jwk = "{\"other\":true}".into();
    expect_conflict(
        storage,
        "rotating in an existing kid",
        repo.rotate(&duplicate, Some(NOW.plus(7200))).await,
    );
    let mine = own_keys(storage, &prefix).await;
    check_eq(storage, "keys after a failed rotation (unchanged)", &mine, &expected);
    check(
        storage,
        mine.windows(2)
            .all(|pair| (pair[0].created_at, &pair[0].kid) <= (pair[1].created_at, &pair[1].kid)),
        "signing_keys.list must be ordered by created_at, then kid",
    );
}

/// `remove_retired` deletes exactly the keys retired at or before `now`.
pub async fn signing_key_remove_retired(storage: &dyn Storage) {
    let repo = storage.signing_keys();
    let prefix = unique("kid");
    let early = key(&format!("{prefix}-1"), JwsAlgorithm::EdDSA, NOW, Some(NOW.plus(10)));
    let late = key(&format!("{prefix}-2"), JwsAlgorithm::EdDSA, NOW, Some(NOW.plus(1000)));
    let current = key(&format!("{prefix}-3"), JwsAlgorithm::EdDSA, NOW, None);
    for k in [&early, &late, &current] {
        ok(storage, "add key", repo.rotate(k, None).await);
    }

    ok(storage, "remove_retired", repo.remove_retired(NOW.plus(9)).await);
    let mine = own_keys(storage, &prefix).await;
    check_eq(
        storage,
        "keys after remove_retired before any retirement",
        &mine,
        &vec![early.clone(), late.clone(), current.clone()],
    );

    let removed = ok(storage, "remove_retired", repo.remove_retired(NOW.plus(10)).await);
    check(
        storage,
        removed >= 1,
        format!("remove_retired at the exact retirement time must delete the key (deleted {removed})"),
    );
    let mine = own_keys(storage, &prefix).await;
    check_eq(
        storage,
        "keys after the first retirement",
        &mine,
        &vec![late, current.clone()],
    );

    ok(storage, "remove_retired", repo.remove_retired(NOW.plus(5000)).await);
    let mine = own_keys(storage, &prefix).await;
    check_eq(storage, "keys after all retirements", &mine, &vec![current]);
}

/// `register_jti`: a new pair is fresh, a live one is a replay, an expired one is fresh again;
/// pairs are per client.
pub async fn jti_fresh_replay_and_expiry(storage: &dyn Storage) {
    let repo = storage.client_assertions();
    let client = unique("assertion-client");
    let jti = unique("jti");
    let expires = NOW.plus(60);
    let cases = [
        ("first use", &client, &jti, expires, NOW, true),
        ("replay", &client, &jti, expires, NOW.plus(1), false),
        (
            "replay one second before expiry",
            &client,
            &jti,
            NOW.plus(120),
            NOW.plus(59),
            false,
        ),
        ("reuse once expired", &client, &jti, NOW.plus(120), expires, true),
        (
            "replay of the reused jti",
            &client,
            &jti,
            NOW.plus(120),
            NOW.plus(61),
            false,
        ),
    ];
    for (what, client_id, jti, expires_at, now, fresh) in cases {
        let got = ok(
            storage,
            "register_jti",
            repo.register_jti(client_id, jti, expires_at, now).await,
        );
        check_eq(storage, &format!("register_jti: {what}"), got, fresh);
    }
    let other_client = unique("assertion-client");
    let got = ok(
        storage,
        "register_jti",
        repo.register_jti(&other_client, &jti, expires, NOW).await,
    );
    check_eq(storage, "register_jti: same jti, other client", got, true);
}

/// Of 20 concurrent `register_jti` calls with one pair, exactly one is fresh; likewise for 20
/// concurrent reuses of an expired pair.
pub async fn jti_concurrent_registration(storage: &dyn Storage) {
    let repo = storage.client_assertions();
    let client = unique("racing-client");
    let jti = unique("jti");
    let race = |expires_at: Timestamp, now: Timestamp| {
        join_all((0..20).map(|_| repo.register_jti(&client, &jti, expires_at, now)))
    };

    let results = race(NOW.plus(30), NOW).await;
    let fresh = count_fresh(storage, results);
    check_eq(storage, "fresh results of 20 concurrent first uses", fresh, 1);

    let results = race(NOW.plus(90), NOW.plus(30)).await;
    let fresh = count_fresh(storage, results);
    check_eq(storage, "fresh results of 20 concurrent reuses after expiry", fresh, 1);
}

/// Access tokens: add (duplicate hash or `jti` is a conflict), `find_by_hash` (missing is `None`),
/// and `cleanup_expired` deletes only expired tokens, at most `limit` at a time.
pub async fn access_tokens_add_find_cleanup(storage: &dyn Storage) {
    let repo = storage.access_tokens();
    let expired = token("expired", NOW.0 - 3600, NOW.0 - 1, None, vec![]);
    let live = token(
        "live",
        NOW.0,
        NOW.0 + 3600,
        Some("user-42"),
        vec!["https://api.example".into(), "urn:b".into()],
    );
    let machine = token("machine", NOW.0, NOW.0 + 60, None, vec![]);
    for t in [&expired, &live, &machine] {
        ok(storage, "add access token", repo.add(t).await);
    }
    expect_conflict(storage, "adding a token hash twice", repo.add(&live).await);
    let mut same_jti = token("same-jti", NOW.0, NOW.0 + 60, None, vec![]);
    same_jti.jti.clone_from(&live.jti);
    expect_conflict(storage, "adding a token jti twice", repo.add(&same_jti).await);

    for t in [&expired, &live, &machine] {
        let found = ok(storage, "find_by_hash", repo.find_by_hash(&t.hash).await);
        check_eq(storage, "found access token", found.as_ref(), Some(t));
    }
    let missing = ok(
        storage,
        "find_by_hash of a missing token",
        repo.find_by_hash(&TokenHash::of(&unique("no-token"))).await,
    );
    check_eq(storage, "find_by_hash of a missing token", missing, None);

    let mut removed = 0;
    loop {
        let batch = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 1000).await);
        if batch == 0 {
            break;
        }
        removed += batch;
    }
    check(
        storage,
        removed >= 1,
        format!("cleanup_expired must delete the expired token (deleted {removed})"),
    );
    let found = ok(storage, "find_by_hash", repo.find_by_hash(&expired.hash).await);
    check_eq(storage, "expired token after cleanup", found, None);
    for t in [&live, &machine] {
        let found = ok(storage, "find_by_hash", repo.find_by_hash(&t.hash).await);
        check_eq(storage, "live token after cleanup", found.as_ref(), Some(t));
    }

    for n in 0..3 {
        let t = token(&format!("old-{n}"), NOW.0 - 100, NOW.0 - 50, None, vec![]);
        ok(storage, "add expired token", repo.add(&t).await);
    }
    let first = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired with limit 2 of 3 expired", first, 2);
    let second = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired of the last expired token", second, 1);
}

fn minimal_client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        secret_hash: Some(TokenHash::of(&format!("secret of {id}"))),
        settings: ClientSettings {
            name: None,
            client_type: ClientType::Confidential,
            auth_method: AuthMethod::ClientSecretBasic,
            jwks: None,
            jwks_uri: None,
            redirect_uris: Vec::new(),
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["read".into()],
            audiences: Vec::new(),
            access_token_format: AccessTokenFormat::Jwt,
            access_token_algorithm: None,
            id_token_algorithm: None,
            access_token_lifetime: None,
            id_token_lifetime: None,
            refresh_tokens: RefreshTokenSettings::default(),
        },
        created_at: NOW,
        updated_at: NOW,
    }
}

fn key(kid: &str, algorithm: JwsAlgorithm, created_at: Timestamp, retires_at: Option<Timestamp>) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        algorithm,
        public_jwk: format!("{{\"kid\":\"{kid}\",\"alg\":\"{algorithm}\"}}"),
        encrypted_private_key: kid.bytes().rev().chain([0, 255, 7]).collect(),
        created_at,
        activates_at: created_at.plus(5),
        retires_at,
    }
}

fn token(
    label: &str,
    issued_at: i64,
    expires_at: i64,
    subject: Option<&str>,
    audience: Vec<String>,
) -> AccessTokenRecord {
    let jti = unique(label);
    AccessTokenRecord {
        hash: TokenHash::of(&format!("token {jti}")),
        client_id: "token-client".into(),
        subject: subject.map(str::to_owned),
        scope: "read write".into(),
        audience,
        issued_at: Timestamp(issued_at),
        expires_at: Timestamp(expires_at),
        jti,
    }
}

/// The stored keys whose `kid` starts with `prefix`, in list order.
async fn own_keys(storage: &dyn Storage, prefix: &str) -> Vec<SigningKeyRecord> {
    ok(storage, "list signing keys", storage.signing_keys().list().await)
        .into_iter()
        .filter(|k| k.kid.starts_with(prefix))
        .collect()
}

fn count_fresh(storage: &dyn Storage, results: Vec<Result<bool, RepositoryError>>) -> usize {
    results
        .into_iter()
        .map(|result| ok(storage, "concurrent register_jti", result))
        .filter(|fresh| *fresh)
        .count()
}

/// A fresh id: `prefix-<random hex>`.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

#[track_caller]
fn ok<T>(storage: &dyn Storage, what: &str, result: Result<T, RepositoryError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!(
            "[{} storage contract] {what} failed: {error} ({error:?})",
            storage.backend_name()
        ),
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(storage: &dyn Storage, what: &str, result: Result<T, RepositoryError>) {
    if !matches!(result, Err(RepositoryError::Conflict(_))) {
        panic!(
            "[{} storage contract] {what} must fail with RepositoryError::Conflict, got {result:?}",
            storage.backend_name()
        );
    }
}

#[track_caller]
fn check(storage: &dyn Storage, condition: bool, message: impl std::fmt::Display) {
    assert!(condition, "[{} storage contract] {message}", storage.backend_name());
}

#[track_caller]
fn check_eq<T: PartialEq + Debug>(storage: &dyn Storage, what: &str, got: T, expected: T) {
    assert!(
        got == expected,
        "[{} storage contract] {what}:\n     got: {got:?}\nexpected: {expected:?}",
        storage.backend_name()
    );
}
