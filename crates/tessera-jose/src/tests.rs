//! Signing and verification tests: round trips for every algorithm, tampering, `none`,
//! algorithm/key-type confusion, `kid` selection and malformed input.

use std::sync::OnceLock;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{json, Map, Value};

use crate::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SIGNING_ALGS: &[&str] = &["ES256", "RS256", "EdDSA"];
const ALL_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// RSA key generation is slow: one PKCS#8 RSA key shared by every test.
fn rsa_pkcs8() -> Result<&'static [u8], JoseError> {
    static DER: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    DER.get_or_init(|| {
        SigningKey::generate(JwsAlgorithm::RS256, "rsa".into())
            .map(|(_, der)| der)
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| JoseError::InvalidKey(e.clone()))
}

fn new_key(algorithm: JwsAlgorithm, kid: &str) -> Result<SigningKey, JoseError> {
    match algorithm {
        JwsAlgorithm::RS256 => SigningKey::from_pkcs8(algorithm, kid.into(), rsa_pkcs8()?),
        _ => Ok(SigningKey::generate(algorithm, kid.into())?.0),
    }
}

fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

fn claims() -> Value {
    json!({"iss": "https://issuer.example", "sub": "client-1", "exp": 1_900_000_000, "scope": "a b"})
}

/// A token with an arbitrary header and payload, signed by `key`.
fn raw_token(key: &SigningKey, header: &Value, payload: &[u8]) -> Result<String, JoseError> {
    let input = format!(
        "{}.{}",
        base64url_encode(header.to_string().as_bytes()),
        base64url_encode(payload)
    );
    let signature = key.sign_bytes(input.as_bytes())?;
    Ok(format!("{input}.{}", base64url_encode(&signature)))
}

/// `ring` errors do not implement `std::error::Error` without its `std` feature.
fn ring_ok<T, E: std::fmt::Debug>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| format!("ring: {e:?}"))
}

fn split(token: &str) -> Result<[&str; 3], Box<dyn std::error::Error>> {
    let parts: Vec<&str> = token.split('.').collect();
    Ok(parts.try_into().map_err(|_| "not three parts")?)
}

#[test]
fn sign_and_verify_every_algorithm() -> TestResult {
    for &algorithm in &JwsAlgorithm::ALL {
        let key = new_key(algorithm, &format!("kid-{algorithm}"))?;
        assert_eq!(key.algorithm(), algorithm);
        assert_eq!(key.kid(), format!("kid-{algorithm}"));
        for typ in ["at+jwt", "JWT", "logout+jwt"] {
            let token = key.sign_jwt(typ, &claims())?;
            let (header, verified) = verify_jwt(&token, &jwks(&[&key]), SIGNING_ALGS)?;
            assert_eq!(
                header,
                JwsHeader {
                    alg: algorithm.as_str().into(),
                    kid: Some(key.kid().into()),
                    typ: Some(typ.into()),
                }
            );
            assert_eq!(Value::Object(verified), claims());
            let signature = base64url_decode(split(&token)?[2])?;
            let expected_len = if algorithm == JwsAlgorithm::RS256 { 256 } else { 64 };
            assert_eq!(signature.len(), expected_len, "{algorithm} signature length");
        }
    }
    Ok(())
}

