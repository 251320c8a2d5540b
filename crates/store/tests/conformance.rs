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
use kbgap_store::test_support::TestSchema;
use kbgap_store::{
    Backend, CatalogState, ImportSummary, MachineRecord, MissingCount, PostgresStore, SqliteStore,
    Store, StoreError,
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

    fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }
}

impl Db {
    fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Db::Sqlite(dir) => Box::new(SqliteStore::open(dir.path())?),
            Db::Postgres(s) => Box::new(PostgresStore::open(s.url())?),
        })
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
    tenants_never_see_each_other,
    snapshots_round_trip_and_machines_list_in_byte_order,
    reopening_keeps_everything_and_a_newer_schema_is_refused,
    stores_opened_at_once_share_one_schema,
    machines_are_found_by_id_ignoring_case_within_their_tenant,
    machines_out_of_servicing_are_listed_with_their_results,
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

/// Imports `docs` with no machines, from the state the store is in.
fn import(store: &dyn Store, docs: &[CvrfDocument]) -> ImportSummary {
    let state = store.catalog_state().unwrap();
    store
        .import_catalog(docs, &[], state.as_of, state, &[], ACTIVE_SINCE)
        .unwrap()
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
            state,
            &[],
            ACTIVE_SINCE,
        )
        .unwrap();
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
    s.import_catalog(&[], &[], None, state, &[], ACTIVE_SINCE)
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

    let old_catalog = CatalogState {
        generation: 0,
        ..state
    };
    match s.import_catalog(&[feb()], &[], None, old_catalog, &[], ACTIVE_SINCE) {
        Err(StoreError::StaleCatalog { expected, found }) => {
            assert_eq!((expected, found), (0, 1))
        }
        other => panic!("expected a stale catalog, got {other:?}"),
    }
    let old_inventory = CatalogState {
        inventory: 0,
        ..state
    };
    match s.import_catalog(&[feb()], &[], None, old_inventory, &[], ACTIVE_SINCE) {
        Err(StoreError::StaleInventory) => {}
        other => panic!("expected a stale inventory, got {other:?}"),
    }
    assert_eq!(everything(s), before);
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
    let results = vec![(tenant("contoso"), m1.clone()), (tenant("contoso"), m1)];
    let state = s.catalog_state().unwrap();
    let err = s
        .import_catalog(
            &[feb()],
            &[kb_info(5034763, "2024-Feb")],
            Some(date!(2024 - 02 - 29)),
            state,
            &results,
            ACTIVE_SINCE,
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
    // nothing; m3 is not among the results and is left without any; the cut moves so that
    // f1 is no longer active.
    let results = vec![
        (
            tenant("contoso"),
            machine(
                "m1",
                1_500,
                eval(&[W10], &[(W10, &[5034122, 5034763])], &[]),
            ),
        ),
        (
            tenant("contoso"),
            machine("m2", 1_500, eval(&[W10], &[], &[W10])),
        ),
        (
            tenant("fabrikam"),
            machine("f1", 1_500, eval(&[W10], &[(W10, &[5034763])], &[])),
        ),
    ];
    let summary = s
        .import_catalog(&[jan(), feb()], &[], None, state, &results, 1_400)
        .unwrap();
    assert_eq!(summary, stored(&["2024-Feb", "2024-Jan"], &[]));
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1), (5034763, 1)]);
    assert_eq!(indeterminate(s, "contoso", W10), vec!["m2"]);
    assert_eq!(counts(s, "fabrikam", W10), vec![(5034763, 1)]);
    let state = s.catalog_state().unwrap();
    assert_eq!(
        state,
        CatalogState {
            generation: 1,
            as_of: None,
            inventory: 2
        }
    );
    // The active window is applied to every re-evaluated machine.
    let results = vec![(
        tenant("contoso"),
        machine("m1", 1_500, eval(&[W10], &[(W10, &[5034122])], &[])),
    )];
    s.import_catalog(&[], &[], None, state, &results, 1_600)
        .unwrap();
    assert_eq!(counts(s, "contoso", W10), vec![]);
    assert!(!known(s, "contoso", W10));
    assert!(!known(s, "fabrikam", W10));
    // A machine of the new generation counts when seen again.
    put(
        s,
        "contoso",
        &[machine("m1", NOW, eval(&[W10], &[(W10, &[5034122])], &[]))],
    );
    assert_eq!(counts(s, "contoso", W10), vec![(5034122, 1)]);
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

    f.set_schema_version(3);
    match f.reopen() {
        Err(StoreError::SchemaTooNew { found, known }) => assert_eq!((found, known), (3, 2)),
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
    let results = vec![
        (tenant("contoso"), machine("m3", NOW, ended(&[W10]))),
        (
            tenant("fabrikam"),
            machine("f1", NOW, eval(&[W10], &[], &[])),
        ),
    ];
    s.import_catalog(&[jan()], &[], None, state, &results, ACTIVE_SINCE)
        .unwrap();
    assert_eq!(out_of_servicing(s, "contoso", W10), vec![line("m3")]);
    assert_eq!(out_of_servicing(s, "fabrikam", W10), Vec::<String>::new());
}
