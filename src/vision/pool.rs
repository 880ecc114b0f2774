//! The decode worker pool: a fixed set of threads fed by a bounded crossbeam channel,
//! each decode under `catch_unwind`, every frame with a deadline (`Micros`) on an
//! injected [`Clock`] from `crate::clock` ([`crate::clock::SystemClock`] in production,
//! [`crate::clock::VirtualClock`] in tests and the simulator). The caller gets an answer
//! for every frame by its deadline at the latest: the read, a no-read (nothing found, a
//! panicking frame, a rejected frame, a full queue), or `Late` — at which point the
//! worker finishes (or, if the frame was still queued, skips) the frame and lives on. A
//! panic never kills a worker. It owns threads and deadlines, not the clock; decoding
//! itself is behind [`FrameDecoder`] and knows nothing of either.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};

use crate::clock::{Alarm, Clock, Micros};

use super::decode::{DecodeConfig, Decoder, Read};
use super::frame::{FrameError, GreyFrame};

/// What the pool runs on each frame.
pub trait FrameDecoder: Send + 'static {
    /// Decode one frame: `Ok(None)` when nothing is read. `stop()` turns true once the
    /// frame's deadline has passed: a decoder should then give up as soon as it can.
    fn decode(
        &mut self,
        frame: &GreyFrame,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Read>, FrameError>;

    /// Decode time to add to the measured one for the frame just decoded. Real
    /// decoders take real time and return zero (the default); the simulator's
    /// slow-decode fault returns the time its frame "took", so that a run on a virtual
    /// clock (where a decode takes no time at all) still meets a late decode.
    fn extra_cost(&self) -> Duration {
        Duration::ZERO
    }
}

impl FrameDecoder for Decoder {
    fn decode(
        &mut self,
        frame: &GreyFrame,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Read>, FrameError> {
        Decoder::decode_until(self, frame, stop)
    }
}

/// Why a frame gave no read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRead {
    /// Every decode pass ran and none found a DataMatrix.
    NotFound,
    /// The decoder panicked on this frame (the worker was restored and lives on).
    Panicked(String),
    /// The frame itself was rejected (e.g. the ROI does not fit it).
    BadFrame(String),
    /// The queue was full: the frame was not decoded.
    QueueFull,
    /// The pool has shut down.
    PoolClosed,
}

impl std::fmt::Display for NoRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoRead::NotFound => write!(f, "no DataMatrix found"),
            NoRead::Panicked(m) => write!(f, "decoder panicked: {m}"),
            NoRead::BadFrame(m) => write!(f, "bad frame: {m}"),
            NoRead::QueueFull => write!(f, "decode queue full, frame dropped"),
            NoRead::PoolClosed => write!(f, "decode pool closed"),
        }
    }
}

/// What became of one unit's frame.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameOutcome {
    /// A symbol was read before the deadline (with the decode time on the pool's clock).
    Read {
        /// The read.
        read: Read,
        /// Time from the worker taking the frame to the read.
        decode_time: Duration,
    },
    /// No symbol was read.
    NoRead(NoRead),
    /// The deadline passed first.
    Late,
    /// No frame arrived for the unit (made by the caller, never by the pool).
    Missing,
}

/// Pool sizing and the default deadline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Worker threads. Default 1 (one core for vision on a 2-core line PC).
    pub workers: usize,
    /// Frames that may wait for a worker; one more is a `QueueFull` no-read. Default 4.
    pub queue: usize,
    /// Deadline from submission when the caller gives none, in ms. Default 100.
    pub deadline_ms: u64,
    /// The decoder configuration every worker uses.
    pub decode: DecodeConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            workers: 1,
            queue: 4,
            deadline_ms: 100,
            decode: DecodeConfig::default(),
        }
    }
}

