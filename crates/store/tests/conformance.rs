//! The store conformance suite: every test runs against SQLite (a fresh data directory) and
//! against PostgreSQL (a fresh schema of the server `KBGAP_TEST_POSTGRES_URL` names, default
//! `postgres://postgres@127.0.0.1:5432/test`), with the same assertions.
//!
//! Without a reachable PostgreSQL the PostgreSQL tests say so and pass, unless
//! `KBGAP_TEST_REQUIRE_SERVICES=1` (as in CI), where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kbgap_domain::catalog::KbInfo;
use kbgap_domain::cvrf::{CvrfDocument, VendorFix};
use kbgap_domain::lifecycle::EndOfServicing;
use kbgap_domain::{Edition, Evaluation, KbId, MachineId, SoftwareId, TenantId};
use kbgap_store::test_support::{Recount, TestSchema};
use kbgap_store::{
    Backend, BoxError, CatalogState, ImportOutcome, ImportSummary, MachineRecord, MissingCount,
    PostgresStore, Reevaluated, SqliteStore, Store, StoreError,
};
use time::macros::{date, datetime};
use time::PrimitiveDateTime;

// ---------------------------------------------------------------------------------------------
// The two backends

/// A store on a fresh database, and the means to open the same database again.
struct Fixture {
    store: Box<dyn Store>,
    db: Db,
}

enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(TestSchema),
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        Fixture {
            store: Box::new(store),
            db: Db::Sqlite(dir),
        }
    }

    fn postgres() -> Option<Fixture> {
        let schema = TestSchema::create()?;
        let store = PostgresStore::open(schema.url()).unwrap();
        Some(Fixture {
            store: Box::new(store),
            db: Db::Postgres(schema),
        })
    }

    /// Opens the same database again, as a second process or a restart would.
    fn reopen(&self) -> Result<Box<dyn Store>, StoreError> {
        self.db.open()
    }

    /// Another database of the same backend, empty, with no store opened on it.
    fn fresh_db(&self) -> Db {
        match self.db {
            Db::Sqlite(_) => Db::Sqlite(tempfile::tempdir().unwrap()),
            Db::Postgres(_) => Db::Postgres(TestSchema::create().unwrap()),
        }
    }

    /// Records a schema version as a newer kbgap would.
    fn set_schema_version(&self, version: i64) {
        match &self.db {
            Db::Sqlite(dir) => {
                let c = rusqlite::Connection::open(dir.path().join("kbgap.sqlite")).unwrap();
                c.pragma_update(None, "user_version", version).unwrap();
            }
            Db::Postgres(s) => {
                let mut c = s.connect();
                c.execute(
                    &format!(
                        "INSERT INTO {}.schema_migrations (version) VALUES ($1)",
                        s.name()
                    ),
                    &[&version],
                )
                .unwrap();
            }
        }
    }

    /// The counts as stored and as counted again from the stored results.
    fn recount(&self) -> Recount {
        self.db.recount()
    }

    fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }
}

impl Db {
    /// The counts as stored and as counted again from the stored results.
    fn recount(&self) -> Recount {
        match self {
            Db::Sqlite(dir) => Recount::sqlite(dir.path()),
            Db::Postgres(s) => Recount::postgres(s.url()),
        }
    }

    /// Creates the schema as the first migration left it, with one machine stored (as a
    /// kbgap of that schema would store it), before any store opens the database.
    fn create_at_version_1(&self) {
        let machine = "INSERT INTO machines
             (tenant_id, machine_id, last_seen, snapshot, counted, pending_restart)
             VALUES ('contoso', 'old', 2000, '{\"id\":\"old\",\"lastSeen\":2000}', 1 = 1, 1 = 0)";
        match self {
            Db::Sqlite(dir) => {
                let c = rusqlite::Connection::open(dir.path().join("kbgap.sqlite")).unwrap();
                c.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
                    .unwrap();
                c.pragma_update(None, "user_version", 1).unwrap();
                c.execute(machine, []).unwrap();
            }
            Db::Postgres(s) => {
                let mut c = ::postgres::Client::connect(s.url(), ::postgres::NoTls).unwrap();
                c.batch_execute(include_str!("../migrations/postgres/0001_init.sql"))
                    .unwrap();
                c.batch_execute(
                    "CREATE TABLE schema_migrations (
                         version    BIGINT PRIMARY KEY,
                         applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                     );
                     INSERT INTO schema_migrations (version) VALUES (1)",
                )
                .unwrap();
                c.execute(machine, &[]).unwrap();
            }
        }
    }

    fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Db::Sqlite(dir) => Box::new(SqliteStore::open(dir.path())?),
            Db::Postgres(s) => Box::new(PostgresStore::open(s.url())?),
        })
    }

    /// A store whose catalog imports run `f` between staging their results and their final
    /// transaction.
    fn open_on_staged(&self, f: impl Fn() + Send + Sync + 'static) -> Box<dyn Store> {
        match self {
            Db::Sqlite(dir) => {
                let store = SqliteStore::open(dir.path()).unwrap();
                store.on_staged(f);
                Box::new(store)
            }
            Db::Postgres(s) => {
                let store = PostgresStore::open(s.url()).unwrap();
                store.on_staged(f);
                Box::new(store)
            }
        }
    }
}

/// Declares each test once per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Fixture::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(f) = super::Fixture::postgres() {
                        super::$name(&f);
                    }
                }
            )*
        }
    };
}

