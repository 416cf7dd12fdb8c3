//! RFC 8967 MAC authentication between babeld-rs and Debian's babeld 1.12.1 on real links: the
//! same key (HMAC-SHA256 and BLAKE2s-128) makes them neighbours that route traffic; different
//! keys make nothing accepted; an attacker on the link replaying babeld's signed packets with
//! babeld's address is refused as a replay, an altered one as a bad MAC; `accept-bad-signatures`
//! lets an unsigned babeld through and counts it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use babel_wire::mac::{MacAlgorithm, MacCheck, MacKey, PseudoHeader, verify};
use babel_wire::{DecodeOptions, Message, decode};
use common::{
    DaemonProcess, Netns, babel_routes, can_use_netns, has_route, have, node, ping, start_router,
    try_control, veth, wait_for,
};

const HMAC_KEY: &str = "6d61632d746573742d6b65792d6f6e652d7368613235362d2d";
const BLAKE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn key_conf(kind: &str, value: &str, iface: &str, extra: &str) -> String {
    format!("key id k type {kind} value {value}\ninterface {iface} key k {extra}\n")
}

/// babeld-rs's counters (`dump counters` on the control port), read at one instant.
fn counters(ns: &Netns) -> std::collections::HashMap<String, u64> {
    // The control socket opens a moment after the daemon starts.
    let mut out = String::new();
    wait_for(10, || {
        out = try_control(ns, "dump counters\nquit\n");
        out.contains("counter ")
    });
    let c: std::collections::HashMap<String, u64> = out
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            ["counter", name, v] => Some((name.to_owned(), v.parse().ok()?)),
            _ => None,
        })
        .collect();
    assert!(c.contains_key("auth_replayed"), "{out:?}");
    c
}

/// babeld-rs's counter `name`.
fn counter(ns: &Netns, name: &str) -> u64 {
    counters(ns)[name]
}

fn logs(ours: &DaemonProcess, theirs: &DaemonProcess) -> String {
    let tail = |d: &DaemonProcess| {
        let t = d.log_text();
        t.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "--- babeld-rs\n{}\n--- babeld\n{}",
        tail(ours),
        tail(theirs)
    )
}

/// babeld-rs in `a`, babeld in `b`, one veth link, both with `key` of `kind`: challenges in both
/// directions, routes both ways, ping through.
/// With `second_ll`, babeld-rs's interface has two link-local addresses: packets must leave from
/// the one they were signed for.
fn same_key(tag: &str, kind: &str, value: &str, second_ll: bool) {
    let a = node(&format!("{tag}a"), 1);
    let b = node(&format!("{tag}b"), 2);
    let (da, db) = (format!("{tag}ab"), format!("{tag}ba"));
    veth(&a, &da, &b, &db);
    if second_ll {
        a.link_local(&da);
        a.ip(&["-6", "addr", "add", "fe80::1:2:3:4/64", "dev", &da, "nodad"]);
    }
    let ours = start_router(
        &a,
        &format!("{tag}-rs"),
        common::daemon_bin(),
        &key_conf(kind, value, &da, ""),
        &[&da],
    );
    let theirs = start_router(
        &b,
        &format!("{tag}-babeld"),
        "babeld",
        &key_conf(kind, value, &db, ""),
        &[&db],
    );
    assert!(
        wait_for(30, || has_route(&a, "fd77::2") && has_route(&b, "fd77::1")),
        "no routes: a {:?} b {:?}\n{}",
        babel_routes(&a),
        babel_routes(&b),
        logs(&ours, &theirs)
    );
    assert!(wait_for(10, || ping(&a, "fd77::2")), "no ping through");
    assert!(counter(&a, "auth_challenges_accepted") >= 1);
    assert!(counter(&a, "auth_challenges_answered") >= 1);
    assert_eq!(counter(&a, "auth_bad_mac"), 0);
    assert_eq!(counter(&a, "auth_no_mac"), 0);
}

#[test]
fn same_hmac_sha256_key_as_babeld_routes_and_pings() {
    let t = "same_hmac_sha256_key_as_babeld_routes_and_pings";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    same_key("macsh", "hmac-sha256", HMAC_KEY, false);
}

