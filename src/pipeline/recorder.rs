//! The recorder: turns each unit outcome into its EPCIS event (commissioning for a
//! pass, destroying for a printed reject, decommissioning for codes loaded but never
//! printed), appends the events to the journal in groups and waits until they are
//! durable, then tells the coordinator (counts) and the printer thread (final pool
//! states). Reject frames go to a thread of their own that writes them to the frame
//! store, so a PNG encode never delays a group of events; when that thread falls
//! behind, frames are dropped with a warning, never the line slowed. It owns the journal
//! handle; it does not decide outcomes.

use crossbeam_channel::{Receiver, Sender};

use super::coordinator::Ev;
use super::stages::{Ctx, PrinterCmd};
use super::wait::Wake;
use crate::epcis::{EventTime, LineEvents, UnitEvent, UnitEventWriter};
use crate::uplink::record::{EVENT_RECORD, EventRecord};
use std::sync::Arc;

use crate::journal::{Journal, RecordBatch};
use crate::vision::GreyFrame;

/// Records taken into one group of events at most.
const GROUP_MAX: usize = 512;

/// Payload bytes the group's record batch has room for from the start (it grows past
/// this once if a group needs more, and keeps that room).
const GROUP_BYTES: usize = GROUP_MAX * 1024;

/// Reject frames waiting for the frame store; more are dropped (with a warning).
const FRAMES_QUEUED: usize = 16;
use crate::pool::SerialState;

/// What to record.
#[derive(Debug)]
pub(crate) enum Rec {
    /// A unit with a printed serial passed (`true`) or was rejected (`false`).
    Unit {
        serial: String,
        passed: bool,
        lot: Arc<str>,
        expiry: Arc<str>,
    },
    /// Serials loaded into the printer but never printed (buffer cleared).
    Unprinted { serials: Vec<String>, lot: String },
    /// A rejected unit's camera frame, to keep as `name` in the frame store (taken out
    /// and handed to the frame keeper when the group is recorded).
    Frame {
        name: String,
        frame: Option<crate::vision::GreyFrame>,
    },
}

/// Counts the recorder reports once events are durable.
#[derive(Debug)]
pub(crate) struct Durable {
    pub(crate) commissioned: u64,
    pub(crate) events: u64,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn recorder_thread(
    ctx: Ctx,
    journal: Arc<Journal>,
    events: LineEvents,
    frames: crate::pipeline::frames::FrameStore,
    rx: Receiver<Rec>,
    ev: Sender<Ev>,
    prn: Sender<PrinterCmd>,
    states_back: Receiver<Vec<(String, SerialState)>>,
) {
    let (keep_tx, keep_rx) = crossbeam_channel::bounded::<(String, GreyFrame)>(FRAMES_QUEUED);
    let keeper = std::thread::Builder::new()
        .name("reject-frames".into())
        .spawn(move || {
            for (name, frame) in keep_rx {
                if let Err(e) = frames.save(&name, &frame) {
                    tracing::warn!(error = %e, "reject frame not kept");
                }
            }
        });
    if let Err(e) = &keeper {
        tracing::warn!(error = %e, "no reject-frame thread: reject frames are not kept");
    }
    let mut waiter = ctx.waiter();
    // Reused from group to group: the records taken, the per-unit event writer, the
    // buffer it writes each payload into, the batch of journal records (its buffers go
    // to the journal's committer and come back with the answer) and the appender's
    // answer slot. Room for the largest group up front: a burst never grows them.
    let mut recs: Vec<Rec> = Vec::with_capacity(GROUP_MAX);
    let mut writer = UnitEventWriter::new(&events);
    let mut buf: Vec<u8> = Vec::new();
    let mut payloads = RecordBatch::with_capacity(GROUP_MAX, GROUP_BYTES);
    let mut appender = journal.appender();
    loop {
        let first = match waiter.wait(&rx) {
            Wake::Msg(m) => m,
            Wake::Alarm => continue,
            Wake::Closed => break,
        };
        recs.clear();
        recs.push(first);
        while recs.len() < GROUP_MAX
            && let Some(r) = waiter.try_next(&rx)
        {
            recs.push(r);
        }
        let time = match EventTime::from_wall_micros(ctx.clock.wall_micros(), 0) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "event time out of range; events not recorded");
                continue;
            }
        };
        for r in recs.iter_mut() {
            if let Rec::Frame { name, frame } = r
                && let Some(f) = frame.take()
                && keep_tx.try_send((std::mem::take(name), f)).is_err()
            {
                tracing::warn!("reject frame dropped: the frame store is behind");
            }
        }
        payloads.clear();
        // A list the printer thread handed back, or a new one.
        let mut states = states_back.try_recv().unwrap_or_default();
        let mut commissioned = 0u64;
        let events_span = super::probe::Span::enter(super::probe::Inside::Events);
        for r in recs.drain(..) {
            let record = match r {
                Rec::Frame { .. } => continue,
                Rec::Unit {
                    serial,
                    passed,
                    lot,
                    expiry,
                } => {
                    let kind = if passed {
                        commissioned += 1;
                        UnitEvent::Commissioned
                    } else {
                        UnitEvent::Destroyed
                    };
                    buf.clear();
                    let written = EventRecord::write_payload(&mut buf, &lot, |out| {
                        writer.write(out, kind, time, &serial, &lot, &expiry)
                    });
                    let state = if passed {
                        SerialState::Commissioned
                    } else {
                        SerialState::Destroyed
                    };
                    states.push((serial, state));
                    written
                        .map(|()| payloads.push(EVENT_RECORD, &buf))
                        .map_err(|e| e.to_string())
                }
                Rec::Unprinted { serials, lot } => {
                    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
                    let record = events
                        .invalidated(time, &refs)
                        .and_then(|e| e.with_hash_id())
                        .map_err(|e| e.to_string())
                        .and_then(|e| {
                            EventRecord::new(&lot, &e)
                                .map(|r| {
                                    let (kind, payload) = r.to_journal();
                                    payloads.push(kind, &payload);
                                })
                                .map_err(|e| e.to_string())
                        });
                    for s in serials {
                        states.push((s, SerialState::LabelScrapped));
                    }
                    record
                }
            };
            if let Err(e) = record {
                tracing::error!(error = %e, "building an event failed");
            }
        }
        drop(events_span);
        let n = payloads.len() as u64;
        let appended = super::probe::inside(super::probe::Inside::Storage, || {
            appender.append(&mut payloads)
        });
        match appended {
            Ok(_) => {
                ctx.send(
                    &ev,
                    Ev::Durable(Durable {
                        commissioned,
                        events: n,
                    }),
                );
                ctx.send(&prn, PrinterCmd::States(states));
            }
            Err(e) => {
                tracing::error!(error = %e, "journal append failed: the line stops");
                ctx.send(&ev, Ev::JournalFailed(e.to_string()));
            }
        }
    }
    drop(appender);
    drop(journal);
    // Let the frames already handed over reach the store before the line is down.
    drop(keep_tx);
    if let Ok(k) = keeper
        && k.join().is_err()
    {
        tracing::error!("reject-frame thread panicked");
    }
    ctx.activity.end();
}
