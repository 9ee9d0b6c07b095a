//! The storage contract suite: the behaviour every [`Storage`] backend must show.
//!
//! [`run_all`] runs every check; each is also public to run alone. Checks panic with a message
//! naming the backend and what went wrong. Every check uses fresh random ids, so the suite can
//! run twice on one database (which is itself a useful check), and asserts only about its own
//! rows, except where a bulk operation's count is at least what it added.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::join_all;
use tessera_core::client::{RefreshTokenIssuance, RefreshTokenSettings};
use tessera_core::keys::SigningKeyRecord;
use tessera_core::refresh::RefreshToken;
use tessera_core::{
    AccessTokenFormat, AuthMethod, AuthorizationCode, Client, ClientSettings, ClientType, Grant, GrantKind, SsoSession,
    Timestamp, TokenHash, User, UserClaims,
};
use tessera_storage::{
    AccessTokenRecord, AuditEvent, EventFilter, Page, RefreshContext, RepositoryError, Rotation, Storage,
};
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
    access_tokens_remove(storage).await;
    access_tokens_act_round_trip(storage).await;
    jwt_revocation(storage).await;
    access_tokens_cleanup_revoked_jtis(storage).await;
    users_crud(storage).await;
    users_list_page(storage).await;
    sessions_and_grants_cleanup(storage).await;
    user_claims_round_trip(storage).await;
    sessions_lifecycle(storage).await;
    sessions_list_by_user(storage).await;
    consent_grant_union_revoke(storage).await;
    consent_concurrent_grants(storage).await;
    authorization_codes_add_find_consume(storage).await;
    authorization_code_concurrent_consume(storage).await;
    authorization_codes_cleanup(storage).await;
    grants_add_lookup_revoke(storage).await;
    grants_revoke_online_for_session(storage).await;
    grants_list_by_user(storage).await;
    grants_list_by_client_pages(storage).await;
    grants_revoke_for_user(storage).await;
    grants_enforce_limit(storage).await;
    grants_enforce_limit_concurrently(storage).await;
    refresh_tokens_add_find(storage).await;
    refresh_token_find_with_context(storage).await;
    refresh_token_rotate(storage).await;
    refresh_token_rotate_max_uses(storage).await;
    refresh_token_rotate_stale_use_count(storage).await;
    refresh_token_rotate_with_access_token(storage).await;
    refresh_token_rotate_revoked_grant(storage).await;
    refresh_token_sibling(storage).await;
    refresh_token_concurrent_rotation(storage).await;
    refresh_token_concurrent_rotations_of_many_grants(storage).await;
    refresh_token_rotation_racing_revocation(storage).await;
    refresh_token_refresh(storage).await;
    refresh_tokens_cleanup(storage).await;
    events_record_and_filter(storage).await;
    events_pages(storage).await;
    events_duplicate_id(storage).await;
    events_cleanup_before(storage).await;
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
            // Every flag away from its default, so a backend that drops one is caught.
            require_pkce: false,
            allow_plain_pkce: true,
            require_consent: true,
            post_logout_redirect_uris: vec!["https://client.example/bye".into(), "app://logged-out".into()],
            introspection: true,
            token_exchange: Some(tessera_core::client::TokenExchangeSettings {
                subject_token_types: vec![
                    tessera_types::token::TokenType::AccessToken,
                    tessera_types::token::TokenType::Jwt,
                ],
                requested_token_types: vec![tessera_types::token::TokenType::RefreshToken],
                audiences: vec![tessera_core::client::ExchangeAudience {
                    audience: "https://backend.example".into(),
                    scopes: vec!["orders.read".into()],
                }],
                impersonation: true,
                delegation: true,
                actors: vec!["gateway".into()],
                may_outlive_subject: true,
            }),
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
    let mut live = token(
        "live",
        NOW.0,
        NOW.0 + 3600,
        Some("user-42"),
        vec!["https://api.example".into(), "urn:b".into()],
    );
    live.grant_id = Some(unique("grant"));
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

/// `remove` deletes one opaque token by hash (`true`), then finds nothing (`false`); other
/// tokens are untouched, and an unknown hash is `false`.
pub async fn access_tokens_remove(storage: &dyn Storage) {
    let repo = storage.access_tokens();
    let doomed = token("revoked", NOW.0, NOW.0 + 3600, Some("user-7"), vec![]);
    let kept = token("kept", NOW.0, NOW.0 + 3600, Some("user-7"), vec![]);
    for t in [&doomed, &kept] {
        ok(storage, "add access token", repo.add(t).await);
    }
    check(
        storage,
        ok(storage, "remove access token", repo.remove(&doomed.hash).await),
        "removing a stored access token must return true",
    );
    let found = ok(storage, "find_by_hash", repo.find_by_hash(&doomed.hash).await);
    check_eq(storage, "removed access token", found, None);
    check(
        storage,
        !ok(storage, "remove access token again", repo.remove(&doomed.hash).await),
        "removing an access token twice must return false the second time",
    );
    let found = ok(storage, "find_by_hash", repo.find_by_hash(&kept.hash).await);
    check_eq(
        storage,
        "other access token after a removal",
        found.as_ref(),
        Some(&kept),
    );
    let unknown = TokenHash::of(&unique("no-token"));
    check(
        storage,
        !ok(storage, "remove unknown access token", repo.remove(&unknown).await),
        "removing an unknown access token must return false",
    );
}

