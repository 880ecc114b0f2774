//! Reading the trail back: [`Query`] filters records by time range, user, action and
//! object; [`write_csv`] exports records as RFC 4180 CSV (comma-separated, fields
//! quoted where needed with doubled quotes inside, CRLF line ends, one header row) with
//! times both as RFC 3339 UTC text and as microseconds. [`CsvRow`] is one exported row,
//! so an export can be read back with the `csv` crate. This module does not open files.

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::record::{Action, Record};
use super::time::format_utc;

/// A filter over records; every `None` matches all. Ranges are half-open:
/// `from_us <= time_us < to_us`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Earliest time (UTC µs), inclusive.
    pub from_us: Option<u64>,
    /// Latest time (UTC µs), exclusive.
    pub to_us: Option<u64>,
    /// Only records by this user (or signed by them as second person).
    pub user: Option<String>,
    /// Only records of this action.
    pub action: Option<Action>,
    /// Only records whose object starts with this text (e.g. `batch:B12` or `user:`).
    pub object_prefix: Option<String>,
}

impl Query {
    /// Whether `r` passes the filter.
    pub fn matches(&self, r: &Record) -> bool {
        self.from_us.is_none_or(|t| r.time_us >= t)
            && self.to_us.is_none_or(|t| r.time_us < t)
            && self.user.as_ref().is_none_or(|u| {
                r.user == *u || r.signature.as_ref().is_some_and(|s| s.signer == *u)
            })
            && self.action.as_ref().is_none_or(|a| r.action == *a)
            && self
                .object_prefix
                .as_ref()
                .is_none_or(|o| r.object.starts_with(o.as_str()))
    }
}

/// One row of the CSV export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvRow {
    /// Sequence number.
    pub seq: u64,
    /// Time, RFC 3339 UTC.
    pub time_utc: String,
    /// Time, µs since the Unix epoch.
    pub time_us: u64,
    /// User.
    pub user: String,
    /// Role.
    pub role: String,
    /// Action name.
    pub action: String,
    /// Detail.
    pub detail: String,
    /// Object.
    pub object: String,
    /// Reason.
    pub reason: String,
    /// Old value (empty when none).
    pub old_value: String,
    /// New value (empty when none).
    pub new_value: String,
    /// Second-person signer (empty when none).
    pub signer: String,
    /// Signer's role.
    pub signer_role: String,
    /// Signature meaning.
    pub sign_meaning: String,
    /// Signature time, RFC 3339 UTC.
    pub sign_time_utc: String,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl From<&Record> for CsvRow {
    fn from(r: &Record) -> CsvRow {
        let sig = r.signature.as_ref();
        CsvRow {
            seq: r.seq,
            time_utc: format_utc(r.time_us),
            time_us: r.time_us,
            user: r.user.clone(),
            role: r.role.clone(),
            action: r.action.to_string(),
            detail: r.detail.clone(),
            object: r.object.clone(),
            reason: r.reason.clone(),
            old_value: r.old_value.clone().unwrap_or_default(),
            new_value: r.new_value.clone().unwrap_or_default(),
            signer: sig.map(|s| s.signer.clone()).unwrap_or_default(),
            signer_role: sig.map(|s| s.signer_role.clone()).unwrap_or_default(),
            sign_meaning: sig.map(|s| s.meaning.to_string()).unwrap_or_default(),
            sign_time_utc: sig.map(|s| format_utc(s.time_us)).unwrap_or_default(),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// Write `records` as CSV (header + one row each) to `out`.
pub fn write_csv<'a, W: Write>(
    records: impl IntoIterator<Item = &'a Record>,
    out: W,
) -> Result<(), csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(out);
    let mut any = false;
    for r in records {
        w.serialize(CsvRow::from(r))?;
        any = true;
    }
    if !any {
        // serde writes the header with the first row; an empty export still has one.
        w.write_record([
            "seq",
            "time_utc",
            "time_us",
            "user",
            "role",
            "action",
            "detail",
            "object",
            "reason",
            "old_value",
            "new_value",
            "signer",
            "signer_role",
            "sign_meaning",
            "sign_time_utc",
            "prev_hash",
            "hash",
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{AuditActor, ESignature, Entry, GENESIS_HASH, Meaning};

    fn rec(seq: u64, time_us: u64, user: &str, action: Action, object: &str) -> Record {
        Record::seal(
            seq,
            time_us,
            Entry::new(
                AuditActor {
                    user: user.into(),
                    role: "operator".into(),
                },
                action,
                object,
            ),
            GENESIS_HASH,
        )
    }

    #[test]
    fn query_filters_each_field() {
        let mut signed = rec(4, 40, "carol", Action::ExceptionResolved, "exception:1");
        signed.signature = Some(ESignature {
            signer: "dave".into(),
            signer_role: "qa".into(),
            meaning: Meaning::Approval,
            time_us: 40,
        });
        let rs = [
            rec(1, 10, "alice", Action::Login, "session"),
            rec(2, 20, "bob", Action::BatchStarted, "batch:B1"),
            rec(3, 30, "alice", Action::PackmlCommand, "batch:B1"),
            signed,
        ];
        let pick =
            |q: Query| -> Vec<u64> { rs.iter().filter(|r| q.matches(r)).map(|r| r.seq).collect() };
        assert_eq!(pick(Query::default()), vec![1, 2, 3, 4]);
        let range = Query {
            from_us: Some(20),
            to_us: Some(40),
            ..Query::default()
        };
        assert_eq!(pick(range), vec![2, 3]);
        let by_user = |u: &str| Query {
            user: Some(u.into()),
            ..Query::default()
        };
        assert_eq!(pick(by_user("alice")), vec![1, 3]);
        assert_eq!(pick(by_user("dave")), vec![4]);
        let by_action = Query {
            action: Some(Action::BatchStarted),
            ..Query::default()
        };
        assert_eq!(pick(by_action), vec![2]);
        let by_object = Query {
            object_prefix: Some("batch:".into()),
            ..Query::default()
        };
        assert_eq!(pick(by_object), vec![2, 3]);
    }

    #[test]
    fn csv_quotes_per_rfc4180_and_reads_back() {
        let mut r = rec(1, 1_700_000_000_000_000, "a,b", Action::ConfigChanged, "x");
        r.reason = "said \"ok\"\r\nnext line".into();
        r.old_value = Some("1".into());
        let mut out = Vec::new();
        write_csv([&r], &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("seq,time_utc,time_us,user,"), "{text}");
        assert!(text.contains("\"a,b\""));
        assert!(text.contains("\"said \"\"ok\"\"\r\nnext line\""));
        assert!(text.ends_with("\r\n"));
        let mut rd = csv::Reader::from_reader(out.as_slice());
        let rows: Vec<CsvRow> = rd.deserialize().collect::<Result<_, _>>().unwrap();
        assert_eq!(rows, vec![CsvRow::from(&r)]);
        assert_eq!(rows[0].time_utc, "2023-11-14T22:13:20.000000Z");
    }

    #[test]
    fn empty_export_has_a_header() {
        let mut out = Vec::new();
        write_csv(std::iter::empty(), &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("seq,time_utc,"));
    }
}
