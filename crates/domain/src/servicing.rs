//! Servicing paths of products named without a Windows host (SQL Server, Exchange, SharePoint,
//! Office MSI): which FixedBuilds of a version line belong together, which path a machine's
//! build is on, and the repair of FixedBuilds that MSRC put on the wrong path.

use std::collections::{BTreeMap, BTreeSet};

// Fast, randomly seeded hashing: evaluation is mostly set and map lookups of KB numbers.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde::Serialize;
use time::Date;

use crate::catalog::{Entry, Repair, RepairKind};
use crate::product::ProductUpdates;
use crate::{KbId, ProductBuild, SoftwareId};

/// For a product whose paths are ranges (SQL Server), builds of one line whose third parts lie
/// closer than this are one servicing path: SQL Server 2019's GDR updates are 15.0.2070–2170
/// and its CU updates 15.0.4236–4470, SQL Server 2014 SP3's 12.0.6169–6179 and 12.0.6439–6449;
/// within a path consecutive updates are at most a few dozen builds apart.
const PATH_GAP: u32 = 100;

/// For other products (Office MSI, SharePoint) a line is one path, but MSRC sometimes names a
/// build of another product for one (Word 2016's KB5002662: the Click-to-Run build
/// 16.0.18526.20080 beside MSI builds 16.0.4966–5556): builds farther apart than this are on
/// different paths, and the odd one is found out. SharePoint Server Subscription Edition's
/// feature updates move its builds by about 600 (16.0.14326 … 16.0.19725).
const LINE_GAP: u32 = 1000;

/// A servicing path: the builds of one version line that take the same updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicingPath {
    pub software: SoftwareId,
    pub line: Option<String>,
    pub major: u32,
    pub minor: u32,
    /// Lowest and highest third part of the FixedBuilds on the path.
    pub low: u32,
    pub high: u32,
    /// The newest FixedBuild on the path.
    pub newest: ProductBuild,
    /// How the path was told apart: by range, or by the exact release (an Exchange CU).
    pub exact: bool,
}

impl ServicingPath {
    fn contains(&self, b: &ProductBuild) -> bool {
        b.major() == self.major
            && b.minor() == self.minor
            && (self.low..=self.high).contains(&b.build())
    }

    /// How far a build is from the path, in third parts; `None` for another major.minor.
    fn distance(&self, b: &ProductBuild) -> Option<u32> {
        if b.major() != self.major || b.minor() != self.minor {
            return None;
        }
        let t = b.build();
        Some(if t < self.low {
            self.low - t
        } else {
            t.saturating_sub(self.high)
        })
    }

    /// A short description for explanations: `15.2.1544.x` or `15.0.2070–2170.x`.
    pub fn describe(&self) -> String {
        if self.low == self.high {
            format!("{}.{}.{}.x", self.major, self.minor, self.low)
        } else {
            format!("{}.{}.{}–{}.x", self.major, self.minor, self.low, self.high)
        }
    }
}

/// Every servicing path of the catalog, indexed by software.
#[derive(Debug, Default)]
pub struct Paths {
    paths: Vec<ServicingPath>,
    by_software: HashMap<SoftwareId, Vec<u32>>,
}

impl Paths {
    pub fn get(&self, id: u32) -> &ServicingPath {
        &self.paths[id as usize]
    }

    /// The path a machine's build of a software is on: the path holding it, else (for paths
    /// told apart by range) the nearest one of the same major.minor, so a SQL Server 2019 at
    /// RTM 15.0.2000.5 is on the GDR path and one at CU1 15.0.4003 on the CU path. An exact
    /// release (an Exchange CU) the catalog has no update for is on no path.
    pub fn locate(&self, software: &SoftwareId, build: &ProductBuild) -> Option<u32> {
        let (id, distance) = self.nearest(software, build)?;
        (distance == 0 || !self.get(id).exact).then_some(id)
    }

