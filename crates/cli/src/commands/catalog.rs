//! `kbgap catalog …`: import MSRC documents or sync them from the MSRC API, show the stored
//! catalog, its normalization coverage and the repairs it makes to Microsoft's data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use kbgap_catalog::sync::{MsrcClient, SyncConfig, SyncState, DEFAULT_BASE_URL};
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::Store;
use time::OffsetDateTime;

use crate::config::Storage;
use crate::{open_store, parse_date};

/// The sync state (listing and document validators) beside the database.
const SYNC_STATE_FILE: &str = "msrc-sync.json";

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
    /// Sync the catalog from the MSRC API: read /cvrf/v3.0/updates, fetch each document that
    /// is new or whose CurrentReleaseDate is newer than the stored revision, and import them
    /// as one new catalog generation. Requests are conditional (ETag) and retried with
    /// back-off. A document that fails to download or parse stores nothing: the previous
    /// generation stays active and the error names the document.
    Sync {
        /// Base URL of the MSRC API (or of a mirror serving the same paths).
        #[arg(long, env = "KBGAP_MSRC_BASE_URL", default_value = DEFAULT_BASE_URL)]
        base_url: String,
        /// Build the catalog as it stood on this date (YYYY-MM-DD): only KBs released by then.
        #[arg(long, value_parser = parse_date)]
        as_of: Option<time::Date>,
        /// Attempts per request (transport errors, 408, 429 and 5xx are retried).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
        attempts: u32,
        /// Delay before the first retry, in milliseconds; doubled for each further retry.
        #[arg(long, default_value_t = 2000)]
        backoff_ms: u64,
        /// Longest delay between retries, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        max_backoff_ms: u64,
        /// Timeout of one request, in seconds.
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_secs: u64,
    },
    /// Show the stored catalog: generation, cut date, documents and KBs.
    Status,
    /// Report how product normalization covers the catalog: mapped, out of scope (with the
    /// reason) and unmapped product names, by family, with their KB fixes. Reads the given
    /// files or directories (every ProductID they name), or the stored catalog (products with
    /// a KB). Exits with status 1 when a product with a numeric KB from 2016 on is unmapped.
    Coverage {
        /// Files or directories of CVRF documents; the stored catalog when none are given.
        paths: Vec<PathBuf>,
        /// Print the report as JSON (every name with its family, class and counts).
        #[arg(long)]
        json: bool,
        /// Instead: how each family's KBs are evaluated — by build (rule b), by update list
        /// only (rules c, e), version-fixed (never by KB) or not evaluated — with the KBs,
        /// products and KB × product pairs of each mode, for the stored catalog (at its cut)
        /// or the given documents. Always exits 0.
        #[arg(long)]
        evaluation: bool,
    },
    /// List the repairs the compiled catalog makes to Microsoft's data (FixedBuild on the
    /// wrong branch, sibling product omitted, chain link missing, FixedBuilds swapped between
    /// two products, a foreign product's FixedBuild): kind, KB, product and evidence.
    Repairs {
        /// Only repairs of this kind (e.g. wrongBranchFixedBuild, sibling-omitted; case and
        /// separators are ignored).
        #[arg(long)]
        kind: Option<String>,
        /// Print the repairs as a JSON array.
        #[arg(long)]
        json: bool,
    },
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
        "catalog generation {}: {} documents stored, {} unchanged; {} documents and {} KBs in the catalog{}; {} machines re-evaluated{} ({:.1}s)",
        report.generation,
        report.summary.stored.len(),
        report.summary.skipped.len(),
        report.documents,
        report.kbs,
        report.as_of.map(|d| format!(" as of {d}")).unwrap_or_default(),
        report.machines_reevaluated,
        changed_during(&report),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How many of the re-evaluated machines reported while the import ran, when any did.
