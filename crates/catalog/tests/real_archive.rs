//! The importer against the real MSRC archive in `../shared/data` (read in place, never
//! copied): every document parses, and the facts data/README.md states hold.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use kbgap_catalog::{
    coverage, coverage_with_products, parse_document, parse_supersedence, read_documents,
    read_documents_with_products, Class, ParseError, ReadDocument,
};
use kbgap_domain::cvrf::{CvrfDocument, VendorFix};
use kbgap_domain::KbId;

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf"
);
const JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf-json"
);

/// The archive is parsed once per test process (it is 356 MB of XML) and shared: the
/// documents, and each document's full product list (for the coverage report).
fn parsed() -> &'static (Vec<CvrfDocument>, Vec<ReadDocument>) {
    static DOCS: OnceLock<(Vec<CvrfDocument>, Vec<ReadDocument>)> = OnceLock::new();
    DOCS.get_or_init(|| {
        let start = Instant::now();
        let read = read_documents_with_products(&[ARCHIVE]).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "read_documents_with_products: {} documents in {:.2?}",
            read.len(),
            start.elapsed()
        );
        let docs = read.iter().map(|r| r.document.clone()).collect();
        (docs, read)
    })
}

fn archive() -> &'static [CvrfDocument] {
    &parsed().0
}

fn kb(n: u32) -> KbId {
    KbId::from_number(n).unwrap()
}

fn fixes_of(kb_id: KbId) -> impl Iterator<Item = &'static VendorFix> {
    archive()
        .iter()
        .flat_map(|d| &d.fixes)
        .filter(move |f| f.kb == kb_id)
}

#[test]
fn every_document_in_the_archive_parses() {
    let docs = archive();
    // 191 files: 190 documents and MSRC's index.json listing, which is skipped.
    assert_eq!(docs.len(), 190);
    let ids: BTreeSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 190, "document ids are unique");
    assert!(ids.contains("2016-Jan") && ids.contains("2026-Jul") && ids.contains("1999-Sep"));

    // Measured on this snapshot; data/README.md gives the same 5,232 distinct KBs.
    let fixes: usize = docs.iter().map(|d| d.fixes.len()).sum();
    let kbs: BTreeSet<KbId> = docs.iter().flat_map(|d| &d.fixes).map(|f| f.kb).collect();
    let cves: BTreeSet<&str> = docs
        .iter()
        .flat_map(|d| &d.fixes)
        .map(|f| f.cve.as_str())
        .collect();
    println!(
        "{fixes} VendorFix rows, {} distinct KBs, {} distinct vulnerability ids",
        kbs.len(),
        cves.len()
    );
    assert_eq!(fixes, 225_454);
    assert_eq!(kbs.len(), 5_232);
    assert_eq!(cves.len(), 8_406);

    let empty = docs.iter().find(|d| d.id == "2017-May-B").unwrap();
    assert_eq!(empty.title, "May 8 2017 Security Updates");
    assert!(empty.fixes.is_empty());
}

#[test]
fn the_updates_listing_is_skipped_even_when_named() {
    let index = format!("{ARCHIVE}/index.json");
    assert!(read_documents(&[&index]).unwrap().is_empty());
    let bytes = std::fs::read(&index).unwrap();
    assert!(matches!(
        parse_document(&bytes, &index),
        Err(ParseError::UpdatesListing { .. })
    ));
}

#[test]
fn both_json_documents_parse() {
    let docs = read_documents(&[JSON]).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["2020-Dec", "2021-Jan"]);
    let jan = &docs[1];
    assert_eq!(jan.title, "January 2021 Security Updates");
    assert_eq!(jan.initial_release.to_string(), "2021-01-12 8:00:00.0");
    // The JSON snapshot predates FixedBuild; the 20H2 x64 LCU of January 2021 is there.
    assert!(jan.fixes.iter().any(|f| f.kb == kb(4598242)
        && f.cve == "CVE-2021-1642"
        && f.product_name == "Windows 10 Version 20H2 for x64-based Systems"
        && f.supersedence.as_deref() == Some("4592438")
        && f.fixed_build.is_none()));
    println!(
        "JSON: {} fixes in 2020-Dec, {} in 2021-Jan",
        docs[0].fixes.len(),
        jan.fixes.len()
    );
}