    /// The version line of a build, when the catalog's builds tell it: the line of the
    /// nearest path of the same major.minor (SQL Server 15.0 is 2019; SharePoint 16.0.10xxx
    /// is 2019 and 16.0.4xxx 2016).
    pub fn line_of(&self, software: &SoftwareId, build: &ProductBuild) -> Option<&str> {
        let (id, _) = self.nearest(software, build)?;
        self.get(id).line.as_deref()
    }

    fn nearest(&self, software: &SoftwareId, build: &ProductBuild) -> Option<(u32, u32)> {
        self.by_software
            .get(software)?
            .iter()
            .filter_map(|&id| Some((self.get(id).distance(build)?, id)))
            .min()
            .map(|(d, id)| (id, d))
    }
}

type LineKey = (SoftwareId, Option<String>);

/// The part of a servicing label that names the path: SQL Server's "(CU 16)" and "(CU 18)"
/// updates are both on the CU path, while Exchange's "cumulative update 13" is its own.
fn path_label(servicing: Option<&str>) -> String {
    let s = servicing.unwrap_or("").trim();
    match s.rfind("cu") {
        Some(i)
            if s[i + 2..].trim().bytes().all(|b| b.is_ascii_digit())
                && (i == 0 || s.as_bytes()[i - 1] == b' ') =>
        {
            format!("{}cu", &s[..i])
        }
        _ => s.to_string(),
    }
}

