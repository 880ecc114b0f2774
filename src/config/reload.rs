//! SIGHUP reload of the line profile. On SIGHUP `linectl run` re-reads and fully
//! validates the profile file ([`Profile::load`]); an invalid file changes nothing and
//! its problems are logged and audited. Otherwise [`classify`] compares every field of
//! the running profile with the new one and decides, per field, whether the change is
//! applied now or refused with the reason; [`merge`] builds the profile the daemon runs
//! on afterwards (the old one with the applied fields replaced), and [`audit_entries`]
//! turns the outcome into audit records (`ConfigChanged`, one per changed field with
//! old → new, plus one summary record). The classification is a pure function of the
//! two profiles: it never depends on the line state, so an operator learns the same
//! answer whether the line runs or not.
//!
//! | Section / field | On reload | Why |
//! |---|---|---|
//! | `[line]` id, site | refused | the line's identity is in every event and the pool |
//! | `[product]` (all) | refused | GTIN/market rules are coded into every unit of the batch |
//! | `[batch]` lot, expiry, target_quantity | applied | defaults offered for the next batch; the running batch keeps its own order |
//! | `[plc]`, `[printer]`, `[camera]` (all) | refused | device connections are opened at start; restart with the line stopped |
//! | `[geometry]` (all) | refused | the reject timing is computed at start; a change mid-batch rejects the wrong unit |
//! | `[verification]` min_grade, decode_deadline_ms, roi | refused | the pipeline reads them at start (no live update path yet); restart between batches |
//! | `[serials]` low_water | applied | only the pool forecast / low-water warning (HMI, `/metrics`) uses it |
//! | `[serials]` source, url, length, expected_per_gtin, block_size | refused | the serial supply and its market checks are fixed for the running pool |
//! | `[hmi]` listen | refused | the socket is bound |
//! | `[hmi]` resolve_needs_second_signature | refused | the HMI reads it at start; an e-signature rule must not change under an open exception |
//! | `[epcis]` capture_url, one URL to another | applied | the uplink is restarted on the new URL; unconfirmed events stay in the journal |
//! | `[epcis]` capture_url added or removed | refused | the journal's uplink consumer is set up at start |
//! | `[epcis]` identifiers, digital_link_base | refused | event identifiers must not change within a batch |
//! | `[log]` level | applied | the log filter is replaced at once (`RUST_LOG`, when set, still wins) |
//!
//! Not owned here: validation rules (profile), the signal itself (the daemon's loop
//! polls [`on_sighup`]'s flag), the uplink and the gauges the applied fields feed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::audit::{Action, AuditActor, Entry};
use crate::profile::{Profile, ProfileError};

/// What happens to one changed field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The change takes effect now; `effect` says what it changes.
    Applied {
        /// What the running daemon does with the new value.
        effect: &'static str,
    },
    /// The change is not applied; the running value stays.
    Refused {
        /// Why it cannot apply while the daemon runs.
        reason: &'static str,
    },
}

/// One changed field of the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `section.field`, as in the profile file.
    pub field: &'static str,
    /// The running value (Rust debug form, e.g. `Some("EU24A001")`).
    pub old: String,
    /// The value in the re-read file.
    pub new: String,
    /// Applied or refused.
    pub outcome: Outcome,
}

impl Change {
    /// True if applied.
    pub fn applied(&self) -> bool {
        matches!(self.outcome, Outcome::Applied { .. })
    }
}

/// How a whole reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The file is the same as the running profile.
    Unchanged,
    /// Every change was applied.
    Applied,
    /// Some changes were applied, some refused.
    PartlyApplied,
    /// Every change was refused (or the file was invalid).
    Refused,
}

impl Verdict {
    /// Lower-case name for logs and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Unchanged => "unchanged",
            Verdict::Applied => "applied",
            Verdict::PartlyApplied => "partly applied",
            Verdict::Refused => "refused",
        }
    }
}

/// The verdict of a set of changes.
pub fn verdict(changes: &[Change]) -> Verdict {
    let applied = changes.iter().filter(|c| c.applied()).count();
    match (applied, changes.len() - applied) {
        (0, 0) => Verdict::Unchanged,
        (_, 0) => Verdict::Applied,
        (0, _) => Verdict::Refused,
        _ => Verdict::PartlyApplied,
    }
}

const IDENTITY: &str =
    "the line's identity is in every event and the pool; restart linectl to change it";
const PRODUCT: &str =
    "GTIN and market rules are coded into every unit of the batch; restart linectl between batches";
