//! `getmissingkbs` throughput against a static route of the same server, measured in the same
//! run with the same load generator: the real server on 127.0.0.1 (real catalog, embedded
//! store, bearer-token authentication, rate limiter on, the binary's allocator), a realistic
//! tenant, and 64 keep-alive HTTP/1.1 connections for a fixed time per phase.
//!
//! The tenant has 5,000 machines (Windows 10 22H2 and 21H2, Windows 11 23H2, Server 2019 and
//! 2022, at cumulative updates of 2023–2024). Each round runs four phases so machine noise
//! hits all alike: `/healthz`, `getmissingkbs`, `getmissingkbs?$top=1` (which authentication,
//! the rate limiter and the error envelope answer without the store), and `/healthz` sent the
//! same bearer token. Prints each round, then the median req/s and p50/p99 latency of each
//! route, the median of the rounds' ratios, and the in-process cost of each step of a call.
//!
//! With `--lb` the tenant is stored in a fresh PostgreSQL schema, served by two replicas (a
//! store each) behind HAProxy with `deploy/haproxy.cfg`, and `getmissingkbs` through the
//! balancer is measured beside one replica directly (needs `haproxy` on the PATH).
//!
//! `cargo run --release -p kbgap-bench --bin http_throughput [-- SECONDS_PER_ROUND ROUNDS] [--lb]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kbgap_api::ratelimit::{Limiter, Quota};
use kbgap_api::{ApiConfig, Application, RateLimits, Security, Services};
use kbgap_auth::{issuer_for, DevIssuer, MintRequest, Validator, ValidatorConfig};
use kbgap_bench::shared_data;
use kbgap_domain::TenantId;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::test_support::TestSchema;
use kbgap_store::{PostgresStore, SqliteStore, Store};
use serde_json::{json, Value};
use time::OffsetDateTime;

const CONNECTIONS: usize = 64;
const MACHINES: usize = 5000;
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SOFTWARE_PATH: &str = "/api/Software/microsoft-_-windows_10/getmissingkbs";
/// The same route with an OData option it refuses: authentication, the rate limiter and the
/// error envelope run, the store is never asked. Separates the security layers' cost from
/// the query's.
const REFUSED_PATH: &str = "/api/Software/microsoft-_-windows_10/getmissingkbs?$top=1";

/// Cumulative revisions of 2023–2024 per build (from Microsoft's update history).
const FLEET: &[(&str, u32, &[u32])] = &[
    (
        "Windows10",
        19045,
        &[
            2486, 2604, 2673, 2728, 2846, 2965, 3086, 3208, 3324, 3448, 3570, 3693, 3803, 3930,
            4046, 4170, 4291, 4412, 4529, 4651, 4780, 4894, 5011, 5131, 5247,
        ],
    ),
    (
        "Windows10",
        19044,
        &[
            2486, 2604, 2673, 2728, 2846, 2965, 3086, 3208, 3324, 3448, 3570, 3693, 3803, 3930,
        ],
    ),
    (
        "Windows11",
        22631,
        &[
            2428, 2506, 2715, 2861, 3007, 3155, 3296, 3447, 3593, 3737, 3880, 4037, 4169,
        ],
    ),
    (
        "WindowsServer2019",
        17763,
        &[
            4131, 4252, 4377, 4499, 4645, 4737, 4851, 4974, 5122, 5206, 5329, 5458, 5576,
        ],
    ),
    (
        "WindowsServer2022",
        20348,
        &[
            1487, 1547, 1607, 1668, 1726, 1787, 1850, 1906, 2031, 2113, 2159, 2227, 2322,
        ],
    ),
];

