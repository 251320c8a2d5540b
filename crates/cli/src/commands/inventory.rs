//! `kbgap inventory …`: import machine snapshots from files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use kbgap_domain::TenantId;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::Store;
use time::OffsetDateTime;

use crate::open_store;

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// Import machine snapshots into one tenant: `.json` files hold one snapshot or an array,
    /// `.ndjson`/`.jsonl` files one snapshot per line (see docs/snapshot.md). All files are
    /// validated first: a bad one stores nothing.
    Import {
        /// The tenant (Azure AD tenant id) that owns the machines.
        #[arg(long)]
        tenant: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn import_inventory(
    store: &dyn Store,
    tenant: &TenantId,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    let mut snapshots = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let ndjson = f
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ndjson") || e.eq_ignore_ascii_case("jsonl"));
        let parsed = if ndjson {
            kbgap_inventory::parse_snapshots(&bytes, true)
        } else if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            kbgap_inventory::parse_snapshots(&bytes, false)
        } else {
            kbgap_inventory::parse_snapshot(&bytes).map(|s| vec![s])
        }
        .with_context(|| format!("{}: invalid snapshot; nothing was stored", f.display()))?;
        for (i, s) in parsed.iter().enumerate() {
            if s.id.is_none() {
                bail!(
                    "{}: entry {i} has no \"id\"; nothing was stored",
                    f.display()
                );
            }
        }
        snapshots.extend(parsed);
    }
    let holder = CatalogHolder::load(store)?;
    kbgap_service::ingest(
        store,
        &holder,
        tenant,
        &snapshots,
        OffsetDateTime::now_utc(),
        Retention::default(),
    )?;
    println!("stored {} machine(s) for tenant {tenant}", snapshots.len());
    Ok(())
}

pub fn run(cmd: InventoryCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        InventoryCommand::Import { tenant, files } => {
            let tenant = TenantId::parse(&tenant).context("--tenant")?;
            import_inventory(open_store(data_dir)?.as_ref(), &tenant, &files)
        }
    }
}