/// The RFC 8693 `act` claim of an opaque token issued by a delegation exchange reads back as
/// stored (the same JSON text); a token stored without one reads back without one.
pub async fn access_tokens_act_round_trip(storage: &dyn Storage) {
    let repo = storage.access_tokens();
    let mut delegated = token("delegated", NOW.0, NOW.0 + 3600, Some("user-8"), vec!["urn:api".into()]);
    delegated.act = Some(r#"{"sub":"svc"}"#.into());
    let plain = token(
        "undelegated",
        NOW.0,
        NOW.0 + 3600,
        Some("user-8"),
        vec!["urn:api".into()],
    );
    for t in [&delegated, &plain] {
        ok(storage, "add access token", repo.add(t).await);
    }
    let found = ok(storage, "find_by_hash", repo.find_by_hash(&delegated.hash).await);
    check_eq(
        storage,
        "access token stored with an act claim",
        found.as_ref(),
        Some(&delegated),
    );
    check_eq(
        storage,
        "act claim read back",
        found.as_ref().and_then(|t| t.act.as_deref()),
        Some(r#"{"sub":"svc"}"#),
    );
    let found = ok(storage, "find_by_hash", repo.find_by_hash(&plain.hash).await);
    check_eq(
        storage,
        "access token stored without an act claim",
        found.as_ref(),
        Some(&plain),
    );
    check_eq(
        storage,
        "act claim of a token stored without one",
        found.and_then(|t| t.act),
        None,
    );
}

/// JWT revocation: an unknown `jti` is not revoked; after `revoke_jwt` it is; revoking it again
/// succeeds; other `jti`s are unaffected.
pub async fn jwt_revocation(storage: &dyn Storage) {
    let repo = storage.access_tokens();
    let jti = unique("jwt");
    let other = unique("jwt-other");
    let revoked = ok(storage, "is_jwt_revoked", repo.is_jwt_revoked(&jti).await);
    check(storage, !revoked, "an unknown jti must not be revoked");

    ok(
        storage,
        "revoke_jwt",
        repo.revoke_jwt(&jti, "jwt-client", NOW.plus(3600), NOW).await,
    );
    let revoked = ok(storage, "is_jwt_revoked", repo.is_jwt_revoked(&jti).await);
    check(storage, revoked, "a revoked jti must be revoked");

    ok(
        storage,
        "revoke_jwt twice",
        repo.revoke_jwt(&jti, "jwt-client", NOW.plus(3600), NOW.plus(5)).await,
    );
    let revoked = ok(storage, "is_jwt_revoked", repo.is_jwt_revoked(&jti).await);
    check(storage, revoked, "a jti revoked twice must stay revoked");

    let revoked = ok(storage, "is_jwt_revoked", repo.is_jwt_revoked(&other).await);
    check(storage, !revoked, "revoking one jti must not revoke another");
}

/// `cleanup_expired` also deletes revoked `jti`s whose token expired before `now` (counted with
/// the opaque tokens, `limit` rows in all), and keeps the others; a repeated revocation does not
/// replace the first record.
pub async fn access_tokens_cleanup_revoked_jtis(storage: &dyn Storage) {
    let repo = storage.access_tokens();
    let revoke = |jti: String, expires_at: i64| async move {
        let result = repo
            .revoke_jwt(&jti, "jwt-client", Timestamp(expires_at), Timestamp(NOW.0 - 100))
            .await;
        ok(storage, "revoke_jwt", result);
        jti
    };
    let expired = revoke(unique("jwt-expired"), NOW.0 - 1).await;
    let expiring_now = revoke(unique("jwt-now"), NOW.0).await;
    let live = revoke(unique("jwt-live"), NOW.0 + 3600).await;
    // Revoked again with an (impossible) earlier expiry: the first record stands, so it is kept.
    let repeated = revoke(unique("jwt-repeated"), NOW.0 + 3600).await;
    revoke(repeated.clone(), NOW.0 - 1).await;
    let expired_token = token("expired", NOW.0 - 3600, NOW.0 - 1, None, vec![]);
    ok(storage, "add access token", repo.add(&expired_token).await);

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
        removed >= 2,
        format!("cleanup_expired must delete the expired token and the expired revoked jti (deleted {removed})"),
    );
    let found = ok(storage, "find_by_hash", repo.find_by_hash(&expired_token.hash).await);
    check_eq(storage, "expired token after cleanup", found, None);
    let revoked = ok(storage, "is_jwt_revoked", repo.is_jwt_revoked(&expired).await);
    check(
        storage,
        !revoked,
        "an expired revoked jti must be deleted by cleanup_expired",
    );
    for (what, jti) in [
        ("a revoked jti expiring exactly now", &expiring_now),
        ("a live revoked jti", &live),
        ("a jti revoked twice (the first expiry stands)", &repeated),
    ] {
        let revoked = ok(storage, "is_jwt_revoked", repo.is_jwt_revoked(jti).await);
        check(storage, revoked, format!("{what} must survive cleanup_expired"));
    }

    // The limit spans both kinds: 1 expired opaque token and 2 expired revoked jtis.
    let old = token("old", NOW.0 - 100, NOW.0 - 50, None, vec![]);
    ok(storage, "add expired access token", repo.add(&old).await);
    let old_jtis = [
        revoke(unique("jwt-old"), NOW.0 - 50).await,
        revoke(unique("jwt-old"), NOW.0 - 50).await,
    ];
    let first = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired with limit 2 of 3 deletable rows", first, 2);
    let second = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired of the last deletable row", second, 1);
    let third = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired with nothing left", third, 0);
    let found = ok(storage, "find_by_hash", repo.find_by_hash(&old.hash).await);
    check_eq(storage, "expired token after cleanup", found, None);
    for jti in &old_jtis {
        let revoked = ok(storage, "is_jwt_revoked", repo.is_jwt_revoked(jti).await);
        check(
            storage,
            !revoked,
            "an expired revoked jti must be deleted by cleanup_expired",
        );
    }
}

/// `SessionRepository::cleanup_expired` deletes sessions past their hard end before the cutoff;
/// `GrantRepository::cleanup_ended` deletes grants revoked, or past their hard end, before it.
/// Both honour the limit and keep everything else.
pub async fn sessions_and_grants_cleanup(storage: &dyn Storage) {
    // Far in the future, so that no other check's rows fall before the cutoffs used here.
    let base = Timestamp(9_000_000_000);
    let user = unique("user");
    let mut old_session = session(&unique("session"), &user);
    old_session.expires_at = base.plus(10);
    let mut live_session = session(&unique("session"), &user);
    live_session.expires_at = base.plus(1000);
    for s in [&old_session, &live_session] {
        ok(storage, "add session", storage.sessions().add(s).await);
    }
    let mut revoked = grant(&user, GrantKind::Offline, None, NOW);
    revoked.revoked_at = Some(base.plus(5));
    let mut expired = grant(&user, GrantKind::Online, Some(&old_session.id), NOW);
    expired.expires_at = Some(base.plus(10));
    let mut revoked_late = grant(&user, GrantKind::Offline, None, NOW);
    revoked_late.revoked_at = Some(base.plus(500));
    let live = grant(&user, GrantKind::Offline, None, NOW);
    for g in [&revoked, &expired, &revoked_late, &live] {
        ok(storage, "add grant", storage.grants().add(g).await);
        if let Some(at) = g.revoked_at {
            ok(
                storage,
                "revoke grant",
                storage.grants().revoke(&g.id, at, "test").await,
            );
        }
    }
    let cutoff = base.plus(100);
    let deleted = ok(
        storage,
        "cleanup grants (limit 1)",
        storage.grants().cleanup_ended(cutoff, 1).await,
    );
    check(
        storage,
        deleted == 1,
        format!("cleanup_ended honours its limit: {deleted}"),
    );
    let deleted = ok(
        storage,
        "cleanup grants",
        storage.grants().cleanup_ended(cutoff, 100).await,
    );
    check(
        storage,
        deleted >= 1,
        format!("cleanup_ended deletes the rest: {deleted}"),
    );
    for (g, gone) in [
        (&revoked, true),
        (&expired, true),
        (&revoked_late, false),
        (&live, false),
    ] {
        let found = ok(storage, "lookup grant", storage.grants().lookup(&g.id).await);
        check(
            storage,
            found.is_none() == gone,
            format!(
                "grant {} after cleanup_ended: expected gone={gone}, found {found:?}",
                g.id
            ),
        );
    }
    let deleted = ok(
        storage,
        "cleanup sessions",
        storage.sessions().cleanup_expired(cutoff, 100).await,
    );
    check(
        storage,
        deleted >= 1,
        format!("cleanup_expired deletes expired sessions: {deleted}"),
    );
    let old = ok(
        storage,
        "lookup session",
        storage.sessions().lookup(&old_session.id).await,
    );
    check(storage, old.is_none(), "a session past its hard end is deleted");
    let kept = ok(
        storage,
        "lookup session",
        storage.sessions().lookup(&live_session.id).await,
    );
    check_eq(
        storage,
        "a session before its hard end is kept",
        kept.as_ref(),
        Some(&live_session),
    );
}

/// `list_page` walks every user once, in one order, a page at a time.
pub async fn users_list_page(storage: &dyn Storage) {
    let repo = storage.users();
    let prefix = unique("paged");
    // Names whose byte order and case-insensitive order differ, and a shared prefix.
    let names = ["b", "B", "a-2", "a-10", "a", "c"];
    let mut mine = Vec::new();
    for name in names {
        let u = user(&unique("user"), &format!("{prefix}-{name}"));
        ok(storage, "add user", repo.add(&u).await);
        mine.push(u.id);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut usernames: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let page = ok(storage, "list_page", repo.list_page(after.as_deref(), 2).await);
        check(
            storage,
            page.len() <= 2,
            format!("a page holds at most its limit: {}", page.len()),
        );
        let Some(last) = page.last() else { break };
        after = Some(last.username.clone());
        for u in &page {
            seen.push(u.id.clone());
            usernames.push(u.username.clone());
        }
    }
    let mut unique_seen = seen.clone();
    unique_seen.sort();
    unique_seen.dedup();
    check(
        storage,
        unique_seen.len() == seen.len(),
        "list_page must not return a user twice",
    );
    for id in &mine {
        check(storage, seen.contains(id), format!("list_page must reach user {id}"));
    }
    let everyone = ok(storage, "list", repo.list().await);
    check(
        storage,
        everyone.len() == seen.len(),
        format!(
            "list_page must walk all {} users, walked {}",
            everyone.len(),
            seen.len()
        ),
    );
    let mine_in_order: Vec<&String> = usernames.iter().filter(|n| n.starts_with(&prefix)).collect();
    check(storage, mine_in_order.len() == names.len(), "every paged user once");
}

/// Users: add (a taken id or username is a conflict), lookup, exact `find_by_username`, list by
/// username, update (every field but `id` and `created_at`; a taken username is a conflict that
/// changes nothing), remove, and the missing cases.
pub async fn users_crud(storage: &dyn Storage) {
    let repo = storage.users();
    let alice = user(&unique("user"), &unique("alice"));
    ok(storage, "add user", repo.add(&alice).await);
    expect_conflict(storage, "adding a user id twice", repo.add(&alice).await);
    let namesake = user(&unique("user"), &alice.username);
    expect_conflict(storage, "adding a taken username", repo.add(&namesake).await);
    let gone = ok(storage, "lookup namesake", repo.lookup(&namesake.id).await);
    check_eq(storage, "user whose add conflicted", gone, None);

    let found = ok(storage, "lookup user", repo.lookup(&alice.id).await);
    check_eq(storage, "looked-up user", found.as_ref(), Some(&alice));
    let found = ok(
        storage,
        "find_by_username",
        repo.find_by_username(&alice.username).await,
    );
    check_eq(storage, "user found by username", found.as_ref(), Some(&alice));
    let shouted = alice.username.to_uppercase();
    let found = ok(storage, "find_by_username", repo.find_by_username(&shouted).await);
    check_eq(storage, "find_by_username is case-sensitive", found, None);
    let missing = ok(storage, "lookup missing user", repo.lookup(&unique("nobody")).await);
    check_eq(storage, "lookup of a missing user", missing, None);

    let bob = user(&unique("user"), &format!("{}-bob", alice.username));
    ok(storage, "add second user", repo.add(&bob).await);
    let all = ok(storage, "list users", repo.list().await);
    check(
        storage,
        all.windows(2).all(|pair| pair[0].username < pair[1].username),
        "users.list must be ordered by username",
    );
    for expected in [&alice, &bob] {
        check(
            storage,
            all.contains(expected),
            format!("users.list must contain {}", expected.username),
        );
    }

    let mut changed = alice.clone();
    changed.username = unique("alice-renamed");
    changed.password_hash = None;
    changed.claims.email = Some("alice@changed.example".into());
    changed.claims.email_verified = Some(false);
    changed.is_disabled = true;
    changed.password_changed_at = Some(NOW.plus(30));
    changed.updated_at = NOW.plus(60);
    let mut attempt = changed.clone();
    attempt.created_at = NOW.plus(999); // update must leave created_at alone
    check(
        storage,
        ok(storage, "update user", repo.update(&attempt).await),
        "updating an existing user must return true",
    );
    let found = ok(storage, "lookup updated user", repo.lookup(&alice.id).await);
    check_eq(
        storage,
        "updated user (created_at unchanged)",
        found.as_ref(),
        Some(&changed),
    );
    let old_name = ok(
        storage,
        "find_by_username",
        repo.find_by_username(&alice.username).await,
    );
    check_eq(storage, "find_by_username of the old username", old_name, None);
    let new_name = ok(
        storage,
        "find_by_username",
        repo.find_by_username(&changed.username).await,
    );
    check_eq(
        storage,
        "user found by the new username",
        new_name.as_ref(),
        Some(&changed),
    );

    let mut clash = changed.clone();
    clash.username.clone_from(&bob.username);
    expect_conflict(
        storage,
        "renaming a user to a taken username",
        repo.update(&clash).await,
    );
    let found = ok(storage, "lookup user", repo.lookup(&alice.id).await);
    check_eq(
        storage,
        "user after a conflicting update (unchanged)",
        found.as_ref(),
        Some(&changed),
    );

    let ghost = user(&unique("ghost"), &unique("ghost"));
    check(
        storage,
        !ok(storage, "update missing user", repo.update(&ghost).await),
        "updating a missing user must return false",
    );
    check(
        storage,
        ok(storage, "remove user", repo.remove(&alice.id).await),
        "removing an existing user must return true",
    );
    check(
        storage,
        !ok(storage, "remove user again", repo.remove(&alice.id).await),
        "removing a missing user must return false",
    );
    let gone = ok(storage, "lookup removed user", repo.lookup(&alice.id).await);
    check_eq(storage, "lookup of a removed user", gone, None);
    let gone = ok(
        storage,
        "find_by_username",
        repo.find_by_username(&changed.username).await,
    );
    check_eq(storage, "find_by_username of a removed user", gone, None);
    ok(storage, "remove second user", repo.remove(&bob.id).await);
}

/// A user with every claim set, and one with none, survive storage unchanged.
pub async fn user_claims_round_trip(storage: &dyn Storage) {
    let repo = storage.users();
    let mut full = user(&unique("full-user"), &unique("jöhn.dœ"));
    full.claims = UserClaims {
        name: Some("Jöhn Q. Dœ «名前»".into()),
        given_name: Some("Jöhn".into()),
        family_name: Some("Dœ".into()),
        middle_name: Some("Q.".into()),
        nickname: Some("jq\"quoted\"".into()),
        picture: Some("https://pics.example/j.png".into()),
        website: Some("https://j.example".into()),
        gender: Some("other".into()),
        birthdate: Some("1970-01-01".into()),
        zoneinfo: Some("Europe/Paris".into()),
        locale: Some("fr-FR".into()),
        email: Some("j@example.com".into()),
        email_verified: Some(true),
        phone_number: Some("+33 1 23 45 67 89".into()),
        phone_number_verified: Some(false),
    };
    full.is_disabled = true;
    let mut bare = user(&unique("bare-user"), &unique("bare"));
    bare.claims = UserClaims::default();
    bare.password_hash = None;
    bare.password_changed_at = None;
    for u in [&full, &bare] {
        ok(storage, "add user", repo.add(u).await);
        let found = ok(storage, "lookup user", repo.lookup(&u.id).await);
        check_eq(storage, "user claims round trip", found.as_ref(), Some(u));
        let found = ok(storage, "find_by_username", repo.find_by_username(&u.username).await);
        check_eq(storage, "user claims round trip (by username)", found.as_ref(), Some(u));
    }
    let listed = ok(storage, "list users", repo.list().await);
    check(
        storage,
        listed.contains(&full) && listed.contains(&bare),
        "users.list must return the users unchanged",
    );
    for u in [&full, &bare] {
        ok(storage, "remove user", repo.remove(&u.id).await);
    }
}

/// SSO sessions: add (a duplicate id or token hash is a conflict), lookup, `find_by_token_hash`,
/// `touch` (true while not ended, moves `last_active_at` forward only), `end` (once; an ended
/// session cannot be touched).
pub async fn sessions_lifecycle(storage: &dyn Storage) {
    let repo = storage.sessions();
    let mut first = session(&unique("session"), &unique("user"));
    first.amr = vec!["pwd".into(), "otp".into()];
    first.acr = Some("urn:tessera:acr:2fa".into());
    let second = session(&unique("session"), &unique("user"));
    for s in [&first, &second] {
        ok(storage, "add session", repo.add(s).await);
    }
    expect_conflict(storage, "adding a session id twice", repo.add(&first).await);
    let mut same_cookie = session(&unique("session"), &first.user_id);
    same_cookie.token_hash = first.token_hash;
    expect_conflict(
        storage,
        "adding a session token hash twice",
        repo.add(&same_cookie).await,
    );

    for s in [&first, &second] {
        let found = ok(storage, "lookup session", repo.lookup(&s.id).await);
        check_eq(storage, "looked-up session", found.as_ref(), Some(s));
        let found = ok(
            storage,
            "find_by_token_hash",
            repo.find_by_token_hash(&s.token_hash).await,
        );
        check_eq(storage, "session found by token hash", found.as_ref(), Some(s));
    }
    let missing = ok(storage, "lookup missing session", repo.lookup(&unique("nothing")).await);
    check_eq(storage, "lookup of a missing session", missing, None);
    let missing = ok(
        storage,
        "find_by_token_hash of a missing session",
        repo.find_by_token_hash(&TokenHash::of(&unique("no-cookie"))).await,
    );
    check_eq(storage, "find_by_token_hash of a missing session", missing, None);

    let mut expected = first.clone();
    let touched = ok(storage, "touch", repo.touch(&first.id, NOW.plus(100)).await);
    check(storage, touched, "touching a live session must return true");
    expected.last_active_at = NOW.plus(100);
    let found = ok(storage, "lookup session", repo.lookup(&first.id).await);
    check_eq(storage, "session after touch", found.as_ref(), Some(&expected));
    let touched = ok(storage, "touch in the past", repo.touch(&first.id, NOW.plus(50)).await);
    check(
        storage,
        touched,
        "touching a live session with an older time must return true",
    );
    let found = ok(storage, "lookup session", repo.lookup(&first.id).await);
    check_eq(
        storage,
        "session after a touch with an older time (last_active_at must not move back)",
        found.as_ref(),
        Some(&expected),
    );
    let touched = ok(storage, "touch missing", repo.touch(&unique("nothing"), NOW).await);
    check(storage, !touched, "touching a missing session must return false");

    let ended = ok(storage, "end session", repo.end(&first.id, NOW.plus(200)).await);
    check(storage, ended, "ending a live session must return true");
    expected.ended_at = Some(NOW.plus(200));
    let ended = ok(storage, "end session again", repo.end(&first.id, NOW.plus(300)).await);
    check(storage, !ended, "ending an ended session must return false");
    let touched = ok(storage, "touch ended", repo.touch(&first.id, NOW.plus(400)).await);
    check(storage, !touched, "touching an ended session must return false");
    let found = ok(storage, "lookup ended session", repo.lookup(&first.id).await);
    check_eq(
        storage,
        "ended session (first end time kept, not touched after)",
        found.as_ref(),
        Some(&expected),
    );
    let ended = ok(storage, "end missing session", repo.end(&unique("nothing"), NOW).await);
    check(storage, !ended, "ending a missing session must return false");
    let found = ok(storage, "lookup other session", repo.lookup(&second.id).await);
    check_eq(storage, "untouched session", found.as_ref(), Some(&second));
}

/// `list_by_user` returns every session of the user (ended ones too), newest `auth_time` first,
/// and no one else's.
pub async fn sessions_list_by_user(storage: &dyn Storage) {
    let repo = storage.sessions();
    let user_id = unique("user");
    let mut oldest = session(&unique("session"), &user_id);
    oldest.auth_time = Timestamp(NOW.0 - 100);
    let mut newest = session(&unique("session"), &user_id);
    newest.auth_time = NOW.plus(10);
    let mut middle = session(&unique("session"), &user_id);
    middle.auth_time = NOW.plus(5);
    let mut stranger = session(&unique("session"), &unique("user"));
    stranger.auth_time = NOW.plus(7);
    for s in [&oldest, &newest, &middle, &stranger] {
        ok(storage, "add session", repo.add(s).await);
    }
    ok(storage, "end session", repo.end(&middle.id, NOW.plus(6)).await);
    middle.ended_at = Some(NOW.plus(6));

    let listed = ok(storage, "list_by_user", repo.list_by_user(&user_id).await);
    check_eq(
        storage,
        "sessions of a user, newest auth_time first",
        listed,
        vec![newest, middle, oldest],
    );
    let nobody = ok(storage, "list_by_user", repo.list_by_user(&unique("user")).await);
    check_eq(storage, "sessions of a user with none", nobody, Vec::new());
}

/// Consent: nothing at first, `grant` is a union with what was there (per user and client),
/// `revoke` forgets it once.
pub async fn consent_grant_union_revoke(storage: &dyn Storage) {
    let repo = storage.consents();
    let (user_id, client_id, other_client) = (unique("user"), unique("client"), unique("client"));
    let found = ok(storage, "find consent", repo.find(&user_id, &client_id).await);
    check_eq(storage, "consent before any grant", found, Vec::<String>::new());

    ok(
        storage,
        "grant consent",
        repo.grant(&user_id, &client_id, &strings(&["openid", "profile"]), NOW)
            .await,
    );
    let found = ok(storage, "find consent", repo.find(&user_id, &client_id).await);
    check_eq(
        storage,
        "consent after a grant",
        sorted(found),
        strings(&["openid", "profile"]),
    );

    ok(
        storage,
        "grant more consent",
        repo.grant(
            &user_id,
            &client_id,
            &strings(&["profile", "email", "email"]),
            NOW.plus(5),
        )
        .await,
    );
    let found = ok(storage, "find consent", repo.find(&user_id, &client_id).await);
    check_eq(
        storage,
        "consent after a second grant (union, no duplicates)",
        sorted(found),
        strings(&["email", "openid", "profile"]),
    );
    let other = ok(storage, "find consent", repo.find(&user_id, &other_client).await);
    check_eq(storage, "consent for another client", other, Vec::<String>::new());
    let other = ok(storage, "find consent", repo.find(&unique("user"), &client_id).await);
    check_eq(storage, "consent of another user", other, Vec::<String>::new());

    ok(
        storage,
        "grant consent to another client",
        repo.grant(&user_id, &other_client, &strings(&["api"]), NOW).await,
    );
    check(
        storage,
        ok(storage, "revoke consent", repo.revoke(&user_id, &client_id).await),
        "revoking an existing consent must return true",
    );
    let found = ok(storage, "find consent", repo.find(&user_id, &client_id).await);
    check_eq(storage, "consent after revoke", found, Vec::<String>::new());
    check(
        storage,
        !ok(storage, "revoke consent again", repo.revoke(&user_id, &client_id).await),
        "revoking a missing consent must return false",
    );
    let other = ok(storage, "find consent", repo.find(&user_id, &other_client).await);
    check_eq(
        storage,
        "consent for another client after revoke",
        other,
        strings(&["api"]),
    );
    ok(storage, "revoke consent", repo.revoke(&user_id, &other_client).await);
}

/// 10 concurrent grants of different scopes to one (user, client) all land.
pub async fn consent_concurrent_grants(storage: &dyn Storage) {
    let repo = storage.consents();
    let (user_id, client_id) = (unique("user"), unique("client"));
    let scopes: Vec<Vec<String>> = (0..10).map(|n| vec![format!("scope-{n}")]).collect();
    let results = join_all(scopes.iter().map(|s| repo.grant(&user_id, &client_id, s, NOW))).await;
    for result in results {
        ok(storage, "concurrent grant", result);
    }
    let found = ok(storage, "find consent", repo.find(&user_id, &client_id).await);
    check_eq(
        storage,
        "consent after 10 concurrent grants",
        sorted(found),
        sorted(scopes.concat()),
    );
    ok(storage, "revoke consent", repo.revoke(&user_id, &client_id).await);
}

/// Authorization codes: add (a duplicate hash is a conflict), `find_by_hash`, `consume` once.
pub async fn authorization_codes_add_find_consume(storage: &dyn Storage) {
    let repo = storage.authorization_codes();
    let full = code("full", NOW.plus(60));
    let mut bare = code("bare", NOW.plus(60));
    bare.nonce = None;
    bare.code_challenge = None;
    bare.code_challenge_method = None;
    bare.acr = None;
    bare.audience = Vec::new();
    for c in [&full, &bare] {
        ok(storage, "add code", repo.add(c).await);
        let found = ok(storage, "find code", repo.find_by_hash(&c.hash).await);
        check_eq(storage, "found code", found.as_ref(), Some(c));
    }
    expect_conflict(storage, "adding a code hash twice", repo.add(&full).await);
    let missing = TokenHash::of(&unique("no-code"));
    let found = ok(storage, "find missing code", repo.find_by_hash(&missing).await);
    check_eq(storage, "find of a missing code", found, None);

    let consumed = ok(storage, "consume code", repo.consume(&full.hash, NOW.plus(3)).await);
    check(storage, consumed, "consuming a fresh code must return true");
    let consumed = ok(
        storage,
        "consume code again",
        repo.consume(&full.hash, NOW.plus(4)).await,
    );
    check(storage, !consumed, "consuming a consumed code must return false");
    let mut expected = full.clone();
    expected.consumed_at = Some(NOW.plus(3));
    let found = ok(storage, "find consumed code", repo.find_by_hash(&full.hash).await);
    check_eq(
        storage,
        "consumed code (first consumption kept)",
        found.as_ref(),
        Some(&expected),
    );
    let consumed = ok(storage, "consume unknown code", repo.consume(&missing, NOW).await);
    check(storage, !consumed, "consuming an unknown code must return false");
    let found = ok(storage, "find other code", repo.find_by_hash(&bare.hash).await);
    check_eq(storage, "unconsumed code", found.as_ref(), Some(&bare));
}

/// Of 20 concurrent `consume` calls on one code, exactly one gets `true`.
pub async fn authorization_code_concurrent_consume(storage: &dyn Storage) {
    let repo = storage.authorization_codes();
    let racing = code("racing", NOW.plus(60));
    ok(storage, "add code", repo.add(&racing).await);
    let results = join_all((0..20).map(|n| repo.consume(&racing.hash, NOW.plus(n)))).await;
    let winners = results
        .into_iter()
        .map(|result| ok(storage, "concurrent consume", result))
        .filter(|won| *won)
        .count();
    check_eq(storage, "successful consumes of 20 concurrent ones", winners, 1);
    let found = ok(storage, "find code", repo.find_by_hash(&racing.hash).await);
    check(
        storage,
        found.is_some_and(|c| c.consumed_at.is_some()),
        "a raced code must be consumed",
    );
}

/// `cleanup_expired` deletes only expired codes (consumed or not), at most `limit` at a time.
pub async fn authorization_codes_cleanup(storage: &dyn Storage) {
    let repo = storage.authorization_codes();
    let expired = code("expired", Timestamp(NOW.0 - 1));
    let live = code("live", NOW.plus(60));
    let live_consumed = code("live-consumed", NOW.plus(60));
    for c in [&expired, &live, &live_consumed] {
        ok(storage, "add code", repo.add(c).await);
    }
    ok(storage, "consume code", repo.consume(&live_consumed.hash, NOW).await);

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
        format!("cleanup_expired must delete the expired code (deleted {removed})"),
    );
    let found = ok(storage, "find code", repo.find_by_hash(&expired.hash).await);
    check_eq(storage, "expired code after cleanup", found, None);
    for c in [&live, &live_consumed] {
        let found = ok(storage, "find code", repo.find_by_hash(&c.hash).await);
        check(storage, found.is_some(), "a live code must survive cleanup_expired");
    }

    for n in 0..3 {
        ok(
            storage,
            "add expired code",
            repo.add(&code(&format!("old-{n}"), Timestamp(NOW.0 - 50))).await,
        );
    }
    let first = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired with limit 2 of 3 expired codes", first, 2);
    let second = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired of the last expired code", second, 1);
}

