//! Build script of the root package: generates the GS1 Application Identifier table
//! (`$OUT_DIR/gs1_ai_table.rs`, included by `src/gs1/table.rs`) from the vendored GS1
//! Barcode Syntax Dictionary `data/gs1/gs1-syntax-dictionary.txt`. It owns only the
//! translation of the dictionary's text format into Rust statics; what the entries mean
//! (linters, pairing rules, Digital Link) is implemented in `src/gs1`.
//!
//! A dictionary line that cannot be understood fails the build with its line number, so
//! an updated dictionary never silently loses rules. A linter name the engine does not
//! implement becomes a `Linter::<Name>` variant that does not exist: the build fails
//! there too, which is the point.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

const DICTIONARY: &str = "data/gs1/gs1-syntax-dictionary.txt";
/// Characters the dictionary reserves for flags.
const FLAG_CHARS: &str = "*!?\"$%&'()+,-./:;<=>@[\\]^_`{|}~";

struct Component {
    cset: char,
    min: usize,
    max: usize,
    optional: bool,
    linters: Vec<String>,
}

struct Entry {
    ai: String,
    fnc1: bool,
    dl_attr: bool,
    components: Vec<Component>,
    req: Vec<Vec<Vec<String>>>,
    ex: Vec<String>,
    dlpkey: Option<Vec<Vec<String>>>,
    title: String,
}

fn fail(line_no: usize, msg: &str) -> ! {
    panic!("{DICTIONARY}:{line_no}: {msg}");
}

fn parse_component(tok: &str, line_no: usize) -> Component {
    let mut parts = tok.split(',');
    let ty = parts.next().unwrap_or_default();
    let (optional, ty) = if let Some(inner) = ty.strip_prefix('[') {
        match inner.strip_suffix(']') {
            Some(t) => (true, t),
            None => fail(line_no, &format!("unbalanced optional component {tok}")),
        }
    } else {
        (false, ty)
    };
    let mut chars = ty.chars();
    let cset = match chars.next() {
        Some(c @ ('N' | 'X' | 'Y' | 'Z')) => c,
        _ => fail(line_no, &format!("bad component type {tok}")),
    };
    let len = chars.as_str();
    let (min, max) = if let Some(m) = len.strip_prefix("..") {
        let m: usize = m
            .parse()
            .unwrap_or_else(|_| fail(line_no, &format!("bad length in {tok}")));
        (1, m)
    } else {
        let n: usize = len
            .parse()
            .unwrap_or_else(|_| fail(line_no, &format!("bad length in {tok}")));
        (n, n)
    };
    let linters = parts.map(str::to_owned).collect();
    Component {
        cset,
        min,
        max,
        optional,
        linters,
    }
}

fn parse_line(line: &str, line_no: usize) -> Vec<Entry> {
    let (body, title) = match line.split_once('#') {
        Some((b, t)) => (b, t.trim()),
        None => (line, ""),
    };
    let mut toks = body.split_whitespace().peekable();
    let ais = toks.next().unwrap_or_else(|| fail(line_no, "empty entry"));
    let mut flags = "";
    if let Some(t) = toks.peek()
        && t.chars().all(|c| FLAG_CHARS.contains(c))
    {
        flags = t;
        toks.next();
    }
    let mut components = Vec::new();
    let mut req = Vec::new();
    let mut ex = Vec::new();
    let mut dlpkey = None;
    for t in toks {
        if let Some(r) = t.strip_prefix("req=") {
            req.push(
                r.split(',')
                    .map(|alt| alt.split('+').map(str::to_owned).collect())
                    .collect(),
            );
        } else if let Some(e) = t.strip_prefix("ex=") {
            ex.extend(e.split(',').map(str::to_owned));
        } else if t == "dlpkey" {
            dlpkey = Some(vec![Vec::new()]);
        } else if let Some(d) = t.strip_prefix("dlpkey=") {
            dlpkey = Some(
                d.split('|')
                    .map(|seq| seq.split(',').map(str::to_owned).collect())
                    .collect(),
            );
        } else if t.contains('=') {
            fail(line_no, &format!("unknown attribute {t}"));
        } else {
            components.push(parse_component(t, line_no));
        }
    }
    if components.is_empty() {
        fail(line_no, "entry without components");
    }
    let (first, last) = match ais.split_once('-') {
        Some((a, b)) => (a, b),
        None => (ais, ais),
    };
    if first.len() != last.len() || !(2..=4).contains(&first.len()) {
        fail(line_no, &format!("bad AI range {ais}"));
    }
    let lo: u32 = first
        .parse()
        .unwrap_or_else(|_| fail(line_no, "non-numeric AI"));
    let hi: u32 = last
        .parse()
        .unwrap_or_else(|_| fail(line_no, "non-numeric AI"));
    let width = first.len();
    (lo..=hi)
        .map(|n| Entry {
            ai: format!("{n:0width$}"),
            fnc1: !flags.contains('*'),
            dl_attr: flags.contains('?'),
            components: components
                .iter()
                .map(|c| Component {
                    cset: c.cset,
                    min: c.min,
                    max: c.max,
                    optional: c.optional,
                    linters: c.linters.clone(),
                })
                .collect(),
            req: req.clone(),
            ex: ex.clone(),
            dlpkey: dlpkey.clone(),
            title: title.to_owned(),
        })
        .collect()
}

