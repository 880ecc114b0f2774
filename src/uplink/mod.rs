//! The uplink: pushes the journal's EPCIS events to the site server's EPCIS 2.0 capture
//! interface, exactly once as far as the server can tell, on its own thread. It owns the
//! delivery loop (read through the journal cursor `uplink`, batch, capture, confirm),
//! retries with exponential backoff and jitter, and the journal record format of an
//! event ([`record`]). The HTTP details (TLS, auth, capture jobs) are in `client`. It
//! does not create events (`epcis`, the pipeline) and never deletes anything itself:
//! confirming the cursor lets the journal's retention do that.
//!
//! # Delivery rules
//!
//! * Records are read from the consumer's cursor in seq order, at most the batch size:
//!   the smaller of [`UplinkConfig::max_batch_events`] and the server's
//!   `GS1-EPCIS-Capture-Limit` (asked with `OPTIONS /capture` at start and read from
//!   every response; [`UplinkConfig::default_capture_limit`] while unknown).
//! * Each batch is one EPCIS document, `POST`ed with `GS1-Capture-Error-Behaviour:
//!   rollback` (all or nothing). `202` + `Location` is followed by polling the job until
//!   `running` is false; `success: true` (or a synchronous 200/201/204) means stored.
//! * The cursor is confirmed (durably) only after the server confirmed every event of
//!   the batch; a crash before that resends the batch, and the server refuses what it
//!   already holds.
//! * **Duplicates count as delivered, without losing the rest of the batch.** With
//!   rollback, a 409 (or a job failing with "already exists" errors) means nothing of
//!   the request was stored. If the answer names the duplicate eventIDs (problem member
//!   `eventIDs`), those are counted as delivered and the request is sent again without
//!   them; if it does not name them, the request is split in halves and each half is
//!   sent on its own, down to single events, where a 409 names the one duplicate. So
//!   every other event of the batch is still stored, in order.
//! * Transport errors, timeouts, 408, 429 and 5xx are retried with exponential backoff
//!   and full jitter (between half and all of `min(backoff_max, backoff_initial ×
//!   2^n)`), forever: with the site server down the journal grows (the line runs up to
//!   the disk budget) and drains in order once it is back. A capture job that vanishes
//!   or does not finish in time is resent.
//! * 413 halves the request (and adopts the server's limit if it names one).
//! * Other refusals (400, 401, 403, a job failing with validation errors) are logged as
//!   errors and retried after `backoff_max`: the batch is not skipped, so a fix on the
//!   server side (a token, a master-data record) lets it through; the status shows it.
//! * A journal record that is not an event record of this format stops the uplink
//!   ([`UplinkState::Failed`]): skipping it would lose an event, guessing would send
//!   garbage.
//! * Records of other types than [`record::EVENT_RECORD`] are passed over (confirmed
//!   with the batch).
//!
//! Time (backoff, job polling) comes from the injected [`Clock`].

pub mod client;
pub mod export;
pub mod record;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::journal::{Journal, Seq};
use client::{CaptureClient, Outcome};
use record::{EVENT_RECORD, EventRecord};

/// Files of a TLS client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertFiles {
    /// PEM file with the client certificate (and its chain, leaf first).
    pub cert_file: PathBuf,
    /// PEM file with the client's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Uplink configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UplinkConfig {
    /// The site server's EPCIS capture endpoint, `http(s)://host[:port]/…/capture`.
    /// No default worth having: empty is a configuration error.
    pub capture_url: String,
    /// Bearer token sent as `Authorization: Bearer …`. Default: none.
    pub bearer_token: Option<String>,
    /// TLS client certificate for servers that authenticate the line by certificate.
    /// Default: none.
    pub client_cert: Option<ClientCertFiles>,
    /// PEM file of the CA certificate(s) to trust for the server instead of the
    /// built-in web PKI roots. Default: none (web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// Journal consumer whose cursor the uplink reads and confirms. Default `"uplink"`.
    pub consumer: String,
    /// Most events per capture request, whatever the server allows. Default 500.
    pub max_batch_events: usize,
    /// Events per request while the server's `GS1-EPCIS-Capture-Limit` is unknown.
    /// Default 100.
    pub default_capture_limit: usize,
    /// First retry delay after a transient failure, ms. Default 200.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, ms (also the delay after a refusal). Default 30,000.
    pub backoff_max_ms: u64,
    /// Delay before the first poll of a capture job, ms (doubles each poll). Default 2.
    pub poll_initial_ms: u64,
    /// Longest delay between two polls of a capture job, ms. Default 1,000.
    pub poll_max_ms: u64,
    /// A capture job not finished after this long is resent, ms. Default 120,000.
    pub job_timeout_ms: u64,
    /// Wait when the journal has nothing new, ms. Default 100.
    pub idle_ms: u64,
    /// Timeout of one HTTP request (connect to end of response), ms. Default 30,000.
    pub request_timeout_ms: u64,
    /// TCP/TLS connect timeout, ms. Default 5,000.
    pub connect_timeout_ms: u64,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            capture_url: String::new(),
            bearer_token: None,
            client_cert: None,
            ca_file: None,
            consumer: "uplink".to_string(),
            max_batch_events: 500,
            default_capture_limit: 100,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            poll_initial_ms: 2,
            poll_max_ms: 1_000,
            job_timeout_ms: 120_000,
            idle_ms: 100,
            request_timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
        }
    }
}

