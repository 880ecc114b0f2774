//! Serial-pool speed: handing serials out from a reserved block (target ≥ 1,000,000/s)
//! and the durable reservation of a block of 1,000 serials — sled commit + flush +
//! fsync + high-water mark — (target ≤ 5 ms median). Runs on a real sled store in a
//! temporary directory on the machine's disk.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linectl::market::Market;
use linectl::pool::alloc::AllocatorConfig;
use linectl::pool::{OpenMode, Pool};

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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = bench_pool
}
criterion_main!(benches);
