//! Black-box tests of the HTTP API: the real server on 127.0.0.1:0 with the real SQLite
//! store and the real MSRC archive (cut at 2024-01-31), called with a real HTTP client.
//! One server per catalog cut is shared by all tests; each test uses its own tenant.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kbgap_api::{ApiConfig, Application, Services};
use kbgap_auth::{issuer_for, DevIssuer, MintRequest, Validator, ValidatorConfig};
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::TenantId;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::{SqliteStore, Store};
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};
use time::OffsetDateTime;

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf"
);
const MDE_AUD: &str = "https://api.securitycenter.microsoft.com";

fn documents() -> &'static [CvrfDocument] {
    static DOCS: OnceLock<Vec<CvrfDocument>> = OnceLock::new();
    DOCS.get_or_init(|| kbgap_catalog::read_documents(&[ARCHIVE]).expect("archive parses"))
}

struct TestServer {
    base: String,
    dev: DevIssuer,
    key_pem: String,
    dir: tempfile::TempDir,
}

fn start(as_of: time::Date) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    kbgap_service::import_catalog(
        store.as_ref(),
        documents(),
        Some(as_of),
        OffsetDateTime::now_utc(),
        Retention::default(),
    )
    .unwrap();
    let dev = DevIssuer::load_or_create(dir.path()).unwrap();
    let key_pem = std::fs::read_to_string(dev.key_path()).unwrap();
    let validator = Validator::new(
        ValidatorConfig {
            issuer_templates: vec![kbgap_auth::DEV_ISSUER_TEMPLATE.to_string()],
            ..ValidatorConfig::default()
        },
        dev.key_source(),
    )
    .unwrap();
    let catalog = std::sync::Arc::new(CatalogHolder::load(store.as_ref()).unwrap());
    let served_dev = DevIssuer::load_or_create(dir.path()).unwrap();
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_batch: 5,
        // Small pages, so that the machine list's paging is seen with a few machines.
        page_size: 3,
        body_limit: 64 * 1024,
        // Every test shares this server and 127.0.0.1; the limits have their own tests.
        rate_limits: kbgap_api::RateLimits {
            auth_failures: kbgap_ratelimit::Quota::per_minute(1_000_000),
            ..kbgap_api::RateLimits::default()
        },
        ..ApiConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let app = Application::bind(
                config,
                Services {
                    store: store as std::sync::Arc<dyn Store>,
                    catalog,
                    validator: std::sync::Arc::new(validator),
                    dev_issuer: Some(std::sync::Arc::new(served_dev)),
                    security: std::sync::Arc::new(kbgap_api::Security::default()),
                },
            )
            .await
            .unwrap();
            tx.send(app.local_addr()).unwrap();
            app.run(std::future::pending()).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    TestServer {
        base: format!("http://{addr}"),
        dev,
        key_pem,
        dir,
    }
}

/// The catalog as it stood on 2024-01-31.
fn server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| start(time::macros::date!(2024 - 01 - 31)))
}

fn client() -> Client {
    Client::new()
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

impl TestServer {
    fn token(&self, tid: &str, roles: &[&str]) -> String {
        self.mint(tid, roles, &[], MDE_AUD, 3600, 0)
    }

    fn mint(
        &self,
        tid: &str,
        roles: &[&str],
        scopes: &[&str],
        aud: &str,
        ttl: u64,
        shift: i64,
    ) -> String {
        let t = tenant(tid);
        self.dev
            .mint(&MintRequest {
                issuer: issuer_for(kbgap_auth::DEV_ISSUER_TEMPLATE, &t),
                tenant: t,
                audience: aud.into(),
                app_id: "test-app".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                scopes: scopes.iter().map(|r| r.to_string()).collect(),
                ttl: std::time::Duration::from_secs(ttl),
                now_unix: OffsetDateTime::now_utc().unix_timestamp() + shift,
            })
            .unwrap()
    }

    /// Signs arbitrary header and claims with the server's own key (or `alg: none`).
    fn forge(&self, header: Value, claims: Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{h}.{c}");
        if header["alg"] == "none" {
            return format!("{input}.");
        }
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&self.key_pem).unwrap();
        let sig = SigningKey::<sha2::Sha256>::new(key).sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str, token: &str) -> Response {
        client()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    fn ingest(&self, tid: &str, machines: &[Value]) {
        let token = self.token(tid, &["Machine.ReadWrite.All"]);
        for chunk in machines.chunks(5) {
            let r = client()
                .post(self.url("/api/inventory/machines"))
                .bearer_auth(&token)
                .json(&chunk)
                .send()
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
        }
    }

    fn missing(&self, tid: &str, software: &str) -> Response {
        self.get(
            &format!("/api/Software/{software}/getmissingkbs"),
            &self.token(tid, &["Software.Read.All"]),
        )
    }
}

fn snapshot(id: &str, platform: &str, build: &str, days_ago: i64) -> Value {
    let seen = OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    json!({
        "id": id,
        "lastSeen": seen.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "osPlatform": platform,
        "osBuild": build,
        "osArchitecture": "x64",
    })
}

fn body(r: Response) -> Value {
    let text = r.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts an MDE error envelope with the given status and code; returns the message.
fn assert_error(r: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status);
    let request_id = r.headers()["request-id"].to_str().unwrap().to_string();
    let b = body(r);
    assert_eq!(b["error"]["code"], code, "{b}");
    assert_eq!(b["error"]["target"], request_id.as_str());
    assert_eq!(b.as_object().unwrap().len(), 1);
    assert_eq!(b["error"].as_object().unwrap().len(), 3);
    b["error"]["message"].as_str().unwrap().to_string()
}

const WIN10_KB_URL: &str = "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB";

#[test]
fn windows_10_fleet_gives_mde_exact_json() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-00000000000a";
    s.ingest(
        tid,
        &[
            snapshot("w10-a", "Windows10", "10.0.19045.3570", 1),
            snapshot("w10-b", "Windows10", "10.0.19045.3570", 2),
            snapshot("w10-c", "Windows10", "10.0.19045.3693", 3),
            snapshot("w10-d", "Windows10", "10.0.19045.3803", 0),
            snapshot("w10-e", "Windows10", "10.0.19045.3930", 0),
            snapshot("ltsc-2019", "Windows10", "10.0.17763.5206", 0),
            snapshot("ltsb-2016", "Windows10", "10.0.14393.6452", 0),
        ],
    );
    let r = s.missing(tid, "microsoft-_-windows_10");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
    );
    assert!(!r.headers()["request-id"].is_empty());
    let text = r.text().unwrap();
    // cveAddressed: distinct CVE ids the January 2024 document lists for Windows 10 products
    // under each KB (34 for 21H2/22H2, 32 for 1809, 24 for 1607).
    let expected = json!({
        "@odata.context": format!("{}/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)", s.base),
        "value": [
            {"id": "5034122", "name": "January 2024 Security Updates", "productsNames": ["windows_10"],
             "url": format!("{WIN10_KB_URL}5034122"), "machineMissedOn": 4, "cveAddressed": 34},
            {"id": "5034127", "name": "January 2024 Security Updates", "productsNames": ["windows_10"],
             "url": format!("{WIN10_KB_URL}5034127"), "machineMissedOn": 1, "cveAddressed": 32},
            {"id": "5034119", "name": "January 2024 Security Updates", "productsNames": ["windows_10"],
             "url": format!("{WIN10_KB_URL}5034119"), "machineMissedOn": 1, "cveAddressed": 24},
        ]
    });
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    // Field order on the wire is MDE's.
    let first = text.find("\"value\":[{").unwrap();
    let keys: Vec<usize> = [
        "\"id\"",
        "\"name\"",
        "\"productsNames\"",
        "\"url\"",
        "\"machineMissedOn\"",
        "\"cveAddressed\"",
    ]
    .iter()
    .map(|k| text[first..].find(k).unwrap())
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.starts_with("{\"@odata.context\":"));
}

