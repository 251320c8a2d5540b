//! Machine inventory: the snapshot schema clients send (`PUT /api/inventory/machines/{id}`,
//! `kbgap inventory import`), its validation, and the importers of the tools' own outputs.

pub mod identity;
pub mod import;
pub mod mde;
pub mod osquery;
pub mod programs;
pub mod qfe;
pub mod snapshot;
pub mod systeminfo;
pub mod text;
pub mod windows;

pub use import::{
    apply_kb_update, import_files, Format, ImportError, ImportOptions, Imported, InputFile,
    KbUpdate,
};
pub use snapshot::{
    batch_entries, parse_batch, parse_snapshot, parse_snapshots, InstalledSoftware, KbSource,
    Snapshot, SnapshotError,
};

/// A problem at a line of one input (the caller adds the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based; `None` when the problem is not at one line.
    pub line: Option<usize>,
    pub message: String,
}

impl LineError {
    pub fn at(line: usize, message: impl Into<String>) -> Self {
        LineError {
            line: Some(line),
            message: message.into(),
        }
    }

    pub fn whole(message: impl Into<String>) -> Self {
        LineError {
            line: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for LineError {}

impl From<text::TextError> for LineError {
    fn from(e: text::TextError) -> Self {
        LineError::at(e.line, e.message)
    }
}