conformance!(
    a_new_store_is_empty,
    documents_round_trip_grouped_by_remediation,
    only_a_newer_revision_replaces_a_document,
    a_stale_import_is_refused_and_changes_nothing,
    a_failed_import_keeps_what_was_stored,
    put_machines_replaces_results_and_counts,
    a_machine_given_twice_in_a_batch_ends_as_its_last_record,
    a_stale_put_is_refused_and_changes_nothing,
    inactive_machines_are_stored_but_not_counted,
    indeterminate_machines_are_the_active_ones_in_id_order,
    delete_machine_removes_it_from_everything,
    sweep_stops_counting_machines_not_seen_since,
    a_catalog_import_rewrites_results_and_rebuilds_counts,
    machines_written_after_they_were_read_are_reevaluated_by_the_import,
    a_failed_reevaluation_writes_nothing,
    inventory_writes_do_not_wait_for_the_import_lock,
    inventory_writes_go_on_while_an_import_stages_its_results,
    a_0001_database_upgrades_and_its_machines_count_as_written_once,
    tenants_never_see_each_other,
    snapshots_round_trip_and_machines_list_in_byte_order,
    reopening_keeps_everything_and_a_newer_schema_is_refused,
    stores_opened_at_once_share_one_schema,
    machines_are_found_by_id_ignoring_case_within_their_tenant,
    machines_out_of_servicing_are_listed_with_their_results,
    a_tenants_machines_are_listed_page_by_page_in_byte_order,
    a_tenants_software_and_its_exposed_machines_count_active_machines_only,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn kb(n: u32) -> KbId {
    KbId::from_number(n).unwrap()
}

fn sw(s: &str) -> SoftwareId {
    SoftwareId::parse(s).unwrap()
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn mid(s: &str) -> MachineId {
    MachineId::parse(s).unwrap()
}

const W10: &str = "microsoft-_-windows_10";
const EDGE: &str = "microsoft-_-edge";

fn fix(cve: &str, kb_number: u32, product: &str, fixed_build: Option<&str>) -> VendorFix {
    VendorFix {
        cve: cve.into(),
        kb: kb(kb_number),
        product_id: product.into(),
        product_name: format!("Product {product}"),
        sub_type: Some("Security Update".into()),
        fixed_build: fixed_build.map(Into::into),
        supersedence: None,
    }
}

fn doc(id: &str, current_release: PrimitiveDateTime, fixes: Vec<VendorFix>) -> CvrfDocument {
    CvrfDocument {
        id: id.into(),
        title: format!("{id} Security Updates"),
        initial_release: datetime!(2024-01-09 08:00:00),
        current_release,
        fixes,
    }
}

fn jan() -> CvrfDocument {
    doc(
        "2024-Jan",
        datetime!(2024-01-09 08:00:00),
        vec![
            fix("CVE-2024-0002", 5034122, "11568", Some("10.0.19044.3930")),
            fix("CVE-2024-0001", 5034122, "11568", Some("10.0.19044.3930")),
            fix("CVE-2024-0001", 5034127, "11569", None),
        ],
    )
}

fn feb() -> CvrfDocument {
    doc(
        "2024-Feb",
        datetime!(2024-02-13 08:00:00),
        vec![fix(
            "CVE-2024-0003",
            5034763,
            "11568",
            Some("10.0.19044.4046"),
        )],
    )
}

fn kb_info(n: u32, document: &str) -> KbInfo {
    KbInfo {
        kb: kb(n),
        name: format!("{document} Security Updates"),
        document_id: document.into(),
        release_date: date!(2024 - 01 - 09),
    }
}

/// An evaluation: installed software, missing KBs per software, indeterminate software.
fn eval(software: &[&str], missing: &[(&str, &[u32])], indeterminate: &[&str]) -> Arc<Evaluation> {
    Arc::new(Evaluation {
        software: software.iter().map(|s| sw(s)).collect(),
        missing: missing
            .iter()
            .map(|(s, kbs)| (sw(s), kbs.iter().map(|&n| kb(n)).collect()))
            .collect::<BTreeMap<SoftwareId, BTreeSet<KbId>>>(),
        indeterminate: indeterminate.iter().map(|s| sw(s)).collect(),
        pending_restart: false,
        end_of_servicing: None,
    })
}

/// An evaluation of a machine whose Windows 10 1809 Pro left servicing.
fn ended(software: &[&str]) -> Arc<Evaluation> {
    let mut e = (*eval(software, &[(W10, &[4586793])], &[])).clone();
    e.end_of_servicing = Some(EndOfServicing {
        version: "Windows 10, version 1809",
        edition: Some(Edition::HomePro),
        since: date!(2020 - 11 - 10),
        esu_until: None,
        last_update: Some(kb(4586793)),
    });
    Arc::new(e)
}

/// The tenant's machines out of servicing for a software, as (id, since, last KB).
fn out_of_servicing(store: &dyn Store, t: &str, software: &str) -> Vec<String> {
    store
        .end_of_servicing_machines(&tenant(t), &sw(software))
        .unwrap()
        .into_iter()
        .map(|e| {
            format!(
                "{} {} {:?} {} {:?} {:?}",
                e.machine, e.version, e.edition, e.since, e.esu_until, e.last_update
            )
        })
        .collect()
}

fn machine(id: &str, last_seen: i64, evaluation: Arc<Evaluation>) -> MachineRecord {
    MachineRecord {
        id: mid(id),
        last_seen,
        snapshot: format!(r#"{{"id":"{id}","lastSeen":{last_seen}}}"#),
        evaluation,
    }
}

/// Machines seen at or after this are active.
const ACTIVE_SINCE: i64 = 1_000;
const NOW: i64 = 2_000;

/// `(kb, machines)` of a tenant's software.
fn counts(store: &dyn Store, t: &str, software: &str) -> Vec<(u32, u32)> {
    store
        .missing_counts(&tenant(t), &sw(software))
        .unwrap()
        .into_iter()
        .map(|MissingCount { kb, machines }| (kb.number(), machines))
        .collect()
}

fn known(store: &dyn Store, t: &str, software: &str) -> bool {
    store.software_known(&tenant(t), &sw(software)).unwrap()
}

fn indeterminate(store: &dyn Store, t: &str, software: &str) -> Vec<String> {
    store
        .indeterminate_machines(&tenant(t), &sw(software))
        .unwrap()
        .into_iter()
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The evaluation of imports whose machines are all expected to be current.
fn no_late(_: &TenantId, id: MachineId, _: String) -> Result<MachineRecord, BoxError> {
    Err(format!("{id} was not expected to be re-evaluated").into())
}

/// Imports `docs` from the state the store is in, with no results read beforehand: every
/// stored machine is re-evaluated by the import, as installing nothing and missing nothing.
fn import(store: &dyn Store, docs: &[CvrfDocument]) -> ImportSummary {
    let state = store.catalog_state().unwrap();
    let mut nothing = |_: &TenantId, id: MachineId, _: String| {
        Ok::<_, BoxError>(machine(id.as_str(), NOW, eval(&[], &[], &[])))
    };
    store
        .import_catalog(
            docs,
            &[],
            state.as_of,
            state.generation,
            &[],
            ACTIVE_SINCE,
            &mut nothing,
        )
        .unwrap()
        .summary
}

/// Results for an import: each machine with the write that stored it as read now.
fn read_results(store: &dyn Store, machines: &[(&str, MachineRecord)]) -> Vec<Reevaluated> {
    let stored = store.machines_for_reevaluation().unwrap();
    machines
        .iter()
        .map(|(t, record)| {
            let m = stored
                .iter()
                .find(|m| m.tenant == tenant(t) && m.id == record.id)
                .unwrap_or_else(|| panic!("{t}/{} is not stored", record.id));
            Reevaluated {
                tenant: m.tenant.clone(),
                write: m.write,
                record: record.clone(),
            }
        })
        .collect()
}

fn put(store: &dyn Store, t: &str, machines: &[MachineRecord]) {
    let generation = store.catalog_state().unwrap().generation;
    store
        .put_machines(&tenant(t), machines, generation, ACTIVE_SINCE)
        .unwrap();
}

/// Every observable of a store, to compare before and after a refused change.
fn everything(store: &dyn Store) -> String {
    let mut out = format!("{:?}\n", store.catalog_state().unwrap());
    out += &format!("{:?}\n", store.load_documents().unwrap());
    for (t, m, snapshot) in store.all_machines().unwrap() {
        out += &format!("{t} {m} {snapshot}\n");
    }
    for t in ["contoso", "fabrikam"] {
        for s in [W10, EDGE] {
            out += &format!(
                "{t} {s} known={} counts={:?} indeterminate={:?}\n",
                known(store, t, s),
                counts(store, t, s),
                indeterminate(store, t, s)
            );
            out += &format!("  ended={:?}\n", out_of_servicing(store, t, s));
        }
    }
    out
}

fn stored(ids: &[&str], skipped: &[&str]) -> ImportSummary {
    ImportSummary {
        stored: ids.iter().map(|s| s.to_string()).collect(),
        skipped: skipped.iter().map(|s| s.to_string()).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The suite

fn a_new_store_is_empty(f: &Fixture) {
    let s = f.store.as_ref();
    assert_eq!(s.catalog_state().unwrap(), CatalogState::default());
    assert!(s.load_documents().unwrap().is_empty());
    assert!(s.all_machines().unwrap().is_empty());
    assert!(!known(s, "contoso", W10));
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert_eq!(
        s.machine_snapshot(&tenant("contoso"), &mid("m1")).unwrap(),
        None
    );
    s.ping().unwrap();
}

fn documents_round_trip_grouped_by_remediation(f: &Fixture) {
    let s = f.store.as_ref();
    let state = s.catalog_state().unwrap();
    let summary = s
        .import_catalog(
            &[jan(), feb()],
            &[kb_info(5034122, "2024-Jan"), kb_info(5034763, "2024-Feb")],
            Some(date!(2024 - 01 - 31)),
            state.generation,
            &[],
            ACTIVE_SINCE,
            &mut no_late,
        )
        .unwrap()
        .summary;
    assert_eq!(summary, stored(&["2024-Feb", "2024-Jan"], &[]));
    assert_eq!(
        s.catalog_state().unwrap(),
        CatalogState {
            generation: 1,
            as_of: Some(date!(2024 - 01 - 31)),
            inventory: 0
        }
    );
    // Documents come back by id; fixes grouped per remediation and product, in key order,
    // each group's vulnerabilities in the order first seen.
    let mut expected_jan = jan();
    expected_jan.fixes = vec![
        fix("CVE-2024-0002", 5034122, "11568", Some("10.0.19044.3930")),
        fix("CVE-2024-0001", 5034122, "11568", Some("10.0.19044.3930")),
        fix("CVE-2024-0001", 5034127, "11569", None),
    ];
    assert_eq!(s.load_documents().unwrap(), vec![feb(), expected_jan]);

    // A document whose fixes repeat a vulnerability stores it once.
    let mut dup = doc(
        "2024-Mar",
        datetime!(2024-03-12 08:00:00),
        vec![
            fix("CVE-2024-0009", 5035845, "11568", None),
            fix("CVE-2024-0009", 5035845, "11568", None),
        ],
    );
    import(s, std::slice::from_ref(&dup));
    dup.fixes.pop();
    assert_eq!(s.load_documents().unwrap()[2], dup);
    // The cut date is cleared by an import without one.
    let state = s.catalog_state().unwrap();
    s.import_catalog(
        &[],
        &[],
        None,
        state.generation,
        &[],
        ACTIVE_SINCE,
        &mut no_late,
    )
    .unwrap();
    assert_eq!(s.catalog_state().unwrap().as_of, None);
    assert_eq!(s.catalog_state().unwrap().generation, 3);
}

fn only_a_newer_revision_replaces_a_document(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    // The same revision, and one less than a second newer, are skipped.
    assert_eq!(s.plan_import(&[jan()]).unwrap(), stored(&[], &["2024-Jan"]));
    let mut sub_second = jan();
    sub_second.current_release = datetime!(2024-01-09 08:00:00.5);
    assert_eq!(
        s.plan_import(&[sub_second]).unwrap(),
        stored(&[], &["2024-Jan"])
    );
    let mut older = jan();
    older.current_release = datetime!(2024-01-01 00:00:00);
    assert_eq!(s.plan_import(&[older]).unwrap(), stored(&[], &["2024-Jan"]));

    // A newer revision replaces the document and all its fixes.
    let mut newer = jan();
    newer.current_release = datetime!(2024-01-20 10:30:00);
    newer.fixes = vec![fix("CVE-2024-0004", 5034441, "11570", None)];
    assert_eq!(
        s.plan_import(&[newer.clone(), feb()]).unwrap(),
        stored(&["2024-Feb", "2024-Jan"], &[])
    );
    // Planning writes nothing.
    assert_eq!(s.catalog_state().unwrap().generation, 1);
    assert_eq!(s.load_documents().unwrap(), vec![jan()]);
    assert_eq!(import(s, &[newer.clone()]), stored(&["2024-Jan"], &[]));
    assert_eq!(s.load_documents().unwrap(), vec![newer.clone()]);
    // An import skipping everything still bumps the generation.
    assert_eq!(import(s, &[jan()]), stored(&[], &["2024-Jan"]));
    assert_eq!(s.catalog_state().unwrap().generation, 3);
    assert_eq!(s.load_documents().unwrap(), vec![newer]);
}

fn a_stale_import_is_refused_and_changes_nothing(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    let before = everything(s);
    let state = s.catalog_state().unwrap();
    assert_eq!(
        state,
        CatalogState {
            generation: 1,
            as_of: None,
            inventory: 1
        }
    );

    // Another import stored generation 1 after this one read generation 0.
    match s.import_catalog(&[feb()], &[], None, 0, &[], ACTIVE_SINCE, &mut no_late) {
        Err(StoreError::StaleCatalog { expected, found }) => {
            assert_eq!((expected, found), (0, 1))
        }
        other => panic!("expected a stale catalog, got {other:?}"),
    }
    assert_eq!(everything(s), before);
    f.recount().assert_exact();
}

fn a_failed_import_keeps_what_was_stored(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    let before = everything(s);
    // The same machine twice among the results breaks a key after the documents, the KB
    // table and the cut date were written: the whole import is rolled back.
    let m1 = machine("m1", NOW, eval(&[W10, EDGE], &[(EDGE, &[5034127])], &[]));
    let results = read_results(s, &[("contoso", m1.clone()), ("contoso", m1)]);
    let state = s.catalog_state().unwrap();
    let err = s
        .import_catalog(
            &[feb()],
            &[kb_info(5034763, "2024-Feb")],
            Some(date!(2024 - 02 - 29)),
            state.generation,
            &results,
            ACTIVE_SINCE,
            &mut no_late,
        )
        .unwrap_err();
    match &err {
        StoreError::Database { backend, message } => {
            assert_eq!(*backend, f.backend());
            assert!(!message.is_empty());
        }
        other => panic!("expected a database error, got {other:?}"),
    }
    assert!(err.is_unavailable());
    assert_eq!(everything(s), before);
    // And the store still works.
    assert_eq!(import(s, &[feb()]), stored(&["2024-Feb"], &[]));
}

fn put_machines_replaces_results_and_counts(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    put(
        s,
        "contoso",
        &[
            machine(
                "m1",
                NOW,
                eval(
                    &[W10, EDGE],
                    &[(W10, &[5034122, 5034441]), (EDGE, &[5034127])],
                    &[],
                ),
            ),
            machine("m2", NOW, eval(&[W10], &[(W10, &[5034122])], &[])),
        ],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 2), (5034441, 1)]);
    assert_eq!(counts(s, "contoso", EDGE), vec![(5034127, 1)]);
    assert!(known(s, "contoso", W10) && known(s, "contoso", EDGE));
    assert_eq!(s.catalog_state().unwrap().inventory, 1);

    // m1 is replaced: it no longer has Edge, and misses another KB; m2 is untouched.
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034763])], &[]))],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034763, 1)]);
    assert_eq!(counts(s, "contoso", EDGE), vec![]);
    assert!(!known(s, "contoso", EDGE));
    assert_eq!(s.catalog_state().unwrap().inventory, 2);

    // A machine missing nothing is known but counted nowhere.
    put(s, "contoso", &[machine("m2", NOW, eval(&[W10], &[], &[]))]);
    assert_eq!(counts(s, "contoso", W10), vec![(5034763, 1)]);
    put(s, "contoso", &[machine("m1", NOW, eval(&[W10], &[], &[]))]);
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert!(known(s, "contoso", W10));
    // An empty batch changes nothing but the inventory generation.
    put(s, "contoso", &[]);
    assert_eq!(s.catalog_state().unwrap().inventory, 5);
    assert_eq!(s.all_machines().unwrap().len(), 2);
}

