//! Case station speed: one 2448×2048 frame of a 10 × 12 case layer (rendered by the
//! hil-sim case packer) decoded cell by cell and every unit checked (batch ledger
//! built from commissioning events in a real journal, already-packed lookups in a real
//! aggregation store), on one core. Target: under 500 ms. The pool's state lookup is
//! a table here (its own cost is in `benches/pool.rs`).

use std::collections::HashMap;

use criterion::{Criterion, criterion_group, criterion_main};
use hil_sim::aggregation::{Slot, render_layer};
use linectl::aggregation::check::{BatchLedger, SerialStates, check_case};
use linectl::aggregation::detect::LayerDecoder;
use linectl::aggregation::store::AggStore;
use linectl::epcis::aggregation::AggregationEvents;
use linectl::epcis::{EventTime, IdForm, LineEvents, Sgln};
use linectl::journal::{Journal, JournalConfig};
use linectl::pool::{PoolError, SerialState};
use linectl::profile::aggregation::LayoutSection;
use linectl::uplink::record::EventRecord;

struct States(HashMap<String, SerialState>);

impl SerialStates for States {
    fn state_of(&self, _gtin: &str, serial: &str) -> Result<Option<SerialState>, PoolError> {
        Ok(self.0.get(serial).copied())
    }
}

const GTIN: &str = "09506000134352";
const LOT: &str = "EU24A001";

fn layer(c: &mut Criterion) {
    let layout = LayoutSection {
        rows: 10,
        cols: 12,
        x: 0,
        y: 0,
        width: 2448,
        height: 2048,
    };
    let serials: Vec<String> = (0..120).map(|i| format!("S{i:011}")).collect();
    let slots: Vec<Slot> = serials
        .iter()
        .map(|s| Slot::Code(format!("01{GTIN}\u{1d}21{s}\u{1d}10{LOT}\u{1d}17281231")))
        .collect();
    let frame = render_layer(2448, 2048, &layout, &slots, 1).expect("layer");
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(JournalConfig {
        consumers: Vec::new(),
        ..JournalConfig::in_dir(dir.path().join("journal"))
    })
    .expect("journal");
    let site = Sgln::new("9506000000008", None).expect("sgln");
    let line = LineEvents::new(IdForm::DigitalLink, GTIN, &site, &site).expect("line");
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let ev = line
        .commissioning(
            EventTime::new(1_767_225_600_000, 0).expect("time"),
            &refs,
            LOT,
            "281231",
        )
        .and_then(|e| e.with_hash_id())
        .expect("event");
    let (kind, payload) = EventRecord::new(LOT, &ev).expect("record").to_journal();
    journal.append(kind, payload).expect("append");
    let events = AggregationEvents::new(IdForm::DigitalLink, &site, &site).expect("events");
    let states = States(
        serials
            .iter()
            .map(|s| (s.clone(), SerialState::Commissioned))
            .collect(),
    );
    let mut ledger = BatchLedger::new(GTIN, LOT, events, Box::new(states));
    ledger.refresh(&journal).expect("refresh");
    let store = AggStore::open(&dir.path().join("aggregation")).expect("store");
    let mut dec = LayerDecoder::new();
    // The frame must read completely, or the figure means nothing.
    let reads = dec
        .decode(&frame.pixels, frame.width, frame.height, &layout)
        .expect("decode");
    let check = check_case(&reads, 120, LOT, &ledger, &store).expect("check");
    assert!(check.ok(), "{:?}", check.problems);
    let mut g = c.benchmark_group("case-layer-10x12-2448x2048");
    g.sample_size(20);
    g.bench_function("decode", |b| {
        b.iter(|| dec.decode(&frame.pixels, frame.width, frame.height, &layout))
    });
    g.bench_function("decode+check", |b| {
        b.iter(|| {
            let reads = dec
                .decode(&frame.pixels, frame.width, frame.height, &layout)
                .expect("decode");
            check_case(&reads, 120, LOT, &ledger, &store).expect("check")
        })
    });
    g.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
