//! kbgap's configuration: one typed struct resolved from flags, `KBGAP_…` environment
//! variables and an optional TOML file (in that order of precedence), validated at start-up.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use kbgap_api::ratelimit::Quota;
use kbgap_api::{ApiConfig, RateLimits};
use kbgap_auth::{JwksLocation, TenantScope};
use kbgap_domain::TenantId;
use kbgap_service::Retention;
use serde::Deserialize;

/// The optional configuration file (`--config`, `KBGAP_CONFIG`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    /// `postgres://…`: store everything in PostgreSQL instead of SQLite in the data directory.
    pub database_url: Option<String>,
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub rate_limits: RateLimitsFile,
}

/// `[rate_limits]`: per (route template, tenant, client app), and failed authentications per
/// client address (api-contract.md §4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    pub per_minute: Option<u64>,
    pub per_hour: Option<u64>,
    pub auth_failures_per_minute: Option<u64>,
    /// Counts shared by several replicas in this Redis (`redis://…`); in process without it.
    pub redis_url: Option<RedisUrl>,
    /// Replicas sharing the limits: while Redis is unreachable, each keeps its share.
    pub replicas: Option<u64>,
    /// Overrides by route template, e.g. `"/api/Software/{id}/getmissingkbs"`.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimitFile {
    pub per_minute: Option<u64>,
    pub per_hour: Option<u64>,
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
    pub change_poll_millis: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub header_read_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// `development` (the server is its own issuer), `oidc` or `jwks-file`.
    pub mode: Option<AuthMode>,
    pub jwks_file: Option<PathBuf>,
    /// Mode `oidc`: the JWKS URL of the issuers in `issuers`.
    pub jwks_url: Option<String>,
    /// Mode `oidc`: the discovery document of the issuers in `issuers`.
    pub discovery_url: Option<String>,
    /// Mode `oidc`: several identity providers, each verified only with its own keys.
    pub providers: Option<Vec<ProviderFile>>,
    /// Mode `oidc`: how long one key fetch (discovery and JWKS) may take, in seconds; a
    /// request naming an unknown key waits at most this long (default 3).
    pub key_fetch_timeout_secs: Option<u64>,
    /// Validated tokens remembered (0 disables the cache).
    pub token_cache_entries: Option<usize>,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub allowed_tenants: Option<Vec<String>>,
    pub dev_issuer: Option<String>,
    pub force_dev_issuer: Option<bool>,
    /// Signature algorithms accepted (default `["RS256"]`); RSA ones only, never HMAC.
    pub algorithms: Option<Vec<String>>,
}

/// One identity provider of `[[auth.providers]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// Issuer templates (`{tid}` is the token's tenant) whose tokens these keys verify.
    pub issuers: Vec<String>,
    pub discovery_url: Option<String>,
    pub jwks_url: Option<String>,
    /// The tenants (`tid`) this provider may vouch for. Needed, with other providers, when
    /// its issuers do not name their tenant by a GUID path segment.
    pub tenants: Option<Vec<String>>,
    /// Lets this provider vouch for every tenant although other providers are configured:
    /// for a multi-tenant provider that guarantees `tid` itself, such as Azure AD.
    pub any_tenant: Option<bool>,
}

/// One identity provider after resolution: its issuer templates, where its keys are, and
/// the tenants it may vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    pub issuers: Vec<String>,
    pub location: JwksLocation,
    pub tenants: TenantScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// kbgap signs its own tokens (`kbgap token`); loopback addresses only unless forced.
    Development,
    /// Tokens of real identity providers, keys from OpenID discovery or a JWKS URL, cached and
    /// refreshed (Azure AD by default).
    Oidc,
    /// Tokens of a real identity provider, verified with the keys of a JWKS file.
    JwksFile,
}

/// Azure AD's key sets: v1.0 tokens (`sts.windows.net`) and v2.0 tokens, each issuer bound to
/// its own set.
pub const AZURE_V1_ISSUER: &str = "https://sts.windows.net/{tid}/";
pub const AZURE_V1_JWKS: &str = "https://login.microsoftonline.com/common/discovery/keys";
pub const AZURE_V2_ISSUER: &str = "https://login.microsoftonline.com/{tid}/v2.0";
pub const AZURE_V2_DISCOVERY: &str =
    "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration";

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

