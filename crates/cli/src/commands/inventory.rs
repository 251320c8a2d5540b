//! `kbgap inventory …`: import machine inventory from files: kbgap snapshots, or the outputs
//! of systeminfo, wmic qfe / Get-HotFix, osquery and MDE's software inventory export.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use kbgap_domain::{Arch, TenantId};
use kbgap_inventory::import::LastSeen;
use kbgap_inventory::{Format, ImportOptions, InputFile, Snapshot};
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::Store;
use time::OffsetDateTime;

use crate::config::Storage;
use crate::open_store;

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// Import machines into one tenant. Formats (detected per file, see
    /// docs/inventory-formats.md): kbgap snapshots (.json: one or an array; .ndjson/.jsonl:
    /// one per line), systeminfo, wmic qfe / Get-HotFix, osquery results (log or osqueryi
    /// --json), MDE software inventory export (JSON lines, .gz too). Files describing the same
    /// host (systeminfo + wmic qfe) become one machine. All files are read first: a bad one
    /// stores nothing.
    Import {
        /// The tenant (Azure AD tenant id) that owns the machines.
        #[arg(long)]
        tenant: String,
        /// auto, json, systeminfo, qfe, osquery or mde.
        #[arg(long, default_value = "auto", value_parser = parse_format)]
        format: Format,
        /// When machines of captures without a time of their own were last seen: an RFC 3339
        /// time, or `mtime` for each file's modification time [default: now; osquery results
        /// carry their own time].
        #[arg(long, value_parser = parse_last_seen)]
        last_seen: Option<LastSeen>,
        /// Architecture of machines whose source does not say it (MDE's software inventory;
        /// servers need none): x64, x86 or arm64.
        #[arg(long, value_parser = parse_arch)]
        arch: Option<Arch>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_last_seen(s: &str) -> Result<LastSeen, String> {
    if s.eq_ignore_ascii_case("mtime") {
        return Ok(LastSeen::FileModified);
    }
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(LastSeen::At)
        .map_err(|_| format!("'{s}' is neither an RFC 3339 time (2024-01-30T10:00:00Z) nor mtime"))
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    match s.to_ascii_lowercase().as_str() {
        "x64" | "amd64" => Ok(Arch::X64),
        "x86" => Ok(Arch::X86),
        "arm64" => Ok(Arch::Arm64),
        _ => Err(format!("'{s}' is not one of x64, x86, arm64")),
    }
}

/// Reads the files, builds the machines they describe, and stores them in one atomic
/// ingestion. Returns how many machines were stored.
pub fn import_inventory(
    store: &dyn Store,
    tenant: &TenantId,
    files: &[PathBuf],
    format: Format,
    last_seen: Option<LastSeen>,
    arch: Option<Arch>,
) -> anyhow::Result<usize> {
    let mut inputs = Vec::with_capacity(files.len());
    for f in files {
        if f.is_dir() {
            bail!(
                "{} is a directory: name the files (for example {}/*_systeminfo*.txt); nothing was stored",
                f.display(),
                f.display()
            );
        }
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let modified = std::fs::metadata(f)
            .and_then(|m| m.modified())
            .ok()
            .map(OffsetDateTime::from);
        inputs.push(InputFile {
            path: f.clone(),
            bytes,
            modified,
        });
    }
    let now = OffsetDateTime::now_utc();
    let imported = kbgap_inventory::import_files(
        &inputs,
        &ImportOptions {
            format,
            last_seen,
            now,
            arch,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}; nothing was stored"))?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    let mut snapshots: Vec<Snapshot> = imported.snapshots;
    // KB lists without OS facts (wmic qfe, osquery patches alone) update stored machines.
    for u in &imported.kb_updates {
        let stored = store
            .machine_snapshot(tenant, &u.id)?
            .map(|json| kbgap_inventory::parse_snapshot(json.as_bytes()))
            .transpose()
            .with_context(|| format!("stored snapshot of machine {}", u.id))?;
        let Some(stored) = stored else {
            bail!(
                "{}:{}: machine '{}' is not stored and the file says nothing about its OS: import \
                 its systeminfo (or osquery os_version) with it, or first; nothing was stored",
                u.file.display(),
                u.line,
                u.id
            );
        };
        snapshots.push(kbgap_inventory::apply_kb_update(stored, u));
    }
    // Validate like the API does, naming the file, before anything is written.
    for s in &snapshots {
        s.facts()
            .with_context(|| format!("machine {:?}: invalid snapshot; nothing was stored", s.id))?;
    }
    let holder = CatalogHolder::load(store)?;
    kbgap_service::ingest(
        store,
        &holder,
        tenant,
        &snapshots,
        now,
        Retention::default(),
    )?;
    Ok(snapshots.len())
}

pub fn run(cmd: InventoryCommand, storage: &Storage) -> anyhow::Result<()> {
    match cmd {
        InventoryCommand::Import {
            tenant,
            format,
            last_seen,
            arch,
            files,
        } => {
            let tenant = TenantId::parse(&tenant).context("--tenant")?;
            let n = import_inventory(
                open_store(storage)?.as_ref(),
                &tenant,
                &files,
                format,
                last_seen,
                arch,
            )?;
            println!("stored {n} machine(s) for tenant {tenant}");
            Ok(())
        }
    }
}