#[test]
fn same_blake2s128_key_as_babeld_routes_and_pings() {
    let t = "same_blake2s128_key_as_babeld_routes_and_pings";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    same_key("macbl", "blake2s128", BLAKE_KEY, true);
}

#[test]
fn different_keys_accept_nothing_on_either_side() {
    let t = "different_keys_accept_nothing_on_either_side";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let a = node("macdka", 1);
    let b = node("macdkb", 2);
    veth(&a, "macdkab", &b, "macdkba");
    let ours = start_router(
        &a,
        "macdk-rs",
        common::daemon_bin(),
        &key_conf("hmac-sha256", HMAC_KEY, "macdkab", ""),
        &["macdkab"],
    );
    let other = HMAC_KEY.replace('6', "7");
    let theirs = start_router(
        &b,
        "macdk-babeld",
        "babeld",
        &key_conf("hmac-sha256", &other, "macdkba", ""),
        &["macdkba"],
    );
    // babeld Hellos every second: after several refused packets, nothing has been accepted.
    assert!(
        wait_for(20, || counter(&a, "auth_bad_mac") >= 6),
        "{}",
        logs(&ours, &theirs)
    );
    assert!(babel_routes(&a).is_empty(), "{:?}", babel_routes(&a));
    assert!(babel_routes(&b).is_empty(), "{:?}", babel_routes(&b));
    let ours_dump = try_control(&a, "dump\nquit\n");
    assert!(!ours_dump.contains("neighbour"), "{ours_dump}");
    let theirs_dump = try_control(&b, "dump\nquit\n");
    assert!(theirs_dump.contains("BABEL"), "{theirs_dump}");
    assert!(
        !theirs_dump.contains("neighbour"),
        "babeld accepted us: {theirs_dump}"
    );
    assert_eq!(counter(&a, "auth_challenges_sent"), 0);
}

/// A switch: a bridge in its own namespace, one port per router. The attacker listens on the
/// bridge itself and sends from its own port; its port and babeld's are isolated from each other
/// so that babeld never sees its own address replayed.
fn port(sw: &Netns, br: &str, ns: &Netns, dev: &str, isolated: bool) {
    let peer = format!("{dev}p");
    veth(ns, dev, sw, &peer);
    sw.ip(&["link", "set", &peer, "master", br]);
    if isolated {
        sw.exec(&["bridge", "link", "set", "dev", &peer, "isolated", "on"]);
    }
}

/// Receives Babel multicast in `x` on `dev` until a packet from `from` with a Hello arrives.
fn capture_from(x: &Netns, dev: &str, from: Ipv6Addr) -> Vec<u8> {
    let ifindex = x.ifindex(dev);
    x.spawn(move || {
        let s = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 6696, 0, 0)).unwrap();
        s.join_multicast_v6(&babel_wire::MULTICAST_V6, ifindex)
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut buf = vec![0u8; 2048];
        while std::time::Instant::now() < deadline {
            if let Ok((n, std::net::SocketAddr::V6(src))) = s.recv_from(&mut buf)
                && *src.ip() == from
                && decode(&buf[..n], &DecodeOptions::default()).is_ok_and(|d| {
                    d.packet
                        .messages
                        .iter()
                        .any(|m| matches!(m, Message::Hello(_)))
                })
            {
                return buf[..n].to_vec();
            }
        }
        panic!("nothing captured from {from}");
    })
    .join()
    .unwrap()
}

/// Sends `bytes` from `[spoofed]:6696` on `dev` in `x` to ff02::1:6 (the address is added with
/// `nodad` for the send and removed after).
fn send_as(x: &Netns, dev: &str, spoofed: Ipv6Addr, bytes: Vec<u8>) {
    let ifindex = x.ifindex(dev);
    let addr = format!("{spoofed}/64");
    x.ip(&["-6", "addr", "add", &addr, "dev", dev, "nodad"]);
    x.spawn(move || {
        let s = UdpSocket::bind(SocketAddrV6::new(spoofed, 6696, 0, ifindex)).unwrap();
        s.send_to(
            &bytes,
            SocketAddrV6::new(babel_wire::MULTICAST_V6, 6696, 0, ifindex),
        )
        .unwrap();
    })
    .join()
    .unwrap();
    x.ip(&["-6", "addr", "del", &addr, "dev", dev]);
}