/// A worker's answer to one job: the read (or none), a no-read, or `Err(None)` for a
/// decode that finished after the deadline; the decode time when the decoder ran to the
/// end; and the frame itself, handed back for its buffer to be reused.
struct Reply {
    seq: u64,
    result: Result<Option<Read>, Option<NoRead>>,
    took: Option<Duration>,
    frame: GreyFrame,
}

/// A reply channel and a deadline alarm, reused from frame to frame (replies carry the
/// job's sequence number, so one meant for an earlier, abandoned frame is told apart and
/// dropped; the alarm is set again for each frame, made on the first one that waits).
struct ReplyChannel {
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
    alarm: Option<Alarm>,
}

struct Job {
    seq: u64,
    frame: GreyFrame,
    deadline: Micros,
    reply: Sender<Reply>,
}

/// The worker pool. Dropping it closes the queue; workers exit after their current frame.
pub struct DecodePool {
    tx: Option<Sender<Job>>,
    clock: Arc<dyn Clock>,
    deadline: Duration,
    workers: Vec<JoinHandle<()>>,
    seq: AtomicU64,
    /// Idle reply channels; a submission takes one (made only when none is idle).
    channels: Arc<Mutex<Vec<ReplyChannel>>>,
    /// Room of a reply channel: a worker never blocks on a reply (see [`worker`]).
    reply_room: usize,
}

impl std::fmt::Debug for DecodePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodePool")
            .field("workers", &self.workers.len())
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A submitted frame; [`Pending::wait`] gives its outcome by the deadline.
#[derive(Debug)]
pub struct Pending {
    state: PendingState,
}

/// What became of a submitted frame, with what the caller may reuse.
#[derive(Debug)]
pub struct Finished {
    /// The outcome.
    pub outcome: FrameOutcome,
    /// Time the decoder spent on the frame, when it finished it (read or not).
    pub decode_time: Option<Duration>,
    /// The frame back (its buffer can take the next frame); `None` when the frame is
    /// still with a late worker or was dropped.
    pub frame: Option<GreyFrame>,
}

enum PendingState {
    Done(FrameOutcome, Option<GreyFrame>),
    Waiting {
        seq: u64,
        channel: ReplyChannel,
        channels: Arc<Mutex<Vec<ReplyChannel>>>,
        deadline: Micros,
        clock: Arc<dyn Clock>,
    },
}

impl std::fmt::Debug for PendingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PendingState::Done(o, _) => f.debug_tuple("Done").field(o).finish(),
            PendingState::Waiting { seq, deadline, .. } => f
                .debug_struct("Waiting")
                .field("seq", seq)
                .field("deadline", deadline)
                .finish(),
        }
    }
}

impl Pending {
    /// Block until the read, or the deadline on the pool's clock, whichever is first.
    pub fn wait(self) -> FrameOutcome {
        self.finish().outcome
    }