/// Finds the servicing paths of every product named without a host, puts each entry on the
/// paths of its FixedBuilds (repairing builds MSRC swapped between two products of one line)
/// and, for entries without a FixedBuild, on the path of the updates that supersede it or
/// the one its servicing label belongs to.
pub(crate) fn assign(
    entries: &mut [Entry],
    release_doc: impl Fn(KbId) -> Option<String>,
    repairs: &mut Vec<Repair>,
) -> Paths {
    let product = |e: &Entry| e.class.host.is_none() && !e.class.version_fixed;
    // Builds per line and major.minor.
    let mut builds: BTreeMap<(LineKey, u32, u32), BTreeSet<u32>> = BTreeMap::new();
    let mut kind: HashMap<SoftwareId, ProductUpdates> = HashMap::new();
    for e in entries.iter().filter(|e| product(e)) {
        kind.insert(e.class.software.clone(), e.class.updates);
        for b in &e.product_builds {
            builds
                .entry((
                    (e.class.software.clone(), e.class.version_line.clone()),
                    b.major(),
                    b.minor(),
                ))
                .or_default()
                .insert(b.build());
        }
    }
    let mut paths = Paths::default();
    for (((software, line), major, minor), thirds) in builds {
        let updates = kind.get(&software).copied().unwrap_or_default();
        let exact = updates == ProductUpdates::CumulativePerRelease;
        let gap = if updates == ProductUpdates::Cumulative {
            PATH_GAP
        } else {
            LINE_GAP
        };
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for t in thirds {
            match runs.last_mut() {
                Some((_, high)) if !exact && t - *high <= gap => *high = t,
                _ => runs.push((t, t)),
            }
        }
        for (low, high) in runs {
            let id = paths.paths.len() as u32;
            paths.paths.push(ServicingPath {
                software: software.clone(),
                line: line.clone(),
                major,
                minor,
                low,
                high,
                newest: ProductBuild([major, minor, low, 0]),
                exact,
            });
            paths
                .by_software
                .entry(software.clone())
                .or_default()
                .push(id);
        }
    }
    let path_of = |paths: &Paths, e: &Entry, b: &ProductBuild| -> Option<u32> {
        paths
            .by_software
            .get(&e.class.software)?
            .iter()
            .copied()
            .find(|&id| {
                let p = paths.get(id);
                p.line == e.class.version_line && p.contains(b)
            })
    };
    for e in entries.iter_mut().filter(|e| product(e)) {
        let mut ids: Vec<u32> = e
            .product_builds
            .iter()
            .filter_map(|b| path_of(&paths, e, b))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        e.paths = ids;
    }

    // The paths each servicing label lies on, by entry.
    let mut votes: HashMap<(LineKey, String), BTreeMap<u32, usize>> = HashMap::new();
    for e in entries.iter().filter(|e| product(e) && e.paths.len() == 1) {
        *votes
            .entry((line_key(e), path_label(e.class.servicing.as_deref())))
            .or_default()
            .entry(e.paths[0])
            .or_default() += 1;
    }
    let mut with_build: HashMap<(LineKey, KbId), Vec<u32>> = HashMap::new();
    for e in entries.iter().filter(|e| product(e)) {
        with_build
            .entry((line_key(e), e.kb))
            .or_default()
            .extend(e.paths.iter().copied());
    }
    // Where an entry's build should lie: on the path of the updates it supersedes, else on
    // the path its servicing label mostly lies on (its own vote left out), else on any path
    // that label lies on.
    let expected = |e: &Entry| -> BTreeSet<u32> {
        let superseded: BTreeSet<u32> = e
            .supersedes
            .iter()
            .filter_map(|k| with_build.get(&(line_key(e), *k)))
            .flatten()
            .copied()
            .collect();
        if !superseded.is_empty() {
            return superseded;
        }
        let Some(v) = votes.get(&(line_key(e), path_label(e.class.servicing.as_deref()))) else {
            return BTreeSet::new();
        };
        let others: BTreeMap<u32, usize> = v
            .iter()
            .map(|(p, n)| (*p, n - usize::from(e.paths == [*p])))
            .filter(|(_, n)| *n > 0)
            .collect();
        let best = others.values().max().copied().unwrap_or(0);
        let top: BTreeSet<u32> = others
            .iter()
            .filter(|(_, n)| **n == best)
            .map(|(p, _)| *p)
            .collect();
        if top.len() == 1 {
            top
        } else {
            others.keys().copied().collect()
        }
    };
    let home = |e: &Entry| -> Option<u32> {
        let v = votes.get(&(line_key(e), path_label(e.class.servicing.as_deref())))?;
        let best = *v.values().max()?;
        let mut top = v.iter().filter(|(_, n)| **n == best);
        let (id, _) = top.next()?;
        top.next().is_none().then_some(*id)
    };

    // Swapped FixedBuilds: in one document, product A's build lies where B's should and B's
    // where A's should (SQL Server 2014 SP3 in 2023-Feb: the GDR update got the CU build;
    // Exchange 2019 in 2024-Mar: CU14 got CU13's build). The builds, not the names, are
    // swapped. A build of a product serviced per component that lies off its path with no
    // such partner is not the product's (Word 2016's KB5002662 lists the Click-to-Run build
    // 16.0.18526.20080): it is dropped.
    let misplaced: Vec<(usize, BTreeSet<u32>)> = (0..entries.len())
        .filter(|&i| product(&entries[i]) && entries[i].paths.len() == 1)
        .filter_map(|i| {
            let want = expected(&entries[i]);
            let on = entries[i].paths[0];
            (!want.is_empty() && !want.contains(&on) && home(&entries[i]) != Some(on))
                .then_some((i, want))
        })
        .collect();
    let words = |name: &str| -> BTreeSet<String> { name.split(' ').map(str::to_string).collect() };
    let mut swapped: HashSet<usize> = HashSet::new();
    for (i, want_i) in &misplaced {
        let i = *i;
        if swapped.contains(&i) {
            continue;
        }
        let e = &entries[i];
        let doc = release_doc(e.kb);
        let partner = misplaced
            .iter()
            .filter(|(j, want_j)| {
                let f = &entries[*j];
                *j != i
                    && !swapped.contains(j)
                    && line_key(f) == line_key(e)
                    && want_i.contains(&f.paths[0])
                    && want_j.contains(&e.paths[0])
                    && release_doc(f.kb) == doc
            })
            .max_by_key(|(j, _)| {
                let f = &entries[*j];
                (
                    f.kb == e.kb,
                    words(&f.product_name)
                        .intersection(&words(&e.product_name))
                        .count(),
                    std::cmp::Reverse(*j),
                )
            })
            .map(|(j, _)| *j);
        let Some(j) = partner else { continue };
        swapped.extend([i, j]);
        let (a, b) = (i.min(j), i.max(j));
        let (left, right) = entries.split_at_mut(b);
        let (x, y) = (&mut left[a], &mut right[0]);
        for (this, other) in [(&*x, &*y), (&*y, &*x)] {
            repairs.push(Repair {
                kind: RepairKind::SwappedFixedBuild,
                kb: this.kb,
                product_name: this.product_name.clone(),
                evidence: format!(
                    "MSRC gives it FixedBuild {} (on {}) and {} (KB{}) FixedBuild {} (on {}): the builds are swapped",
                    this.fixed_builds.join(", "),
                    paths.get(this.paths[0]).describe(),
                    other.product_name,
                    other.kb,
                    other.fixed_builds.join(", "),
                    paths.get(other.paths[0]).describe(),
                ),
            });
        }
        std::mem::swap(&mut x.product_builds, &mut y.product_builds);
        std::mem::swap(&mut x.paths, &mut y.paths);
    }
    for (i, want) in &misplaced {
        let e = &mut entries[*i];
        if swapped.contains(i) || e.class.updates != ProductUpdates::Components {
            continue;
        }
        repairs.push(Repair {
            kind: RepairKind::ForeignFixedBuild,
            kb: e.kb,
            product_name: e.product_name.clone(),
            evidence: format!(
                "FixedBuild {} is on {}, not on the product's own path {}: not a build of this product",
                e.fixed_builds.join(", "),
                paths.get(e.paths[0]).describe(),
                want.iter()
                    .map(|p| paths.get(*p).describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        e.product_builds.clear();
        e.paths.clear();
    }
    // Entries without a FixedBuild: on the paths of the updates that supersede them, else on
    // the path of their servicing label; otherwise on every path of their line.
    let mut by_kb: HashMap<(LineKey, KbId), Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| product(e)) {
        by_kb.entry((line_key(e), e.kb)).or_default().push(i);
    }
    let mut queue: Vec<usize> = (0..entries.len())
        .filter(|&i| product(&entries[i]) && !entries[i].paths.is_empty())
        .collect();
    while let Some(i) = queue.pop() {
        let (key, inherited, older) = {
            let e = &entries[i];
            (line_key(e), e.paths.clone(), e.supersedes.clone())
        };
        for kb in older {
            for &j in by_kb.get(&(key.clone(), kb)).into_iter().flatten() {
                let f = &mut entries[j];
                if !f.product_builds.is_empty() {
                    continue;
                }
                let before = f.paths.len();
                f.paths.extend(inherited.iter().copied());
                f.paths.sort_unstable();
                f.paths.dedup();
                if f.paths.len() != before {
                    queue.push(j);
                }
            }
        }
    }
    for e in entries.iter_mut() {
        if product(e) && e.paths.is_empty() {
            if let Some(id) = home(e) {
                e.paths.push(id);
            }
        }
    }

    for e in entries.iter().filter(|e| product(e)) {
        for b in &e.product_builds {
            for &id in &e.paths {
                let p = &mut paths.paths[id as usize];
                if p.contains(b) && *b > p.newest {
                    p.newest = *b;
                }
            }
        }
    }
    paths
}

fn line_key(e: &Entry) -> LineKey {
    (e.class.software.clone(), e.class.version_line.clone())
}

/// Links MSRC's `Supercedence` leaves out between the updates of a product serviced per
/// component (Office MSI, SharePoint), as (software, newer, older). Components are KBs linked
/// by `Supercedence` within one software and line.
pub(crate) fn missing_component_links(
    entries: &[Entry],
    release_date: impl Fn(KbId) -> Date,
    repairs: &mut Vec<Repair>,
) -> Vec<(SoftwareId, KbId, KbId)> {
    let mut parent: HashMap<(LineKey, KbId), (LineKey, KbId)> = HashMap::new();
    fn find(
        parent: &mut HashMap<(LineKey, KbId), (LineKey, KbId)>,
        x: &(LineKey, KbId),
    ) -> (LineKey, KbId) {
        let mut root = x.clone();
        while let Some(p) = parent.get(&root) {
            if *p == root {
                break;
            }
            root = p.clone();
        }
        root
    }
    let members: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            let e = &entries[i];
            e.class.host.is_none() && e.class.updates == ProductUpdates::Components
        })
        .collect();
    for &i in &members {
        let k = (line_key(&entries[i]), entries[i].kb);
        parent.entry(k.clone()).or_insert(k);
    }
    for &i in &members {
        let e = &entries[i];
        let a = (line_key(e), e.kb);
        for s in &e.supersedes {
            let b = (line_key(e), *s);
            if !parent.contains_key(&b) {
                continue;
            }
            let (ra, rb) = (find(&mut parent, &a), find(&mut parent, &b));
            if ra != rb {
                // The smaller KB is the representative, so the result does not depend on order.
                let (keep, join) = if ra.1 <= rb.1 { (ra, rb) } else { (rb, ra) };
                parent.insert(join, keep);
            }
        }
    }

    // Where MSRC's Supercedence of an update names nothing, its chain starts anew although
    // the product had a chain that ended just before (SharePoint Server 2019's KB5002754 of
    // July 2025 continues KB5002741's). Link the two when exactly one chain of the same
    // product ended in the three months before: otherwise the old chain's last update would
    // be reported as missing for ever.
    struct Chain {
        first: (Date, KbId),
        starts_anew: bool,
        last: (Date, KbId),
        names: BTreeSet<String>,
    }
    let mut chains: BTreeMap<(LineKey, KbId), Chain> = BTreeMap::new();
    for &i in &members {
        let e = &entries[i];
        let root = find(&mut parent, &(line_key(e), e.kb));
        let at = (release_date(e.kb), e.kb);
        let c = chains.entry(root).or_insert_with(|| Chain {
            first: at,
            starts_anew: true,
            last: at,
            names: BTreeSet::new(),
        });
        if at < c.first {
            c.first = at;
        }
        c.last = c.last.max(at);
        c.names.insert(e.product_name.clone());
    }
    for c in chains.values_mut() {
        c.starts_anew = members.iter().any(|&i| {
            let e = &entries[i];
            e.kb == c.first.1 && e.supersedes.is_empty() && e.class.package.is_none()
        });
    }
    let mut continued: HashSet<(LineKey, KbId)> = HashSet::new();
    let mut links = Vec::new();
    let starts: Vec<(LineKey, KbId)> = chains
        .iter()
        .filter(|(_, c)| c.starts_anew)
        .map(|(k, _)| k.clone())
        .collect();
    for start in starts {
        let s = &chains[&start];
        let candidates: Vec<&(LineKey, KbId)> = chains
            .iter()
            .filter(|(k, c)| {
                k.0 == start.0
                    && **k != start
                    && !continued.contains(*k)
                    && c.last < s.first
                    && (s.first.0 - c.last.0).whole_days() <= 92
                    && !c.names.is_disjoint(&s.names)
            })
            .map(|(k, _)| k)
            .collect();
        let [old] = candidates[..] else { continue };
        let old = old.clone();
        let (old_last, new_first) = (chains[&old].last.1, s.first.1);
        let product_name = s.names.iter().next().cloned().unwrap_or_default();
        continued.insert(old.clone());
        links.push((start.0 .0.clone(), new_first, old_last));
        repairs.push(Repair {
            kind: RepairKind::ChainLinkMissing,
            kb: new_first,
            product_name,
            evidence: format!(
                "Supercedence names nothing; the previous update of the product, KB{old_last}, ends its chain there"
            ),
        });
    }

    links
}

#[cfg(test)]
mod tests {
    use super::path_label;

    #[test]
    fn path_labels() {
        assert_eq!(path_label(Some("cu 16")), "cu");
        assert_eq!(path_label(Some("service pack 3 cu 4")), "service pack 3 cu");
        assert_eq!(path_label(Some("cu2")), "cu");
        assert_eq!(path_label(Some("gdr")), "gdr");
        assert_eq!(
            path_label(Some("cumulative update 13")),
            "cumulative update 13"
        );
        assert_eq!(path_label(None), "");
    }
}
