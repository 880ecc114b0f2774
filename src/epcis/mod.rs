//! EPCIS 2.0 events for what happens to serials on the line, in the JSON-LD binding, and
//! their CBV 2.0 event hash IDs. This module owns the typed events ([`ObjectEvent`],
//! [`AggregationEvent`]) and their builders, the per-line event factory ([`LineEvents`])
//! that maps each serial outcome to CBV vocabulary, the EPCIS document wrapper, the
//! identifier forms (GS1 Digital Link or EPC URN, [`IdForm`]), [`event_hash`], and the
//! line's per-unit event writer that fills a reused buffer ([`UnitEventWriter`]). It
//! does not store, buffer or send events (that is the journal and the uplink), and takes
//! plain strings for GTINs, serials and lots rather than depending on `gs1` or `market`.
//!
//! # CBV choices for serial outcomes
//!
//! The OPEN-SCS serial states map to EPCIS 2.0 / CBV 2.0 like this (all ObjectEvents;
//! every value is from the CBV 2.0 enumerations of the EPCIS 2.0 JSON schema):
//!
//! | outcome | action | bizStep | disposition | OPEN-SCS |
//! |---|---|---|---|---|
//! | passed inspection | `ADD` | `commissioning` | `active` | Commissioned |
//! | printed, rejected, destroyed at the line | `DELETE` | `destroying` | `destroyed` | Destroyed (LabelScrapped) |
//! | reserved, never printed, invalidated by crash recovery | `DELETE` | `decommissioning` | `inactive` | SNInvalid |
//! | taken by QA as a sample | `OBSERVE` | `sampling` | `non_sellable_other` | Sampled |
//!
//! * **Rejected after printing → `destroying`/`destroyed`.** The code was printed on a
//!   real carton and that carton is taken out at the reject station and physically
//!   destroyed (not relabelled): the object that carried the identifier ceases to exist,
//!   which is what CBV's `destroying` step and `destroyed` disposition say ("fully
//!   rendered non-usable"). `decommissioning`/`inactive` would claim the object lives on
//!   without its identifier, which is false for a destroyed carton, and would let a
//!   downstream party read the serial as "may reappear". The event is a DELETE: the
//!   serial is out of circulation for good. It is emitted without a prior commissioning
//!   event, because linectl commissions only units that passed inspection.
//! * **Invalidated by crash recovery (never printed) → `decommissioning`/`inactive`.**
//!   No physical object ever carried these serials, so `destroying` would report the
//!   destruction of something that never existed. What the site server must learn is
//!   that the identifier is retired and must never be used: CBV's `decommissioning`
//!   with `inactive`, as a DELETE. This is the EPCIS face of OPEN-SCS `SNInvalid`; an
//!   uplink to a regulator hub that only wants commissioned serials may drop these and
//!   report them through the OPEN-SCS serial return instead.
//! * **QA samples → `sampling`/`non_sellable_other`.** CBV 2.0 has the `sampling`
//!   business step but no `sampled` disposition (the schema's enumeration has none), so
//!   the unit keeps its identity (OBSERVE, it was commissioned before it was pulled) and
//!   gets `non_sellable_other`: taken out of saleable stock for a reason no other
//!   disposition covers. A destructive test later is a separate `destroying` event.
//! * Aggregation (cartons into a case, SSCC parent) is an AggregationEvent: `ADD` with
//!   `packing`, `DELETE` with `unpacking` (rework); disposition `in_progress`.
//!
//! # Event hash
//!
//! Every event gets `eventID` = its CBV 2.0 event hash ([`Event::with_hash_id`]) before
//! it is journalled, so every retry of an upload carries the same ID and a repository
//! recognises duplicates. The algorithm is documented in [`hash`].

pub mod aggregation;
pub mod event;
pub mod hash;
pub mod ids;
pub mod time;
pub mod writer;

pub use event::{
    Action, AggregationEvent, AggregationEventBuilder, BizStep, Disposition, EpcisDocument, Event,
    Ilmd, LineEvents, ObjectEvent, ObjectEventBuilder,
};
pub use hash::{HashContext, document_hashes, event_hash, prehash};
pub use ids::{CompanyPrefixLen, Gtin, IdForm, Serial, Sgln, Sscc};
pub use time::EventTime;
pub use writer::{UnitEvent, UnitEventWriter};

/// What can go wrong building, serialising or hashing an EPCIS event.
#[derive(Debug, thiserror::Error)]
pub enum EpcisError {
    /// A GTIN, serial, GLN, SSCC or lot was malformed.
    #[error("identifier: {0}")]
    Identifier(String),
    /// A timestamp or GS1 date was malformed.
    #[error("time: {0}")]
    Time(String),
    /// An event broke an EPCIS rule (e.g. ILMD without ADD, empty epcList).
    #[error("event: {0}")]
    Event(String),
    /// An event could not be hashed (missing type, wrong shape; names the field).
    #[error("event hash: {0}")]
    Hash(String),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
