//! babeld's `install` filter on real links, with Debian's babeld around the router under test.
//! Each scenario runs twice, with babeld and then babeld-rs in the middle, and both must do the
//! same thing: babeld is the reference (route.c `change_route` refuses a `ROUTE_ADD` only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{
    FILTERS, Netns, babel_routes, can_use_netns, has_route, have, node, start_router,
    start_with_config, try_control, veth, wait_for,
};

/// `installed yes|no` of each route line for `prefix` in a control-socket dump, with its `if`.
fn dump_routes(dump: &str, prefix: &str) -> Vec<(bool, String)> {
    dump.lines()
        .filter(|l| l.contains(" route ") && l.contains(&format!("prefix {prefix} ")))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1))
                    .map_or(String::new(), |s| (*s).to_owned())
            };
            (after("installed") == "yes", after("if"))
        })
        .collect()
}

/// The `dev` of the kernel route to `dst` in `ns` (our protocol), if there is one.
fn kernel_dev(ns: &Netns, dst: &str) -> Option<String> {
    babel_routes(ns)
        .iter()
        .filter(|l| l.split_whitespace().next() == Some(dst))
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "dev")?;
            w.get(i + 1).map(|s| (*s).to_owned())
        })
}

/// What the router in the middle did with a route its `install` filter refuses.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    /// The refused route's dump lines on m: (installed, interface).
    dump: Vec<(bool, String)>,
    /// m has the refused route in its kernel.
    in_kernel: bool,
    /// c, behind m, learned the refused route (m advertised it).
    beyond: bool,
}

/// a (babeld) — m (`program`, `install ip fd77::1/128 deny`) — c (babeld). a announces fd77::1
/// (refused by m's filter) and fd77::11 (allowed) in the same updates.
fn refusal(program: &str, tag: &str) -> Refusal {
    let (a, m, c) = (
        node(&format!("{tag}a"), 1),
        node(&format!("{tag}m"), 2),
        node(&format!("{tag}c"), 3),
    );
    a.ip(&["addr", "add", "fd77::11/128", "dev", "lo"]);
    veth(&a, "ia", &m, "im1");
    veth(&m, "im2", &c, "ic");
    let _da = start_router(&a, &format!("{tag}a"), "babeld", "", &["ia"]);
    let dm = start_router(
        &m,
        &format!("{tag}m"),
        program,
        "install ip fd77::1/128 deny\n",
        &["im1", "im2"],
    );
    let _dc = start_router(&c, &format!("{tag}c"), "babeld", "", &["ic"]);
    // fd77::11 crossed m: m processed a's update with fd77::1 in it and re-advertised.
    assert!(
        wait_for(60, || has_route(&c, "fd77::11")
            && !dump_routes(&try_control(&m, "dump\nquit\n"), "fd77::1/128")
                .is_empty()),
        "{program}: c {:?}\nm {}\n{}",
        babel_routes(&c),
        try_control(&m, "dump\nquit\n"),
        dm.log_text()
    );
    Refusal {
        dump: dump_routes(&try_control(&m, "dump\nquit\n"), "fd77::1/128"),
        in_kernel: has_route(&m, "fd77::1"),
        beyond: has_route(&c, "fd77::1"),
    }
}

/// A route the `install` filter refuses stays `installed no`, out of the kernel and off the
/// wire, in babeld and in babeld-rs alike.
#[test]
fn install_filter_refusal_as_babeld() {
    let t = "install_filter_refusal_as_babeld";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let reference = refusal("babeld", "irb");
    let ours = refusal(common::daemon_bin(), "irr");
    let expected = Refusal {
        dump: vec![(false, "im1".to_owned())],
        in_kernel: false,
        beyond: false,
    };
    assert_eq!(reference, expected, "babeld");
    assert_eq!(ours, expected, "babeld-rs");
}

/// The kernel interface of m's route to the anycast fd77::99 before and after a better route
/// appears through an interface its `install` filter refuses, and what `dump` says then.
#[derive(Debug, PartialEq, Eq)]
struct Switch {
    before: Option<String>,
    after: Option<String>,
    dump: Vec<(bool, String)>,
}

/// a1 (babeld, fd77::99 with metric 500) — m (`program`, `install if im2 deny`) — a2 (babeld,
/// fd77::99 with metric 0), a2 started once m has installed the route through a1.
fn switch(program: &str, tag: &str) -> Switch {
    let (a1, m, a2) = (
        node(&format!("{tag}a"), 1),
        node(&format!("{tag}m"), 2),
        node(&format!("{tag}b"), 3),
    );
    for ns in [&a1, &a2] {
        ns.ip(&["addr", "add", "fd77::99/128", "dev", "lo"]);
    }
    veth(&a1, "ia", &m, "im1");
    veth(&m, "im2", &a2, "ib");
    let _d1 = start_with_config(
        &a1,
        &format!("{tag}a"),
        "babeld",
        &format!("redistribute local ip fd77::99/128 metric 500\n{FILTERS}"),
        &["ia"],
    );
    let dm = start_router(
        &m,
        &format!("{tag}m"),
        program,
        "install if im2 deny\n",
        &["im1", "im2"],
    );
    assert!(
        wait_for(60, || kernel_dev(&m, "fd77::99").is_some()),
        "{program}: {:?}\n{}",
        babel_routes(&m),
        dm.log_text()
    );
    let before = kernel_dev(&m, "fd77::99");
    let _d2 = start_router(&a2, &format!("{tag}b"), "babeld", "", &["ib"]);
    // m hears fd77::99 from a2 (metric 96 against 596 through a1); smoothing decides when
    // selection moves to it.
    let moved = |m: &Netns| {
        dump_routes(&try_control(m, "dump\nquit\n"), "fd77::99/128")
            .iter()
            .any(|(installed, i)| *installed && i == "im2")
    };
    wait_for(90, || moved(&m));
    Switch {
        before,
        after: kernel_dev(&m, "fd77::99"),
        dump: dump_routes(&try_control(&m, "dump\nquit\n"), "fd77::99/128"),
    }
}

/// babeld's `change_route` evaluates the `install` filter for additions only: an installed
/// destination switches to a next hop the filter would refuse, and the kernel follows. babeld-rs
/// does the same.
#[test]
fn install_filter_switch_as_babeld() {
    let t = "install_filter_switch_as_babeld";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let reference = switch("babeld", "isb");
    let ours = switch(common::daemon_bin(), "isr");
    assert_eq!(
        reference.before.as_deref(),
        Some("im1"),
        "babeld: {reference:?}"
    );
    assert_eq!(
        reference.after.as_deref(),
        Some("im2"),
        "babeld: {reference:?}"
    );
    let mut dump = reference.dump.clone();
    dump.sort();
    assert_eq!(
        dump,
        vec![(false, "im1".to_owned()), (true, "im2".to_owned())],
        "babeld: {reference:?}"
    );
    let mut ours_sorted = ours.dump.clone();
    ours_sorted.sort();
    assert_eq!(
        (ours.before, ours.after, ours_sorted),
        (reference.before, reference.after, dump)
    );
}
