//! Line profile loading and validation through the public API: every example file in
//! `line-profiles/` loads; environment overrides; unknown keys; each validation rule
//! reports its key path; several problems are reported at once.

use std::collections::BTreeMap;
use std::path::Path;

use linectl::market::Market;
use linectl::profile::{Grade, PlcKind, Profile, ProfileError, SerialSource};

/// A small valid EU profile; each case below edits one line of it.
const BASE: &str = r#"
[line]
id = "PL-T-01"
site = "urn:epc:id:sgln:9506000.00000.0"

[product]
gtin = "09506000134352"
name = "Test tablets"
market = "eu-fmd"
country = "DE"
national_ais = { "710" = "01234562" }

[batch]
lot = "T1"
expiry = "281231"

[plc]
kind = "modbus-tcp"
address = "127.0.0.1:5020"

[printer]
kind = "zipher"
address = "127.0.0.1:9101"

[camera]
kind = "tcp-stream"
address = "127.0.0.1:7100"

[geometry]
print_to_camera_mm = 300.0
camera_to_reject_mm = 400.0
conveyor_speed_mm_s = 500.0
pitch_mm = 150.0

[verification]
decode_deadline_ms = 60

[serials]
source = "generate-random"
length = 12
"#;

fn no_env() -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::new())
}

fn load(text: &str) -> Result<Profile, ProfileError> {
    Profile::from_toml("t.toml", text, no_env())
}

/// Replace `from` (which must occur) by `to` in BASE.
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE has no `{from}`");
    BASE.replacen(from, to, 1)
}

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

/// `text` must fail with exactly one problem, at `key`, whose message contains `msg`.
#[track_caller]
fn one_problem(text: &str, key: &str, msg: &str) {
    let err = load(text).expect_err("should be rejected");
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.file, "t.toml");
    assert_eq!(p.key, key, "{p}");
    assert!(
        p.message.contains(msg),
        "`{}` should contain `{msg}`",
        p.message
    );
}

#[test]
fn base_profile_is_valid_with_defaults() {
    let p = load(BASE).unwrap();
    assert_eq!(p.product.market, Market::EuFmd);
    assert_eq!(p.verification.min_grade, Grade::C);
    assert_eq!(p.plc.kind, PlcKind::ModbusTcp);
    assert_eq!(p.plc.unit_id, 1);
    assert_eq!(p.plc.timeout_ms, 100);
    assert_eq!(p.plc.registers.trigger_counter, 0);
    // The driver's register map and its defaults.
    assert_eq!(p.plc.registers.alarms, 30);
    assert_eq!(p.plc.registers.counters, 20);
    assert_eq!(p.plc.registers.verdict_base, 100);
    assert_eq!(p.plc.registers.verdict_slots, 8);
    assert_eq!(
        p.plc.registers,
        linectl_drivers::plc::modbus::RegisterMap::default()
    );
    let cfg = p.plc.modbus_config();
    assert_eq!(cfg.slave, 1);
    assert_eq!(cfg.timeout, std::time::Duration::from_millis(100));
    assert_eq!(p.serials.source, SerialSource::GenerateRandom);
    assert_eq!(p.serials.block_size, 1000);
    assert_eq!(p.hmi.listen, "127.0.0.1:8080");
    assert_eq!(p.epcis.digital_link_base, "https://id.gs1.org");
    assert_eq!(p.geometry.verdict_deadline_ms(), 770.0);
    assert_eq!(p.geometry.units_per_minute(), 200.0);
    assert_eq!(
        p.market_product().national_ais,
        vec![("710".to_string(), "01234562".to_string())]
    );
}

#[test]
fn every_example_profile_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("line-profiles");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        if let Err(e) = Profile::load_with_env(&path, no_env()) {
            panic!("{e}");
        }
    }
    assert!(n >= 4, "only {n} profiles in {}", dir.display());
}

#[test]
fn gtin_check_digit_problem_names_file_key_and_expected_digit() {
    let err = load(&edit("09506000134352", "09506000134353")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.toml: product.gtin: check digit wrong (expected 2)"
    );
}