impl UplinkConfig {
    /// Defaults with the given capture URL.
    pub fn new(capture_url: impl Into<String>) -> UplinkConfig {
        UplinkConfig {
            capture_url: capture_url.into(),
            ..UplinkConfig::default()
        }
    }

    /// Every problem of this configuration, empty if it is valid.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = client::origin_of(&self.capture_url) {
            p.push(e.to_string());
        }
        if self.max_batch_events == 0 {
            p.push("max_batch_events must be at least 1".into());
        }
        if self.default_capture_limit == 0 {
            p.push("default_capture_limit must be at least 1".into());
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            p.push("backoff_initial_ms must be at least 1 and at most backoff_max_ms".into());
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            p.push("request_timeout_ms and connect_timeout_ms must be at least 1".into());
        }
        if self
            .bearer_token
            .as_deref()
            .is_some_and(|t| t.is_empty() || t.bytes().any(|b| !(0x21..=0x7e).contains(&b)))
        {
            p.push("bearer_token must be non-empty visible ASCII".into());
        }
        p
    }
}

/// Why the uplink cannot start.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// Invalid configuration (names the field or file).
    #[error("uplink configuration: {0}")]
    Config(String),
    /// The journal does not know the consumer.
    #[error("uplink: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// The thread could not be started.
    #[error("uplink: cannot start its thread: {0}")]
    Thread(std::io::Error),
}

/// What the uplink is doing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UplinkState {
    /// Nothing to send.
    #[default]
    Idle,
    /// Sending a batch.
    Sending,
    /// Waiting to retry after a failure (the last error is in the status).
    Backoff,
    /// Stopped for good on an error that needs a person (reason).
    Failed(String),
    /// Stopped on request.
    Stopped,
}

/// Counters and state, for the HMI and the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkStatus {
    /// Current state.
    pub state: UplinkState,
    /// Events the server confirmed holding (stored now or refused as duplicates).
    pub delivered: u64,
    /// Of those, events refused as already held.
    pub duplicates: u64,
    /// Capture requests that ended with the events stored.
    pub requests: u64,
    /// Retries after transient failures, failed polls of an accepted capture job included.
    pub retries: u64,
    /// The confirmed cursor (next seq not yet delivered).
    pub cursor: Seq,
    /// The batch size in use.
    pub batch_size: usize,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

struct Shared {
    stop: AtomicBool,
    status: Mutex<UplinkStatus>,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, UplinkStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running uplink. [`Uplink::stop`] (or dropping it) stops it cleanly: a request in
/// flight finishes or times out, nothing unconfirmed is confirmed.
pub struct Uplink {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Uplink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uplink")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Uplink {
    /// Check the configuration, load TLS material and start the uplink thread.
    pub fn start(
        config: UplinkConfig,
        journal: Arc<Journal>,
        clock: Arc<dyn Clock>,
    ) -> Result<Uplink, UplinkError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(UplinkError::Config(problems.join("; ")));
        }
        let cursor = journal.cursor(&config.consumer)?;
        let client = CaptureClient::new(&config)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            status: Mutex::new(UplinkStatus {
                cursor,
                ..UplinkStatus::default()
            }),
        });
        let worker = Worker {
            config,
            journal,
            clock,
            client,
            shared: shared.clone(),
            failures: 0,
        };
        let thread = std::thread::Builder::new()
            .name("uplink".into())
            .spawn(move || worker.run())
            .map_err(UplinkError::Thread)?;
        Ok(Uplink {
            shared,
            thread: Some(thread),
        })
    }

    /// Counters and state now.
    pub fn status(&self) -> UplinkStatus {
        self.shared.status().clone()
    }

    /// Whether the thread has ended (stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stop and wait for the thread.
    pub fn stop(mut self) -> UplinkStatus {
        self.shutdown();
        self.status()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            error!("uplink thread panicked");
        }
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sleep `d` on `clock` in slices, returning false as soon as `stop` is set.
pub(crate) fn sleep_unless_stopped(clock: &dyn Clock, stop: &AtomicBool, d: Duration) -> bool {
    let deadline = clock.now().plus(d);
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = clock.now();
        if now >= deadline {
            return true;
        }
        clock.sleep_until(deadline.min(now.plus(Duration::from_millis(20))));
    }
}

