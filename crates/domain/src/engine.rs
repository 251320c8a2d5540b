//! The evaluation engine: for one machine's facts and a compiled catalog, which KBs are
//! missing for which software (`missing-kb-semantics.md` §3), and why. Pure functions.

use std::collections::{BTreeMap, BTreeSet};

// Fast, randomly seeded hashing: evaluation is mostly set and map lookups of KB numbers.
use foldhash::{HashMap, HashMapExt, HashSet};

use serde::Serialize;
use time::Date;

use crate::catalog::{Catalog, Entry, Track};
use crate::lifecycle::{self, EndOfServicing, Servicing};
use crate::parts::{self, Part};
use crate::product::ProductUpdates;
use crate::{Arch, Branch, KbId, MachineFacts, OsFacts, ProductBuild, SoftwareId};

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

/// The verdict on one applicable KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KbVerdict {
    pub kb: KbId,
    pub satisfied: Satisfied,
    pub rule: Rule,
    /// The highest FixedBuild revision of the KB on the machine's branch.
    pub fixed_revision: Option<u32>,
    /// For a product named without a Windows host (SQL Server, Exchange, Office MSI): the
    /// KB's FixedBuild on the servicing path of the machine's build of that product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_build: Option<ProductBuild>,
    /// For rule c: the installed (or build-proven) KB that covers this one.
    pub covered_by: Option<KbId>,
}

/// What became of an applicable KB for one software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    /// Reported: unsatisfied, closes an open CVE, newest of its chain.
    Missing,
    Satisfied,
    /// Not known to be present or absent: never counted as missing.
    Unknown,
    /// A newer unsatisfied KB supersedes it; that one is reported instead.
    Superseded {
        by: KbId,
    },
    /// Unsatisfied, but every CVE it fixes is closed by another update already present.
    NoOpenCve,
    /// Closes the same open CVEs as updates of the machine's own track, which are reported.
    Alternative {
        reported: Vec<KbId>,
    },
}

/// The outcome of evaluating one machine: what counts need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// Software installed on the machine (the OS included): what makes a software "known".
    pub software: BTreeSet<SoftwareId>,
    /// The missing KBs per software.
    pub missing: BTreeMap<SoftwareId, BTreeSet<KbId>>,
    /// Software for which at least one applicable KB is `Unknown`: the machine is
    /// indeterminate for it.
    pub indeterminate: BTreeSet<SoftwareId>,
    /// A KB is waiting for a restart and the build is still below it.
    pub pending_restart: bool,
    /// The machine's Windows version, for its edition, left servicing: updates released
    /// after that day for the OS and what it hosts are not offered to it, unless the
    /// version has Extended Security Updates ([`crate::lifecycle`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_servicing: Option<EndOfServicing>,
}

/// Everything the engine decided about one KB on one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KbExplanation {
    #[serde(flatten)]
    pub verdict: KbVerdict,
    /// The catalog products through which the KB applies.
    pub products: Vec<String>,
    /// The outcome for each software the KB applies to.
    pub outcomes: Vec<SoftwareOutcome>,
    /// For rule c: how the covering KB supersedes this one, newest first.
    pub chain: Vec<KbId>,
    /// A repair of Microsoft's data that this answer relies on.
    pub repairs: Vec<String>,
    /// Why the answer is unknown, when it is.
    pub unknown_because: Option<String>,
    /// The machine's open CVEs this KB would close, directly or through the KBs it
    /// supersedes: the risk it removes.
    pub closes_open_cves: Vec<String>,
}

/// What became of a KB for one software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareOutcome {
    pub software: SoftwareId,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// An evaluation with its evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub evaluation: Evaluation,
    pub kbs: Vec<KbExplanation>,
}

/// Evaluates one machine against the catalog, part by part ([`parts`]).
pub fn evaluate(catalog: &Catalog, machine: &MachineFacts) -> Evaluation {
    let parts: Vec<Evaluation> = parts::split(catalog, machine)
        .iter()
        .map(|p| evaluate_part(catalog, p))
        .collect();
    parts::merge(machine, &parts)
}

/// Evaluates one part of a machine: its missing KBs, indeterminate software and pending
/// restart (the `software` set is the whole machine's, which [`parts::merge`] fills in).
pub fn evaluate_part(catalog: &Catalog, part: &Part) -> Evaluation {
    match part {
        Part::Os(machine) => Analysis::run(catalog, machine, Scope::Os, false).evaluation,
        Part::Component(component) => {
            let machine = component.as_machine();
            Analysis::run(catalog, &machine, Scope::Component, false).evaluation
        }
        Part::Product(product) => {
            let machine = product.as_machine();
            Analysis::run(catalog, &machine, Scope::Product(product.arch), false).evaluation
        }
    }
}

