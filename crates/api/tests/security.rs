//! Security tests, black-box: the real server on 127.0.0.1:0 authenticating against a mock
//! OpenID provider (discovery and JWKS over HTTP on 127.0.0.1), attacked with forged tokens,
//! rate-limited under a manual clock, and hardened against big, slow and many connections.
//! Each server here reads one real MSRC document (2024-Jan) and has its own tenants.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kbgap_api::ratelimit::{InProcessLimiter, ManualClock, Quota};
use kbgap_api::{ApiConfig, Application, RateLimits, Security, Services};
use kbgap_auth::testing::MockProvider;
use kbgap_auth::{
    DevIssuer, JwksLocation, KeySource, RemoteJwks, RemoteJwksConfig, TenantScope, TokenCache,
    TrustedIssuer, Validator, ValidatorConfig,
};
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::{SqliteStore, Store};
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const JAN_2024: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf/2024-Jan.xml.zst"
);
const MDE_AUD: &str = "https://api.securitycenter.microsoft.com";
const MISSING_W10: &str = "/api/Software/microsoft-_-windows_10/getmissingkbs";
const GETMISSINGKBS_ROUTE: &str = "/api/Software/{id}/getmissingkbs";

// ---------------------------------------------------------------------------------------------
// Harness

fn documents() -> &'static [CvrfDocument] {
    static DOCS: OnceLock<Vec<CvrfDocument>> = OnceLock::new();
    DOCS.get_or_init(|| kbgap_catalog::read_documents(&[JAN_2024]).expect("2024-Jan parses"))
}

/// An RSA key pair: its JWKS (through a dev issuer) and its private key for forging.
struct KeyPair {
    issuer: DevIssuer,
    private: rsa::RsaPrivateKey,
    _dir: tempfile::TempDir,
}

impl KeyPair {
    fn generate() -> KeyPair {
        let dir = tempfile::tempdir().expect("temp dir");
        let issuer = DevIssuer::load_or_create(dir.path()).expect("key");
        let pem = std::fs::read_to_string(issuer.key_path()).expect("pem");
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).expect("pkcs8");
        KeyPair {
            issuer,
            private,
            _dir: dir,
        }
    }

    fn kid(&self) -> &str {
        self.issuer.kid()
    }

    fn jwks(&self) -> Value {
        self.issuer.jwks()
    }

    fn public_pem(&self) -> String {
        self.private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("public pem")
    }
}

struct Keys {
    /// Published by every mock provider from the start.
    main: KeyPair,
    /// Published only after a rotation.
    rotated: KeyPair,
    /// Never published: a valid signature from a key nobody trusts.
    foreign: KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        main: KeyPair::generate(),
        rotated: KeyPair::generate(),
        foreign: KeyPair::generate(),
    })
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RS256 over `header` and `claims` exactly as given.
fn forge(header: &Value, claims: &Value, key: &KeyPair) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let sig = SigningKey::<Sha256>::new(key.private.clone()).sign(input.as_bytes());
    format!("{input}.{}", b64(sig.to_bytes()))
}

/// HMAC-SHA256 (RFC 2104), for the key-confusion attack.
fn hmac_sha256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Everything a test can change about a server.
struct Options {
    config: ApiConfig,
    /// Cooldown between JWKS fetches (the contract's 10 s unless a test needs time to pass).
    cooldown: Duration,
    /// Time of the limiter's manual clock.
    clock_start: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: ApiConfig {
                listen: "127.0.0.1:0".parse().expect("addr"),
                // Attack tests all come from 127.0.0.1; the failure limit has its own test.
                rate_limits: RateLimits {
                    auth_failures: Quota::per_minute(1_000_000),
                    ..RateLimits::default()
                },
                ..ApiConfig::default()
            },
            cooldown: Duration::from_secs(10),
            // 2025-06-15T15:06:30Z: 30 s into a minute.
            clock_start: Duration::from_secs(1_749_999_990),
        }
    }
}

struct Server {
    base: String,
    addr: SocketAddr,
    idp: MockProvider,
    issuer_template: String,
    clock: Arc<ManualClock>,
    security: Arc<Security>,
    _dir: tempfile::TempDir,
}

/// A store with the 2024-Jan catalog imported.
fn store_with_catalog() -> (tempfile::TempDir, Arc<SqliteStore>, Arc<CatalogHolder>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    kbgap_service::import_catalog(
        store.as_ref(),
        documents(),
        None,
        OffsetDateTime::now_utc(),
        Retention::default(),
    )
    .expect("import");
    let catalog = Arc::new(CatalogHolder::load(store.as_ref()).expect("catalog"));
    (dir, store, catalog)
}

/// Runs the real server on its own runtime; returns its address.
fn launch(
    config: ApiConfig,
    store: Arc<SqliteStore>,
    catalog: Arc<CatalogHolder>,
    validator: Validator,
    security: Arc<Security>,
) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let app = Application::bind(
                config,
                Services {
                    store: store as Arc<dyn Store>,
                    catalog,
                    validator: Arc::new(validator),
                    dev_issuer: None,
                    security,
                },
            )
            .await
            .expect("bind");
            tx.send(app.local_addr()).expect("send addr");
            app.run(std::future::pending()).await.expect("run");
        });
    });
    rx.recv().expect("server address")
}

fn start(opts: Options) -> Server {
    logs();
    let (dir, store, catalog) = store_with_catalog();
    let idp = MockProvider::start(&keys().main.jwks());
    let issuer_template = format!("{}/{{tid}}/v2.0", idp.issuer());
    let remote = Arc::new(
        RemoteJwks::new(RemoteJwksConfig {
            refresh_cooldown: opts.cooldown,
            ..RemoteJwksConfig::new(JwksLocation::Discovery(idp.discovery_url()))
        })
        .expect("remote jwks"),
    );
    assert!(matches!(
        remote.refresh(Instant::now()),
        kbgap_auth::RefreshOutcome::Updated { keys: 1, .. }
    ));
    let validator = Validator::with_trusted_issuers(
        ValidatorConfig::default(),
        vec![trusted(vec![issuer_template.clone()], remote.clone())],
    )
    .expect("validator");
    let clock = Arc::new(ManualClock::at(opts.clock_start));
    let security = Arc::new(Security::new(
        Arc::new(InProcessLimiter::new(10_000, clock.clone())),
        TokenCache::default(),
        vec![remote],
    ));
    let addr = launch(opts.config, store, catalog, validator, security.clone());
    Server {
        base: format!("http://{addr}"),
        addr,
        idp,
        issuer_template,
        clock,
        security,
        _dir: dir,
    }
}

/// A trusted issuer whose tenants are taken from its issuers.
fn trusted(templates: Vec<String>, keys: Arc<dyn KeySource>) -> TrustedIssuer {
    TrustedIssuer::new(templates, keys)
}

/// One identity provider of a [`MultiServer`]: the keys it publishes, the issuers it is
/// trusted for, and the tenants it may vouch for.
struct ProviderSpec {
    jwks: Value,
    issuers: Vec<String>,
    tenants: Option<TenantScope>,
    /// Answers 503 from the start, so no key is loaded at start-up.
    down_at_start: bool,
}

impl ProviderSpec {
    fn new(key: &KeyPair, issuers: &[&str]) -> ProviderSpec {
        ProviderSpec {
            jwks: key.jwks(),
            issuers: issuers.iter().map(|i| i.to_string()).collect(),
            tenants: None,
            down_at_start: false,
        }
    }
}

/// A server trusting several providers, each with its own mock provider and keys.
struct MultiServer {
    base: String,
    idps: Vec<MockProvider>,
    security: Arc<Security>,
    _dir: tempfile::TempDir,
}