#[test]
fn public_jwk_members() -> TestResult {
    for &algorithm in &JwsAlgorithm::ALL {
        let key = new_key(algorithm, "k1")?;
        let jwk = key.public_jwk();
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        let decoded_len = |name: &str| member(name).and_then(|v| base64url_decode(v).ok()).map(|b| b.len());
        assert_eq!(member("kid"), Some("k1"));
        assert_eq!(member("use"), Some("sig"));
        assert_eq!(member("alg"), Some(algorithm.as_str()));
        assert!(jwk.get("d").is_none());
        let names: Vec<&str> = jwk
            .as_object()
            .ok_or("not an object")?
            .keys()
            .map(String::as_str)
            .collect();
        match algorithm {
            JwsAlgorithm::ES256 => {
                assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
                assert_eq!((member("kty"), member("crv")), (Some("EC"), Some("P-256")));
                assert_eq!(decoded_len("x"), Some(32));
                assert_eq!(decoded_len("y"), Some(32));
            }
            JwsAlgorithm::RS256 => {
                assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
                assert_eq!((member("kty"), member("e")), (Some("RSA"), Some("AQAB")));
                let n = base64url_decode(member("n").ok_or("no n")?)?;
                assert_eq!(n.len(), 256);
                assert_ne!(n[0], 0, "no leading zero");
            }
            JwsAlgorithm::EdDSA => {
                assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x"]);
                assert_eq!((member("kty"), member("crv")), (Some("OKP"), Some("Ed25519")));
                assert_eq!(decoded_len("x"), Some(32));
            }
        }
        let verifying = VerifyingKey::from_jwk(&jwk)?;
        assert_eq!(verifying.kid(), Some("k1"));
    }
    Ok(())
}

#[test]
fn reloaded_keys_sign_for_the_same_public_key() -> TestResult {
    for &algorithm in &JwsAlgorithm::ALL {
        let (original, der) = match algorithm {
            JwsAlgorithm::RS256 => (new_key(algorithm, "k")?, rsa_pkcs8()?.to_vec()),
            _ => SigningKey::generate(algorithm, "k".into())?,
        };
        let reloaded = SigningKey::from_pkcs8(algorithm, "k".into(), &der)?;
        assert_eq!(reloaded.public_jwk(), original.public_jwk());
        let token = reloaded.sign_jwt("JWT", &claims())?;
        verify_jwt(&token, &jwks(&[&original]), SIGNING_ALGS)?;
        let token = original.sign_jwt("JWT", &claims())?;
        verify_jwt(&token, &jwks(&[&reloaded]), SIGNING_ALGS)?;

        for other in JwsAlgorithm::ALL.into_iter().filter(|a| *a != algorithm) {
            let wrong = SigningKey::from_pkcs8(other, "k".into(), &der);
            assert!(matches!(wrong, Err(JoseError::InvalidKey(_))), "{algorithm} as {other}");
        }
        for garbage in [&b""[..], b"\x30\x03\x02\x01\x00", &der[..der.len() / 2]] {
            let loaded = SigningKey::from_pkcs8(algorithm, "k".into(), garbage);
            assert!(matches!(loaded, Err(JoseError::InvalidKey(_))));
        }
    }
    Ok(())
}

#[test]
fn tampered_tokens_fail() -> TestResult {
    for &algorithm in &JwsAlgorithm::ALL {
        let key = new_key(algorithm, "k")?;
        let set = jwks(&[&key]);
        let token = key.sign_jwt("at+jwt", &claims())?;
        let [header, payload, signature] = split(&token)?;

        let other_payload = base64url_encode(br#"{"sub":"admin"}"#);
        let mut flipped = base64url_decode(signature)?;
        flipped[10] ^= 0x01;
        let other_header = base64url_encode(
            json!({"alg": algorithm.as_str(), "kid": "k", "typ": "JWT"})
                .to_string()
                .as_bytes(),
        );
        let other_key = new_key(algorithm, "k")?;
        let foreign = other_key.sign_jwt("at+jwt", &claims())?;
        for tampered in [
            format!("{header}.{other_payload}.{signature}"),
            format!("{header}.{payload}.{}", base64url_encode(&flipped)),
            format!("{other_header}.{payload}.{signature}"),
            format!("{header}.{payload}."),
        ] {
            let result = verify_jwt(&tampered, &set, SIGNING_ALGS);
            assert!(
                matches!(result, Err(JoseError::InvalidSignature)),
                "{algorithm}: {result:?}"
            );
        }
        if algorithm != JwsAlgorithm::RS256 {
            // Same kid, different key (the RSA key is shared across tests).
            let result = verify_jwt(&foreign, &set, SIGNING_ALGS);
            assert!(matches!(result, Err(JoseError::InvalidSignature)));
        }
    }
    Ok(())
}

#[test]
fn alg_none_and_unlisted_algorithms_are_rejected() -> TestResult {
    let key = new_key(JwsAlgorithm::ES256, "k")?;
    let set = jwks(&[&key]);
    let payload = base64url_encode(claims().to_string().as_bytes());
    for none in ["none", "None", "NONE"] {
        let header = base64url_encode(json!({"alg": none, "kid": "k"}).to_string().as_bytes());
        for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
            let result = verify_jwt(&token, &set, &["none", "None", "NONE", "ES256"]);
            assert!(result.is_err(), "{token}");
        }
        let result = verify_jwt(&format!("{header}.{payload}."), &set, &["none", "ES256"]);
        assert!(matches!(result, Err(JoseError::UnsupportedAlgorithm(_))));
    }
    let token = key.sign_jwt("JWT", &claims())?;
    for allowed in [&[][..], &["RS256"], &["ES384", "EdDSA"], &["es256"]] {
        let result = verify_jwt(&token, &set, allowed);
        assert!(matches!(result, Err(JoseError::UnsupportedAlgorithm(a)) if a == "ES256"));
    }
    Ok(())
}

