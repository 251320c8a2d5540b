//! Conformance cases of `missing-kb-semantics.md` §4 on the real MSRC archive, parsed once per
//! test process and compiled once per cut date.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::engine::{Rule, Satisfied};
use kbgap_domain::{
    explain, Arch, Catalog, Explanation, InstallType, KbId, KbListScope, MachineFacts, OsFacts,
    SoftwareId,
};

#[path = "conformance/lifecycle.rs"]
mod lifecycle;
#[path = "conformance/products.rs"]
mod products;
#[path = "conformance/windows.rs"]
mod windows;

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf"
);

fn documents() -> &'static [CvrfDocument] {
    static DOCS: OnceLock<Vec<CvrfDocument>> = OnceLock::new();
    DOCS.get_or_init(|| kbgap_catalog::read_documents(&[ARCHIVE]).expect("the real archive parses"))
}

/// The catalog as it stood on 2024-01-31 ("feed ends Jan 2024").
fn jan_2024() -> &'static Catalog {
    static CAT: OnceLock<Catalog> = OnceLock::new();
    CAT.get_or_init(|| {
        kbgap_service::compile(documents(), Some(time::macros::date!(2024 - 01 - 31)))
    })
}

fn full() -> &'static Catalog {
    static CAT: OnceLock<Catalog> = OnceLock::new();
    CAT.get_or_init(|| kbgap_service::compile(documents(), None))
}

fn kb(n: u32) -> KbId {
    KbId::from_number(n).unwrap()
}

fn sw(product: &str) -> SoftwareId {
    SoftwareId::microsoft(product)
}

/// A machine running `os` (product part of the software id) at `build`.
fn machine(os: &str, build: &str, arch: Arch) -> MachineFacts {
    let b = kbgap_domain::WindowsBuild::parse(build).unwrap();
    let software = sw(os);
    MachineFacts {
        os: Some(OsFacts {
            software: software.clone(),
            build: b.build,
            revision: b.revision,
            arch,
            install_type: InstallType::Full,
            hotpatch_enrolled: false,
            edition: None,
        }),
        software: [(software, Some(build.to_string()))].into_iter().collect(),
        ..MachineFacts::default()
    }
}

fn with_kbs(mut m: MachineFacts, kbs: &[u32], complete: bool) -> MachineFacts {
    m.installed_kbs = kbs.iter().map(|&n| kb(n)).collect();
    // As a Win32_QuickFixEngineering capture gives it: complete for Windows servicing.
    m.kb_list = if complete {
        KbListScope::WindowsServicing
    } else {
        KbListScope::Partial
    };
    m
}

fn missing(e: &Explanation, os: &str) -> Vec<u32> {
    e.evaluation
        .missing
        .get(&sw(os))
        .map(|s| s.iter().map(|k| k.number()).collect())
        .unwrap_or_default()
}

fn verdict(e: &Explanation, n: u32) -> (Satisfied, Rule) {
    let v = e
        .kbs
        .iter()
        .find(|v| v.verdict.kb == kb(n))
        .unwrap_or_else(|| panic!("KB{n} is not applicable"));
    (v.verdict.satisfied, v.verdict.rule)
}

#[test]
fn case_01_equal_build_is_not_missing() {
    let e = explain(
        jan_2024(),
        &machine("windows_10", "10.0.19045.3570", Arch::X64),
    );
    assert_eq!(verdict(&e, 5031356), (Satisfied::Yes, Rule::Build));
    assert!(!missing(&e, "windows_10").contains(&5031356));
}

#[test]
fn case_02_only_the_frontier_is_missing() {
    let e = explain(
        jan_2024(),
        &machine("windows_10", "10.0.19045.3570", Arch::X64),
    );
    for n in [5032189, 5033372, 5034122] {
        assert_eq!(verdict(&e, n), (Satisfied::No, Rule::Build), "KB{n}");
    }
    assert_eq!(missing(&e, "windows_10"), vec![5034122]);
    assert!(e.evaluation.indeterminate.is_empty());
}

#[test]
fn case_03_sibling_versions_share_a_branch() {
    let cat = jan_2024();
    let e21 = explain(cat, &machine("windows_10", "10.0.19044.3693", Arch::X86));
    assert_eq!(verdict(&e21, 5032189), (Satisfied::Yes, Rule::Build));
    let e22 = explain(cat, &machine("windows_10", "10.0.19045.3693", Arch::X64));
    assert_eq!(verdict(&e22, 5032189), (Satisfied::Yes, Rule::Build));
    assert_eq!(missing(&e22, "windows_10"), vec![5034122]);
}

