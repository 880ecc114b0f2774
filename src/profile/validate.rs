//! Profile validation: field rules (GTIN check digit, addresses parse, positive
//! distances…) and cross-field rules (market allows the serial source, randomisation
//! check, decode deadline below the verdict deadline, NHRN AI valid for the market,
//! serial device needs baud, registers do not overlap). Every rule adds to the problem
//! list; none stops the others. Knows nothing about TOML: it sees typed sections.

use std::net::SocketAddr;

use super::model::*;
use super::{Problems, Sections};
use crate::market::{self, CodeTemplate, Market};

/// Run every rule whose sections parsed, adding problems.
pub(crate) fn validate(s: &Sections, out: &mut Problems) {
    if let Some(l) = &s.line {
        line(l, out);
    }
    if let Some(p) = &s.product {
        product(p, out);
    }
    let market = s.product.as_ref().map(|p| p.market);
    if let (Some(m), Some(b)) = (market, &s.batch) {
        batch(m, b, out);
    }
    if let Some(p) = &s.plc {
        plc(p, out);
    }
    if let Some(p) = &s.printer {
        printer(p, out);
    }
    if let Some(c) = &s.camera {
        camera(c, out);
    }
    let deadline = s.geometry.as_ref().and_then(|g| geometry(g, out));
    if let Some(v) = &s.verification {
        verification(v, deadline, out);
    }
    if let (Some(m), Some(sr)) = (market, &s.serials) {
        serials(m, sr, out);
    }
    if let Some(h) = &s.hmi {
        hmi(h, out);
    }
    if let Some(e) = &s.epcis {
        epcis(e, out);
    }
    if let Some(l) = &s.log
        && let Err(e) = tracing_subscriber::EnvFilter::try_new(&l.level)
    {
        out.push(
            "log.level",
            format!("not a tracing filter ({e}); e.g. \"info\" or \"linectl=debug,info\""),
        );
    }
    if let Some(Some(a)) = &s.aggregation {
        super::aggregation::validate(a, out);
        if let (Some(p), Some(cg)) = (&s.product, &a.case_gtin)
            && let (Ok(unit), Ok(case)) =
                (market::normalise_gtin(&p.gtin), market::normalise_gtin(cg))
            && unit == case
        {
            out.push(
                "aggregation.case_gtin",
                format!(
                    "{cg} is the product's GTIN ([product] gtin): a case is a trade item of its own and needs its own GTIN (e.g. another indicator digit)"
                ),
            );
        }
    }
}

/// With nothing else wrong, build a code from the batch defaults once: a code that
/// breaks its market's rules is an error before any printer sees it.
pub(crate) fn validate_code(p: &Profile, out: &mut Problems) {
    if let Some(batch) = p.default_batch()
        && let Err(e) = CodeTemplate::new(p.product.market, &p.market_product(), &batch)
    {
        out.push("product", format!("the unit code cannot be built: {e}"));
    }
}

fn line(l: &LineSection, out: &mut Problems) {
    if l.id.is_empty() || l.id.len() > 32 {
        out.push("line.id", "must be 1 to 32 characters");
    } else if !l
        .id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        out.push("line.id", "only letters, digits, `-` and `_` are allowed");
    }
    if let Err(msg) = check_site(&l.site) {
        out.push("line.site", msg);
    }
}

