//! Upload throughput: the uplink draining a journal of commissioning events to the
//! hil-sim site server on loopback (EPCIS capture, 500 events per request, async jobs
//! polled to completion, cursor confirmed durably per batch). Target ≥ 10,000 events/s.
//! Each iteration starts a fresh journal and site server; only the drain is timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hil_sim::site::{SiteConfig, SiteServer};
use linectl::clock::SystemClock;
use linectl::epcis::{EventTime, IdForm, LineEvents, Sgln};
use linectl::journal::{ConsumerConfig, Journal, JournalConfig, RecordType};
use linectl::uplink::record::EventRecord;
use linectl::uplink::{Uplink, UplinkConfig};

const EVENTS: usize = 20_000;

fn payloads() -> Vec<(RecordType, Vec<u8>)> {
    let line = LineEvents::new(
        IdForm::DigitalLink,
        "04012345111118",
        &Sgln::new("4012345000054", Some("1")).expect("sgln"),
        &Sgln::new("4012345000054", None).expect("sgln"),
    )
    .expect("line");
    (0..EVENTS)
        .map(|i| {
            let t = EventTime::new(1_764_532_800_000 + i as i64, 60).expect("time");
            let serial = format!("{:012}", 100_000_000 + i);
            let ev = line
                .commissioning(t, &[serial.as_str()], "LOT-BENCH", "281231")
                .expect("event")
                .with_hash_id()
                .expect("hash");
            EventRecord::new("LOT-BENCH", &ev)
                .expect("record")
                .to_journal()
        })
        .collect()
}

fn drain_once(payloads: &[(RecordType, Vec<u8>)]) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(
        Journal::open(JournalConfig {
            consumers: vec![ConsumerConfig::holding("uplink")],
            ..JournalConfig::in_dir(dir.path())
        })
        .expect("journal"),
    );
    for chunk in payloads.chunks(2_000) {
        journal.append_batch(chunk.to_vec()).expect("append");
    }
    let site = SiteServer::start(SiteConfig {
        capture_limit: 500,
        ..SiteConfig::default()
    })
    .expect("site");
    let config = UplinkConfig {
        max_batch_events: 500,
        idle_ms: 1,
        ..UplinkConfig::new(format!("{}/capture", site.base_url()))
    };
    let start = Instant::now();
    let up = Uplink::start(config, journal.clone(), Arc::new(SystemClock::new())).expect("uplink");
    let end = journal.end_seq();
    while journal.cursor("uplink").expect("cursor") < end {
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = start.elapsed();
    up.stop();
    assert_eq!(site.stats().events, EVENTS);
    took
}

fn bench(c: &mut Criterion) {
    let payloads = payloads();
    let mut g = c.benchmark_group("uplink");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("drain_20k_events_to_site_server", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| drain_once(&payloads)).sum())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
