//! Serial-pool speed: handing serials out from a reserved block (target ≥ 1,000,000/s),
//! the durable reservation of a block of 1,000 serials — sled commit + flush + fsync +
//! high-water mark — (target ≤ 5 ms median), and importing 1,000,000 serials into an
//! empty pool (the 10-million target, ≤ 60 s, is measured on the CLI: see the pool
//! note). Runs on a real sled store in a temporary directory on the machine's disk.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linectl::market::Market;
use linectl::pool::alloc::AllocatorConfig;
use linectl::pool::{OpenMode, Pool, SerialRecord, Source};

const GTIN: &str = "09506000134352";

fn refill(pool: &mut Pool, need: u64) {
    if pool.available(GTIN).unwrap() < need {
        pool.generate(GTIN, Market::EuFmd, need.max(500_000))
            .unwrap();
    }
}

fn bench_pool(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut pool = Pool::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
    refill(&mut pool, 1_000_000);

    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hand_out_from_reserved_block", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(200_000);
                refill(&mut pool, n + 1);
                let cfg = AllocatorConfig {
                    block_size: n + 1,
                    quantity: Some(n + 1),
                };
                let mut a = pool.allocator(GTIN, "L1", "B1", cfg).unwrap();
                black_box(a.next_serial().unwrap()); // reserves the block, not timed
                let t = Instant::now();
                for _ in 0..n {
                    black_box(a.next_serial().unwrap());
                }
                total += t.elapsed();
                a.close().unwrap();
                left -= n;
            }
            total
        })
    });

    let mut each = Vec::new();
    g.bench_function("durable_reservation_of_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            refill(&mut pool, 1000 * (iters + 1));
            let cfg = AllocatorConfig {
                block_size: 1000,
                quantity: None,
            };
            let mut a = pool.allocator(GTIN, "L1", "B1", cfg).unwrap();
            let mut h = a.next_serial().unwrap();
            for _ in 0..iters {
                for _ in 0..999 {
                    a.mark_encoded(&h).unwrap();
                    h = a.next_serial().unwrap();
                }
                a.mark_encoded(&h).unwrap();
                // The next call closes the used block and reserves the next one in one
                // durable commit.
                let t = Instant::now();
                h = a.next_serial().unwrap();
                let dt = t.elapsed();
                each.push(dt);
                total += dt;
            }
            a.close().unwrap();
            total
        })
    });
    g.finish();
    each.sort();
    if !each.is_empty() {
        let at = |q: f64| each[((each.len() - 1) as f64 * q) as usize];
        eprintln!(
            "durable reservation of 1000: {} samples, median {:?}, p90 {:?}, p99 {:?}, max {:?}",
            each.len(),
            at(0.5),
            at(0.9),
            at(0.99),
            each[each.len() - 1]
        );
    }
}

/// 1,000,000 distinct 12-character CSET 82 serials (a fixed xorshift sequence).
fn million_serials() -> Vec<String> {
    let alphabet = linectl::pool::generate::RANDOM_ALPHABET;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(1_000_000);
    while out.len() < 1_000_000 {
        let s: String = (0..12)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(alphabet[(x % alphabet.len() as u64) as usize])
            })
            .collect();
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

fn bench_import(c: &mut Criterion) {
    let serials = million_serials();
    let mut g = c.benchmark_group("pool_import");
    g.sample_size(10);
    g.throughput(Throughput::Elements(serials.len() as u64));
    g.bench_function("import_1m_into_an_empty_pool", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let mut pool = Pool::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
                let records: Vec<_> = serials
                    .iter()
                    .zip(1u64..)
                    .map(|(s, at)| {
                        Ok(SerialRecord {
                            at,
                            serial: s.clone(),
                            ai91: None,
                            ai92: None,
                        })
                    })
                    .collect();
                let source = Source {
                    header: None,
                    records: Box::new(records.into_iter()),
                };
                let t = Instant::now();
                let r = pool
                    .import(GTIN, Some(Market::EuFmd), source, "bench")
                    .unwrap();
                total += t.elapsed();
                assert_eq!(r.imported, 1_000_000);
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = bench_pool, bench_import
}
criterion_main!(benches);