#[test]
fn algorithm_and_key_type_confusion_is_rejected() -> TestResult {
    let ec = new_key(JwsAlgorithm::ES256, "ec")?;
    let rsa = new_key(JwsAlgorithm::RS256, "rsa")?;
    let ed = new_key(JwsAlgorithm::EdDSA, "ed")?;
    let payload = claims().to_string();

    // RS256 / EdDSA / ES384 headers naming the EC key: no compatible key to try.
    for alg in ["RS256", "PS256", "EdDSA", "ES384"] {
        let token = raw_token(&ec, &json!({"alg": alg, "kid": "ec"}), payload.as_bytes())?;
        let result = verify_jwt(&token, &jwks(&[&ec]), ALL_ALGS);
        assert!(matches!(result, Err(JoseError::KeyNotFound)), "{alg}: {result:?}");
    }
    // ES256 against RSA / Ed25519 keys, with and without kid.
    for header in [json!({"alg": "ES256", "kid": "rsa"}), json!({"alg": "ES256"})] {
        let token = raw_token(&ec, &header, payload.as_bytes())?;
        let result = verify_jwt(&token, &jwks(&[&rsa, &ed]), ALL_ALGS);
        assert!(matches!(result, Err(JoseError::KeyNotFound)), "{header}: {result:?}");
    }
    // HS256 keyed with the public key (the classic confusion attack): HMAC is never accepted.
    let public = rsa.public_jwk().to_string();
    let input = format!(
        "{}.{}",
        base64url_encode(json!({"alg": "HS256", "kid": "rsa"}).to_string().as_bytes()),
        base64url_encode(payload.as_bytes())
    );
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public.as_bytes()),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", base64url_encode(mac.as_ref()));
    let result = verify_jwt(&token, &jwks(&[&rsa]), &["HS256", "RS256"]);
    assert!(matches!(result, Err(JoseError::UnsupportedAlgorithm(_))));

    // A JWK's own alg pins it: a PS256 signature by an RS256-labelled key is not accepted.
    let rsa_pkcs8 = rsa_pkcs8()?;
    let ring_rsa = ring_ok(RsaKeyPair::from_pkcs8(rsa_pkcs8))?;
    let header = base64url_encode(json!({"alg": "PS256", "kid": "rsa"}).to_string().as_bytes());
    let input = format!("{header}.{}", base64url_encode(payload.as_bytes()));
    let mut signature = vec![0; ring_rsa.public().modulus_len()];
    ring_ok(ring_rsa.sign(
        &sig::RSA_PSS_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    ))?;
    let token = format!("{input}.{}", base64url_encode(&signature));
    let result = verify_jwt(&token, &jwks(&[&rsa]), ALL_ALGS);
    assert!(matches!(result, Err(JoseError::KeyNotFound)));
    let mut unpinned = rsa.public_jwk();
    unpinned.as_object_mut().ok_or("not an object")?.remove("alg");
    verify_jwt(&token, &json!({"keys": [unpinned]}), ALL_ALGS)?;
    Ok(())
}

