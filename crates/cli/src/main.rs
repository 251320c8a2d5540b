//! The `kbgap` binary: CLI, configuration, wiring and graceful shutdown. Everything it does
//! is a call into the service, store, auth and api crates.

mod config;
mod demo;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kbgap_api::{Application, Services};
use kbgap_auth::{issuer_for, DevIssuer, MintRequest, StaticJwks, Validator, ValidatorConfig};
use kbgap_domain::TenantId;
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::{SqliteStore, Store};
use time::OffsetDateTime;

use crate::config::{AuthMode, FileConfig, ServerFlags};

#[derive(Parser)]
#[command(
    name = "kbgap",
    version,
    about = "Which security updates are missing, on how many machines: Microsoft Defender's getmissingkbs, self-hosted",
    long_about = None
)]
struct Cli {
    /// TOML configuration file (see README); flags and KBGAP_* variables override it.
    #[arg(long, env = "KBGAP_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory of the embedded database and the development issuer key [default: ./kbgap-data].
    #[arg(long, env = "KBGAP_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Log format: text for terminals, json for log collectors.
    #[arg(
        long,
        env = "KBGAP_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (getmissingkbs, inventory ingestion, health, development issuer).
    Serve(ServerFlags),
    /// Import and inspect the security-update catalog (MSRC CVRF documents).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Import machine inventory.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Print a development token signed by this kbgap's development issuer.
    Token(TokenArgs),
    /// Set up everything and serve: import the catalog, load a demo fleet, print a token and a
    /// ready-to-paste curl command.
    Quickstart(QuickstartArgs),
}

