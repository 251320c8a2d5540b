//! The in-process limiter under a manual clock: both windows, resets, isolation of keys,
//! failure counting, and the memory bound.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kbgap_ratelimit::{
    Decision, InProcessLimiter, LimitFuture, Limited, Limiter, ManualClock, Quota, RateKey, Window,
};

/// The in-process limiter's futures are ready at once; polling once proves it.
fn now(f: LimitFuture<'_>) -> Decision {
    let mut f = f;
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r.expect("in-process limiter never fails"),
        Poll::Pending => panic!("the in-process limiter must not wait"),
    }
}

/// 2025-06-15T15:06:40Z, chosen 40 s into a minute and 400 s into an hour.
const T0: u64 = 1_750_000_000;

fn setup(per_minute: u64, per_hour: u64) -> (Arc<ManualClock>, InProcessLimiter, Quota) {
    let clock = Arc::new(ManualClock::at(Duration::from_secs(T0)));
    let limiter = InProcessLimiter::new(1000, clock.clone());
    (
        clock,
        limiter,
        Quota::per_minute_and_hour(per_minute, per_hour).unwrap(),
    )
}

fn key(tenant: &str, app: &str) -> RateKey {
    RateKey::from_parts(["app", "/api/Software/{id}/getmissingkbs", tenant, app])
}

#[test]
fn sixth_call_in_a_minute_is_refused_until_the_minute_ends() {
    let (clock, l, q) = setup(5, 1500);
    let k = key("t1", "app1");
    for i in 0..5 {
        assert_eq!(
            now(l.acquire(&k, &q)),
            Decision::Allowed { remaining: 4 - i }
        );
    }
    // 40 s into the minute: 20 s left.
    assert_eq!(
        now(l.acquire(&k, &q)),
        Decision::Limited(Limited {
            window: Window::per_minute(5),
            retry_after: Duration::from_secs(20)
        })
    );
    // Refused calls are not counted: still refused, and not later than before.
    clock.advance(Duration::from_millis(19_500));
    match now(l.acquire(&k, &q)) {
        Decision::Limited(lim) => {
            assert_eq!(lim.retry_after, Duration::from_millis(500));
            assert_eq!(lim.retry_after_secs(), 1);
        }
        d => panic!("expected a refusal, got {d:?}"),
    }
    clock.advance(Duration::from_millis(500));
    assert_eq!(now(l.acquire(&k, &q)), Decision::Allowed { remaining: 4 });
}

#[test]
fn other_tenants_and_apps_have_their_own_counts() {
    let (_clock, l, q) = setup(2, 100);
    for k in [key("t1", "a"), key("t2", "a"), key("t1", "b")] {
        assert_eq!(now(l.acquire(&k, &q)), Decision::Allowed { remaining: 1 });
        assert_eq!(now(l.acquire(&k, &q)), Decision::Allowed { remaining: 0 });
        assert!(matches!(now(l.acquire(&k, &q)), Decision::Limited(_)));
    }
    assert_eq!(l.len(), 3);
}

#[test]
fn the_hour_window_holds_across_minutes() {
    let (clock, l, q) = setup(3, 4);
    let k = key("t1", "a");
    for _ in 0..3 {
        assert!(matches!(now(l.acquire(&k, &q)), Decision::Allowed { .. }));
    }
    clock.advance(Duration::from_secs(60));
    assert_eq!(now(l.acquire(&k, &q)), Decision::Allowed { remaining: 0 });
    // 460 s into the hour: the hour is full, 3140 s to go.
    assert_eq!(
        now(l.acquire(&k, &q)),
        Decision::Limited(Limited {
            window: Window::per_hour(4),
            retry_after: Duration::from_secs(3140)
        })
    );
    clock.advance(Duration::from_secs(3140));
    assert_eq!(now(l.acquire(&k, &q)), Decision::Allowed { remaining: 2 });
}

