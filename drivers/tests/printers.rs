//! Printers: golden byte transcripts checked byte-for-byte against both the driver
//! (host side) and the twin (device side); driver against twin over TCP loopback and
//! over a socat PTY pair; bad bytes from a misbehaving device.

mod common;

use std::time::{Duration, Instant};

use common::{Act, Step, evil_device, scripted_device, transcript};
use linectl_drivers::link::{Decoder, DeviceSession, Link, TwinServer, open_serial, open_tcp};
use linectl_drivers::printer::markem::{MarkemConfig, MarkemPrinter, MarkemSession};
use linectl_drivers::printer::videojet::{VideojetConfig, VideojetPrinter, VideojetSession};
use linectl_drivers::printer::zpl::{
    HostStatus, HsLineDecoder, ZebraPrinter, ZplConfig, ZplSession,
};
use linectl_drivers::printer::{PrintItem, TwinState};
use linectl_drivers::{ErrorKind, Printer, PrinterState, connect_printer};

const T: Duration = Duration::from_millis(700);

fn dm_item(unit: u64, serial: &str) -> PrintItem {
    PrintItem {
        unit,
        element_string: format!("01095060001343521728123110AB-123\u{1d}21{serial}"),
        fields: vec![],
    }
}

fn field_item(unit: u64, serial: &str) -> PrintItem {
    PrintItem {
        unit,
        element_string: String::new(),
        fields: vec![
            ("SERIAL".into(), serial.into()),
            ("LOT".into(), "L42".into()),
        ],
    }
}

