//! Fuzz the host-side ZPL `~HS` decoders (line by line, and the driver's in-place one)
//! and the status parser.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use linectl_drivers::printer::zpl::{HostStatus, HostStatusDecoder, HsLineDecoder};

fuzz_target!(|data: &[u8]| {
    common::drive(HostStatusDecoder::new(768), 768, data, |hs| {
        let _ = hs.faults();
    });
    let mut lines = Vec::new();
    common::drive(HsLineDecoder::new(256), 256, data, |l| lines.push(l));
    for w in lines.chunks_exact(3) {
        let arr = [w[0].clone(), w[1].clone(), w[2].clone()];
        if let Ok(hs) = HostStatus::parse(&arr) {
            let _ = hs.faults();
            let _ = hs.encode();
        }
    }
});