fn a_machine_given_twice_in_a_batch_ends_as_its_last_record(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    let mut last = machine("m1", NOW + 1, eval(&[EDGE], &[(EDGE, &[5034127])], &[EDGE]));
    last.snapshot = "last".into();
    put(
        s,
        "contoso",
        &[
            machine("m1", NOW, eval(&[W10], &[(W10, &[5034441])], &[W10])),
            machine("m2", NOW, eval(&[W10], &[(W10, &[5034441])], &[])),
            last,
        ],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034441, 1)]);
    assert_eq!(counts(s, "contoso", EDGE), vec![(5034127, 1)]);
    assert_eq!(indeterminate(s, "contoso", W10), Vec::<String>::new());
    assert_eq!(indeterminate(s, "contoso", EDGE), vec!["m1"]);
    assert_eq!(
        s.machine_snapshot(&tenant("contoso"), &mid("m1")).unwrap(),
        Some("last".into())
    );
}

fn a_stale_put_is_refused_and_changes_nothing(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    import(s, &[jan()]);
    let before = everything(s);
    let err = s
        .put_machines(
            &tenant("contoso"),
            &[machine("m1", NOW, eval(&[EDGE], &[], &[]))],
            0,
            ACTIVE_SINCE,
        )
        .unwrap_err();
    match err {
        StoreError::StaleCatalog { expected, found } => assert_eq!((expected, found), (0, 1)),
        other => panic!("expected a stale catalog, got {other:?}"),
    }
    assert_eq!(everything(s), before);
}

