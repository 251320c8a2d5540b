//! A catalog import while machines keep reporting, on SQLite and on PostgreSQL, with real MSRC
//! documents (October 2023 to March 2024, parsed once per test process): the import
//! completes, every machine ends evaluated against the new catalog, and the counts equal a
//! recount from scratch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{MachineId, SoftwareId, TenantId};
use kbgap_inventory::Snapshot;
use kbgap_service::{CatalogHolder, CompiledCatalog, ImportReport, Retention};
use kbgap_store::test_support::{Recount, TestSchema};
use kbgap_store::{
    CatalogState, ImportLock, ImportOutcome, ImportSummary, MachineRecord, MissingCount,
    PostgresStore, Reevaluate, Reevaluated, SqliteStore, Store, StoredMachine,
};
use time::OffsetDateTime;

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf"
);

/// The six monthly documents, October 2023 to March 2024.
fn documents() -> &'static [CvrfDocument] {
    static DOCS: OnceLock<Vec<CvrfDocument>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let files: Vec<String> = [
            "2023-Oct", "2023-Nov", "2023-Dec", "2024-Jan", "2024-Feb", "2024-Mar",
        ]
        .iter()
        .map(|m| format!("{ARCHIVE}/{m}.xml.zst"))
        .collect();
        let mut docs = kbgap_catalog::read_documents(&files).expect("the real archive parses");
        docs.sort_by_key(|d| d.initial_release);
        docs
    })
}

fn months(ids: &[&str]) -> Vec<CvrfDocument> {
    ids.iter()
        .map(|id| {
            documents()
                .iter()
                .find(|d| d.id == *id)
                .unwrap_or_else(|| panic!("{id} is in the archive"))
                .clone()
        })
        .collect()
}

