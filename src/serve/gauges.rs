//! The operations gauges the pipeline's [`LineStatus`] does not carry: the upload
//! backlog (events in the journal the uplink consumer has not confirmed, their bytes and
//! the age of the oldest), the journal's size, and the pool forecast (time until the pool
//! for the running GTIN runs out at the current line rate, whether it covers what the
//! batch still needs, the low-water mark). The `/metrics` endpoint and the HMI overview
//! show them. This module computes them from the journal, the status and the profile's
//! settings; it does not own the journal, the pool or the line rate's source (the daemon
//! feeds a [`RateMeter`] from its status loop).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, Micros};
use crate::journal::{Journal, JournalError};
use crate::pipeline::{LineStatus, StatusCell};
use crate::pool::Forecast;

/// The line rate over a sliding window of `(time, units inspected)` samples.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    samples: VecDeque<(Micros, u64)>,
}

impl RateMeter {
    /// A meter averaging over `window` (a minute is a good window for a line rate).
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Record that `count` units were inspected in the batch at `now`. A count below the
    /// last one (a new batch) starts over.
    pub fn sample(&mut self, now: Micros, count: u64) {
        if self
            .samples
            .back()
            .is_some_and(|&(t, c)| count < c || now < t)
        {
            self.samples.clear();
        }
        self.samples.push_back((now, count));
        let oldest_kept = Micros(now.0.saturating_sub(self.window.as_micros() as u64));
        // Keep one sample at or before the window start so the window stays full.
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|&(t, _)| t <= oldest_kept)
        {
            self.samples.pop_front();
        }
    }

    /// Units per minute over the window; `None` until two samples a second apart exist.
    pub fn per_minute(&self) -> Option<f64> {
        let (&(t0, c0), &(t1, c1)) = (self.samples.front()?, self.samples.back()?);
        let dt = t1.since(t0);
        if dt < Duration::from_secs(1) {
            return None;
        }
        Some(c1.saturating_sub(c0) as f64 * 60.0 / dt.as_secs_f64())
    }
}

/// Events the upload consumer has not confirmed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UploadBacklog {
    /// Events journaled but not yet confirmed by the consumer.
    pub events: u64,
    /// Their bytes on disk (an upper bound within 64 records, see
    /// [`Journal::bytes_from`]).
    pub bytes: u64,
    /// Age in seconds of the oldest unconfirmed event (its `eventTime`), when there is one.
    pub oldest_age_seconds: Option<f64>,
}

/// The backlog of `consumer` in `journal`; `wall_now_us` (Unix µs) dates the oldest.
pub fn upload_backlog(
    journal: &Journal,
    consumer: &str,
    wall_now_us: u64,
) -> Result<UploadBacklog, JournalError> {
    let cursor = journal.cursor(consumer)?;
    let end = journal.end_seq();
    let events = end.0.saturating_sub(cursor.0);
    let oldest_age_seconds = if events == 0 {
        None
    } else {
        journal
            .read_from(cursor, 1)?
            .first()
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
            .and_then(|v| {
                let t = v.get("event")?.get("eventTime")?.as_str()?.to_string();
                crate::epcis::time::parse_to_utc_ms(&t).ok()
            })
            .map(|ms| (wall_now_us as f64 / 1e6 - ms as f64 / 1e3).max(0.0))
    };
    Ok(UploadBacklog {
        events,
        bytes: journal.bytes_from(cursor),
        oldest_age_seconds,
    })
}

/// The pool forecast for the running batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolForecast {
    /// Serials available for the running GTIN (last known).
    pub available: u64,
    /// Units the running batch still needs (0 without a batch).
    pub batch_remaining: u64,
    /// The line rate used, units per minute (0 when the line is not producing).
    pub rate_per_min: f64,
    /// Seconds until the pool runs out at that rate (`None` when the line is not
    /// producing).
    pub seconds_left: Option<f64>,
    /// The pool holds at least what the batch still needs.
    pub covers_batch: bool,
    /// Serials missing to finish the batch (0 when covered).
    pub shortfall: u64,
    /// The profile's low-water mark (`[serials] low_water`).
    pub low_water: u64,
    /// The pool is below the low-water mark.
    pub below_low_water: bool,
    /// The forecast's alarm: the pool runs dry within the horizon the batch still needs.
    pub alarm: bool,
}

