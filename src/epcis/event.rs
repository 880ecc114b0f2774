//! Typed EPCIS 2.0 events (ObjectEvent, AggregationEvent), their builders with the
//! EPCIS rules checked at `build()`, the per-line factory that maps serial outcomes to
//! CBV vocabulary, and the `EPCISDocument` wrapper, all serialised to the JSON-LD
//! binding. Hashing is in `super::hash`; storing and sending is elsewhere.

use serde_json::{Map, Value, json};

use super::EpcisError;
use super::hash::{HashContext, event_hash};
use super::ids::{Gtin, IdForm, Serial, Sgln, Sscc, sgtin_uri};
use super::time::{EventTime, gs1_date_to_iso};

/// The EPCIS 2.0 JSON-LD context URL.
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

/// EPCIS event action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The objects were observed; no change of existence.
    Observe,
    /// The objects (or the aggregation) came into being.
    Add,
    /// The objects (or the aggregation) ceased to exist.
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Observe => "OBSERVE",
            Action::Add => "ADD",
            Action::Delete => "DELETE",
        }
    }
}

/// CBV 2.0 business steps linectl uses (bare CBV words in the JSON-LD binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BizStep {
    /// `commissioning`
    Commissioning,
    /// `destroying`
    Destroying,
    /// `decommissioning`
    Decommissioning,
    /// `sampling`
    Sampling,
    /// `inspecting`
    Inspecting,
    /// `packing`
    Packing,
    /// `unpacking`
    Unpacking,
    /// Any other business step, as a full URI.
    Uri(String),
}

impl BizStep {
    fn as_str(&self) -> &str {
        match self {
            BizStep::Commissioning => "commissioning",
            BizStep::Destroying => "destroying",
            BizStep::Decommissioning => "decommissioning",
            BizStep::Sampling => "sampling",
            BizStep::Inspecting => "inspecting",
            BizStep::Packing => "packing",
            BizStep::Unpacking => "unpacking",
            BizStep::Uri(u) => u,
        }
    }
}

/// CBV 2.0 dispositions linectl uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// `active`
    Active,
    /// `destroyed`
    Destroyed,
    /// `inactive`
    Inactive,
    /// `non_sellable_other`
    NonSellableOther,
    /// `in_progress`
    InProgress,
    /// Any other disposition, as a full URI.
    Uri(String),
}

impl Disposition {
    fn as_str(&self) -> &str {
        match self {
            Disposition::Active => "active",
            Disposition::Destroyed => "destroyed",
            Disposition::Inactive => "inactive",
            Disposition::NonSellableOther => "non_sellable_other",
            Disposition::InProgress => "in_progress",
            Disposition::Uri(u) => u,
        }
    }
}

/// Instance/lot master data of a commissioning event (CBV master-data attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ilmd {
    /// `cbvmda:lotNumber` (AI 10).
    pub lot_number: Option<String>,
    /// `cbvmda:itemExpirationDate`, `YYYY-MM-DD`.
    pub item_expiration_date: Option<String>,
}