/// Grants: add (a duplicate id is a conflict), lookup, `revoke` once, deleting that grant's
/// opaque access tokens and no one else's.
pub async fn grants_add_lookup_revoke(storage: &dyn Storage) {
    let repo = storage.grants();
    let user_id = unique("user");
    let target = grant(&user_id, GrantKind::Online, Some(&unique("session")), NOW);
    let mut bystander = grant(&user_id, GrantKind::Offline, None, NOW);
    bystander.expires_at = Some(NOW.plus(86_400));
    for g in [&target, &bystander] {
        ok(storage, "add grant", repo.add(g).await);
        let found = ok(storage, "lookup grant", repo.lookup(&g.id).await);
        check_eq(storage, "looked-up grant", found.as_ref(), Some(g));
    }
    expect_conflict(storage, "adding a grant id twice", repo.add(&target).await);
    let missing = ok(storage, "lookup missing grant", repo.lookup(&unique("no-grant")).await);
    check_eq(storage, "lookup of a missing grant", missing, None);

    let target_tokens = [grant_token(&target), grant_token(&target)];
    let other_tokens = [
        grant_token(&bystander),
        token("client-credentials", NOW.0, NOW.0 + 3600, None, vec![]),
    ];
    for t in target_tokens.iter().chain(&other_tokens) {
        ok(storage, "add access token", storage.access_tokens().add(t).await);
    }

    let revoked = ok(
        storage,
        "revoke grant",
        repo.revoke(&target.id, NOW.plus(5), "code_reuse").await,
    );
    check(storage, revoked, "revoking a live grant must return true");
    let mut expected = target.clone();
    expected.revoked_at = Some(NOW.plus(5));
    expected.revocation_reason = Some("code_reuse".into());
    let found = ok(storage, "lookup revoked grant", repo.lookup(&target.id).await);
    check_eq(storage, "revoked grant", found.as_ref(), Some(&expected));
    for t in &target_tokens {
        let found = ok(
            storage,
            "find token",
            storage.access_tokens().find_by_hash(&t.hash).await,
        );
        check_eq(storage, "access token of a revoked grant", found, None);
    }
    for t in &other_tokens {
        let found = ok(
            storage,
            "find token",
            storage.access_tokens().find_by_hash(&t.hash).await,
        );
        check_eq(storage, "access token of another grant", found.as_ref(), Some(t));
    }

    let again = ok(
        storage,
        "revoke grant again",
        repo.revoke(&target.id, NOW.plus(9), "logout").await,
    );
    check(storage, !again, "revoking a revoked grant must return false");
    let found = ok(storage, "lookup revoked grant", repo.lookup(&target.id).await);
    check_eq(
        storage,
        "grant revoked twice (first revocation kept)",
        found.as_ref(),
        Some(&expected),
    );
    let ghost = ok(
        storage,
        "revoke missing grant",
        repo.revoke(&unique("no-grant"), NOW, "x").await,
    );
    check(storage, !ghost, "revoking a missing grant must return false");
    let found = ok(storage, "lookup other grant", repo.lookup(&bystander.id).await);
    check_eq(storage, "grant not revoked", found.as_ref(), Some(&bystander));
}

