//! The `kbgap` binary: CLI, configuration, wiring and graceful shutdown. Everything it does
//! is a call into the service, store, auth and api crates.

mod commands;
mod config;
mod demo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kbgap_store::{PostgresStore, SqliteStore, Store};

use crate::commands::catalog::CatalogCommand;
use crate::commands::inventory::InventoryCommand;
use crate::commands::quickstart::QuickstartArgs;
use crate::commands::token::TokenArgs;
use crate::config::ServerFlags;

/// mimalloc: the request path and ingestion allocate many small objects across threads, where
/// it is markedly faster than the system allocator (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Store everything in this PostgreSQL database instead of SQLite in the data directory,
    /// e.g. postgres://kbgap:PASSWORD@db.contoso.com:5432/kbgap; several replicas may share
    /// one. Migrations are applied when the store is opened.
    #[arg(
        long,
        env = "KBGAP_DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
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
    /// Explain why each KB is or is not missing on a stored machine, or list the machines
    /// kbgap cannot decide for a software.
    Explain(commands::explain::ExplainArgs),
    /// Print a development token signed by this kbgap's development issuer.
    Token(TokenArgs),
    /// Set up everything and serve: import the catalog, load a demo fleet, print a token and a
    /// ready-to-paste curl command.
    Quickstart(QuickstartArgs),
}

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

/// A command whose output is piped into `head` or `less` ends quietly when the reader goes
/// away, as Unix tools do, instead of panicking on the closed pipe. Not for the commands that
/// serve: a client closing its connection must stay an error of that connection.
#[cfg(unix)]
fn end_quietly_on_closed_pipe() {
    // SAFETY: restoring a signal's default disposition at start-up, before any other thread
    // exists, has no memory-safety requirement.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_on_closed_pipe() {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Quickstart(_)) {
        end_quietly_on_closed_pipe();
    }
    init_logging(cli.log_format);
    let file = config::load_file(cli.config.as_deref())?;
    let storage = config::storage(cli.data_dir, cli.database_url, &file);
    match cli.command {
        Command::Serve(flags) => {
            let store = open_store_for_serving(&storage)?;
            runtime()?.block_on(commands::serve::serve(
                store,
                &storage.data_dir,
                &flags,
                &file,
                None,
            ))
        }
        Command::Catalog(cmd) => commands::catalog::run(cmd, &storage),
        Command::Inventory(cmd) => commands::inventory::run(cmd, &storage),
        Command::Explain(args) => commands::explain::run(&args, &storage),
        Command::Token(args) => commands::token::run(&args, &storage.data_dir, &file),
        Command::Quickstart(args) => commands::quickstart::quickstart(&storage, &file, args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Opens the store the configuration names: PostgreSQL if a database URL is given, else
/// SQLite in the data directory.
/// How often a server whose PostgreSQL cannot be reached tries again.
const DATABASE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// For `serve`: a PostgreSQL store that cannot be reached yet is opened in the background, so
/// the server comes up and `/readyz` says why it is not ready; any other error (a malformed
/// URL, a schema newer than this kbgap) stops the start.
fn open_store_for_serving(storage: &config::Storage) -> anyhow::Result<Arc<dyn Store>> {
    let Some(url) = &storage.database_url else {
        return open_store(storage);
    };
    match PostgresStore::open(url) {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) if e.is_unavailable() => {
            let target = match &e {
                kbgap_store::StoreError::Unreachable { target, .. } => target.clone(),
                _ => "the database".to_string(),
            };
            tracing::warn!(
                error = %e,
                retry_secs = DATABASE_RETRY.as_secs(),
                "the database cannot be reached; serving anyway and retrying: /readyz answers 503 until it answers"
            );
            let url = url.clone();
            Ok(kbgap_store::DeferredStore::open_in_background(
                target,
                e.reason(),
                DATABASE_RETRY,
                move || Ok(Arc::new(PostgresStore::open(&url)?) as Arc<dyn Store>),
            ))
        }
        Err(e) => Err(e).context("cannot open the PostgreSQL store"),
    }
}

fn open_store(storage: &config::Storage) -> anyhow::Result<Arc<dyn Store>> {
    match &storage.database_url {
        Some(url) => {
            let store = PostgresStore::open(url).context("cannot open the PostgreSQL store")?;
            tracing::debug!(servers = store.target(), "opened the PostgreSQL store");
            Ok(Arc::new(store))
        }
        None => {
            let dir = &storage.data_dir;
            let store = SqliteStore::open(dir)
                .with_context(|| format!("cannot open the store in {}", dir.display()))?;
            Ok(Arc::new(store))
        }
    }
}