#[test]
fn case_04_chain_without_help_from_msrc() {
    let cat = jan_2024();
    // Build evidence: the December update covers November's.
    let e = explain(
        cat,
        &machine("windows_server_2019", "10.0.17763.5206", Arch::X64),
    );
    assert_eq!(verdict(&e, 5032196), (Satisfied::Yes, Rule::Build));
    assert_eq!(missing(&e, "windows_server_2019"), vec![5034127]);
    // KB evidence only: a complete list with the December update.
    let m = with_kbs(
        machine("windows_server_2019", "10.0.17763", Arch::X64),
        &[5033371],
        true,
    );
    let e = explain(cat, &m);
    assert_eq!(verdict(&e, 5032196), (Satisfied::Yes, Rule::InstalledKb));
    assert_eq!(verdict(&e, 5033371), (Satisfied::Yes, Rule::InstalledKb));
    assert_eq!(missing(&e, "windows_server_2019"), vec![5034127]);
}

#[test]
fn case_05_an_old_kb_is_no_cover() {
    let m = with_kbs(
        machine("windows_server_2019", "10.0.17763.4974", Arch::X64),
        &[5031361],
        false,
    );
    let e = explain(jan_2024(), &m);
    assert_eq!(missing(&e, "windows_server_2019"), vec![5034127]);
}

#[test]
fn case_08_a_machine_newer_than_the_catalog() {
    let m = with_kbs(
        machine("windows_10", "10.0.19045.4046", Arch::X64),
        &[5034763],
        false,
    );
    let e = explain(jan_2024(), &m);
    assert!(
        e.evaluation.missing.is_empty(),
        "{:?}",
        e.evaluation.missing
    );
}

#[test]
fn case_09_no_revision_and_no_kb_list_is_indeterminate() {
    let e = explain(jan_2024(), &machine("windows_11", "10.0.22631", Arch::X64));
    assert!(e.evaluation.missing.is_empty());
    assert!(!e.kbs.is_empty());
    assert!(e
        .kbs
        .iter()
        .all(|v| v.verdict.satisfied == Satisfied::Unknown));
    assert_eq!(
        e.evaluation.indeterminate,
        [sw("windows_11")].into_iter().collect::<BTreeSet<_>>()
    );
}

#[test]
fn case_10_build_beats_the_kb_list() {
    let m = with_kbs(
        machine("windows_10", "10.0.19045.3803", Arch::X64),
        &[5034122],
        false,
    );
    let e = explain(jan_2024(), &m);
    assert_eq!(verdict(&e, 5034122), (Satisfied::No, Rule::Build));
    assert_eq!(missing(&e, "windows_10"), vec![5034122]);
}

#[test]
fn case_11_pending_restart_is_missing() {
    let mut m = with_kbs(
        machine("windows_10", "10.0.19045.3803", Arch::X64),
        &[5034122],
        false,
    );
    m.pending_kbs = [kb(5034122)].into_iter().collect();
    let e = explain(jan_2024(), &m);
    assert_eq!(verdict(&e, 5034122), (Satisfied::No, Rule::PendingRestart));
    assert!(e.evaluation.pending_restart);
    assert_eq!(missing(&e, "windows_10"), vec![5034122]);
}

#[test]
fn case_12_wrong_branch_fixed_build_is_not_applicable() {
    let e = explain(
        jan_2024(),
        &machine("windows_10", "10.0.19044.3570", Arch::X86),
    );
    assert!(!e.kbs.iter().any(|v| v.verdict.kb == kb(5032192)));
    assert_eq!(verdict(&e, 5032189), (Satisfied::No, Rule::Build));
    assert!(jan_2024()
        .repairs()
        .iter()
        .any(|r| r.kb == kb(5032192)
            && r.product_name == "Windows 10 Version 21H2 for 32-bit Systems"));
    assert_eq!(missing(&e, "windows_10"), vec![5034122]);
}