/// `revoke_online_for_session` revokes exactly the session's unrevoked online grants and deletes
/// their opaque access tokens; offline grants and other sessions' grants stay.
pub async fn grants_revoke_online_for_session(storage: &dyn Storage) {
    let repo = storage.grants();
    let tokens = storage.access_tokens();
    let (user_id, session, other_session) = (unique("user"), unique("session"), unique("session"));
    let online_a = grant(&user_id, GrantKind::Online, Some(&session), NOW);
    let online_b = grant(&user_id, GrantKind::Online, Some(&session), NOW.plus(1));
    let offline = grant(&user_id, GrantKind::Offline, Some(&session), NOW.plus(2));
    let mut earlier = grant(&user_id, GrantKind::Online, Some(&session), NOW.plus(3));
    earlier.revoked_at = Some(NOW.plus(4));
    earlier.revocation_reason = Some("earlier".into());
    let elsewhere = grant(&user_id, GrantKind::Online, Some(&other_session), NOW.plus(5));
    for g in [&online_a, &online_b, &offline, &earlier, &elsewhere] {
        ok(storage, "add grant", repo.add(g).await);
    }
    let (token_a, token_offline, token_elsewhere) =
        (grant_token(&online_a), grant_token(&offline), grant_token(&elsewhere));
    for t in [&token_a, &token_offline, &token_elsewhere] {
        ok(storage, "add access token", tokens.add(t).await);
    }

    let revoked = ok(
        storage,
        "revoke_online_for_session",
        repo.revoke_online_for_session(&session, NOW.plus(10), "logout").await,
    );
    check_eq(storage, "online grants revoked for the session", revoked, 2);
    for g in [&online_a, &online_b] {
        let mut expected = g.clone();
        expected.revoked_at = Some(NOW.plus(10));
        expected.revocation_reason = Some("logout".into());
        let found = ok(storage, "lookup grant", repo.lookup(&g.id).await);
        check_eq(
            storage,
            "online grant of the ended session",
            found.as_ref(),
            Some(&expected),
        );
    }
    for (what, g) in [
        ("offline grant of the session", &offline),
        ("grant revoked earlier", &earlier),
        ("online grant of another session", &elsewhere),
    ] {
        let found = ok(storage, "lookup grant", repo.lookup(&g.id).await);
        check_eq(storage, &format!("{what} (unchanged)"), found.as_ref(), Some(g));
    }
    let found = ok(storage, "find token", tokens.find_by_hash(&token_a.hash).await);
    check_eq(storage, "access token of a revoked online grant", found, None);
    for t in [&token_offline, &token_elsewhere] {
        let found = ok(storage, "find token", tokens.find_by_hash(&t.hash).await);
        check_eq(storage, "access token of a grant left alone", found.as_ref(), Some(t));
    }

    let again = ok(
        storage,
        "revoke_online_for_session again",
        repo.revoke_online_for_session(&session, NOW.plus(20), "logout").await,
    );
    check_eq(storage, "online grants revoked by a second call", again, 0);
    let none = ok(
        storage,
        "revoke_online_for_session of an unknown session",
        repo.revoke_online_for_session(&unique("session"), NOW, "logout").await,
    );
    check_eq(storage, "online grants revoked for an unknown session", none, 0);
}

/// `list_by_user` returns every grant of the user (revoked ones too), newest first, and no one
/// else's.
pub async fn grants_list_by_user(storage: &dyn Storage) {
    let repo = storage.grants();
    let user_id = unique("user");
    let oldest = grant(&user_id, GrantKind::Offline, None, NOW);
    let newest = grant(&user_id, GrantKind::Online, Some(&unique("session")), NOW.plus(10));
    let middle = grant(&user_id, GrantKind::Online, Some(&unique("session")), NOW.plus(5));
    let stranger = grant(&unique("user"), GrantKind::Online, None, NOW.plus(7));
    for g in [&oldest, &newest, &middle, &stranger] {
        ok(storage, "add grant", repo.add(g).await);
    }
    ok(
        storage,
        "revoke grant",
        repo.revoke(&middle.id, NOW.plus(6), "admin").await,
    );
    let mut middle = middle;
    middle.revoked_at = Some(NOW.plus(6));
    middle.revocation_reason = Some("admin".into());

    let listed = ok(storage, "list_by_user", repo.list_by_user(&user_id).await);
    check_eq(
        storage,
        "grants of a user, newest first",
        listed,
        vec![newest, middle, oldest],
    );
    let nobody = ok(storage, "list_by_user", repo.list_by_user(&unique("user")).await);
    check_eq(storage, "grants of a user with none", nobody, Vec::new());
}

