//! The Redis limiter against a real Redis (`KBGAP_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379): the same answers as the in-process limiter, the documented counter
//! names, two replicas sharing one quota exactly, and the local fallback against a throw-away
//! `redis-server` that is stopped, hung and started again.
//!
//! Each test counts under its own key prefix, so they run in parallel. Windows are an hour or
//! more, or a test first waits until it is clear of a minute boundary (on Redis's clock), so no
//! test straddles a window. Without Redis the tests say that they skip, unless
//! `KBGAP_TEST_REQUIRE_SERVICES=1` (CI), where they fail.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kbgap_ratelimit::{
    Decision, InProcessLimiter, Limited, Limiter, Quota, RateKey, RedisLimiter, RedisOptions,
    RedisSetupError, SystemClock, Window,
};

// ---------------------------------------------------------------------------------------------
// Harness

fn services_required() -> bool {
    std::env::var("KBGAP_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Fails under `KBGAP_TEST_REQUIRE_SERVICES=1`, otherwise says the test skips.
fn missing(what: &str, test: &str) {
    if services_required() {
        panic!("{what}, and KBGAP_TEST_REQUIRE_SERVICES=1: {test} needs it");
    }
    eprintln!("skipping {test}: {what} (set KBGAP_TEST_REQUIRE_SERVICES=1 to fail instead)");
}

/// The test Redis's URL if it answers PING.
fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("KBGAP_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    if ping(&url) {
        Some(url)
    } else {
        missing(&format!("Redis at {url} does not answer"), test);
        None
    }
}

fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return false;
    };
    redis::cmd("PING")
        .query::<String>(&mut c)
        .is_ok_and(|p| p == "PONG")
}

fn sync_connection(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("url")
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connection")
}

/// A key prefix no other test (or earlier run) uses.
fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("kbgap-test:{test}:{}:{nanos}:", std::process::id())
}

/// Options for tests that must not fall back: a generous timeout, so a busy machine does not
/// turn a slow answer into a local decision.
fn options(prefix: &str) -> RedisOptions {
    RedisOptions {
        key_prefix: prefix.to_string(),
        timeout: Duration::from_secs(5),
        ..RedisOptions::default()
    }
}

/// Redis's clock.
fn redis_time(c: &mut redis::Connection) -> Duration {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(c).expect("TIME");
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// Waits, if needed, until Redis's clock is at least `margin` away from the end of the
/// current window of every period in `periods`.
fn clear_of_boundaries(c: &mut redis::Connection, periods: &[u64], margin: Duration) {
    let now = redis_time(c);
    let wait = periods
        .iter()
        .map(|&p| Window {
            limit: 1,
            period: Duration::from_secs(p),
        })
        .map(|w| w.remaining(now))
        .filter(|left| *left <= margin)
        .max();
    if let Some(left) = wait {
        eprintln!("waiting {left:?} for a window boundary to pass");
        std::thread::sleep(left + Duration::from_millis(200));
    }
}

fn allowed(remaining: u64) -> Decision {
    Decision::Allowed { remaining }
}

/// A refusal with the time to wait left out (it depends on the clock; checked separately).
fn limited_by(period: u64, limit: u64) -> Decision {
    Decision::Limited(Limited {
        window: Window {
            limit,
            period: Duration::from_secs(period),
        },
        retry_after: Duration::ZERO,
    })
}

fn without_wait(d: Decision) -> Decision {
    match d {
        Decision::Limited(l) => Decision::Limited(Limited {
            retry_after: Duration::ZERO,
            ..l
        }),
        d => d,
    }
}

fn quota(windows: &[(u64, u64)]) -> Quota {
    Quota::new(windows.iter().map(|&(limit, period)| Window {
        limit,
        period: Duration::from_secs(period),
    }))
    .expect("quota")
}

fn key(tenant: &str) -> RateKey {
    RateKey::from_parts(["app", "/api/Software/{id}/getmissingkbs", tenant, "app1"])
}

/// Log lines, for checking what the fallback says and how often.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
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

impl Lines {
    /// Lines at `level` containing `text`.
    fn count(&self, level: &str, text: &str) -> usize {
        let all =
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        all.lines()
            .filter(|l| l.contains(level) && l.contains(text))
            .count()
    }
}

/// Captures this thread's log lines (the tests using it run on a current-thread runtime).
fn capture_logs() -> (Lines, tracing::subscriber::DefaultGuard) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (lines, guard)
}

const WENT_LOCAL: &str = "Redis unreachable; rate limits are kept in this process";
const CAME_BACK: &str = "Redis answers again";