/// Where kbgap keeps its data: the store is PostgreSQL when a database URL is given, else
/// SQLite in the data directory, which also holds the development issuer's key and the
/// catalog sync state either way.
pub struct Storage {
    pub data_dir: PathBuf,
    /// May hold a password: never printed.
    pub database_url: Option<String>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Resolves the storage settings; an empty database URL counts as none.
pub fn storage(
    data_dir_flag: Option<PathBuf>,
    database_url_flag: Option<String>,
    file: &FileConfig,
) -> Storage {
    Storage {
        data_dir: data_dir(data_dir_flag, file),
        database_url: database_url_flag
            .or_else(|| file.database_url.clone())
            .filter(|u| !u.trim().is_empty()),
    }
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
    /// Accepted issuer template, `{tid}` standing for the token's tenant (repeatable; auth mode
    /// oidc or jwks-file). Without --jwks-url or --discovery-url, an issuer without `{tid}` is
    /// discovered at {issuer}/.well-known/openid-configuration.
    #[arg(long = "issuer", env = "KBGAP_ISSUERS", value_delimiter = ',')]
    pub issuers: Vec<String>,
    /// JWKS URL of the issuers (auth mode oidc).
    #[arg(long, env = "KBGAP_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// OpenID discovery document of the issuers (auth mode oidc).
    #[arg(long, env = "KBGAP_DISCOVERY_URL")]
    pub discovery_url: Option<String>,
    /// Accepted audience (repeatable); default: MDE's.
    #[arg(long = "audience", env = "KBGAP_AUDIENCES", value_delimiter = ',')]
    pub audiences: Vec<String>,
    /// Only these tenants are accepted (repeatable); default: any.
    #[arg(
        long = "allowed-tenant",
        env = "KBGAP_ALLOWED_TENANTS",
        value_delimiter = ','
    )]
    pub allowed_tenants: Vec<String>,
    /// Calls per minute per (route, tenant, client app) [default: 100].
    #[arg(long, env = "KBGAP_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u64>,
    /// Calls per hour per (route, tenant, client app) [default: 1500].
    #[arg(long, env = "KBGAP_RATE_LIMIT_PER_HOUR")]
    pub rate_limit_per_hour: Option<u64>,
    /// Per-route limit, ROUTE=PER_MINUTE/PER_HOUR, e.g.
    /// '/api/Software/{id}/getmissingkbs=50/1000' (repeatable).
    #[arg(
        long = "route-rate-limit",
        env = "KBGAP_ROUTE_RATE_LIMITS",
        value_delimiter = ','
    )]
    pub route_rate_limits: Vec<String>,
    /// Timeout of one signing-key fetch (discovery and JWKS), in seconds; a request naming an
    /// unknown key waits at most this long [default: 3].
    #[arg(long, env = "KBGAP_KEY_FETCH_TIMEOUT_SECS")]
    pub key_fetch_timeout_secs: Option<u64>,
    /// Failed authentications per client address and minute [default: 60].
    #[arg(long, env = "KBGAP_AUTH_FAILURES_PER_MINUTE")]
    pub auth_failures_per_minute: Option<u64>,
    /// Share the rate limits between replicas through this Redis, e.g.
    /// redis://:PASSWORD@cache.contoso.com:6379/0; without it each server limits in process.
    /// An unreachable Redis is not fatal: each replica then limits locally to its share
    /// (see --replicas) and returns to Redis when it answers.
    #[arg(long, env = "KBGAP_REDIS_URL")]
    pub redis_url: Option<RedisUrl>,
    /// Number of replicas sharing the rate limits: while Redis is unreachable, each keeps
    /// limit / replicas calls per window (at least 1) [default: 1].
    #[arg(long, env = "KBGAP_REPLICAS")]
    pub replicas: Option<u64>,
    /// Connections served at once [default: 1024].
    #[arg(long, env = "KBGAP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections one client address may hold at once, at most --max-connections; trusted
    /// proxies are exempt [default: 128, or --max-connections if lower].
    #[arg(long, env = "KBGAP_MAX_CONNECTIONS_PER_CLIENT")]
    pub max_connections_per_client: Option<usize>,
    /// Largest request head apart from Authorization, in bytes [default: 65536].
    #[arg(long, env = "KBGAP_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
}

