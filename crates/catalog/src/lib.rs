//! kbgap's catalog import: MSRC CVRF documents (XML or JSON, optionally zstd) into domain
//! records, product-name normalization with its coverage report, and supersedence parsing.

mod coverage;
mod document;
mod error;
mod json;
mod normalize;
mod read;
mod supersedence;
pub mod sync;
mod xml;

pub use coverage::{
    coverage, coverage_with_products, evaluation_coverage, Class, Counts, CoverageReport,
    EvaluationCoverage, FamilyCoverage, FamilyEvaluation, ModeCounts, NameCoverage, GATE_YEAR,
};
pub use document::parse_document;
pub use document::Products;
pub use error::{ImportError, ParseError};
pub use normalize::{classify, families, normalize, Classification, ProductTrack, UNMAPPED_FAMILY};
pub use read::{list_files, read_documents, read_documents_with_products, ReadDocument};
pub use supersedence::parse_supersedence;
