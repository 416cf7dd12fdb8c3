//! RFC 9079 source-specific routing end to end, with Debian's babeld 1.12 as one gateway.
//!
//! ```text
//!   GW1 (babeld)  ::/0 from 2001:db8:1::/48 (a kernel route with a source, redistributed)
//!        |        2001:db8:ee::/64          (a plain route, for the §5.3 ordering check)
//!     client (babeld-rs), addresses 2001:db8:1::c and 2001:db8:2::c
//!        |
//!   GW2 (babeld-rs) ::/0, made "from 2001:db8:2::/48" by a `src-prefix` redistribute filter
//! ```
//!
//! Both gateways have 2001:db8:ff::1 on `lo`; which one answered a ping is read from their
//! `Icmp6InEchos` counters. Run once on native IPv6 subtrees and once with
//! `ipv6-subtrees false` (per-source tables and `from SRC` rules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::{
    Netns, can_use_netns, control, forwarding, have, ping_with, start_with_config, veth, wait_for,
};

const PORT: u16 = 33123;

/// `Icmp6InEchos` of a namespace.
fn in_echos(ns: &Netns) -> u64 {
    common::snmp(ns, "6", "Icmp6InEchos")
}

fn show(ns: &Netns, args: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["-n", &ns.name, "-6"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Net {
    c: Netns,
    g1: Netns,
    g2: Netns,
    ll_g1: String,
    ll_g2: String,
}

fn network(tag: &str) -> Net {
    let c = Netns::new(&format!("{tag}c"));
    let g1 = Netns::new(&format!("{tag}g1"));
    let g2 = Netns::new(&format!("{tag}g2"));
    for g in [&g1, &g2] {
        forwarding(g);
        g.ip(&["-6", "addr", "add", "2001:db8:ff::1/128", "dev", "lo"]);
    }
    g1.ip(&["-6", "addr", "add", "2001:db8:ee::1/128", "dev", "lo"]);
    c.ip(&["-6", "addr", "add", "2001:db8:1::c/128", "dev", "lo"]);
    c.ip(&["-6", "addr", "add", "2001:db8:2::c/128", "dev", "lo"]);
    veth(&c, "ssc1", &g1, "ssg1c");
    veth(&c, "ssc2", &g2, "ssg2c");
    // Each gateway's "uplink": a veth pair inside the gateway.
    veth(&g1, "ssup1a", &g1, "ssup1b");
    veth(&g2, "ssup2a", &g2, "ssup2b");
    g1.link_local("ssup1a");
    g2.link_local("ssup2a");
    g1.ip(&[
        "-6",
        "route",
        "add",
        "::/0",
        "from",
        "2001:db8:1::/48",
        "dev",
        "ssup1a",
        "proto",
        "static",
    ]);
    g1.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:ee::/64",
        "dev",
        "ssup1a",
        "proto",
        "static",
    ]);
    g2.ip(&[
        "-6", "route", "add", "::/0", "dev", "ssup2a", "proto", "static",
    ]);
    let ll_g1 = g1.link_local("ssg1c").to_string();
    let ll_g2 = g2.link_local("ssg2c").to_string();
    c.link_local("ssc1");
    c.link_local("ssc2");
    Net {
        c,
        g1,
        g2,
        ll_g1,
        ll_g2,
    }
}

/// Pings `to` from `from` in the client and checks that the echoes reached `right` and not
/// `wrong`.
fn goes_by(n: &Net, from: &str, to: &str, right: &Netns, wrong: &Netns, logs: &dyn Fn() -> String) {
    assert!(
        wait_for(30, || ping_with(
            &n.c,
            to,
            &["-n", "-q", "-c", "1", "-i", "0.2", "-W", "1", "-I", from]
        )),
        "no answer from {to} to {from}: {}\n{}",
        show(&n.c, &["route", "show", "table", "all"]),
        logs()
    );
    let (r0, w0) = (in_echos(right), in_echos(wrong));
    assert!(
        ping_with(
            &n.c,
            to,
            &["-n", "-q", "-c", "5", "-i", "0.2", "-W", "1", "-I", from]
        ),
        "{from} -> {to}"
    );
    let (r1, w1) = (in_echos(right), in_echos(wrong));
    assert!(
        r1 - r0 >= 5 && w1 == w0,
        "{from} -> {to}: {} echoes at {}, {} at {}",
        r1 - r0,
        right.name,
        w1 - w0,
        wrong.name
    );
}

const CLIENT: &str = "redistribute local ip 2001:db8::/32 allow\nredistribute local deny\n";
const GW1: &str = "redistribute ip ::/0 eq 0 allow\nredistribute ip 2001:db8:ee::/64 allow\nredistribute local deny\n";
const GW2: &str = "redistribute ip ::/0 eq 0 src-prefix 2001:db8:2::/48\nredistribute local deny\n";