impl Ilmd {
    /// Lot and expiry from their GS1 forms: lot as printed (AI 10, CSET 82, 1..=20),
    /// expiry `YYMMDD` (AI 17; day `00` = last day of the month) with the century taken
    /// relative to `reference_year`.
    pub fn from_gs1(
        lot: &str,
        expiry_yymmdd: &str,
        reference_year: i64,
    ) -> Result<Self, EpcisError> {
        // A lot has the same syntax as a serial (CSET 82, 1..=20).
        Serial::new(lot).map_err(|e| EpcisError::Identifier(format!("lot: {e}")))?;
        Ok(Ilmd {
            lot_number: Some(lot.to_owned()),
            item_expiration_date: Some(gs1_date_to_iso(expiry_yymmdd, reference_year)?),
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(lot) = &self.lot_number {
            m.insert("cbvmda:lotNumber".into(), json!(lot));
        }
        if let Some(exp) = &self.item_expiration_date {
            m.insert("cbvmda:itemExpirationDate".into(), json!(exp));
        }
        Value::Object(m)
    }
}

fn common_fields(m: &mut Map<String, Value>, event_type: &str, id: Option<&str>, time: &EventTime) {
    m.insert("type".into(), json!(event_type));
    if let Some(id) = id {
        m.insert("eventID".into(), json!(id));
    }
    m.insert("eventTime".into(), json!(time.to_rfc3339()));
    m.insert("eventTimeZoneOffset".into(), json!(time.offset_string()));
}

fn where_fields(
    m: &mut Map<String, Value>,
    biz_step: Option<&BizStep>,
    disposition: Option<&Disposition>,
    read_point: Option<&str>,
    biz_location: Option<&str>,
) {
    if let Some(b) = biz_step {
        m.insert("bizStep".into(), json!(b.as_str()));
    }
    if let Some(d) = disposition {
        m.insert("disposition".into(), json!(d.as_str()));
    }
    if let Some(r) = read_point {
        m.insert("readPoint".into(), json!({ "id": r }));
    }
    if let Some(l) = biz_location {
        m.insert("bizLocation".into(), json!({ "id": l }));
    }
}

fn no_duplicates(what: &str, list: &[String]) -> Result<(), EpcisError> {
    let mut sorted: Vec<&String> = list.iter().collect();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w.first() == w.get(1)) {
        return Err(EpcisError::Event(format!(
            "{what} lists {:?} twice",
            w.first().map(|s| s.as_str()).unwrap_or_default()
        )));
    }
    Ok(())
}

/// An EPCIS ObjectEvent about a list of instance identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    event_id: Option<String>,
    time: EventTime,
    action: Action,
    epc_list: Vec<String>,
    biz_step: Option<BizStep>,
    disposition: Option<Disposition>,
    read_point: Option<String>,
    biz_location: Option<String>,
    ilmd: Option<Ilmd>,
}

impl ObjectEvent {
    /// Starts an ObjectEvent with `action` at `time`.
    pub fn builder(action: Action, time: EventTime) -> ObjectEventBuilder {
        ObjectEventBuilder {
            event: ObjectEvent {
                event_id: None,
                time,
                action,
                epc_list: Vec::new(),
                biz_step: None,
                disposition: None,
                read_point: None,
                biz_location: None,
                ilmd: None,
            },
        }
    }

    /// The identifiers the event is about.
    pub fn epc_list(&self) -> &[String] {
        &self.epc_list
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        common_fields(&mut m, "ObjectEvent", self.event_id.as_deref(), &self.time);
        m.insert("epcList".into(), json!(self.epc_list));
        m.insert("action".into(), json!(self.action.as_str()));
        where_fields(
            &mut m,
            self.biz_step.as_ref(),
            self.disposition.as_ref(),
            self.read_point.as_deref(),
            self.biz_location.as_deref(),
        );
        if let Some(ilmd) = &self.ilmd {
            m.insert("ilmd".into(), ilmd.to_json());
        }
        Value::Object(m)
    }
}

/// Builds an [`ObjectEvent`]; `build()` checks the EPCIS rules.
#[derive(Debug, Clone)]
pub struct ObjectEventBuilder {
    event: ObjectEvent,
}

impl ObjectEventBuilder {
    /// Adds one identifier URI.
    pub fn epc(mut self, uri: impl Into<String>) -> Self {
        self.event.epc_list.push(uri.into());
        self
    }

    /// Adds identifier URIs.
    pub fn epcs<I: IntoIterator<Item = String>>(mut self, uris: I) -> Self {
        self.event.epc_list.extend(uris);
        self
    }

    /// Sets the business step.
    pub fn biz_step(mut self, step: BizStep) -> Self {
        self.event.biz_step = Some(step);
        self
    }

    /// Sets the disposition.
    pub fn disposition(mut self, disposition: Disposition) -> Self {
        self.event.disposition = Some(disposition);
        self
    }

    /// Sets the read point URI.
    pub fn read_point(mut self, uri: impl Into<String>) -> Self {
        self.event.read_point = Some(uri.into());
        self
    }

