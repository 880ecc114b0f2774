//! The systemd notification protocol (`sd_notify(3)`), written out in full so the daemon
//! needs no extra crate: one datagram of `KEY=VALUE` lines sent to the socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract socket when it starts with `@`). It owns
//! telling systemd "ready", "still alive" (the watchdog), "stopping" and a status line,
//! and reading the watchdog interval systemd asked for (`$WATCHDOG_USEC`,
//! `$WATCHDOG_PID`). It does not decide when to ping: the real-time loop does, so that a
//! stuck pipeline stops the pings and systemd restarts the daemon. Outside systemd
//! (`$NOTIFY_SOCKET` unset) every call is a no-op that says so.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// A notification that could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is set but names no usable socket.
    #[error("NOTIFY_SOCKET {socket:?} is not a socket address: {reason}")]
    BadSocket {
        /// The value as given.
        socket: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Creating the datagram socket or sending on it failed.
    #[error("cannot notify systemd at {socket:?}: {source}")]
    Io {
        /// The socket the datagram was for.
        socket: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A socket in the file system.
    Path(PathBuf),
    /// A Linux abstract socket (the name without the leading `@`).
    Abstract(Vec<u8>),
}

/// A handle on systemd's notification socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    target: Target,
    /// The address as given, for error messages.
    shown: String,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`; `Ok(None)` when it is unset (not run by
    /// systemd, or by a unit that is not `Type=notify`).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        std::env::var_os("NOTIFY_SOCKET")
            .map(Notifier::new)
            .transpose()
    }

    /// A notifier for `socket`: a path, or `@name` for an abstract socket.
    pub fn new(socket: impl Into<OsString>) -> Result<Notifier, NotifyError> {
        let socket: OsString = socket.into();
        let shown = socket.to_string_lossy().into_owned();
        let bytes = socket.as_bytes();
        let target = match bytes.split_first() {
            None => {
                return Err(NotifyError::BadSocket {
                    socket: shown,
                    reason: "empty",
                });
            }
            Some((b'@', [])) => {
                return Err(NotifyError::BadSocket {
                    socket: shown,
                    reason: "abstract socket without a name",
                });
            }
            Some((b'@', name)) => Target::Abstract(name.to_vec()),
            Some((b'/', _)) => Target::Path(PathBuf::from(&socket)),
            Some(_) => {
                return Err(NotifyError::BadSocket {
                    socket: shown,
                    reason: "neither an absolute path nor '@' followed by a name",
                });
            }
        };
        Ok(Notifier { target, shown })
    }

    /// Send one datagram of `KEY=VALUE` lines as given (no checking).
    pub fn send(&self, state: &str) -> Result<(), NotifyError> {
        let io = |source| NotifyError::Io {
            socket: self.shown.clone(),
            source,
        };
        let sock = UnixDatagram::unbound().map_err(io)?;
        match &self.target {
            Target::Path(p) => sock.send_to(state.as_bytes(), p).map_err(io)?,
            Target::Abstract(name) => send_abstract(&sock, name, state.as_bytes()).map_err(io)?,
        };
        Ok(())
    }

    /// `READY=1`: start-up is done (profile validated, devices open).
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1")
    }

    /// `WATCHDOG=1`: the real-time loop is alive.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }

    /// `STATUS=…`: one line shown by `systemctl status`. Line breaks in `text` become
    /// spaces, so a status can never smuggle in another `KEY=VALUE` line.
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        self.send(&format!("STATUS={}", one_line(text)))
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], buf: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(buf, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_sock: &UnixDatagram, _name: &[u8], _buf: &[u8]) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Send `state` to `$NOTIFY_SOCKET`: `Ok(false)` when it is unset (nothing sent).
fn notify_env(state: &str) -> Result<bool, NotifyError> {
    match Notifier::from_env()? {
        Some(n) => n.send(state).map(|()| true),
        None => Ok(false),
    }
}

/// `READY=1` to `$NOTIFY_SOCKET`; `Ok(false)` when not run by systemd.
pub fn ready() -> Result<bool, NotifyError> {
    notify_env("READY=1")
}

/// `WATCHDOG=1` to `$NOTIFY_SOCKET`; `Ok(false)` when not run by systemd.
pub fn watchdog() -> Result<bool, NotifyError> {
    notify_env("WATCHDOG=1")
}

/// `STOPPING=1` to `$NOTIFY_SOCKET`; `Ok(false)` when not run by systemd.
pub fn stopping() -> Result<bool, NotifyError> {
    notify_env("STOPPING=1")
}

/// `STATUS=text` (on one line) to `$NOTIFY_SOCKET`; `Ok(false)` when not run by systemd.
pub fn status(text: &str) -> Result<bool, NotifyError> {
    notify_env(&format!("STATUS={}", one_line(text)))
}

/// The watchdog interval systemd expects pings within (`WatchdogSec=`), `None` when the
/// watchdog is off or meant for another process. Ping at half of it, as `sd_watchdog_enabled(3)`
/// advises.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var_os("WATCHDOG_USEC").as_deref(),
        std::env::var_os("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] from the two variables' values and this process's id: the
/// interval when `usec` is a positive whole number and `pid`, if set, is `my_pid`.
fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    my_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.trim().parse().ok()?;
        if pid != my_pid {
            return None;
        }
    }
    let usec: u64 = usec?.to_str()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> Vec<u8> {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn path_socket_gets_each_message_as_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.as_os_str()).unwrap();
        n.ready().unwrap();
        assert_eq!(recv(&server), b"READY=1");
        n.watchdog().unwrap();
        assert_eq!(recv(&server), b"WATCHDOG=1");
        n.stopping().unwrap();
        assert_eq!(recv(&server), b"STOPPING=1");
        n.status("batch B42: 1200 units").unwrap();
        assert_eq!(recv(&server), b"STATUS=batch B42: 1200 units");
    }

    #[test]
    fn abstract_socket_with_at_prefix() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("linectl-sdnotify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(format!("@{name}")).unwrap();
        n.watchdog().unwrap();
        assert_eq!(recv(&server), b"WATCHDOG=1");
    }

    #[test]
    fn status_cannot_inject_another_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.as_os_str()).unwrap();
        n.status("stuck\nREADY=1\r\n").unwrap();
        let got = recv(&server);
        assert_eq!(got, b"STATUS=stuck READY=1  ");
        assert!(!got.contains(&b'\n'));
    }

    #[test]
    fn bad_socket_values_are_clear_errors() {
        for (value, why) in [
            ("", "empty"),
            ("@", "abstract socket without a name"),
            ("run/notify", "neither an absolute path"),
        ] {
            match Notifier::new(value) {
                Err(e @ NotifyError::BadSocket { .. }) => {
                    assert!(e.to_string().contains(why), "{value:?}: {e}")
                }
                other => panic!("{value:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn nobody_listening_names_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-here");
        let err = Notifier::new(path.as_os_str())
            .unwrap()
            .ready()
            .unwrap_err();
        assert!(matches!(err, NotifyError::Io { .. }));
        assert!(err.to_string().contains("nobody-here"), "{err}");
    }

    /// The environment-reading functions, run in a child copy of this test binary so
    /// that the variables are set for a whole process (never mutated in this one).
    #[test]
    fn env_functions_follow_notify_socket_and_watchdog_usec() {
        const ME: &str = "sdnotify::tests::env_functions_follow_notify_socket_and_watchdog_usec";
        match std::env::var("LINECTL_SDNOTIFY_CHILD").as_deref() {
            Ok("under-systemd") => {
                assert!(ready().unwrap());
                assert!(status("child\nup").unwrap());
                assert!(watchdog().unwrap());
                assert!(stopping().unwrap());
                assert_eq!(watchdog_interval(), Some(Duration::from_secs(3)));
                return;
            }
            Ok("no-systemd") => {
                assert!(!ready().unwrap());
                assert!(!status("x").unwrap());
                assert!(!watchdog().unwrap());
                assert!(!stopping().unwrap());
                assert_eq!(watchdog_interval(), None);
                return;
            }
            _ => {}
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let child = |mode: &str, socket: Option<&std::path::Path>| {
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", ME, "--test-threads=1"])
                .env("LINECTL_SDNOTIFY_CHILD", mode)
                .env_remove("NOTIFY_SOCKET")
                .env_remove("WATCHDOG_PID")
                .env_remove("WATCHDOG_USEC");
            if let Some(socket) = socket {
                cmd.env("NOTIFY_SOCKET", socket)
                    .env("WATCHDOG_USEC", "3000000");
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{mode}: {out:?}");
            // the child really ran the test (not filtered out)
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "{out:?}"
            );
        };
        child("under-systemd", Some(&path));
        assert_eq!(recv(&server), b"READY=1");
        assert_eq!(recv(&server), b"STATUS=child up");
        assert_eq!(recv(&server), b"WATCHDOG=1");
        assert_eq!(recv(&server), b"STOPPING=1");
        child("no-systemd", None);
        server.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(server.recv(&mut buf).is_err(), "sent without NOTIFY_SOCKET");
    }

    #[test]
    fn watchdog_interval_follows_usec_and_pid() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(
            watchdog_interval_from(os("10000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval_from(os("500000"), os("7"), 7),
            Some(Duration::from_millis(500))
        );
        // meant for another process
        assert_eq!(watchdog_interval_from(os("500000"), os("8"), 7), None);
        // off, absent or garbage
        assert_eq!(watchdog_interval_from(os("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, os("7"), 7), None);
        assert_eq!(watchdog_interval_from(os("10s"), None, 7), None);
        assert_eq!(watchdog_interval_from(os("500000"), os("x"), 7), None);
    }
}
