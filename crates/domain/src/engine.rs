//! The evaluation engine: for one machine's facts and a compiled catalog, which KBs are
//! missing for which software (`missing-kb-semantics.md` §3). A pure function.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::catalog::{Catalog, Entry, Track};
use crate::{Branch, KbId, MachineFacts, SoftwareId};

/// Whether a KB's fix is present on a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Satisfied {
    Yes,
    No,
    Unknown,
}

/// Which rule of §3.2 decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// a: pending a restart, build below the fix.
    PendingRestart,
    /// b: the machine's revision against the KB's FixedBuild.
    Build,
    /// c: the KB, or one that supersedes it, is installed.
    InstalledKb,
    /// d: the machine is newer than every cumulative build the catalog knows.
    NewerThanCatalog,
    /// e: the complete KB list does not have it.
    CompleteKbList,
    /// e: no evidence either way.
    NoEvidence,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KbVerdict {
    pub kb: KbId,
    pub satisfied: Satisfied,
    pub rule: Rule,
    /// The highest FixedBuild revision of the KB on the machine's branch.
    pub fixed_revision: Option<u32>,
}

/// The outcome of evaluating one machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// Software installed on the machine (the OS included): what makes a software "known".
    pub software: BTreeSet<SoftwareId>,
    /// The missing KBs per software: applicable, unsatisfied, closing an open CVE, frontier.
    pub missing: BTreeMap<SoftwareId, BTreeSet<KbId>>,
    /// Software for which at least one applicable KB is `Unknown`: the machine is
    /// indeterminate for it.
    pub indeterminate: BTreeSet<SoftwareId>,
    /// A KB is waiting for a restart and the build is still below it.
    pub pending_restart: bool,
    /// The verdict of every applicable KB.
    pub verdicts: Vec<KbVerdict>,
}

