//! What both backends decide the same way before any SQL: which documents an import stores,
//! how a document's fixes are grouped into rows and read back, and how one batch of machines
//! changes the counts.

use std::collections::{BTreeMap, HashMap};

use kbgap_domain::cvrf::{CvrfDocument, VendorFix};
use kbgap_domain::{KbId, MachineId};
use time::PrimitiveDateTime;

use crate::{ImportSummary, MachineRecord, Reevaluate, Reevaluated, Result, StoreError, TenantId};

/// Revision dates are stored to the second: a revision is newer only if it is at least one
/// second later.
pub(crate) fn to_second(dt: PrimitiveDateTime) -> PrimitiveDateTime {
    dt.replace_nanosecond(0).unwrap_or(dt)
}

/// Which of `docs` replace what is stored (`stored`: id → current release): within one
/// import the newest revision of each document wins, and it replaces a stored document only
/// if it is newer.
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

/// The guard of a catalog import: no other import stored a catalog since this one read it.
pub(crate) fn check_generation(found: i64, expected: i64) -> Result<()> {
    if found != expected {
        return Err(StoreError::StaleCatalog { expected, found });
    }
    Ok(())
}

/// The result tables a machine's evaluation is written to. A catalog import writes every
/// machine's results into the staged set outside its final transaction (inventory writes go
/// on meanwhile), and the final transaction swaps the staged tables in.
#[derive(Clone, Copy)]
pub(crate) struct ResultTables {
    pub software: &'static str,
    pub missing: &'static str,
    pub servicing: &'static str,
}

pub(crate) const LIVE: ResultTables = ResultTables {
    software: "machine_software",
    missing: "machine_missing",
    servicing: "machine_servicing",
};

/// Prefix of a staged table's name; a staged table is `{STAGED_PREFIX}{live name}`.
pub(crate) const STAGED_PREFIX: &str = "staged_";

pub(crate) const STAGED: ResultTables = ResultTables {
    software: "staged_machine_software",
    missing: "staged_machine_missing",
    servicing: "staged_machine_servicing",
};

impl ResultTables {
    /// The three tables, in the order they are created and swapped.
    pub fn all(&self) -> [&'static str; 3] {
        [self.software, self.missing, self.servicing]
    }
}

/// A stored machine as a catalog import's final transaction finds it.
pub(crate) struct StoredState {
    pub tenant: String,
    pub machine: String,
    /// The write that stored its snapshot.
    pub write: i64,
    pub counted: bool,
    pub pending_restart: bool,
}

/// How a catalog import's results meet the machines stored when its final transaction runs.
pub(crate) struct Settled<'a> {
    /// Results of machines still stored by the write they were read at.
    pub current: Vec<&'a Reevaluated>,
    /// Results of machines deleted or rewritten since they were read: their staged rows are
    /// removed.
    pub stale: Vec<&'a Reevaluated>,
    /// Machines stored or rewritten since they were read: (tenant, machine), to re-evaluate.
    pub late: Vec<(String, String)>,
    /// Current machines whose stored flags differ from what their result says: (tenant,
    /// machine, counted, pending restart).
    pub flags: Vec<(&'a str, &'a str, bool, bool)>,
}

/// Sorts `stored` (every machine of the table now) into machines whose result in `results`
/// is current and machines to re-evaluate; results of machines no longer stored as read are
/// stale.
pub(crate) fn settle(
    stored: Vec<StoredState>,
    results: &[Reevaluated],
    active_since: i64,
) -> Settled<'_> {
    let index: HashMap<(&str, &str), usize> = stored
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.tenant.as_str(), s.machine.as_str()), i))
        .collect();
    let mut current = vec![false; stored.len()];
    let mut settled = Settled {
        current: Vec::with_capacity(results.len()),
        stale: Vec::new(),
        late: Vec::new(),
        flags: Vec::new(),
    };
    for r in results {
        match index.get(&(r.tenant.as_str(), r.record.id.as_str())) {
            Some(&i) if stored[i].write == r.write => {
                current[i] = true;
                let counted = r.record.last_seen >= active_since;
                let pending = r.record.evaluation.pending_restart;
                if stored[i].counted != counted || stored[i].pending_restart != pending {
                    settled
                        .flags
                        .push((r.tenant.as_str(), r.record.id.as_str(), counted, pending));
                }
                settled.current.push(r);
            }
            _ => settled.stale.push(r),
        }
    }
    drop(index);
    settled.late = stored
        .into_iter()
        .zip(current)
        .filter(|(_, current)| !current)
        .map(|(s, _)| (s.tenant, s.machine))
        .collect();
    settled
}

/// The counts of the machines a catalog import leaves stored, per tenant: every counted
/// machine (last seen at or after `active_since`) adds its software and missing KBs.
/// Machines of one equivalence class share their evaluation, so each class is counted once
/// and multiplied.
pub(crate) fn recount<'a>(
    machines: impl Iterator<Item = (&'a str, &'a MachineRecord)>,
    active_since: i64,
) -> HashMap<&'a str, CountDeltas> {
    let mut classes: HashMap<(&str, *const kbgap_domain::Evaluation), (i64, &MachineRecord)> =
        HashMap::new();
    for (tenant, m) in machines.filter(|(_, m)| m.last_seen >= active_since) {
        classes
            .entry((tenant, std::sync::Arc::as_ptr(&m.evaluation)))
            .or_insert((0, m))
            .0 += 1;
    }
    let mut out: HashMap<&str, CountDeltas> = HashMap::new();
    for ((tenant, _), (n, m)) in classes {
        out.entry(tenant).or_default().count_times(m, n);
    }
    out
}

/// Re-evaluates the late machines of a catalog import (tenant, machine, snapshot) with the
/// caller's evaluation.
pub(crate) fn reevaluate_late(
    late: Vec<(String, String, String)>,
    reevaluate: &mut Reevaluate<'_>,
) -> Result<Vec<(TenantId, MachineRecord)>> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    late.into_iter()
        .map(|(t, m, snapshot)| {
            let tenant = TenantId::parse(&t).map_err(|e| corrupt(e.to_string()))?;
            let id = MachineId::parse(&m).map_err(|e| corrupt(e.to_string()))?;
            let record = reevaluate(&tenant, id, snapshot).map_err(StoreError::Reevaluation)?;
            Ok((tenant, record))
        })
        .collect()
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
        self.count_times(m, 1);
    }

    /// Adds the contribution of `n` machines that share `m`'s evaluation.
    pub fn count_times(&mut self, m: &MachineRecord, n: i64) {
        for s in &m.evaluation.software {
            *self.software.entry(s.as_str().to_string()).or_default() += n;
        }
        for (s, kbs) in &m.evaluation.missing {
            for kb in kbs {
                *self
                    .missing
                    .entry((s.as_str().to_string(), kb.number()))
                    .or_default() += n;
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
