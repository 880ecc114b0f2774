//! Criterion benchmarks of the GS1 engine's hot paths: building a pharma code (GTIN,
//! serial, batch, expiry) into a reused buffer, and parsing element strings. Targets:
//! build >= 1,000,000 codes/s, parse >= 500,000 element strings/s on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linectl::gs1::Gs1Code;

const GTIN: &str = "09506000134352";

fn serial(i: u64) -> String {
    format!("S{i:011}")
}

fn build(c: &mut Criterion) {
    let serials: Vec<String> = (0..1024).map(serial).collect();
    let mut g = c.benchmark_group("gs1");
    g.throughput(Throughput::Elements(1));
    let mut out = String::with_capacity(128);
    let mut i = 0usize;
    g.bench_function("build_element_string", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let code = Gs1Code::from_elements([
                ("01", GTIN),
                ("21", serials[i].as_str()),
                ("10", "LOT2025A"),
                ("17", "281231"),
            ])
            .expect("valid");
            out.clear();
            code.write_element_string(&mut out);
            black_box(out.len())
        })
    });
    let strings: Vec<String> = serials
        .iter()
        .map(|s| format!("01{GTIN}17281231") + &format!("21{s}\u{1d}10LOT2025A"))
        .collect();
    let mut j = 0usize;
    g.bench_function("parse_element_string", |b| {
        b.iter(|| {
            j = (j + 1) & 1023;
            let code = Gs1Code::parse_element_string(black_box(&strings[j])).expect("valid");
            black_box(code.elements().len())
        })
    });
    g.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
