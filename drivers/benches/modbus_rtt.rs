//! Modbus TCP round trip on loopback: the blocking `ModbusPlc` driver reading the
//! trigger counter from the `PlcTwin` server, N requests, p50 / p99 / max printed.
//! Run: `cargo bench -p linectl-drivers --bench modbus_rtt` (about a second).

use std::time::{Duration, Instant};

use linectl_drivers::Plc;
use linectl_drivers::plc::modbus::{Endpoint, ModbusConfig, ModbusPlc, PlcTwin, RegisterMap};

fn main() {
    let n: usize = std::env::var("RTT_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let twin = match PlcTwin::new(RegisterMap::default()) {
        Ok(t) => t,
        Err(e) => return eprintln!("twin: {e}"),
    };
    let h = match twin.spawn_tcp("127.0.0.1:0") {
        Ok(h) => h,
        Err(e) => return eprintln!("serve: {e}"),
    };
    let Some(addr) = h.local_addr() else {
        return eprintln!("no address");
    };
    let mut plc = match ModbusPlc::connect(Endpoint::Tcp(addr), ModbusConfig::default()) {
        Ok(p) => p,
        Err(e) => return eprintln!("connect: {e}"),
    };
    for _ in 0..200 {
        let _ = plc.trigger_counter();
    }
    let mut rtt: Vec<Duration> = Vec::with_capacity(n);
    let mut errors = 0;
    for _ in 0..n {
        let t = Instant::now();
        if plc.trigger_counter().is_err() {
            errors += 1;
        }
        rtt.push(t.elapsed());
    }
    rtt.sort();
    let pct = |p: f64| {
        rtt.get(((rtt.len() as f64 * p) as usize).min(rtt.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "modbus_tcp_rtt requests={n} errors={errors} p50={:?} p99={:?} max={:?}",
        pct(0.50),
        pct(0.99),
        rtt.last().copied().unwrap_or_default()
    );
}
