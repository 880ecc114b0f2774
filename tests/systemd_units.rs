//! The systemd files under `systemd/` checked by systemd's own tools: the units pass
//! `systemd-analyze verify` (with `ExecStart=` pointed at an existing binary, since the
//! daemon is not installed here), their hardening keeps the `systemd-analyze security`
//! exposure low, and the sysusers.d and tmpfiles.d files make the account and a 0750
//! data directory in a scratch root. These tests need systemd's tools installed
//! (`apt-get install -y systemd`) and fail, never skip, without them. The units' run-time
//! behaviour (notify, watchdog) is not tested here: that needs a running systemd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNITS: [&str; 2] = ["linectl.service", "hil-sim.service"];
const INSTALL: &str = "apt-get install -y systemd";

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// Run a systemd tool, failing with the install command when it is missing.
fn run(tool: &str, args: &[&str]) -> Output {
    match Command::new(tool).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{tool} not found: install systemd's tools with `{INSTALL}`")
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An executable that surely exists, to stand in for the not-installed daemons.
fn stand_in() -> &'static str {
    ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("neither /bin/true nor /usr/bin/true exists"))
}

/// `unit` with every `Exec*=` command's program replaced by the stand-in (arguments kept,
/// so their syntax is still checked).
fn with_stand_in(unit: &str) -> String {
    unit.lines()
        .map(|line| match line.split_once('=') {
            Some((key, cmd)) if key.trim().starts_with("Exec") => {
                let args = cmd.trim().split_once(' ').map_or("", |(_, a)| a);
                format!("{}={} {}", key.trim(), stand_in(), args)
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The units copied into a fresh directory, ready for `systemd-analyze`.
fn staged(units: &[(&str, String)]) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = units
        .iter()
        .map(|(name, body)| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    (dir, paths)
}

fn shipped(name: &str) -> String {
    let path = systemd_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn verify(paths: &[String]) -> Output {
    let mut args = vec!["verify", "--man=no", "--recursive-errors=no"];
    args.extend(paths.iter().map(String::as_str));
    run("systemd-analyze", &args)
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let units: Vec<_> = UNITS
        .iter()
        .map(|n| (*n, with_stand_in(&shipped(n))))
        .collect();
    let (dir, paths) = staged(&units);
    let out = verify(&paths);
    let said = text(&out);
    let about_ours: Vec<&str> = said
        .lines()
        .filter(|l| {
            UNITS.iter().any(|u| l.contains(u)) || l.contains(&*dir.path().to_string_lossy())
        })
        .collect();
    assert!(
        about_ours.is_empty(),
        "systemd-analyze verify complained about our units:\n{}",
        about_ours.join("\n")
    );
    assert!(out.status.success(), "verify failed: {out:?}\n{said}");
}

#[test]
fn verify_does_catch_a_broken_unit() {
    // The check above can fail: a misspelt hardening key and a bad value are reported.
    let broken = with_stand_in(&shipped("linectl.service"))
        .replace("ProtectSystem=strict", "ProtectSystm=strict")
        .replace("WatchdogSec=10s", "WatchdogSec=ten seconds");
    let (_dir, paths) = staged(&[("linectl.service", broken)]);
    let said = text(&verify(&paths));
    for (why, needle) in [
        ("misspelt key", "ProtectSystm"),
        ("bad value", "ten seconds"),
    ] {
        assert!(
            said.lines()
                .any(|l| l.contains("linectl.service") && l.contains(needle)),
            "{why} not reported:\n{said}"
        );
    }
}

#[test]
fn linectl_unit_has_the_required_settings() {
    let unit = shipped("linectl.service");
    let has = |kv: &str| unit.lines().any(|l| l.trim() == kv);
    for kv in [
        "Type=notify",
        "WatchdogSec=10s",
        "Restart=on-failure",
        "ExecStart=/usr/bin/linectl run --profile /etc/linectl/line.toml --data-dir /var/lib/linectl",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=linectl",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/linectl",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyS rw",
        "DeviceAllow=char-ttyUSB rw",
        "DeviceAllow=char-usb_device rw",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(has(kv), "linectl.service lacks `{kv}`");
    }
}

/// The overall exposure `systemd-analyze security --offline=yes` gives `unit`.
fn exposure(unit: &str) -> f64 {
    let (_dir, paths) = staged(&[(unit, with_stand_in(&shipped(unit)))]);
    let out = run(
        "systemd-analyze",
        &["security", "--offline=yes", "--no-pager", &paths[0]],
    );
    let said = text(&out);
    assert!(out.status.success(), "{out:?}\n{said}");
    let marker = format!("Overall exposure level for {unit}: ");
    let line = said
        .lines()
        .find_map(|l| l.split_once(&marker).map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no exposure level in:\n{said}"));
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable exposure level {line:?}"))
}

#[test]
fn hardening_keeps_the_exposure_low() {
    // 1.6 (linectl) and 1.5 (hil-sim) with systemd 252 when written; 10 is unhardened.
    for unit in UNITS {
        let level = exposure(unit);
        assert!(level <= 2.0, "{unit}: exposure {level} > 2.0");
    }
}

#[test]
fn sysusers_and_tmpfiles_make_the_account_and_the_data_dir() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for (sub, file) in [
        ("usr/lib/sysusers.d", "linectl.sysusers.conf"),
        ("usr/lib/tmpfiles.d", "linectl.tmpfiles.conf"),
    ] {
        std::fs::create_dir_all(r.join(sub)).unwrap();
        std::fs::write(r.join(sub).join("linectl.conf"), shipped(file)).unwrap();
    }
    std::fs::create_dir_all(r.join("etc")).unwrap();
    let root_arg = format!("--root={}", r.display());

    let out = run("systemd-sysusers", &[&root_arg]);
    assert!(out.status.success(), "{out:?}\n{}", text(&out));
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(r.join("etc/group")).unwrap();
    let field = |db: &str, name: &str, i: usize| -> String {
        db.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name))
            .and_then(|f| f.get(i).map(|s| (*s).to_owned()))
            .unwrap_or_else(|| panic!("{name} not in\n{db}"))
    };
    let uid: u32 = field(&passwd, "linectl", 2).parse().unwrap();
    let gid: u32 = field(&passwd, "linectl", 3).parse().unwrap();
    let sim_uid: u32 = field(&passwd, "linectl-sim", 2).parse().unwrap();
    assert_eq!(field(&passwd, "linectl", 6), "/usr/sbin/nologin");
    assert!(uid != 0 && sim_uid != 0);
    assert!(
        field(&group, "dialout", 3)
            .split(',')
            .any(|m| m == "linectl"),
        "linectl not in dialout:\n{group}"
    );
    assert!(
        field(&group, "linectl", 3)
            .split(',')
            .any(|m| m == "linectl-sim"),
        "linectl-sim not in group linectl:\n{group}"
    );

    // tmpfiles chowns: that needs root. Say so instead of passing without checking.
    let probe = r.join("owner-probe");
    std::fs::write(&probe, b"").unwrap();
    let me = std::fs::metadata(&probe).unwrap().uid();
    assert_eq!(
        me, 0,
        "systemd-tmpfiles --root must run as root to chown the data directory"
    );
    let out = run("systemd-tmpfiles", &["--create", &root_arg]);
    assert!(out.status.success(), "{out:?}\n{}", text(&out));
    for (dir, owner) in [("var/lib/linectl", uid), ("var/lib/linectl-sim", sim_uid)] {
        let meta = std::fs::metadata(r.join(dir)).unwrap();
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750, "{dir}");
        assert_eq!((meta.uid(), meta.gid()), (owner, gid), "{dir}");
    }
}
