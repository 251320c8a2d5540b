//! The compiled catalog: MSRC documents turned into per-(KB, product) entries with tracks,
//! fixed revisions, release documents, supersedence chains and repairs, ready for evaluation.
//! Immutable once built; a new import builds a new one.

use std::collections::{BTreeMap, BTreeSet};

// Fast, randomly seeded hashing: evaluation is mostly set and map lookups of KB numbers.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde::Serialize;
use time::Date;

use crate::cvrf::CvrfDocument;
use crate::product::{Arch, Normalized, ProductClass, ProductUpdates};
use crate::servicing::{self, Paths};
use crate::{Branch, KbId, ProductBuild, SoftwareId, WindowsBuild};

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
        if st.contains("securityonly") {
            return Track::SecurityOnly;
        }
        // "Servicing Stack Update", "Setup DU", "Standalone", "Alternate Cumulative" and the
        // like are never the month's rollup: keeping them out of the chain keeps them from
        // superseding it (a servicing-stack update can carry a higher revision than the LCU).
        const NOT_ROLLUPS: [&str; 6] = [
            "servicingstack",
            "setupdu",
            "standalone",
            "alternate",
            "other",
            "updatehistory",
        ];
        if NOT_ROLLUPS.iter().any(|n| st.contains(n)) {
            return Track::Standalone;
        }
        if st.contains("monthlyrollup")
            || st.contains("iecumulative")
            || st.contains("previewrollup")
        {
            return Track::Cumulative;
        }
        match &class.host {
            // From Windows 10 on, every Windows security update is the cumulative LCU,
            // and components that ship inside the OS (IE, EdgeHTML) ride on it.
            Some(host) if host.build >= 10240 => Track::Cumulative,
            _ => Track::Standalone,
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
    /// A cumulative update of a month in which the same product also got a hotpatch:
    /// hotpatch-enrolled machines take the hotpatch instead.
    pub replaced_by_hotpatch: bool,
    /// A standalone OS update (servicing stack, Secure Boot, pre-rollup Windows 7/8.1
    /// updates): not a rollup, but every later rollup of the branch supersedes it.
    pub below_rollups: bool,
    /// For products named without a host (SQL Server, Exchange, Office MSI): the product
    /// builds in FixedBuild (after repairs).
    pub product_builds: Vec<ProductBuild>,
    /// For products named without a host: the servicing paths the entry applies to
    /// (`Catalog::servicing_paths`); empty when the catalog cannot tell, then it applies on
    /// every path of its line.
    pub paths: Vec<u32>,
}

impl Entry {
    /// Whether rule b can judge the entry on a machine that reports its build: a FixedBuild
    /// revision on the host's branch, or, for a product named without a host, a FixedBuild on
    /// one of its servicing paths.
    pub fn has_build_evidence(&self, paths: &Paths) -> bool {
        self.fixed_revision.is_some()
            || (self.class.host.is_none()
                && self
                    .paths
                    .iter()
                    .any(|&p| self.product_build_on(paths, p).is_some()))
    }

    /// The entry's FixedBuild on a servicing path.
    pub fn product_build_on(&self, paths: &Paths, path: u32) -> Option<ProductBuild> {
        let p = paths.get(path);
        self.product_builds
            .iter()
            .filter(|b| b.major() == p.major && b.minor() == p.minor)
            .filter(|b| (p.low..=p.high).contains(&b.build()))
            .max()
            .copied()
    }
}

/// How the engine judges whether a (KB, product) pair's fix is present on a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Judged {
    /// Rule b: the machine's build against the KB's FixedBuild (the OS revision on the
    /// product's branch, or the product's own build on its servicing path). A machine that
    /// reports no build is judged as by [`Judged::UpdateList`].
    Build,
    /// Rules c and e only: an installed KB that is or supersedes it, or a complete list of
    /// installed updates that lacks it; without either the KB is unknown.
    UpdateList,
    /// Judged by the product's version, never by KB (Edge Chromium, Microsoft 365 Apps): no KB
    /// of it is ever reported.
    VersionFixed,
    /// Never evaluated: the product is out of scope or unmapped, the KB is cited only for an
    /// advisory, or its FixedBuild lies on another branch than the product's.
    NotEvaluated,
}

impl Judged {
    pub const ALL: [Judged; 4] = [
        Judged::Build,
        Judged::UpdateList,
        Judged::VersionFixed,
        Judged::NotEvaluated,
    ];

    /// How a (KB, product) pair is judged: from the product name's normalization and the
    /// catalog entry compiled for the pair ([`Catalog::entry`]), with the inputs evaluation
    /// uses (`Catalog::build` skips version-fixed products and advisory-only pairs; rule b
    /// reads `fixed_revision` and [`Entry::product_build_on`]).
    pub fn of(normalized: &Normalized, entry: Option<&Entry>, paths: &Paths) -> Judged {
        let Normalized::Mapped(class) = normalized else {
            return Judged::NotEvaluated;
        };
        if class.version_fixed {
            return Judged::VersionFixed;
        }
        match entry {
            None => Judged::NotEvaluated,
            Some(e) if e.wrong_branch => Judged::NotEvaluated,
            Some(e) if e.has_build_evidence(paths) => Judged::Build,
            Some(_) => Judged::UpdateList,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Judged::Build => "build",
            Judged::UpdateList => "update list",
            Judged::VersionFixed => "version-fixed",
            Judged::NotEvaluated => "not evaluated",
        }
    }
}