/// A `redis-server` of this test's own on a free port, without persistence.
struct ThrowAway {
    port: u16,
    child: Option<Child>,
}

impl ThrowAway {
    /// A free port with nothing listening on it (yet).
    fn reserve() -> ThrowAway {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        ThrowAway { port, child: None }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it answers; false if `redis-server` cannot
    /// be run here.
    fn start(&mut self) -> bool {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(&self.url()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer within 10 s",
            self.port
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP or SIGCONT: a server that accepts connections but answers nothing.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for ThrowAway {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A stopped process must be continued to die of SIGKILL promptly everywhere.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.stop();
    }
}

/// A throw-away server, or None (after saying so) where `redis-server` is not installed.
fn throw_away(test: &str) -> Option<ThrowAway> {
    let mut t = ThrowAway::reserve();
    if t.start() {
        Some(t)
    } else {
        missing("redis-server cannot be run", test);
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Semantics: the same answers as the in-process limiter

/// Calls and the answers both limiters must give, refusals compared without their wait.
async fn scenario(l: &dyn Limiter, tag: &str) {
    let mut calls: Vec<(&str, Decision)> = Vec::new();
    let mut check = |what: &'static str, d: Decision, want: Decision| {
        assert_eq!(without_wait(d), want, "{tag}: {what}");
        calls.push((what, want));
    };
    // Minute and hour: the minute fills first; refused calls are not counted.
    let q = quota(&[(3, 60), (5, 3600)]);
    let k = key(&format!("{tag}-minute"));
    check(
        "peek, nothing counted",
        l.peek(&k, &q).await.unwrap(),
        allowed(3),
    );
    for left in [2, 1, 0] {
        check("acquire", l.acquire(&k, &q).await.unwrap(), allowed(left));
    }
    check(
        "peek, full",
        l.peek(&k, &q).await.unwrap(),
        limited_by(60, 3),
    );
    check(
        "4th acquire",
        l.acquire(&k, &q).await.unwrap(),
        limited_by(60, 3),
    );
    check(
        "5th acquire",
        l.acquire(&k, &q).await.unwrap(),
        limited_by(60, 3),
    );
    // Record counts even over the limit (4 this minute, 4 this hour)...
    check("record", l.record(&k, &q).await.unwrap(), limited_by(60, 3));
    // ...so the hour now has room for one more only: still the minute that refuses.
    check(
        "acquire after",
        l.acquire(&k, &q).await.unwrap(),
        limited_by(60, 3),
    );

    // The hour fills first.
    let k = key(&format!("{tag}-hour"));
    let q = quota(&[(10, 60), (2, 3600)]);
    check(
        "peek, nothing counted",
        l.peek(&k, &q).await.unwrap(),
        allowed(2),
    );
    check("acquire", l.acquire(&k, &q).await.unwrap(), allowed(1));
    check("peek", l.peek(&k, &q).await.unwrap(), allowed(1));
    check("acquire", l.acquire(&k, &q).await.unwrap(), allowed(0));
    check(
        "3rd acquire",
        l.acquire(&k, &q).await.unwrap(),
        limited_by(3600, 2),
    );

    // Both full: the refusal names the window that resets last, the hour.
    let k = key(&format!("{tag}-both"));
    let q = quota(&[(1, 60), (1, 3600)]);
    check("acquire", l.acquire(&k, &q).await.unwrap(), allowed(0));
    check(
        "2nd acquire",
        l.acquire(&k, &q).await.unwrap(),
        limited_by(3600, 1),
    );

    // Record: reaching the limit exactly is allowed, past it is not; peek never counts.
    let k = key(&format!("{tag}-record"));
    let q = quota(&[(2, 60)]);
    check("record", l.record(&k, &q).await.unwrap(), allowed(1));
    check("peek", l.peek(&k, &q).await.unwrap(), allowed(1));
    check("peek", l.peek(&k, &q).await.unwrap(), allowed(1));
    check("record", l.record(&k, &q).await.unwrap(), allowed(0));
    check("peek", l.peek(&k, &q).await.unwrap(), limited_by(60, 2));
    check(
        "3rd record",
        l.record(&k, &q).await.unwrap(),
        limited_by(60, 2),
    );
    check(
        "acquire",
        l.acquire(&k, &q).await.unwrap(),
        limited_by(60, 2),
    );

    // A quota whose shortest window is not the tightest: a fresh key's peek says the least
    // room of all windows.
    let k = key(&format!("{tag}-tight"));
    let q = quota(&[(100, 60), (4, 3600)]);
    check(
        "peek, nothing counted",
        l.peek(&k, &q).await.unwrap(),
        allowed(4),
    );
    check("acquire", l.acquire(&k, &q).await.unwrap(), allowed(3));
    assert_eq!(calls.len(), 25);
}

#[tokio::test]
async fn redis_gives_the_same_answers_as_the_in_process_limiter() {
    let test = "same_answers";
    let Some(url) = redis_url(test) else { return };
    let mut c = sync_connection(&url);
    clear_of_boundaries(&mut c, &[60, 3600], Duration::from_secs(10));
    let local = InProcessLimiter::new(1000, Arc::new(SystemClock));
    scenario(&local, "in-process").await;
    let shared = RedisLimiter::connect(&url, options(&prefix(test)))
        .await
        .expect("limiter");
    assert!(shared.is_shared());
    scenario(&shared, "redis").await;
    assert!(shared.is_shared(), "every call was answered by Redis");
}

#[tokio::test]
async fn retry_after_is_the_time_to_the_end_of_the_window_on_redis_clock() {
    let test = "retry_after";
    let Some(url) = redis_url(test) else { return };
    let mut c = sync_connection(&url);
    clear_of_boundaries(&mut c, &[60, 3600], Duration::from_secs(10));
    let l = RedisLimiter::connect(&url, options(&prefix(test)))
        .await
        .expect("limiter");
    for (q, period) in [
        (quota(&[(1, 60), (100, 3600)]), 60),
        (quota(&[(100, 60), (1, 3600)]), 3600),
    ] {
        let k = key(&format!("t-{period}"));
        assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(0));
        let before = redis_time(&mut c);
        let d = l.acquire(&k, &q).await.unwrap();
        let after = redis_time(&mut c);
        let Decision::Limited(lim) = d else {
            panic!("expected a refusal, got {d:?}")
        };
        assert_eq!(lim.window.period, Duration::from_secs(period));
        let end = Duration::from_secs((before.as_secs() / period + 1) * period);
        assert!(
            end - after <= lim.retry_after && lim.retry_after <= end - before,
            "{:?} not within [{:?}, {:?}]",
            lim.retry_after,
            end - after,
            end - before
        );
    }
}

#[tokio::test]
async fn counters_follow_the_documented_key_scheme_and_expire() {
    let test = "key_scheme";
    let Some(url) = redis_url(test) else { return };
    let mut c = sync_connection(&url);
    clear_of_boundaries(&mut c, &[60, 3600], Duration::from_secs(10));
    let p = prefix(test);
    let l = RedisLimiter::connect(&url, options(&p))
        .await
        .expect("limiter");
    let k = key("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let q = quota(&[(2, 60), (9, 3600)]);
    let now = redis_time(&mut c).as_secs();
    let minute = format!("{p}{k}:60:{}", now / 60);
    let hour = format!("{p}{k}:3600:{}", now / 3600);
    assert_eq!(
        minute,
        format!(
            "{p}app|/api/Software/{{id}}/getmissingkbs|72f988bf-86f1-41af-91ab-2d7cd011db47|app1:60:{}",
            now / 60
        )
    );
    let get = |c: &mut redis::Connection, name: &str| -> Option<u64> {
        redis::cmd("GET").arg(name).query(c).expect("GET")
    };
    let ttl = |c: &mut redis::Connection, name: &str| -> i64 {
        redis::cmd("TTL").arg(name).query(c).expect("TTL")
    };
    // Peeking creates nothing.
    assert_eq!(l.peek(&k, &q).await.unwrap(), allowed(2));
    assert_eq!((get(&mut c, &minute), get(&mut c, &hour)), (None, None));
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(1));
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(0));
    assert_eq!(
        (get(&mut c, &minute), get(&mut c, &hour)),
        (Some(2), Some(2))
    );
    // Refused: nothing counted.
    assert_eq!(
        without_wait(l.acquire(&k, &q).await.unwrap()),
        limited_by(60, 2)
    );
    assert_eq!(
        (get(&mut c, &minute), get(&mut c, &hour)),
        (Some(2), Some(2))
    );
    // Recorded: counted in both windows.
    assert!(matches!(
        l.record(&k, &q).await.unwrap(),
        Decision::Limited(_)
    ));
    assert_eq!(
        (get(&mut c, &minute), get(&mut c, &hour)),
        (Some(3), Some(3))
    );
    // Each counter expires one period after it was created, so it outlives its window.
    let (m, h) = (ttl(&mut c, &minute), ttl(&mut c, &hour));
    assert!((50..=60).contains(&m), "minute TTL {m}");
    assert!((3590..=3600).contains(&h), "hour TTL {h}");
}

#[tokio::test]
async fn a_script_flushed_from_redis_is_sent_again() {
    let test = "noscript";
    let Some(url) = redis_url(test) else { return };
    let l = RedisLimiter::connect(&url, options(&prefix(test)))
        .await
        .expect("limiter");
    let (k, q) = (key("t"), quota(&[(5, 3600)]));
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(4));
    let mut c = sync_connection(&url);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut c)
        .expect("flush");
    // EVALSHA meets NOSCRIPT; EVAL answers, and Redis holds the script again.
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(3));
    assert!(l.is_shared());
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(2));
}