#[test]
fn replayed_babeld_packets_are_refused_and_altered_ones_are_bad_macs() {
    let t = "replayed_babeld_packets_are_refused_and_altered_ones_are_bad_macs";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let sw = Netns::new("macsw");
    sw.ip(&[
        "link",
        "add",
        "macbr",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    sw.ip(&["link", "set", "macbr", "up"]);
    let a = node("macra", 1);
    let b = node("macrb", 2);
    let x = Netns::new("macrx");
    port(&sw, "macbr", &a, "macra0", false);
    port(&sw, "macbr", &b, "macrb0", true);
    port(&sw, "macbr", &x, "macrx0", true);
    let ours = start_router(
        &a,
        "macr-rs",
        common::daemon_bin(),
        &key_conf("blake2s128", BLAKE_KEY, "macra0", ""),
        &["macra0"],
    );
    let theirs = start_router(
        &b,
        "macr-babeld",
        "babeld",
        &key_conf("blake2s128", BLAKE_KEY, "macrb0", ""),
        &["macrb0"],
    );
    assert!(
        wait_for(30, || has_route(&a, "fd77::2") && has_route(&b, "fd77::1")),
        "{}",
        logs(&ours, &theirs)
    );
    let babeld_ll = b.link_local("macrb0");
    let captured = capture_from(&sw, "macbr", babeld_ll);
    // The captured babeld packet's MAC is the one we compute (to ff02::1:6, port 6696).
    let key = MacKey::new(MacAlgorithm::Blake2s128, &hex::decode(BLAKE_KEY).unwrap()).unwrap();
    let d = decode(&captured, &DecodeOptions::default()).unwrap();
    let ph = PseudoHeader::babeld(babeld_ll.into(), babel_wire::MULTICAST_V6.into(), 6696);
    assert_eq!(
        verify(&captured[..d.body_end], &d.packet.macs, &[key], &ph),
        MacCheck::Valid
    );
    // Wait until babeld-rs has accepted a later packet from babeld: the capture is then old.
    let accepted = counter(&a, "packets_received");
    assert!(wait_for(10, || counter(&a, "packets_received") > accepted + 2));
    let (replayed, bad) = (counter(&a, "auth_replayed"), counter(&a, "auth_bad_mac"));
    send_as(&x, "macrx0", babeld_ll, captured.clone());
    assert!(
        wait_for(10, || counter(&a, "auth_replayed") > replayed),
        "replay not counted\n{}",
        logs(&ours, &theirs)
    );
    // One altered byte of the body (the Hello's seqno): a bad MAC.
    let mut altered = captured;
    altered[8] ^= 0x01;
    send_as(&x, "macrx0", babeld_ll, altered);
    assert!(wait_for(10, || counter(&a, "auth_bad_mac") > bad));
    // Neither attack cost the real link anything.
    assert!(has_route(&a, "fd77::2"));
    assert!(wait_for(10, || ping(&a, "fd77::2")));
}

#[test]
fn accept_bad_signatures_lets_unsigned_babeld_through_and_counts_it() {
    let t = "accept_bad_signatures_lets_unsigned_babeld_through_and_counts_it";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let a = node("macaba", 1);
    let b = node("macabb", 2);
    veth(&a, "macabab", &b, "macabba");
    let conf = key_conf(
        "hmac-sha256",
        HMAC_KEY,
        "macabab",
        "accept-bad-signatures true",
    );
    let ours = start_router(&a, "macab-rs", common::daemon_bin(), &conf, &["macabab"]);
    // babeld without a key: it ignores our PC and MAC TLVs and sends unsigned packets.
    let theirs = start_router(&b, "macab-babeld", "babeld", "", &["macabba"]);
    assert!(
        wait_for(30, || has_route(&a, "fd77::2") && has_route(&b, "fd77::1")),
        "{}",
        logs(&ours, &theirs)
    );
    assert!(wait_for(10, || ping(&a, "fd77::2")));
    let c = counters(&a);
    assert!(c["auth_no_mac"] > 0, "{c:?}");
    assert_eq!(
        c["auth_accepted_unsigned"],
        c["auth_no_mac"] + c["auth_bad_mac"]
    );
}
