//! `linectl gs1 parse` and `linectl gs1 build`, run as the built binary: JSON on
//! stdout, exit status 2 with the error on stderr and nothing on stdout when rejected.

use std::process::{Command, Output};

use serde_json::{Value, json};

fn linectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linectl"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run linectl")
}

fn ok_json(args: &[&str]) -> Value {
    let out = linectl(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[track_caller]
fn rejected(args: &[&str], stderr_part: &str) {
    let out = linectl(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(stderr_part),
        "stderr `{err}` should contain `{stderr_part}`"
    );
}

#[test]
fn parse_prints_every_form() {
    let expected = json!({
        "elements": [
            {"ai": "01", "value": "09506000134352"},
            {"ai": "17", "value": "281231"},
            {"ai": "10", "value": "LOT42"},
            {"ai": "21", "value": "ABC"}
        ],
        "hri": "(01)09506000134352(17)281231(10)LOT42(21)ABC",
        "element_string": "01095060001343521728123110LOT42\u{1d}21ABC",
        "digital_link": "https://id.gs1.org/01/09506000134352/10/LOT42/21/ABC?17=281231"
    });
    // The same code in three syntaxes.
    for input in [
        "(01)09506000134352(17)281231(10)LOT42(21)ABC",
        "01095060001343521728123110LOT42\u{1d}21ABC",
        "]d201095060001343521728123110LOT42\u{1d}21ABC",
    ] {
        assert_eq!(ok_json(&["gs1", "parse", input]), expected, "{input}");
    }
    // From a Digital Link URI the elements come in input order (path, then query).
    let mut dl_expected = expected.clone();
    dl_expected["elements"] = json!([
        {"ai": "01", "value": "09506000134352"},
        {"ai": "10", "value": "LOT42"},
        {"ai": "21", "value": "ABC"},
        {"ai": "17", "value": "281231"}
    ]);
    let dl = "https://id.gs1.org/01/09506000134352/10/LOT42/21/ABC?17=281231";
    assert_eq!(ok_json(&["gs1", "parse", dl]), dl_expected);
}

#[test]
fn parse_rejects_invalid_input() {
    rejected(&["gs1", "parse", "(01)09506000134353(21)ABC"], "AI (01)");
    rejected(&["gs1", "parse", "hello"], "rejected");
    rejected(&["gs1", "parse", "(17)281231"], "AI (17)");
}

#[test]
fn build_eu_code_with_nhrn() {
    let v = ok_json(&[
        "gs1",
        "build",
        "--market",
        "eu-fmd",
        "--gtin",
        "09506000134352",
        "--serial",
        "X7K2P9",
        "--batch",
        "L1",
        "--expiry",
        "281231",
        "--ai",
        "710=01234562",
    ]);
    assert_eq!(
        v["hri"],
        "(01)09506000134352(17)281231(10)L1(710)01234562(21)X7K2P9"
    );
    assert_eq!(
        v["element_string"],
        "01095060001343521728123110L1\u{1d}71001234562\u{1d}21X7K2P9"
    );
    assert_eq!(
        v["digital_link"],
        "https://id.gs1.org/01/09506000134352/10/L1/21/X7K2P9?17=281231&710=01234562"
    );
    assert_eq!(v["elements"].as_array().map(Vec::len), Some(5));
}

#[test]
fn build_russian_code_with_operator_tail() {
    let crypto = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr";
    let v = ok_json(&[
        "gs1",
        "build",
        "--market",
        "ru-crypto",
        "--gtin",
        "04601234567893",
        "--serial",
        "ABCDEFGHIJKLM",
        "--ai",
        "91=EE07",
        "--ai",
        &format!("92={crypto}"),
    ]);
    assert_eq!(
        v["element_string"],
        format!("010460123456789321ABCDEFGHIJKLM\u{1d}91EE07\u{1d}92{crypto}")
    );
}

#[test]
fn build_rejects_rule_breaks() {
    let base = [
        "gs1",
        "build",
        "--gtin",
        "09506000134352",
        "--batch",
        "L1",
        "--expiry",
        "281231",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    rejected(
        &with(&["--market", "eu-fmd", "--serial", "A B"]),
        "eu-fmd: serial `A B` rejected",
    );
    rejected(
        &with(&[
            "--market",
            "eu-fmd",
            "--serial",
            "X1",
            "--ai",
            "713=1234567890123",
        ]),
        "AI (713) (NHRN: Brazil ANVISA registration) is not a national AI of eu-fmd",
    );
    rejected(
        &with(&["--market", "br-anvisa", "--serial", "X1"]),
        "br-anvisa: AI (713) is required",
    );
    rejected(
        &with(&["--market", "cn-nmpa", "--serial", "123456789"]),
        "exactly 13",
    );
    rejected(
        &with(&["--market", "ru-crypto", "--serial", "ABCDEFGHIJKLM"]),
        "AI (91) is required",
    );
    rejected(
        &with(&["--market", "eu-fmd", "--serial", "X1", "--ai", "710"]),
        "expected AI=VALUE",
    );
    rejected(
        &[
            "gs1",
            "build",
            "--market",
            "us-dscsa",
            "--gtin",
            "09506000134352",
            "--serial",
            "X1",
            "--batch",
            "L1",
            "--expiry",
            "281200",
        ],
        "day 00",
    );
    // An unknown market is a usage error from clap (status 2 as well).
    let out = linectl(&with(&["--market", "xx", "--serial", "X1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
