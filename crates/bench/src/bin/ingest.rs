//! Sustained ingestion through the batch API: the real server on 127.0.0.1 with the real
//! catalog and an embedded store, fed synthetic snapshots drawn from that catalog.
//!
//! Each snapshot has ~20 software entries and ~40 real KBs of its OS (Windows 10 22H2,
//! Windows 11 23H2, Server 2019, Server 2022, at cumulative revisions 0–12 months behind).
//! Batches of 1,000 are POSTed as JSON arrays; every run stores new machines. Prints
//! machines/s (median of runs) for a managed fleet and for one whose machines are all
//! different, with one and two concurrent clients, then where the time goes for 1,000
//! machines (parse, evaluate, store), measured in-process.
//!
//! With `--postgres [--replicas N]` (default 2) the store is a fresh schema on the PostgreSQL
//! server `KBGAP_TEST_POSTGRES_URL` names (default `postgres://postgres@127.0.0.1:5432/test`),
//! shared by N servers with a store each, and the clients post to the replicas in turn, as a
//! load balancer would.
//!
//! `cargo run --release -p kbgap-bench --bin ingest [-- --postgres [--replicas N]]`

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kbgap_api::{ApiConfig, Application, Services};
use kbgap_auth::{issuer_for, DevIssuer, MintRequest, Validator, ValidatorConfig};
use kbgap_bench::{median, shared_data, time_runs};
use kbgap_domain::catalog::Track;
use kbgap_domain::{Arch, Branch, Catalog, KbId, SoftwareId, TenantId};
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::test_support::TestSchema;
use kbgap_store::{MachineRecord, PostgresStore, SqliteStore, Store};
use serde_json::{json, Value};
use time::OffsetDateTime;

const BATCH: usize = 1000;
const BATCHES_PER_RUN: usize = 10;
const RUNS: usize = 5;
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A tiny deterministic generator (xorshift64*), so every run of the benchmark sees the same
/// fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An OS of the synthetic fleet: its platform name, build, the cumulative revisions the
/// catalog knows for it (ascending) with their KBs, and every KB the catalog has for it.
struct Os {
    platform: &'static str,
    build: u32,
    revisions: Vec<(u32, KbId)>,
    kbs: Vec<KbId>,
    ie: bool,
}

fn os(catalog: &Catalog, platform: &'static str, software: &str, build: u32, ie: bool) -> Os {
    let sw = SoftwareId::microsoft(software);
    let mut revisions = BTreeSet::new();
    let mut kbs = BTreeSet::new();
    for e in catalog.entries_for(&sw) {
        let Some(host) = &e.class.host else { continue };
        if Branch::of(host.build) != Branch::of(build) || host.arch != Arch::X64 {
            continue;
        }
        kbs.insert(e.kb);
        if e.track == Track::Cumulative && !e.wrong_branch {
            if let Some(r) = e.fixed_revision {
                revisions.insert((r, e.kb));
            }
        }
    }
    assert!(
        !revisions.is_empty() && kbs.len() >= 40,
        "catalog has too little for {software}"
    );
    Os {
        platform,
        build,
        revisions: revisions.into_iter().collect(),
        kbs: kbs.into_iter().collect(),
        ie,
    }
}

/// How alike the machines are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fleet {
    /// As managed fleets are: each OS at one of 13 monthly patch levels with that level's
    /// update history, one of 3 software images per OS; 10% of machines drift (one extra
    /// application of their own), so they share an evaluation with no other machine.
    Managed,
    /// Worst case: 40 random KBs of the OS per machine, so no two machines are alike.
    Unique,
}

