//! Criterion benches: encode and decode of one message for each codec.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use linectl_drivers::Frame;
use linectl_drivers::camera::stream::{FrameDecoder, encode as encode_frame};
use linectl_drivers::link::Decoder;
use linectl_drivers::printer::PrintItem;
use linectl_drivers::printer::markem::{HostRequest, PrinterReply, ReplyDecoder, RequestDecoder};
use linectl_drivers::printer::videojet::{HostCommand, PrinterMessage, TextDecoder};
use linectl_drivers::printer::zpl::{
    DEFAULT_TEMPLATE, HostStatus, HsLineDecoder, ZplDecoder, render_label,
};

fn decode_one<D: Decoder>(d: &mut D, bytes: &[u8]) -> usize {
    let _ = d.feed(bytes);
    let mut n = 0;
    while let Ok(Some(m)) = d.decode() {
        black_box(m);
        n += 1;
    }
    n
}

fn benches(c: &mut Criterion) {
    let item = PrintItem {
        unit: 1,
        element_string: "01095060001343521728123110AB-123\u{1d}21SN00000001".into(),
        fields: vec![
            ("SERIAL".into(), "SN00000001".into()),
            ("LOT".into(), "AB-123".into()),
        ],
    };
    let label = render_label(DEFAULT_TEMPLATE, &item).unwrap_or_default();
    c.bench_function("zpl/encode_label", |b| {
        b.iter(|| render_label(DEFAULT_TEMPLATE, black_box(&item)))
    });
    c.bench_function("zpl/decode_label_device", |b| {
        b.iter(|| decode_one(&mut ZplDecoder::default(), black_box(&label)))
    });
    let hs = HostStatus {
        formats_in_buffer: 3,
        ..HostStatus::default()
    };
    let hs_bytes = hs.encode();
    c.bench_function("zpl/encode_hs", |b| b.iter(|| black_box(&hs).encode()));
    c.bench_function("zpl/decode_hs", |b| {
        b.iter(|| {
            let mut d = HsLineDecoder::default();
            let _ = d.feed(black_box(&hs_bytes));
            let l: Vec<String> = std::iter::from_fn(|| d.decode().ok().flatten()).collect();
            l.try_into()
                .ok()
                .map(|a: [String; 3]| HostStatus::parse(&a))
        })
    });

    let jda = HostCommand::JobData(item.fields.clone());
    let jda_bytes = jda.encode().unwrap_or_default();
    c.bench_function("videojet/encode_jda", |b| {
        b.iter(|| black_box(&jda).encode())
    });
    c.bench_function("videojet/decode_jda_device", |b| {
        b.iter(|| {
            decode_one(
                &mut TextDecoder::<HostCommand>::default(),
                black_box(&jda_bytes),
            )
        })
    });
    let sts = PrinterMessage::Status {
        state: 0,
        queued: 3,
        count: 123_456,
        fault_code: 0,
        fault_text: String::new(),
    }
    .encode();
    c.bench_function("videojet/decode_sts", |b| {
        b.iter(|| {
            decode_one(
                &mut TextDecoder::<PrinterMessage>::default(),
                black_box(&sts),
            )
        })
    });

    let ev =
        HostRequest::ExternalVariables(vec![(1, b"SN00000001".to_vec()), (2, b"AB-123".to_vec())]);
    let ev_bytes = ev.encode().unwrap_or_default();
    c.bench_function("markem/encode_external_variables", |b| {
        b.iter(|| black_box(&ev).encode())
    });
    c.bench_function("markem/decode_external_variables_device", |b| {
        b.iter(|| decode_one(&mut RequestDecoder::default(), black_box(&ev_bytes)))
    });
    let fs = PrinterReply::FaultStatus {
        state: 0,
        queued: 2,
        count: 99,
        faults: vec![],
    }
    .encode();
    c.bench_function("markem/decode_fault_status", |b| {
        b.iter(|| decode_one(&mut ReplyDecoder::default(), black_box(&fs)))
    });

    let frame = Frame {
        unit: 7,
        timestamp_us: 1,
        width: 1280,
        height: 1024,
        pixels: vec![128; 1280 * 1024],
    };
    let fbytes = encode_frame(&frame).unwrap_or_default();
    c.bench_function("frame_stream/encode_1280x1024", |b| {
        b.iter(|| encode_frame(black_box(&frame)))
    });
    c.bench_function("frame_stream/decode_1280x1024", |b| {
        b.iter(|| decode_one(&mut FrameDecoder::default(), black_box(&fbytes)))
    });
}

criterion_group! {
    name = codecs;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(codecs);