#[test]
fn file_problems_carry_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.toml");
    std::fs::write(&path, edit("09506000134352", "09506000134353")).unwrap();
    let err = Profile::load_with_env(&path, no_env()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: product.gtin: check digit wrong (expected 2)",
            path.display()
        )
    );
    let err = Profile::load_with_env(&dir.path().join("missing.toml"), no_env()).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn env_overrides_apply() {
    let env: BTreeMap<String, String> = [
        ("LINECTL__PRINTER__ADDRESS", "127.0.0.1:9100"),
        ("LINECTL__GEOMETRY__CONVEYOR_SPEED_MM_S", "400"),
        ("LINECTL__PLC__REGISTERS__HEARTBEAT", "40"),
        ("LINECTL__VERIFICATION__MIN_GRADE", "B"),
        ("LINECTL__PRODUCT__GTIN", "09506000134352"),
        ("OTHER__PRINTER__ADDRESS", "10.0.0.1:1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let p = Profile::from_toml("t.toml", BASE, Some(env)).unwrap();
    assert_eq!(p.printer.address, "127.0.0.1:9100");
    assert_eq!(p.geometry.conveyor_speed_mm_s, 400.0);
    assert_eq!(p.plc.registers.heartbeat, 40);
    assert_eq!(p.verification.min_grade, Grade::B);
    // Leading zero kept: the GTIN stays a string.
    assert_eq!(p.product.gtin, "09506000134352");
}

#[test]
fn env_override_is_validated_like_the_file() {
    let env: BTreeMap<String, String> = [
        ("LINECTL__PRINTER__ADDRESS", "nowhere"),
        ("LINECTL__GEOMETRY__PITCH_MM", "fast"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let err = Profile::from_toml("t.toml", BASE, Some(env)).unwrap_err();
    let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["geometry.pitch_mm", "printer.address"], "{err}");
    assert!(
        err.problems[0]
            .message
            .contains("invalid type: string \"fast\""),
        "{err}"
    );
    assert!(
        err.problems[1].message.contains("`nowhere` is neither"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_errors() {
    one_problem(
        &format!("{BASE}\n[extra]\nx = 1\n"),
        "extra",
        "unknown section",
    );
    one_problem(
        &edit("[plc]\n", "[plc]\nspeed = 3\n"),
        "plc.speed",
        "unknown key",
    );
    one_problem(
        &format!("{BASE}\n[plc.registers]\nheartbeet = 3\n").replace("[plc]\n", "[plc]\n"),
        "plc.registers.heartbeet",
        "unknown key",
    );
    one_problem(
        &edit(
            "decode_deadline_ms = 60",
            "decode_deadline_ms = 60\nroi = { x = 1, y = 1, w = 5, h = 5, z = 1 }",
        ),
        "verification.roi.z",
        "unknown key",
    );
}

#[test]
fn type_and_shape_errors() {
    one_problem(
        &edit("pitch_mm = 150.0", "pitch_mm = \"wide\""),
        "geometry.pitch_mm",
        "invalid type",
    );
    one_problem(
        &edit("market = \"eu-fmd\"", "market = \"eu-mdr\""),
        "product.market",
        "unknown variant `eu-mdr` (allowed: us-dscsa, eu-fmd,",
    );
    one_problem(
        &edit("kind = \"zipher\"", "kind = \"laser\""),
        "printer.kind",
        "unknown variant",
    );
    one_problem(
        &edit("gtin = \"09506000134352\"\n", ""),
        "product.gtin",
        "required",
    );
    one_problem(
        &edit(
            "[camera]\nkind = \"tcp-stream\"\naddress = \"127.0.0.1:7100\"\n",
            "",
        ),
        "camera",
        "section is missing",
    );
    let err = load("[line\nid = 1").unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].message.contains("not valid TOML"), "{err}");
}

#[test]
fn each_rule_reports_its_key() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (from, to, key, message part)
        (
            "id = \"PL-T-01\"",
            "id = \"PL T 01\"",
            "line.id",
            "only letters",
        ),
        ("id = \"PL-T-01\"", "id = \"\"", "line.id", "1 to 32"),
        (
            "site = \"urn:epc:id:sgln:9506000.00000.0\"",
            "site = \"urn:epc:id:sgln:9506000.0000.0\"",
            "line.site",
            "12 digits together",
        ),
        (
            "site = \"urn:epc:id:sgln:9506000.00000.0\"",
            "site = \"urn:epc:id:sgln:9506000\"",
            "line.site",
            "three parts",
        ),
        (
            "site = \"urn:epc:id:sgln:9506000.00000.0\"",
            "site = \"9506000000009\"",
            "line.site",
            "check digit wrong (expected 8)",
        ),
        (
            "site = \"urn:epc:id:sgln:9506000.00000.0\"",
            "site = \"here\"",
            "line.site",
            "neither",
        ),
        (
            "gtin = \"09506000134352\"",
            "gtin = \"09506000134\"",
            "product.gtin",
            "11 characters",
        ),
        (
            "name = \"Test tablets\"",
            "name = \" \"",
            "product.name",
            "empty",
        ),
        (
            "{ \"710\" = \"01234562\" }",
            "{ \"710\" = \"01234562\", \"713\" = \"1234567890123\" }",
            "product.national_ais.713",
            "not a national AI of eu-fmd",
        ),
        (
            "{ \"710\" = \"01234562\" }",
            "{ \"710\" = \"01234563\" }",
            "product.national_ais.710",
            "check digit wrong (expected 2)",
        ),
        (
            "{ \"710\" = \"01234562\" }",
            "{ \"711\" = \"3400930000000\" }",
            "product.national_ais",
            "country DE needs AI (710)",
        ),
        (
            "country = \"DE\"",
            "country = \"Germany\"",
            "product.country",
            "alpha-2",
        ),
        (
            "country = \"DE\"",
            "country = \"IT\"",
            "product.national_ais.710",
            "does not belong on a pack for IT",
        ),
        (
            "country = \"DE\"",
            "country = \"DE\"\ncn_product_code = \"8123456\"",
            "product.cn_product_code",
            "only for cn-nmpa",
        ),
        (
            "lot = \"T1\"",
            "lot = \"T1 2\"",
            "batch.lot",
            "not in GS1 CSET 82",
        ),
        (
            "lot = \"T1\"",
            "lot = \"123456789012345678901\"",
            "batch.lot",
            "at most 20",
        ),
        (
            "expiry = \"281231\"",
            "expiry = \"281331\"",
            "batch.expiry",
            "month 13",
        ),
        (
            "expiry = \"281231\"",
            "expiry = \"280230\"",
            "batch.expiry",
            "day 30 does not exist",
        ),
        (
            "expiry = \"281231\"",
            "expiry = \"281231\"\ntarget_quantity = 0",
            "batch.target_quantity",
            "at least 1",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"127.0.0.1\"",
            "plc.address",
            "neither",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"plc.local:70000\"",
            "plc.address",
            "1–65535",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"bad host!:502\"",
            "plc.address",
            "not a host name",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"/dev/ttyUSB0\"\nbaud = 9600",
            "plc.address",
            "needs `host:port`",
        ),
        (
            "kind = \"modbus-tcp\"",
            "kind = \"modbus-rtu\"",
            "plc.address",
            "needs a serial device path",
        ),
        (
            "kind = \"modbus-tcp\"\naddress = \"127.0.0.1:5020\"",
            "kind = \"modbus-rtu\"\naddress = \"/dev/ttyUSB0\"",
            "plc.baud",
            "required with the serial device",
        ),
        (
            "kind = \"modbus-tcp\"\naddress = \"127.0.0.1:5020\"",
            "kind = \"modbus-rtu\"\naddress = \"/dev/ttyUSB0\"\nbaud = 12",
            "plc.baud",
            "not a usable speed",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"127.0.0.1:5020\"\nbaud = 9600",
            "plc.baud",
            "only for a serial device",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"127.0.0.1:5020\"\ntimeout_ms = 0",
            "plc.timeout_ms",
            "above 0",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"127.0.0.1:5020\"\nunit_id = 0",
            "plc.unit_id",
            "1–247",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"127.0.0.1:5020\"\nregisters = { alarms = 21 }",
            "plc.registers.alarms",
            "overlap `counters`",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"127.0.0.1:5020\"\nregisters = { verdict_slots = 0 }",
            "plc.registers.verdict_slots",
            "at least 1",
        ),
        (
            "address = \"127.0.0.1:5020\"",
            "address = \"127.0.0.1:5020\"\nregisters = { verdict_base = 65530 }",
            "plc.registers.verdict_base",
            "pass 65535",
        ),
        (
            "kind = \"zipher\"\naddress = \"127.0.0.1:9101\"",
            "kind = \"zpl\"\naddress = \"/dev/ttyS0\"\nbaud = 9600",
            "printer.address",
            "needs `host:port`",
        ),
        (
            "kind = \"zipher\"\naddress = \"127.0.0.1:9101\"",
            "kind = \"zipher\"\naddress = \"/dev/ttyS0\"",
            "printer.baud",
            "required",
        ),
        (
            "address = \"127.0.0.1:9101\"",
            "address = \"127.0.0.1:9101\"\nbuffer_ahead = 0",
            "printer.buffer_ahead",
            "at least 1",
        ),
        (
            "address = \"127.0.0.1:7100\"",
            "address = \"camera\"",
            "camera.address",
            "neither",
        ),
        (
            "kind = \"tcp-stream\"\naddress = \"127.0.0.1:7100\"",
            "kind = \"dir\"\naddress = \"\"",
            "camera.address",
            "must not be empty",
        ),
        (
            "conveyor_speed_mm_s = 500.0",
            "conveyor_speed_mm_s = 0.0",
            "geometry.conveyor_speed_mm_s",
            "above 0",
        ),
        (
            "pitch_mm = 150.0",
            "pitch_mm = -1.0",
            "geometry.pitch_mm",
            "above 0",
        ),
        (
            "pitch_mm = 150.0",
            "pitch_mm = 150.0\nplc_scan_ms = -1.0",
            "geometry.plc_scan_ms",
            "0 or more",
        ),
        (
            "camera_to_reject_mm = 400.0",
            "camera_to_reject_mm = 10.0",
            "geometry",
            "verdict deadline -10.0 ms is not positive",
        ),
        (
            "decode_deadline_ms = 60",
            "decode_deadline_ms = 770",
            "verification.decode_deadline_ms",
            "below the verdict deadline 770.0 ms",
        ),
        (
            "decode_deadline_ms = 60",
            "decode_deadline_ms = 0",
            "verification.decode_deadline_ms",
            "above 0",
        ),
        (
            "decode_deadline_ms = 60",
            "decode_deadline_ms = 60\nroi = { x = 0, y = 0, w = 0, h = 10 }",
            "verification.roi",
            "above 0",
        ),
        (
            "source = \"generate-random\"",
            "source = \"generate-sequential\"",
            "serials.source",
            "randomised",
        ),
        (
            "length = 12",
            "length = 4",
            "serials.length",
            "below 1/10,000",
        ),
        (
            "length = 12",
            "length = 21",
            "serials.length",
            "outside eu-fmd's serial length 1..=20",
        ),
        (
            "length = 12",
            "length = 12\nblock_size = 0",
            "serials.block_size",
            "at least 1",
        ),
        (
            "source = \"generate-random\"",
            "source = \"site-server\"",
            "serials.url",
            "required",
        ),
        (
            "source = \"generate-random\"",
            "source = \"site-server\"\nurl = \"ftp://x\"",
            "serials.url",
            "http",
        ),
        (
            "source = \"generate-random\"",
            "source = \"import\"\nurl = \"http://x\"",
            "serials.url",
            "only used with",
        ),
        (
            "length = 12",
            "length = 12\n[hmi]\nlisten = \"localhost:80\"",
            "hmi.listen",
            "not `ip:port`",
        ),
        (
            "length = 12",
            "length = 12\n[epcis]\ndigital_link_base = \"https://id.gs1.org/\"",
            "epcis.digital_link_base",
            "must not end",
        ),
        (
            "length = 12",
            "length = 12\n[epcis]\ncapture_url = \"127.0.0.1/capture\"",
            "epcis.capture_url",
            "http",
        ),
    ];
    for (from, to, key, msg) in cases {
        let text = edit(from, to);
        let err = match load(&text) {
            Ok(_) => panic!("`{to}` should be rejected"),
            Err(e) => e,
        };
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == *key && p.message.contains(msg)),
            "`{to}`: expected `{key}: …{msg}…`, got:\n{err}"
        );
    }
}