/// The forecast from the status's pool level and batch, `rate_per_min` and the
/// profile's low-water mark; `None` while the pool level is unknown.
pub fn pool_forecast(
    s: &LineStatus,
    rate_per_min: Option<f64>,
    settings: &Forecast,
    low_water: u64,
) -> Option<PoolForecast> {
    let available = s.pool_available?;
    let batch_remaining = s
        .batch
        .as_ref()
        .map_or(0, |b| b.quantity.saturating_sub(s.inspected));
    let producing = s.state == "Execute";
    let rate = rate_per_min.filter(|_| producing).unwrap_or(0.0);
    let level = settings.assess(available, batch_remaining, rate);
    Some(PoolForecast {
        available,
        batch_remaining,
        rate_per_min: if rate.is_finite() { rate } else { 0.0 },
        seconds_left: level.minutes_left.map(|m| m * 60.0),
        covers_batch: level.shortfall == 0,
        shortfall: level.shortfall,
        low_water,
        below_low_water: available < low_water,
        alarm: level.alarm,
    })
}

/// Everything this module computes, as one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpsGauges {
    /// Bytes of all journal segment files.
    pub journal_bytes: u64,
    /// Number of journal segment files.
    pub journal_segments: u64,
    /// The upload backlog (`None` without an upload consumer).
    pub upload: Option<UploadBacklog>,
    /// The pool forecast (`None` while the pool level is unknown).
    pub forecast: Option<PoolForecast>,
}

/// The journal consumer whose backlog is the upload backlog.
pub const UPLOAD_CONSUMER: &str = "uplink";

/// All gauges at once: the journal's size, the backlog of [`UPLOAD_CONSUMER`] (`None`
/// when the journal has no such consumer, i.e. no capture URL) and the pool forecast.
pub fn collect(
    journal: &Journal,
    status: &LineStatus,
    rate_per_min: Option<f64>,
    settings: &Forecast,
    low_water: u64,
    wall_now_us: u64,
) -> OpsGauges {
    let upload = match upload_backlog(journal, UPLOAD_CONSUMER, wall_now_us) {
        Ok(b) => Some(b),
        Err(JournalError::UnknownConsumer(_)) => None,
        Err(e) => {
            tracing::debug!(error = %e, "upload backlog not readable");
            None
        }
    };
    OpsGauges {
        journal_bytes: journal.disk_bytes(),
        journal_segments: journal.segment_count() as u64,
        upload,
        forecast: pool_forecast(status, rate_per_min, settings, low_water),
    }
}

/// The gauges of one running line: its journal and status, a [`RateMeter`] sampled at
/// every [`GaugeSource::sample`] and [`GaugeSource::collect`], the forecast settings and
/// the low-water mark (changeable while running, e.g. by a SIGHUP reload).
pub struct GaugeSource {
    journal: Arc<Journal>,
    status: StatusCell,
    clock: Arc<dyn Clock>,
    rate: Mutex<RateMeter>,
    settings: Forecast,
    low_water: AtomicU64,
}

impl std::fmt::Debug for GaugeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaugeSource")
            .field("low_water", &self.low_water)
            .finish_non_exhaustive()
    }
}

impl GaugeSource {
    /// Gauges over `journal` and `status`, the line rate averaged over a minute.
    pub fn new(
        journal: Arc<Journal>,
        status: StatusCell,
        clock: Arc<dyn Clock>,
        settings: Forecast,
        low_water: u64,
    ) -> GaugeSource {
        GaugeSource {
            journal,
            status,
            clock,
            rate: Mutex::new(RateMeter::new(Duration::from_secs(60))),
            settings,
            low_water: AtomicU64::new(low_water),
        }
    }