/// Evaluates one machine and keeps the evidence of every applicable KB.
pub fn explain(catalog: &Catalog, machine: &MachineFacts) -> Explanation {
    let mut evaluations = Vec::new();
    let mut kbs = Vec::new();
    for part in parts::split(catalog, machine) {
        let (evaluation, mut of_part) = match &part {
            Part::Os(m) => explain_part(catalog, m, Scope::Os),
            Part::Component(c) => explain_part(catalog, &c.as_machine(), Scope::Component),
            Part::Product(p) => explain_part(catalog, &p.as_machine(), Scope::Product(p.arch)),
        };
        evaluations.push(evaluation);
        kbs.append(&mut of_part);
    }
    kbs.sort_by_key(|k| k.verdict.kb);
    Explanation {
        evaluation: parts::merge(machine, &evaluations),
        kbs,
    }
}

/// One part's evaluation with the evidence of each of its applicable KBs.
fn explain_part(
    catalog: &Catalog,
    machine: &MachineFacts,
    scope: Scope,
) -> (Evaluation, Vec<KbExplanation>) {
    let a = Analysis::run(catalog, machine, scope, true);
    let mut kbs = Vec::with_capacity(a.verdicts.len());
    for (kb, verdict) in &a.verdicts {
        let entries = &a.applicable[kb];
        let mut products: Vec<String> = entries.iter().map(|e| e.product_name.clone()).collect();
        products.sort();
        products.dedup();
        let outcomes = a
            .outcomes
            .iter()
            .filter(|((_, k), _)| k == kb)
            .map(|((sw, _), o)| SoftwareOutcome {
                software: sw.clone(),
                outcome: o.clone(),
            })
            .collect();
        let chain = match verdict.covered_by {
            Some(by) if by != *kb => entries
                .iter()
                .find_map(|e| catalog.supersedence_path(&e.class.software, a.arch, by, *kb))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        kbs.push(KbExplanation {
            verdict: verdict.clone(),
            products,
            outcomes,
            chain,
            repairs: a.repairs_for(catalog, *kb),
            unknown_because: (verdict.satisfied == Satisfied::Unknown)
                .then(|| a.unknown_reason(verdict)),
            closes_open_cves: a.closes_open_cves(catalog, *kb),
        });
    }
    (a.evaluation, kbs)
}

/// When the machine's edition of its Windows version left servicing, judged on the catalog's
/// newest day: the last day serviced, the end of Extended Security Updates when the version
/// has them, and the version's name.
fn ended_servicing(catalog: &Catalog, os: &OsFacts) -> Option<(Date, Option<Date>, &'static str)> {
    let today = catalog.newest_release()?;
    match lifecycle::servicing(&os.software, os.build, os.edition, today) {
        Servicing::Ended { since, esu_until } => {
            let version = lifecycle::version(&os.software, os.build)?;
            Some((since, esu_until, version.name))
        }
        Servicing::Serviced | Servicing::EditionDecides { .. } => None,
    }
}

/// Where a machine's build of a product named without a host lies among the catalog's
/// servicing paths.
#[derive(Debug, Clone, Copy)]
struct Located<'a> {
    build: ProductBuild,
    /// The version line the build's major.minor belongs to, when the catalog knows it.
    line: Option<&'a str>,
    path: Option<u32>,
}

/// What one run of the analysis evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The OS and the software it hosts.
    Os,
    /// The machine's one software beside its OS: a component whose updates are its own.
    Component,
    /// A product alone, on a machine of this architecture (`machine` has no OS).
    Product(Arch),
}

struct Analysis<'a> {
    machine: &'a MachineFacts,
    /// The OS, for the part of the OS and the software it hosts; `None` for a product
    /// evaluated apart, whose verdicts never read the OS build.
    os: Option<&'a OsFacts>,
    arch: Arch,
    /// The software whose newest installed update decides between Security Only and
    /// cumulative alternatives: the OS, or a component evaluated on its own.
    track_of: Option<SoftwareId>,
    /// Per product named without a host: the machine's build of it, located.
    located: HashMap<&'a SoftwareId, Located<'a>>,
    applicable: BTreeMap<KbId, Vec<&'a Entry>>,
    verdicts: BTreeMap<KbId, KbVerdict>,
    outcomes: BTreeMap<(SoftwareId, KbId), Outcome>,
    /// Per CVE index: closed by an applicable update that is present.
    closed: Vec<bool>,
    evaluation: Evaluation,
}

