//! GS1 Digital Link URIs: parsing (scheme, domain, stem, path key and key qualifiers in
//! an order the dictionary's `dlpkey` sequences allow, query attributes with
//! percent-decoding, unknown non-numeric parameters ignored) and generation (first
//! primary key, the qualifier sequence that places the most elements, the rest as query
//! attributes, predefined-length ones first). Value validation and pairing rules are
//! `validate.rs`.

use super::table::{self, AiEntry};
use super::validate;
use super::{Element, Gs1Code, Gs1Error, Gs1ErrorKind, Options};

/// The canonical stem, `https://id.gs1.org`.
pub const CANONICAL_DL_STEM: &str = "https://id.gs1.org";

/// Characters a URI may contain at all (RFC 3986 unreserved, reserved and `%`).
const URI_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%";
/// Characters of `URI_CHARS` that may not appear in the domain.
const BAD_DOMAIN_CHARS: &[u8] = b"_~?#@!$&'()*+,;=%";

/// Deprecated convenience alphas and their AIs.
const ALPHAS: [(&str, &str); 22] = [
    ("cpid", "8010"),
    ("cpsn", "8011"),
    ("cpv", "22"),
    ("gcn", "255"),
    ("gdti", "253"),
    ("giai", "8004"),
    ("ginc", "401"),
    ("gln", "414"),
    ("glnx", "254"),
    ("gmn", "8013"),
    ("grai", "8003"),
    ("gsin", "402"),
    ("gsrn", "8018"),
    ("gsrnp", "8017"),
    ("gtin", "01"),
    ("itip", "8006"),
    ("lot", "10"),
    ("party", "417"),
    ("refno", "8020"),
    ("ser", "21"),
    ("srin", "8019"),
    ("sscc", "00"),
];

fn dl_err(ai: Option<&str>, msg: impl Into<String>, pos: usize) -> Gs1Error {
    Gs1Error {
        ai: ai.map(str::to_owned),
        kind: Gs1ErrorKind::DigitalLink(msg.into()),
        position: Some(pos),
    }
}

/// The AI entry of a path segment (digits, or a convenience alpha when permitted).
fn path_ai(seg: &str, opts: &Options) -> Option<&'static AiEntry> {
    if opts.permit_convenience_alphas
        && (3..=5).contains(&seg.len())
        && !seg.as_bytes()[0].is_ascii_digit()
        && let Some((_, ai)) = ALPHAS.iter().find(|(a, _)| *a == seg)
    {
        return table::lookup(ai.as_bytes());
    }
    table::lookup(seg.as_bytes())
}

/// Whether `seq` (primary key first) is a valid key-qualifier path sequence: the
/// qualifiers form an ordered subsequence of one of the key's `dlpkey` alternatives.
fn valid_path_seq(seq: &[&str]) -> bool {
    let Some(alts) = seq
        .first()
        .and_then(|k| table::lookup(k.as_bytes()))
        .and_then(|e| e.dlpkey)
    else {
        return false;
    };
    alts.iter().any(|alt| {
        let mut it = alt.iter();
        seq[1..].iter().all(|q| it.any(|a| a == q))
    })
}

/// Percent-decode a path segment of an identifier URI (a serial read back out of a
/// Digital Link or EPC URI): `%XX` becomes its byte, invalid UTF-8 is replaced, and a
/// segment holding `%00` (never a valid GS1 value) is returned as it is.
pub fn percent_decode(s: &str) -> String {
    match unescape(s, false) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => s.to_string(),
    }
}

/// Percent-decode; `+` is a space in query values. `None` when a `%00` appears.
fn unescape(s: &str, query: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                let v = (h * 16 + l) as u8;
                if v == 0 {
                    return None;
                }
                out.push(v);
                i += 3;
            }
            (b'+', _, _) if query => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Decode one value and run the value checks.
fn decode_value(
    ai: &str,
    entry: Option<&AiEntry>,
    raw: &str,
    query: bool,
    pos: usize,
    opts: &Options,
) -> Result<String, Gs1Error> {
    if raw.is_empty() {
        return Err(dl_err(Some(ai), "empty value", pos));
    }
    let bytes =
        unescape(raw, query).ok_or_else(|| dl_err(Some(ai), "value decodes to a NUL", pos))?;
    let mut value = String::from_utf8(bytes).map_err(|_| Gs1Error {
        ai: Some(ai.to_owned()),
        kind: Gs1ErrorKind::Charset,
        position: Some(pos),
    })?;
    if opts.permit_zero_suppressed_gtin_in_dl && ai == "01" && matches!(value.len(), 8 | 12 | 13) {
        value = format!("{value:0>14}");
    }
    validate::check_value(ai, entry, &value, pos)?;
    Ok(value)
}

