//! `[aggregation]`: the optional profile section of the case and pallet stations (packing
//! levels, SSCC scheme or case GTIN of the case labels, the nominal layout of a case layer and of a pallet layer in the
//! station camera's frame, the station devices) and its validation. Absent means the
//! line does not aggregate. It owns no station logic (that is `crate::aggregation`).

use serde::Deserialize;

use super::Problems;
use super::validate::{Endpoint, parse_endpoint};

/// `[aggregation]`: units into cases, cases onto pallets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationSection {
    /// GS1 company prefix of the SSCCs printed on case and pallet labels (4-12 digits).
    pub company_prefix: String,
    /// What identifies a case on its label: `sscc` (an SSCC from `company_prefix` and
    /// `case_extension`) or `gtin-serial` (the case's own GTIN `case_gtin` with a
    /// serial from the serial pool; the case's EPC is then its SGTIN). Pallets always
    /// carry an SSCC. Default: `sscc`.
    #[serde(default)]
    pub case_label: CaseLabel,
    /// GTIN-14 of the case as a trade item of its own, for `case_label = "gtin-serial"`
    /// (its serials must be in the serial pool). Default: none.
    #[serde(default)]
    pub case_gtin: Option<String>,
    /// With `case_label = "gtin-serial"`: print the batch's expiry (17) and lot (10)
    /// from `[batch]` on each case label too, as the unit codes carry them.
    /// Default: false (the label carries (01) and (21) only).
    #[serde(default)]
    pub case_label_batch: bool,
    /// SSCC extension digit of case labels. Default: 0.
    #[serde(default)]
    pub case_extension: u8,
    /// SSCC extension digit of pallet labels. Default: 1.
    #[serde(default = "default_pallet_extension")]
    pub pallet_extension: u8,
    /// Packing level: units in one full case. Default: 120.
    #[serde(default = "default_units_per_case")]
    pub units_per_case: u32,
    /// Packing level: cases on one full pallet. Default: 4.
    #[serde(default = "default_cases_per_pallet")]
    pub cases_per_pallet: u32,
    /// Where the unit codes of a case layer sit in the case camera's frame.
    /// Default: 10 rows × 12 columns over a 2448×2048 frame.
    #[serde(default = "default_case_layout")]
    pub case_layout: LayoutSection,
    /// Where the case labels of a pallet layer sit in the pallet camera's frame.
    /// Default: 2 rows × 2 columns over a 2448×2048 frame.
    #[serde(default = "default_pallet_layout")]
    pub pallet_layout: LayoutSection,
    /// The case station's devices.
    #[serde(default = "default_case_station")]
    pub case_station: StationSection,
    /// The pallet station's devices.
    #[serde(default = "default_pallet_station")]
    pub pallet_station: StationSection,
}

/// What identifies a case on its label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseLabel {
    /// An SSCC (AI 00).
    #[default]
    Sscc,
    /// The case GTIN (AI 01) and a serial (AI 21) from the serial pool.
    GtinSerial,
}

/// A nominal grid of symbols in a frame: `rows × cols` equal cells over the rectangle
/// `x, y, width, height` (pixels); one symbol is expected near the middle of each cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutSection {
    /// Rows of symbols.
    pub rows: u32,
    /// Columns of symbols.
    pub cols: u32,
    /// Left edge of the grid, pixels. Default: 0.
    #[serde(default)]
    pub x: u32,
    /// Top edge of the grid, pixels. Default: 0.
    #[serde(default)]
    pub y: u32,
    /// Grid width, pixels. Default: 2448.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Grid height, pixels. Default: 2048.
    #[serde(default = "default_height")]
    pub height: u32,
}

/// The devices of one aggregation station.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    /// Label printer kind (`zpl`, `zipher`, `markem`). Default: `zpl`.
    #[serde(default = "default_printer_kind")]
    pub printer_kind: String,
    /// Label printer address (`host:port` or a serial device).
    /// Default: `127.0.0.1:9201` (case), `127.0.0.1:9202` (pallet).
    pub printer_address: String,
    /// Camera over the open case / pallet layer and the label, `host:port` of a frame
    /// stream. Default: `127.0.0.1:7201` (case), `127.0.0.1:7202` (pallet).
    pub camera_address: String,
    /// The label printer's job (ZPL: the driver's template). Default: `dm`.
    #[serde(default = "default_label_job")]
    pub label_job: String,
    /// Time to wait for a device round trip or a frame, ms. Default: 2000.
    #[serde(default = "default_station_timeout_ms")]
    pub timeout_ms: u64,
}

