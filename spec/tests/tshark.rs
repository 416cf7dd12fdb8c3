//! An independent decoder: packets our encoder writes are read back by tshark's Babel dissector
//! (`tshark -T json`), and every TLV's fields must match the messages we meant to send.
//! Skips with a printed reason when tshark is missing (CI installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;

use babel_wire::*;
use serde_json::Value;

const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn id(n: u8) -> RouterId {
    RouterId([2, 0, 0, 0xff, 0xfe, 0, 0, n])
}

fn update(prefix: Option<Prefix>, n: u32) -> Update {
    Update {
        prefix,
        v4_via_v6: false,
        src_prefix: None,
        interval: 400,
        seqno: (n * 7) as u16,
        metric: (n * 13 % 0xffff) as u16,
        router_id: Some(id((n % 3) as u8 + 1)),
        next_hop: None,
        price: None,
        path_rtt: None,
        diversity: None,
    }
}

/// Messages covering every TLV we send in the standard flavour, and many Updates with varied
/// prefixes, families, next hops and sub-TLVs so that compression is exercised.
fn corpus() -> Vec<Message> {
    let mut m = vec![
        Message::Hello(Hello {
            unicast: false,
            seqno: 1,
            interval: 400,
            timestamp: None,
        }),
        Message::Hello(Hello {
            unicast: true,
            seqno: 2,
            interval: 0,
            timestamp: Some(123_456),
        }),
        Message::Ihu(Ihu {
            address: Some("fe80::2".parse().unwrap()),
            rxcost: 96,
            interval: 1200,
            timestamp: None,
        }),
        Message::Ihu(Ihu {
            address: Some("fd00::2".parse().unwrap()),
            rxcost: 256,
            interval: 1200,
            timestamp: None,
        }),
        Message::Ihu(Ihu {
            address: Some("10.0.0.2".parse().unwrap()),
            rxcost: 0xffff,
            interval: 1200,
            timestamp: None,
        }),
        Message::Ihu(Ihu {
            address: None,
            rxcost: 300,
            interval: 400,
            timestamp: None,
        }),
        Message::AckReq {
            opaque: 0x1234,
            interval: 50,
        },
        Message::Ack { opaque: 0x4321 },
        Message::RouteRequest(RouteRequest {
            prefix: None,
            v4_via_v6: false,
            src_prefix: None,
        }),
        Message::RouteRequest(RouteRequest {
            prefix: Some(pfx("fd78:0:3::/48")),
            v4_via_v6: false,
            src_prefix: None,
        }),
        Message::RouteRequest(RouteRequest {
            prefix: Some(pfx("10.78.3.0/24")),
            v4_via_v6: false,
            src_prefix: None,
        }),
        Message::SeqnoRequest(SeqnoRequest {
            prefix: pfx("fd77::3/128"),
            v4_via_v6: false,
            src_prefix: None,
            seqno: 77,
            hop_count: 127,
            router_id: id(9),
        }),
        Message::SeqnoRequest(SeqnoRequest {
            prefix: pfx("10.77.0.3/32"),
            v4_via_v6: false,
            src_prefix: None,
            seqno: 78,
            hop_count: 3,
            router_id: id(8),
        }),
        Message::Pc {
            pc: 13,
            index: vec![1, 2, 3, 4, 5, 6, 7, 8],
        },
        Message::ChallengeRequest { nonce: vec![9; 8] },
        Message::ChallengeReply { nonce: vec![7; 10] },
    ];
    let mut wildcard = update(None, 0);
    wildcard.metric = INFINITY;
    wildcard.router_id = None;
    m.push(Message::Update(wildcard));
    for n in 1..200u32 {
        let prefix = match n % 5 {
            0 => pfx(&format!("fd77::{n:x}/128")),
            1 => pfx(&format!("fd78:0:{n:x}::/48")),
            2 => pfx(&format!("2001:db8:{n:x}::/{}", 32 + n % 33)),
            3 => pfx(&format!("10.{}.{}.0/24", n % 7, n)),
            _ => pfx(&format!("10.77.0.{n}/32")),
        };
        let mut u = update(Some(prefix), n);
        if prefix.is_ipv4() {
            if n % 2 == 0 {
                u.v4_via_v6 = true;
                u.next_hop = Some("fe80::9".parse().unwrap());
            } else {
                u.next_hop = Some(IpAddr::from([10, 0, 0, (n % 4) as u8]));
            }
        } else if n % 7 == 0 {
            u.next_hop = Some("fd00::99".parse().unwrap());
        }
        match n % 11 {
            0 if !prefix.is_ipv4() || !u.v4_via_v6 => {
                u.src_prefix = Some(if prefix.is_ipv4() {
                    pfx("192.168.0.0/16")
                } else {
                    pfx("2001:db8::/32")
                })
            }
            1 => u.price = Some(n * 100),
            2 => u.path_rtt = Some(n * 1000),
            3 => u.diversity = Some(vec![1, 6]),
            _ => {}
        }
        m.push(Message::Update(u));
    }
    m
}

