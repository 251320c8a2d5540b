//! The single-node limiter: fixed-window counters in sharded in-memory maps, bounded in size.
//!
//! Fixed windows, not sliding ones: MDE itself answers "You can send requests again in N
//! seconds" with a fixed reset time, a fixed window needs one counter per key and window
//! (a sliding log would need one timestamp per call), and it maps one-to-one onto Redis
//! `INCR`/`EXPIRE`, so the in-process and the shared limiter behave identically. The known
//! cost, up to twice the limit across a window boundary, is acceptable for abuse protection.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::quality::RandomState;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::model::{Decision, Quota, RateKey};
use crate::rules::{judge, Mode};
use crate::{LimitFuture, Limiter};

/// Keys held before stale ones are purged and, if still full, arbitrary ones evicted. Each key
/// costs about 100 bytes plus the key text, so the default bounds the limiter to ~20 MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

const SHARDS: usize = 16;

/// One window's count: (period in seconds, window index, calls counted).
type Counter = (u64, u64, u64);

/// Fixed-window counters kept in this process.
pub struct InProcessLimiter {
    shards: Vec<Mutex<HashMap<RateKey, Vec<Counter>, RandomState>>>,
    hasher: RandomState,
    per_shard: usize,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for InProcessLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessLimiter")
            .field("max_keys", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl Default for InProcessLimiter {
    fn default() -> Self {
        InProcessLimiter::new(DEFAULT_MAX_KEYS, Arc::new(SystemClock))
    }
}

impl InProcessLimiter {
    /// A limiter holding at most about `max_keys` keys, reading time from `clock`.
    pub fn new(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        InProcessLimiter {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            hasher: RandomState::default(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            clock,
        }
    }

    /// Number of keys currently held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn decide(&self, key: &RateKey, quota: &Quota, mode: Mode) -> Decision {
        let now = self.clock.now();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        // A poisoned lock only means another request panicked mid-update of plain integers;
        // the counts are still meaningful, so keep using them.
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) {
            if mode == Mode::Peek {
                return judge(quota, |_| 0, now, mode).1;
            }
            if map.len() >= self.per_shard {
                make_room(&mut map, now, self.per_shard);
            }
            map.insert(key.clone(), Vec::with_capacity(quota.windows().len()));
        }
        let Some(counters) = map.get_mut(key) else {
            unreachable!("the key was just inserted under the same lock")
        };
        // Roll each window of the quota over to the current period.
        for w in quota.windows() {
            let (period, index) = (w.period_secs(), w.index(now));
            match counters.iter_mut().find(|c| c.0 == period) {
                Some(c) if c.1 != index => *c = (period, index, 0),
                Some(_) => {}
                None => counters.push((period, index, 0)),
            }
        }
        // Windows have distinct periods (the quota checks), so a period names its counter.
        let windows = quota.windows();
        let (counted, decision) = judge(
            quota,
            |i| {
                let period = windows[i].period_secs();
                counters.iter().find(|c| c.0 == period).map_or(0, |c| c.2)
            },
            now,
            mode,
        );
        if counted {
            for w in windows {
                let period = w.period_secs();
                if let Some(c) = counters.iter_mut().find(|c| c.0 == period) {
                    c.2 = c.2.saturating_add(1);
                }
            }
        }
        decision
    }
}

/// Drops keys whose windows have all ended; if the shard is still full, drops arbitrary keys
/// (a tenth of the shard, so the scan is paid once per many insertions, not on each).
fn make_room(
    map: &mut HashMap<RateKey, Vec<Counter>, RandomState>,
    now: Duration,
    per_shard: usize,
) {
    map.retain(|_, counters| {
        counters
            .iter()
            .any(|(period, index, _)| *index == now.as_secs() / (*period).max(1))
    });
    if map.len() >= per_shard {
        let excess = map.len() + 1 - per_shard + per_shard / 10;
        let victims: Vec<RateKey> = map.keys().take(excess).cloned().collect();
        for k in victims {
            map.remove(&k);
        }
    }
}

impl Limiter for InProcessLimiter {
    fn acquire<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a> {
        let d = self.decide(key, quota, Mode::Acquire);
        Box::pin(std::future::ready(Ok(d)))
    }

    fn record<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a> {
        let d = self.decide(key, quota, Mode::Record);
        Box::pin(std::future::ready(Ok(d)))
    }

    fn peek<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a> {
        let d = self.decide(key, quota, Mode::Peek);
        Box::pin(std::future::ready(Ok(d)))
    }
}
