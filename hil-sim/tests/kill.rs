//! Crash safety of the event path with the line running: the simulated line with
//! linectl in it runs as a child process (`hil-sim run --realtime`) uploading to a site
//! server in this test process; the child is killed with SIGKILL at seeded random
//! moments and restarted on the same data dir, then a last run finishes. The site server
//! must hold exactly the commissioning events the journal holds: none missing, none
//! twice.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use linectl::journal::{ConsumerConfig, Journal, JournalConfig};
use linectl::uplink::record::EventRecord;

fn run_cmd(dir: &std::path::Path, url: &str, units: u64, seed: u64) -> Command {
    let profile =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../line-profiles/eu-fmd-carton.toml");
    let mut c = Command::new(env!("CARGO_BIN_EXE_hil-sim"));
    c.arg("run")
        .arg("--profile")
        .arg(profile)
        .args([
            "--realtime",
            "--rate",
            "1200",
            "--defects",
            "0.05",
            "--quiet",
        ])
        .args(["--status", "127.0.0.1:0", "--site-url", url])
        .arg("--units")
        .arg(units.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(stderr_file(dir));
    c
}

/// Where a run's stderr goes: a file in the data dir (appended, so every run of a test is
/// kept; removed with the temporary dir), shown by [`stderr_of`] when a run fails.
fn stderr_path(dir: &std::path::Path) -> PathBuf {
    dir.join("hil-sim-stderr.log")
}

fn stderr_file(dir: &std::path::Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_path(dir))
        .map(Stdio::from)
        .unwrap_or_else(|e| panic!("stderr log for {}: {e}", dir.display()))
}

/// The runs' stderr so far, for a failure message.
fn stderr_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(stderr_path(dir)).unwrap_or_else(|e| format!("(no stderr: {e})"))
}

#[test]
fn sigkill_during_uploading_runs_loses_and_duplicates_no_event() {
    let site = hil_sim::site::SiteServer::start(hil_sim::site::SiteConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}/capture", site.addr());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Seeded kill moments between 0.8 and 3 s after the start.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..6u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(800 + x % 2200);
        let mut child = run_cmd(dir.path(), &url, 100_000, round + 1)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start hil-sim: {e}"));
        std::thread::sleep(delay);
        child.kill().unwrap_or_else(|e| panic!("{e}")); // SIGKILL
        let _ = child.wait();
    }
    let status = run_cmd(dir.path(), &url, 120, 99)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.success(),
        "the last run failed: {status}\n{}",
        stderr_of(dir.path())
    );
    // What the journal holds after all the crashes.
    let journal = Journal::open(JournalConfig {
        consumers: vec![ConsumerConfig::holding("uplink")],
        ..JournalConfig::in_dir(dir.path().join("journal"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut events = 0usize;
    let mut commissioned: Vec<String> = Vec::new();
    let mut from = journal.first_seq();
    loop {
        let recs = journal
            .read_from(from, 10_000)
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = recs.last() else { break };
        from = last.seq.next();
        for r in &recs {
            let ev = EventRecord::decode(r.seq, &r.payload).unwrap_or_else(|e| panic!("{e}"));
            events += 1;
            if ev.event.get("bizStep").and_then(|v| v.as_str()) == Some("commissioning") {
                for epc in ev
                    .event
                    .get("epcList")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = epc.as_str() {
                        commissioned.push(s.to_string());
                    }
                }
            }
        }
    }
    drop(journal);
    assert!(
        commissioned.len() > 100,
        "too little ran: {}",
        commissioned.len()
    );
    let t0 = Instant::now();
    while site.stats().events < events && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = site.stats();
    assert_eq!(
        site.missing(&commissioned),
        0,
        "commissioned serials missing: {st:?}"
    );
    assert_eq!(st.commissioned, commissioned.len(), "{st:?}");
    assert_eq!(st.events, events, "every journaled event held once: {st:?}");
}

fn journal_event_ids(dir: &std::path::Path) -> Vec<String> {
    let journal = Journal::open(JournalConfig {
        consumers: vec![ConsumerConfig::holding("uplink")],
        ..JournalConfig::in_dir(dir.join("journal"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut ids = Vec::new();
    let mut from = journal.first_seq();
    loop {
        let recs = journal
            .read_from(from, 10_000)
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = recs.last() else { break };
        from = last.seq.next();
        for r in &recs {
            let ev = EventRecord::decode(r.seq, &r.payload).unwrap_or_else(|e| panic!("{e}"));
            if let Some(id) = ev.event.get("eventID").and_then(|v| v.as_str()) {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

#[test]
fn site_server_down_for_most_of_a_run_gets_everything_afterwards_in_order() {
    let site = hil_sim::site::SiteServer::start(hil_sim::site::SiteConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    site.set_outage(hil_sim::site::Outage::Refuse);
    let url = format!("http://{}/capture", site.addr());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // 240 units at 1,200 a minute: 12 s of line, the site server down for the first 10.
    let mut child = run_cmd(dir.path(), &url, 240, 7)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start hil-sim: {e}"));
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(site.stats().events, 0, "the site server was down");
    site.set_outage(hil_sim::site::Outage::None);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!(
                "the run did not finish after the outage\n{}",
                stderr_of(dir.path())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}\n{}", stderr_of(dir.path()));
    let ids = journal_event_ids(dir.path());
    // One event per unit that carried a serial, and one per batch of codes never
    // applied. On a loaded machine the printer can fall behind the PLC: a unit that
    // passes the printer before its code arrives is rejected with no serial, so it has
    // no event of its own, and the line holds on the count drift. Most units run.
    assert!(ids.len() > 120, "{} events journaled", ids.len());
    assert_eq!(
        site.event_ids(),
        ids,
        "everything delivered once, in journal order"
    );
}