const BATCH: &str = "profile defaults for the next batch; the running batch keeps its own order";
const DEVICE: &str =
    "device connections are opened at start; restart linectl with the line stopped";
const GEOMETRY: &str =
    "the reject timing is computed at start; a change mid-batch would reject the wrong unit";
const VERIFY: &str =
    "the pipeline reads verification settings at start; restart linectl between batches";
const LOW_WATER: &str = "pool low-water warning on the HMI overview and in /metrics";
const SERIALS: &str =
    "the serial supply and its market checks are fixed for the running pool; restart linectl";
const LISTEN: &str = "the HMI socket is bound; restart linectl";
const SIGN: &str = "the e-signature rule must not change under open exceptions; restart linectl";
const UPLINK: &str = "uplink restarted on the new URL; unconfirmed events stay in the journal";
const UPLINK_CONSUMER: &str = "the journal's uplink consumer is set up at start; adding or removing the capture URL needs a restart";
const LOG: &str = "log filter replaced (RUST_LOG, when set, still wins)";
const EVENTS: &str =
    "event identifiers must not change within a batch; restart linectl between batches";

fn refused(reason: &'static str) -> Outcome {
    Outcome::Refused { reason }
}

/// Every changed field of `new` against the running `old`, each applied or refused
/// (see the table in the module documentation). Pure: no I/O, no state.
pub fn classify(old: &Profile, new: &Profile) -> Vec<Change> {
    let mut out = Vec::new();
    macro_rules! field {
        ($name:literal, $($path:ident).+, $outcome:expr) => {
            if old.$($path).+ != new.$($path).+ {
                out.push(Change {
                    field: $name,
                    old: format!("{:?}", old.$($path).+),
                    new: format!("{:?}", new.$($path).+),
                    outcome: $outcome,
                });
            }
        };
    }
    field!("line.id", line.id, refused(IDENTITY));
    field!("line.site", line.site, refused(IDENTITY));
    field!("product.gtin", product.gtin, refused(PRODUCT));
    field!("product.name", product.name, refused(PRODUCT));
    field!("product.market", product.market, refused(PRODUCT));
    field!("product.country", product.country, refused(PRODUCT));
    field!(
        "product.national_ais",
        product.national_ais,
        refused(PRODUCT)
    );
    field!(
        "product.cn_product_code",
        product.cn_product_code,
        refused(PRODUCT)
    );
    let batch = Outcome::Applied { effect: BATCH };
    field!("batch.lot", batch.lot, batch.clone());
    field!("batch.expiry", batch.expiry, batch.clone());
    field!("batch.target_quantity", batch.target_quantity, batch);
    field!("plc", plc, refused(DEVICE));
    field!("printer", printer, refused(DEVICE));
    field!("camera", camera, refused(DEVICE));
    field!("geometry", geometry, refused(GEOMETRY));
    field!(
        "verification.min_grade",
        verification.min_grade,
        refused(VERIFY)
    );
    field!(
        "verification.decode_deadline_ms",
        verification.decode_deadline_ms,
        refused(VERIFY)
    );
    field!("verification.roi", verification.roi, refused(VERIFY));
    field!("serials.source", serials.source, refused(SERIALS));
    field!("serials.block_size", serials.block_size, refused(SERIALS));
    field!(
        "serials.low_water",
        serials.low_water,
        Outcome::Applied { effect: LOW_WATER }
    );
    field!("serials.length", serials.length, refused(SERIALS));
    field!(
        "serials.expected_per_gtin",
        serials.expected_per_gtin,
        refused(SERIALS)
    );
    field!("serials.url", serials.url, refused(SERIALS));
    field!("hmi.listen", hmi.listen, refused(LISTEN));
    field!(
        "hmi.resolve_needs_second_signature",
        hmi.resolve_needs_second_signature,
        refused(SIGN)
    );
    let uplink = match (&old.epcis.capture_url, &new.epcis.capture_url) {
        (Some(_), Some(_)) => Outcome::Applied { effect: UPLINK },
        _ => refused(UPLINK_CONSUMER),
    };
    field!("epcis.capture_url", epcis.capture_url, uplink);
    field!("epcis.identifiers", epcis.identifiers, refused(EVENTS));
    field!(
        "epcis.digital_link_base",
        epcis.digital_link_base,
        refused(EVENTS)
    );
    field!("log.level", log.level, Outcome::Applied { effect: LOG });
    out
}