#[test]
fn kb4540673_is_the_readme_worked_example() {
    let fixes: Vec<&VendorFix> = fixes_of(kb(4540673)).collect();
    let cves: BTreeSet<&str> = fixes.iter().map(|f| f.cve.as_str()).collect();
    let products: BTreeSet<&str> = fixes.iter().map(|f| f.product_name.as_str()).collect();
    assert_eq!(cves.len(), 95);
    assert_eq!(products.len(), 20);
    let superseded: BTreeSet<KbId> = fixes
        .iter()
        .filter_map(|f| f.supersedence.as_deref())
        .flat_map(parse_supersedence)
        .collect();
    assert_eq!(superseded, BTreeSet::from([kb(4532693)]));
    // Released in March 2020 but first cited by the revised 2019-Aug document.
    let docs: BTreeSet<&str> = archive()
        .iter()
        .filter(|d| d.fixes.iter().any(|f| f.kb == kb(4540673)))
        .map(|d| d.id.as_str())
        .collect();
    assert!(
        docs.contains("2020-Mar") && docs.contains("2019-Aug"),
        "{docs:?}"
    );
}

#[test]
fn kb5034122_keeps_each_remediation_with_its_own_build() {
    let jan = archive().iter().find(|d| d.id == "2024-Jan").unwrap();
    assert_eq!(jan.title, "January 2024 Security Updates");
    assert_eq!(jan.initial_release.to_string(), "2024-01-09 8:00:00.0");
    let build_for = |product: &str| -> BTreeSet<&str> {
        jan.fixes
            .iter()
            .filter(|f| f.kb == kb(5034122) && f.product_name == product)
            .filter_map(|f| f.fixed_build.as_deref())
            .collect()
    };
    assert_eq!(
        build_for("Windows 10 Version 21H2 for 32-bit Systems"),
        BTreeSet::from(["10.0.19044.3930"])
    );
    assert_eq!(
        build_for("Windows 10 Version 22H2 for x64-based Systems"),
        BTreeSet::from(["10.0.19045.3930"])
    );
    assert!(jan.fixes.iter().any(|f| f.kb == kb(5034122)
        && f.product_id == "11929"
        && f.sub_type.as_deref() == Some("Security Update")
        && f.supersedence.as_deref() == Some("5033372")));
}

/// In this archive the URL FixedBuild sits only on "Click to Run" remediations, which are
/// not KB fixes; the real 2024-Jan text with one such description turned into a KB shows the
/// URL reaches the fix verbatim.
#[test]
fn a_url_fixed_build_is_kept_as_text() {
    const URL: &str = "https://aka.ms/OfficeSecurityReleases";
    assert_eq!(
        fixes_where(|f| f.fixed_build.as_deref() == Some(URL)),
        0,
        "a KB fix now carries the URL: assert on it directly"
    );
    let compressed = std::fs::read(format!("{ARCHIVE}/2024-Jan.xml.zst")).unwrap();
    let xml = String::from_utf8(zstd::decode_all(&compressed[..]).unwrap()).unwrap();
    assert!(xml.contains(&format!("<vuln:FixedBuild>{URL}</vuln:FixedBuild>")));
    let as_kb = xml.replacen(
        "<vuln:Description>Click to Run</vuln:Description>",
        "<vuln:Description>5002999</vuln:Description>",
        1,
    );
    let doc = parse_document(as_kb.as_bytes(), "2024-Jan (edited)").unwrap();
    let builds: BTreeSet<&str> = doc
        .fixes
        .iter()
        .filter(|f| f.kb == kb(5002999))
        .filter_map(|f| f.fixed_build.as_deref())
        .collect();
    assert_eq!(builds, BTreeSet::from([URL]));
}

fn fixes_where(pred: impl Fn(&VendorFix) -> bool) -> usize {
    archive()
        .iter()
        .flat_map(|d| &d.fixes)
        .filter(|f| pred(f))
        .count()
}

#[test]
fn every_product_with_a_kb_from_2016_on_is_mapped_or_out_of_scope() {
    let report = coverage(archive());
    assert_eq!(
        report.mapped.kb_fixes + report.out_of_scope.kb_fixes + report.unmapped.kb_fixes,
        225_454
    );
    assert!(report.unnamed_product_ids.is_empty());
    let failures: Vec<&str> = report.failures().iter().map(|n| n.name.as_str()).collect();
    assert!(failures.is_empty(), "unmapped: {failures:#?}");
    // Measured on this snapshot: 1,151 distinct names carry a KB.
    assert_eq!(
        report.mapped.names + report.out_of_scope.names + report.unmapped.names,
        1_151
    );
    assert_eq!(report.unmapped.names, 0);
}