impl<'a> Analysis<'a> {
    fn run(
        catalog: &'a Catalog,
        machine: &'a MachineFacts,
        scope: Scope,
        detail: bool,
    ) -> Analysis<'a> {
        let os = machine.os.as_ref();
        let product_arch = match scope {
            Scope::Product(arch) => Some(arch),
            _ => None,
        };
        let mut a = Analysis {
            machine,
            os,
            arch: product_arch.or(os.map(|o| o.arch)).unwrap_or(Arch::X64),
            track_of: None,
            located: HashMap::new(),
            applicable: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            closed: Vec::new(),
            evaluation: Evaluation {
                software: machine.software.keys().cloned().collect(),
                ..Evaluation::default()
            },
        };
        if os.is_none() && product_arch.is_none() {
            return a;
        }
        if let (Some(os), Scope::Os) = (os, scope) {
            a.evaluation.software.insert(os.software.clone());
        }
        // The software whose newest installed update says which track it follows: the OS,
        // or a component on its own.
        a.track_of = match scope {
            Scope::Os => os.map(|o| o.software.clone()),
            // The component is the part's only software.
            Scope::Component => machine.software.keys().next().cloned(),
            Scope::Product(_) => None,
        };
        // A product evaluated apart has only entries named without a host: no branch.
        let branch = os.map_or(Branch(0), |o| Branch::of(o.build));
        let arch = a.arch;
        let paths = catalog.servicing_paths();
        for (software, version) in &machine.software {
            let Some(build) = version.as_deref().and_then(ProductBuild::parse) else {
                continue;
            };
            if os.is_some_and(|o| software == &o.software) {
                continue;
            }
            let located = Located {
                build,
                line: paths.line_of(software, &build),
                path: paths.locate(software, &build),
            };
            if located.line.is_some() {
                a.located.insert(software, located);
            }
        }
        // MSRC names one product for all editions of a Windows 10 or 11 version. What it
        // lists under the machine's own version after the machine's edition left servicing
        // is for the editions still serviced (LTSC 2019 after 1809 Pro's end), unless the
        // version has Extended Security Updates, whose enrolment kbgap cannot see. Updates of
        // a branch sibling still apply by the branch rule (`docs/semantics-products.md` §8).
        let ended = match (scope, os) {
            (Scope::Os | Scope::Component, Some(o)) => ended_servicing(catalog, o),
            _ => None,
        };
        let cut = ended.and_then(|(since, esu, _)| esu.is_none().then_some(since));
        let released_after =
            |e: &Entry, day: Date| catalog.kb(e.kb).is_some_and(|k| k.release_date > day);
        let own_version = |e: &Entry| {
            e.class
                .host
                .as_ref()
                .is_some_and(|h| os.is_some_and(|o| h.build == o.build))
        };
        let (software_set, located_of, applicable) =
            (&a.evaluation.software, &a.located, &mut a.applicable);
        for software in software_set {
            let version = machine.software.get(software).and_then(|v| v.as_deref());
            let located = located_of.get(software).copied();
            let exact_host = os.is_some_and(|o| {
                catalog.names_component_host(software, &o.software, o.build, o.arch)
            });
            for e in catalog.candidate_entries(software, branch, arch) {
                if cut.is_some_and(|day| own_version(e) && released_after(e, day)) {
                    continue;
                }
                if is_applicable(e, os, branch, version, located, exact_host) {
                    applicable.entry(e.kb).or_default().push(e);
                }
            }
        }
        if let (Some((since, esu_until, version)), Scope::Os, Some(o)) = (ended, scope, os) {
            // The last cumulative update of the version released while the edition was
            // serviced: the one Windows Update still offers.
            let last_update = a
                .applicable
                .values()
                .flatten()
                .filter(|e| {
                    e.class.software == o.software
                        && e.track == Track::Cumulative
                        && own_version(e)
                        && !released_after(e, since)
                })
                .filter_map(|e| Some((catalog.kb(e.kb)?.release_date, e.kb)))
                .max()
                .map(|(_, kb)| kb);
            a.evaluation.end_of_servicing = Some(EndOfServicing {
                version,
                edition: o.edition,
                since,
                esu_until,
                last_update,
            });
        }
        if a.applicable.is_empty() {
            return a;
        }
        a.decide_satisfaction(catalog, branch, detail);
        a.decide_missing(catalog, detail);
        a
    }

    /// Rules a–e of §3.2 for every applicable KB.
    fn decide_satisfaction(&mut self, catalog: &Catalog, branch: Branch, detail: bool) {
        let machine = self.machine;
        let arch = self.arch;
        // The OS revision and the OS's newest cumulative build: rules a, b and d for the OS
        // and what it hosts. A product evaluated apart has its own build instead.
        let revision = self.os.and_then(|o| o.revision);
        let revision_unknown = self.os.is_some_and(|o| o.revision.is_none());
        let max_cumulative = self
            .os
            .and_then(|o| catalog.max_cumulative_revision(&o.software, branch));
        let pending: Vec<KbId> = machine.pending_kbs.iter().copied().collect();
        let mut pending_cover: HashMap<&SoftwareId, HashSet<KbId>> = HashMap::new();
        let mut proven: BTreeSet<KbId> = BTreeSet::new();

        // Rules a and b first: what build evidence proves counts as installed for rule c.
        for (kb, entries) in &self.applicable {
            let fixed = fixed_revision(entries);
            let below_fix = match (revision, fixed) {
                (Some(r), Some(f)) => r < f,
                _ => true,
            };
            let is_pending = !pending.is_empty()
                && entries.iter().any(|e| {
                    pending_cover
                        .entry(&e.class.software)
                        .or_insert_with(|| {
                            catalog.superseded_by(&e.class.software, arch, pending.iter().copied())
                        })
                        .contains(kb)
                });
            // Without a revision, a KB pending a restart still proves the build is below it,
            // so below every cumulative update that supersedes it: those are missing too.
            let above_pending = revision_unknown
                && !pending.is_empty()
                && !machine.installed_kbs.contains(kb)
                && entries.iter().any(|e| {
                    e.track == Track::Cumulative && {
                        let below = catalog.superseded_by(&e.class.software, arch, [*kb]);
                        pending.iter().any(|p| p != kb && below.contains(p))
                    }
                });
            let product = self.product_evidence(catalog, entries);
            let decided = if (is_pending && below_fix) || above_pending {
                self.evaluation.pending_restart = true;
                Some((Satisfied::No, Rule::PendingRestart))
            } else if let (Some(r), Some(f)) = (revision, fixed) {
                Some((
                    if r >= f {
                        Satisfied::Yes
                    } else {
                        Satisfied::No
                    },
                    Rule::Build,
                ))
            } else if let Some((have, needed)) = product {
                Some((
                    if have >= needed {
                        Satisfied::Yes
                    } else {
                        Satisfied::No
                    },
                    Rule::Build,
                ))
            } else {
                None
            };
            if let Some((satisfied, rule)) = decided {
                if satisfied == Satisfied::Yes {
                    proven.insert(*kb);
                }
                self.verdicts.insert(
                    *kb,
                    KbVerdict {
                        kb: *kb,
                        satisfied,
                        rule,
                        fixed_revision: fixed,
                        fixed_build: product.map(|(_, f)| f),
                        covered_by: None,
                    },
                );
            }
        }

        // A KB pending a restart is not installed yet.
        let installed: BTreeSet<KbId> = machine
            .installed_kbs
            .iter()
            .copied()
            .filter(|k| !machine.pending_kbs.contains(k))
            .chain(proven.iter().copied())
            .collect();
        let mut cover: HashMap<&SoftwareId, HashSet<KbId>> = HashMap::new();
        for (kb, entries) in &self.applicable {
            if self.verdicts.contains_key(kb) {
                continue;
            }
            let fixed = fixed_revision(entries);
            let covered = installed.contains(kb)
                || entries.iter().any(|e| {
                    cover
                        .entry(&e.class.software)
                        .or_insert_with(|| {
                            catalog.superseded_by(
                                &e.class.software,
                                arch,
                                installed.iter().copied(),
                            )
                        })
                        .contains(kb)
                });
            let cumulative = entries.iter().any(|e| e.track == Track::Cumulative);
            let (satisfied, rule) = if covered {
                (Satisfied::Yes, Rule::InstalledKb)
            } else if (cumulative
                && matches!((revision, max_cumulative), (Some(r), Some(m)) if r > m))
                || self.product_newer_than_catalog(catalog, entries)
            {
                (Satisfied::Yes, Rule::NewerThanCatalog)
            } else if entries
                .iter()
                .any(|e| machine.kb_list_complete_for(&e.class))
            {
                (Satisfied::No, Rule::CompleteKbList)
            } else {
                (Satisfied::Unknown, Rule::NoEvidence)
            };
            let covered_by = (covered && detail).then(|| {
                if installed.contains(kb) {
                    *kb
                } else {
                    // The newest installed KB that covers it, for the explanation.
                    installed
                        .iter()
                        .rev()
                        .copied()
                        .find(|i| {
                            entries.iter().any(|e| {
                                catalog
                                    .superseded_by(&e.class.software, arch, [*i])
                                    .contains(kb)
                            })
                        })
                        .unwrap_or(*kb)
                }
            });
            self.verdicts.insert(
                *kb,
                KbVerdict {
                    kb: *kb,
                    satisfied,
                    rule,
                    fixed_revision: fixed,
                    fixed_build: None,
                    covered_by,
                },
            );
        }
    }

    /// §3.3–3.4: open CVEs, the frontier, and one of alternative remediations.
    fn decide_missing(&mut self, catalog: &Catalog, detail: bool) {
        let arch = self.arch;
        let satisfied = |kb: &KbId| self.verdicts[kb].satisfied;
        // Open CVEs: those none of whose applicable remediations is satisfied.
        let mut closed = vec![false; catalog.cve_count()];
        for (kb, entries) in &self.applicable {
            if satisfied(kb) == Satisfied::Yes {
                for e in entries {
                    for &c in &e.cves {
                        closed[c as usize] = true;
                    }
                }
            }
        }
        let so_track = self
            .track_of
            .as_ref()
            .is_some_and(|s| self.on_security_only_track(catalog, s));

        for software in &self.evaluation.software {
            let of_software = |entries: &[&'a Entry]| -> Vec<&'a Entry> {
                entries
                    .iter()
                    .copied()
                    .filter(|e| &e.class.software == software)
                    .collect()
            };
            let mut unsatisfied: Vec<KbId> = Vec::new();
            let mut unknown: Vec<KbId> = Vec::new();
            for (kb, entries) in &self.applicable {
                let mine = of_software(entries);
                if mine.is_empty() {
                    continue;
                }
                match satisfied(kb) {
                    Satisfied::No => unsatisfied.push(*kb),
                    Satisfied::Unknown => {
                        unknown.push(*kb);
                        if detail {
                            self.outcomes
                                .insert((software.clone(), *kb), Outcome::Unknown);
                        }
                    }
                    Satisfied::Yes => {
                        if detail {
                            self.outcomes
                                .insert((software.clone(), *kb), Outcome::Satisfied);
                        }
                    }
                }
            }
            if unsatisfied.is_empty() && unknown.is_empty() {
                continue;
            }
            // What each unsatisfied KB would close, directly or through what it supersedes,
            // and which of them a newer unsatisfied KB supersedes.
            // Open CVEs per applicable KB of this software: most KBs have none left.
            let mut open_of: HashMap<KbId, Vec<u32>> = HashMap::new();
            for (kb, entries) in &self.applicable {
                let open: Vec<u32> = entries
                    .iter()
                    .filter(|e| &e.class.software == software)
                    .flat_map(|e| e.cves.iter().copied())
                    .filter(|&c| !closed[c as usize])
                    .collect();
                if !open.is_empty() {
                    open_of.insert(*kb, open);
                }
            }
            let superseded =
                catalog.superseded_by_another(software, arch, unsatisfied.iter().copied());
            // Whether a KB closes an open CVE, directly or through what it supersedes; only
            // asked of KBs no other unsatisfied KB supersedes, which are few.
            let closes_open = |kb: KbId| {
                open_of.contains_key(&kb)
                    || catalog
                        .superseded_by(software, arch, [kb])
                        .iter()
                        .any(|k| open_of.contains_key(k))
            };
            // The machine is indeterminate for the software only where an unknown KB could
            // change the answer: one that no unsatisfied KB supersedes (a reported newer update
            // would cover it) and that closes an open CVE.
            if unknown
                .iter()
                .any(|kb| !superseded.contains(kb) && closes_open(*kb))
            {
                self.evaluation.indeterminate.insert(software.clone());
            }
            if unsatisfied.is_empty() {
                continue;
            }
            let has_open: HashSet<KbId> = unsatisfied
                .iter()
                .copied()
                .filter(|kb| !superseded.contains(kb) && closes_open(*kb))
                .collect();
            let track_of = |kb: &KbId| {
                let entries = of_software(&self.applicable[kb]);
                if entries.iter().any(|e| e.track == Track::SecurityOnly) {
                    Track::SecurityOnly
                } else if entries.iter().any(|e| e.track == Track::Cumulative) {
                    Track::Cumulative
                } else {
                    Track::Standalone
                }
            };
            let frontier: Vec<(KbId, Track)> = unsatisfied
                .iter()
                .filter(|kb| has_open.contains(kb))
                .map(|kb| (*kb, track_of(kb)))
                .collect();
            // Among alternatives closing the same open CVEs, report the machine's own track.
            let (own, other) = if so_track {
                (Track::SecurityOnly, Track::Cumulative)
            } else {
                (Track::Cumulative, Track::SecurityOnly)
            };
            let mut missing: BTreeSet<KbId> = frontier.iter().map(|(kb, _)| *kb).collect();
            if frontier.iter().any(|(_, t)| *t == own) && frontier.iter().any(|(_, t)| *t == other)
            {
                // Open CVEs each frontier KB closes, directly or through what it supersedes.
                let closes = |kb: KbId| -> BTreeSet<u32> {
                    catalog
                        .superseded_by(software, arch, [kb])
                        .iter()
                        .filter_map(|k| open_of.get(k))
                        .flatten()
                        .copied()
                        .collect()
                };
                let own_closes: Vec<(KbId, BTreeSet<u32>)> = frontier
                    .iter()
                    .filter(|(_, t)| *t == own)
                    .map(|(kb, _)| (*kb, closes(*kb)))
                    .collect();
                let all_own: BTreeSet<u32> = own_closes
                    .iter()
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                for (kb, _) in frontier.iter().filter(|(_, t)| *t == other) {
                    let mine = closes(*kb);
                    if !mine.is_subset(&all_own) {
                        continue;
                    }
                    missing.remove(kb);
                    if detail {
                        let reported = own_closes
                            .iter()
                            .filter(|(_, c)| !c.is_disjoint(&mine))
                            .map(|(k, _)| *k)
                            .collect();
                        self.outcomes
                            .insert((software.clone(), *kb), Outcome::Alternative { reported });
                    }
                }
            }
            if detail {
                for kb in &unsatisfied {
                    let outcome = if missing.contains(kb) {
                        Outcome::Missing
                    } else if superseded.contains(kb) {
                        // The newest unsatisfied KB that supersedes it, for the explanation.
                        let by = unsatisfied
                            .iter()
                            .rev()
                            .copied()
                            .find(|k| {
                                k != kb && catalog.superseded_by(software, arch, [*k]).contains(kb)
                            })
                            .unwrap_or(*kb);
                        Outcome::Superseded { by }
                    } else if !has_open.contains(kb) {
                        Outcome::NoOpenCve
                    } else {
                        continue;
                    };
                    self.outcomes.insert((software.clone(), *kb), outcome);
                }
            }
            if !missing.is_empty() {
                self.evaluation.missing.insert(software.clone(), missing);
            }
        }
        self.closed = closed;
    }

    /// For a KB of a product named without a host: the machine's build of the product and the
    /// KB's FixedBuild on the machine's servicing path (the highest, when several entries
    /// give one).
    fn product_evidence(
        &self,
        catalog: &Catalog,
        entries: &[&Entry],
    ) -> Option<(ProductBuild, ProductBuild)> {
        entries
            .iter()
            .filter(|e| e.class.host.is_none())
            .filter_map(|e| {
                let at = self.located.get(&e.class.software)?;
                let fixed = e.product_build_on(catalog.servicing_paths(), at.path?)?;
                Some((at.build, fixed))
            })
            .max_by_key(|(_, fixed)| *fixed)
    }

    /// Rule d for a product named without a host whose updates are cumulative: the machine's
    /// build is newer than every FixedBuild the catalog knows on its servicing path.
    fn product_newer_than_catalog(&self, catalog: &Catalog, entries: &[&Entry]) -> bool {
        entries.iter().any(|e| {
            e.class.host.is_none()
                && e.class.updates != ProductUpdates::Standalone
                && self.located.get(&e.class.software).is_some_and(|at| {
                    at.path
                        .is_some_and(|p| at.build > catalog.servicing_paths().get(p).newest)
                })
        })
    }

    /// Whether the machine's newest installed update of `software` is a Security Only update.
    fn on_security_only_track(&self, catalog: &Catalog, software: &SoftwareId) -> bool {
        self.machine
            .installed_kbs
            .iter()
            .filter_map(|kb| {
                let entries = self.applicable.get(kb)?;
                let os_entries: Vec<_> = entries
                    .iter()
                    .filter(|e| &e.class.software == software)
                    .collect();
                let track = os_entries.first()?.track;
                Some((catalog.kb(*kb)?.release_date, track))
            })
            .max_by_key(|(date, _)| *date)
            .is_some_and(|(_, track)| track == Track::SecurityOnly)
    }

    fn closes_open_cves(&self, catalog: &Catalog, kb: KbId) -> Vec<String> {
        if self.closed.is_empty() {
            return Vec::new();
        }
        if self.verdicts[&kb].satisfied == Satisfied::Yes {
            return Vec::new();
        }
        let mut cves = BTreeSet::new();
        let softwares: BTreeSet<&SoftwareId> = self.applicable[&kb]
            .iter()
            .map(|e| &e.class.software)
            .collect();
        for software in softwares {
            for k in catalog.superseded_by(software, self.arch, [kb]) {
                for e in self.applicable.get(&k).into_iter().flatten() {
                    if &e.class.software == software {
                        cves.extend(
                            e.cves
                                .iter()
                                .filter(|&&c| !self.closed[c as usize])
                                .map(|&c| catalog.cve_name(c).to_string()),
                        );
                    }
                }
            }
        }
        cves.into_iter().collect()
    }

    fn repairs_for(&self, catalog: &Catalog, kb: KbId) -> Vec<String> {
        let mut out = Vec::new();
        let entries = &self.applicable[&kb];
        if let Some(os) = self.os.filter(|os| {
            entries
                .iter()
                .filter(|e| {
                    e.class
                        .host
                        .as_ref()
                        .is_some_and(|h| h.software == os.software)
                })
                .all(|e| e.class.host.as_ref().is_some_and(|h| h.build != os.build))
                && entries.iter().any(|e| e.class.host.is_some())
        }) {
            out.push(format!(
                "applies through servicing branch {}: the update lists sibling versions of build {}, not {} itself",
                Branch::of(os.build),
                entries
                    .iter()
                    .filter_map(|e| e.class.host.as_ref().map(|h| h.build.to_string()))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", "),
                os.build
            ));
        }
        for r in catalog.repairs().iter().filter(|r| r.kb == kb) {
            out.push(format!("{} ({}): {}", r.kind, r.product_name, r.evidence));
        }
        out
    }

    fn unknown_reason(&self, v: &KbVerdict) -> String {
        let entries = &self.applicable[&v.kb];
        if entries.iter().all(|e| !e.class.windows_serviced()) {
            let software = &entries[0].class.software;
            let build = match self.located.get(software) {
                Some(at) => format!(
                    "its build {} of {software} is on no servicing path this KB has a FixedBuild for",
                    at.build
                ),
                None => format!("the machine reports no build of {software}"),
            };
            return format!(
                "{build}, and no complete list of {software}'s own updates was given (Windows' \
                 installed-update list, from systeminfo, wmic qfe or osquery, never shows \
                 MSI-installed product updates)"
            );
        }
        let Some(os) = self.os else {
            return "the machine reports no operating system".into();
        };
        match (os.revision, v.fixed_revision) {
            (None, _) => "the machine reports no build revision and its KB list is not complete, \
                          and no installed KB supersedes this one"
                .into(),
            (Some(_), None) => "the catalog has no FixedBuild for this KB on the machine's \
                                branch, the KB list is not complete, and no installed KB \
                                supersedes it"
                .into(),
            (Some(_), Some(_)) => "no evidence".into(),
        }
    }
}