#[test]
fn case_13_architectures_count_separately_and_cves_once() {
    let cut = kbgap_service::compile(documents(), Some(time::macros::date!(2020 - 01 - 31)));
    let x86 = explain(
        &cut,
        &with_kbs(machine("windows_10", "10.0.17763", Arch::X86), &[], true),
    );
    let x64 = explain(
        &cut,
        &with_kbs(machine("windows_10", "10.0.17763", Arch::X64), &[], true),
    );
    assert_eq!(missing(&x86, "windows_10"), vec![4534273]);
    assert_eq!(missing(&x64, "windows_10"), vec![4534273]);
    // CVE-2020-0617 is listed for x64 products only; the count takes each CVE once.
    let entries: Vec<_> = cut
        .entries_for(&sw("windows_10"))
        .filter(|e| e.kb == kb(4534273))
        .collect();
    let distinct: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.cves.iter().map(|c| cut.cve_name(*c)))
        .collect();
    assert!(distinct.contains("CVE-2020-0617"));
    assert_eq!(
        cut.cve_addressed(&sw("windows_10"), kb(4534273)) as usize,
        distinct.len()
    );
}

#[test]
fn case_19_the_documentation_example() {
    let cat = full();
    let info = cat.kb(kb(4540673)).unwrap();
    assert_eq!(info.name, "March 2020 Security Updates");
    assert_eq!(info.document_id, "2020-Mar");
    assert_eq!(
        info.url(),
        "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673"
    );
    assert_eq!(cat.cve_addressed(&sw("edge"), kb(4540673)), 14);
}

/// A SQLite store in `dir` holding the real archive as of 2024-01-31, its compiled catalog,
/// and the time of the import.
fn store_as_of_jan_2024(
    dir: &std::path::Path,
) -> (
    kbgap_store::SqliteStore,
    kbgap_service::CatalogHolder,
    time::OffsetDateTime,
) {
    let store = kbgap_store::SqliteStore::open(dir).unwrap();
    let now = time::OffsetDateTime::now_utc();
    kbgap_service::import_catalog(
        &store,
        documents(),
        Some(time::macros::date!(2024 - 01 - 31)),
        now,
        kbgap_service::Retention::default(),
    )
    .unwrap();
    let holder = kbgap_service::CatalogHolder::load(&store).unwrap();
    (store, holder, now)
}

fn cut(y: i32, m: u8, d: u8) -> Catalog {
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
    kbgap_service::compile(documents(), Some(date))
}

fn outcome(e: &Explanation, n: u32, os: &str) -> kbgap_domain::engine::Outcome {
    e.kbs
        .iter()
        .find(|k| k.verdict.kb == kb(n))
        .and_then(|k| k.outcomes.iter().find(|o| o.software == sw(os)))
        .map(|o| o.outcome.clone())
        .unwrap_or_else(|| panic!("no outcome for KB{n}"))
}

#[test]
fn case_04_a_chain_link_msrc_leaves_out_comes_from_the_implied_order() {
    // KB5043080, the September 2024 update of Windows 11 24H2 (26100.1742), has an empty
    // Supercedence; August's KB5041571 (26100.1457) comes before it in the chain.
    let cat = cut(2024, 9, 30);
    assert!(cat.repairs().iter().any(|r| r.kb == kb(5043080)
        && r.kind == kbgap_domain::catalog::RepairKind::ChainLinkMissing
        && r.product_name == "windows_11 branch 26100 x64"
        && r.evidence
            .ends_with("the previous cumulative update of the chain is KB5041571")));
    let m = with_kbs(
        machine("windows_11", "10.0.26100", Arch::X64),
        &[5043080],
        true,
    );
    let e = explain(&cat, &m);
    assert_eq!(verdict(&e, 5041571), (Satisfied::Yes, Rule::InstalledKb));
    let k = e.kbs.iter().find(|k| k.verdict.kb == kb(5041571)).unwrap();
    assert_eq!(k.verdict.covered_by, Some(kb(5043080)));
    assert_eq!(k.chain, vec![kb(5043080), kb(5041571)]);
    assert!(e
        .evaluation
        .missing
        .get(&sw("windows_11"))
        .is_none_or(|m| !m.contains(&kb(5041571))));
}

#[test]
fn servicing_stack_updates_stay_out_of_the_cumulative_chain() {
    // October 2024: the SSU KB5047621 carries FixedBuild 26100.2303, above the LCU's .2033.
    let cat = cut(2024, 10, 31);
    let e = explain(&cat, &machine("windows_11", "10.0.26100.1742", Arch::X64));
    assert_eq!(missing(&e, "windows_11"), vec![5044284]);
}

