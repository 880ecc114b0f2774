//! The component linters of the GS1 Barcode Syntax Dictionary (one function per linter
//! name) and the character-set checks of component types. Each works on one
//! component's bytes, allocates nothing, and reports the offending offset within the
//! component. It does not know AIs or pairing rules (see `validate.rs`).

use super::codes;
use super::table::{Cset, Linter};

/// Why a linter rejected a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A character outside the character set.
    Charset,
    /// A wrong check digit / check character pair.
    CheckDigit,
    /// An impossible date.
    Date,
    /// Another rule; the text says which.
    Other(&'static str),
}

/// A linter failure: what, and where in the component.
pub type LintResult = Result<(), (Fault, usize)>;

const CSET82: &[u8] =
    b"!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
const CSET39: &[u8] = b"#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const CSET32: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

const fn table(chars: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    t
}

static IS_CSET82: [bool; 256] = table(CSET82);
static IS_CSET39: [bool; 256] = table(CSET39);
static IS_CSET64: [bool; 256] =
    table(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

/// Whether `b` is in GS1 CSET 82.
#[inline]
pub fn is_cset82(b: u8) -> bool {
    IS_CSET82[usize::from(b)]
}

/// Check a component's characters against its type.
#[inline]
pub fn charset(cset: Cset, data: &[u8]) -> LintResult {
    let bad = match cset {
        Cset::N => data.iter().position(|b| !b.is_ascii_digit()),
        Cset::X => data.iter().position(|&b| !IS_CSET82[usize::from(b)]),
        Cset::Y => data.iter().position(|&b| !IS_CSET39[usize::from(b)]),
        Cset::Z => {
            // base64url, with at most two `=` of padding at the very end
            let body = data.len()
                - data
                    .iter()
                    .rev()
                    .take(2)
                    .take_while(|&&b| b == b'=')
                    .count();
            data.iter()
                .take(body)
                .position(|&b| !IS_CSET64[usize::from(b)])
        }
    };
    match bad {
        Some(p) => Err((Fault::Charset, p)),
        None => Ok(()),
    }
}

/// Run one linter over a component.
pub fn run(linter: Linter, d: &[u8]) -> LintResult {
    match linter {
        Linter::Csum => csum(d),
        Linter::Csumalpha => csumalpha(d),
        Linter::Gcppos1 => gcppos1(d),
        Linter::Gcppos2 => {
            if d.is_empty() {
                Err((Fault::Other("too short for a GS1 Company Prefix"), 0))
            } else {
                gcppos1(&d[1..]).map_err(|(f, p)| (f, p + 1))
            }
        }
        Linter::Hasnondigit => {
            if d.iter().all(u8::is_ascii_digit) {
                Err((Fault::Other("must contain a non-digit character"), 0))
            } else {
                Ok(())
            }
        }
        Linter::Hh => two_digit_max(d, 23, "hour"),
        Linter::Mi => two_digit_max(d, 59, "minute"),
        Linter::Ss => two_digit_max(d, 59, "second"),
        Linter::Hhmi => {
            two_digit_max(d.get(..2).unwrap_or(d), 23, "hour")?;
            two_digit_max(d.get(2..).unwrap_or_default(), 59, "minute").map_err(|(f, p)| (f, p + 2))
        }
        Linter::Hyphen => one_of(d, b"-", "must be a hyphen"),
        Linter::Iban => iban(d),
        Linter::Importeridx => {
            if d.len() == 1 && (d[0].is_ascii_alphanumeric() || d[0] == b'-' || d[0] == b'_') {
                Ok(())
            } else {
                Err((Fault::Other("not a valid importer index"), 0))
            }
        }
        Linter::Iso3166 => numeric_in(d, &codes::ISO3166_NUMERIC, "not an ISO 3166 country code"),
        Linter::Iso3166999 => {
            if d == b"999" {
                Ok(())
            } else {
                numeric_in(
                    d,
                    &codes::ISO3166_NUMERIC,
                    "not an ISO 3166 country code or 999",
                )
            }
        }
        Linter::Iso3166alpha2 => match std::str::from_utf8(d) {
            Ok(s) if codes::ISO3166_ALPHA2.binary_search(&s).is_ok() => Ok(()),
            _ => Err((Fault::Other("not an ISO 3166 alpha-2 country code"), 0)),
        },
        Linter::Iso4217 => numeric_in(d, &codes::ISO4217_NUMERIC, "not an ISO 4217 currency code"),
        Linter::Iso5218 => one_of(d, b"0129", "not an ISO 5218 sex code"),
        Linter::Latitude => max_value(d, 1_800_000_000, "latitude out of range"),
        Linter::Longitude => max_value(d, 3_600_000_000, "longitude out of range"),
        Linter::Mediatype => match number(d) {
            Some(n) if d.len() == 2 && ((1..=10).contains(&n) || (80..=99).contains(&n)) => Ok(()),
            _ => Err((Fault::Other("not an AIDC media type"), 0)),
        },
        Linter::Nonzero => {
            if d.iter().all(|&b| b == b'0') {
                Err((Fault::Other("must not be zero"), 0))
            } else {
                Ok(())
            }
        }
        Linter::Nozeroprefix => {
            if d.len() > 1 && d[0] == b'0' {
                Err((Fault::Other("must not start with zero"), 0))
            } else {
                Ok(())
            }
        }
        Linter::Packagetype => match std::str::from_utf8(d) {
            Ok(s) if codes::PACKAGE_TYPES.binary_search(&s).is_ok() => Ok(()),
            _ => Err((Fault::Other("not a GS1 package type code"), 0)),
        },
        Linter::Pcenc => pcenc(d),
        Linter::Pieceoftotal => {
            let (p, t) = (
                number(d.get(..d.len() / 2).unwrap_or_default()),
                number(d.get(d.len() / 2..).unwrap_or_default()),
            );
            match (p, t) {
                (Some(p), Some(t)) if p >= 1 && t >= 1 && p <= t => Ok(()),
                _ => Err((Fault::Other("piece number must be 1..=total"), 0)),
            }
        }
        Linter::Posinseqslash => match d {
            [p, b'/', t] if p.is_ascii_digit() && t.is_ascii_digit() && *p >= b'1' && p <= t => {
                Ok(())
            }
            _ => Err((Fault::Other("must be position/total, e.g. 1/2"), 0)),
        },
        Linter::Winding => one_of(d, b"019", "winding direction must be 0, 1 or 9"),
        Linter::Yesno => one_of(d, b"01", "must be 0 or 1"),
        Linter::Yymmd0 => yymmdd(d, true),
        Linter::Yymmdd => yymmdd(d, false),
        Linter::Yyyymmdd => yyyymmdd(d),
        Linter::Zero => one_of(d, b"0", "must be zero"),
        Linter::Couponcode => couponcode(d),
        Linter::Couponposoffer => couponposoffer(d),
    }
}

fn number(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 18 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u64, |n, &b| n * 10 + u64::from(b - b'0')))
}