/// Cooldown and fetch timeout of a [`MultiServer`]'s key sources.
const MULTI_COOLDOWN: Duration = Duration::from_millis(200);
const MULTI_FETCH_TIMEOUT: Duration = Duration::from_secs(1);

fn start_providers(specs: Vec<ProviderSpec>) -> MultiServer {
    logs();
    let (dir, store, catalog) = store_with_catalog();
    let mut idps = Vec::new();
    let mut issuers = Vec::new();
    let mut remotes = Vec::new();
    for spec in specs {
        let idp = MockProvider::start(&spec.jwks);
        idp.set_down(spec.down_at_start);
        let remote = Arc::new(
            RemoteJwks::new(RemoteJwksConfig {
                refresh_cooldown: MULTI_COOLDOWN,
                timeout: MULTI_FETCH_TIMEOUT,
                ..RemoteJwksConfig::new(JwksLocation::Discovery(idp.discovery_url()))
            })
            .expect("remote jwks"),
        );
        let outcome = remote.refresh(Instant::now());
        assert_eq!(
            matches!(outcome, kbgap_auth::RefreshOutcome::Updated { keys: 1, .. }),
            !spec.down_at_start,
            "{outcome:?}"
        );
        let mut issuer = trusted(spec.issuers, remote.clone());
        if let Some(t) = spec.tenants {
            issuer = issuer.with_tenants(t);
        }
        issuers.push(issuer);
        remotes.push(remote);
        idps.push(idp);
    }
    let validator =
        Validator::with_trusted_issuers(ValidatorConfig::default(), issuers).expect("validator");
    let security = Arc::new(Security::new(
        Arc::new(InProcessLimiter::default()),
        TokenCache::default(),
        remotes,
    ));
    let opts = Options::default();
    let addr = launch(opts.config, store, catalog, validator, security.clone());
    MultiServer {
        base: format!("http://{addr}"),
        idps,
        security,
        _dir: dir,
    }
}

impl MultiServer {
    fn get(&self, path: &str, token: &str) -> Response {
        client()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .expect("request")
    }

    fn ingest(&self, token: &str, machines: &[Value]) {
        let r = client()
            .post(format!("{}/api/inventory/machines", self.base))
            .bearer_auth(token)
            .json(&machines)
            .send()
            .expect("ingest");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{}",
            r.text().unwrap_or_default()
        );
    }
}

/// Claims of an application token with `iss` and `tid` as given.
fn claims_for(iss: &str, tid: &str) -> Value {
    let t = now();
    json!({
        "aud": MDE_AUD,
        "iss": iss,
        "iat": t - 60,
        "nbf": t - 60,
        "exp": t + 3600,
        "tid": tid,
        "appid": APP,
        "roles": ["Software.Read.All", "Machine.ReadWrite.All"],
    })
}

/// Signs `claims` with `key`, naming `key`'s kid.
fn signed_by(key: &KeyPair, claims: &Value) -> String {
    forge(
        &json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()}),
        claims,
        key,
    )
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

const APP: &str = "11111111-2222-3333-4444-555555555555";

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn claims(&self, tid: &str) -> Value {
        let t = now();
        json!({
            "aud": MDE_AUD,
            "iss": self.issuer_template.replace("{tid}", tid),
            "iat": t - 60,
            "nbf": t - 60,
            "exp": t + 3600,
            "tid": tid,
            "appid": APP,
            "roles": ["Software.Read.All", "Machine.ReadWrite.All"],
        })
    }

    fn token_with(&self, claims: &Value) -> String {
        forge(
            &json!({"alg": "RS256", "typ": "JWT", "kid": keys().main.kid()}),
            claims,
            &keys().main,
        )
    }

    fn token(&self, tid: &str) -> String {
        self.token_with(&self.claims(tid))
    }

    fn get(&self, path: &str, token: &str) -> Response {
        client()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .expect("request")
    }

    fn ingest(&self, tid: &str, machines: &[Value]) {
        let r = client()
            .post(self.url("/api/inventory/machines"))
            .bearer_auth(self.token(tid))
            .json(&machines)
            .send()
            .expect("ingest");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{}",
            r.text().unwrap_or_default()
        );
    }

    fn idp_hits(&self) -> u64 {
        self.idp.jwks_hits() + self.idp.discovery_hits()
    }
}

fn snapshot(id: &str, build: &str) -> Value {
    json!({
        "id": id,
        "lastSeen": OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("rfc3339"),
        "osPlatform": "Windows10",
        "osBuild": build,
        "osArchitecture": "x64",
    })
}

fn body(r: Response) -> Value {
    let text = r.text().expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts the MDE envelope with this status and code; returns the message.
fn assert_error(r: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status);
    let request_id = r.headers()["request-id"]
        .to_str()
        .expect("request id")
        .to_string();
    let b = body(r);
    assert_eq!(b["error"]["code"], code, "{b}");
    assert_eq!(b["error"]["target"], request_id.as_str());
    assert_eq!(b.as_object().map(|o| o.len()), Some(1), "{b}");
    assert_eq!(b["error"].as_object().map(|o| o.len()), Some(3), "{b}");
    b["error"]["message"].as_str().expect("message").to_string()
}

/// A refused token: 401, `WWW-Authenticate` with `invalid_token`, the envelope, and exactly
/// this message (which never echoes the token).
fn assert_refused(r: Response, message: &str) {
    assert_eq!(
        r.headers().get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer error=\"invalid_token\""[..])
    );
    assert_eq!(
        assert_error(r, StatusCode::UNAUTHORIZED, "Unauthorized"),
        message
    );
}

/// The server most attack tests share (each with its own tenant).
fn attack_server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| start(Options::default()))
}

const T_ATTACK: &str = "5ec00000-0000-0000-0000-000000000001";

// ---------------------------------------------------------------------------------------------
// Logs: everything any server here logs, at every level, to check that no token leaks.

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buffer
    })
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The attack list: each forged token is refused with 401 and the envelope.

#[test]
fn baseline_a_correctly_forged_token_is_accepted() {
    let s = attack_server();
    s.ingest(T_ATTACK, &[snapshot("m1", "10.0.19045.3570")]);
    let r = s.get(MISSING_W10, &s.token(T_ATTACK));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["value"][0]["id"], "5034122");
}

#[test]
fn attack_alg_none_is_refused() {
    let s = attack_server();
    let claims = s.claims(T_ATTACK);
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None", "typ": "JWT", "kid": keys().main.kid()}),
    ] {
        let token = format!("{}.{}.", b64(header.to_string()), b64(claims.to_string()));
        assert_refused(
            s.get(MISSING_W10, &token),
            "The access token signing algorithm is not allowed.",
        );
    }
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_is_refused() {
    let s = attack_server();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": keys().main.kid()});
    let input = format!(
        "{}.{}",
        b64(header.to_string()),
        b64(s.claims(T_ATTACK).to_string())
    );
    // The classic key confusion: the public key (PEM, and the JWK's modulus) as HMAC secret.
    for secret in [
        keys().main.public_pem().into_bytes(),
        keys().main.jwks()["keys"][0]["n"]
            .as_str()
            .expect("n")
            .as_bytes()
            .to_vec(),
    ] {
        let token = format!("{input}.{}", b64(hmac_sha256(&secret, input.as_bytes())));
        assert_refused(
            s.get(MISSING_W10, &token),
            "The access token signing algorithm is not allowed.",
        );
    }
}

