//! A cheap monotonic clock, for the WebSocket session loop's timers (idle
//! timeout, pings, closing handshake, stop checks): they need milliseconds,
//! and the loop reads the clock on every pass: on Linux the coarse monotonic clock answers from the last
//! tick without reading the TSC (a few ns, where `Instant::now` costs about
//! 25 ns in a VM); elsewhere `Instant`.

use std::ops::Add;
use std::time::Duration;

/// A point in time, as a duration since an arbitrary origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment(Duration);

impl Moment {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn now() -> Moment {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill; this clock exists on every
        // Linux since 2.6.32, and cannot fail with these arguments.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        Moment(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn now() -> Moment {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        Moment(ORIGIN.get_or_init(std::time::Instant::now).elapsed())
    }

    /// The moment as a duration since the clock's origin (the WebSocket
    /// protocol's `Time`).
    pub fn time(self) -> Duration {
        self.0
    }

    pub fn from_time(time: Duration) -> Moment {
        Moment(time)
    }

    /// How long from `self` until `later` (zero if that has passed).
    pub fn until(self, later: Moment) -> Duration {
        later.0.saturating_sub(self.0)
    }
}

impl Add<Duration> for Moment {
    type Output = Moment;

    fn add(self, d: Duration) -> Moment {
        Moment(self.0 + d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_real_time_to_the_tick() {
        let start = Moment::now();
        let wall = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(60));
        let gone = start.until(Moment::now());
        let real = wall.elapsed();
        // The coarse clock moves in ticks of at most 10 ms (HZ=100).
        assert!(gone + Duration::from_millis(10) >= real, "{gone:?} vs {real:?}");
        assert!(gone <= real + Duration::from_millis(10), "{gone:?} vs {real:?}");
    }

    #[test]
    fn arithmetic() {
        let t = Moment::now();
        let later = t + Duration::from_secs(5);
        assert!(later > t);
        assert_eq!(t.until(later), Duration::from_secs(5));
        assert_eq!(later.until(t), Duration::ZERO);
    }
}
