//! kbgap's configuration: one typed struct resolved from flags, `KBGAP_…` environment
//! variables and an optional TOML file (in that order of precedence), validated at start-up.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use kbgap_api::ApiConfig;
use kbgap_service::Retention;
use serde::Deserialize;

/// The optional configuration file (`--config`, `KBGAP_CONFIG`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub auth: AuthFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<SocketAddr>,
    pub public_base_url: Option<String>,
    pub trusted_proxies: Option<Vec<IpAddr>>,
    pub retention_days: Option<u64>,
    pub max_batch: Option<usize>,
    pub body_limit_bytes: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub sweep_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// `development` (the server is its own issuer) or `jwks-file`.
    pub mode: Option<AuthMode>,
    pub jwks_file: Option<PathBuf>,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub allowed_tenants: Option<Vec<String>>,
    pub dev_issuer: Option<String>,
    pub force_dev_issuer: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// kbgap signs its own tokens (`kbgap token`); loopback addresses only unless forced.
    Development,
    /// Tokens of a real identity provider, verified with the keys of a JWKS file.
    JwksFile,
}

/// Loads the configuration file, if one is named.
pub fn load_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("configuration file {} is invalid", path.display()))
}

pub const DEFAULT_DATA_DIR: &str = "kbgap-data";

pub fn data_dir(flag: Option<PathBuf>, file: &FileConfig) -> PathBuf {
    flag.or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// Server flags, each overriding the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServerFlags {
    /// Address to listen on.
    #[arg(long, env = "KBGAP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Public base URL clients use (for `@odata.context`), e.g. https://kbgap.contoso.com.
    #[arg(long, env = "KBGAP_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// Proxy address whose X-Forwarded-Proto/-Host headers are trusted (repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "KBGAP_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// Days a machine stays active after it was last seen.
    #[arg(long, env = "KBGAP_RETENTION_DAYS")]
    pub retention_days: Option<u64>,
    /// How authentication works.
    #[arg(long, env = "KBGAP_AUTH_MODE", value_enum)]
    pub auth_mode: Option<AuthMode>,
    /// JWKS file with the identity provider's signing keys (auth mode jwks-file).
    #[arg(long, env = "KBGAP_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// Run the development issuer on a non-loopback address anyway.
    #[arg(long, env = "KBGAP_FORCE_DEV_ISSUER")]
    pub force_dev_issuer: bool,
}

/// Authentication settings after resolution.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub jwks_file: Option<PathBuf>,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub allowed_tenants: Option<Vec<String>>,
    pub dev_issuer: String,
    pub force_dev_issuer: bool,
}

pub fn auth_settings(flags: &ServerFlags, file: &FileConfig) -> AuthSettings {
    let f = &file.auth;
    AuthSettings {
        mode: flags.auth_mode.or(f.mode).unwrap_or(AuthMode::Development),
        jwks_file: flags.jwks_file.clone().or_else(|| f.jwks_file.clone()),
        issuers: f.issuers.clone(),
        audiences: f.audiences.clone(),
        allowed_tenants: f.allowed_tenants.clone(),
        dev_issuer: f
            .dev_issuer
            .clone()
            .unwrap_or_else(|| kbgap_auth::DEV_ISSUER_TEMPLATE.to_string()),
        force_dev_issuer: flags.force_dev_issuer || f.force_dev_issuer.unwrap_or(false),
    }
}

/// Resolves and validates the server configuration.
pub fn api_config(flags: &ServerFlags, file: &FileConfig) -> anyhow::Result<ApiConfig> {
    let s = &file.server;
    let mut c = ApiConfig::default();
    if let Some(l) = flags.listen.or(s.listen) {
        c.listen = l;
    }
    c.public_base_url = flags
        .public_base_url
        .clone()
        .or_else(|| s.public_base_url.clone());
    if let Some(url) = &c.public_base_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("public base URL '{url}' must start with http:// or https://");
        }
    }
    c.trusted_proxies = if flags.trusted_proxies.is_empty() {
        s.trusted_proxies.clone().unwrap_or_default()
    } else {
        flags.trusted_proxies.clone()
    };
    let days = flags.retention_days.or(s.retention_days).unwrap_or(30);
    if days == 0 || days > 3650 {
        bail!("retention must be between 1 and 3650 days, not {days}");
    }
    c.retention = Retention(Duration::from_secs(days * 24 * 3600));
    if let Some(n) = s.max_batch {
        if n == 0 {
            bail!("server.max_batch must be at least 1");
        }
        c.max_batch = n;
    }
    if let Some(n) = s.body_limit_bytes {
        c.body_limit = n;
    }
    if let Some(n) = s.request_timeout_secs {
        c.request_timeout = Duration::from_secs(n.max(1));
    }
    if let Some(n) = s.sweep_interval_secs {
        c.sweep_interval = Duration::from_secs(n.max(1));
    }
    c.dev_issuer_template = auth_settings(flags, file).dev_issuer;
    Ok(c)
}
