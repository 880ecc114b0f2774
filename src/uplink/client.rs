//! The HTTP side of the uplink: one EPCIS capture attempt (`POST /capture`, then the
//! capture job until it stops running) over a blocking `ureq` agent with rustls, and the
//! classification of every answer into an [`Outcome`] the uplink loop acts on. It owns
//! TLS and authentication setup; it does not retry, wait between attempts or touch the
//! journal (that is `mod.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::{UplinkConfig, UplinkError};
use crate::clock::Clock;

/// Header naming the most events one capture request may carry.
pub const CAPTURE_LIMIT_HEADER: &str = "GS1-EPCIS-Capture-Limit";
/// Header asking the server to store all or nothing of a capture.
pub const ERROR_BEHAVIOUR_HEADER: &str = "GS1-Capture-Error-Behaviour";

/// What one capture attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server holds every event of the request.
    Delivered,
    /// Nothing was stored because these eventIDs are already held (they count as
    /// delivered). An empty list: the server said "duplicate" without naming them.
    Duplicates(Vec<String>),
    /// The request carried more than the server accepts; the server's limit, if it
    /// named one.
    TooLarge(Option<usize>),
    /// Transient: transport error, timeout, 408/429/5xx, a job that vanished. Retry
    /// the same request after a backoff.
    Retry(String),
    /// The server refused the request for a reason retrying alone will not fix (401,
    /// 403, 400, a failed job with validation errors). Retried after a long backoff so
    /// a fix on the server side lets it through.
    Rejected(String),
    /// The uplink was asked to stop while waiting for the job.
    Stopped,
}

