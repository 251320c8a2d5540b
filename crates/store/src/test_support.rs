//! For tests of this crate and of its users: a PostgreSQL schema of their own on the server
//! `KBGAP_TEST_POSTGRES_URL` names, created for one test and dropped with it, so that tests
//! run in parallel. Built only with the `test-support` feature.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The server tests use unless `KBGAP_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct TestSchema {
    server_url: String,
    name: String,
    url: String,
}

impl TestSchema {
    /// A fresh schema, or `None` (after saying so) when the server cannot be reached. With
    /// `KBGAP_TEST_REQUIRE_SERVICES=1` (CI) an unreachable server panics instead.
    pub fn create() -> Option<TestSchema> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server_url = std::env::var("KBGAP_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.into());
        let mut config: postgres::Config = server_url
            .parse()
            .unwrap_or_else(|e| panic!("KBGAP_TEST_POSTGRES_URL is not a PostgreSQL URL: {e}"));
        config.connect_timeout(Duration::from_secs(5));
        let mut client = match config.connect(postgres::NoTls) {
            Ok(c) => c,
            Err(e) => {
                let mut e_text = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    e_text = format!("{e_text}: {c}");
                    cause = c.source();
                }
                let e = e_text;
                if std::env::var("KBGAP_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
                    panic!(
                        "PostgreSQL is required (KBGAP_TEST_REQUIRE_SERVICES=1) but \
                         {server_url} cannot be reached: {e}"
                    );
                }
                eprintln!("skipping: PostgreSQL at {server_url} cannot be reached: {e}");
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "kbgap_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .unwrap_or_else(|e| panic!("cannot create the test schema {name}: {e}"));
        let sep = if server_url.contains('?') { '&' } else { '?' };
        let url = format!("{server_url}{sep}options=-csearch_path%3D{name}");
        Some(TestSchema {
            server_url,
            name,
            url,
        })
    }

    /// The server URL with this schema as `search_path`: what a store opens.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection to the server, outside the schema (names in it must be qualified).
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.server_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.server_url))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.server_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

impl TestSchema {
    /// [`TestSchema::url`] with the server's address replaced by `addr` (a [`FaultProxy`] in
    /// front of it).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL with a scheme");
        let (user, host_and_path) = match rest.split_once('@') {
            Some((user, after)) => (format!("{user}@"), after),
            None => (String::new(), rest),
        };
        let path = host_and_path
            .find(['/', '?'])
            .map_or("", |i| &host_and_path[i..]);
        format!("{scheme}://{user}{addr}{path}")
    }

    /// The address of the server, for a [`FaultProxy`] in front of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let config: postgres::Config = self.server_url.parse().expect("a PostgreSQL URL");
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .ok()
            .and_then(|mut a| a.next())
            .expect("the test server's address resolves")
    }
}

/// A TCP proxy in front of the real PostgreSQL server that can take the database away: stop
/// it (every open connection is cut, new ones are refused, as when the server goes down), cut
/// it once a given number of further bytes reached the server (in the middle of a
/// transaction), and start it again.
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    state: std::sync::Arc<ProxyState>,
}

struct ProxyState {
    up: std::sync::atomic::AtomicBool,
    /// Client bytes forwarded since the proxy started.
    forwarded: std::sync::atomic::AtomicU64,
    /// Stop once `forwarded` reaches this.
    cut_at: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<Vec<std::net::TcpStream>>,
}

