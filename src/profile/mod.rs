//! Line profiles: one TOML file per line (devices, distances, speeds, product and
//! market, thresholds), loaded with the `config` crate, overridable from the
//! environment (`LINECTL__SECTION__KEY`, e.g. `LINECTL__PRINTER__ADDRESS=127.0.0.1:9100`),
//! typed (see [`model`]) and validated. Loading reports EVERY problem at once, each with
//! the file and the key path (`line-profiles/x.toml: product.gtin: check digit wrong
//! (expected 2)`). This module does not open devices or pools: it only says what the
//! line is and whether that description holds together.

pub mod aggregation;
pub mod model;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use model::*;
pub use validate::{Endpoint, parse_endpoint};

use crate::market::{BatchData, Product};

/// Environment variable prefix for overrides: `LINECTL__<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "LINECTL";

/// One problem in a profile: the file, the key path, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The profile file as given.
    pub file: String,
    /// Dotted key path, e.g. `product.gtin`; empty for whole-file problems.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// A profile that could not be loaded: every problem found, in file order of sections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileError {
    /// All problems (never empty).
    pub problems: Vec<Problem>,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems for one file.
pub(crate) struct Problems {
    file: String,
    list: Vec<Problem>,
}

impl Problems {
    fn new(file: &str) -> Problems {
        Problems {
            file: file.to_string(),
            list: Vec::new(),
        }
    }

    /// Record a problem at `key`.
    pub(crate) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            file: self.file.clone(),
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Section names, in the order they are checked and reported.
const SECTIONS: [&str; 13] = [
    "line",
    "product",
    "batch",
    "plc",
    "printer",
    "camera",
    "geometry",
    "verification",
    "serials",
    "hmi",
    "epcis",
    "log",
    "aggregation",
];

/// Sections that may be left out (all their fields have defaults).
const OPTIONAL_SECTIONS: [&str; 5] = ["batch", "verification", "hmi", "epcis", "log"];

impl Profile {
    /// Load and validate the profile at `path`, with overrides from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        Self::load_with_env(path, None)
    }

    /// Load and validate the profile at `path`; `env` replaces the process environment
    /// as the source of `LINECTL__…` overrides when given (tests, replays).
    pub fn load_with_env(
        path: &Path,
        env: Option<BTreeMap<String, String>>,
    ) -> Result<Profile, ProfileError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&file, &text, env),
            Err(e) => Err(ProfileError {
                problems: vec![Problem {
                    file,
                    key: String::new(),
                    message: format!("cannot read: {e}"),
                }],
            }),
        }
    }

    /// Load and validate a profile from TOML text; `file` names it in problems.
    pub fn from_toml(
        file: &str,
        text: &str,
        env: Option<BTreeMap<String, String>>,
    ) -> Result<Profile, ProfileError> {
        let mut problems = Problems::new(file);
        let sections = parse(text, env, &mut problems);
        validate::validate(&sections, &mut problems);
        let profile = sections.complete();
        if let Some(p) = &profile
            && problems.list.is_empty()
        {
            validate::validate_code(p, &mut problems);
        }
        match profile {
            Some(p) if problems.list.is_empty() => Ok(p),
            _ => {
                if problems.list.is_empty() {
                    problems.push("", "profile could not be read");
                }
                Err(ProfileError {
                    problems: problems.list,
                })
            }
        }
    }

    /// The product master data as the market rules take it.
    pub fn market_product(&self) -> Product {
        Product {
            gtin: self.product.gtin.clone(),
            national_ais: self
                .product
                .national_ais
                .iter()
                .map(|(a, v)| (a.clone(), v.clone()))
                .collect(),
        }
    }

    /// The batch defaults as market batch data, when both lot and expiry are set.
    pub fn default_batch(&self) -> Option<BatchData> {
        Some(BatchData {
            batch: self.batch.lot.clone()?,
            expiry: self.batch.expiry.clone()?,
        })
    }
}

