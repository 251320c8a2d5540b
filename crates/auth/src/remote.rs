//! Keys fetched from an identity provider: OpenID discovery (`jwks_uri`) or a JWKS URL,
//! cached, refreshed on `Cache-Control: max-age` expiry or an unknown `kid` with a cooldown,
//! and kept serving while the provider is down.
//!
//! [`RemoteJwks::key`] never touches the network; [`RemoteJwks::refresh`] does (blocking, with
//! a timeout), so callers run it off their async runtime. One fetch per cooldown at most, however
//! many tokens with unknown `kid`s arrive: a flood of forged tokens cannot make kbgap flood the
//! provider.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::keys::{JwksError, KeySource, StaticJwks, VerificationKey};

/// At most one fetch per this long (api-contract.md §3).
pub const DEFAULT_REFRESH_COOLDOWN: Duration = Duration::from_secs(10);
/// Cache lifetime when the provider sends no `Cache-Control: max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Longest cache lifetime honoured, whatever the provider says: keys are re-read daily.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How long one key fetch (discovery and JWKS together) may take by default. Short, because
/// a request with an unknown `kid` waits for it.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Larger discovery or JWKS documents are refused (Azure AD's JWKS is about 10 KiB).
pub const MAX_DOCUMENT_BYTES: u64 = 512 * 1024;

/// Where the keys are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// An OpenID discovery document (`{issuer}/.well-known/openid-configuration`) whose
    /// `jwks_uri` names the JWKS.
    Discovery(String),
    /// The JWKS itself.
    Jwks(String),
}

impl JwksLocation {
    /// The discovery document of a concrete issuer (OpenID Connect Discovery §4).
    pub fn discovery_for_issuer(issuer: &str) -> JwksLocation {
        JwksLocation::Discovery(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
    }

    pub fn url(&self) -> &str {
        match self {
            JwksLocation::Discovery(u) | JwksLocation::Jwks(u) => u,
        }
    }
}

/// How a [`RemoteJwks`] fetches and caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwksConfig {
    pub location: JwksLocation,
    /// Minimum time between two fetch attempts, successful or not.
    pub refresh_cooldown: Duration,
    /// Cache lifetime without `Cache-Control: max-age`.
    pub default_max_age: Duration,
    /// Timeout of one fetch: discovery and JWKS requests together (connect, send, receive).
    pub timeout: Duration,
}

impl RemoteJwksConfig {
    pub fn new(location: JwksLocation) -> Self {
        RemoteJwksConfig {
            location,
            refresh_cooldown: DEFAULT_REFRESH_COOLDOWN,
            default_max_age: DEFAULT_MAX_AGE,
            timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }
}

/// Why keys could not be fetched, or a location is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteJwksError {
    #[error("{0} is not an https URL (plain http is accepted only for loopback addresses)")]
    InsecureUrl(String),
    #[error("fetching {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("discovery document {url} is unusable: {reason}")]
    Discovery { url: String, reason: &'static str },
    #[error("JWKS {url} is unusable: {source}")]
    Jwks { url: String, source: JwksError },
}

/// What a call to [`RemoteJwks::refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Keys were fetched; `changed` says whether the set differs from the one held before.
    Updated { changed: bool, keys: usize },
    /// The last attempt was less than the cooldown ago; nothing was fetched.
    CoolingDown,
    /// The fetch failed; the keys held before (if any) keep serving.
    Failed(RemoteJwksError),
}

struct Meta {
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    fresh_until: Option<Instant>,
    document: Option<Value>,
}

/// A cached, refreshable JWKS of one identity provider.
pub struct RemoteJwks {
    config: RemoteJwksConfig,
    agent: ureq::Agent,
    keys: RwLock<Option<Arc<StaticJwks>>>,
    meta: Mutex<Meta>,
    requests: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Whether `url` is `https://…`, or `http://` to a loopback host (tests, local providers).
pub fn check_url(url: &str) -> Result<(), RemoteJwksError> {
    let has_scheme = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            && url.len() > scheme.len()
    };
    if has_scheme("https://") {
        return Ok(());
    }
    if has_scheme("http://") && is_loopback_authority(&url["http://".len()..]) {
        return Ok(());
    }
    Err(RemoteJwksError::InsecureUrl(url.to_string()))
}

/// Whether `url` is plain http (to a loopback host, once [`check_url`] passed).
fn is_plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `Cache-Control: max-age` in seconds; `no-cache`/`no-store` mean zero.
fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control?.split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-cache" || d == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            found = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

