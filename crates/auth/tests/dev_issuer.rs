//! The development issuer's key file, JWKS, discovery document and minted claims, and
//! `StaticJwks` parsing of documents that are not the issuer's own.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kbgap_auth::{
    issuer_for, DevIssuer, DevIssuerError, JwksError, KeySource, MintError, MintRequest,
    StaticJwks, DEV_ISSUER_KEY_FILE, DEV_ISSUER_TEMPLATE,
};
use kbgap_domain::TenantId;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const NOW: i64 = 1_750_000_000;
const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// One generated key per test process, in a nested directory that did not exist before.
fn shared() -> &'static (TempDir, PathBuf, DevIssuer) {
    static SHARED: OnceLock<(TempDir, PathBuf, DevIssuer)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let root = tempfile::tempdir().expect("temp dir");
        let data_dir = root.path().join("state").join("kbgap");
        let issuer = DevIssuer::load_or_create(&data_dir).expect("create");
        (root, data_dir, issuer)
    })
}

fn tenant() -> TenantId {
    TenantId::parse(TID).expect("tenant")
}

fn request() -> MintRequest {
    MintRequest {
        issuer: issuer_for(DEV_ISSUER_TEMPLATE, &tenant()),
        tenant: tenant(),
        audience: "https://api.securitycenter.microsoft.com".into(),
        app_id: "dev-app".into(),
        roles: vec!["Software.Read.All".into(), "Machine.ReadWrite.All".into()],
        scopes: vec![],
        ttl: Duration::from_secs(3600),
        now_unix: NOW,
    }
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("json")
}

#[test]
fn key_file_is_created_private_and_reloaded_with_the_same_kid() {
    let (_, data_dir, issuer) = shared();
    let path = data_dir.join(DEV_ISSUER_KEY_FILE);
    assert_eq!(issuer.key_path(), path);
    let pem = std::fs::read_to_string(&path).expect("key file");
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "PKCS#8 PEM"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = DevIssuer::load_or_create(data_dir).expect("reload");
    assert_eq!(again.kid(), issuer.kid());
    assert_eq!(again.jwks(), issuer.jwks());
    assert_eq!(std::fs::read_to_string(&path).expect("key file"), pem);
    // Only the key file is left behind: no temporary files.
    let names: Vec<_> = std::fs::read_dir(data_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(DEV_ISSUER_KEY_FILE)]);
}

#[test]
fn corrupt_key_file_is_an_error_naming_the_path_and_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(DEV_ISSUER_KEY_FILE);
    let garbage = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
    std::fs::write(&path, garbage).expect("write");
    let err = DevIssuer::load_or_create(dir.path()).expect_err("corrupt");
    assert!(matches!(&err, DevIssuerError::Corrupt { path: p, .. } if *p == path));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("kept"), garbage);

    std::fs::write(&path, [0xff, 0xfe, 0x00]).expect("write");
    assert!(matches!(
        DevIssuer::load_or_create(dir.path()),
        Err(DevIssuerError::Corrupt { .. })
    ));
}

#[test]
fn unreadable_key_path_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(DEV_ISSUER_KEY_FILE);
    // A directory where the file should be: unreadable as a file even for root.
    std::fs::create_dir(&path).expect("mkdir");
    let err = DevIssuer::load_or_create(dir.path()).expect_err("unreadable");
    assert!(matches!(&err, DevIssuerError::Read { path: p, .. } if *p == path));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn jwks_has_exactly_one_public_rsa_key_with_the_thumbprint_kid() {
    let (_, _, issuer) = shared();
    let jwks = issuer.jwks();
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().expect("object");
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["kid"], issuer.kid());
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        assert!(!key.contains_key(private), "{private} leaked");
    }
    let mut names: Vec<_> = key.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(key["e"], "AQAB");
    let n = URL_SAFE_NO_PAD
        .decode(key["n"].as_str().expect("n"))
        .expect("b64");
    assert_eq!(n.len(), 256, "RSA 2048");

    // RFC 7638: SHA-256 of the required members in lexicographic order.
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        key["e"].as_str().expect("e"),
        key["n"].as_str().expect("n")
    );
    assert_eq!(
        issuer.kid(),
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    );

    // The JWKS parses back into a key source that finds this key.
    let parsed = StaticJwks::from_value(&jwks).expect("jwks");
    assert!(parsed.key(Some(issuer.kid())).is_some());
    assert!(issuer.key_source().key(Some(issuer.kid())).is_some());
    assert!(issuer.key_source().key(Some("other")).is_none());
}

