//! Shared helpers for the integration tests: external peers (socat, mbpoll, the
//! pymodbus venv) found or failed with install instructions, a socat PTY pair, a
//! scripted TCP peer, and golden transcript files.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The repository root (parent of drivers/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Fail (not skip) when a Debian tool is missing.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{tool}` is required by this test but not installed: run `apt-get install -y {package}`"
    );
}

/// The Python with pymodbus: `$LINECTL_PY` or `<repo>/.venv/bin/python`.
pub fn python() -> PathBuf {
    let py = std::env::var_os("LINECTL_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&py)
        .args([
            "-c",
            "import pymodbus,sys; sys.exit(0 if pymodbus.__version__=='3.16.1' else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "pymodbus 3.16.1 not found at {}: create the venv with `python3 -m venv .venv && .venv/bin/pip install -r drivers/tests/peers/requirements.txt` in the repository root, or set LINECTL_PY",
        py.display()
    );
    py
}

/// Path of a peer script.
pub fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// A child process killed (by its own pid) on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A socat PTY pair with links `<dir>/a` and `<dir>/b`.
pub struct PtyPair {
    pub a: String,
    pub b: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

pub fn pty_pair() -> PtyPair {
    let socat = require_tool("socat", "socat");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let a = dir.path().join("a").to_string_lossy().into_owned();
    let b = dir.path().join("b").to_string_lossy().into_owned();
    let child = Command::new(socat)
        .args([
            format!("pty,raw,echo=0,link={a}"),
            format!("pty,raw,echo=0,link={b}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start socat: {e}"));
    let guard = ChildGuard(child);
    let end = Instant::now() + Duration::from_secs(5);
    while !(Path::new(&a).exists() && Path::new(&b).exists()) {
        assert!(
            Instant::now() < end,
            "socat did not create the PTY links {a} and {b}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    PtyPair {
        a,
        b,
        _child: guard,
        _dir: dir,
    }
}

/// Wait until something accepts TCP connections on 127.0.0.1:port.
pub fn wait_port(port: u16, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "{what} did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One step of a golden transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `> bytes`: host → device.
    Host(Vec<u8>),
    /// `< bytes`: device → host.
    Device(Vec<u8>),
    /// `! print`: the twin prints one queued item.
    Print,
}

fn unescape(s: &str, line: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'r') => out.push(b'\r'),
                Some(b'n') => out.push(b'\n'),
                Some(b'\\') => out.push(b'\\'),
                Some(b'x') => {
                    let h = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("");
                    out.push(
                        u8::from_str_radix(h, 16)
                            .unwrap_or_else(|_| panic!("line {line}: bad \\x escape")),
                    );
                    i += 2;
                }
                other => panic!("line {line}: bad escape {other:?}"),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Read `tests/data/<name>`: lines `> ...`, `< ...`, `! print`, `# comment`.
/// Bytes use `\r \n \\ \xHH` escapes.
pub fn transcript(name: &str) -> Vec<Step> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_at(2) {
            ("> ", rest) => steps.push(Step::Host(unescape(rest, n + 1))),
            ("< ", rest) => steps.push(Step::Device(unescape(rest, n + 1))),
            ("! ", "print") => steps.push(Step::Print),
            _ => panic!("{}:{}: bad transcript line {line:?}", path.display(), n + 1),
        }
    }
    steps
}

/// A TCP peer that plays the device side of a transcript and checks that the host
/// sends exactly the `>` bytes. Returns its address and a handle yielding the verdict.
pub fn scripted_device(steps: Vec<Step>) -> (String, JoinHandle<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Host(want) => {
                    let mut got = vec![0u8; want.len()];
                    s.read_exact(&mut got).map_err(|e| {
                        format!("step {i}: reading {:?}: {e}", String::from_utf8_lossy(want))
                    })?;
                    if &got != want {
                        return Err(format!(
                            "step {i}: host sent {:?}, transcript says {:?}",
                            String::from_utf8_lossy(&got),
                            String::from_utf8_lossy(want)
                        ));
                    }
                }
                Step::Device(bytes) => s.write_all(bytes).map_err(|e| e.to_string())?,
                Step::Print => {}
            }
        }
        // Nothing more may arrive.
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let mut extra = [0u8; 64];
        match s.read(&mut extra) {
            Ok(n) if n > 0 => Err(format!(
                "host sent extra bytes {:?}",
                String::from_utf8_lossy(&extra[..n])
            )),
            _ => Ok(()),
        }
    });
    (addr, h)
}

/// What a misbehaving device does, in order, on its one connection.
#[derive(Debug, Clone)]
pub enum Act {
    /// Read whatever arrives (up to 4 KiB, 2 s).
    Read,
    /// Send bytes at once.
    Send(Vec<u8>),
    /// Send bytes one at a time with a pause between.
    Drip(Vec<u8>, Duration),
    /// Stay silent for a while.
    Sleep(Duration),
    /// Close the connection.
    Close,
}

/// A TCP peer acting out `acts`.
pub fn evil_device(acts: Vec<Act>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let h = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        for a in acts {
            match a {
                Act::Read => {
                    let mut b = [0u8; 4096];
                    let _ = s.read(&mut b);
                }
                Act::Send(bytes) => {
                    let _ = s.write_all(&bytes);
                }
                Act::Drip(bytes, d) => {
                    for b in bytes {
                        let _ = s.write_all(&[b]);
                        std::thread::sleep(d);
                    }
                }
                Act::Sleep(d) => std::thread::sleep(d),
                Act::Close => return,
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    (addr, h)
}
