//! Time as an injected dependency. Pipeline stages never call `Instant::now()` or
//! `SystemTime::now()` themselves: they ask a [`Clock`], so the simulator can run a line
//! on a [`VirtualClock`] faster than real time and replay a run deterministically, while
//! the daemon uses [`SystemClock`]. This module owns the trait, the two clocks and their
//! alarms (a channel that receives once when the clock reaches a deadline, so a stage can
//! `select!` on "the answer or the deadline, whichever is first"; an [`Alarm`] is one a
//! waiting thread keeps and sets again for every wait, allocating nothing per setting);
//! it does not schedule any work.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, bounded};

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
    /// into the void. Each call makes a channel: a thread that waits again and again
    /// uses one [`Clock::new_alarm`] instead.
    fn alarm(&self, deadline: Micros) -> Receiver<Micros>;
    /// A reusable alarm on this clock, unset: set it for each wait, no allocation per
    /// setting.
    fn new_alarm(&self) -> Alarm;
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now={})", self.now().0)
    }
}

/// An alarm waiting for its deadline in a clock's list.
#[derive(Debug)]
struct Entry {
    at: Micros,
    /// The [`Alarm`] that set it, 0 for a one-shot [`Clock::alarm`].
    id: u64,
    tx: Sender<Micros>,
}

/// Fire (and remove) every alarm in `alarms` due at `now`; each alarm delivered to a
/// live receiver carries one `activity` token.
fn fire_due(alarms: &mut Vec<Entry>, now: Micros, activity: &Activity) {
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

/// Pending alarms a clock's list has room for from the start (a pipeline has a handful
/// of waiting threads): setting an alarm then never grows the list, whichever thread
/// happens to set the one that would.
const ALARMS_ROOM: usize = 64;

/// Ids of [`Alarm`]s, unique in the process (0 is the one-shot alarms' id).
static NEXT_ALARM_ID: AtomicU64 = AtomicU64::new(1);

/// How an [`Alarm`] reaches its clock's list of pending alarms.
trait Schedule: Send + Sync {
    /// Put alarm `id` for `at` in the list, or send the time into `tx` at once if `at`
    /// has passed.
    fn arm(&self, id: u64, at: Micros, tx: &Sender<Micros>);
    /// Take alarm `id` out of the list if it is there (not yet fired).
    fn disarm(&self, id: u64);
}

/// A reusable alarm on one clock: made once by a waiting thread ([`Clock::new_alarm`]),
/// set to a deadline, waited on through [`Alarm::receiver`] (which receives the clock's
/// time at firing, never before the deadline), and set again, as often as needed. Its
/// channel and its place in the clock's list are made once: setting, firing and
/// cancelling allocate nothing. A setting replaces the one before it, whose firing (if
/// it came and was not received) is dropped; dropping the alarm cancels it.
pub struct Alarm {
    schedule: Arc<dyn Schedule>,
    id: u64,
    tx: Sender<Micros>,
    rx: Receiver<Micros>,
}

impl std::fmt::Debug for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alarm").field("id", &self.id).finish()
    }
}

impl Alarm {
    fn new(schedule: Arc<dyn Schedule>) -> Alarm {
        let (tx, rx) = bounded(1);
        Alarm {
            schedule,
            id: NEXT_ALARM_ID.fetch_add(1, Ordering::Relaxed),
            tx,
            rx,
        }
    }

    /// Fire at `deadline` (at once if it has passed), replacing any earlier setting.
    /// Returns true when the earlier setting had fired and its firing was not received
    /// (it is dropped now; on a clock with [`Activity`] its token is the caller's to
    /// give back).
    pub fn set(&mut self, deadline: Micros) -> bool {
        let stale = self.cancel();
        self.schedule.arm(self.id, deadline, &self.tx);
        stale
    }

    /// Cancel the setting, if any. Returns true when it had fired and its firing was not
    /// received (dropped now, as for [`Alarm::set`]).
    pub fn cancel(&mut self) -> bool {
        // Once out of the list nothing sends to this alarm any more: what is in the
        // channel now is all there will be.
        self.schedule.disarm(self.id);
        self.rx.try_recv().is_ok()
    }

    /// Where the firing arrives (once per setting).
    pub fn receiver(&self) -> &Receiver<Micros> {
        &self.rx
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.schedule.disarm(self.id);
    }
}

/// Take alarm `id` out of `alarms` (order of the others kept: it is their firing order).
fn remove_id(alarms: &mut Vec<Entry>, id: u64) {
    if let Some(i) = alarms.iter().position(|a| a.id == id) {
        alarms.remove(i);
    }
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
/// the future are kept by one timer thread per clock (shared by its clones and its
/// [`Alarm`]s), started on the first such alarm and ending once the clock, all its
/// clones and alarms are dropped and every one-shot alarm it holds has fired.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
    /// Shared with the clones and alarms; the last one dropped closes the timer.
    timer: Arc<SysTimer>,
}

