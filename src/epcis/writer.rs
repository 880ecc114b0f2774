//! The line's per-unit events written straight into a reused buffer: the commissioning
//! event of a unit that passed and the destroying event of a printed reject, one serial
//! each, as the same JSON bytes and the same CBV 2.0 event hash as the typed path
//! ([`LineEvents::commissioning`] / [`LineEvents::rejected_destroyed`], then
//! [`Event::with_hash_id`](super::Event::with_hash_id) and `serde_json`), without
//! allocating per unit. It owns the fixed event shape and its caches (the time strings
//! of the last event time, the ILMD of the last batch); it does not own the journal
//! record around the event (`crate::uplink::record`) nor any other event kind, which go
//! through the typed path.
//!
//! Everything that is the same for many units is made once with the typed path and
//! checked against it: the line's canonical read point and location, and per batch (lot,
//! expiry, year) the ILMD part of the pre-hash string. Whenever that cache is filled,
//! both event kinds are written for a probe serial by both paths; if the bytes differ
//! in any way the writer stops using its own path and every later event goes the typed
//! way (with a warning), so a divergence costs allocations, never a wrong event.

use sha2::{Digest, Sha256};

use super::EpcisError;
use super::event::LineEvents;
use super::hash::{HashContext, prehash};
use super::ids::{canonical_id, serial_ok, sgtin_prefix, write_escaped};
use super::time::{EventTime, gs1_date_to_iso};

/// Which per-unit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitEvent {
    /// Passed inspection: ADD, `commissioning`, `active`, ILMD with lot and expiry.
    Commissioned,
    /// Printed, rejected and destroyed: DELETE, `destroying`, `destroyed`.
    Destroyed,
}

/// A serial (20 characters, the most there may be) with every character either escaping
/// treats specially, for the self-check.
const PROBE_SERIAL: &str = "A\"%&/<>?!()*+,:;='z9";

/// The batch part of the cache.
#[derive(Debug, Default)]
struct Batch {
    lot: String,
    expiry: String,
    year: i64,
    /// `itemExpirationDate` and the pre-hash's ILMD part, `None` when lot or expiry is
    /// invalid (commissioning then goes the typed way, which names the error).
    ilmd: Option<(String, String)>,
}

/// Writes a line's per-unit events into a caller's buffer (see the module docs).
#[derive(Debug)]
pub struct UnitEventWriter {
    line: LineEvents,
    /// What precedes the escaped serial in the event's URI, and the escaping.
    uri_prefix: String,
    dl: bool,
    /// What precedes the Digital-Link-escaped serial in the pre-hash's canonical URI.
    canon_prefix: String,
    read_point_canon: String,
    biz_location_canon: String,
    /// The last event time and its strings (local, hash form, offset).
    time: Option<EventTime>,
    local: String,
    utc: String,
    offset: String,
    batch: Option<Batch>,
    /// Scratch: the pre-hash string.
    prehash: String,
    /// The self-check failed once: everything goes the typed way.
    typed_only: bool,
}

impl UnitEventWriter {
    /// A writer for `line`'s events.
    pub fn new(line: &LineEvents) -> UnitEventWriter {
        let (uri_prefix, dl) = sgtin_prefix(line.form, &line.gtin);
        let (canon_prefix, _) = sgtin_prefix(super::IdForm::DigitalLink, &line.gtin);
        UnitEventWriter {
            line: line.clone(),
            uri_prefix,
            dl,
            canon_prefix,
            read_point_canon: canonical_id(&line.read_point),
            biz_location_canon: canonical_id(&line.biz_location),
            time: None,
            local: String::new(),
            utc: String::new(),
            offset: String::new(),
            batch: None,
            prehash: String::new(),
            typed_only: false,
        }
    }