    /// As [`Pending::wait`], with the decode time and the frame handed back.
    pub fn finish(self) -> Finished {
        let (seq, channel, channels, deadline, clock) = match self.state {
            PendingState::Done(outcome, frame) => {
                return Finished {
                    outcome,
                    decode_time: None,
                    frame,
                };
            }
            PendingState::Waiting {
                seq,
                channel,
                channels,
                deadline,
                clock,
            } => (seq, channel, channels, deadline, clock),
        };
        let mut channel = channel;
        let rx = &channel.rx;
        // A result already there wins over a deadline that fires at the same moment;
        // replies to earlier, abandoned frames are skipped.
        let mut got = None;
        while let Ok(reply) = rx.try_recv() {
            if reply.seq == seq {
                got = Some(reply);
                break;
            }
        }
        let finished = match got {
            Some(reply) => Some(reply),
            None => {
                let _span =
                    crate::pipeline::probe::Span::enter(crate::pipeline::probe::Inside::Clock);
                let alarm = channel.alarm.get_or_insert_with(|| clock.new_alarm());
                // A firing of an earlier frame's setting was cancelled with it.
                let _ = alarm.set(deadline);
                let alarm = alarm.receiver();
                let mut answer = None;
                loop {
                    select! {
                        recv(rx) -> msg => match msg {
                            Ok(reply) if reply.seq == seq => {
                                answer = Some(Ok(reply));
                                break;
                            }
                            Ok(_) => {}
                            Err(_) => {
                                answer = Some(Err(FrameOutcome::NoRead(NoRead::PoolClosed)));
                                break;
                            }
                        },
                        recv(alarm) -> _ => {
                            while let Ok(reply) = rx.try_recv() {
                                if reply.seq == seq {
                                    answer = Some(Ok(reply));
                                    break;
                                }
                            }
                            break;
                        },
                    }
                }
                // Done with the deadline: out of the clock's list (a firing that came
                // while the reply won is dropped with it).
                if let Some(alarm) = &mut channel.alarm {
                    let _ = alarm.cancel();
                }
                match answer {
                    Some(Ok(reply)) => Some(reply),
                    Some(Err(outcome)) => {
                        return Finished {
                            outcome,
                            decode_time: None,
                            frame: None,
                        };
                    }
                    None => None,
                }
            }
        };
        // The channel goes back for the next frame (a late reply still to come is
        // recognised by its sequence number and dropped).
        if let Ok(mut idle) = channels.lock() {
            idle.push(channel);
        }
        match finished {
            Some(reply) => Finished {
                outcome: to_outcome(reply.result, reply.took),
                decode_time: reply.took,
                frame: Some(reply.frame),
            },
            None => Finished {
                outcome: FrameOutcome::Late,
                decode_time: None,
                frame: None,
            },
        }
    }
}

fn to_outcome(
    result: Result<Option<Read>, Option<NoRead>>,
    took: Option<Duration>,
) -> FrameOutcome {
    match result {
        Ok(Some(read)) => FrameOutcome::Read {
            read,
            decode_time: took.unwrap_or_default(),
        },
        Ok(None) => FrameOutcome::NoRead(NoRead::NotFound),
        Err(Some(no)) => FrameOutcome::NoRead(no),
        Err(None) => FrameOutcome::Late,
    }
}

impl DecodePool {
    /// A pool of rxing [`Decoder`]s with `cfg.decode`.
    pub fn new(cfg: &PoolConfig, clock: Arc<dyn Clock>) -> DecodePool {
        let decode = cfg.decode.clone();
        DecodePool::with_decoder(cfg, clock, move || Decoder::new(decode.clone()))
    }