fn one_of(d: &[u8], allowed: &[u8], msg: &'static str) -> LintResult {
    if d.len() == 1 && allowed.contains(&d[0]) {
        Ok(())
    } else {
        Err((Fault::Other(msg), 0))
    }
}

fn two_digit_max(d: &[u8], max: u64, what: &'static str) -> LintResult {
    match number(d) {
        Some(n) if d.len() == 2 && n <= max => Ok(()),
        _ => Err((
            Fault::Other(match what {
                "hour" => "hour must be 00..23",
                "minute" => "minute must be 00..59",
                _ => "second must be 00..59",
            }),
            0,
        )),
    }
}

fn max_value(d: &[u8], max: u64, msg: &'static str) -> LintResult {
    match number(d) {
        Some(n) if n <= max => Ok(()),
        _ => Err((Fault::Other(msg), 0)),
    }
}

fn numeric_in(d: &[u8], list: &[u16], msg: &'static str) -> LintResult {
    match number(d) {
        Some(n)
            if d.len() == 3 && u16::try_from(n).is_ok_and(|n| list.binary_search(&n).is_ok()) =>
        {
            Ok(())
        }
        _ => Err((Fault::Other(msg), 0)),
    }
}

/// The GS1 mod-10 check digit of `digits` (without the check digit).
#[inline]
pub fn check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &b) in digits.iter().rev().enumerate() {
        let v = u32::from(b.wrapping_sub(b'0'));
        sum += if i % 2 == 0 { v * 3 } else { v };
    }
    b'0' + ((10 - sum % 10) % 10) as u8
}

