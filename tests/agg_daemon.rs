//! The aggregation stations inside `linectl run`: hil-sim's line first commissions a
//! few units into a data dir; then the daemon runs on it with the case station on a
//! simulated case camera (a frame stream this test publishes rendered layers and labels
//! to) and a ZPL label printer twin, the unit line's devices unreachable (no batch
//! runs: the station packs the profile's `[batch] lot`). One case of 4 units is
//! aggregated: its SSCC label is printed and read back, its ADD event is served by the
//! daemon's pull API from the line's journal, `linectl agg show` prints its tree
//! through the daemon while the stores are held, a rework step at the console is
//! refused with a pointer to the HMI, and the daemon stops cleanly (stations first),
//! removing its API file; afterwards `linectl agg show` opens the stores itself.
//!
//! The second test runs a `case_label = "gtin-serial"` profile: the case's label carries
//! the case GTIN and a serial the daemon takes from the line's own (shared) pool, and its
//! ADD event's parentID is that SGTIN; the batch's last case is short, so the station
//! holds it as `short` with its units; a supervisor closes it as a partial case at the
//! HMI (the case station prints and reads back its label) and resolves another hold,
//! which stays on record (shown with `?resolved=1`).

mod agg_support;
mod hmi_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agg_support::{LAYOUT, label_frame, label_of, publish, sim_opts, text};
use hil_sim::aggregation::{Slot, render_layer};
use linectl_drivers::camera::stream::FrameServer;
use linectl_drivers::link::TwinServer;
use linectl_drivers::printer::TwinState;

fn linectl(args: &[&str]) -> Output {
    agg_support::run_linectl(env!("CARGO_BIN_EXE_linectl"), args)
}

fn wait_for<T>(what: &str, child: &mut Child, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("daemon exited ({st}) while waiting for {what}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The packer's number of the layer frame (the station starts waiting for 0 and follows
/// the packer's numbering); its label frame is the next number.
const LAYER_FRAME: u64 = 100;

fn daemon_profile(base: &str, cam: &str, prn: &str) -> String {
    base.replace("127.0.0.1:5020", "127.0.0.1:1")
        .replace("127.0.0.1:9101", "127.0.0.1:1")
        .replace("127.0.0.1:7100", "127.0.0.1:1")
        .replace("127.0.0.1:9202", "127.0.0.1:1")
        .replace("127.0.0.1:7202", "127.0.0.1:1")
        .replace("127.0.0.1:9201", prn)
        .replace("127.0.0.1:7201", cam)
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "http://127.0.0.1:8090/capture",
            "http://127.0.0.1:1/capture",
        )
        .replace("units_per_case = 120", "units_per_case = 4")
        .replace("cases_per_pallet = 4", "cases_per_pallet = 2")
        .replace(
            "case_layout = { rows = 10, cols = 12, x = 0, y = 0, width = 2448, height = 2048 }",
            "case_layout = { rows = 2, cols = 2, x = 0, y = 0, width = 1224, height = 1024 }",
        )
}

fn commissioned_codes(dir: &Path, p: &linectl::profile::Profile) -> Vec<String> {
    let gtin = p.product.gtin.clone();
    let lot = p.batch.lot.clone().expect("lot");
    let expiry = p.batch.expiry.clone().expect("expiry");
    let t0 = Instant::now();
    let pool = loop {
        match linectl::pool::Pool::open(&dir.join("pool"), linectl::pool::OpenMode::MustExist) {
            Ok(pool) => break pool,
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("pool: {e}"),
        }
    };
    let mut serials = Vec::new();
    pool.for_each(&gtin, |payload, state| {
        if state == linectl::pool::SerialState::Commissioned {
            serials.push(
                payload
                    .split('\u{1d}')
                    .next()
                    .unwrap_or(payload)
                    .to_string(),
            );
        }
    })
    .expect("pool");
    drop(pool);
    let product = p.market_product();
    serials
        .iter()
        .map(|s| {
            p.product
                .market
                .build(
                    &product,
                    &linectl::market::UnitData {
                        serial: s.clone(),
                        batch: lot.clone(),
                        expiry: expiry.clone(),
                        extra: Vec::new(),
                    },
                )
                .expect("unit code")
                .element_string()
        })
        .collect()
}

fn http_get(addr: &str, path: &str, token: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    // Chunked bodies: keep the JSON between the first '{' and the last '}'.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b > a => body[a..=b].to_string(),
        _ => body.to_string(),
    };
    (status, body)
}

