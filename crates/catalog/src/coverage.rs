//! How much of the catalog the product table understands: every product name (and ProductID)
//! either maps, is deliberately out of scope with a reason, or is listed as unmapped (§2).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use kbgap_domain::catalog::Judged;
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{Catalog, KbId, Normalized};
use serde::Serialize;

use crate::normalize::classify;
use crate::read::ReadDocument;

/// The first year whose unmapped KB-bearing products fail the report: the archive's real
/// monthly documents start in 2016 (earlier ids are Linux-only "Mariner" pseudo-months).
pub const GATE_YEAR: i32 = 2016;

/// What the product table made of one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "class", content = "reason")]
pub enum Class {
    Mapped,
    OutOfScope(&'static str),
    Unmapped,
}

impl Class {
    fn of(n: &Normalized) -> Class {
        match n {
            Normalized::Mapped(_) => Class::Mapped,
            Normalized::OutOfScope(r) => Class::OutOfScope(r),
            Normalized::Unmapped => Class::Unmapped,
        }
    }
}

/// One distinct product name of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NameCoverage {
    pub name: String,
    pub family: &'static str,
    pub class: Class,
    /// ProductIDs that carry this name somewhere in the input.
    pub product_ids: BTreeSet<String>,
    /// KB-bearing `Vendor Fix` rows (one CVE × KB × product each).
    pub kb_fixes: usize,
    /// Distinct numeric KBs.
    pub kbs: usize,
    /// Whether a document released in [`GATE_YEAR`] or later cites a numeric KB for it.
    pub kb_since_gate: bool,
}

/// Counts of one class within a family (or overall).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub names: usize,
    pub product_ids: usize,
    pub kb_fixes: usize,
    pub kbs: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyCoverage {
    pub family: &'static str,
    pub mapped: Counts,
    pub out_of_scope: Counts,
    pub unmapped: Counts,
}

/// Normalization coverage of a set of documents.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverageReport {
    pub documents: usize,
    /// Whether the documents' full product lists were read (files), or only the products
    /// that carry a KB (stored documents keep only their fixes).
    pub all_products: bool,
    pub mapped: Counts,
    pub out_of_scope: Counts,
    pub unmapped: Counts,
    /// Distinct ProductIDs in the input.
    pub product_ids: usize,
    pub families: Vec<FamilyCoverage>,
    /// Out-of-scope reasons: (reason, names, KB fixes), most names first.
    pub reasons: Vec<(&'static str, usize, usize)>,
    /// Every distinct name, sorted by name.
    pub names: Vec<NameCoverage>,
    /// ProductIDs that a fix cites but its document's product tree does not name (the id
    /// stands in for the name), with their fixes.
    pub unnamed_product_ids: Vec<(String, usize)>,
}

impl CoverageReport {
    /// Unmapped names that carry a numeric KB from [`GATE_YEAR`] on: what must be zero.
    pub fn failures(&self) -> Vec<&NameCoverage> {
        self.names
            .iter()
            .filter(|n| n.class == Class::Unmapped && n.kb_since_gate)
            .collect()
    }

    /// Unmapped names, KB-bearing first, then by fixes and name.
    pub fn unmapped_names(&self) -> Vec<&NameCoverage> {
        let mut v: Vec<&NameCoverage> = self
            .names
            .iter()
            .filter(|n| n.class == Class::Unmapped)
            .collect();
        v.sort_by(|a, b| b.kb_fixes.cmp(&a.kb_fixes).then(a.name.cmp(&b.name)));
        v
    }
}

#[derive(Default)]
struct Acc {
    product_ids: BTreeSet<String>,
    kb_fixes: usize,
    kbs: BTreeSet<KbId>,
    kb_since_gate: bool,
}

/// Coverage of the products that carry a KB in `docs` (stored documents know only those).
pub fn coverage(docs: &[CvrfDocument]) -> CoverageReport {
    let mut acc: HashMap<&str, Acc> = HashMap::new();
    let unnamed = add_fixes(docs.iter(), &mut acc);
    build(acc, unnamed, docs.len(), false)
}

