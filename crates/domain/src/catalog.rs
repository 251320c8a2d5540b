//! The compiled catalog: MSRC documents turned into per-(KB, product) entries with tracks,
//! fixed revisions, release documents, supersedence chains and repairs, ready for evaluation.
//! Immutable once built; a new import builds a new one.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use time::Date;

use crate::cvrf::CvrfDocument;
use crate::product::{Arch, Normalized, ProductClass};
use crate::{Branch, KbId, SoftwareId, WindowsBuild};

/// A KB's identity in API answers: its release document and catalog link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KbInfo {
    pub kb: KbId,
    /// Title of the release document, e.g. "March 2020 Security Updates".
    pub name: String,
    /// Id of the release document, e.g. `2020-Mar`.
    pub document_id: String,
    pub release_date: Date,
}

impl KbInfo {
    pub fn url(&self) -> String {
        catalog_url(self.kb)
    }
}

/// The Microsoft Update Catalog search page for a KB.
pub fn catalog_url(kb: KbId) -> String {
    format!("https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB{kb}")
}

/// How an update relates to its predecessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Track {
    /// LCU, Monthly Rollup, IE Cumulative: contains every earlier update of its chain.
    Cumulative,
    /// Security Only: never cumulative.
    SecurityOnly,
    /// Hotpatch: only for hotpatch-enrolled machines.
    Hotpatch,
    /// A standalone update (Office, .NET, pre-rollup Windows): its own frontier.
    Standalone,
}

impl Track {
    fn classify(sub_type: Option<&str>, class: &ProductClass) -> Track {
        let st: String = sub_type
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if class.hotpatch || st.contains("hotpatch") {
            return Track::Hotpatch;
        }
        match st.as_str() {
            "securityonly" => Track::SecurityOnly,
            "monthlyrollup" | "iecumulative" => Track::Cumulative,
            _ => match &class.host {
                // From Windows 10 on, every Windows security update is the cumulative LCU,
                // and components that ship inside the OS (IE, EdgeHTML) ride on it.
                Some(host) if host.build >= 10240 => Track::Cumulative,
                _ => Track::Standalone,
            },
        }
    }
}

/// One (KB, product) pair: what the KB fixes for that product and how to tell it is present.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub kb: KbId,
    pub product_name: String,
    pub class: ProductClass,
    pub track: Track,
    /// The highest FixedBuild revision on the product's own servicing branch.
    pub fixed_revision: Option<u32>,
    /// FixedBuild values as MSRC wrote them.
    pub fixed_builds: Vec<String>,
    /// MSRC's `Supercedence` for this product.
    pub supersedes: Vec<KbId>,
    /// Indexes into [`Catalog::cve_name`]; CVE ids only (advisories are not CVEs).
    pub cves: Vec<u32>,
    /// A data error in MSRC's feed makes this entry inapplicable (see `repairs`).
    pub wrong_branch: bool,
}

/// A defect in Microsoft's feed that the catalog works around.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub kind: RepairKind,
    pub kb: KbId,
    pub product_name: String,
    pub evidence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RepairKind {
    /// Every FixedBuild lies on another servicing branch than the product's own.
    WrongBranchFixedBuild,
}

/// The chains and closures of supersedence are kept per software and architecture.
type Scope = (SoftwareId, Arch);

/// One cumulative chain: a software on one host OS, servicing branch and architecture.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChainKey {
    software: SoftwareId,
    host: SoftwareId,
    branch: Branch,
    arch: Arch,
}

#[derive(Debug, Default)]
pub struct Catalog {
    kbs: HashMap<KbId, KbInfo>,
    entries: Vec<Entry>,
    by_software: HashMap<SoftwareId, Vec<usize>>,
    cve_names: Vec<String>,
    cve_addressed: HashMap<(SoftwareId, KbId), u32>,
    /// MSRC's own `Supercedence` edges, newer → older.
    msrc_edges: HashMap<Scope, HashMap<KbId, Vec<KbId>>>,
    /// Cumulative chains, oldest first.
    chains: Vec<Vec<KbId>>,
    /// For each KB of a scope, the chains it sits in and its position there.
    chain_positions: HashMap<Scope, HashMap<KbId, Vec<(usize, usize)>>>,
    /// Highest cumulative revision per (host OS, branch).
    max_cumulative: HashMap<(SoftwareId, Branch), u32>,
    repairs: Vec<Repair>,
    as_of: Option<Date>,
    documents: usize,
}

