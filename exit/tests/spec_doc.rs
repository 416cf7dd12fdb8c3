//! `spec/exits.md` and the code must agree: message kinds and lengths, every layout table's
//! offsets, refusal codes and names, stored record lengths, and the defaults.

use std::net::Ipv4Addr;
use std::time::Duration;

use exit::store::{LEASE_LEN, TOTALS_LEN};
use exit::wire::{kind, length_of};
use exit::{ExitConfig, ExitRefusal, Ipv4Pool, SelectionPolicy, ServiceThresholds, Tolerance};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/exits.md"))
        .unwrap_or_default()
}

const KINDS: [(u8, &str); 4] = [
    (kind::REGISTER, "Register"),
    (kind::REGISTERED, "Registered"),
    (kind::REFUSED, "Refused"),
    (kind::BILL, "Bill"),
];

#[test]
fn message_table_matches_the_codec() {
    let d = doc();
    for (code, name) in KINDS {
        let len = length_of(code).unwrap_or(0);
        let row = d
            .lines()
            .find(|l| l.starts_with(&format!("| {code} | {name} |")))
            .unwrap_or_default();
        assert!(row.ends_with(&format!("| {len} |")), "{name}: {row:?}");
        assert!(
            d.contains(&format!("### {name} ({len} bytes)")),
            "{name} heading"
        );
    }
}

/// The rows `| offset | size | field |` of the table under a heading, as (offset, size).
fn layout(d: &str, heading: &str) -> Vec<(usize, usize)> {
    d.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).filter(|c| !c.is_empty());
            Some((cells.next()?.parse().ok()?, cells.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn every_layout_is_contiguous_and_as_long_as_the_codec_says() {
    let d = doc();
    for (code, name) in KINDS {
        let len = length_of(code).unwrap_or(0);
        let rows = layout(&d, &format!("### {name} ({len} bytes)"));
        assert!(rows.len() > 4, "{name}: table not found");
        let mut at = 0;
        for (offset, size) in &rows {
            assert_eq!(*offset, at, "{name}: row at {offset}");
            at += size;
        }
        assert_eq!(at, len, "{name}: rows add up to {at}");
        assert_eq!(
            rows.last().map(|r| r.1),
            Some(64),
            "{name} ends with the signature"
        );
    }
    let lease = layout(
        &d,
        "Stored records (table `exit_leases`, key = user key, 32 bytes):",
    );
    assert_eq!(lease.iter().map(|r| r.1).sum::<usize>(), LEASE_LEN);
    assert!(d.contains(&format!("({LEASE_LEN} bytes.)")));
    assert!(d.contains(&format!("(16 bytes each): {TOTALS_LEN} bytes")));
}

#[test]
fn refusal_codes_and_names_match() {
    let d = doc();
    for r in ExitRefusal::ALL {
        assert_eq!(ExitRefusal::from_code(r.code()), Some(r));
        let row = format!("| {} | `{}` |", r.code(), r.name());
        assert!(d.contains(&row), "{row}");
    }
    assert_eq!(ExitRefusal::from_code(0), None);
    assert_eq!(ExitRefusal::from_code(4), None);
}

#[test]
fn defaults_match() {
    let d = doc();
    let c = ExitConfig::new(
        Ipv4Pool {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
        },
        [0; 32],
        1,
        1,
    );
    let row = |k: &str, v: String| {
        let r = format!("| `{k}` | {v} |");
        assert!(d.contains(&r), "missing {r}");
    };
    assert_eq!(c.replay_window, Duration::from_secs(300));
    row("replay-window", "300 s".into());
    assert_eq!(c.replay_capacity, 65_536);
    row("replay-capacity", "65 536 keys".into());
    assert_eq!(c.lease, Duration::from_secs(30 * 24 * 3600));
    row("lease", "30 days".into());
    row("mtu", format!("{} (1500 - 2 * 80)", c.tunnel.mtu));
    assert_eq!(c.tunnel.mtu, 1500 - 2 * 80);
    assert_eq!(c.free_tier_bps, 1_000_000);
    row("free-tier", "1 000 000 bit/s".into());
    let s = ServiceThresholds::default();
    assert_eq!(c.thresholds, s);
    assert_eq!(s.close.0, 3 * 10u128.pow(18));
    assert_eq!(s.cut.0, 3 * 10u128.pow(19));
    row("close", "3 * 10^18 wei".into());
    row("cut", "3 * 10^19 wei".into());
    let t = Tolerance::default();
    assert_eq!((t.ppm, t.slack_bytes), (20_000, 262_144));
    row("tolerance", "20 000 ppm + 262 144 bytes".into());
    let p = SelectionPolicy::default();
    row("margin", format!("{} %", p.margin_percent));
    row("hold", format!("{} s", p.hold.as_secs()));
}

#[test]
fn every_test_the_spec_names_exists() {
    let d = doc();
    let section = d
        .split("## What went wrong for rita's users")
        .nth(1)
        .unwrap_or_default();
    let mut sources = String::new();
    for dir in ["src", "tests"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            sources.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    let names: Vec<&str> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_') && n.contains('_'))
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    for n in names {
        assert!(
            sources.contains(&format!("fn {n}()")),
            "spec names missing test {n}"
        );
    }
}
