//! The AggregationEvents of the case and pallet stations and of rework: ADD `packing`
//! when units go into a case or cases onto a pallet, DELETE `unpacking` when they come
//! out (rework, a dissolved pallet). Parents are SSCCs, or the SGTIN of a case labelled
//! with a case GTIN and serial; children are unit SGTINs or cases, in the line's
//! identifier form. It builds events only: the stations
//! journal them like every other event.

use super::EpcisError;
use super::event::{Action, AggregationEvent, BizStep, Disposition, Event};
use super::ids::{Gtin, IdForm, Serial, Sgln, Sscc, sgtin_uri};
use super::time::EventTime;

/// The aggregation events of one line (read point and business location fixed).
#[derive(Debug, Clone)]
pub struct AggregationEvents {
    form: IdForm,
    read_point: String,
    biz_location: String,
}

impl AggregationEvents {
    /// Events at `read_point` (the station's SGLN) within `biz_location` (the site's).
    pub fn new(form: IdForm, read_point: &Sgln, biz_location: &Sgln) -> Result<Self, EpcisError> {
        Ok(AggregationEvents {
            form,
            read_point: read_point.uri(form)?,
            biz_location: biz_location.uri(form)?,
        })
    }

    /// The URI of a unit.
    pub fn unit_uri(&self, gtin: &str, serial: &str) -> Result<String, EpcisError> {
        Ok(sgtin_uri(
            self.form,
            &Gtin::new(gtin)?,
            &Serial::new(serial)?,
        ))
    }

    /// The URI of a case or pallet.
    pub fn sscc_uri(&self, sscc: &str) -> Result<String, EpcisError> {
        Sscc::new(sscc)?.uri(self.form)
    }

    /// The URI of a case or pallet stored as `id`: an SSCC (18 digits) or a case GTIN
    /// + serial (`(01)GTIN(21)SERIAL`, its SGTIN).
    pub fn container_uri(&self, id: &str) -> Result<String, EpcisError> {
        use crate::gs1::container::ContainerId;
        match ContainerId::parse(id) {
            Ok(ContainerId::Sscc(s)) => self.sscc_uri(s.as_str()),
            Ok(ContainerId::Sgtin { gtin, serial }) => self.unit_uri(&gtin, &serial),
            Err(e) => Err(EpcisError::Identifier(e.to_string())),
        }
    }

    fn event(
        &self,
        action: Action,
        step: BizStep,
        time: EventTime,
        parent: &str,
        children: Vec<String>,
    ) -> Result<Event, EpcisError> {
        Event::from(
            AggregationEvent::builder(action, time)
                .parent(self.container_uri(parent)?)
                .children(children)
                .biz_step(step)
                .disposition(Disposition::InProgress)
                .read_point(self.read_point.clone())
                .biz_location(self.biz_location.clone())
                .build()?,
        )
        .with_hash_id()
    }

    /// `children` (URIs) packed into `parent` (SSCC or `(01)…(21)…`): ADD, `packing`, with its hash ID.
    pub fn packed(
        &self,
        time: EventTime,
        parent: &str,
        children: Vec<String>,
    ) -> Result<Event, EpcisError> {
        self.event(Action::Add, BizStep::Packing, time, parent, children)
    }

    /// `children` (URIs) taken out of `parent` (SSCC or `(01)…(21)…`): DELETE, `unpacking`, with its
    /// hash ID; no children means the parent is dissolved (all of them).
    pub fn unpacked(
        &self,
        time: EventTime,
        parent: &str,
        children: Vec<String>,
    ) -> Result<Event, EpcisError> {
        self.event(Action::Delete, BizStep::Unpacking, time, parent, children)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_have_parent_children_and_hash() -> Result<(), EpcisError> {
        let e = AggregationEvents::new(
            IdForm::DigitalLink,
            &Sgln::new("9506000000008", Some("1"))?,
            &Sgln::new("9506000000008", None)?,
        )?;
        let t = EventTime::new(1_767_225_600_000, 0)?;
        let u = e.unit_uri("09506000134352", "ABC123")?;
        let ev = e.packed(t, "095060000000000015", vec![u.clone()])?;
        let j = ev.to_json();
        assert_eq!(j["type"], "AggregationEvent");
        assert_eq!(j["action"], "ADD");
        assert_eq!(j["parentID"], "https://id.gs1.org/00/095060000000000015");
        assert_eq!(j["childEPCs"][0], u);
        assert!(
            ev.event_id()
                .is_some_and(|i| i.starts_with("ni:///sha-256;"))
        );
        let d = e.unpacked(t, "095060000000000015", vec![])?.to_json();
        assert_eq!(d["action"], "DELETE");
        assert_eq!(d["bizStep"], "unpacking");
        assert!(d.get("childEPCs").is_none());
        assert!(e.packed(t, "095060000000000015", vec![]).is_err());
        assert!(e.packed(t, "12345", vec![u.clone()]).is_err());
        // A case labelled with a case GTIN and serial: its SGTIN is the parent.
        let c = e
            .packed(t, "(01)19506000134359(21)C0001", vec![u.clone()])?
            .to_json();
        assert_eq!(
            c["parentID"],
            "https://id.gs1.org/01/19506000134359/21/C0001"
        );
        assert!(e.packed(t, "(01)19506000134358(21)C0001", vec![u]).is_err());
        Ok(())
    }
}
