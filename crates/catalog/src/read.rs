//! Importing files and directories of CVRF documents: which files count, parallel parsing,
//! and all-or-nothing results (a catalog missing one month would silently under-report).

use std::path::{Path, PathBuf};

use kbgap_domain::cvrf::CvrfDocument;
use rayon::prelude::*;

use crate::document::{parse_any, Parsed, Products};
use crate::error::ImportError;

/// File names a directory import takes; anything else in the directory is ignored.
const SUFFIXES: &[&str] = &[".xml", ".json", ".xml.zst", ".json.zst"];

/// One document as read from a file, with its full product list (every ProductID it names,
/// with or without a KB), for the coverage report.
#[derive(Debug, Clone)]
pub struct ReadDocument {
    pub document: CvrfDocument,
    pub products: Products,
}

/// Reads every CVRF document under `paths`. Each path is a file (read whatever its name) or a
/// directory (its files ending `.xml`, `.json`, `.xml.zst` or `.json.zst`, not recursing),
/// taken in name order. MSRC's updates listing (`index.json`) is skipped wherever it is met.
///
/// Files are parsed in parallel; the result keeps the order of `paths` and of names within
/// a directory. Any unreadable or unparsable file fails the whole import, naming the file:
/// the first one in that order, whichever thread found it first.
pub fn read_documents(paths: &[impl AsRef<Path>]) -> Result<Vec<CvrfDocument>, ImportError> {
    Ok(read_documents_with_products(paths)?
        .into_iter()
        .map(|r| r.document)
        .collect())
}

/// As [`read_documents`], keeping each document's product list.
pub fn read_documents_with_products(
    paths: &[impl AsRef<Path>],
) -> Result<Vec<ReadDocument>, ImportError> {
    let files = list_files(paths)?;
    let results: Vec<Result<Option<ReadDocument>, ImportError>> =
        files.par_iter().map(read_one).collect();
    let mut docs = Vec::with_capacity(results.len());
    for r in results {
        docs.extend(r?);
    }
    Ok(docs)
}

/// The files an import of `paths` reads, in order.
pub fn list_files(paths: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>, ImportError> {
    let mut files = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let io = |source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.metadata().map_err(io)?.is_dir() {
            let mut found = Vec::new();
            for entry in path.read_dir().map_err(io)? {
                let entry = entry.map_err(io)?;
                let name = entry.file_name();
                let taken = name
                    .to_str()
                    .is_some_and(|n| SUFFIXES.iter().any(|s| n.ends_with(s)));
                if taken && !entry.file_type().map_err(io)?.is_dir() {
                    found.push(entry.path());
                }
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.to_path_buf());
        }
    }
    Ok(files)
}

fn read_one(path: &PathBuf) -> Result<Option<ReadDocument>, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.clone(),
        source,
    })?;
    match parse_any(&bytes, &path.display().to_string())? {
        Parsed::Document(document, products) => Ok(Some(ReadDocument { document, products })),
        Parsed::UpdatesListing => Ok(None),
    }
}