fn fleet(catalog: &Catalog, kind: Fleet, run: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let oses = [
        os(catalog, "Windows10", "windows_10", 19045, true),
        os(catalog, "Windows11", "windows_11", 22631, false),
        os(
            catalog,
            "WindowsServer2019",
            "windows_server_2019",
            17763,
            true,
        ),
        os(
            catalog,
            "WindowsServer2022",
            "windows_server_2022",
            20348,
            false,
        ),
    ];
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (0..BATCHES_PER_RUN)
        .map(|b| {
            let batch: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let o = &oses[rng.below(oses.len())];
                    // 0–12 monthly levels behind the newest the catalog knows.
                    let levels: Vec<u32> = o.revisions.iter().map(|(r, _)| *r).collect::<BTreeSet<_>>().into_iter().collect();
                    let behind = rng.below(13).min(levels.len() - 1);
                    let rev = levels[levels.len() - 1 - behind];
                    let mut kbs: BTreeSet<String> = BTreeSet::new();
                    match kind {
                        Fleet::Managed => {
                            // The level's history: the newest cumulative KBs up to it, then
                            // the OS's other KBs in catalog order.
                            for (_, kb) in o.revisions.iter().rev().filter(|(r, _)| *r <= rev) {
                                if kbs.len() < 40 {
                                    kbs.insert(format!("KB{kb}"));
                                }
                            }
                            for kb in &o.kbs {
                                if kbs.len() < 40 {
                                    kbs.insert(format!("KB{kb}"));
                                }
                            }
                        }
                        Fleet::Unique => {
                            while kbs.len() < 40 {
                                kbs.insert(format!("KB{}", o.kbs[rng.below(o.kbs.len())]));
                            }
                        }
                    }
                    let mut software = vec![
                        json!({"id": "microsoft-_-edge_chromium-based", "version": "120.0.2210.144"}),
                        json!({"vendor": "Microsoft", "name": ".NET Framework", "version": "4.8"}),
                    ];
                    if o.ie {
                        software.push(json!({"id": "microsoft-_-internet_explorer", "version": "11"}));
                    }
                    let image = rng.below(3);
                    let mut apps = BTreeSet::new();
                    let mut k = 0;
                    while software.len() + apps.len() < 20 {
                        apps.insert(match kind {
                            Fleet::Managed => (image * 37 + k * 11) % 300,
                            Fleet::Unique => rng.below(300),
                        });
                        k += 1;
                    }
                    software.extend(apps.into_iter().map(|a| {
                        json!({"vendor": format!("vendor{}", a % 40), "name": format!("app {a}"), "version": format!("{}.{}", a % 7, a % 11)})
                    }));
                    if kind == Fleet::Managed && rng.below(10) == 0 {
                        software.push(json!({"vendor": "contoso", "name": "tool", "version": format!("{}", rng.next())}));
                    }
                    let n = b * BATCH + i;
                    json!({
                        "id": format!("r{run}-m{n:06}"),
                        "computerDnsName": format!("r{run}-m{n:06}.contoso.com"),
                        "lastSeen": now,
                        "osPlatform": o.platform,
                        "osBuild": format!("10.0.{}.{rev}", o.build),
                        "osArchitecture": "x64",
                        "software": software,
                        "installedKbs": kbs.into_iter().collect::<Vec<_>>(),
                        "installedKbsComplete": image != 2,
                        "installedKbsSources": ["wmicQfe"],
                        "deviceGroup": format!("group-{}", n % 8),
                    })
                })
                .collect();
            serde_json::to_vec(&batch).unwrap_or_default()
        })
        .collect()
}

struct Server {
    base: String,
    token: String,
}

/// Where the benchmark stores: the embedded SQLite (one server), or a fresh PostgreSQL schema
/// shared by `replicas` servers, each with its own store (connections) as separate processes
/// would have.
enum Storage {
    Sqlite,
    Postgres { schema: TestSchema, replicas: usize },
}

impl Storage {
    fn replicas(&self) -> usize {
        match self {
            Storage::Sqlite => 1,
            Storage::Postgres { replicas, .. } => *replicas,
        }
    }

    fn open(&self, dir: &std::path::Path) -> Arc<dyn Store> {
        match self {
            Storage::Sqlite => Arc::new(SqliteStore::open(dir).expect("store")),
            Storage::Postgres { schema, .. } => {
                Arc::new(PostgresStore::open(schema.url()).expect("PostgreSQL store"))
            }
        }
    }
}

