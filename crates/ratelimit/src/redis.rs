//! The shared limiter: fixed-window counters in Redis, checked and counted by one Lua script
//! per call, so several replicas enforce one quota together; and, while Redis cannot be
//! reached, a local fallback that keeps each replica to its share of the quota.
//!
//! The script reads Redis's clock (`TIME`), so window boundaries do not depend on the replicas'
//! clocks, and it runs atomically, so two replicas can never both take the last call of a
//! window. It returns Redis's time and the counts before the call; the decision is made here by
//! the same rules as the in-process limiter's ([`crate::rules`]), so both answer alike.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{Client, ErrorKind, ServerErrorKind};

use crate::clock::SystemClock;
use crate::in_process::{InProcessLimiter, DEFAULT_MAX_KEYS};
use crate::model::{Decision, Quota, RateKey, Window};
use crate::rules::{judge, Mode};
use crate::{LimitFuture, Limiter};

/// Checks and counts every window of one quota atomically.
///
/// `KEYS[i]`: the counter name of window `i` without its index (`{prefix}{key}:{period}`);
/// the script appends `:{index}`, which only Redis's clock can tell. `ARGV[1]`: the mode;
/// `ARGV[1+i]`: window `i`'s period in seconds; `ARGV[1+n+i]`: its limit. Returns Redis's time
/// (seconds, microseconds) and each window's count before the call.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1])
local n = #KEYS
local mode = ARGV[1]
local names, counts = {}, {}
local room = true
for i = 1, n do
  local period = tonumber(ARGV[1 + i])
  local limit = tonumber(ARGV[1 + n + i])
  names[i] = KEYS[i] .. ':' .. string.format('%d', math.floor(now / period))
  local c = tonumber(redis.call('GET', names[i]) or '0')
  counts[i] = c
  if c + 1 > limit then room = false end
end
if mode == 'record' or (mode == 'acquire' and room) then
  for i = 1, n do
    if redis.call('INCR', names[i]) == 1 then
      redis.call('EXPIRE', names[i], ARGV[1 + i])
    end
  end
end
local reply = {now, tonumber(t[2])}
for i = 1, n do reply[2 + i] = counts[i] end
return reply
"#;

/// The prefix of every counter name: `kbgap:rl:{key}:{period_secs}:{index}`.
pub const DEFAULT_KEY_PREFIX: &str = "kbgap:rl:";

/// How a [`RedisLimiter`] talks to Redis and falls back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prepended to every counter name.
    pub key_prefix: String,
    /// Replicas sharing the quotas: while Redis is unreachable, each keeps `limit / replicas`
    /// calls per window (rounded down, at least 1).
    pub replicas: u64,
    /// The longest one call to Redis (connecting included) may take before the request is
    /// decided locally: a hung Redis must not stall requests.
    pub timeout: Duration,
    /// While Redis is unreachable, how often one request tries it again.
    pub retry_interval: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            replicas: 1,
            timeout: Duration::from_millis(250),
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// Why a [`RedisLimiter`] cannot be set up (Redis being down is not one of them).
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error(
        "not a usable Redis URL (redis://[[user]:password@]host[:port][/db] or \
         redis+unix:///path): {0}"
    )]
    BadUrl(String),
    #[error("the replica count must be at least 1")]
    NoReplicas,
}

/// Rate limits shared through Redis, with a local fallback while Redis is unreachable.
pub struct RedisLimiter {
    connection: ConnectionManager,
    script_hash: String,
    prefix: String,
    timeout: Duration,
    /// The URL without credentials, for logs.
    target: String,
    fallback: Fallback,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("replicas", &self.fallback.replicas)
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from the rate-limit script: {0:?}")]
    Reply(Vec<u64>),
}