/// Coverage of every product the documents name, with or without a KB.
pub fn coverage_with_products(docs: &[ReadDocument]) -> CoverageReport {
    let mut acc: HashMap<&str, Acc> = HashMap::new();
    for d in docs {
        for (pid, name) in &d.products {
            acc.entry(name).or_default().product_ids.insert(pid.clone());
        }
    }
    let unnamed = add_fixes(docs.iter().map(|d| &d.document), &mut acc);
    build(acc, unnamed, docs.len(), true)
}

fn add_fixes<'a>(
    docs: impl Iterator<Item = &'a CvrfDocument>,
    acc: &mut HashMap<&'a str, Acc>,
) -> HashMap<&'a str, usize> {
    let mut unnamed: HashMap<&str, usize> = HashMap::new();
    for doc in docs {
        let gated = doc.initial_release.year() >= GATE_YEAR;
        for fix in &doc.fixes {
            let a = acc.entry(&fix.product_name).or_default();
            a.kb_fixes += 1;
            a.kbs.insert(fix.kb);
            a.kb_since_gate |= gated;
            if !a.product_ids.contains(&fix.product_id) {
                a.product_ids.insert(fix.product_id.clone());
            }
            // No real product name is its own numeric id: this is the parser's stand-in.
            if fix.product_name == fix.product_id {
                *unnamed.entry(&fix.product_id).or_default() += 1;
            }
        }
    }
    unnamed
}