#[test]
fn case_06_hotpatch() {
    let cat = cut(2023, 9, 30);
    let mut enrolled = machine("windows_server_2022", "10.0.20348.1964", Arch::X64);
    enrolled.os.as_mut().unwrap().hotpatch_enrolled = true;
    let e = explain(&cat, &enrolled);
    assert_eq!(verdict(&e, 5030325), (Satisfied::Yes, Rule::Build));
    assert!(
        !e.kbs.iter().any(|k| k.verdict.kb == kb(5030216)),
        "the LCU is not applicable"
    );
    assert!(
        e.evaluation.missing.is_empty(),
        "{:?}",
        e.evaluation.missing
    );

    let e = explain(
        &cat,
        &machine("windows_server_2022", "10.0.20348.1906", Arch::X64),
    );
    assert!(
        !e.kbs.iter().any(|k| k.verdict.kb == kb(5030325)),
        "no hotpatch when not enrolled"
    );
    assert_eq!(missing(&e, "windows_server_2022"), vec![5030216]);
}

#[test]
fn case_07_alternative_remediations() {
    // March 2017: Security Only KB4012213 and Monthly Rollup KB4012216 both fix CVE-2017-0143.
    let cat = cut(2017, 3, 31);
    let m = with_kbs(
        machine("windows_server_2012_r2", "6.3.9600", Arch::X64),
        &[4012213],
        true,
    );
    let e = explain(&cat, &m);
    assert_eq!(verdict(&e, 4012213), (Satisfied::Yes, Rule::InstalledKb));
    assert_eq!(verdict(&e, 4012216), (Satisfied::No, Rule::CompleteKbList));
    // CVE-2017-0143 is closed by the Security Only update: the rollup, still reported for the
    // older fixes the machine lacks (its list is complete and holds nothing else), is not
    // missing on account of it.
    let k = e.kbs.iter().find(|k| k.verdict.kb == kb(4012216)).unwrap();
    let listed: BTreeSet<&str> = cat
        .entries_for(&sw("windows_server_2012_r2"))
        .filter(|en| en.kb == kb(4012216))
        .flat_map(|en| en.cves.iter().map(|c| cat.cve_name(*c)))
        .collect();
    assert!(listed.contains("CVE-2017-0143"));
    assert!(!k.closes_open_cves.contains(&"CVE-2017-0143".to_string()));
    assert!(!k.closes_open_cves.is_empty());
    assert!(!k
        .closes_open_cves
        .iter()
        .any(|c| listed.contains(c.as_str()) && e.kbs.iter().any(|x| x.verdict.kb == kb(4012213))));
    // On the rollup track (nothing installed), the rollup is reported and the Security Only
    // update of the month is its alternative. (The standalone updates from before the rollups
    // began in October 2016 are missing on both tracks: no rollup contains them.)
    let e = explain(
        &cat,
        &with_kbs(
            machine("windows_server_2012_r2", "6.3.9600", Arch::X64),
            &[],
            true,
        ),
    );
    let reported = missing(&e, "windows_server_2012_r2");
    assert!(reported.contains(&4012216));
    assert!(!reported.contains(&4012213));
    assert_eq!(
        outcome(&e, 4012213, "windows_server_2012_r2"),
        kbgap_domain::engine::Outcome::Alternative {
            reported: vec![kb(4012216)]
        }
    );
}

#[test]
fn case_14_server_core_counts_once_and_matches() {
    let cat = jan_2024();
    let mut core = machine("windows_server_2019", "10.0.17763.5206", Arch::X64);
    core.os.as_mut().unwrap().install_type = InstallType::ServerCore;
    let e = explain(cat, &core);
    assert_eq!(missing(&e, "windows_server_2019"), vec![5034127]);
    let products = &e
        .kbs
        .iter()
        .find(|k| k.verdict.kb == kb(5034127))
        .unwrap()
        .products;
    assert!(products.contains(&"Windows Server 2019 (Server Core installation)".to_string()));
    // CVEs listed for both installations count once: 33 distinct in the January document.
    assert_eq!(
        cat.cve_addressed(&sw("windows_server_2019"), kb(5034127)),
        33
    );
}

#[test]
fn case_15_a_kb_shared_by_two_versions_and_a_hotpatch_not_taken() {
    let cat = cut(2026, 5, 31);
    let e = explain(&cat, &machine("windows_11", "10.0.26200.8390", Arch::X64));
    assert!(!e.kbs.iter().any(|k| k.verdict.kb == kb(5089466)));
    assert_eq!(missing(&e, "windows_11"), vec![5089549]);
    let e = explain(&cat, &machine("windows_11", "10.0.26100.8200", Arch::X64));
    assert_eq!(missing(&e, "windows_11"), vec![5089549]);
    let e = explain(&cat, &machine("windows_11", "10.0.26100.8457", Arch::X64));
    assert!(e.evaluation.missing.is_empty());
}