/// Every section that parsed; validation runs each rule whose sections are here, so a
/// section that does not parse hides no problem of the others.
#[derive(Default)]
pub(crate) struct Sections {
    pub(crate) line: Option<LineSection>,
    pub(crate) product: Option<ProductSection>,
    pub(crate) batch: Option<BatchSection>,
    pub(crate) plc: Option<PlcSection>,
    pub(crate) printer: Option<PrinterSection>,
    pub(crate) camera: Option<CameraSection>,
    pub(crate) geometry: Option<GeometrySection>,
    pub(crate) verification: Option<VerificationSection>,
    pub(crate) serials: Option<SerialsSection>,
    pub(crate) hmi: Option<HmiSection>,
    pub(crate) epcis: Option<EpcisSection>,
    pub(crate) log: Option<LogSection>,
    pub(crate) aggregation: Option<Option<aggregation::AggregationSection>>,
}

impl Sections {
    /// The profile, when every section parsed.
    fn complete(self) -> Option<Profile> {
        Some(Profile {
            line: self.line?,
            product: self.product?,
            batch: self.batch?,
            plc: self.plc?,
            printer: self.printer?,
            camera: self.camera?,
            geometry: self.geometry?,
            verification: self.verification?,
            serials: self.serials?,
            hmi: self.hmi?,
            epcis: self.epcis?,
            log: self.log?,
            aggregation: self.aggregation?,
        })
    }
}

/// Parse the merged TOML + environment into sections, one section at a time so that a
/// bad section does not hide the problems of the others.
fn parse(text: &str, env: Option<BTreeMap<String, String>>, problems: &mut Problems) -> Sections {
    let env_source = env.map(|m| m.into_iter().collect::<config::Map<String, String>>());
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(env_source),
        )
        .build();
    let cfg = match built {
        Ok(cfg) => cfg,
        Err(e) => {
            problems.push("", format!("not valid TOML: {}", one_line(&e.to_string())));
            return Sections::default();
        }
    };
    let mut table: BTreeMap<String, config::Value> = match cfg.try_deserialize() {
        Ok(t) => t,
        Err(e) => {
            problems.push("", e.to_string());
            return Sections::default();
        }
    };
    for name in table.keys() {
        if !SECTIONS.contains(&name.as_str()) {
            problems.push(
                name.clone(),
                format!("unknown section (known: {})", SECTIONS.join(", ")),
            );
        }
    }
    Sections {
        line: section(&mut table, "line", problems),
        product: section(&mut table, "product", problems),
        batch: section(&mut table, "batch", problems),
        plc: section(&mut table, "plc", problems),
        printer: section(&mut table, "printer", problems),
        camera: section(&mut table, "camera", problems),
        geometry: section(&mut table, "geometry", problems),
        verification: section(&mut table, "verification", problems),
        serials: section(&mut table, "serials", problems),
        hmi: section(&mut table, "hmi", problems),
        epcis: section(&mut table, "epcis", problems),
        log: section(&mut table, "log", problems),
        aggregation: match table.contains_key("aggregation") {
            true => section(&mut table, "aggregation", problems).map(Some),
            false => Some(None),
        },
    }
}

/// Deserialize one section; a missing optional section takes its defaults (by
/// deserializing an empty table, so the defaults are the serde ones).
fn section<T: serde::de::DeserializeOwned>(
    table: &mut BTreeMap<String, config::Value>,
    name: &str,
    problems: &mut Problems,
) -> Option<T> {
    let value = match table.remove(name) {
        Some(v) => v,
        None if OPTIONAL_SECTIONS.contains(&name) => {
            config::Value::new(None, config::ValueKind::Table(config::Map::new()))
        }
        None => {
            problems.push(name, "section is missing");
            return None;
        }
    };
    let mut value = value;
    // Required keys that are absent, all reported (serde stops at the first).
    let missing: Vec<&str> = required_keys(name)
        .iter()
        .copied()
        .filter(|k| match &value.kind {
            config::ValueKind::Table(t) => !t.contains_key(*k),
            _ => false,
        })
        .collect();
    for k in &missing {
        problems.push(format!("{name}.{k}"), "required");
    }
    let mut failed = !missing.is_empty();
    // Keys already reported: a removed bad key comes back as "missing"; say it once.
    let mut reported: Vec<String> = missing.iter().map(|k| k.to_string()).collect();
    // On an error at a key, drop that key and try again, so that one bad key hides no
    // other problem of the section; the section still counts as failed.
    for _ in 0..64 {
        match value.clone().try_deserialize::<T>() {
            Ok(v) => return if failed { None } else { Some(v) },
            Err(e) => {
                failed = true;
                let (key, message) = describe(e);
                let (path, message) = refine(name, key, message);
                let rel = path
                    .strip_prefix(name)
                    .unwrap_or("")
                    .trim_start_matches('.')
                    .to_string();
                if !reported.contains(&rel) {
                    problems.push(path, message);
                    reported.push(rel.clone());
                }
                if rel.is_empty() || !remove_key(&mut value, &rel) {
                    return None;
                }
            }
        }
    }
    None
}

