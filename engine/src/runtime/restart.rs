//! Restart strategies (Flink's `restart-strategy.type`): after a failure inside
//! a running job, how long to wait before restarting it from its latest
//! completed checkpoint, and when to give up.

use std::time::Duration;

/// When and how often a failed job restarts.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// A failure ends the job.
    None,
    /// Up to `attempts` restarts, `delay` apart.
    FixedDelay {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Up to `attempts` restarts; the wait starts at `initial` and grows by
    /// `multiplier` up to `max`.
    ExponentialDelay {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before the first restart.
        initial: Duration,
        /// Longest wait.
        max: Duration,
        /// Growth of the wait from one restart to the next.
        multiplier: f64,
    },
}

impl RestartStrategy {
    /// The wait before restart number `attempt` (1 for the first restart), or
    /// `None` when no restart is left.
    pub fn delay_before(&self, attempt: u32) -> Option<Duration> {
        match *self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (attempt <= attempts).then_some(delay)
            }
            RestartStrategy::ExponentialDelay {
                attempts,
                initial,
                max,
                multiplier,
            } => {
                if attempt > attempts {
                    return None;
                }
                let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
                let wait = initial.as_secs_f64() * multiplier.max(1.0).powi(exponent);
                Some(Duration::from_secs_f64(wait.min(max.as_secs_f64())))
            }
        }
    }

    /// How many restarts the strategy allows.
    pub fn attempts(&self) -> u32 {
        match *self {
            RestartStrategy::None => 0,
            RestartStrategy::FixedDelay { attempts, .. }
            | RestartStrategy::ExponentialDelay { attempts, .. } => attempts,
        }
    }
}

/// A restart, as reported to the job's owner (the CLI prints it).
#[derive(Debug, Clone)]
pub struct RestartEvent {
    /// 1 for the first restart.
    pub attempt: u32,
    /// Restarts the strategy allows in all.
    pub attempts: u32,
    /// The failure that caused it.
    pub cause: String,
    /// The wait before restarting.
    pub delay: Duration,
    /// The checkpoint the job restarts from, if any completed.
    pub checkpoint: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_strategy_and_run_out() {
        assert_eq!(RestartStrategy::None.delay_before(1), None);
        let fixed = RestartStrategy::FixedDelay {
            attempts: 2,
            delay: Duration::from_millis(10),
        };
        assert_eq!(fixed.delay_before(1), Some(Duration::from_millis(10)));
        assert_eq!(fixed.delay_before(2), Some(Duration::from_millis(10)));
        assert_eq!(fixed.delay_before(3), None);
        let exponential = RestartStrategy::ExponentialDelay {
            attempts: 4,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
            multiplier: 2.0,
        };
        let waits: Vec<_> = (1..=5).map(|a| exponential.delay_before(a)).collect();
        assert_eq!(
            waits,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(300)),
                Some(Duration::from_millis(300)),
                None
            ]
        );
    }
}
