//! The MSRC API's JSON form of a CVRF document (`Accept: application/json`), and MSRC's
//! updates listing (`index.json`), which is recognised so that importers can skip it.

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use crate::document::{parse_date, DocumentParts, KbRemediation, Parsed};
use crate::error::ParseError;

/// `Remediation.Type` 2 is `Vendor Fix` in the API's enum encoding (data/README.md).
const VENDOR_FIX: i64 = 2;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    document_title: Option<Text>,
    document_tracking: Option<Tracking>,
    product_tree: Option<ProductTree>,
    #[serde(default, deserialize_with = "null_as_empty")]
    vulnerability: Vec<Vulnerability>,
    /// Only the updates listing has it: `{"value": [{ID, Alias, DocumentTitle, …}]}`.
    #[serde(rename = "value")]
    listing: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tracking {
    identification: Option<Identification>,
    initial_release_date: Option<String>,
    current_release_date: Option<String>,
}

#[derive(Deserialize)]
struct Identification {
    #[serde(rename = "ID")]
    id: Option<Text>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProductTree {
    #[serde(default, deserialize_with = "null_as_empty")]
    full_product_name: Vec<Product>,
    #[serde(default, deserialize_with = "null_as_empty")]
    branch: Vec<BranchItem>,
}

#[derive(Deserialize)]
struct Product {
    #[serde(rename = "ProductID")]
    product_id: Option<String>,
    #[serde(rename = "Value")]
    value: Option<String>,
}

/// A `Branch` node or a product inside one: the API mixes both in `Items`.
#[derive(Deserialize)]
struct BranchItem {
    #[serde(rename = "Items", default, deserialize_with = "null_as_empty")]
    items: Vec<BranchItem>,
    #[serde(rename = "ProductID")]
    product_id: Option<String>,
    #[serde(rename = "Value")]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "CVE")]
    cve: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    remediations: Vec<Remediation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Remediation {
    #[serde(rename = "Type")]
    kind: Option<RemediationType>,
    description: Option<Text>,
    #[serde(rename = "ProductID", default, deserialize_with = "null_as_empty")]
    product_ids: Vec<String>,
    sub_type: Option<Text>,
    fixed_build: Option<Text>,
    supercedence: Option<Text>,
}

/// The API encodes enums as numbers; a string form is accepted too, should a mirror
/// re-serialize them by name.
#[derive(Deserialize)]
#[serde(untagged)]
enum RemediationType {
    Code(i64),
    Name(String),
}

/// A string field, which the API writes either bare or wrapped as `{"Value": …}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Wrapped {
        #[serde(rename = "Value")]
        value: Option<String>,
    },
}

impl Text {
    fn into_string(self) -> Option<String> {
        match self {
            Text::Plain(s) => Some(s),
            Text::Wrapped { value } => value,
        }
    }
}

fn text(t: Option<Text>) -> Option<String> {
    t.and_then(Text::into_string)
}