impl ProxyState {
    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut open) = self.open.lock() {
            for s in open.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub fn start(upstream: std::net::SocketAddr) -> FaultProxy {
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = Arc::new(ProxyState {
            up: std::sync::atomic::AtomicBool::new(true),
            forwarded: std::sync::atomic::AtomicU64::new(0),
            cut_at: std::sync::atomic::AtomicU64::new(u64::MAX),
            open: std::sync::Mutex::new(Vec::new()),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !s.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                if let (Ok(mut open), Ok(c), Ok(v)) =
                    (s.open.lock(), client.try_clone(), server.try_clone())
                {
                    open.push(c);
                    open.push(v);
                }
                let (Ok(client_read), Ok(server_write)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let up = s.clone();
                std::thread::spawn(move || pump(client_read, server_write, Some(&up)));
                std::thread::spawn(move || pump(server, client, None));
            }
        });
        FaultProxy { addr, state }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The database goes away: open connections are cut, new ones refused.
    pub fn stop(&self) {
        self.state.stop();
    }

    /// The database is back.
    pub fn start_again(&self) {
        self.state.cut_at.store(u64::MAX, Ordering::SeqCst);
        self.state.up.store(true, Ordering::SeqCst);
    }

    /// Stops once `bytes` more bytes from clients have reached the server.
    pub fn stop_after(&self, bytes: u64) {
        let now = self.state.forwarded.load(Ordering::SeqCst);
        self.state.cut_at.store(now + bytes, Ordering::SeqCst);
    }

    /// Whether the proxy is forwarding.
    pub fn is_up(&self) -> bool {
        self.state.up.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop();
    }
}

/// Copies one direction; the client-to-server direction counts bytes and stops the proxy at
/// its cut.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, count: Option<&ProxyState>) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(state) = count {
            if !state.up.load(Ordering::SeqCst) {
                break;
            }
            let before = state.forwarded.fetch_add(n as u64, Ordering::SeqCst);
            let cut = state.cut_at.load(Ordering::SeqCst);
            if before + n as u64 >= cut {
                // Forward what fits before the cut, then take the server away.
                let fits = cut.saturating_sub(before) as usize;
                let _ = to.write_all(&buf[..fits.min(n)]);
                state.stop();
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// The count tables of a store's database as stored and as counted again from the machines'
/// stored results (active machines only), one `tenant software [kb] machines` line per row,
/// sorted; and how many result rows belong to no stored machine. A store keeps `stored`
/// equal to `recounted` and `orphans` at zero after every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recount {
    pub stored: Vec<String>,
    pub recounted: Vec<String>,
    pub orphans: i64,
}

const STORED_COUNTS: &str = "
    SELECT tenant_id || ' ' || software || ' ' || CAST(machines AS TEXT) FROM software_counts
    UNION ALL
    SELECT tenant_id || ' ' || software || ' ' || CAST(kb AS TEXT) || ' '
           || CAST(machines AS TEXT) FROM missing_counts";
const RECOUNTED: &str = "
    SELECT s.tenant_id || ' ' || s.software || ' ' || CAST(COUNT(*) AS TEXT)
    FROM machine_software s
    JOIN machines m ON m.tenant_id = s.tenant_id AND m.machine_id = s.machine_id
    WHERE CAST(m.counted AS INTEGER) = 1 GROUP BY s.tenant_id, s.software
    UNION ALL
    SELECT x.tenant_id || ' ' || x.software || ' ' || CAST(x.kb AS TEXT) || ' '
           || CAST(COUNT(*) AS TEXT)
    FROM machine_missing x
    JOIN machines m ON m.tenant_id = x.tenant_id AND m.machine_id = x.machine_id
    WHERE CAST(m.counted AS INTEGER) = 1 GROUP BY x.tenant_id, x.software, x.kb";
const ORPHANS: &str = "
    SELECT (SELECT COUNT(*) FROM machine_software s WHERE NOT EXISTS
              (SELECT 1 FROM machines m
               WHERE m.tenant_id = s.tenant_id AND m.machine_id = s.machine_id))
         + (SELECT COUNT(*) FROM machine_missing x WHERE NOT EXISTS
              (SELECT 1 FROM machines m
               WHERE m.tenant_id = x.tenant_id AND m.machine_id = x.machine_id))";

impl Recount {
    /// Of the SQLite store in `data_dir`.
    pub fn sqlite(data_dir: &std::path::Path) -> Recount {
        let c = rusqlite::Connection::open(data_dir.join("kbgap.sqlite")).unwrap();
        let lines = |sql: &str| -> Vec<String> {
            let mut stmt = c.prepare(sql).unwrap();
            let mut out: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            out.sort();
            out
        };
        Recount {
            stored: lines(STORED_COUNTS),
            recounted: lines(RECOUNTED),
            orphans: c.query_row(ORPHANS, [], |r| r.get(0)).unwrap(),
        }
    }

    /// Of the PostgreSQL store a URL (with its `search_path`) names.
    pub fn postgres(url: &str) -> Recount {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let mut lines = |sql: &str| -> Vec<String> {
            let mut out: Vec<String> = c
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            out.sort();
            out
        };
        let stored = lines(STORED_COUNTS);
        let recounted = lines(RECOUNTED);
        let orphans = c.query_one(ORPHANS, &[]).unwrap().get(0);
        Recount {
            stored,
            recounted,
            orphans,
        }
    }

    /// Panics unless the stored counts are the recount and no result is orphaned.
    pub fn assert_exact(&self) {
        assert_eq!(
            self.stored, self.recounted,
            "stored counts differ from a recount"
        );
        assert_eq!(self.orphans, 0, "results of machines no longer stored");
    }
}