#[test]
fn when_both_windows_are_full_the_later_reset_is_reported() {
    let (_clock, l, q) = setup(2, 2);
    let k = key("t1", "a");
    now(l.acquire(&k, &q));
    now(l.acquire(&k, &q));
    assert_eq!(
        now(l.acquire(&k, &q)),
        Decision::Limited(Limited {
            window: Window::per_hour(2),
            retry_after: Duration::from_secs(3200)
        })
    );
}

#[test]
fn record_counts_failures_and_peek_only_looks() {
    let (clock, l, _) = setup(1, 1);
    let q = Quota::new([Window::per_minute(3)]).unwrap();
    let addr = RateKey::from_parts(["authfail", "192.0.2.7"]);
    assert_eq!(now(l.peek(&addr, &q)), Decision::Allowed { remaining: 3 });
    assert_eq!(l.len(), 0, "peeking at an unknown key stores nothing");
    assert_eq!(now(l.record(&addr, &q)), Decision::Allowed { remaining: 2 });
    assert_eq!(now(l.record(&addr, &q)), Decision::Allowed { remaining: 1 });
    assert_eq!(now(l.peek(&addr, &q)), Decision::Allowed { remaining: 1 });
    assert_eq!(now(l.record(&addr, &q)), Decision::Allowed { remaining: 0 });
    let refused = Decision::Limited(Limited {
        window: Window::per_minute(3),
        retry_after: Duration::from_secs(20),
    });
    assert_eq!(now(l.peek(&addr, &q)), refused);
    assert_eq!(now(l.peek(&addr, &q)), refused, "peek does not count");
    // Recording past the limit keeps counting and reports the refusal.
    assert_eq!(now(l.record(&addr, &q)), refused);
    clock.advance(Duration::from_secs(20));
    assert_eq!(now(l.peek(&addr, &q)), Decision::Allowed { remaining: 3 });
}

#[test]
fn memory_is_bounded() {
    let clock = Arc::new(ManualClock::at(Duration::from_secs(T0)));
    let l = InProcessLimiter::new(160, clock.clone());
    let q = Quota::new([Window::per_minute(10)]).unwrap();
    let k = |p: &str, i: usize| RateKey::from_parts([p, &i.to_string()]);
    for i in 0..1000 {
        now(l.acquire(&k("a", i), &q));
        assert!(l.len() <= 160, "{} keys held", l.len());
    }
    // Keys whose windows have ended are dropped when room is needed.
    clock.advance(Duration::from_secs(60));
    for i in 0..1000 {
        now(l.acquire(&k("b", i), &q));
        assert!(l.len() <= 160, "{} keys held", l.len());
    }
    // A key that was evicted starts again from zero rather than failing.
    assert_eq!(
        now(l.acquire(&k("a", 0), &q)),
        Decision::Allowed { remaining: 9 }
    );
}

#[test]
fn concurrent_callers_never_exceed_the_limit() {
    let (_clock, l, q) = setup(100, 1000);
    let l = Arc::new(l);
    let k = key("t1", "a");
    let allowed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (l, k, q) = (l.clone(), k.clone(), q.clone());
                s.spawn(move || {
                    (0..50)
                        .filter(|_| matches!(now(l.acquire(&k, &q)), Decision::Allowed { .. }))
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(allowed, 100);
}

#[test]
fn a_fresh_keys_peek_reports_the_tightest_window_like_a_counted_one() {
    let (_clock, l, _) = setup(1, 1);
    let q = Quota::per_minute_and_hour(100, 4).unwrap();
    let k = key("t1", "app1");
    assert_eq!(now(l.peek(&k, &q)), Decision::Allowed { remaining: 4 });
    assert_eq!(l.len(), 0);
    assert_eq!(now(l.acquire(&k, &q)), Decision::Allowed { remaining: 3 });
    assert_eq!(now(l.peek(&k, &q)), Decision::Allowed { remaining: 3 });
}
