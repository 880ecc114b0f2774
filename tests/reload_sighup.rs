//! SIGHUP reload of a running `linectl run` (its devices unreachable, so the line waits
//! in Stopped; the reload does not depend on the line state): an edited profile's safe
//! changes (the low-water mark, the log level: info lines stop) are applied and a
//! device address change is refused with the reason, all audited with old → new; reloading the same file again proves the
//! running profile took the applied value and kept the refused one; an invalid file
//! changes nothing and its refusal is audited; the daemon keeps serving (`/metrics`
//! with the journal and upload-backlog families) and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linectl::audit::{Action, Record};

fn profile_text(low_water: u64, plc: &str, log: Option<&str>) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/line-profiles/eu-fmd-carton.toml"
    );
    std::fs::read_to_string(path)
        .expect("profile")
        .replace("127.0.0.1:5020", plc)
        .replace("127.0.0.1:9101", "127.0.0.1:1")
        .replace("127.0.0.1:7100", "127.0.0.1:1")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "http://127.0.0.1:8090/capture",
            "http://127.0.0.1:1/capture",
        )
        .replace("low_water = 5000", &format!("low_water = {low_water}"))
        + &log.map_or(String::new(), |l| format!("\n[log]\nlevel = \"{l}\"\n"))
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config_records(data: &Path) -> Vec<Record> {
    let (recs, report) =
        linectl::audit::read_verified(&linectl::audit::trail_dir(data)).expect("audit");
    assert!(report.problem.is_none(), "{:?}", report.problem);
    recs.into_iter()
        .filter(|r| r.action == Action::ConfigChanged)
        .collect()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    body
}

#[test]
fn sighup_applies_safe_changes_refuses_the_rest_and_audits_every_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("line.toml");
    let data = dir.path().join("data");
    std::fs::write(&profile, profile_text(5000, "127.0.0.1:1", None)).expect("write profile");
    let mut child = Command::new(env!("CARGO_BIN_EXE_linectl"))
        .args(["--log-json", "run", "--profile"])
        .arg(&profile)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start linectl run");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(l);
            }
        })
    };
    let logged = |needle: &str| {
        lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(needle))
    };
    let addr = wait_for("the HMI address", || {
        lines.lock().expect("lines").iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let url = v["fields"]["hmi"].as_str()?;
            Some(
                url.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string(),
            )
        })
    });

    // The ops gauges are served next to the line's families.
    let metrics = http_get(&addr, "/metrics");
    for fam in [
        "linectl_journal_bytes{",
        "linectl_upload_backlog_events{",
        "# TYPE linectl_pool_forecast_seconds gauge",
        "linectl_packml_state{",
    ] {
        assert!(metrics.contains(fam), "{fam} missing:\n{metrics}");
    }

    // A safe change and a refused one.
    std::fs::write(&profile, profile_text(1234, "10.9.9.9:502", Some("warn")))
        .expect("edit profile");
    signal(&child, "-HUP");
    let recs = wait_for("the reload's audit records", || {
        let r = config_records(&data);
        r.iter()
            .any(|r| r.detail.starts_with("reload "))
            .then_some(r)
    });
    let low = recs
        .iter()
        .find(|r| r.detail.starts_with("serials.low_water"))
        .expect("low_water record");
    assert!(low.detail.contains("applied"), "{low:?}");
    assert_eq!(
        (low.old_value.as_deref(), low.new_value.as_deref()),
        (Some("5000"), Some("1234"))
    );
    let plc = recs
        .iter()
        .find(|r| r.detail.starts_with("plc:"))
        .expect("plc record");
    assert!(
        plc.detail.contains("refused (device connections"),
        "{plc:?}"
    );
    assert!(
        plc.new_value
            .as_deref()
            .is_some_and(|v| v.contains("10.9.9.9:502"))
    );
    assert_eq!(plc.user, "linectl");
    assert_eq!(plc.reason, "SIGHUP");
    let summary = recs
        .iter()
        .find(|r| r.detail.starts_with("reload "))
        .expect("summary");
    assert_eq!(
        summary.detail,
        "reload partly applied: 2 applied, 1 refused"
    );
    let log = recs
        .iter()
        .find(|r| r.detail.starts_with("log.level"))
        .expect("log.level record");
    assert_eq!(
        (log.old_value.as_deref(), log.new_value.as_deref()),
        (Some("\"info\""), Some("\"warn\""))
    );
    wait_for("the applied log line", || {
        logged("reload: applied").then_some(())
    });
    let requested = || {
        lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains("profile reload requested"))
            .count()
    };
    assert_eq!(requested(), 1);

    // The same file again: low_water is now the running value, the PLC change is still
    // refused.
    signal(&child, "-HUP");
    let recs = wait_for("the second reload", || {
        let r = config_records(&data);
        (r.iter().filter(|r| r.detail.starts_with("reload ")).count() == 2).then_some(r)
    });
    assert_eq!(
        recs.iter()
            .filter(|r| r.detail.starts_with("serials.low_water"))
            .count(),
        1,
        "low_water was applied once"
    );
    assert_eq!(
        recs.iter().filter(|r| r.detail.starts_with("plc:")).count(),
        2
    );
    assert_eq!(
        recs.last().map(|r| r.detail.as_str()),
        Some("reload refused: 0 applied, 1 refused")
    );
    // The log level `warn` applies: the refusal (a warning) is logged again, the
    // info-level "reload requested" line is not.
    wait_for("the second refusal's warning", || {
        (lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains("reload: refused"))
            .count()
            == 2)
            .then_some(())
    });
    assert_eq!(
        requested(),
        1,
        "info lines are filtered out after the reload"
    );

    // An invalid file: nothing changes, the refusal and its problems are audited.
    std::fs::write(&profile, "[line]\nid = 5\n").expect("break profile");
    signal(&child, "-HUP");
    let recs = wait_for("the invalid reload", || {
        let r = config_records(&data);
        r.iter()
            .any(|r| {
                r.detail
                    .starts_with("reload refused: the profile is invalid")
            })
            .then_some(r)
    });
    let bad = recs.last().expect("record");
    assert!(
        bad.detail.contains("product: section is missing"),
        "{bad:?}"
    );
    assert!(
        child.try_wait().expect("wait").is_none(),
        "linectl ended on SIGHUP"
    );
    assert!(http_get(&addr, "/healthz").contains("ok"));

    signal(&child, "-TERM");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "linectl did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    assert!(
        status.success(),
        "{status}: {:?}",
        lines.lock().expect("lines")
    );
}