#[test]
fn fixed_segments_are_case_insensitive_and_v1_0_is_an_alias() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-00000000000b";
    s.ingest(tid, &[snapshot("m1", "Windows10", "10.0.19045.3570", 0)]);
    let token = s.token(tid, &["Software.Read.All"]);
    for path in [
        "/api/Software/microsoft-_-windows_10/getmissingkbs",
        "/api/software/Microsoft-_-Windows_10/GetMissingKbs",
        "/API/v1.0/SOFTWARE/microsoft-_-windows_10/getmissingkbs",
        "/api/Software/microsoft-_-windows%5F10/getmissingkbs?unrelated=1",
    ] {
        let r = s.get(path, &token);
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let b = body(r);
        assert_eq!(b["value"][0]["id"], "5034122", "{path}");
        assert_eq!(b["value"][0]["machineMissedOn"], 1, "{path}");
    }
    // HEAD answers like GET without a body.
    let r = client()
        .head(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().unwrap(), "");
}

#[test]
fn known_software_with_nothing_missing_is_an_empty_list_and_unknown_is_404() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-00000000000c";
    s.ingest(
        tid,
        &[snapshot("current", "Windows10", "10.0.19045.3930", 0)],
    );
    let r = s.missing(tid, "microsoft-_-windows_10");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["value"], json!([]));
    let r = s.missing(tid, "contoso-_-nothing");
    let msg = assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound");
    assert_eq!(msg, "Software contoso-_-nothing was not found");
}

#[test]
fn malformed_percent_escapes_in_a_software_id_are_invalid_input() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000e5";
    let token = s.token(tid, &["Software.Read.All", "Machine.ReadWrite.All"]);
    for path in [
        "/api/Software/abc%zz/getmissingkbs",
        "/api/Software/abc%/getmissingkbs",
        "/api/Software/abc%4/getmissingkbs",
        "/api/v1.0/software/%g1abc/GetMissingKbs",
        "/api/Software/abc%zz/indeterminatemachines",
    ] {
        let msg = assert_error(s.get(path, &token), StatusCode::BAD_REQUEST, "InvalidInput");
        assert_eq!(
            msg, "The software id has a malformed percent-escape.",
            "{path}"
        );
    }
    // Well-formed escapes are decoded as before: `%5F` is `_`, `%25` a literal `%`.
    let r = s.get("/api/Software/contoso-_-no%5Fsuch/getmissingkbs", &token);
    assert_eq!(
        assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound"),
        "Software contoso-_-no_such was not found"
    );
    let r = s.get("/api/Software/abc%25zz/getmissingkbs", &token);
    assert_eq!(
        assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound"),
        "Software abc%zz was not found"
    );
}

