//! Two API servers sharing their rate limits through one real Redis (`KBGAP_TEST_REDIS_URL`,
//! default redis://127.0.0.1:6379), as replicas behind a load balancer would: each server on
//! 127.0.0.1:0 with its own runtime and Redis connection, one SQLite store, and a real HTTP
//! client calling both at once. Without Redis the test says that it skips, unless
//! `KBGAP_TEST_REQUIRE_SERVICES=1` (CI), where it fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kbgap_api::ratelimit::{Quota, RedisLimiter, RedisOptions};
use kbgap_api::{ApiConfig, Application, RateLimits, Security, Services};
use kbgap_auth::{issuer_for, DevIssuer, MintRequest, TokenCache, Validator, ValidatorConfig};
use kbgap_domain::TenantId;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::{SqliteStore, Store};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;

const JAN_2024: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf/2024-Jan.xml.zst"
);
const MDE_AUD: &str = "https://api.securitycenter.microsoft.com";
const MISSING_W10: &str = "/api/Software/microsoft-_-windows_10/getmissingkbs";
const GETMISSINGKBS_ROUTE: &str = "/api/Software/{id}/getmissingkbs";

fn redis_url() -> Option<String> {
    let url = std::env::var("KBGAP_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let answers = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok_and(|p| p == "PONG");
    if answers {
        return Some(url);
    }
    if std::env::var("KBGAP_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("Redis at {url} does not answer, and KBGAP_TEST_REQUIRE_SERVICES=1: the shared rate-limit test needs it");
    }
    eprintln!("skipping: Redis at {url} does not answer (set KBGAP_TEST_REQUIRE_SERVICES=1 to fail instead)");
    None
}

fn redis_time(c: &mut redis::Connection) -> Duration {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(c).expect("TIME");
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// One replica: the real server on its own runtime, limiting through Redis.
fn replica(
    dir: &std::path::Path,
    config: ApiConfig,
    redis_url: String,
    prefix: String,
) -> SocketAddr {
    let store = Arc::new(SqliteStore::open(dir).expect("store"));
    let catalog = Arc::new(CatalogHolder::load(store.as_ref()).expect("catalog"));
    let dev = DevIssuer::load_or_create(dir).expect("dev issuer");
    let validator = Validator::new(
        ValidatorConfig {
            issuer_templates: vec![kbgap_auth::DEV_ISSUER_TEMPLATE.to_string()],
            ..ValidatorConfig::default()
        },
        dev.key_source(),
    )
    .expect("validator");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let limiter = RedisLimiter::connect(
                &redis_url,
                RedisOptions {
                    key_prefix: prefix,
                    replicas: 2,
                    // Generous: a busy machine must not turn a slow answer into a local one.
                    timeout: Duration::from_secs(5),
                    ..RedisOptions::default()
                },
            )
            .await
            .expect("limiter");
            assert!(limiter.is_shared(), "Redis answered the ping");
            let app = Application::bind(
                config,
                Services {
                    store: store as Arc<dyn Store>,
                    catalog,
                    validator: Arc::new(validator),
                    dev_issuer: None,
                    security: Arc::new(Security::new(
                        Arc::new(limiter),
                        TokenCache::default(),
                        Vec::new(),
                    )),
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

/// Which server answered, the status, `Retry-After`, `request-id` and the body.
type Answer = (usize, StatusCode, Option<String>, Option<String>, Value);

fn token(dev: &DevIssuer, tid: &str, role: &str) -> String {
    let tenant = TenantId::parse(tid).expect("tenant");
    dev.mint(&MintRequest {
        issuer: issuer_for(kbgap_auth::DEV_ISSUER_TEMPLATE, &tenant),
        tenant,
        audience: MDE_AUD.into(),
        app_id: "22222222-3333-4444-5555-666666666666".into(),
        roles: vec![role.to_string()],
        scopes: Vec::new(),
        ttl: Duration::from_secs(3600),
        now_unix: OffsetDateTime::now_utc().unix_timestamp(),
    })
    .expect("token")
}

#[test]
fn two_servers_sharing_redis_answer_exactly_the_quota_and_429_for_the_rest() {
    let Some(url) = redis_url() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = SqliteStore::open(dir.path()).expect("store");
        let docs = kbgap_catalog::read_documents(&[JAN_2024]).expect("2024-Jan parses");
        kbgap_service::import_catalog(
            &store,
            &docs,
            None,
            OffsetDateTime::now_utc(),
            Retention::default(),
        )
        .expect("import");
    }
    let dev = DevIssuer::load_or_create(dir.path()).expect("dev issuer");
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        rate_limits: RateLimits {
            routes: vec![(
                GETMISSINGKBS_ROUTE.to_string(),
                Quota::per_minute_and_hour(7, 1000).expect("quota"),
            )],
            ..RateLimits::default()
        },
        ..ApiConfig::default()
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let prefix = format!("kbgap-test:api:{}:{nanos}:", std::process::id());
    let bases: Vec<String> = (0..2)
        .map(|_| replica(dir.path(), config.clone(), url.clone(), prefix.clone()))
        .map(|addr| format!("http://{addr}"))
        .collect();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let (a, b) = (
        "5ec00000-0000-0000-0000-00000000ed01",
        "5ec00000-0000-0000-0000-00000000ed02",
    );
    for tid in [a, b] {
        let machine = json!([{
            "id": "m1",
            "lastSeen": OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .expect("rfc3339"),
            "osPlatform": "Windows10",
            "osBuild": "10.0.19045.3570",
            "osArchitecture": "x64",
        }]);
        let r = client
            .post(format!("{}/api/inventory/machines", bases[0]))
            .bearer_auth(token(&dev, tid, "Machine.ReadWrite.All"))
            .json(&machine)
            .send()
            .expect("ingest");
        assert_eq!(r.status(), StatusCode::OK);
    }

    // Well inside one minute on Redis's clock, so all 20 calls meet the same window.
    let mut c = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .expect("redis");
    let left = 60 - redis_time(&mut c).as_secs() % 60;
    if left <= 10 {
        eprintln!("waiting {left} s for the minute to end");
        std::thread::sleep(Duration::from_secs(left) + Duration::from_millis(200));
    }
    let token_a = token(&dev, a, "Software.Read.All");
    let before = redis_time(&mut c);
    // 10 calls to each server, all at once.
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let (client, base, token) = (&client, &bases[i % 2], &token_a);
                s.spawn(move || {
                    let r = client
                        .get(format!("{base}{MISSING_W10}"))
                        .bearer_auth(token)
                        .send()
                        .expect("request");
                    let header = |name: &str| {
                        r.headers()
                            .get(name)
                            .map(|v| v.to_str().expect("ascii").to_string())
                    };
                    let (retry, id) = (header("retry-after"), header("request-id"));
                    let status = r.status();
                    let body: Value = r.json().expect("JSON body");
                    (i % 2, status, retry, id, body)
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().expect("call")).collect()
    });
    let after = redis_time(&mut c);
    assert_eq!(
        before.as_secs() / 60,
        after.as_secs() / 60,
        "the calls stayed in one minute"
    );
    // Retry-After is the wait to the end of the minute, rounded up: within these bounds.
    let end = Duration::from_secs((before.as_secs() / 60 + 1) * 60);
    let ceil = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let (earliest, latest) = (ceil(end - after), ceil(end - before));
    let mut ok = [0; 2];
    let mut refused = [0; 2];
    for (server, status, retry, id, body) in &answers {
        match *status {
            StatusCode::OK => {
                ok[*server] += 1;
                assert_eq!(body["value"][0]["machineMissedOn"], 1, "{body}");
                assert_eq!(retry, &None);
            }
            StatusCode::TOO_MANY_REQUESTS => {
                refused[*server] += 1;
                let secs: u64 = retry
                    .as_deref()
                    .expect("Retry-After")
                    .parse()
                    .expect("whole seconds");
                assert!(
                    (earliest.max(1)..=latest).contains(&secs),
                    "Retry-After {secs} not within {earliest}..={latest}"
                );
                assert_eq!(
                    body,
                    &json!({"error": {
                        "code": "TooManyRequests",
                        "message": format!(
                            "API calls quota exceeded! Maximum allowed 7 per 00:01:00 for the key \
                             Destination+TenantID+AppID. You can send requests again in {secs} seconds."
                        ),
                        "target": id.as_deref().expect("request-id"),
                    }})
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // One quota for both: 7 answered in all (each server alone would have answered 7 of its
    // own 10), the other 13 refused, and so at least 3 by each server.
    assert_eq!(ok[0] + ok[1], 7, "answered per server: {ok:?}");
    assert_eq!(refused[0] + refused[1], 13);
    assert!(refused[0] >= 3 && refused[1] >= 3, "{refused:?}");
    eprintln!("answered per server {ok:?}, refused per server {refused:?}");

    // The counter in Redis says the same.
    let tenant = TenantId::parse(a).expect("tenant");
    let name = format!(
        "{prefix}app|{GETMISSINGKBS_ROUTE}|{}|22222222-3333-4444-5555-666666666666:60:{}",
        tenant.as_str(),
        before.as_secs() / 60
    );
    let count: u64 = redis::cmd("GET").arg(&name).query(&mut c).expect("GET");
    assert_eq!(count, 7);

    // Another tenant has its own quota, on either server.
    let token_b = token(&dev, b, "Software.Read.All");
    for base in &bases {
        let r = client
            .get(format!("{base}{MISSING_W10}"))
            .bearer_auth(&token_b)
            .send()
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK);
    }
}
