//! `linectl gs1`: parse a GS1 code in any syntax, or build a market's unit code, and
//! print it as JSON (elements, HRI, element string, Digital Link). Only printing and
//! exit codes live here; parsing is `linectl::gs1`, market rules `linectl::market`.

use std::process::ExitCode;

use linectl::gs1::Gs1Code;
use linectl::market::{Market, Product, UnitData};
use serde::Serialize;

use super::EXIT_REJECTED;

/// Digital Link base used when none is given.
const DEFAULT_DL_BASE: &str = "https://id.gs1.org";

/// `linectl gs1` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Gs1Cmd {
    /// Parse a GS1 code (bracketed `(01)…`, element string with GS or `^`, scanner data
    /// `]d2…`, or a Digital Link URI) and print it as JSON.
    Parse {
        /// The code.
        input: String,
        /// Base of the printed Digital Link URI.
        #[arg(long, default_value = DEFAULT_DL_BASE)]
        base: String,
    },
    /// Build the unit code of a market from product data and a serial, and print it as
    /// JSON; a code that breaks the market's rules is rejected (exit status 2).
    Build {
        /// Market id: us-dscsa, eu-fmd, cn-nmpa, br-anvisa, ru-crypto, tr-its, sa-rsd,
        /// in-export.
        #[arg(long)]
        market: Market,
        /// GTIN (8, 12, 13 or 14 digits).
        #[arg(long)]
        gtin: String,
        /// Serial number (AI 21).
        #[arg(long)]
        serial: String,
        /// Batch / lot (AI 10).
        #[arg(long, default_value = "")]
        batch: String,
        /// Expiry YYMMDD (AI 17).
        #[arg(long, default_value = "")]
        expiry: String,
        /// Further AIs as `AI=VALUE`, repeatable: national AIs (e.g. `710=01234562`)
        /// or per-unit AIs (Russia: `91=…`, `92=…`).
        #[arg(long = "ai", value_name = "AI=VALUE")]
        ais: Vec<String>,
        /// Base of the printed Digital Link URI.
        #[arg(long, default_value = DEFAULT_DL_BASE)]
        base: String,
    },
}

/// The JSON printed for a code.
#[derive(Debug, Serialize)]
struct CodeJson<'a> {
    elements: &'a [linectl::gs1::Element],
    hri: String,
    element_string: String,
    digital_link: Option<String>,
}

fn print_code(code: &Gs1Code, base: &str) -> anyhow::Result<()> {
    let json = CodeJson {
        elements: code.elements(),
        hri: code.hri(),
        element_string: code.element_string(),
        // A code without a Digital Link primary key has no URI; that is not an error.
        digital_link: code.digital_link(base).ok(),
    };
    println!("{}", serde_json::to_string(&json)?);
    Ok(())
}

fn rejected(what: impl std::fmt::Display) -> ExitCode {
    eprintln!("linectl: rejected: {what}");
    ExitCode::from(EXIT_REJECTED)
}

/// Run the command.
pub fn run(cmd: Gs1Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Gs1Cmd::Parse { input, base } => match Gs1Code::parse(&input) {
            Ok(code) => {
                print_code(&code, &base)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(rejected(e)),
        },
        Gs1Cmd::Build {
            market,
            gtin,
            serial,
            batch,
            expiry,
            ais,
            base,
        } => {
            let mut product = Product {
                gtin,
                national_ais: Vec::new(),
            };
            let mut unit = UnitData {
                serial,
                batch,
                expiry,
                extra: Vec::new(),
            };
            for pair in &ais {
                let Some((ai, value)) = pair.split_once('=') else {
                    return Ok(rejected(format!("--ai `{pair}`: expected AI=VALUE")));
                };
                let entry = (ai.to_string(), value.to_string());
                if market.spec().unit_extra_ais.contains(&ai) {
                    unit.extra.push(entry);
                } else {
                    product.national_ais.push(entry);
                }
            }
            match market.build(&product, &unit) {
                Ok(code) => {
                    print_code(&code, &base)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(rejected(e)),
            }
        }
    }
}
