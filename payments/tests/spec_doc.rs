//! `spec/payments.md` and the code must agree: message types and lengths, refusal names and
//! codes, default thresholds, the update layout.

use payments::wire::{kind, length_of};
use payments::{CANONICAL_LEN, Refusal, SIGNED_LEN, Thresholds};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/payments.md"))
        .unwrap_or_default()
}

#[test]
fn message_table_matches_the_codec() {
    let d = doc();
    for (code, name) in [
        (kind::UPDATE, "Update"),
        (kind::ACK, "Ack"),
        (kind::REFUSE, "Refuse"),
        (kind::REESTABLISH, "Reestablish"),
        (kind::LATEST, "Latest"),
        (kind::HELLO, "Hello"),
    ] {
        let len = length_of(code).unwrap_or(0);
        let row = d
            .lines()
            .find(|l| l.starts_with(&format!("| {code} | {name} |")))
            .unwrap_or_default();
        assert!(
            row.ends_with(&format!("| {len} |")),
            "row for {name} should end with its length {len}: {row:?}"
        );
    }
    assert!(d.contains(&format!(
        "A payment costs one Update ({} bytes)",
        2 + SIGNED_LEN
    )));
}

#[test]
fn refusal_names_and_codes_match() {
    let d = doc();
    let codes: Vec<String> = Refusal::ALL.iter().map(|r| r.name().to_string()).collect();
    let listed = format!("reason (1: {} = 1..8)", codes.join(", "));
    assert!(
        d.contains(&listed),
        "spec should list the codes in order: {listed}"
    );
    for r in Refusal::ALL {
        assert_eq!(Refusal::from_code(r.code()), Some(r));
        assert!(d.contains(&format!("| `{}` |", r.name())), "{}", r.name());
    }
}

#[test]
fn defaults_and_layout_match() {
    let d = doc();
    let t = Thresholds::default();
    assert_eq!(t.pay.0, 3 * 10u128.pow(17));
    assert_eq!(t.close.0, 10 * t.pay.0);
    assert!(d.contains("| `pay-threshold` | 3 * 10^17 (0.30 USD) |"));
    assert!(d.contains("| `close-threshold` | 3 * 10^18 (10 * pay) |"));
    assert!(d.contains(&format!(
        "| `drift-tolerance` | {} ppm |",
        fmt_thousands(t.drift_ppm)
    )));
    assert!(d.contains(&format!("fixed {CANONICAL_LEN}-byte layout")));
    assert!(d.contains(&format!("signature ({SIGNED_LEN} bytes)")));
}

fn fmt_thousands(n: u32) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
