//! Time as an injected dependency. Pipeline stages never call `Instant::now()` or
//! `SystemTime::now()` themselves: they ask a [`Clock`], so the simulator can run a line
//! on a [`VirtualClock`] faster than real time and replay a run deterministically, while
//! the daemon uses [`SystemClock`]. This module owns the trait and the two clocks; it
//! does not schedule anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A point on a clock's monotonic time line, in microseconds since the clock's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub u64);

impl Micros {
    /// This instant plus `d` (saturating).
    pub fn plus(self, d: Duration) -> Micros {
        Micros(
            self.0
                .saturating_add(d.as_micros().min(u128::from(u64::MAX)) as u64),
        )
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Micros) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// A source of time for pipeline stages.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time since the clock's origin.
    fn now(&self) -> Micros;
    /// Wall-clock time (UTC) in microseconds since the Unix epoch, for event records.
    fn wall_micros(&self) -> u64;
    /// Block the calling thread until `deadline` (returns at once if it has passed).
    /// On a virtual clock this waits until the clock is advanced past `deadline`.
    fn sleep_until(&self, deadline: Micros);
}

/// The real clock: `Instant` for monotonic time, `SystemTime` for wall time.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        Micros(self.origin.elapsed().as_micros().min(u128::from(u64::MAX)) as u64)
    }

    fn wall_micros(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, deadline: Micros) {
        let now = self.now();
        if deadline > now {
            std::thread::sleep(deadline.since(now));
        }
    }
}

/// A clock that moves only when told to. Cloning shares the same time line.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    inner: Arc<VirtualInner>,
}

#[derive(Debug)]
struct VirtualInner {
    now: AtomicU64,
    wall_origin: u64,
    lock: std::sync::Mutex<()>,
    moved: std::sync::Condvar,
}

impl VirtualClock {
    /// A virtual clock at 0 whose wall time starts at `wall_origin_micros` (Unix µs).
    pub fn new(wall_origin_micros: u64) -> VirtualClock {
        VirtualClock {
            inner: Arc::new(VirtualInner {
                now: AtomicU64::new(0),
                wall_origin: wall_origin_micros,
                lock: std::sync::Mutex::new(()),
                moved: std::sync::Condvar::new(),
            }),
        }
    }

    /// Move the clock to `t` (never backwards) and wake every sleeper.
    pub fn advance_to(&self, t: Micros) {
        let guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.now.fetch_max(t.0, Ordering::SeqCst);
        drop(guard);
        self.inner.moved.notify_all();
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.advance_to(self.now().plus(d));
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Micros {
        Micros(self.inner.now.load(Ordering::SeqCst))
    }

    fn wall_micros(&self) -> u64 {
        self.inner.wall_origin.saturating_add(self.now().0)
    }

    fn sleep_until(&self, deadline: Micros) {
        let mut guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.now() < deadline {
            guard = self
                .inner
                .moved
                .wait(guard)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward_and_wakes_sleepers() {
        let clock = VirtualClock::new(1_700_000_000_000_000);
        assert_eq!(clock.now(), Micros(0));
        let c2 = clock.clone();
        let sleeper = std::thread::spawn(move || {
            c2.sleep_until(Micros(5_000));
            c2.now()
        });
        clock.advance(Duration::from_millis(2));
        clock.advance_to(Micros(1_000)); // backwards: ignored
        assert_eq!(clock.now(), Micros(2_000));
        clock.advance(Duration::from_millis(3));
        let woke_at = sleeper.join().unwrap();
        assert!(woke_at >= Micros(5_000));
        assert_eq!(clock.wall_micros(), 1_700_000_000_005_000);
    }

    #[test]
    fn micros_arithmetic_saturates() {
        assert_eq!(Micros(5).since(Micros(9)), Duration::ZERO);
        assert_eq!(
            Micros(u64::MAX).plus(Duration::from_secs(1)),
            Micros(u64::MAX)
        );
    }
}
