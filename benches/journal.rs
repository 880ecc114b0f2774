//! Durable append throughput and ack latency of the journal with group commit, on the
//! real filesystem (a directory under Cargo's target tmp dir, not tmpfs). Three ways to
//! append 300-byte records: 8 threads of blocking `append` (at most 8 records per
//! fdatasync), 8 threads each keeping 256 tickets in flight, and `append_batch` of 256.
//! Before the criterion groups, fixed runs print p50/p99 ack latency (submit to
//! durable-ack callback) and events/s with 64 and 256 records in flight per thread,
//! and for blocking appends. With group commit, throughput is about (records in flight)
//! / (fdatasync latency), so the figures move with the disk's fdatasync latency.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use linectl::journal::{ConsumerConfig, Journal, JournalConfig, RecordType};

const EVENT: RecordType = RecordType(1);
const RECORD: usize = 300;
const THREADS: u64 = 8;

fn open() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let cfg = JournalConfig {
        dir: dir.path().to_path_buf(),
        segment_bytes: 64 * 1024 * 1024,
        disk_budget_bytes: 64 * 1024 * 1024 * 1024,
        consumers: vec![ConsumerConfig::holding("uplink")],
        ..JournalConfig::default()
    };
    let j = Journal::open(cfg).expect("open");
    (dir, j)
}

fn payload() -> Vec<u8> {
    vec![b'e'; RECORD]
}

/// `n` appends from THREADS threads, each keeping `window` tickets in flight.
fn pipelined(j: &Journal, n: u64, window: usize) {
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut inflight = std::collections::VecDeque::with_capacity(window);
                for _ in 0..n / THREADS {
                    if inflight.len() == window
                        && let Some(t) = inflight.pop_front()
                    {
                        linectl::journal::Ticket::wait(t).expect("ack");
                    }
                    inflight.push_back(j.append_ticket(EVENT, payload()).expect("queue"));
                }
                for t in inflight {
                    t.wait().expect("ack");
                }
            });
        }
    });
}

fn blocking(j: &Journal, n: u64) {
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..n / THREADS {
                    j.append(EVENT, payload()).expect("append");
                }
            });
        }
    });
}

/// Ack latency of every record (submit → durable callback) in a fixed pipelined run
/// with `window` records in flight per thread.
fn latency_report(window: usize) {
    let (_dir, j) = open();
    let total: u64 = 200_000;
    let lat = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let lat = lat.clone();
            let j = &j;
            s.spawn(move || {
                let (tx, rx) = crossbeam_channel::unbounded::<Duration>();
                let mut inflight = 0;
                let mut mine = Vec::with_capacity((total / THREADS) as usize);
                for _ in 0..total / THREADS {
                    if inflight == window {
                        mine.push(rx.recv().expect("ack"));
                        inflight -= 1;
                    }
                    let t0 = Instant::now();
                    let tx = tx.clone();
                    j.append_with(EVENT, payload(), move |r| {
                        r.expect("durable");
                        let _ = tx.send(t0.elapsed());
                    })
                    .expect("queue");
                    inflight += 1;
                }
                for _ in 0..inflight {
                    mine.push(rx.recv().expect("ack"));
                }
                lat.lock().expect("lat").extend(mine);
            });
        }
    });
    let elapsed = start.elapsed();
    let mut l = lat.lock().expect("lat").clone();
    l.sort_unstable();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    println!(
        "journal latency run: {total} x {RECORD} B from {THREADS} threads, {window} in flight each: \
         {:.0} events/s, ack latency p50 {:?} p99 {:?} max {:?}",
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        l[l.len() - 1]
    );
}

/// Ack latency of blocking appends (8 in flight in all).
fn blocking_latency_report() {
    let (_dir, j) = open();
    let n = 8_000u64;
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let lat = lat.clone();
            let j = &j;
            s.spawn(move || {
                let mut mine = Vec::new();
                for _ in 0..n / THREADS {
                    let t0 = Instant::now();
                    j.append(EVENT, payload()).expect("append");
                    mine.push(t0.elapsed());
                }
                lat.lock().expect("lat").extend(mine);
            });
        }
    });
    let elapsed = start.elapsed();
    let mut l = lat.lock().expect("lat").clone();
    l.sort_unstable();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    println!(
        "journal latency run: {n} x {RECORD} B blocking append from {THREADS} threads: \
         {:.0} events/s, ack latency p50 {:?} p99 {:?}",
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
}

fn bench_append(c: &mut Criterion) {
    let (_dir, j) = open();
    let mut g = c.benchmark_group("journal_append_300B");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("blocking", "8_threads"), |b| {
        b.iter_custom(|iters| {
            let n = iters.max(THREADS) / THREADS * THREADS;
            let t = Instant::now();
            blocking(&j, n);
            t.elapsed().mul_f64(iters as f64 / n as f64)
        })
    });
    g.bench_function(
        BenchmarkId::new("tickets", "8_threads_x256_in_flight"),
        |b| {
            b.iter_custom(|iters| {
                let n = iters.max(THREADS) / THREADS * THREADS;
                let t = Instant::now();
                pipelined(&j, n, 256);
                t.elapsed().mul_f64(iters as f64 / n as f64)
            })
        },
    );
    g.bench_function(BenchmarkId::new("append_batch", "256"), |b| {
        b.iter_custom(|iters| {
            let batches = iters.div_ceil(256).max(1);
            let t = Instant::now();
            for _ in 0..batches {
                j.append_batch((0..256).map(|_| (EVENT, payload())).collect())
                    .expect("batch");
            }
            t.elapsed().mul_f64(iters as f64 / (batches * 256) as f64)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_append);

fn main() {
    latency_report(64);
    latency_report(256);
    blocking_latency_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
