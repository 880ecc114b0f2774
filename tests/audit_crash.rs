//! Process crashes during appends: a child process (this test binary, re-run with one
//! ignored test selected) appends records and prints each acknowledged sequence number;
//! the parent kills it with SIGKILL at varying points, then checks that every
//! acknowledged record is in the trail, that `verify` reports at most a head lagging by
//! one record (a notice) and nothing inconsistent, and that reopening for writing
//! continues the chain cleanly. This covers process death, not power loss: the page
//! cache survives a SIGKILL (torn tails are covered by the tamper tests).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use linectl::audit::{Action, AuditActor, AuditTrail, Entry, Query, verify_dir};
use linectl::clock::SystemClock;

const DIR_VAR: &str = "LINECTL_AUDIT_CRASH_DIR";

#[test]
#[ignore = "child process of kill_during_appends_loses_no_acknowledged_record"]
fn crash_child_appends_until_killed() {
    let dir = std::env::var(DIR_VAR).expect("run by the parent test");
    let (t, _) = AuditTrail::open_dir(Path::new(&dir), Arc::new(SystemClock::new())).unwrap();
    for i in 0u64.. {
        let r = t
            .append(
                Entry::new(
                    AuditActor {
                        user: "op".into(),
                        role: "operator".into(),
                    },
                    Action::PackmlCommand,
                    "line:1",
                )
                .detail(format!("command {i}")),
            )
            .unwrap();
        println!("ack {}", r.seq);
    }
}

#[test]
fn kill_during_appends_loses_no_acknowledged_record() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last_acked = 0u64;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_appends_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let kill_after = 5 + round * 7;
        let mut seen = 0;
        while seen < kill_after {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(seq) = line.strip_prefix("ack ") {
                last_acked = seq.parse().unwrap();
                seen += 1;
            }
        }
        child.kill().unwrap();
        // Acks printed before the kill landed.
        for line in lines.map_while(Result::ok) {
            if let Some(seq) = line.strip_prefix("ack ") {
                last_acked = seq.parse().unwrap();
            }
        }
        child.wait().unwrap();

        let report = verify_dir(tmp.path()).unwrap();
        assert!(report.is_clean(), "round {round}: {:?}", report.problem);
        assert!(report.notices.len() <= 1, "{:?}", report.notices);
        assert!(
            report.last_seq >= last_acked,
            "round {round}: acknowledged {last_acked}, trail ends at {}",
            report.last_seq
        );
        assert!(report.last_seq <= last_acked + 1);
    }
    let (t, open) = AuditTrail::open_dir(tmp.path(), Arc::new(SystemClock::new())).unwrap();
    assert!(open.recovered_torn.is_none());
    let all = t.query(&Query::default()).unwrap();
    assert!(all.len() as u64 >= last_acked);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
    }
}
