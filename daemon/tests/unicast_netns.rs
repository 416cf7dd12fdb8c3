//! Babel over links that carry no multicast (RFC 8966 §3.4.1 unicast Hellos, babeld's `unicast`,
//! our `neighbour` option): veth pairs where nftables drops every IPv6 multicast datagram but
//! neighbour discovery, and a real WireGuard link (wireguard-go) whose allowed IPs leave the
//! Babel group out. Each test first shows that multicast does not pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::{
    Daemon, Netns, can_use_netns, control, has_route, node, start_router, tmp, veth, wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_babeld-rs");

fn have(program: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!(
            "SKIP {test}: {program} is not installed (apt-get install it, or run scripts/test.sh as root)"
        );
    }
    found
}

/// Makes `ns` drop every IPv6 multicast datagram except ICMPv6 (neighbour discovery, which
/// unicast needs), in and out, counting what it drops.
fn drop_multicast(ns: &Netns) {
    let rules = "table inet uninomcast {\n\
        chain in { type filter hook input priority 0; ip6 daddr ff00::/8 meta l4proto != ipv6-icmp counter drop; }\n\
        chain out { type filter hook output priority 0; ip6 daddr ff00::/8 meta l4proto != ipv6-icmp counter drop; }\n\
        }\n";
    let path = tmp(&format!("{}.nft", ns.name));
    std::fs::write(&path, rules).unwrap();
    ns.exec(&["nft", "-f", path.to_str().unwrap()]);
}

/// Multicast datagrams `ns` tried to send and nftables dropped.
fn dropped_multicast(ns: &Netns) -> u64 {
    let out = ns.exec(&["nft", "list", "chain", "inet", "uninomcast", "out"]);
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The `add neighbour` lines of a dump over the control socket.
fn neighbours(ns: &Netns) -> Vec<String> {
    control(ns, 33123, "dump\nquit\n")
        .lines()
        .filter(|l| l.starts_with("add neighbour"))
        .map(str::to_owned)
        .collect()
}

/// The value after `key` on a dump line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
}

fn ping(ns: &Netns, dst: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-c", "1", "-W", "1", dst,
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn logs(ds: &[&Daemon]) -> String {
    ds.iter()
        .map(|d| d.log_text())
        .collect::<Vec<_>>()
        .join("\n-----\n")
}

/// Waits for the routes to each other's loopback prefixes and pings both ways, IPv6 and IPv4.
fn routes_and_pings(a: &Netns, na: u8, b: &Netns, nb: u8, ds: &[&Daemon]) {
    for (ns, n) in [(a, nb), (b, na)] {
        for dst in [format!("fd77::{n}"), format!("10.77.0.{n}")] {
            assert!(
                wait_for(40, || has_route(ns, &dst)),
                "{} never got {dst}: {:?}\n{}",
                ns.name,
                common::babel_routes(ns),
                logs(ds)
            );
            assert!(
                wait_for(10, || ping(ns, &dst)),
                "{} cannot ping {dst}",
                ns.name
            );
        }
    }
}

/// Two babeld-rs on a veth that carries no multicast. First both run with multicast only and
/// stay alone although their Hellos go out (nftables counts them dropped). Then `a` restarts
/// with `neighbour <b>`: `b`, with `unicast true` and no configured neighbour, learns `a` from
/// its unicast Hellos alone, and routes and pings pass both ways.
#[test]
fn unicast_configured_neighbour_and_learned_neighbour_without_multicast() {
    let t = "unicast_configured_neighbour_and_learned_neighbour_without_multicast";
    if !can_use_netns(t) || !have("nft", t) {
        return;
    }
    let (a, b) = (node("unia", 1), node("unib", 2));
    veth(&a, "uniab", &b, "uniba");
    drop_multicast(&a);
    drop_multicast(&b);
    let (lla, llb) = (a.link_local("uniab"), b.link_local("uniba"));

    // Multicast only: Hellos leave (and are dropped), nobody hears anybody.
    let mut da = start_router(&a, "unia-plain", BIN, "interface uniab\n", &["uniab"]);
    let db = start_router(&b, "unib", BIN, "interface uniba unicast true\n", &["uniba"]);
    assert!(
        wait_for(20, || dropped_multicast(&a) >= 8 && dropped_multicast(&b) >= 8),
        "no multicast Hellos were dropped: a {} b {}\n{}",
        dropped_multicast(&a),
        dropped_multicast(&b),
        logs(&[&da, &db])
    );
    assert!(neighbours(&a).is_empty(), "{:?}", neighbours(&a));
    assert!(neighbours(&b).is_empty(), "{:?}", neighbours(&b));
    da.terminate();
    drop(da);

    // a names b; b learns a from unicast.
    let da = start_router(
        &a,
        "unia",
        BIN,
        &format!("interface uniab neighbour {llb}\n"),
        &["uniab"],
    );
    routes_and_pings(&a, 1, &b, 2, &[&da, &db]);
    for (ns, peer) in [(&a, llb), (&b, lla)] {
        let ns_lines = neighbours(ns);
        let line = ns_lines
            .iter()
            .find(|l| field(l, "address") == Some(&peer.to_string()))
            .unwrap_or_else(|| panic!("{}: no neighbour {peer}: {ns_lines:?}", ns.name));
        // Heard through unicast only: the multicast history is empty, the unicast one is not.
        assert_eq!(field(line, "reach"), Some("0000"), "{line}");
        assert_ne!(field(line, "ureach"), Some("0000"), "{line}");
        assert_eq!(field(line, "cost"), Some("96"), "{line}");
        println!("{}: {line}", ns.name);
    }
    assert!(dropped_multicast(&a) > 0 && dropped_multicast(&b) > 0);
}
