//! Babel over links that carry no multicast (RFC 8966 §3.4.1 unicast Hellos, babeld's `unicast`,
//! our `neighbour` option): veth pairs where nftables drops every IPv6 multicast datagram but
//! neighbour discovery, and a real WireGuard link (wireguard-go) whose allowed IPs leave the
//! Babel group out. Each test first shows that multicast does not pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::{
    DaemonProcess, Netns, can_use_netns, control, has_route, have, node, ping, start_router, tmp,
    veth, wait_for,
};

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

/// The dump line of neighbour `peer` in `ns`.
fn neighbour_line(ns: &Netns, peer: std::net::Ipv6Addr) -> String {
    let lines = neighbours(ns);
    lines
        .iter()
        .find(|l| field(l, "address") == Some(&peer.to_string()))
        .cloned()
        .unwrap_or_else(|| panic!("{}: no neighbour {peer}: {lines:?}", ns.name))
}

/// The value after `key` on a dump line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().skip_while(|w| *w != key).nth(1)
}

fn logs(ds: &[&DaemonProcess]) -> String {
    ds.iter()
        .map(|d| d.log_text())
        .collect::<Vec<_>>()
        .join("\n-----\n")
}

/// Waits for the routes to each other's loopback prefixes and pings both ways, IPv6 and IPv4.
fn routes_and_pings(a: &Netns, na: u8, b: &Netns, nb: u8, ds: &[&DaemonProcess]) {
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
    let mut da = start_router(
        &a,
        "unia-plain",
        common::daemon_bin(),
        "interface uniab\n",
        &["uniab"],
    );
    let db = start_router(
        &b,
        "unib",
        common::daemon_bin(),
        "interface uniba unicast true\n",
        &["uniba"],
    );
    assert!(
        wait_for(20, || dropped_multicast(&a) >= 8
            && dropped_multicast(&b) >= 8),
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
        common::daemon_bin(),
        &format!("interface uniab neighbour {llb}\n"),
        &["uniab"],
    );
    routes_and_pings(&a, 1, &b, 2, &[&da, &db]);
    // a hears b's unicast Hellos (U flag, b's seqno for a): its multicast history stays empty.
    // b hears a's interface Hellos, which a copies to its configured neighbour by unicast.
    for (ns, peer, reach_empty) in [(&a, llb, true), (&b, lla, false)] {
        let line = neighbour_line(ns, peer);
        println!("{}: {line}", ns.name);
        assert_eq!(field(&line, "reach") == Some("0000"), reach_empty, "{line}");
        assert_eq!(
            field(&line, "ureach") == Some("0000"),
            !reach_empty,
            "{line}"
        );
        assert_eq!(field(&line, "cost"), Some("96"), "{line}");
    }
    assert!(dropped_multicast(&a) > 0 && dropped_multicast(&b) > 0);
}

/// babeld-rs with `neighbour <babeld>` and Debian's babeld 1.12.1 with `unicast true` on a veth
/// that carries no multicast: babeld learns us from our unicast Hellos; both list the other as a
/// neighbour heard only through unicast, and routes and pings pass both ways.
#[test]
fn unicast_with_babeld_without_multicast() {
    let t = "unicast_with_babeld_without_multicast";
    if !can_use_netns(t) || !have("nft", t) || !have("babeld", t) {
        return;
    }
    let (a, b) = (node("unic", 1), node("unid", 2));
    veth(&a, "unicd", &b, "unidc");
    drop_multicast(&a);
    drop_multicast(&b);
    let (lla, llb) = (a.link_local("unicd"), b.link_local("unidc"));
    let db = start_router(
        &b,
        "unid-babeld",
        "babeld",
        // babeld sends Hellos to a unicast-only neighbour only as unscheduled unicast Hellos
        // with its timestamped IHUs: without timestamps it would never send us a Hello.
        "interface unidc unicast true type tunnel\n",
        &["unidc"],
    );
    // babeld alone: its multicast Hellos are dropped and it has no neighbour.
    assert!(
        wait_for(20, || dropped_multicast(&b) >= 4),
        "babeld sent no multicast: {}\n{}",
        dropped_multicast(&b),
        db.log_text()
    );
    assert!(neighbours(&b).is_empty(), "{:?}", neighbours(&b));
    let da = start_router(
        &a,
        "unic",
        common::daemon_bin(),
        &format!("interface unicd neighbour {llb} type tunnel\n"),
        &["unicd"],
    );
    routes_and_pings(&a, 1, &b, 2, &[&da, &db]);
    // babeld hears our interface Hellos, copied to it by unicast (its multicast history); we
    // hear its unscheduled unicast Hellos (our unicast history). Both links are up both ways.
    for (ns, peer, reach_empty) in [(&a, llb, true), (&b, lla, false)] {
        let line = neighbour_line(ns, peer);
        println!("{}: {line}", ns.name);
        assert_eq!(field(&line, "reach") == Some("0000"), reach_empty, "{line}");
        assert_eq!(
            field(&line, "ureach") == Some("0000"),
            !reach_empty,
            "{line}"
        );
        assert_eq!(field(&line, "txcost"), Some("96"), "{line}");
    }
    assert!(dropped_multicast(&a) > 0);
    // Both dumps print interface lines the same way (babeld has no ureach there).
    for ns in [&a, &b] {
        let dump = control(ns, 33123, "dump\nquit\n");
        let iface = dump
            .lines()
            .find(|l| l.starts_with("add interface"))
            .unwrap_or_default()
            .to_owned();
        println!("{}: {iface}", ns.name);
        assert!(iface.contains(" up true ipv6 fe80::"), "{dump}");
    }
}