fn fixed_revision(entries: &[&Entry]) -> Option<u32> {
    entries.iter().filter_map(|e| e.fixed_revision).max()
}

/// `os` is `None` for a product evaluated apart: only its entries named without a host apply.
fn is_applicable(
    e: &Entry,
    os: Option<&OsFacts>,
    branch: Branch,
    version: Option<&str>,
    located: Option<Located>,
    exact_host: bool,
) -> bool {
    if e.wrong_branch {
        return false;
    }
    // A component named on the machine's own OS version takes only those products; the
    // siblings' apply where its own version is not named.
    let hotpatch_enrolled = os.is_some_and(|o| o.hotpatch_enrolled);
    if let Some(host) = &e.class.host {
        let Some(os) = os else {
            return false;
        };
        if exact_host && host.software != e.class.software && host.build != os.build {
            return false;
        }
        // Products named "on Windows …" apply on that Windows' servicing branch (a version
        // the update omits is reached through its siblings). Full and Server Core
        // installations take the same updates.
        if host.software != os.software || Branch::of(host.build) != branch || host.arch != os.arch
        {
            return false;
        }
    }
    // A product named without a host, installed at a build: the build names the version line
    // (SQL Server 15.0 is 2019) and the servicing path (GDR or CU; an Exchange CU), and only
    // updates of that path apply. An update whose path the catalog cannot tell applies on
    // every path of its line.
    if let (None, Some(at)) = (&e.class.host, located) {
        if at.line.is_some()
            && e.class
                .version_line
                .as_deref()
                .is_some_and(|l| Some(l) != at.line)
        {
            return false;
        }
        // An update for a release the catalog cannot place is not for a machine whose
        // release its build names (an Exchange CU7 update on CU13).
        if e.paths.is_empty() {
            return e.class.updates != ProductUpdates::CumulativePerRelease || at.path.is_none();
        }
        return at.path.is_some_and(|p| e.paths.contains(&p));
    }
    // Products named without a host apply wherever the software is installed.
    if e.track == Track::Hotpatch && !hotpatch_enrolled {
        return false;
    }
    if e.replaced_by_hotpatch && hotpatch_enrolled {
        return false;
    }
    // Both sides may name several lines with `|`: a product for ".NET Framework 3.5 AND 4.8"
    // applies on a machine with 3.5 or 4.8 installed, and a machine can have both.
    match (&e.class.version_line, version) {
        (Some(lines), Some(installed)) => lines_apply(lines, installed),
        _ => true,
    }
}

