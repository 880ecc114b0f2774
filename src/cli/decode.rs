//! `linectl decode`: decode and grade DataMatrix frames from image files, one JSON line
//! per file on stdout, or (`--bench DIR`) the read rate and decode-time median / p99
//! over a folder of frames. Command-line glue over `linectl::vision`; no decoding logic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use linectl::clock::SystemClock;
use linectl::gs1::Gs1Code;
use linectl::vision::pool::{DecodePool, FrameOutcome, PoolConfig};
use linectl::vision::{DecodeConfig, Decoder, FrameLimits, GreyFrame, Roi};

/// `linectl decode` arguments.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Decode only this region of each frame: X,Y,W,H in pixels.
    #[arg(long, value_name = "X,Y,W,H")]
    pub roi: Option<Roi>,
    /// Per-frame deadline in ms: a frame past it is reported `late` (default 2000); with
    /// --bench, frames give up between passes once past it (default: no deadline).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// Benchmark mode: decode every PNG / PNM under DIR on this thread and print the read
    /// rate and median / p99 decode time per sub-folder (checked against DIR/manifest.csv
    /// when present). Build with --release for meaningful times.
    #[arg(long, value_name = "DIR", conflicts_with = "files")]
    pub bench: Option<PathBuf>,
    /// Image files (PNG or PNM, 8-bit grey or colour).
    #[arg(value_name = "FILE", required_unless_present = "bench")]
    pub files: Vec<PathBuf>,
}