fn build(
    acc: HashMap<&str, Acc>,
    unnamed: HashMap<&str, usize>,
    documents: usize,
    all_products: bool,
) -> CoverageReport {
    let mut report = CoverageReport {
        documents,
        all_products,
        ..CoverageReport::default()
    };
    let mut families: BTreeMap<&'static str, FamilyCoverage> = BTreeMap::new();
    let mut reasons: HashMap<&'static str, (usize, usize)> = HashMap::new();
    let mut ids_by_class: [BTreeSet<&str>; 3] = Default::default();
    let mut kbs_by_class: [BTreeSet<KbId>; 3] = Default::default();
    let mut family_kbs: HashMap<(&'static str, usize), BTreeSet<KbId>> = HashMap::new();
    let mut family_ids: HashMap<(&'static str, usize), BTreeSet<&str>> = HashMap::new();
    let mut all_ids: BTreeSet<&str> = BTreeSet::new();
    let mut names = Vec::with_capacity(acc.len());
    for (name, a) in &acc {
        let c = classify(name);
        let class = Class::of(&c.normalized);
        let slot = match class {
            Class::Mapped => 0,
            Class::OutOfScope(r) => {
                let e = reasons.entry(r).or_default();
                e.0 += 1;
                e.1 += a.kb_fixes;
                1
            }
            Class::Unmapped => 2,
        };
        let f = families.entry(c.family).or_insert_with(|| FamilyCoverage {
            family: c.family,
            ..FamilyCoverage::default()
        });
        let counts = match slot {
            0 => &mut f.mapped,
            1 => &mut f.out_of_scope,
            _ => &mut f.unmapped,
        };
        counts.names += 1;
        counts.kb_fixes += a.kb_fixes;
        let total = match slot {
            0 => &mut report.mapped,
            1 => &mut report.out_of_scope,
            _ => &mut report.unmapped,
        };
        total.names += 1;
        total.kb_fixes += a.kb_fixes;
        for id in &a.product_ids {
            ids_by_class[slot].insert(id);
            all_ids.insert(id);
            family_ids.entry((c.family, slot)).or_default().insert(id);
        }
        kbs_by_class[slot].extend(a.kbs.iter().copied());
        family_kbs
            .entry((c.family, slot))
            .or_default()
            .extend(a.kbs.iter().copied());
        names.push(NameCoverage {
            name: name.to_string(),
            family: c.family,
            class,
            product_ids: a.product_ids.clone(),
            kb_fixes: a.kb_fixes,
            kbs: a.kbs.len(),
            kb_since_gate: a.kb_since_gate,
        });
    }
    for (slot, total) in [
        &mut report.mapped,
        &mut report.out_of_scope,
        &mut report.unmapped,
    ]
    .into_iter()
    .enumerate()
    {
        total.product_ids = ids_by_class[slot].len();
        total.kbs = kbs_by_class[slot].len();
    }
    for f in families.values_mut() {
        let family = f.family;
        for (slot, counts) in [&mut f.mapped, &mut f.out_of_scope, &mut f.unmapped]
            .into_iter()
            .enumerate()
        {
            counts.product_ids = family_ids.get(&(family, slot)).map_or(0, BTreeSet::len);
            counts.kbs = family_kbs.get(&(family, slot)).map_or(0, BTreeSet::len);
        }
    }
    report.product_ids = all_ids.len();
    report.families = families.into_values().collect();
    report.reasons = reasons.into_iter().map(|(r, (n, f))| (r, n, f)).collect();
    report
        .reasons
        .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.sort_by(|a, b| a.name.cmp(&b.name));
    report.names = names;
    report.unnamed_product_ids = unnamed
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect();
    report
        .unnamed_product_ids
        .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    report
}

impl fmt::Display for CoverageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = if self.all_products {
            "every product the documents name"
        } else {
            "products carrying a KB"
        };
        writeln!(
            f,
            "Normalization coverage of {} documents ({scope}): {} product names, {} ProductIDs, {} KB fixes",
            self.documents,
            self.mapped.names + self.out_of_scope.names + self.unmapped.names,
            self.product_ids,
            self.mapped.kb_fixes + self.out_of_scope.kb_fixes + self.unmapped.kb_fixes,
        )?;
        writeln!(
            f,
            "  {:<14} {:>7} {:>11} {:>9} {:>6}",
            "class", "names", "productIDs", "KB fixes", "KBs"
        )?;
        for (class, c) in [
            ("mapped", self.mapped),
            ("out of scope", self.out_of_scope),
            ("unmapped", self.unmapped),
        ] {
            writeln!(
                f,
                "  {class:<14} {:>7} {:>11} {:>9} {:>6}",
                c.names, c.product_ids, c.kb_fixes, c.kbs
            )?;
        }

        writeln!(
            f,
            "\nBy family (names mapped / out of scope / unmapped; KB fixes and KBs of the mapped):"
        )?;
        writeln!(
            f,
            "  {:<40} {:>7} {:>7} {:>7} {:>9} {:>6}",
            "family", "mapped", "out", "unmap", "KB fixes", "KBs"
        )?;
        for fam in &self.families {
            writeln!(
                f,
                "  {:<40} {:>7} {:>7} {:>7} {:>9} {:>6}",
                fam.family,
                fam.mapped.names,
                fam.out_of_scope.names,
                fam.unmapped.names,
                fam.mapped.kb_fixes,
                fam.mapped.kbs
            )?;
        }
        if !self.reasons.is_empty() {
            writeln!(f, "\nOut of scope, by reason:")?;
            writeln!(f, "  {:>7} {:>9}  reason", "names", "KB fixes")?;
            for (reason, names, fixes) in &self.reasons {
                writeln!(f, "  {names:>7} {fixes:>9}  {reason}")?;
            }
        }
        let unmapped = self.unmapped_names();
        if !unmapped.is_empty() {
            writeln!(f, "\nUnmapped names, KB-bearing first:")?;
            writeln!(f, "  {:>9} {:>6}  name", "KB fixes", "2016+")?;
            for n in unmapped {
                let gate = if n.kb_since_gate { "yes" } else { "" };
                writeln!(f, "  {:>9} {gate:>6}  {}", n.kb_fixes, n.name)?;
            }
        }
        if !self.unnamed_product_ids.is_empty() {
            writeln!(
                f,
                "\nProductIDs cited by fixes but missing from their product tree:"
            )?;
            writeln!(f, "  {:>9}  product id", "fixes")?;
            for (id, fixes) in &self.unnamed_product_ids {
                writeln!(f, "  {fixes:>9}  {id}")?;
            }
        }
        let failures = self.failures().len();
        if failures == 0 {
            writeln!(
                f,
                "\nOK: every product with a numeric KB from {GATE_YEAR} on is mapped or out of scope."
            )
        } else {
            writeln!(
                f,
                "\nFAIL: {failures} product name(s) with a numeric KB from {GATE_YEAR} on are unmapped."
            )
        }
    }
}

/// How one family's (or the whole catalog's) KB × product pairs of one mode are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeCounts {
    pub mode: Judged,
    /// Distinct (KB, product name) pairs: each pair is judged one way.
    pub pairs: usize,
    /// Distinct KBs with a pair judged this way.
    pub kbs: usize,
    /// Distinct product names with a pair judged this way.
    pub products: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyEvaluation {
    pub family: &'static str,
    /// The modes that judge some pair of the family, in [`Judged::ALL`] order.
    pub modes: Vec<ModeCounts>,
}