impl RedisLimiter {
    /// A limiter counting in the Redis at `url`. Checks the URL, then tries Redis once (loading
    /// the script): if it does not answer, the limiter starts on its local fallback (and says
    /// so in the log) and keeps trying. Must be called within a Tokio runtime.
    pub async fn connect(
        url: &str,
        options: RedisOptions,
    ) -> Result<RedisLimiter, RedisSetupError> {
        if options.replicas == 0 {
            return Err(RedisSetupError::NoReplicas);
        }
        let client = Client::open(url).map_err(|e| RedisSetupError::BadUrl(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            // Retrying is the fallback's job (once per retry interval), not the client's.
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisSetupError::BadUrl(e.to_string()))?;
        let limiter = RedisLimiter {
            connection,
            script_hash: redis::Script::new(SCRIPT).get_hash().to_string(),
            prefix: options.key_prefix,
            timeout: options.timeout,
            target: redacted(url),
            fallback: Fallback {
                local: InProcessLimiter::new(DEFAULT_MAX_KEYS, std::sync::Arc::new(SystemClock)),
                replicas: options.replicas,
                retry_interval: options.retry_interval,
                health: Mutex::new(Health::Shared),
            },
        };
        match limiter.load_script().await {
            Ok(()) => tracing::info!(
                redis = %limiter.target,
                replicas = limiter.fallback.replicas,
                "rate limits are shared through Redis"
            ),
            Err(e) => limiter.fallback.redis_failed(&limiter.target, &e),
        }
        Ok(limiter)
    }

    /// Whether calls are counted in Redis now (false while on the local fallback).
    pub fn is_shared(&self) -> bool {
        matches!(*self.fallback.health(), Health::Shared)
    }

    /// The Redis URL without credentials.
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn load_script(&self) -> Result<(), CallError> {
        let mut c = self.connection.clone();
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(SCRIPT);
        let load = cmd.query_async::<String>(&mut c);
        match tokio::time::timeout(self.timeout, load).await {
            Err(_) => Err(CallError::Timeout(self.timeout.as_millis())),
            Ok(r) => r.map(|_| ()).map_err(CallError::from),
        }
    }

    async fn decide(&self, key: &RateKey, quota: &Quota, mode: Mode) -> Decision {
        if self.fallback.may_try_redis() {
            match self.shared(key, quota, mode).await {
                Ok(d) => {
                    self.fallback.redis_answered(&self.target);
                    return d;
                }
                Err(e) => self.fallback.redis_failed(&self.target, &e),
            }
        }
        self.fallback.decide(key, quota, mode)
    }

    /// One script call, bounded by the timeout.
    async fn shared(
        &self,
        key: &RateKey,
        quota: &Quota,
        mode: Mode,
    ) -> Result<Decision, CallError> {
        let windows = quota.windows();
        let keys: Vec<String> = windows
            .iter()
            .map(|w| format!("{}{}:{}", self.prefix, key.as_str(), w.period_secs()))
            .collect();
        let mut args: Vec<String> = Vec::with_capacity(1 + 2 * windows.len());
        args.push(mode.as_str().to_string());
        args.extend(windows.iter().map(|w| w.period_secs().to_string()));
        args.extend(windows.iter().map(|w| w.limit.to_string()));
        let reply = match tokio::time::timeout(self.timeout, self.run_script(&keys, &args)).await {
            Err(_) => return Err(CallError::Timeout(self.timeout.as_millis())),
            Ok(r) => r?,
        };
        if reply.len() != 2 + windows.len() || reply[1] >= 1_000_000 {
            return Err(CallError::Reply(reply));
        }
        let now = Duration::from_secs(reply[0]) + Duration::from_micros(reply[1]);
        Ok(judge(quota, |i| reply[2 + i], now, mode).1)
    }

    /// EVALSHA, or EVAL when Redis does not hold the script (restarted, or `SCRIPT FLUSH`).
    async fn run_script(&self, keys: &[String], args: &[String]) -> redis::RedisResult<Vec<u64>> {
        let mut c = self.connection.clone();
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(&self.script_hash)
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        // The connection manager fails the first command after a lost connection even when
        // Redis is back, and reconnects behind it: one more try, within the same timeout, lets
        // a replica return to Redis on the first attempt after Redis did.
        let mut result = evalsha.query_async::<Vec<u64>>(&mut c).await;
        if matches!(&result, Err(e) if e.is_io_error() || e.is_unrecoverable_error()) {
            result = evalsha.query_async::<Vec<u64>>(&mut c).await;
        }
        match result {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                redis::cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(keys.len())
                    .arg(keys)
                    .arg(args)
                    .query_async::<Vec<u64>>(&mut c)
                    .await
            }
            r => r,
        }
    }
}