    /// Append the event `kind` of `serial` at `time` (with `lot` and `expiry_yymmdd` for
    /// its ILMD) to `out`: the event JSON with its hash `eventID`, exactly as the typed
    /// path serialises it. Invalid input gives the typed path's error.
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        kind: UnitEvent,
        time: EventTime,
        serial: &str,
        lot: &str,
        expiry_yymmdd: &str,
    ) -> Result<(), EpcisError> {
        if self.typed_only
            || !serial_ok(serial)
            // Years beyond four digits: let the typed path decide.
            || !(0..=253_402_300_799_999).contains(&time.unix_ms)
        {
            return self.typed(out, kind, time, serial, lot, expiry_yymmdd);
        }
        self.set_time(time);
        self.set_batch(time, lot, expiry_yymmdd);
        if self.typed_only {
            return self.typed(out, kind, time, serial, lot, expiry_yymmdd);
        }
        if kind == UnitEvent::Commissioned && self.batch.as_ref().is_none_or(|b| b.ilmd.is_none()) {
            return self.typed(out, kind, time, serial, lot, expiry_yymmdd);
        }
        self.own(out, kind, serial);
        Ok(())
    }

    /// The typed path.
    fn typed(
        &self,
        out: &mut Vec<u8>,
        kind: UnitEvent,
        time: EventTime,
        serial: &str,
        lot: &str,
        expiry_yymmdd: &str,
    ) -> Result<(), EpcisError> {
        let event = match kind {
            UnitEvent::Commissioned => {
                self.line
                    .commissioning(time, &[serial], lot, expiry_yymmdd)?
            }
            UnitEvent::Destroyed => self.line.rejected_destroyed(time, &[serial])?,
        }
        .with_hash_id()?;
        serde_json::to_writer(out, &event.to_json())?;
        Ok(())
    }

    fn set_time(&mut self, time: EventTime) {
        if self.time == Some(time) {
            return;
        }
        self.local.clear();
        time.write_rfc3339(&mut self.local);
        self.utc.clear();
        time.write_hash_form(&mut self.utc);
        self.offset.clear();
        time.write_offset(&mut self.offset);
        self.time = Some(time);
    }

    /// Fill the batch cache for `lot`/`expiry` in `time`'s year, and check the own path
    /// against the typed one (see the module docs).
    fn set_batch(&mut self, time: EventTime, lot: &str, expiry: &str) {
        let year = time.local_year();
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.lot == lot && b.expiry == expiry && b.year == year)
        {
            return;
        }
        let ilmd = self.ilmd_of(time, lot, expiry);
        self.batch = Some(Batch {
            lot: lot.to_owned(),
            expiry: expiry.to_owned(),
            year,
            ilmd,
        });
        let kinds: &[UnitEvent] = match self.batch.as_ref().and_then(|b| b.ilmd.as_ref()) {
            Some(_) => &[UnitEvent::Commissioned, UnitEvent::Destroyed],
            None => &[UnitEvent::Destroyed],
        };
        for &kind in kinds {
            let mut own = Vec::new();
            self.own(&mut own, kind, PROBE_SERIAL);
            let mut typed = Vec::new();
            let same = self
                .typed(&mut typed, kind, time, PROBE_SERIAL, lot, expiry)
                .is_ok()
                && own == typed;
            if !same {
                tracing::warn!(
                    ?kind,
                    own = %String::from_utf8_lossy(&own),
                    typed = %String::from_utf8_lossy(&typed),
                    "per-unit event writer differs from the typed path: using the typed path"
                );
                self.typed_only = true;
                return;
            }
        }
    }

    /// `itemExpirationDate` and the pre-hash's ILMD part of `lot`/`expiry`: the typed
    /// pre-hash of a probe event less the part this writer makes itself.
    fn ilmd_of(&mut self, time: EventTime, lot: &str, expiry: &str) -> Option<(String, String)> {
        let iso = gs1_date_to_iso(expiry, time.local_year()).ok()?;
        let event = self
            .line
            .commissioning(time, &[PROBE_SERIAL], lot, expiry)
            .ok()?;
        let full = prehash(&event.to_json(), &HashContext::epcis_default()).ok()?;
        self.prehash_head(UnitEvent::Commissioned, PROBE_SERIAL);
        let rest = full.strip_prefix(self.prehash.as_str())?;
        Some((iso, rest.to_owned()))
    }

    /// The pre-hash string up to (without) the ILMD, into `self.prehash`.
    fn prehash_head(&mut self, kind: UnitEvent, serial: &str) {
        let p = &mut self.prehash;
        p.clear();
        p.push_str("eventType=ObjectEventeventTime=");
        p.push_str(&self.utc);
        p.push_str("eventTimeZoneOffset=");
        p.push_str(&self.offset);
        p.push_str("epcListepc=");
        p.push_str(&self.canon_prefix);
        write_escaped(p, serial, true);
        p.push_str(match kind {
            UnitEvent::Commissioned => {
                "action=ADDbizStep=https://ref.gs1.org/cbv/BizStep-commissioning\
                 disposition=https://ref.gs1.org/cbv/Disp-active"
            }
            UnitEvent::Destroyed => {
                "action=DELETEbizStep=https://ref.gs1.org/cbv/BizStep-destroying\
                 disposition=https://ref.gs1.org/cbv/Disp-destroyed"
            }
        });
        p.push_str("readPointid=");
        p.push_str(&self.read_point_canon);
        p.push_str("bizLocationid=");
        p.push_str(&self.biz_location_canon);
    }

    /// The own path: time and batch caches are set.
    fn own(&mut self, out: &mut Vec<u8>, kind: UnitEvent, serial: &str) {
        self.prehash_head(kind, serial);
        let ilmd = match kind {
            UnitEvent::Commissioned => self.batch.as_ref().and_then(|b| b.ilmd.as_ref()),
            UnitEvent::Destroyed => None,
        };
        if let Some((_, part)) = ilmd {
            self.prehash.push_str(part);
        }
        let digest = Sha256::digest(self.prehash.as_bytes());
        // Keys in the order `serde_json` writes a `Value` object (sorted).
        out.extend_from_slice(match kind {
            UnitEvent::Commissioned => &b"{\"action\":\"ADD\",\"bizLocation\":{\"id\":"[..],
            UnitEvent::Destroyed => &b"{\"action\":\"DELETE\",\"bizLocation\":{\"id\":"[..],
        });
        json_str(out, &self.line.biz_location);
        out.extend_from_slice(match kind {
            UnitEvent::Commissioned => {
                &b"},\"bizStep\":\"commissioning\",\"disposition\":\"active\",\"epcList\":["[..]
            }
            UnitEvent::Destroyed => {
                &b"},\"bizStep\":\"destroying\",\"disposition\":\"destroyed\",\"epcList\":["[..]
            }
        });
        // The URI (in the scratch's tail) through the JSON string writer: an EPC URN
        // leaves some characters bare that JSON escapes.
        let start = self.prehash.len();
        self.prehash.push_str(&self.uri_prefix);
        write_escaped(&mut self.prehash, serial, self.dl);
        json_str(out, self.prehash.get(start..).unwrap_or_default());
        self.prehash.truncate(start);
        out.extend_from_slice(b"],\"eventID\":\"ni:///sha-256;");
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in digest {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        out.extend_from_slice(b"?ver=CBV2.0\",\"eventTime\":");
        json_str(out, &self.local);
        out.extend_from_slice(b",\"eventTimeZoneOffset\":");
        json_str(out, &self.offset);
        if let (Some((iso, _)), Some(b)) = (ilmd, &self.batch) {
            out.extend_from_slice(b",\"ilmd\":{\"cbvmda:itemExpirationDate\":");
            json_str(out, iso);
            out.extend_from_slice(b",\"cbvmda:lotNumber\":");
            json_str(out, &b.lot);
            out.push(b'}');
        }
        out.extend_from_slice(b",\"readPoint\":{\"id\":");
        json_str(out, &self.line.read_point);
        out.extend_from_slice(b"},\"type\":\"ObjectEvent\"}");
    }
}

