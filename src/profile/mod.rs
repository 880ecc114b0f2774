//! Line profiles: one TOML file per line (devices, distances, speeds, product and
//! market, thresholds), loaded with the `config` crate, overridable from the
//! environment (`LINECTL__SECTION__KEY`, e.g. `LINECTL__PRINTER__ADDRESS=127.0.0.1:9100`),
//! typed (see [`model`]) and validated. Loading reports EVERY problem at once, each with
//! the file and the key path (`line-profiles/x.toml: product.gtin: check digit wrong
//! (expected 2)`). This module does not open devices or pools: it only says what the
//! line is and whether that description holds together.

pub mod model;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use model::*;

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
const SECTIONS: [&str; 11] = [
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
];

/// Sections that may be left out (all their fields have defaults).
const OPTIONAL_SECTIONS: [&str; 4] = ["batch", "verification", "hmi", "epcis"];

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
        let profile = parse(text, env, &mut problems);
        if let Some(p) = &profile {
            validate::validate(p, &mut problems);
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

/// Parse the merged TOML + environment into sections, one section at a time so that a
/// bad section does not hide the problems of the others. Returns the profile only when
/// every section parsed.
fn parse(
    text: &str,
    env: Option<BTreeMap<String, String>>,
    problems: &mut Problems,
) -> Option<Profile> {
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
            return None;
        }
    };
    let mut table: BTreeMap<String, config::Value> = match cfg.try_deserialize() {
        Ok(t) => t,
        Err(e) => {
            problems.push("", e.to_string());
            return None;
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
    let line = section::<LineSection>(&mut table, "line", problems);
    let product = section::<ProductSection>(&mut table, "product", problems);
    let batch = section::<BatchSection>(&mut table, "batch", problems);
    let plc = section::<PlcSection>(&mut table, "plc", problems);
    let printer = section::<PrinterSection>(&mut table, "printer", problems);
    let camera = section::<CameraSection>(&mut table, "camera", problems);
    let geometry = section::<GeometrySection>(&mut table, "geometry", problems);
    let verification = section::<VerificationSection>(&mut table, "verification", problems);
    let serials = section::<SerialsSection>(&mut table, "serials", problems);
    let hmi = section::<HmiSection>(&mut table, "hmi", problems);
    let epcis = section::<EpcisSection>(&mut table, "epcis", problems);
    Some(Profile {
        line: line?,
        product: product?,
        batch: batch?,
        plc: plc?,
        printer: printer?,
        camera: camera?,
        geometry: geometry?,
        verification: verification?,
        serials: serials?,
        hmi: hmi?,
        epcis: epcis?,
    })
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
    match value.try_deserialize::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            let (key, message) = describe(e);
            let (key, message) = refine(name, key, message);
            problems.push(key, message);
            None
        }
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
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((field, tail)) = rest.split_once('`') {
                path.push('.');
                path.push_str(field);
                let tail = tail.trim_start_matches(", ").trim();
                let message = if tail.is_empty() {
                    format!("{label}")
                } else {
                    format!("{label} ({tail})")
                };
                return (path, message);
            }
        }
    }
    (path, message)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
