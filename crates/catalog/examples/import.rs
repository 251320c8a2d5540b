//! Imports CVRF files or directories (default: the shared MSRC archive) and prints what was
//! read, how long it took, and the normalization coverage report.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf"
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        paths.push(ARCHIVE.to_string());
    }
    let start = Instant::now();
    let read = kbgap_catalog::read_documents_with_products(&paths)?;
    let docs: Vec<_> = read.iter().map(|r| r.document.clone()).collect();
    let elapsed = start.elapsed();
    let fixes: usize = docs.iter().map(|d| d.fixes.len()).sum();
    let kbs: BTreeSet<_> = docs.iter().flat_map(|d| &d.fixes).map(|f| f.kb).collect();
    let report = format!(
        "{} documents, {fixes} VendorFix rows, {} distinct KBs, read in {elapsed:.2?}\n\n{}",
        docs.len(),
        kbs.len(),
        kbgap_catalog::coverage_with_products(&read)
    );
    // An error, not a panic, when the reader goes away (`| head`).
    std::io::stdout().lock().write_all(report.as_bytes())?;
    Ok(())
}