/// How each software family of a compiled catalog is evaluated: per mode of [`Judged`], how
/// many KBs and products fall in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationCoverage {
    /// Documents in the catalog (within its cut).
    pub documents: usize,
    pub as_of: Option<time::Date>,
    pub modes: Vec<ModeCounts>,
    pub families: Vec<FamilyEvaluation>,
}

/// How the catalog compiled from `docs` judges every (KB, product name) pair the documents
/// cite a numeric KB for (within the catalog's cut), by product family. The mode of a pair
/// is [`Judged::of`] its normalization and its catalog entry.
pub fn evaluation_coverage(docs: &[CvrfDocument], catalog: &Catalog) -> EvaluationCoverage {
    let in_cut = |d: time::Date| catalog.as_of().is_none_or(|cut| d <= cut);
    let mut pairs: BTreeSet<(KbId, &str)> = BTreeSet::new();
    for doc in docs.iter().filter(|d| in_cut(d.initial_release.date())) {
        for fix in &doc.fixes {
            if catalog.kb(fix.kb).is_some() {
                pairs.insert((fix.kb, &fix.product_name));
            }
        }
    }
    type Sets<'a> = (usize, BTreeSet<KbId>, BTreeSet<&'a str>);
    let mut by: BTreeMap<(&'static str, Judged), Sets> = BTreeMap::new();
    let mut total: BTreeMap<Judged, Sets> = BTreeMap::new();
    let mut classes: HashMap<&str, (&'static str, Normalized)> = HashMap::new();
    for (kb, name) in pairs {
        let (family, normalized) = classes.entry(name).or_insert_with(|| {
            let c = classify(name);
            (c.family, c.normalized)
        });
        let mode = Judged::of(
            normalized,
            catalog.entry(kb, name),
            catalog.servicing_paths(),
        );
        for sets in [
            by.entry((family, mode)).or_default(),
            total.entry(mode).or_default(),
        ] {
            sets.0 += 1;
            sets.1.insert(kb);
            sets.2.insert(name);
        }
    }
    let counts = |mode: Judged, (pairs, kbs, products): &Sets| ModeCounts {
        mode,
        pairs: *pairs,
        kbs: kbs.len(),
        products: products.len(),
    };
    let mut families: Vec<FamilyEvaluation> = Vec::new();
    for ((family, mode), sets) in &by {
        if families.last().is_none_or(|f| f.family != *family) {
            families.push(FamilyEvaluation {
                family,
                modes: Vec::new(),
            });
        }
        if let Some(f) = families.last_mut() {
            f.modes.push(counts(*mode, sets));
        }
    }
    EvaluationCoverage {
        documents: catalog.document_count(),
        as_of: catalog.as_of(),
        modes: total.iter().map(|(m, s)| counts(*m, s)).collect(),
        families,
    }
}

impl fmt::Display for EvaluationCoverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Evaluation coverage of {} documents{}: how each family's KBs are judged",
            self.documents,
            self.as_of
                .map(|d| format!(" (as of {d})"))
                .unwrap_or_default()
        )?;
        for (mode, what) in [
            (
                Judged::Build,
                "the machine's build against the KB's FixedBuild (rule b); without a build, as by update list",
            ),
            (
                Judged::UpdateList,
                "installed KBs and their supersedence, or a complete list of installed updates (rules c, e); unknown without either",
            ),
            (
                Judged::VersionFixed,
                "by the product's version, never by KB: no KB of it is reported",
            ),
            (
                Judged::NotEvaluated,
                "out of scope, unmapped, cited only for advisories, or FixedBuild on another branch",
            ),
        ] {
            writeln!(f, "  {:<14} {what}", mode.as_str())?;
        }
        writeln!(
            f,
            "\nEach KB × product pair is judged one way; a KB or product may fall in several modes."
        )?;
        writeln!(
            f,
            "  {:<40} {:<14} {:>7} {:>6} {:>9}",
            "family", "mode", "pairs", "KBs", "products"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, family: &str, m: &ModeCounts| {
            writeln!(
                f,
                "  {family:<40} {:<14} {:>7} {:>6} {:>9}",
                m.mode.as_str(),
                m.pairs,
                m.kbs,
                m.products
            )
        };
        for fam in &self.families {
            for (i, m) in fam.modes.iter().enumerate() {
                row(f, if i == 0 { fam.family } else { "" }, m)?;
            }
        }
        writeln!(f)?;
        for (i, m) in self.modes.iter().enumerate() {
            row(f, if i == 0 { "all families" } else { "" }, m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kbgap_domain::cvrf::VendorFix;
    use time::macros::datetime;

    fn fix(product_id: &str, product_name: &str, kb: u32) -> VendorFix {
        VendorFix {
            cve: "CVE-2024-20674".into(),
            kb: KbId::from_number(kb).unwrap_or_else(|e| panic!("{e}")),
            product_id: product_id.into(),
            product_name: product_name.into(),
            sub_type: None,
            fixed_build: None,
            supersedence: None,
        }
    }

    fn doc(id: &str, year_2024: bool, fixes: Vec<VendorFix>) -> CvrfDocument {
        let date = if year_2024 {
            datetime!(2024-01-09 08:00)
        } else {
            datetime!(2015-01-09 08:00)
        };
        CvrfDocument {
            id: id.into(),
            title: "January 2024 Security Updates".into(),
            initial_release: date,
            current_release: date,
            fixes,
        }
    }

    #[test]
    fn counts_names_ids_fixes_and_kbs_per_class_and_family() {
        let w = "Windows 10 Version 21H2 for 32-bit Systems";
        let docs = [
            doc(
                "2024-Jan",
                true,
                vec![
                    fix("11929", w, 5034122),
                    fix("11929", w, 5034122),
                    fix("1", "cbl2 kernel 5.15.162.2-1 on CBL Mariner 2.0", 5034122),
                    fix("77777", "77777", 5034123),
                    fix("77777", "77777", 5034123),
                    fix("3", "Contoso Widget 7", 5034124),
                ],
            ),
            doc("2015-Old", false, vec![fix("4", "Contoso Gadget", 5034125)]),
        ];
        let r = coverage(&docs);
        assert_eq!(
            r.mapped,
            Counts {
                names: 1,
                product_ids: 1,
                kb_fixes: 2,
                kbs: 1
            }
        );
        assert_eq!((r.out_of_scope.names, r.out_of_scope.kb_fixes), (1, 1));
        assert_eq!(
            r.unmapped,
            Counts {
                names: 3,
                product_ids: 3,
                kb_fixes: 4,
                kbs: 3
            }
        );
        assert_eq!(r.reasons, vec![("Linux package", 1, 1)]);
        let failures: Vec<&str> = r.failures().iter().map(|n| n.name.as_str()).collect();
        // The 2015 product is unmapped but before the gate year.
        assert_eq!(failures, ["77777", "Contoso Widget 7"]);
        assert_eq!(r.unnamed_product_ids, vec![("77777".to_string(), 2)]);
        let win10 = r
            .families
            .iter()
            .find(|f| f.family == "Windows 10")
            .cloned()
            .unwrap_or_default();
        assert_eq!((win10.mapped.names, win10.mapped.kb_fixes), (1, 2));
        let table = r.to_string();
        assert!(
            table.contains("  mapped               1           1         2      1\n"),
            "{table}"
        );
        assert!(table.contains("FAIL: 2 product name(s)"), "{table}");
        assert!(
            table.contains("          1         Contoso Gadget\n"),
            "{table}"
        );
    }

    #[test]
    fn product_lists_count_names_without_kbs() {
        let docs = [ReadDocument {
            document: doc("2024-Jan", true, vec![]),
            products: vec![
                (
                    "11929".into(),
                    "Windows 10 Version 21H2 for 32-bit Systems".into(),
                ),
                ("9".into(), "Contoso Widget 7".into()),
            ],
        }];
        let r = coverage_with_products(&docs);
        assert!(r.all_products);
        assert_eq!((r.mapped.names, r.unmapped.names, r.product_ids), (1, 1, 2));
        assert!(r.failures().is_empty(), "no KB, so no failure");
        assert!(r.to_string().contains("OK: every product"));
    }
}