/// Feed the transcript's host bytes to a twin session and check its answers byte-for-byte.
fn replay_twin<S: DeviceSession>(steps: &[Step], mut session: S, state: &TwinState) {
    let mut dec = session.decoder();
    let mut out: Vec<u8> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Host(bytes) => {
                assert!(
                    out.is_empty(),
                    "step {i}: twin answered {:?} where the transcript has none",
                    String::from_utf8_lossy(&out)
                );
                assert!(dec.feed(bytes).is_ok());
                loop {
                    match dec.decode() {
                        Ok(Some(m)) => out.extend(session.on_message(m)),
                        Ok(None) => break,
                        Err(e) => panic!("step {i}: twin could not decode the host bytes: {e}"),
                    }
                }
            }
            Step::Device(want) => {
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(want),
                    "step {i}"
                );
                assert_eq!(&out, want, "step {i}");
                out.clear();
            }
            Step::Print => {
                assert!(state.print_one().is_some(), "step {i}: nothing to print");
                out.extend(session.on_idle());
            }
        }
    }
    assert!(
        out.is_empty(),
        "twin answered {:?} after the transcript ended",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn zpl_golden_transcript_both_ends() {
    let steps = transcript("zpl/session.golden");
    let state = TwinState::default();
    replay_twin(&steps, ZplSession::new(state.clone()), &state);
    assert_eq!(
        state.lock().printed[0].fields,
        vec![(
            "DM".to_string(),
            "01095060001343521728123110AB-123\u{1d}21SN0001".to_string()
        )]
    );

    let (addr, peer) = scripted_device(steps);
    let link = open_tcp(&addr, T).unwrap_or_else(|e| panic!("{e}"));
    let mut p = ZebraPrinter::new(
        Box::new(link),
        "zebra",
        ZplConfig {
            timeout: T,
            ..ZplConfig::default()
        },
    );
    assert!(p.select_job("dm").is_ok());
    assert!(
        p.load(&[dm_item(1, "SN0001"), dm_item(2, "SN0002")])
            .is_ok()
    );
    assert_eq!(p.printed_count().ok(), Some(0));
    assert_eq!(p.printed_count().ok(), Some(1));
    assert!(p.clear().is_ok());
    assert_eq!(peer.join().ok(), Some(Ok(())));
}

#[test]
fn zpl_faulted_status_golden() {
    let steps = transcript("zpl/hs_faulted.golden");
    let [Step::Device(bytes)] = steps.as_slice() else {
        panic!("one device line expected")
    };
    let mut d = HsLineDecoder::default();
    assert!(d.feed(bytes).is_ok());
    let lines: Vec<String> = std::iter::from_fn(|| d.decode().ok().flatten()).collect();
    let lines: [String; 3] = lines.try_into().unwrap_or_else(|l| panic!("{l:?}"));
    let hs = HostStatus::parse(&lines).unwrap_or_else(|e| panic!("{e}"));
    assert!(hs.paper_out && hs.paused && hs.head_up && hs.ribbon_out);
    assert_eq!(hs.labels_remaining, 3);
    let codes: Vec<String> = hs.faults().into_iter().map(|f| f.code).collect();
    assert_eq!(codes, ["paper_out", "head_up", "ribbon_out"]);
    assert_eq!(&hs.encode(), bytes, "re-encoding gives the same bytes");
}

#[test]
fn videojet_golden_transcript_both_ends() {
    let steps = transcript("videojet/session.golden");
    let state = TwinState::default();
    state.set_jobs(&["PHARMA1"]);
    replay_twin(&steps, VideojetSession::new(state.clone()), &state);

    let (addr, peer) = scripted_device(steps);
    let link = open_tcp(&addr, T).unwrap_or_else(|e| panic!("{e}"));
    let mut p = VideojetPrinter::new(
        Box::new(link),
        "videojet",
        VideojetConfig {
            timeout: T,
            ..VideojetConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.select_job("PHARMA1").is_ok());
    assert!(
        p.load(&[field_item(1, "SN0001"), field_item(2, "SN0002")])
            .is_ok()
    );
    let st = p.status().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (st.state, st.queued, st.printed),
        (PrinterState::Ready, Some(1), 1)
    );
    assert_eq!(p.printed_count().ok(), Some(1));
    let e = p
        .select_job("NOPE")
        .err()
        .unwrap_or_else(|| panic!("unknown job accepted"));
    assert_eq!(e.kind(), ErrorKind::DeviceFault, "{e}");
    assert!(p.clear().is_ok());
    assert_eq!(peer.join().ok(), Some(Ok(())));
}

#[test]
fn markem_golden_transcript_both_ends() {
    let steps = transcript("markem/session.golden");
    let state = TwinState::default();
    replay_twin(&steps, MarkemSession::new(state.clone()), &state);
    assert_eq!(
        state.lock().printed[0].fields,
        vec![
            ("V1".to_string(), "SN0001".to_string()),
            ("V2".to_string(), "L42".to_string())
        ]
    );

    let (addr, peer) = scripted_device(steps);
    let link = open_tcp(&addr, T).unwrap_or_else(|e| panic!("{e}"));
    let mut p = MarkemPrinter::new(
        Box::new(link),
        "markem",
        MarkemConfig {
            timeout: T,
            ..MarkemConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.select_job("JOB1").is_ok());
    assert!(
        p.load(&[field_item(1, "SN0001"), field_item(2, "SN0002")])
            .is_ok()
    );
    let st = p.status().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (st.state, st.queued, st.printed),
        (PrinterState::Ready, Some(1), 1)
    );
    assert!(p.clear().is_ok());
    assert_eq!(peer.join().ok(), Some(Ok(())));
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Zebra,
    Videojet,
    Markem,
}

fn serve_tcp(kind: Kind, state: &TwinState) -> TwinServer {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let s = state.clone();
    let r = match kind {
        Kind::Zebra => TwinServer::spawn_tcp(l, move || ZplSession::new(s.clone())),
        Kind::Videojet => TwinServer::spawn_tcp(l, move || VideojetSession::new(s.clone())),
        Kind::Markem => TwinServer::spawn_tcp(l, move || MarkemSession::new(s.clone())),
    };
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn driver(kind: Kind, link: Box<dyn Link>) -> Box<dyn Printer> {
    let r: Result<Box<dyn Printer>, _> = match kind {
        Kind::Zebra => Ok(Box::new(ZebraPrinter::new(
            link,
            "zebra",
            ZplConfig {
                timeout: T,
                ..ZplConfig::default()
            },
        ))),
        Kind::Videojet => VideojetPrinter::new(
            link,
            "videojet",
            VideojetConfig {
                timeout: T,
                ..VideojetConfig::default()
            },
        )
        .map(|p| Box::new(p) as Box<dyn Printer>),
        Kind::Markem => MarkemPrinter::new(
            link,
            "markem",
            MarkemConfig {
                timeout: T,
                ..MarkemConfig::default()
            },
        )
        .map(|p| Box::new(p) as Box<dyn Printer>),
    };
    r.unwrap_or_else(|e| panic!("{kind:?}: {e}"))
}

fn wait_count(p: &mut dyn Printer, want: u64) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let n = p.printed_count().unwrap_or_else(|e| panic!("{e}"));
        if n == want {
            return;
        }
        assert!(
            n < want && Instant::now() < end,
            "printed count {n}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A full production cycle of a driver against its twin.
fn cycle(kind: Kind, p: &mut dyn Printer, state: &TwinState) {
    let job = if matches!(kind, Kind::Zebra) {
        "dm"
    } else {
        "JOB1"
    };
    assert!(p.select_job(job).is_ok());
    let items: Vec<PrintItem> = (1..=3)
        .map(|u| {
            if matches!(kind, Kind::Zebra) {
                dm_item(u, &format!("SN{u:04}"))
            } else {
                field_item(u, &format!("SN{u:04}"))
            }
        })
        .collect();
    assert!(p.load(&items).is_ok());
    let end = Instant::now() + Duration::from_secs(5);
    while state.queued() < 3 {
        assert!(Instant::now() < end, "twin did not queue 3 prints");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(state.print_one().is_some());
    assert!(state.print_one().is_some());
    wait_count(p, 2);
    let st = p.status().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((st.state, st.queued), (PrinterState::Ready, Some(1)));
    state.set_fault(1, "paper out");
    let st = p.status().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.state, PrinterState::Faulted);
    assert!(!st.faults.is_empty());
    if !matches!(kind, Kind::Zebra) {
        let e = p
            .load(&items[..1])
            .err()
            .unwrap_or_else(|| panic!("faulted printer accepted a load"));
        assert_eq!(e.kind(), ErrorKind::DeviceFault);
    }
    state.clear_faults();
    assert!(p.clear().is_ok());
    wait_count(p, 2);
    let st = p.status().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (st.state, st.queued, st.printed),
        (PrinterState::Ready, Some(0), 2)
    );
}

#[test]
fn drivers_against_twins_over_tcp() {
    for kind in [Kind::Zebra, Kind::Videojet, Kind::Markem] {
        let state = TwinState::default();
        let srv = serve_tcp(kind, &state);
        let addr = srv.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut p = driver(
            kind,
            Box::new(open_tcp(&addr, T).unwrap_or_else(|e| panic!("{e}"))),
        );
        cycle(kind, p.as_mut(), &state);
    }
}

#[test]
fn drivers_against_twins_over_socat_pty() {
    for kind in [Kind::Zebra, Kind::Videojet, Kind::Markem] {
        let pty = common::pty_pair();
        let state = TwinState::default();
        let s = state.clone();
        let _srv = match kind {
            Kind::Zebra => TwinServer::spawn_serial(&pty.b, 9600, ZplSession::new(s)),
            Kind::Videojet => TwinServer::spawn_serial(&pty.b, 9600, VideojetSession::new(s)),
            Kind::Markem => TwinServer::spawn_serial(&pty.b, 9600, MarkemSession::new(s)),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let mut p = driver(
            kind,
            Box::new(open_serial(&pty.a, 9600, T).unwrap_or_else(|e| panic!("{e}"))),
        );
        cycle(kind, p.as_mut(), &state);
    }
}

#[test]
fn factory_connects_each_kind() {
    for (kind, name) in [
        (Kind::Zebra, "zebra"),
        (Kind::Videojet, "zipher"),
        (Kind::Markem, "markem-imaje"),
    ] {
        let state = TwinState::default();
        let srv = serve_tcp(kind, &state);
        let addr = srv.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut p = connect_printer(name, &addr, None, T).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.describe().contains(&addr));
        assert_eq!(p.status().map(|s| s.state).ok(), Some(PrinterState::Ready));
    }
    let e = connect_printer("domino", "127.0.0.1:1", None, T)
        .err()
        .map(|e| e.kind());
    assert_eq!(e, Some(ErrorKind::Config));
    let e = connect_printer("zebra", "nowhere", None, T)
        .err()
        .map(|e| e.kind());
    assert_eq!(e, Some(ErrorKind::Config));
    let e = connect_printer("zebra", "/dev/does-not-exist", None, T)
        .err()
        .map(|e| e.kind());
    assert_eq!(e, Some(ErrorKind::Transport));
}

const HS_OK: &[u8] = b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n\x02001,0,0,0,1,2,6,0,00000000,0,000\x03\r\n\x021234,0\x03\r\n";

/// Run `acts` as the device; call `f` as the host; return the error kind (or None).
fn against_evil<F>(acts: Vec<Act>, f: F) -> Option<ErrorKind>
where
    F: FnOnce(&str) -> Result<(), linectl_drivers::Error>,
{
    let (addr, h) = evil_device(acts);
    let t0 = Instant::now();
    let r = f(&addr);
    assert!(
        t0.elapsed() < T * 4 + Duration::from_secs(1),
        "no answer within the timeout bound: {:?}",
        t0.elapsed()
    );
    drop(h);
    r.err().map(|e| e.kind())
}

fn zebra_count(addr: &str) -> Result<(), linectl_drivers::Error> {
    connect_printer("zebra", addr, None, T)?
        .printed_count()
        .map(drop)
}
fn videojet_connect(addr: &str) -> Result<(), linectl_drivers::Error> {
    connect_printer("videojet", addr, None, T).map(drop)
}
fn markem_connect(addr: &str) -> Result<(), linectl_drivers::Error> {
    connect_printer("markem", addr, None, T).map(drop)
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn zebra_bad_bytes() {
    use Act::*;
    assert_eq!(
        against_evil(vec![Read, Drip(HS_OK.to_vec(), MS)], zebra_count),
        None,
        "drip"
    );
    assert_eq!(
        against_evil(vec![Read, Send(b"HELLO\r\n".to_vec())], zebra_count),
        Some(ErrorKind::Protocol),
        "garbage"
    );
    assert_eq!(
        against_evil(vec![Read, Send(HS_OK[..40].to_vec()), Close], zebra_count),
        Some(ErrorKind::Transport),
        "truncated"
    );
    let mut big = vec![0x02];
    big.extend(vec![b'0'; 2000]);
    assert_eq!(
        against_evil(vec![Read, Send(big)], zebra_count),
        Some(ErrorKind::Protocol),
        "oversize"
    );
    let bad_field = HS_OK
        .to_vec()
        .iter()
        .map(|&b| if b == b'1' { b'x' } else { b })
        .collect();
    assert_eq!(
        against_evil(vec![Read, Send(bad_field)], zebra_count),
        Some(ErrorKind::Protocol),
        "bad field"
    );
    assert_eq!(
        against_evil(vec![Read, Sleep(Duration::from_secs(3))], zebra_count),
        Some(ErrorKind::Timeout),
        "silent"
    );
}

#[test]
fn videojet_bad_bytes() {
    use Act::*;
    let ok = vec![
        Read,
        Drip(b"ACK\r".to_vec(), MS),
        Read,
        Drip(b"STS|0|0|0|0||\r".to_vec(), MS),
    ];
    assert_eq!(against_evil(ok, videojet_connect), None, "drip");
    assert_eq!(
        against_evil(vec![Read, Send(b"\x01\x02zz\r".to_vec())], videojet_connect),
        Some(ErrorKind::Protocol),
        "garbage"
    );
    assert_eq!(
        against_evil(vec![Read, Send(b"AC".to_vec()), Close], videojet_connect),
        Some(ErrorKind::Transport),
        "truncated"
    );
    assert_eq!(
        against_evil(vec![Read, Send(vec![b'A'; 5000])], videojet_connect),
        Some(ErrorKind::Protocol),
        "oversize"
    );
    assert_eq!(
        against_evil(
            vec![Read, Send(b"ERR|3|faulted|\r".to_vec())],
            videojet_connect
        ),
        Some(ErrorKind::DeviceFault),
        "refused"
    );
    assert_eq!(
        against_evil(vec![Read, Sleep(Duration::from_secs(3))], videojet_connect),
        Some(ErrorKind::Timeout),
        "silent"
    );
}

#[test]
fn markem_bad_bytes() {
    use Act::*;
    let status = [0x45, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x45 ^ 0x08];
    let ok = vec![
        Read,
        Send(vec![0x06]),
        Read,
        Send(vec![0x06]),
        Read,
        Drip(status.to_vec(), MS),
    ];
    assert_eq!(against_evil(ok, markem_connect), None, "drip");
    let mut bad_sum = status;
    bad_sum[11] ^= 0x55;
    let acts = vec![
        Read,
        Send(vec![0x06]),
        Read,
        Send(vec![0x06]),
        Read,
        Send(bad_sum.to_vec()),
    ];
    assert_eq!(
        against_evil(acts, markem_connect),
        Some(ErrorKind::Protocol),
        "bad checksum"
    );
    assert_eq!(
        against_evil(vec![Read, Send(vec![0x99, 0x01])], markem_connect),
        Some(ErrorKind::Protocol),
        "garbage"
    );
    let acts = vec![
        Read,
        Send(vec![0x06]),
        Read,
        Send(vec![0x06]),
        Read,
        Send(status[..6].to_vec()),
        Close,
    ];
    assert_eq!(
        against_evil(acts, markem_connect),
        Some(ErrorKind::Transport),
        "truncated"
    );
    let acts = vec![
        Read,
        Send(vec![0x06]),
        Read,
        Send(vec![0x06]),
        Read,
        Send(vec![0x45, 0xff, 0xff]),
    ];
    assert_eq!(
        against_evil(acts, markem_connect),
        Some(ErrorKind::Protocol),
        "oversize"
    );
    let acts = vec![Read, Send(vec![0x06]), Read, Send(vec![0x15])];
    assert_eq!(
        against_evil(acts, markem_connect),
        Some(ErrorKind::DeviceFault),
        "NAK"
    );
    assert_eq!(
        against_evil(vec![Read, Sleep(Duration::from_secs(3))], markem_connect),
        Some(ErrorKind::Timeout),
        "silent"
    );
}
