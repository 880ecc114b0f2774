//! `linectl audit verify` and `linectl audit export --csv` run as the real binary on a
//! temp data dir: records are written through the library, then the log is tampered
//! with (a byte edited, a record inserted, deleted, the last ones deleted, two
//! swapped, a torn tail) and `verify` must exit 2 naming the record; a clean trail
//! exits 0; the CSV export reads back through the `csv` crate field for field.
//! `linectl user add/list` is exercised here too, since every account change lands in
//! the trail.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use linectl::audit::{
    Action, AuditActor, AuditTrail, CsvRow, ESignature, Entry, Meaning, Query, Record,
};
use linectl::clock::VirtualClock;

const T0: u64 = 1_700_000_000_000_000;

fn linectl(args: &[&str], data_dir: &Path, stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linectl"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("LINECTL_DATA_DIR")
        .env("RUST_LOG", "warn")
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            // A command that rejects its arguments exits without reading stdin.
            match pipe.write_all(text.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.unwrap(),
            }
        }
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Five records with awkward text, one signed, one second apart.
fn write_trail(dir: &Path) -> Vec<Record> {
    let clock = VirtualClock::new(T0);
    let (t, _) = AuditTrail::open(dir, Arc::new(clock.clone())).unwrap();
    let who = |u: &str, r: &str| AuditActor {
        user: u.into(),
        role: r.into(),
    };
    let entries = vec![
        Entry::new(who("op1", "operator"), Action::Login, "session:1"),
        Entry::new(who("op1", "operator"), Action::BatchStarted, "batch:B1")
            .reason("order 4711, \"rush\"")
            .change(None, Some("GTIN 09506000134352, exp 2027-01-31".into())),
        Entry::new(who("op1", "operator"), Action::PackmlCommand, "line:1")
            .detail("hold")
            .reason("label roll change,\r\nback in 5 min"),
        Entry::new(
            who("sup1", "supervisor"),
            Action::ExceptionResolved,
            "exception:7",
        )
        .reason("Grade C → re-inspected; ok")
        .change(Some("open".into()), Some("resolved".into()))
        .signed(ESignature {
            signer: "qa1".into(),
            signer_role: "qa".into(),
            meaning: Meaning::Verification,
            time_us: T0 + 4_000_000,
        }),
        Entry::new(who("op1", "operator"), Action::Logout, "session:1"),
    ];
    let mut out = Vec::new();
    for e in entries {
        clock.advance(Duration::from_secs(1));
        out.push(t.append(e).unwrap());
    }
    out
}

fn log_path(data: &Path) -> std::path::PathBuf {
    data.join("audit").join("audit.log")
}

fn lines(data: &Path) -> Vec<String> {
    fs::read_to_string(log_path(data))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn set_lines(data: &Path, ls: &[String]) {
    fs::write(log_path(data), ls.join("\n") + "\n").unwrap();
}

/// `audit verify` must exit 2 and its stderr contain every `needle`.
fn assert_rejected(data: &Path, needles: &[&str]) {
    let out = linectl(&["audit", "verify"], data, None);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("INCONSISTENT"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

#[test]
fn a_clean_trail_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let recs = write_trail(tmp.path());
    let out = linectl(&["audit", "verify"], tmp.path(), None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("5 good records"), "{stdout}");
    assert!(stdout.contains(&recs[4].hash), "{stdout}");
    let json = linectl(&["audit", "verify", "--json"], tmp.path(), None);
    assert_eq!(json.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["records"], 5);
    assert_eq!(v["problem"], serde_json::Value::Null);
}

#[test]
fn an_edited_byte_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let path = log_path(tmp.path());
    let mut bytes = fs::read(&path).unwrap();
    // Change one digit of the GTIN in record 2.
    let at = bytes.windows(4).position(|w| w == b"0134").unwrap();
    bytes[at] = b'1';
    fs::write(&path, &bytes).unwrap();
    assert_rejected(tmp.path(), &["record 2 (line 2", "edited"]);
}

#[test]
fn an_edit_to_any_byte_of_any_record_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let path = log_path(tmp.path());
    let orig = fs::read(&path).unwrap();
    let newlines: Vec<usize> = orig
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    // Every 7th byte (the binary is slow to start; 7 is coprime with field layouts).
    for i in (0..orig.len()).step_by(7) {
        if orig[i] == b'\n' {
            continue;
        }
        let mut bytes = orig.clone();
        bytes[i] = if orig[i] == b'x' { b'y' } else { b'x' };
        fs::write(&path, &bytes).unwrap();
        let line = newlines.iter().filter(|&&n| n < i).count() + 1;
        let out = linectl(&["audit", "verify"], tmp.path(), None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "byte {i} not caught: {err}");
        assert!(err.contains(&format!("line {line}")), "byte {i}: {err}");
    }
}

