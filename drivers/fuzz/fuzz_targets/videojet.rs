//! Fuzz both Videojet text decoders (printer messages and host commands).
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use linectl_drivers::printer::videojet::{HostCommand, PrinterMessage, TextDecoder};

fuzz_target!(|data: &[u8]| {
    common::drive(TextDecoder::<PrinterMessage>::new(1024), 1024, data, |m| {
        let _ = m.encode();
    });
    common::drive(TextDecoder::<HostCommand>::new(1024), 1024, data, |m| {
        let _ = m.encode();
    });
});