/// A pcap (LINKTYPE_IPV6) of UDP datagrams from fe80::1 to ff02::1:6, port 6696.
fn pcap(payloads: &[bytes::Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&229u32.to_le_bytes());
    for (i, p) in payloads.iter().enumerate() {
        let udp_len = 8 + p.len();
        let mut pkt = vec![0x60, 0, 0, 0];
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&[17, 1]);
        pkt.extend_from_slice(&SRC.octets());
        pkt.extend_from_slice(&MULTICAST_V6.octets());
        let mut udp = Vec::new();
        udp.extend_from_slice(&PORT.to_be_bytes());
        udp.extend_from_slice(&PORT.to_be_bytes());
        udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(p);
        let sum = udp_checksum(&udp);
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        pkt.extend_from_slice(&udp);
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&pkt);
    }
    out
}

fn udp_checksum(udp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&SRC.octets());
    add(&MULTICAST_V6.octets());
    add(&(udp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 17]);
    add(udp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        s => s,
    }
}

fn num(v: &Value, key: &str) -> u64 {
    let s = v
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in {v}"));
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

fn bytes_field(v: &Value, key: &str) -> Vec<u8> {
    let s = v
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in {v}"));
    hex::decode(s.replace(':', "")).unwrap()
}

/// The object under a key that starts with `prefix` (tshark names some subtrees by their text).
fn subtree<'a>(v: &'a Value, prefix: &str) -> Option<(&'a str, &'a Value)> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.as_str(), v))
}

fn as_list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
        None => vec![],
    }
}

fn sub_types(t: &Value) -> Vec<u64> {
    as_list(t.get("babel.subtlv_tree"))
        .iter()
        .map(|s| num(s, "babel.subtlv.type"))
        .collect()
}

fn expected_update_subs(u: &Update) -> Vec<u64> {
    let mut s = Vec::new();
    if u.src_prefix.is_some() {
        s.push(128);
    }
    if u.price.is_some() {
        s.push(112);
    }
    if u.path_rtt.is_some() {
        s.push(113);
    }
    if u.diversity.is_some() {
        s.push(2);
    }
    s
}

fn ae_of_address(a: Option<IpAddr>) -> u64 {
    match a {
        None => 0,
        Some(IpAddr::V4(_)) => 1,
        Some(IpAddr::V6(v)) if v.segments()[..4] == [0xfe80, 0, 0, 0] => 3,
        Some(IpAddr::V6(_)) => 2,
    }
}

