//! Reading serial lists from the site server or the national operator: CSV, plain JSON
//! and the `SNCollection` JSON document. It only parses; checking serials against the
//! market and against the pool is the importer's job.
//!
//! # Formats
//!
//! **CSV** (UTF-8, comma-separated): one serial per row, first column. An optional
//! header row whose first field is `serial` (any case). Russian codes carry two more
//! columns, the AI (91) verification key and the AI (92) crypto code:
//! `serial,ai91,ai92`. Empty lines are skipped.
//!
//! **JSON list**: an array whose items are serial strings or objects
//! `{"serial": "...", "ai91": "...", "ai92": "..."}` (the AI fields only for Russia).
//!
//! **SNCollection** (linectl's rendering of the OPEN-SCS SNCollection a pool manager
//! returns from SNRequestUnallocated):
//!
//! ```json
//! {
//!   "type": "SNCollection",
//!   "version": 1,
//!   "snCollectionId": "site-42/2026-11-30/0007",
//!   "requestToken": "5f1c0f6e...",
//!   "gtin": "09506000134352",
//!   "market": "eu-fmd",
//!   "snFormat": "SN",
//!   "serialNumbers": ["A1B2C3", "X9Y8Z7"]
//! }
//! ```
//!
//! `type`, `version` (1), `snCollectionId`, `gtin` and `serialNumbers` are required;
//! `requestToken` ties the collection to a request linectl sent (see
//! `Pool::receive_collection`); `market` is optional; `snFormat` is `SN` (serials only)
//! or `SN+91+92` (items are `{"serial","ai91","ai92"}` objects, Russia).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::market::Market;

/// The file format of a serial list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values.
    Csv,
    /// A JSON list or an SNCollection document.
    Json,
}

impl Format {
    /// Guess the format from a file name's extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" | "txt" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// One serial read from a source, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialRecord {
    /// 1-based line (CSV) or item number (JSON).
    pub at: u64,
    /// The serial (AI 21).
    pub serial: String,
    /// Russia: the AI (91) verification key.
    pub ai91: Option<String>,
    /// Russia: the AI (92) crypto code.
    pub ai92: Option<String>,
}

/// The header of an SNCollection document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionHeader {
    /// The collection's id (`snCollectionId`).
    pub id: String,
    /// The request token it answers, if any.
    pub request_token: Option<String>,
    /// The GTIN (as written).
    pub gtin: String,
    /// The market, if named.
    pub market: Option<Market>,
}

/// An opened source: the collection header (SNCollection only) and its records.
pub struct Source {
    /// Present for SNCollection documents.
    pub header: Option<CollectionHeader>,
    /// The serials, in file order; an `Err` stops the import.
    pub records: Box<dyn Iterator<Item = Result<SerialRecord, SourceError>>>,
}