#[test]
fn every_error_uses_the_envelope() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-00000000000d";
    let token = s.token(tid, &["Software.Read.All"]);
    let long = "a".repeat(257);
    for (path, code) in [
        ("/api/Software/a%2Fb/getmissingkbs", "InvalidInput"),
        ("/api/Software/a%07b/getmissingkbs", "InvalidInput"),
        (
            &format!("/api/Software/{long}/getmissingkbs") as &str,
            "InvalidInput",
        ),
        ("/api/Software//getmissingkbs", "InvalidInput"),
        ("/api/Software/%FF/getmissingkbs", "InvalidInput"),
    ] {
        let r = s.get(path, &token);
        assert_error(r, StatusCode::BAD_REQUEST, code);
    }
    let r = s.get(
        "/api/Software/microsoft-_-windows_10/getmissingkbs?$top=5",
        &token,
    );
    let msg = assert_error(r, StatusCode::BAD_REQUEST, "ODataError");
    assert!(msg.contains("'$top'"), "{msg}");
    let r = s.get(
        "/api/Software/microsoft-_-windows_10/getmissingkbs?%24filter=id%20eq%201",
        &token,
    );
    assert!(assert_error(r, StatusCode::BAD_REQUEST, "ODataError").contains("'$filter'"));
    let r = s.get("/api/nothing/here", &token);
    assert_error(r, StatusCode::NOT_FOUND, "NotFound");
    let r = client()
        .post(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    // Without a token: 401 without an error code in WWW-Authenticate.
    let r = client()
        .get(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
        .send()
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(r, StatusCode::UNAUTHORIZED, "Unauthorized");
    // A valid token without the permission: MDE's words.
    let r = s.get(
        "/api/Software/microsoft-_-windows_10/getmissingkbs",
        &s.token(tid, &["Machine.ReadWrite.All"]),
    );
    assert_eq!(
        assert_error(r, StatusCode::FORBIDDEN, "Forbidden"),
        "Missing application roles. API required roles: Software.Read.All, application roles: Machine.ReadWrite.All."
    );
    let r = s.get(
        "/api/Software/microsoft-_-windows_10/getmissingkbs",
        &s.mint(tid, &[], &["User.Read"], MDE_AUD, 3600, 0),
    );
    assert_eq!(
        assert_error(r, StatusCode::FORBIDDEN, "Forbidden"),
        "Missing delegated scopes. API required scopes: Software.Read, token scopes: User.Read."
    );
}

#[test]
fn a_sane_incoming_request_id_is_reused() {
    let s = server();
    let r = client()
        .get(s.url("/api/nothing"))
        .header("x-request-id", "trace-42")
        .send()
        .unwrap();
    assert_eq!(r.headers()["request-id"], "trace-42");
    assert_eq!(body(r)["error"]["target"], "trace-42");
    let r = client()
        .get(s.url("/api/nothing"))
        .header("request-id", "bad id with spaces")
        .send()
        .unwrap();
    let id = r.headers()["request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
}

#[test]
fn tokens_that_must_fail_do() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-00000000000e";
    s.ingest(tid, &[snapshot("m1", "Windows10", "10.0.19045.3570", 0)]);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let iss = issuer_for(kbgap_auth::DEV_ISSUER_TEMPLATE, &tenant(tid));
    let claims = |extra: Value| {
        let mut c = json!({"aud": MDE_AUD, "iss": iss, "tid": tid, "iat": now, "nbf": now,
                           "exp": now + 3600, "roles": ["Software.Read.All"], "appid": "x"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": s.dev.kid()});
    // The forging itself is right: the baseline token passes.
    let ok = s.forge(header.clone(), claims(json!({})));
    assert_eq!(
        s.get("/api/Software/microsoft-_-windows_10/getmissingkbs", &ok)
            .status(),
        StatusCode::OK
    );
    let other_dir = tempfile::tempdir().unwrap();
    let other = DevIssuer::load_or_create(other_dir.path()).unwrap();
    let foreign = other
        .mint(&MintRequest {
            issuer: iss.clone(),
            tenant: tenant(tid),
            audience: MDE_AUD.into(),
            app_id: "x".into(),
            roles: vec!["Software.Read.All".into()],
            scopes: vec![],
            ttl: std::time::Duration::from_secs(600),
            now_unix: now,
        })
        .unwrap();
    let cases = [
        (
            "expired",
            s.forge(
                header.clone(),
                claims(json!({"exp": now - 400, "nbf": now - 4000})),
            ),
        ),
        (
            "wrong audience",
            s.mint(
                tid,
                &["Software.Read.All"],
                &[],
                "https://graph.microsoft.com",
                600,
                0,
            ),
        ),
        (
            "wrong issuer",
            s.forge(
                header.clone(),
                claims(json!({"iss": format!("https://sts.windows.net/{tid}/")})),
            ),
        ),
        (
            "other tenant's issuer",
            s.forge(
                header.clone(),
                claims(json!({"tid": "b0000000-0000-0000-0000-00000000000e"})),
            ),
        ),
        (
            "no tid",
            s.forge(header.clone(), claims(json!({"tid": null}))),
        ),
        ("signed by another key", foreign),
        (
            "alg none",
            s.forge(json!({"alg": "none", "typ": "JWT"}), claims(json!({}))),
        ),
        ("garbage", "not.a.token".to_string()),
    ];
    for (name, token) in cases {
        let r = s.get("/api/Software/microsoft-_-windows_10/getmissingkbs", &token);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{name}"
        );
        let msg = assert_error(r, StatusCode::UNAUTHORIZED, "Unauthorized");
        assert!(
            !msg.contains(&token),
            "{name}: the message echoes the token"
        );
    }
}

#[test]
fn tenants_see_only_their_own_machines() {
    let s = server();
    let a = "a0000000-0000-0000-0000-0000000000f1";
    let b = "a0000000-0000-0000-0000-0000000000f2";
    // Same machine ids in both tenants.
    s.ingest(
        a,
        &[
            snapshot("m1", "Windows10", "10.0.19045.3570", 0),
            snapshot("m2", "Windows10", "10.0.19045.3570", 0),
        ],
    );
    s.ingest(
        b,
        &[snapshot("m1", "WindowsServer2019", "10.0.17763.4974", 0)],
    );
    assert_eq!(
        body(s.missing(a, "microsoft-_-windows_10"))["value"][0]["machineMissedOn"],
        2
    );
    assert_error(
        s.missing(b, "microsoft-_-windows_10"),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
    assert_error(
        s.missing(a, "microsoft-_-windows_server_2019"),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
    let vb = body(s.missing(b, "microsoft-_-windows_server_2019"));
    assert_eq!(vb["value"].as_array().unwrap().len(), 1);
    assert_eq!(vb["value"][0]["id"], "5034127");
    assert_eq!(vb["value"][0]["machineMissedOn"], 1);
    // Tenant B deleting "m1" deletes its own machine, not A's.
    let r = client()
        .delete(s.url("/api/inventory/machines/m1"))
        .bearer_auth(s.token(b, &["Machine.ReadWrite.All"]))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        body(s.missing(a, "microsoft-_-windows_10"))["value"][0]["machineMissedOn"],
        2
    );
    assert_error(
        s.missing(b, "microsoft-_-windows_server_2019"),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
}

#[test]
fn counts_follow_replacement_deletion_and_retention() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000a1";
    let writer = s.token(tid, &["Machine.ReadWrite.All"]);
    let put = |id: &str, v: &Value| {
        client()
            .put(s.url(&format!("/api/inventory/machines/{id}")))
            .bearer_auth(&writer)
            .json(v)
            .send()
            .unwrap()
    };
    assert_eq!(
        put("p1", &snapshot("p1", "Windows10", "10.0.19045.3570", 0)).status(),
        StatusCode::OK
    );
    // Same again (idempotent), plus a second machine.
    assert_eq!(
        put("p1", &snapshot("p1", "Windows10", "10.0.19045.3570", 0)).status(),
        StatusCode::OK
    );
    let mut no_id = snapshot("x", "Windows10", "10.0.19045.3693", 0);
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(put("p2", &no_id).status(), StatusCode::OK);
    assert_eq!(
        body(s.missing(tid, "microsoft-_-windows_10"))["value"][0]["machineMissedOn"],
        2
    );
    // p1 is patched: one machine left.
    assert_eq!(
        put("p1", &snapshot("p1", "Windows10", "10.0.19045.3930", 0)).status(),
        StatusCode::OK
    );
    assert_eq!(
        body(s.missing(tid, "microsoft-_-windows_10"))["value"][0]["machineMissedOn"],
        1
    );
    // p2 was last seen 31 days ago: it counts nowhere.
    assert_eq!(
        put("p2", &snapshot("p2", "Windows10", "10.0.19045.3693", 31)).status(),
        StatusCode::OK
    );
    assert_eq!(
        body(s.missing(tid, "microsoft-_-windows_10"))["value"],
        json!([])
    );
    // Deleting p1 leaves no active machine with Windows 10.
    let r = client()
        .delete(s.url("/api/inventory/machines/p1"))
        .bearer_auth(&writer)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(
        s.missing(tid, "microsoft-_-windows_10"),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
    let r = client()
        .delete(s.url("/api/inventory/machines/p1"))
        .bearer_auth(&writer)
        .send()
        .unwrap();
    assert_eq!(
        assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound"),
        "Machine p1 was not found"
    );
    // A mismatched id is refused.
    let r = put("p3", &snapshot("p4", "Windows10", "10.0.19045.3570", 0));
    assert_error(r, StatusCode::BAD_REQUEST, "InvalidRequestBody");
}

#[test]
fn a_kept_answer_names_the_host_each_call_came_to() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000aa";
    s.ingest(tid, &[snapshot("h1", "Windows10", "10.0.19045.3570", 0)]);
    let context = |host: Option<&str>| {
        let mut r = client()
            .get(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
            .bearer_auth(s.token(tid, &["Software.Read.All"]));
        if let Some(h) = host {
            r = r.header("host", h);
        }
        let v = body(r.send().unwrap());
        (v["@odata.context"].clone(), v["value"].clone())
    };
    let suffix = "/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)";
    let (first, value) = context(None);
    assert_eq!(first, json!(format!("{}{suffix}", s.base)));
    assert_eq!(value[0]["machineMissedOn"], 1);
    // The answer is kept, but not the host it was first asked under.
    let (other, again) = context(Some("kbgap.contoso.test"));
    assert_eq!(other, json!(format!("http://kbgap.contoso.test{suffix}")));
    assert_eq!(again, value);
}

#[test]
fn answers_follow_writes_another_process_makes_to_the_store() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000a9";
    s.ingest(tid, &[snapshot("w1", "Windows10", "10.0.19045.3570", 0)]);
    let count =
        || body(s.missing(tid, "microsoft-_-windows_10"))["value"][0]["machineMissedOn"].clone();
    // The answer is now computed and kept.
    assert_eq!(count(), 1);
    assert_eq!(count(), 1);
    // Another process (`kbgap inventory import`, another replica) writes to the same store.
    let other = SqliteStore::open(s.dir.path()).unwrap();
    let catalog = CatalogHolder::load(&other).unwrap();
    let snapshot = kbgap_inventory::parse_snapshot(
        snapshot("w2", "Windows10", "10.0.19045.3570", 0)
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    kbgap_service::ingest(
        &other,
        &catalog,
        &tenant(tid),
        &[snapshot],
        OffsetDateTime::now_utc(),
        Retention::default(),
    )
    .unwrap();
    // The change poll (1 s by default) drops the kept answer.
    let started = std::time::Instant::now();
    while count() != 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the answer still counts {} machine(s) 10 s after another process wrote",
            count()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn bad_ingestion_is_rejected_and_stores_nothing() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000b1";
    let writer = s.token(tid, &["Machine.ReadWrite.All"]);
    let post = |body: String, ct: &str| {
        client()
            .post(s.url("/api/inventory/machines"))
            .bearer_auth(&writer)
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap()
    };
    let good = snapshot("g1", "Windows10", "10.0.19045.3570", 0);
    let mut bad = snapshot("g2", "Windows10", "10.0.19045.3570", 0);
    bad["osBuild"] = json!("ten");
    let r = post(json!([good, bad]).to_string(), "application/json");
    let msg = assert_error(r, StatusCode::BAD_REQUEST, "InvalidRequestBody");
    assert!(msg.starts_with("[1].osBuild:"), "{msg}");
    // NDJSON with the bad entry second: nothing stored either.
    let r = post(format!("{good}\n{bad}\n"), "application/x-ndjson");
    assert!(
        assert_error(r, StatusCode::BAD_REQUEST, "InvalidRequestBody").starts_with("[1].osBuild:")
    );
    assert_error(
        s.missing(tid, "microsoft-_-windows_10"),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
    // The batch limit of this server is 5.
    let six: Vec<Value> = (0..6)
        .map(|i| snapshot(&format!("b{i}"), "Windows10", "10.0.19045.3570", 0))
        .collect();
    let r = post(json!(six).to_string(), "application/json");
    assert_eq!(
        assert_error(r, StatusCode::BAD_REQUEST, "MaximumBatchSizeExceeded"),
        "Maximum batch size exceeded. Received: 6, allowed: 5."
    );
    let r = post(good.to_string(), "text/plain");
    assert_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    );
    // 600 copies: ~80 KB whatever the length of `lastSeen` (500 could land just under 64 KiB).
    let r = post(
        format!("[{}]", vec![good.to_string(); 600].join(",")),
        "application/json",
    );
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge");
    // Reading is not writing.
    let r = client()
        .post(s.url("/api/inventory/machines"))
        .bearer_auth(s.token(tid, &["Software.Read.All"]))
        .json(&json!([good]))
        .send()
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "Forbidden");
    assert_error(
        s.missing(tid, "microsoft-_-windows_10"),
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
}

#[test]
fn operations_endpoints_and_development_issuer() {
    let s = server();
    let r = client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client().get(s.url("/readyz")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["status"], "ready");
    let jwks = body(client().get(s.url("/discovery/v2.0/keys")).send().unwrap());
    assert_eq!(jwks["keys"][0]["kid"], s.dev.kid());
    let tid = "a0000000-0000-0000-0000-0000000000c1";
    let d = body(
        client()
            .get(s.url(&format!("/{tid}/v2.0/.well-known/openid-configuration")))
            .send()
            .unwrap(),
    );
    assert_eq!(
        d["issuer"],
        issuer_for(kbgap_auth::DEV_ISSUER_TEMPLATE, &tenant(tid))
    );
    assert_eq!(d["jwks_uri"], format!("{}/discovery/v2.0/keys", s.base));
    let o = body(client().get(s.url("/openapi.json")).send().unwrap());
    // Every API route is described.
    for path in [
        "/api/Software/{Id}/getmissingkbs",
        "/api/Software/{Id}/indeterminatemachines",
        "/api/Software/{Id}/endofservicingmachines",
        "/api/Software",
        "/api/Software/{Id}",
        "/api/machines",
        "/api/machines/{machineId}",
        "/api/machines/{machineId}/software",
        "/api/machines/{machineId}/getmissingkbs",
        "/api/machines/{machineId}/missingkbs/explain",
        "/api/inventory/machines",
        "/api/inventory/machines/{machineId}",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        assert!(
            o["paths"][path]["get"].is_object()
                || o["paths"][path]["put"].is_object()
                || o["paths"][path]["post"].is_object(),
            "{path}"
        );
    }
    assert_eq!(o["paths"].as_object().unwrap().len(), 15);
    assert_eq!(
        o["components"]["schemas"]["Machine"]["properties"]
            .as_object()
            .unwrap()
            .len(),
        22
    );
}

#[test]
fn case_19_the_documentation_example_over_http() {
    static S: OnceLock<TestServer> = OnceLock::new();
    let s = S.get_or_init(|| start(time::macros::date!(2020 - 03 - 31)));
    let tid = "a0000000-0000-0000-0000-0000000000d1";
    let mut m = snapshot("w1909", "Windows10", "10.0.18363", 0);
    m["software"] = json!([{"id": "microsoft-_-edge"}]);
    m["installedKbs"] = json!(["KB4532693"]);
    m["installedKbsComplete"] = json!(true);
    s.ingest(tid, &[m]);
    let b = body(s.missing(tid, "microsoft-_-edge"));
    assert_eq!(
        b["value"],
        json!([{"id": "4540673", "name": "March 2020 Security Updates", "productsNames": ["edge"],
                "url": "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673",
                "machineMissedOn": 1, "cveAddressed": 14}])
    );
}

#[test]
fn explain_shows_the_deciding_evidence_and_stays_in_the_tenant() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000e1";
    let mut m = snapshot("ex-1", "Windows10", "10.0.19045.3570", 0);
    m["installedKbs"] = json!(["KB5031356"]);
    let mut blind = snapshot("ex-2", "Windows11", "10.0.22631", 0);
    blind["installedKbs"] = json!([]);
    s.ingest(tid, &[m, blind]);
    let reader = s.token(tid, &["Software.Read.All"]);
    let b = body(s.get("/api/machines/ex-1/missingkbs/explain", &reader));
    assert_eq!(b["machineId"], "ex-1");
    assert_eq!(b["os"]["build"], 19045);
    assert_eq!(b["os"]["revision"], 3570);
    assert_eq!(
        b["missing"],
        json!([{"software": "microsoft-_-windows_10", "kbs": ["5034122"]}])
    );
    let kbs = b["kbs"].as_array().unwrap();
    let find = |id: &str| kbs.iter().find(|k| k["kb"] == id).unwrap().clone();
    let jan = find("5034122");
    assert_eq!(jan["satisfied"], "no");
    assert_eq!(jan["rule"], "build");
    assert_eq!(jan["fixedRevision"], 3930);
    assert_eq!(jan["machineRevision"], 3570);
    assert_eq!(jan["name"], "January 2024 Security Updates");
    assert_eq!(
        jan["outcomes"],
        json!([{"software": "microsoft-_-windows_10", "outcome": "missing"}])
    );
    assert!(jan["products"]
        .as_array()
        .unwrap()
        .contains(&json!("Windows 10 Version 22H2 for x64-based Systems")));
    let dec = find("5033372");
    assert_eq!(
        dec["outcomes"],
        json!([{"software": "microsoft-_-windows_10", "outcome": "superseded", "by": "5034122"}])
    );
    let oct = find("5031356");
    assert_eq!(
        (oct["satisfied"].clone(), oct["rule"].clone()),
        (json!("yes"), json!("build"))
    );
    // One KB only.
    let b = body(s.get(
        "/api/machines/ex-1/missingkbs/explain?kb=KB5034122",
        &reader,
    ));
    assert_eq!(b["kbs"].as_array().unwrap().len(), 1);
    // The machine without revision or KB list is indeterminate.
    let b = body(s.get("/api/machines/ex-2/missingkbs/explain", &reader));
    assert_eq!(b["indeterminate"], json!(["microsoft-_-windows_11"]));
    assert_eq!(b["kbs"][0]["satisfied"], "unknown");
    assert!(b["kbs"][0]["unknownBecause"]
        .as_str()
        .unwrap()
        .contains("no build revision"));
    let b = body(s.get(
        "/api/Software/microsoft-_-windows_11/indeterminatemachines",
        &reader,
    ));
    assert_eq!(
        b,
        json!({"software": "microsoft-_-windows_11", "machineCount": 1, "machines": ["ex-2"]})
    );
    // Another tenant's machine is not found, never forbidden.
    let other = s.token(
        "a0000000-0000-0000-0000-0000000000e2",
        &["Software.Read.All"],
    );
    let r = s.get("/api/machines/ex-1/missingkbs/explain", &other);
    assert_eq!(
        assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound"),
        "Machine ex-1 was not found"
    );
    let r = s.get(
        "/api/machines/ex-1/missingkbs/explain",
        &s.token(tid, &["Machine.ReadWrite.All"]),
    );
    assert_error(r, StatusCode::FORBIDDEN, "Forbidden");
}

/// Every object key in a JSON value, at any depth.
fn json_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                json_keys(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| json_keys(v, out)),
        _ => {}
    }
}

#[test]
fn explanations_match_ids_ignoring_case_are_camel_case_and_spell_repair_kinds_as_json() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000e3";
    // Windows 11 21H2 x64 below November 2023's KB5032192, whose revised 2023-Oct citation
    // for Windows 10 21H2 carries a Windows 11 build: a repair the explanation names.
    let m = snapshot("Ex-Case-1", "Windows11", "10.0.22000.2538", 0);
    let mut a = snapshot("Dup-1", "Windows10", "10.0.19045.3570", 0);
    a["installedKbs"] = json!(["KB5031356"]);
    let b = snapshot("dup-1", "Windows10", "10.0.19045.3570", 0);
    s.ingest(tid, &[m, a, b]);
    let reader = s.token(tid, &["Software.Read.All"]);

    let b = body(s.get(
        "/api/machines/EX-CASE-1/missingkbs/explain?kb=KB5032192",
        &reader,
    ));
    assert_eq!(b["machineId"], "Ex-Case-1");
    let mut keys = Vec::new();
    json_keys(&b, &mut keys);
    for k in [
        "installType",
        "hotpatchEnrolled",
        "bySoftware",
        "unknownBecause",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
    }
    let odd: Vec<&String> = keys
        .iter()
        .filter(|k| k.contains('_') || k.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");

    // The repairs the catalog makes for KB5032192, with each kind spelled as its JSON name.
    let catalog = kbgap_service::compile(documents(), Some(time::macros::date!(2024 - 01 - 31)));
    let kb = kbgap_domain::KbId::from_number(5032192).unwrap();
    let expected: Vec<Value> = catalog
        .repairs()
        .iter()
        .filter(|r| r.kb == kb)
        .map(|r| {
            let kind = serde_json::to_value(r.kind).unwrap();
            json!(format!(
                "{} ({}): {}",
                kind.as_str().unwrap(),
                r.product_name,
                r.evidence
            ))
        })
        .collect();
    assert_eq!(expected.len(), 1);
    assert!(expected[0]
        .as_str()
        .unwrap()
        .starts_with("wrongBranchFixedBuild (Windows 10 Version 21H2 for 32-bit Systems)"));
    assert_eq!(b["kbs"].as_array().unwrap().len(), 1);
    assert_eq!(b["kbs"][0]["repairs"], json!(expected));

    // Two machines whose ids differ only in case: the exact id finds one, another spelling
    // is refused naming both.
    let exact = body(s.get("/api/machines/Dup-1/missingkbs/explain", &reader));
    assert_eq!(exact["machineId"], "Dup-1");
    let r = s.get("/api/machines/DUP-1/missingkbs/explain", &reader);
    assert_eq!(
        assert_error(r, StatusCode::BAD_REQUEST, "InvalidInput"),
        "Machine id DUP-1 matches several machines that differ only in case: Dup-1, dup-1."
    );
    // Another tenant still finds nothing, whatever the case.
    let other = s.token(
        "a0000000-0000-0000-0000-0000000000e4",
        &["Software.Read.All"],
    );
    let r = s.get("/api/machines/ex-case-1/missingkbs/explain", &other);
    assert_eq!(
        assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound"),
        "Machine ex-case-1 was not found"
    );
}

#[test]
fn machines_whose_edition_left_servicing_are_listed_with_their_last_update() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000e7";
    // Windows 10 1809 at August 2023's revision: Pro left servicing on 2020-11-10 with
    // November 2020's KB4586793; Enterprise LTSC 2019 is serviced until 2029 and misses
    // January 2024's KB5034127; without an edition the machine counts as the editions still
    // serviced do.
    let mut pro = snapshot("eos-pro", "Windows10", "10.0.17763.4737", 0);
    pro["osEdition"] = json!("Microsoft Windows 10 Pro");
    pro["software"] = json!([{"id": "microsoft-_-internet_explorer", "version": "11"}]);
    let mut ltsc = snapshot("eos-ltsc", "Windows10", "10.0.17763.4737", 0);
    ltsc["osEdition"] = json!("Enterprise LTSC");
    let unnamed = snapshot("eos-unnamed", "Windows10", "10.0.17763.4737", 0);
    s.ingest(tid, &[pro.clone(), ltsc, unnamed]);
    s.ingest("a0000000-0000-0000-0000-0000000000e8", &[pro]);
    let reader = s.token(tid, &["Software.Read.All"]);
    let b = body(s.get(
        "/api/Software/microsoft-_-windows_10/endofservicingmachines",
        &reader,
    ));
    assert_eq!(
        b,
        json!({"software": "microsoft-_-windows_10", "machineCount": 1, "machines": [
            {"id": "eos-pro", "version": "Windows 10, version 1809", "edition": "homePro",
             "since": "2020-11-10", "esuUntil": null, "lastUpdate": "4586793"}]})
    );
    // The software the machine hosts lists it too; the MDE spelling of the path works.
    let b = body(s.get(
        "/api/v1.0/software/microsoft-_-internet_explorer/EndOfServicingMachines",
        &reader,
    ));
    assert_eq!(b["machineCount"], 1);
    // The count follows the editions: only the two still serviced miss January's update.
    let b = body(s.missing(tid, "microsoft-_-windows_10"));
    let ids: Vec<(&str, u64)> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap(),
                k["machineMissedOn"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ids, vec![("5034127", 2)]);
    let b = body(s.get("/api/machines/eos-pro/missingkbs/explain", &reader));
    assert_eq!(
        b["endOfServicing"],
        json!({"status": "ended", "version": "Windows 10, version 1809", "edition": "homePro",
               "since": "2020-11-10", "esuUntil": null, "lastUpdate": "4586793"})
    );
    assert_eq!(b["os"]["edition"], "homePro");
    // An edition name that is too long is refused where it is.
    let mut bad = snapshot("eos-bad", "Windows10", "10.0.17763.4737", 0);
    bad["osEdition"] = json!("x".repeat(300));
    let r = client()
        .put(s.url("/api/inventory/machines/eos-bad"))
        .bearer_auth(s.token(tid, &["Machine.ReadWrite.All"]))
        .json(&bad)
        .send()
        .unwrap();
    let msg = assert_error(r, StatusCode::BAD_REQUEST, "InvalidRequestBody");
    assert!(msg.contains("osEdition"), "{msg}");
    // Bad ids and missing permissions are refused as on the other software routes.
    let r = s.get("/api/Software/abc%zz/endofservicingmachines", &reader);
    assert_error(r, StatusCode::BAD_REQUEST, "InvalidInput");
    let r = s.get(
        "/api/Software/microsoft-_-windows_10/endofservicingmachines",
        &s.token(tid, &["Machine.ReadWrite.All"]),
    );
    assert_error(r, StatusCode::FORBIDDEN, "Forbidden");
}

#[test]
fn one_machines_missing_kbs_are_mde_s_collection_and_add_up_to_the_software_counts() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-0000000000e9";
    // Two Windows 10 22H2 machines at October 2023's revision and one at January 2024's:
    // the first two miss January 2024's KB5034122 (34 CVEs for Windows 10 in that document).
    s.ingest(
        tid,
        &[
            snapshot("MK-1", "Windows10", "10.0.19045.3570", 0),
            snapshot("mk-2", "Windows10", "10.0.19045.3570", 0),
            snapshot("mk-3", "Windows10", "10.0.19045.3930", 0),
        ],
    );
    let reader = s.token(tid, &["Software.Read.All"]);
    let r = s.get("/api/v1.0/Machines/mk-1/GetMissingKbs", &reader);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
    );
    let text = r.text().unwrap();
    // Fields in MDE's order.
    let order: Vec<usize> = [
        "\"@odata.context\"",
        "\"id\"",
        "\"name\"",
        "\"productsNames\"",
        "\"url\"",
        "\"machineMissedOn\"",
        "\"cveAddressed\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({
            "@odata.context": format!("{}/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)", s.base),
            "value": [{"id": "5034122", "name": "January 2024 Security Updates",
                       "productsNames": ["windows_10"], "url": format!("{WIN10_KB_URL}5034122"),
                       "machineMissedOn": 1, "cveAddressed": 34}]
        })
    );
    // The machines' answers add up to the software's counts.
    let per_software = body(s.missing(tid, "microsoft-_-windows_10"));
    let mut added: std::collections::BTreeMap<String, u64> = Default::default();
    for id in ["mk-1", "mk-2", "mk-3"] {
        let b = body(s.get(&format!("/api/machines/{id}/getmissingkbs"), &reader));
        for k in b["value"].as_array().unwrap() {
            *added
                .entry(k["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let counted: std::collections::BTreeMap<String, u64> = per_software["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                k["machineMissedOn"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(added, counted);
    assert_eq!(counted.get("5034122"), Some(&2));
    // A machine with nothing missing is an empty collection.
    let b = body(s.get("/api/machines/mk-3/getmissingkbs", &reader));
    assert_eq!(b["value"], json!([]));
    // Another tenant's machine is not found; OData options are refused; a delegated token is
    // refused (MDE documents the application permission only).
    let other = s.token(
        "a0000000-0000-0000-0000-0000000000ea",
        &["Software.Read.All"],
    );
    let r = s.get("/api/machines/mk-1/getmissingkbs", &other);
    assert_eq!(
        assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound"),
        "Machine mk-1 was not found"
    );
    let r = s.get("/api/machines/mk-1/getmissingkbs?$top=1", &reader);
    assert_error(r, StatusCode::BAD_REQUEST, "ODataError");
    let delegated = s.mint(tid, &[], &["Software.Read"], MDE_AUD, 3600, 0);
    let r = s.get("/api/machines/mk-1/getmissingkbs", &delegated);
    assert_error(r, StatusCode::FORBIDDEN, "Forbidden");
    // The software routes agree on what is not there.
    for path in [
        "/api/Software/contoso-_-nothing/getmissingkbs",
        "/api/Software/contoso-_-nothing/indeterminatemachines",
        "/api/Software/contoso-_-nothing/endofservicingmachines",
    ] {
        let r = s.get(path, &reader);
        assert_eq!(
            assert_error(r, StatusCode::NOT_FOUND, "ResourceNotFound"),
            "Software contoso-_-nothing was not found"
        );
    }
}

/// A snapshot with the fields the machine entity shows.
fn described(
    id: &str,
    platform: &str,
    build: &str,
    days_ago: i64,
    dns: &str,
    group: &str,
) -> Value {
    let mut v = snapshot(id, platform, build, days_ago);
    v["computerDnsName"] = json!(dns);
    v["deviceGroup"] = json!(group);
    v
}

fn ids(b: &Value) -> Vec<String> {
    b["value"]
        .as_array()
        .unwrap_or_else(|| panic!("{b}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_machine_list_is_mde_s_entity_collection_filtered_and_paged() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-000000000101";
    s.ingest(
        tid,
        &[
            described(
                "pc-03",
                "Windows10",
                "10.0.19045.3570",
                0,
                "pc-03.contoso.com",
                "Finance",
            ),
            described(
                "PC-01",
                "Windows11",
                "10.0.22631.3007",
                1,
                "PC-01.contoso.com",
                "Finance",
            ),
            described(
                "srv-02",
                "WindowsServer2022",
                "10.0.20348.2227",
                2,
                "srv-02.contoso.com",
                "Servers",
            ),
            described(
                "old-04",
                "Windows10",
                "10.0.19045.3570",
                40,
                "old-04.contoso.com",
                "Finance",
            ),
            snapshot("bare-05", "Windows10", "10.0.19045", 0),
        ],
    );
    let reader = s.token(tid, &["Machine.Read.All"]);
    // Byte order of ids: "PC-01" < "bare-05" < "old-04" < "pc-03" < "srv-02"; pages of 3.
    let r = s.get("/api/machines", &reader);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
    );
    let text = r.text().unwrap();
    let first: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ids(&first), ["PC-01", "bare-05", "old-04"]);
    assert_eq!(
        first["@odata.context"],
        format!("{}/api/$metadata#Machines", s.base)
    );
    let next = format!("{}/api/machines?$skip=3", s.base);
    assert_eq!(first["@odata.nextLink"], next.as_str());
    // Fields in MDE's order, the link after the value.
    let order: Vec<usize> = [
        "\"@odata.context\"",
        "\"value\"",
        "\"id\"",
        "\"computerDnsName\"",
        "\"firstSeen\"",
        "\"lastSeen\"",
        "\"osPlatform\"",
        "\"osVersion\"",
        "\"osProcessor\"",
        "\"version\"",
        "\"lastIpAddress\"",
        "\"lastExternalIpAddress\"",
        "\"osBuild\"",
        "\"healthStatus\"",
        "\"deviceValue\"",
        "\"rbacGroupId\"",
        "\"rbacGroupName\"",
        "\"riskScore\"",
        "\"exposureLevel\"",
        "\"isAadJoined\"",
        "\"aadDeviceId\"",
        "\"machineTags\"",
        "\"onboardingStatus\"",
        "\"osArchitecture\"",
        "\"@odata.nextLink\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    // What kbgap knows of a machine, and null for what only Defender's sensor could tell.
    let pc01 = &first["value"][0];
    let seen = pc01["lastSeen"].as_str().unwrap();
    assert_eq!(
        pc01,
        &json!({
            "id": "PC-01", "computerDnsName": "PC-01.contoso.com", "firstSeen": null,
            "lastSeen": seen, "osPlatform": "Windows11", "osVersion": "10.0.22631.3007",
            "osProcessor": "x64", "version": "23H2", "lastIpAddress": null,
            "lastExternalIpAddress": null, "osBuild": 22631, "healthStatus": "Active",
            "deviceValue": null, "rbacGroupId": null, "rbacGroupName": "Finance",
            "riskScore": null, "exposureLevel": null, "isAadJoined": null, "aadDeviceId": null,
            "machineTags": [], "onboardingStatus": null, "osArchitecture": "64-bit"
        })
    );
    // Last seen 40 days ago, beyond the 30-day retention: listed, inactive.
    assert_eq!(first["value"][2]["healthStatus"], "Inactive");
    assert_eq!(first["value"][1]["computerDnsName"], Value::Null);
    assert_eq!(first["value"][1]["version"], "22H2");
    // The next page, and the last one has no link.
    let second = body(s.get(&next[s.base.len()..], &reader));
    assert_eq!(ids(&second), ["pc-03", "srv-02"]);
    assert_eq!(second["@odata.nextLink"], Value::Null);
    assert_eq!(second["value"][1]["version"], Value::Null);
    // $top and $skip page for the client; a $top above the page size is served in pages.
    let page = |q: &str| body(s.get(&format!("/api/machines?{q}"), &reader));
    let b = page("$top=2&$skip=1");
    assert_eq!(ids(&b), ["bare-05", "old-04"]);
    assert_eq!(b["@odata.nextLink"], Value::Null);
    let b = page("$top=4");
    assert_eq!(ids(&b), ["PC-01", "bare-05", "old-04"]);
    assert_eq!(
        b["@odata.nextLink"],
        format!("{}/api/machines?$top=1&$skip=3", s.base)
    );
    assert_eq!(ids(&page("$top=1&$skip=3")), ["pc-03"]);
    assert_eq!(ids(&page("$skip=10")), Vec::<String>::new());
    // $filter on the properties MDE documents, strings ignoring case.
    assert_eq!(ids(&page("$filter=healthStatus+eq+'Inactive'")), ["old-04"]);
    assert_eq!(
        ids(&page(
            "$filter=startswith(computerDnsName,'PC-') and osPlatform eq 'Windows10'"
        )),
        ["pc-03"]
    );
    let day_ago = (OffsetDateTime::now_utc() - time::Duration::hours(36))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        ids(&page(&format!("$filter=lastSeen gt {day_ago}"))),
        ["PC-01", "bare-05", "pc-03"]
    );
    assert_eq!(
        ids(&page("$filter=riskScore eq 'High'")),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&page("$filter=id eq 'srv-02' or version eq '23H2'")),
        ["PC-01", "srv-02"]
    );
    // A filtered list pages too, and its link keeps the filter.
    let b = page("$filter=osPlatform%20eq%20'Windows10'");
    assert_eq!(ids(&b), ["bare-05", "old-04", "pc-03"]);
    assert_eq!(b["@odata.nextLink"], Value::Null);
    let b = page("$filter=osPlatform ne 'x'");
    assert_eq!(
        b["@odata.nextLink"],
        format!(
            "{}/api/machines?$filter=osPlatform%20ne%20%27x%27&$skip=3",
            s.base
        )
    );
    assert_eq!(
        ids(&page("$filter=osPlatform%20ne%20%27x%27&$skip=3")),
        ["pc-03", "srv-02"]
    );
    // What the list cannot do is an OData error naming it.
    let refused = |q: &str| {
        assert_error(
            s.get(&format!("/api/machines?{q}"), &reader),
            StatusCode::BAD_REQUEST,
            "ODataError",
        )
    };
    assert_eq!(
        refused("$top=10001"),
        "The query specified in the URI is not valid. The limit of '10000' for Top query has been exceeded. The value from the incoming request is '10001'."
    );
    assert_eq!(
        refused("$orderby=lastSeen"),
        "The query specified in the URI is not valid. The query option '$orderby' is not supported on this endpoint."
    );
    assert_eq!(
        refused("$filter=osBuild eq 19045"),
        "The query specified in the URI is not valid. The property 'osBuild' cannot be used in the $filter query option."
    );
    assert_eq!(
        refused("$top=-1"),
        "The query specified in the URI is not valid. The value '-1' of $top is not a whole number of 0 or more."
    );
    assert_eq!(
        refused("$top=1&$top=2"),
        "The query specified in the URI is not valid. The query option '$top' was specified more than once; it may appear only once."
    );
    // Permissions: either machine role, or a delegated machine scope.
    let writer = s.token(tid, &["Machine.ReadWrite.All"]);
    assert_eq!(s.get("/api/machines", &writer).status(), StatusCode::OK);
    let delegated = s.mint(tid, &[], &["Machine.Read"], MDE_AUD, 3600, 0);
    assert_eq!(
        s.get("/api/v1.0/Machines", &delegated).status(),
        StatusCode::OK
    );
    assert_eq!(
        assert_error(
            s.get("/api/machines", &s.token(tid, &["Software.Read.All"])),
            StatusCode::FORBIDDEN,
            "Forbidden"
        ),
        "Missing application roles. API required roles: Machine.Read.All, application roles: Software.Read.All."
    );
    // Another tenant sees none of them.
    let other = s.token(
        "a0000000-0000-0000-0000-000000000102",
        &["Machine.Read.All"],
    );
    let b = body(s.get("/api/machines", &other));
    assert_eq!(b["value"], json!([]));
    assert_eq!(b["@odata.nextLink"], Value::Null);
}

#[test]
fn one_machine_is_mde_s_entity_found_by_id_ignoring_case() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-000000000103";
    s.ingest(
        tid,
        &[described(
            "WS-7",
            "Windows10",
            "10.0.19045.3570",
            0,
            "ws-7.contoso.com",
            "Lab",
        )],
    );
    let reader = s.token(tid, &["Machine.Read.All"]);
    let r = s.get("/API/Machines/ws-7", &reader);
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r);
    assert_eq!(
        b["@odata.context"],
        format!("{}/api/$metadata#Machines/$entity", s.base)
    );
    assert_eq!(b["id"], "WS-7");
    assert_eq!(b["rbacGroupName"], "Lab");
    assert_eq!(b["osBuild"], 19045);
    assert_eq!(b.as_object().unwrap().len(), 23, "{b}");
    // Another tenant's machine is as absent as one that never existed.
    let other = s.token(
        "a0000000-0000-0000-0000-000000000104",
        &["Machine.Read.All"],
    );
    for (token, id) in [(&other, "WS-7"), (&reader, "nobody")] {
        assert_eq!(
            assert_error(
                s.get(&format!("/api/machines/{id}"), token),
                StatusCode::NOT_FOUND,
                "ResourceNotFound"
            ),
            format!("Machine {id} was not found")
        );
    }
    assert_error(
        s.get("/api/machines/WS-7?$select=id", &reader),
        StatusCode::BAD_REQUEST,
        "ODataError",
    );
}

#[test]
fn the_software_inventory_is_mde_s_software_entity_and_agrees_with_getmissingkbs() {
    let s = server();
    let tid = "a0000000-0000-0000-0000-000000000105";
    // Two Windows 10 22H2 machines miss January 2024's KB5034122 (34 CVEs for Windows 10 in
    // that document); the third has it; the fourth is out of the retention window.
    s.ingest(
        tid,
        &[
            snapshot("sw-1", "Windows10", "10.0.19045.3570", 0),
            snapshot("sw-2", "Windows10", "10.0.19045.3570", 0),
            snapshot("sw-3", "Windows10", "10.0.19045.3930", 0),
            snapshot("sw-4", "Windows10", "10.0.19045.3570", 40),
        ],
    );
    let reader = s.token(tid, &["Software.Read.All"]);
    let w10 = json!({
        "id": "microsoft-_-windows_10", "name": "windows_10", "vendor": "microsoft",
        "weaknesses": 34, "publicExploit": null, "activeAlert": null, "exposedMachines": 2,
        "impactScore": null
    });
    let r = s.get("/api/v1.0/software", &reader);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
    );
    let text = r.text().unwrap();
    let order: Vec<usize> = [
        "\"@odata.context\"",
        "\"value\"",
        "\"id\"",
        "\"name\"",
        "\"vendor\"",
        "\"weaknesses\"",
        "\"publicExploit\"",
        "\"activeAlert\"",
        "\"exposedMachines\"",
        "\"impactScore\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"@odata.context": format!("{}/api/$metadata#Software", s.base), "value": [w10]})
    );
    // The figures agree with getmissingkbs: one KB missing, on two machines.
    let missing = body(s.missing(tid, "microsoft-_-windows_10"));
    assert_eq!(missing["value"][0]["cveAddressed"], w10["weaknesses"]);
    assert_eq!(
        missing["value"][0]["machineMissedOn"],
        w10["exposedMachines"]
    );
    // $filter on id, name and vendor; $top and $skip.
    let page = |q: &str| body(s.get(&format!("/api/Software?{q}"), &reader))["value"].clone();
    assert_eq!(page("$filter=vendor eq 'Microsoft'"), json!([w10]));
    assert_eq!(page("$filter=name eq 'edge'"), json!([]));
    assert_eq!(
        page("$filter=startswith(id,'microsoft-_-win')&$top=1"),
        json!([w10])
    );
    assert_eq!(page("$skip=1"), json!([]));
    assert_eq!(
        assert_error(
            s.get("/api/Software?$filter=weaknesses gt 0", &reader),
            StatusCode::BAD_REQUEST,
            "ODataError"
        ),
        "The query specified in the URI is not valid. The property 'weaknesses' cannot be used in the $filter query option."
    );
    // One software; unknown software is 404 as on every software route.
    let b = body(s.get("/api/Software/Microsoft-_-Windows_10", &reader));
    let mut entity = w10.clone();
    entity["@odata.context"] = json!(format!("{}/api/$metadata#Software/$entity", s.base));
    assert_eq!(b, entity);
    assert_eq!(
        assert_error(
            s.get("/api/Software/microsoft-_-edge", &reader),
            StatusCode::NOT_FOUND,
            "ResourceNotFound"
        ),
        "Software microsoft-_-edge was not found"
    );
    // The software of one machine, with the tenant's figures; a patched machine's software
    // is the same entity.
    for id in ["SW-1", "sw-3", "sw-4"] {
        let b = body(s.get(&format!("/api/machines/{id}/software"), &reader));
        assert_eq!(
            b,
            json!({"@odata.context": format!("{}/api/$metadata#Software", s.base), "value": [w10]}),
            "{id}"
        );
    }
    // Other tenants see nothing; the permission is Software.Read.All or Software.Read.
    let other = s.token(
        "a0000000-0000-0000-0000-000000000106",
        &["Software.Read.All"],
    );
    assert_eq!(page_of(s, "/api/Software", &other), json!([]));
    assert_eq!(
        assert_error(
            s.get("/api/machines/sw-1/software", &other),
            StatusCode::NOT_FOUND,
            "ResourceNotFound"
        ),
        "Machine sw-1 was not found"
    );
    let delegated = s.mint(tid, &[], &["Software.Read"], MDE_AUD, 3600, 0);
    assert_eq!(page_of(s, "/api/Software", &delegated), json!([w10]));
    assert_eq!(
        assert_error(
            s.get("/api/Software", &s.token(tid, &["Machine.Read.All"])),
            StatusCode::FORBIDDEN,
            "Forbidden"
        ),
        "Missing application roles. API required roles: Software.Read.All, application roles: Machine.Read.All."
    );
}

fn page_of(s: &TestServer, path: &str, token: &str) -> Value {
    body(s.get(path, token))["value"].clone()
}