/// The servers (one per replica) with the catalog imported, and the catalog they hold.
fn start(
    docs: &[kbgap_domain::cvrf::CvrfDocument],
    storage: &Storage,
    dir: &std::path::Path,
) -> (Vec<Server>, Arc<CatalogHolder>) {
    let first = storage.open(dir);
    let t = Instant::now();
    kbgap_service::import_catalog(
        first.as_ref(),
        docs,
        None,
        OffsetDateTime::now_utc(),
        Retention::default(),
    )
    .expect("catalog import");
    eprintln!("catalog imported in {:.1}s", t.elapsed().as_secs_f64());
    let dev = DevIssuer::load_or_create(dir).expect("dev issuer");
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let token = dev
        .mint(&MintRequest {
            issuer: issuer_for(kbgap_auth::DEV_ISSUER_TEMPLATE, &tenant),
            tenant,
            audience: "https://api.securitycenter.microsoft.com".into(),
            app_id: "bench".into(),
            roles: vec!["Machine.ReadWrite.All".into()],
            scopes: Vec::new(),
            ttl: Duration::from_secs(3600),
            now_unix: OffsetDateTime::now_utc().unix_timestamp(),
        })
        .expect("token");
    let mut servers = Vec::new();
    let mut holder = None;
    for replica in 0..storage.replicas() {
        let store = if replica == 0 {
            first.clone()
        } else {
            storage.open(dir)
        };
        let catalog = Arc::new(CatalogHolder::load(store.as_ref()).expect("catalog"));
        holder.get_or_insert_with(|| catalog.clone());
        let validator = Validator::new(
            ValidatorConfig {
                issuer_templates: vec![kbgap_auth::DEV_ISSUER_TEMPLATE.to_string()],
                ..ValidatorConfig::default()
            },
            dev.key_source(),
        )
        .expect("validator");
        let config = ApiConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            // The benchmark measures ingestion, not the limiter.
            rate_limits: kbgap_api::RateLimits {
                default: kbgap_api::ratelimit::Quota::per_minute(u64::MAX / 2),
                ..kbgap_api::RateLimits::default()
            },
            ..ApiConfig::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let app = Application::bind(
                    config,
                    Services {
                        store,
                        catalog,
                        validator: Arc::new(validator),
                        dev_issuer: None,
                        security: Arc::new(kbgap_api::Security::default()),
                    },
                )
                .await
                .expect("bind");
                let _ = tx.send(app.local_addr());
                let _ = app.run(std::future::pending()).await;
            });
        });
        let addr = rx.recv().expect("server address");
        servers.push(Server {
            base: format!("http://{addr}"),
            token: token.clone(),
        });
    }
    (servers, holder.expect("one replica at least"))
}

