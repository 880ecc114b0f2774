//! Criterion benches of the vision stage on the checked-in frames (1280×960): the whole
//! decoder per subset, and each decode pass alone on a clean frame. Speed is measured
//! here, never asserted in tests. `cargo bench --bench vision`.

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use linectl::vision::{DecodeConfig, Decoder, FrameLimits, GreyFrame, PassKind};

fn frame(rel: &str) -> GreyFrame {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/frames")
        .join(rel);
    GreyFrame::load(&path, FrameLimits::default()).expect("checked-in frame")
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let mut decoder = Decoder::new(DecodeConfig::default());
    for rel in [
        "clean/clean-000.png",
        "rotated/rotated-000.png",
        "inverted/inverted-000.png",
        "dmre/dmre-000.png",
        "degraded/degraded-000.png",
        "dotted/dotted-000.png",
    ] {
        let f = frame(rel);
        g.bench_function(rel, |b| b.iter(|| decoder.decode(&f)));
    }
    g.finish();
}

fn passes(c: &mut Criterion) {
    let mut g = c.benchmark_group("pass-on-clean-frame");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let f = frame("clean/clean-000.png");
    let mut decoder = Decoder::new(DecodeConfig::default());
    for pass in [
        PassKind::Downscaled,
        PassKind::DownscaledInverted,
        PassKind::Rotated45,
        PassKind::DottedDownscaled,
        PassKind::Dotted,
        PassKind::Closed,
        PassKind::FullInverted,
        PassKind::Full,
    ] {
        g.bench_function(format!("{pass:?}"), |b| {
            b.iter(|| decoder.decode_pass(&f, pass))
        });
    }
    g.finish();
}

criterion_group!(benches, decode, passes);
criterion_main!(benches);
