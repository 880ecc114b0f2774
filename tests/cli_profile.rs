//! `linectl profile check`, run as the built binary: an OK line per valid file on
//! stdout, every problem on stderr, exit status 2 when any file has a problem.

use std::path::Path;
use std::process::{Command, Output};

fn check(files: &[&Path], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linectl"));
    cmd.args(["profile", "check"]).args(files);
    // Overrides from the test's own environment must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("LINECTL__") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run linectl")
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("line-profiles")
        .join(name)
}

#[test]
fn examples_check_ok() {
    let files = [
        example("eu-fmd-carton.toml"),
        example("us-dscsa-bottle.toml"),
        example("ru-crypto-carton.toml"),
        example("cn-nmpa-carton.toml"),
    ];
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = check(&refs, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    for (line, file) in stdout.lines().zip(&files) {
        assert!(
            line.starts_with(&format!("{}: OK: line ", file.display())),
            "{line}"
        );
    }
    assert!(
        stdout.contains("200 units/min, verdict deadline 770.0 ms"),
        "{stdout}"
    );
}

#[test]
fn every_problem_of_every_file_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("eu-fmd-carton.toml")).unwrap();
    let bad = text
        .replace("gtin = \"09506000134352\"", "gtin = \"09506000134353\"")
        .replace("decode_deadline_ms = 60", "decode_deadline_ms = 900")
        .replace("[hmi]\n", "[hmi]\nport = 1\n");
    assert_ne!(bad, text);
    let bad_path = dir.path().join("bad.toml");
    std::fs::write(&bad_path, bad).unwrap();
    let good = example("us-dscsa-bottle.toml");
    let out = check(&[&bad_path, &good], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = bad_path.display();
    for want in [
        format!("{f}: product.gtin: check digit wrong (expected 2)"),
        format!(
            "{f}: verification.decode_deadline_ms: 900 ms must be below the verdict deadline 770.0 ms"
        ),
        format!("{f}: hmi.port: unknown key"),
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&want)),
            "missing `{want}` in\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    // The good file still gets its OK line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{}: OK:", good.display())),
        "{stdout}"
    );
}

#[test]
fn env_override_reaches_the_check() {
    let good = example("us-dscsa-bottle.toml");
    let out = check(&[&good], &[("LINECTL__PRINTER__ADDRESS", "127.0.0.1:9200")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9200"));
    let out = check(&[&good], &[("LINECTL__PRINTER__ADDRESS", "printer")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("printer.address"));
}

#[test]
fn missing_file_is_reported() {
    let out = check(&[Path::new("/nonexistent/line.toml")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/line.toml: cannot read"));
}