/// Start `linectl run` on `profile` and `data` (its log in `log`: a pipe nobody reads
/// would stall it) and wait for its aggregation API file: the child, the file's path and
/// its content.
fn start_daemon(profile: &Path, data: &Path, log: &Path) -> (Child, PathBuf, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_linectl"))
        .args(["run", "--profile"])
        .arg(profile)
        .arg("--data-dir")
        .arg(data)
        .env("LINECTL_API_TOKENS", "pull-token")
        .env_remove("LINECTL_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start linectl run");
    let api_file = data.join("hmi/agg-api.json");
    let api: serde_json::Value = wait_for("the aggregation API file", &mut child, || {
        std::fs::read(&api_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    });
    (child, api_file, api)
}

#[test]
fn the_daemon_runs_the_case_station_and_serves_its_trees() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base_path = root.join("line-profiles/eu-fmd-case-aggregation.toml");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 1. The line commissions a few units of the profile's batch.
    let profile =
        linectl::profile::Profile::load_with_env(&base_path, Some(Default::default())).unwrap();
    let opts = sim_opts(&profile, &data, 8, 3);
    let rep = hil_sim::line::run(&opts).unwrap();
    assert!(rep.passed >= 4, "{rep:?}");
    let codes = commissioned_codes(&data, &profile);
    assert!(codes.len() >= 4, "{codes:?}");

    // 2. The case station's devices: a frame stream and a ZPL label printer twin.
    let cam = FrameServer::bind("127.0.0.1:0").unwrap();
    let cam_addr = cam.local_addr().to_string();
    let printer = TwinState::new(16);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let prn_addr = listener.local_addr().unwrap().to_string();
    let st = printer.clone();
    let _printer_server = TwinServer::spawn_tcp(listener, move || {
        linectl_drivers::printer::zpl::ZplSession::new(st.clone())
    })
    .unwrap();
    let prof_path = dir.path().join("profile.toml");
    std::fs::write(
        &prof_path,
        daemon_profile(
            &std::fs::read_to_string(&base_path).unwrap(),
            &cam_addr,
            &prn_addr,
        ),
    )
    .unwrap();

    // A label that was being printed when an earlier run stopped: the daemon's
    // recovery voids it and holds its case.
    let interrupted = linectl::gs1::sscc::SsccScheme::new(0, "9506000")
        .unwrap()
        .sscc(999)
        .unwrap()
        .as_str()
        .to_string();
    {
        let store = linectl::aggregation::store::AggStore::open(&data.join("aggregation")).unwrap();
        store
            .begin(&linectl::aggregation::store::Intent {
                sscc: interrupted.clone(),
                level: linectl::aggregation::store::Level::Case,
                batch: profile.batch.lot.clone().unwrap(),
                children: Vec::new(),
                stage: linectl::aggregation::store::Stage::Printing,
                at_us: 1,
                partial_of: None,
            })
            .unwrap();
    }

    // 3. The daemon (its log in a file: a pipe nobody reads would stall it).
    let log_path = dir.path().join("daemon.log");
    let (mut child, api_file, api) = start_daemon(&prof_path, &data, &log_path);
    let addr = api["addr"].as_str().unwrap().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&api_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the API file is readable by others: {mode:o}"
        );
    }
    assert!(
        cam.wait_for_clients(1, Duration::from_secs(30)),
        "station camera not connected"
    );

    // 4. One case: the layer of 4 commissioned units, then its printed label.
    let slots: Vec<Slot> = codes[..4].iter().map(|c| Slot::Code(c.clone())).collect();
    let layer = render_layer(1224, 1024, &LAYOUT, &slots, 7).unwrap();
    let mut label = None;
    let t0 = Instant::now();
    while label.is_none() {
        publish(&cam, LAYER_FRAME, &layer);
        for _ in 0..20 {
            if let Some(l) = label_of(&printer) {
                label = Some(l);
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no label printed");
        assert!(child.try_wait().unwrap().is_none(), "daemon exited");
    }
    let label = label.unwrap();
    assert!(label.starts_with("00") && label.len() == 20, "{label:?}");
    let sscc = label[2..].to_string();
    publish(&cam, LAYER_FRAME + 1, &label_frame(&label));

    // 5. `linectl agg show` through the daemon prints the case and its 4 units.
    let d = data.to_str().unwrap();
    let tree = wait_for("the case in `linectl agg show`", &mut child, || {
        let o = linectl(&["agg", "--data-dir", d, "show", &sscc]);
        o.status.success().then(|| text(&o))
    });
    assert!(tree.contains(&format!("case (00){sscc}")), "{tree}");
    assert_eq!(tree.matches(" unit (01)").count(), 4, "{tree}");
    let gtin = &profile.product.gtin;
    // The holds through the daemon: recovery held the interrupted label's case.
    let o = linectl(&["agg", "--data-dir", d, "holds"]);
    assert!(o.status.success(), "{}", text(&o));
    let holds = text(&o);
    assert!(
        holds.contains(&format!("SSCC {interrupted}"))
            && holds.contains("interrupted while its label was printed"),
        "{holds}"
    );
    // Rework at the console is refused while the daemon holds the stores.
    let o = linectl(&[
        "agg",
        "--data-dir",
        d,
        "open",
        &sscc,
        "--reason",
        "check",
        "--profile",
        prof_path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("rework at the HMI (http://{addr}/aggregation)")),
        "{}",
        text(&o)
    );
    // The read API needs its token.
    let (status, _) = http_get(&addr, &format!("/api/v1/agg/containers/{sscc}"), "wrong");
    assert_eq!(status, 403);

    // 6. The ADD event is in the line's journal: the pull API serves it.
    let (status, body) = http_get(&addr, "/api/v1/events?after=0&limit=1000", "pull-token");
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("EPCIS document");
    let adds: Vec<&serde_json::Value> = doc["epcisBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "AggregationEvent" && e["action"] == "ADD")
        .collect();
    assert_eq!(adds.len(), 1, "{body}");
    assert!(
        adds[0]["parentID"].as_str().unwrap().contains(&sscc),
        "{body}"
    );
    assert_eq!(adds[0]["childEPCs"].as_array().map(Vec::len), Some(4));
    assert!(
        adds[0]["childEPCs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.as_str().unwrap().contains(gtin.trim_start_matches('0'))),
        "{body}"
    );

    // 7. A clean stop: stations first, the API file removed, exit 0.
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("aggregation stations stopped"), "{err}");
    assert!(!api_file.exists());
    // Without the daemon, `linectl agg show` opens the stores itself.
    let o = linectl(&["agg", "--data-dir", d, "show", &sscc]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches(" unit (01)").count(), 4);
}

/// Open holds through the daemon's read API.
fn api_holds(addr: &str, token: &str) -> Vec<serde_json::Value> {
    let (status, body) = http_get(addr, "/api/v1/agg/holds", token);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["holds"].as_array().cloned().unwrap_or_default()
}

#[test]
fn gtin_serial_cases_from_the_shared_pool_and_a_short_last_case_closed_at_the_hmi() {
    use hmi_support::{PW, csrf, get, login, post};
    const CASE_GTIN: &str = "19506000134359";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base_path = root.join("line-profiles/eu-fmd-case-gtin-aggregation.toml");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 1. The line commissions 6 units: one full case of 4, then a short last case of 2.
    let profile =
        linectl::profile::Profile::load_with_env(&base_path, Some(Default::default())).unwrap();
    let rep = hil_sim::line::run(&sim_opts(&profile, &data, 6, 5)).unwrap();
    let codes = commissioned_codes(&data, &profile);
    assert_eq!(codes.len(), 6, "{rep:?}");
    let lot = profile.batch.lot.clone().unwrap();
    // Case serials in the pool (the site server's job on a real line).
    {
        use linectl::pool::{OpenMode, Pool, SerialRecord, Source};
        let mut pool = Pool::open(&data.join("pool"), OpenMode::MustExist).unwrap();
        let records: Vec<_> = (1..=5u64)
            .map(|i| {
                Ok(SerialRecord {
                    at: i,
                    serial: format!("CS{i:04}"),
                    ai91: None,
                    ai92: None,
                })
            })
            .collect();
        pool.import(
            CASE_GTIN,
            Some(profile.product.market),
            Source {
                header: None,
                records: Box::new(records.into_iter()),
            },
            "test",
        )
        .unwrap();
    }
    // A hold left from earlier, for the supervisor to resolve.
    let old_hold = {
        let store = linectl::aggregation::store::AggStore::open(&data.join("aggregation")).unwrap();
        store
            .hold(
                linectl::aggregation::store::Level::Case,
                &lot,
                vec!["unreadable: a code at row 1 col 1 does not read".into()],
                None,
                1,
            )
            .unwrap()
            .id
    };
    // A supervisor account for the HMI.
    {
        let clock: std::sync::Arc<dyn linectl::clock::Clock> =
            std::sync::Arc::new(linectl::clock::SystemClock::new());
        let parts = linectl::hmi::HmiParts::open(
            &data,
            linectl::users::UsersConfig {
                hashing: linectl::users::HashParams::insecure_fast_for_tests(),
                ..linectl::users::UsersConfig::default()
            },
            clock,
        )
        .unwrap();
        let console = linectl::users::Actor::console("test");
        for (n, r) in [
            ("sup", linectl::users::Role::Supervisor),
            ("op", linectl::users::Role::Operator),
        ] {
            parts
                .users
                .add_user(&console, n, r, PW, "test set-up")
                .unwrap();
        }
    }

    // 2. Devices and the daemon.
    let cam = FrameServer::bind("127.0.0.1:0").unwrap();
    let cam_addr = cam.local_addr().to_string();
    let printer = TwinState::new(16);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let prn_addr = listener.local_addr().unwrap().to_string();
    let st = printer.clone();
    let _printer_server = TwinServer::spawn_tcp(listener, move || {
        linectl_drivers::printer::zpl::ZplSession::new(st.clone())
    })
    .unwrap();
    let prof_path = dir.path().join("profile.toml");
    std::fs::write(
        &prof_path,
        daemon_profile(
            &std::fs::read_to_string(&base_path).unwrap(),
            &cam_addr,
            &prn_addr,
        ),
    )
    .unwrap();
    let log_path = dir.path().join("daemon.log");
    let (mut child, _, api) = start_daemon(&prof_path, &data, &log_path);
    let addr = api["addr"].as_str().unwrap().to_string();
    let token = api["token"].as_str().unwrap().to_string();
    let sock: std::net::SocketAddr = addr.parse().unwrap();
    assert!(
        cam.wait_for_clients(1, Duration::from_secs(30)),
        "station camera not connected"
    );

    // 3. A full case: its label is the case GTIN with a serial from the shared pool.
    let slots: Vec<Slot> = codes[..4].iter().map(|c| Slot::Code(c.clone())).collect();
    let layer = render_layer(1224, 1024, &LAYOUT, &slots, 7).unwrap();
    let mut label = None;
    let t0 = Instant::now();
    while label.is_none() {
        publish(&cam, LAYER_FRAME, &layer);
        for _ in 0..20 {
            if let Some(l) = label_of(&printer) {
                label = Some(l);
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no label printed");
        assert!(child.try_wait().unwrap().is_none(), "daemon exited");
    }
    let label = label.unwrap();
    assert!(
        label.starts_with(&format!("01{CASE_GTIN}")) && label.ends_with("21CS0001"),
        "{label:?}"
    );
    publish(&cam, LAYER_FRAME + 1, &label_frame(&label));
    let case_key = format!("(01){CASE_GTIN}(21)CS0001");
    wait_for("the gtin-serial case", &mut child, || {
        let (st, _) = http_get(
            &addr,
            &format!("/api/v1/agg/containers/{}", hmi_support::enc(&case_key)),
            &token,
        );
        (st == 200).then_some(())
    });

    // 4. The last case of the batch: 2 units. Held as short, with its units.
    let slots = vec![
        Slot::Code(codes[4].clone()),
        Slot::Code(codes[5].clone()),
        Slot::Empty,
        Slot::Empty,
    ];
    let short_layer = render_layer(1224, 1024, &LAYOUT, &slots, 8).unwrap();
    let mut last_pub = Instant::now() - Duration::from_secs(10);
    let short = wait_for("the short hold", &mut child, || {
        if last_pub.elapsed() > Duration::from_secs(3) {
            publish(&cam, LAYER_FRAME + 2, &short_layer);
            last_pub = Instant::now();
        }
        api_holds(&addr, &token).into_iter().find(|h| {
            h["reasons"][0]
                .as_str()
                .is_some_and(|r| r.starts_with("short:"))
        })
    });
    assert_eq!(
        short["children"].as_array().map(Vec::len),
        Some(2),
        "{short}"
    );
    assert!(short["sscc"].is_null(), "{short}");
    let short_id = short["id"].as_u64().unwrap().to_string();

    // 5. An operator may not close it; the supervisor does, at the HMI, while the
    // station prints the label and the camera reads it (frame n + 1 of the next pair).
    let op = login(sock, "op", PW).unwrap();
    let op_csrf = csrf(sock, &op);
    let r = post(
        sock,
        "/aggregation/hold",
        Some(&op),
        &[
            ("csrf", &op_csrf),
            ("hold", &short_id),
            ("action", "partial"),
            ("reason", "last case"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let sup = login(sock, "sup", PW).unwrap();
    let sup_csrf = csrf(sock, &sup);
    let page = get(sock, "/aggregation", Some(&sup));
    assert!(
        page.body.contains(&format!("id=hold-partial-{short_id}")),
        "{}",
        page.body
    );
    let (s2, c2, id2) = (sup.clone(), sup_csrf.clone(), short_id.clone());
    let closing = std::thread::spawn(move || {
        post(
            sock,
            "/aggregation/hold",
            Some(&s2),
            &[
                ("csrf", &c2),
                ("hold", &id2),
                ("action", "partial"),
                ("reason", "last case of the batch"),
            ],
        )
    });
    let t0 = Instant::now();
    let partial_label = loop {
        if let Some(l) = label_of(&printer) {
            break l;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no partial label printed"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(
        partial_label.starts_with(&format!("01{CASE_GTIN}")) && partial_label.ends_with("21CS0002"),
        "{partial_label:?}"
    );
    publish(&cam, LAYER_FRAME + 5, &label_frame(&partial_label));
    let r = closing.join().unwrap();
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap_or_default().to_string();
    assert!(
        to.contains("closed%20as%20a%20partial%20case%20of%202%20units")
            || to.contains("closed+as+a+partial+case+of+2+units"),
        "{to}"
    );
    let partial_key = format!("(01){CASE_GTIN}(21)CS0002");
    let (st, body) = http_get(
        &addr,
        &format!("/api/v1/agg/containers/{}", hmi_support::enc(&partial_key)),
        &token,
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("2 units · closed"), "{body}");
    assert_eq!(body.matches(" unit (01)").count(), 2, "{body}");
    assert!(
        body.contains("\"status\":\"closed\""),
        "the container: {body}"
    );

    // 6. The old hold resolved by the supervisor: gone from the open list, on record.
    let r = post(
        sock,
        "/aggregation/hold",
        Some(&sup),
        &[
            ("csrf", &sup_csrf),
            ("hold", &old_hold.to_string()),
            ("action", "resolve"),
            ("reason", ""),
        ],
    );
    assert_eq!(r.status, 400, "a reason is required: {}", r.body);
    let r = post(
        sock,
        "/aggregation/hold",
        Some(&sup),
        &[
            ("csrf", &sup_csrf),
            ("hold", &old_hold.to_string()),
            ("action", "resolve"),
            ("reason", "units re-inspected and repacked"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let open = api_holds(&addr, &token);
    assert!(open.is_empty(), "{open:?}");
    let page = get(sock, "/aggregation?resolved=1", Some(&sup));
    assert!(
        page.body.contains("resolved by sup")
            && page.body.contains("units re-inspected and repacked"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("closed as a partial case: last case of the batch"),
        "{}",
        page.body
    );

    // 7. The events: both ADDs name the case SGTINs as parents.
    let (status, body) = http_get(&addr, "/api/v1/events?after=0&limit=1000", "pull-token");
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("EPCIS document");
    let adds: Vec<(String, usize)> = doc["epcisBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "AggregationEvent" && e["action"] == "ADD")
        .map(|e| {
            (
                e["parentID"].as_str().unwrap_or_default().to_string(),
                e["childEPCs"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(adds.len(), 2, "{body}");
    assert!(
        adds[0].0.contains(CASE_GTIN) && adds[0].0.contains("CS0001") && adds[0].1 == 4,
        "{adds:?}"
    );
    assert!(
        adds[1].0.contains(CASE_GTIN) && adds[1].0.contains("CS0002") && adds[1].1 == 2,
        "{adds:?}"
    );

    // 8. Rework at the console through the daemon, as HMI users (their role decides):
    // the operator opens the partial case; closing it short needs a supervisor (the
    // operator is refused and that is audited); the supervisor closes it. A wrong
    // password and a request without the daemon's token are refused.
    let d = data.to_str().unwrap();
    let prof = prof_path.to_str().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{PW}\n")).unwrap();
    let bad_pw = dir.path().join("bad-pw");
    std::fs::write(&bad_pw, "not-the-password\n").unwrap();
    let console = |step: &str, user: &str, pw: &Path| {
        linectl(&[
            "agg",
            "--data-dir",
            d,
            step,
            &partial_key,
            "--reason",
            "console rework",
            "--profile",
            prof,
            "--user",
            user,
            "--password-file",
            pw.to_str().unwrap(),
        ])
    };
    let o = console("open", "op", &bad_pw);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("wrong user name or password"),
        "{}",
        text(&o)
    );
    let o = console("open", "op", &pw_file);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("case {partial_key} opened")),
        "{}",
        text(&o)
    );
    let o = console("close", "op", &pw_file);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("closing a partial case needs a supervisor"),
        "{}",
        text(&o)
    );
    let o = console("close", "sup", &pw_file);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("closed as a partial case of 2 units"),
        "{}",
        text(&o)
    );
    assert_eq!(text(&o).matches(" unit (01)").count(), 2, "{}", text(&o));
    {
        use std::io::Write;
        let body = format!(
            r#"{{"user":"sup","password":"{PW}","sscc":"{partial_key}","step":"open","reason":"x"}}"#
        );
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /api/v1/agg/rework HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pull-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let status: u16 = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert!(status == 401 || status == 403, "{raw}");
    }

    // 9. Stop; the pool shows both case serials Commissioned (taken from the line's pool).
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{status}: {err}");
    let t0 = Instant::now();
    let pool = loop {
        match linectl::pool::Pool::open(&data.join("pool"), linectl::pool::OpenMode::MustExist) {
            Ok(p) => break p,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(10), "pool: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let mut states = Vec::new();
    pool.for_each(CASE_GTIN, |payload, state| {
        states.push((payload.to_string(), state))
    })
    .unwrap();
    // Both supervisor steps were audited (before they took effect), the operator's
    // attempt as access_denied.
    let clock: std::sync::Arc<dyn linectl::clock::Clock> =
        std::sync::Arc::new(linectl::clock::SystemClock::new());
    let (trail, _) = linectl::audit::AuditTrail::open(&data, clock).unwrap();
    let recs = trail.query(&linectl::audit::Query::default()).unwrap();
    let on = |object: &str, action: linectl::audit::Action| {
        recs.iter()
            .filter(|r| r.object == object && r.action == action)
            .map(|r| (r.user.clone(), r.reason.clone()))
            .collect::<Vec<_>>()
    };
    let short_obj = format!("hold:{short_id}");
    assert_eq!(
        on(&short_obj, linectl::audit::Action::AggregationRework),
        vec![("sup".to_string(), "last case of the batch".to_string())]
    );
    assert_eq!(
        on(&short_obj, linectl::audit::Action::AccessDenied).len(),
        1
    );
    assert_eq!(
        on(
            &format!("hold:{old_hold}"),
            linectl::audit::Action::AggregationRework
        ),
        vec![(
            "sup".to_string(),
            "units re-inspected and repacked".to_string()
        )]
    );
    // The console steps: each audited as its user's, the operator's partial close
    // refused as access_denied.
    let case_obj = format!("case:{partial_key}");
    let rework: Vec<String> = on(&case_obj, linectl::audit::Action::AggregationRework)
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert!(
        rework.contains(&"op".to_string()) && rework.contains(&"sup".to_string()),
        "{rework:?}"
    );
    assert_eq!(on(&case_obj, linectl::audit::Action::AccessDenied).len(), 1);
    let commissioned: Vec<&str> = states
        .iter()
        .filter(|(_, s)| *s == linectl::pool::SerialState::Commissioned)
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(commissioned, vec!["CS0001", "CS0002"], "{states:?}");
}
