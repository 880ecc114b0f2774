//! Cost of recording one unit in EPCIS: building a commissioning ObjectEvent, setting
//! its CBV 2.0 hash eventID and serialising it to JSON text, per event (criterion
//! reports the time; events/s = 1 / time). Also the hash alone, and a 24-unit event.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linectl::epcis::{CompanyPrefixLen, EventTime, IdForm, LineEvents, Sgln};
use std::hint::black_box;

fn line(form: IdForm) -> LineEvents {
    let rp = Sgln::new("4012345000054", Some("1")).unwrap_or_else(|e| panic!("{e}"));
    let bl = Sgln::new("4012345000054", None).unwrap_or_else(|e| panic!("{e}"));
    LineEvents::new(form, "04012345111118", &rp, &bl).unwrap_or_else(|e| panic!("{e}"))
}

fn bench(c: &mut Criterion) {
    let t = EventTime::new(1_764_532_800_123, 60).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("epcis");
    g.throughput(Throughput::Elements(1));
    for (name, form) in [
        ("digital_link", IdForm::DigitalLink),
        (
            "epc_urn",
            IdForm::EpcUrn {
                company_prefix_len: CompanyPrefixLen::new(7).unwrap_or_else(|e| panic!("{e}")),
            },
        ),
    ] {
        let l = line(form);
        g.bench_function(format!("commissioning_build_hash_serialize/{name}"), |b| {
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                let serial = format!("{n:012}");
                let ev = l
                    .commissioning(t, &[serial.as_str()], "LOT42", "281200")
                    .and_then(|e| e.with_hash_id())
                    .unwrap_or_else(|e| panic!("{e}"));
                black_box(serde_json::to_string(&ev.to_json()).unwrap_or_default())
            })
        });
    }
    let l = line(IdForm::DigitalLink);
    let ev = l
        .commissioning(t, &["100001"], "LOT42", "281200")
        .unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("hash_only/digital_link", |b| {
        b.iter(|| black_box(ev.hash_id().unwrap_or_default()))
    });
    let serials: Vec<String> = (0..24).map(|i| format!("S{i:05}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    g.throughput(Throughput::Elements(24));
    g.bench_function("commissioning_24_units_build_hash_serialize", |b| {
        b.iter(|| {
            let ev = l
                .commissioning(t, &refs, "LOT42", "281200")
                .and_then(|e| e.with_hash_id())
                .unwrap_or_else(|e| panic!("{e}"));
            black_box(serde_json::to_string(&ev.to_json()).unwrap_or_default())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
