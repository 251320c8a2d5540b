//! Conformance cases of `missing-kb-semantics.md` §4 on the real MSRC archive, parsed once per
//! test process and compiled once per cut date.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::engine::{Rule, Satisfied};
use kbgap_domain::{
    evaluate, Arch, Catalog, Evaluation, InstallType, KbId, MachineFacts, OsFacts, SoftwareId,
};

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
        }),
        software: [(software, Some(build.to_string()))].into_iter().collect(),
        ..MachineFacts::default()
    }
}

fn with_kbs(mut m: MachineFacts, kbs: &[u32], complete: bool) -> MachineFacts {
    m.installed_kbs = kbs.iter().map(|&n| kb(n)).collect();
    m.kb_list_complete = complete;
    m
}

fn missing(e: &Evaluation, os: &str) -> Vec<u32> {
    e.missing
        .get(&sw(os))
        .map(|s| s.iter().map(|k| k.number()).collect())
        .unwrap_or_default()
}

fn verdict(e: &Evaluation, n: u32) -> (Satisfied, Rule) {
    let v = e
        .verdicts
        .iter()
        .find(|v| v.kb == kb(n))
        .unwrap_or_else(|| panic!("KB{n} is not applicable"));
    (v.satisfied, v.rule)
}

#[test]
fn case_01_equal_build_is_not_missing() {
    let e = evaluate(
        jan_2024(),
        &machine("windows_10", "10.0.19045.3570", Arch::X64),
    );
    assert_eq!(verdict(&e, 5031356), (Satisfied::Yes, Rule::Build));
    assert!(!missing(&e, "windows_10").contains(&5031356));
}

#[test]
fn case_02_only_the_frontier_is_missing() {
    let e = evaluate(
        jan_2024(),
        &machine("windows_10", "10.0.19045.3570", Arch::X64),
    );
    for n in [5032189, 5033372, 5034122] {
        assert_eq!(verdict(&e, n), (Satisfied::No, Rule::Build), "KB{n}");
    }
    assert_eq!(missing(&e, "windows_10"), vec![5034122]);
    assert!(e.indeterminate.is_empty());
}

#[test]
fn case_03_sibling_versions_share_a_branch() {
    let cat = jan_2024();
    let e21 = evaluate(cat, &machine("windows_10", "10.0.19044.3693", Arch::X86));
    assert_eq!(verdict(&e21, 5032189), (Satisfied::Yes, Rule::Build));
    let e22 = evaluate(cat, &machine("windows_10", "10.0.19045.3693", Arch::X64));
    assert_eq!(verdict(&e22, 5032189), (Satisfied::Yes, Rule::Build));
    assert_eq!(missing(&e22, "windows_10"), vec![5034122]);
}

#[test]
fn case_04_chain_without_help_from_msrc() {
    let cat = jan_2024();
    // Build evidence: the December update covers November's.
    let e = evaluate(
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
    let e = evaluate(cat, &m);
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
    let e = evaluate(jan_2024(), &m);
    assert_eq!(missing(&e, "windows_server_2019"), vec![5034127]);
}

#[test]
fn case_08_a_machine_newer_than_the_catalog() {
    let m = with_kbs(
        machine("windows_10", "10.0.19045.4046", Arch::X64),
        &[5034763],
        false,
    );
    let e = evaluate(jan_2024(), &m);
    assert!(e.missing.is_empty(), "{:?}", e.missing);
}

#[test]
fn case_09_no_revision_and_no_kb_list_is_indeterminate() {
    let e = evaluate(jan_2024(), &machine("windows_11", "10.0.22631", Arch::X64));
    assert!(e.missing.is_empty());
    assert!(!e.verdicts.is_empty());
    assert!(e.verdicts.iter().all(|v| v.satisfied == Satisfied::Unknown));
    assert_eq!(
        e.indeterminate,
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
    let e = evaluate(jan_2024(), &m);
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
    let e = evaluate(jan_2024(), &m);
    assert_eq!(verdict(&e, 5034122), (Satisfied::No, Rule::PendingRestart));
    assert!(e.pending_restart);
    assert_eq!(missing(&e, "windows_10"), vec![5034122]);
}

#[test]
fn case_12_wrong_branch_fixed_build_is_not_applicable() {
    let e = evaluate(
        jan_2024(),
        &machine("windows_10", "10.0.19044.3570", Arch::X86),
    );
    assert!(!e.verdicts.iter().any(|v| v.kb == kb(5032192)));
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
    let x86 = evaluate(
        &cut,
        &with_kbs(machine("windows_10", "10.0.17763", Arch::X86), &[], true),
    );
    let x64 = evaluate(
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
