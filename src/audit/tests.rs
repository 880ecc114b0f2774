//! Unit tests of the audit trail against real files in a temp directory: appends
//! chain and survive reopening; every kind of tampering is found and named; a torn tail
//! and a lagging head after a crash are reported and recovered, never silently.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::VirtualClock;

const T0: u64 = 1_700_000_000_000_000;

fn actor(user: &str) -> AuditActor {
    AuditActor {
        user: user.into(),
        role: "operator".into(),
    }
}

fn open(dir: &Path, clock: &VirtualClock) -> (AuditTrail, OpenReport) {
    AuditTrail::open_dir(dir, Arc::new(clock.clone())).unwrap()
}

/// A trail with `n` records, one second apart.
fn trail_with(n: u64) -> (tempfile::TempDir, VirtualClock) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new(T0);
    let (t, _) = open(tmp.path(), &clock);
    for i in 1..=n {
        clock.advance(Duration::from_secs(1));
        t.append(
            Entry::new(actor("alice"), Action::PackmlCommand, format!("line:{i}"))
                .detail("start")
                .reason("shift start"),
        )
        .unwrap();
    }
    (tmp, clock)
}

fn log_lines(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join(files::LOG_FILE))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    fs::write(dir.join(files::LOG_FILE), s).unwrap();
}

fn problem(dir: &Path) -> Problem {
    verify_dir(dir).unwrap().problem.expect("a problem")
}

#[test]
fn appends_chain_and_survive_reopening() {
    let (tmp, clock) = trail_with(3);
    let report = verify_dir(tmp.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 3);
    let (t, open_report) = open(tmp.path(), &clock);
    assert_eq!(open_report, OpenReport::default());
    assert_eq!(t.last().0, 3);
    let r = t
        .append(Entry::new(actor("bob"), Action::Logout, "session"))
        .unwrap();
    assert_eq!(r.seq, 4);
    assert_eq!(r.time_us, T0 + 3_000_000);
    let all = t.query(&Query::default()).unwrap();
    assert_eq!(all.len(), 4);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(all[0].prev_hash, GENESIS_HASH);
    assert!(t.verify().unwrap().is_clean());
}

#[test]
fn a_second_writer_is_refused() {
    let (tmp, clock) = trail_with(1);
    let (_t, _) = open(tmp.path(), &clock);
    let err = AuditTrail::open_dir(tmp.path(), Arc::new(clock.clone())).unwrap_err();
    assert!(matches!(err, AuditError::InUse(_)), "{err}");
}

