//! RFC 9229 on real links: IPv4 routes with IPv6 next hops between babeld-rs and Debian's babeld,
//! on links that carry no IPv4 address at all, and babeld's `v4-via-v6 false`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{
    Netns, babel_routes, can_use_netns, has_route, have, node, ping, start_router, veth, wait_for,
};

fn route_line(ns: &Netns, dst: &str) -> Option<String> {
    babel_routes(ns)
        .into_iter()
        .find(|l| l.split_whitespace().next() == Some(dst))
}

/// a (babeld-rs) — b (babeld) — c (babeld-rs), and d (babeld-rs, `v4-via-v6 false`) on b. No
/// link has an IPv4 address: IPv4 crosses the mesh only through IPv6 next hops, in both
/// directions through babeld; d announces no IPv4 at all to b but still uses b's AE 4 routes.
#[test]
fn ipv4_crosses_links_without_ipv4_through_babeld() {
    let t = "ipv4_crosses_links_without_ipv4_through_babeld";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let (a, b, c, d) = (
        node("v4a", 1),
        node("v4b", 2),
        node("v4c", 3),
        node("v4d", 4),
    );
    veth(&a, "v4ab", &b, "v4ba");
    veth(&b, "v4bc", &c, "v4cb");
    veth(&b, "v4bd", &d, "v4db");
    for (ns, dev) in [
        (&a, "v4ab"),
        (&b, "v4ba"),
        (&b, "v4bc"),
        (&b, "v4bd"),
        (&c, "v4cb"),
        (&d, "v4db"),
    ] {
        let addrs = ns.ip(&["-4", "addr", "show", "dev", dev]);
        assert!(!addrs.contains("inet "), "{dev} has IPv4: {addrs}");
    }
    let da = start_router(&a, "v4a", common::daemon_bin(), "", &["v4ab"]);
    let db = start_router(&b, "v4b", "babeld", "", &["v4ba", "v4bc", "v4bd"]);
    let _dc = start_router(&c, "v4c", common::daemon_bin(), "", &["v4cb"]);
    let _dd = start_router(
        &d,
        "v4d",
        common::daemon_bin(),
        "interface v4db v4-via-v6 false\n",
        &["v4db"],
    );
    let logs = || format!("--- a:\n{}\n--- b:\n{}", da.log_text(), db.log_text());

    // a's IPv4 route to c is an IPv4 route with an IPv6 (link-local) gateway, learned from babeld.
    let b_ll = b.link_local("v4ba").to_string();
    assert!(
        wait_for(90, || route_line(&a, "10.77.0.3")
            .is_some_and(|l| l.contains("via inet6") && l.contains(&b_ll))),
        "a: {:?}\n{}",
        babel_routes(&a),
        logs()
    );
    // babeld installed our AE 4 routes the same way.
    let a_ll = a.link_local("v4ab").to_string();
    assert!(
        wait_for(60, || route_line(&b, "10.77.0.1")
            .is_some_and(|l| l.contains("via inet6") && l.contains(&a_ll))),
        "b: {:?}\n{}",
        babel_routes(&b),
        logs()
    );
    // Traffic: IPv4 both ways across two links without IPv4, forwarded by babeld's node.
    assert!(wait_for(30, || ping(&a, "10.77.0.3")), "a cannot ping c");
    assert!(wait_for(30, || ping(&c, "10.77.0.1")), "c cannot ping a");

    // d with `v4-via-v6 false`: b learns d's IPv6 address, and since IPv4 and IPv6 routes go out
    // in the same periodic dump, by the time babeld has fd77::4 it has heard every update d sent
    // it; none was IPv4. d itself still accepts and uses AE 4 routes from b.
    assert!(
        wait_for(60, || has_route(&b, "fd77::4")),
        "b: {:?}",
        babel_routes(&b)
    );
    assert!(
        wait_for(60, || has_route(&a, "fd77::4")),
        "a: {:?}",
        babel_routes(&a)
    );
    assert!(
        !has_route(&b, "10.77.0.4"),
        "d announced IPv4 with v4-via-v6 false: {:?}",
        babel_routes(&b)
    );
    assert!(!has_route(&a, "10.77.0.4"), "a: {:?}", babel_routes(&a));
    assert!(
        wait_for(60, || route_line(&d, "10.77.0.1")
            .is_some_and(|l| l.contains("via inet6"))),
        "d: {:?}",
        babel_routes(&d)
    );
}