/// Parse a Digital Link URI.
pub fn parse(input: &str, opts: &Options) -> Result<Gs1Code, Gs1Error> {
    let b = input.as_bytes();
    if let Some(p) = b.iter().position(|c| !URI_CHARS.contains(c)) {
        return Err(dl_err(None, "character not allowed in a URI", p));
    }
    let rest_at = ["https://", "HTTPS://", "http://", "HTTP://"]
        .iter()
        .find(|s| input.starts_with(*s))
        .map(|s| s.len())
        .ok_or_else(|| dl_err(None, "scheme must be http:// or https://", 0))?;
    let slash = b[rest_at..]
        .iter()
        .position(|&c| c == b'/')
        .map(|i| rest_at + i)
        .filter(|&s| s > rest_at)
        .ok_or_else(|| dl_err(None, "missing domain or path", rest_at))?;
    if let Some(p) = b[rest_at..slash]
        .iter()
        .position(|c| BAD_DOMAIN_CHARS.contains(c))
    {
        return Err(dl_err(
            None,
            "character not allowed in the domain",
            rest_at + p,
        ));
    }
    // path info runs to '?' (query) or '#' (fragment, ignored)
    let end = b[slash..]
        .iter()
        .position(|&c| c == b'#')
        .map_or(b.len(), |i| slash + i);
    let qmark = b[slash..end]
        .iter()
        .position(|&c| c == b'?')
        .map(|i| slash + i);
    let path_end = qmark.unwrap_or(end);
    let path = &input[slash..path_end];

    // Walk back from the end of the path over "/AI/value" pairs to the primary key.
    let mut cut = path.len();
    let mut dp = None;
    while let Some(r) = path[..cut].rfind('/') {
        let Some(p) = path[..r].rfind('/') else {
            break;
        };
        let Some(entry) = path_ai(&path[p + 1..r], opts) else {
            break;
        };
        if entry.dlpkey.is_some() {
            dp = Some(p);
            break;
        }
        cut = p;
    }
    let dp = dp.ok_or_else(|| dl_err(None, "no GS1 primary key in the path", slash))?;

    let mut elements: Vec<Element> = Vec::with_capacity(4);
    let mut positions = Vec::with_capacity(4);
    let mut path_ais: Vec<&'static str> = Vec::with_capacity(4);
    let dl = &path[dp..];
    let mut segs = dl[1..].split('/');
    let mut off = slash + dp + 1;
    while let Some(ai_seg) = segs.next() {
        let raw = segs.next().unwrap_or_default();
        let entry = path_ai(ai_seg, opts)
            .ok_or_else(|| dl_err(Some(ai_seg), "not an AI in the path", off))?;
        let vpos = off + ai_seg.len() + 1;
        let value = decode_value(entry.ai, Some(entry), raw, false, vpos, opts)?;
        positions.push(off);
        path_ais.push(entry.ai);
        elements.push(Element {
            ai: entry.ai.to_owned(),
            value,
        });
        off = vpos + raw.len() + 1;
    }
    let n_path = elements.len();

    if let Some(q) = qmark {
        let mut off = q + 1;
        for param in input[q + 1..end].split('&') {
            let here = off;
            off += param.len() + 1;
            let Some((key, raw)) = param.split_once('=') else {
                continue; // singleton: not AI data
            };
            let numeric = !key.is_empty() && key.bytes().all(|c| c.is_ascii_digit());
            if !numeric {
                continue; // other parameters are not AI data
            }
            let entry = validate::check_ai(key, opts, Some(here)).map_err(|e| {
                if e.kind == Gs1ErrorKind::UnknownAi || matches!(e.kind, Gs1ErrorKind::Syntax(_)) {
                    dl_err(Some(key), "numeric query parameter is not a known AI", here)
                } else {
                    e
                }
            })?;
            let ai = entry.map_or(key, |e| e.ai);
            let value = decode_value(ai, entry, raw, true, here + key.len() + 1, opts)?;
            positions.push(here);
            elements.push(Element {
                ai: ai.to_owned(),
                value,
            });
        }
    }

    if !valid_path_seq(&path_ais) {
        return Err(dl_err(
            path_ais.first().copied(),
            "key qualifiers not in an order the dictionary allows",
            slash + dp,
        ));
    }
    let mut seq: Vec<&str> = Vec::with_capacity(n_path + 1);
    for i in n_path..elements.len() {
        let e = &elements[i];
        if elements[..i].iter().any(|o| o.ai == e.ai) {
            return Err(Gs1Error {
                ai: Some(e.ai.clone()),
                kind: Gs1ErrorKind::Duplicate,
                position: Some(positions[i]),
            });
        }
        check_attribute(e, opts).map_err(|mut err| {
            err.position = Some(positions[i]);
            err
        })?;
        for j in 1..=n_path {
            seq.clear();
            seq.extend_from_slice(&path_ais[..j]);
            seq.push(&e.ai);
            seq.extend_from_slice(&path_ais[j..]);
            if valid_path_seq(&seq) {
                return Err(dl_err(
                    Some(&e.ai),
                    "this AI is a key qualifier: it belongs in the path",
                    positions[i],
                ));
            }
        }
    }
    Gs1Code::from_checked(elements, opts, Some(&positions))
}

