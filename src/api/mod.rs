//! HTTP APIs linectl serves to the site server, as axum routers the daemon's HTTP server
//! mounts. This module owns only the routers and their request/response rules; it does
//! not start a server, bind a port or load TLS (the daemon does). So far: the EPCIS pull
//! API ([`events`]).

pub mod events;

pub use events::{EventsApi, PullApiConfig, events_router};