/// Every ProductID of the archive, with or without a KB, is classified: the data README's
/// 7,355 ProductIDs (this parser counts ids per name, so a renamed id counts once).
#[test]
fn every_product_id_of_the_archive_is_classified() {
    let report = coverage_with_products(&parsed().1);
    println!("{report}");
    assert!(report.all_products);
    assert_eq!(report.product_ids, 7_355);
    let unmapped: Vec<&str> = report
        .names
        .iter()
        .filter(|n| n.class == Class::Unmapped)
        .map(|n| n.name.as_str())
        .collect();
    assert!(unmapped.is_empty(), "unmapped: {unmapped:#?}");
    assert_eq!(report.names.len(), 7_060);
}

/// The catalog compiled from the whole archive with this crate's normalization and
/// supersedence parsing, once per test process.
fn catalog() -> &'static kbgap_domain::Catalog {
    static CATALOG: OnceLock<kbgap_domain::Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        kbgap_domain::Catalog::build(
            archive(),
            kbgap_catalog::normalize,
            parse_supersedence,
            None,
        )
    })
}

#[test]
fn kb4540673_compiles_to_its_release_document_and_supersedes_kb4532693() {
    let c = catalog();
    let info = c
        .kb(kb(4540673))
        .unwrap_or_else(|| panic!("KB4540673 missing"));
    // Named after its release document although the revised 2019-Aug mentions it first.
    assert_eq!(info.name, "March 2020 Security Updates");
    assert_eq!(info.document_id, "2020-Mar");
    let entries: Vec<_> = c.entries().iter().filter(|e| e.kb == kb(4540673)).collect();
    let products: BTreeSet<&str> = entries.iter().map(|e| e.product_name.as_str()).collect();
    let cves: BTreeSet<u32> = entries
        .iter()
        .flat_map(|e| e.cves.iter().copied())
        .collect();
    assert_eq!((products.len(), cves.len()), (20, 95));
    let w10 = kbgap_domain::SoftwareId::microsoft("windows_10");
    let closure = c.superseded_by(&w10, kbgap_domain::Arch::X64, [kb(4540673)]);
    assert!(closure.contains(&kb(4532693)), "{closure:?}");
}

#[test]
fn kb5033371_supersedes_kb5032196_on_server_2019() {
    let s2019 = kbgap_domain::SoftwareId::microsoft("windows_server_2019");
    let closure = catalog().superseded_by(&s2019, kbgap_domain::Arch::X64, [kb(5033371)]);
    assert!(closure.contains(&kb(5032196)), "{closure:?}");
    // Transitively, through the chain, back to older months too.
    assert!(closure.contains(&kb(5031361)), "{closure:?}");
}

/// Every `Supercedence` value of the archive: each 6–7 digit token is read as a KB, and
/// nothing else is (bulletin ids, `None`, versions, 5-digit typos).
#[test]
fn every_supercedence_form_of_the_archive_parses() {
    let mut values: BTreeSet<&str> = BTreeSet::new();
    for f in archive().iter().flat_map(|d| &d.fixes) {
        if let Some(s) = f.supersedence.as_deref() {
            values.insert(s);
        }
    }
    let mut kbs = 0;
    for v in &values {
        let want: Vec<u32> = v
            .split(|c: char| !c.is_ascii_digit() && c != '-' && c != '.')
            .filter(|t| (6..=7).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|t| t.parse().ok())
            .fold(Vec::new(), |mut acc, n| {
                if !acc.contains(&n) {
                    acc.push(n);
                }
                acc
            });
        let got: Vec<u32> = parse_supersedence(v)
            .into_iter()
            .map(KbId::number)
            .collect();
        assert_eq!(got, want, "{v:?}");
        kbs += got.len();
    }
    println!(
        "{} distinct Supercedence values, {kbs} KBs named",
        values.len()
    );
    // The odd forms are all there.
    assert!(values.iter().any(|v| v.starts_with("MS16-016, 3124280;")));
    assert!(values.contains("None"));
    assert!(values.contains("3118389<br><br>4022173"));
    // ("2.41.0" stands on a non-KB remediation only; the unit tests cover it.)
    assert!(values.contains("5013868, 50185"));
}

