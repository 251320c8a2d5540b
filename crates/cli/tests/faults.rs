//! Faults of a scaled-out deployment, with the real `kbgap serve` on the real PostgreSQL: the
//! database going away in the middle of a batch (through a proxy that cuts the connections),
//! a replica killed with SIGKILL while it ingests, and a replica started while the database is
//! down. Each needs PostgreSQL: without it the tests say so and pass, except in CI
//! (`KBGAP_TEST_REQUIRE_SERVICES=1`), where they fail.

mod common;

use std::time::Duration;

use common::{kbgap, stderr, token, wait_for, Server, FIXTURES};
use kbgap_store::test_support::{FaultProxy, TestSchema};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A Windows 10 21H2 machine below January 2024's KB5034122 (the fixture catalog's one KB).
fn machine(id: &str) -> Value {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({"id": id, "lastSeen": now, "osPlatform": "Windows10",
           "osBuild": "10.0.19044.3803", "osArchitecture": "x64",
           "computerDnsName": format!("{id}.corp.contoso.com")})
}

fn batch(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| machine(&format!("{prefix}-{i:04}")))
        .collect()
}

fn post(
    client: &Client,
    s: &Server,
    token: &str,
    machines: &[Value],
) -> reqwest::Result<reqwest::blocking::Response> {
    client
        .post(s.url("/api/inventory/machines"))
        .bearer_auth(token)
        .json(machines)
        .send()
}

/// Machines of the schema whose id starts with `prefix`, and the stored count of KB5034122.
fn stored(schema: &TestSchema, prefix: &str) -> (i64, i64) {
    let mut c = schema.connect();
    let n = schema.name();
    let machines: i64 = c
        .query_one(
            &format!("SELECT COUNT(*) FROM {n}.machines WHERE machine_id LIKE $1"),
            &[&format!("{prefix}%")],
        )
        .unwrap()
        .get(0);
    let counted: i64 = c
        .query_opt(
            &format!("SELECT machines FROM {n}.missing_counts WHERE kb = 5034122"),
            &[],
        )
        .unwrap()
        .map_or(0, |r| r.get(0));
    (machines, counted)
}

/// Every machine stored is counted once: the counts agree with the machines.
fn assert_consistent(schema: &TestSchema) {
    let mut c = schema.connect();
    let n = schema.name();
    let missing: i64 = c
        .query_one(
            &format!("SELECT COUNT(*) FROM {n}.machine_missing WHERE kb = 5034122"),
            &[],
        )
        .unwrap()
        .get(0);
    let machines: i64 = c
        .query_one(&format!("SELECT COUNT(*) FROM {n}.machines"), &[])
        .unwrap()
        .get(0);
    assert_eq!(missing, machines);
    assert_eq!(stored(schema, "").1, machines);
}

