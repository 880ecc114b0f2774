//! Fuzz the device-side ZPL decoder and DataMatrix field extraction.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use linectl_drivers::printer::zpl::{ZplDecoder, ZplMessage, datamatrix_data};

fuzz_target!(|data: &[u8]| {
    common::drive(ZplDecoder::new(4096), 4096, data, |m| {
        if let ZplMessage::Format(f) = m {
            let _ = datamatrix_data(&f);
        }
    });
});
