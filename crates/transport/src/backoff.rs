//! The wait between reconnect attempts: doubling from a minimum to a maximum, with jitter so that
//! many clients that lost the same server do not come back in step.

use std::time::Duration;

/// A reconnect backoff: each [`Backoff::next_wait`] returns a wait between half and all of the
/// current step (so never more than `max`), then doubles the step up to `max`;
/// [`Backoff::reset`] starts again from `min` after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// From `min` doubling to `max` (`max` below `min` counts as `min`)
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            step: min,
        }
    }

    /// How long to wait before the next attempt
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        // "equal jitter": half the step, plus a random part of the other half
        let half = step / 2;
        let nanos = u64::try_from((step - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(..=nanos))
    }

    /// The wait after an attempt that lasted `attempt`: one that lasted longer than `max` was a
    /// connection that worked for a while, so the step starts from `min` again first
    pub fn wait_after(&mut self, attempt: Duration) -> Duration {
        if attempt > self.max {
            self.reset();
        }
        self.next_wait()
    }

    /// The next wait starts from `min` again
    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_with_jitter_within_each_step() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        for step in [100, 200, 400, 800, 1000, 1000, 1000] {
            let w = b.next_wait();
            assert!(
                w >= ms(step / 2) && w <= ms(step),
                "{w:?} for a step of {step} ms"
            );
        }
        b.reset();
        assert!(b.next_wait() <= ms(100));
        assert!(
            b.wait_after(ms(10)) > ms(100),
            "a short attempt does not reset"
        );
        assert!(b.wait_after(ms(1001)) <= ms(100), "a long one does");
    }

    #[test]
    fn waits_differ() {
        let mut waits: Vec<Duration> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_wait())
            .collect();
        waits.sort();
        waits.dedup();
        assert!(waits.len() > 1, "no jitter: {waits:?}");
    }
}
