//! Criterion bench of the frame renderer: frames per second for clean and defective
//! 1280×960 frames, rendered into a reused buffer. It measures rendering only, no
//! decoding.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hil_sim::defects::{Defect, DefectClass};
use hil_sim::render::{Content, FrameSpec, GreyFrame, PrintStyle, Renderer};

fn content() -> Content {
    match Content::new("01095011015300031728123110AB12C\u{1d}21SN00001234567") {
        Ok(c) => c,
        Err(e) => panic!("bench content: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let content = content();
    let mut group = c.benchmark_group("render_1280x960");
    group.throughput(Throughput::Elements(1));
    for (name, spec) in [
        ("solid", FrameSpec::default()),
        (
            "dotted",
            FrameSpec {
                print_style: PrintStyle::Dotted { dot_diameter: 0.9 },
                ..FrameSpec::default()
            },
        ),
    ] {
        let mut renderer = match Renderer::new(spec) {
            Ok(r) => r,
            Err(e) => panic!("renderer: {e}"),
        };
        let mut frame = GreyFrame::default();
        let mut seed = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                seed += 1;
                renderer.render_into(&mut frame, &content, None, seed)
            })
        });
    }
    let mut renderer = match Renderer::new(FrameSpec::default()) {
        Ok(r) => r,
        Err(e) => panic!("renderer: {e}"),
    };
    let mut frame = GreyFrame::default();
    let mut seed = 0u64;
    group.bench_function("smudge", |b| {
        b.iter(|| {
            seed += 1;
            let defect = Defect::new(DefectClass::Smudge, seed);
            renderer.render_into(&mut frame, &content, Some(&defect), seed)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