    /// Sets the business location URI.
    pub fn biz_location(mut self, uri: impl Into<String>) -> Self {
        self.event.biz_location = Some(uri.into());
        self
    }

    /// Sets instance/lot master data (only allowed with `ADD`).
    pub fn ilmd(mut self, ilmd: Ilmd) -> Self {
        self.event.ilmd = Some(ilmd);
        self
    }

    /// Checks: at least one identifier, none twice, ILMD only with ADD.
    pub fn build(self) -> Result<ObjectEvent, EpcisError> {
        let e = self.event;
        if e.epc_list.is_empty() {
            return Err(EpcisError::Event(
                "ObjectEvent with an empty epcList".into(),
            ));
        }
        no_duplicates("epcList", &e.epc_list)?;
        if e.ilmd.is_some() && e.action != Action::Add {
            return Err(EpcisError::Event(format!(
                "ILMD is only allowed with action ADD, not {}",
                e.action.as_str()
            )));
        }
        Ok(e)
    }
}

/// An EPCIS AggregationEvent: children into (ADD) or out of (DELETE) a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationEvent {
    event_id: Option<String>,
    time: EventTime,
    action: Action,
    parent_id: Option<String>,
    child_epcs: Vec<String>,
    biz_step: Option<BizStep>,
    disposition: Option<Disposition>,
    read_point: Option<String>,
    biz_location: Option<String>,
}

impl AggregationEvent {
    /// Starts an AggregationEvent with `action` at `time`.
    pub fn builder(action: Action, time: EventTime) -> AggregationEventBuilder {
        AggregationEventBuilder {
            event: AggregationEvent {
                event_id: None,
                time,
                action,
                parent_id: None,
                child_epcs: Vec::new(),
                biz_step: None,
                disposition: None,
                read_point: None,
                biz_location: None,
            },
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        common_fields(
            &mut m,
            "AggregationEvent",
            self.event_id.as_deref(),
            &self.time,
        );
        if let Some(p) = &self.parent_id {
            m.insert("parentID".into(), json!(p));
        }
        if !self.child_epcs.is_empty() {
            m.insert("childEPCs".into(), json!(self.child_epcs));
        }
        m.insert("action".into(), json!(self.action.as_str()));
        where_fields(
            &mut m,
            self.biz_step.as_ref(),
            self.disposition.as_ref(),
            self.read_point.as_deref(),
            self.biz_location.as_deref(),
        );
        Value::Object(m)
    }
}

/// Builds an [`AggregationEvent`]; `build()` checks the EPCIS rules.
#[derive(Debug, Clone)]
pub struct AggregationEventBuilder {
    event: AggregationEvent,
}

impl AggregationEventBuilder {
    /// Sets the parent (e.g. an SSCC URI).
    pub fn parent(mut self, uri: impl Into<String>) -> Self {
        self.event.parent_id = Some(uri.into());
        self
    }

    /// Adds child identifier URIs.
    pub fn children<I: IntoIterator<Item = String>>(mut self, uris: I) -> Self {
        self.event.child_epcs.extend(uris);
        self
    }

    /// Sets the business step.
    pub fn biz_step(mut self, step: BizStep) -> Self {
        self.event.biz_step = Some(step);
        self
    }

    /// Sets the disposition.
    pub fn disposition(mut self, disposition: Disposition) -> Self {
        self.event.disposition = Some(disposition);
        self
    }

    /// Sets the read point URI.
    pub fn read_point(mut self, uri: impl Into<String>) -> Self {
        self.event.read_point = Some(uri.into());
        self
    }

    /// Sets the business location URI.
    pub fn biz_location(mut self, uri: impl Into<String>) -> Self {
        self.event.biz_location = Some(uri.into());
        self
    }

