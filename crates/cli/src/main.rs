//! The `kbgap` binary: CLI, configuration, wiring and graceful shutdown. Everything it does
//! is a call into the service, store, auth and api crates.

mod commands;
mod config;
mod demo;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kbgap_store::{SqliteStore, Store};

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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let file = config::load_file(cli.config.as_deref())?;
    let data_dir = config::data_dir(cli.data_dir, &file);
    match cli.command {
        Command::Serve(flags) => {
            let store = open_store(&data_dir)?;
            runtime()?.block_on(commands::serve::serve(
                store, &data_dir, &flags, &file, None,
            ))
        }
        Command::Catalog(cmd) => commands::catalog::run(cmd, &data_dir),
        Command::Inventory(cmd) => commands::inventory::run(cmd, &data_dir),
        Command::Explain(args) => commands::explain::run(&args, &data_dir),
        Command::Token(args) => commands::token::run(&args, &data_dir, &file),
        Command::Quickstart(args) => commands::quickstart::quickstart(&data_dir, &file, args),
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
