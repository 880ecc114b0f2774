//! The uplink against the hil-sim site server over real loopback HTTP: every journaled
//! event reaches the server exactly once and in journal order despite injected 5xx
//! (some answered after the server accepted the capture), a long outage (connections
//! refused, then 503) during which the journal grows, and uplinks dropped in the middle
//! of a capture job and restarted on the same journal (the server refuses the resent
//! events as duplicates and the uplink counts them as delivered).

mod uplink_support;

use std::sync::Arc;
use std::time::Duration;

use hil_sim::site::{Outage, SiteConfig, SiteServer};
use linectl::clock::{Clock, SystemClock};
use linectl::uplink::{Uplink, UplinkConfig, UplinkState};
use uplink_support::{append, journal, records, wait_for};

fn config(site: &SiteServer) -> UplinkConfig {
    UplinkConfig {
        backoff_initial_ms: 5,
        backoff_max_ms: 100,
        poll_initial_ms: 1,
        poll_max_ms: 20,
        idle_ms: 10,
        request_timeout_ms: 5_000,
        connect_timeout_ms: 1_000,
        ..UplinkConfig::new(format!("{}/capture", site.base_url()))
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock::new())
}

#[test]
fn everything_delivered_once_in_order_through_5xx_and_a_long_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(dir.path());
    let site = SiteServer::start(SiteConfig {
        capture_limit: 40,
        error_rate: 0.25,
        seed: 7,
        ..SiteConfig::default()
    })
    .expect("site");
    let mut ids = append(&j, &records("LOT1", "A", 300));
    let up = Uplink::start(config(&site), j.clone(), clock()).expect("uplink");
    wait_for("the first 300 events", 60, || site.stats().events == 300);
    assert_eq!(up.status().batch_size, 40, "server's capture limit adopted");

    // The site goes away for a long while; the line keeps journaling.
    site.set_outage(Outage::Refuse);
    let before = up.status().retries;
    ids.extend(append(&j, &records("LOT1", "B", 400)));
    wait_for("retries during the refused outage", 30, || {
        up.status().retries >= before + 5
    });
    site.set_outage(Outage::Unavailable);
    let before = up.status().retries;
    ids.extend(append(&j, &records("LOT2", "C", 300)));
    wait_for("retries during the 503 outage", 30, || {
        up.status().retries >= before + 5
    });
    assert_eq!(site.stats().events, 300, "nothing stored during the outage");
    assert!(j.cursor("uplink").expect("cursor").0 <= 300);
    assert!(j.end_seq().0 == 1000, "the journal grew during the outage");

    site.set_outage(Outage::None);
    wait_for("all 1000 events", 120, || site.stats().events == 1000);
    wait_for("the cursor confirmed to the end", 30, || {
        j.cursor("uplink").expect("cursor") == j.end_seq()
    });
    let status = up.stop();
    assert_eq!(status.state, UplinkState::Stopped);

    let stats = site.stats();
    eprintln!("site: {stats:?}\nuplink: {status:?}");
    assert!(stats.errors_injected > 0, "faults were injected: {stats:?}");
    assert!(
        stats.duplicates_refused > 0,
        "errors after acceptance caused resends: {stats:?}"
    );
    assert_eq!(stats.events, 1000);
    assert_eq!(site.event_ids(), ids, "held exactly once, in journal order");
    assert_eq!(
        status.delivered, 1000,
        "every event counted once as delivered: {status:?}"
    );
    // Errors injected after the server accepted a capture lead to resends it refuses.
    assert_eq!(status.duplicates, stats.duplicates_refused);
    assert_eq!(stats.commissioned, 1000);
    let serials: Vec<String> = (0..300)
        .map(|i| format!("A{i}"))
        .chain((0..400).map(|i| format!("B{i}")))
        .chain((0..300).map(|i| format!("C{i}")))
        .collect();
    assert_eq!(site.missing(&serials), 0);
    assert_eq!(site.missing(&["never-made".to_string()]), 1);
}

#[test]
fn restarted_mid_batch_no_event_missing_duplicates_count_as_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(dir.path());
    let site = SiteServer::start(SiteConfig {
        capture_limit: 50,
        job_delay: Duration::from_millis(150),
        ..SiteConfig::default()
    })
    .expect("site");
    let ids = append(&j, &records("LOT7", "R", 600));
    let mut total_dups = 0;
    for round in 1..=3u64 {
        let up = Uplink::start(config(&site), j.clone(), clock()).expect("uplink");
        // Drop it while a capture job is running (accepted, not yet confirmed).
        wait_for("a capture job in flight", 30, || {
            site.stats().captures_accepted >= round * 2
        });
        let status = up.stop();
        total_dups += status.duplicates;
        assert_eq!(status.state, UplinkState::Stopped);
    }
    let up = Uplink::start(config(&site), j.clone(), clock()).expect("uplink");
    wait_for("all 600 events", 120, || {
        j.cursor("uplink").expect("cursor") == j.end_seq()
    });
    let status = up.stop();
    total_dups += status.duplicates;
    let stats = site.stats();
    assert_eq!(stats.events, 600);
    assert_eq!(site.event_ids(), ids, "none missing, none twice, in order");
    assert!(
        stats.duplicates_refused > 0,
        "the batch in flight at each stop was resent and refused: {stats:?}"
    );
    assert_eq!(total_dups, stats.duplicates_refused);
}

