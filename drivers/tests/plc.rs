//! PLC over Modbus: the driver against its twin (TCP, and RTU over a socat PTY pair),
//! the RTU golden transcript checked byte-for-byte against both the driver and the
//! twin, against pymodbus (server and client peers) and mbpoll; exceptions vs transport
//! failures, timeouts, reconnect with backoff.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Step;
use linectl_drivers::link::open_serial;

use linectl_drivers::plc::modbus::{Endpoint, ModbusConfig, ModbusPlc, PlcTwin, RegisterMap};
use linectl_drivers::{ErrorKind, PackMlCommand, PackMlState, Plc, PlcCounters, Verdict};

fn cfg() -> ModbusConfig {
    ModbusConfig {
        timeout: Duration::from_millis(800),
        ..ModbusConfig::default()
    }
}

fn tcp_twin() -> (
    PlcTwin,
    linectl_drivers::plc::modbus::TwinHandle,
    std::net::SocketAddr,
) {
    let twin = PlcTwin::new(RegisterMap::default()).unwrap_or_else(|e| panic!("{e}"));
    let h = twin
        .spawn_tcp("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = h.local_addr().unwrap_or_else(|| panic!("no address"));
    (twin, h, addr)
}

fn exercise(plc: &mut dyn Plc, twin: &PlcTwin) {
    for _ in 0..3 {
        twin.trigger();
    }
    assert_eq!(plc.trigger_counter().ok(), Some(3));
    assert!(plc.write_verdict(70_005, Verdict::Reject).is_ok());
    assert!(plc.write_verdict(70_006, Verdict::Good).is_ok());
    assert_eq!(twin.verdict(70_005), Some(Verdict::Reject));
    assert_eq!(twin.verdict(70_006), Some(Verdict::Good));
    assert!(plc.heartbeat(4242).is_ok());
    assert_eq!(twin.heartbeat(), 4242);
    assert_eq!(plc.state().ok(), Some(Some(PackMlState::Stopped)));
    assert!(plc.command(PackMlCommand::Reset).is_ok());
    assert!(plc.command(PackMlCommand::Start).is_ok());
    assert_eq!(plc.state().ok(), Some(Some(PackMlState::Execute)));
    twin.count_exit(Verdict::Good);
    twin.count_exit(Verdict::Reject);
    twin.count_exit(Verdict::Reject);
    assert_eq!(
        plc.counters().ok(),
        Some(PlcCounters {
            total: 3,
            good: 1,
            rejected: 2
        })
    );
    twin.set_alarms(0b1010);
    assert_eq!(plc.alarms().ok(), Some(0b1010));
}

#[test]
fn driver_against_twin_over_tcp() {
    let (twin, _h, addr) = tcp_twin();
    let mut plc = ModbusPlc::connect(Endpoint::Tcp(addr), cfg()).unwrap_or_else(|e| panic!("{e}"));
    exercise(&mut plc, &twin);
}

#[test]
fn driver_against_twin_rtu_over_socat_pty() {
    let pty = common::pty_pair();
    let twin = PlcTwin::new(RegisterMap::default()).unwrap_or_else(|e| panic!("{e}"));
    let h = twin
        .spawn_rtu(&pty.b, 19200)
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(h.is_running(), "RTU twin failed to open {}", pty.b);
    let ep = Endpoint::Rtu {
        path: pty.a.clone(),
        baud: 19200,
    };
    let mut plc = ModbusPlc::connect(ep, cfg()).unwrap_or_else(|e| panic!("{e}"));
    exercise(&mut plc, &twin);
}

/// Plays the device side of `steps` on a serial port, checking that the host sends
/// exactly the `>` bytes.
fn scripted_serial_unit(
    path: &str,
    steps: Vec<Step>,
) -> std::thread::JoinHandle<Result<(), String>> {
    let mut port =
        open_serial(path, 19200, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Host(want) => {
                    let mut got = vec![0u8; want.len()];
                    port.read_exact(&mut got)
                        .map_err(|e| format!("step {i}: reading {want:02x?}: {e}"))?;
                    if &got != want {
                        return Err(format!(
                            "step {i}: host sent {got:02x?}, transcript says {want:02x?}"
                        ));
                    }
                }
                Step::Device(bytes) => port
                    .write_all(bytes)
                    .and_then(|()| port.flush())
                    .map_err(|e| e.to_string())?,
                Step::Print => {}
            }
        }
        let mut extra = [0u8; 64];
        std::thread::sleep(Duration::from_millis(200));
        match linectl_drivers::link::Link::read_available(&mut port, &mut extra) {
            Ok(n) if n > 0 => Err(format!("host sent extra bytes {:02x?}", &extra[..n])),
            _ => Ok(()),
        }
    })
}

