//! Unit tests of the journal (see mod.rs).