fn inactive_machines_are_stored_but_not_counted(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[machine(
            "old",
            ACTIVE_SINCE - 1,
            eval(&[W10], &[(W10, &[5034122])], &[W10]),
        )],
    );
    assert!(!known(s, "contoso", W10));
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert_eq!(indeterminate(s, "contoso", W10), Vec::<String>::new());
    assert!(s
        .machine_snapshot(&tenant("contoso"), &mid("old"))
        .unwrap()
        .is_some());
    // Seen again, it counts.
    put(
        s,
        "contoso",
        &[machine(
            "old",
            ACTIVE_SINCE,
            eval(&[W10], &[(W10, &[5034122])], &[W10]),
        )],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1)]);
    assert_eq!(indeterminate(s, "contoso", W10), vec!["old"]);
    // And an inactive record of a counted machine takes it out of the counts.
    put(
        s,
        "contoso",
        &[machine(
            "old",
            10,
            eval(&[W10], &[(W10, &[5034122])], &[W10]),
        )],
    );
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert!(!known(s, "contoso", W10));
}

fn indeterminate_machines_are_the_active_ones_in_id_order(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[
            machine("m3", NOW, eval(&[W10, EDGE], &[], &[W10])),
            machine("m1", NOW, eval(&[W10, EDGE], &[], &[W10, EDGE])),
            machine("m2", NOW, eval(&[W10], &[(W10, &[5034122])], &[])),
            machine("m0", 5, eval(&[W10], &[], &[W10])),
        ],
    );
    assert_eq!(indeterminate(s, "contoso", W10), vec!["m1", "m3"]);
    assert_eq!(indeterminate(s, "contoso", EDGE), vec!["m1"]);
    assert_eq!(indeterminate(s, "fabrikam", W10), Vec::<String>::new());
}

fn delete_machine_removes_it_from_everything(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[
            machine("m1", NOW, eval(&[W10, EDGE], &[(W10, &[5034122])], &[EDGE])),
            machine("m2", NOW, eval(&[W10], &[(W10, &[5034122])], &[])),
            machine("old", 1, eval(&[W10], &[(W10, &[5034122])], &[])),
        ],
    );
    let t = tenant("contoso");
    assert!(s.delete_machine(&t, &mid("m1")).unwrap());
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1)]);
    assert!(!known(s, "contoso", EDGE));
    assert_eq!(indeterminate(s, "contoso", EDGE), Vec::<String>::new());
    assert_eq!(s.machine_snapshot(&t, &mid("m1")).unwrap(), None);
    assert_eq!(s.catalog_state().unwrap().inventory, 2);
    // An inactive machine leaves the counts alone.
    assert!(s.delete_machine(&t, &mid("old")).unwrap());
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1)]);
    // Deleting what is not there changes nothing.
    assert!(!s.delete_machine(&t, &mid("m1")).unwrap());
    assert_eq!(s.catalog_state().unwrap().inventory, 3);
    assert!(s.delete_machine(&t, &mid("m2")).unwrap());
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert!(!known(s, "contoso", W10));
    assert!(s.all_machines().unwrap().is_empty());
    // A re-put machine starts from nothing.
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034441])], &[]))],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034441, 1)]);
}

fn sweep_stops_counting_machines_not_seen_since(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[
            machine(
                "early",
                1_100,
                eval(
                    &[W10, EDGE],
                    &[(W10, &[5034122]), (EDGE, &[5034127])],
                    &[W10],
                ),
            ),
            machine(
                "late",
                1_500,
                eval(&[W10], &[(W10, &[5034122, 5034441])], &[W10]),
            ),
        ],
    );
    put(
        s,
        "fabrikam",
        &[machine(
            "early",
            1_100,
            eval(&[W10], &[(W10, &[5034122])], &[]),
        )],
    );
    assert_eq!(s.catalog_state().unwrap().inventory, 2);
    assert_eq!(s.sweep(1_200).unwrap(), 2);
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034441, 1)]);
    assert_eq!(counts(s, "contoso", EDGE), vec![]);
    assert!(!known(s, "contoso", EDGE));
    assert!(!known(s, "fabrikam", W10));
    assert_eq!(indeterminate(s, "contoso", W10), vec!["late"]);
    assert_eq!(s.catalog_state().unwrap().inventory, 3);
    // Swept machines stay stored; sweeping again finds nothing and changes nothing.
    assert_eq!(s.all_machines().unwrap().len(), 3);
    assert_eq!(s.sweep(1_200).unwrap(), 0);
    assert_eq!(s.catalog_state().unwrap().inventory, 3);
    // A swept machine seen again counts again, once.
    put(
        s,
        "contoso",
        &[machine(
            "early",
            NOW,
            eval(&[W10], &[(W10, &[5034122])], &[]),
        )],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 2), (5034441, 1)]);
    assert_eq!(s.sweep(NOW + 1).unwrap(), 2);
    assert_eq!(counts(s, "contoso", W10), vec![]);
}