impl RemoteJwks {
    /// Prepares the source; nothing is fetched until [`RemoteJwks::refresh`].
    pub fn new(config: RemoteJwksConfig) -> Result<Self, RemoteJwksError> {
        let url = config.location.url();
        check_url(url)?;
        let loopback = is_plain_http(url);
        let mut builder = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .https_only(!loopback)
            .user_agent("kbgap-jwks");
        if loopback {
            // A proxy from the environment must not see (or break) loopback traffic.
            builder = builder.proxy(None);
        }
        Ok(RemoteJwks {
            agent: builder.build().into(),
            config,
            keys: RwLock::new(None),
            meta: Mutex::new(Meta {
                jwks_uri: None,
                last_attempt: None,
                fresh_until: None,
                document: None,
            }),
            requests: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &RemoteJwksConfig {
        &self.config
    }

    /// HTTP requests made so far (discovery and JWKS), for tests and metrics.
    pub fn http_requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Number of keys held (0 before the first successful fetch).
    pub fn key_count(&self) -> usize {
        self.current().map_or(0, |k| k.len())
    }

    fn current(&self) -> Option<Arc<StaticJwks>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the cache has expired (or was never filled) and the cooldown allows a fetch:
    /// the caller should [`refresh`](RemoteJwks::refresh), ideally in the background.
    pub fn refresh_due(&self, now: Instant) -> bool {
        let m = self.meta();
        let cooled = m
            .last_attempt
            .is_none_or(|last| now >= last + self.config.refresh_cooldown);
        let stale = m.fresh_until.is_none_or(|until| now >= until);
        cooled && stale
    }

    /// Fetches the keys unless the last attempt is younger than the cooldown. Blocking.
    pub fn refresh(&self, now: Instant) -> RefreshOutcome {
        {
            let mut m = self.meta();
            if m.last_attempt
                .is_some_and(|last| now < last + self.config.refresh_cooldown)
            {
                return RefreshOutcome::CoolingDown;
            }
            m.last_attempt = Some(now);
        }
        match self.fetch() {
            Ok((document, jwks, age)) => {
                let keys = jwks.len();
                let mut m = self.meta();
                let changed = m.document.as_ref() != Some(&document);
                m.document = Some(document);
                let age = age
                    .unwrap_or(self.config.default_max_age)
                    .clamp(self.config.refresh_cooldown, MAX_MAX_AGE);
                m.fresh_until = Some(now + age);
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(jwks));
                RefreshOutcome::Updated { changed, keys }
            }
            Err(e) => {
                // Rediscover next time: a moved `jwks_uri` is one cause of failure.
                if matches!(self.config.location, JwksLocation::Discovery(_)) {
                    self.meta().jwks_uri = None;
                }
                RefreshOutcome::Failed(e)
            }
        }
    }

    /// One GET that must be answered by `deadline`, which the discovery and JWKS requests of
    /// a fetch share, so a provider that hangs holds a fetch for `timeout` in all.
    fn get(
        &self,
        url: &str,
        deadline: Instant,
    ) -> Result<(String, Option<Duration>), RemoteJwksError> {
        check_url(url)?;
        let http = |reason: String| RemoteJwksError::Http {
            url: url.to_string(),
            reason,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(http("timed out".into()));
        }
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut resp = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .config()
            .timeout_global(Some(remaining))
            .build()
            .call()
            .map_err(|e| http(e.to_string()))?;
        if resp.status() != 200 {
            return Err(http(format!("status {}", resp.status().as_u16())));
        }
        let age = max_age(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT_BYTES)
            .read_to_string()
            .map_err(|e| http(e.to_string()))?;
        Ok((body, age))
    }

    fn jwks_uri(&self, deadline: Instant) -> Result<String, RemoteJwksError> {
        let discovery_url = match &self.config.location {
            JwksLocation::Jwks(u) => return Ok(u.clone()),
            JwksLocation::Discovery(u) => u,
        };
        if let Some(known) = self.meta().jwks_uri.clone() {
            return Ok(known);
        }
        let (text, _) = self.get(discovery_url, deadline)?;
        let bad = |reason| RemoteJwksError::Discovery {
            url: discovery_url.clone(),
            reason,
        };
        let doc: Value = serde_json::from_str(&text).map_err(|_| bad("not JSON"))?;
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no jwks_uri"))?
            .to_string();
        check_url(&uri).map_err(|_| bad("jwks_uri is not https"))?;
        self.meta().jwks_uri = Some(uri.clone());
        Ok(uri)
    }

    fn fetch(&self) -> Result<(Value, StaticJwks, Option<Duration>), RemoteJwksError> {
        let deadline = Instant::now() + self.config.timeout;
        let uri = self.jwks_uri(deadline)?;
        let (text, age) = self.get(&uri, deadline)?;
        let bad = |source| RemoteJwksError::Jwks {
            url: uri.clone(),
            source,
        };
        let doc: Value = serde_json::from_str(&text).map_err(|_| bad(JwksError::NotJson))?;
        let jwks = StaticJwks::from_value(&doc).map_err(bad)?;
        Ok((doc, jwks, age))
    }
}

impl KeySource for RemoteJwks {
    fn key(&self, kid: Option<&str>) -> Option<Arc<VerificationKey>> {
        self.current()?.key(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback() {
        assert!(check_url("https://login.microsoftonline.com/common/discovery/v2.0/keys").is_ok());
        assert!(check_url("HTTPS://x.test/keys").is_ok());
        for ok in [
            "http://127.0.0.1:8080/keys",
            "http://localhost/keys",
            "http://[::1]:99/k",
            "http://127.5.6.7/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.microsoftonline.com/keys",
            "http://127.0.0.1@evil.test/keys",
            "http://10.0.0.1/keys",
            "ftp://x/keys",
            "https://",
            "http://é.test/keys",
            "http",
            "keys.json",
        ] {
            assert_eq!(
                check_url(bad),
                Err(RemoteJwksError::InsecureUrl(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age(None), None);
        assert_eq!(
            max_age(Some("max-age=86400, private")),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            max_age(Some("public, Max-Age=60")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(Some("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(Some("max-age=abc")), None);
    }
}