/// Run the command.
pub fn run(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let decode = DecodeConfig {
        roi: args.roi,
        ..DecodeConfig::default()
    };
    if let Some(dir) = &args.bench {
        return bench(dir, decode, args.deadline_ms.map(Duration::from_millis));
    }
    let cfg = PoolConfig {
        workers: 1,
        queue: 1,
        deadline_ms: args.deadline_ms.unwrap_or(2000),
        decode,
    };
    let pool = DecodePool::new(&cfg, Arc::new(SystemClock::new()));
    for file in &args.files {
        let line = decode_file(&pool, file);
        println!("{}", serde_json::to_string(&line)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct FileLine {
    file: String,
    ok: bool,
    content: Option<String>,
    hri: Option<String>,
    symbology: Option<String>,
    grade: Option<String>,
    ms: f64,
    error: Option<String>,
}

fn decode_file(pool: &DecodePool, file: &Path) -> FileLine {
    let mut line = FileLine {
        file: file.display().to_string(),
        ok: false,
        content: None,
        hri: None,
        symbology: None,
        grade: None,
        ms: 0.0,
        error: None,
    };
    let frame = match GreyFrame::load(file, FrameLimits::default()) {
        Ok(f) => f,
        Err(e) => {
            line.error = Some(e.to_string());
            return line;
        }
    };
    let start = Instant::now();
    let outcome = pool.submit(frame).wait();
    line.ms = round_ms(start.elapsed());
    match outcome {
        FrameOutcome::Read { read, .. } => {
            line.ok = true;
            line.hri = match Gs1Code::parse_element_string(&read.content) {
                Ok(code) => Some(code.hri()),
                Err(e) => {
                    line.error = Some(format!("read is not valid GS1: {e}"));
                    None
                }
            };
            line.content = Some(read.content);
            line.symbology = Some(read.symbology);
            line.grade = Some(read.grade.overall.to_string());
        }
        FrameOutcome::NoRead(n) => line.error = Some(format!("no-read: {n}")),
        FrameOutcome::Late => line.error = Some("late: deadline passed".into()),
        FrameOutcome::Missing => line.error = Some("missing-frame".into()),
    }
    line
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[derive(Default)]
struct Subset {
    times: Vec<f64>,
    read: usize,
    wrong: usize,
    errors: usize,
    symbologies: BTreeMap<String, usize>,
    passes: BTreeMap<String, usize>,
    grades: BTreeMap<String, usize>,
}

fn bench(dir: &Path, decode: DecodeConfig, deadline: Option<Duration>) -> anyhow::Result<ExitCode> {
    let expected = load_manifest(dir)?;
    let mut files = Vec::new();
    collect(dir, &mut files).with_context(|| format!("listing {}", dir.display()))?;
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no PNG / PNM files under {}",
        dir.display()
    );
    let mut decoder = Decoder::new(decode);
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(dir).unwrap_or(file);
        let rel_s = rel.to_string_lossy().replace('\\', "/");
        let subset = match rel_s.split_once('/') {
            Some((s, _)) => s.to_owned(),
            None => ".".to_owned(),
        };
        let entry = subsets.entry(subset).or_default();
        let frame = match GreyFrame::load(file, FrameLimits::default()) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{rel_s}: {e}");
                entry.errors += 1;
                continue;
            }
        };
        let start = Instant::now();
        let stop = || deadline.is_some_and(|d| start.elapsed() >= d);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode_until(&frame, &stop)
        }));
        entry.times.push(start.elapsed().as_secs_f64() * 1000.0);
        match result {
            Ok(Ok(Some(read))) => match expected.get(&rel_s) {
                Some(want) if *want != read.content => {
                    entry.wrong += 1;
                    eprintln!("{rel_s}: WRONG read {:?}", read.content);
                }
                _ => {
                    entry.read += 1;
                    *entry.symbologies.entry(read.symbology.clone()).or_default() += 1;
                    *entry.passes.entry(format!("{:?}", read.pass)).or_default() += 1;
                    *entry
                        .grades
                        .entry(read.grade.overall.to_string())
                        .or_default() += 1;
                }
            },
            Ok(Ok(None)) => eprintln!("{rel_s}: no read"),
            Ok(Err(e)) => {
                entry.errors += 1;
                eprintln!("{rel_s}: {e}");
            }
            Err(_) => {
                decoder = Decoder::new(decoder.config().clone());
                eprintln!("{rel_s}: decoder panicked");
            }
        }
    }
    let mut all = Subset::default();
    for (name, s) in &subsets {
        print_summary(name, s);
        all.times.extend(&s.times);
        all.read += s.read;
        all.wrong += s.wrong;
        all.errors += s.errors;
        for (k, v) in &s.symbologies {
            *all.symbologies.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &s.passes {
            *all.passes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &s.grades {
            *all.grades.entry(k.clone()).or_default() += v;
        }
    }
    print_summary("all", &all);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(name: &str, s: &Subset) {
    let mut t = s.times.clone();
    t.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if t.is_empty() {
            0.0
        } else {
            let i = ((t.len() as f64 - 1.0) * p).round() as usize;
            t.get(i).copied().unwrap_or(0.0)
        }
    };
    let frames = s.times.len() + s.errors;
    let line = serde_json::json!({
        "subset": name,
        "frames": frames,
        "read": s.read,
        "wrong": s.wrong,
        "read_rate": if frames == 0 { 0.0 } else { s.read as f64 / frames as f64 },
        "median_ms": (pct(0.5) * 100.0).round() / 100.0,
        "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
        "max_ms": (pct(1.0) * 100.0).round() / 100.0,
        "symbologies": s.symbologies,
        "passes": s.passes,
        "grades": s.grades,
    });
    println!("{line}");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "pgm" | "pnm"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// `file` → expected content from `manifest.csv` (GS written as `\x1d`), if present.
fn load_manifest(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let path = dir.join("manifest.csv");
    let mut map = BTreeMap::new();
    if !path.exists() {
        return Ok(map);
    }
    let mut rdr = csv::Reader::from_path(&path).with_context(|| format!("{}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (fi, ci) = (col("file")?, col("content")?);
    for rec in rdr.records() {
        let rec = rec.with_context(|| format!("{}", path.display()))?;
        if let (Some(f), Some(c)) = (rec.get(fi), rec.get(ci)) {
            map.insert(f.to_owned(), c.replace("\\x1d", "\u{1d}"));
        }
    }
    Ok(map)
}
