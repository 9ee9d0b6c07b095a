//! Property tests (STYLE.md §11): invariants that must hold for every input, not just the tables.
//! Failing cases are kept in `proptest-regressions/` beside this crate.

use proptest::prelude::*;
use rand::SeedableRng;
use tessera_types::token::{ClientCredentialsGrant, GrantType};

use crate::client::{AccessTokenFormat, AuthMethod, Client, ClientSettings, ClientType};
use crate::grant::client_credentials::{decide, AccessTokenPolicy};
use crate::{Scope, Timestamp, TokenHash, TokenKind};

fn client(scopes: Vec<String>, audiences: Vec<String>) -> Client {
    Client {
        id: "c".into(),
        secret_hash: None,
        settings: ClientSettings {
            name: None,
            client_type: ClientType::Confidential,
            auth_method: AuthMethod::ClientSecretBasic,
            jwks: None,
            jwks_uri: None,
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            scopes,
            audiences,
            access_token_format: AccessTokenFormat::Jwt,
            access_token_algorithm: None,
            id_token_algorithm: None,
            access_token_lifetime: None,
            id_token_lifetime: None,
            refresh_tokens: Default::default(),
            ..ClientSettings::default()
        },
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    }
}

proptest! {
    #[test]
    fn generated_tokens_round_trip(seed in any::<u64>(), order in any::<u64>(), kind in 0usize..4) {
        let kind = [TokenKind::AccessToken, TokenKind::RefreshToken, TokenKind::AuthorizationCode, TokenKind::ClientSecret][kind];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let token = kind.generate(order, &mut rng);
        prop_assert_eq!(TokenKind::recognise(&token), Some(kind));
        prop_assert!(TokenHash::of(&token).matches(&TokenHash::of(&token)));
    }

    #[test]
    fn arbitrary_strings_are_never_mistaken_for_tokens(value in "tsr_(at|rt|ac|cs)_([A-Za-z0-9_-]{49}|[A-Za-z0-9_-]{60})") {
        // A random string with the right prefix and length passes only with a matching checksum
        // (probability 2^-36 per try): in practice never.
        prop_assert_eq!(TokenKind::recognise(&value), None);
    }

    #[test]
    fn scope_parsing_never_panics_and_is_canonical(value in any::<String>()) {
        if let Ok(scope) = Scope::parse(&value) {
            let canonical = scope.to_string();
            prop_assert_eq!(Scope::parse(&canonical).map(|s| s.to_string()), Ok(canonical));
        }
    }

    #[test]
    fn client_credentials_never_widens_scope_or_audience(
        allowed in proptest::collection::vec("[a-z]{1,6}", 0..5),
        asked in proptest::collection::vec("[a-z]{1,6}", 0..5),
        audiences in proptest::collection::vec("https://[a-z]{1,5}\\.example", 0..3),
        resource in proptest::collection::vec("https://[a-z]{1,5}\\.example", 0..3),
        lifetime in proptest::option::of(0u64..100_000),
    ) {
        let mut client = client(allowed.clone(), audiences.clone());
        client.settings.access_token_lifetime = lifetime;
        let request = ClientCredentialsGrant { scope: Some(asked.join(" ")), resource, audience: vec![] };
        let policy = AccessTokenPolicy { lifetime: 300, max_lifetime: 28_800 };
        if let Ok(plan) = decide(&client, &request, policy, Timestamp(1000)) {
            prop_assert!(plan.scope.iter().all(|s| allowed.iter().any(|a| a == s)), "scope {} beyond {allowed:?}", plan.scope);
            prop_assert!(plan.audience.iter().all(|a| audiences.contains(a)));
            prop_assert!(plan.expires_at.0 - 1000 <= 28_800);
        }
    }
}
