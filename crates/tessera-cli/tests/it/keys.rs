//! Signing keys: JWKS contents and rotation with a publication delay.

use tessera_core::client::{AccessTokenFormat, AuthMethod};
use tessera_types::JwsAlgorithm;

use crate::support::{peek, service_client, verify_with_jwks, TestServer};

#[tokio::test]
async fn jwks_lists_every_algorithm_with_kid_use_alg() {
    let server = TestServer::start().await;
    let jwks = server.get_json("/jwks").await;
    let keys = jwks["keys"].as_array().unwrap();
    let mut algorithms: Vec<_> = keys.iter().map(|k| k["alg"].as_str().unwrap().to_owned()).collect();
    algorithms.sort();
    assert_eq!(algorithms, ["ES256", "EdDSA", "RS256"]);
    for key in keys {
        assert!(key["kid"].is_string() && key["use"] == "sig", "{key}");
        assert!(
            key.get("d").is_none() && key.get("p").is_none(),
            "no private parts in JWKS: {key}"
        );
    }
}

#[tokio::test]
async fn rotation_publishes_before_signing_and_retires_after_the_longest_lifetime() {
    let server = TestServer::start_with(|config| config.keys.publication_delay = 600).await;
    let (id, secret) = server
        .client(
            "svc",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let secret = secret.unwrap();
    let issue = || async {
        server
            .token(
                Some((&id, &secret)),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", "https://api.example"),
                ],
            )
            .await
            .2["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let kid_of = |jwt: &str| peek(jwt).0["kid"].as_str().unwrap().to_owned();

    let before = issue().await;
    let old_kid = kid_of(&before);
    let rotated = server
        .keys
        .rotate(
            server.storage.as_ref(),
            &[JwsAlgorithm::ES256],
            server.clock_now(),
            600,
            28_800,
        )
        .await
        .unwrap();
    let new_kid = rotated[0].kid.clone();

    // Published at once, not yet signing.
    let jwks = server.get_json("/jwks").await;
    let published: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        published.contains(&old_kid) && published.contains(&new_kid),
        "{published:?}"
    );
    assert_eq!(kid_of(&issue().await), old_kid);
    server.clock.advance(599);
    assert_eq!(kid_of(&issue().await), old_kid);

    // After the publication delay the new key signs; tokens of the old key still verify.
    server.clock.advance(1);
    let after = issue().await;
    assert_eq!(kid_of(&after), new_kid);
    verify_with_jwks(&server, &before, "https://api.example").await;
    verify_with_jwks(&server, &after, "https://api.example").await;

    // The old key leaves JWKS once the longest token lifetime has passed after the switch.
    server.clock.advance(28_799);
    assert!(server.get_json("/jwks").await.to_string().contains(&old_kid));
    server.clock.advance(1);
    let jwks = server.get_json("/jwks").await.to_string();
    assert!(!jwks.contains(&old_kid) && jwks.contains(&new_kid), "{jwks}");
    // The server's own verification (userinfo, id_token_hint) follows the same publication.
    assert!(
        server.keys.verify(&before, server.clock_now()).is_err(),
        "a retired key no longer verifies"
    );
    assert!(server.keys.verify(&after, server.clock_now()).is_ok());
}

#[tokio::test]
async fn keys_survive_a_restart_and_stay_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let kek = tessera_jose::KeyEncryptionKey::generate().unwrap();
    let now = crate::support::EPOCH;
    let first = {
        let storage = tessera_storage_sqlite::SqliteStorage::open(&path, Default::default()).unwrap();
        tessera_storage::Storage::migrate(&storage).await.unwrap();
        let keys = tessera_server::keys::KeyStore::open(
            &storage,
            tessera_jose::KeyEncryptionKey::from_base64(&kek.to_base64()).unwrap(),
            now,
        )
        .await
        .unwrap();
        keys.jwks(now)
    };
    let storage = tessera_storage_sqlite::SqliteStorage::open(&path, Default::default()).unwrap();
    let again = tessera_server::keys::KeyStore::open(
        &storage,
        tessera_jose::KeyEncryptionKey::from_base64(&kek.to_base64()).unwrap(),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        again.jwks(now),
        first,
        "the same keys after a restart, none regenerated"
    );
    // The stored private key is ciphertext; another key-encryption key cannot open it.
    let wrong =
        tessera_server::keys::KeyStore::open(&storage, tessera_jose::KeyEncryptionKey::generate().unwrap(), now).await;
    assert!(wrong.is_err(), "a wrong key-encryption key must be refused");
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.windows(16).any(|w| w == b"-----BEGIN PRIVA"),
        "no PEM in the database file"
    );
}
