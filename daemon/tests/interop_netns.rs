//! babeld-rs with the reference implementations, on real links: Debian's babeld 1.12 and BIRD 2.
//! Each test installs nothing itself; `scripts/test.sh` installs the packages as root, and a
//! test whose peer is missing prints why and skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::{
    DaemonProcess, Netns, babel_routes, can_use_netns, control, forwarding, has_route, have, node,
    ping_with, route_dev, start_router, tmp, veth, wait_for,
};

/// Starts babeld-rs (`ours`) or Debian's babeld with the same flags and filters.
fn start(ns: &Netns, name: &str, ours: bool, extra: &str, ifaces: &[&str]) -> DaemonProcess {
    start_router(
        ns,
        name,
        if ours { common::daemon_bin() } else { "babeld" },
        extra,
        ifaces,
    )
}

fn every_route(nodes: &[(&Netns, u8)], secs: u64, logs: &dyn Fn() -> String) {
    for (ns, me) in nodes {
        for (_, n) in nodes.iter().filter(|(_, n)| n != me) {
            for dst in [format!("10.77.0.{n}"), format!("fd77::{n}")] {
                assert!(
                    wait_for(secs, || has_route(ns, &dst)),
                    "{} never got {dst}: {:?}\n{}",
                    ns.name,
                    babel_routes(ns),
                    logs()
                );
            }
        }
    }
}

/// A ring a - b - c - d - a where babeld-rs (a, c) and Debian's babeld (b, d) alternate.
#[test]
fn mixed_ring_with_babeld_converges_reroutes_and_recovers() {
    let t = "mixed_ring_with_babeld_converges_reroutes_and_recovers";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let (a, b, c, d) = (
        node("mra", 1),
        node("mrb", 2),
        node("mrc", 3),
        node("mrd", 4),
    );
    veth(&a, "mrab", &b, "mrba");
    veth(&b, "mrbc", &c, "mrcb");
    veth(&c, "mrcd", &d, "mrdc");
    veth(&d, "mrda", &a, "mrad");
    let da = start(&a, "mra", true, "", &["mrab", "mrad"]);
    let db = start(&b, "mrb", false, "", &["mrba", "mrbc"]);
    let _dc = start(&c, "mrc", true, "", &["mrcb", "mrcd"]);
    let _dd = start(&d, "mrd", false, "", &["mrdc", "mrda"]);
    let logs = || format!("--- a:\n{}\n--- b:\n{}", da.log_text(), db.log_text());
    let nodes = [(&a, 1), (&b, 2), (&c, 3), (&d, 4)];
    every_route(&nodes, 90, &logs);
    assert!(
        wait_for(60, || route_dev(&a, "fd77::2").as_deref() == Some("mrab")),
        "{:?}",
        babel_routes(&a)
    );

    // IPv4 across links that carry no IPv4 address, through babeld (RFC 9229 next hops), and
    // IPv6, both ways between the two babeld-rs nodes (two hops, through a babeld).
    for (from, dst) in [
        (&a, "10.77.0.3"),
        (&a, "fd77::3"),
        (&c, "10.77.0.1"),
        (&c, "fd77::1"),
    ] {
        let ok = wait_for(30, || ping_with(from, dst, &["-c", "1", "-W", "1"]));
        assert!(
            ok,
            "{} cannot ping {dst}: {:?}",
            from.name,
            babel_routes(from)
        );
    }
    // Cut a - b: both go the long way round, through the other kind of daemon.
    a.ip(&["link", "set", "mrab", "down"]);
    assert!(
        wait_for(90, || route_dev(&a, "fd77::2").as_deref() == Some("mrad")),
        "a: {:?}\n{}",
        babel_routes(&a),
        logs()
    );
    assert!(
        wait_for(90, || route_dev(&a, "10.77.0.2").as_deref() == Some("mrad")),
        "a: {:?}",
        babel_routes(&a)
    );
    assert!(
        wait_for(90, || route_dev(&b, "fd77::1").as_deref() == Some("mrbc")),
        "b: {:?}\n{}",
        babel_routes(&b),
        logs()
    );
    every_route(&nodes, 90, &logs);

    // Restore it: the direct link is used again.
    a.ip(&["link", "set", "mrab", "up"]);
    assert!(
        wait_for(120, || route_dev(&a, "fd77::2").as_deref() == Some("mrab")),
        "a: {:?}\n{}",
        babel_routes(&a),
        logs()
    );
    assert!(
        wait_for(120, || route_dev(&b, "fd77::1").as_deref() == Some("mrba")),
        "b: {:?}",
        babel_routes(&b)
    );
}

