//! Who may call and how often: bearer-token authentication with the validated-token cache and
//! JWKS refresh on unknown keys, per-address limiting of failed authentications, and the
//! per-(route template, tenant, client app) rate limits of api-contract.md §4.
//!
//! It runs inside the [`crate::auth::Caller`] extractor, so every route that needs a caller is
//! authenticated and limited, and routes that do not (health, OpenAPI, JWKS) are neither.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use kbgap_auth::{
    bearer_token, AuthError, Principal, RefreshOutcome, RemoteJwks, TokenCache, Validator,
    MAX_TOKEN_BYTES,
};
use kbgap_ratelimit::{Decision, InProcessLimiter, Limited, Limiter, Quota, RateKey};

use crate::error::ApiError;
use crate::middleware::CallerSlot;
use crate::AppState;

/// Rate-limit numbers (api-contract.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Per (route template, tenant, client app) on every authenticated route without its own
    /// entry in `routes`. MDE's documented defaults: 100 per minute and 1,500 per hour.
    pub default: Quota,
    /// Per-route overrides, by route template (e.g. `/api/Software/{id}/getmissingkbs`).
    pub routes: Vec<(String, Quota)>,
    /// Failed authentications per client address (IPv6 per /64), checked before a token's
    /// signature is, so a flood of bad tokens cannot burn CPU.
    pub auth_failures: Quota,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            default: Quota::mde_default(),
            routes: Vec::new(),
            auth_failures: Quota::per_minute(DEFAULT_AUTH_FAILURES_PER_MINUTE),
        }
    }
}

/// Failed authentications allowed per client address and minute: generous for a misconfigured
/// client retrying, tiny next to the signature checks a flood would otherwise cost.
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u64 = 60;

impl RateLimits {
    /// The quota of a route template.
    pub fn quota_for(&self, route: &str) -> &Quota {
        self.routes
            .iter()
            .find(|(r, _)| r == route)
            .map(|(_, q)| q)
            .unwrap_or(&self.default)
    }
}

/// The authentication and limiting machinery the handlers share.
pub struct Security {
    /// Shared with the key refreshes, which forget every remembered token when keys change,
    /// even when no request waits for them any more.
    pub token_cache: Arc<TokenCache>,
    pub limiter: Arc<dyn Limiter>,
    /// Key sources fetched from identity providers, refreshed on unknown `kid`s and expiry.
    pub remote_keys: Vec<Arc<RemoteJwks>>,
    /// One refresh at a time per source (same order as `remote_keys`): requests that meet an
    /// unknown key while that source's fetch is running wait for it instead of starting
    /// their own, and a hanging provider holds up no other provider's refresh.
    refresh_locks: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("token_cache", &self.token_cache)
            .field("remote_keys", &self.remote_keys)
            .finish_non_exhaustive()
    }
}

impl Default for Security {
    /// In-process limiter, default token cache, keys fixed at start.
    fn default() -> Self {
        Security::new(
            Arc::new(InProcessLimiter::default()),
            TokenCache::default(),
            Vec::new(),
        )
    }
}

impl Security {
    pub fn new(
        limiter: Arc<dyn Limiter>,
        token_cache: TokenCache,
        remote_keys: Vec<Arc<RemoteJwks>>,
    ) -> Self {
        Security {
            token_cache: Arc::new(token_cache),
            limiter,
            refresh_locks: remote_keys
                .iter()
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
            remote_keys,
        }
    }