/// Evaluates one machine against the catalog.
pub fn evaluate(catalog: &Catalog, machine: &MachineFacts) -> Evaluation {
    let mut out = Evaluation {
        software: machine.software.keys().cloned().collect(),
        ..Evaluation::default()
    };
    let Some(os) = &machine.os else {
        return out;
    };
    out.software.insert(os.software.clone());
    let branch = Branch::of(os.build);

    // Applicable entries, grouped by KB.
    let mut applicable: BTreeMap<KbId, Vec<&Entry>> = BTreeMap::new();
    for software in &out.software {
        let version = machine.software.get(software).cloned().flatten();
        for e in catalog.entries_for(software) {
            if is_applicable(e, machine, branch, version.as_deref()) {
                applicable.entry(e.kb).or_default().push(e);
            }
        }
    }
    if applicable.is_empty() {
        return out;
    }

    let fixed_revision = |entries: &[&Entry]| entries.iter().filter_map(|e| e.fixed_revision).max();
    let scopes_of = |entries: &[&Entry]| -> BTreeSet<SoftwareId> {
        entries.iter().map(|e| e.class.software.clone()).collect()
    };

    // Rule a needs what the pending KBs supersede; rule c what the installed ones do.
    let pending: HashSet<KbId> = machine.pending_kbs.iter().copied().collect();
    let mut pending_cover: HashMap<SoftwareId, HashSet<KbId>> = HashMap::new();
    let mut verdicts: BTreeMap<KbId, KbVerdict> = BTreeMap::new();
    let mut proven: BTreeSet<KbId> = BTreeSet::new();
    let max_cumulative = catalog.max_cumulative_revision(&os.software, branch);
    for (kb, entries) in &applicable {
        let fixed = fixed_revision(entries);
        let below_fix = match (os.revision, fixed) {
            (Some(r), Some(f)) => r < f,
            _ => true,
        };
        let is_pending = scopes_of(entries).iter().any(|sw| {
            pending_cover
                .entry(sw.clone())
                .or_insert_with(|| catalog.superseded_by(sw, os.arch, pending.iter().copied()))
                .contains(kb)
        });
        let verdict = if is_pending && below_fix {
            out.pending_restart = true;
            Some((Satisfied::No, Rule::PendingRestart))
        } else if let (Some(r), Some(f)) = (os.revision, fixed) {
            Some((
                if r >= f {
                    Satisfied::Yes
                } else {
                    Satisfied::No
                },
                Rule::Build,
            ))
        } else {
            None
        };
        if let Some((satisfied, rule)) = verdict {
            if satisfied == Satisfied::Yes {
                proven.insert(*kb);
            }
            verdicts.insert(
                *kb,
                KbVerdict {
                    kb: *kb,
                    satisfied,
                    rule,
                    fixed_revision: fixed,
                },
            );
        }
    }

    // KBs proven by build evidence count as installed; a KB pending a restart does not.
    let installed: BTreeSet<KbId> = machine
        .installed_kbs
        .iter()
        .copied()
        .filter(|k| !pending.contains(k))
        .chain(proven.iter().copied())
        .collect();
    let mut cover: HashMap<SoftwareId, HashSet<KbId>> = HashMap::new();
    for (kb, entries) in &applicable {
        if verdicts.contains_key(kb) {
            continue;
        }
        let fixed = fixed_revision(entries);
        let covered = installed.contains(kb)
            || scopes_of(entries).iter().any(|sw| {
                cover
                    .entry(sw.clone())
                    .or_insert_with(|| {
                        catalog.superseded_by(sw, os.arch, installed.iter().copied())
                    })
                    .contains(kb)
            });
        let cumulative = entries.iter().any(|e| e.track == Track::Cumulative);
        let (satisfied, rule) = if covered {
            (Satisfied::Yes, Rule::InstalledKb)
        } else if cumulative && matches!((os.revision, max_cumulative), (Some(r), Some(m)) if r > m)
        {
            (Satisfied::Yes, Rule::NewerThanCatalog)
        } else if machine.kb_list_complete {
            (Satisfied::No, Rule::CompleteKbList)
        } else {
            (Satisfied::Unknown, Rule::NoEvidence)
        };
        verdicts.insert(
            *kb,
            KbVerdict {
                kb: *kb,
                satisfied,
                rule,
                fixed_revision: fixed,
            },
        );
    }

    // Open CVEs: those none of whose applicable remediations is satisfied.
    let mut closed: HashSet<u32> = HashSet::new();
    for (kb, entries) in &applicable {
        if verdicts[kb].satisfied == Satisfied::Yes {
            for e in entries {
                closed.extend(e.cves.iter().copied());
            }
        }
    }
    let has_open_cve = |kb: &KbId, software: &SoftwareId| {
        applicable.get(kb).is_some_and(|entries| {
            entries
                .iter()
                .filter(|e| &e.class.software == software)
                .any(|e| e.cves.iter().any(|c| !closed.contains(c)))
        })
    };

    // Per software: unsatisfied KBs that close an open CVE (directly or through what they
    // supersede), keeping only the frontier of each chain.
    for software in &out.software {
        let unsatisfied: Vec<KbId> = applicable
            .iter()
            .filter(|(kb, entries)| {
                verdicts[*kb].satisfied == Satisfied::No
                    && entries.iter().any(|e| &e.class.software == software)
            })
            .map(|(kb, _)| *kb)
            .collect();
        if applicable.iter().any(|(kb, entries)| {
            verdicts[kb].satisfied == Satisfied::Unknown
                && entries.iter().any(|e| &e.class.software == software)
        }) {
            out.indeterminate.insert(software.clone());
        }
        let mut superseded_by_unsatisfied: HashSet<KbId> = HashSet::new();
        let mut closes_open: Vec<KbId> = Vec::new();
        for kb in &unsatisfied {
            let below = catalog.superseded_by(software, os.arch, [*kb]);
            if below.iter().any(|k| has_open_cve(k, software)) {
                closes_open.push(*kb);
            }
            superseded_by_unsatisfied.extend(below.into_iter().filter(|k| k != kb));
        }
        let missing: BTreeSet<KbId> = closes_open
            .into_iter()
            .filter(|kb| !superseded_by_unsatisfied.contains(kb))
            .collect();
        if !missing.is_empty() {
            out.missing.insert(software.clone(), missing);
        }
    }
    out.verdicts = verdicts.into_values().collect();
    out
}

fn is_applicable(e: &Entry, m: &MachineFacts, branch: Branch, version: Option<&str>) -> bool {
    let (Some(os), Some(host)) = (&m.os, &e.class.host) else {
        return false;
    };
    if e.wrong_branch
        || host.software != os.software
        || Branch::of(host.build) != branch
        || host.arch != os.arch
    {
        return false;
    }
    // Full and Server Core installations take the same updates.
    if e.track == Track::Hotpatch && !os.hotpatch_enrolled {
        return false;
    }
    match (&e.class.version_line, version) {
        (Some(line), Some(v)) => v == line || v.starts_with(&format!("{line}.")),
        _ => true,
    }
}
