//! Benchmark: importing the whole MSRC archive (190 `.xml.zst` documents) into a fresh
//! embedded store — read, decompress, parse, compile, store — against the targets.
//!
//! `cargo run --release -p kbgap-bench --bin catalog_import [-- RUNS]`

use std::time::{Duration, Instant};

use kbgap_bench::{median, peak_rss_bytes, shared_data};
use kbgap_service::Retention;
use kbgap_store::SqliteStore;
use time::OffsetDateTime;

/// The targets on the 2-core reference machine.
const TARGET_WALL: Duration = Duration::from_secs(15);
const TARGET_PEAK_MB: u64 = 600;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let archive = shared_data().join("msrc-cvrf");
    let mut walls = Vec::new();
    let mut parse_times = Vec::new();
    for run in 1..=runs.max(1) {
        let dir = tempfile::tempdir()?;
        let start = Instant::now();
        let docs = kbgap_catalog::read_documents(&[&archive])?;
        let parsed = start.elapsed();
        let store = SqliteStore::open(dir.path())?;
        let report = kbgap_service::import_catalog(
            &store,
            &docs,
            None,
            OffsetDateTime::now_utc(),
            Retention::default(),
        )?;
        drop(docs);
        let wall = start.elapsed();
        println!(
            "run {run}: {} documents, {} KBs, generation {}: read+parse {:.2}s, total {:.2}s",
            report.documents,
            report.kbs,
            report.generation,
            parsed.as_secs_f64(),
            wall.as_secs_f64()
        );
        walls.push(wall);
        parse_times.push(parsed);
    }
    walls.sort();
    parse_times.sort();
    let wall = median(&walls);
    let peak_mb = peak_rss_bytes().unwrap_or(0) / (1024 * 1024);
    println!(
        "catalog import: median wall {:.2}s (read+parse {:.2}s) over {} run(s); peak RSS {} MB",
        wall.as_secs_f64(),
        median(&parse_times).as_secs_f64(),
        walls.len(),
        peak_mb
    );
    println!(
        "targets: wall <= {}s: {} ({:.2}x of target); peak <= {} MB: {} ({:.2}x of target)",
        TARGET_WALL.as_secs(),
        if wall <= TARGET_WALL { "met" } else { "MISSED" },
        wall.as_secs_f64() / TARGET_WALL.as_secs_f64(),
        TARGET_PEAK_MB,
        if peak_mb <= TARGET_PEAK_MB {
            "met"
        } else {
            "MISSED"
        },
        peak_mb as f64 / TARGET_PEAK_MB as f64
    );
    Ok(())
}