/// `catalog coverage --evaluation` on the whole archive: every (KB, product name) pair the
/// archive cites is judged exactly one way, and the modes follow their definitions, counted
/// here from the documents' own fixes.
#[test]
fn evaluation_coverage_judges_every_pair_once_by_the_rules() {
    use std::collections::BTreeMap;

    use kbgap_catalog::{classify, evaluation_coverage, ModeCounts};
    use kbgap_domain::catalog::Judged;
    use kbgap_domain::{Branch, Catalog, Normalized, WindowsBuild};

    let docs = archive();
    let catalog = Catalog::build(docs, kbgap_catalog::normalize, parse_supersedence, None);
    let report = evaluation_coverage(docs, &catalog);
    assert_eq!(report.documents, docs.len());

    // Per pair: whether a CVE (not only an advisory) cites it, and its FixedBuilds.
    let mut pairs: BTreeMap<(KbId, &str), (bool, BTreeSet<&str>)> = BTreeMap::new();
    for fix in docs.iter().flat_map(|d| &d.fixes) {
        let p = pairs.entry((fix.kb, &fix.product_name)).or_default();
        p.0 |= fix.cve.starts_with("CVE-");
        p.1.extend(fix.fixed_build.as_deref());
    }
    let total: usize = report.modes.iter().map(|m| m.pairs).sum();
    assert_eq!(total, pairs.len());
    for fam in &report.families {
        let modes: Vec<Judged> = fam.modes.iter().map(|m| m.mode).collect();
        let mut sorted = modes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(modes, sorted, "{}: each mode once, in order", fam.family);
    }
    let family_total: usize = report
        .families
        .iter()
        .flat_map(|f| &f.modes)
        .map(|m| m.pairs)
        .sum();
    assert_eq!(family_total, pairs.len());

    let counted = |selected: &[(KbId, &str)], mode: Judged| ModeCounts {
        mode,
        pairs: selected.len(),
        kbs: selected.iter().map(|p| p.0).collect::<BTreeSet<_>>().len(),
        products: selected.iter().map(|p| p.1).collect::<BTreeSet<_>>().len(),
    };
    let family = |name: &str| -> Vec<ModeCounts> {
        report
            .families
            .iter()
            .find(|f| f.family == name)
            .map(|f| f.modes.clone())
            .unwrap_or_default()
    };

    // Edge (Chromium-based) is judged by version: every pair of its names, and nothing else.
    let edge: Vec<(KbId, &str)> = pairs
        .keys()
        .copied()
        .filter(|(_, n)| n.starts_with("Microsoft Edge (Chromium-based)"))
        .collect();
    assert!(!edge.is_empty());
    assert_eq!(
        family("Microsoft Edge (Chromium-based)"),
        vec![counted(&edge, Judged::VersionFixed)]
    );

    // Windows 10, by the definitions: an OS product's pair cited only by advisories, or whose
    // every FixedBuild lies on another branch than the product's, is not evaluated; one with a
    // FixedBuild revision on the product's branch is judged by build; the rest by update list.
    let mut by_mode: BTreeMap<Judged, Vec<(KbId, &str)>> = BTreeMap::new();
    for (&(kb, name), (cve, builds)) in &pairs {
        let c = classify(name);
        if c.family != "Windows 10" {
            continue;
        }
        let mode = match &c.normalized {
            Normalized::Mapped(class) => {
                let host = class.host.as_ref().expect("Windows 10 names a host");
                assert_eq!(host.software, class.software, "{name} is the OS");
                let own = Branch::of(host.build);
                let parsed: Vec<WindowsBuild> = builds
                    .iter()
                    .filter_map(|b| WindowsBuild::parse(b))
                    .collect();
                if !cve || (!parsed.is_empty() && parsed.iter().all(|b| b.branch() != own)) {
                    Judged::NotEvaluated
                } else if parsed
                    .iter()
                    .any(|b| b.branch() == own && b.revision.is_some())
                {
                    Judged::Build
                } else {
                    Judged::UpdateList
                }
            }
            _ => Judged::NotEvaluated,
        };
        by_mode.entry(mode).or_default().push((kb, name));
    }
    let expected: Vec<ModeCounts> = by_mode.iter().map(|(m, p)| counted(p, *m)).collect();
    assert_eq!(expected.len(), 3, "Windows 10 has pairs of three modes");
    assert_eq!(family("Windows 10"), expected);

    // Two verified facts: KB5034122 carries 10.0.19045.3930 for Windows 10 22H2 x64, and the
    // revised 2023-Oct document gives KB5032192 a Windows 11 build for Windows 10 21H2.
    let judged = |kb: u32, name: &str| {
        Judged::of(
            &kbgap_catalog::normalize(name),
            catalog.entry(KbId::from_number(kb).unwrap(), name),
            catalog.servicing_paths(),
        )
    };
    assert_eq!(
        judged(5034122, "Windows 10 Version 22H2 for x64-based Systems"),
        Judged::Build
    );
    assert_eq!(
        judged(5032192, "Windows 10 Version 21H2 for x64-based Systems"),
        Judged::NotEvaluated
    );
}
