//! `kbgap token`: development tokens signed by this kbgap's development issuer.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use kbgap_auth::{issuer_for, DevIssuer, MintRequest};
use kbgap_domain::TenantId;
use time::OffsetDateTime;

use crate::config::{self, FileConfig, ServerFlags};
use crate::parse_duration;

#[derive(clap::Args)]
pub struct TokenArgs {
    /// Tenant id, the token's `tid`.
    #[arg(long)]
    pub tenant: String,
    /// Application role (repeatable), e.g. Software.Read.All, Machine.ReadWrite.All.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Delegated scope (repeatable), e.g. Software.Read; makes a delegated token.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Lifetime, e.g. 3600, 90m, 1h, 2d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Client application id (`appid` / `azp`).
    #[arg(long, default_value = DEV_APP_ID)]
    pub app_id: String,
    /// Audience (`aud`).
    #[arg(long, default_value = "https://api.securitycenter.microsoft.com")]
    pub audience: String,
}

pub const DEV_APP_ID: &str = "kbgap-dev-client";

pub fn mint(dev: &DevIssuer, template: &str, args: &TokenArgs) -> anyhow::Result<String> {
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

pub fn run(args: &TokenArgs, data_dir: &Path, file: &FileConfig) -> anyhow::Result<()> {
    let dev = DevIssuer::load_or_create(data_dir)?;
    let template = config::auth_settings(&ServerFlags::default(), file).dev_issuer;
    println!("{}", mint(&dev, &template, args)?);
    Ok(())
}