/// A defect in Microsoft's feed that the catalog works around.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// A cumulative update lists some versions of a servicing branch but omits a sibling
    /// version that the updates before and after it list: it applies through the branch.
    SiblingOmitted,
    /// A cumulative update's `Supercedence` does not name its predecessor in the chain (empty,
    /// or skipping a month): the implied cumulative order supplies the link.
    ChainLinkMissing,
    /// Two products of one line got each other's FixedBuild in one document (Exchange 2019
    /// CU13 and CU14 in 2024-Mar, SQL Server 2014 SP3 GDR and CU in 2023-Feb): the builds,
    /// not the product names, say which machines an update is for.
    SwappedFixedBuild,
    /// A product serviced per component names a FixedBuild off its own servicing path with
    /// no product to have swapped it with (Word 2016's KB5002662 names the Click-to-Run build
    /// 16.0.18526.20080): the build is not the product's and is not used.
    ForeignFixedBuild,
}

impl RepairKind {
    pub const ALL: [RepairKind; 5] = [
        RepairKind::WrongBranchFixedBuild,
        RepairKind::SiblingOmitted,
        RepairKind::ChainLinkMissing,
        RepairKind::SwappedFixedBuild,
        RepairKind::ForeignFixedBuild,
    ];

    /// The kind's name, as JSON spells it (`chainLinkMissing`).
    pub fn as_str(self) -> &'static str {
        match self {
            RepairKind::WrongBranchFixedBuild => "wrongBranchFixedBuild",
            RepairKind::SiblingOmitted => "siblingOmitted",
            RepairKind::ChainLinkMissing => "chainLinkMissing",
            RepairKind::SwappedFixedBuild => "swappedFixedBuild",
            RepairKind::ForeignFixedBuild => "foreignFixedBuild",
        }
    }
}

impl std::fmt::Display for RepairKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a KB is in a cumulative chain. Ordered so that, on the same day, the updates a rollup
/// contains sort before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Member {
    /// A Security Only update: the rollup of its month and every later one contain it, but it
    /// is an alternative to them, not something they replace on the machine's own track.
    SecurityOnly,
    /// A standalone OS update (servicing stack, Secure Boot): later rollups supersede it.
    Below,
    /// A rollup (LCU, Monthly Rollup, IE Cumulative): supersedes everything before it.
    Rollup,
}

/// The chains and closures of supersedence are kept per software and architecture.
type Scope = (SoftwareId, Arch);

/// One cumulative chain: a software's version line on one host OS, servicing branch and
/// architecture (.NET 4.8 and 4.8.1 get separate cumulative updates on the same Windows).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChainKey {
    software: SoftwareId,
    line: Option<String>,
    host: SoftwareId,
    branch: Branch,
    arch: Arch,
}

/// The entries of one software, indexed the way evaluation looks them up.
#[derive(Debug, Default)]
struct SoftwareEntries {
    all: Vec<usize>,
    /// Entries for products on a Windows host, by the host's branch and architecture.
    hosted: HashMap<(Branch, Arch), Vec<usize>>,
    /// Entries for products named without a host (Office, SQL Server, …).
    hostless: Vec<usize>,
    /// Every KB its evaluation can look at: its entries' KBs and every KB of its
    /// supersedence scopes (edges and chains, on every architecture).
    kbs: HashSet<KbId>,
    /// For a component on a Windows host (.NET Framework): the (host OS, branch) pairs on
    /// which none of its KBs is an OS update, where it is evaluated apart from the OS's own
    /// updates, with the OS facts it reads. (On early Windows 10 versions .NET's fixes
    /// shipped inside the OS's cumulative updates; later they are updates of their own.)
    component_apart_on: HashSet<(SoftwareId, Branch)>,
}

