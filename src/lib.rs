//! linectl: the library behind the line-controller daemon. It owns the GS1 code engine,
//! the market rules, line profiles, the serial-number pool and the vision stage; device
//! protocols live in the `linectl-drivers` crate and the simulated line in `hil-sim`.
//! The binary (`src/main.rs`) is only command-line glue over this library.

pub mod aggregation;
pub mod api;
pub mod audit;
pub mod clock;
pub mod config;
pub mod epcis;
pub mod gs1;
pub mod hmi;
pub mod journal;
pub mod market;
pub mod packml;
pub mod pipeline;
pub mod pool;
pub mod profile;
pub mod report;
pub mod sdnotify;
pub mod serve;
pub mod uplink;
pub mod users;
pub mod vision;