fn run(test: &str, tag: &str, subtrees: bool) {
    if !can_use_netns(test) || !have("babeld", test) {
        return;
    }
    let n = network(tag);
    let mode = if subtrees {
        "ipv6-subtrees true\n"
    } else {
        "ipv6-subtrees false\nfirst-rule-priority 200\n"
    };
    let mut dc = start_with_config(
        &n.c,
        &format!("{tag}c"),
        common::daemon_bin(),
        &format!("{CLIENT}{mode}"),
        &["ssc1", "ssc2"],
    );
    let d1 = start_with_config(&n.g1, &format!("{tag}g1"), "babeld", GW1, &["ssg1c"]);
    let d2 = start_with_config(
        &n.g2,
        &format!("{tag}g2"),
        common::daemon_bin(),
        GW2,
        &["ssg2c"],
    );
    let logs = || {
        format!(
            "--- client\n{}\n--- gw1 (babeld)\n{}\n--- gw2\n{}",
            dc.log_text(),
            d1.log_text(),
            d2.log_text()
        )
    };

    // RFC 9079 routes in the client's kernel, with the right next hops.
    let want1 = format!("default from 2001:db8:1::/48 via {}", n.ll_g1);
    let want2 = format!("default from 2001:db8:2::/48 via {}", n.ll_g2);
    if subtrees {
        assert!(
            wait_for(40, || {
                let r = show(&n.c, &["route", "show", "proto", "babel"]);
                r.contains(&want1) && r.contains(&want2) && r.contains("2001:db8:ee::/64 via")
            }),
            "{}\n{}",
            show(&n.c, &["route", "show", "proto", "babel"]),
            logs()
        );
    } else {
        // Tables from 10 on, rules from first-rule-priority on; the kernel has no `from`.
        assert!(
            wait_for(40, || {
                let r = show(&n.c, &["rule", "show"]);
                r.contains("from 2001:db8:1::/48 lookup")
                    && r.contains("from 2001:db8:2::/48 lookup")
            }),
            "{}\n{}",
            show(&n.c, &["rule", "show"]),
            logs()
        );
        let rules = show(&n.c, &["rule", "show"]);
        for l in rules.lines().filter(|l| l.contains("2001:db8:")) {
            let prio: u32 = l.split(':').next().unwrap().trim().parse().unwrap();
            assert!((200..232).contains(&prio), "{l}");
            assert!(l.contains("proto babel"), "{l}");
        }
        let table_of = |src: &str| -> String {
            let l = rules.lines().find(|l| l.contains(src)).unwrap();
            let w: Vec<&str> = l.split_whitespace().collect();
            w[w.iter().position(|x| *x == "lookup").unwrap() + 1].to_owned()
        };
        let (t1, t2) = (table_of("2001:db8:1::/48"), table_of("2001:db8:2::/48"));
        assert!(
            wait_for(20, || {
                let a = show(&n.c, &["route", "show", "table", &t1]);
                let b = show(&n.c, &["route", "show", "table", &t2]);
                a.contains(&format!("default via {}", n.ll_g1))
                    && b.contains(&format!("default via {}", n.ll_g2))
                    // RFC 9079 §5.3: the plain, more specific route shadows T2's default.
                    && b.contains(&format!("2001:db8:ee::/64 via {}", n.ll_g1))
            }),
            "table {t1}: {}\ntable {t2}: {}\n{}",
            show(&n.c, &["route", "show", "table", &t1]),
            show(&n.c, &["route", "show", "table", &t2]),
            logs()
        );
        // No route with a source in the main table in this mode.
        assert!(!show(&n.c, &["route", "show", "proto", "babel"]).contains(" from "));
    }

    // Traffic leaves by the gateway of its source prefix.
    goes_by(&n, "2001:db8:1::c", "2001:db8:ff::1", &n.g1, &n.g2, &logs);
    goes_by(&n, "2001:db8:2::c", "2001:db8:ff::1", &n.g2, &n.g1, &logs);
    // RFC 9079 §5.3: a more specific destination wins over a more specific source.
    goes_by(&n, "2001:db8:2::c", "2001:db8:ee::1", &n.g1, &n.g2, &logs);

    // babeld saw GW2's `src-prefix` announcement with the right source (relayed by the
    // client), and our dump prints `from SRC` as babeld does.
    let dump = control(&n.g1, PORT, "dump\nquit\n");
    assert!(
        dump.lines()
            .any(|l| l.contains(" route ") && l.contains("prefix ::/0 from 2001:db8:2::/48")),
        "{dump}"
    );
    assert!(
        dump.lines()
            .any(|l| l.contains("xroute ::/0-2001:db8:1::/48 prefix ::/0 from 2001:db8:1::/48")),
        "{dump}"
    );
    let ours = control(&n.c, PORT, "dump\nquit\n");
    assert!(
        ours.lines()
            .any(|l| l.contains("prefix ::/0 from 2001:db8:1::/48 installed yes")),
        "{ours}"
    );
    let gw2 = control(&n.g2, PORT, "dump\nquit\n");
    assert!(
        gw2.lines()
            .any(|l| l.contains("xroute ::/0-2001:db8:2::/48 prefix ::/0 from 2001:db8:2::/48")),
        "{gw2}"
    );

    // At exit our routes go, and so do the rules.
    let all_logs = logs();
    assert!(dc.terminate().is_some_and(|s| s.success()), "{all_logs}");
    assert!(
        show(&n.c, &["route", "show", "table", "all", "proto", "babel"]).is_empty(),
        "{}",
        show(&n.c, &["route", "show", "table", "all", "proto", "babel"])
    );
    assert!(
        !show(&n.c, &["rule", "show"]).contains("2001:db8:"),
        "{}",
        show(&n.c, &["rule", "show"])
    );
}

#[test]
fn source_specific_default_routes_with_babeld_native_subtrees() {
    run(
        "source_specific_default_routes_with_babeld_native_subtrees",
        "ssn",
        true,
    );
}

#[test]
fn source_specific_default_routes_with_babeld_policy_rules() {
    run(
        "source_specific_default_routes_with_babeld_policy_rules",
        "ssr",
        false,
    );
}