#[test]
fn case_16_version_fixed_products_never_yield_kbs() {
    let cat = full();
    assert_eq!(cat.entries_for(&sw("edge_chromium-based")).count(), 0);
    let mut m = machine("windows_10", "10.0.19045.3570", Arch::X64);
    m.software
        .insert(sw("edge_chromium-based"), Some("120.0.2210.61".into()));
    let e = explain(cat, &m);
    assert!(e.evaluation.software.contains(&sw("edge_chromium-based")));
    assert!(!e
        .evaluation
        .missing
        .contains_key(&sw("edge_chromium-based")));
    // A FixedBuild that is not a build is never parsed as one.
    assert_eq!(
        kbgap_domain::WindowsBuild::parse("https://aka.ms/OfficeSecurityReleases"),
        None
    );
}

#[test]
fn equivalence_classes_give_the_same_counts_as_machines() {
    // Random machines from a small pool of real states: counting per machine and per class
    // must agree exactly.
    let cat = jan_2024();
    let compiled = kbgap_service::CompiledCatalog::new(cut(2024, 1, 31), 1);
    let oses = [
        ("windows_10", 19045u32, [3570u32, 3693, 3803, 3930]),
        ("windows_10", 19044, [3570, 3693, 3803, 3930]),
        ("windows_server_2019", 17763, [4974, 5122, 5206, 5329]),
        ("windows_11", 22631, [2428, 2715, 2861, 3007]),
    ];
    let kbs = [
        5031356, 5032189, 5033372, 5034122, 5031361, 5032196, 5033371,
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut per_machine: std::collections::BTreeMap<(SoftwareId, KbId), u32> = Default::default();
    let mut per_class = per_machine.clone();
    for _ in 0..3000 {
        let (os, build, revs) = oses[next(oses.len())];
        let rev = match next(5) {
            4 => String::new(),
            i => format!(".{}", revs[i]),
        };
        let mut m = machine(os, &format!("10.0.{build}{rev}"), Arch::X64);
        let picked: Vec<u32> = kbs.iter().copied().filter(|_| next(3) == 0).collect();
        m = with_kbs(m, &picked, next(2) == 0);
        for (s, ks) in &kbgap_domain::evaluate(cat, &m).missing {
            for k in ks {
                *per_machine.entry((s.clone(), *k)).or_default() += 1;
            }
        }
        for (s, ks) in &compiled.evaluate(&m).missing {
            for k in ks {
                *per_class.entry((s.clone(), *k)).or_default() += 1;
            }
        }
    }
    assert_eq!(per_machine, per_class);
    assert!(per_machine.values().sum::<u32>() > 1000);
    assert!(compiled.class_count() < 3000, "{}", compiled.class_count());
}

#[test]
fn case_18_retention_window_and_sweep() {
    use kbgap_service::Retention;
    use kbgap_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let (store, holder, now) = store_as_of_jan_2024(dir.path());
    let tenant = kbgap_domain::TenantId::parse("t-retention").unwrap();
    let snapshot = |id: &str, days: i64| {
        let seen = (now - time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        kbgap_inventory::parse_snapshot(
            format!(r#"{{"id":"{id}","lastSeen":"{seen}","osPlatform":"Windows10","osBuild":"10.0.19045.3570","osArchitecture":"x64"}}"#)
                .as_bytes(),
        )
        .unwrap()
    };
    kbgap_service::ingest(
        &store,
        &holder,
        &tenant,
        &[snapshot("fresh", 29), snapshot("stale", 31)],
        now,
        Retention::default(),
    )
    .unwrap();
    let w10 = sw("windows_10");
    let rows = kbgap_service::missing_kbs(&store, &holder.current().catalog, &tenant, &w10)
        .unwrap()
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].kb.number(), rows[0].machines), (5034122, 1));
    // Two days later the fresh machine has aged out too: the sweep removes it, no ingest needed.
    let later = now + time::Duration::days(2);
    assert_eq!(
        kbgap_service::sweep(&store, later, Retention::default()).unwrap(),
        1
    );
    assert_eq!(
        kbgap_service::sweep(&store, later, Retention::default()).unwrap(),
        0
    );
    assert!(!store.software_known(&tenant, &w10).unwrap());
    assert_eq!(
        kbgap_service::missing_kbs(&store, &holder.current().catalog, &tenant, &w10).unwrap(),
        None
    );
}

