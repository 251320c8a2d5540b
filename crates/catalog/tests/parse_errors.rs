//! Broken input, real and random: every failure is an `Err` naming the input (and the line,
//! for XML), never a panic, and `read_documents` returns nothing partial.

use std::path::PathBuf;

use kbgap_catalog::{parse_document, read_documents, ImportError, ParseError};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf"
);
const JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf-json"
);

fn real(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn real_xml(id: &str) -> String {
    let zst = real(&format!("{ARCHIVE}/{id}.xml.zst"));
    String::from_utf8(zstd::decode_all(&zst[..]).unwrap()).unwrap()
}

/// xorshift64*: deterministic garbage, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn malformed_xml_names_the_file_and_the_line() {
    let xml = real_xml("2024-Jan");
    // Break the 5034122 remediation's closing tag, on the line where it stands.
    let at = xml
        .find("<vuln:Description>5034122</vuln:Description>")
        .unwrap();
    let line = xml[..at].lines().count();
    let broken = format!(
        "{}<vuln:Description>5034122</vuln:Descr>{}",
        &xml[..at],
        &xml[at + "<vuln:Description>5034122</vuln:Description>".len()..]
    );
    let err = parse_document(broken.as_bytes(), "2024-Jan.xml").unwrap_err();
    assert!(matches!(err, ParseError::XmlAt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("2024-Jan.xml: line {line}: ")),
        "{msg} (expected line {line})"
    );

    // Cut mid-document: an error at the end, naming where the open element started.
    let cut = &xml[..xml.len() / 2];
    let msg = parse_document(cut.as_bytes(), "2024-Jan.xml")
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("2024-Jan.xml: line "), "{msg}");
}

#[test]
fn a_truncated_zst_is_an_error() {
    let zst = real(&format!("{ARCHIVE}/2024-Jan.xml.zst"));
    assert!(parse_document(&zst, "2024-Jan.xml.zst").is_ok());
    for len in [4, 100, zst.len() / 2, zst.len() - 1] {
        let err = parse_document(&zst[..len], "2024-Jan.xml.zst").unwrap_err();
        assert!(
            matches!(err, ParseError::Decompress { .. }),
            "{len}: {err:?}"
        );
        assert!(
            err.to_string().starts_with("2024-Jan.xml.zst: zstd: "),
            "{err}"
        );
    }
    // A corrupt frame body, not just a short one.
    let mut corrupt = zst.clone();
    for b in &mut corrupt[20..60] {
        *b ^= 0x5A;
    }
    assert!(parse_document(&corrupt, "corrupt.zst").is_err());
}

#[test]
fn json_without_document_tracking_is_an_error() {
    let json = String::from_utf8(real(&format!("{JSON}/2021-Jan.json"))).unwrap();
    assert!(parse_document(json.as_bytes(), "2021-Jan.json").is_ok());
    let renamed = json.replacen("\"DocumentTracking\"", "\"Tracking\"", 1);
    assert_eq!(
        parse_document(renamed.as_bytes(), "2021-Jan.json")
            .unwrap_err()
            .to_string(),
        "2021-Jan.json: missing DocumentTracking"
    );
    let cut = &json[..json.len() / 3];
    let msg = parse_document(cut.as_bytes(), "2021-Jan.json")
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("2021-Jan.json: EOF while parsing"), "{msg}");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for n in 0..400 {
        let mut bytes = rng.bytes(n % 97 * 13);
        // Steer some inputs into each parser, including the zstd path.
        match n % 4 {
            1 => bytes.insert(0, b'<'),
            2 => bytes.insert(0, b'{'),
            3 => bytes.splice(0..0, [0x28, 0xB5, 0x2F, 0xFD]).for_each(drop),
            _ => {}
        }
        assert!(parse_document(&bytes, "garbage").is_err(), "input {n}");
    }
    for text in [
        "", "   ", "hello", "<", "<<>>", "{", "{}", "[]", "null", "<a/>", "\u{FEFF}",
    ] {
        assert!(parse_document(text.as_bytes(), "t").is_err(), "{text:?}");
    }
}

#[test]
fn every_prefix_and_mutation_of_a_real_document_is_handled() {
    let xml = real_xml("2017-May-B");
    let bytes = xml.as_bytes();
    let complete = xml.rfind("</cvrf:cvrfdoc>").unwrap() + "</cvrf:cvrfdoc>".len();
    for len in 0..bytes.len() {
        let r = parse_document(&bytes[..len], "prefix");
        assert_eq!(r.is_ok(), len >= complete, "prefix of {len} bytes: {r:?}");
    }
    let mut rng = Rng(42);
    for _ in 0..300 {
        let mut m = bytes.to_vec();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() % m.len() as u64) as usize;
            m[i] = rng.next() as u8;
        }
        // Either outcome is fine; a panic is not.
        let _ = parse_document(&m, "mutated");
    }
}

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kbgap-catalog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_directory_import_fails_whole_naming_the_file() {
    let dir = Scratch::new("import");
    let good = real(&format!("{ARCHIVE}/2017-May-B.xml.zst"));
    std::fs::write(dir.0.join("a.xml.zst"), &good).unwrap();
    std::fs::write(dir.0.join("b.xml.zst"), &good[..good.len() - 3]).unwrap();
    std::fs::write(
        dir.0.join("index.json"),
        real(&format!("{ARCHIVE}/index.json")),
    )
    .unwrap();
    std::fs::write(dir.0.join("notes.txt"), "not a document").unwrap();

    let err = read_documents(&[&dir.0]).unwrap_err();
    assert!(
        matches!(err, ImportError::Parse(ParseError::Decompress { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("b.xml.zst: zstd: "), "{err}");

    // Without the broken file: index.json and notes.txt are skipped, a.xml.zst is read.
    std::fs::remove_file(dir.0.join("b.xml.zst")).unwrap();
    let docs = read_documents(&[&dir.0]).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].id, "2017-May-B");

    let missing = dir.0.join("nope.xml");
    let err = read_documents(&[&missing]).unwrap_err();
    assert!(matches!(err, ImportError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );
}
