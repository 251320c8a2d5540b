//! Benchmark: importing the whole MSRC archive (190 `.xml.zst` documents) into a fresh
//! embedded store — read, decompress, parse, compile, store — against the targets.
//!
//! `cargo run --release -p kbgap-bench --bin catalog_import [-- RUNS]`
//!
//! With `--under-load`, the import of the archive's last months into a store of many
//! machines, with and without a steady writer ingesting meanwhile (see `under_load`):
//!
//! `cargo run --release -p kbgap-bench --bin catalog_import -- --under-load [--machines N]
//! [--months M] [--runs R] [--postgres | --postgres-only]`

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kbgap_bench::{median, peak_rss_bytes, shared_data};
use kbgap_domain::catalog::Track;
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{Arch, Branch, Catalog, KbId, SoftwareId, TenantId};
use kbgap_inventory::Snapshot;
use kbgap_service::{CatalogHolder, CompiledCatalog, Retention};
use kbgap_store::test_support::TestSchema;
use kbgap_store::{MachineRecord, PostgresStore, SqliteStore, Store};
use serde_json::json;
use time::OffsetDateTime;

/// The targets on the 2-core reference machine.
const TARGET_WALL: Duration = Duration::from_secs(15);
const TARGET_PEAK_MB: u64 = 600;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--under-load") {
        return under_load(&args);
    }
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

// ---------------------------------------------------------------------------------------------
// --under-load

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const TENANTS: [&str; 2] = [
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "0b5c7b8e-4a52-4bd7-8a1e-9f4c8c3e2d10",
];

/// The value following `name` among the arguments, parsed.
fn option<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> BoxResult<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number").into()),
    }
}

/// The import of the archive's last `--months` documents (by release) into a store holding
/// the earlier ones and `--machines` machines evaluated against them, timed from the call to
/// its return: planning, compiling, re-evaluating every machine, writing. Each figure is
/// taken on a fresh store, alone and then with a steady writer (another replica's store and
/// catalog) ingesting meanwhile: ten single-machine PUTs a second (a fleet of 100,000
/// machines reporting daily writes about 1.2 a second) and a 1,000-machine batch every 5 s,
/// all machines that report again. The writer's latencies show how long ingestion waits for
/// the import's transaction.
fn under_load(args: &[String]) -> BoxResult<()> {
    let machines: usize = option(args, "--machines", 113_000)?;
    let months: usize = option(args, "--months", 6)?;
    let runs: usize = option(args, "--runs", 3)?;
    let postgres = args.iter().any(|a| a == "--postgres");
    let archive = shared_data().join("msrc-cvrf");
    let mut docs = kbgap_catalog::read_documents(&[&archive])?;
    docs.sort_by(|a, b| (a.initial_release, &a.id).cmp(&(b.initial_release, &b.id)));
    let slice = docs.split_off(docs.len() - months);
    let base = docs;
    println!(
        "store: {} documents and {machines} machines; import: {} ({} documents)",
        base.len(),
        slice
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        slice.len()
    );
    let now = OffsetDateTime::now_utc();
    let retention = Retention::default();
    let compiled = CompiledCatalog::new(kbgap_service::compile(&base, None), 1);
    let fleet = fleet(&compiled.catalog, machines, now);
    let records: Vec<(TenantId, Vec<MachineRecord>)> = fleet
        .iter()
        .map(|(t, batch)| {
            let records = batch
                .iter()
                .map(|s| MachineRecord {
                    id: s.id.clone().unwrap_or_else(|| unreachable!()),
                    last_seen: s.last_seen.unix_timestamp(),
                    snapshot: serde_json::to_string(s).unwrap_or_default(),
                    evaluation: compiled.evaluate(&s.facts().unwrap_or_else(|e| panic!("{e}"))),
                })
                .collect();
            (t.clone(), records)
        })
        .collect();
    println!(
        "fleet: {machines} machines in {} evaluation classes",
        compiled.class_count()
    );
    drop(compiled);

    let mut backends = vec!["SQLite"];
    if args.iter().any(|a| a == "--postgres-only") {
        backends.clear();
    }
    if postgres || backends.is_empty() {
        backends.push("PostgreSQL");
    }
    for backend in backends {
        let mut alone = Vec::new();
        let mut loaded = Vec::new();
        for run in 1..=runs.max(1) {
            for writer in [false, true] {
                let db = Db::fresh(backend)?;
                let store = db.open()?;
                kbgap_service::import_catalog(store.as_ref(), &base, None, now, retention)?;
                let active_since = retention.active_since(now);
                for (t, batch) in &records {
                    store.put_machines(t, batch, 1, active_since)?;
                }
                let m = measure(&db, store.as_ref(), &slice, &fleet, writer, now)?;
                println!(
                    "{backend} run {run}{}: import {:.2}s, {} machines re-evaluated{}",
                    if writer { ", with the writer" } else { "" },
                    m.wall.as_secs_f64(),
                    m.reevaluated,
                    if writer {
                        format!(
                            " ({} written during the import); writer: {} writes begun during the \
                             import, write latency median {:.0} ms, max {:.0} ms",
                            m.changed,
                            m.latencies.len(),
                            median(&m.latencies).as_secs_f64() * 1e3,
                            m.latencies
                                .last()
                                .copied()
                                .unwrap_or_default()
                                .as_secs_f64()
                                * 1e3
                        )
                    } else {
                        String::new()
                    }
                );
                if writer {
                    loaded.push(m.wall);
                } else {
                    alone.push(m.wall);
                }
            }
        }
        alone.sort();
        loaded.sort();
        let (a, l) = (median(&alone), median(&loaded));
        println!(
            "{backend}: import of {} months into {machines} machines, median of {}: alone \
             {:.2}s, with the writer {:.2}s ({:.2}x)",
            slice.len(),
            alone.len(),
            a.as_secs_f64(),
            l.as_secs_f64(),
            l.as_secs_f64() / a.as_secs_f64()
        );
    }
    Ok(())
}

enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(TestSchema),
}

impl Db {
    fn fresh(backend: &str) -> BoxResult<Db> {
        Ok(match backend {
            "SQLite" => Db::Sqlite(tempfile::tempdir()?),
            _ => Db::Postgres(TestSchema::create().ok_or("PostgreSQL cannot be reached")?),
        })
    }

    fn open(&self) -> BoxResult<Box<dyn Store>> {
        Ok(match self {
            Db::Sqlite(dir) => Box::new(SqliteStore::open(dir.path())?),
            Db::Postgres(s) => Box::new(PostgresStore::open(s.url())?),
        })
    }
}

struct Measured {
    wall: Duration,
    reevaluated: usize,
    changed: usize,
    /// Of the writes begun during the import, sorted.
    latencies: Vec<Duration>,
}

fn measure(
    db: &Db,
    store: &dyn Store,
    slice: &[CvrfDocument],
    fleet: &[(TenantId, Vec<Snapshot>)],
    writer: bool,
    now: OffsetDateTime,
) -> BoxResult<Measured> {
    let stop = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::new());
    let writer_store = db.open()?;
    let holder = CatalogHolder::load(writer_store.as_ref())?;
    let (report, wall) = std::thread::scope(|scope| {
        if writer {
            let (stop, latencies, holder) = (&stop, &latencies, &holder);
            let writer_store = writer_store.as_ref();
            scope.spawn(move || {
                steady_writer(writer_store, holder, fleet, now, stop, latencies);
            });
        }
        let start = Instant::now();
        let report = kbgap_service::import_catalog(store, slice, None, now, Retention::default());
        let wall = start.elapsed();
        stop.store(true, Ordering::SeqCst);
        (report, wall)
    });
    let report = report?;
    let mut latencies = latencies.into_inner().unwrap_or_default();
    latencies.sort();
    Ok(Measured {
        wall,
        reevaluated: report.machines_reevaluated,
        changed: report.machines_changed_during_import,
        latencies,
    })
}

