//! Benchmark: `catalog sync` against a local mirror of the MSRC API on 127.0.0.1 serving the
//! whole archive: the first (full) sync, then syncs with nothing changed (target ≤ 1 s).
//!
//! `cargo run --release -p kbgap-bench --bin catalog_sync [-- RUNS]`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kbgap_bench::{median, shared_data, time_runs};
use kbgap_catalog::sync::{MsrcClient, SyncConfig, SyncState};
use kbgap_service::Retention;
use kbgap_store::SqliteStore;
use time::OffsetDateTime;

const TARGET_NOTHING_CHANGED: Duration = Duration::from_secs(1);

/// The mirror's content: the listing (CvrfUrl rewritten to the mirror) and each document.
struct Mirror {
    listing: Vec<u8>,
    docs: BTreeMap<String, Vec<u8>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let archive = shared_data().join("msrc-cvrf");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("index.json"))?)?;
    let mut entries = index["value"].as_array().cloned().unwrap_or_default();
    let mut docs = BTreeMap::new();
    for e in &mut entries {
        let id = e["ID"].as_str().unwrap_or_default().to_string();
        let zst = std::fs::read(archive.join(format!("{id}.xml.zst")))?;
        docs.insert(id.clone(), zstd::decode_all(&zst[..])?);
        e["CvrfUrl"] = format!("{base}/cvrf/v3.0/cvrf/{id}").into();
    }
    let listing = serde_json::to_vec(&serde_json::json!({ "value": entries }))?;
    let mirror = Arc::new(Mirror { listing, docs });
    let served = mirror.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve(stream, &served);
        }
    });

    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path())?;
    let client = MsrcClient::new(SyncConfig {
        base_url: base.clone(),
        ..SyncConfig::default()
    });
    let mut state = SyncState::default();
    let start = Instant::now();
    let first = kbgap_service::sync_catalog(
        &store,
        &client,
        &mut state,
        None,
        OffsetDateTime::now_utc(),
        Retention::default(),
        &mut |_| {},
    )?;
    let full = start.elapsed();
    println!(
        "first sync: {} documents fetched and imported, generation {}: {:.2}s",
        first.fetched.len(),
        first.generation,
        full.as_secs_f64()
    );

    // Nothing changed, with the remembered validator (304) and without it (200 + compare).
    let mut outcome = String::new();
    let conditional = time_runs(runs, || {
        match kbgap_service::sync_catalog(
            &store,
            &client,
            &mut state,
            None,
            OffsetDateTime::now_utc(),
            Retention::default(),
            &mut |_| {},
        ) {
            Ok(r) => {
                outcome = format!(
                    "generation {}, {} fetched, listing not modified: {}",
                    r.generation,
                    r.fetched.len(),
                    r.listing_not_modified
                )
            }
            Err(e) => outcome = format!("error: {e}"),
        }
    });
    println!("nothing changed (conditional listing): {outcome}");
    let unconditional = time_runs(runs, || {
        let mut fresh = SyncState::default();
        if let Err(e) = kbgap_service::sync_catalog(
            &store,
            &client,
            &mut fresh,
            None,
            OffsetDateTime::now_utc(),
            Retention::default(),
            &mut |_| {},
        ) {
            outcome = format!("error: {e}");
        }
    });
    let c = median(&conditional);
    let u = median(&unconditional);
    println!(
        "sync with nothing changed: median {:.1} ms with ETag (304), {:.1} ms without ({} runs each)",
        c.as_secs_f64() * 1000.0,
        u.as_secs_f64() * 1000.0,
        runs
    );
    println!(
        "target <= {} ms: {} ({:.3}x of target, worst case {:.3}x); first full sync is {:.0}x a no-change sync",
        TARGET_NOTHING_CHANGED.as_millis(),
        if c.max(u) <= TARGET_NOTHING_CHANGED {
            "met"
        } else {
            "MISSED"
        },
        c.as_secs_f64() / TARGET_NOTHING_CHANGED.as_secs_f64(),
        u.as_secs_f64() / TARGET_NOTHING_CHANGED.as_secs_f64(),
        full.as_secs_f64() / c.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// One HTTP/1.1 request: the listing (with an ETag honoured by If-None-Match) or a document.
fn serve(stream: TcpStream, mirror: &Mirror) {
    let Ok(read) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut if_none_match = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_string());
            }
        }
    }
    let etag = format!("\"{}\"", mirror.listing.len());
    let (status, body, tag): (u16, &[u8], Option<&str>) = if path == "/cvrf/v3.0/updates" {
        if if_none_match.as_deref() == Some(etag.as_str()) {
            (304, &[], Some(&etag))
        } else {
            (200, &mirror.listing, Some(&etag))
        }
    } else if let Some(d) = path
        .strip_prefix("/cvrf/v3.0/cvrf/")
        .and_then(|id| mirror.docs.get(id))
    {
        (200, d, None)
    } else {
        (404, b"not found", None)
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = tag {
        head.push_str(&format!("ETag: {t}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}
