//! Aggregation: units into cases, cases onto pallets, and rework. Submodules:
//! [`detect`] (multi-symbol decoding of a layer frame along the profile's layout),
//! [`check`] (every code of a layer against the pool, the journal and the store),
//! [`store`] (the durable trees of cases and pallets, intents, holds, the event outbox),
//! [`station`] (a case or pallet station on its camera and label printer, crash
//! recovery), [`rework`] (opening cases, swapping units, dissolving pallets, each with
//! its events) and [`show`] (the tree under a case or pallet code).
//!
//! It does not run the unit line (that is `pipeline`) nor upload events (the uplink
//! reads the journal the stations write to).

pub mod check;
pub mod detect;
pub mod rework;
pub mod service;
pub mod show;
pub mod station;
pub mod store;

/// What went wrong in aggregation (device trouble is not here: it holds the container).
#[derive(Debug, thiserror::Error)]
pub enum AggError {
    /// The aggregation store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The event journal.
    #[error("event journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// Building an event.
    #[error("EPCIS event: {0}")]
    Epcis(#[from] crate::epcis::EpcisError),
    /// Journaling an event.
    #[error("event record: {0}")]
    Event(String),
    /// An SSCC could not be built.
    #[error(transparent)]
    Sscc(#[from] crate::gs1::sscc::SsccError),
    /// The serial pool (case serials, unit states).
    #[error("serial pool ({context}): {source}")]
    Pool {
        /// What was being done.
        context: String,
        /// The pool's error.
        #[source]
        source: crate::pool::PoolError,
    },
    /// A caller error.
    #[error("{0}")]
    Usage(String),
}