/// `list_by_client` pages through a client's grants (revoked ones too), newest first by
/// (`created_at`, `id`), no one else's: 7 grants in pages of 3, where both page boundaries fall
/// inside a run of equal `created_at`, are each returned exactly once, in order; the page after
/// the last is empty. Ids compare in byte order (`"D" < "a"`), as everywhere in the contract; the
/// ids at the boundaries are chosen so that a cursor compared in another collation than the order
/// would skip a row.
pub async fn grants_list_by_client_pages(storage: &dyn Storage) {
    let repo = storage.grants();
    let (client_id, other_client) = (unique("client"), unique("client"));
    let prefix = unique("grant");
    let mut own = Vec::new();
    for (suffix, created_at) in TIES {
        let mut g = grant(&unique("user"), GrantKind::Offline, None, created_at);
        g.id = format!("{prefix}-{suffix}");
        g.client_id.clone_from(&client_id);
        own.push(g);
    }
    // Another client's grants at the same times, with ids that sort among ours.
    for (suffix, created_at) in [("b2", NOW.plus(1)), ("E", NOW), ("f", NOW.plus(2))] {
        let mut g = grant(&unique("user"), GrantKind::Online, None, created_at);
        g.id = format!("{prefix}-{suffix}");
        g.client_id.clone_from(&other_client);
        ok(storage, "add other client's grant", repo.add(&g).await);
    }
    for g in &own {
        ok(storage, "add grant", repo.add(g).await);
    }
    let revoked = own.remove(1);
    ok(
        storage,
        "revoke grant",
        repo.revoke(&revoked.id, NOW.plus(3), "admin").await,
    );
    own.insert(1, revoked_as(revoked, NOW.plus(3), "admin"));
    own.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let expected: Vec<&str> = own.iter().map(|g| g.id.as_str()).collect();

    let mut pages: Vec<Vec<Grant>> = Vec::new();
    let mut before = None;
    while pages.len() < 10 {
        let page = Page { before, limit: 3 };
        let rows = ok(storage, "list_by_client", repo.list_by_client(&client_id, &page).await);
        before = rows.last().map(|g| (g.created_at, g.id.clone()));
        let last = rows.len() < 3;
        pages.push(rows);
        if last {
            break;
        }
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    check_eq(storage, "sizes of the pages of 7 grants by 3", sizes, vec![3, 3, 1]);
    let listed: Vec<Grant> = pages.into_iter().flatten().collect();
    let ids: Vec<&str> = listed.iter().map(|g| g.id.as_str()).collect();
    check_eq(
        storage,
        "grant ids over every page (newest first, each once, only the client's)",
        ids,
        expected,
    );
    check_eq(storage, "grants over every page", listed, own.clone());

    let after_last = Page {
        before: own.last().map(|g| (g.created_at, g.id.clone())),
        limit: 3,
    };
    let rest = ok(
        storage,
        "list_by_client",
        repo.list_by_client(&client_id, &after_last).await,
    );
    check_eq(storage, "the page after the last grant", rest, Vec::new());
    let whole = Page { before: None, limit: 7 };
    let all = ok(storage, "list_by_client", repo.list_by_client(&client_id, &whole).await);
    check_eq(storage, "one page holding every grant", all, own);
    let nobody = ok(
        storage,
        "list_by_client",
        repo.list_by_client(&unique("client"), &Page { before: None, limit: 3 })
            .await,
    );
    check_eq(storage, "grants of a client with none", nobody, Vec::new());
}

/// `revoke_for_user` revokes the user's unrevoked grants (only the online ones when asked) and
/// deletes their opaque access tokens; other users' grants and tokens stay.
pub async fn grants_revoke_for_user(storage: &dyn Storage) {
    let repo = storage.grants();
    let tokens = storage.access_tokens();
    let user_id = unique("user");
    let online = grant(&user_id, GrantKind::Online, Some(&unique("session")), NOW);
    let offline = grant(&user_id, GrantKind::Offline, None, NOW.plus(1));
    let mut earlier = grant(&user_id, GrantKind::Online, Some(&unique("session")), NOW.plus(2));
    earlier.revoked_at = Some(NOW.plus(3));
    earlier.revocation_reason = Some("earlier".into());
    let stranger = grant(&unique("user"), GrantKind::Online, Some(&unique("session")), NOW);
    for g in [&online, &offline, &earlier, &stranger] {
        ok(storage, "add grant", repo.add(g).await);
    }
    let (token_online, token_offline, token_stranger) =
        (grant_token(&online), grant_token(&offline), grant_token(&stranger));
    for t in [&token_online, &token_offline, &token_stranger] {
        ok(storage, "add access token", tokens.add(t).await);
    }

    let revoked = ok(
        storage,
        "revoke_for_user (online only)",
        repo.revoke_for_user(&user_id, true, NOW.plus(10), "password_change")
            .await,
    );
    check_eq(storage, "grants revoked by revoke_for_user (online only)", revoked, 1);
    let online = revoked_as(online, NOW.plus(10), "password_change");
    expect_grants(
        storage,
        "after revoke_for_user (online only)",
        &[&online, &offline, &earlier, &stranger],
    )
    .await;
    let found = ok(storage, "find token", tokens.find_by_hash(&token_online.hash).await);
    check_eq(storage, "access token of a revoked online grant", found, None);
    for t in [&token_offline, &token_stranger] {
        let found = ok(storage, "find token", tokens.find_by_hash(&t.hash).await);
        check_eq(storage, "access token of a grant left alone", found.as_ref(), Some(t));
    }

    let revoked = ok(
        storage,
        "revoke_for_user (all)",
        repo.revoke_for_user(&user_id, false, NOW.plus(20), "user_disabled")
            .await,
    );
    check_eq(storage, "grants revoked by revoke_for_user (all)", revoked, 1);
    let offline = revoked_as(offline, NOW.plus(20), "user_disabled");
    expect_grants(
        storage,
        "after revoke_for_user (all)",
        &[&online, &offline, &earlier, &stranger],
    )
    .await;
    let found = ok(storage, "find token", tokens.find_by_hash(&token_offline.hash).await);
    check_eq(storage, "access token of a revoked offline grant", found, None);
    let found = ok(storage, "find token", tokens.find_by_hash(&token_stranger.hash).await);
    check_eq(
        storage,
        "access token of another user",
        found.as_ref(),
        Some(&token_stranger),
    );

    let again = ok(
        storage,
        "revoke_for_user again",
        repo.revoke_for_user(&user_id, false, NOW.plus(30), "again").await,
    );
    check_eq(storage, "grants revoked by a second revoke_for_user", again, 0);
    expect_grants(
        storage,
        "after a second revoke_for_user (unchanged)",
        &[&online, &offline, &earlier, &stranger],
    )
    .await;
    let none = ok(
        storage,
        "revoke_for_user of an unknown user",
        repo.revoke_for_user(&unique("user"), false, NOW, "x").await,
    );
    check_eq(storage, "grants revoked for an unknown user", none, 0);
}

/// `enforce_limit` keeps the `max_active` most recently used unrevoked grants of a (user, client)
/// and revokes the rest with reason `grant_limit`, deleting their opaque access tokens; revoked
/// grants do not count, other pairs are untouched; ties go by `created_at`, then `id`.
pub async fn grants_enforce_limit(storage: &dyn Storage) {
    let repo = storage.grants();
    let tokens = storage.access_tokens();
    let (user_id, client_id) = (unique("user"), unique("client"));
    let pair_grant = |last_used: u64, created: u64| {
        let mut g = grant(&user_id, GrantKind::Offline, None, NOW.plus(created));
        g.client_id.clone_from(&client_id);
        g.last_used_at = NOW.plus(last_used);
        g
    };
    // Created in an order unlike their last use, so an implementation sorting by creation fails.
    let grants: Vec<Grant> = [(40, 5), (10, 4), (30, 3), (20, 2), (50, 1)]
        .into_iter()
        .map(|(used, created)| pair_grant(used, created))
        .collect();
    // The most recently used of all, but already revoked: it must not count.
    let mut revoked_earlier = pair_grant(99, 0);
    revoked_earlier.revoked_at = Some(NOW.plus(60));
    revoked_earlier.revocation_reason = Some("logout".into());
    let mut other_client = grant(&user_id, GrantKind::Offline, None, NOW);
    other_client.last_used_at = NOW;
    let mut other_user = grant(&unique("user"), GrantKind::Offline, None, NOW);
    other_user.client_id.clone_from(&client_id);
    for g in grants.iter().chain([&revoked_earlier, &other_client, &other_user]) {
        ok(storage, "add grant", repo.add(g).await);
    }
    let (least_recent, most_recent) = (grant_token(&grants[1]), grant_token(&grants[4]));
    for t in [&least_recent, &most_recent] {
        ok(storage, "add access token", tokens.add(t).await);
    }

    let revoked = ok(
        storage,
        "enforce_limit",
        repo.enforce_limit(&user_id, &client_id, 3, NOW.plus(70)).await,
    );
    check_eq(storage, "grants revoked by enforce_limit(3) of 5", revoked, 2);
    // Least recently used: last used at +10 and +20.
    let expected: Vec<Grant> = grants
        .iter()
        .map(|g| {
            if g.last_used_at <= NOW.plus(20) {
                revoked_as(g.clone(), NOW.plus(70), "grant_limit")
            } else {
                g.clone()
            }
        })
        .collect();
    let mut all: Vec<&Grant> = expected.iter().collect();
    all.extend([&revoked_earlier, &other_client, &other_user]);
    expect_grants(storage, "after enforce_limit(3)", &all).await;
    let found = ok(storage, "find token", tokens.find_by_hash(&least_recent.hash).await);
    check_eq(storage, "access token of a grant revoked by enforce_limit", found, None);
    let found = ok(storage, "find token", tokens.find_by_hash(&most_recent.hash).await);
    check_eq(
        storage,
        "access token of a grant kept by enforce_limit",
        found.as_ref(),
        Some(&most_recent),
    );

    let again = ok(
        storage,
        "enforce_limit again",
        repo.enforce_limit(&user_id, &client_id, 3, NOW.plus(80)).await,
    );
    check_eq(storage, "grants revoked by enforce_limit(3) of 3", again, 0);
    expect_grants(storage, "after a second enforce_limit (unchanged)", &all).await;

    // Ties: the same last use goes by creation, then by id (the greatest is the newest).
    let (user_id, client_id) = (unique("user"), unique("client"));
    let tied = |suffix: &str, created: u64| {
        let mut g = grant(&user_id, GrantKind::Offline, None, NOW.plus(created));
        g.id = format!("{user_id}-{suffix}");
        g.client_id.clone_from(&client_id);
        g.last_used_at = NOW.plus(100);
        g
    };
    let (older, newer_a, newer_b) = (tied("z", 1), tied("a", 2), tied("b", 2));
    for g in [&older, &newer_a, &newer_b] {
        ok(storage, "add grant", repo.add(g).await);
    }
    let revoked = ok(
        storage,
        "enforce_limit with ties",
        repo.enforce_limit(&user_id, &client_id, 1, NOW.plus(200)).await,
    );
    check_eq(storage, "grants revoked by enforce_limit(1) of 3", revoked, 2);
    let older = revoked_as(older, NOW.plus(200), "grant_limit");
    let newer_a = revoked_as(newer_a, NOW.plus(200), "grant_limit");
    expect_grants(storage, "after enforce_limit with ties", &[&older, &newer_a, &newer_b]).await;
}

/// 10 concurrent `enforce_limit(3)` calls on 6 grants revoke exactly 3 between them (the 3 least
/// recently used), and the revocation each reports is its own.
pub async fn grants_enforce_limit_concurrently(storage: &dyn Storage) {
    let repo = storage.grants();
    let (user_id, client_id) = (unique("user"), unique("client"));
    let grants: Vec<Grant> = (0..6)
        .map(|n| {
            let mut g = grant(&user_id, GrantKind::Offline, None, NOW);
            g.client_id.clone_from(&client_id);
            g.last_used_at = NOW.plus(n);
            g
        })
        .collect();
    for g in &grants {
        ok(storage, "add grant", repo.add(g).await);
    }
    let results = join_all((0..10).map(|n| repo.enforce_limit(&user_id, &client_id, 3, NOW.plus(100 + n)))).await;
    let revoked: u64 = results
        .into_iter()
        .map(|result| ok(storage, "concurrent enforce_limit", result))
        .sum();
    check_eq(
        storage,
        "grants revoked by 10 concurrent enforce_limit(3) of 6",
        revoked,
        3,
    );
    for (n, g) in grants.iter().enumerate() {
        let found = ok(storage, "lookup grant", repo.lookup(&g.id).await);
        let is_revoked = found.as_ref().is_some_and(|g| g.revoked_at.is_some());
        check_eq(
            storage,
            &format!("grant used {n}th after concurrent enforce_limit: revoked"),
            is_revoked,
            n < 3,
        );
    }
}

/// Refresh tokens: add (a duplicate hash is a conflict), `find_by_hash` (missing is `None`); every
/// field survives, a parent and `spent_at` included.
pub async fn refresh_tokens_add_find(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let g = grant(&unique("user"), GrantKind::Offline, None, NOW);
    let first = refresh_token(&g, None);
    let mut child = refresh_token(&g, Some(first.hash));
    child.use_count = 7;
    child.spent_at = Some(NOW.plus(5));
    child.expires_at = NOW.plus(99);
    for t in [&first, &child] {
        ok(storage, "add refresh token", repo.add(t).await);
        let found = ok(storage, "find refresh token", repo.find_by_hash(&t.hash).await);
        check_eq(storage, "found refresh token", found.as_ref(), Some(t));
    }
    let mut duplicate = refresh_token(&g, None);
    duplicate.hash = first.hash;
    expect_conflict(storage, "adding a refresh token hash twice", repo.add(&duplicate).await);
    let found = ok(storage, "find refresh token", repo.find_by_hash(&first.hash).await);
    check_eq(
        storage,
        "refresh token after a conflicting add (unchanged)",
        found.as_ref(),
        Some(&first),
    );
    let missing = ok(
        storage,
        "find missing refresh token",
        repo.find_by_hash(&TokenHash::of(&unique("no-token"))).await,
    );
    check_eq(storage, "find of a missing refresh token", missing, None);
}

/// `find_with_context`: the token with its grant, the grant's session and user; missing rows
/// are `None`, an unknown token is `None` altogether.
pub async fn refresh_token_find_with_context(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let u = user(&unique("user"), &unique("ctx-user"));
    ok(storage, "add user", storage.users().add(&u).await);
    let s = session(&unique("session"), &u.id);
    ok(storage, "add session", storage.sessions().add(&s).await);
    let online = grant(&u.id, GrantKind::Online, Some(&s.id), NOW);
    ok(storage, "add grant", storage.grants().add(&online).await);
    let token = refresh_token(&online, None);
    ok(storage, "add refresh token", repo.add(&token).await);
    let found = ok(storage, "find with context", repo.find_with_context(&token.hash).await);
    check_eq(
        storage,
        "context of an online grant's token",
        found,
        Some(RefreshContext {
            token: token.clone(),
            grant: Some(online.clone()),
            session: Some(s.clone()),
            user: Some(u.clone()),
        }),
    );

    // An offline grant without a session, whose user is gone.
    let offline = grant(&unique("gone-user"), GrantKind::Offline, None, NOW);
    ok(storage, "add grant", storage.grants().add(&offline).await);
    let orphan = refresh_token(&offline, None);
    ok(storage, "add refresh token", repo.add(&orphan).await);
    let found = ok(storage, "find with context", repo.find_with_context(&orphan.hash).await);
    check_eq(
        storage,
        "context of a token whose grant has no session and whose user is gone",
        found,
        Some(RefreshContext {
            token: orphan,
            grant: Some(offline),
            session: None,
            user: None,
        }),
    );

    // A token whose grant row is gone.
    let lost = refresh_token_for(&unique("no-grant"), "some-client", None);
    ok(storage, "add refresh token", repo.add(&lost).await);
    let found = ok(storage, "find with context", repo.find_with_context(&lost.hash).await);
    check_eq(
        storage,
        "context of a token whose grant is gone",
        found,
        Some(RefreshContext {
            token: lost,
            grant: None,
            session: None,
            user: None,
        }),
    );

    let missing = ok(
        storage,
        "find with context of a missing token",
        repo.find_with_context(&TokenHash::of(&unique("no-token"))).await,
    );
    check_eq(storage, "context of a missing token", missing, None);
}

/// `refresh`: an unknown token is `None` and the planner is not called; the planner sees what
/// `find_with_context` returns; its `None` changes nothing; its rotation commits as `rotate`'s;
/// a rotation planned on a revoked grant does not commit.
pub async fn refresh_token_refresh(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let u = user(&unique("user"), &unique("refresh-user"));
    ok(storage, "add user", storage.users().add(&u).await);
    let s = session(&unique("session"), &u.id);
    ok(storage, "add session", storage.sessions().add(&s).await);
    let g = grant(&u.id, GrantKind::Online, Some(&s.id), NOW);
    let presented = add_grant_with_token(storage, &g).await;
    let context = RefreshContext {
        token: presented.clone(),
        grant: Some(g.clone()),
        session: Some(s.clone()),
        user: Some(u.clone()),
    };

    let called = Arc::new(AtomicBool::new(false));
    let planner_called = Arc::clone(&called);
    let missing = ok(
        storage,
        "refresh an unknown token",
        repo.refresh(
            &TokenHash::of(&unique("no-token")),
            Box::new(move |_| {
                planner_called.store(true, Ordering::SeqCst);
                None
            }),
        )
        .await,
    );
    check(
        storage,
        missing.is_none(),
        "refreshing an unknown token must return None",
    );
    check(
        storage,
        !called.load(Ordering::SeqCst),
        "the planner must not be called for an unknown token",
    );

    let seen = Arc::new(Mutex::new(None));
    let planner_saw = Arc::clone(&seen);
    let declined = ok(
        storage,
        "refresh, the planner declining",
        repo.refresh(
            &presented.hash,
            Box::new(move |found| {
                *planner_saw.lock().unwrap_or_else(PoisonError::into_inner) = Some(found.clone());
                None
            }),
        )
        .await,
    );
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    check_eq(storage, "context given to the planner", seen, Some(context.clone()));
    let declined = declined.map(|r| (r.context, r.rotated));
    check_eq(
        storage,
        "a declined refresh (context, rotated)",
        declined,
        Some((context, false)),
    );
    expect_token(
        storage,
        "presented token after a declined refresh (unchanged)",
        &presented,
    )
    .await;

    let first = rotation(&presented, Some(0), 1, Some(&s.id), NOW.plus(10));
    let planned = first.clone();
    let refreshed = ok(
        storage,
        "refresh, the planner rotating",
        repo.refresh(&presented.hash, Box::new(move |_| Some(planned))).await,
    );
    check(
        storage,
        refreshed.is_some_and(|r| r.rotated),
        "a planned rotation of a fresh token must commit",
    );
    let mut used = presented.clone();
    used.use_count = 1;
    used.spent_at = Some(NOW.plus(10));
    expect_token(storage, "presented token after a refresh (used up, spent)", &used).await;
    expect_token(storage, "child token after a refresh", &first.new_token).await;
    let mut expected_session = s.clone();
    expected_session.last_active_at = NOW.plus(10);
    expect_session(storage, "session after a refresh (touched)", &expected_session).await;

    ok(
        storage,
        "revoke grant",
        storage.grants().revoke(&g.id, NOW.plus(15), "test").await,
    );
    let second = rotation(&first.new_token, Some(0), 1, None, NOW.plus(20));
    let planned = second.clone();
    let refreshed = ok(
        storage,
        "refresh on a revoked grant, the planner rotating anyway",
        repo.refresh(&first.new_token.hash, Box::new(move |_| Some(planned)))
            .await,
    );
    check(
        storage,
        refreshed.is_some_and(|r| !r.rotated),
        "a rotation planned on a revoked grant must not commit",
    );
    expect_token(
        storage,
        "child token after a refused refresh (unchanged)",
        &first.new_token,
    )
    .await;
    expect_absent(storage, "token planned on a revoked grant", &second.new_token.hash).await;
}

/// `rotate`: uses the presented token once (spent when used up), inserts the child, records the
/// grant's last use and touches the session (forward only; an ended session is left alone and
/// does not fail the rotation).
pub async fn refresh_token_rotate(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let s = session(&unique("session"), &unique("user"));
    ok(storage, "add session", storage.sessions().add(&s).await);
    let g = grant(&s.user_id, GrantKind::Online, Some(&s.id), NOW);
    let presented = add_grant_with_token(storage, &g).await;

    let first = rotation(&presented, Some(0), 1, Some(&s.id), NOW.plus(10));
    let rotated = ok(storage, "rotate", repo.rotate(&first).await);
    check(storage, rotated, "rotating a fresh token must return true");
    let mut used = presented.clone();
    used.use_count = 1;
    used.spent_at = Some(NOW.plus(10));
    expect_token(storage, "presented token after rotation (used up, spent)", &used).await;
    expect_token(storage, "child token after rotation", &first.new_token).await;
    let mut expected_grant = g.clone();
    expected_grant.last_used_at = NOW.plus(10);
    expect_grants(storage, "grant after rotation (last use recorded)", &[&expected_grant]).await;
    let mut expected_session = s.clone();
    expected_session.last_active_at = NOW.plus(10);
    expect_session(storage, "session after rotation (touched)", &expected_session).await;

    // A node whose clock is behind: the session's activity must not move back.
    let skewed = rotation(&first.new_token, Some(0), 1, Some(&s.id), NOW.plus(5));
    let rotated = ok(storage, "rotate with an earlier time", repo.rotate(&skewed).await);
    check(storage, rotated, "rotating the child must return true");
    expect_token(storage, "grandchild token", &skewed.new_token).await;
    expect_session(
        storage,
        "session after a rotation with an earlier time (last_active_at must not move back)",
        &expected_session,
    )
    .await;

    ok(
        storage,
        "end session",
        storage.sessions().end(&s.id, NOW.plus(20)).await,
    );
    expected_session.ended_at = Some(NOW.plus(20));
    let after_end = rotation(&skewed.new_token, Some(0), 1, Some(&s.id), NOW.plus(30));
    let rotated = ok(storage, "rotate after the session ended", repo.rotate(&after_end).await);
    check(
        storage,
        rotated,
        "an ended session is not rotate's business: the rotation must still return true",
    );
    expect_session(storage, "ended session after a rotation (untouched)", &expected_session).await;

    let missing = rotation(&refresh_token(&g, None), Some(0), 1, None, NOW.plus(40));
    let rotated = ok(storage, "rotate an unknown token", repo.rotate(&missing).await);
    check(storage, !rotated, "rotating an unknown token must return false");
    expect_absent(storage, "child of an unknown token", &missing.new_token.hash).await;
}

/// `rotate` with `allowed_uses = 3`: the first two uses leave the token unspent, the third
/// spends it, a fourth finds it spent.
pub async fn refresh_token_rotate_max_uses(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let g = grant(&unique("user"), GrantKind::Offline, None, NOW);
    let presented = add_grant_with_token(storage, &g).await;
    let mut expected = presented.clone();
    for use_count in 0..3 {
        let now = NOW.plus(10 * (u64::from(use_count) + 1));
        let r = rotation(&presented, Some(use_count), 3, None, now);
        let rotated = ok(storage, "rotate", repo.rotate(&r).await);
        check(storage, rotated, format!("use {} of 3 must return true", use_count + 1));
        expected.use_count = use_count + 1;
        expected.spent_at = (use_count == 2).then_some(now);
        expect_token(storage, &format!("token after use {} of 3", use_count + 1), &expected).await;
        expect_token(storage, "child token", &r.new_token).await;
    }
    let r = rotation(&presented, Some(3), 3, None, NOW.plus(100));
    let rotated = ok(storage, "rotate a used-up token", repo.rotate(&r).await);
    check(storage, !rotated, "a fourth use of a token allowed 3 must return false");
    expect_token(storage, "used-up token after a refused use (unchanged)", &expected).await;
    expect_absent(storage, "child of a refused use", &r.new_token.hash).await;
}

/// `rotate` with a stale `expected_use_count` changes nothing (but maybe the grant's
/// `last_used_at`) and returns `false`.
pub async fn refresh_token_rotate_stale_use_count(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let s = session(&unique("session"), &unique("user"));
    ok(storage, "add session", storage.sessions().add(&s).await);
    let g = grant(&s.user_id, GrantKind::Online, Some(&s.id), NOW);
    let presented = add_grant_with_token(storage, &g).await;

    for stale in [1, 5] {
        let r = rotation(&presented, Some(stale), 10, Some(&s.id), NOW.plus(10));
        let rotated = ok(storage, "rotate with a stale use count", repo.rotate(&r).await);
        check(
            storage,
            !rotated,
            format!("rotating with expected_use_count {stale} (stored 0) must return false"),
        );
        expect_absent(storage, "child of a stale rotation", &r.new_token.hash).await;
    }
    expect_token(storage, "token after stale rotations (unchanged)", &presented).await;
    // The grant is unchanged, except that a backend may record the attempt as its last use (the
    // grant was in use: another request rotated the token); never later than the attempt.
    let found = ok(storage, "lookup grant", storage.grants().lookup(&g.id).await);
    let attempted = Grant {
        last_used_at: NOW.plus(10),
        ..g.clone()
    };
    check(
        storage,
        found.as_ref() == Some(&g) || found.as_ref() == Some(&attempted),
        format!("grant after stale rotations: only last_used_at may move, to the attempt: {found:?}"),
    );
    expect_session(storage, "session after stale rotations (untouched)", &s).await;
}

/// `rotate` with an opaque access token stores it in the same transaction; a rotation that does
/// not happen (a stale use count, a revoked grant) stores none.
pub async fn refresh_token_rotate_with_access_token(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let s = session(&unique("session"), &unique("user"));
    ok(storage, "add session", storage.sessions().add(&s).await);
    let g = grant(&s.user_id, GrantKind::Online, Some(&s.id), NOW);
    let presented = add_grant_with_token(storage, &g).await;
    let with_token = |expected: Option<u32>, label: &str| {
        let mut r = rotation(&presented, expected, 10, Some(&s.id), NOW.plus(10));
        let mut access = token(
            label,
            NOW.plus(10).0,
            NOW.plus(310).0,
            Some(&s.user_id),
            vec!["api".into()],
        );
        access.grant_id = Some(g.id.clone());
        access.act = Some(r#"{"sub":"svc"}"#.into());
        r.access_token = Some(access);
        r
    };

    let stale = with_token(Some(3), "stale rotation's access token");
    let rotated = ok(storage, "rotate stale with an access token", repo.rotate(&stale).await);
    check(
        storage,
        !rotated,
        "a stale rotation with an access token must return false",
    );
    let access = stale.access_token.as_ref().map(|t| t.hash);
    if let Some(hash) = access {
        let found = ok(
            storage,
            "find access token",
            storage.access_tokens().find_by_hash(&hash).await,
        );
        check(
            storage,
            found.is_none(),
            "a stale rotation must not store its access token",
        );
    }

    let r = with_token(Some(0), "rotation's access token");
    let rotated = ok(storage, "rotate with an access token", repo.rotate(&r).await);
    check(storage, rotated, "rotation with an access token must return true");
    if let Some(expected) = &r.access_token {
        let found = ok(
            storage,
            "find access token",
            storage.access_tokens().find_by_hash(&expected.hash).await,
        );
        check_eq(
            storage,
            "access token stored with the rotation",
            found.as_ref(),
            Some(expected),
        );
    }
    // Revoking the grant deletes it like any opaque token of the grant.
    ok(
        storage,
        "revoke grant",
        storage.grants().revoke(&g.id, NOW.plus(20), "test").await,
    );
    if let Some(expected) = &r.access_token {
        let found = ok(
            storage,
            "find access token",
            storage.access_tokens().find_by_hash(&expected.hash).await,
        );
        check(
            storage,
            found.is_none(),
            "revoking the grant deletes the rotation's access token",
        );
    }
}

/// `rotate` on a revoked grant changes nothing and returns `false`, however fresh the token.
pub async fn refresh_token_rotate_revoked_grant(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let s = session(&unique("session"), &unique("user"));
    ok(storage, "add session", storage.sessions().add(&s).await);
    let g = grant(&s.user_id, GrantKind::Online, Some(&s.id), NOW);
    let presented = add_grant_with_token(storage, &g).await;
    ok(
        storage,
        "revoke grant",
        storage.grants().revoke(&g.id, NOW.plus(5), "reuse").await,
    );
    let revoked = revoked_as(g.clone(), NOW.plus(5), "reuse");

    let r = rotation(&presented, Some(0), 1, Some(&s.id), NOW.plus(10));
    let rotated = ok(storage, "rotate on a revoked grant", repo.rotate(&r).await);
    check(
        storage,
        !rotated,
        "rotating a token of a revoked grant must return false",
    );
    expect_token(storage, "token of a revoked grant after rotate (not used)", &presented).await;
    expect_absent(storage, "child on a revoked grant", &r.new_token.hash).await;
    expect_grants(storage, "revoked grant after rotate (unchanged)", &[&revoked]).await;
    expect_session(storage, "session after a refused rotation (untouched)", &s).await;

    // A grant that does not exist is no better.
    let ghost = grant(&s.user_id, GrantKind::Offline, None, NOW);
    let orphan = refresh_token(&ghost, None);
    ok(storage, "add refresh token", repo.add(&orphan).await);
    let r = rotation(&orphan, Some(0), 1, None, NOW.plus(10));
    let rotated = ok(storage, "rotate on a missing grant", repo.rotate(&r).await);
    check(
        storage,
        !rotated,
        "rotating a token of a missing grant must return false",
    );
    expect_token(storage, "token of a missing grant after rotate (not used)", &orphan).await;
    expect_absent(storage, "child on a missing grant", &r.new_token.hash).await;
}

/// A sibling (`expected_use_count = None`) is inserted without touching the presented token (spent
/// or not); the grant's last use is recorded; still `false` on a revoked grant.
pub async fn refresh_token_sibling(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let g = grant(&unique("user"), GrantKind::Offline, None, NOW);
    let presented = add_grant_with_token(storage, &g).await;
    let first = rotation(&presented, Some(0), 1, None, NOW.plus(10));
    check(
        storage,
        ok(storage, "rotate", repo.rotate(&first).await),
        "rotating a fresh token must return true",
    );
    let mut spent = presented.clone();
    spent.use_count = 1;
    spent.spent_at = Some(NOW.plus(10));

    let sibling = rotation(&presented, None, 1, None, NOW.plus(12));
    let rotated = ok(storage, "rotate a sibling", repo.rotate(&sibling).await);
    check(storage, rotated, "issuing a sibling must return true");
    expect_token(storage, "sibling token", &sibling.new_token).await;
    expect_token(storage, "presented token after a sibling (unchanged)", &spent).await;
    expect_token(storage, "first child after a sibling (unchanged)", &first.new_token).await;
    let mut expected_grant = g.clone();
    expected_grant.last_used_at = NOW.plus(12);
    expect_grants(storage, "grant after a sibling (last use recorded)", &[&expected_grant]).await;

    ok(
        storage,
        "revoke grant",
        storage.grants().revoke(&g.id, NOW.plus(13), "reuse").await,
    );
    let expected_grant = revoked_as(expected_grant, NOW.plus(13), "reuse");
    let late = rotation(&presented, None, 1, None, NOW.plus(14));
    let rotated = ok(storage, "rotate a sibling on a revoked grant", repo.rotate(&late).await);
    check(storage, !rotated, "a sibling on a revoked grant must return false");
    expect_absent(storage, "sibling on a revoked grant", &late.new_token.hash).await;
    expect_token(storage, "presented token after a refused sibling (unchanged)", &spent).await;
    expect_grants(
        storage,
        "revoked grant after a refused sibling (unchanged)",
        &[&expected_grant],
    )
    .await;
}

/// Of 20 concurrent rotations of one token with the same expected use count, exactly one returns
/// `true` and exactly one child is stored — also when the token may be used again.
pub async fn refresh_token_concurrent_rotation(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    for allowed_uses in [1, 2] {
        let g = grant(&unique("user"), GrantKind::Offline, None, NOW);
        let presented = add_grant_with_token(storage, &g).await;
        let rotations: Vec<Rotation> = (0..20)
            .map(|n| rotation(&presented, Some(0), allowed_uses, None, NOW.plus(n)))
            .collect();
        let results = join_all(rotations.iter().map(|r| repo.rotate(r))).await;
        let winners: Vec<&Rotation> = results
            .into_iter()
            .zip(&rotations)
            .filter_map(|(result, r)| ok(storage, "concurrent rotate", result).then_some(r))
            .collect();
        check_eq(
            storage,
            &format!("successful rotations of 20 concurrent ones (allowed_uses {allowed_uses})"),
            winners.len(),
            1,
        );
        let mut children = 0;
        for r in &rotations {
            let found = ok(storage, "find child", repo.find_by_hash(&r.new_token.hash).await);
            children += usize::from(found.is_some());
        }
        check_eq(storage, "children stored by 20 concurrent rotations", children, 1);
        let Some(winner) = winners.first() else { return };
        expect_token(storage, "the winning rotation's child", &winner.new_token).await;
        let mut expected = presented.clone();
        expected.use_count = 1;
        expected.spent_at = (allowed_uses == 1).then_some(winner.now);
        expect_token(storage, "token after 20 concurrent rotations (used once)", &expected).await;
    }
}

/// Many rotations at once, of different grants, one of which fails (its new token's hash is
/// taken): the others all happen, the failing one changes nothing and reports a conflict. (A
/// backend that commits rotations in groups must not let one failure sink its group.)
pub async fn refresh_token_concurrent_rotations_of_many_grants(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let mut rotations = Vec::new();
    for n in 0..40 {
        let g = grant(&unique("user"), GrantKind::Offline, None, NOW);
        let presented = add_grant_with_token(storage, &g).await;
        rotations.push((presented.clone(), rotation(&presented, Some(0), 1, None, NOW.plus(n))));
    }
    // The 21st rotation's new token collides with the first grant's presented token.
    let taken = rotations[0].0.hash;
    rotations[20].1.new_token.hash = taken;
    let results = join_all(rotations.iter().map(|(_, r)| repo.rotate(r))).await;
    for (n, ((presented, r), result)) in rotations.iter().zip(results).enumerate() {
        if n == 20 {
            check(
                storage,
                matches!(result, Err(RepositoryError::Conflict(_))),
                format!("a rotation whose new hash is taken must fail with Conflict, got {result:?}"),
            );
            expect_token(storage, "the failed rotation's token (unused)", presented).await;
            continue;
        }
        let rotated = ok(storage, "concurrent rotation of its own grant", result);
        check(storage, rotated, "each grant's rotation must return true");
        expect_token(storage, "a concurrent rotation's child", &r.new_token).await;
    }
}

/// A rotation racing its grant's revocation is all or nothing: either it returns `true` with the
/// token used and the child stored, or `false` with neither; the grant ends revoked either way.
pub async fn refresh_token_rotation_racing_revocation(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let mut setups = Vec::new();
    for n in 0..10 {
        let g = grant(&unique("user"), GrantKind::Offline, None, NOW);
        let presented = add_grant_with_token(storage, &g).await;
        // Half already used once, so the race also covers a compare-and-set on a used token.
        let expected = if n % 2 == 0 {
            0
        } else {
            let first = rotation(&presented, Some(0), 3, None, NOW.plus(1));
            check(
                storage,
                ok(storage, "rotate", repo.rotate(&first).await),
                "rotating a fresh token must return true",
            );
            1
        };
        let mut before = presented.clone();
        before.use_count = expected;
        setups.push((g, before, rotation(&presented, Some(expected), 3, None, NOW.plus(10))));
    }
    let races = setups.iter().map(|(g, _, r)| async move {
        futures::join!(repo.rotate(r), storage.grants().revoke(&g.id, NOW.plus(10), "reuse"))
    });
    for ((g, before, r), (rotated, revoked)) in setups.iter().zip(join_all(races).await) {
        let rotated = ok(storage, "rotate racing a revocation", rotated);
        check(
            storage,
            ok(storage, "revoke racing a rotation", revoked),
            "a revocation racing a rotation must return true",
        );
        if rotated {
            let mut used = before.clone();
            used.use_count += 1;
            expect_token(storage, "token after a rotation that beat the revocation", &used).await;
            expect_token(storage, "child of a rotation that beat the revocation", &r.new_token).await;
        } else {
            expect_token(
                storage,
                "token after a rotation that lost to the revocation (unchanged)",
                before,
            )
            .await;
            expect_absent(
                storage,
                "child of a rotation that lost to the revocation",
                &r.new_token.hash,
            )
            .await;
        }
        let found = ok(storage, "lookup grant", storage.grants().lookup(&g.id).await);
        check(
            storage,
            found.is_some_and(|g| g.revoked_at == Some(NOW.plus(10))),
            "a grant revoked while rotating must end revoked",
        );
    }
}

/// `cleanup_expired` deletes expired tokens (spent or not, of live or revoked grants), leaves
/// unexpired ones alone — also those of a revoked grant, which go when they expire — at most
/// `limit` at a time.
pub async fn refresh_tokens_cleanup(storage: &dyn Storage) {
    let repo = storage.refresh_tokens();
    let grants = storage.grants();
    let live_grant = grant(&unique("user"), GrantKind::Offline, None, NOW);
    let revoked_grant = grant(&unique("user"), GrantKind::Offline, None, NOW);
    for g in [&live_grant, &revoked_grant] {
        ok(storage, "add grant", grants.add(g).await);
    }
    ok(
        storage,
        "revoke grant",
        grants.revoke(&revoked_grant.id, Timestamp(NOW.0 - 10), "reuse").await,
    );
    let mut expired = refresh_token(&live_grant, None);
    expired.expires_at = Timestamp(NOW.0 - 1);
    let mut expired_spent = refresh_token(&live_grant, Some(expired.hash));
    expired_spent.expires_at = Timestamp(NOW.0 - 1);
    expired_spent.use_count = 1;
    expired_spent.spent_at = Some(Timestamp(NOW.0 - 5));
    let mut expired_of_revoked = refresh_token(&revoked_grant, None);
    expired_of_revoked.expires_at = Timestamp(NOW.0 - 1);
    let live = refresh_token(&live_grant, None);
    let mut expiring_now = refresh_token(&live_grant, None);
    expiring_now.expires_at = NOW;
    let unexpired_of_revoked = refresh_token(&revoked_grant, None);
    for t in [
        &expired,
        &expired_spent,
        &expired_of_revoked,
        &live,
        &expiring_now,
        &unexpired_of_revoked,
    ] {
        ok(storage, "add refresh token", repo.add(t).await);
    }

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
        removed >= 3,
        format!("cleanup_expired must delete the 3 expired tokens (deleted {removed})"),
    );
    for (what, t) in [
        ("expired token", &expired),
        ("expired spent token", &expired_spent),
        ("expired token of a revoked grant", &expired_of_revoked),
    ] {
        expect_absent(storage, &format!("{what} after cleanup"), &t.hash).await;
    }
    for (what, t) in [
        ("live token", &live),
        ("token expiring exactly now", &expiring_now),
        (
            "unexpired token of a revoked grant (goes when it expires)",
            &unexpired_of_revoked,
        ),
    ] {
        expect_token(storage, &format!("{what} after cleanup (kept)"), t).await;
    }

    // At most `limit` per call.
    for _ in 0..3 {
        let mut t = refresh_token(&live_grant, None);
        t.expires_at = Timestamp(NOW.0 - 50);
        ok(storage, "add expired refresh token", repo.add(&t).await);
    }
    let first = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired with limit 2 of 3 expired tokens", first, 2);
    let second = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired of the last expired token", second, 1);
    let third = ok(storage, "cleanup_expired", repo.cleanup_expired(NOW, 2).await);
    check_eq(storage, "cleanup_expired with nothing left", third, 0);
}

/// Events: a batch is recorded and read back unchanged; `query` filters by each of user, client,
/// kind, `since` (inclusive) and `until` (exclusive), alone and together, newest first.
pub async fn events_record_and_filter(storage: &dyn Storage) {
    let repo = storage.events();
    let base = event_window();
    let (user, other_user) = (unique("user"), unique("user"));
    let (client, other_client) = (unique("client"), unique("client"));
    let (login, issued) = (unique("login.succeeded"), unique("token.issued"));
    let mut full = event("full", base.plus(5), &login, Some(&user), Some(&client));
    full.grant_id = Some(unique("grant"));
    full.session_id = Some(unique("session"));
    full.details = r#"{"grant_type":"refresh_token","note":"«ünïcødé»"}"#.into();
    let e1 = event("e1", base.plus(1), &login, Some(&user), Some(&client));
    let e2 = event("e2", base.plus(2), &issued, Some(&user), Some(&other_client));
    let e3 = event("e3", base.plus(3), &login, Some(&other_user), Some(&client));
    let mut e4 = event("e4", base.plus(4), &issued, None, Some(&client));
    e4.actor = "system".into();
    ok(storage, "record no events", repo.record(&[]).await);
    ok(
        storage,
        "record events",
        repo.record(&[e1.clone(), e2.clone(), e3.clone(), e4.clone(), full.clone()])
            .await,
    );

    let end = Some((base.plus(EVENT_WINDOW), String::new()));
    let cases = [
        (
            "by user",
            EventFilter {
                user_id: Some(user.clone()),
                ..EventFilter::default()
            },
            None,
            vec![&full, &e2, &e1],
        ),
        (
            "by client",
            EventFilter {
                client_id: Some(client.clone()),
                ..EventFilter::default()
            },
            None,
            vec![&full, &e4, &e3, &e1],
        ),
        (
            "by kind",
            EventFilter {
                kind: Some(login.clone()),
                ..EventFilter::default()
            },
            None,
            vec![&full, &e3, &e1],
        ),
        (
            "by user and client",
            EventFilter {
                user_id: Some(user.clone()),
                client_id: Some(client.clone()),
                ..EventFilter::default()
            },
            None,
            vec![&full, &e1],
        ),
        (
            "by user and kind",
            EventFilter {
                user_id: Some(user.clone()),
                kind: Some(issued.clone()),
                ..EventFilter::default()
            },
            None,
            vec![&e2],
        ),
        (
            "since (inclusive) and until (exclusive)",
            EventFilter {
                since: Some(base.plus(2)),
                until: Some(base.plus(4)),
                ..EventFilter::default()
            },
            None,
            vec![&e3, &e2],
        ),
        (
            "since alone, below the end of the window",
            EventFilter {
                since: Some(base.plus(4)),
                ..EventFilter::default()
            },
            end.clone(),
            vec![&full, &e4],
        ),
        (
            "until alone, with the client",
            EventFilter {
                client_id: Some(client.clone()),
                until: Some(base.plus(3)),
                ..EventFilter::default()
            },
            None,
            vec![&e1],
        ),
        (
            "by client and since",
            EventFilter {
                client_id: Some(client.clone()),
                since: Some(base.plus(3)),
                ..EventFilter::default()
            },
            None,
            vec![&full, &e4, &e3],
        ),
        (
            "by every field",
            EventFilter {
                user_id: Some(user.clone()),
                client_id: Some(client.clone()),
                kind: Some(login.clone()),
                since: Some(base.plus(1)),
                until: Some(base.plus(5)),
            },
            None,
            vec![&e1],
        ),
        (
            "no filter, below the end of the window",
            EventFilter::default(),
            end.clone(),
            vec![&full, &e4, &e3, &e2, &e1],
        ),
        (
            "a user with no events",
            EventFilter {
                user_id: Some(unique("user")),
                ..EventFilter::default()
            },
            None,
            vec![],
        ),
        (
            "an empty time range",
            EventFilter {
                since: Some(base.plus(3)),
                until: Some(base.plus(3)),
                ..EventFilter::default()
            },
            None,
            vec![],
        ),
    ];
    for (what, filter, before, expected) in cases {
        // `limit` 5: one page holds every event of the window, so the window bounds the results.
        let page = Page { before, limit: 5 };
        let found = ok(storage, "query events", repo.query(&filter, &page).await);
        let expected: Vec<AuditEvent> = expected.into_iter().cloned().collect();
        check_eq(storage, &format!("events {what}"), found, expected);
    }
    // `until` alone: the newest events before it are ours (everything else is older than the window).
    let filter = EventFilter {
        until: Some(base.plus(3)),
        ..EventFilter::default()
    };
    let page = Page { before: None, limit: 2 };
    let found = ok(storage, "query events", repo.query(&filter, &page).await);
    check_eq(storage, "events until alone", found, vec![e2, e1]);
}

/// Events page like grants: keyset pages newest first by (`at`, `id`), with page boundaries
/// inside runs of equal `at`, each event exactly once, through the user, client, kind and time
/// filters and with none; a page size of 0 returns nothing.
pub async fn events_pages(storage: &dyn Storage) {
    let repo = storage.events();
    let base = event_window();
    let (user, client, kind) = (unique("user"), unique("client"), unique("admin.changed"));
    let prefix = unique("event");
    let mut own: Vec<AuditEvent> = TIES
        .iter()
        .map(|(suffix, at)| {
            let mut e = event(
                "tie",
                base.plus(NOW.seconds_until(*at) * 10),
                &kind,
                Some(&user),
                Some(&client),
            );
            e.id = format!("{prefix}-{suffix}");
            e
        })
        .collect();
    // Others at the same times, with ids that sort among ours: matched by no filter but time.
    let others: Vec<AuditEvent> = [("b2", 10), ("E", 20), ("f", 0)]
        .iter()
        .map(|(suffix, offset)| {
            let mut e = event(
                "other",
                base.plus(*offset),
                &unique("other"),
                Some(&unique("user")),
                None,
            );
            e.id = format!("{prefix}-{suffix}");
            e
        })
        .collect();
    ok(storage, "record other events", repo.record(&others).await);
    ok(storage, "record events", repo.record(&own).await);
    own.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    let mut everything: Vec<AuditEvent> = own.iter().chain(&others).cloned().collect();
    everything.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));

    let end = Some((base.plus(EVENT_WINDOW), String::new()));
    let cases = [
        (
            "by user",
            EventFilter {
                user_id: Some(user.clone()),
                ..EventFilter::default()
            },
            None,
            &own,
        ),
        (
            "by client",
            EventFilter {
                client_id: Some(client.clone()),
                ..EventFilter::default()
            },
            None,
            &own,
        ),
        (
            "by kind",
            EventFilter {
                kind: Some(kind.clone()),
                ..EventFilter::default()
            },
            None,
            &own,
        ),
        (
            "by time",
            EventFilter {
                since: Some(base),
                until: Some(base.plus(EVENT_WINDOW)),
                ..EventFilter::default()
            },
            None,
            &everything,
        ),
    ];
    for (what, filter, start, expected) in cases {
        let pages = event_pages(storage, &filter, start, 3).await;
        let mut sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        let listed: Vec<AuditEvent> = pages.into_iter().flatten().collect();
        check_eq(storage, &format!("events {what} over every page"), &listed, expected);
        // Full pages until the last, which is short (possibly empty).
        let last = sizes.pop().unwrap_or_default();
        check(
            storage,
            sizes.iter().all(|n| *n == 3) && last < 3,
            format!("events {what}: page sizes {sizes:?} then {last}"),
        );
    }
    // With no filter at all the pages go on into older events: the first ones below the window's
    // end are ours, in order.
    let pages = event_pages(storage, &EventFilter::default(), end, 4).await;
    let listed: Vec<AuditEvent> = pages.into_iter().flatten().take(everything.len()).collect();
    check_eq(
        storage,
        "events with no filter over the first pages",
        listed,
        everything,
    );

    let filter = EventFilter {
        user_id: Some(user),
        ..EventFilter::default()
    };
    let after_last = Page {
        before: own.last().map(|e| (e.at, e.id.clone())),
        limit: 3,
    };
    let rest = ok(storage, "query events", repo.query(&filter, &after_last).await);
    check_eq(storage, "the page after the last event", rest, Vec::new());
    let empty = Page { before: None, limit: 0 };
    let none = ok(storage, "query events", repo.query(&filter, &empty).await);
    check_eq(storage, "a page of 0 events", none, Vec::new());
}