#[test]
fn an_edited_byte_is_named() {
    let (tmp, _) = trail_with(4);
    let mut lines = log_lines(tmp.path());
    lines[2] = lines[2].replace("shift start", "shift_start");
    write_lines(tmp.path(), &lines);
    let p = problem(tmp.path());
    assert!(
        matches!(
            p,
            Problem::HashMismatch {
                seq: 3,
                line: 3,
                ..
            }
        ),
        "{p}"
    );
    assert!(p.to_string().starts_with("record 3 (line 3"), "{p}");
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_chain() {
    let (tmp, _) = trail_with(4);
    let mut lines = log_lines(tmp.path());
    let mut r: Record = serde_json::from_str(&lines[1]).unwrap();
    r.reason = "forged".into();
    r.hash = r.compute_hash();
    lines[1] = String::from_utf8(r.to_line().unwrap()).unwrap();
    write_lines(tmp.path(), &lines);
    let p = problem(tmp.path());
    assert!(matches!(p, Problem::ChainBroken { seq: 3, .. }), "{p}");
}

#[test]
fn non_canonical_json_is_named() {
    let (tmp, _) = trail_with(2);
    let mut lines = log_lines(tmp.path());
    lines[1] = lines[1].replacen("{\"seq\":2", "{ \"seq\":2", 1);
    write_lines(tmp.path(), &lines);
    let p = problem(tmp.path());
    assert!(matches!(p, Problem::NotCanonical { seq: 2, .. }), "{p}");
}

#[test]
fn deleted_inserted_and_reordered_records_are_named() {
    let (tmp, _) = trail_with(5);
    let orig = log_lines(tmp.path());

    let mut deleted = orig.clone();
    deleted.remove(2);
    write_lines(tmp.path(), &deleted);
    let p = problem(tmp.path());
    assert!(
        matches!(
            p,
            Problem::Sequence {
                expected: 3,
                found: 4,
                ..
            }
        ),
        "{p}"
    );
    assert!(p.to_string().contains("record 3 was deleted"), "{p}");

    let mut inserted = orig.clone();
    inserted.insert(2, orig[0].clone());
    write_lines(tmp.path(), &inserted);
    let p = problem(tmp.path());
    assert!(
        matches!(
            p,
            Problem::Sequence {
                expected: 3,
                found: 1,
                line: 3,
                ..
            }
        ),
        "{p}"
    );

    let mut reordered = orig.clone();
    reordered.swap(1, 2);
    write_lines(tmp.path(), &reordered);
    let p = problem(tmp.path());
    assert!(
        matches!(
            p,
            Problem::Sequence {
                expected: 2,
                found: 3,
                line: 2,
                ..
            }
        ),
        "{p}"
    );

    let mut garbage = orig.clone();
    garbage.insert(4, "hello".into());
    write_lines(tmp.path(), &garbage);
    let p = problem(tmp.path());
    assert!(
        matches!(
            p,
            Problem::Malformed {
                line: 5,
                after_seq: 4,
                ..
            }
        ),
        "{p}"
    );
}

#[test]
fn deleting_the_last_records_is_named() {
    let (tmp, clock) = trail_with(5);
    let mut lines = log_lines(tmp.path());
    lines.truncate(3);
    write_lines(tmp.path(), &lines);
    let p = problem(tmp.path());
    assert_eq!(
        p,
        Problem::Truncated {
            missing_from: 4,
            head_seq: 5,
            last_seq: 3
        }
    );
    // The writer refuses such a trail.
    let err = AuditTrail::open_dir(tmp.path(), Arc::new(clock)).unwrap_err();
    assert!(matches!(err, AuditError::Integrity { .. }), "{err}");
    // Emptying the log entirely is the same; deleting it is named too.
    fs::write(tmp.path().join(files::LOG_FILE), "").unwrap();
    assert!(matches!(
        problem(tmp.path()),
        Problem::Truncated {
            missing_from: 1,
            ..
        }
    ));
    fs::remove_file(tmp.path().join(files::LOG_FILE)).unwrap();
    assert_eq!(problem(tmp.path()), Problem::LogMissing { head_seq: 5 });
}

#[test]
fn a_replaced_tail_and_a_bad_head_are_named() {
    let (tmp, _) = trail_with(3);
    let lines = log_lines(tmp.path());
    // Rewrite the last record with a valid hash: the head still knows the old one.
    let mut r: Record = serde_json::from_str(&lines[2]).unwrap();
    r.detail = "stop".into();
    r.hash = r.compute_hash();
    let mut forged = lines.clone();
    forged[2] = String::from_utf8(r.to_line().unwrap()).unwrap();
    write_lines(tmp.path(), &forged);
    assert!(matches!(
        problem(tmp.path()),
        Problem::HeadMismatch { seq: 3, .. }
    ));
    write_lines(tmp.path(), &lines);
    assert!(verify_dir(tmp.path()).unwrap().is_clean());

    fs::write(tmp.path().join(files::HEAD_FILE), "{").unwrap();
    assert!(matches!(problem(tmp.path()), Problem::HeadCorrupt { .. }));
    fs::remove_file(tmp.path().join(files::HEAD_FILE)).unwrap();
    assert_eq!(problem(tmp.path()), Problem::HeadMissing { last_seq: 3 });
    files::write_head(
        tmp.path(),
        &Head {
            seq: 1,
            hash: serde_json::from_str::<Record>(&lines[0]).unwrap().hash,
        },
    )
    .unwrap();
    assert!(matches!(
        problem(tmp.path()),
        Problem::HeadBehind {
            first_unheaded: 2,
            ..
        }
    ));
}

#[test]
fn a_torn_tail_is_reported_then_set_aside_and_recorded() {
    let (tmp, clock) = trail_with(3);
    let path = tmp.path().join(files::LOG_FILE);
    let clean_len = fs::metadata(&path).unwrap().len();
    let mut data = fs::read(&path).unwrap();
    data.extend_from_slice(b"{\"seq\":4,\"time_us\":17");
    fs::write(&path, &data).unwrap();

    let report = verify_dir(tmp.path()).unwrap();
    assert_eq!(
        report.problem,
        Some(Problem::TornTail {
            after_seq: 3,
            offset: clean_len,
            len: 21
        })
    );
    assert_eq!(report.records, 3);

    let (t, open_report) = open(tmp.path(), &clock);
    let rec = open_report.recovered_torn.expect("recovery reported");
    assert_eq!(rec.offset, clean_len);
    assert_eq!(rec.recorded_as, 4);
    assert_eq!(
        fs::read(&rec.saved_to).unwrap(),
        b"{\"seq\":4,\"time_us\":17"
    );
    let all = t.query(&Query::default()).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].action, Action::TrailRecovered);
    assert!(all[3].detail.contains("21 bytes"), "{}", all[3].detail);
    drop(t);
    assert!(verify_dir(tmp.path()).unwrap().is_clean());
}