/// Authentication settings after resolution.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub jwks_file: Option<PathBuf>,
    /// Mode `oidc`: each provider's issuer templates, where its keys are, its tenants.
    pub providers: Vec<ProviderSettings>,
    /// Mode `oidc`: the timeout of one key fetch, which is also the longest a request
    /// naming an unknown key waits for one.
    pub key_fetch_timeout: Duration,
    pub token_cache_entries: usize,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub allowed_tenants: Option<Vec<String>>,
    pub dev_issuer: String,
    pub force_dev_issuer: bool,
    pub algorithms: Option<Vec<String>>,
}

/// A Redis URL, which may hold a password: never printed whole (`Debug` hides credentials).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(RedisUrl(s.to_string()))
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => {
                let host = rest.rsplit_once('@').map_or("", |(_, h)| h);
                write!(f, "RedisUrl({scheme}://***@{host})")
            }
            _ => write!(f, "RedisUrl({})", self.0),
        }
    }
}

/// Where rate limits are counted: in process, or shared through Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimiterSettings {
    InProcess,
    Redis { url: RedisUrl, replicas: u64 },
}

/// Resolves `--redis-url` and `--replicas` (flags, then environment, then `[rate_limits]`).
pub fn limiter_settings(flags: &ServerFlags, file: &FileConfig) -> anyhow::Result<LimiterSettings> {
    let f = &file.rate_limits;
    let replicas = flags.replicas.or(f.replicas).unwrap_or(1);
    if replicas == 0 {
        bail!("replicas must be at least 1 (the number of kbgap servers sharing one Redis)");
    }
    Ok(
        match flags.redis_url.clone().or_else(|| f.redis_url.clone()) {
            Some(url) => LimiterSettings::Redis { url, replicas },
            None => LimiterSettings::InProcess,
        },
    )
}

