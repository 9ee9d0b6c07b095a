//! Discovery (RFC 8414 §2, §3) validated against its required fields and against what the server does.

use tessera_core::client::{AccessTokenFormat, AuthMethod};
use tessera_types::token::GrantType;

use crate::support::{service_client, TestServer};

#[tokio::test]
async fn metadata_is_complete_and_true() {
    let server = TestServer::start().await;
    let oauth = server.get_json("/.well-known/oauth-authorization-server").await;
    let oidc = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(oauth, oidc, "both documents describe the same server");

    // RFC 8414 §2 required members, and §3.3: issuer must equal the URL it was fetched under.
    assert_eq!(oauth["issuer"], server.base.as_str());
    assert!(oauth["response_types_supported"].is_array());
    assert_eq!(oauth["token_endpoint"], server.url("/token"));
    assert_eq!(oauth["jwks_uri"], server.url("/jwks"));
    assert_eq!(oauth["authorization_endpoint"], server.url("/authorize"));
    assert_eq!(oauth["userinfo_endpoint"], server.url("/userinfo"));
    assert_eq!(oauth["end_session_endpoint"], server.url("/logout"));
    assert_eq!(oauth["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(oauth["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(oauth["authorization_response_iss_parameter_supported"], true);
    let id_token_algs = oauth["id_token_signing_alg_values_supported"].as_array().unwrap();
    assert!(
        id_token_algs.iter().any(|a| a == "RS256"),
        "OIDC Discovery §3: RS256 must be listed"
    );
    // No signing algorithm list may name `none` (RFC 8414 §2, RFC 9700 §2.6).
    assert!(!id_token_algs.iter().any(|a| a == "none"), "{id_token_algs:?}");

    // jwks_uri answers with keys.
    let jwks = server
        .http
        .get(oauth["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());

    // Exactly the advertised grant types are served.
    let advertised: Vec<String> = oauth["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_owned())
        .collect();
    let mut settings = service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt);
    settings.grant_types = GrantType::ALL.to_vec();
    let (id, secret) = server.client("everything", settings).await;
    let secret = secret.unwrap();
    for grant in GrantType::ALL {
        let (status, _, body) = server
            .token(Some((&id, &secret)), &[("grant_type", grant.as_str())])
            .await;
        let is_supported = body["error"] != "unsupported_grant_type";
        assert_eq!(
            is_supported,
            advertised.iter().any(|g| g == grant.as_str()),
            "{} answered {status} {body}",
            grant.as_str()
        );
    }

    // Every advertised authentication method is one this server accepts (each has its own test in
    // client_credentials.rs); none other is advertised.
    let methods: Vec<&str> = oauth["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    );
    // Revocation and introspection (RFC 7009, RFC 7662) are advertised at the URLs that answer
    // them; introspection without client authentication is not offered.
    assert_eq!(oauth["revocation_endpoint"], server.url("/revoke"));
    assert_eq!(
        oauth["revocation_endpoint_auth_methods_supported"],
        serde_json::json!(methods)
    );
    assert_eq!(oauth["introspection_endpoint"], server.url("/introspect"));
    assert_eq!(
        oauth["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
    for endpoint in ["revocation_endpoint", "introspection_endpoint"] {
        let (status, _, body) = server
            .post_form(
                oauth[endpoint].as_str().unwrap().trim_start_matches(&server.base),
                None,
                &[],
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{endpoint}"
        );
    }
    let signing_algs = oauth["token_endpoint_auth_signing_alg_values_supported"].to_string();
    assert!(
        !signing_algs.contains("none") && !signing_algs.contains("HS"),
        "{signing_algs}"
    );
}
