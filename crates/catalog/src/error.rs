//! The two ways an import fails: one document that cannot be read as CVRF (`ParseError`), and
//! a file or directory that cannot be read at all (`ImportError`). Both name the input.

use std::path::PathBuf;

/// One document that is not a readable MSRC CVRF document. Every variant names its input
/// (`origin`, usually the file path) so a failed import of 190 files points at the one to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes start with the zstd magic but do not decompress (truncated or corrupt).
    #[error("{origin}: zstd: {what}")]
    Decompress { origin: String, what: String },
    /// Neither XML nor JSON: the first meaningful byte is something else.
    #[error("{origin}: not a CVRF document (neither XML nor JSON): {what}")]
    UnknownFormat { origin: String, what: String },
    /// Malformed XML or a CVRF structure error at a known place.
    #[error("{origin}: line {line}: {what}")]
    XmlAt {
        origin: String,
        line: u64,
        what: String,
    },
    /// Malformed JSON; serde_json's message carries the line and column.
    #[error("{origin}: {what}")]
    Json { origin: String, what: String },
    /// A required field (document id, title, dates) is absent or unusable; no position is
    /// known because absence has no position.
    #[error("{origin}: {what}")]
    Invalid { origin: String, what: String },
    /// MSRC's `GET /updates` listing (`index.json`): valid JSON, but a listing of documents
    /// rather than a document. `read_documents` skips it; `parse_document` reports it.
    #[error("{origin}: this is MSRC's updates listing (index.json), not a CVRF document")]
    UpdatesListing { origin: String },
}

/// A failed `read_documents`: a path that cannot be read, or a file that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The parse error already names the file.
    #[error(transparent)]
    Parse(#[from] ParseError),
}