#[test]
fn attack_valid_signature_from_an_unknown_key_is_refused() {
    let s = attack_server();
    let claims = s.claims(T_ATTACK);
    // Its own kid: not published by the provider.
    let own_kid = forge(
        &json!({"alg": "RS256", "typ": "JWT", "kid": keys().foreign.kid()}),
        &claims,
        &keys().foreign,
    );
    assert_refused(
        s.get(MISSING_W10, &own_kid),
        "The access token was signed with an unknown key.",
    );
    // The trusted key's kid: the signature does not verify.
    let borrowed_kid = forge(
        &json!({"alg": "RS256", "typ": "JWT", "kid": keys().main.kid()}),
        &claims,
        &keys().foreign,
    );
    assert_refused(
        s.get(MISSING_W10, &borrowed_kid),
        "The access token signature is invalid.",
    );
}

#[test]
fn attack_kid_pointing_nowhere_is_refused() {
    let s = attack_server();
    for kid in [json!("nowhere"), json!(""), json!("../../etc/passwd")] {
        let token = forge(
            &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
            &s.claims(T_ATTACK),
            &keys().main,
        );
        assert_refused(
            s.get(MISSING_W10, &token),
            "The access token was signed with an unknown key.",
        );
    }
    // A `jku` pointing at the attacker's keys is ignored, not followed.
    let token = forge(
        &json!({"alg": "RS256", "kid": keys().foreign.kid(), "jku": "http://127.0.0.1:9/keys"}),
        &s.claims(T_ATTACK),
        &keys().foreign,
    );
    assert_refused(
        s.get(MISSING_W10, &token),
        "The access token was signed with an unknown key.",
    );
}

#[test]
fn attack_expired_token_is_refused() {
    let s = attack_server();
    let t = now();
    // Past the 5-minute leeway.
    let mut claims = s.claims(T_ATTACK);
    claims["exp"] = json!(t - 301);
    claims["nbf"] = json!(t - 3900);
    assert_refused(
        s.get(MISSING_W10, &s.token_with(&claims)),
        "The access token has expired.",
    );
}

#[test]
fn attack_not_yet_valid_token_is_refused() {
    let s = attack_server();
    let mut claims = s.claims(T_ATTACK);
    claims["nbf"] = json!(now() + 600);
    assert_refused(
        s.get(MISSING_W10, &s.token_with(&claims)),
        "The access token is not yet valid.",
    );
}

#[test]
fn attack_wrong_audience_is_refused() {
    let s = attack_server();
    for aud in [
        json!("https://graph.microsoft.com"),
        json!(["https://graph.microsoft.com", "api://kbgap"]),
        json!(null),
    ] {
        let mut claims = s.claims(T_ATTACK);
        claims["aud"] = aud;
        assert_refused(
            s.get(MISSING_W10, &s.token_with(&claims)),
            "The access token audience is not accepted.",
        );
    }
}

#[test]
fn attack_wrong_issuer_is_refused() {
    let s = attack_server();
    for iss in [
        format!("https://sts.windows.net/{T_ATTACK}/"),
        format!("{}/{T_ATTACK}/v2.0/", s.idp.issuer()),
        s.idp.issuer(),
    ] {
        let mut claims = s.claims(T_ATTACK);
        claims["iss"] = json!(iss);
        assert_refused(
            s.get(MISSING_W10, &s.token_with(&claims)),
            "The access token issuer is not accepted.",
        );
    }
}

#[test]
fn attack_issuer_of_tenant_a_with_tid_of_tenant_b_is_refused() {
    let s = attack_server();
    let tenant_b = "5ec00000-0000-0000-0000-0000000000b2";
    let mut claims = s.claims(T_ATTACK);
    claims["tid"] = json!(tenant_b);
    assert_refused(
        s.get(MISSING_W10, &s.token_with(&claims)),
        "The access token issuer is not accepted.",
    );
}

#[test]
fn attack_missing_tid_is_refused() {
    let s = attack_server();
    for tid in [None, Some(json!("")), Some(json!(42))] {
        let mut claims = s.claims(T_ATTACK);
        match tid {
            None => {
                claims.as_object_mut().expect("object").remove("tid");
            }
            Some(v) => claims["tid"] = v,
        }
        let r = s.get(MISSING_W10, &s.token_with(&claims));
        if claims.get("tid").is_some_and(Value::is_number) {
            // A number where a string belongs: the payload is not the expected JSON.
            assert_refused(r, "The access token is malformed.");
        } else {
            assert_refused(r, "The access token has no tenant (tid) claim.");
        }
    }
}

#[test]
fn attack_malformed_base64_and_json_are_refused() {
    let s = attack_server();
    let good = s.token(T_ATTACK);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        format!("{}.{}.{}", "e30*", parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], "!!"),
        format!("{}.{}.{}", b64("{\"alg\":\"RS256\""), parts[1], parts[2]),
        format!("{}.{}.{}", b64("[]"), parts[1], parts[2]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        "not-a-jwt".to_string(),
    ];
    for token in cases {
        assert_refused(s.get(MISSING_W10, &token), "The access token is malformed.");
    }
    // Correctly signed payloads that are not base64url, or not JSON.
    let header = b64(json!({"alg": "RS256", "kid": keys().main.kid()}).to_string());
    for payload in ["%%%".to_string(), b64("{not json"), b64("\"\"")] {
        let input = format!("{header}.{payload}");
        let sig = SigningKey::<Sha256>::new(keys().main.private.clone()).sign(input.as_bytes());
        let token = format!("{input}.{}", b64(sig.to_bytes()));
        assert_refused(s.get(MISSING_W10, &token), "The access token is malformed.");
    }
}