const fn default_pallet_extension() -> u8 {
    1
}
const fn default_units_per_case() -> u32 {
    120
}
const fn default_cases_per_pallet() -> u32 {
    4
}
const fn default_width() -> u32 {
    2448
}
const fn default_height() -> u32 {
    2048
}
const fn default_station_timeout_ms() -> u64 {
    2000
}
fn default_label_job() -> String {
    "dm".to_string()
}
fn default_printer_kind() -> String {
    "zpl".to_string()
}
fn default_case_layout() -> LayoutSection {
    LayoutSection {
        rows: 10,
        cols: 12,
        x: 0,
        y: 0,
        width: default_width(),
        height: default_height(),
    }
}
fn default_pallet_layout() -> LayoutSection {
    LayoutSection {
        rows: 2,
        cols: 2,
        ..default_case_layout()
    }
}
fn default_case_station() -> StationSection {
    StationSection {
        printer_kind: default_printer_kind(),
        printer_address: "127.0.0.1:9201".into(),
        camera_address: "127.0.0.1:7201".into(),
        label_job: default_label_job(),
        timeout_ms: default_station_timeout_ms(),
    }
}
fn default_pallet_station() -> StationSection {
    StationSection {
        printer_address: "127.0.0.1:9202".into(),
        camera_address: "127.0.0.1:7202".into(),
        ..default_case_station()
    }
}

impl LayoutSection {
    /// Number of cells.
    pub fn cells(&self) -> u32 {
        self.rows.saturating_mul(self.cols)
    }
}

/// Check the section, adding every problem under `aggregation.*`.
pub(crate) fn validate(a: &AggregationSection, out: &mut Problems) {
    if !(4..=12).contains(&a.company_prefix.len())
        || !a.company_prefix.bytes().all(|b| b.is_ascii_digit())
    {
        out.push("aggregation.company_prefix", "must be 4-12 digits");
    }
    match (a.case_label, &a.case_gtin) {
        (CaseLabel::GtinSerial, None) => out.push(
            "aggregation.case_gtin",
            "case_label = \"gtin-serial\" needs the case GTIN (a GTIN-14)",
        ),
        (_, Some(g)) => {
            if let Err(e) = crate::gs1::container::check_gtin14(g) {
                out.push("aggregation.case_gtin", e.to_string());
            }
            if a.case_label == CaseLabel::Sscc {
                out.push(
                    "aggregation.case_gtin",
                    "only used with case_label = \"gtin-serial\" (case labels are SSCCs)",
                );
            }
        }
        (CaseLabel::Sscc, None) => {}
    }
    if a.case_label_batch && a.case_label != CaseLabel::GtinSerial {
        out.push(
            "aggregation.case_label_batch",
            "only used with case_label = \"gtin-serial\"",
        );
    }
    if a.case_extension > 9 {
        out.push("aggregation.case_extension", "must be a digit 0-9");
    }
    if a.pallet_extension > 9 {
        out.push("aggregation.pallet_extension", "must be a digit 0-9");
    }
    if a.case_extension == a.pallet_extension && a.case_extension <= 9 {
        out.push(
            "aggregation.pallet_extension",
            "must differ from case_extension (both levels draw serial references from their own counter)",
        );
    }
    layout("aggregation.case_layout", &a.case_layout, out);
    layout("aggregation.pallet_layout", &a.pallet_layout, out);
    if a.units_per_case == 0 {
        out.push("aggregation.units_per_case", "must be at least 1");
    } else if a.units_per_case > a.case_layout.cells() {
        out.push(
            "aggregation.units_per_case",
            format!(
                "{} units do not fit the {} cells of case_layout",
                a.units_per_case,
                a.case_layout.cells()
            ),
        );
    }
    if a.cases_per_pallet == 0 {
        out.push("aggregation.cases_per_pallet", "must be at least 1");
    } else if a.cases_per_pallet > a.pallet_layout.cells() {
        out.push(
            "aggregation.cases_per_pallet",
            format!(
                "{} cases do not fit the {} cells of pallet_layout",
                a.cases_per_pallet,
                a.pallet_layout.cells()
            ),
        );
    }
    station("aggregation.case_station", &a.case_station, out);
    station("aggregation.pallet_station", &a.pallet_station, out);
}

fn layout(key: &str, l: &LayoutSection, out: &mut Problems) {
    if l.rows == 0 || l.cols == 0 {
        out.push(format!("{key}.rows"), "rows and cols must be at least 1");
    }
    if l.width == 0 || l.height == 0 {
        out.push(
            format!("{key}.width"),
            "width and height must be at least 1",
        );
    }
    if l.rows > 0 && l.cols > 0 && (l.width / l.cols < 40 || l.height / l.rows < 40) {
        out.push(
            key.to_string(),
            "cells smaller than 40×40 pixels cannot hold a readable symbol",
        );
    }
}

