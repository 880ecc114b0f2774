//! Aggregation (placeholder doc, rewritten below).
pub mod detect;
