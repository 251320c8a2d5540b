//! The importer against the real MSRC archive in `../shared/data` (read in place, never
//! copied): every document parses, and the facts data/README.md states hold.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use kbgap_catalog::{coverage, parse_document, parse_supersedence, read_documents, ParseError};
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

/// The archive is parsed once per test process (it is 356 MB of XML) and shared.
fn archive() -> &'static [CvrfDocument] {
    static DOCS: OnceLock<Vec<CvrfDocument>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let start = Instant::now();
        let docs = read_documents(&[ARCHIVE]).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "read_documents: {} documents in {:.2?}",
            docs.len(),
            start.elapsed()
        );
        docs
    })
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
fn every_windows_ie_and_edge_name_is_normalized() {
    let report = coverage(archive());
    println!("{report}");
    assert_eq!(report.fixes(), 225_454);
    assert!(report.unnamed_product_ids.is_empty());
    let os_like: Vec<&str> = report
        .unmapped
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|n| {
            n.starts_with("Windows ")
                || n.contains("Internet Explorer")
                || n.contains("Microsoft Edge")
        })
        .collect();
    assert!(os_like.is_empty(), "unmapped: {os_like:#?}");
}
