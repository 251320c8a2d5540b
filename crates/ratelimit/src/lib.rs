//! Rate limiting for kbgap: the [`Limiter`] interface with an explicit key and window model,
//! the in-process [`InProcessLimiter`] of a single node, and the [`RedisLimiter`] that several
//! replicas share (with a local fallback while Redis is unreachable).
//!
//! # Model
//!
//! A [`RateKey`] names what is counted (for example route template × tenant × client app, or
//! a client address). A [`Quota`] is one or more fixed [`Window`]s (`limit` calls per `period`).
//! Windows are aligned to the Unix epoch: window `i` of a period `p` covers
//! `[i·p, (i+1)·p)`, so every replica agrees on window boundaries without coordination, and a
//! Redis implementation keeps one counter per `(key, period, i)`:
//!
//! ```text
//! kbgap:rl:{key}:{period_secs}:{i}   INCR, EXPIRE period_secs   (one Lua script per call)
//! ```
//!
//! where `i` is computed from Redis's own clock, so replicas with skewed clocks still agree.
//!
//! [`Limiter::acquire`] counts a call only if every window has room (refused calls do not use
//! up the hour's budget); [`Limiter::record`] counts unconditionally and [`Limiter::peek`]
//! only looks, which is what limiting failed authentications needs (look before the costly
//! signature check, count after it failed).

mod clock;
mod in_process;
mod model;
mod redis;
mod rules;

pub use self::redis::{RedisLimiter, RedisOptions, RedisSetupError, DEFAULT_KEY_PREFIX};
pub use clock::{Clock, ManualClock, SystemClock};
pub use in_process::{InProcessLimiter, DEFAULT_MAX_KEYS};
pub use model::{Decision, Limited, Quota, QuotaError, RateKey, Window};

use std::future::Future;
use std::pin::Pin;

/// A limiter's answer, or why it could not give one.
pub type LimitResult = Result<Decision, LimitError>;

/// The future a [`Limiter`] returns; boxed so the trait can be used as `dyn Limiter`.
pub type LimitFuture<'a> = Pin<Box<dyn Future<Output = LimitResult> + Send + 'a>>;

/// Counts calls per key in fixed windows. Implementations must be safe to share between
/// requests; asynchronous because a shared implementation asks a server.
pub trait Limiter: Send + Sync {
    /// Counts one call in every window of `quota` if all of them have room; otherwise
    /// counts nothing and says which window is full and when it resets.
    fn acquire<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a>;

    /// Counts one event in every window whatever the counts, then reports whether the key is
    /// now over a limit (an event that reaches the limit exactly is still `Allowed`).
    fn record<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a>;

    /// Reports whether a call would be refused now, without counting it.
    fn peek<'a>(&'a self, key: &'a RateKey, quota: &'a Quota) -> LimitFuture<'a>;
}

/// A limiter that could not decide (a shared store unreachable). Callers choose whether to
/// fail open or closed; the in-process limiter never fails, and the Redis limiter decides
/// locally instead.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("rate-limit store unavailable: {0}")]
    Unavailable(String),
}
