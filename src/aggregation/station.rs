//! A case or pallet station on real devices: it takes the frame of the open layer from
//! the station camera, decodes every code of the layer, checks them, and only then
//! takes an SSCC (durably), records the intent, loads the label into the label printer,
//! reads the printed label back from the camera and, when it matches, commits the
//! aggregation with its ADD event in one store transaction and journals the event. Any
//! problem — a check, a device error, a label that does not read back — holds the
//! container for rework with every reason; nothing is aggregated on doubt.
//!
//! Crash safety: the intent is durable before the printer sees the SSCC; the event is
//! written in the same transaction as the aggregation and delivered to the journal
//! from that outbox. [`recover`] finishes what a crash interrupted: a label that was
//! being printed is voided and its case held; a verified label is committed; an event
//! not yet journaled is journaled once (its eventID is looked for first).

use std::sync::Arc;

use linectl_drivers::camera::FrameSource;
use linectl_drivers::printer::{PrintItem, Printer};

use super::AggError;
use super::check::{BatchLedger, LayerCheck, check_case, check_pallet};
use super::detect::{CellResult, LayerDecoder};
use super::store::{AggStore, Child, Container, Hold, Intent, Level, Outgoing, Stage};
use crate::clock::Clock;
use crate::epcis::EventTime;
use crate::epcis::aggregation::AggregationEvents;
use crate::gs1::sscc::SsccScheme;
use crate::journal::{Journal, Seq};
use crate::profile::aggregation::LayoutSection;
use crate::uplink::record::{EVENT_RECORD, EventRecord};

/// What one station does.
#[derive(Debug, Clone)]
pub struct StationConfig {
    /// Case or pallet.
    pub level: Level,
    /// The layout of the layer in the camera frame.
    pub layout: LayoutSection,
    /// Packing level: children per container.
    pub expected: u32,
    /// The SSCC scheme of this level's labels.
    pub scheme: SsccScheme,
    /// The batch (lot).
    pub batch: String,
    /// The label printer's job.
    pub label_job: String,
}

/// The devices of a station.
pub struct Devices {
    /// The camera over the layer and the label.
    pub camera: Box<dyn FrameSource>,
    /// The label printer.
    pub printer: Box<dyn Printer>,
}

/// How one container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Aggregated under this SSCC.
    Aggregated(Container),
    /// Held for rework.
    Held(Hold),
}

/// A running station.
pub struct Station {
    cfg: StationConfig,
    dev: Devices,
    store: AggStore,
    journal: Arc<Journal>,
    events: AggregationEvents,
    clock: Arc<dyn Clock>,
    layer: LayerDecoder,
    label: crate::vision::Decoder,
    job_selected: bool,
    /// The last layer read (for the HMI and diagnostics).
    pub last_reads: Vec<CellResult>,
    /// The last check.
    pub last_check: LayerCheck,
    /// Time the last layer took to decode and check, ms (measured).
    pub last_check_ms: f64,
}

impl Station {
    /// A station on `dev`; call [`recover`] before the first container.
    pub fn new(
        cfg: StationConfig,
        dev: Devices,
        store: AggStore,
        journal: Arc<Journal>,
        events: AggregationEvents,
        clock: Arc<dyn Clock>,
    ) -> Station {
        Station {
            cfg,
            dev,
            store,
            journal,
            events,
            clock,
            layer: LayerDecoder::new(),
            label: crate::vision::Decoder::new(crate::vision::DecodeConfig::default()),
            job_selected: false,
            last_reads: Vec::new(),
            last_check: LayerCheck::default(),
            last_check_ms: 0.0,
        }
    }

    fn hold(&self, reasons: Vec<String>, sscc: Option<&str>) -> Result<Outcome, AggError> {
        let at = self.clock.wall_micros();
        let h = match sscc {
            Some(s) => self.store.abandon(s, reasons, at)?,
            None => self
                .store
                .hold(self.cfg.level, &self.cfg.batch, reasons, None, at)?,
        };
        tracing::warn!(level = self.cfg.level.name(), hold = h.id, sscc = ?h.sscc,
            reasons = ?h.reasons, "held for rework");
        Ok(Outcome::Held(h))
    }