/// Keys a section must have (no default).
fn required_keys(section: &str) -> &'static [&'static str] {
    match section {
        "line" => &["id", "site"],
        "product" => &["gtin", "name", "market"],
        "plc" | "printer" | "camera" => &["kind", "address"],
        "geometry" => &[
            "print_to_camera_mm",
            "camera_to_reject_mm",
            "conveyor_speed_mm_s",
            "pitch_mm",
        ],
        "serials" => &["source"],
        _ => &[],
    }
}

/// Remove the key at dotted `path` from a table value; false when it is not there.
fn remove_key(value: &mut config::Value, path: &str) -> bool {
    let config::ValueKind::Table(table) = &mut value.kind else {
        return false;
    };
    match path.split_once('.') {
        None => table.remove(path).is_some(),
        Some((head, rest)) => match table.get_mut(head) {
            Some(inner) => remove_key(inner, rest),
            None => false,
        },
    }
}

/// Split a `config` error into the key it names (relative to the section) and the
/// message without the key and origin decorations.
fn describe(e: config::ConfigError) -> (Option<String>, String) {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key,
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, message) = describe(*error);
            (key.or(inner_key), message)
        }
        config::ConfigError::NotFound(key) => (Some(key), "required".to_string()),
        other => (None, one_line(&other.to_string())),
    }
}

/// Turn serde's "missing field `x`" / "unknown field `x`, expected …" into a key path
/// ending in `x`.
fn refine(section: &str, key: Option<String>, message: String) -> (String, String) {
    let mut path = section.to_string();
    if let Some(k) = key.filter(|k| !k.is_empty()) {
        path.push('.');
        path.push_str(&k);
    }
    for (prefix, label) in [
        ("missing field `", "required"),
        ("unknown field `", "unknown key"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((field, tail)) = rest.split_once('`')
        {
            path.push('.');
            path.push_str(field);
            let tail = tail.trim_start_matches(", ").trim();
            let message = if tail.is_empty() {
                label.to_string()
            } else {
                format!("{label} ({tail})")
            };
            return (path, message);
        }
    }
    if let Some((_, value)) = message.split_once("does not have variant constructor ") {
        let allowed = allowed_values(&path)
            .map(|a| format!(" (allowed: {a})"))
            .unwrap_or_default();
        let message = format!("unknown variant `{value}`{allowed}");
        return (path, message);
    }
    (path, message)
}

/// The values an enum-typed key takes, for messages.
fn allowed_values(path: &str) -> Option<&'static str> {
    Some(match path {
        "product.market" => {
            "us-dscsa, eu-fmd, cn-nmpa, br-anvisa, ru-crypto, tr-its, sa-rsd, in-export"
        }
        "plc.kind" => "modbus-tcp, modbus-rtu",
        "printer.kind" => "zpl, zipher, markem",
        "camera.kind" => "dir, tcp-stream",
        "verification.min_grade" => "A, B, C, D, F",
        "serials.source" => "import, generate-random, generate-sequential, site-server",
        "epcis.identifiers" => "digital-link, epc-urn",
        _ => return None,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