fn csum(d: &[u8]) -> LintResult {
    match d.split_last() {
        Some((&last, body)) if d.iter().all(u8::is_ascii_digit) => {
            if check_digit(body) == last {
                Ok(())
            } else {
                Err((Fault::CheckDigit, d.len() - 1))
            }
        }
        Some(_) => Err((Fault::Charset, 0)),
        None => Err((Fault::CheckDigit, 0)),
    }
}

fn csumalpha(d: &[u8]) -> LintResult {
    const PRIMES: [u32; 97] = [
        2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181,
        191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281,
        283, 293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397,
        401, 409, 419, 421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503,
        509,
    ];
    if d.len() < 2 {
        return Err((Fault::CheckDigit, 0));
    }
    let n = d.len() - 2;
    if n > PRIMES.len() {
        return Err((Fault::Other("too long for a check character pair"), 0));
    }
    let mut sum = 0u32;
    for (i, &b) in d[..n].iter().enumerate() {
        let v = CSET82
            .iter()
            .position(|&c| c == b)
            .ok_or((Fault::Charset, i))?;
        sum += v as u32 * PRIMES[n - 1 - i];
    }
    sum %= 1021;
    let (c1, c2) = (CSET32[(sum >> 5) as usize], CSET32[(sum & 31) as usize]);
    if d[n] != c1 {
        Err((Fault::CheckDigit, n))
    } else if d[n + 1] != c2 {
        Err((Fault::CheckDigit, n + 1))
    } else {
        Ok(())
    }
}

