//! Public keys from JWKs (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2) and JWS compact verification
//! (RFC 7515 §5.2).

use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::sign::strip_leading_zeros;
use crate::{base64url_decode, JoseError};

/// JWS algorithms accepted for verification (RFC 7518 §3.1, RFC 8037 §3.1). `none` and the
/// HMAC algorithms are deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum PublicKey {
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
    /// Uncompressed SEC1 point `0x04 || x || y`.
    P256(Vec<u8>),
    /// Uncompressed SEC1 point `0x04 || x || y`.
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A public verification key parsed from one JWK: RSA (`n`, `e`), EC P-256 / P-384 (`x`, `y`)
/// or OKP Ed25519 (`x`). Private members such as `d` are ignored.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    /// The JWK's `alg`, if it names one; the key then verifies only that algorithm.
    alg: Option<Alg>,
    key: PublicKey,
}

impl VerifyingKey {
    /// Parses one JWK (a JSON object).
    ///
    /// Keys marked for another purpose (`use` other than `"sig"`, `key_ops` without `"verify"`)
    /// are rejected, as is an `alg` that does not fit the key type. RSA moduli must be
    /// 2048–8192 bits.
    ///
    /// # Errors
    /// [`JoseError::InvalidKey`] for malformed or unsupported keys;
    /// [`JoseError::UnsupportedAlgorithm`] for an unknown `alg`.
    pub fn from_jwk(jwk: &Value) -> Result<Self, JoseError> {
        let invalid = |msg: &str| JoseError::InvalidKey(msg.to_owned());
        let obj = jwk.as_object().ok_or_else(|| invalid("JWK is not a JSON object"))?;
        let string = |name: &str| match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(JoseError::InvalidKey(format!("JWK {name} is not a string"))),
        };
        let bytes = |name: &str| {
            let value = string(name)?.ok_or_else(|| JoseError::InvalidKey(format!("JWK {name} is missing")))?;
            base64url_decode(value).map_err(|_| JoseError::InvalidKey(format!("JWK {name} is not base64url")))
        };
        if string("use")?.is_some_and(|u| u != "sig") {
            return Err(invalid("JWK use is not \"sig\""));
        }
        if let Some(ops) = obj.get("key_ops") {
            if !ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify")) {
                return Err(invalid("JWK key_ops does not include \"verify\""));
            }
        }
        let ec_point = |len: usize| {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != len || y.len() != len {
                return Err(invalid("EC coordinate has the wrong length"));
            }
            Ok([&[4u8][..], &x, &y].concat())
        };
        let key = match (string("kty")?, string("crv")?) {
            (Some("RSA"), _) => {
                let (n, e) = (bytes("n")?, bytes("e")?);
                let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
                let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
                if !(2048..=8192).contains(&bits) || e.is_empty() {
                    return Err(invalid("RSA modulus must be 2048-8192 bits"));
                }
                PublicKey::Rsa(RsaPublicKeyComponents {
                    n: n.to_vec(),
                    e: e.to_vec(),
                })
            }
            (Some("EC"), Some("P-256")) => PublicKey::P256(ec_point(32)?),
            (Some("EC"), Some("P-384")) => PublicKey::P384(ec_point(48)?),
            (Some("OKP"), Some("Ed25519")) => {
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err(invalid("Ed25519 key must be 32 bytes"));
                }
                PublicKey::Ed25519(x)
            }
            _ => return Err(invalid("unsupported kty/crv")),
        };
        let mut key = Self {
            kid: string("kid")?.map(str::to_owned),
            alg: None,
            key,
        };
        if let Some(alg) = string("alg")? {
            let parsed = Alg::parse(alg).ok_or_else(|| JoseError::UnsupportedAlgorithm(alg.to_owned()))?;
            if !key.fits(parsed) {
                return Err(invalid("JWK alg does not fit its key type"));
            }
            key.alg = Some(parsed);
        }
        Ok(key)
    }

    /// The JWK's `kid`, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify `alg` (RFC 7518 §3: the algorithm must fit the key type,
    /// and the JWK's own `alg`, if present).
    fn fits(&self, alg: Alg) -> bool {
        let by_type = match self.key {
            PublicKey::Rsa(_) => matches!(
                alg,
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
            ),
            PublicKey::P256(_) => alg == Alg::ES256,
            PublicKey::P384(_) => alg == Alg::ES384,
            PublicKey::Ed25519(_) => alg == Alg::EdDSA,
        };
        by_type && self.alg.is_none_or(|own| own == alg)
    }

    /// Whether `signature` is a valid `alg` signature of `message`; `false` if `alg` does not fit.
    fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa(components) => {
                let params = match alg {
                    Alg::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                    Alg::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                    Alg::ES256 | Alg::ES384 | Alg::EdDSA => return false,
                };
                components.verify(params, message, signature).is_ok()
            }
            PublicKey::P256(point) => UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            PublicKey::P384(point) => UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            PublicKey::Ed25519(x) => UnparsedPublicKey::new(&sig::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// The JOSE header members of a verified JWS that callers act on (RFC 7515 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsHeader {
    /// `alg`: one of the allowed algorithms.
    pub alg: String,
    /// `kid`, if present.
    pub kid: Option<String>,
    /// `typ`, if present; callers check it (e.g. `at+jwt`, RFC 8725 §3.11).
    pub typ: Option<String>,
}