#[test]
fn unnamed_duplicates_are_found_by_splitting_and_the_rest_is_stored() {
    let site = SiteServer::start(SiteConfig {
        capture_limit: 64,
        name_duplicates: false,
        ..SiteConfig::default()
    })
    .expect("site");
    let all = records("LOT5", "D", 200);
    // A first line journal delivers events 40..90 (as if another path had sent them).
    let d1 = tempfile::tempdir().expect("tempdir");
    let j1 = journal(d1.path());
    append(&j1, &all[40..90]);
    let up = Uplink::start(config(&site), j1.clone(), clock()).expect("uplink");
    wait_for("the first 50", 30, || site.stats().events == 50);
    up.stop();
    // The line's journal holds all 200; 50 of them are refused with a bare 409.
    let d2 = tempfile::tempdir().expect("tempdir");
    let j2 = journal(d2.path());
    let ids = append(&j2, &all);
    let up = Uplink::start(config(&site), j2.clone(), clock()).expect("uplink");
    wait_for("all 200", 60, || {
        j2.cursor("uplink").expect("cursor") == j2.end_seq()
    });
    let status = up.stop();
    assert_eq!(status.delivered, 200);
    assert_eq!(status.duplicates, 50, "{status:?}");
    let held: std::collections::HashSet<String> = site.event_ids().into_iter().collect();
    assert_eq!(held.len(), 200);
    assert!(ids.iter().all(|id| held.contains(id)), "none missing");
    assert_eq!(site.stats().events, 200, "none twice");
}

#[test]
fn outage_until_the_disk_budget_is_full_then_drain_and_run_again() {
    use linectl::journal::{ConsumerConfig, Journal, JournalConfig, JournalErrorKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Arc::new(
        Journal::open(JournalConfig {
            segment_bytes: 64 * 1024,
            max_record_bytes: 16 * 1024,
            disk_budget_bytes: 256 * 1024,
            consumers: vec![ConsumerConfig::holding("uplink")],
            ..JournalConfig::in_dir(dir.path())
        })
        .expect("journal"),
    );
    let site = SiteServer::start(SiteConfig::default()).expect("site");
    site.set_outage(Outage::Refuse);
    let up = Uplink::start(config(&site), j.clone(), clock()).expect("uplink");
    // The line runs until the journal's disk budget holds only unconfirmed events.
    let recs = records("LOT9", "F", 2_000);
    let mut ids = Vec::new();
    let mut full_at = None;
    for (n, r) in recs.iter().enumerate() {
        match j.append_batch(vec![r.to_journal()]) {
            Ok(_) => ids.push(r.event_id().expect("id").to_string()),
            Err(e) => {
                assert_eq!(e.kind(), JournalErrorKind::Full, "{e}");
                full_at = Some(n);
                break;
            }
        }
    }
    let full_at = full_at.expect("the budget filled up");
    assert!(full_at > 100, "a useful number of events fit: {full_at}");
    assert_eq!(site.stats().events, 0);
    // The site comes back: everything drains in order, retention frees the disk and
    // the line can journal again.
    site.set_outage(Outage::None);
    wait_for("the drain", 60, || {
        j.cursor("uplink").expect("cursor") == j.end_seq()
    });
    ids.extend(append(&j, &recs[full_at..full_at + 50]));
    wait_for("the new events", 60, || site.stats().events == ids.len());
    up.stop();
    assert_eq!(site.event_ids(), ids);
}

#[test]
fn a_single_uplink_stops_promptly_while_the_site_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(dir.path());
    let site = SiteServer::start(SiteConfig::default()).expect("site");
    site.set_outage(Outage::Refuse);
    append(&j, &records("LOT1", "S", 10));
    let cfg = UplinkConfig {
        backoff_max_ms: 60_000,
        ..config(&site)
    };
    let up = Uplink::start(cfg, j.clone(), clock()).expect("uplink");
    wait_for("a few retries", 30, || up.status().retries >= 3);
    let t = std::time::Instant::now();
    let status = up.stop();
    assert_eq!(status.state, UplinkState::Stopped);
    assert!(
        status.last_error.is_some_and(|e| e.contains("capture")),
        "the failure is reported"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop does not wait out the backoff"
    );
    assert_eq!(
        j.cursor("uplink").expect("cursor").0,
        0,
        "nothing confirmed"
    );
}

#[test]
fn bad_configuration_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(dir.path());
    let e = Uplink::start(UplinkConfig::new("ftp://x/capture"), j.clone(), clock())
        .expect_err("bad url");
    assert!(e.to_string().contains("capture_url"), "{e}");
    let e = Uplink::start(
        UplinkConfig {
            consumer: "nobody".into(),
            ..UplinkConfig::new("http://127.0.0.1:9/capture")
        },
        j.clone(),
        clock(),
    )
    .expect_err("unknown consumer");
    assert!(e.to_string().contains("nobody"), "{e}");
    let e = Uplink::start(
        UplinkConfig {
            ca_file: Some(dir.path().join("missing.pem")),
            ..UplinkConfig::new("https://127.0.0.1:9/capture")
        },
        j,
        clock(),
    )
    .expect_err("missing CA file");
    assert!(e.to_string().contains("missing.pem"), "{e}");
}