fn a_catalog_import_rewrites_results_and_rebuilds_counts(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[
            machine("m1", 1_500, eval(&[W10], &[(W10, &[5034122])], &[W10])),
            machine("m2", 1_500, eval(&[W10], &[(W10, &[5034122])], &[])),
            machine("m3", 1_500, eval(&[W10], &[(W10, &[5034122])], &[])),
        ],
    );
    put(
        s,
        "fabrikam",
        &[machine(
            "f1",
            1_500,
            eval(&[W10], &[(W10, &[5034122])], &[]),
        )],
    );
    let state = s.catalog_state().unwrap();
    // Re-evaluated under the new catalog: m1 misses Feb's KB too and is decided, m2 misses
    // nothing; m3 is not among the results, so it is re-evaluated by the import itself; the
    // cut moves so that f1 is no longer active.
    let results = read_results(
        s,
        &[
            (
                "contoso",
                machine(
                    "m1",
                    1_500,
                    eval(&[W10], &[(W10, &[5034122, 5034763])], &[]),
                ),
            ),
            ("contoso", machine("m2", 1_500, eval(&[W10], &[], &[W10]))),
            (
                "fabrikam",
                machine("f1", 1_500, eval(&[W10], &[(W10, &[5034763])], &[])),
            ),
        ],
    );
    let mut asked = Vec::new();
    let mut late = |t: &TenantId, id: MachineId, snapshot: String| {
        asked.push(format!("{t}/{id} {snapshot}"));
        Ok::<_, BoxError>(MachineRecord {
            evaluation: eval(&[W10], &[(W10, &[5034763])], &[]),
            ..machine(id.as_str(), 1_500, eval(&[], &[], &[]))
        })
    };
    let outcome = s
        .import_catalog(
            &[jan(), feb()],
            &[],
            None,
            state.generation,
            &results,
            1_400,
            &mut late,
        )
        .unwrap();
    assert_eq!(
        outcome,
        ImportOutcome {
            summary: stored(&["2024-Feb", "2024-Jan"], &[]),
            machines: 4,
            reevaluated_late: 1,
        }
    );
    assert_eq!(asked, [r#"contoso/m3 {"id":"m3","lastSeen":1500}"#]);
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034763, 2)]);
    assert_eq!(indeterminate(s, "contoso", W10), vec!["m2"]);
    assert_eq!(counts(s, "fabrikam", W10), vec![(5034763, 1)]);
    f.recount().assert_exact();
    let state = s.catalog_state().unwrap();
    assert_eq!(
        state,
        CatalogState {
            generation: 1,
            as_of: None,
            inventory: 2
        }
    );
    // The active window is applied to every re-evaluated machine, the late ones included.
    let results = read_results(
        s,
        &[(
            "contoso",
            machine("m1", 1_500, eval(&[W10], &[(W10, &[5034122])], &[])),
        )],
    );
    let mut late = |_: &TenantId, id: MachineId, _: String| {
        Ok::<_, BoxError>(machine(
            id.as_str(),
            1_500,
            eval(&[W10], &[(W10, &[5034122])], &[]),
        ))
    };
    let outcome = s
        .import_catalog(&[], &[], None, state.generation, &results, 1_600, &mut late)
        .unwrap();
    assert_eq!((outcome.machines, outcome.reevaluated_late), (4, 3));
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert!(!known(s, "contoso", W10));
    assert!(!known(s, "fabrikam", W10));
    f.recount().assert_exact();
    // A machine of the new generation counts when seen again.
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1)]);
}

fn machines_written_after_they_were_read_are_reevaluated_by_the_import(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    let jan_eval = eval(&[W10], &[(W10, &[5034122])], &[]);
    put(
        s,
        "contoso",
        &[
            machine("m1", NOW, jan_eval.clone()),
            machine("m2", NOW, jan_eval.clone()),
            machine("m3", NOW, jan_eval.clone()),
            machine("m4", NOW, jan_eval.clone()),
        ],
    );
    // The import reads every machine and evaluates it against the new catalog...
    let read = s.machines_for_reevaluation().unwrap();
    assert_eq!(read.len(), 4);
    assert!(read.iter().all(|m| m.write == read[0].write));
    let results: Vec<Reevaluated> = read
        .iter()
        .map(|m| Reevaluated {
            tenant: m.tenant.clone(),
            write: m.write,
            record: machine(
                m.id.as_str(),
                NOW,
                eval(&[W10], &[(W10, &[5034122, 5034763])], &[]),
            ),
        })
        .collect();
    // ... while machines keep reporting: m2 is rewritten, m3 deleted, m4 deleted and stored
    // again just as it was, n1 is new.
    put(s, "contoso", &[machine("m2", NOW + 1, jan_eval.clone())]);
    assert!(s.delete_machine(&tenant("contoso"), &mid("m3")).unwrap());
    assert!(s.delete_machine(&tenant("contoso"), &mid("m4")).unwrap());
    put(s, "contoso", &[machine("m4", NOW, jan_eval.clone())]);
    put(s, "fabrikam", &[machine("n1", NOW, jan_eval.clone())]);

    let mut asked = Vec::new();
    let mut late = |t: &TenantId, id: MachineId, snapshot: String| {
        asked.push(format!("{t}/{id} {snapshot}"));
        Ok::<_, BoxError>(MachineRecord {
            id,
            last_seen: NOW,
            snapshot,
            evaluation: eval(&[W10], &[(W10, &[5034763])], &[]),
        })
    };
    let outcome = s
        .import_catalog(
            &[feb()],
            &[kb_info(5034763, "2024-Feb")],
            None,
            1,
            &results,
            ACTIVE_SINCE,
            &mut late,
        )
        .unwrap();
    asked.sort();
    assert_eq!(
        asked,
        [
            r#"contoso/m2 {"id":"m2","lastSeen":2001}"#,
            r#"contoso/m4 {"id":"m4","lastSeen":2000}"#,
            r#"fabrikam/n1 {"id":"n1","lastSeen":2000}"#,
        ]
    );
    assert_eq!(
        outcome,
        ImportOutcome {
            summary: stored(&["2024-Feb"], &[]),
            machines: 4,
            reevaluated_late: 3,
        }
    );
    // m1 has its result from the read; m2 and m4 the one evaluated inside the import.
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034763, 3)]);
    assert_eq!(counts(s, "fabrikam", W10), vec![(5034763, 1)]);
    f.recount().assert_exact();
    // A write evaluated against the old catalog and arriving after the import is refused.
    match s.put_machines(
        &tenant("contoso"),
        &[machine("m1", NOW, jan_eval)],
        1,
        ACTIVE_SINCE,
    ) {
        Err(StoreError::StaleCatalog { expected, found }) => {
            assert_eq!((expected, found), (1, 2))
        }
        other => panic!("expected a stale catalog, got {other:?}"),
    }
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034763, 3)]);
}

