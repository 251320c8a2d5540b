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