    /// Checks: ADD and DELETE need a parent; ADD needs children; no child twice.
    pub fn build(self) -> Result<AggregationEvent, EpcisError> {
        let e = self.event;
        if e.action != Action::Observe && e.parent_id.is_none() {
            return Err(EpcisError::Event(format!(
                "AggregationEvent {} needs a parentID",
                e.action.as_str()
            )));
        }
        if e.action == Action::Add && e.child_epcs.is_empty() {
            return Err(EpcisError::Event(
                "AggregationEvent ADD with no children".into(),
            ));
        }
        no_duplicates("childEPCs", &e.child_epcs)?;
        Ok(e)
    }
}

/// One EPCIS event linectl emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An ObjectEvent.
    Object(ObjectEvent),
    /// An AggregationEvent.
    Aggregation(AggregationEvent),
}

impl From<ObjectEvent> for Event {
    fn from(e: ObjectEvent) -> Self {
        Event::Object(e)
    }
}

impl From<AggregationEvent> for Event {
    fn from(e: AggregationEvent) -> Self {
        Event::Aggregation(e)
    }
}

impl Event {
    /// The event in the EPCIS 2.0 JSON-LD binding (as it sits in an `eventList`).
    pub fn to_json(&self) -> Value {
        match self {
            Event::Object(e) => e.to_json(),
            Event::Aggregation(e) => e.to_json(),
        }
    }

    /// The event as a standalone JSON-LD object (with `@context`), e.g. for
    /// `POST /events`.
    pub fn to_standalone_json(&self) -> Value {
        let mut v = self.to_json();
        if let Value::Object(m) = &mut v {
            m.insert("@context".into(), json!([EPCIS_CONTEXT]));
        }
        v
    }

    /// The event's `eventID`, if set.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Event::Object(e) => e.event_id.as_deref(),
            Event::Aggregation(e) => e.event_id.as_deref(),
        }
    }

    /// The CBV 2.0 event hash of this event (its `eventID` does not take part).
    pub fn hash_id(&self) -> Result<String, EpcisError> {
        event_hash(&self.to_json(), &HashContext::epcis_default())
    }

    /// Sets `eventID` to the CBV 2.0 event hash, so retries carry the same ID.
    pub fn with_hash_id(mut self) -> Result<Self, EpcisError> {
        let id = self.hash_id()?;
        match &mut self {
            Event::Object(e) => e.event_id = Some(id),
            Event::Aggregation(e) => e.event_id = Some(id),
        }
        Ok(self)
    }
}

/// An `EPCISDocument` carrying events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpcisDocument {
    /// The document's `creationDate`.
    pub creation_date: EventTime,
    /// The events, in order.
    pub events: Vec<Event>,
}

impl EpcisDocument {
    /// The document in the EPCIS 2.0 JSON-LD binding.
    pub fn to_json(&self) -> Value {
        json!({
            "@context": [EPCIS_CONTEXT],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": self.creation_date.to_rfc3339(),
            "epcisBody": {
                "eventList": self.events.iter().map(Event::to_json).collect::<Vec<_>>()
            }
        })
    }

    /// The document as compact JSON text.
    pub fn to_json_string(&self) -> Result<String, EpcisError> {
        Ok(serde_json::to_string(&self.to_json())?)
    }
}

/// The events of one line and product: it knows the identifier form, the product's
/// GTIN and the line's read point and business location, and turns each serial outcome
/// into the event the module docs' CBV table prescribes.
#[derive(Debug, Clone)]
pub struct LineEvents {
    pub(super) form: IdForm,
    pub(super) gtin: Gtin,
    pub(super) read_point: String,
    pub(super) biz_location: String,
}

impl LineEvents {
    /// Events for product `gtin` on the line at `read_point` (the line's SGLN) within
    /// `biz_location` (the site's SGLN), identifiers in `form`.
    pub fn new(
        form: IdForm,
        gtin: &str,
        read_point: &Sgln,
        biz_location: &Sgln,
    ) -> Result<Self, EpcisError> {
        Ok(LineEvents {
            form,
            gtin: Gtin::new(gtin)?,
            read_point: read_point.uri(form)?,
            biz_location: biz_location.uri(form)?,
        })
    }

