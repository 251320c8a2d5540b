//! How much of the catalog normalization understands: every product name that carries a KB
//! either maps, is deliberately out of scope, or is listed here as unmapped (semantics §2).

use std::collections::HashMap;
use std::fmt;

use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::Normalized;

use crate::normalize::normalize;

/// Normalization coverage over the distinct product names that carry a numeric KB.
/// "Fixes" are `VendorFix` rows (one CVE × KB × product each).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CoverageReport {
    pub mapped_names: usize,
    pub mapped_fixes: usize,
    pub out_of_scope_names: usize,
    pub out_of_scope_fixes: usize,
    pub unmapped_names: usize,
    pub unmapped_fixes: usize,
    /// Per reason: (reason, names, fixes), most fixes first.
    pub out_of_scope: Vec<(&'static str, usize, usize)>,
    /// Every unmapped name with its fixes, most fixes first (then by name).
    pub unmapped: Vec<(String, usize)>,
    /// ProductIDs that a fix cites but its document's product tree does not name (the id
    /// stands in for the name, so they are among `unmapped` too), with their fixes.
    pub unnamed_product_ids: Vec<(String, usize)>,
}

impl CoverageReport {
    pub fn names(&self) -> usize {
        self.mapped_names + self.out_of_scope_names + self.unmapped_names
    }

    pub fn fixes(&self) -> usize {
        self.mapped_fixes + self.out_of_scope_fixes + self.unmapped_fixes
    }
}

/// Normalizes each distinct product name once and counts the fixes behind it.
pub fn coverage(docs: &[CvrfDocument]) -> CoverageReport {
    let mut per_name: HashMap<&str, usize> = HashMap::new();
    let mut unnamed: HashMap<&str, usize> = HashMap::new();
    for fix in docs.iter().flat_map(|d| &d.fixes) {
        *per_name.entry(&fix.product_name).or_default() += 1;
        // No real product name is its own numeric id: this is the parser's stand-in.
        if fix.product_name == fix.product_id {
            *unnamed.entry(&fix.product_id).or_default() += 1;
        }
    }

    let mut report = CoverageReport::default();
    let mut reasons: HashMap<&'static str, (usize, usize)> = HashMap::new();
    for (name, fixes) in per_name {
        match normalize(name) {
            Normalized::Mapped(_) => {
                report.mapped_names += 1;
                report.mapped_fixes += fixes;
            }
            Normalized::OutOfScope(reason) => {
                report.out_of_scope_names += 1;
                report.out_of_scope_fixes += fixes;
                let r = reasons.entry(reason).or_default();
                r.0 += 1;
                r.1 += fixes;
            }
            Normalized::Unmapped => {
                report.unmapped_names += 1;
                report.unmapped_fixes += fixes;
                report.unmapped.push((name.to_string(), fixes));
            }
        }
    }
    report.out_of_scope = reasons.into_iter().map(|(r, (n, f))| (r, n, f)).collect();
    report
        .out_of_scope
        .sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    report
        .unmapped
        .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
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
        writeln!(
            f,
            "Normalization coverage: {} product names carrying a KB, {} fixes",
            self.names(),
            self.fixes()
        )?;
        writeln!(f, "  {:<14} {:>7} {:>9}", "class", "names", "fixes")?;
        for (class, names, fixes) in [
            ("mapped", self.mapped_names, self.mapped_fixes),
            (
                "out of scope",
                self.out_of_scope_names,
                self.out_of_scope_fixes,
            ),
            ("unmapped", self.unmapped_names, self.unmapped_fixes),
        ] {
            writeln!(f, "  {class:<14} {names:>7} {fixes:>9}")?;
        }
        if !self.out_of_scope.is_empty() {
            writeln!(f, "\nOut of scope, by reason:")?;
            writeln!(f, "  {:>7} {:>9}  reason", "names", "fixes")?;
            for (reason, names, fixes) in &self.out_of_scope {
                writeln!(f, "  {names:>7} {fixes:>9}  {reason}")?;
            }
        }
        if !self.unmapped.is_empty() {
            writeln!(f, "\nUnmapped names, most fixes first:")?;
            writeln!(f, "  {:>9}  name", "fixes")?;
            for (name, fixes) in &self.unmapped {
                writeln!(f, "  {fixes:>9}  {name}")?;
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kbgap_domain::cvrf::VendorFix;
    use kbgap_domain::KbId;
    use time::macros::datetime;

    fn fix(product_id: &str, product_name: &str) -> VendorFix {
        VendorFix {
            cve: "CVE-2024-20674".into(),
            kb: KbId::from_number(5034122).unwrap(),
            product_id: product_id.into(),
            product_name: product_name.into(),
            sub_type: None,
            fixed_build: None,
            supersedence: None,
        }
    }

    #[test]
    fn counts_names_and_fixes_per_class() {
        let doc = CvrfDocument {
            id: "2024-Jan".into(),
            title: "January 2024 Security Updates".into(),
            initial_release: datetime!(2024-01-09 08:00),
            current_release: datetime!(2024-01-09 08:00),
            fixes: vec![
                fix("11929", "Windows 10 Version 21H2 for 32-bit Systems"),
                fix("11929", "Windows 10 Version 21H2 for 32-bit Systems"),
                fix("1", "cbl2 kernel 5.15.162.2-1 on CBL Mariner 2.0"),
                fix("2", "Microsoft Office 2019 for 32-bit editions"),
                fix("77777", "77777"),
                fix("77777", "77777"),
                fix("3", "Microsoft Word 2016 (32-bit edition)"),
                fix("3", "Microsoft Word 2016 (32-bit edition)"),
            ],
        };
        let r = coverage(&[doc]);
        assert_eq!((r.mapped_names, r.mapped_fixes), (1, 2));
        assert_eq!((r.out_of_scope_names, r.out_of_scope_fixes), (1, 1));
        assert_eq!((r.unmapped_names, r.unmapped_fixes), (3, 5));
        assert_eq!((r.names(), r.fixes()), (5, 8));
        assert_eq!(r.out_of_scope, vec![("Linux package", 1, 1)]);
        assert_eq!(
            r.unmapped,
            vec![
                ("77777".to_string(), 2),
                ("Microsoft Word 2016 (32-bit edition)".to_string(), 2),
                ("Microsoft Office 2019 for 32-bit editions".to_string(), 1),
            ]
        );
        assert_eq!(r.unnamed_product_ids, vec![("77777".to_string(), 2)]);
        let table = r.to_string();
        assert!(
            table.contains("  mapped               1         2\n"),
            "{table}"
        );
        assert!(table.contains("          2  Microsoft Word 2016 (32-bit edition)\n"));
    }
}
