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
use tessera_core::{
    AccessTokenFormat, AuthMethod, AuthorizationCode, Client, ClientSettings, ClientType, Grant, GrantKind, SsoSession,
    Timestamp, TokenHash, User, UserClaims,
};
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
    users_crud(storage).await;
    user_claims_round_trip(storage).await;
    sessions_lifecycle(storage).await;
    consent_grant_union_revoke(storage).await;
    consent_concurrent_grants(storage).await;
    authorization_codes_add_find_consume(storage).await;
    authorization_code_concurrent_consume(storage).await;
    authorization_codes_cleanup(storage).await;
    grants_add_lookup_revoke(storage).await;
    grants_revoke_online_for_session(storage).await;
    grants_list_by_user(storage).await;
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
