//! Time for the limiter: the system clock in production, a manual clock in tests, so window
//! behaviour is tested by moving time instead of sleeping for a minute.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time since the Unix epoch. Wall time rather than a monotonic clock because
/// window boundaries must agree between processes (and with a Redis implementation).
pub trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A clock before 1970 is a broken host; treating it as the epoch keeps limiting sane.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that moves only when told to (millisecond resolution).
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock showing `since_epoch`.
    pub fn at(since_epoch: Duration) -> Self {
        ManualClock {
            millis: AtomicU64::new(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set(&self, since_epoch: Duration) {
        let ms = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
        self.millis.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}
