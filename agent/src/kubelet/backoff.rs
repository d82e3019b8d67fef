//! Crash-loop back-off, the kubelet's way: the first restart happens at once,
//! then each one waits twice as long as the one before (10 s, 20 s, 40 s, … at
//! most 5 min) after the container last finished; a container that ran for 10
//! minutes before it exited starts over at no delay.

use std::time::{Duration, SystemTime};

/// The first back-off step.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const MAX: Duration = Duration::from_secs(300);
/// A run at least this long resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// The wait before a restart at back-off `level`.
pub fn delay(level: u32) -> Duration {
    if level == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (level - 1).min(16);
    INITIAL.saturating_mul(factor).min(MAX)
}

/// The level to use for a container that ran from `started` to `finished`
/// at `level`: back to 0 after a long run.
pub fn level_after_run(level: u32, started: Option<SystemTime>, finished: SystemTime) -> u32 {
    let ran = started.and_then(|s| finished.duration_since(s).ok());
    match ran {
        Some(d) if d >= RESET_AFTER => 0,
        _ => level,
    }
}

/// How long from `now` until a container that finished at `finished` may be
/// restarted at back-off `level` (zero when it may go now).
pub fn remaining(level: u32, finished: SystemTime, now: SystemTime) -> Duration {
    let until = finished + delay(level);
    until.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|l| delay(l).as_secs()).collect();
        assert_eq!(secs, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(delay(1000), MAX);
    }

    #[test]
    fn a_long_run_resets_the_level() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            level_after_run(5, Some(t0), t0 + Duration::from_secs(601)),
            0
        );
        assert_eq!(
            level_after_run(5, Some(t0), t0 + Duration::from_secs(30)),
            5
        );
        assert_eq!(level_after_run(5, None, t0), 5);
    }

    #[test]
    fn remaining_counts_from_the_finish() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            remaining(1, t0, t0 + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(
            remaining(1, t0, t0 + Duration::from_secs(11)),
            Duration::ZERO
        );
        assert_eq!(remaining(0, t0, t0), Duration::ZERO);
    }
}
