//! Tidy checks over the repository's own sources, in the spirit of rust-analyzer's tidy
//! test: every Rust file opens with a `//!` paragraph saying what it owns, and the
//! library and driver code never calls `.unwrap()` / `.expect(` outside tests. It reads
//! files only; it does not build or run anything.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name == "target" || name.starts_with('.') || name == "node_modules" {
                continue;
            }
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in [
        "src", "tests", "benches", "drivers", "hil-sim", "fuzz", "examples",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    files.push(root().join("build.rs"));
    assert!(files.len() > 50, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            fs::read_to_string(f)
                .map(|s| !s.trim_start().starts_with("//!"))
                .unwrap_or(true)
        })
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! doc: {missing:?}");
}

/// Library code (not its tests) must not unwrap: device and user input gets a typed
/// error. A line may opt out with a `// tidy: allow-unwrap (reason)` comment when the
/// value cannot fail (e.g. a constant); everything after `#[cfg(test)]` is test code.
#[test]
fn library_code_does_not_unwrap() {
    let mut files = Vec::new();
    for dir in ["src", "drivers/src", "hil-sim/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut offenders = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
        if rel.starts_with("src/cli/") || rel == "src/main.rs" || rel.ends_with("/tests.rs") {
            continue; // the binary uses anyhow; test modules may unwrap
        }
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            if (code.contains(".unwrap()") || code.contains(".expect("))
                && !line.contains("tidy: allow-unwrap")
            {
                offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unwrap/expect in library code:\n{}",
        offenders.join("\n")
    );
}
