//! `linectl run --profile P [--data-dir DIR] [--start]`: the daemon. It validates the
//! whole profile before touching any device, starts the pipeline against the profile's
//! real devices, serves the operator HMI (with `GET /status` and `/healthz`, and the
//! work-order and event pull APIs when `LINECTL_API_TOKENS` names bearer tokens) on `[hmi] listen`, uploads events when the
//! profile names a capture URL, tells systemd it is ready and feeds its watchdog from
//! the pipeline's liveness stamp (a stuck coordinator stops the pings), and stops
//! cleanly on SIGINT / SIGTERM. On SIGHUP it re-reads and validates the profile and
//! applies what may change while running (see `linectl::config::reload`: the log
//! level, the low-water mark, batch defaults, the capture URL), refuses the rest with the reason, and audits
//! every reload. With `--start` it starts a batch from the profile's
//! `[batch]` defaults once the devices are connected.
//!
//! With an `[aggregation]` section it also runs the case and pallet stations on their
//! devices (after `station::recover`; cases labelled `gtin-serial` take their serials
//! from the line's own pool, `Line::pool`), journaling into the line's journal, serves the
//! HMI's aggregation rework pages and the aggregation read API (a local bearer token
//! and the address in `DATA_DIR/hmi/agg-api.json` for `linectl agg`), and stops the
//! stations before the line at shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use linectl::audit::AuditTrail;
use linectl::clock::{Clock, SystemClock};
use linectl::config::reload::{self, on_sighup};
use linectl::pipeline::{BatchOrder, Devices, Hooks, Line, LineCommand, LineConfig};
use linectl::profile::Profile;
use linectl::serve::gauges::GaugeSource;

use super::EXIT_REJECTED;

/// `linectl run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Line profile (TOML).
    #[arg(long)]
    pub profile: PathBuf,
    /// Data directory (pool, journal, audit).
    #[arg(long, env = "LINECTL_DATA_DIR", default_value = "/var/lib/linectl")]
    pub data_dir: PathBuf,
    /// Start a batch from the profile's `[batch]` defaults once the devices are up.
    #[arg(long)]
    pub start: bool,
}

