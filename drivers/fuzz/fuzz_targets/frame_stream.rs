//! Fuzz the TCP frame stream decoder with a small pixel limit.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use linectl_drivers::camera::stream::{FrameDecoder, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    common::drive(FrameDecoder::new(4096), 4096 + HEADER_LEN, data, |f| {
        assert_eq!(
            f.pixels.len() as u64,
            u64::from(f.width) * u64::from(f.height)
        );
    });
});
