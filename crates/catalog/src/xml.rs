//! The CVRF 1.1 XML form, read as a stream of events (the archive is 356 MB of XML): only the
//! handful of elements kbgap keeps are decoded; everything else is skipped unread.

use std::borrow::Cow;

use kbgap_domain::cvrf::CvrfDocument;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::document::{parse_date, DocumentParts, KbRemediation, Products};
use crate::error::ParseError;

/// The elements that matter, by local name: MSRC's prefixes (`cvrf:`, `prod:`, `vuln:`) are
/// fixed by the schema, so namespaces are not resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    CvrfDoc,
    DocumentTitle,
    DocumentTracking,
    Identification,
    Id,
    InitialReleaseDate,
    CurrentReleaseDate,
    ProductTree,
    FullProductName,
    Vulnerability,
    Cve,
    Remediations,
    Remediation,
    Description,
    ProductId,
    SubType,
    FixedBuild,
    Supercedence,
    Other,
}

impl Tag {
    fn of(local: &str) -> Tag {
        match local {
            "cvrfdoc" => Tag::CvrfDoc,
            "DocumentTitle" => Tag::DocumentTitle,
            "DocumentTracking" => Tag::DocumentTracking,
            "Identification" => Tag::Identification,
            "ID" => Tag::Id,
            "InitialReleaseDate" => Tag::InitialReleaseDate,
            "CurrentReleaseDate" => Tag::CurrentReleaseDate,
            "ProductTree" => Tag::ProductTree,
            "FullProductName" => Tag::FullProductName,
            "Vulnerability" => Tag::Vulnerability,
            "CVE" => Tag::Cve,
            "Remediations" => Tag::Remediations,
            "Remediation" => Tag::Remediation,
            "Description" => Tag::Description,
            "ProductID" => Tag::ProductId,
            "SubType" => Tag::SubType,
            "FixedBuild" => Tag::FixedBuild,
            "Supercedence" => Tag::Supercedence,
            _ => Tag::Other,
        }
    }
}

/// The text-bearing element being read, and what its text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Id,
    InitialRelease,
    CurrentRelease,
    /// A product name; `top` when it sits directly under `ProductTree`.
    Product {
        top: bool,
    },
    Cve,
    /// A child of the open `Vendor Fix` remediation.
    Remediation(RemField),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemField {
    Description,
    ProductId,
    SubType,
    FixedBuild,
    Supersedence,
}

/// A `Vendor Fix` remediation being read.
#[derive(Default)]
struct Remediation {
    description: String,
    product_ids: Vec<String>,
    sub_type: Option<String>,
    fixed_build: Option<String>,
    supersedence: Option<String>,
}

struct Capture {
    field: Field,
    /// Stack depth of the element, to know which `End` closes it.
    depth: usize,
    /// Byte offset of its start tag, for error lines.
    at: u64,
    text: String,
}

struct State<'a> {
    origin: &'a str,
    bytes: &'a [u8],
    /// Open elements with the byte offset of their start tag.
    stack: Vec<(Tag, u64)>,
    root_seen: bool,
    capture: Option<Capture>,
    product_id: String,
    cve: Option<String>,
    /// KB remediations of the open vulnerability; its CVE is attached when it closes.
    vuln_remediations: Vec<KbRemediation>,
    remediation: Option<Remediation>,
    parts: DocumentParts,
}

#[cfg(test)]
pub(crate) fn parse(bytes: &[u8], origin: &str) -> Result<CvrfDocument, ParseError> {
    parse_full(bytes, origin).map(|(d, _)| d)
}

/// The document and its product list.
pub(crate) fn parse_full(
    bytes: &[u8],
    origin: &str,
) -> Result<(CvrfDocument, Products), ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::XmlAt {
        origin: origin.to_string(),
        line: line_of(bytes, e.valid_up_to() as u64),
        what: "invalid UTF-8".to_string(),
    })?;
    let mut reader = Reader::from_str(text);
    let mut st = State {
        origin,
        bytes,
        stack: Vec::with_capacity(16),
        root_seen: false,
        capture: None,
        product_id: String::new(),
        cve: None,
        vuln_remediations: Vec::new(),
        remediation: None,
        parts: DocumentParts::default(),
    };
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|e| ParseError::XmlAt {
            origin: origin.to_string(),
            line: line_of(bytes, reader.error_position()),
            what: e.to_string(),
        })?;
        match event {
            Event::Start(e) => st.start(&e, at)?,
            Event::Empty(e) => {
                st.start(&e, at)?;
                st.end(at)?;
            }
            Event::End(_) => st.end(at)?,
            Event::Text(t) => st.append(at, || Ok(t.xml10_content()))?,
            Event::CData(t) => st.append(at, || Ok(t.xml10_content()))?,
            Event::GeneralRef(r) => st.append(at, || {
                if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                    return Ok(Cow::Owned(c.to_string()));
                }
                resolve_predefined_entity(&r)
                    .map(Cow::Borrowed)
                    .ok_or_else(|| format!("unknown entity &{};", &*r))
            })?,
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some(&(_, opened)) = st.stack.last() {
        return Err(st.error_at(
            bytes.len() as u64,
            format!(
                "the document ends inside an element opened at line {}",
                line_of(bytes, opened)
            ),
        ));
    }
    if !st.root_seen {
        return Err(st.error_at(0, "no root element".to_string()));
    }
    st.parts.finish_with_products(origin)
}