#[test]
fn case_17_components_apply_by_version_line() {
    // KB5034273 lists ".NET Framework 3.5 AND 4.7.2" and ".NET Framework 3.5 AND 4.8" on
    // Windows Server 2019 (full and Server Core, which take the same updates): with only 4.8
    // installed, only the second product applies.
    let cat = jan_2024();
    let net = sw(".net_framework");
    let with_net = |version: &str| {
        let mut m = machine("windows_server_2019", "10.0.17763.5206", Arch::X64);
        m.software.insert(net.clone(), Some(version.to_string()));
        with_kbs(m, &[], true)
    };
    let products = |e: &Explanation| {
        e.kbs
            .iter()
            .find(|k| k.verdict.kb == kb(5034273))
            .map(|k| k.products.clone())
            .unwrap_or_default()
    };
    let both = |line: &str| {
        vec![
            format!("Microsoft .NET Framework 3.5 AND {line} on Windows Server 2019"),
            format!(
                "Microsoft .NET Framework 3.5 AND {line} on Windows Server 2019 (Server Core installation)"
            ),
        ]
    };
    let e = explain(cat, &with_net("4.8"));
    assert_eq!(products(&e), both("4.8"));
    assert!(missing(&e, ".net_framework").contains(&5034273));
    let e = explain(cat, &with_net("4.7.2"));
    assert_eq!(products(&e), both("4.7.2"));
    // .NET Framework 4.x versions replace each other in place: a machine with 3.5 and 4.8
    // takes the "3.5 AND 4.8" package, not the "3.5 AND 4.7.2" one, although 3.5 is named
    // in both (docs/semantics-products.md).
    let e = explain(cat, &with_net("3.5|4.8"));
    assert_eq!(products(&e), both("4.8"));
    // A version line that is not installed makes nothing applicable.
    let e = explain(cat, &with_net("4.8.1"));
    assert_eq!(products(&e), Vec::<String>::new());
}

#[test]
fn case_12_an_omitted_sibling_applies_through_the_branch() {
    // The archive lists KB5023696 (March 2023, 19044/19045.2728) for 21H2 and 22H2 only; a
    // 20H2 machine (19042) of the same branch below that revision is missing it.
    let cat = cut(2023, 3, 31);
    let e = explain(&cat, &machine("windows_10", "10.0.19042.2604", Arch::X64));
    assert_eq!(missing(&e, "windows_10"), vec![5023696]);
    let k = e.kbs.iter().find(|k| k.verdict.kb == kb(5023696)).unwrap();
    assert_eq!(
        k.repairs,
        vec![
            "applies through servicing branch 19041: the update lists sibling versions of build 19044, 19045, not 19042 itself"
                .to_string()
        ]
    );
    // Where an update omits a version that the updates around it list, the catalog records
    // it: KB5087544 (May 2026) lists only 21H2 among the x64 versions.
    assert!(full().repairs().iter().any(|r| r.kb == kb(5087544)
        && r.kind == kbgap_domain::catalog::RepairKind::SiblingOmitted
        && r.product_name == "windows_10 build 19045 x64"));
}

/// The real machine captures, read in place.
const CAPTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/inventory"
);

/// The systeminfo captures' file names, sorted.
fn capture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(CAPTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("_systeminfo"))
        .collect();
    names.sort();
    names
}

/// The facts of one real capture: its systeminfo and, when there is one, the same host's
/// wmic qfe, imported as `kbgap inventory import` does.
fn capture(systeminfo: &str) -> MachineFacts {
    use kbgap_inventory::import::{import_files, Format, ImportOptions, InputFile, LastSeen};
    let dir = std::path::Path::new(CAPTURES);
    let mut files = vec![systeminfo.to_string()];
    let qfe = systeminfo.replace("systeminfo", "qfe");
    if dir.join(&qfe).exists() {
        files.push(qfe);
    }
    let inputs: Vec<InputFile> = files
        .iter()
        .map(|f| InputFile {
            path: f.into(),
            bytes: std::fs::read(dir.join(f)).unwrap(),
            modified: None,
        })
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let opts = ImportOptions {
        format: Format::Auto,
        last_seen: Some(LastSeen::At(now)),
        now,
        arch: None,
    };
    let imported = import_files(&inputs, &opts).unwrap_or_else(|e| panic!("{systeminfo}: {e}"));
    assert_eq!(imported.snapshots.len(), 1, "{systeminfo}");
    imported.snapshots[0].facts().unwrap()
}

