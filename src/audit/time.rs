//! UTC timestamps of audit records as text: RFC 3339 with microseconds and a `Z`
//! (`2026-11-30T23:25:24.123456Z`), formatted from and parsed to microseconds since
//! the Unix epoch. Proleptic Gregorian calendar, no leap seconds, no time zones other
//! than UTC. This module owns only the conversion; time itself comes from
//! [`crate::clock::Clock`].

/// Days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Format microseconds since the Unix epoch as RFC 3339 UTC with six fraction digits.
pub fn format_utc(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Why a timestamp did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad UTC time {text:?}: {why} (expected e.g. 2026-11-30T23:25:24Z or 2026-11-30)")]
pub struct TimeParseError {
    /// The text given.
    pub text: String,
    /// What was wrong.
    pub why: &'static str,
}

/// Parse `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (or `+00:00`) into microseconds
/// since the Unix epoch. A bare date means its midnight UTC. Times before 1970 are
/// rejected.
pub fn parse_utc(text: &str) -> Result<u64, TimeParseError> {
    let err = |why| TimeParseError {
        text: text.to_string(),
        why,
    };
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<u32, TimeParseError> {
        let part = b.get(range).ok_or(err("too short"))?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(err("digits expected"));
        }
        Ok(part
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let year = i64::from(num(0..4)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err(err("date must be YYYY-MM-DD"));
    }
    let month = num(5..7)?;
    let day = num(8..10)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(err("no such date"));
    }
    let days = days_from_civil(year, month, day);
    if days < 0 {
        return Err(err("before 1970"));
    }
    let mut micros = days as u64 * 86_400_000_000;
    if b.len() == 10 {
        return Ok(micros);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return Err(err("time must be THH:MM:SS"));
    }
    if b.get(16) != Some(&b':') {
        return Err(err("time must be THH:MM:SS"));
    }
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || s > 59 {
        return Err(err("no such time of day"));
    }
    micros += (u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(s)) * 1_000_000;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return Err(err("fraction must have 1 to 9 digits"));
        }
        let mut frac = 0u64;
        for k in 0..6 {
            let d = if k < digits { b[start + k] - b'0' } else { 0 };
            frac = frac * 10 + u64::from(d);
        }
        micros += frac;
    }
    match &b[i..] {
        b"Z" | b"z" | b"+00:00" => Ok(micros),
        _ => Err(err("only UTC (Z) is accepted")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_utc(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        // 2024-02-29 (leap day) 12:00:00 UTC
        assert_eq!(
            format_utc(1_709_208_000_000_000),
            "2024-02-29T12:00:00.000000Z"
        );
    }

    #[test]
    fn parse_inverts_format() {
        for t in [
            0,
            1,
            951_782_400_000_000,
            1_700_000_000_123_456,
            4_102_444_799_999_999,
        ] {
            assert_eq!(parse_utc(&format_utc(t)), Ok(t), "{}", format_utc(t));
        }
        assert_eq!(parse_utc("2023-11-14"), Ok(1_699_920_000_000_000));
        assert_eq!(parse_utc("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000_000));
        assert_eq!(
            parse_utc("2023-11-14T22:13:20.5+00:00"),
            Ok(1_700_000_000_500_000)
        );
    }

    #[test]
    fn rejects_bad_text_with_a_reason() {
        for bad in [
            "",
            "2023",
            "2023-13-01",
            "2023-02-29",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20+01:00",
            "2023-11-14T22:13:20.Z",
            "1969-12-31",
            "2023-11-14X",
            "２０２3-11-14",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad:?} accepted");
        }
    }
}
