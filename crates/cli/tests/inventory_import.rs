//! `kbgap inventory import` on the real captures in ../shared/data/inventory (read in place)
//! against a one-KB catalog, and the ingestion guarantees on a real SQLite store: a re-import
//! keeps exactly the new KB list, a deleted machine leaves every count, bad files store nothing.

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

use kbgap_domain::{KbId, MachineId, SoftwareId, TenantId};
use kbgap_inventory::Snapshot;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::{SqliteStore, Store};
use time::OffsetDateTime;

const SAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/inventory"
);
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn sample(name: &str) -> String {
    format!("{SAMPLES}/{name}")
}

fn import(dir: &Path, files: &[&str]) -> Output {
    let mut args = vec!["inventory", "import", "--tenant", TENANT];
    args.extend_from_slice(files);
    kbgap(dir, &args)
}

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

fn stored(store: &SqliteStore, id: &str) -> Option<Snapshot> {
    store
        .machine_snapshot(&tenant(), &MachineId::parse(id).unwrap())
        .unwrap()
        .map(|j| kbgap_inventory::parse_snapshot(j.as_bytes()).unwrap())
}

fn counts(store: &SqliteStore, software: &str) -> Vec<(u32, u32)> {
    let mut c: Vec<(u32, u32)> = store
        .missing_counts(&tenant(), &SoftwareId::parse(software).unwrap())
        .unwrap()
        .into_iter()
        .map(|c| (c.kb.number(), c.machines))
        .collect();
    c.sort();
    c
}