#[test]
fn discovery_document_points_at_the_jwks() {
    let (_, _, issuer) = shared();
    let doc = issuer.discovery(
        "https://login.kbgap.localhost/common/v2.0",
        "http://127.0.0.1:8080/.well-known/jwks.json",
    );
    assert_eq!(doc["issuer"], "https://login.kbgap.localhost/common/v2.0");
    assert_eq!(
        doc["jwks_uri"],
        "http://127.0.0.1:8080/.well-known/jwks.json"
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert!(doc.get("token_endpoint").is_none());
}

#[test]
fn minted_claims_and_header_have_the_azure_ad_shape() {
    let (_, _, issuer) = shared();
    let token = issuer.mint(&request()).expect("mint");
    let header = decode_part(&token, 0);
    assert_eq!(
        header,
        json!({ "alg": "RS256", "typ": "JWT", "kid": issuer.kid() })
    );
    let claims = decode_part(&token, 1);
    let mut names: Vec<_> = claims
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["appid", "aud", "azp", "exp", "iat", "iss", "nbf", "oid", "roles", "tid", "ver"]
    );
    assert_eq!(
        claims["iss"],
        format!("https://login.kbgap.localhost/{TID}/v2.0")
    );
    assert_eq!(claims["aud"], "https://api.securitycenter.microsoft.com");
    assert_eq!(claims["tid"], TID);
    assert_eq!(claims["appid"], "dev-app");
    assert_eq!(claims["azp"], "dev-app");
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["nbf"], NOW);
    assert_eq!(claims["exp"], NOW + 3600);
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(
        claims["roles"],
        json!(["Software.Read.All", "Machine.ReadWrite.All"])
    );
    // Same caller, same oid.
    let again = decode_part(&issuer.mint(&request()).expect("mint"), 1);
    assert_eq!(again["oid"], claims["oid"]);

    let delegated = MintRequest {
        roles: vec![],
        scopes: vec!["Software.Read".into(), "User.Read".into()],
        ..request()
    };
    let claims = decode_part(&issuer.mint(&delegated).expect("mint"), 1);
    assert_eq!(claims["scp"], "Software.Read User.Read");
    assert!(claims.get("roles").is_none());
}

#[test]
fn mint_refuses_nonsense_requests() {
    let (_, _, issuer) = shared();
    let zero = MintRequest {
        ttl: Duration::ZERO,
        ..request()
    };
    assert!(matches!(
        issuer.mint(&zero),
        Err(MintError::InvalidRequest(_))
    ));
    let spaced = MintRequest {
        scopes: vec!["Software.Read User.Read".into()],
        ..request()
    };
    assert!(matches!(
        issuer.mint(&spaced),
        Err(MintError::InvalidRequest(_))
    ));
    let no_app = MintRequest {
        app_id: String::new(),
        ..request()
    };
    assert!(matches!(
        issuer.mint(&no_app),
        Err(MintError::InvalidRequest(_))
    ));
}

#[test]
fn debug_output_has_no_key_material() {
    let (_, _, issuer) = shared();
    let pem = std::fs::read_to_string(issuer.key_path()).expect("key file");
    let body_line = pem.lines().nth(1).expect("pem body");
    let n = issuer.jwks()["keys"][0]["n"]
        .as_str()
        .expect("n")
        .to_string();
    let key = issuer.key_source().key(None).expect("only key");
    for debug in [format!("{issuer:?}"), format!("{key:?}")] {
        assert!(!debug.contains(body_line), "{debug}");
        assert!(!debug.contains(&n[..32]), "{debug}");
    }
    assert!(format!("{issuer:?}").contains(issuer.kid()));
}

// ---- StaticJwks on foreign documents ----

fn rsa_jwk(kid: &str) -> Value {
    let mut key = shared().2.jwks()["keys"][0].clone();
    key["kid"] = json!(kid);
    key
}

#[test]
fn jwks_keeps_rsa_signing_keys_and_skips_the_rest() {
    let mut encryption = rsa_jwk("enc");
    encryption["use"] = json!("enc");
    let mut wrap_only = rsa_jwk("wrap");
    wrap_only["key_ops"] = json!(["wrapKey"]);
    let doc = json!({ "keys": [
        { "kty": "EC", "crv": "P-256", "kid": "ec", "x": "AAAA", "y": "AAAA" },
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
        encryption,
        wrap_only,
        { "kty": "RSA", "kid": "no-modulus", "e": "AQAB" },
        // 1024-bit modulus: too short to trust.
        { "kty": "RSA", "kid": "short", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128]) },
        rsa_jwk("good"),
    ]});
    let jwks = StaticJwks::from_value(&doc).expect("jwks");
    assert_eq!(jwks.kids().collect::<Vec<_>>(), vec![Some("good")]);
    assert!(jwks.key(Some("ec")).is_none());
    assert!(jwks.key(Some("hmac")).is_none());
    assert!(jwks.key(Some("short")).is_none());
    assert!(jwks.key(Some("enc")).is_none());
    assert!(jwks.key(Some("wrap")).is_none());
    assert!(
        jwks.key(None).is_some(),
        "the only key serves kid-less tokens"
    );
}

#[test]
fn jwks_without_usable_keys_or_with_duplicates_is_an_error() {
    assert_eq!(
        StaticJwks::from_json("not json").map(|_| ()),
        Err(JwksError::NotJson)
    );
    assert_eq!(
        StaticJwks::from_json(r#"{"keys": {}}"#).map(|_| ()),
        Err(JwksError::NoKeysArray)
    );
    assert_eq!(
        StaticJwks::from_json(r#"{"keys": [{"kty": "EC"}]}"#).map(|_| ()),
        Err(JwksError::NoUsableKeys)
    );
    let doc = json!({ "keys": [rsa_jwk("same"), rsa_jwk("same")] });
    assert_eq!(
        StaticJwks::from_value(&doc).map(|_| ()),
        Err(JwksError::DuplicateKid("same".into()))
    );
}
