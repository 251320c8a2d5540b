//! The harness the CLI test files share: run the real `kbgap` binary against a data directory,
//! read its output, and start from the hand-written one-KB catalog.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Runs `kbgap --data-dir DIR ARGS…` with no configuration from the environment and quiet logs.
pub fn kbgap(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KBGAP_CONFIG")
        .env_remove("KBGAP_DATABASE_URL")
        .env_remove("KBGAP_MSRC_BASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A data directory with the one-KB catalog: KB5034122 for Windows 10 21H2 x64, fixed in
/// 10.0.19044.3930.
pub fn with_mini_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = kbgap(
        dir.path(),
        &[
            "catalog",
            "import",
            &format!("{FIXTURES}/2024-Jan-mini.xml"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

/// The tenant of the serving tests' tokens.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A `kbgap serve` child on 127.0.0.1:0 with its log lines.
pub struct Server {
    pub child: Child,
    pub base: String,
    log: Receiver<String>,
    /// What it logged before it listened.
    start_up: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `kbgap serve` on `database_url` with `args` after `serve`, and waits until it
    /// listens.
    pub fn start(data_dir: &std::path::Path, database_url: &str, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kbgap"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("KBGAP_CONFIG")
            .env_remove("KBGAP_REDIS_URL")
            .env("KBGAP_DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("kbgap serve did not start:\n{}", seen.join("\n")));
            if line.contains("kbgap listening") {
                let v: Value = serde_json::from_str(&line).unwrap();
                break v["fields"]["addr"].as_str().unwrap().to_string();
            }
            seen.push(line);
        };
        Server {
            child,
            base: format!("http://{addr}"),
            log,
            start_up: seen,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every log line so far.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = self.start_up.clone();
        lines.extend(self.log.try_iter());
        lines
    }
}

pub fn token(data_dir: &std::path::Path, roles: &[&str]) -> String {
    let mut args = vec!["token", "--tenant", TENANT];
    for r in roles {
        args.extend(["--role", r]);
    }
    let o = kbgap(data_dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Asks `path` until it answers `status` (at most 30 s): for a server catching up with its
/// database.
pub fn wait_for(client: &Client, url: &str, status: StatusCode) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send() {
            if r.status() == status {
                return r.json().unwrap_or(Value::Null);
            }
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