fn post_all(server: &Server, batches: &[Vec<u8>]) {
    let client = reqwest::blocking::Client::new();
    for body in batches {
        let r = client
            .post(format!("{}/api/inventory/machines", server.base))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .expect("request");
        assert!(
            r.status().is_success(),
            "{}: {}",
            r.status(),
            r.text().unwrap_or_default()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let storage = if args.iter().any(|a| a == "--postgres") {
        let replicas = args
            .iter()
            .position(|a| a == "--replicas")
            .and_then(|i| args.get(i + 1))
            .map_or(2, |n| n.parse().expect("--replicas N"));
        let schema = TestSchema::create().expect("PostgreSQL (KBGAP_TEST_POSTGRES_URL)");
        Storage::Postgres { schema, replicas }
    } else {
        Storage::Sqlite
    };
    let docs =
        kbgap_catalog::read_documents(&[shared_data().join("msrc-cvrf")]).expect("MSRC archive");
    let dir = tempfile::tempdir().expect("temp dir");
    let (servers, holder) = start(&docs, &storage, dir.path());
    let replicas = servers.len();
    let catalog = holder.current();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let machines = BATCH * BATCHES_PER_RUN;
    let backend = match storage {
        Storage::Sqlite => "SQLite".to_string(),
        Storage::Postgres { .. } => format!("PostgreSQL, {replicas} replica(s)"),
    };

    // Warm-up (connections, page cache, allocator), not counted.
    post_all(
        &servers[0],
        &fleet(&catalog.catalog, Fleet::Managed, 1000, &mut rng),
    );

    let rate = |d: Duration| machines as f64 / d.as_secs_f64();
    let mut run = 0;
    let mut stored = machines;
    for (kind, name, runs) in [
        (Fleet::Managed, "managed fleet", RUNS),
        (Fleet::Unique, "no two machines alike", 3),
    ] {
        // Each client posts to one replica, as a load balancer spreads them.
        for clients in [replicas, 2 * replicas] {
            let fleets: Vec<Vec<Vec<u8>>> = (0..runs)
                .map(|_| {
                    run += 1;
                    fleet(&catalog.catalog, kind, run, &mut rng)
                })
                .collect();
            let mut next = fleets.iter();
            let times = time_runs(runs, || {
                let Some(f) = next.next() else { return };
                let share = f.len().div_ceil(clients);
                std::thread::scope(|s| {
                    for (i, part) in f.chunks(share).enumerate() {
                        let server = &servers[i % replicas];
                        s.spawn(move || post_all(server, part));
                    }
                });
            });
            stored += machines * runs;
            println!(
                "{backend}, {name}, {clients} client(s): median {:.0} machines/s (runs {:.0}–{:.0}; {machines} machines a run in batches of {BATCH}, {stored} stored after it)",
                rate(median(&times)),
                rate(times[times.len() - 1]),
                rate(times[0]),
            );
        }
    }
    println!(
        "evaluation classes with this catalog: {}",
        catalog.class_count()
    );
    if !matches!(storage, Storage::Sqlite) {
        return;
    }

    // Where the time goes, in-process, for one batch of 1,000.
    let unique = fleet(&catalog.catalog, Fleet::Unique, run + 1, &mut rng);
    let body = &unique[0];
    let parse = median(&time_runs(RUNS, || {
        kbgap_inventory::parse_snapshots(body, false).expect("parse");
    }));
    let snapshots = kbgap_inventory::parse_snapshots(body, false).expect("parse");
    let facts: Vec<_> = snapshots
        .iter()
        .map(|s| s.facts().expect("facts"))
        .collect();
    let evaluate = median(&time_runs(RUNS, || {
        for f in &facts {
            kbgap_domain::evaluate(&catalog.catalog, f);
        }
    }));
    let records: Vec<MachineRecord> = snapshots
        .iter()
        .zip(&facts)
        .map(|(s, f)| MachineRecord {
            id: s.id.clone().expect("id"),
            last_seen: s.last_seen.unix_timestamp(),
            snapshot: serde_json::to_string(s).unwrap_or_default(),
            evaluation: kbgap_domain::evaluate(&catalog.catalog, f).into(),
        })
        .collect();
    let missing: usize = records
        .iter()
        .map(|r| {
            r.evaluation
                .missing
                .values()
                .map(BTreeSet::len)
                .sum::<usize>()
        })
        .sum();
    let dir = tempfile::tempdir().expect("temp dir");
    let scratch = SqliteStore::open(dir.path()).expect("store");
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let mut i = 0;
    let store_new = median(&time_runs(RUNS, || {
        let renamed: Vec<MachineRecord> = records
            .iter()
            .map(|r| MachineRecord {
                id: kbgap_domain::MachineId::parse(&format!("{}-{i}", r.id)).expect("id"),
                ..r.clone()
            })
            .collect();
        scratch
            .put_machines(&tenant, &renamed, 0, 0)
            .expect("store");
        i += 1;
    }));
    let store_replace = median(&time_runs(RUNS, || {
        scratch
            .put_machines(&tenant, &records, 0, 0)
            .expect("store");
    }));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("per batch of {BATCH} (in-process, median of {RUNS}; {} missing (software, KB) pairs in it):", missing);
    println!("  parse + validate JSON: {:7.1} ms", ms(parse));
    println!("  evaluate:              {:7.1} ms", ms(evaluate));
    println!("  store, new machines:   {:7.1} ms", ms(store_new));
    println!("  store, replacing them: {:7.1} ms", ms(store_replace));
}