/// A [`SystemClock`]'s alarm list and its timer thread's state, shared with the thread.
#[derive(Debug)]
struct SysShared {
    origin: Instant,
    state: Mutex<SysState>,
    /// Wakes the timer thread: a new alarm, or the clock closed.
    wake: Condvar,
}

#[derive(Debug)]
struct SysState {
    alarms: Vec<Entry>,
    /// Some clock, clone or alarm is alive (new alarms may come).
    open: bool,
    thread: TimerThread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerThread {
    NotStarted,
    Running,
    /// Could not be spawned, or has ended: alarms fire at once.
    Gone,
}

/// The clock side of a [`SysShared`]: dropping the last one closes the timer.
#[derive(Debug)]
struct SysTimer(Arc<SysShared>);

impl Drop for SysTimer {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.open = false;
        drop(st);
        self.0.wake.notify_all();
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> SystemClock {
        let origin = Instant::now();
        SystemClock {
            origin,
            timer: Arc::new(SysTimer(Arc::new(SysShared {
                origin,
                state: Mutex::new(SysState {
                    alarms: Vec::with_capacity(ALARMS_ROOM),
                    open: true,
                    thread: TimerThread::NotStarted,
                }),
                wake: Condvar::new(),
            }))),
        }
    }
}

impl SysShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SysState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Micros {
        Micros(self.origin.elapsed().as_micros().min(u128::from(u64::MAX)) as u64)
    }

    /// The real instant of `t` on this clock, `None` if it is beyond `Instant`'s range.
    fn instant_of(&self, t: Micros) -> Option<Instant> {
        self.origin.checked_add(Duration::from_micros(t.0))
    }

    fn arm(self: &Arc<Self>, id: u64, at: Micros, tx: &Sender<Micros>) {
        let now = self.now();
        if at <= now {
            let _ = tx.try_send(now);
            return;
        }
        let mut st = self.lock();
        if st.thread == TimerThread::NotStarted {
            let shared = Arc::clone(self);
            st.thread = match std::thread::Builder::new()
                .name("clock-alarms".into())
                .spawn(move || shared.run_timer())
            {
                Ok(_) => TimerThread::Running,
                Err(e) => {
                    tracing::error!(error = %e, "cannot spawn the clock's alarm thread");
                    TimerThread::Gone
                }
            };
        }
        if st.thread == TimerThread::Gone {
            // No thread to wait on: answer at once rather than never (a caller then
            // treats its frame as late, the safe side for a verifier).
            drop(st);
            let _ = tx.try_send(self.now());
            return;
        }
        st.alarms.push(Entry {
            at,
            id,
            tx: tx.clone(),
        });
        drop(st);
        self.wake.notify_all();
    }