/// An SGLN EPC URN `urn:epc:id:sgln:C.L.E` (C + L = 12 digits, C 6–12 digits, E 1–20
/// characters) or a 13-digit GLN with its check digit.
pub(crate) fn check_site(site: &str) -> Result<(), String> {
    if let Some(rest) = site.strip_prefix("urn:epc:id:sgln:") {
        let parts: Vec<&str> = rest.split('.').collect();
        let [company, location, extension] = parts.as_slice() else {
            return Err(format!(
                "`{site}`: an SGLN URN has three parts, `urn:epc:id:sgln:<company prefix>.<location ref>.<extension>`"
            ));
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !digits(company) || !digits(location) || !(6..=12).contains(&company.len()) {
            return Err(format!(
                "`{site}`: company prefix (6–12 digits) and location reference must be digits"
            ));
        }
        if company.len() + location.len() != 12 {
            return Err(format!(
                "`{site}`: company prefix and location reference must have 12 digits together, found {}",
                company.len() + location.len()
            ));
        }
        if extension.is_empty() || extension.len() > 20 {
            return Err(format!("`{site}`: extension must be 1 to 20 characters"));
        }
        return Ok(());
    }
    let b = site.as_bytes();
    if b.len() == 13 && b.iter().all(u8::is_ascii_digit) {
        let (body, last) = b.split_at(12);
        let expected = market::gs1_check_digit(body);
        if last.first().map(|d| d - b'0') == Some(expected) {
            return Ok(());
        }
        return Err(format!(
            "GLN `{site}`: check digit wrong (expected {expected})"
        ));
    }
    Err(format!(
        "`{site}` is neither an SGLN URN (urn:epc:id:sgln:…) nor a 13-digit GLN"
    ))
}

fn product(p: &ProductSection, out: &mut Problems) {
    let m = p.market;
    if let Err(msg) = market::normalise_gtin(&p.gtin) {
        out.push("product.gtin", msg);
    }
    if p.name.trim().is_empty() {
        out.push("product.name", "must not be empty");
    }
    for (ai, value) in &p.national_ais {
        if let Err(msg) = market::check_national_ai(m, ai, value) {
            out.push(format!("product.national_ais.{ai}"), msg);
        }
    }
    for ai in m.spec().required_national_ais {
        if !p.national_ais.contains_key(*ai) {
            let meaning = market::national_ai_meaning(ai).unwrap_or("national AI");
            out.push(
                "product.national_ais",
                format!("{m} requires AI ({ai}) ({meaning})"),
            );
        }
    }
    if let Some(country) = &p.country {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            out.push(
                "product.country",
                format!("`{country}` is not an ISO 3166 alpha-2 code like `DE`"),
            );
        } else if m == Market::EuFmd {
            let wanted = market::eu_fmd::nhrn_ai_for_country(country);
            if let Some(ai) = wanted
                && !p.national_ais.contains_key(ai)
            {
                let meaning = market::national_ai_meaning(ai).unwrap_or("NHRN");
                out.push(
                    "product.national_ais",
                    format!("country {country} needs AI ({ai}) ({meaning}) in the code"),
                );
            }
            // Another country's NHRN on a pack for `country` is a mix-up.
            for ai in p.national_ais.keys() {
                if Some(ai.as_str()) != wanted
                    && let Some(meaning) = market::national_ai_meaning(ai)
                    && m.spec().national_ais.iter().any(|(a, _)| a == ai)
                {
                    out.push(
                        format!("product.national_ais.{ai}"),
                        format!("{meaning} does not belong on a pack for {country}"),
                    );
                }
            }
        }
    }
    match (&p.cn_product_code, m) {
        (Some(code), Market::CnNmpa) => {
            if let Err(msg) = market::cn_nmpa::check_product_code(code) {
                out.push("product.cn_product_code", msg);
            }
        }
        (None, Market::CnNmpa) => out.push(
            "product.cn_product_code",
            "required for cn-nmpa (the 7-digit product identification code of the 20-digit drug trace code)",
        ),
        (Some(_), _) => out.push("product.cn_product_code", format!("only for cn-nmpa, not {m}")),
        (None, _) => {}
    }
}

fn batch(m: Market, b: &BatchSection, out: &mut Problems) {
    let spec = m.spec();
    if let Some(lot) = &b.lot
        && let Err(msg) = market::check_batch(lot, spec.batch_max_len)
    {
        out.push("batch.lot", msg);
    }
    if let Some(expiry) = &b.expiry
        && let Err(msg) = market::check_expiry(expiry, spec.expiry_day_zero)
    {
        out.push("batch.expiry", format!("{msg} ({m})"));
    }
    if b.target_quantity == Some(0) {
        out.push("batch.target_quantity", "must be at least 1 when given");
    }
}