fn a_failed_reevaluation_writes_nothing(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    let jan_eval = eval(&[W10], &[(W10, &[5034122])], &[]);
    put(
        s,
        "contoso",
        &[
            machine("m1", NOW, jan_eval.clone()),
            machine("m2", NOW, jan_eval.clone()),
        ],
    );
    let feb_eval = eval(&[W10], &[(W10, &[5034763])], &[]);
    let results = read_results(
        s,
        &[
            ("contoso", machine("m1", NOW, feb_eval.clone())),
            ("contoso", machine("m2", NOW, feb_eval)),
        ],
    );
    put(s, "contoso", &[machine("m2", NOW + 1, jan_eval)]);
    let before = everything(s);
    let mut late = |_: &TenantId, id: MachineId, _: String| {
        Err::<MachineRecord, BoxError>(format!("the snapshot of {id} no longer parses").into())
    };
    let err = s
        .import_catalog(
            &[feb()],
            &[kb_info(5034763, "2024-Feb")],
            Some(date!(2024 - 02 - 29)),
            1,
            &results,
            ACTIVE_SINCE,
            &mut late,
        )
        .unwrap_err();
    match &err {
        StoreError::Reevaluation(e) => {
            assert_eq!(e.to_string(), "the snapshot of m2 no longer parses")
        }
        other => panic!("expected the re-evaluation's error, got {other:?}"),
    }
    assert!(!err.is_unavailable());
    assert_eq!(everything(s), before);
    f.recount().assert_exact();
    // What the failed import staged does not reach the next one.
    let results = read_results(
        s,
        &[("contoso", machine("m1", NOW, eval(&[W10], &[], &[])))],
    );
    let mut late = |_: &TenantId, id: MachineId, snapshot: String| {
        Ok::<_, BoxError>(MachineRecord {
            id,
            last_seen: NOW,
            snapshot,
            evaluation: eval(&[W10], &[(W10, &[5034763])], &[]),
        })
    };
    s.import_catalog(&[feb()], &[], None, 1, &results, ACTIVE_SINCE, &mut late)
        .unwrap();
    assert_eq!(counts(s, "contoso", W10), vec![(5034763, 1)]);
    f.recount().assert_exact();
}

fn inventory_writes_go_on_while_an_import_stages_its_results(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    let jan_eval = eval(&[W10], &[(W10, &[5034122])], &[]);
    put(
        s,
        "contoso",
        &[
            machine("m1", NOW, jan_eval.clone()),
            machine("m2", NOW, jan_eval.clone()),
            machine("m3", NOW, jan_eval.clone()),
        ],
    );
    let feb_eval = eval(&[W10], &[(W10, &[5034122, 5034763])], &[]);
    let results = read_results(
        s,
        &[
            ("contoso", machine("m1", NOW, feb_eval.clone())),
            ("contoso", machine("m2", NOW, feb_eval.clone())),
            ("contoso", machine("m3", NOW, feb_eval)),
        ],
    );
    // Once the results are staged, another process writes and must not wait for the import:
    // m2 is rewritten, m3 deleted, n1 stored.
    let writer = std::sync::Mutex::new(Some(f.reopen().unwrap()));
    let staged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = staged.clone();
    let importer = f.db.open_on_staged(move || {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Some(other) = writer.lock().unwrap().take() else {
            return;
        };
        let e = jan_eval.clone();
        let (done, written) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let other = other.as_ref();
            put(other, "contoso", &[machine("m2", NOW + 1, e.clone())]);
            assert!(other
                .delete_machine(&tenant("contoso"), &mid("m3"))
                .unwrap());
            put(other, "fabrikam", &[machine("n1", NOW, e)]);
            done.send(()).unwrap();
        });
        written
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("inventory writes went through while the import's results were staged");
    });
    let mut asked = Vec::new();
    let mut late = |t: &TenantId, id: MachineId, snapshot: String| {
        asked.push(format!("{t}/{id} {snapshot}"));
        Ok::<_, BoxError>(MachineRecord {
            id,
            last_seen: NOW,
            snapshot,
            evaluation: eval(&[W10], &[(W10, &[5034763])], &[]),
        })
    };
    let outcome = importer
        .import_catalog(
            &[feb()],
            &[kb_info(5034763, "2024-Feb")],
            None,
            1,
            &results,
            ACTIVE_SINCE,
            &mut late,
        )
        .unwrap();
    assert_eq!(staged.load(std::sync::atomic::Ordering::SeqCst), 1);
    asked.sort();
    assert_eq!(
        asked,
        [
            r#"contoso/m2 {"id":"m2","lastSeen":2001}"#,
            r#"fabrikam/n1 {"id":"n1","lastSeen":2000}"#,
        ]
    );
    assert_eq!(
        outcome,
        ImportOutcome {
            summary: stored(&["2024-Feb"], &[]),
            machines: 3,
            reevaluated_late: 2,
        }
    );
    // m1 has its staged result; m2 and n1 the one evaluated inside the import; m3's staged
    // result is gone with it.
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034763, 2)]);
    assert_eq!(counts(s, "fabrikam", W10), vec![(5034763, 1)]);
    assert_eq!(
        s.machine_snapshot(&tenant("contoso"), &mid("m3")).unwrap(),
        None
    );
    f.recount().assert_exact();
    // The next import stages again into tables of its own.
    import(s, &[jan(), feb()]);
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert!(!known(s, "contoso", W10));
    f.recount().assert_exact();
}

fn inventory_writes_do_not_wait_for_the_import_lock(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    let other = f.reopen().unwrap();
    let lock = s.lock_catalog_imports().unwrap();
    let e = eval(&[W10], &[(W10, &[5034122])], &[]);
    put(s, "contoso", &[machine("m1", NOW, e.clone())]);
    put(other.as_ref(), "contoso", &[machine("m2", NOW, e)]);
    assert!(other
        .delete_machine(&tenant("contoso"), &mid("m1"))
        .unwrap());
    assert_eq!(s.sweep(ACTIVE_SINCE).unwrap(), 0);
    drop(lock);
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1)]);
    // Released, it is taken again at once.
    drop(other.lock_catalog_imports().unwrap());
}

fn a_0001_database_upgrades_and_its_machines_count_as_written_once(f: &Fixture) {
    let db = f.fresh_db();
    db.create_at_version_1();
    let s = db.open().unwrap();
    let read = s.machines_for_reevaluation().unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].id.as_str(), read[0].write), ("old", 0));
    let results = vec![Reevaluated {
        tenant: tenant("contoso"),
        write: 0,
        record: machine("old", NOW, eval(&[W10], &[(W10, &[5034122])], &[])),
    }];
    put(
        s.as_ref(),
        "contoso",
        &[machine("new", NOW, eval(&[W10], &[], &[]))],
    );
    let mut asked = Vec::new();
    let mut late = |_: &TenantId, id: MachineId, _: String| {
        asked.push(id.as_str().to_string());
        Ok::<_, BoxError>(machine(
            id.as_str(),
            NOW,
            eval(&[W10], &[(W10, &[5034122])], &[]),
        ))
    };
    let outcome = s
        .import_catalog(&[jan()], &[], None, 0, &results, ACTIVE_SINCE, &mut late)
        .unwrap();
    assert_eq!(asked, ["new"]);
    assert_eq!((outcome.machines, outcome.reevaluated_late), (2, 1));
    assert_eq!(counts(s.as_ref(), "contoso", W10), vec![(5034122, 2)]);
    db.recount().assert_exact();
    // Opened again, the upgraded schema is not migrated twice.
    drop(s);
    assert_eq!(
        counts(db.open().unwrap().as_ref(), "contoso", W10),
        vec![(5034122, 2)]
    );
}