fn fleet() -> Vec<Value> {
    let seen = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (0..MACHINES)
        .map(|i| {
            // Deterministic spread: every OS and revision is represented, weighted to the
            // most common OS (Windows 10 22H2).
            let (platform, build, revs) = FLEET[if i % 10 < 5 { 0 } else { 1 + i % 4 }];
            let rev = revs[(i * 7919) % revs.len()];
            json!({
                "id": format!("pc-{i:05}"),
                "lastSeen": seen,
                "osPlatform": platform,
                "osBuild": format!("10.0.{build}.{rev}"),
                "osArchitecture": "x64",
            })
        })
        .collect()
}

struct Server {
    addr: std::net::SocketAddr,
    read_token: String,
    /// The same pieces the server uses, for the in-process cost breakdown.
    store: Arc<SqliteStore>,
    catalog: Arc<CatalogHolder>,
    validator: Arc<Validator>,
    _dir: tempfile::TempDir,
}

/// Imports the whole archive into `store` and ingests the tenant's fleet.
fn load_fleet(store: &dyn Store) -> Arc<CatalogHolder> {
    let t = Instant::now();
    let docs = kbgap_catalog::read_documents(&[shared_data().join("msrc-cvrf")])
        .expect("the MSRC archive in ../shared/data/msrc-cvrf");
    kbgap_service::import_catalog(
        store,
        &docs,
        None,
        OffsetDateTime::now_utc(),
        Retention::default(),
    )
    .expect("catalog import");
    eprintln!("catalog imported in {:.1}s", t.elapsed().as_secs_f64());
    let catalog = Arc::new(CatalogHolder::load(store).expect("catalog"));
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let t = Instant::now();
    let snapshots: Vec<kbgap_inventory::Snapshot> = fleet()
        .iter()
        .map(|v| kbgap_inventory::parse_snapshot(v.to_string().as_bytes()).expect("snapshot"))
        .collect();
    for chunk in snapshots.chunks(1000) {
        kbgap_service::ingest(
            store,
            &catalog,
            &tenant,
            chunk,
            OffsetDateTime::now_utc(),
            Retention::default(),
        )
        .expect("ingest");
    }
    eprintln!(
        "{MACHINES} machines ingested in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    catalog
}

/// The development issuer's validator and a `Software.Read.All` token of the tenant.
fn credentials(dir: &std::path::Path) -> (Arc<Validator>, String) {
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let dev = DevIssuer::load_or_create(dir).expect("dev issuer");
    let validator = Validator::new(
        ValidatorConfig {
            issuer_templates: vec![kbgap_auth::DEV_ISSUER_TEMPLATE.to_string()],
            ..ValidatorConfig::default()
        },
        dev.key_source(),
    )
    .expect("validator");
    let read_token = dev
        .mint(&MintRequest {
            issuer: issuer_for(kbgap_auth::DEV_ISSUER_TEMPLATE, &tenant),
            tenant,
            audience: "https://api.securitycenter.microsoft.com".into(),
            app_id: "bench".into(),
            roles: vec!["Software.Read.All".into()],
            scopes: Vec::new(),
            ttl: Duration::from_secs(3600),
            now_unix: OffsetDateTime::now_utc().unix_timestamp(),
        })
        .expect("token");
    (Arc::new(validator), read_token)
}

/// Serves `store` on 127.0.0.1 from a runtime of two threads of its own.
fn serve(
    store: Arc<dyn Store>,
    catalog: Arc<CatalogHolder>,
    validator: Arc<Validator>,
) -> std::net::SocketAddr {
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        // The limiter runs on every call, as in production, but never refuses here.
        rate_limits: RateLimits {
            default: Quota::per_minute_and_hour(1_000_000_000, 1_000_000_000).expect("quota"),
            ..RateLimits::default()
        },
        ..ApiConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let app = Application::bind(
                config,
                Services {
                    store,
                    catalog,
                    validator,
                    dev_issuer: None,
                    security: Arc::new(Security::default()),
                },
            )
            .await
            .expect("bind");
            tx.send(app.local_addr()).expect("address");
            app.run(std::future::pending()).await.expect("serve");
        });
    });
    rx.recv().expect("server address")
}

fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let catalog = load_fleet(store.as_ref());
    let (validator, read_token) = credentials(dir.path());
    let addr = serve(
        store.clone() as Arc<dyn Store>,
        catalog.clone(),
        validator.clone(),
    );
    Server {
        addr,
        read_token,
        store,
        catalog,
        validator,
        _dir: dir,
    }
}

/// Per-call cost of each step of an authenticated `getmissingkbs`, measured in-process on
/// one thread, so the HTTP figures can be read against them.
fn breakdown(server: &Server) {
    let per_call = |n: u32, mut f: Box<dyn FnMut() + '_>| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let software = kbgap_domain::SoftwareId::parse("microsoft-_-windows_10").expect("software");
    let catalog = server.catalog.current();
    let store = server.store.as_ref();
    let query = per_call(
        20_000,
        Box::new(|| {
            let rows = kbgap_service::missing_kbs(store, &catalog.catalog, &tenant, &software)
                .expect("query");
            std::hint::black_box(rows);
        }),
    );
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let verify = per_call(
        2_000,
        Box::new(|| {
            std::hint::black_box(
                server
                    .validator
                    .validate(&server.read_token, now)
                    .expect("valid"),
            );
        }),
    );
    let cache = kbgap_auth::TokenCache::default();
    let principal = Arc::new(
        server
            .validator
            .validate(&server.read_token, now)
            .expect("valid"),
    );
    cache.insert(&server.read_token, principal, now);
    let cached = per_call(
        200_000,
        Box::new(|| {
            std::hint::black_box(cache.get(&server.read_token, now).expect("cached"));
        }),
    );
    let limiter = kbgap_api::ratelimit::InProcessLimiter::default();
    let quota = Quota::per_minute_and_hour(1_000_000_000, 1_000_000_000).expect("quota");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let limit = per_call(
        200_000,
        Box::new(|| {
            let key = kbgap_api::ratelimit::RateKey::from_parts([
                "app",
                "/api/Software/{id}/getmissingkbs",
                TENANT,
                "bench",
            ]);
            std::hint::black_box(rt.block_on(limiter.acquire(&key, &quota)).expect("limiter"));
        }),
    );
    println!(
        "in-process cost per call (1 thread): missing-KB query {query:.1} µs, token signature \
         check {verify:.1} µs, validated-token cache hit {cached:.2} µs, rate limiter {limit:.2} µs"
    );
}

struct Round {
    requests: u64,
    elapsed: Duration,
    /// Latencies in microseconds, sorted.
    latencies: Vec<u32>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    /// `N req/s p50 X ms p99 Y ms`.
    fn summary(&self) -> String {
        format!(
            "{:>8.0} req/s  p50 {:>5.2} ms  p99 {:>5.2} ms",
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
        )
    }

    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(self.latencies.len().saturating_sub(1));
        Duration::from_micros(self.latencies.get(i).copied().unwrap_or(0).into())
    }
}

/// One connection's loop: requests back to back until `stop`, every answer's status checked.
///
/// The load generator is deliberately light, like `wrk`: the request is encoded once, and an
/// answer is read only as far as its status line, `Content-Length` and body. Client and server
/// share the machine's two cores, so every cycle the client saves goes to the server, alike
/// for both routes.
async fn connection(
    addr: std::net::SocketAddr,
    path: &'static str,
    token: Option<String>,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let expected: &[u8] = if path == REFUSED_PATH {
        b" 400 "
    } else {
        b" 200 "
    };
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    if let Some(t) = &token {
        request.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    request.push_str("\r\n");
    let request = request.into_bytes();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 64 * 1024];
    let mut latencies = Vec::with_capacity(64 * 1024);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        stream.write_all(&request).await.expect("send");
        // Read the head, then as much body as Content-Length says.
        let mut filled = 0;
        let (head_end, body_len) = loop {
            let n = stream.read(&mut buf[filled..]).await.expect("receive");
            assert!(n > 0, "{path}: the server closed the connection");
            filled += n;
            if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).expect("ASCII head");
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())
                            .flatten()
                    })
                    .expect("Content-Length");
                break (end + 4, len);
            }
            assert!(filled < buf.len(), "{path}: head larger than the buffer");
        };
        assert!(
            buf[..head_end].starts_with(b"HTTP/1.1") && &buf[8..13] == expected,
            "{path}: {}",
            String::from_utf8_lossy(&buf[..filled])
        );
        let total = head_end + body_len;
        assert!(total <= buf.len(), "{path}: answer larger than the buffer");
        while filled < total {
            let n = stream.read(&mut buf[filled..]).await.expect("receive");
            assert!(n > 0, "{path}: the server closed the connection mid-body");
            filled += n;
        }
        assert_eq!(filled, total, "{path}: more bytes than one answer");
        latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    latencies
}

