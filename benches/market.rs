//! Code building speed: the per-batch `CodeTemplate` (the line's hot path: check the
//! serial, copy bytes) against the full `Market::build` (market rules plus the GS1
//! engine's validation). Target: ≥ 1,000,000 codes/s on one core for the template.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linectl::market::{BatchData, CodeTemplate, Market, Product, UnitData, cn_nmpa};

const N: usize = 10_000;

fn serials() -> Vec<String> {
    // Random-looking 12-character serials from the generation alphabet.
    let alphabet = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..N)
        .map(|_| {
            (0..12)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(alphabet[(x % alphabet.len() as u64) as usize])
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let product = Product {
        gtin: "09506000134352".to_string(),
        national_ais: vec![("710".to_string(), "01234562".to_string())],
    };
    let batch = BatchData {
        batch: "EU24A001".to_string(),
        expiry: "281231".to_string(),
    };
    let serials = serials();
    let template = CodeTemplate::new(Market::EuFmd, &product, &batch).expect("valid template");

    let mut g = c.benchmark_group("market");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("template_write_eu_fmd", |b| {
        let mut out = String::with_capacity(128);
        b.iter(|| {
            for s in &serials {
                out.clear();
                template
                    .write(black_box(s), &mut out)
                    .expect("valid serial");
                black_box(&out);
            }
        })
    });
    g.bench_function("template_write_hri_eu_fmd", |b| {
        let mut out = String::with_capacity(128);
        b.iter(|| {
            for s in &serials {
                out.clear();
                template
                    .write_hri(black_box(s), &mut out)
                    .expect("valid serial");
                black_box(&out);
            }
        })
    });
    let cn = cn_nmpa::TraceCodeTemplate::new("8123456").expect("valid product code");
    let tails: Vec<String> = (0..N as u64)
        .map(|i| format!("{:013}", i.wrapping_mul(0x9E37_79B9) % 10_000_000_000_000))
        .collect();
    g.bench_function("trace_code_write_cn_nmpa", |b| {
        let mut out = String::with_capacity(32);
        b.iter(|| {
            for t in &tails {
                out.clear();
                cn.write(black_box(t), &mut out).expect("valid tail");
                black_box(&out);
            }
        })
    });
    g.bench_function("build_eu_fmd", |b| {
        let mut unit = UnitData {
            serial: String::new(),
            batch: batch.batch.clone(),
            expiry: batch.expiry.clone(),
            extra: Vec::new(),
        };
        let mut out = String::with_capacity(128);
        b.iter(|| {
            for s in &serials {
                unit.serial.clone_from(s);
                let code = Market::EuFmd.build(&product, &unit).expect("valid unit");
                out.clear();
                code.write_element_string(&mut out);
                black_box(&out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