fn camel(name: &str) -> String {
    let mut s = String::new();
    let mut chars = name.chars();
    if let Some(c) = chars.next() {
        s.push(c.to_ascii_uppercase());
    }
    s.extend(chars);
    s
}

fn strs(v: &[String]) -> String {
    let inner: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", inner.join(", "))
}

/// Index of an AI in the flat lookup array: 2-digit AIs at 0..100, 3-digit at
/// 100..1100, 4-digit at 1100..11100.
fn slot(ai: &str) -> usize {
    let n: usize = ai.parse().unwrap_or(0);
    match ai.len() {
        2 => n,
        3 => 100 + n,
        _ => 1100 + n,
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={DICTIONARY}");
    let text =
        fs::read_to_string(DICTIONARY).unwrap_or_else(|e| panic!("cannot read {DICTIONARY}: {e}"));
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        entries.extend(parse_line(t, i + 1));
    }
    entries.sort_by(|a, b| a.ai.cmp(&b.ai));
    let mut out = String::new();
    out.push_str("// @generated by build.rs from data/gs1/gs1-syntax-dictionary.txt\n");
    let _ = writeln!(
        out,
        "pub(crate) static AI_TABLE: [AiEntry; {}] = [",
        entries.len()
    );
    let mut index = vec![u16::MAX; 11100];
    for (i, e) in entries.iter().enumerate() {
        let s = slot(&e.ai);
        if index[s] != u16::MAX {
            panic!("duplicate AI {} in {DICTIONARY}", e.ai);
        }
        index[s] = u16::try_from(i).unwrap_or(u16::MAX);
        let comps: Vec<String> = e
            .components
            .iter()
            .map(|c| {
                let linters: Vec<String> = c
                    .linters
                    .iter()
                    .map(|l| format!("Linter::{}", camel(l)))
                    .collect();
                format!(
                    "Component {{ cset: Cset::{}, min: {}, max: {}, optional: {}, linters: &[{}] }}",
                    c.cset,
                    c.min,
                    c.max,
                    c.optional,
                    linters.join(", ")
                )
            })
            .collect();
        let req: Vec<String> = e
            .req
            .iter()
            .map(|rule| {
                let alts: Vec<String> = rule.iter().map(|a| strs(a)).collect();
                format!("&[{}]", alts.join(", "))
            })
            .collect();
        let dlpkey = match &e.dlpkey {
            None => "None".to_owned(),
            Some(alts) => {
                let a: Vec<String> = alts.iter().map(|s| strs(s)).collect();
                format!("Some(&[{}])", a.join(", "))
            }
        };
        let _ = writeln!(
            out,
            "    AiEntry {{ ai: {:?}, fnc1: {}, dl_attr: {}, components: &[{}], req: &[{}], ex: {}, dlpkey: {}, title: {:?} }},",
            e.ai,
            e.fnc1,
            e.dl_attr,
            comps.join(", "),
            req.join(", "),
            strs(&e.ex),
            dlpkey,
            e.title
        );
    }
    out.push_str("];\n");
    let idx: Vec<String> = index.iter().map(u16::to_string).collect();
    let _ = writeln!(
        out,
        "pub(crate) static AI_INDEX: [u16; 11100] = [{}];",
        idx.join(",")
    );
    let dest =
        PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("gs1_ai_table.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
}