/// `s` as a JSON string, escaped as `serde_json` escapes it.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string to a `Vec` cannot fail.
    let _ = serde_json::to_writer(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcis::{CompanyPrefixLen, IdForm, Sgln};

    fn line(form: IdForm) -> LineEvents {
        LineEvents::new(
            form,
            "04012345111118",
            &Sgln::new("4012345000054", Some("1")).unwrap_or_else(|e| panic!("{e}")),
            &Sgln::new("4012345000054", None).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn typed(
        line: &LineEvents,
        kind: UnitEvent,
        time: EventTime,
        serial: &str,
        lot: &str,
        expiry: &str,
    ) -> Result<Vec<u8>, String> {
        let event = match kind {
            UnitEvent::Commissioned => line.commissioning(time, &[serial], lot, expiry),
            UnitEvent::Destroyed => line.rejected_destroyed(time, &[serial]),
        }
        .and_then(|e| e.with_hash_id())
        .map_err(|e| e.to_string())?;
        serde_json::to_vec(&event.to_json()).map_err(|e| e.to_string())
    }

    /// Every serial character, both identifier forms, several times, offsets, lots and
    /// expiries: the writer's bytes are the typed path's bytes, errors are its errors.
    #[test]
    fn same_bytes_and_errors_as_the_typed_path() {
        let cset82: Vec<char> =
            "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
                .chars()
                .collect();
        let mut serials: Vec<String> = cset82.chunks(7).map(|c| c.iter().collect()).collect();
        serials.extend(
            [
                "1",
                "M2P0PZJF7RK3",
                "ABCDEFGHIJKLMNOPQRST",
                "",
                "too long serial!!!!!!!",
                "sp ace",
                "é",
            ]
            .map(String::from),
        );
        let forms = [
            IdForm::DigitalLink,
            IdForm::EpcUrn {
                company_prefix_len: CompanyPrefixLen::new(7).unwrap_or_else(|e| panic!("{e}")),
            },
        ];
        let batches = [
            ("EU24A001", "281231"),
            ("L\"/1", "280200"),
            ("http://a/01/1234567", "300100"),
            ("", "281231"),
            ("LOT", "281399"),
        ];
        let times = [
            (1_767_225_600_650, 0),
            (1_764_532_800_000, 60),
            (1_764_532_800_999, -330),
        ];
        let mut checked = 0;
        for form in forms {
            let line = line(form);
            let mut w = UnitEventWriter::new(&line);
            for (lot, expiry) in batches {
                for (ms, off) in times {
                    let t = EventTime::new(ms, off).unwrap_or_else(|e| panic!("{e}"));
                    for s in &serials {
                        for kind in [UnitEvent::Commissioned, UnitEvent::Destroyed] {
                            let want = typed(&line, kind, t, s, lot, expiry);
                            let mut got = b"prefix".to_vec();
                            let r = w.write(&mut got, kind, t, s, lot, expiry);
                            match (&want, r) {
                                (Ok(want), Ok(())) => {
                                    assert_eq!(
                                        got.get(6..),
                                        Some(want.as_slice()),
                                        "{kind:?} {s:?} {lot:?} {expiry:?} {ms} {off}"
                                    );
                                    checked += 1;
                                }
                                (Err(want), Err(e)) => assert_eq!(&e.to_string(), want),
                                (want, got) => panic!("{s:?} {lot:?}: {want:?} vs {got:?}"),
                            }
                        }
                    }
                }
            }
            assert!(!w.typed_only, "the self-check fell back to the typed path");
        }
        assert!(checked > 500, "{checked}");
        assert!(serial_ok(PROBE_SERIAL));
    }
}