#[test]
fn market_cross_rules() {
    // Russia: serials come from the operator.
    let ru = edit(
        "market = \"eu-fmd\"\ncountry = \"DE\"\nnational_ais = { \"710\" = \"01234562\" }",
        "market = \"ru-crypto\"",
    );
    one_problem(&ru, "serials.source", "issued by the operator");
    assert!(load(&ru.replace("source = \"generate-random\"", "source = \"import\"")).is_ok());
    // China: needs the 7-digit product code; serials imported.
    let cn = edit(
        "market = \"eu-fmd\"\ncountry = \"DE\"\nnational_ais = { \"710\" = \"01234562\" }",
        "market = \"cn-nmpa\"",
    )
    .replace("source = \"generate-random\"", "source = \"import\"");
    one_problem(&cn, "product.cn_product_code", "required for cn-nmpa");
    one_problem(
        &cn.replace(
            "market = \"cn-nmpa\"",
            "market = \"cn-nmpa\"\ncn_product_code = \"81234\"",
        ),
        "product.cn_product_code",
        "exactly 7 digits",
    );
    assert!(
        load(&cn.replace(
            "market = \"cn-nmpa\"",
            "market = \"cn-nmpa\"\ncn_product_code = \"8123456\""
        ))
        .is_ok()
    );
    // Brazil: AI 713 required.
    let br = edit(
        "market = \"eu-fmd\"\ncountry = \"DE\"\nnational_ais = { \"710\" = \"01234562\" }",
        "market = \"br-anvisa\"",
    );
    one_problem(&br, "product.national_ais", "br-anvisa requires AI (713)");
    // US: sequential generation is fine, DD = 00 is not.
    let us = edit(
        "market = \"eu-fmd\"\ncountry = \"DE\"\nnational_ais = { \"710\" = \"01234562\" }",
        "market = \"us-dscsa\"",
    )
    .replace(
        "source = \"generate-random\"",
        "source = \"generate-sequential\"",
    );
    assert!(load(&us).is_ok());
    one_problem(&us.replace("281231", "281200"), "batch.expiry", "day 00");
    // EU accepts DD = 00.
    assert!(load(&edit("281231", "281200")).is_ok());
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = edit("09506000134352", "09506000134353")
        .replace("address = \"127.0.0.1:5020\"", "address = \"/dev/ttyUSB0\"")
        .replace("pitch_mm = 150.0", "pitch_mm = \"x\"")
        .replace("length = 12", "length = 3")
        .replace("[plc]\n", "[plc]\nbogus = 1\n")
        + "\n[hmi]\nlisten = \"nope\"\n";
    let all = problems(&text);
    // plc and geometry do not parse; the other sections are still checked.
    for e in [
        "t.toml: product.gtin: check digit wrong (expected 2)",
        "t.toml: plc.bogus: unknown key",
        "t.toml: geometry.pitch_mm: invalid type",
        "t.toml: serials.length:",
        "t.toml: hmi.listen:",
    ] {
        assert!(
            all.iter().any(|p| p.starts_with(e)),
            "missing `{e}` in {all:#?}"
        );
    }
    assert_eq!(all.len(), 5, "{all:#?}");
    // Without the parse errors, every field and cross-field problem shows together.
    let text = text
        .replace("pitch_mm = \"x\"", "pitch_mm = 150.0")
        .replace("bogus = 1\n", "");
    let all = problems(&text);
    for e in [
        "t.toml: product.gtin: check digit wrong (expected 2)",
        "t.toml: plc.address:",
        "t.toml: serials.length:",
        "t.toml: hmi.listen:",
    ] {
        assert!(
            all.iter().any(|p| p.starts_with(e)),
            "missing `{e}` in {all:#?}"
        );
    }
    assert_eq!(all.len(), 4, "{all:#?}");
}

