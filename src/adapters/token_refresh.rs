//! When a call refused with 403 may drop its token and try once more. A token carries what its
//! principal was allowed when it was issued (Graph roles in its `roles` claim; ARM answers "If
//! access was recently granted, please refresh your credentials"), so after a grant the old token
//! keeps being refused until it expires, about an hour. Refreshing on every 403 would double each
//! refused call; once per few minutes per client (one scope) lets a fix take effect within minutes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one refresh after a 403 this often, per client.
pub const FORBIDDEN_REFRESH_EVERY: Duration = Duration::from_secs(300);

/// Whether a 403 at `now` may refresh, the last such refresh having been at `last`.
pub fn may_refresh(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= every)
}

/// One client's record of its last refresh after a 403.
#[derive(Debug, Default)]
pub struct ForbiddenRefresh {
    last: Mutex<Option<Instant>>,
}

impl ForbiddenRefresh {
    /// Claims the refresh if it is due (and records it).
    pub fn claim(&self, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = may_refresh(*last, now, FORBIDDEN_REFRESH_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refresh_per_window() {
        let t0 = Instant::now();
        let gate = ForbiddenRefresh::default();
        assert!(gate.claim(t0), "the first 403 refreshes");
        assert!(!gate.claim(t0 + Duration::from_secs(10)), "a second 403 soon after does not");
        assert!(!gate.claim(t0 + FORBIDDEN_REFRESH_EVERY - Duration::from_millis(1)));
        assert!(gate.claim(t0 + FORBIDDEN_REFRESH_EVERY), "after the window, again");
    }

    #[test]
    fn may_refresh_is_monotonic_in_time() {
        let t0 = Instant::now();
        let every = Duration::from_secs(300);
        let mut was = false;
        for s in (0..700).step_by(7) {
            let now = may_refresh(Some(t0), t0 + Duration::from_secs(s), every);
            assert!(!was || now, "once due, stays due");
            assert_eq!(now, s >= 300);
            was = now;
        }
        assert!(may_refresh(None, t0, every));
        // A clock reading before the last refresh (another thread's) is not due.
        assert!(!may_refresh(Some(t0 + Duration::from_secs(5)), t0, every));
    }
}