/// Run the daemon until a signal.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let profile = match Profile::load(&args.profile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EXIT_REJECTED));
        }
    };
    if let Err(e) = super::set_log_filter(&profile.log.level) {
        tracing::warn!(error = %e, level = %profile.log.level, "profile log level not applied");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("data dir {}", args.data_dir.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let cfg = LineConfig::from_profile(&profile, args.data_dir.clone());
    let parts = linectl::hmi::HmiParts::open(
        &args.data_dir,
        linectl::users::UsersConfig::default(),
        clock.clone(),
    )
    .context("opening the HMI's audit trail, users and exception store")?;
    let (obs_tx, obs_rx) = crossbeam_channel::unbounded();
    let hooks = Hooks {
        observer: Some(obs_tx),
        ..Hooks::default()
    };
    let line = Arc::new(
        Line::start(cfg, Devices::from_profile(&profile), clock.clone(), hooks)
            .context("starting the line")?,
    );
    // Every unit outcome goes to the unit log (for batch reports), then to the HMI.
    let (hmi_tx, hmi_rx) = crossbeam_channel::unbounded();
    let unit_log = linectl::report::units::spawn_unit_log(
        obs_rx,
        Some(hmi_tx),
        linectl::report::units::UnitLog::open(&args.data_dir).context("opening the unit log")?,
        line.status().clone(),
        clock.clone(),
    )
    .context("starting the unit log")?;
    let observer = linectl::hmi::spawn_observer(
        hmi_rx,
        parts.exceptions.clone(),
        line.status().clone(),
        clock.clone(),
    )
    .context("starting the HMI observer")?;
    let hmi = linectl::hmi::Hmi::new(
        linectl::hmi::HmiConfig::from_profile(&profile),
        line.clone(),
        parts.users.clone(),
        parts.audit.clone(),
        parts.exceptions.clone(),
        Some(parts.orders.clone()),
    );
    let mut app = hmi.router();
    let api_tokens: Vec<String> = std::env::var("LINECTL_API_TOKENS")
        .map(|t| {
            t.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let agg = match &profile.aggregation {
        Some(a) => {
            let (svc, stations, token) =
                start_aggregation(&profile, a, &args.data_dir, &line, &parts, clock.clone())?;
            hmi.set_aggregation(svc.clone());
            hmi.set_aggregation_token(token.clone());
            let mut tokens = api_tokens.clone();
            tokens.push(token.clone());
            app = app.merge(linectl::api::agg::agg_router(
                linectl::api::agg::AggApi::new(svc, tokens),
            ));
            Some((stations, token))
        }
        None => None,
    };
    if let Ok(tokens) = std::env::var("LINECTL_API_TOKENS") {
        let tokens: Vec<String> = tokens
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let api = linectl::api::orders::OrdersApi::new(
            vec![linectl::api::orders::MasterProduct::from_profile(
                &profile.product,
            )],
            parts.orders.clone(),
            linectl::api::orders::OrdersConfig {
                tokens: tokens.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("work-order API: {e}"))?;
        app = app.merge(linectl::api::orders::orders_router(api));
        // The site server's pull API over the same journal (consumer `site-pull`).
        let events = linectl::api::events::EventsApi::new(
            line.journal(),
            linectl::api::events::PullApiConfig {
                tokens,
                ..Default::default()
            },
            clock.clone(),
        )
        .map_err(|e| anyhow::anyhow!("pull API: {e}"))?;
        app = app.merge(linectl::api::events::events_router(events));
    }
    // SIGHUP's default action ends the process: take it over before serving anything.
    let hup = on_sighup().context("installing the SIGHUP handler")?;
    let mut running = profile.clone();
    let server = linectl::hmi::HmiServer::start(&profile.hmi.listen, &hmi, app)?;
    tracing::info!(hmi = %format!("http://{}/", server.local_addr()), line = %profile.line.id, "linectl running");
    if let Some((_, token)) = &agg {
        let mut addr = server.local_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        super::agg::write_api_file(
            &args.data_dir,
            &super::agg::DaemonApi {
                addr: addr.to_string(),
                token: token.clone(),
                pid: std::process::id(),
            },
        )
        .context("writing the aggregation API file")?;
    }
    let uplink = match &profile.epcis.capture_url {
        Some(url) => Some(
            linectl::uplink::Uplink::start(
                linectl::uplink::UplinkConfig::new(url.clone()),
                line.journal(),
                clock.clone(),
            )
            .context("starting the EPCIS uplink")?,
        ),
        None => None,
    };
    let uplink = Arc::new(std::sync::Mutex::new(uplink));
    {
        let (uplink, journal) = (uplink.clone(), line.journal());
        hmi.set_uplink_probe(Arc::new(move || {
            let u = uplink.lock().unwrap_or_else(|p| p.into_inner());
            u.as_ref().map(|u| {
                let st = u.status();
                let end = journal.end_seq().0;
                (end.saturating_sub(st.cursor.0), format!("{:?}", st.state))
            })
        }));
    }
    // Pool forecast and upload backlog for the overview and /metrics: the line rate is
    // sampled by the loop below, the low-water mark follows SIGHUP reloads.
    let gauges = Arc::new(GaugeSource::new(
        line.journal(),
        line.status().clone(),
        clock.clone(),
        linectl::pool::Forecast::default(),
        profile.serials.low_water,
    ));
    {
        let g = gauges.clone();
        hmi.set_ops_probe(Arc::new(move || g.collect()));
    }
    let stop = linectl::serve::stop_on_signal();
    let _ = linectl::sdnotify::ready();
    let wd = linectl::sdnotify::watchdog_interval();
    let mut last_ping = Instant::now();
    let mut started = !args.start;
    let mut last_state = String::new();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        let st = gauges.sample();
        if hup.swap(false, Ordering::SeqCst) {
            let old_url = running.epcis.capture_url.clone();
            running = apply_reload(&args.profile, running, &parts.audit, |p| {
                gauges.set_low_water(p.serials.low_water);
                if let Err(e) = super::set_log_filter(&p.log.level) {
                    tracing::error!(error = %e, level = %p.log.level, "log level not applied");
                }
                let mut u = uplink.lock().unwrap_or_else(|e| e.into_inner());
                if p.epcis.capture_url == old_url {
                    return;
                }
                if let (Some(url), Some(old)) = (&p.epcis.capture_url, u.take()) {
                    old.stop();
                    match linectl::uplink::Uplink::start(
                        linectl::uplink::UplinkConfig::new(url.clone()),
                        line.journal(),
                        clock.clone(),
                    ) {
                        Ok(n) => *u = Some(n),
                        Err(e) => {
                            tracing::error!(error = %e, url = %url, "uplink not restarted")
                        }
                    }
                }
            });
        }
        if st.state != last_state {
            tracing::info!(state = %st.state, reason = ?st.stop_reason.as_ref().map(|r| &r.message), "line state");
            let _ = linectl::sdnotify::status(&format!("{} {}", profile.line.id, st.state));
            last_state = st.state.clone();
        }
        if !started && st.links.plc && st.links.printer && st.links.camera {
            started = true;
            let order = BatchOrder {
                lot: profile.batch.lot.clone().unwrap_or_default(),
                expiry: profile.batch.expiry.clone().unwrap_or_default(),
                quantity: profile.batch.target_quantity.unwrap_or(1000),
            };
            let r = line
                .command(LineCommand::Reset)
                .and_then(|()| line.command(LineCommand::StartBatch(order)));
            if let Err(e) = r {
                tracing::error!(error = %e, "batch not started");
            }
        }
        if let Some(every) = wd {
            let fresh = clock.now().0.saturating_sub(st.alive_us) < 2_000_000;
            if fresh && last_ping.elapsed() >= every / 2 {
                let _ = linectl::sdnotify::watchdog();
                last_ping = Instant::now();
            }
        }
    }
    let _ = linectl::sdnotify::stopping();
    tracing::info!("stopping");
    if let Some((stations, _)) = agg {
        for (level, n) in stations.counts() {
            tracing::info!(
                level = level.name(),
                aggregated = n.aggregated,
                held = n.held,
                "station since start"
            );
        }
        stations.stop();
        let _ = std::fs::remove_file(super::agg::api_file(&args.data_dir));
        tracing::info!("aggregation stations stopped");
    }
    let _ = line.command(LineCommand::Stop);
    let uplink = uplink.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(u) = uplink {
        let s = u.stop();
        tracing::info!(delivered = s.delivered, "uplink stopped");
    }
    drop(server);
    drop(hmi);
    match Arc::try_unwrap(line) {
        Ok(line) => {
            line.shutdown();
            let _ = unit_log.join();
            let _ = observer.join();
        }
        Err(_) => tracing::warn!(
            "the line is still shared at shutdown; its threads stop with the process"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reload the profile at `path` against `running`: log and audit the outcome, call
/// `apply` with the new running profile when anything was applied, and return it.
fn apply_reload(
    path: &std::path::Path,
    running: Profile,
    audit: &AuditTrail,
    apply: impl FnOnce(&Profile),
) -> Profile {
    let r = reload::reload(path, &running);
    match &r.invalid {
        Some(e) => {
            tracing::error!(profile = %path.display(), problems = %e, "reload refused: the profile is invalid; nothing changed")
        }
        None => {
            for c in &r.changes {
                match &c.outcome {
                    reload::Outcome::Applied { effect } => {
                        tracing::info!(field = c.field, old = %c.old, new = %c.new, effect, "reload: applied")
                    }
                    reload::Outcome::Refused { reason } => {
                        tracing::warn!(field = c.field, old = %c.old, new = %c.new, reason, "reload: refused")
                    }
                }
            }
            tracing::info!(
                verdict = r.verdict().name(),
                changes = r.changes.len(),
                "profile reloaded"
            );
        }
    }
    for entry in reload::audit_entries(&path.display().to_string(), &r) {
        if let Err(e) = audit.append(entry) {
            tracing::error!(error = %e, "reload not audited");
        }
    }
    if r.changes.iter().any(|c| c.applied()) {
        apply(&r.profile);
    }
    r.profile
}

type AggRunning = (
    Arc<linectl::aggregation::service::AggService>,
    linectl::aggregation::service::Stations,
    String,
);

/// Open the aggregation store, build the service over the line's journal and the
/// HMI's trail, start the stations; returns them and the read API's local token.
fn start_aggregation(
    profile: &Profile,
    a: &linectl::profile::aggregation::AggregationSection,
    data_dir: &std::path::Path,
    line: &Line,
    parts: &linectl::hmi::HmiParts,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AggRunning> {
    use linectl::aggregation::rework::Packing;
    use linectl::aggregation::service::{
        AggService, ServiceParts, StationDevices, StationSetup, Stations,
    };
    use linectl::aggregation::station::StationConfig;
    use linectl::aggregation::store::{AggStore, Level};
    let cfg = LineConfig::from_profile(profile, data_dir.to_path_buf());
    let dir = data_dir.join("aggregation");
    let store =
        AggStore::open(&dir).with_context(|| format!("aggregation store {}", dir.display()))?;
    let site = linectl::pipeline::site_sgln(&profile.line.site)?;
    let events =
        linectl::epcis::aggregation::AggregationEvents::new(cfg.identifiers, &site, &site)?;
    let svc = AggService::new(ServiceParts {
        store,
        journal: line.journal(),
        events,
        audit: parts.audit.clone(),
        clock,
        gtin: profile.product.gtin.clone(),
        packing: Packing {
            units_per_case: a.units_per_case,
            cases_per_pallet: a.cases_per_pallet,
        },
        running_batch: linectl::aggregation::service::running_batch(line.status().clone()),
        default_batch: profile.batch.lot.clone(),
    })
    // The line's own pool: unit states for the checks, case serials for the labels.
    .with_pool(line.pool())
    .with_line_batch(linectl::aggregation::service::line_batch(
        line.status().clone(),
    ));
    let svc = match (a.case_label, &a.case_gtin) {
        (linectl::profile::aggregation::CaseLabel::GtinSerial, Some(g)) => {
            svc.with_case_serials(linectl::aggregation::service::CaseSerials {
                case_gtin: g.clone(),
                line: profile.line.id.clone(),
                label_batch: a.case_label_batch,
                default_expiry: profile.batch.expiry.clone(),
            })
        }
        _ => svc,
    };
    let svc = Arc::new(svc);
    let setup = |level: Level| -> anyhow::Result<StationSetup> {
        let (st, layout, expected, ext) = match level {
            Level::Case => (
                &a.case_station,
                a.case_layout,
                a.units_per_case,
                a.case_extension,
            ),
            Level::Pallet => (
                &a.pallet_station,
                a.pallet_layout,
                a.cases_per_pallet,
                a.pallet_extension,
            ),
        };
        Ok(StationSetup {
            level,
            config: StationConfig {
                level,
                layout,
                expected,
                scheme: linectl::gs1::sscc::SsccScheme::new(ext, &a.company_prefix)?,
                batch: String::new(),
                label_job: st.label_job.clone(),
            },
            devices: StationDevices {
                camera_kind: "tcp-stream".into(),
                camera_address: st.camera_address.clone(),
                printer_kind: st.printer_kind.clone(),
                printer_address: st.printer_address.clone(),
                timeout: Duration::from_millis(st.timeout_ms),
            },
        })
    };
    let stations = Stations::start(
        svc.clone(),
        vec![setup(Level::Case)?, setup(Level::Pallet)?],
    )
    .context("starting the aggregation stations")?;
    let token = linectl::audit::record::hex(&rand::random::<[u8; 32]>());
    Ok((svc, stations, token))
}
