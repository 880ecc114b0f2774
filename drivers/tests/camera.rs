//! Frame sources: directory replay (PGM golden file + PNG written here), the TCP
//! frame stream client against its server, bad streams, and the factory.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Act, evil_device};
use linectl_drivers::camera::dir::DirectorySource;
use linectl_drivers::camera::stream::{FrameServer, StreamSource, encode};
use linectl_drivers::link::open_tcp;
use linectl_drivers::{ErrorKind, Frame, FrameSource, connect_frame_source};

const T: Duration = Duration::from_millis(700);

fn frame(unit: u64, w: u32, h: u32) -> Frame {
    Frame {
        unit,
        timestamp_us: 1_764_000_000_000_000 + unit,
        width: w,
        height: h,
        pixels: (0..w * h).map(|i| (i * 7 % 256) as u8).collect(),
    }
}

#[test]
fn directory_replay_pgm_and_png_in_name_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/frames/000.pgm");
    std::fs::copy(&golden, dir.path().join("000.pgm")).unwrap_or_else(|e| panic!("{e}"));
    let img = image::GrayImage::from_fn(5, 2, |x, y| image::Luma([(x * 10 + y) as u8]));
    img.save(dir.path().join("001.png"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap_or_else(|e| panic!("{e}"));
    let mut src = DirectorySource::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(src.len(), 2);
    let f0 = src.frame(0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f0.unit, f0.width, f0.height), (0, 4, 3));
    assert_eq!(
        f0.pixels,
        vec![
            0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xff
        ]
    );
    let f1 = src.frame(1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f1.width, f1.height), (5, 2));
    assert_eq!(f1.pixels, img.into_raw());
    let f2 = src.frame(2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f2.unit, f2.width), (2, 4), "replay cycles");
}

#[test]
fn directory_errors_are_config() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        DirectorySource::open(dir.path()).err().map(|e| e.kind()),
        Some(ErrorKind::Config),
        "empty"
    );
    assert_eq!(
        DirectorySource::open(dir.path().join("missing"))
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::Config)
    );
    std::fs::write(dir.path().join("0.png"), b"\x89PNG\r\n\x1a\ntruncated")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut src = DirectorySource::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let e = src
        .frame(0)
        .err()
        .unwrap_or_else(|| panic!("corrupt PNG accepted"));
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

#[test]
fn stream_client_against_server() {
    let srv = FrameServer::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let mut src =
        StreamSource::connect(&srv.local_addr().to_string(), T).unwrap_or_else(|e| panic!("{e}"));
    assert!(srv.wait_for_clients(1, Duration::from_secs(5)));
    for u in 1..=2 {
        assert_eq!(srv.publish(&frame(u, 640, 480)).ok(), Some(1));
    }
    assert_eq!(src.frame(1).ok(), Some(frame(1, 640, 480)));
    assert_eq!(src.frame(2).ok(), Some(frame(2, 640, 480)));
    // Unit 3 lost: asking for it reports a device fault and keeps unit 4.
    assert!(srv.publish(&frame(4, 8, 8)).is_ok());
    assert_eq!(
        src.frame(3).err().map(|e| e.kind()),
        Some(ErrorKind::DeviceFault)
    );
    assert_eq!(src.frame(4).map(|f| f.unit).ok(), Some(4));
    // Older frames are skipped.
    for u in [5, 6] {
        assert!(srv.publish(&frame(u, 8, 8)).is_ok());
    }
    assert_eq!(src.frame(6).map(|f| f.unit).ok(), Some(6));
    // Nothing sent: timeout.
    let t0 = Instant::now();
    assert_eq!(
        src.frame(7).err().map(|e| e.kind()),
        Some(ErrorKind::Timeout)
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Disconnect mid-frame.
    let bytes = encode(&frame(7, 100, 100)).unwrap_or_default();
    assert!(srv.publish_raw(&bytes[..5000]).is_ok());
    srv.disconnect_all();
    assert_eq!(
        src.frame(7).err().map(|e| e.kind()),
        Some(ErrorKind::Transport)
    );
}

fn source_from(acts: Vec<Act>, max_pixels: usize) -> (StreamSource, std::thread::JoinHandle<()>) {
    let (addr, h) = evil_device(acts);
    let link = open_tcp(&addr, T).unwrap_or_else(|e| panic!("{e}"));
    (
        StreamSource::over(Box::new(link), format!("evil@{addr}"), T, max_pixels),
        h,
    )
}

#[test]
fn stream_bad_bytes() {
    let good = encode(&frame(1, 4, 4)).unwrap_or_default();
    let (mut s, _h) = source_from(
        vec![Act::Drip(good.clone(), Duration::from_millis(1))],
        1 << 20,
    );
    assert_eq!(s.frame(1).map(|f| f.unit).ok(), Some(1), "drip");
    let (mut s, _h) = source_from(vec![Act::Send(b"GARBAGE!".repeat(8))], 1 << 20);
    assert_eq!(
        s.frame(1).err().map(|e| e.kind()),
        Some(ErrorKind::Protocol),
        "garbage"
    );
    let big = encode(&frame(1, 100, 100)).unwrap_or_default();
    let (mut s, _h) = source_from(vec![Act::Send(big)], 1000);
    assert_eq!(
        s.frame(1).err().map(|e| e.kind()),
        Some(ErrorKind::Protocol),
        "oversize"
    );
    let mut v2 = good.clone();
    v2[4] = 2;
    let (mut s, _h) = source_from(vec![Act::Send(v2)], 1 << 20);
    assert_eq!(
        s.frame(1).err().map(|e| e.kind()),
        Some(ErrorKind::Protocol),
        "version"
    );
    let (mut s, _h) = source_from(vec![Act::Send(good[..20].to_vec()), Act::Close], 1 << 20);
    assert_eq!(
        s.frame(1).err().map(|e| e.kind()),
        Some(ErrorKind::Transport),
        "truncated"
    );
    let (mut s, _h) = source_from(vec![Act::Sleep(Duration::from_secs(2))], 1 << 20);
    assert_eq!(
        s.frame(1).err().map(|e| e.kind()),
        Some(ErrorKind::Timeout),
        "silent"
    );
}

#[test]
fn factory_opens_sources() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/frames");
    let mut s =
        connect_frame_source("dir", &dir.to_string_lossy(), T).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.frame(9).map(|f| (f.width, f.height)).ok(), Some((4, 3)));
    let srv = FrameServer::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let mut s = connect_frame_source("tcp", &srv.local_addr().to_string(), T)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(srv.wait_for_clients(1, Duration::from_secs(5)));
    assert!(srv.publish(&frame(3, 2, 2)).is_ok());
    assert_eq!(s.frame(3).map(|f| f.unit).ok(), Some(3));
    assert_eq!(
        connect_frame_source("gige", "x", T).err().map(|e| e.kind()),
        Some(ErrorKind::Config)
    );
}