#[test]
fn an_inserted_record_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let mut ls = lines(tmp.path());
    let copy = ls[1].clone();
    ls.insert(3, copy);
    set_lines(tmp.path(), &ls);
    assert_rejected(
        tmp.path(),
        &["record 2 (line 4", "where record 4 should be", "inserted"],
    );

    // A forged record with a correct hash and link, slipped in before record 3.
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let mut ls = lines(tmp.path());
    let prev: Record = serde_json::from_str(&ls[1]).unwrap();
    let forged = Record::seal(
        3,
        prev.time_us + 1,
        Entry::new(
            AuditActor {
                user: "mallory".into(),
                role: "admin".into(),
            },
            Action::ConfigChanged,
            "profile:line1",
        ),
        &prev.hash,
    );
    ls.insert(2, String::from_utf8(forged.to_line().unwrap()).unwrap());
    set_lines(tmp.path(), &ls);
    assert_rejected(
        tmp.path(),
        &["record 3 (line 4", "where record 4 should be"],
    );
}

#[test]
fn a_deleted_record_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let mut ls = lines(tmp.path());
    ls.remove(2);
    set_lines(tmp.path(), &ls);
    assert_rejected(tmp.path(), &["record 3 was deleted", "line 3"]);
}

#[test]
fn deleting_the_last_records_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let mut ls = lines(tmp.path());
    ls.pop();
    set_lines(tmp.path(), &ls);
    assert_rejected(
        tmp.path(),
        &["record 5 is missing", "records at the end were deleted"],
    );
    ls.truncate(2);
    set_lines(tmp.path(), &ls);
    assert_rejected(tmp.path(), &["record 3 is missing"]);
}

#[test]
fn reordered_records_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let mut ls = lines(tmp.path());
    ls.swap(1, 3);
    set_lines(tmp.path(), &ls);
    assert_rejected(
        tmp.path(),
        &["record 4 (line 2", "where record 2 should be"],
    );
}

#[test]
fn a_torn_tail_is_reported_then_recovered_with_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let path = log_path(tmp.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":6,\"time_us\":1700");
    fs::write(&path, &bytes).unwrap();
    assert_rejected(tmp.path(), &["torn record after record 5", "23 bytes"]);
    // Opening the trail for writing (here: adding a user) sets the tail aside and
    // records that, then the trail verifies clean.
    let add = linectl(
        &["user", "add", "olga", "--role", "operator"],
        tmp.path(),
        Some("olga-password-1\n"),
    );
    let err = text(&add.stderr);
    assert_eq!(add.status.code(), Some(0), "{err}");
    assert!(err.contains("torn record"), "{err}");
    let out = linectl(&["audit", "verify"], tmp.path(), None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (recs, _) = linectl::audit::read_verified(&tmp.path().join("audit")).unwrap();
    assert_eq!(recs[5].action, Action::TrailRecovered);
    assert!(recs[5].detail.contains("23 bytes"), "{}", recs[5].detail);
    assert_eq!(recs[6].action, Action::UserAdded);
    let saved: Vec<_> = fs::read_dir(tmp.path().join("audit"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("torn-"))
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        fs::read(saved[0].path()).unwrap(),
        b"{\"seq\":6,\"time_us\":1700"
    );
}

#[test]
fn a_missing_or_damaged_head_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let head = tmp.path().join("audit").join("head.json");
    fs::write(&head, "garbage").unwrap();
    assert_rejected(tmp.path(), &["head file is damaged"]);
    fs::remove_file(&head).unwrap();
    assert_rejected(tmp.path(), &["head file is missing"]);
}

#[test]
fn no_trail_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = linectl(&["audit", "verify"], tmp.path(), None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no audit trail"));
}

