//! Route verification between real daemons in network namespaces (spec/verify.md, "The
//! daemon"): Remote Hellos forwarded by the kernels along the route under test (policy routing
//! with a firewall mark, also through a neighbour that is not the selected next hop), signed
//! Remote IHUs from the destination, "used" measured by the kernel (nftables).
//!
//! 1. A router that lies about its route to a destination (it announces a kernel route to it
//!    with metric 1, as if it were the destination's neighbour, while the destination is one hop
//!    further) wins the traffic; the verifying router measures the real cost, corrects the
//!    route, evicts the liar, the liar's routes leave its kernel, and pings take the honest path.
//! 2. An honest diamond with a lossy link (10 % each way, dropped by nftables' random numbers),
//!    its other side through a stock babeld: checks pass on both sides (the probes cross babeld's
//!    kernel like any packet), nobody is evicted.
//! 3. A router that claims what the path to the destination measures, but under what its own
//!    next hop offers it (the origin test on passing checks, §4.2.1): evicted with the rule on,
//!    its passing checks blamed on it as the origin; kept with the rule off.
//! 4. An honest relay of a lie told past it justifies its claim with its next hop's Signed
//!    Claim (§4.2.5) and is kept; without justification it is evicted.
//! 5. A router asked to justify a claim it no longer makes (its retraction was lost) sends its
//!    Update again, and the verifier drops the claim without evicting it (§4.2.5 step 2).
//! 6. A liar whose destination's answers never reach the verifier: the Remote Hellos sent with
//!    the hop limit its claim allows run out at it, and their ICMPv6 Time Exceeded alone scores
//!    and evicts it (§1.4).
//! 7. A black hole corrects a route to a cost of nearly infinity; the verifier advertises it
//!    at the ceiling below infinity, and the router behind it keeps the destination (§5.2).
//! 8. An evasive liar, which tells the truth for a while each time it is asked to justify its
//!    lie and then lies again (the test moves its kernel route when its own counter of Justify
//!    Requests moves): evicted for claims that rise only when asked (§4.2.5, on by default)
//!    where its lie is far under its floor; where the lie is within a relay's lag of the floor,
//!    kept by the defaults and evicted for a claim that falls back with `verify-fall-back`.
//! 9. An honest grid of six verifying routers whose links fail in turn (routes in flux, one
//!    link lossy, interfaces not declared wired and so without split horizon): nobody is
//!    evicted. A relay whose route runs through the verifier asks the verifier for the Signed
//!    Claim that justifies its claim (§4.2.5 step 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{
    Netns, can_run_mesh, can_use_netns, dump_json, have, monitor_until, node, one_at_a_time, ping,
    route_dev, start_mesh_router, start_with_config, try_control, veth, wait_for,
};

const FILTERS: &str = "redistribute local ip fd77::/16 allow\nredistribute local deny\n";

/// The destination's signing seed and its public key (hex).
fn destination_key() -> (String, String) {
    let seed = [7u8; 32];
    let k = verify::SigningKey::from_bytes(&seed);
    (hex::encode(seed), hex::encode(k.verifying_key().as_bytes()))
}

/// Fast cycles for a test: a session of 10 Remote Hellos every 200 ms, one cycle every 4 s.
const FAST: &str = "verify-cycle 4\nverify-probes 10\nverify-probe-interval 200\n";

fn verifier_config(d_pub: &str) -> String {
    format!("{FILTERS}verify-enable true\nverify-key fd77::4/128 {d_pub}\n{FAST}")
}

/// An honest router of a verified mesh that holds no key a verifier binds: it relays Justify
/// Requests to its next hop and its Signed Claims back (`spec/verify.md` §4.2.5), so that a
/// verifier's audits of its passing claims (§4.2.6) are answered.
fn relay_config() -> String {
    format!("{FILTERS}verify-enable true\n")
}

fn destination_config(d_seed: &str) -> String {
    format!("{FILTERS}verify-enable true\nverify-private-key {d_seed}\n")
}

fn usable(test: &str) -> bool {
    can_use_netns(test) && have("nft", test)
}

/// The `verify` object of a daemon's `dump json`.
fn verify_json(ns: &Netns) -> serde_json::Value {
    dump_json(ns).get("verify").cloned().unwrap_or_default()
}

fn neighbour<'a>(v: &'a serde_json::Value, iface: &str) -> Option<&'a serde_json::Value> {
    v.get("neighbours")?
        .as_array()?
        .iter()
        .find(|n| n["interface"] == iface)
}

/// Whether a route through `iface` passed its last check (accuracy 1000) at most `max_age`
/// seconds ago.
fn passed_check(a: &Netns, iface: &str, max_age: u64) -> bool {
    verify_json(a)["routes"].as_array().is_some_and(|rs| {
        rs.iter().any(|r| {
            r["interface"] == iface
                && r["accuracy"] == 1000
                && r["age_s"].as_u64().is_some_and(|s| s <= max_age)
        })
    })
}

/// Whether `monitor` text has a neighbour's standing change to `what` (evicted, readmitted):
/// `verify neighbour ADDR if IFINDEX accuracy A evicted CAUSE PREFIX|readmitted`.
fn standing_changed(text: &str, what: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("verify neighbour ") && l.split_whitespace().nth(7) == Some(what))
}

/// Pings `fd77::4` from `a` in the background until dropped (the traffic that makes the
/// destination "used", and whose path the test follows).
struct Pinger(std::process::Child);

impl Pinger {
    fn start(ns: &Netns) -> Pinger {
        Pinger::to(ns, "fd77::4")
    }