/// The capture date in a sample's name (`…_20190305_…`), if any.
fn date_in_name(name: &str) -> Option<time::Date> {
    name.split(['_', '.']).find_map(|part| {
        (part.len() == 8 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| {
                time::Date::parse(
                    part,
                    time::macros::format_description!("[year][month][day]"),
                )
                .ok()
            })
            .flatten()
    })
}

#[test]
fn case_20_real_machine_captures_get_the_update_windows_update_offers() {
    use kbgap_domain::catalog::Track;
    use std::collections::BTreeMap;

    let names = capture_names();
    assert_eq!(names.len(), 49);
    let mut cuts: BTreeMap<time::Date, Catalog> = BTreeMap::new();
    let mut offered = 0;
    let mut report = Vec::new();
    for name in &names {
        let facts = capture(name);
        let os = facts.os.clone().unwrap();
        // The capture date: from the file name, else the month of the newest update the
        // machine has (it was captured no earlier than that).
        let date = date_in_name(name).or_else(|| {
            facts
                .installed_kbs
                .iter()
                .filter_map(|k| full().kb(*k).map(|i| i.release_date))
                .max()
                .map(|d| {
                    let next = d.replace_day(1).unwrap() + time::Duration::days(32);
                    next.replace_day(1).unwrap() - time::Duration::days(1)
                })
        });
        // Nothing dates a capture without a KB of the catalog's era: take today's catalog.
        let cat = match date {
            Some(date) => &*cuts
                .entry(date)
                .or_insert_with(|| kbgap_service::compile(documents(), Some(date))),
            None => full(),
        };
        let e = explain(cat, &facts);
        let branch = kbgap_domain::Branch::of(os.build);
        let ended = match kbgap_domain::lifecycle::servicing(
            &os.software,
            os.build,
            os.edition,
            cat.newest_release().unwrap(),
        ) {
            kbgap_domain::lifecycle::Servicing::Ended {
                since,
                esu_until: None,
            } => Some(since),
            _ => None,
        };
        let rollups_of_chain: Vec<_> = cat
            .entries_for(&os.software)
            .filter(|en| en.track == Track::Cumulative && !en.wrong_branch)
            .filter(|en| {
                en.class.host.as_ref().is_some_and(|h| {
                    h.software == os.software
                        && kbgap_domain::Branch::of(h.build) == branch
                        && h.arch == os.arch
                })
            })
            // An edition that left servicing is not offered what its version's product lists
            // after that day (§8 of docs/semantics-products.md; Microsoft's lifecycle dates).
            .filter(|en| match ended {
                Some(since) => {
                    en.class.host.as_ref().is_none_or(|h| h.build != os.build)
                        || cat.kb(en.kb).unwrap().release_date <= since
                }
                None => true,
            })
            .map(|en| {
                (
                    cat.kb(en.kb).unwrap().release_date,
                    en.fixed_revision,
                    en.kb,
                )
            })
            .collect();
        let newest = rollups_of_chain.iter().max().map(|r| r.2);
        let reported: Vec<KbId> = e
            .evaluation
            .missing
            .get(&os.software)
            .into_iter()
            .flatten()
            .copied()
            .filter(|k| rollups_of_chain.iter().any(|r| r.2 == *k))
            .collect();
        assert!(
            reported.len() <= 1,
            "{name}: several rollups reported: {reported:?}"
        );
        // Nothing else of the OS is missing: no superseded or pre-rollup update comes back.
        assert_eq!(
            e.evaluation
                .missing
                .get(&os.software)
                .map(|m| m.len())
                .unwrap_or(0),
            reported.len(),
            "{name}: {:?}",
            e.evaluation.missing
        );
        if let Some(kb) = reported.first() {
            assert_eq!(
                Some(*kb),
                newest,
                "{name}: reported KB{kb}, the newest rollup is {newest:?}"
            );
            offered += 1;
        }
        report.push(format!(
            "{name} cut {date:?}: {reported:?} of {:?}",
            e.evaluation.missing.get(&os.software)
        ));
    }
    // 17 captures lack the newest rollup of their time, and each is offered exactly that one;
    // the others have it, or are systems the catalog's era no longer serves (XP, Vista, 2003).
    assert_eq!(offered, 17, "{}", report.join("\n"));
    for (sample, kb) in [
        // March 2019 captures, a week before that month's release: February's updates.
        (
            "7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt",
            4486563,
        ),
        ("10_1809_x64_pro_en-us_20190307_systeminfo.txt", 4487044),
        // Windows 10 1507 Pro, undated: today's catalog, and its edition's last update of
        // 2017-05-09 (LTSB 2015 was serviced until 2025).
        ("10_rtm_x64_pro_en-us_systeminfo.txt", 4019474),
        (
            "10_1803_x64_enterprise_es-ar_20190307_systeminfo.txt",
            4487017,
        ),
        // The explicit zero: "Hotfix(s): N/A" and an empty wmic qfe capture of the same host,
        // no build revision: February 2019's cumulative update for 1803.
        (
            "10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt",
            4487017,
        ),
    ] {
        assert!(
            report.iter().any(|r| r.starts_with(sample)
                && r.contains(&format!("[KbId({kb})] of Some({{KbId({kb})}})"))),
            "{sample}: {}",
            report.join("\n")
        );
    }
}

