//! kbgap's catalog import: MSRC CVRF documents (XML or JSON, optionally zstd) into domain
//! records, product-name normalization with its coverage report, and supersedence parsing.

mod coverage;
mod document;
mod error;
mod json;
mod normalize;
mod read;
mod supersedence;
mod xml;

pub use coverage::{coverage, CoverageReport};
pub use document::parse_document;
pub use error::{ImportError, ParseError};
pub use normalize::normalize;
pub use read::read_documents;
pub use supersedence::parse_supersedence;