impl State<'_> {
    fn error_at(&self, at: u64, what: String) -> ParseError {
        ParseError::XmlAt {
            origin: self.origin.to_string(),
            line: line_of(self.bytes, at),
            what,
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, at: u64) -> Result<(), ParseError> {
        let local = e.local_name();
        let tag = Tag::of(local.as_ref());
        if self.stack.is_empty() {
            if self.root_seen {
                return Err(self.error_at(at, "a second root element".to_string()));
            }
            if tag != Tag::CvrfDoc {
                return Err(self.error_at(
                    at,
                    format!(
                        "the root element is <{}>, not <cvrf:cvrfdoc>",
                        e.name().as_ref()
                    ),
                ));
            }
            self.root_seen = true;
        }
        let parent = self.stack.last().map(|&(t, _)| t);
        let grandparent = self.stack.len().checked_sub(2).map(|i| self.stack[i].0);
        self.stack.push((tag, at));
        if self.capture.is_some() {
            // Markup inside a text field: its text still belongs to the field.
            return Ok(());
        }

        let field = match (tag, parent, grandparent) {
            (Tag::DocumentTitle, Some(Tag::CvrfDoc), _) => Some(Field::Title),
            (Tag::Id, Some(Tag::Identification), Some(Tag::DocumentTracking)) => Some(Field::Id),
            (Tag::InitialReleaseDate, Some(Tag::DocumentTracking), _) => {
                Some(Field::InitialRelease)
            }
            (Tag::CurrentReleaseDate, Some(Tag::DocumentTracking), _) => {
                Some(Field::CurrentRelease)
            }
            (Tag::FullProductName, Some(p), _) if self.in_product_tree() => {
                self.product_id = self.attribute(e, "ProductID", at)?.ok_or_else(|| {
                    self.error_at(at, "FullProductName without a ProductID".to_string())
                })?;
                Some(Field::Product {
                    top: p == Tag::ProductTree,
                })
            }
            (Tag::Cve, Some(Tag::Vulnerability), _) => Some(Field::Cve),
            (Tag::Remediation, Some(Tag::Remediations), Some(Tag::Vulnerability)) => {
                let kind = self.attribute(e, "Type", at)?;
                if kind.as_deref().map(str::trim) == Some("Vendor Fix") {
                    self.remediation = Some(Remediation::default());
                }
                None
            }
            (_, Some(Tag::Remediation), _) if self.remediation.is_some() => match tag {
                Tag::Description => Some(Field::Remediation(RemField::Description)),
                Tag::ProductId => Some(Field::Remediation(RemField::ProductId)),
                Tag::SubType => Some(Field::Remediation(RemField::SubType)),
                Tag::FixedBuild => Some(Field::Remediation(RemField::FixedBuild)),
                Tag::Supercedence => Some(Field::Remediation(RemField::Supersedence)),
                _ => None,
            },
            _ => None,
        };
        if let Some(field) = field {
            self.capture = Some(Capture {
                field,
                depth: self.stack.len(),
                at,
                text: String::new(),
            });
        }
        Ok(())
    }

    fn in_product_tree(&self) -> bool {
        self.stack.iter().any(|&(t, _)| t == Tag::ProductTree)
    }

    fn attribute(
        &self,
        e: &BytesStart<'_>,
        name: &str,
        at: u64,
    ) -> Result<Option<String>, ParseError> {
        let attr = e
            .try_get_attribute(name)
            .map_err(|err| self.error_at(at, err.to_string()))?;
        match attr {
            None => Ok(None),
            Some(a) => a
                .normalized_value(XmlVersion::Implicit1_0)
                .map(|v| Some(v.trim().to_string()))
                .map_err(|err| self.error_at(at, err.to_string())),
        }
    }

    fn append<'t>(
        &mut self,
        at: u64,
        text: impl FnOnce() -> Result<Cow<'t, str>, String>,
    ) -> Result<(), ParseError> {
        // Text outside the kept fields (release notes, FAQs, CVSS vectors) is never decoded.
        if self.capture.is_none() {
            return Ok(());
        }
        let piece = text().map_err(|what| self.error_at(at, what))?;
        if let Some(c) = self.capture.as_mut() {
            c.text.push_str(&piece);
        }
        Ok(())
    }

    fn end(&mut self, at: u64) -> Result<(), ParseError> {
        let depth = self.stack.len();
        let Some((tag, _)) = self.stack.pop() else {
            return Err(self.error_at(at, "a closing tag without an open element".to_string()));
        };
        if let Some(c) = self.capture.take_if(|c| c.depth == depth) {
            self.store(c)?;
            return Ok(());
        }
        if self.capture.is_some() {
            return Ok(());
        }
        match tag {
            Tag::Remediation => {
                if let Some(r) = self.remediation.take() {
                    self.vuln_remediations.extend(KbRemediation::new(
                        &r.description,
                        r.product_ids,
                        r.sub_type,
                        r.fixed_build,
                        r.supersedence,
                    ));
                }
            }
            Tag::Vulnerability => {
                let cve = self.cve.take();
                if !self.vuln_remediations.is_empty() {
                    let cve = cve.ok_or_else(|| {
                        self.error_at(
                            at,
                            "a Vulnerability with KB remediations but no vuln:CVE".to_string(),
                        )
                    })?;
                    for rem in self.vuln_remediations.drain(..) {
                        self.parts.remediations.push((cve.clone(), rem));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn store(&mut self, c: Capture) -> Result<(), ParseError> {
        let text = c.text.trim().to_string();
        let date = |name: &str| {
            parse_date(&text).ok_or_else(|| {
                self.error_at(
                    c.at,
                    format!("{name} '{text}' is not a date (YYYY-MM-DDThh:mm:ss)"),
                )
            })
        };
        match c.field {
            Field::Title => self.parts.title = Some(text),
            Field::Id => self.parts.id = Some(text),
            Field::InitialRelease => self.parts.initial_release = Some(date("InitialReleaseDate")?),
            Field::CurrentRelease => self.parts.current_release = Some(date("CurrentReleaseDate")?),
            Field::Product { top } => {
                let id = std::mem::take(&mut self.product_id);
                if top {
                    self.parts.top_products.insert(id, text);
                } else {
                    self.parts.branch_products.entry(id).or_insert(text);
                }
            }
            Field::Cve => self.cve = Some(text),
            Field::Remediation(field) => {
                if let Some(r) = self.remediation.as_mut() {
                    match field {
                        RemField::Description => r.description = text,
                        RemField::ProductId if !text.is_empty() => r.product_ids.push(text),
                        RemField::ProductId => {}
                        RemField::SubType => r.sub_type = Some(text),
                        RemField::FixedBuild => r.fixed_build = Some(text),
                        RemField::Supersedence => r.supersedence = Some(text),
                    }
                }
            }
        }
        Ok(())
    }
}

/// 1-based line of a byte offset; computed only when reporting an error.
fn line_of(bytes: &[u8], offset: u64) -> u64 {
    let end = usize::try_from(offset).map_or(bytes.len(), |o| o.min(bytes.len()));
    bytes[..end].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0"?>
<cvrf:cvrfdoc xmlns:cvrf="c" xmlns:prod="p" xmlns:vuln="v">
  <cvrf:DocumentTitle>January 2024 Security Updates</cvrf:DocumentTitle>
  <cvrf:DocumentTracking>
    <cvrf:Identification><cvrf:ID>2024-Jan</cvrf:ID></cvrf:Identification>
    <cvrf:InitialReleaseDate>2024-01-09T08:00:00</cvrf:InitialReleaseDate>
    <cvrf:CurrentReleaseDate>2024-01-10T08:00:00</cvrf:CurrentReleaseDate>
  </cvrf:DocumentTracking>
  <prod:ProductTree>
    <prod:Branch Type="Vendor" Name="Microsoft">
      <prod:FullProductName ProductID="11929">Branch name loses</prod:FullProductName>
      <prod:FullProductName ProductID="2">Only in the tree</prod:FullProductName>
    </prod:Branch>
    <prod:FullProductName
      ProductID="11929">Windows 10 Version 21H2 for 32-bit Systems</prod:FullProductName>
    <prod:FullProductName ProductID="3">Tom &amp; Jerry&#x21;</prod:FullProductName>
  </prod:ProductTree>
  <vuln:Vulnerability Ordinal="1">
    <vuln:CVE>CVE-2024-20674</vuln:CVE>
    <vuln:Threats><vuln:Threat Type="Impact"><vuln:Description>x</vuln:Description>
      <vuln:ProductID>99</vuln:ProductID></vuln:Threat></vuln:Threats>
    <vuln:Remediations>
      <vuln:Remediation Type="Vendor Fix">
        <vuln:Description>5034122</vuln:Description>
        <vuln:Supercedence> 5033372 </vuln:Supercedence>
        <vuln:ProductID>11929</vuln:ProductID>
        <vuln:ProductID>2</vuln:ProductID>
        <vuln:ProductID>4</vuln:ProductID>
        <vuln:SubType>Security Update</vuln:SubType>
        <vuln:FixedBuild>10.0.19044.3930</vuln:FixedBuild>
      </vuln:Remediation>
      <vuln:Remediation Type="Vendor Fix">
        <vuln:Description>Release Notes</vuln:Description>
        <vuln:ProductID>11929</vuln:ProductID>
      </vuln:Remediation>
      <vuln:Remediation Type="Known Issue">
        <vuln:Description>5034122</vuln:Description>
        <vuln:ProductID>11929</vuln:ProductID>
      </vuln:Remediation>
      <vuln:Remediation Type="Vendor Fix">
        <vuln:Description>KB5034123</vuln:Description>
        <vuln:Supercedence />
        <vuln:ProductID>3</vuln:ProductID>
        <vuln:SubType></vuln:SubType>
      </vuln:Remediation>
    </vuln:Remediations>
  </vuln:Vulnerability>
</cvrf:cvrfdoc>
"#;

    #[test]
    fn reads_identity_products_and_vendor_fixes() {
        let doc = parse(DOC.as_bytes(), "t.xml").unwrap();
        assert_eq!(doc.id, "2024-Jan");
        assert_eq!(doc.title, "January 2024 Security Updates");
        assert_eq!(doc.initial_release.to_string(), "2024-01-09 8:00:00.0");
        assert_eq!(doc.current_release.to_string(), "2024-01-10 8:00:00.0");
        let rows: Vec<_> = doc
            .fixes
            .iter()
            .map(|f| {
                (
                    f.cve.as_str(),
                    f.kb.number(),
                    f.product_id.as_str(),
                    f.product_name.as_str(),
                    f.sub_type.as_deref(),
                    f.fixed_build.as_deref(),
                    f.supersedence.as_deref(),
                )
            })
            .collect();
        let w = "Windows 10 Version 21H2 for 32-bit Systems";
        let (s, b) = (Some("Security Update"), Some("10.0.19044.3930"));
        assert_eq!(
            rows,
            vec![
                ("CVE-2024-20674", 5034122, "11929", w, s, b, Some("5033372")),
                (
                    "CVE-2024-20674",
                    5034122,
                    "2",
                    "Only in the tree",
                    s,
                    b,
                    Some("5033372")
                ),
                // Not in any product list: the id stands in for the name.
                ("CVE-2024-20674", 5034122, "4", "4", s, b, Some("5033372")),
                (
                    "CVE-2024-20674",
                    5034123,
                    "3",
                    "Tom & Jerry!",
                    None,
                    None,
                    None
                ),
            ]
        );
    }

    #[test]
    fn malformed_xml_names_the_file_and_line() {
        let broken = DOC.replace("</cvrf:DocumentTitle>", "</cvrf:Title>");
        let err = parse(broken.as_bytes(), "2024-Jan.xml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("2024-Jan.xml: line 3: "), "{msg}");
    }

    #[test]
    fn a_document_cut_short_is_an_error() {
        let cut = &DOC[..DOC.find("<vuln:Remediations>").unwrap()];
        let msg = parse(cut.as_bytes(), "cut.xml").unwrap_err().to_string();
        assert!(msg.starts_with("cut.xml: line "), "{msg}");
        assert!(msg.contains("opened at line 18"), "{msg}");
    }

    #[test]
    fn missing_fields_and_bad_dates_are_named() {
        let no_id = DOC.replace("<cvrf:ID>2024-Jan</cvrf:ID>", "");
        assert_eq!(
            parse(no_id.as_bytes(), "a.xml").unwrap_err().to_string(),
            "a.xml: missing DocumentTracking/Identification/ID"
        );
        let no_title = DOC.replace("January 2024 Security Updates", " ");
        assert_eq!(
            parse(no_title.as_bytes(), "a.xml").unwrap_err().to_string(),
            "a.xml: missing DocumentTitle"
        );
        let bad_date = DOC.replace("2024-01-10T08:00:00", "soon");
        assert_eq!(
            parse(bad_date.as_bytes(), "a.xml").unwrap_err().to_string(),
            "a.xml: line 7: CurrentReleaseDate 'soon' is not a date (YYYY-MM-DDThh:mm:ss)"
        );
        let other_root = "<html><body/></html>";
        assert_eq!(
            parse(other_root.as_bytes(), "a.xml")
                .unwrap_err()
                .to_string(),
            "a.xml: line 1: the root element is <html>, not <cvrf:cvrfdoc>"
        );
        let unknown_entity = DOC.replace("Tom &amp; Jerry", "Tom &nbsp; Jerry");
        assert!(parse(unknown_entity.as_bytes(), "a.xml")
            .unwrap_err()
            .to_string()
            .starts_with("a.xml: line 16: "));
    }
}