/// Backoff delay for the `n`-th consecutive failure (n ≥ 1): exponential, capped, with
/// jitter between half and all of it.
fn backoff_delay(initial: Duration, max: Duration, n: u32, jitter: f64) -> Duration {
    let exp = initial.saturating_mul(1u32 << n.saturating_sub(1).min(20));
    let base = exp.min(max);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

struct Worker {
    config: UplinkConfig,
    journal: Arc<Journal>,
    clock: Arc<dyn Clock>,
    client: CaptureClient,
    shared: Arc<Shared>,
    /// Consecutive failures (for the backoff).
    failures: u32,
}

/// The batch loop was told to stop.
struct Stopped;

impl Worker {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn batch_size(&self) -> usize {
        let server = self.client.server_limit.load(Ordering::Relaxed);
        let limit = if server == 0 {
            self.config.default_capture_limit
        } else {
            server
        };
        limit.min(self.config.max_batch_events).max(1)
    }

    fn set_state(&self, state: UplinkState) {
        self.shared.status().state = state;
    }

    fn run(mut self) {
        let consumer = self.config.consumer.clone();
        info!(capture_url = %self.config.capture_url, consumer = %consumer, "uplink started");
        if let Some(limit) = self.client.discover_limit() {
            info!(limit, "site server capture limit");
        }
        let idle = Duration::from_millis(self.config.idle_ms);
        while !self.stopping() {
            let size = self.batch_size();
            self.shared.status().batch_size = size;
            let records = match self.journal.read_for(&consumer, size) {
                Ok(r) => r,
                Err(e) => {
                    self.fail_transient(format!("reading the journal: {e}"));
                    if self.backoff().is_err() {
                        break;
                    }
                    continue;
                }
            };
            let Some(last) = records.last().map(|r| r.seq) else {
                self.set_state(UplinkState::Idle);
                if !sleep_unless_stopped(self.clock.as_ref(), &self.shared.stop, idle) {
                    break;
                }
                continue;
            };
            let mut events = Vec::with_capacity(records.len());
            let mut seen = HashSet::with_capacity(records.len());
            for r in &records {
                if r.kind != EVENT_RECORD {
                    debug!(
                        seq = r.seq.0,
                        kind = r.kind.0,
                        "uplink passes over a non-event record"
                    );
                    continue;
                }
                match EventRecord::decode(r.seq, &r.payload) {
                    Ok(rec) => {
                        // Same event journaled twice (an unacknowledged append that made
                        // it to disk, then a retry): send it once.
                        let id = rec.event_id().unwrap_or_default().to_string();
                        if seen.insert(id) {
                            events.push(rec.event);
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "uplink stopped: undeliverable journal record");
                        self.set_state(UplinkState::Failed(e.to_string()));
                        return;
                    }
                }
            }
            self.set_state(UplinkState::Sending);
            if self.deliver(events).is_err() {
                break;
            }
            // Delivered: confirm durably. A failed confirm only means a resend later,
            // which the server refuses as duplicates.
            loop {
                match self.journal.confirm(&consumer, last) {
                    Ok(()) => {
                        self.shared.status().cursor = last.next();
                        break;
                    }
                    Err(e) => {
                        self.fail_transient(format!("confirming seq {last}: {e}"));
                        if self.backoff().is_err() {
                            self.set_state(UplinkState::Stopped);
                            return;
                        }
                    }
                }
            }
        }
        self.set_state(UplinkState::Stopped);
        info!("uplink stopped");
    }

    fn fail_transient(&mut self, msg: String) {
        self.failures = self.failures.saturating_add(1);
        let mut s = self.shared.status();
        s.retries += 1;
        s.last_error = Some(msg);
    }

    fn backoff(&mut self) -> Result<(), Stopped> {
        self.set_state(UplinkState::Backoff);
        let d = backoff_delay(
            Duration::from_millis(self.config.backoff_initial_ms),
            Duration::from_millis(self.config.backoff_max_ms),
            self.failures.max(1),
            rand::rng().random::<f64>(),
        );
        debug!(
            delay_ms = d.as_millis() as u64,
            failures = self.failures,
            "uplink backs off"
        );
        if sleep_unless_stopped(self.clock.as_ref(), &self.shared.stop, d) {
            self.set_state(UplinkState::Sending);
            Ok(())
        } else {
            Err(Stopped)
        }
    }

    /// Deliver `events` (one journal batch) completely, in order.
    fn deliver(&mut self, events: Vec<Value>) -> Result<(), Stopped> {
        let size = self.batch_size();
        let mut queue: VecDeque<Vec<Value>> = VecDeque::new();
        let mut it = events.into_iter().peekable();
        while it.peek().is_some() {
            queue.push_back(it.by_ref().take(size).collect());
        }
        while let Some(mut chunk) = queue.pop_front() {
            loop {
                if chunk.is_empty() {
                    break;
                }
                if self.stopping() {
                    return Err(Stopped);
                }
                let shared = &self.shared;
                let mut on_poll_error = |msg: String| {
                    let mut s = shared.status();
                    s.retries += 1;
                    s.last_error = Some(msg);
                };
                match self.client.capture(
                    &chunk,
                    self.clock.as_ref(),
                    &self.shared.stop,
                    &mut on_poll_error,
                ) {
                    Outcome::Delivered => {
                        self.failures = 0;
                        let mut s = self.shared.status();
                        s.delivered += chunk.len() as u64;
                        s.requests += 1;
                        break;
                    }
                    Outcome::Duplicates(ids) if !ids.is_empty() => {
                        let ids: HashSet<String> = ids.into_iter().collect();
                        let before = chunk.len();
                        chunk.retain(|e| {
                            !e.get("eventID")
                                .and_then(Value::as_str)
                                .is_some_and(|id| ids.contains(id))
                        });
                        let dropped = (before - chunk.len()) as u64;
                        if dropped == 0 {
                            // Named IDs we did not send: treat as an unnamed refusal.
                            self.split_or_count(&mut queue, chunk);
                            break;
                        }
                        let mut s = self.shared.status();
                        s.delivered += dropped;
                        s.duplicates += dropped;
                        debug!(
                            dropped,
                            left = chunk.len(),
                            "duplicates removed; resending the rest"
                        );
                    }
                    Outcome::Duplicates(_) => {
                        self.split_or_count(&mut queue, chunk);
                        break;
                    }
                    Outcome::TooLarge(limit) => {
                        let half = chunk.len().div_ceil(2);
                        let new = limit.unwrap_or(half).min(half).max(1);
                        warn!(
                            events = chunk.len(),
                            new_size = new,
                            "capture request too large; splitting"
                        );
                        if chunk.len() == 1 {
                            self.fail_transient(
                                "a single event is too large for the server".into(),
                            );
                            self.backoff_max()?;
                            continue;
                        }
                        self.client.server_limit.store(new, Ordering::Relaxed);
                        let parts: Vec<Vec<Value>> =
                            chunk.chunks(new).map(<[Value]>::to_vec).collect();
                        for p in parts.into_iter().rev() {
                            queue.push_front(p);
                        }
                        break;
                    }
                    Outcome::Retry(msg) => {
                        warn!(error = %msg, "capture failed; retrying");
                        self.fail_transient(msg);
                        self.backoff()?;
                    }
                    Outcome::Rejected(msg) => {
                        error!(error = %msg, "site server refused the capture; retrying after the longest backoff");
                        self.fail_transient(msg);
                        self.backoff_max()?;
                    }
                    Outcome::Stopped => return Err(Stopped),
                }
            }
        }
        Ok(())
    }

    /// A refusal as duplicate that did not name the eventIDs: split the request in
    /// halves (sent next, in order), or count a single event as delivered.
    fn split_or_count(&mut self, queue: &mut VecDeque<Vec<Value>>, mut chunk: Vec<Value>) {
        if chunk.len() <= 1 {
            let mut s = self.shared.status();
            s.delivered += chunk.len() as u64;
            s.duplicates += chunk.len() as u64;
            return;
        }
        let second = chunk.split_off(chunk.len() / 2);
        queue.push_front(second);
        queue.push_front(chunk);
    }

    fn backoff_max(&mut self) -> Result<(), Stopped> {
        self.set_state(UplinkState::Backoff);
        let d = Duration::from_millis(self.config.backoff_max_ms);
        if sleep_unless_stopped(self.clock.as_ref(), &self.shared.stop, d) {
            Ok(())
        } else {
            Err(Stopped)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(5);
        assert_eq!(backoff_delay(i, m, 1, 1.0), i);
        assert_eq!(backoff_delay(i, m, 1, 0.0), i / 2);
        assert_eq!(backoff_delay(i, m, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(i, m, 30, 1.0), m);
        assert_eq!(backoff_delay(i, m, u32::MAX, 0.0), m / 2);
    }

    #[test]
    fn config_problems() {
        assert!(
            UplinkConfig::new("https://site/capture")
                .problems()
                .is_empty()
        );
        let c = UplinkConfig {
            max_batch_events: 0,
            bearer_token: Some("a b".into()),
            ..UplinkConfig::default()
        };
        let p = c.problems();
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn sleep_stops_early() {
        let clock = crate::clock::SystemClock::new();
        let stop = AtomicBool::new(true);
        assert!(!sleep_unless_stopped(
            &clock,
            &stop,
            Duration::from_secs(60)
        ));
        let stop = AtomicBool::new(false);
        assert!(sleep_unless_stopped(
            &clock,
            &stop,
            Duration::from_millis(1)
        ));
    }
}