impl SoftwareEntries {
    fn apart(&self) -> bool {
        self.hosted.is_empty() && !self.hostless.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    kbs: HashMap<KbId, KbInfo>,
    entries: Vec<Entry>,
    by_software: HashMap<SoftwareId, SoftwareEntries>,
    cve_names: Vec<String>,
    cve_addressed: HashMap<(SoftwareId, KbId), u32>,
    /// MSRC's own `Supercedence` edges, newer → older.
    msrc_edges: HashMap<Scope, HashMap<KbId, Vec<KbId>>>,
    /// Cumulative chains, oldest first, with what each member is.
    chains: Vec<Vec<(KbId, Member)>>,
    /// For each KB of a scope, the chains it sits in and its position there.
    chain_positions: HashMap<Scope, HashMap<KbId, Vec<(usize, usize)>>>,
    /// Highest cumulative revision per (host OS, branch).
    max_cumulative: HashMap<(SoftwareId, Branch), u32>,
    repairs: Vec<Repair>,
    paths: Paths,
    /// Every operating system the catalog has updates for.
    os_software: BTreeSet<SoftwareId>,
    /// (component, OS, build, architecture) for which some component product is named on
    /// exactly that OS version.
    component_hosts: HashMap<SoftwareId, HashMap<SoftwareId, HashSet<(u32, Arch)>>>,
    /// Every KB the evaluation of an OS and the software it hosts can look at (see
    /// [`Catalog::evaluated_apart`]).
    os_group_kbs: HashSet<KbId>,
    as_of: Option<Date>,
    /// The catalog's "today": `as_of` when it is cut, else its newest KB's release date.
    newest_release: Option<Date>,
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

        // An update of a product named without a host that MSRC cites only for an advisory
        // (SharePoint 2019's KB5002650, a defense-in-depth update) is still a link of its
        // chain: the update after it supersedes what it superseded. (Windows updates cited
        // only by an advisory, such as Secure Boot DBX updates, are no links: they cover
        // nothing.)
        let mut advisory_links: HashMap<(SoftwareId, KbId), Vec<KbId>> = HashMap::new();
        for ((kb, _), a) in &acc {
            if a.cves.is_empty() && a.class.host.is_none() {
                advisory_links
                    .entry((a.class.software.clone(), *kb))
                    .or_default()
                    .extend(a.supersedes.iter().copied());
            }
        }
        for ((_, _), a) in acc.iter_mut() {
            if a.class.host.is_some() || a.cves.is_empty() {
                continue;
            }
            let mut queue: Vec<KbId> = a.supersedes.clone();
            let mut seen: HashSet<KbId> = queue.iter().copied().collect();
            while let Some(k) = queue.pop() {
                for &older in advisory_links
                    .get(&(a.class.software.clone(), k))
                    .into_iter()
                    .flatten()
                {
                    if seen.insert(older) {
                        a.supersedes.push(older);
                        queue.push(older);
                    }
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
                // Only an OS product's FixedBuild must lie on its branch; components on a
                // Windows (.NET, …) carry their own file versions there.
                let os_product = host.software == a.class.software;
                if os_product && !builds.is_empty() && builds.iter().all(|b| b.branch() != own) {
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
            let product_builds = if a.class.host.is_none() {
                a.fixed_builds
                    .iter()
                    .flat_map(|b| ProductBuild::all_in(b))
                    .collect()
            } else {
                Vec::new()
            };
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
                replaced_by_hotpatch: false,
                below_rollups: false,
                product_builds,
                paths: Vec::new(),
            });
        }

        add_branch_siblings(&mut entries, &mut addressed);

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

        // A product that got a hotpatch in a month: its cumulative update of that month is the
        // alternative that enrolled machines do not take.
        let release_doc = |kb: KbId| kbs.get(&kb).map(|k| k.document_id.clone());
        let hotpatch_months: HashSet<(String, String)> = entries
            .iter()
            .filter(|e| e.track == Track::Hotpatch)
            .filter_map(|e| Some((e.product_name.clone(), release_doc(e.kb)?)))
            .collect();
        for e in entries.iter_mut() {
            e.replaced_by_hotpatch = e.track == Track::Cumulative
                && release_doc(e.kb)
                    .is_some_and(|d| hotpatch_months.contains(&(e.product_name.clone(), d)));
        }

        demote_non_rollups(&mut entries, &kbs);
        let paths = servicing::assign(&mut entries, release_doc, &mut repairs);
        let os_software: BTreeSet<SoftwareId> = entries
            .iter()
            .filter_map(|e| e.class.host.as_ref())
            .map(|h| h.software.clone())
            .collect();
        let mut component_hosts: HashMap<SoftwareId, HashMap<SoftwareId, HashSet<(u32, Arch)>>> =
            HashMap::new();
        for e in entries.iter().filter(|e| !e.wrong_branch) {
            if let Some(h) = e
                .class
                .host
                .as_ref()
                .filter(|h| h.software != e.class.software)
            {
                component_hosts
                    .entry(e.class.software.clone())
                    .or_default()
                    .entry(h.software.clone())
                    .or_default()
                    .insert((h.build, h.arch));
            }
        }
        let component_links = servicing::missing_component_links(
            &entries,
            |kb| kbs.get(&kb).map(|k| k.release_date).unwrap_or(Date::MIN),
            &mut repairs,
        );
        let mut product_members: HashMap<ProductChainKey, Vec<(ProductBuild, Date, KbId)>> =
            HashMap::new();

        let mut by_software: HashMap<SoftwareId, SoftwareEntries> = HashMap::new();
        let mut msrc_edges: HashMap<Scope, HashMap<KbId, Vec<KbId>>> = HashMap::new();
        let mut chain_members: HashMap<ChainKey, Vec<(Date, u32, Member, KbId)>> = HashMap::new();
        // The versions (host builds) each cumulative update lists within its chain.
        let mut listed: HashMap<(ChainKey, KbId), BTreeSet<u32>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let index = by_software.entry(e.class.software.clone()).or_default();
            index.all.push(i);
            match &e.class.host {
                Some(h) => index
                    .hosted
                    .entry((Branch::of(h.build), h.arch))
                    .or_default()
                    .push(i),
                None => index.hostless.push(i),
            }
            let Some(host) = &e.class.host else {
                // A product named without a host has the same edges and chains on every
                // architecture.
                for arch in Arch::ALL {
                    add_edges(&mut msrc_edges, (e.class.software.clone(), arch), e);
                }
                let cumulative = match e.class.updates {
                    ProductUpdates::Standalone => continue,
                    ProductUpdates::Cumulative | ProductUpdates::CumulativePerRelease => true,
                    // A one-package product's updates (Word 2016) form one chain; the other
                    // components (the Office suite's many packages) are told apart only by
                    // `Supercedence`, so that no package hides another.
                    ProductUpdates::Components if e.class.package.is_some() => false,
                    ProductUpdates::Components => continue,
                };
                let date = kbs.get(&e.kb).map(|k| k.release_date).unwrap_or(Date::MIN);
                let on: Vec<Option<u32>> = if e.paths.is_empty() {
                    vec![None]
                } else {
                    e.paths.iter().copied().map(Some).collect()
                };
                for path in on {
                    // A cumulative product's path is one chain; a product serviced per
                    // component has a chain per component on each path.
                    if cumulative && path.is_none() {
                        continue;
                    }
                    let build = path
                        .and_then(|p| e.product_build_on(&paths, p))
                        .unwrap_or(ProductBuild([0; 4]));
                    product_members
                        .entry(ProductChainKey {
                            software: e.class.software.clone(),
                            line: e.class.version_line.clone(),
                            path,
                            package: e.class.package.clone(),
                        })
                        .or_default()
                        .push((build, date, e.kb));
                }
                continue;
            };
            let scope = (e.class.software.clone(), host.arch);
            add_edges(&mut msrc_edges, scope, e);
            let member = match e.track {
                Track::Cumulative => Some(Member::Rollup),
                Track::SecurityOnly => Some(Member::SecurityOnly),
                _ if e.below_rollups => Some(Member::Below),
                _ => None,
            };
            let rollup = member == Some(Member::Rollup);
            if let (Some(member), false) = (member, e.wrong_branch) {
                let date = kbs.get(&e.kb).map(|k| k.release_date).unwrap_or(Date::MIN);
                let key = ChainKey {
                    software: e.class.software.clone(),
                    line: e.class.version_line.clone(),
                    host: host.software.clone(),
                    branch: chain_branch(e),
                    arch: host.arch,
                };
                if rollup {
                    listed
                        .entry((key.clone(), e.kb))
                        .or_default()
                        .insert(host.build);
                }
                chain_members.entry(key).or_default().push((
                    date,
                    e.fixed_revision.unwrap_or(0),
                    member,
                    e.kb,
                ));
            }
        }

        // The implied cumulative order: within a chain, a later release (a higher revision
        // on the same day) contains every earlier one, whatever `Supercedence` says.
        let mut chains = Vec::new();
        let mut chain_link_reported: HashSet<(KbId, SoftwareId, Arch)> = HashSet::new();
        let mut chain_positions: HashMap<Scope, HashMap<KbId, Vec<(usize, usize)>>> =
            HashMap::new();
        let mut chain_keys: Vec<ChainKey> = chain_members.keys().cloned().collect();
        chain_keys.sort_by(|a, b| {
            (&a.software, &a.line, &a.host, a.branch, a.arch).cmp(&(
                &b.software,
                &b.line,
                &b.host,
                b.branch,
                b.arch,
            ))
        });
        for key in chain_keys {
            let mut members = chain_members.remove(&key).unwrap_or_default();
            members.sort();
            let mut chain: Vec<(KbId, Member)> = Vec::with_capacity(members.len());
            for (_, _, member, kb) in members {
                match chain.iter_mut().find(|(k, _)| *k == kb) {
                    Some(m) => m.1 = m.1.max(member),
                    None => chain.push((kb, member)),
                }
            }
            let rollups: Vec<KbId> = chain
                .iter()
                .filter(|m| m.1 == Member::Rollup)
                .map(|m| m.0)
                .collect();
            // Where MSRC's Supercedence of an OS update does not name its predecessor, the
            // implied order supplies the link: record it once per KB, OS and architecture.
            if key.software == key.host {
                for w in rollups.windows(3) {
                    let versions = |kb: KbId| listed.get(&(key.clone(), kb));
                    let (Some(before), Some(this), Some(after)) =
                        (versions(w[0]), versions(w[1]), versions(w[2]))
                    else {
                        continue;
                    };
                    for build in before.intersection(after) {
                        if !this.contains(build) {
                            repairs.push(Repair {
                                kind: RepairKind::SiblingOmitted,
                                kb: w[1],
                                product_name: format!(
                                    "{} build {build} {}",
                                    key.host.product_name(),
                                    key.arch.as_str()
                                ),
                                evidence: format!(
                                    "KB{} and KB{} list build {build} of branch {}; KB{} lists only {}",
                                    w[0],
                                    w[2],
                                    key.branch,
                                    w[1],
                                    this.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                                ),
                            });
                        }
                    }
                }
                let edges = msrc_edges.get(&(key.software.clone(), key.arch));
                for pair in rollups.windows(2) {
                    let (older, newer) = (pair[0], pair[1]);
                    let named = edges.and_then(|e| e.get(&newer));
                    if named.is_some_and(|s| s.contains(&older))
                        || !chain_link_reported.insert((newer, key.host.clone(), key.arch))
                    {
                        continue;
                    }
                    let said = named
                        .map(|s| {
                            s.iter()
                                .map(|k| format!("KB{k}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "nothing".into());
                    repairs.push(Repair {
                        kind: RepairKind::ChainLinkMissing,
                        kb: newer,
                        product_name: format!(
                            "{} branch {} {}",
                            key.host.product_name(),
                            key.branch,
                            key.arch.as_str()
                        ),
                        evidence: format!(
                            "Supercedence names {said}; the previous cumulative update of the chain is KB{older}"
                        ),
                    });
                }
            }
            let idx = chains.len();
            let positions = chain_positions
                .entry((key.software.clone(), key.arch))
                .or_default();
            for (pos, (kb, _)) in chain.iter().enumerate() {
                positions.entry(*kb).or_default().push((idx, pos));
            }
            chains.push(chain);
        }

        for (software, newer, older) in &component_links {
            for arch in Arch::ALL {
                let of_kb = msrc_edges
                    .entry((software.clone(), arch))
                    .or_default()
                    .entry(*newer)
                    .or_default();
                if !of_kb.contains(older) {
                    of_kb.push(*older);
                }
            }
        }
        // Products named without a host: within a chain, an update with a higher FixedBuild (a
        // later release, for updates without one) contains the earlier ones.
        let mut product_keys: Vec<ProductChainKey> = product_members.keys().cloned().collect();
        product_keys.sort();
        for key in product_keys {
            let mut members = product_members.remove(&key).unwrap_or_default();
            members.sort();
            let mut chain: Vec<(KbId, Member)> = Vec::with_capacity(members.len());
            for (_, _, kb) in members {
                if !chain.iter().any(|(k, _)| *k == kb) {
                    chain.push((kb, Member::Rollup));
                }
            }
            let idx = chains.len();
            for arch in Arch::ALL {
                let positions = chain_positions
                    .entry((key.software.clone(), arch))
                    .or_default();
                for (pos, (kb, _)) in chain.iter().enumerate() {
                    positions.entry(*kb).or_default().push((idx, pos));
                }
            }
            chains.push(chain);
        }

        for (scope, edges) in &msrc_edges {
            if let Some(index) = by_software.get_mut(&scope.0) {
                for (newer, older) in edges {
                    index.kbs.insert(*newer);
                    index.kbs.extend(older.iter().copied());
                }
            }
        }
        for (scope, positions) in &chain_positions {
            if let Some(index) = by_software.get_mut(&scope.0) {
                index.kbs.extend(positions.keys().copied());
            }
        }
        for e in &entries {
            if let Some(index) = by_software.get_mut(&e.class.software) {
                index.kbs.insert(e.kb);
            }
        }
        // Components whose updates are their own: no KB of theirs is an OS update (Internet
        // Explorer on Windows 10 rides the LCU and stays with the OS).
        let mut os_kbs: HashMap<(SoftwareId, Branch), HashSet<KbId>> = HashMap::new();
        for e in &entries {
            if let Some(h) = e
                .class
                .host
                .as_ref()
                .filter(|h| h.software == e.class.software)
            {
                os_kbs
                    .entry((h.software.clone(), Branch::of(h.build)))
                    .or_default()
                    .insert(e.kb);
            }
        }
        for (software, index) in by_software.iter_mut() {
            if !index.hostless.is_empty() || os_software.contains(software) {
                continue;
            }
            let mut shares: HashMap<(SoftwareId, Branch), bool> = HashMap::new();
            for &i in &index.all {
                let e = &entries[i];
                let Some(h) = &e.class.host else { continue };
                let key = (h.software.clone(), Branch::of(h.build));
                let shared = os_kbs.get(&key).is_some_and(|k| k.contains(&e.kb));
                *shares.entry(key).or_default() |= shared;
            }
            index.component_apart_on = shares
                .into_iter()
                .filter(|(_, shared)| !shared)
                .map(|(key, _)| key)
                .collect();
        }
        // The OS part keeps the KBs of every software it may evaluate (a component is
        // evaluated apart only on some OS versions).
        let os_group_kbs = by_software
            .values()
            .filter(|s| !s.apart())
            .flat_map(|s| s.kbs.iter().copied())
            .collect();

        let cve_addressed = addressed
            .into_iter()
            .map(|(k, v)| (k, v.len() as u32))
            .collect();

        let newest_release = as_of.or_else(|| kbs.values().map(|k| k.release_date).max());
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
            paths,
            component_hosts,
            os_group_kbs,
            os_software,
            as_of,
            newest_release,
            documents,
        }
    }

    /// Whether a software is evaluated apart from the OS: every product of it is named
    /// without a Windows host (Office MSI, SQL Server, Exchange, SharePoint, …), so its
    /// verdicts read only its own build, its own updates and the machine's architecture,
    /// never the OS build or the OS's updates.
    pub fn evaluated_apart(&self, software: &SoftwareId) -> bool {
        self.by_software.get(software).is_some_and(|s| s.apart())
    }

    /// Whether a component on a Windows host is evaluated apart from the OS's own updates:
    /// none of its KBs is an OS update (.NET Framework; not Internet Explorer on Windows 10,
    /// whose updates are the OS's cumulative updates). Its verdicts read the OS facts (build,
    /// revision, architecture), its own version, installed updates and list scope.
    pub fn component_apart(&self, software: &SoftwareId, os: &SoftwareId, branch: Branch) -> bool {
        self.by_software.get(software).is_some_and(|s| {
            s.component_apart_on
                .iter()
                .any(|(o, b)| *b == branch && o == os)
        })
    }

    /// Whether the evaluation of a software evaluated apart can look at a KB: one of its
    /// own, or one its supersedence scopes name.
    pub fn is_kb_of(&self, software: &SoftwareId, kb: KbId) -> bool {
        self.by_software
            .get(software)
            .is_some_and(|s| s.kbs.contains(&kb))
    }

    /// Every KB [`Catalog::is_kb_of`] says the evaluation of a software can look at, when the
    /// catalog has the software.
    pub(crate) fn kbs_of(&self, software: &SoftwareId) -> Option<&HashSet<KbId>> {
        self.by_software.get(software).map(|s| &s.kbs)
    }

    /// Whether the evaluation of the OS and the software it hosts can look at a KB.
    pub fn is_os_group_kb(&self, kb: KbId) -> bool {
        self.os_group_kbs.contains(&kb)
    }

    /// Every operating system the catalog has updates for.
    pub fn os_software(&self) -> &BTreeSet<SoftwareId> {
        &self.os_software
    }

    /// Whether some product of a component (.NET Framework, Internet Explorer) is named on
    /// exactly this OS version: then only those products apply to it, not its siblings'.
    pub fn names_component_host(
        &self,
        component: &SoftwareId,
        os: &SoftwareId,
        build: u32,
        arch: Arch,
    ) -> bool {
        self.component_hosts
            .get(component)
            .and_then(|by_os| by_os.get(os))
            .is_some_and(|hosts| hosts.contains(&(build, arch)))
    }

    /// The servicing paths of products named without a Windows host.
    pub fn servicing_paths(&self) -> &Paths {
        &self.paths
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

    /// The day the catalog stands on: its cut date, or its newest KB's release. End of
    /// servicing is judged on that day.
    pub fn newest_release(&self) -> Option<Date> {
        self.newest_release
    }

    pub fn as_of(&self) -> Option<Date> {
        self.as_of
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of one (KB, product name) pair; `None` when the catalog does not evaluate the
    /// pair (a product not mapped or version-fixed, a KB cited only for advisories).
    pub fn entry(&self, kb: KbId, product_name: &str) -> Option<&Entry> {
        // Entries are built in (KB, product name) order.
        self.entries
            .binary_search_by(|e| (e.kb, e.product_name.as_str()).cmp(&(kb, product_name)))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn entries_for(&self, software: &SoftwareId) -> impl Iterator<Item = &Entry> {
        self.by_software
            .get(software)
            .into_iter()
            .flat_map(|s| s.all.iter())
            .map(|&i| &self.entries[i])
    }

    /// The entries of a software that can apply on a machine of this branch and architecture:
    /// products hosted there, and products named without a host.
    pub fn candidate_entries(
        &self,
        software: &SoftwareId,
        branch: Branch,
        arch: Arch,
    ) -> impl Iterator<Item = &Entry> {
        self.by_software
            .get(software)
            .into_iter()
            .flat_map(move |s| {
                s.hosted
                    .get(&(branch, arch))
                    .into_iter()
                    .flatten()
                    .chain(s.hostless.iter())
            })
            .map(|&i| &self.entries[i])
    }

    /// How `from` supersedes `to` in a software and architecture: the KBs of one shortest
    /// path, `from` first and `to` last. `None` when it does not.
    pub fn supersedence_path(
        &self,
        software: &SoftwareId,
        arch: Arch,
        from: KbId,
        to: KbId,
    ) -> Option<Vec<KbId>> {
        let scope = (software.clone(), arch);
        let edges = self.msrc_edges.get(&scope);
        let positions = self.chain_positions.get(&scope);
        let mut parent: HashMap<KbId, KbId> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([from]);
        parent.insert(from, from);
        while let Some(kb) = queue.pop_front() {
            if kb == to {
                let mut path = vec![to];
                let mut cur = to;
                while cur != from {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return Some(path);
            }
            let msrc = edges
                .and_then(|e| e.get(&kb))
                .into_iter()
                .flatten()
                .copied();
            // In a chain a rollup steps to its immediate predecessor and to the previous
            // rollup: paths stay short and readable.
            let chain = positions
                .and_then(|p| p.get(&kb))
                .into_iter()
                .flatten()
                .filter(|&&(c, pos)| self.chains[c][pos].1 == Member::Rollup)
                .flat_map(|&(c, pos)| {
                    let before = &self.chains[c][..pos];
                    let previous = before.last().map(|m| m.0);
                    let previous_rollup = before
                        .iter()
                        .rev()
                        .find(|m| m.1 == Member::Rollup)
                        .map(|m| m.0);
                    previous.into_iter().chain(previous_rollup)
                });
            for next in msrc.chain(chain) {
                if let std::collections::hash_map::Entry::Vacant(v) = parent.entry(next) {
                    v.insert(kb);
                    queue.push_back(next);
                }
            }
        }
        None
    }

    /// How many distinct CVEs the catalog knows (CVE indexes are below this).
    pub fn cve_count(&self) -> usize {
        self.cve_names.len()
    }

    pub fn cve_name(&self, idx: u32) -> &str {
        &self.cve_names[idx as usize]
    }

    /// Distinct CVEs (indexes into [`Catalog::cve_name`]) the KB fixes in any product of any
    /// of the software: MDE's `cveAddressed` of one machine, over the software it misses the
    /// KB for.
    pub fn cves_fixed<'a>(
        &self,
        software: impl IntoIterator<Item = &'a SoftwareId>,
        kb: KbId,
    ) -> BTreeSet<u32> {
        software
            .into_iter()
            .flat_map(|s| self.entries_for(s))
            .filter(|e| e.kb == kb)
            .flat_map(|e| e.cves.iter().copied())
            .collect()
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
        self.closure(software, arch, seeds, true, true)
    }

    /// Every KB that some *other* of the given KBs supersedes: a seed is in the answer only
    /// when another seed supersedes it. One pass, whatever the number of seeds. Security Only
    /// updates are left out: a rollup contains them but does not replace them on a machine
    /// that follows the Security Only track (the engine chooses between such alternatives).
    pub fn superseded_by_another(
        &self,
        software: &SoftwareId,
        arch: Arch,
        seeds: impl IntoIterator<Item = KbId>,
    ) -> HashSet<KbId> {
        self.closure(software, arch, seeds, false, false)
    }

    fn closure(
        &self,
        software: &SoftwareId,
        arch: Arch,
        seeds: impl IntoIterator<Item = KbId>,
        include_seeds: bool,
        security_only: bool,
    ) -> HashSet<KbId> {
        let scope = (software.clone(), arch);
        let edges = self.msrc_edges.get(&scope);
        let positions = self.chain_positions.get(&scope);
        let mut seen: HashSet<KbId> = HashSet::new();
        let mut queue: Vec<KbId> = Vec::new();
        let expand = |kb: KbId, seen: &mut HashSet<KbId>, queue: &mut Vec<KbId>| {
            if let Some(next) = edges.and_then(|e| e.get(&kb)) {
                for n in next {
                    if seen.insert(*n) {
                        queue.push(*n);
                    }
                }
            }
            if let Some(ps) = positions.and_then(|p| p.get(&kb)) {
                for &(chain, pos) in ps {
                    if self.chains[chain][pos].1 != Member::Rollup {
                        continue;
                    }
                    // Walking down a chain can stop at the first rollup already seen: its own
                    // predecessors are queued or done.
                    for &(older, member) in self.chains[chain][..pos].iter().rev() {
                        if member == Member::SecurityOnly && !security_only {
                            continue;
                        }
                        if seen.insert(older) {
                            queue.push(older);
                        } else if member == Member::Rollup {
                            break;
                        }
                    }
                }
            }
        };
        for s in seeds {
            if include_seeds {
                if seen.insert(s) {
                    queue.push(s);
                }
            } else {
                expand(s, &mut seen, &mut queue);
            }
        }
        while let Some(kb) = queue.pop() {
            expand(kb, &mut seen, &mut queue);
        }
        seen
    }
}

/// A cumulative chain of a product named without a host: its line, servicing path and, for
/// a one-package product serviced per component, the package.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ProductChainKey {
    software: SoftwareId,
    line: Option<String>,
    path: Option<u32>,
    package: Option<String>,
}

/// The branch a hosted entry's chain is kept on. An OS update applies across its servicing
/// branch. A component's updates are kept per OS version: Microsoft ships different .NET
/// Framework KBs for Windows 10 21H2 and 22H2 in the same month (KB5034274, KB5034275), and
/// each version's updates form their own chain.
fn chain_branch(e: &Entry) -> Branch {
    match &e.class.host {
        Some(h) if h.software == e.class.software => Branch::of(h.build),
        Some(h) => Branch(h.build),
        None => Branch(0),
    }
}

/// Records an entry's `Supercedence` edges in a scope.
fn add_edges(edges: &mut HashMap<Scope, HashMap<KbId, Vec<KbId>>>, scope: Scope, e: &Entry) {
    if e.supersedes.is_empty() {
        return;
    }
    let of_kb = edges.entry(scope).or_default().entry(e.kb).or_default();
    for s in &e.supersedes {
        if !of_kb.contains(s) {
            of_kb.push(*s);
        }
    }
}

/// Servicing-stack updates, Secure Boot DBX updates and the like carry SubType "Security
/// Update" on Windows 10+ products just as the cumulative update does, but are not rollups. In each chain and month, the cumulative update is the one with a FixedBuild on
/// the branch (several when Microsoft shipped out-of-band ones); where no update of that month
/// has a build, the one fixing the most CVEs. The others are standalone updates.
/// Semi-annual channel servers that share a servicing branch. Each is its own software in
/// MDE (`windows_server_2004`, `windows_server_20h2`), but they share a core OS with
/// identical system files and take the same cumulative packages, as Windows 10 2004 and 20H2
/// do under one id (Microsoft: "Windows Server, version 20H2 … shares a common core operating
/// system and an identical set of system files" with version 2004; likewise 1909 with 1903).
const BRANCH_SIBLINGS: [[&str; 2]; 2] = [
    [
        "microsoft-_-windows_server_1903",
        "microsoft-_-windows_server_1909",
    ],
    [
        "microsoft-_-windows_server_2004",
        "microsoft-_-windows_server_20h2",
    ],
];

/// Gives each OS update of a semi-annual server the entries its branch siblings would have:
/// an update Microsoft lists for Server 20H2 only (after 2004 left servicing) applies to a
/// Server 2004 machine through the branch, as the same update does to a Windows 10 2004
/// machine. The sibling's entry keeps MSRC's product name, so an explanation shows which
/// product the update was listed for.
fn add_branch_siblings(
    entries: &mut Vec<Entry>,
    addressed: &mut HashMap<(SoftwareId, KbId), BTreeSet<u32>>,
) {
    let present: HashSet<(KbId, SoftwareId, Arch)> = entries
        .iter()
        .filter_map(|e| Some((e.kb, e.class.software.clone(), e.class.host.as_ref()?.arch)))
        .collect();
    let mut twins = Vec::new();
    for e in entries.iter() {
        let Some(host) = e
            .class
            .host
            .as_ref()
            .filter(|h| h.software == e.class.software)
        else {
            continue;
        };
        let Some(group) = BRANCH_SIBLINGS
            .iter()
            .find(|g| g.contains(&host.software.as_str()))
        else {
            continue;
        };
        for sibling in group.iter().filter(|s| **s != host.software.as_str()) {
            let Ok(software) = SoftwareId::parse(sibling) else {
                continue;
            };
            if present.contains(&(e.kb, software.clone(), host.arch)) {
                continue;
            }
            let mut twin = e.clone();
            twin.class.software = software.clone();
            if let Some(h) = twin.class.host.as_mut() {
                h.software = software;
            }
            twins.push(twin);
        }
    }
    for twin in &twins {
        addressed
            .entry((twin.class.software.clone(), twin.kb))
            .or_default()
            .extend(twin.cves.iter().copied());
    }
    entries.extend(twins);
}

fn demote_non_rollups(entries: &mut [Entry], kbs: &HashMap<KbId, KbInfo>) {
    type Month = (SoftwareId, Option<String>, SoftwareId, Branch, Arch, String);
    let mut months: HashMap<Month, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if e.track != Track::Cumulative || e.wrong_branch {
            continue;
        }
        let (Some(host), Some(info)) = (&e.class.host, kbs.get(&e.kb)) else {
            continue;
        };
        months
            .entry((
                e.class.software.clone(),
                e.class.version_line.clone(),
                host.software.clone(),
                chain_branch(e),
                host.arch,
                info.document_id.clone(),
            ))
            .or_default()
            .push(i);
    }
    let mut demote = Vec::new();
    for members in months.values() {
        let kbs_of_month: BTreeSet<KbId> = members.iter().map(|&i| entries[i].kb).collect();
        if kbs_of_month.len() < 2 {
            continue;
        }
        let with_build: BTreeSet<KbId> = members
            .iter()
            .filter(|&&i| entries[i].fixed_revision.is_some())
            .map(|&i| entries[i].kb)
            .collect();
        let keep: BTreeSet<KbId> = if with_build.is_empty() {
            let mut cves: BTreeMap<KbId, usize> = BTreeMap::new();
            for &i in members {
                *cves.entry(entries[i].kb).or_default() += entries[i].cves.len();
            }
            cves.into_iter()
                .max_by_key(|(kb, n)| (*n, *kb))
                .map(|(kb, _)| kb)
                .into_iter()
                .collect()
        } else {
            with_build
        };
        demote.extend(
            members
                .iter()
                .copied()
                .filter(|&i| !keep.contains(&entries[i].kb)),
        );
    }
    for i in demote {
        entries[i].track = Track::Standalone;
    }
    // A month can keep several updates with a build (out-of-band cumulative updates), but one
    // below the month's highest build whose Supercedence names no rollup of its chain
    // continues another lineage: the Secure Boot DBX update KB5012170 carries the August 2022 LCU's
    // FixedBuild 10.0.17763.3284 on Windows Server 2019 and supersedes only the earlier DBX
    // update KB4535680. It is no cumulative update and covers none.
    // A month's chain: the month key without its document.
    let chain_of = |m: &Month| -> Month {
        (
            m.0.clone(),
            m.1.clone(),
            m.2.clone(),
            m.3,
            m.4,
            String::new(),
        )
    };
    let mut rollups: HashSet<(Month, KbId)> = HashSet::new();
    for (m, members) in &months {
        let chain = chain_of(m);
        for &i in members {
            if entries[i].track == Track::Cumulative {
                rollups.insert((chain.clone(), entries[i].kb));
            }
        }
    }
    let mut demote = Vec::new();
    for (m, members) in &months {
        let chain = chain_of(m);
        let kept: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| entries[i].track == Track::Cumulative)
            .collect();
        if kept.len() < 2 {
            continue;
        }
        // The month's highest build is its cumulative update in any case.
        let top = kept.iter().filter_map(|&i| entries[i].fixed_revision).max();
        demote.extend(kept.into_iter().filter(|&i| {
            let s = &entries[i].supersedes;
            entries[i].fixed_revision < top
                && !s.is_empty()
                && !s.iter().any(|k| rollups.contains(&(chain.clone(), *k)))
        }));
    }
    for i in demote {
        entries[i].track = Track::Standalone;
    }
    // Every standalone update of an OS (servicing stack, Secure Boot DBX, and the individual
    // updates of Windows 7/8.1-era systems before rollups began in October 2016) sits below
    // the rollups that come after it: Microsoft folded earlier fixes into the rollups, and
    // Windows Update no longer offers them to a machine that has a later rollup.
    for e in entries.iter_mut() {
        if let Some(host) = &e.class.host {
            e.below_rollups = e.track == Track::Standalone && host.software == e.class.software;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_kinds_are_spelled_as_json_spells_them() {
        // A new kind must be added to `ALL`: this match stops compiling until it is.
        let listed = |k: RepairKind| match k {
            RepairKind::WrongBranchFixedBuild
            | RepairKind::SiblingOmitted
            | RepairKind::ChainLinkMissing
            | RepairKind::SwappedFixedBuild
            | RepairKind::ForeignFixedBuild => RepairKind::ALL.contains(&k),
        };
        for k in RepairKind::ALL {
            assert!(listed(k));
            assert_eq!(
                serde_json::to_value(k).unwrap_or_default(),
                serde_json::json!(k.as_str())
            );
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(RepairKind::ChainLinkMissing.to_string(), "chainLinkMissing");
    }
}
