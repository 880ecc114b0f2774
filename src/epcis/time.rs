//! Timestamps for EPCIS: the event time type (Unix milliseconds plus the local UTC
//! offset the event happened in), xsd:dateTime formatting and parsing, the hash's UTC
//! millisecond normalisation, and GS1 YYMMDD dates (century window, day `00`). It owns
//! no clock: callers pass the wall time they got from `crate::clock`.

use std::fmt::Write as _;

use super::EpcisError;

/// When an event happened: milliseconds since the Unix epoch (UTC) and the UTC offset of
/// the place it happened, in minutes (EPCIS `eventTimeZoneOffset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub unix_ms: i64,
    /// Local offset from UTC in minutes, -14:00..=+14:00.
    pub offset_minutes: i16,
}

impl EventTime {
    /// An event time; the offset must lie within ±14:00.
    pub fn new(unix_ms: i64, offset_minutes: i16) -> Result<Self, EpcisError> {
        if !(-840..=840).contains(&offset_minutes) {
            return Err(EpcisError::Time(format!(
                "UTC offset {offset_minutes} min is outside ±14:00"
            )));
        }
        Ok(EventTime {
            unix_ms,
            offset_minutes,
        })
    }

    /// From the microseconds `Clock::wall_micros` returns.
    pub fn from_wall_micros(micros: u64, offset_minutes: i16) -> Result<Self, EpcisError> {
        let ms = i64::try_from(micros / 1000)
            .map_err(|_| EpcisError::Time(format!("wall time {micros} µs out of range")))?;
        EventTime::new(ms, offset_minutes)
    }

    /// `+01:00` style offset.
    pub fn offset_string(&self) -> String {
        let mut s = String::with_capacity(6);
        self.write_offset(&mut s);
        s
    }

    /// [`EventTime::offset_string`] appended to `out` (no allocation beyond its growth).
    pub fn write_offset(&self, out: &mut String) {
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let m = i32::from(self.offset_minutes).abs();
        // Writing to a `String` cannot fail.
        let _ = write!(out, "{sign}{:02}:{:02}", m / 60, m % 60);
    }

    /// Local time with offset and milliseconds, e.g. `2026-11-30T21:00:00.123+01:00`.
    pub fn to_rfc3339(&self) -> String {
        let mut s = String::with_capacity(29);
        self.write_rfc3339(&mut s);
        s
    }

    /// [`EventTime::to_rfc3339`] appended to `out`.
    pub fn write_rfc3339(&self, out: &mut String) {
        let local = self.unix_ms + i64::from(self.offset_minutes) * 60_000;
        write_ms(out, local);
        self.write_offset(out);
    }

    /// The CBV 2.0 hash form of this time ([`normalise_timestamp`] of
    /// [`EventTime::to_rfc3339`]: UTC, milliseconds, `Z`) appended to `out`.
    pub fn write_hash_form(&self, out: &mut String) {
        write_ms(out, self.unix_ms);
        out.push('Z');
    }