    /// Take a line-rate sample now (call it regularly, e.g. from the daemon's loop).
    pub fn sample(&self) -> LineStatus {
        let s = self.status.snapshot();
        self.rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sample(self.clock.now(), s.inspected);
        s
    }

    /// Change the low-water mark.
    pub fn set_low_water(&self, units: u64) {
        self.low_water.store(units, Ordering::SeqCst);
    }

    /// Sample and compute every gauge.
    pub fn collect(&self) -> OpsGauges {
        let s = self.sample();
        let per_min = self
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .per_minute();
        collect(
            &self.journal,
            &s,
            per_min,
            &self.settings,
            self.low_water.load(Ordering::SeqCst),
            self.clock.wall_micros(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::BatchOrder;

    #[test]
    fn the_rate_is_the_slope_over_the_window_and_restarts_with_a_new_batch() {
        let mut m = RateMeter::new(Duration::from_secs(60));
        assert_eq!(m.per_minute(), None);
        for s in 0..=120u64 {
            // 5 units per second.
            m.sample(Micros(s * 1_000_000), s * 5);
        }
        let r = m.per_minute().expect("rate");
        assert!((r - 300.0).abs() < 1e-9, "{r}");
        assert!(m.samples.len() <= 62, "{}", m.samples.len());
        m.sample(Micros(121_000_000), 3);
        assert_eq!(m.per_minute(), None);
    }

    fn status(available: u64, quantity: u64, inspected: u64) -> LineStatus {
        LineStatus {
            state: "Execute".into(),
            pool_available: Some(available),
            inspected,
            batch: Some(BatchOrder {
                lot: "L".into(),
                expiry: "271231".into(),
                quantity,
            }),
            ..LineStatus::default()
        }
    }

    #[test]
    fn the_forecast_gives_time_to_empty_coverage_and_low_water() {
        let f = Forecast {
            low_water_minutes: 10.0,
        };
        // 600 serials at 120/min: 5 minutes; the batch needs 1000 more.
        let p = pool_forecast(&status(600, 1500, 500), Some(120.0), &f, 1000).expect("known");
        assert_eq!(p.seconds_left, Some(300.0));
        assert!(!p.covers_batch && p.below_low_water && p.alarm);
        assert_eq!((p.batch_remaining, p.shortfall), (1000, 400));
        // Plenty: covered, no alarm.
        let p = pool_forecast(&status(50_000, 1500, 500), Some(120.0), &f, 1000).expect("known");
        assert!(p.covers_batch && !p.below_low_water && !p.alarm);
        // A held line has no time to empty.
        let mut s = status(600, 1500, 500);
        s.state = "Held".into();
        let p = pool_forecast(&s, Some(120.0), &f, 1000).expect("known");
        assert_eq!((p.seconds_left, p.rate_per_min), (None, 0.0));
        // Unknown pool level: no forecast.
        assert!(pool_forecast(&LineStatus::default(), None, &f, 1).is_none());
    }

    #[test]
    fn the_backlog_counts_unconfirmed_events_and_dates_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(crate::journal::JournalConfig::in_dir(dir.path())).expect("open");
        let b = upload_backlog(&j, "uplink", 0).expect("empty");
        assert_eq!((b.events, b.oldest_age_seconds), (0, None));
        for i in 0..3 {
            let payload = serde_json::json!({"batch":"L","event":{"type":"ObjectEvent","eventTime":format!("2026-01-01T00:00:0{i}.000Z")}});
            j.append(
                crate::uplink::record::EVENT_RECORD,
                payload.to_string().into_bytes(),
            )
            .expect("append");
        }
        j.confirm("uplink", crate::journal::Seq(0))
            .expect("confirm");
        // 2026-01-01T00:00:11Z
        let b = upload_backlog(&j, "uplink", 1_767_225_611_000_000).expect("backlog");
        assert_eq!(b.events, 2);
        assert!(b.bytes > 0 && b.bytes < j.disk_bytes());
        assert_eq!(b.oldest_age_seconds, Some(10.0));
        assert!(upload_backlog(&j, "nobody", 0).is_err());
    }
}