/// Verifies a compact JWS against a JWK Set (`{"keys": [...]}`, RFC 7517 §5) and returns its
/// header and claims. JWKs that cannot be used for verification are skipped.
///
/// See [`verify_jwt_with_keys`] for the rules.
///
/// # Errors
/// As [`verify_jwt_with_keys`]; also [`JoseError::InvalidKey`] if `jwks` has no `keys` array.
pub fn verify_jwt(token: &str, jwks: &Value, allowed: &[&str]) -> Result<(JwsHeader, Map<String, Value>), JoseError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| JoseError::InvalidKey("JWK Set has no \"keys\" array".into()))?;
    let keys: Vec<VerifyingKey> = keys.iter().filter_map(|jwk| VerifyingKey::from_jwk(jwk).ok()).collect();
    verify_jwt_with_keys(token, &keys, allowed)
}

/// Verifies a compact JWS (RFC 7515 §5.2, §7.1) against already-parsed keys.
///
/// - `alg` must be in `allowed` and implemented here (RS/PS 256/384/512, ES256, ES384, EdDSA);
///   `none` and HMAC algorithms never verify (RFC 8725 §3.1, §3.2);
/// - only keys whose type fits `alg` are tried (P-256 for ES256, P-384 for ES384, RSA for RS*/PS*,
///   Ed25519 for EdDSA), and only those with the header's `kid` when it has one;
/// - a `crit` header is refused (RFC 7515 §4.1.11: no extensions are understood);
/// - the payload must be a JSON object.
///
/// # Errors
/// [`JoseError::MalformedJwt`], [`JoseError::UnsupportedAlgorithm`], [`JoseError::KeyNotFound`]
/// (no candidate key), [`JoseError::InvalidSignature`] (no candidate verified).
pub fn verify_jwt_with_keys(
    token: &str,
    keys: &[VerifyingKey],
    allowed: &[&str],
) -> Result<(JwsHeader, Map<String, Value>), JoseError> {
    let mut parts = token.split('.');
    let (Some(header64), Some(payload64), Some(signature64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::MalformedJwt("expected three dot-separated parts"));
    };
    let header = parse_header(header64)?;
    let alg = Alg::parse(&header.alg)
        .filter(|_| allowed.contains(&header.alg.as_str()))
        .ok_or_else(|| JoseError::UnsupportedAlgorithm(header.alg.clone()))?;
    let payload = base64url_decode(payload64).map_err(|_| JoseError::MalformedJwt("payload is not base64url"))?;
    let signature = base64url_decode(signature64).map_err(|_| JoseError::MalformedJwt("signature is not base64url"))?;
    let signing_input = token
        .get(..header64.len() + 1 + payload64.len())
        .ok_or(JoseError::MalformedJwt("expected three dot-separated parts"))?
        .as_bytes();

    let mut candidates = keys
        .iter()
        .filter(|key| header.kid.is_none() || key.kid == header.kid)
        .filter(|key| key.fits(alg))
        .peekable();
    if candidates.peek().is_none() {
        return Err(JoseError::KeyNotFound);
    }
    if !candidates.any(|key| key.verify(alg, signing_input, &signature)) {
        return Err(JoseError::InvalidSignature);
    }
    let claims =
        serde_json::from_slice(&payload).map_err(|_| JoseError::MalformedJwt("payload is not a JSON object"))?;
    Ok((header, claims))
}

fn parse_header(header64: &str) -> Result<JwsHeader, JoseError> {
    let bytes = base64url_decode(header64).map_err(|_| JoseError::MalformedJwt("header is not base64url"))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| JoseError::MalformedJwt("header is not a JSON object"))?;
    if header.contains_key("crit") {
        return Err(JoseError::MalformedJwt("crit header parameters are not supported"));
    }
    let string = |name: &str| match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JoseError::MalformedJwt("header member is not a string")),
    };
    Ok(JwsHeader {
        alg: string("alg")?.ok_or(JoseError::MalformedJwt("header has no alg"))?,
        kid: string("kid")?,
        typ: string("typ")?,
    })
}
