//! Windows itself: the disagreements found by cross-checking large fleets, each a rule of
//! `missing-kb-semantics.md` or `docs/semantics-products.md`, on the real archive.

use super::*;
use kbgap_domain::engine::Outcome;
use kbgap_service::Retention;
use kbgap_store::Store;

#[test]
fn pending_restart_without_a_revision_reports_the_newest_cumulative_update() {
    // Windows 10 22H2 reporting 10.0.19045 (no revision), December 2023's KB5033372 pending
    // a restart: the build is below it, so below January's KB5034122 as well. Decided, not
    // indeterminate: the older updates KB5034122 supersedes cannot change the answer.
    let mut m = machine("windows_10", "10.0.19045", Arch::X64);
    m.pending_kbs.insert(kb(5033372));
    let e = explain(jan_2024(), &m);
    assert_eq!(missing(&e, "windows_10"), vec![5034122]);
    assert_eq!(verdict(&e, 5034122), (Satisfied::No, Rule::PendingRestart));
    assert_eq!(verdict(&e, 5033372), (Satisfied::No, Rule::PendingRestart));
    assert!(e.evaluation.pending_restart);
    assert!(e.evaluation.indeterminate.is_empty(), "{:?}", e.evaluation);
}

#[test]
fn an_unknown_kb_a_reported_update_supersedes_leaves_the_machine_decided() {
    // Windows 11 23H2 reported as 10.0.22631 with a partial list naming November 2023's
    // KB5032190: December's KB5033375 and January's KB5034123 are unknown, and the machine is
    // indeterminate (case 9 of the semantics, with a list).
    let m = with_kbs(
        machine("windows_11", "10.0.22631", Arch::X64),
        &[5032190],
        false,
    );
    let e = explain(jan_2024(), &m);
    assert_eq!(verdict(&e, 5034123), (Satisfied::Unknown, Rule::NoEvidence));
    assert!(e.evaluation.indeterminate.contains(&sw("windows_11")));
    assert_eq!(missing(&e, "windows_11"), Vec::<u32>::new());
    // Pending January's update proves it is missing, and the older updates it supersedes no
    // longer matter.
    let mut pending = m.clone();
    pending.pending_kbs.insert(kb(5034123));
    let e = explain(jan_2024(), &pending);
    assert_eq!(missing(&e, "windows_11"), vec![5034123]);
    assert!(!e.evaluation.indeterminate.contains(&sw("windows_11")));
}

#[test]
fn a_secure_boot_dbx_update_covers_no_cumulative_update() {
    // KB5012170 (Secure Boot DBX) carries FixedBuild 10.0.17763.3284 for Windows Server 2019
    // in 2022-Aug and supersedes only the earlier DBX update KB4535680; the month's LCU is
    // KB5016623 (.3287). Installed alone, it proves nothing about July's LCU KB5015811.
    let m = with_kbs(
        machine("windows_server_2019", "10.0.17763", Arch::X64),
        &[5012170],
        true,
    );
    let e = explain(&cut(2022, 8, 31), &m);
    assert_eq!(verdict(&e, 5015811), (Satisfied::No, Rule::CompleteKbList));
    assert_eq!(missing(&e, "windows_server_2019"), vec![5016623]);
}

#[test]
fn a_rollup_covers_the_servicing_stack_updates_before_it() {
    // The servicing stack update KB4558997 (2020-Jul, CVE-2020-1346) is no member of the
    // cumulative chain, but a machine at December 2023's LCU build has every later rollup,
    // and since 2021 the LCU carries the servicing stack: not missing.
    let e = explain(
        jan_2024(),
        &machine("windows_server_2019", "10.0.17763.5206", Arch::X64),
    );
    assert_eq!(verdict(&e, 4558997), (Satisfied::Yes, Rule::InstalledKb));
    assert_eq!(missing(&e, "windows_server_2019"), vec![5034127]);
}