impl Catalog {
    /// Compiles documents into a catalog, as it stood on `as_of` when given: documents
    /// released by that date and, within them, only KBs released by it (a KB's release date
    /// is its release document's, chosen over all documents).
    pub fn build(
        docs: &[CvrfDocument],
        normalize: impl Fn(&str) -> Normalized,
        parse_supersedence: impl Fn(&str) -> Vec<KbId>,
        as_of: Option<Date>,
    ) -> Catalog {
        let release = release_documents(docs);
        let in_cut = |d: Date| as_of.is_none_or(|cut| d <= cut);

        let mut kbs = HashMap::new();
        for (kb, &doc_idx) in &release {
            let doc = &docs[doc_idx];
            let date = doc.initial_release.date();
            if in_cut(date) {
                kbs.insert(
                    *kb,
                    KbInfo {
                        kb: *kb,
                        name: doc.title.clone(),
                        document_id: doc.id.clone(),
                        release_date: date,
                    },
                );
            }
        }

        // Merge every fix of one (KB, product) across vulnerabilities and documents.
        struct Acc {
            class: ProductClass,
            sub_type: Option<String>,
            fixed_builds: BTreeSet<String>,
            supersedes: Vec<KbId>,
            cves: BTreeSet<u32>,
        }
        let mut classes: HashMap<String, Normalized> = HashMap::new();
        let mut cve_index: HashMap<String, u32> = HashMap::new();
        let mut cve_names: Vec<String> = Vec::new();
        let mut acc: HashMap<(KbId, String), Acc> = HashMap::new();
        let mut documents = 0;
        for doc in docs {
            if !in_cut(doc.initial_release.date()) {
                continue;
            }
            documents += 1;
            for fix in &doc.fixes {
                if !kbs.contains_key(&fix.kb) {
                    continue;
                }
                let normalized = classes
                    .entry(fix.product_name.clone())
                    .or_insert_with(|| normalize(&fix.product_name));
                let Normalized::Mapped(class) = normalized else {
                    continue;
                };
                if class.version_fixed {
                    continue;
                }
                let a = acc
                    .entry((fix.kb, fix.product_name.clone()))
                    .or_insert_with(|| Acc {
                        class: class.clone(),
                        sub_type: None,
                        fixed_builds: BTreeSet::new(),
                        supersedes: Vec::new(),
                        cves: BTreeSet::new(),
                    });
                if a.sub_type.is_none() {
                    a.sub_type.clone_from(&fix.sub_type);
                }
                if let Some(fb) = &fix.fixed_build {
                    a.fixed_builds.insert(fb.clone());
                }
                if let Some(s) = &fix.supersedence {
                    for k in parse_supersedence(s) {
                        if k != fix.kb && !a.supersedes.contains(&k) {
                            a.supersedes.push(k);
                        }
                    }
                }
                if fix.cve.starts_with("CVE-") {
                    let next = cve_names.len() as u32;
                    let idx = *cve_index.entry(fix.cve.clone()).or_insert_with(|| {
                        cve_names.push(fix.cve.clone());
                        next
                    });
                    a.cves.insert(idx);
                }
            }
        }

        let mut keys: Vec<(KbId, String)> = acc.keys().cloned().collect();
        keys.sort();
        let mut entries = Vec::with_capacity(keys.len());
        let mut repairs = Vec::new();
        let mut addressed: HashMap<(SoftwareId, KbId), BTreeSet<u32>> = HashMap::new();
        for key in keys {
            let Some(a) = acc.remove(&key) else { continue };
            let (kb, product_name) = key;
            addressed
                .entry((a.class.software.clone(), kb))
                .or_default()
                .extend(a.cves.iter().copied());
            // An advisory alone never makes a KB missing, so entries without a CVE are not
            // evaluated at all (servicing-stack updates cited by ADV990001, for example).
            if a.cves.is_empty() {
                continue;
            }
            let track = Track::classify(a.sub_type.as_deref(), &a.class);
            let builds: Vec<WindowsBuild> = a
                .fixed_builds
                .iter()
                .filter_map(|b| WindowsBuild::parse(b))
                .collect();
            let mut fixed_revision = None;
            let mut wrong_branch = false;
            if let Some(host) = &a.class.host {
                let own = Branch::of(host.build);
                fixed_revision = builds
                    .iter()
                    .filter(|b| b.branch() == own)
                    .filter_map(|b| b.revision)
                    .max();
                if !builds.is_empty() && builds.iter().all(|b| b.branch() != own) {
                    wrong_branch = true;
                    repairs.push(Repair {
                        kind: RepairKind::WrongBranchFixedBuild,
                        kb,
                        product_name: product_name.clone(),
                        evidence: format!(
                            "FixedBuild {} is not on branch {own} of the product",
                            a.fixed_builds
                                .iter()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
            entries.push(Entry {
                kb,
                product_name,
                class: a.class,
                track,
                fixed_revision,
                fixed_builds: a.fixed_builds.into_iter().collect(),
                supersedes: a.supersedes,
                cves: a.cves.into_iter().collect(),
                wrong_branch,
            });
        }

        let mut max_cumulative: HashMap<(SoftwareId, Branch), u32> = HashMap::new();
        for e in &entries {
            if let (Track::Cumulative, Some(rev), Some(host), false) =
                (e.track, e.fixed_revision, &e.class.host, e.wrong_branch)
            {
                let m = max_cumulative
                    .entry((host.software.clone(), Branch::of(host.build)))
                    .or_insert(rev);
                *m = (*m).max(rev);
            }
        }
        if as_of.is_some() {
            // In a historical cut, a KB whose revision is above every cumulative revision of
            // its branch was released later than its citing document (a revised document or
            // a servicing-stack advisory cites it): it did not exist yet.
            entries.retain(|e| {
                let Some(host) = &e.class.host else {
                    return true;
                };
                match (
                    e.fixed_revision,
                    max_cumulative.get(&(host.software.clone(), Branch::of(host.build))),
                ) {
                    (Some(rev), Some(max)) => e.track == Track::Cumulative || rev <= *max,
                    _ => true,
                }
            });
        }

        let mut by_software: HashMap<SoftwareId, Vec<usize>> = HashMap::new();
        let mut msrc_edges: HashMap<Scope, HashMap<KbId, Vec<KbId>>> = HashMap::new();
        let mut chain_members: HashMap<ChainKey, Vec<(Date, u32, KbId)>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_software
                .entry(e.class.software.clone())
                .or_default()
                .push(i);
            let Some(host) = &e.class.host else { continue };
            let scope = (e.class.software.clone(), host.arch);
            if !e.supersedes.is_empty() {
                let edges = msrc_edges
                    .entry(scope)
                    .or_default()
                    .entry(e.kb)
                    .or_default();
                for s in &e.supersedes {
                    if !edges.contains(s) {
                        edges.push(*s);
                    }
                }
            }
            if e.track == Track::Cumulative && !e.wrong_branch {
                let date = kbs.get(&e.kb).map(|k| k.release_date).unwrap_or(Date::MIN);
                chain_members
                    .entry(ChainKey {
                        software: e.class.software.clone(),
                        host: host.software.clone(),
                        branch: Branch::of(host.build),
                        arch: host.arch,
                    })
                    .or_default()
                    .push((date, e.fixed_revision.unwrap_or(0), e.kb));
            }
        }

        // The implied cumulative order: within a chain, a later release (a higher revision
        // on the same day) contains every earlier one, whatever `Supercedence` says.
        let mut chains = Vec::new();
        let mut chain_positions: HashMap<Scope, HashMap<KbId, Vec<(usize, usize)>>> =
            HashMap::new();
        let mut chain_keys: Vec<ChainKey> = chain_members.keys().cloned().collect();
        chain_keys.sort_by(|a, b| {
            (&a.software, &a.host, a.branch, a.arch).cmp(&(&b.software, &b.host, b.branch, b.arch))
        });
        for key in chain_keys {
            let mut members = chain_members.remove(&key).unwrap_or_default();
            members.sort();
            let mut chain: Vec<KbId> = Vec::with_capacity(members.len());
            for (_, _, kb) in members {
                if !chain.contains(&kb) {
                    chain.push(kb);
                }
            }
            let idx = chains.len();
            let positions = chain_positions
                .entry((key.software.clone(), key.arch))
                .or_default();
            for (pos, kb) in chain.iter().enumerate() {
                positions.entry(*kb).or_default().push((idx, pos));
            }
            chains.push(chain);
        }

        let cve_addressed = addressed
            .into_iter()
            .map(|(k, v)| (k, v.len() as u32))
            .collect();

        Catalog {
            kbs,
            entries,
            by_software,
            cve_names,
            cve_addressed,
            msrc_edges,
            chains,
            chain_positions,
            max_cumulative,
            repairs,
            as_of,
            documents,
        }
    }

    pub fn kb(&self, kb: KbId) -> Option<&KbInfo> {
        self.kbs.get(&kb)
    }

    /// Every KB of the catalog with its release document.
    pub fn kb_infos(&self) -> impl Iterator<Item = &KbInfo> {
        self.kbs.values()
    }

    pub fn kb_count(&self) -> usize {
        self.kbs.len()
    }

    pub fn document_count(&self) -> usize {
        self.documents
    }

    pub fn as_of(&self) -> Option<Date> {
        self.as_of
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn entries_for(&self, software: &SoftwareId) -> impl Iterator<Item = &Entry> {
        self.by_software
            .get(software)
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i])
    }

    pub fn cve_name(&self, idx: u32) -> &str {
        &self.cve_names[idx as usize]
    }

    /// Distinct CVEs the KB fixes in any product of the software (MDE's `cveAddressed`).
    pub fn cve_addressed(&self, software: &SoftwareId, kb: KbId) -> u32 {
        self.cve_addressed
            .get(&(software.clone(), kb))
            .copied()
            .unwrap_or(0)
    }

    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// The highest cumulative revision the catalog knows for an OS branch.
    pub fn max_cumulative_revision(&self, os: &SoftwareId, branch: Branch) -> Option<u32> {
        self.max_cumulative.get(&(os.clone(), branch)).copied()
    }

    /// Every KB that the given KBs supersede, directly or transitively, in one software and
    /// architecture: MSRC's edges plus the implied cumulative order. The seeds themselves are
    /// included.
    pub fn superseded_by(
        &self,
        software: &SoftwareId,
        arch: Arch,
        seeds: impl IntoIterator<Item = KbId>,
    ) -> HashSet<KbId> {
        let scope = (software.clone(), arch);
        let edges = self.msrc_edges.get(&scope);
        let positions = self.chain_positions.get(&scope);
        let mut seen: HashSet<KbId> = HashSet::new();
        let mut queue: Vec<KbId> = Vec::new();
        for s in seeds {
            if seen.insert(s) {
                queue.push(s);
            }
        }
        while let Some(kb) = queue.pop() {
            if let Some(next) = edges.and_then(|e| e.get(&kb)) {
                for n in next {
                    if seen.insert(*n) {
                        queue.push(*n);
                    }
                }
            }
            if let Some(ps) = positions.and_then(|p| p.get(&kb)) {
                for &(chain, pos) in ps {
                    // Walking down a chain can stop at the first KB already seen: that KB's
                    // own predecessors are already queued.
                    for older in self.chains[chain][..pos].iter().rev() {
                        if !seen.insert(*older) {
                            break;
                        }
                        queue.push(*older);
                    }
                }
            }
        }
        seen
    }
}

/// A KB's release document: the one citing it for the most distinct vulnerabilities; ties
/// go to the later document. Microsoft revises old documents to cite newer KBs, so the first
/// document that mentions a KB is often not the one that released it.
fn release_documents(docs: &[CvrfDocument]) -> HashMap<KbId, usize> {
    let mut counts: HashMap<(KbId, usize), HashSet<&str>> = HashMap::new();
    for (i, doc) in docs.iter().enumerate() {
        for fix in &doc.fixes {
            counts.entry((fix.kb, i)).or_default().insert(&fix.cve);
        }
    }
    let mut best: HashMap<KbId, (usize, usize)> = HashMap::new();
    for ((kb, i), cves) in counts {
        let n = cves.len();
        let better = match best.get(&kb) {
            None => true,
            Some(&(bn, bi)) => {
                n > bn
                    || (n == bn
                        && (docs[i].initial_release, &docs[i].id)
                            > (docs[bi].initial_release, &docs[bi].id))
            }
        };
        if better {
            best.insert(kb, (n, i));
        }
    }
    best.into_iter().map(|(kb, (_, i))| (kb, i)).collect()
}
