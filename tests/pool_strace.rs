//! Proves the durability order of block reservations on the real binary with strace:
//! for every block, the main thread's `fsync` of sled's data file and the `pwrite` +
//! `fdatasync` of the high-water mark complete before the first serial of that block
//! is written to stdout, and no reservation happens inside a block. Needs Debian's
//! `strace` (the CI installs it); the test fails, not skips, without it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_linectl");
const GTIN: &str = "00012345678905";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    /// A pwrite64 / sync_file_range on sled's data file (any thread).
    DbWrite,
    /// fsync/fdatasync of sled's data file completed on the main thread.
    DbSync,
    /// pwrite64 of the high-water mark.
    HwmWrite,
    /// fdatasync/fsync of the high-water mark completed.
    HwmSync,
    /// A serial written to stdout.
    Out(String),
}

fn classify(call: &str, rest: &str) -> Option<Ev> {
    let on_db = rest.contains("/store/db>");
    let on_hwm = rest.contains("/hwm>");
    match call {
        "fsync" | "fdatasync" if on_db => Some(Ev::DbSync),
        "fsync" | "fdatasync" if on_hwm => Some(Ev::HwmSync),
        "pwrite64" if on_hwm => Some(Ev::HwmWrite),
        "pwrite64" | "sync_file_range" if on_db => Some(Ev::DbWrite),
        "write" if rest.starts_with("1<") => {
            let s = rest.split('"').nth(1)?.trim_end_matches("\\n").to_string();
            Some(Ev::Out(s))
        }
        _ => None,
    }
}

/// Parse `strace -f -y` output into the main thread's events in completion order
/// (an `<unfinished ...>` call counts when its `resumed` line appears), plus db writes
/// of every thread.
fn parse(trace: &str) -> Vec<Ev> {
    let mut main_pid = None;
    let mut pending: std::collections::HashMap<String, String> = Default::default();
    let mut evs = Vec::new();
    for line in trace.lines() {
        let Some((pid, body)) = line.split_once(' ') else {
            continue;
        };
        let body = body.trim_start();
        let main = *main_pid.get_or_insert_with(|| pid.to_string()) == pid;
        let (call, rest) = if let Some(r) = body.strip_prefix("<... ") {
            let call = r.split_whitespace().next().unwrap_or("");
            let Some(start) = pending.remove(&format!("{pid}/{call}")) else {
                continue;
            };
            if matches!(call, "pwrite64" | "write" | "sync_file_range") {
                continue; // counted when it started
            }
            (call.to_string(), start)
        } else {
            let Some((call, rest)) = body.split_once('(') else {
                continue;
            };
            if body.ends_with("<unfinished ...>") {
                pending.insert(format!("{pid}/{call}"), rest.to_string());
                // A write is issued when it starts; syncs count when they complete.
                if !matches!(call, "pwrite64" | "write" | "sync_file_range") {
                    continue;
                }
            }
            (call.to_string(), rest.to_string())
        };
        if let Some(ev) = classify(&call, &rest)
            && (main || ev == Ev::DbWrite)
        {
            evs.push(ev);
        }
    }
    evs
}

#[test]
fn an_fsync_lands_between_every_reservation_and_its_first_serial() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = Command::new(BIN)
        .args(["pool", "--data-dir"])
        .arg(d)
        .args([
            "generate", "--gtin", GTIN, "--count", "100", "--market", "us-dscsa",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace_path = d.join("trace.txt");
    let out = Command::new("strace")
        .args(["-f", "-y", "-s", "64", "-o"])
        .arg(&trace_path)
        .args(["-e", "trace=fsync,fdatasync,write,pwrite64,sync_file_range"])
        .arg(BIN)
        .args(["pool", "--data-dir"])
        .arg(d)
        .args(["take", "--gtin", GTIN, "--count", "50", "--block-size", "7"])
        .env("RUST_LOG", "error")
        .output()
        .expect("strace must be installed (apt-get install strace)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let taken: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(taken.len(), 50);
    let evs = parse(&std::fs::read_to_string(&trace_path).unwrap());
    let outs: Vec<usize> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Ev::Out(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(outs.len(), 50, "every serial is one write(1, ...)");
    for (n, &at) in outs.iter().enumerate() {
        assert_eq!(evs[at], Ev::Out(taken[n].clone()));
        let from = if n == 0 { 0 } else { outs[n - 1] + 1 };
        let gap = &evs[from..at];
        let hwm_writes = gap.iter().filter(|e| **e == Ev::HwmWrite).count();
        if n % 7 == 0 {
            // First serial of a block: db writes, then fsync of the db, then the mark
            // written and fdatasync'ed, and only then the serial.
            let pos = |want: &Ev, after: usize| {
                gap.iter()
                    .skip(after)
                    .position(|e| e == want)
                    .map(|p| p + after)
            };
            let hwm_w = pos(&Ev::HwmWrite, 0).unwrap_or_else(|| {
                panic!("serial {n}: no high-water mark written before it: {gap:?}")
            });
            let before_mark = &gap[..hwm_w];
            let last_db_write = before_mark
                .iter()
                .rposition(|e| *e == Ev::DbWrite)
                .unwrap_or_else(|| {
                    panic!("serial {n}: no write of the reservation before it: {gap:?}")
                });
            assert!(
                before_mark[last_db_write..].contains(&Ev::DbSync),
                "serial {n}: no fsync of the store between its last write and the mark: {gap:?}"
            );
            assert!(
                pos(&Ev::HwmSync, hwm_w).is_some(),
                "serial {n}: mark not fdatasync'ed before the serial: {gap:?}"
            );
            assert_eq!(hwm_writes, 1, "serial {n}: one reservation per block");
        } else {
            assert_eq!(
                hwm_writes, 0,
                "serial {n}: a reservation inside a block: {gap:?}"
            );
        }
    }
}
