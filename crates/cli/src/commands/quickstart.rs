//! `kbgap quickstart`: import the catalog, load a demo fleet, print a token and a curl
//! command, and serve.

use std::path::PathBuf;
use std::time::Duration;

use kbgap_auth::DevIssuer;
use kbgap_domain::TenantId;
use kbgap_service::{CatalogHolder, Retention};
use time::OffsetDateTime;

use crate::commands::catalog::import_catalog;
use crate::commands::serve::serve;
use crate::commands::token::{mint, TokenArgs, DEV_APP_ID};
use crate::config::{self, FileConfig, ServerFlags, Storage};
use crate::{demo, open_store, parse_date, runtime};

#[derive(clap::Args)]
pub struct QuickstartArgs {
    /// Directory of MSRC CVRF documents, e.g. ../shared/data/msrc-cvrf.
    #[arg(long)]
    pub msrc_dir: PathBuf,
    /// Cut the catalog at this date (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    pub as_of: Option<time::Date>,
    /// Set up and print, but do not serve.
    #[arg(long)]
    pub no_serve: bool,
    #[command(flatten)]
    pub server: ServerFlags,
}

pub fn quickstart(
    storage: &Storage,
    file: &FileConfig,
    args: QuickstartArgs,
) -> anyhow::Result<()> {
    let data_dir = storage.data_dir.as_path();
    let store = open_store(storage)?;
    import_catalog(
        store.as_ref(),
        std::slice::from_ref(&args.msrc_dir),
        args.as_of,
    )?;
    let holder = CatalogHolder::load(store.as_ref())?;
    let tenant = TenantId::parse(demo::DEMO_TENANT)?;
    let now = OffsetDateTime::now_utc();
    let fleet = demo::fleet(&holder.current().catalog, now);
    kbgap_service::ingest(
        store.as_ref(),
        &holder,
        &tenant,
        &fleet,
        now,
        Retention::default(),
    )?;
    println!(
        "loaded a demo fleet of {} machines into tenant {tenant}",
        fleet.len()
    );
    for software in demo::SOFTWARE {
        let sw = kbgap_domain::SoftwareId::parse(software)?;
        let rows =
            kbgap_service::missing_kbs(store.as_ref(), &holder.current().catalog, &tenant, &sw)?
                .unwrap_or_default();
        let summary: Vec<String> = rows
            .iter()
            .map(|r| format!("KB{} on {}", r.kb, r.machines))
            .collect();
        println!(
            "  {software}: {}",
            if summary.is_empty() {
                "nothing missing".into()
            } else {
                summary.join(", ")
            }
        );
    }
    let dev = DevIssuer::load_or_create(data_dir)?;
    let template = config::auth_settings(&args.server, file).dev_issuer;
    let token = mint(
        &dev,
        &template,
        &TokenArgs {
            tenant: tenant.to_string(),
            roles: vec!["Software.Read.All".into(), "Machine.ReadWrite.All".into()],
            scopes: vec![],
            ttl: Duration::from_secs(24 * 3600),
            app_id: DEV_APP_ID.into(),
            audience: "https://api.securitycenter.microsoft.com".into(),
        },
    )?;
    if args.no_serve {
        println!("\ntoken (24 h):\n{token}");
        return Ok(());
    }
    let ready = Box::new(move |addr: std::net::SocketAddr| {
        println!("\nkbgap is serving on http://{addr} (Ctrl-C stops it). Try:\n");
        println!(
            "curl -s -H 'Authorization: Bearer {token}' http://{addr}/api/Software/microsoft-_-windows_10/getmissingkbs\n"
        );
    });
    runtime()?.block_on(serve(store, data_dir, &args.server, file, Some(ready)))
}
