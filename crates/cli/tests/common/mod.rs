//! The harness the CLI test files share: run the real `kbgap` binary against a data directory,
//! read its output, and start from the hand-written one-KB catalog.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Runs `kbgap --data-dir DIR ARGS…` with no configuration from the environment and quiet logs.
pub fn kbgap(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KBGAP_CONFIG")
        .env_remove("KBGAP_DATABASE_URL")
        .env_remove("KBGAP_MSRC_BASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A data directory with the one-KB catalog: KB5034122 for Windows 10 21H2 x64, fixed in
/// 10.0.19044.3930.
pub fn with_mini_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = kbgap(
        dir.path(),
        &[
            "catalog",
            "import",
            &format!("{FIXTURES}/2024-Jan-mini.xml"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}
