//! The Aravis frame source against Aravis' own fake GigE Vision camera on loopback
//! (Debian `aravis-tools`: `arv-fake-gv-camera-0.8`). Only with `--features aravis`.
#![cfg(feature = "aravis")]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use linectl_drivers::FrameSource;
use linectl_drivers::camera::aravis::AravisSource;

#[test]
fn frames_from_the_fake_gige_camera() {
    let fake = common::require_tool("arv-fake-gv-camera-0.8", "aravis-tools");
    let child = Command::new(fake)
        .args(["-i", "127.0.0.1", "-s", "LINECTL"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the fake camera: {e}"));
    let _g = common::ChildGuard(child);
    std::thread::sleep(Duration::from_millis(500));
    let mut src =
        AravisSource::open("127.0.0.1", Duration::from_secs(3)).unwrap_or_else(|e| panic!("{e}"));
    for unit in 1..=3 {
        let f = src
            .frame(unit)
            .unwrap_or_else(|e| panic!("unit {unit}: {e}"));
        assert_eq!(f.unit, unit);
        assert!(f.width > 0 && f.height > 0);
        assert_eq!(f.pixels.len(), (f.width * f.height) as usize);
    }
}