#[test]
fn an_os_the_catalog_does_not_know_is_refused_at_ingestion() {
    let dir = tempfile::tempdir().unwrap();
    let (store, holder, now) = store_as_of_jan_2024(dir.path());
    let tenant = kbgap_domain::TenantId::parse("t-os").unwrap();
    let seen = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let snapshot = |id: &str, platform: &str| {
        kbgap_inventory::parse_snapshot(
            format!(r#"{{"id":"{id}","lastSeen":"{seen}","osPlatform":"{platform}","osBuild":"10.0.17763.5206","osArchitecture":"x64"}}"#)
                .as_bytes(),
        )
        .unwrap()
    };
    let ingest = |snapshots: &[kbgap_inventory::Snapshot]| {
        kbgap_service::ingest(
            &store,
            &holder,
            &tenant,
            snapshots,
            now,
            Retention::default(),
        )
    };
    let err = ingest(&[
        snapshot("ok", "microsoft-_-windows_server_2019"),
        snapshot("typo", "microsoft-_-windows_sever_2019"),
    ])
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "invalid snapshot: [1].osPlatform: the catalog has no operating system \
         'microsoft-_-windows_sever_2019'; the closest it knows: \
         microsoft-_-windows_server_2019, microsoft-_-windows_server_2012, \
         microsoft-_-windows_server_2016"
    );
    // Nothing of the batch was stored.
    assert!(!store
        .software_known(&tenant, &sw("windows_server_2019"))
        .unwrap());
    let err = ingest(&[snapshot("vague", "microsoft-_-windows_server")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid snapshot: osPlatform: the catalog has no operating system 'microsoft-_-windows_server'"),
        "{err}"
    );
    ingest(&[snapshot("ok", "microsoft-_-windows_server_2019")]).unwrap();
    assert!(store
        .software_known(&tenant, &sw("windows_server_2019"))
        .unwrap());
}

#[test]
fn outcome_of_a_superseded_unknown_is_unknown_not_missing() {
    let mut m = machine("windows_10", "10.0.19045", Arch::X64);
    m.pending_kbs.insert(kb(5033372));
    let e = explain(jan_2024(), &m);
    let o = e
        .kbs
        .iter()
        .find(|k| k.verdict.kb == kb(5031356))
        .and_then(|k| k.outcomes.first().map(|o| o.outcome.clone()));
    assert_eq!(o, Some(Outcome::Superseded { by: kb(5034122) }));
}

#[test]
fn a_semi_annual_server_follows_its_servicing_branch_like_windows_10() {
    // Server 2004 and Server 20H2 are separate software, but one servicing branch (19041),
    // as Windows 10 2004 and 20H2 are. June 2022's KB5014699 is listed for Windows 10 20H2,
    // 21H2 and Server 20H2 (Server 2004 left servicing in December 2021 with KB5008212);
    // through the branch it is what a Windows 10 2004 machine at 19041.1288 misses, and
    // what a Server 2004 machine at the same build misses too.
    static JUN_2022: OnceLock<Catalog> = OnceLock::new();
    let catalog = JUN_2022.get_or_init(|| {
        kbgap_service::compile(documents(), Some(time::macros::date!(2022 - 06 - 30)))
    });
    let client = explain(
        catalog,
        &machine("windows_10", "10.0.19041.1288", Arch::X64),
    );
    assert_eq!(missing(&client, "windows_10"), vec![5014699]);
    let server = explain(
        catalog,
        &machine("windows_server_2004", "10.0.19041.1288", Arch::X64),
    );
    assert_eq!(missing(&server, "windows_server_2004"), vec![5014699]);
    // The evidence says which product the update was listed for.
    let listed = server
        .kbs
        .iter()
        .find(|k| k.verdict.kb == kb(5014699))
        .unwrap();
    assert!(listed
        .products
        .iter()
        .all(|p| p.starts_with("Windows Server, version 20H2")));
    // Server 20H2 at the same revision of its own build misses the same update.
    let sibling = explain(
        catalog,
        &machine("windows_server_20h2", "10.0.19042.1288", Arch::X64),
    );
    assert_eq!(missing(&sibling, "windows_server_20h2"), vec![5014699]);
}