#[test]
fn attack_one_megabyte_header_is_refused() {
    let s = attack_server();
    // A JWT whose header segment alone is 1 MiB: refused once the head outgrows the limit for
    // heads with a token (64 KiB + 17 KiB), before the rest of it is read.
    let header = json!({"alg": "RS256", "kid": "x".repeat(3 * 1024 * 1024 / 4 - 24)});
    let header = b64(header.to_string());
    assert_eq!(header.len(), 1024 * 1024);
    let token = format!("{header}.{}.AAAA", b64(s.claims(T_ATTACK).to_string()));
    let started = Instant::now();
    assert_eq!(
        assert_error(
            s.get(MISSING_W10, &token),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "RequestHeaderFieldsTooLarge"
        ),
        "The request head is larger than the limit of 82944 bytes (Authorization included)."
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn attacks_cause_no_jwks_fetch_storm() {
    let s = start(Options::default());
    let before = s.idp_hits();
    for round in 0..40 {
        // Unknown kids are what could make a server fetch keys; every other forgery too.
        let unknown_kid = forge(
            &json!({"alg": "RS256", "kid": format!("random-{round}")}),
            &s.claims(T_ATTACK),
            &keys().foreign,
        );
        let foreign = forge(
            &json!({"alg": "RS256", "kid": keys().foreign.kid()}),
            &s.claims(T_ATTACK),
            &keys().foreign,
        );
        for token in [unknown_kid, foreign, "a.b.c".to_string()] {
            assert_eq!(
                s.get(MISSING_W10, &token).status(),
                StatusCode::UNAUTHORIZED
            );
        }
    }
    // 120 refusals, 40 of them with unknown kids, within the 10 s cooldown of the start-up
    // fetch: at most one more fetch.
    let fetched = s.idp_hits() - before;
    assert!(fetched <= 1, "{fetched} JWKS fetches during the attack");
}

// ---------------------------------------------------------------------------------------------
// Keys from the provider: rotation and outage.

#[test]
fn key_rotation_is_picked_up_on_an_unknown_kid_with_a_cooldown() {
    let s = start(Options {
        cooldown: Duration::from_secs(1),
        ..Options::default()
    });
    let tid = "5ec00000-0000-0000-0000-0000000000c1";
    s.ingest(tid, &[snapshot("m1", "10.0.19045.3570")]);
    let rotated = forge(
        &json!({"alg": "RS256", "typ": "JWT", "kid": keys().rotated.kid()}),
        &s.claims(tid),
        &keys().rotated,
    );
    assert_eq!((s.idp.discovery_hits(), s.idp.jwks_hits()), (1, 1));
    // Wait out the cooldown of the start-up fetch: the unknown kid triggers one fetch, which
    // does not find the key yet.
    std::thread::sleep(Duration::from_millis(1100));
    assert_refused(
        s.get(MISSING_W10, &rotated),
        "The access token was signed with an unknown key.",
    );
    assert_eq!(s.idp.jwks_hits(), 2);
    // The provider rotates; within the cooldown nothing is fetched.
    let mut both = keys().main.jwks();
    both["keys"]
        .as_array_mut()
        .expect("keys")
        .push(keys().rotated.jwks()["keys"][0].clone());
    s.idp.set_jwks(&both);
    assert_eq!(
        s.get(MISSING_W10, &rotated).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.idp.jwks_hits(), 2);
    std::thread::sleep(Duration::from_millis(1100));
    let r = s.get(MISSING_W10, &rotated);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["value"][0]["machineMissedOn"], 1);
    assert_eq!((s.idp.discovery_hits(), s.idp.jwks_hits()), (1, 3));
    // Tokens of the old key still work while it is published.
    assert_eq!(s.get(MISSING_W10, &s.token(tid)).status(), StatusCode::OK);
}

#[test]
fn stale_keys_keep_serving_while_the_provider_is_down() {
    let s = start(Options {
        cooldown: Duration::from_secs(1),
        ..Options::default()
    });
    let tid = "5ec00000-0000-0000-0000-0000000000c2";
    s.ingest(tid, &[snapshot("m1", "10.0.19045.3570")]);
    s.idp.set_down(true);
    std::thread::sleep(Duration::from_millis(1100));
    // A token never seen before, signed by the known key: verified with the cached keys.
    let mut claims = s.claims(tid);
    claims["jti"] = json!("fresh");
    assert_eq!(
        s.get(MISSING_W10, &s.token_with(&claims)).status(),
        StatusCode::OK
    );
    // An unknown kid asks the provider once; it is down; the answer is 401, not an error.
    let before = s.idp_hits();
    let rotated = forge(
        &json!({"alg": "RS256", "kid": keys().rotated.kid()}),
        &s.claims(tid),
        &keys().rotated,
    );
    for _ in 0..5 {
        assert_refused(
            s.get(MISSING_W10, &rotated),
            "The access token was signed with an unknown key.",
        );
    }
    // One JWKS attempt for the five requests (the cooldown), answered 503.
    assert_eq!(s.idp_hits() - before, 1);
    assert_eq!(s.get(MISSING_W10, &s.token(tid)).status(), StatusCode::OK);
}

#[test]
fn a_reused_token_is_verified_once() {
    let s = start(Options::default());
    let tid = "5ec00000-0000-0000-0000-0000000000c3";
    s.ingest(tid, &[snapshot("m1", "10.0.19045.3570")]);
    let cached_before = s.security.token_cache.len();
    // Distinct from the ingestion token, which the same second would otherwise reproduce.
    let mut claims = s.claims(tid);
    claims["jti"] = json!("reuse");
    let token = s.token_with(&claims);
    for _ in 0..5 {
        assert_eq!(s.get(MISSING_W10, &token).status(), StatusCode::OK);
    }
    assert_eq!(s.security.token_cache.len(), cached_before + 1);
    // Refused tokens are not cached.
    let mut claims = s.claims(tid);
    claims["aud"] = json!("nope");
    assert_eq!(
        s.get(MISSING_W10, &s.token_with(&claims)).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.security.token_cache.len(), cached_before + 1);
}

// ---------------------------------------------------------------------------------------------
// Rate limits (api-contract.md §4), under the manual clock.

#[test]
fn rate_limit_sixth_call_is_429_others_unaffected_and_it_resets_after_the_window() {
    let mut opts = Options::default();
    opts.config.rate_limits.routes = vec![(
        GETMISSINGKBS_ROUTE.to_string(),
        Quota::per_minute_and_hour(5, 1000).expect("quota"),
    )];
    let s = start(opts);
    let (a, b) = (
        "5ec00000-0000-0000-0000-0000000000d1",
        "5ec00000-0000-0000-0000-0000000000d2",
    );
    s.ingest(a, &[snapshot("m1", "10.0.19045.3570")]);
    s.ingest(b, &[snapshot("m1", "10.0.19045.3570")]);
    let token_a = s.token(a);
    for i in 0..5 {
        assert_eq!(
            s.get(MISSING_W10, &token_a).status(),
            StatusCode::OK,
            "call {}",
            i + 1
        );
    }
    let r = s.get(MISSING_W10, &token_a);
    // 30 s into the minute.
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(
        assert_error(r, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        "API calls quota exceeded! Maximum allowed 5 per 00:01:00 for the key \
         Destination+TenantID+AppID. You can send requests again in 30 seconds."
    );
    // Case and /v1.0 spellings are the same route.
    assert_eq!(
        s.get(
            "/api/v1.0/software/microsoft-_-windows_10/GETMISSINGKBS",
            &token_a
        )
        .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another tenant, same app: unaffected.
    assert_eq!(s.get(MISSING_W10, &s.token(b)).status(), StatusCode::OK);
    // Same tenant, another app: unaffected.
    let mut other_app = s.claims(a);
    other_app["appid"] = json!("99999999-2222-3333-4444-555555555555");
    assert_eq!(
        s.get(MISSING_W10, &s.token_with(&other_app)).status(),
        StatusCode::OK
    );
    // Same tenant and app, another route: its own (default) limit.
    let r = client()
        .delete(s.url("/api/inventory/machines/nothing"))
        .bearer_auth(&token_a)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // 29 s later still refused, with 1 s to go; once the minute is over, served again.
    s.clock.advance(Duration::from_secs(29));
    let r = s.get(MISSING_W10, &token_a);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    s.clock.advance(Duration::from_secs(1));
    let r = s.get(MISSING_W10, &token_a);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["value"][0]["machineMissedOn"], 1);
}

#[test]
fn rate_limit_hour_window_and_mde_defaults() {
    assert_eq!(
        RateLimits::default().default,
        Quota::per_minute_and_hour(100, 1500).expect("quota")
    );
    let mut opts = Options::default();
    opts.config.rate_limits.default = Quota::per_minute_and_hour(3, 4).expect("quota");
    let s = start(opts);
    let tid = "5ec00000-0000-0000-0000-0000000000d3";
    let token = s.token(tid);
    let call = || {
        client()
            .delete(s.url("/api/inventory/machines/nothing"))
            .bearer_auth(&token)
            .send()
            .expect("delete")
    };
    for _ in 0..3 {
        assert_eq!(call().status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(call().status(), StatusCode::TOO_MANY_REQUESTS);
    s.clock.advance(Duration::from_secs(30));
    assert_eq!(call().status(), StatusCode::NOT_FOUND);
    // The hour (2025-06-15T15:00Z–16:00Z) is used up: 3,180 s until it ends.
    let r = call();
    assert_eq!(r.headers()["retry-after"], "3180");
    assert_eq!(
        assert_error(r, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        "API calls quota exceeded! Maximum allowed 4 per 01:00:00 for the key \
         Destination+TenantID+AppID. You can send requests again in 3180 seconds."
    );
}

#[test]
fn failed_authentications_are_limited_per_address_but_valid_tokens_are_not() {
    let mut opts = Options::default();
    opts.config.rate_limits.auth_failures = Quota::per_minute(3);
    // No cooldown: only the limit can stop an unknown kid from fetching keys.
    opts.cooldown = Duration::ZERO;
    let s = start(opts);
    let tid = "5ec00000-0000-0000-0000-0000000000d4";
    let known = s.token(tid);
    let r = client()
        .delete(s.url("/api/inventory/machines/x"))
        .bearer_auth(&known)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let mut bad = s.claims(tid);
    bad["aud"] = json!("nope");
    let bad = s.token_with(&bad);
    for _ in 0..3 {
        assert_eq!(s.get(MISSING_W10, &bad).status(), StatusCode::UNAUTHORIZED);
    }
    let r = s.get(MISSING_W10, &bad);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(
        assert_error(r, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        "Too many requests with invalid credentials from this address. Maximum allowed 3 per \
         00:01:00. You can send requests again in 30 seconds."
    );
    // No token at all counts as well, and so does a token naming a key nobody holds (a
    // limited address triggers no key fetch); a valid token not seen before is served (its
    // signature is checked: the limit never refuses a valid token), and so is one already
    // validated.
    let r = client().get(s.url(MISSING_W10)).send().expect("get");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let hits = s.idp_hits();
    let unknown_kid = forge(
        &json!({"alg": "RS256", "kid": "never-published"}),
        &s.claims(tid),
        &keys().foreign,
    );
    assert_eq!(
        s.get(MISSING_W10, &unknown_kid).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(s.idp_hits(), hits);
    let mut fresh = s.claims(tid);
    fresh["jti"] = json!("fresh");
    assert_eq!(
        s.get(MISSING_W10, &s.token_with(&fresh)).status(),
        StatusCode::NOT_FOUND
    );
    let r = client()
        .delete(s.url("/api/inventory/machines/x"))
        .bearer_auth(&known)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.clock.advance(Duration::from_secs(30));
    assert_eq!(
        s.get(MISSING_W10, &s.token_with(&fresh)).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_valid_token_is_not_locked_out_by_someone_elses_bad_tokens() {
    // Behind one NAT address: someone sends 60 bad tokens, the default limit.
    let mut opts = Options::default();
    opts.config.rate_limits.auth_failures = Quota::per_minute(60);
    let s = start(opts);
    let tid = "5ec00000-0000-0000-0000-0000000000d5";
    s.ingest(tid, &[snapshot("m1", "10.0.19045.3570")]);
    let mut bad = s.claims(tid);
    bad["aud"] = json!("nope");
    let bad = s.token_with(&bad);
    for i in 0..60 {
        assert_eq!(
            s.get(MISSING_W10, &bad).status(),
            StatusCode::UNAUTHORIZED,
            "bad token {}",
            i + 1
        );
    }
    assert_eq!(
        s.get(MISSING_W10, &bad).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same address, with tokens this server has never seen: served.
    for jti in ["new-client-1", "new-client-2"] {
        let mut fresh = s.claims(tid);
        fresh["jti"] = json!(jti);
        let r = s.get(MISSING_W10, &s.token_with(&fresh));
        assert_eq!(r.status(), StatusCode::OK, "{jti}");
        assert_eq!(body(r)["value"][0]["machineMissedOn"], 1);
    }
    // What is not a valid token stays limited: cheap failures, bad signatures, expired ones.
    let r = s.get(MISSING_W10, "a.b.c");
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(
        assert_error(r, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        "Too many requests with invalid credentials from this address. Maximum allowed 60 per \
         00:01:00. You can send requests again in 30 seconds."
    );
    let r = client().get(s.url(MISSING_W10)).send().expect("get");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let foreign = forge(
        &json!({"alg": "RS256", "kid": keys().main.kid()}),
        &s.claims(tid),
        &keys().foreign,
    );
    assert_eq!(
        s.get(MISSING_W10, &foreign).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut expired = s.claims(tid);
    expired["exp"] = json!(now() - 3600);
    assert_eq!(
        s.get(MISSING_W10, &s.token_with(&expired)).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ---------------------------------------------------------------------------------------------
// Tenant isolation.

#[test]
fn tenants_with_the_same_ids_see_only_their_own_counts_and_machines() {
    let s = attack_server();
    let (a, b) = (
        "5ec00000-0000-0000-0000-0000000000e1",
        "5ec00000-0000-0000-0000-0000000000e2",
    );
    // The same machine ids and the same software in both tenants.
    s.ingest(
        a,
        &[
            snapshot("pc-1", "10.0.19045.3570"),
            snapshot("pc-2", "10.0.19045.3570"),
            snapshot("only-a", "10.0.19045.3570"),
        ],
    );
    s.ingest(
        b,
        &[
            snapshot("pc-1", "10.0.19045.3570"),
            snapshot("pc-2", "10.0.19045.3930"),
        ],
    );
    let count = |tid: &str| body(s.get(MISSING_W10, &s.token(tid)))["value"].clone();
    assert_eq!(count(a)[0]["machineMissedOn"], 3);
    assert_eq!(count(b)[0]["machineMissedOn"], 1);
    assert_eq!(count(b).as_array().map(Vec::len), Some(1));
    // Another tenant's machine id is "not found", exactly like a machine that never existed:
    // no 403, no different message, nothing to learn.
    let delete = |tid: &str, id: &str| {
        client()
            .delete(s.url(&format!("/api/inventory/machines/{id}")))
            .bearer_auth(s.token(tid))
            .send()
            .expect("delete")
    };
    assert_eq!(
        assert_error(
            delete(b, "only-a"),
            StatusCode::NOT_FOUND,
            "ResourceNotFound"
        ),
        "Machine only-a was not found"
    );
    assert_eq!(
        assert_error(
            delete(b, "never"),
            StatusCode::NOT_FOUND,
            "ResourceNotFound"
        ),
        "Machine never was not found"
    );
    assert_eq!(count(a)[0]["machineMissedOn"], 3);
    // Explanations: each tenant sees its own pc-2; another tenant's machine is 404.
    let explain = |tid: &str, id: &str| {
        s.get(
            &format!("/api/machines/{id}/missingkbs/explain"),
            &s.token(tid),
        )
    };
    let ea = body(explain(a, "pc-2"));
    let eb = body(explain(b, "pc-2"));
    assert_eq!(ea["machineId"], "pc-2");
    assert_eq!(ea["os"]["revision"], 3570);
    assert_eq!(
        ea["missing"],
        json!([{"software": "microsoft-_-windows_10", "kbs": ["5034122"]}])
    );
    // Any spelling of the path is the same route, for the same tenant.
    let again = body(s.get("/API/v1.0/Machines/pc-2/MissingKbs/Explain", &s.token(a)));
    assert_eq!(again["os"]["revision"], 3570);
    assert_eq!(eb["machineId"], "pc-2");
    assert_eq!(eb["os"]["revision"], 3930);
    assert_eq!(eb["missing"], json!([]));
    assert_eq!(
        assert_error(
            explain(b, "only-a"),
            StatusCode::NOT_FOUND,
            "ResourceNotFound"
        ),
        "Machine only-a was not found"
    );
    // Deleting B's own pc-1 leaves A's pc-1 alone.
    assert_eq!(delete(b, "pc-1").status(), StatusCode::NO_CONTENT);
    assert_eq!(count(a)[0]["machineMissedOn"], 3);
    assert_eq!(count(b), json!([]));
}

#[test]
fn ingestion_writes_only_into_the_tokens_tenant() {
    let s = attack_server();
    let (a, b) = (
        "5ec00000-0000-0000-0000-0000000000f1",
        "5ec00000-0000-0000-0000-0000000000f2",
    );
    // A snapshot cannot name a tenant: the field does not exist.
    let mut m = snapshot("pc-1", "10.0.19045.3570");
    m["tenantId"] = json!(b);
    let r = client()
        .post(s.url("/api/inventory/machines"))
        .bearer_auth(s.token(a))
        .json(&json!([m]))
        .send()
        .expect("post");
    assert_error(r, StatusCode::BAD_REQUEST, "InvalidRequestBody");
    // A's writes land in A only.
    s.ingest(a, &[snapshot("pc-1", "10.0.19045.3570")]);
    assert_error(
        s.get(MISSING_W10, &s.token(b)),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
    assert_eq!(
        body(s.get(MISSING_W10, &s.token(a)))["value"][0]["machineMissedOn"],
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Tenant binding across providers: each provider vouches only for its own tenants.

const T_BIND_A: &str = "b1d00000-0000-4000-8000-00000000000a";
const T_BIND_B: &str = "b1d00000-0000-4000-8000-00000000000b";

fn idp_issuer(tid: &str) -> String {
    format!("https://idp.test/{tid}/v2.0")
}

#[test]
fn a_tenant_providers_key_cannot_read_another_tenants_counts() {
    // `--issuer https://idp/A/v2.0 --issuer https://idp/B/v2.0`: two per-tenant providers,
    // two keys, each concrete issuer naming its tenant.
    let s = start_providers(vec![
        ProviderSpec::new(&keys().main, &[&idp_issuer(T_BIND_A)]),
        ProviderSpec::new(&keys().rotated, &[&idp_issuer(T_BIND_B)]),
    ]);
    let genuine_a = signed_by(&keys().main, &claims_for(&idp_issuer(T_BIND_A), T_BIND_A));
    let genuine_b = signed_by(
        &keys().rotated,
        &claims_for(&idp_issuer(T_BIND_B), T_BIND_B),
    );
    s.ingest(
        &genuine_a,
        &[
            snapshot("a-1", "10.0.19045.3570"),
            snapshot("a-2", "10.0.19045.3570"),
            snapshot("a-3", "10.0.19045.3570"),
        ],
    );
    s.ingest(&genuine_b, &[snapshot("b-1", "10.0.19045.3570")]);
    assert_eq!(
        body(s.get(MISSING_W10, &genuine_a))["value"][0]["machineMissedOn"],
        3
    );
    assert_eq!(
        body(s.get(MISSING_W10, &genuine_b))["value"][0]["machineMissedOn"],
        1
    );
    // The attack: tenant A's key and issuer, tenant B's tid.
    let forged = signed_by(&keys().main, &claims_for(&idp_issuer(T_BIND_A), T_BIND_B));
    let r = s.get(MISSING_W10, &forged);
    assert_refused(
        r,
        "The access token issuer may not vouch for the token's tenant.",
    );
    // Nor can it be written with: B still has its one machine.
    let r = client()
        .post(format!("{}/api/inventory/machines", s.base))
        .bearer_auth(&forged)
        .json(&json!([snapshot("planted", "10.0.19045.3570")]))
        .send()
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(s.get(MISSING_W10, &genuine_b))["value"][0]["machineMissedOn"],
        1
    );
}

#[test]
fn providers_sharing_a_tid_template_each_verify_their_own_tenants_tokens() {
    let template = "https://idp.test/{tid}/v2.0";
    let mut a = ProviderSpec::new(&keys().main, &[template]);
    a.tenants = Some(TenantScope::Only(vec![kbgap_domain::TenantId::parse(
        T_BIND_A,
    )
    .expect("tid")]));
    let mut b = ProviderSpec::new(&keys().rotated, &[template]);
    b.tenants = Some(TenantScope::Only(vec![kbgap_domain::TenantId::parse(
        T_BIND_B,
    )
    .expect("tid")]));
    let s = start_providers(vec![a, b]);
    let genuine_b = signed_by(
        &keys().rotated,
        &claims_for(&idp_issuer(T_BIND_B), T_BIND_B),
    );
    s.ingest(&genuine_b, &[snapshot("b-1", "10.0.19045.3570")]);
    let r = s.get(MISSING_W10, &genuine_b);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["value"][0]["machineMissedOn"], 1);
    let genuine_a = signed_by(&keys().main, &claims_for(&idp_issuer(T_BIND_A), T_BIND_A));
    assert_error(
        s.get(MISSING_W10, &genuine_a),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
    // A's key with B's issuer and tid: B's provider does not hold A's key.
    let forged = signed_by(&keys().main, &claims_for(&idp_issuer(T_BIND_B), T_BIND_B));
    assert_refused(
        s.get(MISSING_W10, &forged),
        "The access token was signed with an unknown key.",
    );
}

#[test]
fn an_unknown_kid_fetches_only_its_issuers_provider_and_waits_at_most_the_fetch_timeout() {
    assert_eq!(
        RemoteJwksConfig::new(JwksLocation::Jwks("https://x.test/keys".into())).timeout,
        Duration::from_secs(3)
    );
    let s = start_providers(vec![
        ProviderSpec::new(&keys().main, &[&idp_issuer(T_BIND_A)]),
        ProviderSpec::new(&keys().rotated, &[&idp_issuer(T_BIND_B)]),
    ]);
    let (idp_a, idp_b) = (&s.idps[0], &s.idps[1]);
    idp_a.set_hanging(true);
    std::thread::sleep(MULTI_COOLDOWN + Duration::from_millis(50));
    let unknown_kid = |tid: &str| {
        forge(
            &json!({"alg": "RS256", "kid": "not-published"}),
            &claims_for(&idp_issuer(tid), tid),
            &keys().foreign,
        )
    };
    let (a_before, b_before) = (idp_a.jwks_hits(), idp_b.jwks_hits());
    // B's token: only B's provider is asked, which answers at once.
    let started = Instant::now();
    assert_refused(
        s.get(MISSING_W10, &unknown_kid(T_BIND_B)),
        "The access token was signed with an unknown key.",
    );
    let took = started.elapsed();
    assert!(took < MULTI_FETCH_TIMEOUT, "{took:?}");
    assert_eq!(idp_b.jwks_hits() - b_before, 1);
    assert_eq!(idp_a.jwks_hits() - a_before, 0);
    // A's token: A's provider hangs; the request waits its fetch timeout, not longer.
    let started = Instant::now();
    assert_refused(
        s.get(MISSING_W10, &unknown_kid(T_BIND_A)),
        "The access token was signed with an unknown key.",
    );
    let took = started.elapsed();
    assert!(
        took >= MULTI_FETCH_TIMEOUT && took < MULTI_FETCH_TIMEOUT + Duration::from_millis(800),
        "{took:?}"
    );
    assert_eq!(idp_a.jwks_hits() - a_before, 1);
    assert_eq!(idp_b.jwks_hits() - b_before, 1);
    idp_a.set_hanging(false);
}

#[test]
fn readiness_says_when_a_provider_has_no_signing_keys() {
    let mut down = ProviderSpec::new(&keys().rotated, &[&idp_issuer(T_BIND_B)]);
    down.down_at_start = true;
    let s = start_providers(vec![
        ProviderSpec::new(&keys().main, &[&idp_issuer(T_BIND_A)]),
        down,
    ]);
    let discovery = s.idps[1].discovery_url();
    let r = client()
        .get(format!("{}/readyz", s.base))
        .send()
        .expect("readyz");
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(
        assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        format!(
            "No signing keys are loaded for identity provider {discovery}; tokens it issued \
             are refused until its keys can be fetched."
        )
    );
    assert_eq!(s.security.sources_without_keys(), vec![discovery.as_str()]);
    // Once the provider answers, the background refresh loads its keys and the server is ready.
    s.idps[1].set_down(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let r = client()
            .get(format!("{}/readyz", s.base))
            .send()
            .expect("readyz");
        if r.status() == StatusCode::OK || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(body(ready)["status"], "ready");
}

// ---------------------------------------------------------------------------------------------
// Hardening.

/// Sends raw bytes; returns what the server answered and when. With `until_close`, reads until
/// the server closes the connection; otherwise until one complete response (by
/// `Content-Length`) has arrived. Gives up after `wait`.
fn raw_exchange(
    addr: SocketAddr,
    request: &[u8],
    until_close: bool,
    wait: Duration,
) -> (String, Duration) {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(wait)).expect("timeout");
    let started = Instant::now();
    // The server may stop reading (and close) before a huge request is written.
    let _ = conn.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if !until_close && response_complete(&out) {
            break;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

fn response_complete(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    body.len() >= length
}

#[test]
fn request_heads_over_the_limit_get_431_with_the_envelope() {
    let mut opts = Options::default();
    opts.config.connections.max_header_bytes = 8 * 1024;
    let s = start(opts);
    let r = client()
        .get(s.url("/healthz"))
        .header("x-padding", "p".repeat(7 * 1024))
        .send()
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .get(s.url("/healthz"))
        .header("x-padding", "p".repeat(9 * 1024))
        .send()
        .expect("get");
    assert_eq!(
        assert_error(
            r,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "RequestHeaderFieldsTooLarge"
        ),
        "The request headers are larger than the limit of 8192 bytes."
    );
    // A head too large to buffer at all is refused as soon as it outgrows the limit plus
    // room for a token, with the envelope all the same.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(2 * 1024 * 1024)
    );
    let (answer, _) = raw_exchange(s.addr, huge.as_bytes(), true, Duration::from_secs(5));
    assert_eq!(
        raw_refusal(&answer),
        (
            431,
            "RequestHeaderFieldsTooLarge".into(),
            "The request head is larger than the limit of 25600 bytes (Authorization included)."
                .into()
        )
    );
}

/// The status, code and message of a refusal read off the wire, after checking that it is
/// MDE's envelope with the request id as its target and that the connection closes.
fn raw_refusal(answer: &str) -> (u16, String, String) {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {answer:.300}"));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line of {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {head}"))
    };
    assert_eq!(header("content-type"), "application/json; charset=utf-8");
    assert_eq!(header("connection"), "close");
    assert_eq!(header("content-length"), body.len().to_string());
    let b: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(b["error"]["target"], header("request-id"), "{b}");
    assert_eq!(b["error"].as_object().map(|o| o.len()), Some(3), "{b}");
    (
        status,
        b["error"]["code"].as_str().expect("code").to_string(),
        b["error"]["message"].as_str().expect("message").to_string(),
    )
}

#[test]
fn what_the_http_layer_refuses_carries_the_envelope_too() {
    let s = start(Options::default());
    let wait = Duration::from_secs(5);
    let refusal = |request: &[u8]| raw_refusal(&raw_exchange(s.addr, request, true, wait).0);
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(
        refusal(many.as_bytes()),
        (
            431,
            "RequestHeaderFieldsTooLarge".into(),
            "The request has more than 100 header fields.".into()
        )
    );
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000 - 1)
    );
    assert_eq!(
        refusal(long.as_bytes()),
        (
            414,
            "RequestUriTooLong".into(),
            "The request target is longer than the limit of 16384 bytes.".into()
        )
    );
    let lengths = b"PUT /api/inventory/machines/m1 HTTP/1.1\r\nHost: x\r\n\
                    Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(
        refusal(lengths),
        (
            400,
            "InvalidInput".into(),
            "The request has 2 Content-Length headers; send one.".into()
        )
    );
    let control = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: a\x07b\r\n\r\n";
    assert_eq!(
        refusal(control),
        (
            400,
            "InvalidInput".into(),
            "The request head is malformed: a header field value holds a control byte.".into()
        )
    );
    assert_eq!(
        refusal(b"HELLO THERE\r\n\r\n"),
        (
            400,
            "InvalidInput".into(),
            "The request head is malformed: the request line is not METHOD TARGET HTTP/1.1.".into()
        )
    );
    // A TLS client hello sent to the plain-HTTP port.
    assert_eq!(
        refusal(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 \r\n\r\n"),
        (
            400,
            "InvalidInput".into(),
            "The request head is malformed: the request line is not METHOD TARGET HTTP/1.1.".into()
        )
    );
    // Every refusal is logged with its request id.
    assert!(logged().contains("request refused before routing"));
}

#[test]
fn a_refused_head_after_a_good_request_on_one_connection_gets_both_answers() {
    let s = start(Options::default());
    let pipelined = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
                      GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\
                      Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                      GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let (answer, _) = raw_exchange(s.addr, pipelined, true, Duration::from_secs(5));
    let second = answer
        .find("HTTP/1.1 400")
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(answer[..second].starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        raw_refusal(&answer[second..]),
        (
            400,
            "InvalidInput".into(),
            "The request has both Transfer-Encoding and Content-Length; send one.".into()
        )
    );
    // Nothing after the refused head is answered.
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer}");
}

#[test]
fn slow_clients_are_disconnected() {
    let mut opts = Options::default();
    opts.config.connections.header_read_timeout = Duration::from_secs(1);
    let s = start(opts);
    // Half a request head, then nothing (slowloris).
    let (answer, waited) = raw_exchange(
        s.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        true,
        Duration::from_secs(5),
    );
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // An idle keep-alive connection is closed the same way.
    let (answer, waited) = raw_exchange(
        s.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        true,
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[test]
fn a_slow_body_times_out_with_the_408_envelope() {
    let mut opts = Options::default();
    opts.config.request_timeout = Duration::from_secs(1);
    let s = start(opts);
    let tid = "5ec00000-0000-0000-0000-0000000000a1";
    let request = format!(
        "PUT /api/inventory/machines/m1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"id\":",
        s.token(tid)
    );
    let (answer, waited) = raw_exchange(s.addr, request.as_bytes(), false, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"RequestTimeout\""), "{answer}");
    assert!(waited < Duration::from_secs(3), "answered after {waited:?}");
}

/// A client that opens each request on a connection of its own, from `local` when given.
fn fresh_client(timeout: Duration, local: Option<&str>) -> Client {
    Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .local_address(local.map(|ip| ip.parse().expect("ip")))
        .build()
        .expect("client")
}

/// A raw connection to `addr` from the loopback address `from`.
fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local: SocketAddr = format!("{from}:0").parse().expect("local");
    socket.bind(&local.into()).expect("bind");
    socket.connect(&addr.into()).expect("connect");
    socket.into()
}

#[test]
fn the_connection_limit_holds_further_connections_back() {
    let mut opts = Options::default();
    opts.config.connections.max_connections = 2;
    let s = start(opts);
    let served = |timeout: Duration| {
        fresh_client(timeout, None)
            .get(s.url("/healthz"))
            .send()
            .map(|r| r.status())
            .ok()
    };
    assert_eq!(served(Duration::from_secs(5)), Some(StatusCode::OK));
    // Two connections in the middle of a request head are busy, not idle: nothing is closed
    // for a third, which waits.
    let mut busy1 = TcpStream::connect(s.addr).expect("connect");
    let mut busy2 = TcpStream::connect(s.addr).expect("connect");
    for c in [&mut busy1, &mut busy2] {
        c.write_all(b"GET /healthz HTTP/1.1\r\n").expect("write");
    }
    // Until the server has read those bytes, a connection counts as idle: give it time to,
    // on a loaded machine too.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        served(Duration::from_millis(800)),
        None,
        "a third connection must wait"
    );
    drop(busy1);
    assert_eq!(served(Duration::from_secs(5)), Some(StatusCode::OK));
    drop(busy2);
}

/// The median of five fresh-connection `/healthz` round trips from `local`.
fn median_round_trip(s: &Server, local: &str) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let r = fresh_client(Duration::from_secs(20), Some(local))
                .get(s.url("/healthz"))
                .send()
                .expect("served");
            assert_eq!(r.status(), StatusCode::OK);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

#[test]
fn a_flood_of_idle_connections_from_one_address_does_not_hold_other_clients_back() {
    let mut opts = Options::default();
    opts.config.connections.max_connections = 64;
    opts.config.connections.max_connections_per_client = 16;
    let s = start(opts);
    // 200 idle connections from 127.0.0.1: 16 are held, every further one is told why and
    // closed.
    let mut flood: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(s.addr).expect("connect"))
        .collect();
    let mut turned_away = flood.split_off(16);
    let last = turned_away.pop().expect("one");
    last.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = (&last).read_to_string(&mut answer);
    let mut head = answer.lines();
    assert_eq!(head.next(), Some("HTTP/1.1 429 Too Many Requests"));
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert_eq!(
        raw_refusal(&answer),
        (
            429,
            "TooManyRequests".into(),
            "Too many connections from this address; at most 16 at once.".into()
        )
    );
    // Another client is served at once while the flood holds its connections.
    let median = median_round_trip(&s, "127.0.0.2");
    assert!(median < Duration::from_millis(100), "median {median:?}");
    drop(turned_away);
    drop(flood);
}

#[test]
fn when_every_connection_is_taken_the_quietest_idle_one_makes_room() {
    let mut opts = Options::default();
    opts.config.connections.max_connections = 32;
    opts.config.connections.max_connections_per_client = 8;
    let s = start(opts);
    // Four addresses take all 32 connections, one after another, and say nothing.
    let idle: Vec<TcpStream> = (3..7)
        .flat_map(|n| (0..8).map(move |_| n))
        .map(|n| {
            std::thread::sleep(Duration::from_millis(5));
            connect_from(&format!("127.0.0.{n}"), s.addr)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let r = fresh_client(Duration::from_secs(5), Some("127.0.0.2"))
        .get(s.url("/healthz"))
        .send()
        .expect("served");
    assert_eq!(r.status(), StatusCode::OK);
    // The one quiet longest was closed for it, and no other.
    let closed: Vec<usize> = idle
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let mut byte = [0u8; 1];
            matches!((&**c).read(&mut byte), Ok(0))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(closed, vec![0]);
    let median = median_round_trip(&s, "127.0.0.2");
    assert!(median < Duration::from_millis(100), "median {median:?}");
}

#[tokio::test]
async fn panics_become_the_500_envelope_without_internals() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let router = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("secret internal detail: database password is hunter2");
            }
            "unreachable"
        }),
    );
    let app = kbgap_api::service(router, 64 * 1024);
    let resp = app
        .oneshot(
            Request::get("/boom")
                .header("request-id", "panic-1")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(resp.headers()["request-id"], "panic-1");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let b: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        b,
        json!({"error": {"code": "InternalServerError",
                         "message": "An unexpected error occurred.", "target": "panic-1"}})
    );
}

/// The request log line of request `id`.
fn log_line(id: &str) -> String {
    let needle = format!("request_id={id} ");
    logged()
        .lines()
        .find(|l| l.contains(&needle) && l.contains(" request "))
        .unwrap_or_else(|| panic!("request {id} was not logged"))
        .to_string()
}

#[test]
fn every_authenticated_request_is_logged_with_its_tenant_and_app_whatever_its_outcome() {
    let mut opts = Options::default();
    opts.config.rate_limits.routes = vec![(
        GETMISSINGKBS_ROUTE.to_string(),
        Quota::per_minute_and_hour(1, 1000).expect("quota"),
    )];
    let s = start(opts);
    let tid = "5ec00000-0000-0000-0000-0000000000b1";
    let token = s.token(tid);
    let send = |id: &str, token: &str| {
        client()
            .get(s.url(MISSING_W10))
            .bearer_auth(token)
            .header("request-id", id)
            .send()
            .expect("get")
            .status()
    };
    // Served (404: no machine), then refused by the rate limit, then forbidden.
    assert_eq!(send("log-caller-1", &token), StatusCode::NOT_FOUND);
    assert_eq!(send("log-caller-2", &token), StatusCode::TOO_MANY_REQUESTS);
    let mut no_role = s.claims(tid);
    no_role["roles"] = json!(["Machine.Read.All"]);
    no_role["appid"] = json!("22222222-2222-3333-4444-555555555555");
    assert_eq!(
        send("log-caller-3", &s.token_with(&no_role)),
        StatusCode::FORBIDDEN
    );
    for (id, app, status) in [
        ("log-caller-1", APP, 404),
        ("log-caller-2", APP, 429),
        ("log-caller-3", "22222222-2222-3333-4444-555555555555", 403),
    ] {
        let line = log_line(id);
        assert!(
            line.contains(&format!(
                "route=/api/Software/{{id}}/getmissingkbs tenant={tid} app={app} status={status} "
            )),
            "{line}"
        );
    }
    // A request that did not authenticate names nobody.
    let mut bad = s.claims(tid);
    bad["aud"] = json!("nope");
    assert_eq!(
        send("log-caller-4", &s.token_with(&bad)),
        StatusCode::UNAUTHORIZED
    );
    let line = log_line("log-caller-4");
    assert!(line.contains(" tenant= app= status=401 "), "{line}");
}

#[test]
fn tokens_never_appear_in_the_logs() {
    let s = attack_server();
    let tid = "5ec00000-0000-0000-0000-0000000000a9";
    s.ingest(tid, &[snapshot("m1", "10.0.19045.3570")]);
    let good = s.token(tid);
    let mut bad_claims = s.claims(tid);
    bad_claims["aud"] = json!("nope");
    let bad = s.token_with(&bad_claims);
    let mut ids = Vec::new();
    for (i, token) in [&good, &bad, &good].iter().enumerate() {
        let id = format!("log-check-{i}");
        let r = client()
            .get(s.url(MISSING_W10))
            .bearer_auth(token)
            .header("request-id", &id)
            .send()
            .expect("get");
        assert!(r.status() == StatusCode::OK || r.status() == StatusCode::UNAUTHORIZED);
        ids.push(id);
    }
    let logs = logged();
    for id in &ids {
        assert!(logs.contains(id.as_str()), "request {id} was not logged");
    }
    assert!(logs.contains(tid), "the tenant is logged");
    for token in [&good, &bad] {
        for part in token.split('.') {
            assert!(!logs.contains(part), "a token segment appears in the logs");
        }
    }
    // Debug output of the security machinery names no key material or token either.
    let debug = format!("{:?}", s.security);
    assert!(!debug.contains(good.split('.').nth(2).unwrap_or("-")));
    assert!(debug.contains("TokenCache"), "{debug}");
}