/// Recording an event id that exists, or the same id twice in one batch, is a conflict, and a
/// batch that conflicts records none of its events.
pub async fn events_duplicate_id(storage: &dyn Storage) {
    let repo = storage.events();
    let base = event_window();
    let user = unique("user");
    let first = event("first", base, "login.succeeded", Some(&user), None);
    ok(storage, "record event", repo.record(std::slice::from_ref(&first)).await);
    let mut again = first.clone();
    again.kind = "login.failed".into();
    expect_conflict(
        storage,
        "recording an event id twice",
        repo.record(std::slice::from_ref(&again)).await,
    );
    let fresh = event("fresh", base.plus(1), "logout", Some(&user), None);
    expect_conflict(
        storage,
        "recording a batch holding a stored event id",
        repo.record(&[fresh, again]).await,
    );
    let twin = event("twin", base.plus(2), "logout", Some(&user), None);
    expect_conflict(
        storage,
        "recording a batch holding one id twice",
        repo.record(&[twin.clone(), twin]).await,
    );
    let filter = EventFilter {
        user_id: Some(user),
        ..EventFilter::default()
    };
    let found = ok(
        storage,
        "query events",
        repo.query(
            &filter,
            &Page {
                before: None,
                limit: 10,
            },
        )
        .await,
    );
    check_eq(
        storage,
        "events after conflicting batches (only the first, unchanged)",
        found,
        vec![first],
    );
}

