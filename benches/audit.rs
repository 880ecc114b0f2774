//! Costs of the audit trail and of password checks, on the real filesystem (a
//! directory under Cargo's target tmp dir): one durable append (record line +
//! `fdatasync`, then the head file's write + fsync + rename + directory fsync),
//! verifying and CSV-exporting a 10 000-record trail, and one Argon2id hash with the
//! production parameters (the cost of a login or an e-signature). Appends are bound by
//! the disk's sync latency; verification by SHA-256 and JSON parsing.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linectl::audit::{Action, AuditActor, AuditTrail, Entry, read_verified, verify_dir, write_csv};
use linectl::clock::SystemClock;
use linectl::users::password::{HashParams, hash_password};

fn entry(i: u64) -> Entry {
    Entry::new(
        AuditActor {
            user: "operator1".into(),
            role: "operator".into(),
        },
        Action::ExceptionResolved,
        format!("exception:{i}"),
    )
    .detail("no read at camera 1")
    .reason("unit re-inspected, code readable, returned to line")
    .change(Some("open".into()), Some("resolved".into()))
}

fn trail_of(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let (t, _) = AuditTrail::open_dir(dir.path(), Arc::new(SystemClock::new())).expect("open");
    for i in 0..n {
        t.append(entry(i)).expect("append");
    }
    dir
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let (t, _) = AuditTrail::open_dir(dir.path(), Arc::new(SystemClock::new())).expect("open");
        let mut i = 0;
        g.throughput(Throughput::Elements(1));
        g.bench_function("append_durable", |b| {
            b.iter(|| {
                i += 1;
                t.append(entry(i)).expect("append")
            })
        });
    }
    const N: u64 = 10_000;
    let dir = trail_of(N);
    g.throughput(Throughput::Elements(N));
    g.bench_function("verify_10k", |b| {
        b.iter(|| {
            let r = verify_dir(dir.path()).expect("verify");
            assert!(r.is_clean());
        })
    });
    g.bench_function("export_csv_10k", |b| {
        b.iter(|| {
            let (recs, _) = read_verified(dir.path()).expect("read");
            let mut out = Vec::with_capacity(4 << 20);
            write_csv(&recs, &mut out).expect("csv");
            out
        })
    });
    g.finish();

    let mut g = c.benchmark_group("users");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let params = HashParams::default();
    g.bench_function("argon2id_hash_default_params", |b| {
        b.iter(|| hash_password(&params, "correct horse battery").expect("hash"))
    });
    g.finish();
}

criterion_group!(audit, benches);
criterion_main!(audit);
