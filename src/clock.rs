//! Time as an injected dependency. Pipeline stages never call `Instant::now()` or
//! `SystemTime::now()` themselves: they ask a [`Clock`], so the simulator can run a line
//! on a [`VirtualClock`] faster than real time and replay a run deterministically, while
//! the daemon uses [`SystemClock`]. This module owns the trait, the two clocks and their
//! alarms (a channel that receives once when the clock reaches a deadline, so a stage can
//! `select!` on "the answer or the deadline, whichever is first"); it does not schedule
//! any work.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};

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
    /// A channel that receives once, the clock's time at firing (never before
    /// `deadline`), when the clock reaches `deadline`; at once if it already has.
    /// Dropping the receiver cancels nothing but costs nothing either: the alarm fires
    /// into the void.
    fn alarm(&self, deadline: Micros) -> Receiver<Micros>;
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now={})", self.now().0)
    }
}

/// An alarm waiting for its deadline.
#[derive(Debug)]
struct Alarm {
    at: Micros,
    tx: Sender<Micros>,
}

/// A one-shot channel that has already fired with `now`.
fn fired(now: Micros) -> Receiver<Micros> {
    let (tx, rx) = bounded(1);
    // Cannot fail: the channel is fresh, has room for one and its receiver is alive.
    let _ = tx.try_send(now);
    rx
}

/// Fire (and remove) every alarm in `alarms` due at `now`; each alarm delivered to a
/// live receiver carries one `activity` token.
fn fire_due(alarms: &mut Vec<Alarm>, now: Micros, activity: &Activity) {
    alarms.retain(|a| {
        if a.at <= now {
            // The receiver may be gone (its caller got its answer first): nothing to do.
            activity.begin();
            if a.tx.try_send(now).is_err() {
                activity.end();
            }
            false
        } else {
            true
        }
    });
}

/// Idle accounting for lockstep simulation. Every pipeline thread holds one token
/// while it runs and none while it blocks; every message sent to a thread, every frame
/// a simulated device pushes and every alarm a [`VirtualClock`] fires carries one
/// token until it is handled. When the count is zero the whole pipeline is waiting
/// for time to pass, and the simulator may move the clock on. [`Activity::none`]
/// (the daemon's) counts nothing.
#[derive(Debug, Clone, Default)]
pub struct Activity(Option<Arc<ActivityInner>>);

#[derive(Debug, Default)]
struct ActivityInner {
    count: AtomicI64,
    lock: Mutex<()>,
    idle: std::sync::Condvar,
}

impl Activity {
    /// No accounting (real time).
    pub fn none() -> Activity {
        Activity(None)
    }

    /// A counter starting at zero.
    pub fn tracked() -> Activity {
        Activity(Some(Arc::new(ActivityInner::default())))
    }

    /// Whether this counts anything.
    pub fn is_tracked(&self) -> bool {
        self.0.is_some()
    }