    /// The identifier URI of one serial of this product.
    pub fn unit_uri(&self, serial: &str) -> Result<String, EpcisError> {
        Ok(sgtin_uri(self.form, &self.gtin, &Serial::new(serial)?))
    }

    fn uris(&self, serials: &[&str]) -> Result<Vec<String>, EpcisError> {
        serials.iter().map(|s| self.unit_uri(s)).collect()
    }

    fn object(
        &self,
        action: Action,
        time: EventTime,
        serials: &[&str],
        step: BizStep,
        disposition: Disposition,
    ) -> Result<ObjectEventBuilder, EpcisError> {
        Ok(ObjectEvent::builder(action, time)
            .epcs(self.uris(serials)?)
            .biz_step(step)
            .disposition(disposition)
            .read_point(self.read_point.clone())
            .biz_location(self.biz_location.clone()))
    }

    /// Units that passed inspection: ADD, `commissioning`, `active`, ILMD with lot and
    /// expiry (`YYMMDD`, century relative to the event's local year).
    pub fn commissioning(
        &self,
        time: EventTime,
        serials: &[&str],
        lot: &str,
        expiry_yymmdd: &str,
    ) -> Result<Event, EpcisError> {
        let ilmd = Ilmd::from_gs1(lot, expiry_yymmdd, time.local_year())?;
        Ok(self
            .object(
                Action::Add,
                time,
                serials,
                BizStep::Commissioning,
                Disposition::Active,
            )?
            .ilmd(ilmd)
            .build()?
            .into())
    }

    /// Units printed, rejected and destroyed at the line: DELETE, `destroying`,
    /// `destroyed`.
    pub fn rejected_destroyed(
        &self,
        time: EventTime,
        serials: &[&str],
    ) -> Result<Event, EpcisError> {
        Ok(self
            .object(
                Action::Delete,
                time,
                serials,
                BizStep::Destroying,
                Disposition::Destroyed,
            )?
            .build()?
            .into())
    }

    /// Serials reserved but never printed, invalidated by crash recovery: DELETE,
    /// `decommissioning`, `inactive` (OPEN-SCS SNInvalid).
    pub fn invalidated(&self, time: EventTime, serials: &[&str]) -> Result<Event, EpcisError> {
        Ok(self
            .object(
                Action::Delete,
                time,
                serials,
                BizStep::Decommissioning,
                Disposition::Inactive,
            )?
            .build()?
            .into())
    }

    /// Units taken by QA as samples: OBSERVE, `sampling`, `non_sellable_other`.
    pub fn sampled(&self, time: EventTime, serials: &[&str]) -> Result<Event, EpcisError> {
        Ok(self
            .object(
                Action::Observe,
                time,
                serials,
                BizStep::Sampling,
                Disposition::NonSellableOther,
            )?
            .build()?
            .into())
    }

    fn aggregation(
        &self,
        action: Action,
        step: BizStep,
        time: EventTime,
        parent: &Sscc,
        serials: &[&str],
    ) -> Result<Event, EpcisError> {
        Ok(AggregationEvent::builder(action, time)
            .parent(parent.uri(self.form)?)
            .children(self.uris(serials)?)
            .biz_step(step)
            .disposition(Disposition::InProgress)
            .read_point(self.read_point.clone())
            .biz_location(self.biz_location.clone())
            .build()?
            .into())
    }

    /// Units packed into the case `parent`: ADD, `packing`.
    pub fn aggregate(
        &self,
        time: EventTime,
        parent: &Sscc,
        serials: &[&str],
    ) -> Result<Event, EpcisError> {
        self.aggregation(Action::Add, BizStep::Packing, time, parent, serials)
    }