fn tenants_never_see_each_other(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[machine(
            "shared-id",
            NOW,
            eval(&[W10], &[(W10, &[5034122])], &[W10]),
        )],
    );
    let mut other = machine(
        "shared-id",
        NOW,
        eval(&[EDGE], &[(EDGE, &[5034127])], &[EDGE]),
    );
    other.snapshot = "fabrikam's".into();
    put(s, "fabrikam", &[other]);
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1)]);
    assert_eq!(counts(s, "contoso", EDGE), vec![]);
    assert_eq!(counts(s, "fabrikam", W10), vec![]);
    assert_eq!(counts(s, "fabrikam", EDGE), vec![(5034127, 1)]);
    assert!(known(s, "contoso", W10) && !known(s, "contoso", EDGE));
    assert!(known(s, "fabrikam", EDGE) && !known(s, "fabrikam", W10));
    assert_eq!(indeterminate(s, "contoso", EDGE), Vec::<String>::new());
    assert_eq!(indeterminate(s, "fabrikam", EDGE), vec!["shared-id"]);
    assert_eq!(
        s.machine_snapshot(&tenant("fabrikam"), &mid("shared-id"))
            .unwrap(),
        Some("fabrikam's".into())
    );
    // Replacing and deleting in one tenant leaves the other alone.
    put(
        s,
        "contoso",
        &[machine("shared-id", NOW, eval(&[W10], &[], &[]))],
    );
    assert_eq!(counts(s, "fabrikam", EDGE), vec![(5034127, 1)]);
    assert!(s
        .delete_machine(&tenant("contoso"), &mid("shared-id"))
        .unwrap());
    assert!(!s
        .delete_machine(&tenant("contoso"), &mid("shared-id"))
        .unwrap());
    assert_eq!(counts(s, "fabrikam", EDGE), vec![(5034127, 1)]);
    assert_eq!(indeterminate(s, "fabrikam", EDGE), vec!["shared-id"]);
    assert_eq!(
        s.all_machines()
            .unwrap()
            .into_iter()
            .map(|(t, m, _)| format!("{t}/{m}"))
            .collect::<Vec<_>>(),
        vec!["fabrikam/shared-id"]
    );
}

fn snapshots_round_trip_and_machines_list_in_byte_order(f: &Fixture) {
    let s = f.store.as_ref();
    let mut odd = machine("a-machine", NOW, eval(&[W10], &[], &[]));
    odd.snapshot = "{\"name\":\"Zürich ✓ \\\"quoted\\\"\",\"x\":\"\u{1F600}\"}".into();
    put(
        s,
        "tenant-b",
        &[
            odd.clone(),
            machine("B-machine", NOW, eval(&[W10], &[], &[])),
        ],
    );
    put(s, "tenant-a", &[machine("z", NOW, eval(&[W10], &[], &[]))]);
    assert_eq!(
        s.machine_snapshot(&tenant("tenant-b"), &mid("a-machine"))
            .unwrap(),
        Some(odd.snapshot.clone())
    );
    // Machine ids keep their case and sort byte-wise ("B" before "a").
    let all: Vec<(String, String, String)> = s
        .all_machines()
        .unwrap()
        .into_iter()
        .map(|(t, m, snap)| (t.to_string(), m.to_string(), snap))
        .collect();
    assert_eq!(
        all,
        vec![
            (
                "tenant-a".into(),
                "z".into(),
                machine("z", NOW, eval(&[], &[], &[])).snapshot
            ),
            (
                "tenant-b".into(),
                "B-machine".into(),
                machine("B-machine", NOW, eval(&[], &[], &[])).snapshot
            ),
            ("tenant-b".into(), "a-machine".into(), odd.snapshot),
        ]
    );
    assert_eq!(
        s.machine_snapshot(&tenant("tenant-b"), &mid("A-MACHINE"))
            .unwrap(),
        None
    );
}

fn a_tenants_machines_are_listed_page_by_page_in_byte_order(f: &Fixture) {
    let s = f.store.as_ref();
    let w10 = || eval(&[W10], &[], &[]);
    put(
        s,
        "tenant-b",
        &[
            machine("c", NOW, w10()),
            machine("a-machine", ACTIVE_SINCE - 1, w10()),
            machine("B-machine", NOW + 1, w10()),
        ],
    );
    put(s, "tenant-a", &[machine("b", NOW, w10())]);
    let page = |after: Option<&str>, limit: usize| -> Vec<(String, i64, String)> {
        let after = after.map(mid);
        s.machines_after(&tenant("tenant-b"), after.as_ref(), limit)
            .unwrap()
            .into_iter()
            .map(|m| (m.id.to_string(), m.last_seen, m.snapshot))
            .collect()
    };
    let listed = |id: &str, last_seen: i64| {
        (
            id.to_string(),
            last_seen,
            machine(id, last_seen, w10()).snapshot,
        )
    };
    assert_eq!(
        page(None, 2),
        vec![
            listed("B-machine", NOW + 1),
            listed("a-machine", ACTIVE_SINCE - 1)
        ]
    );
    assert_eq!(page(Some("a-machine"), 2), vec![listed("c", NOW)]);
    // Inactive machines are listed too; after an id that is not stored, the list goes on
    // from the next one in byte order.
    assert_eq!(page(Some("b"), 5), vec![listed("c", NOW)]);
    assert_eq!(page(Some("c"), 5), vec![]);
    assert_eq!(page(None, 0), vec![]);
    assert_eq!(
        s.machines_after(&tenant("tenant-c"), None, 10).unwrap(),
        vec![]
    );
}

fn a_tenants_software_and_its_exposed_machines_count_active_machines_only(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[
            // Two KBs missing for Windows 10 on one machine: exposed once.
            machine(
                "m1",
                NOW,
                eval(&[W10, EDGE], &[(W10, &[5034122, 5034441])], &[]),
            ),
            machine("m2", NOW, eval(&[W10], &[(W10, &[5034122])], &[])),
            machine("m3", NOW, eval(&[W10, EDGE], &[], &[])),
            // Not seen within the retention window: neither known nor exposed.
            machine(
                "old",
                ACTIVE_SINCE - 1,
                eval(
                    &["contoso-_-legacy"],
                    &[("contoso-_-legacy", &[5034122])],
                    &[],
                ),
            ),
        ],
    );
    put(
        s,
        "fabrikam",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    let t = tenant("contoso");
    assert_eq!(s.tenant_software(&t).unwrap(), vec![sw(EDGE), sw(W10)]);
    assert_eq!(s.exposed_machines(&t, &sw(W10)).unwrap(), 2);
    assert_eq!(s.exposed_machines(&t, &sw(EDGE)).unwrap(), 0);
    assert_eq!(s.exposed_machines(&t, &sw("contoso-_-legacy")).unwrap(), 0);
    assert_eq!(
        s.exposed_machines(&tenant("fabrikam"), &sw(W10)).unwrap(),
        1
    );
    assert_eq!(s.tenant_software(&tenant("nobody")).unwrap(), vec![]);
    // Deleted, a machine is exposed no more.
    assert!(s.delete_machine(&t, &mid("m2")).unwrap());
    assert_eq!(s.exposed_machines(&t, &sw(W10)).unwrap(), 1);
}