    /// Process one container: the layer is frame `layer_frame` of the camera, the
    /// printed label frame `label_frame`. `ledger` is needed for cases (unit checks).
    /// Errors are only store and journal failures; device trouble holds the container.
    pub fn process(
        &mut self,
        layer_frame: u64,
        label_frame: u64,
        ledger: Option<&BatchLedger>,
    ) -> Result<Outcome, AggError> {
        let level = self.cfg.level;
        let frame = match self.dev.camera.frame(layer_frame) {
            Ok(f) => f,
            Err(e) => return self.hold(vec![format!("no layer frame: {e}")], None),
        };
        let t0 = std::time::Instant::now();
        let reads =
            match self
                .layer
                .decode(&frame.pixels, frame.width, frame.height, &self.cfg.layout)
            {
                Ok(r) => r,
                Err(e) => return self.hold(vec![format!("layer frame: {e}")], None),
            };
        let check = match (level, ledger) {
            (Level::Case, Some(l)) => {
                check_case(&reads, self.cfg.expected, &self.cfg.batch, l, &self.store)?
            }
            (Level::Case, None) => {
                return Err(AggError::Usage(
                    "a case station needs the batch ledger".into(),
                ));
            }
            (Level::Pallet, _) => {
                check_pallet(&reads, self.cfg.expected, &self.cfg.batch, &self.store)?
            }
        };
        self.last_check_ms = t0.elapsed().as_secs_f64() * 1000.0;
        self.last_reads = reads;
        self.last_check = check.clone();
        if !check.ok() {
            return self.hold(
                check.problems.iter().map(ToString::to_string).collect(),
                None,
            );
        }
        // Only now is an SSCC taken; it is never reused, whatever happens next.
        let serial = self.store.next_serial_reference(level)?;
        let sscc = self.cfg.scheme.sscc(serial)?;
        let intent = Intent {
            sscc: sscc.as_str().to_string(),
            level,
            batch: self.cfg.batch.clone(),
            children: check.children,
            stage: Stage::Printing,
            at_us: self.clock.wall_micros(),
        };
        self.store.begin(&intent)?;
        if let Err(e) = self.print(sscc.element_string(), layer_frame) {
            return self.hold(vec![format!("label printer: {e}")], Some(sscc.as_str()));
        }
        let label = match self.dev.camera.frame(label_frame) {
            Ok(f) => f,
            Err(e) => return self.hold(vec![format!("no label frame: {e}")], Some(sscc.as_str())),
        };
        let read = crate::vision::GreyFrame::new(label.width, label.height, label.pixels)
            .map_err(|e| e.to_string())
            .and_then(|g| self.label.decode(&g).map_err(|e| e.to_string()));
        let want = sscc.element_string();
        match read {
            Ok(Some(r)) if r.content == want => {}
            Ok(Some(r)) => {
                return self.hold(
                    vec![format!(
                        "label verify: read {:?}, printed {want}",
                        r.content
                    )],
                    Some(sscc.as_str()),
                );
            }
            Ok(None) => {
                return self.hold(
                    vec!["label verify: the label does not read".into()],
                    Some(sscc.as_str()),
                );
            }
            Err(e) => return self.hold(vec![format!("label verify: {e}")], Some(sscc.as_str())),
        }
        self.store.advance(sscc.as_str(), Stage::Verified)?;
        let c = finish(&self.store, &self.journal, &self.events, sscc.as_str())?;
        tracing::info!(level = level.name(), sscc = %sscc, children = c.children.len(), "aggregated");
        Ok(Outcome::Aggregated(c))
    }

    fn print(&mut self, element_string: String, unit: u64) -> Result<(), linectl_drivers::Error> {
        if !self.job_selected {
            self.dev.printer.select_job(&self.cfg.label_job)?;
            self.job_selected = true;
        }
        self.dev.printer.load(&[PrintItem {
            unit,
            element_string,
            fields: Vec::new(),
        }])
    }
}