/// babeld 1.12's dump and ours print the same kinds of lines with the same fields.
#[test]
fn dump_lines_match_babeld_field_for_field() {
    let t = "dump_lines_match_babeld_field_for_field";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let (a, b) = (node("dma", 1), node("dmb", 2));
    veth(&a, "dmab", &b, "dmba");
    let _da = start(&a, "dma", true, "", &["dmab"]);
    let _db = start(&b, "dmb", false, "", &["dmba"]);
    assert!(wait_for(60, || has_route(&a, "fd77::2")
        && has_route(&b, "fd77::1")
        && has_route(&a, "10.77.0.2")
        && has_route(&b, "10.77.0.1")));
    let ours = control(&a, 33123, "dump\nquit\n");
    let theirs = control(&b, 33123, "dump\nquit\n");
    // Field names of each line kind: every other word after the id.
    let shape = |dump: &str| -> Vec<(String, Vec<String>)> {
        let mut v: Vec<(String, Vec<String>)> = dump
            .lines()
            .filter(|l| l.starts_with("add "))
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let kind = w[1].to_string();
                let keys = w.iter().skip(3).step_by(2).map(|s| s.to_string()).collect();
                (kind, keys)
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(
        shape(&ours),
        shape(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    for kind in ["interface", "neighbour", "xroute", "route"] {
        assert!(
            ours.lines().any(|l| l.starts_with(&format!("add {kind} "))),
            "{kind} missing:\n{ours}"
        );
    }
    assert!(ours.starts_with("BABEL 1.0\nversion ") && theirs.starts_with("BABEL 1.0\nversion "));
}

/// Two Althea-flavoured babeld-rs nodes and a third behind one of them: prices accumulate as
/// Althea's fork shows them (direct neighbour `price 0`, through a node with fee 7 `price 7`).
#[test]
fn althea_flavour_accumulates_prices() {
    let t = "althea_flavour_accumulates_prices";
    if !can_use_netns(t) {
        return;
    }
    let (a, b, c) = (node("ala", 1), node("alb", 2), node("alc", 3));
    veth(&a, "alab", &b, "alba");
    veth(&b, "albc", &c, "alcb");
    let althea = "althea-compatible true\n";
    let _da = start(&a, "ala", true, &format!("{althea}fee 5\n"), &["alab"]);
    let _db = start(
        &b,
        "alb",
        true,
        &format!("{althea}fee 7\n"),
        &["alba", "albc"],
    );
    let _dc = start(&c, "alc", true, &format!("{althea}fee 11\n"), &["alcb"]);
    assert!(
        wait_for(60, || has_route(&a, "fd77::3") && has_route(&a, "fd77::2")),
        "{:?}",
        babel_routes(&a)
    );
    let dump = control(&a, 33123, "dump\nquit\n");
    assert!(dump.starts_with("ALTHEA 0.1\n"), "{dump}");
    let body: Vec<&str> = dump.lines().skip(5).collect();
    assert_eq!(body[0], "local fee 5", "{dump}");
    assert_eq!(body[1], "metric factor 1900", "{dump}");
    let route = |p: &str| {
        body.iter()
            .find(|l| l.starts_with("add route") && l.contains(&format!("prefix {p} ")))
            .map(|s| s.to_string())
    };
    let b_route = route("fd77::2/128").expect("route to b");
    let c_route = route("fd77::3/128").expect("route to c");
    assert!(b_route.contains(" price 0 fee 5 "), "{b_route}");
    assert!(c_route.contains(" price 7 fee 5 "), "{c_route}");
    // rita's parser: every key it needs is there, with a float full-path-rtt.
    for key in [
        "installed",
        "id",
        "metric",
        "price",
        "fee",
        "refmetric",
        "full-path-rtt",
        "via",
        "if",
        "prefix",
    ] {
        assert!(
            c_route.split(' ').any(|w| w == key),
            "{key} missing in {c_route}"
        );
    }
    // Runtime fee change through the control socket, as rita does.
    let out = control(
        &a,
        33123,
        "fee 9\nmetric-factor 1000\nkernel-check-interval 0\ndump\nquit\n",
    );
    assert!(
        out.contains("\nok\nok\nok\nlocal fee 9\nmetric factor 1000\n"),
        "{out}"
    );
}

/// BIRD 2 and babeld-rs exchange IPv6 and IPv4 routes. BIRD 2.0.12 predates RFC 9229, so the
/// link carries IPv4 addresses and IPv4 routes travel with AE 1 and IPv4 next hops, as babeld
/// sends them.
#[test]
fn bird2_learns_our_routes_and_we_learn_its() {
    let t = "bird2_learns_our_routes_and_we_learn_its";
    if !can_use_netns(t) || !have("bird", t) {
        return;
    }
    let (a, b) = (node("bia", 1), Netns::new("bib"));
    forwarding(&b);
    veth(&a, "biab", &b, "biba");
    a.ip(&["addr", "add", "10.98.0.1/24", "dev", "biab"]);
    b.ip(&["addr", "add", "10.98.0.2/24", "dev", "biba"]);
    let _da = start(
        &a,
        "bia",
        true,
        "redistribute ip fd88::/16 allow\n",
        &["biab"],
    );
    let conf = tmp("bird.conf");
    let sock = tmp("bird.ctl");
    std::fs::write(
        &conf,
        "router id 10.0.0.9;\n\
         protocol device { scan time 1; }\n\
         protocol static { ipv6; route fd99::/64 unreachable; }\n\
         protocol static { ipv4; route 10.99.9.0/24 unreachable; }\n\
         protocol kernel { ipv6 { export where source = RTS_BABEL; import none; }; }\n\
         protocol kernel { ipv4 { export where source = RTS_BABEL; import none; }; }\n\
         protocol babel { interface \"biba\" { type wired; hello interval 1 s; };\n\
           ipv6 { import all; export where source = RTS_STATIC || source = RTS_BABEL; };\n\
           ipv4 { import all; export where source = RTS_STATIC || source = RTS_BABEL; }; }\n",
    )
    .unwrap();
    let check = Command::new("bird")
        .args(["-p", "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bird config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = tmp("bird.log");
    let mut bird = DaemonProcess::start(
        &b,
        "bird",
        &[
            "-f",
            "-c",
            conf.to_str().unwrap(),
            "-s",
            sock.to_str().unwrap(),
        ],
        log,
    );
    assert!(bird.alive());
    // We learn BIRD's static routes, the IPv4 one via BIRD's IPv4 address.
    assert!(
        wait_for(90, || has_route(&a, "fd99::/64")),
        "a: {:?}",
        babel_routes(&a)
    );
    assert!(
        wait_for(90, || has_route(&a, "10.99.9.0/24")),
        "a: {:?}",
        babel_routes(&a)
    );
    assert!(
        babel_routes(&a)
            .iter()
            .any(|l| l.starts_with("10.99.9.0/24 via 10.98.0.2 ")),
        "{:?}",
        babel_routes(&a)
    );
    // BIRD learns ours and puts them in its kernel table (proto bird).
    let bird_has = |fam: &str, dst: &str| {
        let o = Command::new("ip")
            .args(["-n", &b.name, fam, "route", "show", dst])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("proto bird")
    };
    assert!(
        wait_for(90, || bird_has("-6", "fd77::1")),
        "bird never installed fd77::1"
    );
    assert!(
        wait_for(90, || bird_has("-4", "10.77.0.1")),
        "bird never installed 10.77.0.1"
    );
    drop(bird);
}