    /// One more token (work queued or a thread running).
    pub fn begin(&self) {
        if let Some(a) = &self.0 {
            a.count.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// One token handed back.
    pub fn end(&self) {
        if let Some(a) = &self.0
            && a.count.fetch_sub(1, Ordering::SeqCst) == 1
        {
            let _g = a.lock.lock().unwrap_or_else(|p| p.into_inner());
            a.idle.notify_all();
        }
    }

    /// Tokens outstanding (0 when not tracked).
    pub fn count(&self) -> i64 {
        self.0
            .as_ref()
            .map_or(0, |a| a.count.load(Ordering::SeqCst))
    }

    /// Block until the count is zero or `timeout` passed; true when idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let Some(a) = &self.0 else {
            return true;
        };
        let end = Instant::now() + timeout;
        let mut g = a.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if a.count.load(Ordering::SeqCst) == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            // A short wait as well, in case a count reached zero between the check and
            // the wait.
            let step = (end - now).min(Duration::from_millis(2));
            g = a
                .idle
                .wait_timeout(g, step)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// The real clock: `Instant` for monotonic time, `SystemTime` for wall time. Alarms in
/// the future are kept by one timer thread per clock (shared by its clones), started on
/// the first such alarm and ending once the clock and all its clones are dropped and
/// every alarm it holds has fired.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
    timer: Arc<OnceLock<Option<Sender<Alarm>>>>,
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
            timer: Arc::new(OnceLock::new()),
        }
    }

    /// The real instant of `t` on this clock, `None` if it is beyond `Instant`'s range.
    fn instant_of(&self, t: Micros) -> Option<Instant> {
        self.origin.checked_add(Duration::from_micros(t.0))
    }

    /// The timer thread's inbox, starting the thread on first use (`None` if the
    /// thread could not be spawned).
    fn timer(&self) -> Option<&Sender<Alarm>> {
        self.timer
            .get_or_init(|| {
                let (tx, rx) = unbounded::<Alarm>();
                let clock = SystemClock {
                    origin: self.origin,
                    // The thread's own copy must not keep the inbox open.
                    timer: Arc::new(OnceLock::new()),
                };
                match std::thread::Builder::new()
                    .name("clock-alarms".into())
                    .spawn(move || clock.run_timer(rx))
                {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot spawn the clock's alarm thread");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// The timer thread: wait for the earliest alarm or a new one, fire what is due.
    /// When every clock is gone, fire what is left at its time and end.
    fn run_timer(&self, inbox: Receiver<Alarm>) {
        let mut alarms: Vec<Alarm> = Vec::new();
        let mut open = true;
        loop {
            fire_due(&mut alarms, self.now(), &Activity::none());
            let next = alarms
                .iter()
                .map(|a| a.at)
                .min()
                .map(|at| self.instant_of(at));
            if !open {
                match next {
                    // Fire the rest at their time; one beyond `Instant` never comes.
                    Some(Some(at)) => {
                        std::thread::sleep(at.saturating_duration_since(Instant::now()))
                    }
                    Some(None) | None => return,
                }
                continue;
            }
            let got = match next {
                Some(Some(at)) => inbox.recv_deadline(at),
                Some(None) | None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match got {
                Ok(alarm) => alarms.push(alarm),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
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

    fn alarm(&self, deadline: Micros) -> Receiver<Micros> {
        let now = self.now();
        if deadline <= now {
            return fired(now);
        }
        let (tx, rx) = bounded(1);
        match self.timer() {
            Some(timer) => {
                // Cannot fail while `self` holds the inbox open and the thread lives.
                if let Err(e) = timer.send(Alarm { at: deadline, tx }) {
                    tracing::error!("clock alarm thread gone; alarm fires now");
                    let _ = e.into_inner().tx.try_send(self.now());
                }
            }
            None => {
                // No thread to wait on: answer at once rather than never (a caller
                // then treats its frame as late, the safe side for a verifier).
                let _ = tx.try_send(now);
            }
        }
        rx
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
    /// Alarms not yet due; `now` only moves while this lock is held.
    alarms: Mutex<Vec<Alarm>>,
    moved: std::sync::Condvar,
    /// Tokens for fired alarms (lockstep simulation).
    activity: Activity,
}

impl VirtualClock {
    /// A virtual clock at 0 whose wall time starts at `wall_origin_micros` (Unix µs).
    pub fn new(wall_origin_micros: u64) -> VirtualClock {
        VirtualClock {
            inner: Arc::new(VirtualInner {
                now: AtomicU64::new(0),
                wall_origin: wall_origin_micros,
                alarms: Mutex::new(Vec::new()),
                moved: std::sync::Condvar::new(),
                activity: Activity::none(),
            }),
        }
    }

    /// A virtual clock whose fired alarms carry `activity` tokens (lockstep
    /// simulation, see [`Activity`]).
    pub fn with_activity(wall_origin_micros: u64, activity: Activity) -> VirtualClock {
        VirtualClock {
            inner: Arc::new(VirtualInner {
                now: AtomicU64::new(0),
                wall_origin: wall_origin_micros,
                alarms: Mutex::new(Vec::new()),
                moved: std::sync::Condvar::new(),
                activity,
            }),
        }
    }

    /// Move the clock to `t` (never backwards), fire every alarm now due and wake every
    /// sleeper.
    pub fn advance_to(&self, t: Micros) {
        self.set_time(t);
        self.fire();
    }

    /// Move the clock to `t` (never backwards) without firing alarms or waking
    /// sleepers: a simulator first lets its devices act at `t`, then calls
    /// [`VirtualClock::fire`].
    pub fn set_time(&self, t: Micros) {
        let _alarms = self.inner.alarms.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.now.fetch_max(t.0, Ordering::SeqCst);
    }

    /// Fire every alarm due at the current time and wake every sleeper.
    pub fn fire(&self) {
        let mut alarms = self.inner.alarms.lock().unwrap_or_else(|p| p.into_inner());
        fire_due(&mut alarms, self.now(), &self.inner.activity);
        drop(alarms);
        self.inner.moved.notify_all();
    }

    /// The earliest alarm not yet fired.
    pub fn next_alarm(&self) -> Option<Micros> {
        self.inner
            .alarms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|a| a.at)
            .min()
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.advance_to(self.now().plus(d));
    }

    /// Alarms registered and not yet fired (tests use it to wait until a caller is
    /// blocked on its deadline).
    pub fn pending_alarms(&self) -> usize {
        self.inner
            .alarms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
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
        let mut guard = self.inner.alarms.lock().unwrap_or_else(|p| p.into_inner());
        while self.now() < deadline {
            guard = self
                .inner
                .moved
                .wait(guard)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn alarm(&self, deadline: Micros) -> Receiver<Micros> {
        let mut alarms = self.inner.alarms.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now();
        if deadline <= now {
            self.inner.activity.begin();
            return fired(now);
        }
        let (tx, rx) = bounded(1);
        alarms.push(Alarm { at: deadline, tx });
        rx
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
    fn virtual_alarm_fires_at_its_deadline_never_early() {
        let clock = VirtualClock::new(0);
        clock.advance_to(Micros(1_000));
        let late = clock.alarm(Micros(5_000));
        let later = clock.alarm(Micros(9_000));
        assert_eq!(clock.pending_alarms(), 2);
        clock.advance_to(Micros(4_999));
        assert!(late.try_recv().is_err(), "fired before its deadline");
        clock.advance_to(Micros(5_000));
        assert_eq!(late.try_recv(), Ok(Micros(5_000)));
        assert!(later.try_recv().is_err(), "fired before its deadline");
        assert_eq!(clock.pending_alarms(), 1);
        // jumping past a deadline fires it with the time reached
        clock.advance(Duration::from_millis(10));
        assert_eq!(later.try_recv(), Ok(Micros(15_000)));
        assert_eq!(clock.pending_alarms(), 0);
        // each alarm fires once
        clock.advance(Duration::from_millis(10));
        assert!(late.try_recv().is_err() && later.try_recv().is_err());
    }

    #[test]
    fn virtual_alarm_already_due_fires_at_once() {
        let clock = VirtualClock::new(0);
        clock.advance_to(Micros(7_000));
        assert_eq!(clock.alarm(Micros(7_000)).try_recv(), Ok(Micros(7_000)));
        assert_eq!(clock.alarm(Micros(3)).try_recv(), Ok(Micros(7_000)));
        assert_eq!(clock.pending_alarms(), 0);
    }

    #[test]
    fn virtual_alarm_wakes_a_blocked_receiver_from_another_thread() {
        let clock = VirtualClock::new(0);
        let alarm = clock.alarm(Micros(2_000));
        let waiter = std::thread::spawn(move || alarm.recv());
        clock.advance(Duration::from_millis(1));
        clock.advance(Duration::from_millis(1));
        assert_eq!(waiter.join().unwrap(), Ok(Micros(2_000)));
    }

    #[test]
    fn system_alarm_fires_at_or_after_its_deadline() {
        let clock = SystemClock::new();
        let deadline = clock.now().plus(Duration::from_millis(20));
        let alarm = clock.alarm(deadline);
        let fired_at = alarm.recv().unwrap();
        assert!(fired_at >= deadline, "{fired_at:?} < {deadline:?}");
        assert!(clock.now() >= deadline);
        // one shot: nothing more arrives
        assert!(alarm.recv_timeout(Duration::from_millis(30)).is_err());
    }

    #[test]
    fn system_alarms_fire_in_deadline_order_whatever_the_order_set() {
        let clock = SystemClock::new();
        let t0 = clock.now();
        let second = clock.alarm(t0.plus(Duration::from_millis(40)));
        let first = clock.alarm(t0.plus(Duration::from_millis(10)));
        let a = first.recv().unwrap();
        assert!(second.try_recv().is_err() || clock.now() >= t0.plus(Duration::from_millis(40)));
        let b = second.recv().unwrap();
        assert!(a >= t0.plus(Duration::from_millis(10)));
        assert!(b >= t0.plus(Duration::from_millis(40)));
    }

    #[test]
    fn system_alarm_already_due_fires_at_once() {
        let clock = SystemClock::new();
        std::thread::sleep(Duration::from_millis(2));
        let now = clock.now();
        let alarm = clock.alarm(Micros(1_000));
        let got = alarm.try_recv().unwrap();
        assert!(got >= now);
    }

    #[test]
    fn system_alarm_outlives_its_clock_and_far_future_does_not_panic() {
        let clock = SystemClock::new();
        let never = clock.alarm(Micros(u64::MAX));
        let deadline = clock.now().plus(Duration::from_millis(10));
        let alarm = clock.alarm(deadline);
        drop(clock);
        assert!(alarm.recv().unwrap() >= deadline);
        assert!(never.try_recv().is_err());
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