/// The URIs of `children`.
pub fn child_uris(events: &AggregationEvents, children: &[Child]) -> Result<Vec<String>, AggError> {
    children
        .iter()
        .map(|c| match c {
            Child::Unit { gtin, serial } => events.unit_uri(gtin, serial),
            Child::Case { sscc } => events.sscc_uri(sscc),
        })
        .collect::<Result<_, _>>()
        .map_err(AggError::from)
}

/// The outbox entry of `event` in `batch`.
pub fn outgoing(
    journal: &Journal,
    batch: &str,
    event: &crate::epcis::Event,
) -> Result<Outgoing, AggError> {
    let rec = EventRecord::new(batch, event).map_err(|e| AggError::Event(e.to_string()))?;
    Ok(Outgoing {
        event_id: rec.event_id().unwrap_or_default().to_string(),
        payload: rec.encode(),
        from_seq: journal.end_seq().0,
    })
}

/// Commit a verified intent with its ADD event and journal the event.
fn finish(
    store: &AggStore,
    journal: &Journal,
    events: &AggregationEvents,
    sscc: &str,
) -> Result<Container, AggError> {
    let intent = store
        .intent(sscc)?
        .ok_or_else(|| AggError::Usage(format!("no intent for {sscc}")))?;
    let time = EventTime::from_wall_micros(intent.at_us, 0)?;
    let event = events.packed(time, sscc, child_uris(events, &intent.children)?)?;
    let out = outgoing(journal, &intent.batch, &event)?;
    let c = store.commit(sscc, std::slice::from_ref(&out))?;
    deliver(store, journal)?;
    Ok(c)
}

/// Journal every event of the outbox that is not journaled yet, then forget it.
pub fn deliver(store: &AggStore, journal: &Journal) -> Result<usize, AggError> {
    let mut n = 0;
    for o in store.outbox()? {
        if !journaled(journal, &o)? {
            journal.append(EVENT_RECORD, o.payload.clone())?;
            n += 1;
        }
        store.delivered(&o.event_id)?;
    }
    Ok(n)
}

fn journaled(journal: &Journal, o: &Outgoing) -> Result<bool, AggError> {
    let mut at = Seq(o.from_seq.max(journal.first_seq().0));
    loop {
        let recs = journal.read_from(at, 1024)?;
        let Some(last) = recs.last() else {
            return Ok(false);
        };
        at = Seq(last.seq.0 + 1);
        for r in recs.iter().filter(|r| r.kind == EVENT_RECORD) {
            if let Ok(e) = EventRecord::decode(r.seq, &r.payload)
                && e.event_id() == Some(o.event_id.as_str())
            {
                return Ok(true);
            }
        }
    }
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Labels that were being printed: voided, their containers held.
    pub voided: Vec<String>,
    /// Verified labels committed.
    pub committed: Vec<String>,
    /// Events journaled from the outbox.
    pub journaled: usize,
}

/// Finish what a crash interrupted (see the module docs). Run before a station starts.
pub fn recover(
    store: &AggStore,
    journal: &Journal,
    events: &AggregationEvents,
    now_us: u64,
) -> Result<Recovered, AggError> {
    let mut r = Recovered {
        journaled: deliver(store, journal)?,
        ..Recovered::default()
    };
    for i in store.intents()? {
        match i.stage {
            Stage::Printing => {
                store.abandon(
                    &i.sscc,
                    vec![
                        "interrupted while its label was printed: label voided, re-label the case"
                            .into(),
                    ],
                    now_us,
                )?;
                r.voided.push(i.sscc);
            }
            Stage::Verified => match finish(store, journal, events, &i.sscc) {
                Ok(_) => {
                    r.committed.push(i.sscc);
                    r.journaled += 1;
                }
                Err(AggError::Store(super::store::StoreError::Refused(why))) => {
                    store.abandon(&i.sscc, vec![format!("after a restart: {why}")], now_us)?;
                    r.voided.push(i.sscc);
                }
                Err(e) => return Err(e),
            },
        }
    }
    Ok(r)
}