fn with_catalog(schema: &TestSchema) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = kbgap(
        dir.path(),
        &[
            "--database-url",
            schema.url(),
            "catalog",
            "import",
            &format!("{FIXTURES}/2024-Jan-mini.xml"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

#[test]
fn a_batch_cut_off_by_the_database_is_all_or_nothing_and_the_server_recovers() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let dir = with_catalog(&schema);
    let proxy = FaultProxy::start(schema.server_addr());
    let s = Server::start(dir.path(), &schema.url_via(proxy.addr()), &[]);
    let writer = token(dir.path(), &["Machine.ReadWrite.All"]);
    let reader = token(dir.path(), &["Software.Read.All"]);
    let client = Client::new();

    let r = post(&client, &s, &writer, &batch("a", 5)).unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
    assert_eq!(stored(&schema, "a-"), (5, 5));

    // The database goes away 20 kB into the next batch's writes: inside its transaction
    // (its 1,000 snapshots alone are more than 100 kB).
    proxy.stop_after(20_000);
    let r = post(&client, &s, &writer, &batch("b", 1000)).unwrap();
    assert!(!proxy.is_up());
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "5");
    let b: Value = r.json().unwrap();
    assert_eq!(b["error"]["code"], "ServiceUnavailable", "{b}");
    // Nothing of it was stored, and what was stored before is intact.
    assert_eq!(stored(&schema, "b-"), (0, 5));
    assert_eq!(stored(&schema, "a-"), (5, 5));
    assert_consistent(&schema);

    // While the database is away every store-backed answer is 503 and readiness says why.
    let r = client
        .get(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "5");
    let r = client.get(s.url("/readyz")).send().unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let b: Value = r.json().unwrap();
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Storage is unreachable: "), "{message}");
    assert_eq!(
        client.get(s.url("/healthz")).send().unwrap().status(),
        StatusCode::OK
    );

    // Back: the server recovers by itself, and the same batch is stored whole.
    proxy.start_again();
    wait_for(&client, &s.url("/readyz"), StatusCode::OK);
    let r = post(&client, &s, &writer, &batch("b", 1000)).unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
    assert_eq!(stored(&schema, "b-"), (1000, 1005));
    assert_consistent(&schema);
    let b: Value = client
        .get(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
        .bearer_auth(&reader)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(b["value"][0]["id"], "5034122");
    assert_eq!(b["value"][0]["machineMissedOn"], 1005);
    // The outage was logged once, not at every poll.
    let lines = s.lines();
    let polls = lines
        .iter()
        .filter(|l| l.contains("change poll failed"))
        .count();
    assert!(polls <= 1, "{}", lines.join("\n"));
}

#[test]
fn a_replica_killed_during_ingestion_loses_no_acknowledged_batch() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let dir = with_catalog(&schema);
    let mut s = Server::start(dir.path(), schema.url(), &[]);
    let writer = token(dir.path(), &["Machine.ReadWrite.All"]);
    let base = s.base.clone();
    let (acked_tx, acked_rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        let client = Client::new();
        for i in 0.. {
            let machines = batch(&format!("k{i:03}"), 50);
            let r = client
                .post(format!("{base}/api/inventory/machines"))
                .bearer_auth(&writer)
                .json(&machines)
                .send();
            match r {
                Ok(r) if r.status() == StatusCode::OK => {
                    if acked_tx.send(i).is_err() {
                        return i;
                    }
                }
                // The server is gone: this batch was never acknowledged.
                _ => return i,
            }
        }
        unreachable!()
    });
    // Kill the server, without a chance to clean up, once it has acknowledged ten batches.
    for _ in 0..10 {
        acked_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let unacked = sender.join().unwrap();
    let acked: Vec<usize> = acked_rx.try_iter().collect();
    assert!(unacked >= 10);
    // Every acknowledged batch is stored whole; the one in flight is stored whole or not at all.
    for i in 0..unacked {
        assert_eq!(stored(&schema, &format!("k{i:03}-")).0, 50, "batch {i}");
    }
    let in_flight = stored(&schema, &format!("k{unacked:03}-")).0;
    assert!(in_flight == 0 || in_flight == 50, "{in_flight}");
    assert!(acked.iter().all(|i| *i < unacked));
    assert_consistent(&schema);

    // A new replica serves what the killed one acknowledged.
    let s = Server::start(dir.path(), schema.url(), &[]);
    let reader = token(dir.path(), &["Software.Read.All"]);
    let b: Value = Client::new()
        .get(s.url("/api/Software/microsoft-_-windows_10/getmissingkbs"))
        .bearer_auth(&reader)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        b["value"][0]["machineMissedOn"].as_i64().unwrap(),
        unacked as i64 * 50 + in_flight
    );
}

#[test]
fn a_replica_started_while_the_database_is_down_waits_and_becomes_ready() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let dir = with_catalog(&schema);
    let proxy = FaultProxy::start(schema.server_addr());
    proxy.stop();
    let s = Server::start(dir.path(), &schema.url_via(proxy.addr()), &[]);
    let client = Client::new();
    assert_eq!(
        client.get(s.url("/healthz")).send().unwrap().status(),
        StatusCode::OK
    );
    let r = client.get(s.url("/readyz")).send().unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let b: Value = r.json().unwrap();
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Storage is unreachable: cannot connect to PostgreSQL at {}",
            proxy.addr()
        )),
        "{message}"
    );
    let writer = token(dir.path(), &["Machine.ReadWrite.All"]);
    let r = post(&client, &s, &writer, &batch("w", 3)).unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The database comes up: the server opens it, loads its catalog and is ready.
    proxy.start_again();
    let ready = wait_for(&client, &s.url("/readyz"), StatusCode::OK);
    assert_eq!(ready["catalogGeneration"], 1);
    let r = post(&client, &s, &writer, &batch("w", 3)).unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
    assert_eq!(stored(&schema, "w-"), (3, 3));
    let lines = s.lines().join("\n");
    assert!(
        lines.contains("the database cannot be reached; serving anyway"),
        "{lines}"
    );
    assert!(lines.contains("storage is ready"), "{lines}");
}