    /// Pings `dst` instead.
    fn to(ns: &Netns, dst: &str) -> Pinger {
        Pinger(
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &ns.name, "ping", "-6", "-q", "-i", "0.5", dst,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Four nodes `{tag}{name}`, with addresses fd77::1 to fd77::4 in that order (the last is the
/// destination whose key the verifiers know).
fn nodes(tag: &str, names: [&str; 4]) -> [Netns; 4] {
    let mut i = 0;
    names.map(|name| {
        i += 1;
        node(&format!("{tag}{name}"), i)
    })
}

/// A kernel route to d (fd77::4) in `ns` through `via` on `dev`, outside the daemon (what a
/// liar forwards by while it announces what it likes).
fn kernel_route_to_d(ns: &Netns, via: &std::net::Ipv6Addr, dev: &str) {
    let via = via.to_string();
    assert!(wait_for(30, || {
        ns.ip(&[
            "-6",
            "route",
            "replace",
            "fd77::4/128",
            "via",
            &via,
            "dev",
            dev,
        ]);
        ns.ip(&["-6", "route", "show", "fd77::4/128"])
            .contains("via")
    }));
}

/// Starts a (verifying d, with `a_extra`, on `a-l` and `a-h`), h (an honest relay between a
/// and d) and d (the destination, on `d_ifs`): the daemons in that order.
fn start_a_h_d(
    tag: &str,
    [a, h, d]: [&Netns; 3],
    a_extra: &str,
    d_ifs: &[&str],
) -> Vec<common::DaemonProcess> {
    let (d_seed, d_pub) = destination_key();
    vec![
        start_with_config(
            a,
            &format!("{tag}a"),
            common::daemon_bin(),
            &format!("{}{a_extra}", verifier_config(&d_pub)),
            &["a-l", "a-h"],
        ),
        start_with_config(
            h,
            &format!("{tag}h"),
            common::daemon_bin(),
            &relay_config(),
            &["h-a", "h-d"],
        ),
        start_with_config(
            d,
            &format!("{tag}d"),
            common::daemon_bin(),
            &destination_config(&d_seed),
            d_ifs,
        ),
    ]
}

/// a - l - d and a - h - d, where l lies about d (it announces a kernel route to d with metric
/// 1), a verifies with `a_extra` added to its configuration; returns once a routes through the
/// liar and pings d that way. Namespaces and daemons as (a, l, h, d), daemons a, h, d, l.
fn liar_mesh(tag: &str, a_extra: &str) -> ([Netns; 4], Vec<common::DaemonProcess>) {
    liar_mesh_with(tag, a_extra, &|_| {})
}

/// [`liar_mesh`], with `setup` run on a's namespace before any daemon starts.
fn liar_mesh_with(
    tag: &str,
    a_extra: &str,
    setup: &dyn Fn(&Netns),
) -> ([Netns; 4], Vec<common::DaemonProcess>) {
    // a - l - d and a - h - d; l lies about d.
    let [a, l, h, d] = nodes(tag, ["a", "l", "h", "d"]);
    setup(&a);
    veth(&a, "a-l", &l, "l-a");
    veth(&a, "a-h", &h, "h-a");
    veth(&l, "l-d", &d, "d-l");
    veth(&h, "h-d", &d, "d-h");
    let mut ds = start_a_h_d(tag, [&a, &h, &d], a_extra, &["d-l", "d-h"]);
    // The liar: a kernel route to d over its link (it does forward), announced with metric 1
    // as if d were one hop from it at no cost. Through it, a sees d at 96 + 1 instead of the
    // 96 + 96 of two links.
    kernel_route_to_d(&l, &d.link_local("d-l"), "l-d");
    ds.push(start_with_config(
        &l,
        &format!("{tag}l"),
        common::daemon_bin(),
        &format!("redistribute ip fd77::4/128 metric 1 allow\n{FILTERS}"),
        &["l-a", "l-d"],
    ));
    assert!(
        wait_for(120, || route_dev(&a, "fd77::4").as_deref() == Some("a-l")),
        "a never chose the liar's route: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    assert!(
        wait_for(60, || ping(&a, "fd77::4")),
        "no ping through the liar"
    );
    ([a, l, h, d], ds)
}

#[test]
fn a_metric_liar_is_detected_corrected_and_dropped() {
    if !usable("a_metric_liar_is_detected_corrected_and_dropped") {
        return;
    }
    let _serial = one_at_a_time();
    let ([a, _l, _h, d], ds) = liar_mesh("vl", "");
    let _traffic = Pinger::start(&a);
    let monitor = monitor_until(&a, 300, |t| {
        // The route's line and the neighbour's standing line may arrive in separate reads.
        t.contains("verify route fd77::4/128") && standing_changed(t, "evicted")
    });
    // a verifies both routes (the selected one through l, and the other one through h): the
    // lie is measured (two hops, c = 192 > 97), corrected, confirmed and l is evicted.
    let evicted = wait_for(240, || is_evicted(&a, "a-l"));
    let dump = try_control(&a, "dump\nquit\n");
    assert!(
        evicted,
        "the liar was not evicted\n{dump}\n{}",
        ds[0].log_text()
    );
    let v = verify_json(&a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    let routes = v["routes"].as_array().unwrap();
    let via_l = routes.iter().find(|r| r["interface"] == "a-l").unwrap();
    assert_eq!(via_l["prefix"], "fd77::4/128");
    assert_eq!(via_l["metric"], 97);
    assert_eq!(via_l["cost"], 192, "two hops measured");
    assert!(via_l["accuracy"].as_u64().unwrap() < 800);
    // `monitor` saw the checks and the eviction.
    let text = monitor.join().unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("verify route fd77::4/128") && l.contains(" metric 97 cost 192 ")
        ),
        "{text}"
    );
    assert!(standing_changed(&text, "evicted"), "{text}");
    // The standing says why: the route's checks, or its failure left unjustified (a liar
    // cannot justify a lie), never an audit (its checks failed).
    let l = neighbour(&v, "a-l").unwrap();
    assert_eq!(l["last_eviction_prefix"], "fd77::4/128", "{v}");
    assert!(
        l["last_eviction"] == "checks" || l["last_eviction"] == "unjustified",
        "{v}"
    );
    // The honest route was checked and passed; its neighbour is in good standing.
    assert!(
        wait_for(60, || passed_check(&a, "a-h", u64::MAX)),
        "the honest route was never checked\n{}",
        try_control(&a, "dump\nquit\n")
    );
    // §4.2.6: h's passing claim (its next hop d is none of a's neighbours) was audited, and
    // justified with d's Signed Claim, which h relayed (l, which relays nothing, justified none).
    let counter = |name: &str| verify_json(&a)["counters"][name].as_u64().unwrap_or(0);
    assert!(
        wait_for(60, || counter("audits") >= 1 && counter("justified") >= 1),
        "h's claim was not audited and justified\n{}",
        try_control(&a, "dump\nquit\n")
    );
    assert!(neighbour(&verify_json(&a), "a-h").is_none_or(|n| n["evicted"] == false));
    let c = &v["counters"];
    assert!(c["answers"].as_u64().unwrap() > 0);
    assert_eq!(c["bad_signature"], 0);
    assert_eq!(c["unbound_key"], 0);
    // The liar's routes left a's kernel; the traffic takes the honest path.
    assert!(
        wait_for(60, || route_dev(&a, "fd77::4").as_deref() == Some("a-h")),
        "traffic did not move: {:?}",
        route_dev(&a, "fd77::4")
    );
    assert!(wait_for(30, || ping(&a, "fd77::4")), "no ping through h");
    let dump = try_control(&a, "dump\nquit\n");
    assert!(
        dump.lines().any(|l| l.starts_with("add verify-neighbour")
            && l.contains(" if a-l ")
            && l.contains("evicted true")),
        "{dump}"
    );
    // babelctl shows it.
    let show = a.exec(&[test_support::babelctl(), "show", "-s", "33123", "verify"]);
    assert!(
        show.lines()
            .any(|l| l.contains("a-l") && l.contains("true") && !l.starts_with("fd77")),
        "{show}"
    );
    assert!(
        show.lines()
            .any(|l| l.starts_with("fd77::4/128") && l.contains("a-l") && l.contains("192")),
        "{show}"
    );
    // The destination answered and counted nothing refused.
    let dv = verify_json(&d);
    assert!(dv["answers_sent"].as_u64().unwrap() > 0, "{dv}");
    // Prometheus metrics carry the score.
    let m = try_control(&a, "metrics\nquit\n");
    assert!(m.contains("babel_verify_accuracy"), "{m}");
    // And each bounded table's entries and bound (spec/verify.md §6): a checked both routes.
    let gauge = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    assert!(
        gauge("babel_verify_table_entries{table=\"route rows\"}") >= Some(2),
        "{m}"
    );
    assert_eq!(
        gauge("babel_verify_table_max{table=\"route rows\"}"),
        Some(1024),
        "{m}"
    );
    let tables = v["tables"].as_array().unwrap();
    assert!(
        tables
            .iter()
            .any(|t| t["name"] == "route rows" && t["len"].as_u64() >= Some(1) && t["max"] == 1024),
        "{tables:?}"
    );
    for mut x in ds {
        x.terminate();
    }
}

/// §1.4 between real kernels: the liar of [`liar_mesh`] (it claims 1 for d, two links away),
/// and a that never gets an answer from d (its nftables drops every Remote IHU, from the start).
/// Without the bound every session is unanswered and nothing is scored. With
/// `verify-hop-bound true`, the claim through l (97) allows one link: a's Remote Hellos sent
/// with hop limit 1 run out at l, whose kernel sends an ICMPv6 Time Exceeded; a's raw socket
/// reads it, the session is scored at two links (192), l cannot justify its claim, and it is
/// evicted; its route leaves a's kernel and the pings take h. The honest route through h (192,
/// two links, which the trace's hop limit already bounds) is never scored and never evicted.
#[test]
fn a_liar_whose_answers_never_return_is_caught_by_the_hop_limit() {
    let test = "a_liar_whose_answers_never_return_is_caught_by_the_hop_limit";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let mute = |a: &Netns| {
        nft_load(
            a,
            "table inet mute {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ip6 saddr != fe80::/10 udp sport 6699 counter drop\n }\n}\n",
        );
    };
    let ([a, _l, _h, _d], mut ds) = liar_mesh_with("vb", "verify-hop-bound true\n", &mute);
    let _traffic = Pinger::start(&a);
    let dump = |ns: &Netns| try_control(ns, "dump\nquit\n");
    let evicted = wait_for(240, || is_evicted(&a, "a-l"));
    assert!(
        evicted,
        "the liar was not evicted\n{}\n{}",
        dump(&a),
        ds[0].log_text()
    );
    let v = verify_json(&a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    let c = &v["counters"];
    // d answered, and a got none of it: the bound alone scored the liar.
    assert!(nft_counter(&a, "mute") > 0, "d never answered");
    assert_eq!(c["answers"], 0, "{v}");
    assert!(c["bounds_sent"].as_u64().unwrap() > 0, "{v}");
    assert!(c["bounds_exceeded"].as_u64().unwrap() > 0, "{v}");
    assert!(c["bounded"].as_u64().unwrap() > 0, "{v}");
    let via_l = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["interface"] == "a-l")
        .unwrap();
    assert_eq!(via_l["metric"], 97, "{v}");
    assert_eq!(via_l["cost"], 192, "two links shown by the hop limit: {v}");
    // The text dump has the counters.
    let text = dump(&a);
    let head = text
        .lines()
        .find(|l| l.starts_with("verify public-key"))
        .unwrap();
    assert!(head.contains(" bounded "), "{head}");
    // Traffic moves to h, which stays in good standing.
    assert!(
        wait_for(60, || route_dev(&a, "fd77::4").as_deref() == Some("a-h")),
        "traffic did not move: {:?}",
        route_dev(&a, "fd77::4")
    );
    assert!(wait_for(30, || ping(&a, "fd77::4")), "no ping through h");
    assert!(neighbour(&verify_json(&a), "a-h").is_none_or(|n| n["evicted"] == false));
    for x in &mut ds {
        x.terminate();
    }
}

/// §4.2.1 between real kernels: a - b - c - d with a shortcut a - c that costs a 400 (c's
/// rxcost), so a routes to d through b, and b forwards to c. a traces its route to d through b:
/// the hop-limit-2 Remote Hello runs out at c, c's kernel answers with an ICMPv6 Time Exceeded
/// from its own address, a's raw socket reads it, and a records c (its neighbour on a - c) as
/// b's next hop for d, in `dump json`, `dump` and the counters. The honest route passes.
#[test]
fn a_trace_finds_the_neighbours_next_hop() {
    let test = "a_trace_finds_the_neighbours_next_hop";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let (a, b, c, d) = (
        node("vta", 1),
        node("vtb", 2),
        node("vtc", 3),
        node("vtd", 4),
    );
    veth(&a, "a-b", &b, "b-a");
    veth(&b, "b-c", &c, "c-b");
    veth(&c, "c-d", &d, "d-c");
    veth(&a, "a-c", &c, "c-a");
    let (d_seed, d_pub) = destination_key();
    let ds = [
        start_with_config(
            &a,
            "vta",
            common::daemon_bin(),
            &format!(
                "{}verify-attribution true\nverify-destination fd77::4/128\n",
                verifier_config(&d_pub)
            ),
            &["a-b", "a-c"],
        ),
        start_with_config(&b, "vtb", common::daemon_bin(), FILTERS, &["b-a", "b-c"]),
        start_with_config(
            &c,
            "vtc",
            common::daemon_bin(),
            &format!("{FILTERS}interface c-a rxcost 400\n"),
            &["c-a", "c-b", "c-d"],
        ),
        start_with_config(
            &d,
            "vtd",
            common::daemon_bin(),
            &destination_config(&d_seed),
            &["d-c"],
        ),
    ];
    assert!(
        wait_for(120, || route_dev(&a, "fd77::4").as_deref() == Some("a-b")
            && route_dev(&b, "fd77::4").as_deref() == Some("b-c")),
        "a does not route to d through b and b through c: {:?} {:?}\n{}",
        route_dev(&a, "fd77::4"),
        route_dev(&b, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    let c_ll = c.link_local("c-a").to_string();
    let traced = |a: &Netns| {
        verify_json(a)["routes"].as_array().is_some_and(|rs| {
            rs.iter().any(|r| {
                r["prefix"] == "fd77::4/128" && r["interface"] == "a-b" && r["next_hop"] == c_ll
            })
        })
    };
    let found = wait_for(240, || traced(&a));
    let dump = try_control(&a, "dump\nquit\n");
    assert!(
        found,
        "c never named as b's next hop\n{dump}\n{}",
        ds[0].log_text()
    );
    let v = verify_json(&a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    let counters = &v["counters"];
    assert!(counters["traces_sent"].as_u64().unwrap() > 0, "{counters}");
    assert!(
        counters["traces_answered"].as_u64().unwrap() > 0,
        "{counters}"
    );
    assert!(
        dump.lines()
            .any(|l| l.starts_with("add verify-route fd77::4/128")
                && l.contains(" if a-b ")
                && l.ends_with(&format!(" next-hop {c_ll}"))),
        "{dump}"
    );
    let head = dump
        .lines()
        .find(|l| l.starts_with("verify public-key"))
        .unwrap();
    assert!(head.contains(" trace-socket-failed 0"), "{head}");
    // The honest route through b passed (three hops, as b claims), and nobody was evicted.
    assert!(
        wait_for(60, || passed_check(&a, "a-b", u64::MAX)),
        "the route through b never passed\n{}",
        try_control(&a, "dump\nquit\n")
    );
    let v = verify_json(&a);
    for iface in ["a-b", "a-c"] {
        assert!(
            neighbour(&v, iface).is_none_or(|n| n["evicted"] == false),
            "{v}"
        );
    }
    // Prometheus carries the trace counters.
    let m = try_control(&a, "metrics\nquit\n");
    assert!(m.contains("traces_answered"), "{m}");
    assert!(m.contains("trace_socket_failed"), "{m}");
    for mut x in ds {
        x.terminate();
    }
}

/// a - n - x - d with a - x: x's link to d costs 400 on paper (d's rxcost) and one hop on the
/// wire. n routes to d through x in its kernel and announces d with metric 192, what the two
/// hops measure, where its next hop x offers it 400 plus a link; x's links to n and to a cost
/// 400 too (their rxcost), so x keeps its own route to d whatever n and a advertise. a selects n (192 + 96 against x's 400 + 96), verifies with the origin test on passing checks set to `passing_origin`, and
/// pings d through n. Returns once the ping goes through. Namespaces (a, n, x, d).
fn under_next_hop_mesh(
    tag: &str,
    passing_origin: bool,
) -> ([Netns; 4], Vec<common::DaemonProcess>) {
    let [a, n, x, d] = nodes(tag, ["a", "n", "x", "d"]);
    veth(&a, "a-n", &n, "n-a");
    veth(&a, "a-x", &x, "x-a");
    veth(&n, "n-x", &x, "x-n");
    veth(&x, "x-d", &d, "d-x");
    let (d_seed, d_pub) = destination_key();
    let mut ds = vec![
        start_with_config(
            &x,
            &format!("{tag}x"),
            common::daemon_bin(),
            &relay_config(),
            &["x-a", "x-n", "x-d"],
        ),
        start_with_config(
            &d,
            &format!("{tag}d"),
            common::daemon_bin(),
            &format!("{}interface d-x rxcost 400\n", destination_config(&d_seed)),
            &["d-x"],
        ),
    ];
    // n: a kernel route to d through x, announced at what the two hops measure (192), not at
    // what x offers it (400 + 96).
    kernel_route_to_d(&n, &x.link_local("x-n"), "n-x");
    ds.push(start_with_config(
        &n,
        &format!("{tag}n"),
        common::daemon_bin(),
        &format!(
            "redistribute ip fd77::4/128 metric 192 allow\n{FILTERS}interface n-x rxcost 400\n"
        ),
        &["n-a", "n-x"],
    ));
    // The verifier starts once x routes to d over its own link (before that, x routes d's
    // address back to n, and the first probes would loop).
    assert!(
        wait_for(120, || route_dev(&x, "fd77::4").as_deref() == Some("x-d")
            && try_control(&x, "dump\nquit\n").lines().any(|l| l
                .contains("prefix fd77::4/128 ")
                && l.contains(" if x-n"))),
        "x does not route to d directly, or does not hear n\n{}",
        try_control(&x, "dump\nquit\n")
    );
    ds.insert(
        0,
        start_with_config(
            &a,
            &format!("{tag}a"),
            common::daemon_bin(),
            &format!(
                "{}verify-attribution true\nverify-attribution-passing-origin {passing_origin}\nverify-destination fd77::4/128\ninterface a-x rxcost 400\n",
                verifier_config(&d_pub)
            ),
            &["a-n", "a-x"],
        ),
    );
    assert_routes_to_d(&a);
    ([a, n, x, d], ds)
}

/// §4.2.6, audited claims, between real kernels: a - n - x - d, where d's link to x costs 400
/// (d's rxcost), so x offers n a route to d at 400 (and n's to x too, so x does not take n's
/// lie), and n, with a kernel route to d through x, announces d at 192: what the path measures
/// from a (three links, 288 with a's own), far under what its next hop offers it plus a link
/// (496). a's checks through n pass, and n's next hop is none of a's neighbours, so no origin
/// test can judge the claim: a asks n to justify it all the same, n (a verifying router, whose
/// claim is its own announcement) has no next hop that backs it, and the deadline evicts it,
/// after passing checks only.
#[test]
fn a_passing_claim_its_next_hop_does_not_back_is_evicted_by_an_audit() {
    let test = "a_passing_claim_its_next_hop_does_not_back_is_evicted_by_an_audit";
    passing_liar_audited(test, "vau", false);
}

/// The same with `verify-audit-claims signers` (§4.2.6): n runs verification with a key a
/// binds to n's own address, and a checks that address too (`verify-destination`): once n's
/// own destination has answered through it, its claim for d is audited, and n is evicted as
/// above. (A stock Babel router never answers so: `a_stock_babeld_neighbour_...`.)
#[test]
fn with_audits_of_signers_only_a_signing_liar_is_still_evicted() {
    let test = "with_audits_of_signers_only_a_signing_liar_is_still_evicted";
    passing_liar_audited(test, "vag", true);
}

/// A key for a router of the tests other than the destination: its seed and public key (hex).
fn key_of(byte: u8) -> (String, String) {
    let seed = [byte; 32];
    let k = verify::SigningKey::from_bytes(&seed);
    (hex::encode(seed), hex::encode(k.verifying_key().as_bytes()))
}

/// a - n - x - d with n's lie that passes (above); with `signers`, audits of signers only and
/// n's own address bound to its key and checked.
fn passing_liar_audited(test: &str, tag: &str, signers: bool) {
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let [a, n, x, d] = nodes(tag, ["a", "n", "x", "d"]);
    veth(&a, "a-n", &n, "n-a");
    veth(&n, "n-x", &x, "x-n");
    veth(&x, "x-d", &d, "d-x");
    let (d_seed, d_pub) = destination_key();
    let (n_seed, n_pub) = key_of(9);
    let mut ds = vec![
        start_with_config(
            &x,
            &format!("{tag}x"),
            common::daemon_bin(),
            &relay_config(),
            &["x-n", "x-d"],
        ),
        start_with_config(
            &d,
            &format!("{tag}d"),
            common::daemon_bin(),
            &format!("{}interface d-x rxcost 400\n", destination_config(&d_seed)),
            &["d-x"],
        ),
    ];
    kernel_route_to_d(&n, &x.link_local("x-n"), "n-x");
    // With `signers`, n answers for its own address with the key a binds to it.
    let n_key = if signers {
        format!("verify-private-key {n_seed}\n")
    } else {
        String::new()
    };
    ds.push(start_with_config(
        &n,
        &format!("{tag}n"),
        common::daemon_bin(),
        // x's link from n costs 400 too, so that x keeps its own route to d rather than n's
        // lie (which would loop).
        &format!(
            "redistribute ip fd77::4/128 metric 192 allow\n{}{n_key}interface n-x rxcost 400\n",
            relay_config()
        ),
        &["n-a", "n-x"],
    ));
    assert!(
        wait_for(120, || route_dev(&x, "fd77::4").as_deref() == Some("x-d")
            && try_control(&x, "dump\nquit\n").lines().any(|l| l
                .contains("prefix fd77::4/128 ")
                && l.contains(" if x-n"))),
        "x does not route to d directly, or does not hear n\n{}",
        try_control(&x, "dump\nquit\n")
    );
    let signers_config = if signers {
        format!(
            "verify-audit-claims signers\nverify-key fd77::2/128 {n_pub}\nverify-destination fd77::2/128\n"
        )
    } else {
        String::new()
    };
    ds.push(start_with_config(
        &a,
        &format!("{tag}a"),
        common::daemon_bin(),
        &format!(
            "{}verify-destination fd77::4/128\n{signers_config}",
            verifier_config(&d_pub)
        ),
        &["a-n"],
    ));
    assert_routes_to_d(&a);
    let _traffic = Pinger::start(&a);
    let n_ll = n.link_local("n-a").to_string();
    // Every check of n passes (none fails, none is corrected): the audit evicts it.
    let (text, _, _) = evicted_by_audit(&a, "a-n", &n_ll, &ds[3]);
    if signers {
        // n's own address was checked through it, answered and passing, before the audit.
        let own = format!("verify route fd77::2/128 via {n_ll} ");
        let first_own = text
            .lines()
            .position(|l| l.starts_with(&own) && l.contains(" accuracy 1000 "));
        let evicted_at = text.lines().position(|l| standing_changed(l, "evicted"));
        assert!(first_own.is_some() && first_own < evicted_at, "{text}");
    }
    for x in &mut ds {
        x.terminate();
    }
}

/// Waits until `a` evicts its neighbour on `iface` (link-local `via`) by an audit after
/// passing checks only (§4.2.6): every check of its route to d passed, none was corrected or
/// justified, and the `monitor` line and the standing say `audit` of `fd77::4/128`. Returns
/// the `monitor` text, `dump json`'s `verify` and the `dump` text, for what a test asks more.
/// `log` is the daemon whose log a failure prints.
fn evicted_by_audit(
    a: &Netns,
    iface: &str,
    via: &str,
    log: &common::DaemonProcess,
) -> (String, serde_json::Value, String) {
    let monitor = monitor_until(a, 300, |t| standing_changed(t, "evicted"));
    let evicted = wait_for(240, || is_evicted(a, iface));
    let dump = try_control(a, "dump\nquit\n");
    assert!(
        evicted,
        "{iface} was not evicted\n{dump}\n{}",
        log.log_text()
    );
    let text = monitor.join().unwrap();
    let v = verify_json(a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    let checks = checks_via(&text, via);
    assert!(!checks.is_empty(), "{text}");
    for l in &checks {
        assert!(l.contains(" accuracy 1000 "), "{l}");
    }
    assert_eq!(v["counters"]["corrections"], 0, "{v}");
    assert!(v["counters"]["audits"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(v["counters"]["justified"], 0, "{v}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("verify neighbour {via} "))
                && l.ends_with(" evicted audit fd77::4/128")),
        "{text}"
    );
    let standing = neighbour(&v, iface).unwrap();
    assert_eq!(standing["last_eviction"], "audit", "{v}");
    assert_eq!(standing["last_eviction_prefix"], "fd77::4/128", "{v}");
    (text, v, dump)
}

/// Waits until `a` routes to d (`fd77::4`) in its kernel; fails with its `dump` if it never
/// does.
fn assert_routes_to_d(a: &Netns) {
    assert!(
        wait_for(120, || route_dev(a, "fd77::4").is_some()),
        "a has no route to d\n{}",
        try_control(a, "dump\nquit\n")
    );
}

/// Whether `ns` has evicted its neighbour on `iface` (`dump json`'s `verify`).
fn is_evicted(ns: &Netns, iface: &str) -> bool {
    neighbour(&verify_json(ns), iface).is_some_and(|n| n["evicted"] == true)
}

/// The `monitor` lines of a's checks of its route to d through `via`.
fn checks_via<'t>(text: &'t str, via: &str) -> Vec<&'t str> {
    let head = format!("verify route fd77::4/128 via {via} ");
    text.lines().filter(|l| l.starts_with(&head)).collect()
}

/// §4.2.1, the origin test on passing checks, between real kernels: n's checks pass (it claims
/// what the path measures), but n claims under what its next hop x offers it plus a link, at
/// both ends of every session: with the rule on, a's trace names x (its Time Exceeded arrives on
/// a - x), the passing checks blame n as the origin, two of them `window` apart evict n, its
/// route leaves a's kernel and the pings go through x; x is not evicted.
#[test]
fn a_claim_under_the_next_hops_is_evicted_on_passing_checks() {
    let test = "a_claim_under_the_next_hops_is_evicted_on_passing_checks";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let ([a, _n, x, _d], ds) = under_next_hop_mesh("vpo", true);
    let _traffic = Pinger::start(&a);
    let x_ll = x.link_local("x-a").to_string();
    let evicted = wait_for(240, || {
        neighbour(&verify_json(&a), "a-n").is_some_and(|r| r["evicted"] == true)
    });
    let dump = try_control(&a, "dump\nquit\n");
    assert!(evicted, "n was not evicted\n{dump}\n{}", ds[0].log_text());
    let v = verify_json(&a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    // No check of n failed (a failing check corrects the route): n claims what the path
    // measures, and its checks passed, blamed on it as the origin, the trace naming x over
    // x's own link.
    assert_eq!(v["counters"]["corrections"], 0, "{v}");
    let via_n = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["interface"] == "a-n")
        .unwrap();
    assert_eq!(via_n["metric"], 288, "{via_n}");
    assert_eq!(via_n["cost"], 288, "three hops measured: {via_n}");
    assert_eq!(via_n["accuracy"], 1000, "{via_n}");
    assert_eq!(via_n["blame"], "origin", "{via_n}");
    assert_eq!(via_n["next_hop"], x_ll.as_str(), "{via_n}");
    assert!(
        dump.lines()
            .any(|l| l.starts_with("add verify-route fd77::4/128")
                && l.contains(" if a-n ")
                && l.contains(" blame origin ")),
        "{dump}"
    );
    // n's route (288) is better than x's (496) but out of selection and a's kernel: the
    // traffic goes through x, which stays in good standing.
    assert!(
        wait_for(60, || route_dev(&a, "fd77::4").as_deref() == Some("a-x")),
        "traffic did not move: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    let dump = try_control(&a, "dump\nquit\n");
    assert!(
        dump.lines().any(|l| l.contains("prefix fd77::4/128 ")
            && l.contains(" installed no ")
            && l.contains(" metric 288 ")
            && l.contains(" if a-n")),
        "{dump}"
    );
    assert!(wait_for(30, || ping(&a, "fd77::4")), "no ping through x");
    let v = verify_json(&a);
    assert!(
        neighbour(&v, "a-x").is_none_or(|r| r["evicted"] == false),
        "{v}"
    );
    for mut p in ds {
        p.terminate();
    }
}

/// The same mesh with the origin test on passing checks off: n's checks pass, its trace names
/// x, nothing blames it, and it is never evicted.
#[test]
fn without_the_passing_origin_test_a_claim_under_the_next_hops_stays() {
    let test = "without_the_passing_origin_test_a_claim_under_the_next_hops_stays";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let ([a, n, x, _d], ds) = under_next_hop_mesh("vpn", false);
    assert!(
        wait_for(120, || route_dev(&a, "fd77::4").as_deref() == Some("a-n")),
        "a never chose n's route: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    assert!(wait_for(60, || ping(&a, "fd77::4")), "no ping through n");
    let _traffic = Pinger::start(&a);
    let n_ll = n.link_local("n-a").to_string();
    let x_ll = x.link_local("x-a").to_string();
    // Four checks of n's route after its trace named x: each `window` (15 s) apart from the one
    // before at least once, which evicts with the rule on.
    let via = n_ll.clone();
    let monitor = monitor_until(&a, 300, move |t| checks_via(t, &via).len() >= 4);
    let traced = wait_for(240, || {
        verify_json(&a)["routes"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|r| r["interface"] == "a-n" && r["next_hop"] == x_ll.as_str())
        })
    });
    let text = monitor.join().unwrap();
    let dump = try_control(&a, "dump\nquit\n");
    assert!(traced, "x never named as n's next hop\n{dump}");
    let checks = checks_via(&text, &n_ll);
    assert!(checks.len() >= 4, "{text}\n{}", ds[0].log_text());
    for l in &checks {
        assert!(
            l.contains(" accuracy 1000 ") && l.contains(" blame unknown kept"),
            "{l}"
        );
    }
    assert!(!standing_changed(&text, "evicted"), "{text}");
    let v = verify_json(&a);
    assert!(
        neighbour(&v, "a-n").is_none_or(|r| r["evicted"] == false),
        "{v}"
    );
    assert_eq!(route_dev(&a, "fd77::4").as_deref(), Some("a-n"));
    for mut p in ds {
        p.terminate();
    }
}

/// §9.6: without `CAP_NET_RAW` (dropped from the bounding set with `setpriv`) the raw ICMPv6
/// socket cannot be opened: the daemon logs it once, counts it, sends no trace, and verifies on
/// without attribution.
#[test]
fn without_a_raw_socket_verification_runs_without_attribution() {
    let test = "without_a_raw_socket_verification_runs_without_attribution";
    if !usable(test) || !have("setpriv", test) {
        return;
    }
    let _serial = one_at_a_time();
    let (a, h, d) = (node("vna", 1), node("vnh", 3), node("vnd", 4));
    veth(&a, "a-h", &h, "h-a");
    veth(&h, "h-d", &d, "d-h");
    let (d_seed, d_pub) = destination_key();
    let (args, log) = common::daemon_args(
        "vna",
        &format!(
            "{}verify-attribution true\nverify-destination fd77::4/128\n",
            verifier_config(&d_pub)
        ),
        &[],
        &["a-h"],
    );
    let mut wrapped = vec!["--bounding-set=-net_raw", "--", common::daemon_bin()];
    wrapped.extend(args.iter().map(String::as_str));
    let ds = [
        common::DaemonProcess::start(&a, "setpriv", &wrapped, log),
        start_with_config(&h, "vnh", common::daemon_bin(), FILTERS, &["h-a", "h-d"]),
        start_with_config(
            &d,
            "vnd",
            common::daemon_bin(),
            &destination_config(&d_seed),
            &["d-h"],
        ),
    ];
    let answered = wait_for(180, || {
        verify_json(&a)["counters"]["answers"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    let dump = try_control(&a, "dump\nquit\n");
    assert!(answered, "no check answered\n{dump}\n{}", ds[0].log_text());
    let head = dump
        .lines()
        .find(|l| l.starts_with("verify public-key"))
        .unwrap();
    assert!(head.contains(" trace-socket-failed 1"), "{head}");
    assert!(head.contains(" traces-sent 0 "), "{head}");
    assert_eq!(verify_json(&a)["trace_socket_failed"], 1);
    let log = ds[0].log_text();
    assert_eq!(
        log.matches("no raw ICMPv6 socket").count(),
        1,
        "logged once: {log}"
    );
    assert!(
        wait_for(60, || passed_check(&a, "a-h", u64::MAX)),
        "the route through h never passed\n{}",
        try_control(&a, "dump\nquit\n")
    );
    for mut x in ds {
        x.terminate();
    }
}

/// §4.3: an evicted neighbour earns trust back. The liar is evicted (hold 60 s), then stops
/// lying (its lie, a kernel route announced with metric 1, is withdrawn, and it routes to d by
/// Babel like anyone) and a's other path goes down. While the eviction lasts, its routes stay out
/// of a's kernel (a has no route to d at all: the last resort is turned off, see
/// [`an_evicted_neighbour_that_is_the_only_way_serves_as_a_last_resort`]); when the hold ends it
/// is readmitted on probation, its route to d returns to the kernel, pings go through it, and its
/// checks pass.
#[test]
fn an_evicted_neighbour_is_readmitted_after_its_hold() {
    let test = "an_evicted_neighbour_is_readmitted_after_its_hold";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let ([a, l, _h, d], ds) = liar_mesh("vr", "verify-hold 60\nverify-last-resort false\n");
    let _traffic = Pinger::start(&a);
    let monitor = monitor_until(&a, 600, |t| t.contains(" readmitted\n"));
    let evicted = |a: &Netns| is_evicted(a, "a-l");
    assert!(
        wait_for(240, || evicted(&a)),
        "the liar was not evicted\n{}",
        ds[0].log_text()
    );
    // It stops lying; the honest path goes away.
    l.ip(&["-6", "route", "del", "fd77::4/128"]);
    a.ip(&["link", "set", "a-h", "down"]);
    let mut sampled_evicted = 0;
    let readmitted = wait_for(240, || {
        let before = evicted(&a);
        let dev = route_dev(&a, "fd77::4");
        if before && evicted(&a) {
            assert_ne!(
                dev.as_deref(),
                Some("a-l"),
                "an evicted neighbour's route is in the kernel"
            );
            sampled_evicted += 1;
        }
        !before && !evicted(&a)
    });
    assert!(readmitted, "never readmitted\n{}", ds[0].log_text());
    assert!(
        sampled_evicted > 0,
        "the eviction was over before it was observed"
    );
    // Its route returns to the kernel and carries the traffic.
    assert!(
        wait_for(120, || route_dev(&a, "fd77::4").as_deref() == Some("a-l")),
        "the readmitted neighbour's route did not return: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    assert!(wait_for(60, || ping(&a, "fd77::4")), "no ping through l");
    let text = monitor.join().unwrap();
    assert!(standing_changed(&text, "readmitted"), "{text}");
    // On probation its checks pass (it is honest now), and it stays in.
    assert!(
        wait_for(120, || passed_check(&a, "a-l", 8)),
        "no passing check through the readmitted neighbour\n{}",
        try_control(&a, "dump\nquit\n")
    );
    let v = verify_json(&a);
    let n = neighbour(&v, "a-l").unwrap();
    assert_eq!(n["evicted"], false, "{v}");
    assert_eq!(n["evictions"], 1, "{v}");
    let _ = d;
    for mut x in ds {
        x.terminate();
    }
}

/// §4.3, the last resort: the liar is evicted and a's honest path goes down. The liar is then
/// the only way to d, and its route returns to a's kernel while it stays evicted (it still lies),
/// so that pings reach d; once the honest path is back, the route leaves the liar again. `dump`,
/// `dump json` and the metrics count the routes on the last resort. The route to l's own address
/// through h is unfeasible at first (l's direct route set the feasibility distance): a asks h
/// for a newer seqno, and it moves off l too.
#[test]
fn an_evicted_neighbour_that_is_the_only_way_serves_as_a_last_resort() {
    let test = "an_evicted_neighbour_that_is_the_only_way_serves_as_a_last_resort";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let ([a, _l, _h, d], ds) = liar_mesh("vl", "");
    let _traffic = Pinger::start(&a);
    let evicted = |a: &Netns| is_evicted(a, "a-l");
    // Our installed routes through the evicted liar (`dump json`).
    let last_resort =
        |a: &Netns| neighbour(&verify_json(a), "a-l").and_then(|n| n["last_resort"].as_u64());
    assert!(
        wait_for(240, || evicted(&a)),
        "the liar was not evicted\n{}",
        ds[0].log_text()
    );
    assert_eq!(route_dev(&a, "fd77::4").as_deref(), Some("a-h"));
    // The route to l's own address through h was unfeasible, but asked for (its new seqno
    // makes it feasible): none is left on the last resort while h offers them.
    assert!(
        wait_for(60, || last_resort(&a) == Some(0)),
        "routes left on the last resort while h offers them\n{}",
        try_control(&a, "dump\nquit\n")
    );
    a.ip(&["link", "set", "a-h", "down"]);
    assert!(
        wait_for(120, || route_dev(&a, "fd77::4").as_deref() == Some("a-l")),
        "no last-resort route through the evicted liar: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    assert!(wait_for(60, || ping(&a, "fd77::4")), "no ping through l");
    assert!(evicted(&a), "the liar was readmitted while it still lies");
    // The operator sees why an evicted neighbour still carries traffic, in `dump json` and
    // `dump`.
    assert!(
        last_resort(&a).is_some_and(|n| n >= 1),
        "the last-resort route is not counted: {:?}",
        neighbour(&verify_json(&a), "a-l")
    );
    let dump = try_control(&a, "dump\nquit\n");
    assert!(
        dump.lines().any(|l| l.starts_with("add verify-neighbour ")
            && l.contains(" if a-l ")
            && l.contains(" evicted true ")
            && !l.ends_with(" last-resort 0")),
        "{dump}"
    );
    let show = a.exec(&[test_support::babelctl(), "show", "-s", "33123", "routes"]);
    assert!(
        show.lines()
            .any(|l| l.starts_with("fd77::4/128") && l.contains("last-resort")),
        "{show}"
    );
    let m = try_control(&a, "metrics\nquit\n");
    assert!(
        m.lines()
            .any(|l| l.starts_with("babel_verify_last_resort_routes{")
                && l.contains("interface=\"a-l\"")
                && l.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v >= 1)),
        "{m}"
    );
    a.ip(&["link", "set", "a-h", "up"]);
    assert!(
        wait_for(120, || route_dev(&a, "fd77::4").as_deref() == Some("a-h")),
        "the route stayed with the evicted liar once the honest path was back: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    assert!(evicted(&a));
    assert!(
        wait_for(60, || last_resort(&a) == Some(0)),
        "a route left on the last resort\n{}",
        try_control(&a, "dump\nquit\n")
    );
    let _ = d;
    for mut x in ds {
        x.terminate();
    }
}

/// §2.1 `verify-relayed-probes-used` between real kernels: a - h - d and a - g - d, a verifies
/// d (always used: `verify-destination`) through both; h and g verify too, with d's key, and no
/// data goes to d. h, with the option, finds d used from a's Remote Hellos it forwards and
/// checks d itself; g, without it, does not count them: d is not in its used set and it never
/// checks d.
#[test]
fn relayed_remote_hellos_make_the_destination_used_only_with_the_option() {
    let test = "relayed_remote_hellos_make_the_destination_used_only_with_the_option";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let [a, h, g, d] = nodes("vu", ["a", "h", "g", "d"]);
    veth(&a, "a-h", &h, "h-a");
    veth(&a, "a-g", &g, "g-a");
    veth(&h, "h-d", &d, "d-h");
    veth(&g, "g-d", &d, "d-g");
    let (d_seed, d_pub) = destination_key();
    let mut ds = vec![
        start_with_config(
            &a,
            "vua",
            common::daemon_bin(),
            &format!(
                "{}verify-destination fd77::4/128\n",
                verifier_config(&d_pub)
            ),
            &["a-h", "a-g"],
        ),
        start_with_config(
            &h,
            "vuh",
            common::daemon_bin(),
            &format!(
                "{}verify-relayed-probes-used true\n",
                verifier_config(&d_pub)
            ),
            &["h-a", "h-d"],
        ),
        start_with_config(
            &g,
            "vug",
            common::daemon_bin(),
            &verifier_config(&d_pub),
            &["g-a", "g-d"],
        ),
        start_with_config(
            &d,
            "vud",
            common::daemon_bin(),
            &destination_config(&d_seed),
            &["d-h", "d-g"],
        ),
    ];
    let sessions = |ns: &Netns| {
        verify_json(ns)["counters"]["sessions"]
            .as_u64()
            .unwrap_or(0)
    };
    let used = |ns: &Netns| {
        ns.exec(&["nft", "list", "set", "inet", "babeld_rs_verify", "used"])
            .contains("fd77::4")
    };
    // a's checks through both relays pass.
    assert!(
        wait_for(180, || passed_check(&a, "a-h", 30)
            && passed_check(&a, "a-g", 30)),
        "a did not check d through both relays\n{}",
        try_control(&a, "dump\nquit\n")
    );
    assert!(
        wait_for(120, || used(&h) && sessions(&h) > 0),
        "h did not take d as used from the Remote Hellos it forwards: used set has d: {}, sessions {}\n{}",
        used(&h),
        sessions(&h),
        ds[1].log_text()
    );
    // g forwarded as many of a's Remote Hellos all the while.
    assert!(passed_check(&a, "a-g", 30));
    assert!(!used(&g), "g counted forwarded Remote Hellos as use");
    assert_eq!(sessions(&g), 0, "g checked d without using it");
    println!("h: {} sessions; g: {} sessions", sessions(&h), sessions(&g));
    for x in &mut ds {
        x.terminate();
    }
}

/// a - r - l - d, where l lies about d (a kernel route announced with metric 1) and r, a
/// verifier, relays the lie honestly; a verifies with `d` used. `*_extra` are added to the
/// configurations of a, r and l.
fn relay_mesh(
    tag: &str,
    a_extra: &str,
    r_extra: &str,
    l_extra: &str,
) -> ([Netns; 4], Vec<common::DaemonProcess>) {
    let [a, r, l, d] = nodes(tag, ["a", "r", "l", "d"]);
    veth(&a, "a-r", &r, "r-a");
    veth(&r, "r-l", &l, "l-r");
    veth(&l, "l-d", &d, "d-l");
    let (d_seed, d_pub) = destination_key();
    let mut ds = vec![
        start_with_config(
            &a,
            &format!("{tag}a"),
            common::daemon_bin(),
            &format!(
                "{}verify-destination fd77::4/128\n{a_extra}",
                verifier_config(&d_pub)
            ),
            &["a-r"],
        ),
        start_with_config(
            &r,
            &format!("{tag}r"),
            common::daemon_bin(),
            &format!("{}{r_extra}", verifier_config(&d_pub)),
            &["r-a", "r-l"],
        ),
        start_with_config(
            &d,
            &format!("{tag}d"),
            common::daemon_bin(),
            &destination_config(&d_seed),
            &["d-l"],
        ),
    ];
    kernel_route_to_d(&l, &d.link_local("d-l"), "l-d");
    ds.push(start_with_config(
        &l,
        &format!("{tag}l"),
        common::daemon_bin(),
        &format!("redistribute ip fd77::4/128 metric 1 allow\n{FILTERS}{l_extra}"),
        &["l-r", "l-d"],
    ));
    ([a, r, l, d], ds)
}

/// §2.5 `verify-check-requests` between real kernels: a - r - l - d, where l lies about d (a
/// kernel route announced with metric 1) and r relays the lie honestly. a's checks of d through
/// r fail; a sends r a Check Failed over their link; r, which uses no destination and so checks
/// nothing of its own, takes it and checks its own route to d, through l, which fails too. r
/// corrects its route, and a's checks through r pass again.
#[test]
fn a_failing_check_asks_the_relay_to_check_its_own_route() {
    let test = "a_failing_check_asks_the_relay_to_check_its_own_route";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let requests = "verify-check-requests true\n";
    let ([a, r, _l, _d], mut ds) = relay_mesh("vc", requests, requests, "");
    let counter = |ns: &Netns, name: &str| verify_json(ns)["counters"][name].as_u64().unwrap_or(0);
    // r's own check of d through l, failed.
    let failed_via_l = |ns: &Netns| {
        verify_json(ns)["routes"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|x| x["interface"] == "r-l" && x["accuracy"].as_u64().is_some_and(|a| a < 800))
        })
    };
    assert!(
        wait_for(180, || counter(&a, "check_failed_sent") > 0),
        "a sent no Check Failed\n{}",
        try_control(&a, "dump\nquit\n")
    );
    assert!(
        wait_for(120, || counter(&r, "check_failed_received") > 0
            && failed_via_l(&r)),
        "r did not check its route to d after a's Check Failed: received {}, sessions {}\n{}",
        counter(&r, "check_failed_received"),
        counter(&r, "sessions"),
        ds[1].log_text()
    );
    assert_eq!(verify_json(&r)["check_failed_refused"], 0);
    // r corrected its route (its claim rose to what the path costs): a's checks through it pass.
    assert!(
        wait_for(120, || passed_check(&a, "a-r", 10)),
        "a's checks through r never passed again\n{}",
        try_control(&a, "dump\nquit\n")
    );
    println!(
        "a: {} Check Failed sent; r: {} taken, {} sessions",
        counter(&a, "check_failed_sent"),
        counter(&r, "check_failed_received"),
        counter(&r, "sessions")
    );
    for x in &mut ds {
        x.terminate();
    }
}

/// §4.2.5 justified claims between real kernels: a - r - l - d, where l lies about d (a kernel
/// route announced with metric 1) and r relays the lie honestly (it claims 97). a's checks of
/// d through r fail; a sends r a Justify Request over their link, r asks l (its next hop) for
/// a Signed Claim, l signs the metric it offers (1, for the owner prefix a binds to l's key),
/// and r relays it to a: r's claim is l's plus a link, justified. a keeps r (never evicted), its
/// checks through r blame the next hop (`justified`), and the route through r stays corrected.
/// The same mesh with `verify-justification false` at a evicts r.
#[test]
fn a_relay_justifies_its_claim_with_its_next_hops_signature() {
    let test = "a_relay_justifies_its_claim_with_its_next_hops_signature";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    relay_of_a_lie("vj", true);
    relay_of_a_lie("vk", false);
}

/// The mesh of [`a_relay_justifies_its_claim_with_its_next_hops_signature`], with
/// `verify-justification` at a set to `on`: kept and justified, or evicted.
fn relay_of_a_lie(tag: &str, on: bool) {
    let l_seed = [3u8; 32];
    let l_pub = hex::encode(
        verify::SigningKey::from_bytes(&l_seed)
            .verifying_key()
            .as_bytes(),
    );
    let ([a, r, l, _d], mut ds) = relay_mesh(
        tag,
        &format!("verify-key fd77::3/128 {l_pub}\nverify-justification {on}\n"),
        "",
        &format!(
            "verify-enable true\nverify-private-key {}\nverify-owner fd77::3/128\n",
            hex::encode(l_seed)
        ),
    );
    let counter = |ns: &Netns, name: &str| verify_json(ns)["counters"][name].as_u64().unwrap_or(0);
    if !on {
        // Without justification the honest relay is evicted as a liar would be.
        assert!(
            wait_for(240, || is_evicted(&a, "a-r")),
            "r was not evicted without justification\n{}",
            try_control(&a, "dump\nquit\n")
        );
        assert_eq!(counter(&a, "justify_requests_sent"), 0);
        for x in &mut ds {
            x.terminate();
        }
        return;
    }
    assert!(
        wait_for(240, || counter(&a, "justified") >= 2),
        "r's claim never justified: a sent {} Justify Requests, refused {} claims; l signed {}\n{}\n{}",
        counter(&a, "justify_requests_sent"),
        counter(&a, "claims_refused"),
        verify_json(&l)["claims_signed"],
        try_control(&a, "dump\nquit\n"),
        ds[1].log_text()
    );
    let va = verify_json(&a);
    let n = neighbour(&va, "a-r").expect("a scores r");
    assert_eq!(n["evictions"], 0, "{va}");
    assert_eq!(n["evicted"], false, "{va}");
    assert_eq!(va["counters"]["claims_refused"], 0, "{va}");
    assert_eq!(verify_json(&r)["justify_refused"], 0);
    assert!(verify_json(&l)["claims_signed"].as_u64().unwrap_or(0) >= 2);
    // Asked, r also sent a its Update as it is now (step 2), though it had a next hop to ask.
    assert!(verify_json(&r)["readvertised"].as_u64().unwrap_or(0) >= 1);
    // The checks through r blame its next hop, and the route through r is priced at its cost.
    let text = try_control(&a, "dump\nquit\n");
    assert!(
        text.lines()
            .any(|x| x.contains("verify-route fd77::4/128") && x.contains("justified")),
        "{text}"
    );
    println!(
        "a: {} Justify Requests, {} justified; l: {} Signed Claims",
        counter(&a, "justify_requests_sent"),
        counter(&a, "justified"),
        verify_json(&l)["claims_signed"]
    );
    for x in &mut ds {
        x.terminate();
    }
}

/// The refmetric of the route to `prefix` through interface `iface` in `dump` text, if it has
/// one that is not a retraction (`refmetric` under 65535).
fn claim_via(dump: &str, prefix: &str, iface: &str) -> Option<u64> {
    dump.lines()
        .filter(|l| l.contains(" route ") && l.contains(&format!("prefix {prefix} ")))
        .filter(|l| l.ends_with(&format!(" if {iface}")))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "refmetric")?;
            w.get(i + 1)?.parse::<u64>().ok()
        })
        .find(|m| *m < 0xFFFF)
}

/// §4.2.5 step 2 between real kernels: a claim its router no longer makes is advertised again.
/// a - r - d and a - h - d, where h's link to d costs 150 (both ends' rxcost): a routes to d
/// through r (192), and h's route (246) is feasible too, so a checks both. r's Updates to a
/// say they hold for 200 s (a would keep a claim of r's for 700 s), with split horizon. The
/// link r - d goes down while a drops every Babel packet from r that is not a Hello, so the
/// retraction r sends when it loses its only route to d is lost, and then r's seqno requests.
/// a keeps the stale claim and its traffic to d dies at r. a's checks through r find the black hole (the destination answers the checks through h);
/// a sends r a Justify Request; r has no route to ask about and sends a its Update for d as it
/// is now, a retraction. a drops the claim, routes through h, and r is never evicted.
#[test]
fn a_claim_nobody_backs_is_retracted_when_its_justification_is_asked() {
    let test = "a_claim_nobody_backs_is_retracted_when_its_justification_is_asked";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let [a, r, h, d] = nodes("vr", ["a", "r", "h", "d"]);
    veth(&a, "a-r", &r, "r-a");
    veth(&r, "r-d", &d, "d-r");
    veth(&a, "a-h", &h, "h-a");
    veth(&h, "h-d", &d, "d-h");
    let (d_seed, d_pub) = destination_key();
    let mut ds = vec![
        start_with_config(
            &a,
            "vra",
            common::daemon_bin(),
            &format!(
                "{}verify-destination fd77::4/128\n",
                verifier_config(&d_pub)
            ),
            &["a-r", "a-h"],
        ),
        start_with_config(
            &r,
            "vrr",
            common::daemon_bin(),
            &format!(
                "{}interface r-a split-horizon true update-interval 200\n",
                verifier_config(&d_pub)
            ),
            &["r-a", "r-d"],
        ),
        start_with_config(
            &h,
            "vrh",
            common::daemon_bin(),
            &format!("{FILTERS}interface h-d rxcost 150\n"),
            &["h-a", "h-d"],
        ),
        start_with_config(
            &d,
            "vrd",
            common::daemon_bin(),
            &format!("{}interface d-h rxcost 150\n", destination_config(&d_seed)),
            &["d-r", "d-h"],
        ),
    ];
    let dump = |ns: &Netns| try_control(ns, "dump\nquit\n");
    let counter = |ns: &Netns, name: &str| verify_json(ns)["counters"][name].as_u64().unwrap_or(0);
    // a routes through r on r's direct claim (96), and its checks through r pass.
    assert!(
        wait_for(120, || claim_via(&dump(&a), "fd77::4/128", "a-r")
            == Some(96)
            && route_dev(&a, "fd77::4").as_deref() == Some("a-r")
            && passed_check(&a, "a-r", u64::MAX)),
        "a never routed through r on its direct claim\n{}",
        dump(&a)
    );
    // a drops what r sends it over Babel, except Hellos (the first TLV's type, 4): the first
    // rule counts the seqno requests dropped (first TLV 10), the second the other packets
    // dropped (r's retraction and its repeats), the third the Hellos let through.
    nft_load(
        &a,
        "table inet mute {\n chain input {\n  type filter hook input priority 0; policy accept;\n  iifname \"a-r\" udp dport 6696 @th,96,8 10 counter drop\n  iifname \"a-r\" udp dport 6696 @th,96,8 != 4 counter drop\n  iifname \"a-r\" udp dport 6696 counter\n }\n}\n",
    );
    let counted = |a: &Netns, rule: usize| nft_counters(a, "mute").get(rule).copied().unwrap_or(0);
    r.ip(&["link", "set", "r-d", "down"]);
    assert!(
        wait_for(60, || route_dev(&r, "fd77::4").is_none()),
        "r kept a route to d: {:?}\n{}",
        route_dev(&r, "fd77::4"),
        dump(&r)
    );
    // What r sent when it lost the route must all be dropped before a lets r's Updates in
    // again: the retraction is sent once and repeated `URGENT_REPEATS` times, the last repeat
    // `URGENT_REPEATS` times min(`REQUEST_TIMEOUT`, half a Hello interval), 4 s, after the
    // first (RFC 8966 §3.7.2). a waits for that many packets dropped, and, in case some of them
    // were other Updates of r's, for three of r's Hellos after the loss: at least 15/16 of 4 s
    // apart, the third comes 7.5 s after the first, past the last repeat. From then on a drops
    // only r's seqno requests (first TLV 10): forwarded through h, one would have d raise its
    // seqno, and the stale claim, older than a's routes, would no longer be checked.
    let seen = counted(&a, 2);
    let repeats = u64::from(babel_core::URGENT_REPEATS);
    assert!(
        wait_for(60, || counted(&a, 1) > repeats
            && counted(&a, 2) >= seen + 3),
        "r's retraction was not dropped {} times: {:?}",
        repeats + 1,
        nft_counters(&a, "mute")
    );
    let dropped = counted(&a, 0) + counted(&a, 1);
    nft_load(
        &a,
        "delete table inet mute\ntable inet mute {\n chain input {\n  type filter hook input priority 0; policy accept;\n  iifname \"a-r\" udp dport 6696 @th,96,8 10 counter drop\n }\n}\n",
    );
    assert!(dropped > 0, "nothing of r's was dropped");
    // a's checks through r find the black hole, a asks r to justify its claim, r advertises d
    // again, and the claim leaves a's table, well inside the 700 s it would otherwise be kept.
    assert!(
        wait_for(120, || claim_via(&dump(&a), "fd77::4/128", "a-r").is_none()),
        "a still holds r's claim: {} Justify Requests sent, r readvertised {}\n{}\n{}",
        counter(&a, "justify_requests_sent"),
        verify_json(&r)["readvertised"],
        dump(&a),
        ds[1].log_text()
    );
    assert!(counter(&a, "justify_requests_sent") >= 1, "{}", dump(&a));
    let readvertised = verify_json(&r)["readvertised"].as_u64().unwrap_or(0);
    assert!(readvertised >= 1, "{}", dump(&r));
    assert_eq!(verify_json(&r)["justify_refused"], 0);
    // The traffic takes h, and r was never evicted: the failure was corrected by the
    // retraction.
    assert!(
        wait_for(60, || route_dev(&a, "fd77::4").as_deref() == Some("a-h")),
        "a does not route through h: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        dump(&a)
    );
    assert!(wait_for(30, || ping(&a, "fd77::4")), "no ping through h");
    let va = verify_json(&a);
    let n = neighbour(&va, "a-r").expect("a scores r");
    assert_eq!(n["evictions"], 0, "{va}");
    assert_eq!(n["evicted"], false, "{va}");
    println!(
        "a: {} Justify Requests, {} black holes; r: {readvertised} Updates sent again; {dropped} packets of r's dropped",
        counter(&a, "justify_requests_sent"),
        counter(&a, "black_holes"),
    );
    for x in &mut ds {
        x.terminate();
    }
}

/// §5.2 between real kernels: a black hole is corrected to a cost of nearly infinity, and the
/// routers behind the verifier keep the destination. a - r - n - d, all honest; r verifies d
/// (always used). Once r's checks of d through n pass, r's nftables starts dropping d's Remote
/// IHUs: the next session is unanswered while d answered recently, a black hole (`MAX_COST`),
/// and r corrects its only route to d to it. r still forwards to d through n; it advertises
/// the route at `CORRECTION_CEILING`, not at 65,534, which a's link would have made infinite:
/// a keeps its route to d through r, at the ceiling plus its link, and its pings reach d.
#[test]
fn a_black_hole_correction_leaves_the_routers_behind_a_route() {
    let test = "a_black_hole_correction_leaves_the_routers_behind_a_route";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let tag = "vk";
    let [a, r, n, d] = nodes(tag, ["a", "r", "n", "d"]);
    veth(&a, "a-r", &r, "r-a");
    veth(&r, "r-n", &n, "n-r");
    veth(&n, "n-d", &d, "d-n");
    let (d_seed, d_pub) = destination_key();
    let plain = |ns: &Netns, name: &str, ifs: &[&str]| {
        start_with_config(
            ns,
            &format!("{tag}{name}"),
            common::daemon_bin(),
            FILTERS,
            ifs,
        )
    };
    let mut ds = vec![
        plain(&a, "a", &["a-r"]),
        start_with_config(
            &r,
            &format!("{tag}r"),
            common::daemon_bin(),
            &format!(
                "{}verify-destination fd77::4/128\n",
                verifier_config(&d_pub)
            ),
            &["r-a", "r-n"],
        ),
        plain(&n, "n", &["n-r", "n-d"]),
        start_with_config(
            &d,
            &format!("{tag}d"),
            common::daemon_bin(),
            &destination_config(&d_seed),
            &["d-n"],
        ),
    ];
    let dump = |ns: &Netns| try_control(ns, "dump\nquit\n");
    assert!(
        wait_for(180, || passed_check(&r, "r-n", 10)),
        "r's checks of d through n never passed\n{}",
        dump(&r)
    );
    // a's route to d through r, as a's engine holds it: (refmetric, metric).
    let at_a = || {
        dump_json(&a)["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["prefix"] == "fd77::4/128" && x["installed"] == true)
            .map(|x| (x["refmetric"].as_u64(), x["metric"].as_u64()))
    };
    assert_eq!(at_a(), Some((Some(192), Some(288))), "{}", dump(&a));
    nft_load(
        &r,
        "table inet mute {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ip6 saddr != fe80::/10 udp sport 6699 counter drop\n }\n}\n",
    );
    let black_holes = || {
        verify_json(&r)["counters"]["black_holes"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        wait_for(120, || black_holes() > 0),
        "no black hole at r: {} Remote IHUs dropped\n{}",
        nft_counter(&r, "mute"),
        dump(&r)
    );
    let ceiling = u64::from(babel_core::CORRECTION_CEILING);
    assert!(
        wait_for(30, || at_a()
            .is_some_and(|(refmetric, _)| refmetric == Some(ceiling))),
        "a's route to d: {:?}, want r's advertisement at {ceiling}\n{}\n{}",
        at_a(),
        dump(&a),
        dump(&r)
    );
    assert_eq!(at_a(), Some((Some(ceiling), Some(ceiling + 96))));
    // r still routes to d through n, with the black hole's cost in force.
    assert_eq!(route_dev(&r, "fd77::4").as_deref(), Some("r-n"));
    assert_eq!(route_dev(&a, "fd77::4").as_deref(), Some("a-r"));
    let via_n = verify_json(&r)["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["interface"] == "r-n")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        via_n["cost"],
        u64::from(babel_wire::INFINITY - 1),
        "{via_n}"
    );
    assert!(wait_for(30, || ping(&a, "fd77::4")), "a cannot reach d");
    println!(
        "r: {} black holes, {} Remote IHUs dropped; a's route to d {:?}",
        black_holes(),
        nft_counter(&r, "mute"),
        at_a()
    );
    for x in &mut ds {
        x.terminate();
    }
}

/// Packets counted by the nftables rule of table `inet NAME` in `ns` (its first `counter`).
fn nft_counter(ns: &Netns, table: &str) -> u64 {
    nft_counters(ns, table).first().copied().unwrap_or(0)
}

/// Packets counted by each `counter` of table `inet NAME` in `ns`, in order.
fn nft_counters(ns: &Netns, table: &str) -> Vec<u64> {
    let text = ns.exec(&["nft", "list", "table", "inet", table]);
    text.split("counter packets ")
        .skip(1)
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect()
}

/// §3.2.1 between real kernels: a route to a LAN `/64` (not a host route) is verified at its
/// `::1`. a - b - d, and d's LAN fd77:0:0:4::/64 (its address ::1 there, a host at ::2 behind
/// it) is announced by d. a pings the host, which makes the `/64` used; a's Remote Hellos for
/// the `/64` arrive at d addressed to fd77:0:0:4::1 (counted by an nftables rule on d), d
/// answers for the `/64` with the key a has for it, and a measures the two hops.
#[test]
fn a_lan_prefix_is_probed_at_its_first_address() {
    let test = "a_lan_prefix_is_probed_at_its_first_address";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let (a, b, d, host) = (
        node("vpa", 1),
        node("vpb", 2),
        node("vpd", 4),
        Netns::new("vph"),
    );
    veth(&a, "a-b", &b, "b-a");
    veth(&b, "b-d", &d, "d-b");
    veth(&d, "d-lan", &host, "lan-d");
    // The LAN: d's address ::1 without the kernel's connected route, and the /64 as an ordinary
    // route (what d redistributes); the host at ::2 routes everything through d.
    d.ip(&[
        "addr",
        "add",
        "fd77:0:0:4::1/64",
        "dev",
        "d-lan",
        "noprefixroute",
    ]);
    d.ip(&["-6", "route", "add", "fd77:0:0:4::/64", "dev", "d-lan"]);
    host.ip(&["addr", "add", "fd77:0:0:4::2/64", "dev", "lan-d"]);
    host.ip(&["-6", "route", "add", "default", "via", "fd77:0:0:4::1"]);
    // Remote Hellos that reach d's ::1 on the verification port.
    nft_load(
        &d,
        "table inet probes {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ip6 daddr fd77:0:0:4::1 udp dport 6699 counter\n }\n}\n",
    );
    let (d_seed, d_pub) = destination_key();
    // d announces the /64 and not its ::1 as a host route.
    let d_conf = format!(
        "redistribute local ip fd77:0:0:4::/64 deny\nredistribute ip fd77:0:0:4::/64 allow\n{}",
        destination_config(&d_seed)
    );
    let a_conf = format!("{FILTERS}verify-enable true\nverify-key fd77:0:0:4::/64 {d_pub}\n{FAST}");
    let ds = vec![
        start_with_config(&a, "vpa", common::daemon_bin(), &a_conf, &["a-b"]),
        start_with_config(&b, "vpb", common::daemon_bin(), FILTERS, &["b-a", "b-d"]),
        start_with_config(&d, "vpd", common::daemon_bin(), &d_conf, &["d-b"]),
    ];
    assert!(
        wait_for(120, || ping(&a, "fd77:0:0:4::2")),
        "no route to the LAN\n{}",
        try_control(&a, "dump\nquit\n")
    );
    let routes = try_control(&a, "dump\nquit\n");
    assert!(
        routes
            .lines()
            .any(|l| l.contains("prefix fd77:0:0:4::/64") && l.contains("installed yes")),
        "the /64 is not a route of a\n{routes}"
    );
    let _traffic = Pinger::to(&a, "fd77:0:0:4::2");
    let checked = wait_for(240, || {
        verify_json(&a)["routes"].as_array().is_some_and(|rs| {
            rs.iter().any(|r| {
                r["prefix"] == "fd77:0:0:4::/64" && r["cost"] == 192 && r["accuracy"] == 1000
            })
        })
    });
    let v = verify_json(&a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    assert!(
        checked,
        "the /64 was never checked\n{v}\n{}\n{}",
        ds[0].log_text(),
        ds[2].log_text()
    );
    // The Remote Hellos went to the /64's ::1, and d answered them for the /64.
    let arrived = nft_counter(&d, "probes");
    assert!(arrived > 0, "no Remote Hello reached fd77:0:0:4::1");
    let dv = verify_json(&d);
    assert!(dv["answers_sent"].as_u64().unwrap() > 0, "{dv}");
    assert_eq!(dv["refused"], 0, "{dv}");
    let c = &v["counters"];
    assert!(c["answers"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(c["unbound_key"], 0, "{v}");
    assert_eq!(c["bad_signature"], 0, "{v}");
    assert_eq!(c["evictions"], 0, "{v}");
    // No route to ::1 as a host route exists anywhere: the probes were for the /64.
    assert!(
        !try_control(&a, "dump\nquit\n").contains("prefix fd77:0:0:4::1/128"),
        "d announced its ::1 as a host route"
    );
    for mut x in ds {
        x.terminate();
    }
}

/// Drops `percent` % of what arrives on `dev` in `ns` (nftables' random numbers; the kernel
/// here has no netem).
fn lossy(ns: &Netns, dev: &str, percent: u32) {
    nft_load(
        ns,
        &format!(
            "table inet lossy {{\n chain pre {{\n  type filter hook prerouting priority -300; policy accept;\n  iifname \"{dev}\" numgen random mod 100 < {percent} drop\n }}\n}}\n"
        ),
    );
}

/// Loads an nftables `script` in `ns`.
fn nft_load(ns: &Netns, script: &str) {
    let mut c = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success());
}

#[test]
fn honest_neighbours_on_a_lossy_link_are_never_evicted() {
    let test = "honest_neighbours_on_a_lossy_link_are_never_evicted";
    if !usable(test) || !have("babeld", test) {
        return;
    }
    let _serial = one_at_a_time();
    let (a, h1, h2, d) = (
        node("vha", 1),
        node("vh1", 2),
        node("vh2", 3),
        node("vhd", 4),
    );
    veth(&a, "a-1", &h1, "1-a");
    veth(&a, "a-2", &h2, "2-a");
    veth(&h1, "1-d", &d, "d-1");
    veth(&h2, "2-d", &d, "d-2");
    lossy(&a, "a-1", 10);
    lossy(&h1, "1-a", 10);
    let (d_seed, d_pub) = destination_key();
    let mut ds = vec![
        // A mixed mesh: neither the stock babeld nor h1 (no verification) can justify a
        // claim, so a's audits of their passing checks (§4.2.6) are off, as an operator
        // turns them off in a mesh with such routers.
        start_with_config(
            &a,
            "vha",
            common::daemon_bin(),
            &format!("{}verify-audit-claims false\n", verifier_config(&d_pub)),
            &["a-1", "a-2"],
        ),
        start_with_config(&h1, "vh1", common::daemon_bin(), FILTERS, &["1-a", "1-d"]),
        start_with_config(&h2, "vh2", "babeld", FILTERS, &["2-a", "2-d"]),
        start_with_config(
            &d,
            "vhd",
            common::daemon_bin(),
            &destination_config(&d_seed),
            &["d-1", "d-2"],
        ),
    ];
    assert_routes_to_d(&a);
    let _traffic = Pinger::start(&a);
    // At least six passing checks through each neighbour.
    let checked = wait_for(300, || {
        let v = verify_json(&a);
        let c = v["counters"]["checks"].as_u64().unwrap_or(0);
        let both = ["a-1", "a-2"].iter().all(|i| neighbour(&v, i).is_some());
        both && c >= 12
    });
    let v = verify_json(&a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    assert!(checked, "too few checks\n{v}\n{}", ds[0].log_text());
    for i in ["a-1", "a-2"] {
        let n = neighbour(&v, i).unwrap();
        assert_eq!(n["evicted"], false, "{i} evicted: {v}");
        assert_eq!(n["evictions"], 0, "{i}: {v}");
    }
    assert_eq!(v["counters"]["evictions"], 0);
    // No honest claim rose only when asked (`verify-asked-rises`, on by default, counts them).
    assert_eq!(v["counters"]["asked_rises"], 0, "{v}");
    for r in v["routes"].as_array().unwrap() {
        assert!(
            r["accuracy"].is_null() || r["accuracy"].as_u64().unwrap() >= 800,
            "{r}"
        );
    }
    // babeld skips the Remote TLVs even on its own port: Remote Hellos sent to it leave it
    // running and routing.
    let h2_ll = h2.link_local("2-a");
    let ifindex = a.ifindex("a-2");
    let hello = babel_wire::encode_packet(
        &babel_wire::Packet {
            messages: vec![babel_wire::Message::RemoteHello(babel_wire::RemoteHello {
                seqno: 1,
                interval: 25,
                origin: babel_wire::RouterId([1; 8]),
                via: babel_wire::RouterId([2; 8]),
                prefix: "fd77::3/128".parse().unwrap(),
                timestamp: Some(1),
            })],
            macs: Vec::new(),
        },
        babel_wire::Flavour::Standard,
    )
    .unwrap()
    .to_vec();
    a.spawn(move || {
        let s = std::net::UdpSocket::bind("[::]:0").unwrap();
        let to = std::net::SocketAddrV6::new(h2_ll, 6696, 0, ifindex);
        for _ in 0..10 {
            s.send_to(&hello, to).unwrap();
        }
    })
    .join()
    .unwrap();
    assert!(ds[2].alive(), "babeld died on a Remote Hello");
    assert!(
        wait_for(30, || ping(&a, "fd77::3")),
        "babeld stopped routing"
    );
    for mut x in ds {
        x.terminate();
    }
}

/// The links of the churn test's grid, `(i, j)` for nodes `fd77::i` and `fd77::j`:
///
/// ```text
/// 1 - 2 - 3
/// |   |   |
/// 4 - 5 - 6
/// ```
const GRID: [(u8, u8); 7] = [(1, 2), (2, 3), (4, 5), (5, 6), (1, 4), (2, 5), (3, 6)];

/// The signing seed and public key (hex) of grid node `i`.
fn grid_key(i: u8) -> (String, String) {
    let seed = [0x40 + i; 32];
    let k = verify::SigningKey::from_bytes(&seed);
    (hex::encode(seed), hex::encode(k.verifying_key().as_bytes()))
}

/// Cuts (`cut`) or restores the link between grid nodes `i` and `j`: every packet arriving on
/// it at either end dropped by nftables, as a radio link that dies without its interface going
/// down, so the neighbours time out on lost Hellos.
fn set_cut(ns: &[Netns], i: u8, j: u8, cut: bool) {
    for (x, y) in [(i, j), (j, i)] {
        let at = &ns[usize::from(x - 1)];
        let dev = format!("{x}-{y}");
        if cut {
            nft_load(
                at,
                &format!(
                    "table inet cut {{\n chain pre {{\n  type filter hook prerouting priority -310; policy accept;\n  iifname \"{dev}\" drop\n }}\n}}\n"
                ),
            );
        } else {
            nft_load(at, "delete table inet cut\n");
        }
    }
}

/// The sum of a `verify` counter over the grid's daemons.
fn grid_counter(ns: &[Netns], name: &str) -> u64 {
    ns.iter()
        .map(|n| verify_json(n)["counters"][name].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until the grid's daemons together have completed `more` checks past `from` (the
/// churn's clock is the verifiers' own work, not wall time), and checks that nobody has been
/// evicted so far.
fn await_checks(ns: &[Netns], from: u64, more: u64, what: &str) -> u64 {
    let mut now = from;
    let done = wait_for(240, || {
        now = grid_counter(ns, "checks");
        now >= from + more
    });
    assert!(done, "{what}: {now} checks, wanted {}", from + more);
    let evicted = grid_counter(ns, "evictions");
    assert_eq!(evicted, 0, "{what}: evictions\n{}", grid_report(ns));
    now
}

/// Whether `ns` has a neighbour on `dev` at a finite cost (`dump json`).
fn link_up(ns: &Netns, dev: &str) -> bool {
    dump_json(ns)["neighbours"].as_array().is_some_and(|n| {
        n.iter()
            .any(|n| n["interface"] == dev && n["cost"].as_u64().is_some_and(|c| c < 65535))
    })
}

/// The routes to `prefix` in `ns`'s `dump json`, and its own seqno.
fn routes_json(ns: &Netns, prefix: &str) -> String {
    let j = dump_json(ns);
    let routes: Vec<&serde_json::Value> = j["routes"]
        .as_array()
        .map(|rs| rs.iter().filter(|r| r["prefix"] == prefix).collect())
        .unwrap_or_default();
    format!(
        "seqno {} routes {}",
        j["seqno"],
        serde_json::to_string(&routes).unwrap()
    )
}

/// Each grid daemon's verification counters, a line per node.
fn grid_report(ns: &[Netns]) -> String {
    let mut report = String::new();
    for (k, n) in ns.iter().enumerate() {
        let v = verify_json(n);
        let c = &v["counters"];
        report.push_str(&format!(
            "node {}: sessions {} checks {} black holes {} corrections {} justify requests {} audits {} justified {} refused {} asked rises {} evictions {}; relayed: readvertised {} justify refused {} claims signed {}\n",
            k + 1,
            c["sessions"],
            c["checks"],
            c["black_holes"],
            c["corrections"],
            c["justify_requests_sent"],
            c["audits"],
            c["justified"],
            c["claims_refused"],
            c["asked_rises"],
            c["evictions"],
            v["readvertised"],
            v["justify_refused"],
            v["claims_signed"],
        ));
    }
    report
}

/// "No honest neighbour ever dropped" where the simulation found every honest eviction: routes
/// in flux. Six honest daemons in a grid, each verifying every other one's address (each
/// holds its own key and the others' bindings, audits on: the defaults but for the fast
/// cycles), every node pinging every other, one link lossy (5 % each way). Each of the seven
/// links is cut in turn and restored; while it is cut the routes across it move around the
/// grid, relays' claims change under the sessions in progress and Justify Requests meet routes
/// that are moving. The churn advances on the verifiers' work (so many completed checks per
/// phase), not on a clock. Nobody may be evicted, nobody may count a claim risen only when
/// asked, and every node reaches every other at the end. The interfaces are not declared
/// wired, so, as with babeld, they have no split horizon: a router whose route runs through
/// its verifier advertises it back, and asked to justify it, asks the verifier itself
/// (before it asked nobody, and six runs of seven evicted an honest neighbour by an audit).
#[test]
fn an_honest_grid_whose_links_fail_in_turn_evicts_nobody() {
    let test = "an_honest_grid_whose_links_fail_in_turn_evicts_nobody";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let ns: Vec<Netns> = (1..=6u8).map(|i| node(&format!("vg{i}"), i)).collect();
    for &(i, j) in &GRID {
        veth(
            &ns[usize::from(i - 1)],
            &format!("{i}-{j}"),
            &ns[usize::from(j - 1)],
            &format!("{j}-{i}"),
        );
    }
    lossy(&ns[1], "2-5", 5);
    lossy(&ns[4], "5-2", 5);
    let mut ds = Vec::new();
    for i in 1..=6u8 {
        let (seed, _) = grid_key(i);
        let mut conf = format!("{FILTERS}verify-enable true\nverify-private-key {seed}\n{FAST}");
        for j in (1..=6u8).filter(|j| *j != i) {
            conf.push_str(&format!("verify-key fd77::{j}/128 {}\n", grid_key(j).1));
        }
        let ifaces: Vec<String> = GRID
            .iter()
            .filter_map(|&(x, y)| match (x == i, y == i) {
                (true, _) => Some(format!("{x}-{y}")),
                (_, true) => Some(format!("{y}-{x}")),
                _ => None,
            })
            .collect();
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        ds.push(start_with_config(
            &ns[usize::from(i - 1)],
            &format!("vg{i}"),
            common::daemon_bin(),
            &conf,
            &ifaces,
        ));
    }
    let everyone = |ns: &[Netns]| {
        (1..=6u8).all(|i| {
            (1..=6u8)
                .filter(|j| *j != i)
                .all(|j| route_dev(&ns[usize::from(i - 1)], &format!("fd77::{j}")).is_some())
        })
    };
    assert!(
        wait_for(120, || everyone(&ns)),
        "the grid did not converge\n{}",
        try_control(&ns[0], "dump\nquit\n")
    );
    let _traffic: Vec<Pinger> = (1..=6u8)
        .flat_map(|i| (1..=6u8).filter(move |j| *j != i).map(move |j| (i, j)))
        .map(|(i, j)| Pinger::to(&ns[usize::from(i - 1)], &format!("fd77::{j}")))
        .collect();
    let mut checks = await_checks(&ns, 0, 60, "before the churn");
    for &(i, j) in &GRID {
        set_cut(&ns, i, j, true);
        // The routes across the cut leave it: i reaches j around the grid.
        let (a, dev) = (&ns[usize::from(i - 1)], format!("{i}-{j}"));
        assert!(
            wait_for(60, || route_dev(a, &format!("fd77::{j}"))
                .is_some_and(|d| d != dev)),
            "{i} still routes to {j} over the cut link\n{}\n{}",
            grid_report(&ns),
            routes_json(a, &format!("fd77::{j}/128"))
        );
        checks = await_checks(&ns, checks, 40, &format!("{i}-{j} cut"));
        set_cut(&ns, i, j, false);
        // The link is back once i hears j over it again at a finite cost. Whether the routes
        // move back onto it is route selection's affair (RFC 8966 A.3: the smoothed metric of a
        // link that was down, or is lossy, keeps them away for a while).
        assert!(
            wait_for(60, || link_up(a, &dev)),
            "{i} does not hear {j} over the restored link\n{}",
            try_control(a, "dump\nquit\n")
        );
        checks = await_checks(&ns, checks, 40, &format!("{i}-{j} restored"));
    }
    let report = grid_report(&ns);
    println!("{report}");
    for (k, n) in ns.iter().enumerate() {
        let v = verify_json(n);
        assert_eq!(
            v["counters"]["evictions"],
            0,
            "node {}: {v}\n{report}",
            k + 1
        );
        assert_eq!(
            v["counters"]["asked_rises"],
            0,
            "node {}: {v}\n{report}",
            k + 1
        );
        for nb in v["neighbours"].as_array().unwrap() {
            assert_eq!(nb["evicted"], false, "node {}: {nb}\n{report}", k + 1);
        }
    }
    // One echo may be lost on the lossy link: each pair gets a minute to answer one.
    for i in 1..=6u8 {
        for j in (1..=6u8).filter(|j| *j != i) {
            assert!(
                wait_for(60, || ping(&ns[usize::from(i - 1)], &format!("fd77::{j}"))),
                "{i} does not reach {j} after the churn\n{report}"
            );
        }
    }
    for d in &mut ds {
        assert!(d.alive(), "a daemon died");
        d.terminate();
    }
}

/// §4.2.6 and §4.3 in a mixed mesh, the hazard an operator must see: a line a - b - d where b
/// is Debian's stock babeld. b forwards a's probes and its claim for d passes every check, but
/// b's next hop is none of a's neighbours, so a audits the claim, and babeld cannot relay a
/// Justify Request: with `verify-audit-claims` left on, the audit evicts b. The standing says
/// so (`monitor`, `dump`, `dump json`: `audit` of the route to d) and the log's warning names
/// the option that a mesh with stock Babel routers sets (with it off, the lossy-link test keeps
/// its stock neighbour; with `signers`, the next test).
#[test]
fn a_stock_babeld_neighbour_audited_is_evicted_and_the_standing_says_why() {
    let test = "a_stock_babeld_neighbour_audited_is_evicted_and_the_standing_says_why";
    stock_babeld_neighbour(test, "vsa", "true");
}

/// The same mesh with `verify-audit-claims signers` (§4.2.6): b never shows that it runs
/// verification (nothing it originates answers a Remote Hello), so its passing claim is never
/// audited, and it keeps its standing over six passing checks.
#[test]
fn with_audits_of_signers_only_a_stock_babeld_neighbour_is_kept() {
    let test = "with_audits_of_signers_only_a_stock_babeld_neighbour_is_kept";
    stock_babeld_neighbour(test, "vso", "signers");
}

/// a - b - d, b Debian's babeld, a verifying d with `verify-audit-claims AUDITS`: `true`
/// evicts b by the audit, `signers` keeps it.
fn stock_babeld_neighbour(test: &str, tag: &str, audits: &str) {
    if !usable(test) || !have("babeld", test) {
        return;
    }
    let _serial = one_at_a_time();
    let (a, b, d) = (
        node(&format!("{tag}a"), 1),
        node(&format!("{tag}b"), 2),
        node(&format!("{tag}d"), 4),
    );
    veth(&a, "a-b", &b, "b-a");
    veth(&b, "b-d", &d, "d-b");
    let (d_seed, d_pub) = destination_key();
    let mut ds = vec![
        start_with_config(
            &a,
            &format!("{tag}a"),
            common::daemon_bin(),
            &format!("{}verify-audit-claims {audits}\n", verifier_config(&d_pub)),
            &["a-b"],
        ),
        start_with_config(&b, &format!("{tag}b"), "babeld", FILTERS, &["b-a", "b-d"]),
        start_with_config(
            &d,
            &format!("{tag}d"),
            common::daemon_bin(),
            &destination_config(&d_seed),
            &["d-b"],
        ),
    ];
    assert_routes_to_d(&a);
    let _traffic = Pinger::start(&a);
    let b_ll = b.link_local("b-a").to_string();
    if audits == "signers" {
        // Six passing checks of b's route, the first of which `true` audits.
        let via = b_ll.clone();
        let monitor = monitor_until(&a, 300, move |t| {
            checks_via(t, &via)
                .iter()
                .filter(|l| l.contains(" accuracy 1000 "))
                .count()
                >= 6
        });
        let text = monitor.join().unwrap();
        let v = verify_json(&a);
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        let passed = checks_via(&text, &b_ll)
            .iter()
            .filter(|l| l.contains(" accuracy 1000 "))
            .count();
        assert!(passed >= 6, "{text}");
        assert!(!standing_changed(&text, "evicted"), "{text}");
        assert_eq!(v["counters"]["audits"], 0, "{v}");
        assert_eq!(v["counters"]["evictions"], 0, "{v}");
        let standing = neighbour(&v, "a-b").unwrap();
        assert_eq!(standing["evicted"], false, "{v}");
        assert!(standing["last_eviction"].is_null(), "{v}");
    } else {
        // b's checks pass (it forwards the probes and claims what the path measures), and
        // the audit evicts it; why is everywhere an operator looks.
        let (_, _, dump) = evicted_by_audit(&a, "a-b", &b_ll, &ds[0]);
        assert!(
            dump.lines()
                .any(|l| l.starts_with(&format!("add verify-neighbour {b_ll} "))
                    && l.contains(" last-eviction audit last-eviction-prefix fd77::4/128 ")),
            "{dump}"
        );
        let log = ds[0].log_text();
        assert!(
            log.lines().any(|l| l.contains("evicted")
                && l.contains("audited")
                && l.contains("verify-audit-claims false")),
            "{log}"
        );
        let m = try_control(&a, "metrics\nquit\n");
        assert!(
            m.lines()
                .any(|l| l.starts_with("babel_verify_last_eviction{")
                    && l.contains("interface=\"a-b\"")
                    && l.contains("cause=\"audit\"")
                    && l.ends_with(" 1")),
            "{m}"
        );
        // The only way to d stays, as the last resort (§4.3): babeld was never a liar.
        assert!(route_dev(&a, "fd77::4").is_some(), "{dump}");
    }
    assert!(ds[1].alive(), "babeld died");
    for x in &mut ds {
        x.terminate();
    }
}

/// Through the mesh tunnels (`type mesh` interfaces: one tunnel interface per neighbour): in a
/// diamond a - b - d, a - c - d, a checks both of its routes to d, the selected one and the
/// other one (through policy routing into the other tunnel), each measured as the two tunnel
/// hops it is.
#[test]
fn verification_runs_through_the_mesh_tunnels() {
    if !can_run_mesh("verification_runs_through_the_mesh_tunnels", &[]) {
        return;
    }
    let _serial = one_at_a_time();
    let (a, b, c, d) = (
        node("vma", 1),
        node("vmb", 2),
        node("vmc", 3),
        node("vmd", 4),
    );
    veth(&a, "a-b", &b, "b-a");
    veth(&a, "a-c", &c, "c-a");
    veth(&b, "b-d", &d, "d-b");
    veth(&c, "c-d", &d, "d-c");
    let (d_seed, d_pub) = destination_key();
    let ds = vec![
        start_mesh_router(
            &a,
            "vma",
            common::daemon_bin(),
            &format!("verify-enable true\nverify-key fd77::4/128 {d_pub}\n{FAST}"),
            &["a-b", "a-c"],
        ),
        start_mesh_router(&b, "vmb", common::daemon_bin(), "", &["b-a", "b-d"]),
        start_mesh_router(&c, "vmc", common::daemon_bin(), "", &["c-a", "c-d"]),
        start_mesh_router(
            &d,
            "vmd",
            common::daemon_bin(),
            &format!("verify-enable true\nverify-private-key {d_seed}\n"),
            &["d-b", "d-c"],
        ),
    ];
    assert!(
        wait_for(180, || ping(&a, "fd77::4")),
        "no route to d through the tunnels\n{}",
        try_control(&a, "dump\nquit\n")
    );
    let _traffic = Pinger::start(&a);
    let both = wait_for(240, || {
        let v = verify_json(&a);
        let checked: Vec<_> = v["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["prefix"] == "fd77::4/128" && r["cost"] == 192 && r["accuracy"] == 1000)
            .map(|r| r["neighbour"].as_str().unwrap_or("").to_owned())
            .collect();
        checked.len() == 2 && checked[0] != checked[1]
    });
    let v = verify_json(&a);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    assert!(
        both,
        "both routes not checked through the tunnels\n{v}\n{}",
        try_control(&a, "dump\nquit\n")
    );
    // The checks went through tunnel interfaces, not the veths.
    for r in v["routes"].as_array().unwrap() {
        let i = r["interface"].as_str().unwrap();
        assert!(i != "a-b" && i != "a-c", "{r}");
    }
    assert_eq!(v["counters"]["evictions"], 0);
    for mut x in ds {
        x.terminate();
    }
}

/// How long the evasive liar of [`evasive_mesh`] tells the truth after each ask.
const EVASIVE_HOLD: std::time::Duration = std::time::Duration::from_secs(15);

/// a - l - d and a - h - d (`long` false), or a - l - x - y - d and a - h - d (`long` true,
/// where x signs what it offers with a key a binds). l lies about d to a alone (a kernel route
/// announced with metric 1, denied towards its next hop so that nobody behind it loops into
/// it) and relays Justify Requests (it runs verification without a key of its own). a verifies
/// with `a_extra`. Returns once a routes through l: the namespaces (a, l, h, d), those of x
/// and y (none on the short mesh), the link-local address of l's next hop towards l (the
/// lie's gateway) and the daemons, a's first.
fn evasive_mesh(
    tag: &str,
    long: bool,
    a_extra: &str,
) -> ([Netns; 4], Vec<Netns>, String, Vec<common::DaemonProcess>) {
    let [a, l, h, d] = nodes(tag, ["a", "l", "h", "d"]);
    veth(&a, "a-l", &l, "l-a");
    veth(&a, "a-h", &h, "h-a");
    veth(&h, "h-d", &d, "d-h");
    let (x_seed, x_pub) = key_of(5);
    let mut between = Vec::new();
    let (gateway, l_out, signer) = if long {
        let x = node(&format!("{tag}x"), 5);
        let y = node(&format!("{tag}y"), 6);
        veth(&l, "l-x", &x, "x-l");
        veth(&x, "x-y", &y, "y-x");
        veth(&y, "y-d", &d, "d-y");
        let gw = x.link_local("x-l").to_string();
        between.push(x);
        between.push(y);
        (gw, "l-x", format!("verify-key fd77::5/128 {x_pub}\n"))
    } else {
        veth(&l, "l-d", &d, "d-l");
        (d.link_local("d-l").to_string(), "l-d", String::new())
    };
    let d_ifs: &[&str] = if long {
        &["d-h", "d-y"]
    } else {
        &["d-h", "d-l"]
    };
    let mut ds = start_a_h_d(tag, [&a, &h, &d], &format!("{signer}{a_extra}"), d_ifs);
    if let [x, y] = &between[..] {
        ds.push(start_with_config(
            x,
            &format!("{tag}x"),
            common::daemon_bin(),
            &format!(
                "{}verify-private-key {x_seed}\nverify-owner fd77::5/128\n",
                relay_config()
            ),
            &["x-l", "x-y"],
        ));
        ds.push(start_with_config(
            y,
            &format!("{tag}y"),
            common::daemon_bin(),
            &relay_config(),
            &["y-x", "y-d"],
        ));
    }
    lie(&l, &gateway, l_out, true);
    ds.push(start_with_config(
        &l,
        &format!("{tag}l"),
        common::daemon_bin(),
        &format!(
            "redistribute ip fd77::4/128 metric 1 allow\nout ip fd77::4/128 if {l_out} deny\n{}",
            relay_config()
        ),
        &["l-a", l_out],
    ));
    assert!(
        wait_for(120, || route_dev(&a, "fd77::4").as_deref() == Some("a-l")),
        "a never chose the liar's route: {:?}\n{}",
        route_dev(&a, "fd77::4"),
        try_control(&a, "dump\nquit\n")
    );
    ([a, l, h, d], between, gateway, ds)
}

/// The liar's kernel route to d through `gateway` on `dev` (metric 2000, beside the one Babel
/// installs): added (`on`, so that l announces d at 1) or deleted (l routes to d by Babel).
fn lie(l: &Netns, gateway: &str, dev: &str, on: bool) {
    let route = |verb: &str| {
        l.ip(&[
            "-6",
            "route",
            verb,
            "fd77::4/128",
            "via",
            gateway,
            "dev",
            dev,
            "metric",
            "2000",
        ])
    };
    if !on {
        route("del");
        return;
    }
    // At the start the link may not take a gateway yet.
    assert!(wait_for(30, || {
        route("replace");
        l.ip(&["-6", "route", "show", "fd77::4/128"])
            .contains("metric 2000")
    }));
}

/// Runs `body` while l evades: whenever a Justify Request reaches it (its `readvertised`
/// counter moves), it stops lying for [`EVASIVE_HOLD`] and then lies again. `body` is given
/// the count of asks l has evaded so far; returns what `body` returns and that count.
fn evading<T>(
    l: &Netns,
    gateway: &str,
    dev: &str,
    body: impl FnOnce(&dyn Fn() -> u32) -> T,
) -> (T, u32) {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let readvertised = || verify_json(l)["readvertised"].as_u64().unwrap_or(0);
    let stop = AtomicBool::new(false);
    let evaded = AtomicU32::new(0);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let mut seen = readvertised();
            while !stop.load(Ordering::Relaxed) {
                if readvertised() > seen {
                    // Asked: tell the truth until the hold is over (the liar's strategy, not a
                    // wait for an event).
                    lie(l, gateway, dev, false);
                    evaded.fetch_add(1, Ordering::Relaxed);
                    let until = std::time::Instant::now() + EVASIVE_HOLD;
                    while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    lie(l, gateway, dev, true);
                    seen = readvertised();
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        let out = body(&|| evaded.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        out
    });
    (out, evaded.into_inner())
}

/// §4.2.5 "a claim that rises only when asked", on by default, between real kernels: the
/// evasive liar of [`evasive_mesh`] on the long mesh (a - l - x - y - d). Each time a asks it
/// to justify its claim of 1, it stops lying and routes by Babel through x, which offers 192:
/// its claim rises to x's signed word plus a link (288; 384 priced with a's link, what four
/// links measure), from under the floor by more than a relay's lag, and the Signed Claim it
/// relays justifies the risen claim. After the hold it lies again, a takes its route back, a
/// check fails and a asks again: the second such rise within the window evicts l
/// (`asked-rises`), its route leaves a's kernel and the pings go through h.
#[test]
fn an_evasive_liar_whose_claims_rise_only_when_asked_is_evicted() {
    let test = "an_evasive_liar_whose_claims_rise_only_when_asked_is_evicted";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    let ([a, l, _h, _d], _between, gateway, ds) = evasive_mesh("vea", true, "");
    let _traffic = Pinger::start(&a);
    let monitor = monitor_until(&a, 400, |t| standing_changed(t, "evicted"));
    let (evicted, evaded) = evading(&l, &gateway, "l-x", |_| {
        wait_for(300, || is_evicted(&a, "a-l"))
    });
    let v = evasive_liar_evicted(&a, monitor, (evicted, evaded), &ds[0], "asked-rises");
    assert!(
        v["counters"]["asked_rises"].as_u64().unwrap_or(0) >= 2,
        "{v}"
    );
    for mut x in ds {
        x.terminate();
    }
}

/// After [`evading`]: a evicted l (`evicted`, after `evaded` asks, at least two) for `cause`
/// of d's route, in `dump json` and in the `monitor` text (with a line for each claim risen
/// only once asked, two at least for `asked-rises`); h is kept and the pings go through
/// it. Returns a's `verify` object. `log` is the daemon whose log a failure prints.
fn evasive_liar_evicted(
    a: &Netns,
    monitor: std::thread::JoinHandle<String>,
    (evicted, evaded): (bool, u32),
    log: &common::DaemonProcess,
    cause: &str,
) -> serde_json::Value {
    let v = verify_json(a);
    assert!(
        evicted,
        "the evasive liar was not evicted ({evaded} asks evaded)\n{v}\n{}",
        log.log_text()
    );
    println!(
        "{evaded} asks evaded\n{}",
        serde_json::to_string_pretty(&v).unwrap()
    );
    assert!(evaded >= 2, "{evaded}");
    let n = neighbour(&v, "a-l").unwrap();
    assert_eq!(n["last_eviction"], cause, "{v}");
    assert_eq!(n["last_eviction_prefix"], "fd77::4/128", "{v}");
    let text = monitor.join().unwrap();
    let line = format!(" evicted {cause} fd77::4/128");
    assert!(
        text.lines()
            .any(|x| x.starts_with("verify neighbour ") && x.ends_with(&line)),
        "{text}"
    );
    // Each claim risen only once asked has its line before the eviction: the lie (1) risen.
    let rises = text
        .lines()
        .filter(|x| {
            x.starts_with("verify neighbour ") && x.contains(" asked-rise fd77::4/128 from 1 to ")
        })
        .count();
    let counted = v["counters"]["asked_rises"].as_u64().unwrap_or(0);
    if cause == "asked-rises" {
        assert!(rises >= 2, "{rises} asked-rise lines\n{text}");
    }
    assert!(
        u64::try_from(rises).unwrap() <= counted,
        "{counted}\n{text}"
    );
    // h, the honest way, is kept, and the traffic takes it.
    assert!(
        neighbour(&v, "a-h").is_none_or(|n| n["evicted"] == false),
        "{v}"
    );
    assert!(
        wait_for(60, || route_dev(a, "fd77::4").as_deref() == Some("a-h")),
        "traffic did not move: {:?}",
        route_dev(a, "fd77::4")
    );
    assert!(wait_for(30, || ping(a, "fd77::4")), "no ping through h");
    v
}

/// §4.2.5 "a claim that falls back" (`verify-fall-back`, off by default), between real kernels:
/// the evasive liar of [`evasive_mesh`] on the short mesh (a - l - d). Its lie (1) is within a
/// relay's lag of its floor (d signs 0, so 96), which "a claim that rises only when asked"
/// leaves alone. Without the option, each ask is justified by the rise and l is kept (three
/// asks evaded, no rise counted). With it, a watches the risen claim, sees it fall back when
/// l lies again, asks at once, and the claim that rises again evicts l (`fell-back`); its
/// route leaves a's kernel and the pings go through h.
#[test]
fn an_evasive_liar_whose_claim_falls_back_is_evicted_with_the_option() {
    let test = "an_evasive_liar_whose_claim_falls_back_is_evicted_with_the_option";
    if !usable(test) {
        return;
    }
    let _serial = one_at_a_time();
    {
        let ([a, l, _h, _d], _between, gateway, ds) = evasive_mesh("veo", false, "");
        let _traffic = Pinger::start(&a);
        let (kept, evaded) = evading(&l, &gateway, "l-d", |evaded| {
            wait_for(240, || evaded() >= 3 || is_evicted(&a, "a-l")) && !is_evicted(&a, "a-l")
        });
        let v = verify_json(&a);
        assert!(kept, "without the option: {evaded} asks evaded\n{v}");
        assert_eq!(v["counters"]["asked_rises"], 0, "{v}");
        assert_eq!(v["counters"]["fell_back"], 0, "{v}");
        assert!(v["counters"]["justified"].as_u64().unwrap_or(0) >= 1, "{v}");
        for mut x in ds {
            x.terminate();
        }
    }
    let ([a, l, _h, _d], _between, gateway, ds) =
        evasive_mesh("vef", false, "verify-fall-back true\n");
    let _traffic = Pinger::start(&a);
    let monitor = monitor_until(&a, 400, |t| standing_changed(t, "evicted"));
    let (evicted, evaded) = evading(&l, &gateway, "l-d", |_| {
        wait_for(300, || is_evicted(&a, "a-l"))
    });
    let v = evasive_liar_evicted(&a, monitor, (evicted, evaded), &ds[0], "fell-back");
    assert!(v["counters"]["fell_back"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(v["counters"]["asked_rises"], 0, "{v}");
    for mut x in ds {
        x.terminate();
    }
}