#[derive(Subcommand)]
enum CatalogCommand {
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

#[derive(Subcommand)]
enum InventoryCommand {
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

#[derive(clap::Args)]
struct TokenArgs {
    /// Tenant id, the token's `tid`.
    #[arg(long)]
    tenant: String,
    /// Application role (repeatable), e.g. Software.Read.All, Machine.ReadWrite.All.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Delegated scope (repeatable), e.g. Software.Read; makes a delegated token.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Lifetime, e.g. 3600, 90m, 1h, 2d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,
    /// Client application id (`appid` / `azp`).
    #[arg(long, default_value = DEV_APP_ID)]
    app_id: String,
    /// Audience (`aud`).
    #[arg(long, default_value = "https://api.securitycenter.microsoft.com")]
    audience: String,
}

#[derive(clap::Args)]
struct QuickstartArgs {
    /// Directory of MSRC CVRF documents, e.g. ../shared/data/msrc-cvrf.
    #[arg(long)]
    msrc_dir: PathBuf,
    /// Cut the catalog at this date (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    as_of: Option<time::Date>,
    /// Set up and print, but do not serve.
    #[arg(long)]
    no_serve: bool,
    #[command(flatten)]
    server: ServerFlags,
}

const DEV_APP_ID: &str = "kbgap-dev-client";

fn parse_date(s: &str) -> Result<time::Date, String> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("'{s}' is not a date in the form YYYY-MM-DD"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 3600, 90m, 1h or 2d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => {
            return Err(format!(
                "'{s}' is not a duration such as 3600, 90m, 1h or 2d"
            ))
        }
    };
    if secs == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let file = config::load_file(cli.config.as_deref())?;
    let data_dir = config::data_dir(cli.data_dir, &file);
    match cli.command {
        Command::Serve(flags) => {
            let store = open_store(&data_dir)?;
            runtime()?.block_on(serve(store, &data_dir, &flags, &file, None))
        }
        Command::Catalog(CatalogCommand::Import { paths, as_of }) => {
            let store = open_store(&data_dir)?;
            import_catalog(store.as_ref(), &paths, as_of)
        }
        Command::Catalog(CatalogCommand::Status) => catalog_status(open_store(&data_dir)?.as_ref()),
        Command::Inventory(InventoryCommand::Import { tenant, files }) => {
            let tenant = TenantId::parse(&tenant).context("--tenant")?;
            import_inventory(open_store(&data_dir)?.as_ref(), &tenant, &files)
        }
        Command::Token(args) => {
            let dev = DevIssuer::load_or_create(&data_dir)?;
            let template = config::auth_settings(&ServerFlags::default(), &file).dev_issuer;
            println!("{}", mint(&dev, &template, &args)?);
            Ok(())
        }
        Command::Quickstart(args) => quickstart(&data_dir, &file, args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn open_store(data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let store = SqliteStore::open(data_dir)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    Ok(Arc::new(store))
}

fn import_catalog(
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

fn catalog_status(store: &dyn Store) -> anyhow::Result<()> {
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

fn import_inventory(store: &dyn Store, tenant: &TenantId, files: &[PathBuf]) -> anyhow::Result<()> {
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

fn mint(dev: &DevIssuer, template: &str, args: &TokenArgs) -> anyhow::Result<String> {
    let tenant = TenantId::parse(&args.tenant).context("--tenant")?;
    if args.roles.is_empty() && args.scopes.is_empty() {
        bail!("give at least one --role (e.g. Software.Read.All) or --scope (e.g. Software.Read)");
    }
    Ok(dev.mint(&MintRequest {
        issuer: issuer_for(template, &tenant),
        tenant,
        audience: args.audience.clone(),
        app_id: args.app_id.clone(),
        roles: args.roles.clone(),
        scopes: args.scopes.clone(),
        ttl: args.ttl,
        now_unix: OffsetDateTime::now_utc().unix_timestamp(),
    })?)
}

async fn serve(
    store: Arc<dyn Store>,
    data_dir: &Path,
    flags: &ServerFlags,
    file: &FileConfig,
    on_ready: Option<Box<dyn FnOnce(std::net::SocketAddr) + Send>>,
) -> anyhow::Result<()> {
    let api = config::api_config(flags, file)?;
    let auth = config::auth_settings(flags, file);
    let mut validator_config = ValidatorConfig::default();
    if let Some(a) = &auth.audiences {
        validator_config.audiences = a.clone();
    }
    if let Some(t) = &auth.allowed_tenants {
        validator_config.allowed_tenants = Some(
            t.iter()
                .map(|t| TenantId::parse(t))
                .collect::<Result<_, _>>()
                .context("auth.allowed_tenants")?,
        );
    }
    let (keys, dev_issuer) = match auth.mode {
        AuthMode::Development => {
            if !api.listen.ip().is_loopback() && !auth.force_dev_issuer {
                bail!(
                    "the development issuer lets anyone with this data directory mint tokens; it \
                     only runs on a loopback address. Listen on 127.0.0.1, use --auth-mode \
                     jwks-file, or pass --force-dev-issuer"
                );
            }
            let dev = Arc::new(DevIssuer::load_or_create(data_dir)?);
            validator_config.issuer_templates = vec![auth.dev_issuer.clone()];
            (dev.key_source(), Some(dev))
        }
        AuthMode::JwksFile => {
            let path = auth
                .jwks_file
                .as_ref()
                .context("auth mode jwks-file needs --jwks-file (or auth.jwks_file)")?;
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the JWKS file {}", path.display()))?;
            let jwks = StaticJwks::from_json(&json)
                .with_context(|| format!("JWKS file {} is invalid", path.display()))?;
            if let Some(i) = &auth.issuers {
                validator_config.issuer_templates = i.clone();
            }
            (Arc::new(jwks) as Arc<dyn kbgap_auth::KeySource>, None)
        }
    };
    let validator =
        Arc::new(Validator::new(validator_config, keys).context("authentication settings")?);
    let catalog = {
        let store = store.clone();
        Arc::new(tokio::task::spawn_blocking(move || CatalogHolder::load(store.as_ref())).await??)
    };
    if catalog.current().generation == 0 {
        tracing::warn!("no catalog imported yet: run `kbgap catalog import DIR`; /readyz answers 503 until then");
    }
    let app = Application::bind(
        api,
        Services {
            store,
            catalog,
            validator,
            dev_issuer,
        },
    )
    .await
    .context("cannot listen")?;
    let addr = app.local_addr();
    tracing::info!(%addr, "kbgap listening");
    if let Some(f) = on_ready {
        f(addr);
    }
    app.run(shutdown_signal()).await?;
    tracing::info!("kbgap stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down; finishing in-flight requests");
}

fn quickstart(data_dir: &Path, file: &FileConfig, args: QuickstartArgs) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
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
