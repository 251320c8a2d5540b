//! Fuzzes MSRC CVRF XML parsing: any bytes starting with `<` go through the XML parser, which
//! must return a document or an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut doc = Vec::with_capacity(data.len() + 1);
    if data.first() != Some(&b'<') {
        doc.push(b'<');
    }
    doc.extend_from_slice(data);
    let _ = kbgap_catalog::parse_document(&doc, "fuzz.xml");
});
