//! `spec/discovery.md` and the code must agree: the byte layout is what `Announcement::encode`
//! writes, and the constants, timers and counters are the code's.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use daemon::discovery::{
    ANNOUNCEMENT_LEN, Announcement, DiscoveryCounters, GROUP, INNER_TUNNEL_MTU, MAGIC,
    MAX_NEIGHBOURS, PORT, TUNNEL_OVERHEAD, Timers, VERSION, tunnel_mtu,
};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/discovery.md")).unwrap()
}

/// The rows of the table under `heading`, cells trimmed of backquotes.
fn rows(heading: &str) -> Vec<Vec<String>> {
    spec::table_rows(&doc(), heading)
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn byte_layout_is_what_the_code_writes() {
    let a = Announcement {
        public_key: tunnel::PublicKey([0x77; 32]),
        port: 0xabcd,
        seqno: 0x0102_0304_0506,
    };
    let b = a.encode();
    let layout = rows("### Byte layout");
    let mut end = 0;
    for r in &layout {
        let (off, len): (usize, usize) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        assert_eq!(off, end, "fields are contiguous: {r:?}");
        end = off + len;
        let field = &b[off..end];
        match r[2].as_str() {
            "magic" => assert_eq!(field, MAGIC),
            "version" => assert_eq!(field, [VERSION]),
            "flags" => assert_eq!(field, [0]),
            "reserved" => assert_eq!(field, [0, 0]),
            "port" => assert_eq!(field, 0xabcdu16.to_be_bytes()),
            "seqno" => assert_eq!(field, [1, 2, 3, 4, 5, 6]),
            "public key" => assert_eq!(field, [0x77; 32]),
            other => panic!("undocumented field {other}"),
        }
    }
    assert_eq!(end, ANNOUNCEMENT_LEN);
    assert!(doc().contains(&format!("Exactly {ANNOUNCEMENT_LEN} bytes")));
    assert_eq!(Announcement::decode(&b), Ok(a));
}

#[test]
fn group_port_and_limits_are_the_code_constants() {
    let d = doc();
    assert!(d.contains(&format!("`{GROUP}`")));
    assert!(d.contains(&format!("port {PORT}")));
    assert!(d.contains(&format!("bounded by {MAX_NEIGHBOURS} neighbours")));
    assert!(d.contains(&format!("{MAX_NEIGHBOURS} neighbours already known")));
    assert!(d.contains(&format!("costs {TUNNEL_OVERHEAD} bytes")));
}

#[test]
fn timers_are_the_defaults() {
    let t = Timers::default();
    let secs = |c: &str| Duration::from_secs(c.trim_end_matches(" s").parse().unwrap());
    for r in rows("| Timer | Default |") {
        let v = secs(&r[1]);
        match r[0].split_whitespace().next().unwrap() {
            "announce" => assert_eq!(v, t.announce),
            "dead" => assert_eq!(v, t.dead),
            "retry" => assert_eq!(v, t.retry),
            "stale" => assert_eq!(v, t.stale),
            other => panic!("undocumented timer {other}"),
        }
    }
}

#[test]
fn mtus_are_the_code_mtus() {
    let r = rows("| Interface | MTU |");
    assert!(r[0][1].contains(&format!("({} on a 1500-byte link)", tunnel_mtu(1500))));
    assert!(r[1][1].starts_with(&INNER_TUNNEL_MTU.to_string()));
    assert_eq!(tunnel_mtu(tunnel_mtu(1500)), INNER_TUNNEL_MTU);
}

#[test]
fn documented_counters_are_the_discovery_counters() {
    let mut documented: Vec<String> = rows("## 9. Counters")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let v = serde_json::to_value(DiscoveryCounters::default()).unwrap();
    let mut code: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    documented.sort();
    code.sort();
    assert_eq!(documented, code);
}