/// A wireguard-go process; stopped with SIGTERM on drop, its global control socket removed.
struct WireguardGo {
    process: DaemonProcess,
    sock: std::path::PathBuf,
}

impl Drop for WireguardGo {
    fn drop(&mut self) {
        self.process.terminate();
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// A WireGuard interface made by wireguard-go in `ns`, with link-local address `ll`, talking to
/// one peer whose allowed IPs leave out the multicast group (so Babel's multicast is dropped by
/// WireGuard itself).
fn wireguard(ns: &Netns, dev: &str, ll: &str, port: u16, peer: (&str, &str, u16)) -> WireguardGo {
    let log = tmp(&format!("{dev}.wg.log"));
    let sock = std::path::PathBuf::from(format!("/var/run/wireguard/{dev}.sock"));
    let d = WireguardGo {
        process: DaemonProcess::start(ns, "wireguard-go", &["-f", dev], log),
        sock: sock.clone(),
    };
    assert!(
        wait_for(10, || sock.exists()),
        "wireguard-go made no {}",
        sock.display()
    );
    let key = tmp(&format!("{dev}.key"));
    std::fs::write(&key, format!("{}\n", peer.0)).unwrap();
    ns.exec(&[
        "wg",
        "set",
        dev,
        "private-key",
        key.to_str().unwrap(),
        "listen-port",
        &port.to_string(),
        "peer",
        peer.1,
        "allowed-ips",
        "fe80::/64,fd77::/16,10.77.0.0/16",
        "endpoint",
        &format!("172.31.77.{}:{}", if port == 51801 { 2 } else { 1 }, peer.2),
    ]);
    // Only the link-local address we give it (no kernel-made one).
    ns.ip(&["link", "set", "dev", dev, "addrgenmode", "none"]);
    ns.ip(&["addr", "add", &format!("{ll}/64"), "dev", dev]);
    ns.ip(&["link", "set", dev, "up"]);
    d
}

fn wg_key(args: &[&str], input: Option<&str>) -> String {
    use std::io::Write;
    let mut c = Command::new("wg")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(i) = input {
        c.stdin.as_mut().unwrap().write_all(i.as_bytes()).unwrap();
    }
    drop(c.stdin.take());
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Two babeld-rs over a real WireGuard link (wireguard-go in two namespaces, allowed IPs without
/// the multicast group): the point-to-point device is detected as a `tunnel` (timestamps, so an
/// RTT shows in the dump), `a` names `b` as a neighbour, `b` learns `a` from unicast, and routes
/// and pings pass through the tunnel.
#[test]
fn unicast_over_wireguard_go_without_multicast() {
    let t = "unicast_over_wireguard_go_without_multicast";
    if !can_use_netns(t) || !have("wireguard-go", t) || !have("wg", t) {
        return;
    }
    let (a, b) = (node("uniwa", 1), node("uniwb", 2));
    veth(&a, "uniwua", &b, "uniwub");
    a.ip(&["addr", "add", "172.31.77.1/30", "dev", "uniwua"]);
    b.ip(&["addr", "add", "172.31.77.2/30", "dev", "uniwub"]);
    let (ka, kb) = (wg_key(&["genkey"], None), wg_key(&["genkey"], None));
    let (pa, pb) = (
        wg_key(&["pubkey"], Some(&ka)),
        wg_key(&["pubkey"], Some(&kb)),
    );
    let dev_a = format!("uniwga{}", std::process::id() % 10_000);
    let dev_b = format!("uniwgb{}", std::process::id() % 10_000);
    let _wa = wireguard(&a, &dev_a, "fe80::a", 51801, (&ka, &pb, 51802));
    let _wb = wireguard(&b, &dev_b, "fe80::b", 51802, (&kb, &pa, 51801));
    // Unicast crosses the tunnel; multicast to the Babel group has no allowed IP and is dropped.
    assert!(
        wait_for(10, || ping(&a, &format!("fe80::b%{dev_a}"))),
        "the tunnel does not pass unicast"
    );
    let link_a = a.ip(&["link", "show", "dev", &dev_a]);
    assert!(link_a.contains("POINTOPOINT"), "{link_a}");
    let da = start_router(
        &a,
        "uniwa",
        common::daemon_bin(),
        &format!("interface {dev_a} neighbour fe80::b\n"),
        &[&dev_a],
    );
    let db = start_router(
        &b,
        "uniwb",
        common::daemon_bin(),
        &format!("interface {dev_b} unicast true\n"),
        &[&dev_b],
    );
    routes_and_pings(&a, 1, &b, 2, &[&da, &db]);
    let lb: std::net::Ipv6Addr = "fe80::b".parse().unwrap();
    let la: std::net::Ipv6Addr = "fe80::a".parse().unwrap();
    assert!(
        wait_for(20, || neighbour_line(&a, lb).contains(" rtt ")
            && neighbour_line(&b, la).contains(" rtt ")),
        "no RTT: the WireGuard device was not taken as a tunnel: {} / {}",
        neighbour_line(&a, lb),
        neighbour_line(&b, la)
    );
    let line = neighbour_line(&a, lb);
    println!("{line}\n{}", neighbour_line(&b, la));
    assert_eq!(
        field(&line, "reach"),
        Some("0000"),
        "no multicast crossed: {line}"
    );
}
