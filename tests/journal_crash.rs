//! Crash tests of the journal with real processes. The test binary re-runs itself as a
//! child writer (the ignored `child_writer` test, selected by environment variables):
//! - SIGKILL: the child appends from several threads and prints every acknowledged seq
//!   with its payload (flushing stdout after each ack); the parent kills it at random
//!   moments, reopens the journal, and checks every acknowledged record is there with
//!   its exact payload, seqs dense, no duplicates, cursors not behind what was confirmed.
//! - strace: under `strace -f`, an `fdatasync` completes between the write of each
//!   record and the write of its acknowledgement.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use linectl::journal::{ConsumerConfig, Journal, JournalConfig, RecordType, Seq};
use rand::Rng;

const EVENT: RecordType = RecordType(3);
const ENV_CRASH_DIR: &str = "LINECTL_JOURNAL_CRASH_DIR";
const ENV_STRACE_DIR: &str = "LINECTL_JOURNAL_STRACE_DIR";

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 64 * 1024,
        max_record_bytes: 4096,
        disk_budget_bytes: 1024 * 1024 * 1024,
        // site-pull never confirms in this test, so no segment is ever deleted and
        // every acknowledged record stays checkable.
        consumers: vec![
            ConsumerConfig::holding("uplink"),
            ConsumerConfig::holding("site-pull"),
        ],
        ..JournalConfig::default()
    }
}

fn ack_line(out: &mut impl Write, seq: Seq, payload: &[u8]) {
    let mut line = format!("ACK {} ", seq.0).into_bytes();
    line.extend_from_slice(payload);
    line.push(b'\n');
    // A failed write means the parent is gone; nothing to report to.
    let _ = out.write_all(&line).and_then(|()| out.flush());
}

fn run_crash_child(dir: PathBuf) {
    let j = Journal::open(config(&dir)).expect("child open");
    let pid = std::process::id();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let j = &j;
            s.spawn(move || {
                for i in 0u64.. {
                    let make = |k: u64| {
                        let mut p = format!("{pid}:{t}:{i}:{k}:").into_bytes();
                        p.resize(
                            p.len() + ((i * 37 + k * 11) % 700) as usize,
                            b'a' + (i % 26) as u8,
                        );
                        p
                    };
                    if t == 3 {
                        // A batch of 5 records acknowledged together.
                        let recs: Vec<_> = (0..5).map(|k| (EVENT, make(k))).collect();
                        let payloads: Vec<_> = recs.iter().map(|(_, p)| p.clone()).collect();
                        let a = j.append_batch(recs).expect("child append_batch");
                        let mut out = std::io::stdout().lock();
                        for (k, p) in payloads.iter().enumerate() {
                            ack_line(&mut out, Seq(a.first.0 + k as u64), p);
                        }
                    } else {
                        let p = make(0);
                        let seq = j.append(EVENT, p.clone()).expect("child append");
                        ack_line(&mut std::io::stdout().lock(), seq, &p);
                        if t == 0 && i % 50 == 49 {
                            j.confirm("uplink", seq).expect("child confirm");
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "CONFIRMED {}", seq.0).and_then(|()| out.flush());
                        }
                    }
                }
            });
        }
    });
}

fn run_strace_child(dir: PathBuf) {
    let j = Journal::open(config(&dir)).expect("child open");
    for k in 0..3 {
        let p = format!("STRACE-MARK-{k}").into_bytes();
        let seq = j.append(EVENT, p.clone()).expect("append");
        ack_line(&mut std::io::stdout().lock(), seq, &p);
    }
}

/// Entry point of the child processes; does nothing unless started by the tests below.
#[test]
#[ignore = "child process of the crash tests, started by them"]
fn child_writer() {
    if let Some(dir) = std::env::var_os(ENV_CRASH_DIR) {
        run_crash_child(PathBuf::from(dir));
    } else if let Some(dir) = std::env::var_os(ENV_STRACE_DIR) {
        run_strace_child(PathBuf::from(dir));
    }
}

fn child_command(env: &str, dir: &Path) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "child_writer",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(env, dir)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cmd
}