#[test]
fn systeminfo_import_evaluates_replaces_and_deletes() {
    let dir = with_mini_catalog();
    // Windows 10 21H2 (19044) x64 with a complete list of 7 KBs, none of them KB5034122.
    let o = import(dir.path(), &[&sample("10_21H2_x64_pro_systeminfo.txt")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("stored 1 machine(s) for tenant {TENANT}\n")
    );
    let store = SqliteStore::open(dir.path()).unwrap();
    let s = stored(&store, "desktop").unwrap();
    assert_eq!(
        (s.os_platform.as_str(), s.os_build.as_str()),
        ("Windows10", "10.0.19044")
    );
    assert_eq!(s.installed_kbs.len(), 7);
    assert_eq!(counts(&store, "microsoft-_-windows_10"), vec![(5034122, 1)]);
    assert!(store
        .software_known(&tenant(), &SoftwareId::microsoft("internet_explorer"))
        .unwrap());

    // The same host again: still one machine.
    let o = import(dir.path(), &[&sample("10_21H2_x64_pro_systeminfo.txt")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(store.all_machines().unwrap().len(), 1);
    assert_eq!(counts(&store, "microsoft-_-windows_10"), vec![(5034122, 1)]);

    // Deleting it (what DELETE /api/inventory/machines/{id} does) empties every count.
    assert!(store
        .delete_machine(&tenant(), &MachineId::parse("desktop").unwrap())
        .unwrap());
    assert!(counts(&store, "microsoft-_-windows_10").is_empty());
    for sw in ["windows_10", "internet_explorer", "edge"] {
        assert!(!store
            .software_known(&tenant(), &SoftwareId::microsoft(sw))
            .unwrap());
    }
}

#[test]
fn re_import_with_fewer_kbs_keeps_exactly_the_new_list() {
    let dir = with_mini_catalog();
    // Two captures of one Server 2012 R2 host: 156 KBs, then 154.
    let o = import(dir.path(), &[&sample("srv_2012r2_u1_systeminfo2.txt")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        stored(&store, "srv12r2u1x64").unwrap().installed_kbs.len(),
        156
    );
    let o = import(dir.path(), &[&sample("srv_2012r2_u1_systeminfo.txt")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = kbgap_inventory::systeminfo::parse(
        &std::fs::read(sample("srv_2012r2_u1_systeminfo.txt")).unwrap(),
    )
    .unwrap()
    .kbs;
    let got = stored(&store, "srv12r2u1x64").unwrap();
    assert_eq!(
        got.installed_kbs,
        want.iter().map(|k| format!("KB{k}")).collect::<Vec<_>>()
    );
    assert_eq!(got.installed_kbs.len(), 154);
    assert_eq!(store.all_machines().unwrap().len(), 1);

    // wmic qfe alone, for the stored host: its list replaces the stored one.
    let o = import(dir.path(), &[&sample("srv_2012r2_u1_qfe.txt")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stored(&store, "srv12r2u1x64").unwrap();
    assert_eq!(s.installed_kbs.len(), 154);
    assert!(s.installed_kbs_complete);
    assert_eq!(
        s.installed_kbs_sources,
        vec![kbgap_inventory::KbSource::WmicQfe]
    );
    assert_eq!(s.os_platform, "WindowsServer2012R2");

    // wmic qfe of a host that is not stored: nothing to attach it to.
    let o = import(
        dir.path(),
        &[&sample("xp_sp3_x86_professional_en-us_qfe.txt")],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("machine 'winxpsp3' is not stored"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_damaged_file_stores_nothing_of_the_import() {
    let dir = with_mini_catalog();
    // The German UTF-8 capture with one byte replaced on line 27.
    let mut de = std::fs::read(sample("7_sp1_x64_ultimaten_de_systeminfo.txt")).unwrap();
    let at = de
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(25)
        .unwrap()
        .0
        + 5;
    de[at] = 0xFF;
    let bad: PathBuf = dir.path().join("oli7_systeminfo.txt");
    std::fs::write(&bad, de).unwrap();
    let o = import(
        dir.path(),
        &[
            &sample("10_21H2_x64_pro_systeminfo.txt"),
            bad.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("oli7_systeminfo.txt:27:") && err.contains("mis-encoded"),
        "{err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.all_machines().unwrap().is_empty());

    // A systeminfo + wmic qfe pair without a CSName column merges by file name.
    let o = import(
        dir.path(),
        &[
            &sample("10_1809_x64_pro_en-us_20190307_systeminfo.txt"),
            &sample("10_1809_x64_pro_en-us_20190307_qfe.txt"),
            "--last-seen",
            "mtime",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stored(&store, "desktop-loq9l09").unwrap();
    assert_eq!(s.installed_kbs.len(), 5);
    assert_eq!(s.installed_kbs_sources.len(), 2);
    let mtime = OffsetDateTime::from(
        std::fs::metadata(sample("10_1809_x64_pro_en-us_20190307_qfe.txt"))
            .unwrap()
            .modified()
            .unwrap(),
    )
    .max(OffsetDateTime::from(
        std::fs::metadata(sample("10_1809_x64_pro_en-us_20190307_systeminfo.txt"))
            .unwrap()
            .modified()
            .unwrap(),
    ));
    assert_eq!(s.last_seen.unix_timestamp(), mtime.unix_timestamp());
}

fn snapshot(id: &str, kbs: &[&str]) -> Snapshot {
    kbgap_inventory::parse_snapshot(
        serde_json::json!({
            "id": id,
            "lastSeen": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
            "osPlatform": "Windows10",
            "osBuild": "10.0.19044",
            "osArchitecture": "x64",
            "software": [{"vendor": "Microsoft", "name": "Internet Explorer", "version": "11"}],
            "installedKbs": kbs,
            "installedKbsComplete": true,
            "installedKbsSources": ["other"],
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

/// The service on a real store: what the API's PUT, POST and DELETE call.
#[test]
fn service_level_replacement_and_deletion() {
    let dir = with_mini_catalog();
    let store = SqliteStore::open(dir.path()).unwrap();
    let holder = CatalogHolder::load(&store).unwrap();
    let ingest = |s: &[Snapshot]| {
        kbgap_service::ingest(
            &store,
            &holder,
            &tenant(),
            s,
            OffsetDateTime::now_utc(),
            Retention::default(),
        )
    };
    let w10 = SoftwareId::microsoft("windows_10");
    // m1 has KB5034122 (not missing), m2 has not (missing).
    ingest(&[
        snapshot("m1", &["KB5034122", "KB5033372"]),
        snapshot("m2", &["KB5033372"]),
    ])
    .unwrap();
    assert_eq!(counts(&store, "microsoft-_-windows_10"), vec![(5034122, 1)]);
    // m1 re-imported with fewer KBs: exactly the new list, and now it misses KB5034122.
    ingest(&[snapshot("m1", &["KB5033372"])]).unwrap();
    assert_eq!(
        stored(&store, "m1").unwrap().installed_kbs,
        vec!["KB5033372"]
    );
    assert_eq!(counts(&store, "microsoft-_-windows_10"), vec![(5034122, 2)]);
    let rows = kbgap_service::missing_kbs(&store, &holder.current().catalog, &tenant(), &w10)
        .unwrap()
        .unwrap();
    assert_eq!(
        (rows[0].kb, rows[0].machines),
        (KbId::from_number(5034122).unwrap(), 2)
    );
    // A batch with one invalid entry stores nothing (the stored m2 is unchanged).
    let mut bad = snapshot("m2", &["KB5034122"]);
    bad.os_build = "ten".into();
    assert!(ingest(&[snapshot("m3", &[]), bad]).is_err());
    assert_eq!(store.all_machines().unwrap().len(), 2);
    assert_eq!(
        stored(&store, "m2").unwrap().installed_kbs,
        vec!["KB5033372"]
    );
    // Deleting: every count follows.
    assert!(store
        .delete_machine(&tenant(), &MachineId::parse("m1").unwrap())
        .unwrap());
    assert_eq!(counts(&store, "microsoft-_-windows_10"), vec![(5034122, 1)]);
    assert!(store
        .delete_machine(&tenant(), &MachineId::parse("m2").unwrap())
        .unwrap());
    assert!(counts(&store, "microsoft-_-windows_10").is_empty());
    assert!(!store.software_known(&tenant(), &w10).unwrap());
    assert!(!store
        .software_known(&tenant(), &SoftwareId::microsoft("internet_explorer"))
        .unwrap());
    assert_eq!(
        kbgap_service::missing_kbs(&store, &holder.current().catalog, &tenant(), &w10).unwrap(),
        None
    );
}