/// `cleanup_before` deletes events strictly before the cutoff, at most `limit` per call.
pub async fn events_cleanup_before(storage: &dyn Storage) {
    let repo = storage.events();
    // Long before any other check's events, so only this check's (of earlier runs too) go.
    let cutoff = Timestamp(1_000_000);
    loop {
        if ok(storage, "cleanup_before", repo.cleanup_before(cutoff, 1000).await) == 0 {
            break;
        }
    }
    let user = unique("user");
    let old: Vec<AuditEvent> = (1..=3)
        .map(|n| event("old", Timestamp(cutoff.0 - n), "token.issued", Some(&user), None))
        .collect();
    let at_cutoff = event("at-cutoff", cutoff, "token.issued", Some(&user), None);
    let after = event("after", cutoff.plus(1), "token.issued", Some(&user), None);
    let mut batch = old.clone();
    batch.extend([at_cutoff.clone(), after.clone()]);
    ok(storage, "record events", repo.record(&batch).await);

    let none = ok(storage, "cleanup_before", repo.cleanup_before(cutoff, 0).await);
    check_eq(storage, "cleanup_before with limit 0", none, 0);
    let first = ok(storage, "cleanup_before", repo.cleanup_before(cutoff, 2).await);
    check_eq(storage, "cleanup_before with limit 2 of 3 old events", first, 2);
    let second = ok(storage, "cleanup_before", repo.cleanup_before(cutoff, 2).await);
    check_eq(storage, "cleanup_before of the last old event", second, 1);
    let third = ok(storage, "cleanup_before", repo.cleanup_before(cutoff, 2).await);
    check_eq(storage, "cleanup_before with nothing left", third, 0);
    let filter = EventFilter {
        user_id: Some(user),
        ..EventFilter::default()
    };
    let left = ok(
        storage,
        "query events",
        repo.query(
            &filter,
            &Page {
                before: None,
                limit: 10,
            },
        )
        .await,
    );
    check_eq(
        storage,
        "events after cleanup_before (the one at the cutoff is kept)",
        left,
        vec![after, at_cutoff],
    );
}

