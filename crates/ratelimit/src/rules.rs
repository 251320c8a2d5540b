//! The fixed-window rules every limiter applies to the counts it holds, in one place, so the
//! in-process and the Redis limiter answer every call identically.

use std::time::Duration;

use crate::model::{Decision, Limited, Quota};

/// What a call does to the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Counts the call only if every window has room.
    Acquire,
    /// Counts the call whatever the counts.
    Record,
    /// Counts nothing.
    Peek,
}

impl Mode {
    /// The name the Redis script knows the mode by.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Acquire => "acquire",
            Mode::Record => "record",
            Mode::Peek => "peek",
        }
    }
}

/// Whether a call is counted, and the answer, given `before(i)`: the count of the quota's
/// window `i` in its current period before the call. `now` is the time the counts were read.
pub(crate) fn judge(
    quota: &Quota,
    before: impl Fn(usize) -> u64,
    now: Duration,
    mode: Mode,
) -> (bool, Decision) {
    let windows = quota.windows();
    // The full window that resets last (ties: the longer period, the later in the quota).
    let full = |extra: u64| -> Option<Limited> {
        windows
            .iter()
            .enumerate()
            .filter(|(i, w)| before(*i).saturating_add(extra) > w.limit)
            .map(|(_, w)| Limited {
                window: *w,
                retry_after: w.remaining(now),
            })
            .max_by_key(|l| l.retry_after)
    };
    let remaining = |counted: u64| -> u64 {
        windows
            .iter()
            .enumerate()
            .map(|(i, w)| w.limit.saturating_sub(before(i).saturating_add(counted)))
            .min()
            .unwrap_or(0)
    };
    match mode {
        Mode::Peek => match full(1) {
            Some(l) => (false, Decision::Limited(l)),
            None => (
                false,
                Decision::Allowed {
                    remaining: remaining(0),
                },
            ),
        },
        Mode::Acquire => match full(1) {
            Some(l) => (false, Decision::Limited(l)),
            None => (
                true,
                Decision::Allowed {
                    remaining: remaining(1),
                },
            ),
        },
        Mode::Record => match full(1) {
            // An event that reaches a limit exactly is still allowed; one past it is not.
            Some(l) => (true, Decision::Limited(l)),
            None => (
                true,
                Decision::Allowed {
                    remaining: remaining(1),
                },
            ),
        },
    }
}
