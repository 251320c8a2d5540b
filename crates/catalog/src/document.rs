//! One MSRC CVRF document from bytes: zstd unwrapping, XML/JSON detection, and the assembly
//! shared by both forms (required fields, product names, one row per CVE × KB × product).

use std::collections::HashMap;

use kbgap_domain::cvrf::{CvrfDocument, VendorFix};
use kbgap_domain::KbId;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::ParseError;
use crate::{json, xml};

/// Every zstd frame starts with these four bytes (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// What a file turned out to be. MSRC's updates listing sits next to the documents in every
/// mirror of the archive, so it is recognised rather than treated as a broken document.
pub(crate) enum Parsed {
    Document(CvrfDocument, Products),
    UpdatesListing,
}

/// A document's product list, `(ProductID, name)` in ProductID order: every product it
/// names, with or without a KB (the coverage report classifies all of them).
pub type Products = Vec<(String, String)>;

/// Parses one MSRC CVRF document, CVRF 1.1 XML or the MSRC API's JSON form, optionally
/// zstd-compressed; the form is detected from the content, never from a file name.
/// `source` names the input in error messages (usually the file path).
pub fn parse_document(bytes: &[u8], source: &str) -> Result<CvrfDocument, ParseError> {
    match parse_any(bytes, source)? {
        Parsed::Document(doc, _) => Ok(doc),
        Parsed::UpdatesListing => Err(ParseError::UpdatesListing {
            origin: source.to_string(),
        }),
    }
}

pub(crate) fn parse_any(bytes: &[u8], origin: &str) -> Result<Parsed, ParseError> {
    if bytes.starts_with(&ZSTD_MAGIC) {
        let plain = zstd::decode_all(bytes).map_err(|e| ParseError::Decompress {
            origin: origin.to_string(),
            what: e.to_string(),
        })?;
        return parse_plain(&plain, origin);
    }
    parse_plain(bytes, origin)
}

fn parse_plain(bytes: &[u8], origin: &str) -> Result<Parsed, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => xml::parse_full(bytes, origin).map(|(d, p)| Parsed::Document(d, p)),
        Some(b'{') => json::parse(bytes, origin),
        Some(b) => Err(ParseError::UnknownFormat {
            origin: origin.to_string(),
            what: format!("it starts with byte 0x{b:02x}"),
        }),
        None => Err(ParseError::UnknownFormat {
            origin: origin.to_string(),
            what: "it is empty".to_string(),
        }),
    }
}

/// A `Vendor Fix` remediation whose description is a KB, before it is flattened per product.
pub(crate) struct KbRemediation {
    pub kb: KbId,
    pub product_ids: Vec<String>,
    pub sub_type: Option<String>,
    pub fixed_build: Option<String>,
    pub supersedence: Option<String>,
}

impl KbRemediation {
    /// `None` for the descriptions that are not KBs ("Release Notes", "Click to Run",
    /// "CBL-Mariner Releases", Linux package names): those remediations are not KB evidence.
    pub fn new(
        description: &str,
        product_ids: Vec<String>,
        sub_type: Option<String>,
        fixed_build: Option<String>,
        supersedence: Option<String>,
    ) -> Option<Self> {
        let kb = KbId::parse(description).ok()?;
        Some(KbRemediation {
            kb,
            product_ids,
            sub_type: non_empty(sub_type),
            fixed_build: non_empty(fixed_build),
            supersedence: non_empty(supersedence),
        })
    }
}

/// What either form yields before the required fields are checked.
#[derive(Default)]
pub(crate) struct DocumentParts {
    pub id: Option<String>,
    pub title: Option<String>,
    pub initial_release: Option<PrimitiveDateTime>,
    pub current_release: Option<PrimitiveDateTime>,
    /// Names from the flat top-level `FullProductName` list: the complete one (2024-Oct has
    /// 341 there against 179 in the `Branch` tree), so it wins over the tree.
    pub top_products: HashMap<String, String>,
    pub branch_products: HashMap<String, String>,
    /// Per vulnerability id, in document order.
    pub remediations: Vec<(String, KbRemediation)>,
}

impl DocumentParts {
    /// The document and its product list (top-level names win over the `Branch` tree).
    pub fn finish_with_products(
        self,
        origin: &str,
    ) -> Result<(CvrfDocument, Products), ParseError> {
        let missing = |what: &str| ParseError::Invalid {
            origin: origin.to_string(),
            what: format!("missing {what}"),
        };
        let id = non_empty(self.id).ok_or_else(|| missing("DocumentTracking/Identification/ID"))?;
        let title = non_empty(self.title).ok_or_else(|| missing("DocumentTitle"))?;
        let initial_release = self
            .initial_release
            .ok_or_else(|| missing("DocumentTracking/InitialReleaseDate"))?;
        let current_release = self
            .current_release
            .ok_or_else(|| missing("DocumentTracking/CurrentReleaseDate"))?;

        let mut fixes = Vec::new();
        for (cve, rem) in &self.remediations {
            for pid in &rem.product_ids {
                // A ProductID absent from the tree keeps its id as its name, so the fix is
                // still counted and the coverage report can list it, instead of an empty name.
                let name = self
                    .top_products
                    .get(pid)
                    .or_else(|| self.branch_products.get(pid))
                    .unwrap_or(pid);
                fixes.push(VendorFix {
                    cve: cve.clone(),
                    kb: rem.kb,
                    product_id: pid.clone(),
                    product_name: name.clone(),
                    sub_type: rem.sub_type.clone(),
                    fixed_build: rem.fixed_build.clone(),
                    supersedence: rem.supersedence.clone(),
                });
            }
        }
        let mut all = self.top_products;
        for (pid, name) in self.branch_products {
            all.entry(pid).or_insert(name);
        }
        let mut products: Products = all.into_iter().collect();
        products.sort();
        Ok((
            CvrfDocument {
                id,
                title,
                initial_release,
                current_release,
                fixes,
            },
            products,
        ))
    }
}

/// Trimmed, and `None` when nothing is left: MSRC writes absent values as empty elements.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    let s = s?;
    let t = s.trim();
    if t.is_empty() {
        None
    } else if t.len() == s.len() {
        Some(s)
    } else {
        Some(t.to_string())
    }
}

/// MSRC dates are UTC: the XML writes `2024-01-09T08:00:00` (no zone), the JSON
/// `2021-01-12T08:00:00Z`. An explicit offset, should one appear, is converted to UTC.
pub(crate) fn parse_date(s: &str) -> Option<PrimitiveDateTime> {
    let s = s.trim();
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(s, &local) {
        return Some(t);
    }
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .ok()?
        .to_offset(UtcOffset::UTC);
    Some(PrimitiveDateTime::new(t.date(), t.time()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_with_and_without_zone_are_the_same_instant() {
        let a = parse_date("2024-01-09T08:00:00");
        let b = parse_date("2024-01-09T08:00:00Z");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(parse_date("2024-01-09T10:00:00+02:00"), a);
        assert_eq!(
            parse_date("2024-01-09T08:00:00.25").map(|t| t.millisecond()),
            Some(250)
        );
        assert_eq!(parse_date("January 2024"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn empty_and_padded_values() {
        assert_eq!(non_empty(Some("  ".into())), None);
        assert_eq!(non_empty(Some(" 5033372 ".into())), Some("5033372".into()));
        assert_eq!(non_empty(None), None);
    }
}