impl Limiter for RedisLimiter {
    fn acquire<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a> {
        Box::pin(async move { Ok(self.decide(key, quota, Mode::Acquire).await) })
    }

    fn record<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a> {
        Box::pin(async move { Ok(self.decide(key, quota, Mode::Record).await) })
    }

    fn peek<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a> {
        Box::pin(async move { Ok(self.decide(key, quota, Mode::Peek).await) })
    }
}

/// Where calls are counted now.
#[derive(Debug, Clone, Copy)]
enum Health {
    Shared,
    /// Redis failed; calls are counted locally, and Redis is tried again from `retry_at`.
    Local {
        retry_at: Instant,
    },
}

/// The local counts used while Redis is unreachable, and the switching between the two.
struct Fallback {
    local: InProcessLimiter,
    replicas: u64,
    retry_interval: Duration,
    health: Mutex<Health>,
}

impl Fallback {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // The state is a plain enum, always consistent: a poisoned lock changes nothing.
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this call goes to Redis: always while it answers; while it does not, one call
    /// per retry interval (the others stay local without waiting for it).
    fn may_try_redis(&self) -> bool {
        let mut health = self.health();
        match *health {
            Health::Shared => true,
            Health::Local { retry_at } => {
                let now = Instant::now();
                if now < retry_at {
                    return false;
                }
                *health = Health::Local {
                    retry_at: now + self.retry_interval,
                };
                true
            }
        }
    }

    fn redis_answered(&self, target: &str) {
        let mut health = self.health();
        if let Health::Local { .. } = *health {
            *health = Health::Shared;
            drop(health);
            tracing::info!(
                redis = target,
                "Redis answers again; rate limits are shared through it again"
            );
        }
    }

    fn redis_failed(&self, target: &str, error: &CallError) {
        let mut health = self.health();
        match *health {
            Health::Shared => {
                *health = Health::Local {
                    retry_at: Instant::now() + self.retry_interval,
                };
                drop(health);
                tracing::warn!(
                    redis = target,
                    error = %error,
                    replicas = self.replicas,
                    retry_ms = self.retry_interval.as_millis() as u64,
                    "Redis unreachable; rate limits are kept in this process, each window's \
                     limit divided by the replica count, until Redis answers again"
                );
            }
            Health::Local { .. } => {
                tracing::debug!(redis = target, error = %error, "Redis still unreachable");
            }
        }
    }

    fn decide(&self, key: &RateKey, quota: &Quota, mode: Mode) -> Decision {
        let share = divided(quota, self.replicas);
        self.local.decide(key, &share, mode)
    }
}

/// This replica's share of `quota`: each window's limit divided by the replica count, rounded
/// down, at least 1.
fn divided(quota: &Quota, replicas: u64) -> Quota {
    let windows = quota.windows().iter().map(|w| Window {
        limit: (w.limit / replicas.max(1)).max(1),
        period: w.period,
    });
    // The windows keep their valid, distinct periods and limits of at least 1.
    Quota::new(windows).unwrap_or_else(|_| quota.clone())
}

/// `url` without the password or user name, for logs.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparsable URL)".to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_down_to_at_least_one() {
        let q = Quota::new([
            Window::per_minute(100),
            Window::per_hour(1500),
            Window {
                limit: 1,
                period: Duration::from_secs(86_400),
            },
        ])
        .unwrap();
        let limits = |r| {
            divided(&q, r)
                .windows()
                .iter()
                .map(|w| w.limit)
                .collect::<Vec<_>>()
        };
        assert_eq!(limits(1), vec![100, 1500, 1]);
        assert_eq!(limits(3), vec![33, 500, 1]);
        assert_eq!(limits(200), vec![1, 7, 1]);
        assert_eq!(limits(0), vec![100, 1500, 1]);
    }

    #[test]
    fn credentials_never_reach_the_log() {
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redacted("redis://:s3cret@cache.contoso.com:6380/2"),
            "redis://***@cache.contoso.com:6380/2"
        );
        assert_eq!(
            redacted("rediss://kbgap:p@ss@cache:6380"),
            "rediss://***@cache:6380"
        );
        assert_eq!(redacted("not a url"), "(unparsable URL)");
    }
}