fn changed_during(report: &kbgap_service::ImportReport) -> String {
    match report.machines_changed_during_import {
        0 => String::new(),
        n => format!(", {n} of them written during the import"),
    }
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

/// Settings of `kbgap catalog sync`.
pub struct SyncArgs {
    pub base_url: String,
    pub as_of: Option<time::Date>,
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
}

pub fn sync_catalog(store: &dyn Store, data_dir: &Path, args: SyncArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let state_path = data_dir.join(SYNC_STATE_FILE);
    // A missing or unreadable state only costs unconditional requests: start afresh.
    let mut state: SyncState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let client = MsrcClient::new(SyncConfig {
        base_url: args.base_url.trim_end_matches('/').to_string(),
        attempts: args.attempts,
        backoff: args.backoff,
        max_backoff: args.max_backoff,
        timeout: args.timeout,
    });
    eprintln!("reading {}…", client.updates_url());
    let report = kbgap_service::sync_catalog(
        store,
        &client,
        &mut state,
        args.as_of,
        OffsetDateTime::now_utc(),
        Retention::default(),
        &mut |id| eprintln!("fetching {id}…"),
    )?;
    write_state(&state_path, &state)?;
    let listing = if report.listing_not_modified {
        "listing not modified"
    } else {
        "listing read"
    };
    match &report.import {
        None => println!(
            "catalog generation {}: up to date ({} documents listed, {listing}; {:.1}s)",
            report.generation,
            report.listed,
            started.elapsed().as_secs_f64()
        ),
        Some(import) => println!(
            "catalog generation {}: {} documents fetched ({}), {} stored; {} documents and {} KBs in the catalog{}; {} machines re-evaluated{} ({:.1}s)",
            report.generation,
            report.fetched.len(),
            abbreviate(&report.fetched),
            import.summary.stored.len(),
            import.documents,
            import.kbs,
            import.as_of.map(|d| format!(" as of {d}")).unwrap_or_default(),
            import.machines_reevaluated,
            changed_during(import),
            started.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}

/// Writes the state beside the database through a temporary file, so a crash never leaves
/// half a file (a lost state only costs unconditional requests next time).
fn write_state(path: &Path, state: &SyncState) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state)?;
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn abbreviate(ids: &[String]) -> String {
    if ids.len() <= 6 {
        ids.join(", ")
    } else {
        format!(
            "{}, … {}",
            ids[..3].join(", "),
            ids[ids.len() - 2..].join(", ")
        )
    }
}

/// The stored catalog's documents, for a report on them; an empty store is an error.
fn stored_documents(store: &dyn Store) -> anyhow::Result<Vec<CvrfDocument>> {
    let docs = store
        .load_documents()
        .context("cannot read the stored catalog")?;
    anyhow::ensure!(
        !docs.is_empty(),
        "the store holds no catalog: import one, or give files or directories to read"
    );
    Ok(docs)
}

/// `kbgap catalog coverage --evaluation`: how the catalog judges each family.
pub fn evaluation_coverage(store: &dyn Store, paths: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let report = if paths.is_empty() {
        let docs = stored_documents(store)?;
        let as_of = store.catalog_state()?.as_of;
        kbgap_catalog::evaluation_coverage(&docs, &kbgap_service::compile(&docs, as_of))
    } else {
        let docs = kbgap_catalog::read_documents(paths).context("cannot read the documents")?;
        let catalog = kbgap_service::compile(&docs, None);
        kbgap_catalog::evaluation_coverage(&docs, &catalog)
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        emit(&report.to_string())
    }
}

pub fn coverage(store: &dyn Store, paths: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let report = if paths.is_empty() {
        kbgap_catalog::coverage(&stored_documents(store)?)
    } else {
        let read = kbgap_catalog::read_documents_with_products(paths)
            .context("cannot read the documents")?;
        kbgap_catalog::coverage_with_products(&read)
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        emit(&report.to_string())?;
    }
    let failures = report.failures();
    anyhow::ensure!(
        failures.is_empty(),
        "{} product name(s) with a numeric KB from {} on are unmapped (first: {})",
        failures.len(),
        kbgap_catalog::GATE_YEAR,
        failures[0].name
    );
    Ok(())
}

/// `wrongBranchFixedBuild`, `wrong-branch-fixed-build` and `WRONG_BRANCH_FIXED_BUILD` are
/// the same kind.
fn kind_key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub fn repairs(store: &dyn Store, kind: Option<&str>, json: bool) -> anyhow::Result<()> {
    let holder = CatalogHolder::load(store)?;
    let compiled = holder.current();
    let all = compiled.catalog.repairs();
    // A kind's name is its JSON name, as in explanations.
    let name_of = |r: &kbgap_domain::catalog::Repair| -> String { r.kind.to_string() };
    let mut kinds: Vec<String> = all.iter().map(name_of).collect();
    kinds.sort();
    kinds.dedup();
    let selected: Vec<&kbgap_domain::catalog::Repair> = match kind {
        None => all.iter().collect(),
        Some(k) => {
            let key = kind_key(k);
            anyhow::ensure!(
                kinds.iter().any(|n| kind_key(n) == key),
                "no repair of kind '{k}' in catalog generation {}; kinds present: {}",
                compiled.generation,
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            );
            all.iter()
                .filter(|r| kind_key(&name_of(r)) == key)
                .collect()
        }
    };
    if json {
        return emit(&format!("{}\n", serde_json::to_string_pretty(&selected)?));
    }
    let mut out = format!(
        "{} catalog repair(s) in generation {}{}\n",
        selected.len(),
        compiled.generation,
        kind.map(|k| format!(" of kind {k}")).unwrap_or_default()
    );
    if !selected.is_empty() {
        out.push_str("kind\tKB\tproduct\tevidence\n");
    }
    for r in selected {
        out.push_str(&format!(
            "{}\tKB{}\t{}\t{}\n",
            name_of(r),
            r.kb,
            r.product_name,
            r.evidence
        ));
    }
    emit(&out)
}

/// Writes a report to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

pub fn run(cmd: CatalogCommand, storage: &Storage) -> anyhow::Result<()> {
    let store = open_store(storage)?;
    match cmd {
        CatalogCommand::Import { paths, as_of } => import_catalog(store.as_ref(), &paths, as_of),
        CatalogCommand::Sync {
            base_url,
            as_of,
            attempts,
            backoff_ms,
            max_backoff_ms,
            timeout_secs,
        } => sync_catalog(
            store.as_ref(),
            &storage.data_dir,
            SyncArgs {
                base_url,
                as_of,
                attempts,
                backoff: Duration::from_millis(backoff_ms),
                max_backoff: Duration::from_millis(max_backoff_ms),
                timeout: Duration::from_secs(timeout_secs),
            },
        ),
        CatalogCommand::Status => catalog_status(store.as_ref()),
        CatalogCommand::Coverage {
            paths,
            json,
            evaluation: true,
        } => evaluation_coverage(store.as_ref(), &paths, json),
        CatalogCommand::Coverage { paths, json, .. } => coverage(store.as_ref(), &paths, json),
        CatalogCommand::Repairs { kind, json } => repairs(store.as_ref(), kind.as_deref(), json),
    }
}
