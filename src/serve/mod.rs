//! The daemon's process edges: the status endpoint (`GET /status` as JSON,
//! `GET /healthz`) on the profile's `[hmi] listen` address, and waiting for SIGINT /
//! SIGTERM to stop cleanly. It owns the listening socket and its thread; the status
//! itself is the pipeline's [`StatusCell`], the journal / backlog / forecast gauges
//! come from [`gauges`]. The operator HMI builds on this later.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::pipeline::StatusCell;

pub mod gauges;
pub mod metrics;

/// Errors starting the status endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running status endpoint; stops when dropped.
#[derive(Debug)]
pub struct StatusServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatusServer {
    /// Serve `status` on `listen` (`host:port`; port 0 picks one).
    pub fn start(listen: &str, status: StatusCell) -> Result<StatusServer, ServeError> {
        StatusServer::start_for_line(listen, "", status)
    }

    /// [`StatusServer::start`] with the line id as the metrics' `line` label.
    pub fn start_for_line(
        listen: &str,
        line: &str,
        status: StatusCell,
    ) -> Result<StatusServer, ServeError> {
        StatusServer::start_with_gauges(listen, line, status, None)
    }

    /// [`StatusServer::start_for_line`], and `/metrics` adds the journal, upload
    /// backlog and pool forecast families of `gauges`.
    pub fn start_with_gauges(
        listen: &str,
        line: &str,
        status: StatusCell,
        gauges: Option<Arc<gauges::GaugeSource>>,
    ) -> Result<StatusServer, ServeError> {
        let line = line.to_string();
        let bind = |source| ServeError::Bind {
            addr: listen.to_string(),
            source,
        };
        let listener = TcpListener::bind(listen).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("linectl-status".into())
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Err(e) = answer(stream, &line, &status, gauges.as_deref()) {
                                tracing::debug!(error = %e, "status request failed");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "status endpoint accept failed");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .map_err(bind)?;
        Ok(StatusServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The status as the endpoint shows it: the snapshot plus latency percentiles.
pub fn status_json(status: &StatusCell) -> serde_json::Value {
    let s = status.snapshot();
    let lat = &s.latency;
    let pick = |q: f64| lat.quantile_us(q) as f64 / 1000.0;
    let mut v = serde_json::to_value(&s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "latency_ms".into(),
            serde_json::json!({ "p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0), "samples": lat.count() }),
        );
    }
    v
}

fn answer(
    stream: TcpStream,
    line_id: &str,
    status: &StatusCell,
    gauges: Option<&gauges::GaugeSource>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Drain the headers (bounded).
    let mut hdr = String::new();
    for _ in 0..100 {
        hdr.clear();
        if reader.read_line(&mut hdr)? == 0 || hdr == "\r\n" || hdr == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let (code, ctype, body) = match (method, path) {
        ("GET", "/status") => (
            "200 OK",
            "application/json",
            status_json(status).to_string(),
        ),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", {
            let mut m = metrics::render(line_id, &status.snapshot());
            if let Some(g) = gauges {
                m.push_str(&metrics::render_ops(line_id, &g.collect()));
            }
            m
        }),
        ("GET", _) => (
            "404 Not Found",
            "application/json",
            r#"{"error":"not found: try /status"}"#.to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "application/json",
            r#"{"error":"only GET"}"#.to_string(),
        ),
    };
    let mut w = stream;
    write!(
        w,
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// A flag set by SIGINT or SIGTERM (a second signal exits at once).
pub fn stop_on_signal() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let spawned = std::thread::Builder::new()
        .name("linectl-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "no signal handling");
                    return;
                }
            };
            rt.block_on(async move {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return;
                };
                for _ in 0..2 {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                    if f.swap(true, Ordering::SeqCst) {
                        eprintln!("second signal: exiting now");
                        std::process::exit(130);
                    }
                    tracing::info!("stop requested");
                }
            });
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot spawn the signal thread");
    }
    flag
}