/// A file that cannot be read as a serial list.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not in the expected format.
    #[error("{path}: {at}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// Where (line, item or byte position).
        at: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonItem {
    Plain(String),
    Full {
        serial: String,
        ai91: Option<String>,
        ai92: Option<String>,
    },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonCollection {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    sn_collection_id: String,
    request_token: Option<String>,
    gtin: String,
    market: Option<String>,
    sn_format: Option<String>,
    serial_numbers: Vec<JsonItem>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonDoc {
    List(Vec<JsonItem>),
    Collection(JsonCollection),
}

fn item(at: u64, it: JsonItem) -> SerialRecord {
    match it {
        JsonItem::Plain(serial) => SerialRecord {
            at,
            serial,
            ai91: None,
            ai92: None,
        },
        JsonItem::Full { serial, ai91, ai92 } => SerialRecord {
            at,
            serial,
            ai91,
            ai92,
        },
    }
}

/// Open `path` as a serial list of `format` (guessed from the extension when `None`).
pub fn open(path: &Path, format: Option<Format>) -> Result<Source, SourceError> {
    let name = path.display().to_string();
    let format =
        format
            .or_else(|| Format::from_path(path))
            .ok_or_else(|| SourceError::Malformed {
                path: name.clone(),
                at: "file name".into(),
                reason: "cannot tell the format from the extension; give --format csv|json".into(),
            })?;
    let file = File::open(path).map_err(|source| SourceError::Io {
        path: name.clone(),
        source,
    })?;
    match format {
        Format::Csv => Ok(Source {
            header: None,
            records: Box::new(csv_records(name, file)),
        }),
        Format::Json => json_source(name, file),
    }
}

fn csv_records(
    name: String,
    file: File,
) -> impl Iterator<Item = Result<SerialRecord, SourceError>> {
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let mut first = true;
    reader.into_records().filter_map(move |r| {
        let rec = match r {
            Ok(rec) => rec,
            Err(e) => {
                let at = e
                    .position()
                    .map(|p| format!("line {}", p.line()))
                    .unwrap_or_default();
                return Some(Err(SourceError::Malformed {
                    path: name.clone(),
                    at,
                    reason: e.to_string(),
                }));
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let is_first = std::mem::replace(&mut first, false);
        let serial = rec.get(0).unwrap_or("");
        if is_first && serial.eq_ignore_ascii_case("serial") {
            return None;
        }
        if rec.len() == 1 && serial.is_empty() {
            return None;
        }
        if rec.len() != 1 && rec.len() != 3 {
            return Some(Err(SourceError::Malformed {
                path: name.clone(),
                at: format!("line {line}"),
                reason: format!(
                    "expected 1 column (serial) or 3 (serial,ai91,ai92), found {}",
                    rec.len()
                ),
            }));
        }
        let opt = |i: usize| rec.get(i).map(str::to_string);
        Some(Ok(SerialRecord {
            at: line,
            serial: serial.to_string(),
            ai91: opt(1),
            ai92: opt(2),
        }))
    })
}

fn json_source(name: String, file: File) -> Result<Source, SourceError> {
    let doc: JsonDoc =
        serde_json::from_reader(BufReader::with_capacity(1 << 20, file)).map_err(|e| {
            SourceError::Malformed {
                path: name.clone(),
                at: format!("line {} column {}", e.line(), e.column()),
                reason: format!("not a JSON list of serials nor an SNCollection document ({e})"),
            }
        })?;
    let bad = |reason: String| SourceError::Malformed {
        path: name.clone(),
        at: "document".into(),
        reason,
    };
    match doc {
        JsonDoc::List(items) => Ok(Source {
            header: None,
            records: Box::new(
                items
                    .into_iter()
                    .zip(1u64..)
                    .map(|(it, at)| Ok(item(at, it))),
            ),
        }),
        JsonDoc::Collection(c) => {
            if c.kind != "SNCollection" || c.version != 1 {
                return Err(bad(format!(
                    "`type` must be \"SNCollection\" and `version` 1, got {:?} and {}",
                    c.kind, c.version
                )));
            }
            let market = match c.market {
                Some(m) => Some(m.parse::<Market>().map_err(|e| bad(e.to_string()))?),
                None => None,
            };
            let with_tail = match c.sn_format.as_deref() {
                None | Some("SN") => false,
                Some("SN+91+92") => true,
                Some(other) => {
                    return Err(bad(format!("unknown snFormat `{other}` (SN or SN+91+92)")));
                }
            };
            let path = name.clone();
            let records = c
                .serial_numbers
                .into_iter()
                .zip(1u64..)
                .map(move |(it, at)| {
                    let r = item(at, it);
                    let has_tail = r.ai91.is_some() && r.ai92.is_some();
                    let has_any = r.ai91.is_some() || r.ai92.is_some();
                    if (with_tail && !has_tail) || (!with_tail && has_any) {
                        return Err(SourceError::Malformed {
                            path: path.clone(),
                            at: format!("serialNumbers item {at}"),
                            reason: format!(
                                "snFormat {} {} ai91/ai92",
                                if with_tail { "SN+91+92" } else { "SN" },
                                if with_tail { "needs" } else { "forbids" }
                            ),
                        });
                    }
                    Ok(r)
                });
            Ok(Source {
                header: Some(CollectionHeader {
                    id: c.sn_collection_id,
                    request_token: c.request_token,
                    gtin: c.gtin,
                    market,
                }),
                records: Box::new(records),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    fn all(s: Source) -> Vec<SerialRecord> {
        s.records.map(|r| r.unwrap()).collect()
    }

    #[test]
    fn csv_with_header_and_tail_columns() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a.csv", "serial\nA1\n\nB2\n");
        let r = all(open(&p, None).unwrap());
        assert_eq!(
            r.iter().map(|r| r.serial.as_str()).collect::<Vec<_>>(),
            ["A1", "B2"]
        );
        let p = write(d.path(), "a2.csv", "serial\nA1\nB2\n\"Q,\"\"1\"\n");
        let r = all(open(&p, None).unwrap());
        assert_eq!((r[1].at, r[2].serial.as_str()), (3, "Q,\"1"));
        let p = write(d.path(), "b.csv", "ABCDEFGHIJKLM,AB12,CRYPTO\n");
        let r = all(open(&p, None).unwrap());
        assert_eq!(r[0].ai91.as_deref(), Some("AB12"));
        let p = write(d.path(), "c.csv", "A,B\n");
        let e = open(&p, None).unwrap().records.next().unwrap().unwrap_err();
        assert!(e.to_string().contains("expected 1 column"), "{e}");
    }

    #[test]
    fn json_list_and_collection() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a.json", r#"["A1", {"serial": "B2"}]"#);
        assert_eq!(all(open(&p, None).unwrap()).len(), 2);
        let p = write(
            d.path(),
            "c.json",
            r#"{"type":"SNCollection","version":1,"snCollectionId":"c1","requestToken":"t1",
                "gtin":"09506000134352","market":"eu-fmd","snFormat":"SN","serialNumbers":["X1","X2","X3"]}"#,
        );
        let s = open(&p, None).unwrap();
        let h = s.header.clone().unwrap();
        assert_eq!(
            (h.id.as_str(), h.request_token.as_deref()),
            ("c1", Some("t1"))
        );
        assert_eq!(h.market, Some(Market::EuFmd));
        assert_eq!(all(s).len(), 3);
    }

    #[test]
    fn malformed_json_names_the_place() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "bad.json", "[\"A1\",\n 42]");
        let e = open(&p, None).err().unwrap().to_string();
        assert!(e.contains("bad.json") && e.contains("line"), "{e}");
        let p = write(
            d.path(),
            "bad2.json",
            r#"{"type":"SNList","version":1,"snCollectionId":"c","gtin":"1","serialNumbers":[]}"#,
        );
        assert!(
            open(&p, None)
                .err()
                .unwrap()
                .to_string()
                .contains("SNCollection")
        );
        let p = write(d.path(), "x.bin", "");
        assert!(
            open(&p, None)
                .err()
                .unwrap()
                .to_string()
                .contains("--format")
        );
    }
}