fn reopening_keeps_everything_and_a_newer_schema_is_refused(f: &Fixture) {
    let s = f.store.as_ref();
    import(s, &[jan()]);
    put(
        s,
        "contoso",
        &[machine(
            "m1",
            NOW,
            eval(&[W10], &[(W10, &[5034122])], &[W10]),
        )],
    );
    let before = everything(s);
    let again = f.reopen().unwrap();
    assert_eq!(everything(again.as_ref()), before);
    drop(again);

    f.set_schema_version(4);
    match f.reopen() {
        Err(StoreError::SchemaTooNew { found, known }) => assert_eq!((found, known), (4, 3)),
        other => panic!(
            "expected a newer schema to be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    // What was open goes on working.
    assert_eq!(everything(s), before);
}

fn stores_opened_at_once_share_one_schema(f: &Fixture) {
    // Several processes starting together on an empty database: every one opens (the
    // migrations run once), and all see the same data.
    let db = f.fresh_db();
    let opened: Vec<Box<dyn Store>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| db.open())).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    put(
        opened[0].as_ref(),
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    for store in &opened {
        assert_eq!(counts(store.as_ref(), "contoso", W10), vec![(5034122, 1)]);
    }
    // The fixture's own database is another one.
    assert_eq!(counts(f.store.as_ref(), "contoso", W10), vec![]);
    // Writers from several stores at once, for several tenants, add up.
    std::thread::scope(|scope| {
        for (i, store) in opened.iter().enumerate() {
            scope.spawn(move || {
                for n in 0..5 {
                    let t = if n % 2 == 0 { "contoso" } else { "fabrikam" };
                    let id = format!("w{i}-{n}");
                    loop {
                        let generation = store.catalog_state().unwrap().generation;
                        match store.put_machines(
                            &tenant(t),
                            &[machine(&id, NOW, eval(&[W10], &[(W10, &[5034441])], &[]))],
                            generation,
                            ACTIVE_SINCE,
                        ) {
                            Ok(()) => break,
                            Err(StoreError::StaleCatalog { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    let s = opened[3].as_ref();
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034441, 12)]);
    assert_eq!(counts(s, "fabrikam", W10), vec![(5034441, 8)]);
    assert_eq!(s.catalog_state().unwrap().inventory, 21);
}

fn machines_are_found_by_id_ignoring_case_within_their_tenant(f: &Fixture) {
    let s = f.store.as_ref();
    let e = eval(&[W10], &[], &[]);
    put(
        s,
        "contoso",
        &[
            machine("PC-Upper", NOW, e.clone()),
            machine("pc-upper", NOW, e.clone()),
            machine("Laptop-7", NOW, e.clone()),
        ],
    );
    put(s, "fabrikam", &[machine("laptop-7", NOW, e)]);
    let named = |t: &str, id: &str| -> Vec<String> {
        s.machines_named(&tenant(t), &mid(id))
            .unwrap()
            .iter()
            .map(|m| m.as_str().to_string())
            .collect()
    };
    assert_eq!(named("contoso", "LAPTOP-7"), ["Laptop-7"]);
    assert_eq!(named("contoso", "pc-UPPER"), ["PC-Upper", "pc-upper"]);
    assert_eq!(named("fabrikam", "LAPTOP-7"), ["laptop-7"]);
    assert!(named("fabrikam", "pc-upper").is_empty());
    assert!(named("northwind", "laptop-7").is_empty());
}

fn machines_out_of_servicing_are_listed_with_their_results(f: &Fixture) {
    let s = f.store.as_ref();
    put(
        s,
        "contoso",
        &[
            machine("m2", NOW, ended(&[W10, EDGE])),
            machine("m1", NOW, ended(&[W10])),
            machine("m3", NOW, eval(&[W10], &[], &[])),
            machine("old", 5, ended(&[W10])),
        ],
    );
    put(s, "fabrikam", &[machine("f1", NOW, ended(&[W10]))]);
    let line = |id: &str| {
        format!("{id} Windows 10, version 1809 Some(HomePro) 2020-11-10 None Some(KbId(4586793))")
    };
    // Active machines with the software, in id order, of the tenant only.
    assert_eq!(
        out_of_servicing(s, "contoso", W10),
        vec![line("m1"), line("m2")]
    );
    assert_eq!(out_of_servicing(s, "contoso", EDGE), vec![line("m2")]);
    assert_eq!(out_of_servicing(s, "fabrikam", W10), vec![line("f1")]);
    // A newer snapshot's results replace the old: upgraded, m1 is serviced again.
    put(s, "contoso", &[machine("m1", NOW, eval(&[W10], &[], &[]))]);
    assert_eq!(out_of_servicing(s, "contoso", W10), vec![line("m2")]);
    // Deleted, m2 is gone; a catalog import rewrites every machine's results.
    assert!(s.delete_machine(&tenant("contoso"), &mid("m2")).unwrap());
    assert_eq!(out_of_servicing(s, "contoso", W10), Vec::<String>::new());
    let state = s.catalog_state().unwrap();
    let results = read_results(
        s,
        &[
            ("contoso", machine("m1", NOW, eval(&[W10], &[], &[]))),
            ("contoso", machine("m3", NOW, ended(&[W10]))),
            ("contoso", machine("old", 5, eval(&[W10], &[], &[]))),
            ("fabrikam", machine("f1", NOW, eval(&[W10], &[], &[]))),
        ],
    );
    s.import_catalog(
        &[jan()],
        &[],
        None,
        state.generation,
        &results,
        ACTIVE_SINCE,
        &mut no_late,
    )
    .unwrap();
    assert_eq!(out_of_servicing(s, "contoso", W10), vec![line("m3")]);
    assert_eq!(out_of_servicing(s, "fabrikam", W10), Vec::<String>::new());
}

/// Importers of two stores on one SQLite file (as two processes) take turns: the second
/// waits until the first releases the import lock (the lock file beside the database).
#[test]
fn sqlite_importers_of_two_processes_wait_for_each_other() {
    let f = Fixture::sqlite();
    let other = f.reopen().unwrap();
    let first = f.store.lock_catalog_imports().unwrap();
    let (acquired, taken) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let other = &other;
        scope.spawn(move || {
            let lock = other.lock_catalog_imports().unwrap();
            acquired.send(()).unwrap();
            drop(lock);
        });
        assert!(
            taken
                .recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the lock was taken twice"
        );
        drop(first);
        taken.recv().unwrap();
    });
}

/// Importers of several processes on one PostgreSQL database take turns: the second waits
/// until the first releases the import lock.
#[test]
fn postgres_importers_wait_for_each_other() {
    let Some(f) = Fixture::postgres() else {
        return;
    };
    let Db::Postgres(schema) = &f.db else {
        unreachable!()
    };
    let other = f.reopen().unwrap();
    let first = f.store.lock_catalog_imports().unwrap();
    let (acquired, taken) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let other = &other;
        scope.spawn(move || {
            let lock = other.lock_catalog_imports().unwrap();
            acquired.send(()).unwrap();
            drop(lock);
        });
        // Until the server shows the second session waiting for the lock of this schema.
        let mut c = schema.connect();
        loop {
            let waiting: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM pg_locks
                     WHERE locktype = 'advisory' AND NOT granted
                       AND classid = 1801584644::oid AND objid = hashtext($1)::oid",
                    &[&schema.name()],
                )
                .unwrap()
                .get(0);
            if waiting == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(taken.try_recv().is_err(), "the lock was taken twice");
        drop(first);
        taken.recv().unwrap();
    });
}