/// The profile to run on after a reload: `old` with the applied `changes` taken from
/// `new`.
pub fn merge(old: &Profile, new: &Profile, changes: &[Change]) -> Profile {
    let mut p = old.clone();
    for c in changes.iter().filter(|c| c.applied()) {
        match c.field {
            "batch.lot" => p.batch.lot = new.batch.lot.clone(),
            "batch.expiry" => p.batch.expiry = new.batch.expiry.clone(),
            "batch.target_quantity" => p.batch.target_quantity = new.batch.target_quantity,
            "serials.low_water" => p.serials.low_water = new.serials.low_water,
            "epcis.capture_url" => p.epcis.capture_url = new.epcis.capture_url.clone(),
            "log.level" => p.log.level = new.log.level.clone(),
            // `classify` applies no other field; a new applied field must be added here
            // (the unit test `merge_takes_exactly_the_applied_fields` checks it).
            _ => {}
        }
    }
    p
}

/// The result of one reload.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The profile to run on now (unchanged when the file was invalid).
    pub profile: Profile,
    /// The changed fields and what happened to each (empty when invalid).
    pub changes: Vec<Change>,
    /// The validation problems when the file was invalid.
    pub invalid: Option<ProfileError>,
}

impl Reload {
    /// The overall verdict.
    pub fn verdict(&self) -> Verdict {
        if self.invalid.is_some() {
            Verdict::Refused
        } else {
            verdict(&self.changes)
        }
    }
}

/// Re-read and validate the profile at `path` and plan the reload against `running`.
pub fn reload(path: &std::path::Path, running: &Profile) -> Reload {
    match Profile::load(path) {
        Ok(new) => {
            let changes = classify(running, &new);
            Reload {
                profile: merge(running, &new, &changes),
                changes,
                invalid: None,
            }
        }
        Err(e) => Reload {
            profile: running.clone(),
            changes: Vec::new(),
            invalid: Some(e),
        },
    }
}

/// The audit records of a reload of `file`: one per changed field (old → new, with the
/// effect or the refusal reason) and a summary; an invalid file gives one record with
/// its problems. Recorded as linectl's own action (the operator's SIGHUP has no user).
pub fn audit_entries(file: &str, r: &Reload) -> Vec<Entry> {
    let object = format!("profile:{file}");
    if let Some(e) = &r.invalid {
        return vec![
            Entry::new(AuditActor::system(), Action::ConfigChanged, object)
                .detail(format!("reload refused: the profile is invalid: {e}"))
                .reason("SIGHUP"),
        ];
    }
    let mut out: Vec<Entry> = r
        .changes
        .iter()
        .map(|c| {
            let detail = match &c.outcome {
                Outcome::Applied { effect } => format!("{}: applied ({effect})", c.field),
                Outcome::Refused { reason } => format!("{}: refused ({reason})", c.field),
            };
            Entry::new(AuditActor::system(), Action::ConfigChanged, object.clone())
                .detail(detail)
                .reason("SIGHUP")
                .change(Some(c.old.clone()), Some(c.new.clone()))
        })
        .collect();
    let applied = r.changes.iter().filter(|c| c.applied()).count();
    out.push(
        Entry::new(AuditActor::system(), Action::ConfigChanged, object)
            .detail(format!(
                "reload {}: {applied} applied, {} refused",
                r.verdict().name(),
                r.changes.len() - applied
            ))
            .reason("SIGHUP"),
    );
    out
}