/// The capture client.
pub(super) struct CaptureClient {
    agent: ureq::Agent,
    capture_url: String,
    origin: String,
    auth: Option<String>,
    /// The server's capture limit as last announced (0 = unknown).
    pub(super) server_limit: Arc<AtomicUsize>,
    poll_initial: Duration,
    poll_max: Duration,
    job_timeout: Duration,
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>, UplinkError> {
    std::fs::read(path).map_err(|e| UplinkError::Config(format!("{what} {}: {e}", path.display())))
}

fn pem_certs(
    bytes: &[u8],
    path: &std::path::Path,
) -> Result<Vec<Certificate<'static>>, UplinkError> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(bytes) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(UplinkError::Config(format!(
                    "{}: not a PEM certificate file: {e}",
                    path.display()
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(UplinkError::Config(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(out)
}

/// `scheme://authority` of an http(s) URL.
pub(super) fn origin_of(url: &str) -> Result<String, UplinkError> {
    let rest = url
        .strip_prefix("https://")
        .map(|r| ("https://", r))
        .or_else(|| url.strip_prefix("http://").map(|r| ("http://", r)));
    let Some((scheme, rest)) = rest else {
        return Err(UplinkError::Config(format!(
            "capture_url {url:?} must start with http:// or https://"
        )));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(UplinkError::Config(format!(
            "capture_url {url:?} has no host"
        )));
    }
    Ok(format!("{scheme}{authority}"))
}

impl CaptureClient {
    pub(super) fn new(config: &UplinkConfig) -> Result<CaptureClient, UplinkError> {
        let origin = origin_of(&config.capture_url)?;
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &config.ca_file {
            let certs = pem_certs(&read_file(ca, "CA file")?, ca)?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        if let Some(cc) = &config.client_cert {
            let chain = pem_certs(
                &read_file(&cc.cert_file, "client certificate")?,
                &cc.cert_file,
            )?;
            let key =
                PrivateKey::from_pem(&read_file(&cc.key_file, "client key")?).map_err(|e| {
                    UplinkError::Config(format!(
                        "client key {}: not a PEM private key: {e}",
                        cc.key_file.display()
                    ))
                })?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(config.capture_url.starts_with("https://"))
            .timeout_global(Some(Duration::from_millis(config.request_timeout_ms)))
            .timeout_connect(Some(Duration::from_millis(config.connect_timeout_ms)))
            .max_redirects(0)
            .tls_config(tls.build())
            .build()
            .new_agent();
        let auth = config.bearer_token.as_ref().map(|t| format!("Bearer {t}"));
        Ok(CaptureClient {
            agent,
            capture_url: config.capture_url.trim_end_matches('/').to_string(),
            origin,
            auth,
            server_limit: Arc::new(AtomicUsize::new(0)),
            poll_initial: Duration::from_millis(config.poll_initial_ms),
            poll_max: Duration::from_millis(config.poll_max_ms.max(config.poll_initial_ms)),
            job_timeout: Duration::from_millis(config.job_timeout_ms),
        })
    }

    fn note_limit(&self, resp: &ureq::http::Response<ureq::Body>) {
        if let Some(n) = resp
            .headers()
            .get(CAPTURE_LIMIT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
        {
            self.server_limit.store(n, Ordering::Relaxed);
        }
    }

    fn with_auth<B>(&self, rb: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(a) => rb.header("Authorization", a),
            None => rb,
        }
    }

    /// Ask `OPTIONS /capture` for the capture limit. Returns it if announced.
    pub(super) fn discover_limit(&self) -> Option<usize> {
        match self.with_auth(self.agent.options(&self.capture_url)).call() {
            Ok(resp) => {
                self.note_limit(&resp);
                match self.server_limit.load(Ordering::Relaxed) {
                    0 => None,
                    n => Some(n),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "OPTIONS /capture failed");
                None
            }
        }
    }

    /// One capture attempt of `events` (event JSON objects with eventIDs).
    /// `on_poll_error` hears every failed poll of an accepted capture job (transport
    /// error or a transient HTTP status); the job is polled again, not re-sent.
    pub(super) fn capture(
        &self,
        events: &[Value],
        clock: &dyn Clock,
        stop: &AtomicBool,
        on_poll_error: &mut dyn FnMut(String),
    ) -> Outcome {
        let doc = json!({
            "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": creation_date(clock),
            "epcisBody": { "eventList": events },
        });
        let body = match serde_json::to_vec(&doc) {
            Ok(b) => b,
            Err(e) => return Outcome::Rejected(format!("cannot serialise the document: {e}")),
        };
        let req = self
            .with_auth(self.agent.post(&self.capture_url))
            .header("Content-Type", "application/ld+json")
            .header("GS1-EPCIS-Version", "2.0.0")
            .header(ERROR_BEHAVIOUR_HEADER, "rollback");
        let mut resp = match req.send(&body[..]) {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("POST {}: {e}", self.capture_url)),
        };
        self.note_limit(&resp);
        let status = resp.status().as_u16();
        match status {
            200 | 201 | 204 => Outcome::Delivered,
            202 => {
                let loc = resp
                    .headers()
                    .get("Location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match loc {
                    Some(loc) => self.follow_job(&self.resolve(&loc), clock, stop, on_poll_error),
                    // Accepted without a job to follow: the server took it.
                    None => Outcome::Delivered,
                }
            }
            409 => Outcome::Duplicates(duplicate_ids(&read_json(&mut resp))),
            413 => Outcome::TooLarge(match self.server_limit.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n),
            }),
            408 | 429 | 500..=599 => Outcome::Retry(format!(
                "POST {}: HTTP {status}: {}",
                self.capture_url,
                snippet(&mut resp)
            )),
            _ => Outcome::Rejected(format!(
                "POST {}: HTTP {status}: {}",
                self.capture_url,
                snippet(&mut resp)
            )),
        }
    }

    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.origin)
        } else {
            format!("{}/{location}", self.capture_url)
        }
    }

    fn follow_job(
        &self,
        url: &str,
        clock: &dyn Clock,
        stop: &AtomicBool,
        on_poll_error: &mut dyn FnMut(String),
    ) -> Outcome {
        let start = clock.now();
        let mut wait = self.poll_initial;
        loop {
            if !super::sleep_unless_stopped(clock, stop, wait) {
                return Outcome::Stopped;
            }
            wait = (wait * 2).min(self.poll_max);
            if clock.now().since(start) > self.job_timeout {
                return Outcome::Retry(format!(
                    "capture job {url} still not finished after {} ms",
                    self.job_timeout.as_millis()
                ));
            }
            let mut resp = match self.with_auth(self.agent.get(url)).call() {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(url, error = %e, "polling the capture job failed; polling again");
                    on_poll_error(format!("GET {url}: {e}"));
                    continue;
                }
            };
            self.note_limit(&resp);
            match resp.status().as_u16() {
                200 => {}
                404 | 410 => {
                    return Outcome::Retry(format!("capture job {url} vanished (HTTP 404/410)"));
                }
                s @ (408 | 429 | 500..=599) => {
                    on_poll_error(format!("GET {url}: HTTP {s}"));
                    continue;
                }
                s => {
                    return Outcome::Rejected(format!(
                        "GET {url}: HTTP {s}: {}",
                        snippet(&mut resp)
                    ));
                }
            }
            let job = read_json(&mut resp);
            if job.get("running").and_then(Value::as_bool).unwrap_or(false) {
                continue;
            }
            if job.get("success").and_then(Value::as_bool) == Some(true) {
                return Outcome::Delivered;
            }
            let errors = job
                .get("errors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let all_dups = !errors.is_empty() && errors.iter().all(is_duplicate_problem);
            if all_dups {
                let ids: Vec<String> = errors.iter().flat_map(duplicate_ids).collect();
                return Outcome::Duplicates(ids);
            }
            return Outcome::Rejected(format!(
                "capture job {url} failed: {}",
                Value::Array(errors)
            ));
        }
    }
}

/// `creationDate` of a document made now.
pub(crate) fn creation_date(clock: &dyn Clock) -> String {
    crate::epcis::EventTime::from_wall_micros(clock.wall_micros(), 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

fn read_json(resp: &mut ureq::http::Response<ureq::Body>) -> Value {
    resp.body_mut()
        .with_config()
        .limit(4 * 1024 * 1024)
        .read_to_vec()
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

fn snippet(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let s = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    s.chars().take(300).collect()
}

fn is_duplicate_problem(p: &Value) -> bool {
    p.get("status").and_then(Value::as_u64) == Some(409)
        || p.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.contains("AlreadyExists"))
}

/// The eventIDs a 409 problem names (member `eventIDs`), empty if none.
fn duplicate_ids(p: &Value) -> Vec<String> {
    p.get("eventIDs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://site:8443/epcis/capture").ok().as_deref(),
            Some("https://site:8443")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9/capture").ok().as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert!(origin_of("ftp://x/capture").is_err());
        assert!(origin_of("http:///capture").is_err());
    }

    #[test]
    fn duplicate_problems() {
        let p = json!({"status": 409, "eventIDs": ["a", "b"]});
        assert!(is_duplicate_problem(&p));
        assert_eq!(duplicate_ids(&p), vec!["a".to_string(), "b".to_string()]);
        assert!(!is_duplicate_problem(&json!({"status": 400})));
        assert!(duplicate_ids(&json!({"status": 409})).is_empty());
    }
}