/// Whether a product naming `lines` applies to the installed versions. A product naming
/// several lines (".NET Framework 3.5 AND 4.8.1") is for machines whose versions of each
/// major it names are those lines: .NET Framework 4.x versions replace each other in place,
/// so "3.5 AND 4.8.1" is not for a machine with 3.5 and 4.8 (that one gets "3.5 AND 4.8").
fn lines_apply(lines: &str, installed: &str) -> bool {
    let major = |v: &str| v.split('.').next().unwrap_or("").to_string();
    let any = |line: &str| installed.split('|').any(|v| in_line(v, line));
    if !lines.split('|').any(any) {
        return false;
    }
    if !lines.contains('|') {
        return true;
    }
    lines.split('|').all(|line| {
        let m = major(line);
        let of_major: Vec<&str> = installed.split('|').filter(|v| major(v) == m).collect();
        of_major.is_empty()
            || lines
                .split('|')
                .filter(|l| major(l) == m)
                .any(|l| of_major.iter().any(|v| in_line(v, l)))
    })
}

/// Whether an installed version belongs to a version line: `11.0.19041.1` to `11`, and
/// `4.8.04084` to `4.8`, but `4.8.1` and `4.7.2` are lines of their own, not builds of `4.8`
/// and `4.7` (a build component is `0` or has several digits).
fn in_line(version: &str, line: &str) -> bool {
    if version == line {
        return true;
    }
    match version
        .strip_prefix(line)
        .and_then(|rest| rest.strip_prefix('.'))
    {
        Some(rest) => {
            let next = rest.split('.').next().unwrap_or("");
            next == "0" || next.len() >= 2
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{in_line, lines_apply};

    #[test]
    fn several_lines_follow_in_place_versions() {
        assert!(lines_apply("3.5|4.8", "3.5|4.8"));
        assert!(!lines_apply("3.5|4.8.1", "3.5|4.8"));
        assert!(lines_apply("3.5", "3.5|4.8"));
        assert!(lines_apply("3.5|4.8", "4.8"));
        assert!(!lines_apply("3.5|4.8.1", "4.8.04084"));
        assert!(lines_apply("3.5|4.8.1", "3.5"));
        assert!(!lines_apply("4.8", "3.5"));
    }

    #[test]
    fn version_lines() {
        assert!(in_line("11", "11"));
        assert!(in_line("11.0.19041.1", "11"));
        assert!(in_line("4.8.04084", "4.8"));
        assert!(!in_line("4.8.1", "4.8"));
        assert!(in_line("4.8.1", "4.8.1"));
        assert!(!in_line("4.7.2", "4.7"));
        assert!(!in_line("2016", "2019"));
        assert!(!in_line("110", "11"));
    }
}