#[test]
fn a_fleet_evaluated_at_once_agrees_with_each_machine_evaluated_alone() {
    // The 49 real captures, each as captured, with a pending update, and with applications
    // of every kind of part (a component on the OS, products apart, a complete list of its
    // own), at builds of the archive; a machine without an OS, and repeats.
    let names = capture_names();
    let mut fleet: Vec<MachineFacts> = Vec::new();
    for name in &names {
        let facts = capture(name);
        let mut pending = facts.clone();
        if let Some(&newest) = facts.installed_kbs.iter().max() {
            pending.pending_kbs.insert(newest);
        }
        let mut apps = facts.clone();
        for (product, version) in [
            (".net_framework", "3.5|4.8"),
            ("sql_server", "15.0.2101.7"),
            ("office", "16.0.5413.1000"),
            ("exchange_server", "15.2.1258.12"),
            ("internet_explorer", "11.0"),
        ] {
            apps.software.insert(sw(product), Some(version.to_string()));
        }
        let mut own_list = apps.clone();
        own_list.complete_update_lists.insert(sw("office"));
        own_list.installed_kbs.insert(kb(5002309));
        // The same parts, one more software the catalog has no updates for: an evaluation of
        // its own, which lists that software.
        let mut unknown = apps.clone();
        unknown.software.insert(
            SoftwareId::parse("contoso-_-widget").unwrap(),
            Some("1.0".into()),
        );
        fleet.extend([facts, pending, apps, own_list, unknown]);
    }
    assert_eq!(fleet.len(), 5 * 49);
    fleet.push(MachineFacts::default());
    fleet.push(fleet[2].clone());
    fleet.push(fleet[0].clone());

    let compiled = kbgap_service::CompiledCatalog::new(
        kbgap_service::compile(documents(), Some(time::macros::date!(2024 - 01 - 31))),
        1,
    );
    let catalog = &compiled.catalog;
    let alone: Vec<kbgap_domain::Evaluation> = fleet
        .iter()
        .map(|m| kbgap_domain::evaluate(catalog, m))
        .collect();
    // Not every answer is the same: the test would notice a fleet given one machine's.
    assert!(alone.iter().any(|e| !e.missing.is_empty()));
    assert!(alone
        .iter()
        .any(|e| e.missing.contains_key(&sw("sql_server"))));
    assert!(alone.iter().any(|e| e.pending_restart));
    let widget = SoftwareId::parse("contoso-_-widget").unwrap();
    assert!(alone[4].software.contains(&widget) && !alone[2].software.contains(&widget));

    // A new generation: nothing remembered, every part evaluated now.
    let at_once = compiled.evaluate_classes(&fleet);
    assert_eq!(at_once.len(), fleet.len());
    for (i, (e, m)) in at_once.iter().zip(&alone).enumerate() {
        assert_eq!(**e, *m, "machine {i}");
    }
    // Again, every part now from the memo; and one machine at a time from the same memo.
    assert!(compiled.part_count() > 0);
    let again = compiled.evaluate_classes(&fleet);
    for (i, (e, m)) in again.iter().zip(&alone).enumerate() {
        assert_eq!(**e, *m, "machine {i}, parts remembered");
        assert_eq!(*compiled.evaluate(&fleet[i]), *m, "machine {i}, alone");
    }

    // The fleet's splitter numbers the same parts as the split of one machine.
    let mut splitter = kbgap_domain::Splitter::new(catalog);
    for m in &fleet {
        assert_eq!(
            splitter.split(m),
            kbgap_domain::parts::split_keys(catalog, m)
        );
    }
}