#[test]
fn sigkill_at_random_moments_never_loses_an_acknowledged_record() {
    const ROUNDS: usize = 60;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut confirmed: Option<u64> = None;
    let mut rng = rand::rng();
    let (mut cuts, mut cut_bytes, mut rounds_with_acks, mut unacked_present) = (0, 0, 0, 0u64);
    let mut present_before = 0u64;

    for round in 0..ROUNDS {
        let mut child = child_command(ENV_CRASH_DIR, dir.path())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let startup_round = round % 7 == 0;
        if startup_round {
            // Right at start-up, often during recovery of the previous kill.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..15)));
        } else {
            // Mid-run: a random moment after the first acknowledgement.
            // (The test harness prints its own lines first.)
            loop {
                let line = rx
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("round {round}: child never acknowledged: {e}"));
                let is_ack = line.starts_with(b"ACK ");
                lines.push(line);
                if is_ack {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        lines.extend(rx.try_iter());

        let mut acks_this_round = 0;
        for line in lines {
            if let Some(rest) = line.strip_prefix(b"ACK ") {
                let space = rest
                    .iter()
                    .position(|b| *b == b' ')
                    .expect("ACK seq payload");
                let seq: u64 = std::str::from_utf8(&rest[..space])
                    .expect("utf8")
                    .parse()
                    .expect("seq");
                let payload = rest[space + 1..].to_vec();
                if let Some(old) = acked.insert(seq, payload.clone()) {
                    panic!(
                        "round {round}: seq {seq} acknowledged twice: {:?} and {:?}",
                        String::from_utf8_lossy(&old),
                        String::from_utf8_lossy(&payload)
                    );
                }
                acks_this_round += 1;
            } else if let Some(rest) = line.strip_prefix(b"CONFIRMED ") {
                let seq: u64 = std::str::from_utf8(rest)
                    .expect("utf8")
                    .parse()
                    .expect("seq");
                confirmed = Some(confirmed.map_or(seq, |c| c.max(seq)));
            }
        }
        if acks_this_round > 0 {
            rounds_with_acks += 1;
        }

        let j = Journal::open(config(dir.path()))
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        for cut in &j.recovery().cuts {
            cuts += 1;
            cut_bytes += cut.bytes_cut;
        }
        let recs = j.read_from(Seq(0), usize::MAX).expect("read all");
        let mut payloads = HashSet::new();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.seq, Seq(i as u64), "round {round}: seqs not dense");
            assert!(
                payloads.insert(r.payload.clone()),
                "round {round}: duplicate record at seq {}",
                r.seq
            );
        }
        assert!(
            recs.len() as u64 >= present_before,
            "round {round}: records disappeared"
        );
        present_before = recs.len() as u64;
        for (seq, p) in &acked {
            let r = recs.get(*seq as usize).unwrap_or_else(|| {
                panic!(
                    "round {round}: acknowledged seq {seq} missing (journal has {})",
                    recs.len()
                )
            });
            assert_eq!(
                &r.payload, p,
                "round {round}: payload of acknowledged seq {seq} differs"
            );
        }
        if let Some(c) = confirmed {
            assert!(
                j.cursor("uplink").expect("cursor") > Seq(c),
                "round {round}: confirmed cursor went back"
            );
        }
        unacked_present = recs.len() as u64 - acked.len() as u64;
    }
    println!(
        "crash test: {ROUNDS} SIGKILLs, {rounds_with_acks} rounds with acks, {} acknowledged records all present, \
         {unacked_present} written-but-unacknowledged records present, {cuts} tail cuts ({cut_bytes} bytes)",
        acked.len()
    );
    assert!(
        rounds_with_acks >= ROUNDS - ROUNDS.div_ceil(7),
        "too few rounds got as far as appending: {rounds_with_acks}"
    );
    assert!(
        acked.len() > 1000,
        "too few acknowledged records to mean anything: {}",
        acked.len()
    );
}

#[test]
fn strace_shows_fdatasync_between_each_record_write_and_its_ack() {
    if std::env::var_os("LINECTL_SKIP_STRACE").is_some() {
        println!("LINECTL_SKIP_STRACE set: strace ordering test skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("trace.txt");
    let jdir = dir.path().join("journal");
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("strace")
        .arg("-f")
        .args(["-s", "256", "-e", "trace=write,fdatasync,fsync", "-o"])
        .arg(&trace)
        .arg(exe)
        .args([
            "--exact",
            "child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_STRACE_DIR, &jdir)
        .stderr(Stdio::null())
        .output()
        .expect(
            "strace is needed for this test (apt-get install strace), or set LINECTL_SKIP_STRACE=1",
        );
    assert!(
        out.status.success(),
        "strace child failed: {:?}",
        out.status
    );
    let text = std::fs::read_to_string(&trace).expect("trace");
    let lines: Vec<&str> = text.lines().collect();
    let is_sync_done = |l: &str| {
        (l.contains("fdatasync(")
            || l.contains("fsync(")
            || l.contains("<... fdatasync resumed>")
            || l.contains("<... fsync resumed>"))
            && !l.contains("<unfinished")
            && l.trim_end().ends_with("= 0")
    };
    for k in 0..3 {
        let mark = format!("STRACE-MARK-{k}");
        let ack = format!("write(1, \"ACK {k} {mark}");
        let ack_at = lines
            .iter()
            .position(|l| l.contains(&ack))
            .unwrap_or_else(|| panic!("no ack write for {mark} in trace:\n{text}"));
        let rec_at = lines
            .iter()
            .rposition(|l| l.contains("write(") && l.contains(&mark) && !l.contains("write(1,"))
            .unwrap_or_else(|| panic!("no record write for {mark} in trace:\n{text}"));
        assert!(
            rec_at < ack_at,
            "{mark}: ack written before the record:\n{text}"
        );
        assert!(
            lines[rec_at..ack_at].iter().any(|l| is_sync_done(l)),
            "{mark}: no completed fdatasync between record write (line {rec_at}) and ack (line {ack_at}):\n{text}"
        );
    }
    println!("strace: fdatasync completed between each of 3 record writes and its ack");
}