/// Where a device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP peer.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port (non-zero).
        port: u16,
    },
    /// A serial device.
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0`.
        path: String,
    },
}

/// Parse an address: a path (`/…`) or `COMn` is a serial device, anything else must be
/// `host:port` (IPv6 as `[addr]:port`).
pub fn parse_endpoint(address: &str) -> Result<Endpoint, String> {
    let upper = address.to_ascii_uppercase();
    let is_com = upper
        .strip_prefix("COM")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if address.starts_with('/') || is_com {
        return Ok(Endpoint::Serial {
            path: address.to_string(),
        });
    }
    if let Ok(sa) = address.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(format!("`{address}`: port 0 is not a peer port"));
        }
        return Ok(Endpoint::Tcp {
            host: sa.ip().to_string(),
            port: sa.port(),
        });
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "`{address}` is neither `host:port` nor a serial device path"
        ));
    };
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("`{address}`: port `{port}` is not 1–65535")),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        });
    if !host_ok {
        return Err(format!(
            "`{address}`: `{host}` is not a host name or IP address"
        ));
    }
    Ok(Endpoint::Tcp {
        host: host.to_string(),
        port,
    })
}

/// Check address form against what the device kind takes, and the baud rule.
fn endpoint(
    section: &str,
    address: &str,
    baud: Option<u32>,
    tcp_ok: bool,
    serial_ok: bool,
    out: &mut Problems,
) {
    match parse_endpoint(address) {
        Err(msg) => out.push(format!("{section}.address"), msg),
        Ok(Endpoint::Tcp { .. }) => {
            if !tcp_ok {
                out.push(
                    format!("{section}.address"),
                    format!("`{address}`: this kind needs a serial device path"),
                );
            }
            if baud.is_some() {
                out.push(
                    format!("{section}.baud"),
                    "only for a serial device, remove it",
                );
            }
        }
        Ok(Endpoint::Serial { .. }) => {
            if !serial_ok {
                out.push(
                    format!("{section}.address"),
                    format!("`{address}`: this kind needs `host:port`"),
                );
            } else {
                match baud {
                    None => out.push(
                        format!("{section}.baud"),
                        format!("required with the serial device `{address}`"),
                    ),
                    Some(b) if !(300..=1_000_000).contains(&b) => out.push(
                        format!("{section}.baud"),
                        format!("{b} is not a usable speed (300–1000000)"),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}

fn positive_ms(key: &str, v: u64, out: &mut Problems) {
    if v == 0 {
        out.push(key, "must be above 0 ms");
    }
}

fn plc(p: &PlcSection, out: &mut Problems) {
    let (tcp, serial) = match p.kind {
        PlcKind::ModbusTcp => (true, false),
        PlcKind::ModbusRtu => (false, true),
    };
    endpoint("plc", &p.address, p.baud, tcp, serial, out);
    positive_ms("plc.timeout_ms", p.timeout_ms, out);
    positive_ms("plc.poll_ms", p.poll_ms, out);
    if p.unit_id == 0 || p.unit_id > 247 {
        out.push(
            "plc.unit_id",
            format!("{} is not a Modbus unit id (1–247)", p.unit_id),
        );
    }
    for (field, message) in p.registers.problems() {
        out.push(format!("plc.registers.{field}"), message);
    }
}

fn printer(p: &PrinterSection, out: &mut Problems) {
    let serial = !matches!(p.kind, PrinterKind::Zpl);
    endpoint("printer", &p.address, p.baud, true, serial, out);
    positive_ms("printer.timeout_ms", p.timeout_ms, out);
    if p.buffer_ahead == 0 {
        out.push("printer.buffer_ahead", "must be at least 1");
    }
}

fn camera(c: &CameraSection, out: &mut Problems) {
    match c.kind {
        CameraKind::Dir => {
            if c.address.trim().is_empty() {
                out.push("camera.address", "the frame directory must not be empty");
            }
        }
        CameraKind::TcpStream => match parse_endpoint(&c.address) {
            Ok(Endpoint::Tcp { .. }) => {}
            Ok(Endpoint::Serial { .. }) => out.push(
                "camera.address",
                format!("`{}`: tcp-stream needs `host:port`", c.address),
            ),
            Err(msg) => out.push("camera.address", msg),
        },
    }
    positive_ms("camera.timeout_ms", c.timeout_ms, out);
}

/// Check distances and speeds; return the verdict deadline when it can be computed.
fn geometry(g: &GeometrySection, out: &mut Problems) -> Option<f64> {
    let mut ok = true;
    for (key, v) in [
        ("geometry.print_to_camera_mm", g.print_to_camera_mm),
        ("geometry.camera_to_reject_mm", g.camera_to_reject_mm),
        ("geometry.conveyor_speed_mm_s", g.conveyor_speed_mm_s),
        ("geometry.pitch_mm", g.pitch_mm),
    ] {
        if !(v.is_finite() && v > 0.0) {
            out.push(key, format!("{v} must be above 0"));
            ok = false;
        }
    }
    for (key, v) in [
        ("geometry.plc_scan_ms", g.plc_scan_ms),
        ("geometry.reject_actuation_ms", g.reject_actuation_ms),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            out.push(key, format!("{v} must be 0 or more"));
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let deadline = g.verdict_deadline_ms();
    if deadline <= 0.0 {
        out.push(
            "geometry",
            format!(
                "verdict deadline {deadline:.1} ms is not positive: camera→reject {} mm at {} mm/s takes {:.1} ms, less than PLC scan {} ms + reject actuation {} ms",
                g.camera_to_reject_mm,
                g.conveyor_speed_mm_s,
                g.camera_to_reject_mm / g.conveyor_speed_mm_s * 1000.0,
                g.plc_scan_ms,
                g.reject_actuation_ms
            ),
        );
        return None;
    }
    Some(deadline)
}

fn verification(v: &VerificationSection, deadline: Option<f64>, out: &mut Problems) {
    positive_ms("verification.decode_deadline_ms", v.decode_deadline_ms, out);
    if let Some(deadline) = deadline
        && v.decode_deadline_ms as f64 >= deadline
    {
        out.push(
            "verification.decode_deadline_ms",
            format!(
                "{} ms must be below the verdict deadline {deadline:.1} ms (from [geometry])",
                v.decode_deadline_ms
            ),
        );
    }
    if let Some(roi) = v.roi
        && (roi.w == 0 || roi.h == 0)
    {
        out.push("verification.roi", "width and height must be above 0");
    }
}

fn serials(m: Market, s: &SerialsSection, out: &mut Problems) {
    let rules = m.serial_rules();
    let generating = matches!(
        s.source,
        SerialSource::GenerateRandom | SerialSource::GenerateSequential
    );
    if generating && !rules.local_generation {
        out.push(
            "serials.source",
            format!("{m} serials are issued by the operator / code issuer: use `import` or `site-server`"),
        );
    }
    if s.source == SerialSource::GenerateSequential
        && rules.local_generation
        && !rules.sequential_allowed
    {
        out.push(
            "serials.source",
            format!("{m} requires randomised serials: use `generate-random`"),
        );
    }
    if generating && rules.local_generation {
        if s.length < rules.min_len || s.length > rules.max_len {
            out.push(
                "serials.length",
                format!(
                    "{} is outside {m}'s serial length {}..={}",
                    s.length, rules.min_len, rules.max_len
                ),
            );
        } else if s.source == SerialSource::GenerateRandom {
            let alphabet = rules.charset.generation_alphabet().len() as u32;
            if let Err(e) = market::guessing_probability_ok(
                m,
                s.length,
                alphabet,
                u128::from(s.expected_per_gtin),
            ) {
                out.push("serials.length", e.to_string());
            }
        }
    }
    if s.block_size == 0 {
        out.push("serials.block_size", "must be at least 1");
    }
    match (&s.url, s.source) {
        (None, SerialSource::SiteServer) => {
            out.push("serials.url", "required with source = \"site-server\"")
        }
        (Some(url), SerialSource::SiteServer) => {
            if let Err(msg) = check_url(url) {
                out.push("serials.url", msg);
            }
        }
        (Some(_), _) => out.push(
            "serials.url",
            "only used with source = \"site-server\", remove it",
        ),
        (None, _) => {}
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

fn hmi(h: &HmiSection, out: &mut Problems) {
    if let Err(e) = h.listen.parse::<SocketAddr>() {
        out.push(
            "hmi.listen",
            format!("`{}` is not `ip:port`: {e}", h.listen),
        );
    }
}

fn epcis(e: &EpcisSection, out: &mut Problems) {
    if let Err(msg) = check_url(&e.digital_link_base) {
        out.push("epcis.digital_link_base", msg);
    } else if e.digital_link_base.ends_with('/') {
        out.push("epcis.digital_link_base", "must not end with `/`");
    }
    if let Some(url) = &e.capture_url
        && let Err(msg) = check_url(url)
    {
        out.push("epcis.capture_url", msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let tcp = |h: &str, p: u16| Endpoint::Tcp {
            host: h.to_string(),
            port: p,
        };
        assert_eq!(parse_endpoint("127.0.0.1:502"), Ok(tcp("127.0.0.1", 502)));
        assert_eq!(parse_endpoint("[::1]:9100"), Ok(tcp("::1", 9100)));
        assert_eq!(
            parse_endpoint("plc-3.line.local:502"),
            Ok(tcp("plc-3.line.local", 502))
        );
        assert_eq!(
            parse_endpoint("/dev/ttyUSB0"),
            Ok(Endpoint::Serial {
                path: "/dev/ttyUSB0".to_string()
            })
        );
        assert_eq!(
            parse_endpoint("COM3"),
            Ok(Endpoint::Serial {
                path: "COM3".to_string()
            })
        );
        for bad in [
            "",
            "host",
            "host:",
            ":502",
            "host:0",
            "127.0.0.1:0",
            "a..b:1",
            "-a:1",
            "COM",
            "h:65536",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sites() {
        assert_eq!(check_site("urn:epc:id:sgln:9506000.00000.0"), Ok(()));
        // A 12-digit company prefix leaves an empty location reference (EPC TDS).
        assert_eq!(check_site("urn:epc:id:sgln:950600012345..0"), Ok(()));
        assert!(check_site("urn:epc:id:sgln:9506000.0000A.0").is_err());
        assert_eq!(check_site("9506000000008"), Ok(()));
        assert!(
            check_site("9506000000009")
                .unwrap_err()
                .contains("expected 8")
        );
        assert!(
            check_site("urn:epc:id:sgln:95060.0000000.0")
                .unwrap_err()
                .contains("6–12")
        );
        assert!(
            check_site("urn:epc:id:sgln:9506000.00000.")
                .unwrap_err()
                .contains("extension")
        );
    }

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:8090/capture").is_ok());
        assert!(check_url("https://x").is_ok());
        assert!(check_url("https://").is_err());
        assert!(check_url("ftp://x").is_err());
    }
}