fn load(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    path: &'static str,
    token: Option<&str>,
    duration: Duration,
) -> Round {
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                tokio::spawn(connection(
                    addr,
                    path,
                    token.map(str::to_string),
                    stop.clone(),
                ))
            })
            .collect();
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("connection task"));
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        Round {
            requests: latencies.len() as u64,
            elapsed,
            latencies,
        }
    })
}

fn median_ratio(mut ratios: Vec<f64>) -> f64 {
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_round(rounds: &mut [Round]) -> &Round {
    rounds.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    &rounds[rounds.len() / 2]
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let lb = all.iter().any(|a| a == "--lb");
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let duration = Duration::from_secs(secs.clamp(1, 60));
    if lb {
        behind_the_balancer(duration, rounds);
        return;
    }
    let server = start();
    // The load generator has one thread; the server two. Both share the machine's 2 cores.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    // Check the answer once, and warm up both routes (token cache, connections, caches).
    let probe = reqwest_free_probe(&rt, server.addr, &server.read_token);
    eprintln!("getmissingkbs answer: {probe} KBs");
    breakdown(&server);
    load(&rt, server.addr, "/healthz", None, Duration::from_secs(1));
    load(
        &rt,
        server.addr,
        SOFTWARE_PATH,
        Some(&server.read_token),
        Duration::from_secs(1),
    );

    let mut statics = Vec::new();
    let mut tokened = Vec::new();
    let mut softwares = Vec::new();
    let mut refused = Vec::new();
    let token = Some(server.read_token.as_str());
    let phase =
        |path: &'static str, token: Option<&str>| load(&rt, server.addr, path, token, duration);
    for round in 1..=rounds {
        let s = phase("/healthz", None);
        let m = phase(SOFTWARE_PATH, token);
        println!(
            "round {round}: /healthz {} | getmissingkbs {} | ratio {:.3}",
            s.summary(),
            m.summary(),
            m.rate() / s.rate(),
        );
        let r = phase(REFUSED_PATH, token);
        println!(
            "         authenticated 400 ($top, no store) {} | ratio to /healthz {:.3}",
            r.summary(),
            r.rate() / s.rate(),
        );
        let h = phase("/healthz", token);
        println!(
            "         /healthz sent the same bearer token {} | ratio getmissingkbs to it {:.3}",
            h.summary(),
            m.rate() / h.rate(),
        );
        tokened.push(h);
        statics.push(s);
        softwares.push(m);
        refused.push(r);
    }
    // Rounds interleave the routes, so each round's ratio compares them under the same
    // machine noise; the median of those ratios is the figure.
    let ratios: Vec<f64> = statics
        .iter()
        .zip(&softwares)
        .map(|(s, m)| m.rate() / s.rate())
        .collect();
    let token_ratios: Vec<f64> = tokened
        .iter()
        .zip(&softwares)
        .map(|(h, m)| m.rate() / h.rate())
        .collect();
    let refused_ratios: Vec<f64> = statics
        .iter()
        .zip(&refused)
        .map(|(s, r)| r.rate() / s.rate())
        .collect();
    let s = median_round(&mut statics);
    let m = median_round(&mut softwares);
    println!(
        "median of {rounds} rounds of {secs}s, {CONNECTIONS} connections:\n  /healthz       {}\n  getmissingkbs  {}\n  ratio getmissingkbs / healthz (median of the rounds' ratios): {:.3}",
        s.summary(),
        m.summary(),
        median_ratio(ratios),
    );
    let r = median_round(&mut refused);
    println!(
        "  authenticated 400 ($top; auth, limiter, envelope, no store) {}  ratio to /healthz {:.3}",
        r.summary(),
        median_ratio(refused_ratios),
    );
    let h = median_round(&mut tokened);
    println!(
        "  /healthz sent the same bearer token {}  ratio getmissingkbs to it {:.3}",
        h.summary(),
        median_ratio(token_ratios),
    );
}

/// One `getmissingkbs` call; returns how many KBs the answer lists.
fn reqwest_free_probe(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    token: &str,
) -> usize {
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let req = hyper::Request::get(SOFTWARE_PATH)
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("json");
        v["value"].as_array().map_or(0, Vec::len)
    })
}