    /// Units taken out of the case `parent` (rework): DELETE, `unpacking`; no serials
    /// means all children.
    pub fn disaggregate(
        &self,
        time: EventTime,
        parent: &Sscc,
        serials: &[&str],
    ) -> Result<Event, EpcisError> {
        self.aggregation(Action::Delete, BizStep::Unpacking, time, parent, serials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcis::ids::CompanyPrefixLen;

    fn line(form: IdForm) -> Result<LineEvents, EpcisError> {
        LineEvents::new(
            form,
            "04012345111118",
            &Sgln::new("4012345000054", Some("1"))?,
            &Sgln::new("4012345000054", None)?,
        )
    }

    fn urn() -> Result<IdForm, EpcisError> {
        Ok(IdForm::EpcUrn {
            company_prefix_len: CompanyPrefixLen::new(7)?,
        })
    }

    #[test]
    fn commissioning_event_shape() -> Result<(), EpcisError> {
        let t = EventTime::new(1_764_532_800_000, 60)?; // 2025-11-30T20:00:00Z
        let ev = line(IdForm::DigitalLink)?.commissioning(t, &["A1", "A2"], "LOT1", "280200")?;
        let j = ev.to_json();
        assert_eq!(j["type"], "ObjectEvent");
        assert_eq!(j["action"], "ADD");
        assert_eq!(j["bizStep"], "commissioning");
        assert_eq!(j["disposition"], "active");
        assert_eq!(j["eventTime"], "2025-11-30T21:00:00.000+01:00");
        assert_eq!(j["eventTimeZoneOffset"], "+01:00");
        assert_eq!(
            j["epcList"][0],
            "https://id.gs1.org/01/04012345111118/21/A1"
        );
        assert_eq!(
            j["readPoint"]["id"],
            "https://id.gs1.org/414/4012345000054/254/1"
        );
        assert_eq!(
            j["bizLocation"]["id"],
            "https://id.gs1.org/414/4012345000054"
        );
        assert_eq!(j["ilmd"]["cbvmda:lotNumber"], "LOT1");
        assert_eq!(j["ilmd"]["cbvmda:itemExpirationDate"], "2028-02-29");
        Ok(())
    }

    #[test]
    fn hash_id_is_the_same_for_both_identifier_forms_and_ignores_the_id() -> Result<(), EpcisError>
    {
        let t = EventTime::new(1_764_532_800_000, 60)?;
        let dl = line(IdForm::DigitalLink)?.commissioning(t, &["A/1", "B(2)"], "L", "281231")?;
        let urn = line(urn()?)?.commissioning(t, &["A/1", "B(2)"], "L", "281231")?;
        assert_ne!(dl.to_json(), urn.to_json());
        assert_eq!(dl.hash_id()?, urn.hash_id()?);
        let with_id = dl.clone().with_hash_id()?;
        assert_eq!(with_id.event_id(), Some(dl.hash_id()?.as_str()));
        assert_eq!(with_id.hash_id()?, dl.hash_id()?);
        let other = line(IdForm::DigitalLink)?.commissioning(t, &["A/1"], "L", "281231")?;
        assert_ne!(other.hash_id()?, dl.hash_id()?);
        Ok(())
    }

    #[test]
    fn builder_rules() -> Result<(), EpcisError> {
        let t = EventTime::new(0, 0)?;
        assert!(ObjectEvent::builder(Action::Add, t).build().is_err());
        assert!(
            ObjectEvent::builder(Action::Observe, t)
                .epc("https://id.gs1.org/01/04012345111118/21/1")
                .ilmd(Ilmd::default())
                .build()
                .is_err()
        );
        assert!(
            ObjectEvent::builder(Action::Observe, t)
                .epc("x:1")
                .epc("x:1")
                .build()
                .is_err()
        );
        assert!(
            AggregationEvent::builder(Action::Add, t)
                .children(["x:1".to_string()])
                .build()
                .is_err()
        );
        assert!(
            AggregationEvent::builder(Action::Add, t)
                .parent("x:p")
                .build()
                .is_err()
        );
        assert!(
            AggregationEvent::builder(Action::Delete, t)
                .parent("x:p")
                .build()
                .is_ok()
        );
        let l = line(IdForm::DigitalLink)?;
        assert!(l.commissioning(t, &["bad serial"], "L", "280101").is_err());
        assert!(l.commissioning(t, &["1"], "", "280101").is_err());
        assert!(l.commissioning(t, &["1"], "L", "281301").is_err());
        Ok(())
    }
}
