//! Rework of aggregated containers: open a case, take units out, put units in, close
//! it again (full: the packing level; partial: fewer, with a [`PartialGrant`]),
//! dissolve a case or a pallet. Each step is checked first (reason given, container
//! known and in the right state, units to take out in it, units to put in commissioned
//! in the case's batch and in no container), then audited — the entry says what is
//! about to change — then written with its event in one store transaction and the event
//! journaled (DELETE `unpacking` for children taken out, ADD `packing` for children put
//! in). When the change fails after its entry, an `aggregation_rework_failed` entry
//! follows, so nothing changes unaudited and no entry claims a change that was not made.
//! It owns no devices and decides no roles (the HMI and the console do).

use std::sync::Arc;

use super::AggError;
use super::check::{BatchLedger, UnitStatus};
use super::station::{child_uris, deliver, outgoing};
use super::store::{AggStore, Child, Container, Level, Status};
use crate::audit::record::Action;
use crate::audit::{AuditActor, AuditTrail, Entry};
use crate::clock::Clock;
use crate::epcis::EventTime;
use crate::epcis::aggregation::AggregationEvents;
use crate::journal::Journal;

/// The audit action name of every rework step (`Action::AggregationRework`).
pub const AUDIT_ACTION: &str = "aggregation_rework";

/// Packing levels a re-closed container must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Units in a full case.
    pub units_per_case: u32,
    /// Cases on a full pallet.
    pub cases_per_pallet: u32,
}

/// Why a case may be closed with fewer units than the packing level; built by whoever
/// checked it (see `super::service::AggService::partial_grant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialGrant {
    /// The case's batch is no longer running: the last case of a batch may be short.
    BatchEnded {
        /// The batch.
        batch: String,
    },
    /// The case was held because it was short (a count or missing-unit problem).
    ShortHold {
        /// The hold.
        hold: u64,
    },
}

impl std::fmt::Display for PartialGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartialGrant::BatchEnded { batch } => write!(f, "batch {batch} has ended"),
            PartialGrant::ShortHold { hold } => write!(f, "hold {hold} was short"),
        }
    }
}

/// Rework on one store, journal and audit trail.
pub struct Rework<'a> {
    /// The aggregation store.
    pub store: &'a AggStore,
    /// The event journal.
    pub journal: &'a Journal,
    /// The event builder.
    pub events: &'a AggregationEvents,
    /// The audit trail.
    pub audit: &'a AuditTrail,
    /// Event times.
    pub clock: Arc<dyn Clock>,
    /// Packing levels for closing.
    pub packing: Packing,
}

fn keys(c: &[Child]) -> String {
    c.iter().map(Child::key).collect::<Vec<_>>().join(" ")
}

/// What one audited step records.
pub struct Step<'s> {
    /// Who.
    pub actor: &'s AuditActor,
    /// What (free text).
    pub detail: String,
    /// On which object (`case:SSCC`, `pallet:SSCC`).
    pub object: String,
    /// Why.
    pub reason: &'s str,
    /// Before.
    pub old: Option<String>,
    /// After.
    pub new: Option<String>,
}

/// Audit `step`, then run `change`; if it fails, audit the failure and hand its error
/// on. Nothing runs when the first entry cannot be written.
pub fn audited<T>(
    audit: &AuditTrail,
    step: Step<'_>,
    change: impl FnOnce() -> Result<T, AggError>,
) -> Result<T, AggError> {
    let trail = |e: crate::audit::AuditError| AggError::Usage(format!("audit trail: {e}"));
    audit
        .append(
            Entry::new(step.actor.clone(), Action::AggregationRework, &step.object)
                .detail(&step.detail)
                .reason(step.reason)
                .change(step.old, step.new),
        )
        .map_err(trail)?;
    match change() {
        Ok(v) => Ok(v),
        Err(e) => {
            let failed = Entry::new(
                step.actor.clone(),
                Action::AggregationReworkFailed,
                &step.object,
            )
            .detail(format!("{} did not take effect: {e}", step.detail))
            .reason(step.reason);
            if let Err(ae) = audit.append(failed) {
                tracing::error!(error = %ae, step = %step.detail, "rework failure not audited");
            }
            Err(e)
        }
    }
}

fn status_name(s: Status) -> String {
    match s {
        Status::Closed => "closed".into(),
        Status::Open => "open".into(),
    }
}

