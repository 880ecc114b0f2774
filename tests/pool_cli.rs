//! `linectl pool` end to end with the built binary: imports of every format, duplicate
//! reports, bad input refused with exit 2 and a message naming the problem (and nothing
//! imported), generation, status, take with the InsufficientSerialNumbers refusal,
//! list, verify, the SNInvalid report, request tokens.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_linectl");
const US: &str = "00012345678905";
const EU: &str = "09506000134352";
const RU: &str = "04601234567893";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pool")
        .join(name)
}

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

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn refused(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn status(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&pool(dir, &["status", "--json"]))).unwrap()
}

fn total(dir: &Path, gtin: &str) -> u64 {
    status(dir)
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gtin"] == gtin)
        .map_or(0, |g| g["total"].as_u64().unwrap())
}

#[test]
fn imports_report_duplicates_and_refuse_bad_input_whole() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // A pool that does not exist yet is not invented by read-only commands.
    assert!(refused(&pool(d, &["status"])).contains("no serial pool"));
    let good = data("us-good.csv");
    let out = ok(&pool(
        d,
        &[
            "import",
            "--gtin",
            US,
            "--market",
            "us-dscsa",
            "--json",
            good.to_str().unwrap(),
        ],
    ));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["imported"].as_u64(), r["duplicates_in_file"].as_u64()),
        (Some(3), Some(1))
    );
    assert!(
        r["duplicate_examples"][0].as_str().unwrap().contains(":5:")
            || r["duplicate_examples"][0]
                .as_str()
                .unwrap()
                .contains(": 5:")
    );
    // Again: everything is a duplicate of the pool, nothing added.
    let r: serde_json::Value = serde_json::from_str(&ok(&pool(
        d,
        &["import", "--gtin", US, "--json", good.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(
        (r["imported"].as_u64(), r["duplicates_in_pool"].as_u64()),
        (Some(0), Some(4))
    );
    // JSON list, same GTIN.
    ok(&pool(
        d,
        &[
            "import",
            "--gtin",
            US,
            data("us-list.json").to_str().unwrap(),
        ],
    ));
    assert_eq!(total(d, US), 6);

    // Bad serials: charset and length named with their lines; nothing imported.
    let e = refused(&pool(
        d,
        &[
            "import",
            "--gtin",
            US,
            data("us-bad-charset.csv").to_str().unwrap(),
        ],
    ));
    assert!(
        e.contains("2 serial(s) rejected")
            && e.contains("us-bad-charset.csv: 3")
            && e.contains("length 22"),
        "{e}"
    );
    assert_eq!(total(d, US), 6);
    // Malformed files.
    let e = refused(&pool(
        d,
        &[
            "import",
            "--gtin",
            US,
            data("malformed.json").to_str().unwrap(),
        ],
    ));
    assert!(e.contains("malformed.json") && e.contains("line"), "{e}");
    let e = refused(&pool(
        d,
        &[
            "import",
            "--gtin",
            US,
            data("malformed.csv").to_str().unwrap(),
        ],
    ));
    assert!(e.contains("malformed.csv"), "{e}");
    assert_eq!(total(d, US), 6);
    // GTIN problems.
    let e = refused(&pool(
        d,
        &[
            "import",
            "--gtin",
            "00012345678904",
            "--market",
            "us-dscsa",
            good.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("check digit"), "{e}");
    let e = refused(&pool(
        d,
        &[
            "import",
            "--gtin",
            EU,
            "--market",
            "eu-fmd",
            data("wrong-gtin-collection.json").to_str().unwrap(),
        ],
    ));
    assert!(e.contains("09506000134353"), "{e}");
    let e = refused(&pool(d, &["import", "--gtin", EU, good.to_str().unwrap()]));
    assert!(e.contains("--market"), "{e}");
    let e = refused(&pool(
        d,
        &[
            "import",
            "--gtin",
            US,
            "--market",
            "eu-fmd",
            good.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("belongs to market us-dscsa"), "{e}");
    let e = refused(&pool(d, &["import", "--gtin", US, "/nonexistent/x.csv"]));
    assert!(e.contains("/nonexistent/x.csv"), "{e}");

    // SNCollection brings its market.
    ok(&pool(
        d,
        &[
            "import",
            "--gtin",
            EU,
            data("eu-collection.json").to_str().unwrap(),
        ],
    ));
    assert_eq!(total(d, EU), 3);
    // Russia: complete codes with 91/92, quoted CSV fields kept intact.
    ok(&pool(
        d,
        &[
            "import",
            "--gtin",
            RU,
            "--market",
            "ru-crypto",
            data("ru-codes.csv").to_str().unwrap(),
        ],
    ));
    let taken = ok(&pool(d, &["take", "--gtin", RU, "--count", "2"]));
    let quoted = taken.lines().find(|l| l.starts_with("5Ab")).unwrap();
    assert_eq!(
        quoted.split('\t').collect::<Vec<_>>()[..2],
        ["5Ab\"x(QpL,7kN", "91EE07"]
    );
    assert_eq!(taken.lines().count(), 2);
    let e = refused(&pool(
        d,
        &[
            "import",
            "--gtin",
            RU,
            data("ru-no-tail.json").to_str().unwrap(),
        ],
    ));
    assert!(e.contains("(91)"), "{e}");
    let v = ok(&pool(d, &["verify"]));
    assert!(v.contains("checked"), "{v}");
}

#[test]
fn generate_take_status_list_invalid_and_tokens() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(&pool(
        d,
        &[
            "generate", "--gtin", EU, "--count", "1000", "--market", "eu-fmd",
        ],
    ));
    let e = refused(&pool(
        d,
        &[
            "generate",
            "--gtin",
            RU,
            "--count",
            "10",
            "--market",
            "ru-crypto",
        ],
    ));
    assert!(e.contains("issued"), "{e}");
    let e = refused(&pool(
        d,
        &[
            "generate",
            "--gtin",
            EU,
            "--count",
            "400000000000000",
            "--market",
            "eu-fmd",
        ],
    ));
    assert!(e.contains("1/10,000"), "{e}");

    let out = ok(&pool(
        d,
        &[
            "take",
            "--gtin",
            EU,
            "--count",
            "250",
            "--block-size",
            "100",
        ],
    ));
    assert_eq!(out.lines().count(), 250);
    let e = refused(&pool(d, &["take", "--gtin", EU, "--count", "800"]));
    assert!(
        e.contains("InsufficientSerialNumbers") && e.contains("short by 50"),
        "{e}"
    );
    let s = status(d);
    assert_eq!(s[0]["states"]["Encoded"], 250);
    assert_eq!(s[0]["states"]["Unallocated"], 750);
    assert_eq!(s[0]["states"]["Allocated"], 0);
    let listed = ok(&pool(d, &["list", "--gtin", EU, "--state", "encoded"]));
    let first: Vec<&str> = out.lines().collect();
    let listed: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(first, listed);
    assert_eq!(ok(&pool(d, &["invalid", "--json"])).trim(), "[]");
    ok(&pool(d, &["verify"]));

    // Request tokens: the same token until a collection arrives for it.
    let t1: serde_json::Value =
        serde_json::from_str(&ok(&pool(d, &["request", "--gtin", EU, "--count", "2"]))).unwrap();
    let t2: serde_json::Value =
        serde_json::from_str(&ok(&pool(d, &["request", "--gtin", EU, "--count", "2"]))).unwrap();
    assert_eq!(t1["token"], t2["token"]);
    let doc = |name: &str, serials: &[&str]| {
        let v = serde_json::json!({"type": "SNCollection", "version": 1, "snCollectionId": name,
            "requestToken": t1["token"], "gtin": EU, "serialNumbers": serials});
        let p = d.join(format!("{name}.json"));
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let c1 = doc("c1", &["TOKENSERIAL1", "TOKENSERIAL2"]);
    ok(&pool(d, &["receive", c1.to_str().unwrap()]));
    let again = pool(d, &["receive", c1.to_str().unwrap()]);
    ok(&again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already received"));
    let c2 = doc("c2", &["OTHER1", "OTHER2"]);
    assert!(refused(&pool(d, &["receive", c2.to_str().unwrap()])).contains("already answered"));
    assert_eq!(total(d, EU), 1002);
    ok(&pool(d, &["verify"]));
}

#[test]
fn verify_exits_2_on_an_inconsistent_pool() {
    use linectl::pool::{OpenMode, Pool, Space, Store, layout};
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(&pool(
        d,
        &[
            "generate", "--gtin", US, "--count", "10", "--market", "us-dscsa",
        ],
    ));
    ok(&pool(d, &["verify"]));
    {
        let p = Pool::open(d, OpenMode::MustExist).unwrap();
        // The serial at seq 3 indexed at seq 5: one serial in two places.
        let key = layout::bucket_key(US, layout::bucket_of(b"4"));
        let v = p.store().get(Space::Index, &key).unwrap().unwrap();
        let entries: Vec<_> = layout::bucket_entries(&key, &v)
            .unwrap()
            .into_iter()
            .map(|(s, q)| (s, if s == b"4" { 5 } else { q }))
            .collect();
        p.store()
            .put(Space::Index, &key, &layout::encode_bucket(entries).unwrap())
            .unwrap();
    }
    let out = pool(d, &["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("INCONSISTENT"));
}
