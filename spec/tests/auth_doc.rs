//! `spec/auth.md` and the code must agree: the counters it lists are the engine's
//! authentication counters, and its constants and sizes are the ones the code uses.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use babel_core::{CHALLENGE_RATE_LIMIT, CHALLENGE_TIMEOUT, Counters, NONCE_LEN};
use babel_wire::mac::{INDEX_LEN, MacAlgorithm, MacKey, PC_TLV_LEN, overhead};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/auth.md")).unwrap()
}

/// The first-column cells of the table under `heading`, with their second column.
fn table(heading: &str) -> Vec<(String, String)> {
    spec::table_rows(&doc(), heading)
        .into_iter()
        .map(|c| (c[0].trim_matches('`').to_owned(), c[1].clone()))
        .collect()
}

#[test]
fn documented_counters_are_the_engine_auth_counters() {
    let mut documented: Vec<String> = table("## 6. Counters").into_iter().map(|r| r.0).collect();
    let mut code: Vec<String> = Counters::default()
        .named()
        .into_iter()
        .map(|(n, _)| n.to_owned())
        .filter(|n| n.starts_with("auth_"))
        .collect();
    documented.sort();
    code.sort();
    assert_eq!(documented, code);
}

#[test]
fn documented_constants_are_the_code_constants() {
    let rows = table("## 7. Constants");
    let value = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("no row {name}"))
            .1
            .clone()
    };
    assert_eq!(value("Index length"), format!("{INDEX_LEN} octets"));
    assert_eq!(value("Nonce length"), format!("{NONCE_LEN} octets"));
    assert_eq!(
        value("Challenge rate limit"),
        format!("{} ms", CHALLENGE_RATE_LIMIT.as_millis())
    );
    assert_eq!(
        value("Challenge timeout"),
        format!("{} s", CHALLENGE_TIMEOUT.as_secs())
    );
    assert_eq!(
        value("HMAC-SHA256 MAC length"),
        format!("{} octets", MacAlgorithm::HmacSha256.mac_len())
    );
    assert_eq!(
        value("BLAKE2s-128 MAC length"),
        format!("{} octets", MacAlgorithm::Blake2s128.mac_len())
    );
}

#[test]
fn documented_overhead_is_what_packing_reserves() {
    let hmac = MacKey::new(MacAlgorithm::HmacSha256, b"k").unwrap();
    let blake = MacKey::new(MacAlgorithm::Blake2s128, b"k").unwrap();
    let pc = PC_TLV_LEN;
    let per_hmac = overhead(std::slice::from_ref(&hmac)) - pc;
    let per_blake = overhead(std::slice::from_ref(&blake)) - pc;
    let text = format!(
        "{pc} octets for the PC TLV plus {per_hmac} per HMAC-SHA256\nkey or {per_blake} per BLAKE2s-128 key"
    );
    assert!(doc().contains(&text), "auth.md should say: {text}");
    assert_eq!(overhead(&[hmac, blake]), pc + per_hmac + per_blake);
}
