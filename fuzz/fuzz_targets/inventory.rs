//! Fuzzes the inventory importers (systeminfo, wmic qfe / Get-HotFix, osquery, MDE export,
//! snapshots, and format detection): the first byte picks the format, the rest is the file.
#![no_main]

use std::path::PathBuf;

use kbgap_inventory::{import_files, Format, ImportOptions, InputFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let format = match selector % 6 {
        0 => Format::Auto,
        1 => Format::Snapshot,
        2 => Format::Systeminfo,
        3 => Format::Qfe,
        4 => Format::Osquery,
        _ => Format::Mde,
    };
    let files = [InputFile {
        path: PathBuf::from("fuzz-input"),
        bytes: bytes.to_vec(),
        modified: None,
    }];
    let opts = ImportOptions {
        format,
        last_seen: None,
        now: time::macros::datetime!(2024-01-31 12:00 UTC),
        arch: None,
    };
    let _ = import_files(&files, &opts);
});
