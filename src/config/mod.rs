//! Run-time configuration changes of the daemon: [`reload`] decides which fields of a
//! re-read line profile may change while `linectl run` is running (SIGHUP) and which are
//! refused. Loading and validating a profile belongs to [`crate::profile`]; applying an
//! accepted change belongs to the daemon (`src/cli/run.rs`).

pub mod reload;
