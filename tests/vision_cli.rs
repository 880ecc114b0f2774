//! `linectl decode` as a user runs it: one JSON line per file, exit 0 whether or not
//! each file read, clear errors for bad files; `--bench` summarises a folder.

mod vision_support;

use std::process::Command;

use vision_support::{frames_dir, manifest};

fn linectl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linectl"))
}

#[test]
fn one_json_line_per_file_and_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.png");
    let png = std::fs::read(frames_dir().join(&manifest()[0].file)).unwrap();
    std::fs::write(&corrupt, &png[..png.len() / 4]).unwrap();
    let blank = dir.path().join("blank.pgm");
    let mut pgm = b"P5\n64 48\n255\n".to_vec();
    pgm.extend(std::iter::repeat_n(200u8, 64 * 48));
    std::fs::write(&blank, pgm).unwrap();
    let entries = manifest();
    let e = entries.iter().find(|e| e.subset == "inverted").unwrap();
    let out = linectl()
        .arg("decode")
        .arg(frames_dir().join(&e.file))
        .arg(&corrupt)
        .arg(&blank)
        .arg(dir.path().join("missing.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let ok = &lines[0];
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["content"], e.content.as_str());
    assert_eq!(ok["hri"], e.hri.as_str());
    assert_eq!(ok["symbology"], "]d2");
    assert!(ok["grade"].as_str().is_some_and(|g| "ABCDF".contains(g)));
    assert!(ok["ms"].as_f64().is_some());
    assert!(ok["error"].is_null());
    for (line, needle) in lines[1..].iter().zip(["corrupt", "no-read", "cannot read"]) {
        assert_eq!(line["ok"], false);
        let err = line["error"].as_str().unwrap();
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn roi_option_is_parsed_and_checked() {
    let f = frames_dir().join(&manifest()[0].file);
    let out = linectl()
        .args(["decode", "--roi", "0,0,10"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = linectl()
        .args(["decode", "--roi", "1200,900,500,500"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["ok"], false);
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("region of interest")
    );
}

#[test]
fn bench_summarises_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("clean");
    std::fs::create_dir(&sub).unwrap();
    let entries = manifest();
    let mut csv = String::from("file,subset,symbol,bracketed,hri,content\n");
    for e in entries.iter().filter(|e| e.subset == "clean").take(2) {
        let name = e.file.rsplit('/').next().unwrap();
        std::fs::copy(frames_dir().join(&e.file), sub.join(name)).unwrap();
        csv.push_str(&format!(
            "clean/{name},clean,x,{},{},{}\n",
            e.bracketed,
            e.hri,
            e.content.replace('\u{1d}', "\\x1d")
        ));
    }
    std::fs::write(dir.path().join("manifest.csv"), csv).unwrap();
    let out = linectl()
        .args(["decode", "--bench"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let all = lines.iter().find(|l| l["subset"] == "all").unwrap();
    assert_eq!(all["frames"], 2);
    assert_eq!(all["read"], 2);
    assert_eq!(all["wrong"], 0);
    assert!(all["median_ms"].as_f64().unwrap() > 0.0);
}
