//! Rework of aggregated containers: open a case, take units out, put units in, close
//! it again, dissolve a case or a pallet. Each step is checked by the store (a case on
//! a pallet is not opened, a unit is never in two cases), written with its event in one
//! store transaction, the event journaled (DELETE `unpacking` for children taken out,
//! ADD `packing` for children put in), and audited with who, why and old → new. It
//! owns no devices: putting a unit in is checked against the batch ledger like the
//! case station does.

use std::sync::Arc;

use super::AggError;
use super::check::{BatchLedger, UnitStatus};
use super::station::{child_uris, deliver, outgoing};
use super::store::{AggStore, Child, Container, Level};
use crate::audit::record::Action;
use crate::audit::{AuditActor, AuditTrail, Entry};
use crate::clock::Clock;
use crate::epcis::EventTime;
use crate::epcis::aggregation::AggregationEvents;
use crate::journal::Journal;

/// The audit action of every rework step.
pub const AUDIT_ACTION: &str = "aggregation_rework";

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
}

fn keys(c: &[Child]) -> String {
    c.iter().map(Child::key).collect::<Vec<_>>().join(" ")
}

impl Rework<'_> {
    fn audit(
        &self,
        actor: &AuditActor,
        detail: &str,
        object: &str,
        reason: &str,
        old: Option<String>,
        new: Option<String>,
    ) -> Result<(), AggError> {
        self.audit
            .append(
                Entry::new(actor.clone(), Action::Other(AUDIT_ACTION.into()), object)
                    .detail(detail)
                    .reason(reason)
                    .change(old, new),
            )
            .map(|_| ())
            .map_err(|e| AggError::Usage(format!("audit trail: {e}")))
    }

    fn need_reason(reason: &str) -> Result<(), AggError> {
        if reason.trim().is_empty() {
            return Err(AggError::Usage("a rework step needs a reason".into()));
        }
        Ok(())
    }

    fn time(&self) -> Result<EventTime, AggError> {
        Ok(EventTime::from_wall_micros(self.clock.wall_micros(), 0)?)
    }

    /// Open the closed case `sscc` (not on a pallet).
    pub fn open_case(
        &self,
        actor: &AuditActor,
        sscc: &str,
        reason: &str,
    ) -> Result<Container, AggError> {
        Self::need_reason(reason)?;
        let c = self.store.open_case(sscc)?;
        self.audit(
            actor,
            "open case",
            &format!("case:{sscc}"),
            reason,
            Some("closed".into()),
            Some("open".into()),
        )?;
        Ok(c)
    }

    /// Close the open case `sscc` again.
    pub fn close_case(
        &self,
        actor: &AuditActor,
        sscc: &str,
        reason: &str,
    ) -> Result<Container, AggError> {
        Self::need_reason(reason)?;
        let c = self.store.close_case(sscc)?;
        self.audit(
            actor,
            &format!("close case with {} units", c.children.len()),
            &format!("case:{sscc}"),
            reason,
            Some("open".into()),
            Some("closed".into()),
        )?;
        Ok(c)
    }

    /// Take `remove` out of and put `add` into the open case `sscc`; units put in must
    /// be Commissioned in the case's batch and in no other case.
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
        let before = self
            .store
            .container(sscc)?
            .ok_or_else(|| AggError::Usage(format!("no case {sscc}")))?;
        if !add.is_empty() {
            let ledger = ledger
                .ok_or_else(|| AggError::Usage("putting units in needs the batch ledger".into()))?;
            for a in add {
                let Child::Unit { gtin, serial } = a else {
                    return Err(AggError::Usage("a case holds units only".into()));
                };
                if let UnitStatus::Not(why) = ledger.unit(gtin, serial) {
                    return Err(AggError::Usage(format!("{} cannot go in: {why}", a.key())));
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
        let c = self.store.rework_case(sscc, remove, add, &out)?;
        deliver(self.store, self.journal)?;
        self.audit(
            actor,
            &format!("took out {}; put in {}", remove.len(), add.len()),
            &format!("case:{sscc}"),
            reason,
            Some(keys(remove)),
            Some(keys(add)),
        )?;
        Ok(c)
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
        let before = self
            .store
            .container(sscc)?
            .ok_or_else(|| AggError::Usage(format!("no case or pallet {sscc}")))?;
        let e = self.events.unpacked(
            self.time()?,
            sscc,
            child_uris(self.events, &before.children)?,
        )?;
        let out = outgoing(self.journal, &before.batch, &e)?;
        let c = self.store.dissolve(sscc, std::slice::from_ref(&out))?;
        deliver(self.store, self.journal)?;
        let what = match c.level {
            Level::Case => "case",
            Level::Pallet => "pallet",
        };
        self.audit(
            actor,
            &format!("dissolve {what} of {} children", c.children.len()),
            &format!("{what}:{sscc}"),
            reason,
            Some(keys(&c.children)),
            None,
        )?;
        Ok(c)
    }
}
