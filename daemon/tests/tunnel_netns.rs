//! Babel over our own WireGuard-compatible tunnels: two babeld-rs routers that see each other
//! only through the tunnel (the underlay link runs no Babel) exchange routes, forward traffic
//! through it, and report the tunnel's counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{
    babel_routes, can_use_netns, control, has_route, keypair, node, ping_with, start_router, tmp,
    veth, wait_for,
};

#[test]
fn two_routers_exchange_routes_only_through_our_tunnel() {
    if !can_use_netns("two_routers_exchange_routes_only_through_our_tunnel") {
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        println!("SKIP two_routers_exchange_routes_only_through_our_tunnel: no /dev/net/tun");
        return;
    }
    let (a, b) = (node("tua", 1), node("tub", 2));
    veth(&a, "tuab", &b, "tuba");
    a.ip(&["addr", "add", "10.61.0.1/24", "dev", "tuab"]);
    b.ip(&["addr", "add", "10.61.0.2/24", "dev", "tuba"]);
    let ((ka, pa), (kb, pb)) = (keypair(), keypair());
    let conf_a = format!(
        "tunnel bwg0 private-key {ka} listen-port 51820\ntunnel-peer bwg0 public-key {pb} endpoint 10.61.0.2:51821 persistent-keepalive 5\n"
    );
    let conf_b = format!(
        "tunnel bwg1 private-key {kb} listen-port 51821\ntunnel-peer bwg1 public-key {pa} endpoint 10.61.0.1:51820 persistent-keepalive 5\n"
    );
    // No interface on the command line: the tunnel is the only Babel interface.
    let _da = start_router(&a, "tua", common::daemon_bin(), &conf_a, &[]);
    let db = start_router(&b, "tub", common::daemon_bin(), &conf_b, &[]);
    assert!(
        wait_for(60, || has_route(&a, "fd77::2")
            && has_route(&a, "10.77.0.2")
            && has_route(&b, "fd77::1")),
        "a: {:?}\nb: {:?}\n{}",
        babel_routes(&a),
        babel_routes(&b),
        db.log_text()
    );
    // The routes go through the tunnel, not the underlay.
    assert!(
        babel_routes(&a)
            .iter()
            .filter(|l| l.starts_with("fd77::2 ") || l.starts_with("10.77.0.2 "))
            .all(|l| l.contains("dev bwg0")),
        "{:?}",
        babel_routes(&a)
    );
    for dst in ["fd77::2", "10.77.0.2"] {
        let ok = ping_with(&a, dst, &["-c", "2", "-W", "2"]);
        assert!(ok, "ping {dst} through the tunnel");
    }
    // The interface is Babel kind tunnel; dump json carries the tunnel and its counters.
    let json = control(&a, 33123, "dump json\nquit\n");
    let line = json
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let t = &v["tunnels"][0];
    assert_eq!(t["name"], "bwg0");
    assert_eq!(t["public_key"], pa.as_str());
    assert_eq!(t["peers"][0]["public_key"], pb.as_str());
    assert!(wait_for(10, || {
        let j = control(&a, 33123, "dump json\nquit\n");
        let v: serde_json::Value =
            serde_json::from_str(j.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
        v["tunnels"][0]["peers"][0]["rx_bytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
            && v["tunnels"][0]["peers"][0]["handshakes"]
                .as_u64()
                .unwrap_or(0)
                > 0
    }));
    // The per-peer switch at runtime: block cuts the peer off, allow restores it.
    let ping = |dst: &str| ping_with(&a, dst, &["-c", "1", "-W", "1"]);
    let reply = control(&a, 33123, &format!("tunnel-policy bwg0 {pb} block\nquit\n"));
    assert!(reply.trim_end().ends_with("ok"), "{reply}");
    assert!(
        wait_for(10, || !ping("fd77::2")),
        "still forwarding while blocked"
    );
    let blocked = control(&a, 33123, "dump json\nquit\n");
    assert!(blocked.contains("\"policy\":\"Block\""), "{blocked}");
    let reply = control(&a, 33123, &format!("tunnel-policy bwg0 {pb} allow\nquit\n"));
    assert!(reply.trim_end().ends_with("ok"), "{reply}");
    assert!(
        wait_for(60, || ping("fd77::2")),
        "not forwarding again after allow"
    );
    let bad = control(&a, 33123, "tunnel-policy nosuch AAAA block\nquit\n");
    assert!(bad.trim_end().ends_with("bad"), "{bad}");
    let show = a.exec(&[test_support::babelctl(), "show", "-s", "33123", "tunnels"]);
    assert!(show.contains("bwg0") && show.contains(&pb[..10]), "{show}");
    let _ = tmp("unused");
}