/// Ten single-machine writes a second and a 1,000-machine batch every 5 s, of machines of
/// the fleet reporting again, until `stop`.
fn steady_writer(
    store: &dyn Store,
    holder: &CatalogHolder,
    fleet: &[(TenantId, Vec<Snapshot>)],
    now: OffsetDateTime,
    stop: &AtomicBool,
    latencies: &Mutex<Vec<Duration>>,
) {
    let start = Instant::now();
    let mut n = 0usize;
    let mut next_batch = Duration::ZERO;
    while !stop.load(Ordering::SeqCst) {
        let (tenant, machines) = &fleet[n % fleet.len()];
        let write = |snapshots: &[Snapshot]| {
            let t = Instant::now();
            kbgap_service::ingest(store, holder, tenant, snapshots, now, Retention::default())
                .unwrap_or_else(|e| panic!("a write during the import failed: {e}"));
            t.elapsed()
        };
        let took = if start.elapsed() >= next_batch {
            next_batch += Duration::from_secs(5);
            let first = (n * 1_000) % machines.len().saturating_sub(1_000).max(1);
            write(&machines[first..(first + 1_000).min(machines.len())])
        } else {
            write(std::slice::from_ref(
                &machines[(n * 7_919) % machines.len()],
            ))
        };
        // Every write begun before the import returned, the one that waited for it included.
        latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took);
        n += 1;
        let due = Duration::from_millis(100) * n as u32;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// An OS of the fleet: platform, build, and the cumulative revisions the catalog knows for
/// it (ascending) with their KBs.
struct Os {
    platform: &'static str,
    build: u32,
    revisions: Vec<(u32, KbId)>,
}

fn os(catalog: &Catalog, platform: &'static str, software: &str, build: u32) -> Os {
    let sw = SoftwareId::microsoft(software);
    let mut revisions = BTreeSet::new();
    for e in catalog.entries_for(&sw) {
        let Some(host) = &e.class.host else { continue };
        if Branch::of(host.build) != Branch::of(build) || host.arch != Arch::X64 {
            continue;
        }
        if e.track == Track::Cumulative && !e.wrong_branch {
            if let Some(r) = e.fixed_revision {
                revisions.insert((r, e.kb));
            }
        }
    }
    assert!(
        !revisions.is_empty(),
        "the catalog has no revisions of {software}"
    );
    Os {
        platform,
        build,
        revisions: revisions.into_iter().collect(),
    }
}

/// A managed fleet over two tenants, in batches of 1,000: four OSes, each at one of its 13
/// newest patch levels with that level's cumulative updates installed, one of 3 software
/// images, one machine in 50 with an application of its own.
fn fleet(
    catalog: &Catalog,
    machines: usize,
    now: OffsetDateTime,
) -> Vec<(TenantId, Vec<Snapshot>)> {
    let oses = [
        os(catalog, "Windows10", "windows_10", 19045),
        os(catalog, "Windows11", "windows_11", 22631),
        os(catalog, "WindowsServer2019", "windows_server_2019", 17763),
        os(catalog, "WindowsServer2022", "windows_server_2022", 20348),
    ];
    let seen = (now - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let tenants: Vec<TenantId> = TENANTS
        .iter()
        .map(|t| TenantId::parse(t).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let snapshot = |n: usize| -> Snapshot {
        let o = &oses[n % oses.len()];
        let levels: Vec<u32> = o
            .revisions
            .iter()
            .map(|(r, _)| *r)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let behind = (n / 4) % 13;
        let rev = levels[levels.len() - 1 - behind.min(levels.len() - 1)];
        let kbs: Vec<String> = o
            .revisions
            .iter()
            .rev()
            .filter(|(r, _)| *r <= rev)
            .take(20)
            .map(|(_, kb)| format!("KB{kb}"))
            .collect();
        let image = (n / 52) % 3;
        let mut software = vec![
            json!({"id": "microsoft-_-edge_chromium-based", "version": "120.0.2210.144"}),
            json!({"vendor": "Microsoft", "name": ".NET Framework", "version": "4.8"}),
        ];
        for k in 0..5 {
            let a = image * 37 + k * 11;
            software.push(json!({"vendor": format!("vendor{}", a % 40), "name": format!("app {a}"), "version": "1.0"}));
        }
        if n.is_multiple_of(50) {
            software.push(json!({"vendor": "contoso", "name": "tool", "version": format!("{n}")}));
        }
        let value = json!({
            "id": format!("m{n:06}"),
            "lastSeen": seen,
            "osPlatform": o.platform,
            "osBuild": format!("10.0.{}.{rev}", o.build),
            "osArchitecture": "x64",
            "software": software,
            "installedKbs": kbs,
            "installedKbsComplete": true,
            "installedKbsSources": ["wmicQfe"],
        });
        kbgap_inventory::parse_snapshot(value.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let all: Vec<Snapshot> = (0..machines).map(snapshot).collect();
    let mut out = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let mine: Vec<Snapshot> = all
            .iter()
            .enumerate()
            .filter(|(n, _)| n % tenants.len() == i)
            .map(|(_, s)| s.clone())
            .collect();
        for batch in mine.chunks(1_000) {
            out.push((t.clone(), batch.to_vec()));
        }
    }
    out
}