/// A flag set on every SIGHUP (the daemon's loop swaps it back to false and reloads).
/// Installing the handler replaces SIGHUP's default action (terminate).
pub fn on_sighup() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Register in this thread so the handler is in place when the function returns.
    let mut hup = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    })?;
    let f = flag.clone();
    std::thread::Builder::new()
        .name("linectl-sighup".into())
        .spawn(move || {
            rt.block_on(async move {
                while hup.recv().await.is_some() {
                    f.store(true, Ordering::SeqCst);
                    tracing::info!("SIGHUP: profile reload requested");
                }
            });
        })?;
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Profile {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/line-profiles/eu-fmd-carton.toml"
        );
        let text = std::fs::read_to_string(path).expect("profile");
        Profile::from_toml(path, &text, None).expect("valid")
    }

    #[test]
    fn the_same_profile_changes_nothing() {
        assert!(classify(&base(), &base()).is_empty());
        assert_eq!(verdict(&[]), Verdict::Unchanged);
    }

    #[test]
    fn safe_fields_apply_and_the_rest_is_refused_with_a_reason() {
        let old = base();
        let mut new = base();
        new.serials.low_water = 123;
        new.batch.lot = Some("LOT-NEW".into());
        new.epcis.capture_url = Some("http://127.0.0.1:9/capture".into());
        new.plc.address = "10.0.0.9:502".into();
        new.product.gtin = "09506000134376".into();
        new.verification.decode_deadline_ms += 1;
        new.hmi.listen = "0.0.0.0:80".into();
        let changes = classify(&old, &new);
        let by = |f: &str| changes.iter().find(|c| c.field == f).expect(f).clone();
        assert!(by("serials.low_water").applied());
        assert_eq!(by("serials.low_water").old, "5000");
        assert_eq!(by("serials.low_water").new, "123");
        assert!(by("batch.lot").applied());
        assert!(by("epcis.capture_url").applied());
        for f in [
            "plc",
            "product.gtin",
            "verification.decode_deadline_ms",
            "hmi.listen",
        ] {
            let c = by(f);
            assert!(
                matches!(c.outcome, Outcome::Refused { reason } if !reason.is_empty()),
                "{c:?}"
            );
        }
        assert_eq!(changes.len(), 7, "{changes:?}");
        assert_eq!(verdict(&changes), Verdict::PartlyApplied);
    }

    #[test]
    fn adding_or_removing_the_capture_url_is_refused() {
        let old = base();
        let mut new = base();
        new.epcis.capture_url = None;
        let c = classify(&old, &new);
        assert_eq!(c.len(), 1);
        assert!(!c[0].applied());
        assert_eq!(verdict(&c), Verdict::Refused);
        let c = classify(&new, &old);
        assert!(!c[0].applied());
    }

    #[test]
    fn merge_takes_exactly_the_applied_fields() {
        let old = base();
        let mut new = base();
        new.serials.low_water = 1;
        new.batch.lot = Some("L2".into());
        new.batch.expiry = Some("300131".into());
        new.batch.target_quantity = Some(7);
        new.epcis.capture_url = Some("http://127.0.0.1:9/c".into());
        new.log.level = "debug".into();
        new.line.id = "OTHER".into();
        let changes = classify(&old, &new);
        let merged = merge(&old, &new, &changes);
        // Everything applied is taken over: only the refused line id still differs.
        let rest = classify(&merged, &new);
        assert_eq!(rest.len(), 1, "{rest:?}");
        assert_eq!(rest[0].field, "line.id");
        assert_eq!(merged.line.id, old.line.id);
    }

    #[test]
    fn audit_records_name_old_and_new_values_and_the_outcome() {
        let old = base();
        let mut new = base();
        new.serials.low_water = 42;
        new.line.id = "X".into();
        let changes = classify(&old, &new);
        let r = Reload {
            profile: merge(&old, &new, &changes),
            changes,
            invalid: None,
        };
        let e = audit_entries("line.toml", &r);
        assert_eq!(e.len(), 3);
        assert!(e.iter().all(|e| e.action == Action::ConfigChanged));
        let low = e
            .iter()
            .find(|e| e.detail.starts_with("serials.low_water"))
            .expect("low");
        assert_eq!(low.old_value.as_deref(), Some("5000"));
        assert_eq!(low.new_value.as_deref(), Some("42"));
        assert!(low.detail.contains("applied"));
        assert!(e.iter().any(|e| e.detail.starts_with("line.id: refused")));
        assert_eq!(
            e.last().map(|e| e.detail.as_str()),
            Some("reload partly applied: 1 applied, 1 refused")
        );
    }

    #[test]
    fn a_bad_log_filter_makes_the_file_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/line-profiles/eu-fmd-carton.toml"
        ))
        .expect("profile");
        std::fs::write(&path, format!("{text}\n[log]\nlevel = \"linectl=loud\"\n")).expect("write");
        let r = reload(&path, &base());
        let e = r.invalid.expect("invalid");
        assert!(e.to_string().contains("log.level"), "{e}");
        std::fs::write(
            &path,
            format!("{text}\n[log]\nlevel = \"linectl=debug,info\"\n"),
        )
        .expect("write");
        let r = reload(&path, &base());
        assert!(r.invalid.is_none());
        assert_eq!(r.profile.log.level, "linectl=debug,info");
        assert_eq!(r.verdict(), Verdict::Applied);
    }

    #[test]
    fn an_invalid_file_changes_nothing_and_is_audited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[line]\nid = 5\n").expect("write");
        let old = base();
        let r = reload(&path, &old);
        assert_eq!(r.verdict(), Verdict::Refused);
        assert_eq!(r.profile, old);
        let e = audit_entries("p.toml", &r);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].detail
                .starts_with("reload refused: the profile is invalid"),
            "{}",
            e[0].detail
        );
    }
}
