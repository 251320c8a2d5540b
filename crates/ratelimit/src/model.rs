//! The vocabulary shared by every limiter: what is counted ([`RateKey`]), how much is allowed
//! ([`Quota`] of fixed [`Window`]s) and the answer ([`Decision`]).

use std::fmt;
use std::time::Duration;

/// What is counted. Built from parts joined with `|` (a `|` or `\` inside a part is escaped
/// with `\`), so distinct part lists never collide and the key can serve as a Redis key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// A key from its parts, e.g. `["app", "/api/Software/{id}/getmissingkbs", tenant, app]`.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> RateKey {
        let mut key = String::with_capacity(96);
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                key.push('|');
            }
            if !part.contains(['|', '\\']) {
                key.push_str(part);
                continue;
            }
            for c in part.chars() {
                if c == '|' || c == '\\' {
                    key.push('\\');
                }
                key.push(c);
            }
        }
        RateKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// At most `limit` calls in each fixed window of `period` (whole seconds, aligned to the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub limit: u64,
    pub period: Duration,
}

impl Window {
    pub fn per_minute(limit: u64) -> Window {
        Window {
            limit,
            period: Duration::from_secs(60),
        }
    }

    pub fn per_hour(limit: u64) -> Window {
        Window {
            limit,
            period: Duration::from_secs(3600),
        }
    }

    /// The period in whole seconds (validated to be at least 1 by [`Quota::new`]).
    pub fn period_secs(&self) -> u64 {
        self.period.as_secs()
    }

    /// Index of the window containing `now` (time since the epoch).
    pub fn index(&self, now: Duration) -> u64 {
        now.as_secs() / self.period_secs().max(1)
    }

    /// Time from `now` until the window containing it ends.
    pub fn remaining(&self, now: Duration) -> Duration {
        let end = Duration::from_secs((self.index(now) + 1) * self.period_secs().max(1));
        end.saturating_sub(now)
    }
}

/// Why a quota cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("a quota needs at least one window")]
    Empty,
    #[error(
        "a window's limit must be at least 1 (use a very large limit to effectively disable it)"
    )]
    ZeroLimit,
    #[error("a window's period must be a whole number of seconds, at least 1")]
    BadPeriod,
    #[error("two windows have the same period of {0} s")]
    DuplicatePeriod(u64),
}

/// Every window must have room for a call to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    windows: Vec<Window>,
}

impl Quota {
    pub fn new(windows: impl IntoIterator<Item = Window>) -> Result<Quota, QuotaError> {
        let mut windows: Vec<Window> = windows.into_iter().collect();
        if windows.is_empty() {
            return Err(QuotaError::Empty);
        }
        for w in &windows {
            if w.limit == 0 {
                return Err(QuotaError::ZeroLimit);
            }
            if w.period.as_secs() == 0 || w.period.subsec_nanos() != 0 {
                return Err(QuotaError::BadPeriod);
            }
        }
        windows.sort_by_key(|w| w.period);
        for pair in windows.windows(2) {
            if pair[0].period == pair[1].period {
                return Err(QuotaError::DuplicatePeriod(pair[0].period_secs()));
            }
        }
        Ok(Quota { windows })
    }

    /// MDE's shape: a per-minute and a per-hour window.
    pub fn per_minute_and_hour(per_minute: u64, per_hour: u64) -> Result<Quota, QuotaError> {
        Quota::new([Window::per_minute(per_minute), Window::per_hour(per_hour)])
    }

    /// MDE's documented defaults: 100 calls per minute and 1,500 per hour.
    pub fn mde_default() -> Quota {
        Quota {
            windows: vec![Window::per_minute(100), Window::per_hour(1500)],
        }
    }

    /// One per-minute window; a limit of 0 counts as 1 (a limiter cannot refuse everything).
    pub fn per_minute(limit: u64) -> Quota {
        Quota {
            windows: vec![Window::per_minute(limit.max(1))],
        }
    }

    /// The windows, shortest period first.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }
}

/// A limiter's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The call passes; `remaining` calls are left in the tightest window.
    Allowed {
        remaining: u64,
    },
    Limited(Limited),
}

/// A refusal: the full window (the one that resets last if several are full) and how long
/// until it resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub window: Window,
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds, rounded up and at least 1, so a client that honours it
    /// never comes back before the window has reset.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_the_separator() {
        assert_eq!(RateKey::from_parts(["a", "b"]).as_str(), "a|b");
        assert_ne!(
            RateKey::from_parts(["a|b", "c"]),
            RateKey::from_parts(["a", "b|c"])
        );
        assert_eq!(RateKey::from_parts(["a|b", "c\\"]).as_str(), "a\\|b|c\\\\");
    }

    #[test]
    fn quotas_are_validated_and_sorted() {
        assert_eq!(Quota::new([]), Err(QuotaError::Empty));
        assert_eq!(Quota::per_minute_and_hour(0, 5), Err(QuotaError::ZeroLimit));
        assert_eq!(
            Quota::new([Window {
                limit: 1,
                period: Duration::from_millis(1500)
            }]),
            Err(QuotaError::BadPeriod)
        );
        assert_eq!(
            Quota::new([Window::per_minute(1), Window::per_minute(2)]),
            Err(QuotaError::DuplicatePeriod(60))
        );
        let q = Quota::new([Window::per_hour(1500), Window::per_minute(100)]).unwrap();
        assert_eq!(
            q.windows(),
            &[Window::per_minute(100), Window::per_hour(1500)]
        );
    }

    #[test]
    fn windows_align_to_the_epoch() {
        let w = Window::per_minute(5);
        assert_eq!(w.index(Duration::from_secs(119)), 1);
        assert_eq!(w.index(Duration::from_secs(120)), 2);
        assert_eq!(
            w.remaining(Duration::from_millis(119_250)),
            Duration::from_millis(750)
        );
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        let l = |ms| Limited {
            window: Window::per_minute(1),
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(l(0).retry_after_secs(), 1);
        assert_eq!(l(1).retry_after_secs(), 1);
        assert_eq!(l(1000).retry_after_secs(), 1);
        assert_eq!(l(1001).retry_after_secs(), 2);
        assert_eq!(l(59_999).retry_after_secs(), 60);
    }
}
