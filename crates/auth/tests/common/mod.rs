//! Test fixtures: one pair of RSA keys per test process (generation is the slow part) and a
//! signer that writes arbitrary headers and claims, so each attack can be hand-crafted.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, EncodingKey};
use kbgap_auth::{DevIssuer, StaticJwks, Validator, ValidatorConfig};
use kbgap_domain::TenantId;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use tempfile::TempDir;

pub const NOW: i64 = 1_750_000_000;
pub const TID_A: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const TID_B: &str = "0b3c9a51-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
pub const APP_ID: &str = "5d8c2a1e-7f3b-4c6d-9e0a-1b2c3d4e5f60";
pub const MDE_AUD: &str = "https://api.securitycenter.microsoft.com";

pub struct Keys {
    pub main: DevIssuer,
    pub main_private: RsaPrivateKey,
    pub other: DevIssuer,
    pub other_private: RsaPrivateKey,
    _dirs: (TempDir, TempDir),
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (main_dir, main, main_private) = issuer_in_temp_dir();
        let (other_dir, other, other_private) = issuer_in_temp_dir();
        Keys {
            main,
            main_private,
            other,
            other_private,
            _dirs: (main_dir, other_dir),
        }
    })
}

fn issuer_in_temp_dir() -> (TempDir, DevIssuer, RsaPrivateKey) {
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = DevIssuer::load_or_create(dir.path()).expect("dev issuer");
    let pem = std::fs::read_to_string(issuer.key_path()).expect("key file");
    let private = RsaPrivateKey::from_pkcs8_pem(&pem).expect("pkcs8 pem");
    (dir, issuer, private)
}

pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant id")
}

pub fn rsa_encoding_key(key: &RsaPrivateKey) -> EncodingKey {
    EncodingKey::from_rsa_der(key.to_pkcs1_der().expect("pkcs1").as_bytes())
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header` and `claims` exactly as given (the header's `alg` is not consulted).
pub fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signer = (DEFAULT_PROVIDER.signer_factory)(&alg, key).expect("signer");
    let sig = signer.try_sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(sig))
}

pub fn rs256_header() -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": keys().main.kid() })
}

/// An application token as Azure AD v1.0 issues it for MDE.
pub fn app_claims(tid: &str) -> Value {
    json!({
        "aud": MDE_AUD,
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "tid": tid,
        "appid": APP_ID,
        "oid": "9a8b7c6d-0000-4000-8000-000000000001",
        "roles": ["Software.Read.All", "Machine.Read.All"],
        "ver": "1.0",
    })
}

/// Signs with the main key and the main key's `kid`.
pub fn main_token(claims: &Value) -> String {
    sign(
        &rs256_header(),
        claims,
        &rsa_encoding_key(&keys().main_private),
        Algorithm::RS256,
    )
}

pub fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

pub fn without(mut claims: Value, name: &str) -> Value {
    if let Some(map) = claims.as_object_mut() {
        map.remove(name);
    }
    claims
}

/// The production configuration (MDE issuers and audiences) over the main test key.
pub fn prod_validator() -> Validator {
    validator_with(ValidatorConfig::default())
}

pub fn validator_with(config: ValidatorConfig) -> Validator {
    Validator::new(config, key_source_arc()).expect("validator")
}

/// The main key as Azure AD publishes its keys: no `alg` member, so nothing but the
/// validator's configuration pins the algorithm.
pub fn key_source_arc() -> Arc<dyn kbgap_auth::KeySource> {
    let mut jwks = keys().main.jwks();
    if let Some(key) = jwks["keys"][0].as_object_mut() {
        key.remove("alg");
    }
    Arc::new(StaticJwks::from_value(&jwks).expect("jwks"))
}