#[test]
fn several_problems_in_one_section_are_all_reported() {
    let text = edit(
        "[plc]\n",
        "[plc]\nspeed = 3\ncolour = \"red\"\ntimeout_ms = \"soon\"\n",
    )
    .replace("[plc.registers]", "")
        + "\n[plc.registers]\nheartbeet = 3\nalarms = \"x\"\n";
    let all = problems(&text);
    for want in [
        "t.toml: plc.speed: unknown key",
        "t.toml: plc.colour: unknown key",
        "t.toml: plc.timeout_ms: invalid type",
        "t.toml: plc.registers.heartbeet: unknown key",
        "t.toml: plc.registers.alarms: invalid type",
    ] {
        assert!(
            all.iter().any(|p| p.starts_with(want)),
            "missing `{want}` in {all:#?}"
        );
    }
    assert_eq!(all.len(), 5, "{all:#?}");
    // Every missing required key, not just the first.
    let text = edit(
        "gtin = \"09506000134352\"\nname = \"Test tablets\"\nmarket = \"eu-fmd\"\n",
        "",
    );
    let all = problems(&text);
    assert_eq!(
        all,
        [
            "t.toml: product.gtin: required",
            "t.toml: product.name: required",
            "t.toml: product.market: required",
        ],
        "{all:#?}"
    );
}