/// `null` where a list is expected means an empty list, not a malformed document.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn parse(bytes: &[u8], origin: &str) -> Result<Parsed, ParseError> {
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| ParseError::Json {
        origin: origin.to_string(),
        what: e.to_string(),
    })?;
    let Some(tracking) = doc.document_tracking else {
        if doc.listing.is_some() {
            return Ok(Parsed::UpdatesListing);
        }
        return Err(ParseError::Invalid {
            origin: origin.to_string(),
            what: "missing DocumentTracking".to_string(),
        });
    };

    let date = |field: &str, value: Option<String>| match value {
        None => Ok(None),
        Some(v) => parse_date(&v).map(Some).ok_or_else(|| ParseError::Invalid {
            origin: origin.to_string(),
            what: format!("DocumentTracking.{field} '{v}' is not a date (YYYY-MM-DDThh:mm:ssZ)"),
        }),
    };
    let mut parts = DocumentParts {
        id: tracking.identification.and_then(|i| text(i.id)),
        title: text(doc.document_title),
        initial_release: date("InitialReleaseDate", tracking.initial_release_date)?,
        current_release: date("CurrentReleaseDate", tracking.current_release_date)?,
        ..DocumentParts::default()
    };

    if let Some(tree) = doc.product_tree {
        for p in tree.full_product_name {
            if let (Some(id), Some(name)) = (p.product_id, p.value) {
                parts.top_products.insert(id, name.trim().to_string());
            }
        }
        // Iterative walk: the nesting depth of `Branch` is whatever the input says.
        let mut pending = tree.branch;
        while let Some(item) = pending.pop() {
            if let (Some(id), Some(name)) = (item.product_id, item.value) {
                parts
                    .branch_products
                    .entry(id)
                    .or_insert_with(|| name.trim().to_string());
            }
            pending.extend(item.items);
        }
    }

    for v in doc.vulnerability {
        let mut kb_remediations = Vec::new();
        for r in v.remediations {
            let vendor_fix = match &r.kind {
                Some(RemediationType::Code(c)) => *c == VENDOR_FIX,
                Some(RemediationType::Name(n)) => n.trim() == "Vendor Fix",
                None => false,
            };
            if !vendor_fix {
                continue;
            }
            let product_ids = r
                .product_ids
                .into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect();
            kb_remediations.extend(KbRemediation::new(
                &text(r.description).unwrap_or_default(),
                product_ids,
                text(r.sub_type),
                text(r.fixed_build),
                text(r.supercedence),
            ));
        }
        if kb_remediations.is_empty() {
            continue;
        }
        let cve = v
            .cve
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ParseError::Invalid {
                origin: origin.to_string(),
                what: "a Vulnerability with KB remediations but no CVE".to_string(),
            })?;
        for rem in kb_remediations {
            parts.remediations.push((cve.clone(), rem));
        }
    }
    parts
        .finish_with_products(origin)
        .map(|(d, p)| Parsed::Document(d, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
      "DocumentTitle": {"Value": "January 2021 Security Updates"},
      "DocumentTracking": {
        "Identification": {"ID": {"Value": "2021-Jan"}, "Alias": {"Value": "2021-Jan"}},
        "Status": 2,
        "InitialReleaseDate": "2021-01-12T08:00:00Z",
        "CurrentReleaseDate": "2021-01-13T08:00:00Z"
      },
      "ProductTree": {
        "Branch": [{"Items": [{"Items": [
          {"ProductID": "11800", "Value": "Branch name loses"},
          {"ProductID": "2", "Value": "Only in the tree"}
        ], "Type": 1, "Name": "Windows"}], "Type": 0, "Name": "Microsoft"}],
        "FullProductName": [
          {"ProductID": "11800", "Value": "Windows 10 Version 20H2 for x64-based Systems"}
        ]
      },
      "Vulnerability": [{
        "CVE": "CVE-2021-1644",
        "Remediations": [
          {"Description": {"Value": "4598242"}, "Supercedence": "4592438",
           "ProductID": ["11800", "2", "3"], "Type": 2, "SubType": "Security Update",
           "FixedBuild": "10.0.19042.746"},
          {"Description": {"Value": "4598242"}, "ProductID": ["11800"], "Type": 5},
          {"Description": {"Value": "Release Notes"}, "ProductID": ["11800"], "Type": 2}
        ]
      }, {"CVE": "CVE-2021-0000", "Remediations": null}]
    }"#;

    fn parsed(s: &str) -> Result<Parsed, ParseError> {
        parse(s.as_bytes(), "t.json")
    }

    #[test]
    fn reads_identity_products_and_vendor_fixes() {
        let Ok(Parsed::Document(doc, _)) = parsed(DOC) else {
            panic!("not a document")
        };
        assert_eq!(doc.id, "2021-Jan");
        assert_eq!(doc.title, "January 2021 Security Updates");
        assert_eq!(doc.initial_release.to_string(), "2021-01-12 8:00:00.0");
        assert_eq!(doc.current_release.to_string(), "2021-01-13 8:00:00.0");
        let rows: Vec<_> = doc
            .fixes
            .iter()
            .map(|f| {
                (
                    f.cve.as_str(),
                    f.kb.number(),
                    f.product_name.as_str(),
                    f.fixed_build.as_deref(),
                    f.supersedence.as_deref(),
                )
            })
            .collect();
        let (w, b, s) = (
            "Windows 10 Version 20H2 for x64-based Systems",
            Some("10.0.19042.746"),
            Some("4592438"),
        );
        assert_eq!(
            rows,
            vec![
                ("CVE-2021-1644", 4598242, w, b, s),
                ("CVE-2021-1644", 4598242, "Only in the tree", b, s),
                ("CVE-2021-1644", 4598242, "3", b, s),
            ]
        );
    }

    #[test]
    fn the_updates_listing_is_recognised() {
        let listing = r#"{"@odata.context":"x","value":[{"ID":"2016-Jan","Alias":"2016-Jan"}]}"#;
        assert!(matches!(parsed(listing), Ok(Parsed::UpdatesListing)));
    }

    #[test]
    fn broken_json_is_an_error_naming_the_file() {
        let no_tracking = DOC.replace("\"DocumentTracking\"", "\"Tracking\"");
        assert_eq!(
            parsed(&no_tracking).err().map(|e| e.to_string()).as_deref(),
            Some("t.json: missing DocumentTracking")
        );
        let no_date = DOC.replace("\"InitialReleaseDate\": \"2021-01-12T08:00:00Z\",", "");
        assert_eq!(
            parsed(&no_date).err().map(|e| e.to_string()).as_deref(),
            Some("t.json: missing DocumentTracking/InitialReleaseDate")
        );
        let cut = &DOC[..DOC.len() / 2];
        let msg = parsed(cut).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("t.json: EOF while parsing"), "{msg}");
        let wrong_type = DOC.replace("\"CVE\": \"CVE-2021-1644\"", "\"CVE\": 7");
        assert!(parsed(&wrong_type).is_err());
    }
}