    /// The local calendar year (for the GS1 century window of YYMMDD dates).
    pub fn local_year(&self) -> i64 {
        let local = self.unix_ms + i64::from(self.offset_minutes) * 60_000;
        civil_from_days(local.div_euclid(86_400_000)).0
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` of milliseconds since the epoch (no zone suffix).
fn format_ms(ms: i64) -> String {
    let mut s = String::with_capacity(23);
    write_ms(&mut s, ms);
    s
}

/// [`format_ms`] appended to `out`.
fn write_ms(out: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    // Writing to a `String` cannot fail.
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    );
}

fn num(s: &str, what: &str, full: &str) -> Result<u32, EpcisError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EpcisError::Time(format!(
            "{what} in {full:?} is not a number"
        )));
    }
    s.parse()
        .map_err(|_| EpcisError::Time(format!("{what} in {full:?} is not a number")))
}

/// Parses an xsd:dateTime with a zone (`Z` or `±HH:MM`) to UTC milliseconds, rounding
/// sub-millisecond digits half up (the CBV 2.0 hash rule).
pub fn parse_to_utc_ms(s: &str) -> Result<i64, EpcisError> {
    let bad = |why: &str| EpcisError::Time(format!("{s:?} is not an xsd:dateTime: {why}"));
    let (date, time) = s.split_once('T').ok_or_else(|| bad("no 'T'"))?;
    let mut dp = date.splitn(3, '-');
    let (y, mo, d) = (
        dp.next().ok_or_else(|| bad("no year"))?,
        dp.next().ok_or_else(|| bad("no month"))?,
        dp.next().ok_or_else(|| bad("no day"))?,
    );
    let (year, month, day) = (
        i64::from(num(y, "year", s)?),
        num(mo, "month", s)?,
        num(d, "day", s)?,
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    let (clock, offset_min) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0i64)
    } else {
        let pos = time.rfind(['+', '-']).ok_or_else(|| bad("no time zone"))?;
        let (c, z) = time.split_at(pos);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z[1..]
            .split_once(':')
            .ok_or_else(|| bad("zone not ±HH:MM"))?;
        let (h, m) = (num(h, "zone hours", s)?, num(m, "zone minutes", s)?);
        if h > 14 || m > 59 {
            return Err(bad("zone out of range"));
        }
        (c, sign * i64::from(h * 60 + m))
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (clock, ""),
    };
    let mut tp = hms.splitn(3, ':');
    let (h, mi, sec) = (
        num(tp.next().unwrap_or(""), "hour", s)?,
        num(tp.next().unwrap_or(""), "minute", s)?,
        num(tp.next().unwrap_or(""), "second", s)?,
    );
    if h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi, sec) != (0, 0)) {
        return Err(bad("time of day out of range"));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (clock.contains('.') && frac.is_empty()) {
        return Err(bad("bad fraction of a second"));
    }
    let fb = frac.as_bytes();
    let digit = |i: usize| fb.get(i).map_or(0, |b| i64::from(b - b'0'));
    let mut millis = digit(0) * 100 + digit(1) * 10 + digit(2);
    if digit(3) >= 5 {
        millis += 1;
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400_000
        + (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec)) * 1000
        + millis
        - offset_min * 60_000)
}

/// The CBV 2.0 hash form of a timestamp: UTC, millisecond precision, `Z`.
pub fn normalise_timestamp(s: &str) -> Result<String, EpcisError> {
    Ok(format!("{}Z", format_ms(parse_to_utc_ms(s)?)))
}

/// A GS1 date `YYMMDD` (AI 17 etc.) as `YYYY-MM-DD`. The century follows the GS1 General
/// Specifications window around `reference_year` (−49 .. +50 years); day `00` means the
/// last day of the month.
pub fn gs1_date_to_iso(yymmdd: &str, reference_year: i64) -> Result<String, EpcisError> {
    let bad = |why: &str| EpcisError::Time(format!("GS1 date {yymmdd:?}: {why}"));
    if yymmdd.len() != 6 || !yymmdd.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("must be six digits YYMMDD"));
    }
    let yy = i64::from(num(&yymmdd[0..2], "year", yymmdd)?);
    let month = num(&yymmdd[2..4], "month", yymmdd)?;
    let day = num(&yymmdd[4..6], "day", yymmdd)?;
    let century = reference_year.div_euclid(100) * 100;
    let diff = yy - reference_year.rem_euclid(100);
    let year = if diff >= 51 {
        century - 100 + yy
    } else if diff <= -50 {
        century + 100 + yy
    } else {
        century + yy
    };
    if !(1..=12).contains(&month) {
        return Err(bad("month must be 01..12"));
    }
    let last = days_in_month(year, month);
    let day = if day == 0 { last } else { day };
    if day > last {
        return Err(bad("no such day in that month"));
    }
    Ok(format!("{year:04}-{month:02}-{day:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_utc_milliseconds_with_half_up_rounding() {
        let cases = [
            (
                "2022-02-16T20:33:31.116000-06:00",
                "2022-02-17T02:33:31.116Z",
            ),
            ("2023-02-02T11:04:03.1415Z", "2023-02-02T11:04:03.142Z"),
            ("2023-02-02T11:04:03.1414Z", "2023-02-02T11:04:03.141Z"),
            ("2020-03-04T11:00:30+01:00", "2020-03-04T10:00:30.000Z"),
            ("2019-12-31T23:59:59.9999Z", "2020-01-01T00:00:00.000Z"),
            ("2024-02-29T00:30:00+01:00", "2024-02-28T23:30:00.000Z"),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalise_timestamp(input).ok().as_deref(),
                Some(want),
                "{input}"
            );
        }
        for bad in [
            "2022-02-30T00:00:00Z",
            "2022-02-16 20:33:31Z",
            "2022-02-16T20:33:31",
            "2022-02-16T20:33:31.Z",
            "x",
        ] {
            assert!(normalise_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_time_formats_local_time_with_offset() {
        let t = EventTime::new(1_645_065_211_116, -360).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.to_rfc3339(), "2022-02-16T20:33:31.116-06:00");
        assert_eq!(t.offset_string(), "-06:00");
        assert!(EventTime::new(0, 900).is_err());
    }

    #[test]
    fn gs1_dates() {
        assert_eq!(
            gs1_date_to_iso("281231", 2026).ok().as_deref(),
            Some("2028-12-31")
        );
        assert_eq!(
            gs1_date_to_iso("280200", 2026).ok().as_deref(),
            Some("2028-02-29")
        );
        assert_eq!(
            gs1_date_to_iso("270200", 2026).ok().as_deref(),
            Some("2027-02-28")
        );
        assert_eq!(
            gs1_date_to_iso("300400", 2026).ok().as_deref(),
            Some("2030-04-30")
        );
        // window: 77 with reference 2026 is 51 years ahead -> previous century
        assert_eq!(
            gs1_date_to_iso("770101", 2026).ok().as_deref(),
            Some("1977-01-01")
        );
        assert_eq!(
            gs1_date_to_iso("760101", 2026).ok().as_deref(),
            Some("2076-01-01")
        );
        assert_eq!(
            gs1_date_to_iso("010101", 2099).ok().as_deref(),
            Some("2101-01-01")
        );
        for bad in ["281331", "280230", "2812", "28123a"] {
            assert!(gs1_date_to_iso(bad, 2026).is_err(), "{bad}");
        }
    }
}
