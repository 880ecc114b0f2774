//! Damaged data dirs: truncated or bit-flipped sled files, a deleted snapshot, a lost
//! high-water mark, a lost store. Opening must either fail with a clear error (exit 2,
//! never a panic) or find the pool exactly as it was — never an empty or older pool
//! that would hand serials out again. Also: a second process on the same data dir.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_linectl");
const GTIN: &str = "09506000134352";
const TOTAL: u64 = 3000;
const TAKEN: u64 = 1234;

fn pool(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("pool")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Offset one past the last non-zero byte of sled's (zero-preallocated) data file.
fn data_end(db: &Path) -> usize {
    let b = std::fs::read(db).unwrap();
    b.iter().rposition(|x| *x != 0).map_or(0, |p| p + 1)
}

fn flip(db: &Path, at: usize, len: usize) {
    let mut b = std::fs::read(db).unwrap();
    for x in b.iter_mut().skip(at).take(len) {
        *x ^= 0xa5;
    }
    std::fs::write(db, b).unwrap();
}

fn truncate(db: &Path, len: usize) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
}

fn snapshots(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap.")
        })
        .collect()
}

#[test]
fn damaged_stores_are_refused_or_intact_never_empty() {
    let base = tempfile::tempdir().unwrap();
    let good = base.path().join("good");
    let out = pool(
        &good,
        &[
            "generate",
            "--gtin",
            GTIN,
            "--count",
            &TOTAL.to_string(),
            "--market",
            "eu-fmd",
        ],
    );
    assert!(out.status.success());
    let out = pool(
        &good,
        &[
            "take",
            "--gtin",
            GTIN,
            "--count",
            &TAKEN.to_string(),
            "--block-size",
            "100",
        ],
    );
    assert!(out.status.success());
    let handed: HashSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(handed.len() as u64, TAKEN);

    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "truncate data file to half",
            Box::new(|d| {
                let db = d.join("store/db");
                truncate(&db, data_end(&db) / 2)
            }),
        ),
        (
            "truncate the last 100 bytes of the log",
            Box::new(|d| {
                let db = d.join("store/db");
                truncate(&db, data_end(&db) - 100)
            }),
        ),
        (
            "flip bytes near the end of the log",
            Box::new(|d| {
                let db = d.join("store/db");
                flip(&db, data_end(&db) - 40, 16)
            }),
        ),
        (
            "flip 4 KiB inside the data",
            Box::new(|d| {
                let db = d.join("store/db");
                flip(&db, data_end(&db) / 2, 4096)
            }),
        ),
        (
            "delete the snapshot",
            Box::new(|d| {
                for s in snapshots(&d.join("store")) {
                    std::fs::remove_file(s).unwrap();
                }
            }),
        ),
        (
            "delete the snapshot and flip the log end",
            Box::new(|d| {
                for s in snapshots(&d.join("store")) {
                    std::fs::remove_file(s).unwrap();
                }
                let db = d.join("store/db");
                flip(&db, data_end(&db) - 40, 16)
            }),
        ),
        (
            "delete the high-water mark",
            Box::new(|d| std::fs::remove_file(d.join("hwm")).unwrap()),
        ),
        (
            "damage both slots of the high-water mark",
            Box::new(|d| {
                let p = d.join("hwm");
                flip(&p, 20, 4);
                flip(&p, 532, 4);
            }),
        ),
        (
            "delete the store",
            Box::new(|d| std::fs::remove_dir_all(d.join("store")).unwrap()),
        ),
        (
            "empty the store directory",
            Box::new(|d| {
                std::fs::remove_dir_all(d.join("store")).unwrap();
                std::fs::create_dir(d.join("store")).unwrap();
            }),
        ),
    ];
    let mut refused = 0;
    for (i, (name, damage)) in cases.iter().enumerate() {
        let d = base.path().join(format!("case{i}"));
        copy_dir(&good, &d);
        damage(&d);
        let st = pool(&d, &["status", "--json"]);
        let stderr = String::from_utf8_lossy(&st.stderr);
        match st.status.code() {
            Some(2) => {
                refused += 1;
                assert!(
                    stderr.contains("linectl: error:")
                        && ["serial store", "refused", "high-water mark"]
                            .iter()
                            .any(|w| stderr.contains(w)),
                    "{name}: unclear error: {stderr}"
                );
                // And it stays refused: nothing was "repaired" into an empty pool.
                let again = pool(&d, &["take", "--gtin", GTIN, "--count", "1"]);
                assert_eq!(
                    again.status.code(),
                    Some(2),
                    "{name}: second open succeeded"
                );
                assert!(again.stdout.is_empty());
            }
            Some(0) => {
                let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
                assert_eq!(v[0]["total"], TOTAL, "{name}: pool came back smaller");
                assert_eq!(
                    v[0]["states"]["Encoded"], TAKEN,
                    "{name}: Encoded serials lost"
                );
                let take = pool(&d, &["take", "--gtin", GTIN, "--count", "20"]);
                for s in String::from_utf8_lossy(&take.stdout).lines() {
                    assert!(!handed.contains(s), "{name}: serial {s} handed out again");
                }
                assert!(
                    matches!(take.status.code(), Some(0 | 2)),
                    "{name}: take crashed"
                );
            }
            other => panic!("{name}: status exited {other:?}: {stderr}"),
        }
        eprintln!(
            "{name}: {}",
            if st.status.code() == Some(2) {
                stderr.trim().to_string()
            } else {
                "intact".into()
            }
        );
    }
    assert!(refused >= 5, "only {refused} damaged stores were refused");
}

#[test]
fn a_second_process_on_the_same_data_dir_gets_a_clear_error() {
    let base = tempfile::tempdir().unwrap();
    let d = base.path();
    assert!(
        pool(
            d,
            &[
                "generate", "--gtin", GTIN, "--count", "20000", "--market", "eu-fmd"
            ]
        )
        .status
        .success()
    );
    // A long take holds the lock while it runs.
    let mut first = Command::new(BIN)
        .args(["pool", "--data-dir"])
        .arg(d)
        .args([
            "take",
            "--gtin",
            GTIN,
            "--count",
            "15000",
            "--block-size",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for its first serial: it has the lock then.
    let mut out = first.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut out, &mut byte).unwrap();
    let second = pool(d, &["status"]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(2));
    let e = String::from_utf8_lossy(&second.stderr);
    assert!(e.contains("in use by another process"), "{e}");
}