impl Rework<'_> {
    fn need_reason(reason: &str) -> Result<(), AggError> {
        if reason.trim().is_empty() {
            return Err(AggError::Usage("a rework step needs a reason".into()));
        }
        Ok(())
    }

    /// Journal the change's events. The change took effect with its events in the
    /// store's outbox, so a journal failure here is not a failed step: the events stay
    /// in the outbox and the next step, container or start delivers them.
    fn deliver_after_change(&self) {
        if let Err(e) = deliver(self.store, self.journal) {
            tracing::error!(error = %e, "rework events kept in the outbox: the journal refused them");
        }
    }

    fn time(&self) -> Result<EventTime, AggError> {
        Ok(EventTime::from_wall_micros(self.clock.wall_micros(), 0)?)
    }

    fn get(&self, sscc: &str) -> Result<Container, AggError> {
        self.store
            .container(sscc)?
            .ok_or_else(|| AggError::Usage(format!("no case or pallet {sscc}")))
    }

    fn case(&self, sscc: &str, want: Status) -> Result<Container, AggError> {
        let c = self.get(sscc)?;
        if c.level != Level::Case {
            return Err(AggError::Usage(format!(
                "{sscc} is a pallet: dissolve it instead"
            )));
        }
        if c.status != want {
            return Err(AggError::Usage(format!(
                "case {sscc} is {}, not {}",
                status_name(c.status),
                status_name(want)
            )));
        }
        Ok(c)
    }

    /// Open the closed case `sscc` (not on a pallet).
    pub fn open_case(
        &self,
        actor: &AuditActor,
        sscc: &str,
        reason: &str,
    ) -> Result<Container, AggError> {
        Self::need_reason(reason)?;
        let c = self.case(sscc, Status::Closed)?;
        if let Some(p) = &c.parent {
            return Err(AggError::Usage(format!(
                "case {sscc} is on pallet {p}: dissolve the pallet first"
            )));
        }
        audited(
            self.audit,
            Step {
                actor,
                detail: format!("open case of {} units", c.children.len()),
                object: format!("case:{sscc}"),
                reason,
                old: Some("closed".into()),
                new: Some("open".into()),
            },
            || Ok(self.store.open_case(sscc)?),
        )
    }

    /// Close the open case `sscc` again: it must hold exactly the packing level.
    pub fn close_case(
        &self,
        actor: &AuditActor,
        sscc: &str,
        reason: &str,
    ) -> Result<Container, AggError> {
        Self::need_reason(reason)?;
        let c = self.case(sscc, Status::Open)?;
        let n = c.children.len();
        let want = self.packing.units_per_case as usize;
        if n != want {
            return Err(AggError::Usage(format!(
                "case {sscc} holds {n} units, the packing level is {want}: {}",
                if n < want {
                    "put units in, or close it as a partial case (supervisor, at the end of the batch)"
                } else {
                    "take units out"
                }
            )));
        }
        audited(
            self.audit,
            Step {
                actor,
                detail: format!("close case with {n} units"),
                object: format!("case:{sscc}"),
                reason,
                old: Some("open".into()),
                new: Some("closed".into()),
            },
            || Ok(self.store.close_case(sscc)?),
        )
    }

    /// Close the open case `sscc` with fewer units than the packing level (at least
    /// one), as `grant` allows.
    pub fn close_partial(
        &self,
        actor: &AuditActor,
        sscc: &str,
        reason: &str,
        grant: &PartialGrant,
    ) -> Result<Container, AggError> {
        Self::need_reason(reason)?;
        let c = self.case(sscc, Status::Open)?;
        let n = c.children.len();
        let want = self.packing.units_per_case as usize;
        if n == 0 || n >= want {
            return Err(AggError::Usage(format!(
                "case {sscc} holds {n} units: a partial case holds 1 to {} (packing level {want})",
                want.saturating_sub(1)
            )));
        }
        audited(
            self.audit,
            Step {
                actor,
                detail: format!("close partial case with {n} of {want} units ({grant})"),
                object: format!("case:{sscc}"),
                reason,
                old: Some("open".into()),
                new: Some(format!("closed partial {n}/{want}")),
            },
            || Ok(self.store.close_case(sscc)?),
        )
    }

    /// Take `remove` out of and put `add` into the open case `sscc`; units put in must
    /// be Commissioned in the case's batch and in no other container.
    pub fn swap_units(
        &self,
        actor: &AuditActor,
        sscc: &str,
        remove: &[Child],
        add: &[Child],
        ledger: Option<&BatchLedger>,
        reason: &str,
    ) -> Result<Container, AggError> {
        Self::need_reason(reason)?;
        if remove.is_empty() && add.is_empty() {
            return Err(AggError::Usage("nothing to take out or put in".into()));
        }
        let before = self.case(sscc, Status::Open)?;
        let mut seen = std::collections::HashSet::new();
        for r in remove {
            if !before.children.contains(r) {
                return Err(AggError::Usage(format!(
                    "{} is not in case {sscc}",
                    r.key()
                )));
            }
            if !seen.insert(r.key()) {
                return Err(AggError::Usage(format!("{} given twice", r.key())));
            }
        }
        if !add.is_empty() {
            let ledger = ledger
                .ok_or_else(|| AggError::Usage("putting units in needs the batch ledger".into()))?;
            for a in add {
                let Child::Unit { gtin, serial } = a else {
                    return Err(AggError::Usage("a case holds units only".into()));
                };
                if !seen.insert(a.key()) {
                    return Err(AggError::Usage(format!("{} given twice", a.key())));
                }
                if let UnitStatus::Not(why) = ledger.unit(gtin, serial) {
                    return Err(AggError::Usage(format!("{} cannot go in: {why}", a.key())));
                }
                if let Some(p) = self.store.parent_of(a)? {
                    return Err(AggError::Usage(format!(
                        "{} cannot go in: it is in {p}",
                        a.key()
                    )));
                }
            }
        }
        let time = self.time()?;
        let mut out = Vec::new();
        if !remove.is_empty() {
            let e = self
                .events
                .unpacked(time, sscc, child_uris(self.events, remove)?)?;
            out.push(outgoing(self.journal, &before.batch, &e)?);
        }
        if !add.is_empty() {
            let e = self
                .events
                .packed(time, sscc, child_uris(self.events, add)?)?;
            out.push(outgoing(self.journal, &before.batch, &e)?);
        }
        audited(
            self.audit,
            Step {
                actor,
                detail: format!("take out {}; put in {}", remove.len(), add.len()),
                object: format!("case:{sscc}"),
                reason,
                old: Some(keys(remove)),
                new: Some(keys(add)),
            },
            || {
                let c = self.store.rework_case(sscc, remove, add, &out)?;
                self.deliver_after_change();
                Ok(c)
            },
        )
    }

    /// Dissolve the case or pallet `sscc`: every child comes out (DELETE with all its
    /// children). A case on a pallet is refused: dissolve the pallet first.
    pub fn dissolve(
        &self,
        actor: &AuditActor,
        sscc: &str,
        reason: &str,
    ) -> Result<Container, AggError> {
        Self::need_reason(reason)?;
        let before = self.get(sscc)?;
        if let Some(p) = &before.parent {
            return Err(AggError::Usage(format!(
                "case {sscc} is on pallet {p}: dissolve the pallet first"
            )));
        }
        let mut out = Vec::new();
        if !before.children.is_empty() {
            let e = self.events.unpacked(
                self.time()?,
                sscc,
                child_uris(self.events, &before.children)?,
            )?;
            out.push(outgoing(self.journal, &before.batch, &e)?);
        }
        let what = before.level.name();
        audited(
            self.audit,
            Step {
                actor,
                detail: format!("dissolve {what} of {} children", before.children.len()),
                object: format!("{what}:{sscc}"),
                reason,
                old: Some(keys(&before.children)),
                new: None,
            },
            || {
                let c = self.store.dissolve(sscc, &out)?;
                self.deliver_after_change();
                Ok(c)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn the_entry_is_written_before_the_change_and_a_failure_follows_it() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let (trail, _) = AuditTrail::open(d.path(), clock).unwrap_or_else(|e| panic!("{e}"));
        let actor = AuditActor {
            user: "olga".into(),
            role: "operator".into(),
        };
        let step = |detail: &str| Step {
            actor: &actor,
            detail: detail.into(),
            object: "case:1".into(),
            reason: "torn label",
            old: Some("closed".into()),
            new: Some("open".into()),
        };
        let before = trail.last().0;
        // The change sees its own entry already in the trail.
        let seen = audited(&trail, step("open case"), || Ok(trail.last().0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, before + 1);
        // A failing change: its entry, then the failure entry.
        let r: Result<(), AggError> = audited(&trail, step("close case"), || {
            Err(AggError::Usage("disk full".into()))
        });
        assert!(matches!(r, Err(AggError::Usage(m)) if m == "disk full"));
        let recs = trail
            .query(&crate::audit::Query::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let actions: Vec<(Action, String)> = recs
            .iter()
            .rev()
            .take(3)
            .map(|r| (r.action.clone(), r.detail.clone()))
            .collect();
        assert_eq!(
            actions.iter().map(|a| a.0.clone()).collect::<Vec<_>>(),
            vec![
                Action::AggregationReworkFailed,
                Action::AggregationRework,
                Action::AggregationRework
            ]
        );
        assert!(
            actions[0]
                .1
                .contains("close case did not take effect: disk full")
        );
    }
}