// ---------------------------------------------------------------------------------------------
// Two replicas, one quota

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_times_100_concurrent_calls_let_exactly_the_quota_through() {
    let test = "two_replicas";
    let Some(url) = redis_url(test) else { return };
    let mut c = sync_connection(&url);
    clear_of_boundaries(&mut c, &[3600, 86_400], Duration::from_secs(30));
    let p = prefix(test);
    let replicas = [
        Arc::new(RedisLimiter::connect(&url, options(&p)).await.expect("a")),
        Arc::new(RedisLimiter::connect(&url, options(&p)).await.expect("b")),
    ];
    // More than one replica's 100 calls: both must count in the same windows for exactly
    // 137 to pass (without sharing, all 200 would).
    let q = Arc::new(quota(&[(137, 3600), (1000, 86_400)]));
    let k = Arc::new(key("t"));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (l, q, k) = (replicas[i % 2].clone(), q.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            (i % 2, l.acquire(&k, &q).await.expect("decision"))
        }));
    }
    let mut remaining_seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut allowed_per_replica = [0usize; 2];
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            (r, Decision::Allowed { remaining }) => {
                *remaining_seen.entry(remaining).or_default() += 1;
                allowed_per_replica[r] += 1;
            }
            (_, Decision::Limited(l)) => {
                assert_eq!(l.window, Window::per_hour(137));
                refused += 1;
            }
        }
    }
    assert_eq!(allowed_per_replica[0] + allowed_per_replica[1], 137);
    assert_eq!(refused, 63);
    assert!(allowed_per_replica.iter().all(|&a| a >= 37));
    // Atomic: every count from 1 to 137 was handed out exactly once.
    assert_eq!(
        remaining_seen,
        (0..137).map(|r| (r, 1)).collect::<BTreeMap<_, _>>()
    );
    eprintln!(
        "allowed per replica: {allowed_per_replica:?}; 200 calls in {:?}",
        started.elapsed()
    );
    let now = redis_time(&mut c).as_secs();
    let hour: u64 = redis::cmd("GET")
        .arg(format!("{p}{k}:3600:{}", now / 3600))
        .query(&mut c)
        .expect("GET");
    assert_eq!(hour, 137);
    assert!(replicas.iter().all(|r| r.is_shared()));
}

