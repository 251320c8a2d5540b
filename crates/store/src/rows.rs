//! What both backends decide the same way before any SQL: which documents an import stores,
//! how a document's fixes are grouped into rows and read back, and how one batch of machines
//! changes the counts.

use std::collections::{BTreeMap, HashMap};

use kbgap_domain::cvrf::{CvrfDocument, VendorFix};
use kbgap_domain::KbId;
use time::PrimitiveDateTime;

use crate::{CatalogState, ImportSummary, MachineRecord, Result, StoreError};

/// Revision dates are stored to the second: a revision is newer only if it is at least one
/// second later.
pub(crate) fn to_second(dt: PrimitiveDateTime) -> PrimitiveDateTime {
    dt.replace_nanosecond(0).unwrap_or(dt)
}

/// Which of `docs` replace what is stored (`stored`: id → current release): within one
/// import the newest revision of each document wins, and it replaces a stored document only
/// if it is newer.
/// The guard of a catalog import: the catalog and the inventory are still as they were read
/// before the machines were re-evaluated.
pub(crate) fn check_unchanged(found: CatalogState, expected: CatalogState) -> Result<()> {
    if found.generation != expected.generation {
        return Err(StoreError::StaleCatalog {
            expected: expected.generation,
            found: found.generation,
        });
    }
    if found.inventory != expected.inventory {
        return Err(StoreError::StaleInventory);
    }
    Ok(())
}

pub(crate) fn plan(
    stored: &HashMap<String, PrimitiveDateTime>,
    docs: &[CvrfDocument],
) -> ImportSummary {
    let mut summary = ImportSummary::default();
    let mut newest: BTreeMap<&str, &CvrfDocument> = BTreeMap::new();
    for d in docs {
        match newest.get(d.id.as_str()) {
            Some(prev) if prev.current_release >= d.current_release => {}
            _ => {
                newest.insert(&d.id, d);
            }
        }
    }
    for (id, d) in newest {
        match stored.get(id) {
            Some(cur) if *cur >= to_second(d.current_release) => summary.skipped.push(id.into()),
            _ => summary.stored.push(id.into()),
        }
    }
    summary
}

/// One stored row of a document's fixes: a distinct remediation and product, with the
/// vulnerabilities it fixes.
pub(crate) struct FixGroup<'a> {
    pub kb: KbId,
    pub product_id: &'a str,
    pub product_name: &'a str,
    pub sub_type: Option<&'a str>,
    pub fixed_build: Option<&'a str>,
    pub supersedence: Option<&'a str>,
    pub cves: Vec<&'a str>,
}

impl FixGroup<'_> {
    /// The vulnerability ids as stored: separated by spaces.
    pub fn cves_joined(&self) -> String {
        self.cves.join(" ")
    }
}

/// The rows of a document's fixes, in the order they are stored and read back.
pub(crate) fn fix_groups(doc: &CvrfDocument) -> Vec<FixGroup<'_>> {
    type Key<'a> = (
        KbId,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let mut groups: BTreeMap<Key, Vec<&str>> = BTreeMap::new();
    for f in &doc.fixes {
        let cves = groups
            .entry((
                f.kb,
                f.product_id.as_str(),
                f.product_name.as_str(),
                f.sub_type.as_deref(),
                f.fixed_build.as_deref(),
                f.supersedence.as_deref(),
            ))
            .or_default();
        if !cves.contains(&f.cve.as_str()) {
            cves.push(&f.cve);
        }
    }
    groups
        .into_iter()
        .map(
            |((kb, product_id, product_name, sub_type, fixed_build, supersedence), cves)| {
                FixGroup {
                    kb,
                    product_id,
                    product_name,
                    sub_type,
                    fixed_build,
                    supersedence,
                    cves,
                }
            },
        )
        .collect()
}

/// A stored fix row as read back.
pub(crate) struct StoredFix {
    pub kb: KbId,
    pub product_id: String,
    pub product_name: String,
    pub sub_type: Option<String>,
    pub fixed_build: Option<String>,
    pub supersedence: Option<String>,
    pub cves: String,
}

impl StoredFix {
    /// Appends one fix per vulnerability of the row to `doc`.
    pub fn expand_into(self, doc: &mut CvrfDocument) {
        for cve in self.cves.split(' ').filter(|c| !c.is_empty()) {
            doc.fixes.push(VendorFix {
                cve: cve.to_string(),
                kb: self.kb,
                product_id: self.product_id.clone(),
                product_name: self.product_name.clone(),
                sub_type: self.sub_type.clone(),
                fixed_build: self.fixed_build.clone(),
                supersedence: self.supersedence.clone(),
            });
        }
    }
}

/// The count changes of one ingestion batch, applied once per software and per (software,
/// KB) when the batch is written: a fleet's machines share most of their software, so this
/// is a few hundred upserts per batch instead of dozens per machine. Same transaction, same
/// deltas, same end state as counting machine by machine. A key that only lost machines and
/// had no row ends at or below zero and is pruned, as it would have stayed absent when
/// counted one by one.
#[derive(Default)]
pub(crate) struct CountDeltas {
    pub software: HashMap<String, i64>,
    pub missing: HashMap<(String, u32), i64>,
}

impl CountDeltas {
    /// Adds a machine's contribution.
    pub fn count(&mut self, m: &MachineRecord) {
        for s in &m.evaluation.software {
            *self.software.entry(s.as_str().to_string()).or_default() += 1;
        }
        for (s, kbs) in &m.evaluation.missing {
            for kb in kbs {
                *self
                    .missing
                    .entry((s.as_str().to_string(), kb.number()))
                    .or_default() += 1;
            }
        }
    }

    /// Subtracts a stored machine's contribution to one software.
    pub fn uncount_software(&mut self, software: String) {
        *self.software.entry(software).or_default() -= 1;
    }

    /// Subtracts a stored machine's contribution to one (software, KB).
    pub fn uncount_missing(&mut self, software: String, kb: u32) {
        *self.missing.entry((software, kb)).or_default() -= 1;
    }

    /// The changes that are not zero.
    pub fn software_changes(&self) -> impl Iterator<Item = (&str, i64)> {
        self.software
            .iter()
            .filter(|(_, d)| **d != 0)
            .map(|(s, d)| (s.as_str(), *d))
    }

    pub fn missing_changes(&self) -> impl Iterator<Item = (&str, u32, i64)> {
        self.missing
            .iter()
            .filter(|(_, d)| **d != 0)
            .map(|((s, kb), d)| (s.as_str(), *kb, *d))
    }
}
