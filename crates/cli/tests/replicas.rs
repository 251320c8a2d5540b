//! Replicas agree: two `kbgap serve` on one PostgreSQL, with a change poll of ten minutes so
//! that only the database's change notifications (LISTEN/NOTIFY) can tell one replica what
//! the other, or the CLI, wrote. Needs PostgreSQL: without it the test says so and passes,
//! except in CI (`KBGAP_TEST_REQUIRE_SERVICES=1`), where it fails.

mod common;

use std::time::{Duration, Instant};

use common::{kbgap, stderr, token, Server, FIXTURES};
use kbgap_store::test_support::TestSchema;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn machine(id: &str, build: &str) -> Value {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({"id": id, "lastSeen": now, "osPlatform": "Windows10", "osBuild": build,
           "osArchitecture": "x64"})
}

/// Asks `f` until it returns `Some` (at most 10 s; the poll alone would take ten minutes).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: never seen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_write_or_a_catalog_import_anywhere_is_served_by_every_replica() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let import = |file: &str| {
        let o = kbgap(
            dir.path(),
            &[
                "--database-url",
                schema.url(),
                "catalog",
                "import",
                &format!("{FIXTURES}/{file}"),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    };
    // December 2023: KB5033372 for Windows 10 21H2 x64 (10.0.19044.3803).
    import("2023-Dec-mini.xml");
    let config = dir.path().join("kbgap.toml");
    std::fs::write(&config, "[server]\nchange_poll_millis = 600000\n").unwrap();
    let config = config.to_str().unwrap().to_string();
    let a = Server::start(dir.path(), schema.url(), &["--config", &config]);
    let b = Server::start(dir.path(), schema.url(), &["--config", &config]);
    let writer = token(dir.path(), &["Machine.ReadWrite.All"]);
    let reader = token(dir.path(), &["Software.Read.All"]);
    let client = Client::new();
    let missed = |s: &Server| -> Option<Vec<(String, u64)>> {
        let r = client
            .get(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
            .bearer_auth(&reader)
            .send()
            .ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        let b: Value = r.json().ok()?;
        Some(
            b["value"]
                .as_array()?
                .iter()
                .map(|k| {
                    (
                        k["id"].as_str().unwrap().to_string(),
                        k["machineMissedOn"].as_u64().unwrap(),
                    )
                })
                .collect(),
        )
    };
    let put = |s: &Server, id: &str, build: &str| {
        let r = client
            .put(s.url(&format!("/api/inventory/machines/{id}")))
            .bearer_auth(&writer)
            .json(&machine(id, build))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
    };

    // A machine below December's update, through A; B answers (and keeps the answer).
    put(&a, "pc-1", "10.0.19044.3693");
    let seen = eventually("B counts pc-1", || {
        missed(&b).filter(|v| v == &[("5033372".to_string(), 1)])
    });
    assert_eq!(seen.len(), 1);
    // A second one through A: B's kept answer is dropped on A's announcement.
    put(&a, "pc-2", "10.0.19044.3693");
    eventually("B counts pc-2", || {
        missed(&b).filter(|v| v == &[("5033372".to_string(), 2)])
    });

    // January's catalog through the CLI: both replicas serve generation 2, in which both
    // machines miss January's KB5034122 instead.
    import("2024-Jan-mini.xml");
    for s in [&a, &b] {
        eventually("generation 2", || {
            let r: Value = client.get(s.url("/readyz")).send().ok()?.json().ok()?;
            (r["catalogGeneration"] == 2).then_some(())
        });
        eventually("January's KB", || {
            missed(s).filter(|v| v == &[("5034122".to_string(), 2)])
        });
    }
}
