//! Fuzz both Markem-Imaje decoders (replies and requests); re-encode what decodes.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use linectl_drivers::printer::markem::{ReplyDecoder, RequestDecoder};

fuzz_target!(|data: &[u8]| {
    common::drive(ReplyDecoder::default(), 1024 + 4, data, |m| {
        let _ = m.encode();
    });
    common::drive(RequestDecoder::default(), 1024 + 4, data, |m| {
        let _ = m.encode();
    });
});