// ---------------------------------------------------------------------------------------------
// Fallback

#[tokio::test]
async fn without_redis_each_replica_keeps_its_share_and_returns_when_redis_does() {
    let test = "fallback";
    let Some(mut server) = throw_away(test) else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let l = RedisLimiter::connect(
        &server.url(),
        RedisOptions {
            key_prefix: prefix(test),
            replicas: 2,
            timeout: Duration::from_secs(2),
            retry_interval: Duration::from_millis(100),
        },
    )
    .await
    .expect("limiter");
    assert!(l.is_shared());
    assert_eq!(
        logs.count("INFO", "rate limits are shared through Redis"),
        1
    );
    let five = quota(&[(5, 3600)]);
    let one = quota(&[(1, 3600)]);
    let (a, b) = (key("a"), key("b"));
    assert_eq!(l.acquire(&a, &five).await.unwrap(), allowed(4));

    // Redis goes away: this replica keeps 5 / 2 = 2 calls (not knowing the one counted in
    // Redis), and 1 / 2, rounded down to 0, is kept at 1.
    server.stop();
    assert_eq!(l.acquire(&a, &five).await.unwrap(), allowed(1));
    assert!(!l.is_shared());
    assert_eq!(l.acquire(&a, &five).await.unwrap(), allowed(0));
    assert_eq!(
        without_wait(l.acquire(&a, &five).await.unwrap()),
        limited_by(3600, 2)
    );
    assert_eq!(l.acquire(&b, &one).await.unwrap(), allowed(0));
    assert_eq!(
        without_wait(l.acquire(&b, &one).await.unwrap()),
        limited_by(3600, 1)
    );
    // Long enough for several retries: still said once.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..3 {
        assert!(matches!(
            l.acquire(&a, &five).await.unwrap(),
            Decision::Limited(_)
        ));
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert!(!l.is_shared());
    assert_eq!(logs.count("WARN", WENT_LOCAL), 1);
    assert_eq!(logs.count("INFO", CAME_BACK), 0);

    // Redis is back (empty: no persistence). The first call after the retry interval goes to
    // it and is counted there.
    assert!(server.start());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(l.acquire(&a, &five).await.unwrap(), allowed(4));
    assert!(l.is_shared());
    assert_eq!(l.acquire(&a, &five).await.unwrap(), allowed(3));
    assert_eq!(logs.count("INFO", CAME_BACK), 1);
    assert_eq!(logs.count("WARN", WENT_LOCAL), 1);
}