fn user(id: &str, username: &str) -> User {
    User {
        id: id.to_owned(),
        username: username.to_owned(),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${id}")),
        claims: UserClaims {
            name: Some(format!("User {username}")),
            email: Some(format!("{username}@example.com")),
            email_verified: Some(true),
            ..UserClaims::default()
        },
        is_disabled: false,
        password_changed_at: Some(NOW),
        created_at: NOW,
        updated_at: NOW,
    }
}

fn session(id: &str, user_id: &str) -> SsoSession {
    SsoSession {
        id: id.to_owned(),
        token_hash: TokenHash::of(&format!("cookie of {id}")),
        user_id: user_id.to_owned(),
        auth_time: NOW,
        amr: vec!["pwd".into()],
        acr: None,
        last_active_at: NOW,
        expires_at: NOW.plus(86_400),
        ended_at: None,
    }
}

/// A code with every optional field set, expiring at `expires_at`.
fn code(label: &str, expires_at: Timestamp) -> AuthorizationCode {
    let id = unique(label);
    AuthorizationCode {
        hash: TokenHash::of(&format!("code {id}")),
        client_id: unique("client"),
        user_id: unique("user"),
        session_id: unique("session"),
        grant_id: unique("grant"),
        redirect_uri: "https://client.example/cb?x=1".into(),
        scope: "openid profile offline_access".into(),
        nonce: Some(format!("nonce {id}")),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        code_challenge_method: Some("S256".into()),
        audience: vec!["https://api.example".into(), "urn:b".into()],
        auth_time: Timestamp(NOW.0 - 30),
        amr: vec!["pwd".into(), "otp".into()],
        acr: Some("urn:tessera:acr:2fa".into()),
        created_at: NOW,
        expires_at,
        consumed_at: None,
    }
}

fn grant(user_id: &str, kind: GrantKind, session_id: Option<&str>, created_at: Timestamp) -> Grant {
    Grant {
        id: unique("grant"),
        user_id: user_id.to_owned(),
        client_id: unique("client"),
        scope: "openid offline_access".into(),
        kind,
        session_id: session_id.map(str::to_owned),
        created_at,
        last_used_at: created_at.plus(1),
        expires_at: None,
        revoked_at: None,
        revocation_reason: None,
    }
}

/// An opaque access token issued from `grant`.
fn grant_token(grant: &Grant) -> AccessTokenRecord {
    let mut t = token("grant-token", NOW.0, NOW.0 + 3600, Some(&grant.user_id), vec![]);
    t.client_id.clone_from(&grant.client_id);
    t.grant_id = Some(grant.id.clone());
    t
}

/// A first refresh token of `grant` (or a child of `parent`), unused, expiring in an hour.
/// Stores `grant` and a fresh refresh token of it; returns the token.
async fn add_grant_with_token(storage: &dyn Storage, grant: &Grant) -> RefreshToken {
    ok(storage, "add grant", storage.grants().add(grant).await);
    let token = refresh_token(grant, None);
    ok(storage, "add refresh token", storage.refresh_tokens().add(&token).await);
    token
}

fn refresh_token(grant: &Grant, parent: Option<TokenHash>) -> RefreshToken {
    refresh_token_for(&grant.id, &grant.client_id, parent)
}

/// A rotation of `presented` at `now` issuing a fresh child.
fn rotation(
    presented: &RefreshToken,
    expected_use_count: Option<u32>,
    allowed_uses: u32,
    touch_session: Option<&str>,
    now: Timestamp,
) -> Rotation {
    let mut new_token = refresh_token_for(&presented.grant_id, &presented.client_id, Some(presented.hash));
    new_token.issued_at = now;
    new_token.expires_at = now.plus(1800);
    Rotation {
        presented: presented.hash,
        expected_use_count,
        allowed_uses,
        new_token,
        touch_session: touch_session.map(str::to_owned),
        access_token: None,
        now,
    }
}

fn refresh_token_for(grant_id: &str, client_id: &str, parent: Option<TokenHash>) -> RefreshToken {
    RefreshToken {
        hash: TokenHash::of(&unique("refresh token")),
        grant_id: grant_id.to_owned(),
        parent,
        client_id: client_id.to_owned(),
        issued_at: NOW,
        expires_at: NOW.plus(3600),
        use_count: 0,
        spent_at: None,
    }
}

fn revoked_as(mut grant: Grant, at: Timestamp, reason: &str) -> Grant {
    grant.revoked_at = Some(at);
    grant.revocation_reason = Some(reason.to_owned());
    grant
}

/// Id suffixes and times of 7 rows that, in pages of 3 newest first, put both page boundaries
/// inside a run of equal times, each right after an id that byte order and a case-insensitive
/// collation place differently ("a" > "D" in bytes, `a` < `D` alphabetically; likewise "b", "C").
/// In order: c (NOW+2); e, a | D (NOW+1); g, b | C (NOW).
const TIES: [(&str, Timestamp); 7] = [
    ("a", Timestamp(NOW.0 + 1)),
    ("C", NOW),
    ("c", Timestamp(NOW.0 + 2)),
    ("g", NOW),
    ("D", Timestamp(NOW.0 + 1)),
    ("b", NOW),
    ("e", Timestamp(NOW.0 + 1)),
];

/// The span of [`event_window`]s, in seconds.
const EVENT_WINDOW: u64 = 1000;

/// The start of a span of [`EVENT_WINDOW`] seconds that no other check (of this run or an earlier
/// one on the same database) records events in: random, and after `NOW`.
fn event_window() -> Timestamp {
    Timestamp(NOW.0 + 1_000_000_000 + i64::from(rand::random::<u32>()) * 1_000)
}

/// An event with a fresh id (`label-…`), actor `user` and empty details.
fn event(label: &str, at: Timestamp, kind: &str, user_id: Option<&str>, client_id: Option<&str>) -> AuditEvent {
    AuditEvent {
        id: unique(label),
        at,
        kind: kind.to_owned(),
        actor: "user".into(),
        user_id: user_id.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        grant_id: None,
        session_id: None,
        details: "{}".into(),
    }
}

/// The pages of `filter`, `limit` events each, from `start`, each continuing after the last
/// (`at`, `id`) of the one before, up to the first short page (at most 10 pages).
async fn event_pages(
    storage: &dyn Storage,
    filter: &EventFilter,
    start: Option<(Timestamp, String)>,
    limit: u32,
) -> Vec<Vec<AuditEvent>> {
    let mut pages = Vec::new();
    let mut before = start;
    while pages.len() < 10 {
        let page = Page { before, limit };
        let rows = ok(storage, "query events", storage.events().query(filter, &page).await);
        before = rows.last().map(|e| (e.at, e.id.clone()));
        let last = rows.len() < usize::try_from(limit).unwrap_or(usize::MAX);
        pages.push(rows);
        if last {
            break;
        }
    }
    pages
}

/// Each grant is stored exactly as given.
async fn expect_grants(storage: &dyn Storage, what: &str, expected: &[&Grant]) {
    for g in expected {
        let found = ok(storage, "lookup grant", storage.grants().lookup(&g.id).await);
        check_eq(storage, &format!("{what}: grant {}", g.id), found.as_ref(), Some(*g));
    }
}

async fn expect_session(storage: &dyn Storage, what: &str, expected: &SsoSession) {
    let found = ok(storage, "lookup session", storage.sessions().lookup(&expected.id).await);
    check_eq(storage, what, found.as_ref(), Some(expected));
}

async fn expect_token(storage: &dyn Storage, what: &str, expected: &RefreshToken) {
    let found = ok(
        storage,
        "find refresh token",
        storage.refresh_tokens().find_by_hash(&expected.hash).await,
    );
    check_eq(storage, what, found.as_ref(), Some(expected));
}

async fn expect_absent(storage: &dyn Storage, what: &str, hash: &TokenHash) {
    let found = ok(
        storage,
        "find refresh token",
        storage.refresh_tokens().find_by_hash(hash).await,
    );
    check_eq(storage, what, found, None);
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

fn minimal_client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        secret_hash: Some(TokenHash::of(&format!("secret of {id}"))),
        settings: ClientSettings {
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["read".into()],
            ..ClientSettings::default()
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
        grant_id: None,
        scope: "read write".into(),
        audience,
        issued_at: Timestamp(issued_at),
        expires_at: Timestamp(expires_at),
        act: None,
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