fn non_empty(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// The tenants of one `[[auth.providers]]` entry.
fn provider_tenants(p: &ProviderFile) -> anyhow::Result<TenantScope> {
    match (&p.tenants, p.any_tenant.unwrap_or(false)) {
        (Some(_), true) => {
            bail!("give either tenants = [...] or any_tenant = true, not both")
        }
        (Some(list), false) => {
            if list.is_empty() {
                bail!(
                    "tenants = [] would refuse every token of this provider; list its tenants, \
                     or remove the key to take them from its issuers"
                );
            }
            let list = list
                .iter()
                .map(|t| TenantId::parse(t).with_context(|| format!("tenant {t:?}")))
                .collect::<anyhow::Result<_>>()?;
            Ok(TenantScope::Only(list))
        }
        (None, true) => Ok(TenantScope::Any),
        (None, false) => Ok(TenantScope::FromIssuer),
    }
}

/// Where each issuer's keys are, and which tenants it may vouch for, for auth mode `oidc`.
fn oidc_providers(
    flags: &ServerFlags,
    file: &AuthFile,
    issuers: Option<&Vec<String>>,
) -> anyhow::Result<Vec<ProviderSettings>> {
    let location = |jwks: Option<&String>, discovery: Option<&String>| match (jwks, discovery) {
        (Some(_), Some(_)) => bail!("give either a JWKS URL or a discovery URL, not both"),
        (Some(j), None) => Ok(Some(JwksLocation::Jwks(j.clone()))),
        (None, Some(d)) => Ok(Some(JwksLocation::Discovery(d.clone()))),
        (None, None) => Ok(None),
    };
    let per_issuer = |issuers: &[String], loc: Option<JwksLocation>, tenants: &TenantScope| {
        if let Some(location) = loc {
            return Ok(vec![ProviderSettings {
                issuers: issuers.to_vec(),
                location,
                tenants: tenants.clone(),
            }]);
        }
        issuers
            .iter()
            .map(|i| {
                if i.contains("{tid}") {
                    bail!(
                        "issuer template {i} names no single discovery document: give a JWKS \
                         URL (--jwks-url) or a discovery URL (--discovery-url)"
                    );
                }
                Ok(ProviderSettings {
                    issuers: vec![i.clone()],
                    location: JwksLocation::discovery_for_issuer(i),
                    tenants: tenants.clone(),
                })
            })
            .collect()
    };
    let flag_location = location(flags.jwks_url.as_ref(), flags.discovery_url.as_ref())?;
    let mut out = Vec::new();
    if let (Some(list), None, true) = (&file.providers, &flag_location, flags.issuers.is_empty()) {
        for (n, p) in list.iter().enumerate() {
            if p.issuers.is_empty() {
                bail!("auth.providers[{n}] has no issuers");
            }
            let loc = location(p.jwks_url.as_ref(), p.discovery_url.as_ref())
                .with_context(|| format!("auth.providers[{n}]"))?;
            let tenants = provider_tenants(p).with_context(|| format!("auth.providers[{n}]"))?;
            out.extend(per_issuer(&p.issuers, loc, &tenants)?);
        }
    } else {
        let loc = match flag_location {
            Some(l) => Some(l),
            None => location(file.jwks_url.as_ref(), file.discovery_url.as_ref())?,
        };
        match (issuers, loc) {
            (Some(i), loc) => out.extend(per_issuer(i, loc, &TenantScope::FromIssuer)?),
            (None, Some(location)) => out.push(ProviderSettings {
                issuers: vec![AZURE_V1_ISSUER.to_string(), AZURE_V2_ISSUER.to_string()],
                location,
                tenants: TenantScope::FromIssuer,
            }),
            (None, None) => {
                // Azure AD's two key sets: one multi-tenant provider that guarantees `tid`
                // and `iss` agree, so each may vouch for every tenant.
                out.push(ProviderSettings {
                    issuers: vec![AZURE_V1_ISSUER.to_string()],
                    location: JwksLocation::Jwks(AZURE_V1_JWKS.to_string()),
                    tenants: TenantScope::Any,
                });
                out.push(ProviderSettings {
                    issuers: vec![AZURE_V2_ISSUER.to_string()],
                    location: JwksLocation::Discovery(AZURE_V2_DISCOVERY.to_string()),
                    tenants: TenantScope::Any,
                });
            }
        }
    }
    for p in &out {
        kbgap_auth::check_url(p.location.url())?;
    }
    Ok(out)
}

pub fn auth_settings(flags: &ServerFlags, file: &FileConfig) -> AuthSettings {
    let f = &file.auth;
    let issuers = non_empty(&flags.issuers).or_else(|| f.issuers.clone());
    let mode = flags.auth_mode.or(f.mode).unwrap_or(AuthMode::Development);
    AuthSettings {
        mode,
        jwks_file: flags.jwks_file.clone().or_else(|| f.jwks_file.clone()),
        // Resolved (and its errors reported) by `oidc_settings`; empty for other modes.
        providers: Vec::new(),
        key_fetch_timeout: kbgap_auth::DEFAULT_FETCH_TIMEOUT,
        token_cache_entries: f
            .token_cache_entries
            .unwrap_or(kbgap_auth::DEFAULT_TOKEN_CACHE_ENTRIES),
        issuers,
        audiences: non_empty(&flags.audiences).or_else(|| f.audiences.clone()),
        allowed_tenants: non_empty(&flags.allowed_tenants).or_else(|| f.allowed_tenants.clone()),
        dev_issuer: f
            .dev_issuer
            .clone()
            .unwrap_or_else(|| kbgap_auth::DEV_ISSUER_TEMPLATE.to_string()),
        force_dev_issuer: flags.force_dev_issuer || f.force_dev_issuer.unwrap_or(false),
        algorithms: f.algorithms.clone(),
    }
}

/// [`auth_settings`] with the identity providers of auth mode `oidc` resolved and checked.
pub fn oidc_settings(flags: &ServerFlags, file: &FileConfig) -> anyhow::Result<AuthSettings> {
    let mut a = auth_settings(flags, file);
    if a.mode == AuthMode::Oidc {
        a.providers = oidc_providers(flags, &file.auth, a.issuers.as_ref())
            .context("authentication settings (auth mode oidc)")?;
        if let Some(secs) = flags
            .key_fetch_timeout_secs
            .or(file.auth.key_fetch_timeout_secs)
        {
            if !(1..=60).contains(&secs) {
                bail!("key_fetch_timeout_secs must be between 1 and 60, not {secs}");
            }
            a.key_fetch_timeout = Duration::from_secs(secs);
        }
    }
    Ok(a)
}

fn quota(per_minute: u64, per_hour: u64, what: &str) -> anyhow::Result<Quota> {
    Quota::per_minute_and_hour(per_minute, per_hour)
        .with_context(|| format!("{what}: {per_minute} per minute, {per_hour} per hour"))
}

/// Parses `ROUTE=PER_MINUTE/PER_HOUR`.
fn route_limit(spec: &str) -> anyhow::Result<(String, Quota)> {
    let parsed = spec.rsplit_once('=').and_then(|(route, nums)| {
        let (m, h) = nums.split_once('/')?;
        Some((route, m.trim().parse().ok()?, h.trim().parse().ok()?))
    });
    let Some((route, m, h)) = parsed.filter(|(r, _, _)| r.starts_with('/')) else {
        bail!("--route-rate-limit '{spec}' is not ROUTE=PER_MINUTE/PER_HOUR, e.g. '/api/Software/{{id}}/getmissingkbs=50/1000'");
    };
    Ok((route.to_string(), quota(m, h, route)?))
}

fn rate_limits(flags: &ServerFlags, file: &RateLimitsFile) -> anyhow::Result<RateLimits> {
    let mut limits = RateLimits::default();
    let per_minute = flags
        .rate_limit_per_minute
        .or(file.per_minute)
        .unwrap_or(100);
    let per_hour = flags.rate_limit_per_hour.or(file.per_hour).unwrap_or(1500);
    limits.default = quota(per_minute, per_hour, "rate limit")?;
    for (route, r) in &file.routes {
        if !route.starts_with('/') {
            bail!("rate_limits.routes: '{route}' is not a route template such as /api/Software/{{id}}/getmissingkbs");
        }
        let q = quota(
            r.per_minute.unwrap_or(per_minute),
            r.per_hour.unwrap_or(per_hour),
            route,
        )?;
        limits.routes.push((route.clone(), q));
    }
    for spec in &flags.route_rate_limits {
        let (route, q) = route_limit(spec)?;
        limits.routes.retain(|(r, _)| r != &route);
        limits.routes.push((route, q));
    }
    let failures = flags
        .auth_failures_per_minute
        .or(file.auth_failures_per_minute)
        .unwrap_or(kbgap_api::security::DEFAULT_AUTH_FAILURES_PER_MINUTE);
    if failures == 0 {
        bail!("auth_failures_per_minute must be at least 1");
    }
    limits.auth_failures = Quota::per_minute(failures);
    Ok(limits)
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
    if let Some(n) = s.change_poll_millis {
        c.change_poll = Duration::from_millis(n.max(10));
    }
    c.rate_limits = rate_limits(flags, &file.rate_limits)?;
    if let Some(n) = flags.max_connections.or(s.max_connections) {
        if n == 0 {
            bail!("max_connections must be at least 1");
        }
        c.connections.max_connections = n;
    }
    let max = c.connections.max_connections;
    match flags
        .max_connections_per_client
        .or(s.max_connections_per_client)
    {
        Some(0) => bail!("max_connections_per_client must be at least 1"),
        Some(n) if n > max => {
            bail!("max_connections_per_client ({n}) must not exceed max_connections ({max})")
        }
        Some(n) => c.connections.max_connections_per_client = n,
        None => {
            c.connections.max_connections_per_client =
                c.connections.max_connections_per_client.min(max)
        }
    }
    if let Some(n) = flags.max_header_bytes.or(s.max_header_bytes) {
        if n < 1024 {
            bail!("max_header_bytes must be at least 1024, not {n}");
        }
        c.connections.max_header_bytes = n;
    }
    if let Some(n) = s.header_read_timeout_secs {
        c.connections.header_read_timeout = Duration::from_secs(n.max(1));
    }
    c.dev_issuer_template = auth_settings(flags, file).dev_issuer;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(flags: ServerFlags, file: &str) -> anyhow::Result<AuthSettings> {
        let file: FileConfig = toml::from_str(file)?;
        oidc_settings(
            &ServerFlags {
                auth_mode: Some(AuthMode::Oidc),
                ..flags
            },
            &file,
        )
    }

    fn locations(a: &AuthSettings) -> Vec<(Vec<String>, JwksLocation)> {
        a.providers
            .iter()
            .map(|p| (p.issuers.clone(), p.location.clone()))
            .collect()
    }

    #[test]
    fn oidc_defaults_to_azure_ad_with_each_issuer_bound_to_its_keys() {
        let a = oidc(ServerFlags::default(), "").unwrap();
        assert_eq!(
            locations(&a),
            vec![
                (
                    vec![AZURE_V1_ISSUER.to_string()],
                    JwksLocation::Jwks(AZURE_V1_JWKS.to_string())
                ),
                (
                    vec![AZURE_V2_ISSUER.to_string()],
                    JwksLocation::Discovery(AZURE_V2_DISCOVERY.to_string())
                ),
            ]
        );
        assert_eq!(a.token_cache_entries, 10_000);
    }

    #[test]
    fn oidc_issuers_urls_and_providers() {
        // A concrete issuer is discovered at its well-known address.
        let a = oidc(
            ServerFlags {
                issuers: vec!["https://idp.contoso.com/realms/x".into()],
                ..ServerFlags::default()
            },
            "",
        )
        .unwrap();
        assert_eq!(
            locations(&a),
            vec![(
                vec!["https://idp.contoso.com/realms/x".to_string()],
                JwksLocation::Discovery(
                    "https://idp.contoso.com/realms/x/.well-known/openid-configuration".into()
                )
            )]
        );
        // A template needs a URL.
        let e = oidc(
            ServerFlags {
                issuers: vec!["https://idp.contoso.com/{tid}/".into()],
                ..ServerFlags::default()
            },
            "",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("--jwks-url"), "{e:#}");
        let a = oidc(
            ServerFlags {
                issuers: vec!["https://idp.contoso.com/{tid}/".into()],
                jwks_url: Some("https://idp.contoso.com/keys".into()),
                ..ServerFlags::default()
            },
            "",
        )
        .unwrap();
        assert_eq!(
            locations(&a),
            vec![(
                vec!["https://idp.contoso.com/{tid}/".to_string()],
                JwksLocation::Jwks("https://idp.contoso.com/keys".into())
            )]
        );
        // Several providers from the file.
        let a = oidc(
            ServerFlags::default(),
            r#"
            [[auth.providers]]
            issuers = ["https://sts.windows.net/{tid}/"]
            jwks_url = "https://login.microsoftonline.com/common/discovery/keys"
            [[auth.providers]]
            issuers = ["https://keycloak.contoso.com/realms/mde"]
            "#,
        )
        .unwrap();
        assert_eq!(a.providers.len(), 2);
        assert_eq!(
            a.providers[1].location,
            JwksLocation::Discovery(
                "https://keycloak.contoso.com/realms/mde/.well-known/openid-configuration".into()
            )
        );
        // Plain http only to loopback.
        let e = oidc(
            ServerFlags {
                jwks_url: Some("http://idp.contoso.com/keys".into()),
                ..ServerFlags::default()
            },
            "",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("not an https URL"), "{e:#}");
        let e = oidc(
            ServerFlags {
                jwks_url: Some("https://a/keys".into()),
                discovery_url: Some("https://a/.well-known/openid-configuration".into()),
                ..ServerFlags::default()
            },
            "",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("not both"), "{e:#}");
    }

    #[test]
    fn providers_say_which_tenants_they_vouch_for() {
        let a = oidc(
            ServerFlags::default(),
            r#"
            [auth]
            key_fetch_timeout_secs = 2
            [[auth.providers]]
            issuers = ["https://login.microsoftonline.com/{tid}/v2.0"]
            discovery_url = "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
            any_tenant = true
            [[auth.providers]]
            issuers = ["https://keycloak.contoso.com/realms/mde"]
            tenants = ["Contoso", "fabrikam"]
            [[auth.providers]]
            issuers = ["https://idp.contoso.com/0b3c9a51-1c2d-4e5f-8a9b-0c1d2e3f4a5b/v2.0"]
            "#,
        )
        .unwrap();
        let t = |s: &str| TenantId::parse(s).unwrap();
        assert_eq!(
            a.providers
                .iter()
                .map(|p| p.tenants.clone())
                .collect::<Vec<_>>(),
            vec![
                TenantScope::Any,
                TenantScope::Only(vec![t("contoso"), t("fabrikam")]),
                TenantScope::FromIssuer,
            ]
        );
        assert_eq!(a.key_fetch_timeout, Duration::from_secs(2));
        // The defaults: Azure AD's two key sets, each for every tenant; 3 s fetches.
        let d = oidc(ServerFlags::default(), "").unwrap();
        assert!(d.providers.iter().all(|p| p.tenants == TenantScope::Any));
        assert_eq!(d.key_fetch_timeout, Duration::from_secs(3));
        // The flag wins over the file.
        let f = oidc(
            ServerFlags {
                key_fetch_timeout_secs: Some(5),
                ..ServerFlags::default()
            },
            "[auth]\nkey_fetch_timeout_secs = 2",
        )
        .unwrap();
        assert_eq!(f.key_fetch_timeout, Duration::from_secs(5));
        for (bad, says) in [
            (
                "[[auth.providers]]\nissuers = [\"https://a.test/x\"]\ntenants = [\"t\"]\nany_tenant = true",
                "auth.providers[0]: give either tenants = [...] or any_tenant = true, not both",
            ),
            (
                "[[auth.providers]]\nissuers = [\"https://a.test/x\"]\ntenants = []",
                "auth.providers[0]: tenants = [] would refuse every token of this provider",
            ),
            (
                "[auth]\nkey_fetch_timeout_secs = 0",
                "key_fetch_timeout_secs must be between 1 and 60, not 0",
            ),
        ] {
            let e = oidc(ServerFlags::default(), bad).unwrap_err();
            assert!(format!("{e:#}").contains(says), "{e:#}");
        }
    }

    #[test]
    fn rate_limits_from_flags_and_file() {
        let file: FileConfig = toml::from_str(
            r#"
            [rate_limits]
            per_minute = 50
            auth_failures_per_minute = 20
            [rate_limits.routes."/api/inventory/machines"]
            per_minute = 5
            "#,
        )
        .unwrap();
        let flags = ServerFlags {
            rate_limit_per_hour: Some(900),
            route_rate_limits: vec!["/api/Software/{id}/getmissingkbs=5/100".into()],
            max_connections: Some(64),
            ..ServerFlags::default()
        };
        let c = api_config(&flags, &file).unwrap();
        let q = |m, h| Quota::per_minute_and_hour(m, h).unwrap();
        assert_eq!(c.rate_limits.default, q(50, 900));
        assert_eq!(
            c.rate_limits.quota_for("/api/inventory/machines"),
            &q(5, 900)
        );
        assert_eq!(
            c.rate_limits.quota_for("/api/Software/{id}/getmissingkbs"),
            &q(5, 100)
        );
        assert_eq!(c.rate_limits.auth_failures, Quota::per_minute(20));
        assert_eq!(c.connections.max_connections, 64);
        assert_eq!(c.connections.max_connections_per_client, 64);
        assert_eq!(c.connections.max_header_bytes, 64 * 1024);
        let over = ServerFlags {
            max_connections: Some(64),
            max_connections_per_client: Some(65),
            ..ServerFlags::default()
        };
        assert_eq!(
            api_config(&over, &FileConfig::default())
                .unwrap_err()
                .to_string(),
            "max_connections_per_client (65) must not exceed max_connections (64)"
        );
        for bad in ["/x=5", "x=5/6", "/x=a/b", "/x=0/5"] {
            let flags = ServerFlags {
                route_rate_limits: vec![bad.into()],
                ..ServerFlags::default()
            };
            assert!(api_config(&flags, &FileConfig::default()).is_err(), "{bad}");
        }
        // MDE's defaults when nothing is said.
        let c = api_config(&ServerFlags::default(), &FileConfig::default()).unwrap();
        assert_eq!(c.rate_limits.default, q(100, 1500));
        assert_eq!(c.rate_limits.auth_failures, Quota::per_minute(60));
    }

    #[test]
    fn redis_url_and_replicas_from_flags_and_file() {
        let none = limiter_settings(&ServerFlags::default(), &FileConfig::default()).unwrap();
        assert_eq!(none, LimiterSettings::InProcess);
        let file: FileConfig = toml::from_str(
            "[rate_limits]\nredis_url = \"redis://:hunter2@cache:6379/1\"\nreplicas = 3",
        )
        .unwrap();
        let url = |s: &str| s.parse::<RedisUrl>().unwrap();
        assert_eq!(
            limiter_settings(&ServerFlags::default(), &file).unwrap(),
            LimiterSettings::Redis {
                url: url("redis://:hunter2@cache:6379/1"),
                replicas: 3
            }
        );
        // Flags win; the password never shows in Debug output.
        let flags = ServerFlags {
            redis_url: Some(url("redis://other:6379")),
            replicas: Some(2),
            ..ServerFlags::default()
        };
        assert_eq!(
            limiter_settings(&flags, &file).unwrap(),
            LimiterSettings::Redis {
                url: url("redis://other:6379"),
                replicas: 2
            }
        );
        let shown = format!("{file:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("RedisUrl(redis://***@cache:6379/1)"),
            "{shown}"
        );
        let zero = ServerFlags {
            replicas: Some(0),
            ..ServerFlags::default()
        };
        let e = limiter_settings(&zero, &FileConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "replicas must be at least 1 (the number of kbgap servers sharing one Redis)"
        );
    }
}
