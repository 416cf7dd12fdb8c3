//! `spec/rtt.md` and the code must agree: the defaults per interface kind are those of
//! `InterfaceConfig::new`, and every constant the document names has the value it states.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use babel_core::{InterfaceConfig, InterfaceKind, rtt};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rtt.md")).unwrap()
}

/// The cells of the table rows under `heading` (header and separator skipped).
fn rows(heading: &str) -> Vec<Vec<String>> {
    spec::table_rows(&doc(), heading)
}

fn ms(cell: &str) -> Duration {
    Duration::from_millis(cell.trim_end_matches(" ms").parse().unwrap())
}

#[test]
fn defaults_per_kind_match_interface_config() {
    let table = rows("## 5. Options and defaults");
    assert_eq!(table.len(), 3, "{table:?}");
    for r in &table {
        let kind = match r[0].as_str() {
            "wired" => InterfaceKind::Wired,
            "wireless" => InterfaceKind::Wireless,
            "tunnel" => InterfaceKind::Tunnel,
            k => panic!("unknown kind {k}"),
        };
        let c = InterfaceConfig::new("x", kind, "fe80::1".parse().unwrap());
        assert_eq!(c.timestamps.to_string(), r[1], "{r:?}");
        assert_eq!(c.max_rtt_penalty.to_string(), r[2], "{r:?}");
        assert_eq!(c.rtt_min, ms(&r[3]), "{r:?}");
        assert_eq!(c.rtt_max, ms(&r[4]), "{r:?}");
        assert_eq!(c.rtt_decay.to_string(), r[5], "{r:?}");
    }
}

#[test]
fn constants_match_the_code() {
    let secs = |rows: &[Vec<String>], code: &str| -> u64 {
        let r = rows
            .iter()
            .find(|r| r[2] == format!("`{code}`"))
            .unwrap_or_else(|| panic!("{code} is not documented"));
        r[1].trim_end_matches(" s").parse().unwrap()
    };
    let sample = rows("## 2. One sample");
    assert_eq!(
        secs(&sample, "rtt::MAX_WAITING_US") * 1_000_000,
        u64::from(rtt::MAX_WAITING_US)
    );
    let smoothing = rows("## 3. Smoothing and expiry");
    assert_eq!(
        Duration::from_secs(secs(&smoothing, "rtt::RTT_VALIDITY")),
        rtt::RTT_VALIDITY
    );
    assert_eq!(
        Duration::from_secs(secs(&smoothing, "rtt::ECHO_VALIDITY")),
        rtt::ECHO_VALIDITY
    );
}

#[test]
fn the_worked_examples_hold() {
    // §3: the default decay is the RFC's 0.836 weight of the old value, and the first sample
    // counts twice.
    assert_eq!(rtt::smooth(None, 25_000, 42), 50_000);
    assert!((f64::from(256 - 42) / 256.0 - 0.836).abs() < 0.001);
    // §4 with the tunnel defaults: 65 ms is halfway from 10 to 120 ms.
    let t = InterfaceConfig::new("t", InterfaceKind::Tunnel, "fe80::1".parse().unwrap());
    assert_eq!(rtt::cost(65_000, &t), 48);
}