fn station(key: &str, s: &StationSection, out: &mut Problems) {
    if ![
        "zpl",
        "zebra",
        "zipher",
        "videojet",
        "markem",
        "markem-imaje",
    ]
    .contains(&s.printer_kind.as_str())
    {
        out.push(
            format!("{key}.printer_kind"),
            format!(
                "unknown printer kind {:?} (known: zpl, zipher, markem)",
                s.printer_kind
            ),
        );
    }
    if let Err(msg) = parse_endpoint(&s.printer_address) {
        out.push(format!("{key}.printer_address"), msg);
    }
    match parse_endpoint(&s.camera_address) {
        Ok(Endpoint::Tcp { .. }) => {}
        Ok(Endpoint::Serial { .. }) => out.push(
            format!("{key}.camera_address"),
            "the station camera is a frame stream: needs `host:port`",
        ),
        Err(msg) => out.push(format!("{key}.camera_address"), msg),
    }
    if s.timeout_ms == 0 {
        out.push(format!("{key}.timeout_ms"), "must be above 0");
    }
}

#[cfg(test)]
mod tests {
    use crate::profile::Profile;

    fn with(section: &str) -> Result<Profile, crate::profile::ProfileError> {
        let base = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/line-profiles/eu-fmd-carton.toml"
        ))
        .unwrap_or_default();
        Profile::from_toml(
            "p.toml",
            &format!("{base}\n{section}"),
            Some(Default::default()),
        )
    }

    #[test]
    fn absent_means_no_aggregation_and_defaults_fill_in() {
        assert_eq!(with("").map(|p| p.aggregation.is_none()).ok(), Some(true));
        let p =
            with("[aggregation]\ncompany_prefix = \"9506000\"\n").unwrap_or_else(|e| panic!("{e}"));
        let a = p.aggregation.unwrap_or_else(|| panic!("section"));
        assert_eq!((a.units_per_case, a.case_layout.cells()), (120, 120));
        assert_eq!(a.pallet_station.printer_address, "127.0.0.1:9202");
    }

    #[test]
    fn a_case_gtin_label_needs_a_valid_gtin14() {
        let p = with(
            "[aggregation]\ncompany_prefix = \"9506000\"\ncase_label = \"gtin-serial\"\ncase_gtin = \"19506000134359\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let a = p.aggregation.unwrap_or_else(|| panic!("section"));
        assert_eq!(a.case_label, super::CaseLabel::GtinSerial);
        assert_eq!(a.case_gtin.as_deref(), Some("19506000134359"));
        for (section, want) in [
            ("case_label = \"gtin-serial\"\n", "needs the case GTIN"),
            (
                "case_label = \"gtin-serial\"\ncase_gtin = \"1950600013435\"\n",
                "GTIN-14",
            ),
            ("case_gtin = \"19506000134359\"\n", "only used with"),
            ("case_label = \"gtin\"\n", "unknown variant"),
            ("case_label_batch = true\n", "aggregation.case_label_batch"),
        ] {
            let e = with(&format!(
                "[aggregation]\ncompany_prefix = \"9506000\"\n{section}"
            ))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(e.contains("p.toml"), "{section}: {e}");
            assert!(e.contains(want), "{section}: {e}");
        }
    }

    #[test]
    fn the_case_gtin_must_not_be_the_product_gtin() {
        let base = with("").unwrap_or_else(|e| panic!("{e}"));
        let unit = base.product.gtin.clone();
        let e = with(&format!(
            "[aggregation]\ncompany_prefix = \"9506000\"\ncase_label = \"gtin-serial\"\ncase_gtin = \"{unit}\"\n"
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("p.toml: aggregation.case_gtin:") && e.contains("is the product's GTIN"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let e = with(
            "[aggregation]\ncompany_prefix = \"95x\"\ncase_extension = 12\nunits_per_case = 200\n\
             case_label = \"gtin-serial\"\ncase_gtin = \"19506000134358\"\n\
             [aggregation.case_station]\nprinter_kind = \"inkjet\"\nprinter_address = \"nohost\"\ncamera_address = \"/dev/ttyS0\"\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for key in [
            "aggregation.company_prefix",
            "aggregation.case_extension",
            "aggregation.units_per_case",
            "aggregation.case_station.printer_kind",
            "aggregation.case_station.printer_address",
            "aggregation.case_station.camera_address",
            "aggregation.case_gtin",
        ] {
            assert!(
                e.contains(&format!("p.toml: {key}:")),
                "{key} missing in:\n{e}"
            );
        }
    }
}