    /// Refreshes every remote key source whose cooldown allows it (each source fetches at most
    /// once per cooldown, however many requests ask) and waits for them all. Forgets cached
    /// tokens when keys changed, so a key withdrawn by the provider stops working at once.
    pub async fn refresh_keys(&self, only_if_due: bool) {
        let all: Vec<usize> = (0..self.remote_keys.len()).collect();
        let tasks = self.spawn_refreshes(&all, only_if_due);
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "signing key refresh task failed");
            }
        }
    }

    /// Refreshes the remote key sources that could verify `token` (those of the trusted
    /// issuers its `iss` and `tid` could belong to), concurrently, and waits for them at most
    /// as long as their fetch timeout. A refresh still running then finishes in the
    /// background; its keys serve the next request.
    pub async fn refresh_keys_for(&self, validator: &Validator, token: &str) {
        let candidates = validator.issuers_for(token);
        let indices: Vec<usize> = self
            .remote_keys
            .iter()
            .enumerate()
            .filter(|(_, remote)| {
                candidates
                    .iter()
                    .any(|c| std::ptr::addr_eq(Arc::as_ptr(&c.keys), Arc::as_ptr(remote)))
            })
            .map(|(i, _)| i)
            .collect();
        let Some(wait) = indices
            .iter()
            .map(|&i| self.remote_keys[i].config().timeout)
            .max()
        else {
            return;
        };
        let tasks = self.spawn_refreshes(&indices, false);
        let all = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(wait, all).await.is_err() {
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                "signing key refresh is taking longer than its timeout; answering without it"
            );
        }
    }

    /// Starts one task per source in `indices`; each owns what it needs, so it completes (and
    /// clears the token cache if the keys changed) even if nobody awaits it.
    fn spawn_refreshes(
        &self,
        indices: &[usize],
        only_if_due: bool,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::with_capacity(indices.len());
        for &i in indices {
            let (Some(source), Some(lock)) = (self.remote_keys.get(i), self.refresh_locks.get(i))
            else {
                continue;
            };
            if only_if_due && !source.refresh_due(Instant::now()) {
                continue;
            }
            let (source, lock, cache) = (source.clone(), lock.clone(), self.token_cache.clone());
            tasks.push(tokio::spawn(async move {
                let _one_at_a_time = lock.lock().await;
                let s = source.clone();
                let outcome = tokio::task::spawn_blocking(move || s.refresh(Instant::now())).await;
                match outcome {
                    Ok(RefreshOutcome::Updated { changed, keys }) => {
                        if changed {
                            cache.clear();
                            tracing::info!(
                                url = source.config().location.url(),
                                keys,
                                "signing keys updated"
                            );
                        }
                    }
                    Ok(RefreshOutcome::CoolingDown) => {}
                    Ok(RefreshOutcome::Failed(e)) => tracing::warn!(
                        error = %e,
                        "signing key refresh failed; the keys held keep serving"
                    ),
                    Err(e) => tracing::error!(error = %e, "signing key refresh task failed"),
                }
            }));
        }
        tasks
    }

    /// The key locations of the remote sources holding no key at all (never fetched
    /// successfully): every token of their issuers is refused until they are.
    pub fn sources_without_keys(&self) -> Vec<&str> {
        self.remote_keys
            .iter()
            .filter(|s| s.key_count() == 0)
            .map(|s| s.config().location.url())
            .collect()
    }
}

/// Refreshes expired key caches in the background, so requests rarely meet an expired set.
pub fn spawn_key_refresher(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let cooldown = state
        .security
        .remote_keys
        .iter()
        .map(|s| s.config().refresh_cooldown)
        .min()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(cooldown.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            state.security.refresh_keys(true).await;
        }
    }))
}

fn unauthorized(e: AuthError) -> ApiError {
    ApiError::Unauthorized {
        message: e.to_string(),
        www_authenticate: e.www_authenticate(),
    }
}