/// Compares one tshark message with the message we encoded; `router_id` is the Router-Id tshark
/// saw last in this packet.
fn check(t: &Value, m: &Message, router_id: &mut Option<Vec<u8>>) {
    let ty = num(t, "babel.message.type");
    match m {
        Message::Hello(h) => {
            assert_eq!(ty, 4);
            assert_eq!(num(t, "babel.message.seqno"), u64::from(h.seqno));
            assert_eq!(num(t, "babel.message.interval"), u64::from(h.interval));
            assert_eq!(
                sub_types(t),
                if h.timestamp.is_some() {
                    vec![3]
                } else {
                    vec![]
                }
            );
        }
        Message::Ihu(i) => {
            assert_eq!(ty, 5);
            assert_eq!(num(t, "babel.message.rxcost"), u64::from(i.rxcost));
            assert_eq!(num(t, "babel.message.interval"), u64::from(i.interval));
            // tshark 4.0 nests the AE under an "Address" subtree (its address bytes are off).
            let ae = subtree(t, "Address").map_or_else(
                || num(t, "babel.message.ae"),
                |(_, a)| num(a, "babel.message.ae"),
            );
            assert_eq!(ae, ae_of_address(i.address));
        }
        Message::AckReq { opaque, interval } => {
            assert_eq!(ty, 2);
            assert_eq!(num(t, "babel.message.nonce"), u64::from(*opaque));
            assert_eq!(num(t, "babel.message.interval"), u64::from(*interval));
        }
        Message::Ack { opaque } => {
            assert_eq!(ty, 3);
            assert_eq!(num(t, "babel.message.nonce"), u64::from(*opaque));
        }
        Message::Update(u) => {
            assert_eq!(ty, 8);
            let (key, p) = subtree(t, "Prefix").expect("prefix subtree");
            let ae = num(p, "babel.message.ae");
            let expected_ae = match u.prefix {
                None => 0,
                Some(x) if x.is_ipv4() && u.v4_via_v6 => 4,
                Some(x) if x.is_ipv4() => 1,
                Some(_) => 2,
            };
            assert_eq!(ae, expected_ae, "{key}");
            assert_eq!(num(t, "babel.message.interval"), u64::from(u.interval));
            assert_eq!(num(t, "babel.message.seqno"), u64::from(u.seqno));
            assert_eq!(num(t, "babel.message.metric"), u64::from(u.metric));
            let flags = num(t, "babel.message.flags");
            if let Some(prefix) = u.prefix {
                assert_eq!(num(p, "babel.message.plen"), u64::from(prefix.len()));
                if u.v4_via_v6 {
                    // tshark 4.0 cannot render AE 4 ("corrupt"), and its raw prefix field runs on
                    // into the sub-TLVs: check that it starts with the octets we sent whole.
                    assert_eq!(num(p, "babel.message.omitted"), 0);
                    let raw = if prefix.len() == 0 {
                        vec![]
                    } else {
                        bytes_field(p, "babel.message.prefix")
                    };
                    let IpAddr::V4(a) = prefix.addr() else {
                        panic!("AE 4 with IPv6")
                    };
                    let want = &a.octets()[..usize::from(prefix.len()).div_ceil(8)];
                    assert!(raw.starts_with(want), "{key}: {raw:?} vs {want:?}");
                } else {
                    // tshark expands compression itself and names the subtree with the result.
                    assert_eq!(key, format!("Prefix: {prefix}"));
                }
                if flags & 0x40 != 0 {
                    let IpAddr::V6(a) = prefix.addr() else {
                        panic!("flag 0x40 on IPv4")
                    };
                    *router_id = Some(a.octets()[8..].to_vec());
                }
            }
            if let Some(id) = u.router_id {
                assert_eq!(router_id.as_deref(), Some(&id.0[..]), "router-id of {key}");
            }
            if !u.v4_via_v6 {
                // tshark 4.0 stops dissecting an AE 4 Update after its prefix.
                assert_eq!(sub_types(t), expected_update_subs(u), "{key}");
            }
        }
        Message::RouteRequest(r) => {
            assert_eq!(ty, 9);
            let (key, p) = subtree(t, "Prefix").expect("prefix subtree");
            match r.prefix {
                None => assert_eq!(num(p, "babel.message.plen"), 0),
                Some(x) => {
                    assert_eq!(num(p, "babel.message.plen"), u64::from(x.len()));
                    assert_eq!(num(p, "babel.message.ae"), if x.is_ipv4() { 1 } else { 2 });
                    assert_eq!(key, format!("Prefix: {x}"));
                }
            }
        }
        Message::SeqnoRequest(s) => {
            assert_eq!(ty, 10);
            assert_eq!(num(t, "babel.message.seqno"), u64::from(s.seqno));
            assert_eq!(num(t, "babel.message.hopcount"), u64::from(s.hop_count));
            assert_eq!(
                bytes_field(t, "babel.message.routerid"),
                s.router_id.0.to_vec()
            );
            let (key, p) = subtree(t, "Prefix").expect("prefix subtree");
            assert_eq!(num(p, "babel.message.plen"), u64::from(s.prefix.len()));
            assert_eq!(key, format!("Prefix: {}", s.prefix));
        }
        Message::Pc { .. } => assert_eq!(ty, 17),
        Message::ChallengeRequest { nonce } => {
            assert_eq!(ty, 18);
            assert_eq!(num(t, "babel.message.length"), nonce.len() as u64);
        }
        Message::ChallengeReply { nonce } => {
            assert_eq!(ty, 19);
            assert_eq!(num(t, "babel.message.length"), nonce.len() as u64);
        }
        other => panic!("corpus has an unexpected message {other:?}"),
    }
}

#[test]
fn tshark_reads_our_packets_as_we_meant_them() {
    if Command::new("tshark").arg("--version").output().is_err() {
        println!(
            "SKIP tshark_reads_our_packets_as_we_meant_them: tshark is not installed (apt-get install tshark)"
        );
        return;
    }
    let msgs = corpus();
    let opts = EncodeOptions {
        max_packet_len: 512,
        ..EncodeOptions::default()
    };
    let packets = encode(&msgs, &opts).unwrap();
    assert!(packets.len() > 5);
    let dir = std::env::temp_dir().join(format!("babel-wire-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ours.pcap");
    std::fs::write(&file, pcap(&packets)).unwrap();
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&file)
        .args(["-T", "json", "--no-duplicate-keys", "-J", "babel"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(frames.len(), packets.len());
    let mut ours = msgs.iter();
    let mut checked = 0;
    for (frame, bytes) in frames.iter().zip(&packets) {
        let babel = &frame["_source"]["layers"]["babel"];
        assert_eq!(num(babel, "babel.bodylen") as usize, bytes.len() - 4);
        let mut router_id = None;
        for t in as_list(babel.get("babel.message_tree")) {
            match num(&t, "babel.message.type") {
                6 => router_id = Some(bytes_field(&t, "babel.message.routerid")),
                7 => {}
                _ => {
                    let m = ours.next().expect("tshark saw more messages than we sent");
                    check(&t, m, &mut router_id);
                    checked += 1;
                }
            }
        }
    }
    assert!(
        ours.next().is_none(),
        "tshark saw fewer messages than we sent"
    );
    assert_eq!(checked, msgs.len());
    println!(
        "tshark agreed on {checked} messages in {} packets",
        packets.len()
    );
}
