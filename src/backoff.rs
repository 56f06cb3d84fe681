//! Jittered exponential backoff, for everything that reconnects or restarts: capture, the room,
//! the fleet link, RTMP outputs. One implementation, configured by one [`BackoffConfig`] type
//! whose bounds are checked in one place.

use crate::config::BackoffConfig;
use rand::Rng;
use std::time::Duration;

/// Doubling delays from `initial` to `max`, each drawn uniformly from half to all of the current
/// step ("equal jitter"), so a fleet of boxes that lost the same server does not return in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// A backoff starting at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            step: initial,
        }
    }

    /// A backoff as configured.
    pub fn from_config(c: &BackoffConfig) -> Backoff {
        Backoff::new(c.initial, c.max)
    }

    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::rng().random_range(0.0..=1.0))
    }

    /// The next delay, with the jitter given as `unit` in `0.0..=1.0` (pure, for tests and
    /// state machines that take their randomness from outside).
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let d: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        let bounds = [100, 200, 400, 800, 800, 800];
        for (d, hi) in d.iter().zip(bounds) {
            let hi = Duration::from_millis(hi);
            assert!(
                *d >= hi / 2 && *d <= hi,
                "{d:?} outside {:?}..={hi:?}",
                hi / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_given_from_outside_is_exact() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        assert_eq!(b.next_with(1.0), Duration::from_millis(100));
        assert_eq!(b.next_with(0.0), Duration::from_millis(100));
        assert_eq!(b.next_with(1.0), Duration::from_millis(400));
        for _ in 0..10 {
            assert!(b.next_with(1.0) <= Duration::from_millis(1000));
        }
        b.reset();
        assert!(b.next_with(0.5) <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay().as_micros());
        }
        assert!(seen.len() > 10, "delays should differ between boxes");
    }
}