/// `hh:mm:ss`, as .NET prints a `TimeSpan` in MDE's message.
fn timespan(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

fn quota_exceeded(l: &Limited) -> ApiError {
    let secs = l.retry_after_secs();
    ApiError::TooManyRequests {
        message: format!(
            "API calls quota exceeded! Maximum allowed {} per {} for the key Destination+TenantID+AppID. You can send requests again in {secs} seconds.",
            l.window.limit,
            timespan(l.window.period)
        ),
        retry_after_secs: secs,
    }
}

fn too_many_failures(l: &Limited) -> ApiError {
    let secs = l.retry_after_secs();
    ApiError::TooManyRequests {
        message: format!(
            "Too many requests with invalid credentials from this address. Maximum allowed {} per {}. You can send requests again in {secs} seconds.",
            l.window.limit,
            timespan(l.window.period)
        ),
        retry_after_secs: secs,
    }
}

/// The address a request comes from: the peer, or, when the peer is a trusted proxy, the
/// nearest `X-Forwarded-For` entry that is not one. IPv6 addresses count per /64, the block
/// one subscriber usually holds.
pub fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> String {
    let mut addr = peer;
    if let Some(p) = peer.filter(|p| trusted.contains(p)) {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        addr = forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .or(Some(p));
    }
    match addr {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        Some(a) => a.to_string(),
        None => "unknown".into(),
    }
}

/// The token last validated on one connection, so that a client sending the same token
/// request after request on a keep-alive connection pays neither the signature check nor the
/// validated-token cache's hash. The server gives each connection its own (a request
/// extension); it is dropped with the connection, honours the token's `exp`, and no longer
/// holds once the validated-token cache is cleared (the signing keys changed).
#[derive(Clone, Default)]
pub struct ConnectionToken(Arc<Mutex<Option<Remembered>>>);

struct Remembered {
    token: Box<str>,
    principal: Arc<Principal>,
    /// The validated-token cache's generation when the token was validated.
    generation: u64,
}

impl ConnectionToken {
    fn get(&self, token: &str, now_unix: i64, generation: u64) -> Option<Arc<Principal>> {
        let slot = self.0.lock().ok()?;
        let r = slot.as_ref()?;
        (r.generation == generation && now_unix < r.principal.expires_at && *r.token == *token)
            .then(|| r.principal.clone())
    }

    fn set(&self, token: &str, principal: &Arc<Principal>, generation: u64) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(Remembered {
                token: token.into(),
                principal: principal.clone(),
                generation,
            });
        }
    }
}

/// Authenticates the request's bearer token, then applies the caller's rate limit.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Arc<Principal>, ApiError> {
    let principal = authenticate_token(parts, state).await?;
    // Recorded before the rate limit, so a 429 is logged with the caller it refused.
    if let Some(slot) = parts.extensions.get::<CallerSlot>() {
        slot.set(&principal);
    }
    limit_caller(parts, state, &principal).await?;
    Ok(principal)
}

async fn authenticate_token(parts: &Parts, state: &AppState) -> Result<Arc<Principal>, ApiError> {
    let security = &state.security;
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        // A header that is not visible ASCII is no bearer token.
        .map(|v| v.to_str().unwrap_or(" "));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = bearer_token(header);
    let memo = parts
        .extensions
        .get::<ConnectionToken>()
        .filter(|_| security.token_cache.capacity() > 0);
    let generation = security.token_cache.generation();
    if let Ok(t) = token {
        if t.len() <= MAX_TOKEN_BYTES {
            if let Some(p) = memo.and_then(|m| m.get(t, now, generation)) {
                return Ok(p);
            }
            if let Some(p) = security.token_cache.get(t, now) {
                if let Some(m) = memo {
                    m.set(t, &p, generation);
                }
                return Ok(p);
            }
        }
    }
    // Not a token validated before. Failed authentications are limited per client address,
    // but the limit must never refuse a valid token: behind a NAT, anyone's bad tokens would
    // lock every new client out. So the token is validated first; that is cheap until the
    // signature (shape, algorithm, issuer, tenant and key are checked before it), and one RSA
    // verification is what a well-formed token with a known issuer and key costs whoever
    // sends it. What the limit holds back is the rest: a limited address gets 429 for any
    // failure, and triggers no key fetch for an unknown `kid` (the costly part, a network
    // round trip).
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let address = client_address(peer, &parts.headers, &state.config.trusted_proxies);
    let key = RateKey::from_parts(["authfail", &address]);
    let quota = &state.config.rate_limits.auth_failures;
    let limited = match security.limiter.peek(&key, quota).await {
        Ok(Decision::Limited(l)) => Some(l),
        Ok(Decision::Allowed { .. }) => None,
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; not limiting");
            None
        }
    };
    let result = match token {
        Err(e) => Err(e),
        Ok(t) => {
            let mut r = state.validator.validate(t, now);
            if r == Err(AuthError::UnknownKey)
                && limited.is_none()
                && !security.remote_keys.is_empty()
            {
                // Maybe the provider rotated its keys: one refresh of the providers this
                // token could belong to (or wait for the one running, or nothing within the
                // cooldown), bounded by their fetch timeout, then one more try.
                security.refresh_keys_for(&state.validator, t).await;
                r = state.validator.validate(t, now);
            }
            r.map(|p| {
                let p = Arc::new(p);
                security.token_cache.insert(t, p.clone(), now);
                if let Some(m) = memo {
                    m.set(t, &p, generation);
                }
                p
            })
        }
    };
    match (result, limited) {
        (Ok(p), _) => Ok(p),
        (Err(_), Some(l)) => Err(too_many_failures(&l)),
        (Err(e), None) => {
            // The limiter only ever sees the address, never the token.
            if let Err(err) = security.limiter.record(&key, quota).await {
                tracing::warn!(error = %err, "rate limiter unavailable; failure not counted");
            }
            Err(unauthorized(e))
        }
    }
}