#[test]
fn rtu_golden_transcript_driver_side() {
    let steps = common::transcript("modbus-rtu/session.golden");
    let pty = common::pty_pair();
    let unit = scripted_serial_unit(&pty.b, steps);
    let map = RegisterMap {
        alarms: 900,
        ..RegisterMap::default()
    };
    let ep = Endpoint::Rtu {
        path: pty.a.clone(),
        baud: 19200,
    };
    let c = ModbusConfig {
        map,
        slave: 3,
        ..cfg()
    };
    let mut plc = ModbusPlc::connect(ep, c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plc.trigger_counter().ok(), Some(3));
    assert_eq!(plc.poll().ok(), Some((3, Some(PackMlState::Stopped))));
    assert!(plc.write_verdict(70_005, Verdict::Reject).is_ok());
    assert!(plc.heartbeat(4242).is_ok());
    assert!(plc.command(PackMlCommand::Reset).is_ok());
    assert_eq!(plc.state().ok(), Some(Some(PackMlState::Idle)));
    assert_alarms_exception_keeps_the_link(&mut plc);
    assert_eq!(plc.trigger_counter().ok(), Some(3));
    assert_eq!(unit.join().ok(), Some(Ok(())));
}

#[test]
fn rtu_golden_transcript_twin_side() {
    let steps = common::transcript("modbus-rtu/session.golden");
    let pty = common::pty_pair();
    let twin = PlcTwin::new(RegisterMap::default()).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..3 {
        twin.trigger();
    }
    let h = twin
        .spawn_rtu(&pty.b, 19200)
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(h.is_running(), "RTU twin failed to open {}", pty.b);
    let mut port =
        open_serial(&pty.a, 19200, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Host(bytes) => {
                assert!(port.write_all(bytes).and_then(|()| port.flush()).is_ok());
            }
            Step::Device(want) => {
                let mut got = vec![0u8; want.len()];
                port.read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("step {i}: reading {want:02x?}: {e}"));
                assert_eq!(&got, want, "step {i}");
                // The silence between frames (3.5 characters at 19200 baud is 2 ms).
                std::thread::sleep(Duration::from_millis(5));
            }
            Step::Print => {}
        }
    }
    assert_eq!(twin.verdict(70_005), Some(Verdict::Reject));
    assert_eq!(twin.heartbeat(), 4242);
    assert_eq!(twin.state(), Some(PackMlState::Idle));
}

#[test]
fn factory_builds_tcp_and_rtu_plcs() {
    let (twin, _h, addr) = tcp_twin();
    let mut plc = linectl_drivers::connect_plc(
        "modbus-tcp",
        &addr.to_string(),
        None,
        Duration::from_secs(1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    twin.trigger();
    assert_eq!(plc.trigger_counter().ok(), Some(1));
    let e = linectl_drivers::connect_plc("modbus-tcp", "/dev/ttyS0", None, Duration::from_secs(1))
        .err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Config));
    let e = linectl_drivers::connect_plc("profinet", "h:1", None, Duration::from_secs(1)).err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Config));
}

/// Reading the alarm register (outside the PLC's registers) is a Modbus exception 2: a
/// device fault that leaves the link up.
fn assert_alarms_exception_keeps_the_link(plc: &mut ModbusPlc) {
    let e = plc
        .alarms()
        .err()
        .unwrap_or_else(|| panic!("expected an exception"));
    assert_eq!(e.kind(), ErrorKind::DeviceFault, "{e}");
    assert!(e.to_string().contains("device fault 2"), "{e}");
    assert!(plc.is_connected());
}

#[test]
fn modbus_exception_is_device_fault_and_keeps_the_link() {
    let (_twin, _h, addr) = tcp_twin();
    // The driver's alarm register lies outside the twin's registers.
    let map = RegisterMap {
        alarms: 900,
        ..RegisterMap::default()
    };
    let mut plc = ModbusPlc::connect(Endpoint::Tcp(addr), ModbusConfig { map, ..cfg() })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_alarms_exception_keeps_the_link(&mut plc);
    assert_eq!(plc.trigger_counter().ok(), Some(0));
}