#[test]
fn verifies_other_jwa_algorithms() -> TestResult {
    let rng = SystemRandom::new();
    let payload = base64url_encode(claims().to_string().as_bytes());
    let input = |alg: &str| {
        let header = json!({"alg": alg, "kid": "x"}).to_string();
        format!("{}.{payload}", base64url_encode(header.as_bytes()))
    };

    // ES384 with a P-384 key (RFC 7518 §3.4: fixed 96-byte r || s).
    let p384_der = ring_ok(EcdsaKeyPair::generate_pkcs8(
        &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        &rng,
    ))?;
    let p384 = ring_ok(EcdsaKeyPair::from_pkcs8(
        &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        p384_der.as_ref(),
        &rng,
    ))?;
    let point = p384.public_key().as_ref();
    let p384_jwk = json!({"kty": "EC", "crv": "P-384", "kid": "x",
        "x": base64url_encode(&point[1..49]), "y": base64url_encode(&point[49..])});
    let es384_input = input("ES384");
    let es384_sig = ring_ok(p384.sign(&rng, es384_input.as_bytes()))?;
    let mut cases = vec![(
        "ES384",
        p384_jwk,
        format!("{es384_input}.{}", base64url_encode(es384_sig.as_ref())),
    )];

    // RS384/RS512 and PS256/PS384/PS512 with the shared RSA key (RFC 7518 §3.3, §3.5).
    let rsa = ring_ok(RsaKeyPair::from_pkcs8(rsa_pkcs8()?))?;
    let mut rsa_jwk = new_key(JwsAlgorithm::RS256, "x")?.public_jwk();
    rsa_jwk.as_object_mut().ok_or("not an object")?.remove("alg");
    let rsa_algs: [(&str, &'static dyn sig::RsaEncoding); 5] = [
        ("RS384", &sig::RSA_PKCS1_SHA384),
        ("RS512", &sig::RSA_PKCS1_SHA512),
        ("PS256", &sig::RSA_PSS_SHA256),
        ("PS384", &sig::RSA_PSS_SHA384),
        ("PS512", &sig::RSA_PSS_SHA512),
    ];
    for (alg, encoding) in rsa_algs {
        let signing_input = input(alg);
        let mut signature = vec![0; rsa.public().modulus_len()];
        ring_ok(rsa.sign(encoding, &rng, signing_input.as_bytes(), &mut signature))?;
        let token = format!("{signing_input}.{}", base64url_encode(&signature));
        cases.push((alg, rsa_jwk.clone(), token));
    }

    for (alg, jwk, token) in cases {
        let set = json!({ "keys": [jwk] });
        let (header, _) = verify_jwt(&token, &set, ALL_ALGS)?;
        assert_eq!(header.alg, alg);
        let others: Vec<&str> = ALL_ALGS.iter().copied().filter(|a| *a != alg).collect();
        let result = verify_jwt(&token, &set, &others);
        assert!(matches!(result, Err(JoseError::UnsupportedAlgorithm(_))), "{alg}");
    }
    Ok(())
}

#[test]
fn kid_selects_the_key() -> TestResult {
    let a = new_key(JwsAlgorithm::ES256, "a")?;
    let b = new_key(JwsAlgorithm::ES256, "b")?;
    let c = new_key(JwsAlgorithm::ES256, "c")?;
    let set = jwks(&[&a, &b]);
    let payload = claims().to_string();

    let (header, _) = verify_jwt(&b.sign_jwt("JWT", &claims())?, &set, SIGNING_ALGS)?;
    assert_eq!(header.kid.as_deref(), Some("b"));

    // Signed by b but naming a: only a is tried.
    let token = raw_token(&b, &json!({"alg": "ES256", "kid": "a"}), payload.as_bytes())?;
    let result = verify_jwt(&token, &set, SIGNING_ALGS);
    assert!(matches!(result, Err(JoseError::InvalidSignature)));

    let result = verify_jwt(&c.sign_jwt("JWT", &claims())?, &set, SIGNING_ALGS);
    assert!(matches!(result, Err(JoseError::KeyNotFound)));

    // No kid: every compatible key is tried.
    let token = raw_token(&b, &json!({"alg": "ES256"}), payload.as_bytes())?;
    let (header, _) = verify_jwt(&token, &set, SIGNING_ALGS)?;
    assert_eq!(header.kid, None);
    let token = raw_token(&c, &json!({"alg": "ES256"}), payload.as_bytes())?;
    let result = verify_jwt(&token, &set, SIGNING_ALGS);
    assert!(matches!(result, Err(JoseError::InvalidSignature)));

    // Unusable JWKs in the set are skipped; a set without "keys" is an error.
    let mixed = json!({"keys": [42, {"kty": "oct", "k": "AAAA"}, {"kty": "EC"}, b.public_jwk()]});
    verify_jwt(&b.sign_jwt("JWT", &claims())?, &mixed, SIGNING_ALGS)?;
    for bad_set in [json!({}), json!({"keys": {}}), json!([])] {
        let result = verify_jwt(&b.sign_jwt("JWT", &claims())?, &bad_set, SIGNING_ALGS);
        assert!(matches!(result, Err(JoseError::InvalidKey(_))));
    }
    let result = verify_jwt(&b.sign_jwt("JWT", &claims())?, &json!({"keys": []}), SIGNING_ALGS);
    assert!(matches!(result, Err(JoseError::KeyNotFound)));
    Ok(())
}

#[test]
fn malformed_tokens_error_cleanly() -> TestResult {
    let key = new_key(JwsAlgorithm::EdDSA, "k")?;
    let set = jwks(&[&key]);
    let valid = key.sign_jwt("JWT", &claims())?;
    let [h, p, s] = split(&valid)?;
    let b64 = |v: &str| base64url_encode(v.as_bytes());
    let garbage = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        "!!!.@@@.###".into(),
        format!("{valid}."),
        format!(".{valid}"),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}="),
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}.{s} "),
        format!("{h}.{p}.+{}", &s[1..]),
        format!("{h}.{p}.{}/", &s[..s.len() - 1]),
        format!("{h}.{p}!.{s}"),
        format!("{}.{p}.{s}", b64("not json")),
        format!("{}.{p}.{s}", b64("null")),
        format!("{}.{p}.{s}", b64(r#"["EdDSA"]"#)),
        format!("{}.{p}.{s}", b64("{}")),
        format!("{}.{p}.{s}", b64(r#"{"alg":5}"#)),
        format!("{}.{p}.{s}", b64(r#"{"alg":"EdDSA","kid":5}"#)),
        format!("{}.{p}.{s}", b64(r#"{"alg":"EdDSA","typ":["JWT"]}"#)),
        format!("{}.{p}.{s}", b64("\u{feff}{\"alg\":\"EdDSA\"}")),
    ];
    for token in &garbage {
        let result = verify_jwt(token, &set, SIGNING_ALGS);
        assert!(result.is_err(), "{token:?} verified");
    }

    // Correctly signed but unacceptable: crit header, non-object payloads.
    let crit = raw_token(
        &key,
        &json!({"alg": "EdDSA", "kid": "k", "crit": ["exp"], "exp": 1}),
        claims().to_string().as_bytes(),
    )?;
    assert!(matches!(
        verify_jwt(&crit, &set, SIGNING_ALGS),
        Err(JoseError::MalformedJwt(_))
    ));
    for payload in ["[1,2]", "42", "\"claims\"", "null", "", "{", "{\"a\":1} x"] {
        let token = raw_token(&key, &json!({"alg": "EdDSA", "kid": "k"}), payload.as_bytes())?;
        let result = verify_jwt(&token, &set, SIGNING_ALGS);
        assert!(
            matches!(result, Err(JoseError::MalformedJwt(_))),
            "{payload:?}: {result:?}"
        );
    }
    Ok(())
}

#[test]
fn random_mutations_never_verify_or_panic() -> TestResult {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    let mut rng = ChaCha8Rng::seed_from_u64(7515);
    for algorithm in [JwsAlgorithm::ES256, JwsAlgorithm::EdDSA] {
        let key = new_key(algorithm, "k")?;
        let set = jwks(&[&key]);
        let valid = key.sign_jwt("at+jwt", &claims())?;
        verify_jwt(&valid, &set, SIGNING_ALGS)?;
        for _ in 0..2000 {
            let mut bytes = valid.clone().into_bytes();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bytes.len());
                let ch = ALPHABET[rng.gen_range(0..ALPHABET.len())];
                match rng.gen_range(0..3) {
                    0 => bytes[at] = ch,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, ch),
                }
            }
            let mutated = String::from_utf8(bytes)?;
            if mutated != valid {
                assert!(verify_jwt(&mutated, &set, SIGNING_ALGS).is_err(), "{mutated}");
            }
        }
        for _ in 0..500 {
            let len = rng.gen_range(0..200);
            let random: String = (0..len)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect();
            assert!(verify_jwt(&random, &set, SIGNING_ALGS).is_err());
        }
    }
    Ok(())
}

#[test]
fn from_jwk_validates_keys() -> TestResult {
    let ec = new_key(JwsAlgorithm::ES256, "ec")?;
    let mut with_private = ec.public_jwk();
    with_private["d"] = json!("ignored");
    assert_eq!(VerifyingKey::from_jwk(&with_private)?.kid(), Some("ec"));
    let mut no_kid = ec.public_jwk();
    no_kid.as_object_mut().ok_or("not an object")?.remove("kid");
    assert_eq!(VerifyingKey::from_jwk(&no_kid)?.kid(), None);

    let patched = |patch: Value| -> Value {
        let mut jwk = ec.public_jwk();
        if let (Some(jwk), Value::Object(patch)) = (jwk.as_object_mut(), patch) {
            jwk.extend(patch);
        }
        jwk
    };
    let short = base64url_encode(&[1; 31]);
    let bad = [
        json!("not an object"),
        json!({}),
        json!({"kty": "oct", "k": "AAAA"}),
        json!({"kty": "RSA", "n": base64url_encode(&[0xff; 128]), "e": "AQAB"}),
        json!({"kty": "RSA", "n": base64url_encode(&[0xff; 256])}),
        json!({"kty": "OKP", "crv": "Ed448", "x": base64url_encode(&[1; 57])}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": short}),
        patched(json!({"use": "enc"})),
        patched(json!({"key_ops": ["encrypt"]})),
        patched(json!({"key_ops": "verify"})),
        patched(json!({"alg": "RS256"})),
        patched(json!({"alg": "ES384"})),
        patched(json!({"alg": "HS256"})),
        patched(json!({"crv": "P-384"})),
        patched(json!({"crv": "P-521"})),
        patched(json!({"x": short})),
        patched(json!({"y": "not base64!"})),
        patched(json!({"kid": 7})),
    ];
    for jwk in bad {
        assert!(VerifyingKey::from_jwk(&jwk).is_err(), "{jwk}");
    }
    VerifyingKey::from_jwk(&patched(json!({"key_ops": ["verify"], "use": "sig"})))?;
    Ok(())
}

#[test]
fn sign_jwt_requires_an_object_and_debug_hides_keys() -> TestResult {
    let key = new_key(JwsAlgorithm::EdDSA, "k")?;
    for claims in [json!([1, 2]), json!("claims"), json!(null)] {
        assert!(matches!(key.sign_jwt("JWT", &claims), Err(JoseError::InvalidClaims(_))));
    }
    let mut map = Map::new();
    map.insert("sub".into(), json!("x"));
    key.sign_jwt("JWT", &map)?;
    assert_eq!(format!("{key:?}"), r#"SigningKey { kid: "k", algorithm: EdDSA, .. }"#);
    Ok(())
}

#[test]
fn base64url_is_strict() -> TestResult {
    assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
    assert_eq!(base64url_decode("-_8")?, [0xfb, 0xff]);
    assert_eq!(base64url_decode("")?, b"");
    for bad in ["-_8=", "+/8", "A", "AB", " AA", "AA\n"] {
        assert!(matches!(base64url_decode(bad), Err(JoseError::InvalidBase64)), "{bad}");
    }
    Ok(())
}