/// An element in the query must be a permitted Digital Link data attribute.
fn check_attribute(e: &Element, opts: &Options) -> Result<(), Gs1Error> {
    let ok = match table::lookup(e.ai.as_bytes()) {
        Some(entry) => entry.dl_attr,
        None => opts.unknown_ais_as_dl_attributes,
    };
    if ok {
        Ok(())
    } else {
        Err(Gs1Error {
            ai: Some(e.ai.clone()),
            kind: Gs1ErrorKind::DigitalLink("not a valid Digital Link data attribute".into()),
            position: None,
        })
    }
}

fn escape(out: &mut String, value: &str, query: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in value.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else if c == b' ' && query {
            out.push('+');
        } else {
            out.push('%');
            out.push(HEX[usize::from(c >> 4)] as char);
            out.push(HEX[usize::from(c & 15)] as char);
        }
    }
}

/// Generate the URI of `elements` on `stem`.
pub fn generate(elements: &[Element], stem: &str, opts: &Options) -> Result<String, Gs1Error> {
    let (key, key_entry) = elements
        .iter()
        .find_map(|e| {
            table::lookup(e.ai.as_bytes())
                .filter(|t| t.dlpkey.is_some())
                .map(|t| (t.ai, t))
        })
        .ok_or_else(|| Gs1Error {
            ai: None,
            kind: Gs1ErrorKind::DigitalLink("no primary key AI to build a URI from".into()),
            position: None,
        })?;
    // Every valid sequence for the key, sorted as text; the first with the most
    // qualifiers present wins (as the syntax engine chooses).
    let mut seqs: Vec<Vec<&'static str>> = Vec::new();
    for alt in key_entry.dlpkey.unwrap_or_default() {
        for mask in 0u32..(1 << alt.len()) {
            let mut s = vec![key];
            s.extend(
                alt.iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, a)| *a),
            );
            seqs.push(s);
        }
    }
    seqs.sort_by_key(|s| s.join(" "));
    let count = |s: &[&str]| {
        s[1..]
            .iter()
            .map(|q| elements.iter().filter(|e| e.ai == *q).count())
            .sum::<usize>()
    };
    let mut best: &[&str] = &[key];
    let mut max = 0;
    for s in &seqs {
        let c = count(s);
        if c > max {
            max = c;
            best = s;
        }
    }
    let mut out = String::with_capacity(stem.len() + 64);
    out.push_str(stem.strip_suffix('/').unwrap_or(stem));
    for ai in best {
        if let Some(e) = elements.iter().find(|e| e.ai == *ai) {
            out.push('/');
            out.push_str(&e.ai);
            out.push('/');
            escape(&mut out, &e.value, false);
        }
    }
    let mut sep = '?';
    for fixed_pass in [true, false] {
        for (i, e) in elements.iter().enumerate() {
            let fnc1 = table::lookup(e.ai.as_bytes()).is_none_or(|t| t.fnc1);
            if best.contains(&e.ai.as_str()) || fnc1 == fixed_pass {
                continue;
            }
            if elements[..i].iter().any(|o| o.ai == e.ai) {
                continue;
            }
            check_attribute(e, opts)?;
            out.push(sep);
            sep = '&';
            out.push_str(&e.ai);
            out.push('=');
            escape(&mut out, &e.value, true);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_of_identifier_segments() {
        assert_eq!(percent_decode("AB%2FC%25"), "AB/C%");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%2"), "bad%2");
        assert_eq!(percent_decode("nul%00x"), "nul%00x");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
    }
}
