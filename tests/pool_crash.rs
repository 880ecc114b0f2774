//! Crash safety of the serial pool, with the real binary: `linectl pool take` is killed
//! with SIGKILL at random moments (during open and recovery, during reservations,
//! while handing out) at least 200 times. Across all runs no serial may be handed out
//! twice, every handed-out serial must end Encoded or SNInvalid (never back in the
//! pool), every Encoded serial must have been handed out, and `pool verify` must pass.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_linectl");
const GTIN: &str = "09506000134352";

fn pool(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("pool")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn sigkill_at_random_moments_never_hands_a_serial_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = pool(
        d,
        &[
            "generate", "--gtin", GTIN, "--count", "100000", "--market", "eu-fmd",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut total = 100_000usize;
    let mut rng = rand::rng();
    let mut handed: Vec<String> = Vec::new();
    let (mut killed, mut finished, mut runs) = (0u32, 0u32, 0u32);
    let started = Instant::now();
    while killed < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "crash loop too slow: {killed} kills"
        );
        runs += 1;
        let count = rng.random_range(1..=400u32).to_string();
        let block = ["1", "7", "32", "100"][rng.random_range(0..4)];
        let errlog = d.join("take.err");
        let mut refill = false;
        let mut child = Command::new(BIN)
            .args(["pool", "--data-dir"])
            .arg(d)
            .args([
                "take",
                "--gtin",
                GTIN,
                "--count",
                &count,
                "--block-size",
                block,
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&errlog).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                // A partial last line still counts as handed out.
                got.push(String::from_utf8_lossy(&line).trim_end().to_string());
                line.clear();
            }
            got
        });
        std::thread::sleep(Duration::from_micros(rng.random_range(0..100_000)));
        match child.try_wait().unwrap() {
            Some(status) => {
                let err = std::fs::read_to_string(&errlog).unwrap_or_default();
                if !status.success() && err.contains("InsufficientSerialNumbers") {
                    // A fast machine used the pool up: refilled below.
                    refill = true;
                } else {
                    assert!(
                        status.success(),
                        "take --count {count} --block-size {block} failed on its own ({status}): {err}"
                    );
                    finished += 1;
                }
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
            }
        }
        handed.extend(reader.join().unwrap());
        if refill {
            let out = pool(
                d,
                &[
                    "generate", "--gtin", GTIN, "--count", "50000", "--market", "eu-fmd",
                ],
            );
            assert!(out.status.success());
            total += 50_000;
        }
    }

    let mut seen = HashSet::new();
    for s in &handed {
        assert!(seen.insert(s.as_str()), "serial {s} handed out twice");
    }
    let verify = pool(d, &["verify"]);
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let list = pool(d, &["list", "--gtin", GTIN]);
    assert!(list.status.success());
    let states: HashMap<String, String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (s, st) = l.split_once('\t').unwrap();
            (s.to_string(), st.to_string())
        })
        .collect();
    assert_eq!(states.len(), total, "every serial in exactly one state");
    for s in &handed {
        let st = states.get(s).map(String::as_str);
        assert!(
            matches!(st, Some("Encoded" | "SNInvalid")),
            "handed-out serial {s} is {st:?}"
        );
    }
    let mut encoded = 0;
    for (s, st) in &states {
        assert_ne!(st, "Allocated", "serial {s} still Allocated after recovery");
        if st == "Encoded" {
            encoded += 1;
            assert!(
                seen.contains(s.as_str()),
                "serial {s} is Encoded but was never handed out"
            );
        }
    }
    eprintln!(
        "crash test: {runs} runs, {killed} killed, {finished} finished, {} serials handed out, {encoded} Encoded, {:.1} s",
        handed.len(),
        started.elapsed().as_secs_f64()
    );
}
