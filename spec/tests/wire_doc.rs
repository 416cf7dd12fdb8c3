//! `spec/wire.md` and the codec must agree: every type number in its tables is the constant
//! `babel-wire` uses, and every constant is documented.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use babel_wire::{subtlv, tlv};

/// The `| number | name |` rows of the table under `heading`.
fn table(heading: &str) -> Vec<(u8, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wire.md")).unwrap();
    // Header and separator rows do not parse as numbers, so skipping them is harmless.
    spec::table_rows(&doc, heading)
        .into_iter()
        .filter_map(|c| Some((c.first()?.parse().ok()?, c.get(1)?.clone())))
        .collect()
}

fn check(heading: &str, code: &[(u8, &str)]) {
    let doc = table(heading);
    for (n, name) in code {
        assert!(
            doc.iter().any(|(d, dn)| d == n && dn.starts_with(name)),
            "{heading}: constant {name} = {n} is not documented as such; table: {doc:?}"
        );
    }
    for (d, dn) in &doc {
        assert!(
            code.iter().any(|(n, _)| n == d),
            "{heading}: documented type {d} ({dn}) has no constant"
        );
    }
}

#[test]
fn tlv_types_match_the_codec() {
    check(
        "### 2.1 TLV types",
        &[
            (tlv::PAD1, "Pad1"),
            (tlv::PADN, "PadN"),
            (tlv::ACK_REQ, "Acknowledgment Request"),
            (tlv::ACK, "Acknowledgment"),
            (tlv::HELLO, "Hello"),
            (tlv::IHU, "IHU"),
            (tlv::ROUTER_ID, "Router-Id"),
            (tlv::NEXT_HOP, "Next Hop"),
            (tlv::UPDATE, "Update"),
            (tlv::ROUTE_REQUEST, "Route Request"),
            (tlv::SEQNO_REQUEST, "Seqno Request"),
            (tlv::MAC, "MAC"),
            (tlv::PC, "PC"),
            (tlv::CHALLENGE_REQUEST, "Challenge Request"),
            (tlv::CHALLENGE_REPLY, "Challenge Reply"),
            (tlv::REMOTE_HELLO, "Remote Hello"),
            (tlv::REMOTE_IHU, "Remote IHU"),
            (tlv::CHECK_FAILED, "Check Failed"),
            (tlv::JUSTIFY_REQUEST, "Justify Request"),
            (tlv::CLAIM_REQUEST, "Claim Request"),
            (tlv::SIGNED_CLAIM, "Signed Claim"),
        ],
    );
}

#[test]
fn sub_tlv_types_match_the_codec() {
    check(
        "### 2.2 Sub-TLV types",
        &[
            (subtlv::PAD1, "Pad1"),
            (subtlv::PADN, "PadN"),
            (subtlv::DIVERSITY, "Diversity"),
            (subtlv::TIMESTAMP, "Timestamp"),
            (subtlv::ALTHEA_PATH_RTT, "Full-path RTT (Althea"),
            (subtlv::PRICE, "Price"),
            (subtlv::PATH_RTT, "Full-path RTT (standard"),
            (subtlv::SOURCE_PREFIX, "Source Prefix"),
        ],
    );
}

#[test]
fn experimental_numbers_are_in_the_experimental_ranges() {
    // IANA Babel registries: TLV 224-254 and sub-TLV 112-126 are for experimental use.
    for t in [
        tlv::REMOTE_HELLO,
        tlv::REMOTE_IHU,
        tlv::CHECK_FAILED,
        tlv::JUSTIFY_REQUEST,
        tlv::CLAIM_REQUEST,
        tlv::SIGNED_CLAIM,
    ] {
        assert!((224..=254).contains(&t));
    }
    for t in [subtlv::PRICE, subtlv::PATH_RTT] {
        assert!((112..=126).contains(&t) && t & subtlv::MANDATORY_BIT == 0);
    }
}