    /// The timer thread: wait for the earliest alarm or a new one, fire what is due.
    /// When the clock is closed, fire what is left at its time and end.
    fn run_timer(&self) {
        let mut st = self.lock();
        loop {
            fire_due(&mut st.alarms, self.now(), &Activity::none());
            let next = st.alarms.iter().map(|a| a.at).min();
            st = match next.map(|at| self.instant_of(at)) {
                Some(Some(at)) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    self.wake
                        .wait_timeout(st, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
                // Nothing due ever (none, or beyond `Instant`): wait for a new alarm,
                // unless none can come any more.
                Some(None) | None if !st.open => {
                    st.thread = TimerThread::Gone;
                    return;
                }
                Some(None) | None => self.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

impl Schedule for SysTimer {
    fn arm(&self, id: u64, at: Micros, tx: &Sender<Micros>) {
        self.0.arm(id, at, tx);
    }

    fn disarm(&self, id: u64) {
        remove_id(&mut self.0.lock().alarms, id);
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
        let (tx, rx) = bounded(1);
        self.timer.0.arm(0, deadline, &tx);
        rx
    }

    fn new_alarm(&self) -> Alarm {
        Alarm::new(Arc::clone(&self.timer) as Arc<dyn Schedule>)
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
    alarms: Mutex<Vec<Entry>>,
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
                alarms: Mutex::new(Vec::with_capacity(ALARMS_ROOM)),
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
                alarms: Mutex::new(Vec::with_capacity(ALARMS_ROOM)),
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
        let (tx, rx) = bounded(1);
        self.inner.arm(0, deadline, &tx);
        rx
    }

    fn new_alarm(&self) -> Alarm {
        Alarm::new(Arc::clone(&self.inner) as Arc<dyn Schedule>)
    }
}

impl Schedule for VirtualInner {
    fn arm(&self, id: u64, at: Micros, tx: &Sender<Micros>) {
        let mut alarms = self.alarms.lock().unwrap_or_else(|p| p.into_inner());
        let now = Micros(self.now.load(Ordering::SeqCst));
        if at <= now {
            self.activity.begin();
            if tx.try_send(now).is_err() {
                self.activity.end();
            }
            return;
        }
        alarms.push(Entry {
            at,
            id,
            tx: tx.clone(),
        });
    }

    fn disarm(&self, id: u64) {
        remove_id(
            &mut self.alarms.lock().unwrap_or_else(|p| p.into_inner()),
            id,
        );
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
    fn virtual_reusable_alarm_fires_once_per_setting_and_a_new_setting_replaces_the_old() {
        let clock = VirtualClock::new(0);
        let mut alarm = clock.new_alarm();
        assert!(!alarm.set(Micros(5_000)));
        assert_eq!(clock.pending_alarms(), 1);
        // A new setting replaces the pending one: the list holds one entry, at the new
        // deadline, and the old deadline fires nothing.
        assert!(!alarm.set(Micros(9_000)));
        assert_eq!(clock.pending_alarms(), 1);
        assert_eq!(clock.next_alarm(), Some(Micros(9_000)));
        clock.advance_to(Micros(5_000));
        assert!(
            alarm.receiver().try_recv().is_err(),
            "the replaced setting fired"
        );
        clock.advance_to(Micros(9_500));
        assert_eq!(alarm.receiver().try_recv(), Ok(Micros(9_500)));
        assert_eq!(clock.pending_alarms(), 0);
        // Set again after firing: fires again, once.
        assert!(!alarm.set(Micros(12_000)));
        clock.advance_to(Micros(12_000));
        // Not received: the next setting reports the firing it drops.
        assert!(alarm.set(Micros(20_000)));
        assert!(alarm.receiver().try_recv().is_err());
        // Already due: fires at once.
        assert!(!alarm.set(Micros(1)));
        assert_eq!(alarm.receiver().try_recv(), Ok(Micros(12_000)));
        // Cancelled: out of the list, nothing arrives.
        assert!(!alarm.set(Micros(30_000)));
        assert!(!alarm.cancel());
        assert_eq!(clock.pending_alarms(), 0);
        clock.advance_to(Micros(40_000));
        assert!(alarm.receiver().try_recv().is_err());
        // Dropping an armed alarm takes it out of the list.
        assert!(!alarm.set(Micros(50_000)));
        drop(alarm);
        assert_eq!(clock.pending_alarms(), 0);
    }

    #[test]
    fn virtual_reusable_alarm_tokens_follow_its_firings() {
        let activity = Activity::tracked();
        let clock = VirtualClock::with_activity(0, activity.clone());
        let mut alarm = clock.new_alarm();
        alarm.set(Micros(1_000));
        clock.advance_to(Micros(1_000));
        assert_eq!(activity.count(), 1, "a firing carries a token");
        assert!(alarm.receiver().try_recv().is_ok());
        activity.end();
        alarm.set(Micros(2_000));
        alarm.set(Micros(3_000));
        clock.advance_to(Micros(3_000));
        assert_eq!(activity.count(), 1, "the replaced setting fired too");
        assert!(alarm.cancel(), "the firing was not received");
        activity.end();
        // Already due: the firing at once carries a token as well.
        alarm.set(Micros(0));
        assert_eq!(activity.count(), 1);
    }

    #[test]
    fn system_reusable_alarm_fires_per_setting_and_cancel_holds_it_back() {
        let clock = SystemClock::new();
        let mut alarm = clock.new_alarm();
        for _ in 0..3 {
            let deadline = clock.now().plus(Duration::from_millis(5));
            assert!(!alarm.set(deadline));
            let fired_at = alarm.receiver().recv().unwrap();
            assert!(fired_at >= deadline, "{fired_at:?} < {deadline:?}");
        }
        // Replaced before its time: only the new deadline fires.
        alarm.set(clock.now().plus(Duration::from_millis(5)));
        let later = clock.now().plus(Duration::from_millis(30));
        alarm.set(later);
        let fired_at = alarm.receiver().recv().unwrap();
        assert!(fired_at >= later, "{fired_at:?} < {later:?}");
        alarm.set(clock.now().plus(Duration::from_millis(5)));
        assert!(!alarm.cancel());
        assert!(
            alarm
                .receiver()
                .recv_timeout(Duration::from_millis(30))
                .is_err()
        );
        // The alarm outlives its clock: it keeps the timer thread.
        drop(clock);
        let deadline = Micros(alarm_now(&alarm).0 + 5_000);
        alarm.set(deadline);
        assert!(alarm.receiver().recv().unwrap() >= deadline);
    }

    /// The time on an alarm's clock, read through an alarm set in the past.
    fn alarm_now(alarm: &Alarm) -> Micros {
        let mut probe = Alarm::new(Arc::clone(&alarm.schedule));
        probe.set(Micros(0));
        probe.receiver().try_recv().unwrap_or(Micros(0))
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