#[tokio::test]
async fn an_unreachable_redis_at_start_up_is_not_fatal() {
    let test = "down_at_start";
    let mut server = ThrowAway::reserve();
    let (logs, _guard) = capture_logs();
    let l = RedisLimiter::connect(
        &server.url(),
        RedisOptions {
            key_prefix: prefix(test),
            replicas: 3,
            timeout: Duration::from_secs(2),
            retry_interval: Duration::from_millis(100),
        },
    )
    .await
    .expect("an unreachable Redis is no error");
    assert!(!l.is_shared());
    assert_eq!(logs.count("WARN", WENT_LOCAL), 1);
    // 100 per hour over 3 replicas: 33 here.
    let q = quota(&[(100, 3600)]);
    let k = key("t");
    for left in (0..33).rev() {
        assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(left));
    }
    assert_eq!(
        without_wait(l.acquire(&k, &q).await.unwrap()),
        limited_by(3600, 33)
    );
    assert_eq!(logs.count("WARN", WENT_LOCAL), 1);
    if !server.start() {
        missing("redis-server cannot be run", test);
        return;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(99));
    assert!(l.is_shared());
    assert_eq!(logs.count("INFO", CAME_BACK), 1);
}

#[tokio::test]
async fn a_hung_redis_holds_a_call_up_for_the_timeout_at_most() {
    let test = "hung";
    let Some(server) = throw_away(test) else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let timeout = Duration::from_millis(300);
    let l = RedisLimiter::connect(
        &server.url(),
        RedisOptions {
            key_prefix: prefix(test),
            replicas: 1,
            timeout,
            retry_interval: Duration::from_millis(100),
        },
    )
    .await
    .expect("limiter");
    let (k, q) = (key("t"), quota(&[(10, 3600)]));
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(9));
    // Accepts connections, answers nothing.
    server.signal("-STOP");
    let started = Instant::now();
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(9));
    let waited = started.elapsed();
    assert!(!l.is_shared());
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(1),
        "waited {waited:?}"
    );
    // While local, calls do not wait for Redis at all...
    let started = Instant::now();
    assert_eq!(l.acquire(&k, &q).await.unwrap(), allowed(8));
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    // ...except the one retry per interval.
    server.signal("-CONT");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !l.is_shared() && Instant::now() < deadline {
        let _ = l.acquire(&k, &q).await.unwrap();
        tokio::time::sleep(Duration::from_millis(110)).await;
    }
    assert!(l.is_shared(), "back on Redis within 5 s of SIGCONT");
    assert_eq!(logs.count("WARN", WENT_LOCAL), 1);
    assert_eq!(logs.count("INFO", CAME_BACK), 1);
}

#[tokio::test]
async fn a_malformed_url_or_no_replicas_is_a_set_up_error() {
    for bad in [
        "localhost:6379",
        "http://127.0.0.1:6379",
        "redis://",
        "rediss://cache:6380",
    ] {
        let e = RedisLimiter::connect(bad, RedisOptions::default())
            .await
            .expect_err(bad);
        assert!(matches!(e, RedisSetupError::BadUrl(_)), "{bad}: {e:?}");
        assert!(e.to_string().starts_with("not a usable Redis URL"), "{e}");
    }
    let e = RedisLimiter::connect(
        "redis://127.0.0.1:6379",
        RedisOptions {
            replicas: 0,
            ..RedisOptions::default()
        },
    )
    .await
    .expect_err("0 replicas");
    assert!(matches!(e, RedisSetupError::NoReplicas));
}
