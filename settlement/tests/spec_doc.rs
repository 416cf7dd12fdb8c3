//! `spec/settlement.md`, the contract source and the Rust code must agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use settlement::SettlementConfig;
use settlement::escrow::{CHANNEL_TAG, CLOSE_TAG};

fn read(rel: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + rel).unwrap()
}

fn tag(bytes: &[u8; 32]) -> &str {
    std::str::from_utf8(bytes).unwrap().trim_end_matches('\0')
}

#[test]
fn tags_are_the_same_in_spec_contract_and_code() {
    let spec = read("../spec/settlement.md");
    let sol = read("contracts/Escrow.sol");
    for t in [
        tag(&CLOSE_TAG),
        tag(&CHANNEL_TAG),
        tag(&payments::DOMAIN_TAG),
    ] {
        assert!(sol.contains(&format!("\"{t}\"")), "Escrow.sol lacks {t}");
        assert!(spec.contains(t), "spec lacks {t}");
    }
    assert!(sol.contains("MIN_CHALLENGE = 60;") && sol.contains("MAX_CHALLENGE = 30 days;"));
    assert!(spec.contains("60 s ≤ challenge period ≤ 30 days"));
}

#[test]
fn every_documented_option_is_parsed() {
    let spec = read("../spec/settlement.md");
    let base = "settlement rpc-url http://x chain-id 1 contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 key-file k\n";
    let section = spec
        .split("## 7. Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("section 7");
    let mut rows = 0;
    for line in section.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((option, _)) = rest.split_once('`') else {
            continue;
        };
        if option.contains(' ') || option.contains('(') {
            continue;
        }
        let value = match option {
            "rpc-url" => "http://127.0.0.1:8545",
            "contract" => "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "key-file" => "/k",
            "max-staleness" => "60",
            "min-challenge-period" => "7200",
            _ => "100",
        };
        let text = format!("{base}settlement {option} {value}\n");
        assert!(
            SettlementConfig::parse(&text).is_ok(),
            "{option}: {:?}",
            SettlementConfig::parse(&text)
        );
        rows += 1;
    }
    assert_eq!(rows, 12, "the option table of section 7");
}