#[test]
fn a_head_one_behind_is_a_notice_and_is_repaired() {
    let (tmp, clock) = trail_with(3);
    let lines = log_lines(tmp.path());
    let second: Record = serde_json::from_str(&lines[1]).unwrap();
    files::write_head(
        tmp.path(),
        &Head {
            seq: 2,
            hash: second.hash,
        },
    )
    .unwrap();
    let report = verify_dir(tmp.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.notices.len(), 1, "{:?}", report.notices);
    let (_t, open_report) = open(tmp.path(), &clock);
    assert!(open_report.head_repaired);
    assert!(verify_dir(tmp.path()).unwrap().notices.is_empty());
}

#[test]
fn a_new_trail_without_head_is_clean_and_a_head_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(verify_dir(tmp.path()).unwrap().is_clean());
    let clock = VirtualClock::new(T0);
    let (t, _) = open(tmp.path(), &clock);
    drop(t);
    assert_eq!(
        files::read_head(tmp.path()).unwrap(),
        files::HeadState::Valid(Head {
            seq: 0,
            hash: GENESIS_HASH.into()
        })
    );
}

#[test]
fn wall_clock_stepping_back_is_a_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, _) = open(tmp.path(), &VirtualClock::new(T0));
    t.append(Entry::new(actor("a"), Action::Login, "session"))
        .unwrap();
    drop(t);
    let (t, _) = open(tmp.path(), &VirtualClock::new(T0 - 5_000_000));
    t.append(Entry::new(actor("a"), Action::Logout, "session"))
        .unwrap();
    let report = t.verify().unwrap();
    assert!(report.is_clean());
    assert!(
        report.notices[0].contains("record 2"),
        "{:?}",
        report.notices
    );
}

#[test]
fn a_signature_is_stored_and_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, _) = open(tmp.path(), &VirtualClock::new(T0));
    let sig = ESignature {
        signer: "bob".into(),
        signer_role: "qa".into(),
        meaning: Meaning::Approval,
        time_us: T0,
    };
    t.append(
        Entry::new(actor("alice"), Action::ExceptionResolved, "exception:9")
            .reason("relabelled")
            .signed(sig.clone()),
    )
    .unwrap();
    let all = t.query(&Query::default()).unwrap();
    assert_eq!(all[0].signature, Some(sig));
}

#[test]
fn a_reader_racing_a_live_writer_sees_a_consistent_trail() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new(T0);
    let (t, _) = open(tmp.path(), &clock);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..300 {
                t.append(Entry::new(
                    actor("w"),
                    Action::PackmlCommand,
                    format!("n:{i}"),
                ))
                .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut checks = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || checks == 0 {
            let r = verify_dir(tmp.path()).unwrap();
            assert!(r.is_clean(), "after {} records: {:?}", r.records, r.problem);
            checks += 1;
        }
    });
    assert_eq!(verify_dir(tmp.path()).unwrap().records, 300);
}

#[test]
fn an_oversized_record_is_refused_and_the_trail_stays_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, _) = open(tmp.path(), &VirtualClock::new(T0));
    let err = t
        .append(Entry::new(actor("a"), Action::ConfigChanged, "x").detail("y".repeat(70_000)))
        .unwrap_err();
    assert!(matches!(err, AuditError::TooLarge { .. }), "{err}");
    let r = t
        .append(Entry::new(actor("a"), Action::ConfigChanged, "x"))
        .unwrap();
    assert_eq!(r.seq, 1);
    assert!(t.verify().unwrap().is_clean());
}