#[test]
fn csv_export_round_trips_through_the_csv_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let recs = write_trail(tmp.path());
    let out = linectl(&["audit", "export", "--csv"], tmp.path(), None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.ends_with(b"\r\n"));
    let mut rd = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<CsvRow> = rd.deserialize().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), recs.len());
    for (row, rec) in rows.iter().zip(&recs) {
        assert_eq!(row, &CsvRow::from(rec));
        assert_eq!(row.reason, rec.reason);
    }
    assert_eq!(rows[2].reason, "label roll change,\r\nback in 5 min");
    assert_eq!(rows[3].signer, "qa1");
    assert_eq!(rows[3].sign_meaning, "verification");
    assert_eq!(rows[0].time_utc, "2023-11-14T22:13:21.000000Z");

    // Filters.
    let pick = |args: &[&str]| -> Vec<u64> {
        let mut a = vec!["audit", "export", "--csv"];
        a.extend_from_slice(args);
        let out = linectl(&a, tmp.path(), None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        csv::Reader::from_reader(out.stdout.as_slice())
            .deserialize::<CsvRow>()
            .map(|r| r.unwrap().seq)
            .collect()
    };
    assert_eq!(pick(&["--user", "sup1"]), vec![4]);
    assert_eq!(pick(&["--user", "qa1"]), vec![4]);
    assert_eq!(pick(&["--action", "packml_command"]), vec![3]);
    assert_eq!(pick(&["--object", "session:"]), vec![1, 5]);
    assert_eq!(
        pick(&[
            "--from",
            "2023-11-14T22:13:22Z",
            "--to",
            "2023-11-14T22:13:24Z"
        ]),
        vec![2, 3]
    );
    assert_eq!(pick(&["--user", "nobody"]), Vec::<u64>::new());
    let bad = linectl(
        &["audit", "export", "--csv", "--action", "dance"],
        tmp.path(),
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("unknown action \"dance\""));
    let bad = linectl(
        &["audit", "export", "--csv", "--from", "yesterday"],
        tmp.path(),
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn an_inconsistent_trail_is_not_exported() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail(tmp.path());
    let mut ls = lines(tmp.path());
    ls.remove(0);
    set_lines(tmp.path(), &ls);
    let out = linectl(&["audit", "export", "--csv"], tmp.path(), None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("record 1 was deleted"));
}

#[test]
fn user_add_and_list_through_the_binary_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let add = |name: &str, role: &str, pw: &str| {
        linectl(&["user", "add", name, "--role", role], tmp.path(), Some(pw))
    };
    let out = add("alice", "admin", "alice-password-1\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = add("bob", "qa", "bob-password-12\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Rejected: duplicate, weak password, unknown role, bad name, no password.
    for (name, role, pw, needle) in [
        ("bob", "qa", "another-pass-1\n", "exists already"),
        ("carl", "qa", "short\n", "at least 10"),
        ("carl", "root", "carl-password-1\n", "root"),
        ("Carl X", "qa", "carl-password-1\n", "bad user name"),
        ("carl", "qa", "", "no password"),
    ] {
        let out = add(name, role, pw);
        assert_eq!(out.status.code(), Some(2), "{name} {role}");
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }
    let list = linectl(&["user", "list", "--json"], tmp.path(), None);
    assert_eq!(list.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![("alice", "admin"), ("bob", "qa")]);
    let plain = text(&linectl(&["user", "list"], tmp.path(), None).stdout);
    assert!(
        plain.contains("alice") && plain.contains("admin"),
        "{plain}"
    );

    // Admin actions from the console, each audited with its reason.
    let out = linectl(
        &[
            "user",
            "set-role",
            "bob",
            "--role",
            "supervisor",
            "--reason",
            "promoted",
        ],
        tmp.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = linectl(
        &["user", "disable", "alice", "--reason", "test"],
        tmp.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(2), "last admin must stay");
    assert!(text(&out.stderr).contains("last enabled administrator"));

    let (recs, report) = linectl::audit::read_verified(&tmp.path().join("audit")).unwrap();
    assert!(report.is_clean());
    let summary: Vec<_> = recs
        .iter()
        .map(|r| (r.user.as_str(), r.action.as_str(), r.object.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("console:tester", "user_added", "user:alice"),
            ("console:tester", "user_added", "user:bob"),
            ("console:tester", "role_changed", "user:bob"),
        ]
    );
    let users_json = fs::read_to_string(tmp.path().join("users/users.json")).unwrap();
    assert!(!users_json.contains("alice-password-1"));
    let q = Query::default();
    assert!(recs.iter().all(|r| q.matches(r)));
}
