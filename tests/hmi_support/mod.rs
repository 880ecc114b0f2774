//! Shared set-up of the HMI tests (included with `mod hmi_support;`): a real line (the
//! pipeline with its devices unreachable unless the caller gives real ones), the audit
//! trail, accounts (one per role, cheap Argon2), the exception store and the HMI served
//! on a loopback port; and a small HTTP/1.1 client that shows redirects and cookies as
//! they are.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use linectl::clock::{Clock, SystemClock};
use linectl::hmi::{Hmi, HmiConfig, HmiParts, HmiServer};
use linectl::pipeline::{Devices, Hooks, Line, LineConfig, UnitRecord};
use linectl::profile::Profile;
use linectl::users::{Actor, HashParams, Lockout, Role, UsersConfig};

pub const PW: &str = "pass-word-123";
pub const MAX_FAILED: u32 = 3;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub parts: HmiParts,
    pub line: Arc<Line>,
    pub hmi: Hmi,
    pub server: Option<HmiServer>,
    pub observer: crossbeam_channel::Sender<UnitRecord>,
    pub observer_thread: Option<std::thread::JoinHandle<()>>,
}

impl Env {
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().map(|s| s.local_addr()).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.take();
    }
}

/// The EU profile with every device address pointing at a closed loopback port.
pub fn offline_profile() -> Profile {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/line-profiles/eu-fmd-carton.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let text = text
        .replace("127.0.0.1:5020", "127.0.0.1:1")
        .replace("127.0.0.1:9101", "127.0.0.1:1")
        .replace("127.0.0.1:7100", "127.0.0.1:1");
    Profile::from_toml(path, &text, None).unwrap()
}

/// A line on `profile` with the HMI in front, users `op`, `sup`, `qa`, `admin`.
pub fn start(profile: &Profile, need_sign: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let ucfg = UsersConfig {
        hashing: HashParams::insecure_fast_for_tests(),
        max_failed_logins: MAX_FAILED,
        lockout: Lockout::UntilUnlocked,
        ..UsersConfig::default()
    };
    let parts = HmiParts::open(dir.path(), ucfg, clock.clone()).unwrap();
    let console = Actor::console("test");
    for (n, r) in [
        ("op", Role::Operator),
        ("sup", Role::Supervisor),
        ("qa", Role::Qa),
        ("admin", Role::Admin),
    ] {
        parts
            .users
            .add_user(&console, n, r, PW, "test set-up")
            .unwrap();
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let cfg = LineConfig::from_profile(profile, dir.path().to_path_buf());
    let line = Arc::new(
        Line::start(
            cfg,
            Devices::from_profile(profile),
            clock.clone(),
            Hooks {
                observer: Some(tx.clone()),
                ..Hooks::default()
            },
        )
        .unwrap(),
    );
    let observer_thread =
        linectl::hmi::spawn_observer(rx, parts.exceptions.clone(), line.status().clone(), clock)
            .unwrap();
    let mut hc = HmiConfig::from_profile(profile);
    hc.resolve_needs_second_signature = need_sign;
    let hmi = Hmi::new(
        hc,
        line.clone(),
        parts.users.clone(),
        parts.audit.clone(),
        parts.exceptions.clone(),
        Some(parts.orders.clone()),
    );
    let server = HmiServer::start("127.0.0.1:0", &hmi, hmi.router()).unwrap();
    Env {
        dir,
        parts,
        line,
        hmi,
        server: Some(server),
        observer: tx,
        observer_thread: Some(observer_thread),
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => o.push(b as char),
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One request; `cookie` is the session token.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {}={c}\r\n", linectl::hmi::COOKIE));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Resp {
    request(addr, "GET", path, cookie, None)
}

pub fn post(addr: SocketAddr, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Resp {
    request(addr, "POST", path, cookie, Some(&form(fields)))
}

/// Log in; the session token from the cookie.
pub fn login(addr: SocketAddr, user: &str, pw: &str) -> Result<String, Resp> {
    let r = post(addr, "/login", None, &[("user", user), ("password", pw)]);
    if r.status != 303 {
        return Err(r);
    }
    let c = r.header("set-cookie").unwrap().to_string();
    let v = c
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap();
    Ok(v)
}

/// The CSRF token on a page.
pub fn csrf(addr: SocketAddr, cookie: &str) -> String {
    let r = get(addr, "/", Some(cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body.find("name=csrf value=\"").unwrap() + "name=csrf value=\"".len();
    r.body[at..].split('"').next().unwrap().to_string()
}
