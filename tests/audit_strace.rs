//! Proves the durability order of an audited change on the real binary with strace:
//! for `linectl user add`, the audit record is written and `fdatasync`ed, then the head
//! file is replaced (write, fsync, rename, fsync of the directory), and only then is
//! the user file replaced the same way and the success message printed. So a change
//! is never in effect without its durable audit record. Needs Debian's `strace` (the
//! CI installs it for the pool test); the test fails, not skips, without it.

use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    LogWrite,
    LogSync,
    HeadRename,
    AuditDirSync,
    UsersRename,
    UsersDirSync,
    Message,
}

fn classify(line: &str) -> Option<Ev> {
    let call = line.split('(').next()?;
    match call {
        "write" if line.contains("/audit/audit.log>") => Some(Ev::LogWrite),
        "fdatasync" if line.contains("/audit/audit.log>") => Some(Ev::LogSync),
        "rename" | "renameat" | "renameat2" if line.contains("/audit/head.json\"") => {
            Some(Ev::HeadRename)
        }
        "rename" | "renameat" | "renameat2" if line.contains("/users/users.json\"") => {
            Some(Ev::UsersRename)
        }
        "fsync" if line.contains("/audit>") => Some(Ev::AuditDirSync),
        "fsync" if line.contains("/users>") => Some(Ev::UsersDirSync),
        "write" if line.starts_with("write(2") && line.contains("\"added \"") => Some(Ev::Message),
        _ => None,
    }
}

#[test]
fn the_audit_record_is_durable_before_the_change_and_its_acknowledgement() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let trace = tmp.path().join("trace.txt");
    let mut child = Command::new("strace")
        .arg("-y")
        .args([
            "-e",
            "trace=write,fdatasync,fsync,rename,renameat,renameat2",
        ])
        .arg("-o")
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_linectl"))
        .args(["user", "add", "dora", "--role", "qa", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace must be installed (apt-get install strace)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"dora-password-1\n").unwrap();
    }
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&trace).unwrap();
    let evs: Vec<Ev> = text.lines().filter_map(classify).collect();
    // Opening a new trail writes its first head, so look after the record's write.
    let start = evs
        .iter()
        .position(|e| *e == Ev::LogWrite)
        .unwrap_or_else(|| panic!("no write to the log in:\n{text}"));
    let tail = &evs[start..];
    assert_eq!(
        tail,
        [
            Ev::LogWrite,
            Ev::LogSync,
            Ev::HeadRename,
            Ev::AuditDirSync,
            Ev::UsersRename,
            Ev::UsersDirSync,
            Ev::Message
        ],
        "trace:\n{text}"
    );
}