/// The catalog ingestion starts with: the last quarter of 2023.
fn q4_2023() -> Vec<CvrfDocument> {
    months(&["2023-Oct", "2023-Nov", "2023-Dec"])
}

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestSchema),
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Option<Backend> {
        TestSchema::create().map(Backend::Postgres)
    }

    /// A store on the database (each call another process's, or another replica's).
    fn open(&self) -> Box<dyn Store> {
        match self {
            Backend::Sqlite(dir) => Box::new(SqliteStore::open(dir.path()).unwrap()),
            Backend::Postgres(s) => Box::new(PostgresStore::open(s.url()).unwrap()),
        }
    }

    fn recount(&self) -> Recount {
        match self {
            Backend::Sqlite(dir) => Recount::sqlite(dir.path()),
            Backend::Postgres(s) => Recount::postgres(s.url()),
        }
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn w10() -> SoftwareId {
    SoftwareId::microsoft("windows_10")
}

/// The OS builds of the synthetic fleet: Windows 10 22H2, Windows 11 23H2 and Server 2022
/// at revisions of the last quarter of 2023 and before.
const BUILDS: &[(&str, &str)] = &[
    ("Windows10", "10.0.19045.3570"),
    ("Windows10", "10.0.19045.3693"),
    ("Windows10", "10.0.19045.3803"),
    ("Windows10", "10.0.19045.3448"),
    ("Windows11", "10.0.22631.2428"),
    ("Windows11", "10.0.22631.2715"),
    ("Windows11", "10.0.22631.2861"),
    ("WindowsServer2022", "10.0.20348.2031"),
    ("WindowsServer2022", "10.0.20348.2113"),
    ("WindowsServer2022", "10.0.20348.2159"),
];

/// A machine seen a day before `now`, with the `n`-th OS build of the fleet (and Edge on
/// every other one).
fn snapshot(id: &str, n: usize, now: OffsetDateTime) -> Snapshot {
    let (platform, build) = BUILDS[n % BUILDS.len()];
    let seen = (now - time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let software = if n.is_multiple_of(2) {
        r#","software":[{"id":"microsoft-_-edge","version":"119.0.2151.58"}]"#
    } else {
        ""
    };
    kbgap_inventory::parse_snapshot(
        format!(
            r#"{{"id":"{id}","lastSeen":"{seen}","osPlatform":"{platform}","osBuild":"{build}","osArchitecture":"x64"{software}}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

/// A store holding the last quarter of 2023 and `machines` machines spread over two tenants.
fn fleet(store: &dyn Store, machines: usize, now: OffsetDateTime) -> CatalogHolder {
    kbgap_service::import_catalog(store, &q4_2023(), None, now, Retention::default()).unwrap();
    let holder = CatalogHolder::load(store).unwrap();
    for (t, name) in [(0, "contoso"), (1, "fabrikam")] {
        let snapshots: Vec<Snapshot> = (0..machines)
            .filter(|i| i % 2 == t)
            .map(|i| snapshot(&format!("pc-{i:05}"), i, now))
            .collect();
        for batch in snapshots.chunks(1_000) {
            kbgap_service::ingest(
                store,
                &holder,
                &tenant(name),
                batch,
                now,
                Retention::default(),
            )
            .unwrap();
        }
    }
    holder
}

/// Checks that the counts are exact: as stored and as counted again from the stored results,
/// and as the stored snapshots evaluate, each from scratch, against the stored catalog.
fn assert_counts_from_scratch(backend: &Backend, store: &dyn Store, now: OffsetDateTime) {
    backend.recount().assert_exact();
    let state = store.catalog_state().unwrap();
    let catalog = CompiledCatalog::new(
        kbgap_service::compile(&store.load_documents().unwrap(), state.as_of),
        state.generation,
    );
    let active_since = Retention::default().active_since(now);
    let mut expected: BTreeMap<(TenantId, SoftwareId), BTreeMap<u32, u32>> = BTreeMap::new();
    for (t, _, json) in store.all_machines().unwrap() {
        let snapshot = kbgap_inventory::parse_snapshot(json.as_bytes()).unwrap();
        if snapshot.last_seen.unix_timestamp() < active_since {
            continue;
        }
        let evaluation = catalog.evaluate(&snapshot.facts().unwrap());
        for software in &evaluation.software {
            let kbs = expected.entry((t.clone(), software.clone())).or_default();
            for kb in evaluation.missing.get(software).into_iter().flatten() {
                *kbs.entry(kb.number()).or_default() += 1;
            }
        }
    }
    assert!(!expected.is_empty());
    for ((t, software), kbs) in &expected {
        assert!(store.software_known(t, software).unwrap(), "{t} {software}");
        let stored: BTreeMap<u32, u32> = store
            .missing_counts(t, software)
            .unwrap()
            .into_iter()
            .map(|MissingCount { kb, machines }| (kb.number(), machines))
            .collect();
        assert_eq!(&stored, kbs, "{t} {software}");
    }
}

// ---------------------------------------------------------------------------------------------
// A steady writer during the import

/// What the writer did.
#[derive(Debug, Default)]
struct Writes {
    singles: AtomicUsize,
    batches: AtomicUsize,
    deletions: AtomicUsize,
}

impl Writes {
    fn total(&self) -> usize {
        self.singles.load(Ordering::SeqCst)
            + self.batches.load(Ordering::SeqCst)
            + self.deletions.load(Ordering::SeqCst)
    }
}

/// Writes without pause until `stop`: single machines (new ones and rewrites of stored
/// ones), batches of 200, and a deletion now and then, as a fleet reporting does. Every write
/// must succeed.
fn steady_writer(
    store: &dyn Store,
    holder: &CatalogHolder,
    fleet: usize,
    now: OffsetDateTime,
    stop: &AtomicBool,
    writes: &Writes,
) {
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let t = tenant(if n.is_multiple_of(2) {
            "contoso"
        } else {
            "fabrikam"
        });
        let result = match n % 10 {
            0 => {
                let batch: Vec<Snapshot> = (0..200)
                    .map(|i| snapshot(&format!("batch-{n}-{i}"), n + i, now))
                    .collect();
                let r = kbgap_service::ingest(store, holder, &t, &batch, now, Retention::default());
                writes.batches.fetch_add(1, Ordering::SeqCst);
                r
            }
            5 => {
                // A machine of the fleet of this tenant leaves.
                let id = MachineId::parse(&format!("pc-{:05}", (n * 7919) % fleet)).unwrap();
                store.delete_machine(&t, &id).unwrap();
                writes.deletions.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            k => {
                // A machine of the fleet reports again at another build, or a new one appears.
                let id = if k.is_multiple_of(2) {
                    format!("pc-{:05}", (n * 104_729) % fleet)
                } else {
                    format!("new-{n}")
                };
                let r = kbgap_service::ingest(
                    store,
                    holder,
                    &t,
                    &[snapshot(&id, n * 3, now)],
                    now,
                    Retention::default(),
                );
                writes.singles.fetch_add(1, Ordering::SeqCst);
                r
            }
        };
        result.unwrap_or_else(|e| panic!("a write during the import failed: {e}"));
    }
}

fn import_during_steady_writes(backend: &Backend) {
    const FLEET: usize = 4_000;
    let now = OffsetDateTime::now_utc();
    let store = backend.open();
    let holder = fleet(store.as_ref(), FLEET, now);
    let before = store.catalog_state().unwrap().generation;
    // The writer is another replica: its own store and its own catalog in memory.
    let writer_store = backend.open();
    let writer_holder = CatalogHolder::load(writer_store.as_ref()).unwrap();
    drop(holder);
    let stop = AtomicBool::new(false);
    let writes = Writes::default();
    let (report, during) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            steady_writer(
                writer_store.as_ref(),
                &writer_holder,
                FLEET,
                now,
                &stop,
                &writes,
            )
        });
        // Writes are flowing before the import starts.
        while writes.total() < 20 && !writer.is_finished() {
            std::thread::yield_now();
        }
        let started = writes.total();
        let report = kbgap_service::import_catalog(
            store.as_ref(),
            &months(&["2024-Jan", "2024-Feb", "2024-Mar"]),
            None,
            now,
            Retention::default(),
        );
        let during = writes.total() - started;
        // And go on after it.
        let after = writes.total();
        while writes.total() < after + 20 && !writer.is_finished() {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        (report, during)
    });
    let report: ImportReport = report.unwrap();
    assert_eq!(report.summary.stored, ["2024-Feb", "2024-Jan", "2024-Mar"]);
    assert_eq!(report.generation, before + 1);
    assert_eq!(store.catalog_state().unwrap().generation, before + 1);
    assert!(during > 0, "no write landed while the import ran");
    eprintln!(
        "{} writes during the import ({} singles, {} batches, {} deletions in all); \
         {} machines re-evaluated, {} of them written during the import",
        during,
        writes.singles.load(Ordering::SeqCst),
        writes.batches.load(Ordering::SeqCst),
        writes.deletions.load(Ordering::SeqCst),
        report.machines_reevaluated,
        report.machines_changed_during_import
    );
    assert_counts_from_scratch(backend, store.as_ref(), now);
}

#[test]
fn sqlite_import_completes_while_machines_keep_reporting() {
    import_during_steady_writes(&Backend::sqlite());
}

#[test]
fn postgres_import_completes_while_machines_keep_reporting() {
    if let Some(b) = Backend::postgres() {
        import_during_steady_writes(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// Writes at the worst moment: after the import read the machines, before it writes

/// What [`AfterRead`] runs: writes through the store it wraps.
type Hook<'a> = Box<dyn FnOnce(&dyn Store) + Send + 'a>;

/// A store that runs `hook` once, right after a catalog import read the machines.
struct AfterRead<'a> {
    inner: &'a dyn Store,
    hook: Mutex<Option<Hook<'a>>>,
}

impl Store for AfterRead<'_> {
    fn catalog_state(&self) -> kbgap_store::Result<CatalogState> {
        self.inner.catalog_state()
    }
    fn load_documents(&self) -> kbgap_store::Result<Vec<CvrfDocument>> {
        self.inner.load_documents()
    }
    fn plan_import(&self, docs: &[CvrfDocument]) -> kbgap_store::Result<ImportSummary> {
        self.inner.plan_import(docs)
    }
    fn lock_catalog_imports(&self) -> kbgap_store::Result<ImportLock<'_>> {
        self.inner.lock_catalog_imports()
    }
    fn import_catalog(
        &self,
        docs: &[CvrfDocument],
        kbs: &[kbgap_domain::catalog::KbInfo],
        as_of: Option<time::Date>,
        generation: i64,
        results: &[Reevaluated],
        active_since: i64,
        reevaluate: &mut Reevaluate<'_>,
    ) -> kbgap_store::Result<ImportOutcome> {
        self.inner.import_catalog(
            docs,
            kbs,
            as_of,
            generation,
            results,
            active_since,
            reevaluate,
        )
    }
    fn all_machines(&self) -> kbgap_store::Result<Vec<(TenantId, MachineId, String)>> {
        self.inner.all_machines()
    }
    fn machines_for_reevaluation(&self) -> kbgap_store::Result<Vec<StoredMachine>> {
        let read = self.inner.machines_for_reevaluation();
        if let Some(hook) = self.hook.lock().unwrap().take() {
            hook(self.inner);
        }
        read
    }
    fn put_machines(
        &self,
        tenant: &TenantId,
        machines: &[MachineRecord],
        generation: i64,
        active_since: i64,
    ) -> kbgap_store::Result<()> {
        self.inner
            .put_machines(tenant, machines, generation, active_since)
    }
    fn delete_machine(&self, tenant: &TenantId, id: &MachineId) -> kbgap_store::Result<bool> {
        self.inner.delete_machine(tenant, id)
    }
    fn sweep(&self, active_since: i64) -> kbgap_store::Result<usize> {
        self.inner.sweep(active_since)
    }
    fn software_known(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> kbgap_store::Result<bool> {
        self.inner.software_known(tenant, software)
    }
    fn missing_counts(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> kbgap_store::Result<Vec<MissingCount>> {
        self.inner.missing_counts(tenant, software)
    }
    fn indeterminate_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> kbgap_store::Result<Vec<MachineId>> {
        self.inner.indeterminate_machines(tenant, software)
    }
    fn end_of_servicing_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> kbgap_store::Result<Vec<kbgap_store::ServicingEnded>> {
        self.inner.end_of_servicing_machines(tenant, software)
    }
    fn machine_snapshot(
        &self,
        tenant: &TenantId,
        id: &MachineId,
    ) -> kbgap_store::Result<Option<String>> {
        self.inner.machine_snapshot(tenant, id)
    }
    fn tenant_software(&self, tenant: &TenantId) -> kbgap_store::Result<Vec<SoftwareId>> {
        self.inner.tenant_software(tenant)
    }
    fn exposed_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> kbgap_store::Result<u64> {
        self.inner.exposed_machines(tenant, software)
    }
    fn machines_after(
        &self,
        tenant: &TenantId,
        after: Option<&MachineId>,
        limit: usize,
    ) -> kbgap_store::Result<Vec<kbgap_store::ListedMachine>> {
        self.inner.machines_after(tenant, after, limit)
    }
    fn ping(&self) -> kbgap_store::Result<()> {
        self.inner.ping()
    }
}

fn w10_counts(store: &dyn Store, t: &str) -> Vec<(u32, u32)> {
    store
        .missing_counts(&tenant(t), &w10())
        .unwrap()
        .into_iter()
        .map(|c| (c.kb.number(), c.machines))
        .collect()
}

fn machines_written_while_the_import_evaluates_get_the_new_catalog(backend: &Backend) {
    let now = OffsetDateTime::now_utc();
    let store = backend.open();
    // Windows 10 22H2 at 19045.3570 (October 2023). With the last quarter of 2023 it misses
    // December's cumulative update, KB5033372, the frontier of KB5032189 and KB5033372.
    let holder = fleet(store.as_ref(), 1, now);
    assert_eq!(w10_counts(store.as_ref(), "contoso"), [(5033372, 1)]);
    // While January 2024 is imported, after the import read the machines: pc-00000 reports
    // again and two new machines at the same build appear, all evaluated against the
    // catalog in memory, that of the last quarter of 2023.
    let hook = |inner: &dyn Store| {
        let t = tenant("contoso");
        let again = |id: &str| snapshot(id, 0, now + time::Duration::minutes(1));
        kbgap_service::ingest(
            inner,
            &holder,
            &t,
            &[again("pc-00000"), again("late-1")],
            now,
            Retention::default(),
        )
        .unwrap();
        kbgap_service::ingest(
            inner,
            &holder,
            &t,
            &[again("late-2")],
            now,
            Retention::default(),
        )
        .unwrap();
        assert_eq!(w10_counts(inner, "contoso"), [(5033372, 3)]);
    };
    let wrapped = AfterRead {
        inner: store.as_ref(),
        hook: Mutex::new(Some(Box::new(hook))),
    };
    let report = kbgap_service::import_catalog(
        &wrapped,
        &months(&["2024-Jan"]),
        None,
        now,
        Retention::default(),
    )
    .unwrap();
    assert_eq!(report.summary.stored, ["2024-Jan"]);
    assert_eq!(
        (
            report.machines_reevaluated,
            report.machines_changed_during_import
        ),
        (3, 3)
    );
    // With January 2024 the frontier is KB5034122, for all three (as in MDE's answer for a
    // 19045.3570 machine in January 2024).
    assert_eq!(w10_counts(store.as_ref(), "contoso"), [(5034122, 3)]);
    assert_counts_from_scratch(backend, store.as_ref(), now);
    // A write still evaluated against the previous catalog is refused, the catalog reloaded,
    // and the machine evaluated again.
    assert_eq!(holder.current().generation, report.generation - 1);
    kbgap_service::ingest(
        store.as_ref(),
        &holder,
        &tenant("contoso"),
        &[snapshot("late-3", 0, now)],
        now,
        Retention::default(),
    )
    .unwrap();
    assert_eq!(holder.current().generation, report.generation);
    assert_eq!(w10_counts(store.as_ref(), "contoso"), [(5034122, 4)]);
    assert_counts_from_scratch(backend, store.as_ref(), now);
}

#[test]
fn sqlite_machines_written_while_the_import_evaluates_get_the_new_catalog() {
    machines_written_while_the_import_evaluates_get_the_new_catalog(&Backend::sqlite());
}

#[test]
fn postgres_machines_written_while_the_import_evaluates_get_the_new_catalog() {
    if let Some(b) = Backend::postgres() {
        machines_written_while_the_import_evaluates_get_the_new_catalog(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// Two importers at once

/// Two replicas import the same documents at once: one re-evaluates and stores a new
/// generation; the other waits for it and finds nothing left to do.
#[test]
fn postgres_two_importers_store_one_generation() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    const FLEET: usize = 500;
    let now = OffsetDateTime::now_utc();
    let store = backend.open();
    fleet(store.as_ref(), FLEET, now);
    let before = store.catalog_state().unwrap().generation;
    let replicas = [backend.open(), backend.open()];
    let jan = months(&["2024-Jan"]);
    let mut reports: Vec<ImportReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = replicas
            .iter()
            .map(|r| {
                let jan = &jan;
                scope.spawn(move || {
                    kbgap_service::import_catalog(r.as_ref(), jan, None, now, Retention::default())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    reports.sort_by_key(|r| r.machines_reevaluated);
    assert_eq!(store.catalog_state().unwrap().generation, before + 1);
    let (idle, worked) = (&reports[0], &reports[1]);
    assert_eq!(
        (
            worked.generation,
            worked.machines_reevaluated,
            &worked.summary.stored[..]
        ),
        (before + 1, FLEET, &["2024-Jan".to_string()][..])
    );
    assert_eq!(
        (
            idle.generation,
            idle.machines_reevaluated,
            idle.summary.stored.len()
        ),
        (before + 1, 0, 0)
    );
    assert_eq!(idle.summary.skipped, ["2024-Jan"]);
    assert_counts_from_scratch(&backend, store.as_ref(), now);
}
