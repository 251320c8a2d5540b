//! `kbgap catalog …`: import MSRC documents and show the stored catalog.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::Store;
use time::OffsetDateTime;

use crate::{open_store, parse_date};

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Import MSRC CVRF documents (XML or JSON, plain or .zst; files or directories). Newer
    /// revisions of stored documents replace them; every machine is re-evaluated. All or
    /// nothing: a bad document stores nothing and names the file.
    Import {
        /// Files or directories of CVRF documents.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Build the catalog as it stood on this date (YYYY-MM-DD): only KBs released by then.
        #[arg(long, value_parser = parse_date)]
        as_of: Option<time::Date>,
    },
    /// Show the stored catalog: generation, cut date, documents and KBs.
    Status,
}

pub fn import_catalog(
    store: &dyn Store,
    paths: &[PathBuf],
    as_of: Option<time::Date>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    eprintln!("reading {} path(s)…", paths.len());
    let docs = kbgap_catalog::read_documents(paths)
        .context("catalog import failed; nothing was stored")?;
    eprintln!(
        "parsed {} documents in {:.1}s; compiling and storing…",
        docs.len(),
        started.elapsed().as_secs_f64()
    );
    let report = kbgap_service::import_catalog(
        store,
        &docs,
        as_of,
        OffsetDateTime::now_utc(),
        Retention::default(),
    )
    .context("catalog import failed; the previous catalog is unchanged")?;
    println!(
        "catalog generation {}: {} documents stored, {} unchanged; {} documents and {} KBs in the catalog{}; {} machines re-evaluated ({:.1}s)",
        report.generation,
        report.summary.stored.len(),
        report.summary.skipped.len(),
        report.documents,
        report.kbs,
        report.as_of.map(|d| format!(" as of {d}")).unwrap_or_default(),
        report.machines_reevaluated,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn catalog_status(store: &dyn Store) -> anyhow::Result<()> {
    let holder = CatalogHolder::load(store)?;
    let c = holder.current();
    println!("generation: {}", c.generation);
    println!(
        "as of: {}",
        c.catalog
            .as_of()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "latest".into())
    );
    println!("documents: {}", c.catalog.document_count());
    println!("KBs: {}", c.catalog.kb_count());
    println!("catalog repairs: {}", c.catalog.repairs().len());
    Ok(())
}

pub fn run(cmd: CatalogCommand, data_dir: &Path) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
    match cmd {
        CatalogCommand::Import { paths, as_of } => import_catalog(store.as_ref(), &paths, as_of),
        CatalogCommand::Status => catalog_status(store.as_ref()),
    }
}