#[test]
fn transport_failure_then_reconnect_with_backoff() {
    let (twin, h, addr) = tcp_twin();
    let c = ModbusConfig {
        backoff_initial: Duration::from_millis(300),
        ..cfg()
    };
    let mut plc = ModbusPlc::connect(Endpoint::Tcp(addr), c).unwrap_or_else(|e| panic!("{e}"));
    assert!(plc.trigger_counter().is_ok());
    h.stop();
    let e = plc
        .trigger_counter()
        .err()
        .unwrap_or_else(|| panic!("expected a failure after the PLC went away"));
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    // Immediate reconnect attempt is refused (nothing listens), then backoff applies.
    let e = plc
        .trigger_counter()
        .err()
        .unwrap_or_else(|| panic!("expected refused"));
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    let e = plc
        .trigger_counter()
        .err()
        .unwrap_or_else(|| panic!("expected backoff"));
    assert!(e.to_string().contains("next reconnect attempt"), "{e}");
    // The PLC comes back on the same port.
    let h2 = twin
        .spawn_tcp(&addr.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match plc.trigger_counter() {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < end, "no reconnect: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(h2);
}

#[test]
fn silent_device_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let _t = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(3).collect();
        std::thread::sleep(Duration::from_secs(5));
        drop(held);
    });
    let mut plc = ModbusPlc::connect(
        Endpoint::Tcp(addr),
        ModbusConfig {
            timeout: Duration::from_millis(300),
            ..cfg()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let e = plc
        .trigger_counter()
        .err()
        .unwrap_or_else(|| panic!("expected a timeout"));
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "timeout not honoured: {:?}",
        t0.elapsed()
    );
}

#[test]
fn pymodbus_server_peer() {
    let py = common::python();
    let port = common::free_port();
    let child = Command::new(py)
        .arg(common::peer_script("modbus_server.py"))
        .args([
            port.to_string(),
            "0=0".into(),
            "1=42".into(),
            "11=6".into(),
            "30=5".into(),
            "23=1".into(),
        ])
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the pymodbus server: {e}"));
    let _g = common::ChildGuard(child);
    common::wait_port(port, "pymodbus server");
    let addr = format!("127.0.0.1:{port}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut plc = ModbusPlc::connect(Endpoint::Tcp(addr), cfg()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plc.trigger_counter().ok(), Some(42));
    assert_eq!(plc.state().ok(), Some(Some(PackMlState::Execute)));
    assert_eq!(plc.alarms().ok(), Some(5));
    assert_eq!(
        plc.counters().ok(),
        Some(PlcCounters {
            total: 0,
            good: 1,
            rejected: 0
        })
    );
    assert!(plc.write_verdict(9, Verdict::Reject).is_ok());
    assert!(plc.heartbeat(77).is_ok());
    // Read back through pymodbus' own client.
    let out = Command::new(common::python())
        .arg(common::peer_script("modbus_client.py"))
        .args([
            port.to_string(),
            "read".into(),
            "103".into(),
            "3".into(),
            "read".into(),
            "2".into(),
            "1".into(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0,9,2\n77\n");
    // Past the server's 200 registers: exception 2, a device fault, link kept.
    let map = RegisterMap {
        alarms: 250,
        ..RegisterMap::default()
    };
    let mut plc2 = ModbusPlc::connect(Endpoint::Tcp(addr), ModbusConfig { map, ..cfg() })
        .unwrap_or_else(|e| panic!("{e}"));
    let e = plc2
        .alarms()
        .err()
        .unwrap_or_else(|| panic!("expected an exception"));
    assert_eq!(e.kind(), ErrorKind::DeviceFault, "{e}");
    assert_eq!(plc2.trigger_counter().ok(), Some(42));
}

#[test]
fn pymodbus_client_against_twin() {
    let py = common::python();
    let (twin, _h, addr) = tcp_twin();
    twin.trigger();
    let out = Command::new(py)
        .arg(common::peer_script("modbus_client.py"))
        .args([
            addr.port().to_string(),
            "read".into(),
            "0".into(),
            "2".into(),
            "write".into(),
            "115".into(),
            "0,5,2".into(),
            "writeone".into(),
            "10".into(),
            "1".into(),
            "read".into(),
            "11".into(),
            "1".into(),
            "read".into(),
            "5000".into(),
            "1".into(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0,1\nok\nok\n4\nexception 2\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(twin.verdict(5), Some(Verdict::Reject));
    assert_eq!(twin.state(), Some(PackMlState::Idle));
}

#[test]
fn mbpoll_against_twin() {
    let mbpoll = common::require_tool("mbpoll", "mbpoll");
    let (twin, _h, addr) = tcp_twin();
    for _ in 0..7 {
        twin.trigger();
    }
    let port = addr.port().to_string();
    let out = Command::new(&mbpoll)
        .args([
            "-m",
            "tcp",
            "-p",
            &port,
            "-a",
            "1",
            "-t",
            "4",
            "-0",
            "-r",
            "0",
            "-c",
            "2",
            "-1",
            "127.0.0.1",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mbpoll read failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("[0]: \t0") && text.contains("[1]: \t7"),
        "{text}"
    );
    let out = Command::new(&mbpoll)
        .args([
            "-m",
            "tcp",
            "-p",
            &port,
            "-a",
            "1",
            "-t",
            "4",
            "-0",
            "-r",
            "2",
            "127.0.0.1",
            "1234",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "mbpoll write failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(twin.heartbeat(), 1234);
}