    /// A pool whose workers each run a decoder made by `make` (again after a panic).
    pub fn with_decoder<D, F>(cfg: &PoolConfig, clock: Arc<dyn Clock>, make: F) -> DecodePool
    where
        D: FrameDecoder,
        F: Fn() -> D + Send + Sync + 'static,
    {
        let (tx, rx) = bounded::<Job>(cfg.queue.max(1));
        let make = Arc::new(make);
        let workers = (0..cfg.workers.max(1))
            .map(|i| {
                let rx = rx.clone();
                let make = Arc::clone(&make);
                let clock = Arc::clone(&clock);
                std::thread::Builder::new()
                    .name(format!("decode-{i}"))
                    .spawn(move || worker(rx, make, clock))
            })
            .filter_map(|r| match r {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "cannot spawn a decode worker");
                    None
                }
            })
            .collect();
        DecodePool {
            tx: Some(tx),
            clock,
            deadline: Duration::from_millis(cfg.deadline_ms),
            workers,
            seq: AtomicU64::new(0),
            channels: Arc::new(Mutex::new(Vec::new())),
            reply_room: cfg.workers.max(1) + cfg.queue.max(1) + 2,
        }
    }

    /// Submit a frame with the default deadline (from now on the pool's clock).
    pub fn submit(&self, frame: GreyFrame) -> Pending {
        let deadline = self.clock.now().plus(self.deadline);
        self.submit_until(frame, deadline)
    }

    /// Submit a frame that must be answered by `deadline` on the pool's clock. Never blocks: a full queue is
    /// an immediate `QueueFull` no-read.
    pub fn submit_until(&self, frame: GreyFrame, deadline: Micros) -> Pending {
        let Some(tx) = &self.tx else {
            return Pending {
                state: PendingState::Done(FrameOutcome::NoRead(NoRead::PoolClosed), Some(frame)),
            };
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let channel = self
            .channels
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_else(|| {
                let (tx, rx) = bounded(self.reply_room);
                ReplyChannel {
                    tx,
                    rx,
                    alarm: None,
                }
            });
        let job = Job {
            seq,
            frame,
            deadline,
            reply: channel.tx.clone(),
        };
        let state = match tx.try_send(job) {
            Ok(()) => PendingState::Waiting {
                seq,
                channel,
                channels: Arc::clone(&self.channels),
                deadline,
                clock: Arc::clone(&self.clock),
            },
            Err(TrySendError::Full(job)) => {
                tracing::warn!("decode queue full, frame dropped");
                self.give_back(channel);
                PendingState::Done(FrameOutcome::NoRead(NoRead::QueueFull), Some(job.frame))
            }
            Err(TrySendError::Disconnected(job)) => {
                self.give_back(channel);
                PendingState::Done(FrameOutcome::NoRead(NoRead::PoolClosed), Some(job.frame))
            }
        };
        Pending { state }
    }

    fn give_back(&self, channel: ReplyChannel) {
        if let Ok(mut idle) = self.channels.lock() {
            idle.push(channel);
        }
    }

    /// Close the queue and wait for the workers to finish their current frame.
    pub fn shutdown(mut self) {
        self.tx = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker<D, F>(rx: Receiver<Job>, make: Arc<F>, clock: Arc<dyn Clock>)
where
    D: FrameDecoder,
    F: Fn() -> D + Send + Sync + 'static,
{
    crate::pipeline::probe::enter(crate::pipeline::probe::Stage::Decode);
    let mut decoder = make();
    for job in rx {
        let start = clock.now();
        if start >= job.deadline {
            // Already late while queued: abandon without decoding.
            tracing::debug!("frame abandoned: deadline passed in the queue");
            continue;
        }
        let deadline = job.deadline;
        let stop = || clock.now() >= deadline;
        let result = catch_unwind(AssertUnwindSafe(|| decoder.decode(&job.frame, &stop)));
        let took = clock.now().since(start) + decoder.extra_cost();
        let late = start.plus(took) >= deadline;
        let (result, took) = match result {
            Ok(_) if late => (Err(None), Some(took)),
            Ok(Ok(read)) => (Ok(read), Some(took)),
            Ok(Err(e)) => (Err(Some(NoRead::BadFrame(e.to_string()))), Some(took)),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                tracing::warn!(panic = %msg, "decoder panicked on a frame; worker restored");
                // Scratch state may be half-written: start from a fresh decoder.
                decoder = make();
                (Err(Some(NoRead::Panicked(msg))), None)
            }
        };
        // Never blocks: the channel has room for every job that can be in flight on it;
        // a caller that went (late) leaves the reply to be skipped or dropped.
        let _ = job.reply.try_send(Reply {
            seq: job.seq,
            result,
            took,
            frame: job.frame,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;

    /// Test decoder: pixel 0 says what to do (0 nothing, 1 panic, 2 block until released).
    struct Scripted {
        release: Receiver<()>,
    }

    impl FrameDecoder for Scripted {
        fn decode(
            &mut self,
            frame: &GreyFrame,
            _stop: &dyn Fn() -> bool,
        ) -> Result<Option<Read>, FrameError> {
            match frame.pixels().first() {
                Some(1) => panic!("hostile frame"),
                Some(2) => {
                    let _ = self.release.recv();
                    Ok(None)
                }
                _ => Ok(None),
            }
        }
    }

    fn frame(kind: u8) -> GreyFrame {
        GreyFrame::new(2, 2, vec![kind, 0, 0, 0]).unwrap()
    }

    fn pool(clock: Arc<VirtualClock>, release: Receiver<()>) -> DecodePool {
        let cfg = PoolConfig {
            workers: 1,
            queue: 2,
            deadline_ms: 50,
            ..PoolConfig::default()
        };
        DecodePool::with_decoder(&cfg, clock, move || Scripted {
            release: release.clone(),
        })
    }

    #[test]
    fn a_finished_frame_comes_back_with_its_decode_time() {
        let clock = Arc::new(VirtualClock::new(0));
        let (_rel_tx, rel_rx) = bounded(4);
        let pool = pool(clock, rel_rx);
        for _ in 0..3 {
            let f = frame(0);
            let at = f.pixels().as_ptr();
            let done = pool.submit(f).finish();
            assert_eq!(done.outcome, FrameOutcome::NoRead(NoRead::NotFound));
            assert_eq!(done.decode_time, Some(Duration::ZERO));
            let back = done.frame.unwrap();
            assert_eq!(back.pixels().as_ptr(), at, "not the same buffer");
        }
        // One reply channel served every frame.
        assert_eq!(pool.channels.lock().unwrap().len(), 1);
        pool.shutdown();
    }

    #[test]
    fn panicking_frame_is_a_no_read_and_the_worker_lives_on() {
        let clock = Arc::new(VirtualClock::new(0));
        let (_rel_tx, rel_rx) = bounded(4);
        let pool = pool(clock, rel_rx);
        for _ in 0..3 {
            match pool.submit(frame(1)).wait() {
                FrameOutcome::NoRead(NoRead::Panicked(m)) => assert!(m.contains("hostile")),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                pool.submit(frame(0)).wait(),
                FrameOutcome::NoRead(NoRead::NotFound)
            );
        }
        pool.shutdown();
    }

    #[test]
    fn slow_frame_is_late_at_the_deadline_and_the_worker_recovers() {
        let clock = Arc::new(VirtualClock::new(0));
        let (rel_tx, rel_rx) = bounded(4);
        let pool = pool(Arc::clone(&clock), rel_rx);
        let pending = pool.submit(frame(2));
        let waiter = std::thread::spawn(move || pending.wait());
        // wait until the caller is blocked on its alarm, then pass the deadline
        while clock.pending_alarms() == 0 {
            std::thread::yield_now();
        }
        clock.advance(Duration::from_millis(49));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished(), "answered before the deadline");
        clock.advance(Duration::from_millis(1));
        assert_eq!(waiter.join().unwrap(), FrameOutcome::Late);
        // the worker is still stuck on the slow frame; a frame queued behind it whose
        // deadline passes in the queue is late too, then everything flows again.
        let queued = pool.submit(frame(0));
        clock.advance(Duration::from_millis(60));
        assert_eq!(queued.wait(), FrameOutcome::Late);
        rel_tx.send(()).unwrap();
        assert_eq!(
            pool.submit(frame(0)).wait(),
            FrameOutcome::NoRead(NoRead::NotFound)
        );
        pool.shutdown();
    }

    #[test]
    fn full_queue_is_an_immediate_no_read() {
        let clock = Arc::new(VirtualClock::new(0));
        let (rel_tx, rel_rx) = bounded(8);
        let pool = pool(clock, rel_rx);
        let first = pool.submit(frame(2)); // taken by the worker (blocks)
        let mut outcomes = Vec::new();
        let mut pend = Vec::new();
        for _ in 0..4 {
            pend.push(pool.submit(frame(2)));
        }
        for _ in 0..5 {
            rel_tx.send(()).unwrap();
        }
        for p in pend {
            outcomes.push(p.wait());
        }
        let _ = first.wait();
        assert!(
            outcomes.contains(&FrameOutcome::NoRead(NoRead::QueueFull)),
            "{outcomes:?}"
        );
        pool.shutdown();
    }
}
