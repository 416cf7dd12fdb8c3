//! babeld's `in` and `out` filters on a real link with Debian's babeld as the neighbour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{
    babel_routes, can_use_netns, has_route, have, node, start_router, try_control, veth, wait_for,
};

/// The `metric` of the installed route line for `prefix` in a control-socket dump.
fn dump_metric(dump: &str, prefix: &str) -> Option<u32> {
    dump.lines()
        .filter(|l| l.contains(&format!("prefix {prefix} ")) && l.contains("installed yes"))
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "metric")?;
            w.get(i + 1)?.parse().ok()
        })
}

/// a (babeld-rs) filters what it takes from and gives to b (babeld): `in` deny and metric,
/// `out` deny and metric, each checked on the side that sees its effect.
#[test]
fn in_and_out_filters_against_babeld() {
    let t = "in_and_out_filters_against_babeld";
    if !can_use_netns(t) {
        return;
    }
    if !have("babeld", t) {
        return;
    }
    let (a, b) = (node("fla", 1), node("flb", 2));
    veth(&a, "flab", &b, "flba");
    let filters = "in ip 10.77.0.2/32 deny\n\
                   in ip fd77::2/128 metric 300\n\
                   out ip 10.77.0.1/32 deny\n\
                   out ip fd77::1/128 metric 200\n";
    let da = start_router(&a, "fla", common::daemon_bin(), filters, &["flab"]);
    let db = start_router(&b, "flb", "babeld", "", &["flba"]);
    let logs = || format!("--- a:\n{}\n--- b:\n{}", da.log_text(), db.log_text());

    // in: fd77::2 arrives with 300 added to babeld's metric 0 plus the link cost 96.
    assert!(
        wait_for(60, || dump_metric(
            &try_control(&a, "dump\nquit\n"),
            "fd77::2/128"
        ) == Some(396)),
        "a: {}\n{}",
        try_control(&a, "dump\nquit\n"),
        logs()
    );
    // out: babeld gets fd77::1 with our 200 added (plus its link cost 96).
    assert!(
        wait_for(60, || dump_metric(
            &try_control(&b, "dump\nquit\n"),
            "fd77::1/128"
        ) == Some(296)),
        "b: {}\n{}",
        try_control(&b, "dump\nquit\n"),
        logs()
    );
    // Both sides have now processed full updates from each other (IPv4 and IPv6 travel in the
    // same packets): the denied prefixes are absent, while their unfiltered counterparts are
    // there.
    assert!(has_route(&a, "fd77::2"));
    assert!(!has_route(&a, "10.77.0.2"), "a: {:?}", babel_routes(&a));
    assert!(has_route(&b, "fd77::1"));
    assert!(!has_route(&b, "10.77.0.1"), "b: {:?}", babel_routes(&b));
}