async fn limit_caller(parts: &Parts, state: &AppState, p: &Principal) -> Result<(), ApiError> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str())
        .unwrap_or("-");
    let quota = state.config.rate_limits.quota_for(route);
    let key = RateKey::from_parts([
        "app",
        route,
        p.tenant.as_str(),
        p.app_id.as_deref().unwrap_or("-"),
    ]);
    match state.security.limiter.acquire(&key, quota).await {
        Ok(Decision::Limited(l)) => Err(quota_exceeded(&l)),
        Ok(Decision::Allowed { .. }) => Ok(()),
        Err(e) => {
            // Failing open: an unreachable shared limiter must not take the API down.
            tracing::warn!(error = %e, "rate limiter unavailable; not limiting");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_remembers_one_token_until_exp_or_a_cache_clear() {
        let principal = Arc::new(Principal {
            tenant: kbgap_domain::TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").unwrap(),
            app_id: Some("app".into()),
            roles: vec!["Software.Read.All".into()],
            scopes: Vec::new(),
            kind: kbgap_auth::PrincipalKind::Application,
            expires_at: 1_000,
        });
        let memo = ConnectionToken::default();
        assert!(memo.get("a.b.c", 10, 0).is_none());
        memo.set("a.b.c", &principal, 0);
        assert_eq!(memo.get("a.b.c", 999, 0).unwrap().expires_at, 1_000);
        // Another token, an expired one, or one validated before the keys changed: no.
        assert!(memo.get("a.b.d", 10, 0).is_none());
        assert!(memo.get("a.b.c", 1_000, 0).is_none());
        assert!(memo.get("a.b.c", 10, 1).is_none());
    }

    #[test]
    fn timespans_print_like_dotnet() {
        assert_eq!(timespan(Duration::from_secs(60)), "00:01:00");
        assert_eq!(timespan(Duration::from_secs(3600)), "01:00:00");
        assert_eq!(timespan(Duration::from_secs(90061)), "25:01:01");
    }

    #[test]
    fn client_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.7".parse().unwrap());
        assert_eq!(client_address(Some(ip("192.0.2.1")), &h, &[]), "192.0.2.1");
        assert_eq!(
            client_address(Some(ip("10.0.0.5")), &h, &[ip("10.0.0.5")]),
            "10.0.0.7"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.5")), &h, &[ip("10.0.0.5"), ip("10.0.0.7")]),
            "203.0.113.9"
        );
        assert_eq!(
            client_address(Some(ip("2001:db8:1:2:3:4:5:6")), &h, &[]),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_address(Some(ip("::ffff:192.0.2.3")), &h, &[]),
            "192.0.2.3"
        );
        assert_eq!(client_address(None, &h, &[]), "unknown");
    }
}