/// `--lb`: the tenant on PostgreSQL, two replicas with a store each, and HAProxy in front of
/// them with the repository's `deploy/haproxy.cfg`; `getmissingkbs` (answer cache hit)
/// through the balancer beside one replica directly, in alternating phases.
fn behind_the_balancer(duration: Duration, rounds: usize) {
    let schema = TestSchema::create().expect("PostgreSQL (KBGAP_TEST_POSTGRES_URL)");
    let dir = tempfile::tempdir().expect("temp dir");
    let first: Arc<dyn Store> = Arc::new(PostgresStore::open(schema.url()).expect("store"));
    load_fleet(first.as_ref());
    let (validator, token) = credentials(dir.path());
    let replicas: Vec<std::net::SocketAddr> = (0..2)
        .map(|_| {
            let store: Arc<dyn Store> = Arc::new(PostgresStore::open(schema.url()).expect("store"));
            let catalog = Arc::new(CatalogHolder::load(store.as_ref()).expect("catalog"));
            serve(store, catalog, validator.clone())
        })
        .collect();
    let lb = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy.cfg");
    let mut haproxy = std::process::Command::new("haproxy")
        .args(["-db", "-f", config])
        .env("KBGAP_LB_LISTEN", lb.to_string())
        .env("KBGAP_REPLICA_1", replicas[0].to_string())
        .env("KBGAP_REPLICA_2", replicas[1].to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("haproxy on the PATH (Debian package haproxy)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(lb).is_err() {
        assert!(Instant::now() < deadline, "HAProxy did not listen on {lb}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "getmissingkbs answer through the balancer: {} KBs",
        reqwest_free_probe(&rt, lb, &token)
    );
    for addr in [replicas[0], lb] {
        load(
            &rt,
            addr,
            SOFTWARE_PATH,
            Some(&token),
            Duration::from_secs(1),
        );
    }
    let (mut direct, mut balanced, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let d = load(&rt, replicas[0], SOFTWARE_PATH, Some(&token), duration);
        let b = load(&rt, lb, SOFTWARE_PATH, Some(&token), duration);
        println!(
            "round {round}: one replica {} | two behind HAProxy {} | ratio {:.3}",
            d.summary(),
            b.summary(),
            b.rate() / d.rate()
        );
        ratios.push(b.rate() / d.rate());
        direct.push(d);
        balanced.push(b);
    }
    println!(
        "median of {rounds} rounds of {}s, {CONNECTIONS} connections, PostgreSQL store:\n  one replica            {}\n  two behind HAProxy     {}\n  ratio balanced / one (median of the rounds' ratios): {:.3}",
        duration.as_secs(),
        median_round(&mut direct).summary(),
        median_round(&mut balanced).summary(),
        median_ratio(ratios),
    );
    let _ = haproxy.kill();
    let _ = haproxy.wait();
}
