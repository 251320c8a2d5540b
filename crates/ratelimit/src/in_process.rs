//! The single-node limiter: fixed-window counters in sharded in-memory maps, bounded in size.
//!
//! Fixed windows, not sliding ones: MDE itself answers "You can send requests again in N
//! seconds" with a fixed reset time, a fixed window needs one counter per key and window
//! (a sliding log would need one timestamp per call), and it maps one-to-one onto Redis
//! `INCR`/`EXPIRE`, so the in-process and the shared limiter behave identically. The known
//! cost, up to twice the limit across a window boundary, is acceptable for abuse protection.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::model::{Decision, Limited, Quota, RateKey};
use crate::{LimitFuture, Limiter};

/// Keys held before stale ones are purged and, if still full, arbitrary ones evicted. Each key
/// costs about 100 bytes plus the key text, so the default bounds the limiter to ~20 MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

const SHARDS: usize = 16;

/// One window's count: (period in seconds, window index, calls counted).
type Counter = (u64, u64, u64);

/// Fixed-window counters kept in this process.
pub struct InProcessLimiter {
    shards: Vec<Mutex<HashMap<RateKey, Vec<Counter>>>>,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Acquire,
    Record,
    Peek,
}

impl InProcessLimiter {
    /// A limiter holding at most about `max_keys` keys, reading time from `clock`.
    pub fn new(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        InProcessLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
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

    fn decide(&self, key: &RateKey, quota: &Quota, mode: Mode) -> Decision {
        let now = self.clock.now();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        // A poisoned lock only means another request panicked mid-update of plain integers;
        // the counts are still meaningful, so keep using them.
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if mode == Mode::Peek && !map.contains_key(key) {
            return Decision::Allowed {
                remaining: quota.windows()[0].limit,
            };
        }
        if !map.contains_key(key) && map.len() >= self.per_shard {
            make_room(&mut map, now, self.per_shard);
        }
        let counters = map.entry(key.clone()).or_default();
        // Bring every window of the quota to the current index, dropping counts of past windows.
        let mut current: Vec<usize> = Vec::with_capacity(quota.windows().len());
        for w in quota.windows() {
            let (period, index) = (w.period_secs(), w.index(now));
            let slot = match counters.iter().position(|c| c.0 == period) {
                Some(i) => i,
                None => {
                    counters.push((period, index, 0));
                    counters.len() - 1
                }
            };
            if counters[slot].1 != index {
                counters[slot] = (period, index, 0);
            }
            current.push(slot);
        }
        let full = |counters: &[Counter], extra: u64| -> Option<Limited> {
            quota
                .windows()
                .iter()
                .zip(&current)
                .filter(|(w, slot)| counters[**slot].2 + extra > w.limit)
                .map(|(w, _)| Limited {
                    window: *w,
                    retry_after: w.remaining(now),
                })
                .max_by_key(|l| l.retry_after)
        };
        let remaining = |counters: &[Counter]| -> u64 {
            quota
                .windows()
                .iter()
                .zip(&current)
                .map(|(w, slot)| w.limit.saturating_sub(counters[*slot].2))
                .min()
                .unwrap_or(0)
        };
        match mode {
            Mode::Peek => match full(counters, 1) {
                Some(l) => Decision::Limited(l),
                None => Decision::Allowed {
                    remaining: remaining(counters),
                },
            },
            Mode::Acquire => {
                if let Some(l) = full(counters, 1) {
                    return Decision::Limited(l);
                }
                for slot in &current {
                    counters[*slot].2 += 1;
                }
                Decision::Allowed {
                    remaining: remaining(counters),
                }
            }
            Mode::Record => {
                for slot in &current {
                    counters[*slot].2 = counters[*slot].2.saturating_add(1);
                }
                match full(counters, 0) {
                    Some(l) => Decision::Limited(l),
                    None => Decision::Allowed {
                        remaining: remaining(counters),
                    },
                }
            }
        }
    }
}

/// Drops keys whose windows have all ended; if the shard is still full, drops arbitrary keys
/// (a tenth of the shard, so the scan is paid once per many insertions, not on each).
fn make_room(map: &mut HashMap<RateKey, Vec<Counter>>, now: Duration, per_shard: usize) {
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