fn gcppos1(d: &[u8]) -> LintResult {
    if d.len() < 4 {
        return Err((Fault::Other("too short for a GS1 Company Prefix"), 0));
    }
    match d[..4].iter().position(|b| !b.is_ascii_digit()) {
        Some(p) => Err((
            Fault::Other("GS1 Company Prefix must start with 4 digits"),
            p,
        )),
        None => Ok(()),
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

fn yymmdd(d: &[u8], day_zero_ok: bool) -> LintResult {
    if d.len() != 6 || !d.iter().all(u8::is_ascii_digit) {
        return Err((Fault::Date, 0));
    }
    let v = |i: usize| u32::from(d[i] - b'0') * 10 + u32::from(d[i + 1] - b'0');
    // Two-digit years: 00 stands for 2000 (a leap year), as the GS1 linters do.
    date(2000 + v(0), v(2), v(4), day_zero_ok, 2)
}

fn yyyymmdd(d: &[u8]) -> LintResult {
    if d.len() != 8 || !d.iter().all(u8::is_ascii_digit) {
        return Err((Fault::Date, 0));
    }
    let v = |i: usize| u32::from(d[i] - b'0') * 10 + u32::from(d[i + 1] - b'0');
    date(v(0) * 100 + v(2), v(4), v(6), false, 4)
}

fn date(year: u32, month: u32, day: u32, day_zero_ok: bool, month_at: usize) -> LintResult {
    if !(1..=12).contains(&month) {
        return Err((Fault::Date, month_at));
    }
    if (day == 0 && !day_zero_ok) || day > days_in_month(year, month) {
        return Err((Fault::Date, month_at + 2));
    }
    Ok(())
}

fn pcenc(d: &[u8]) -> LintResult {
    let mut i = 0;
    while i < d.len() {
        if d[i] == b'%' {
            let ok = d.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && d.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err((Fault::Other("invalid percent-encoding"), i));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn iban(d: &[u8]) -> LintResult {
    if d.len() < 5 {
        return Err((Fault::Other("IBAN too short"), 0));
    }
    if let Some(p) = d
        .iter()
        .position(|b| !(b.is_ascii_digit() || b.is_ascii_uppercase()))
    {
        return Err((Fault::Other("IBAN must be digits and capital letters"), p));
    }
    let cc = std::str::from_utf8(&d[..2]).unwrap_or_default();
    if codes::ISO3166_ALPHA2.binary_search(&cc).is_err() {
        return Err((Fault::Other("IBAN country code is not ISO 3166 alpha-2"), 0));
    }
    if !d[2].is_ascii_digit() || !d[3].is_ascii_digit() {
        return Err((Fault::Other("IBAN check digits must be digits"), 2));
    }
    let mut rem = 0u32;
    for &b in d[4..].iter().chain(&d[..4]) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(b - b'A') + 10) % 97;
        }
    }
    if rem == 1 {
        Ok(())
    } else {
        Err((Fault::CheckDigit, 2))
    }
}

/// A cursor over coupon digits.
struct Coupon<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> Coupon<'a> {
    fn digit(&mut self, allowed: &[u8], msg: &'static str) -> Result<u8, (Fault, usize)> {
        match self.d.get(self.p) {
            Some(&b) if allowed.contains(&b) => {
                self.p += 1;
                Ok(b - b'0')
            }
            _ => Err((Fault::Other(msg), self.p.min(self.d.len()))),
        }
    }
    fn take(&mut self, n: usize, msg: &'static str) -> Result<&'a [u8], (Fault, usize)> {
        let s = self
            .d
            .get(self.p..self.p + n)
            .ok_or((Fault::Other(msg), self.p))?;
        self.p += n;
        Ok(s)
    }
    fn gcp(&mut self, n: usize, msg: &'static str) -> LintResult {
        let at = self.p;
        let s = self.take(n, msg)?;
        gcppos1(s).map_err(|(f, p)| (f, p + at))
    }
    fn at(&self, b: u8) -> bool {
        self.d.get(self.p) == Some(&b)
    }
}

fn couponcode(d: &[u8]) -> LintResult {
    if let Some(p) = d.iter().position(|b| !b.is_ascii_digit()) {
        return Err((Fault::Charset, p));
    }
    let mut c = Coupon { d, p: 0 };
    let v = c.digit(b"0123456", "invalid GCP length indicator")?;
    c.gcp(usize::from(v) + 6, "truncated GCP")?;
    c.take(6, "truncated offer code")?;
    let v = c.digit(b"12345", "invalid save value length indicator")?;
    c.take(usize::from(v), "truncated save value")?;
    let v = c.digit(
        b"12345",
        "invalid 1st purchase requirement length indicator",
    )?;
    c.take(usize::from(v), "truncated 1st purchase requirement")?;
    c.digit(b"012349", "invalid 1st purchase requirement code")?;
    c.take(3, "truncated 1st purchase family code")?;
    for field in [b'1', b'2'] {
        if c.at(field) {
            c.p += 1;
            if field == b'1' {
                c.digit(b"0123", "invalid additional purchase rules code")?;
            }
            let v = c.digit(b"12345", "invalid purchase requirement length indicator")?;
            c.take(usize::from(v), "truncated purchase requirement")?;
            c.digit(b"012349", "invalid purchase requirement code")?;
            c.take(3, "truncated purchase family code")?;
            let v = c.digit(b"0123456789", "missing purchase GCP length indicator")?;
            match v {
                9 => {}
                0..=6 => c.gcp(usize::from(v) + 6, "truncated purchase GCP")?,
                _ => {
                    return Err((
                        Fault::Other("invalid purchase GCP length indicator"),
                        c.p - 1,
                    ));
                }
            }
        }
    }
    let mut expiry: Option<&[u8]> = None;
    if c.at(b'3') {
        c.p += 1;
        let at = c.p;
        let s = c.take(6, "truncated expiration date")?;
        yymmdd(s, false).map_err(|(f, p)| (f, p + at))?;
        expiry = Some(s);
    }
    if c.at(b'4') {
        c.p += 1;
        let at = c.p;
        let s = c.take(6, "truncated start date")?;
        yymmdd(s, false).map_err(|(f, p)| (f, p + at))?;
        if expiry.is_some_and(|e| s > e) {
            return Err((Fault::Other("expiration date before start date"), at));
        }
    }
    if c.at(b'5') {
        c.p += 1;
        let v = c.digit(b"0123456789", "missing serial number length indicator")?;
        c.take(usize::from(v) + 6, "truncated serial number")?;
    }
    if c.at(b'6') {
        c.p += 1;
        let v = c.digit(b"1234567", "invalid retailer GCP/GLN length indicator")?;
        c.gcp(usize::from(v) + 6, "truncated retailer GCP/GLN")?;
    }
    if c.at(b'9') {
        c.p += 1;
        c.digit(b"01256", "invalid save value code")?;
        c.digit(b"012", "invalid save value applies to item")?;
        c.digit(b"0123456789", "missing store coupon flag")?;
        c.digit(b"01", "invalid don't multiply flag")?;
    }
    if c.p != d.len() {
        return Err((Fault::Other("excess data"), c.p));
    }
    Ok(())
}

fn couponposoffer(d: &[u8]) -> LintResult {
    if let Some(p) = d.iter().position(|b| !b.is_ascii_digit()) {
        return Err((Fault::Charset, p));
    }
    let mut c = Coupon { d, p: 0 };
    c.digit(b"01", "invalid format code")?;
    let v = c.digit(b"0123456", "invalid funder ID length indicator")?;
    c.gcp(usize::from(v) + 6, "truncated funder ID")?;
    c.take(6, "truncated offer code")?;
    let v = c.digit(b"0123456789", "missing serial number length indicator")?;
    c.take(usize::from(v) + 6, "truncated serial number")?;
    if c.p != d.len() {
        return Err((Fault::Other("excess data"), c.p));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        assert_eq!(csum(b"09506000134352"), Ok(()));
        assert_eq!(csum(b"09506000134353"), Err((Fault::CheckDigit, 13)));
        assert_eq!(csum(b"123456789012345675"), Ok(()));
        assert_eq!(check_digit(b"950600013435"), b'2');
    }

    #[test]
    fn alpha_check_pair() {
        for ok in [
            &b"1987654Ad4X4bL5ttr2310c2K"[..],
            b"22",
            b"!22",
            b"12345_!\"%&'()*+,-./LC",
            b"00000!HV",
        ] {
            assert_eq!(csumalpha(ok), Ok(()), "{}", String::from_utf8_lossy(ok));
        }
        assert!(csumalpha(b"1987654Ad4X4bL5ttr2310cXK").is_err());
        assert!(csumalpha(b"33").is_err());
    }

    #[test]
    fn dates() {
        assert!(yymmdd(b"240229", false).is_ok());
        assert!(yymmdd(b"230229", false).is_err());
        assert!(yymmdd(b"250230", false).is_err());
        assert!(yymmdd(b"251300", true).is_err());
        assert!(yymmdd(b"251200", true).is_ok());
        assert!(yymmdd(b"251200", false).is_err());
        assert!(yyyymmdd(b"19000229").is_err());
        assert!(yyyymmdd(b"20000229").is_ok());
        assert!(run(Linter::Hhmi, b"2359").is_ok());
        assert!(run(Linter::Hhmi, b"2400").is_err());
    }

    #[test]
    fn others() {
        assert!(iban(b"GB82WEST12345698765432").is_ok());
        assert!(iban(b"GB83WEST12345698765432").is_err());
        assert!(run(Linter::Iso3166, b"528").is_ok());
        assert!(run(Linter::Iso3166, b"999").is_err());
        assert!(run(Linter::Iso3166999, b"999").is_ok());
        assert!(run(Linter::Iso4217, b"978").is_ok());
        assert!(run(Linter::Packagetype, b"1A").is_ok());
        assert!(run(Linter::Packagetype, b"1Z").is_err());
        assert!(run(Linter::Pcenc, b"a%2Fb").is_ok());
        assert!(run(Linter::Pcenc, b"a%2").is_err());
        assert!(run(Linter::Pieceoftotal, b"0102").is_ok());
        assert!(run(Linter::Pieceoftotal, b"0301").is_err());
        assert!(run(Linter::Posinseqslash, b"1/2").is_ok());
        assert!(run(Linter::Posinseqslash, b"3/2").is_err());
        assert!(couponcode(b"012345612345611110123").is_ok());
        assert!(couponcode(b"0123456").is_err());
        assert!(couponposoffer(b"001234561234560123456").is_ok());
        assert!(charset(Cset::Z, b"ab-_==").is_ok());
        assert!(charset(Cset::Z, b"a=b").is_err());
        assert!(charset(Cset::X, b"ABC~").is_err());
    }
}
