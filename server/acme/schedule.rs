//! When each domain's next attempt is due: at `renew_at` of its certificate's lifetime (at
//! once when it has none), and after a failure, a back-off that doubles from `retry_min` up to
//! `retry_max`. Pure bookkeeping: the task asks and reports, this decides.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// One domain's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// When to try next.
    pub next: SystemTime,
    /// Failed attempts in a row.
    pub failures: u32,
}

/// The plans of every domain the task looks after.
#[derive(Default)]
pub struct Schedule {
    plans: HashMap<String, Plan>,
}

impl Schedule {
    /// `domain`'s plan, made from `renew_after` (its stored certificate's renewal time, `None`
    /// without one) the first time it is asked for.
    pub fn plan(&mut self, domain: &str, renew_after: impl FnOnce() -> Option<SystemTime>) -> Plan {
        if let Some(plan) = self.plans.get(domain) {
            return *plan;
        }
        let plan = Plan {
            next: renew_after().unwrap_or(SystemTime::UNIX_EPOCH),
            failures: 0,
        };
        self.plans.insert(domain.to_string(), plan);
        plan
    }

    /// A new certificate for `domain`, to be renewed at `renew_after`.
    pub fn succeeded(&mut self, domain: &str, renew_after: SystemTime) {
        self.plans.insert(
            domain.to_string(),
            Plan {
                next: renew_after,
                failures: 0,
            },
        );
    }

    /// A failed attempt for `domain` at `now`; returns the wait before the next one.
    pub fn failed(
        &mut self,
        domain: &str,
        now: SystemTime,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let failures = self.plans.get(domain).map_or(0, |p| p.failures) + 1;
        let wait = backoff(failures, min, max);
        self.plans.insert(
            domain.to_string(),
            Plan {
                next: now + wait,
                failures,
            },
        );
        wait
    }

    /// Forgets the domains not in `wanted` (removed from the configuration).
    pub fn retain(&mut self, wanted: &[&str]) {
        self.plans.retain(|d, _| wanted.contains(&d.as_str()));
    }
}

/// The wait after `failures` failures in a row: `min`, doubled each time, at most `max`.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    min.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n, min, max).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(u32::MAX, min, max), max);
    }

    #[test]
    fn a_success_resets_the_failures() {
        let mut s = Schedule::default();
        let now = SystemTime::now();
        assert_eq!(s.plan("a.test", || None).next, SystemTime::UNIX_EPOCH);
        let min = Duration::from_secs(1);
        s.failed("a.test", now, min, Duration::from_secs(8));
        assert_eq!(
            s.failed("a.test", now, min, Duration::from_secs(8)),
            min * 2
        );
        s.succeeded("a.test", now);
        assert_eq!(s.plan("a.test", || None).failures, 0);
        s.retain(&[]);
        assert_eq!(s.plan("a.test", || Some(now)).next, now);
    }
}
