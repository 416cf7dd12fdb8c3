//! Real-kernel tests: each runs in a network namespace of its own (root only; skipped with a
//! printed reason otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use babel_wire::Prefix;
use common::{Ns, wait_for_event};
use kernel_fib::{
    DumpFilter, Fib, FibChange, FibError, KernelRoute, KernelRule, NetEvent, RouteKind,
    UNREACHABLE_METRIC,
};
use serde_json::Value;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn find<'a>(routes: &'a [Value], dst: &str) -> Vec<&'a Value> {
    routes.iter().filter(|r| r["dst"] == dst).collect()
}

#[test]
fn install_replace_delete_ipv4_and_ipv6() {
    let Some(ns) = Ns::new("install_replace_delete_ipv4_and_ipv6") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();

    // IPv4 via an on-link IPv4 gateway.
    let r4 = KernelRoute::unicast(p("10.1.0.0/16"), Some(ip("10.0.0.2")), Some(va));
    fib.add(&r4).unwrap();
    let k = ns.routes42(false);
    let got = find(&k, "10.1.0.0/16");
    assert_eq!(got.len(), 1, "{k:?}");
    assert_eq!(got[0]["gateway"], "10.0.0.2");
    assert_eq!(got[0]["dev"], "va");
    assert!(
        !got[0]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "onlink"),
        "gateway on the subnet: no onlink needed"
    );
    assert_eq!(
        fib.dump(&DumpFilter::protocol(42)).unwrap(),
        vec![r4.clone()]
    );
    assert!(matches!(fib.add(&r4), Err(FibError::Exists)));

    // Atomic replace of the gateway: one route afterwards.
    let r4b = KernelRoute {
        gateway: Some(ip("10.0.0.3")),
        ..r4.clone()
    };
    fib.replace(&r4b).unwrap();
    let k = ns.routes42(false);
    let got = find(&k, "10.1.0.0/16");
    assert_eq!(got.len(), 1, "{k:?}");
    assert_eq!(got[0]["gateway"], "10.0.0.3");

    // Gateway and metric change: make before break, still exactly one route.
    let r4c = KernelRoute {
        gateway: Some(ip("10.0.0.4")),
        metric: 10,
        ..r4.clone()
    };
    fib.change(&r4b, &r4c).unwrap();
    let k = ns.routes42(false);
    let got = find(&k, "10.1.0.0/16");
    assert_eq!(got.len(), 1, "{k:?}");
    assert_eq!(got[0]["gateway"], "10.0.0.4");
    assert_eq!(got[0]["metric"], 10);

    // IPv6 via a link-local gateway (needs the interface).
    let r6 = KernelRoute::unicast(p("2001:db8:1::/48"), Some(ip("fe80::2")), Some(va));
    fib.add(&r6).unwrap();
    let r6b = KernelRoute {
        gateway: Some(ip("fe80::3")),
        ..r6.clone()
    };
    fib.replace(&r6b).unwrap();
    let k6 = ns.routes42(true);
    let got = find(&k6, "2001:db8:1::/48");
    assert_eq!(got.len(), 1, "{k6:?}");
    assert_eq!(got[0]["gateway"], "fe80::3");
    assert_eq!(got[0]["metric"], 1024);
    let r6c = r6b.clone().with_metric(7);
    fib.change(&r6b, &r6c).unwrap();
    let k6 = ns.routes42(true);
    let got = find(&k6, "2001:db8:1::/48");
    assert_eq!(got.len(), 1, "{k6:?}");
    assert_eq!(got[0]["metric"], 7);
    let dumped = fib
        .dump(&DumpFilter::protocol(42).family_ipv4(false))
        .unwrap();
    assert_eq!(dumped, vec![r6c.clone()]);

    // Delete, and delete again: no error.
    fib.delete(&r4c).unwrap();
    fib.delete(&r6c).unwrap();
    fib.delete(&r4c).unwrap();
    fib.delete(&r6c).unwrap();
    assert!(ns.routes42(false).is_empty());
    assert!(ns.routes42(true).is_empty());
    assert!(fib.dump(&DumpFilter::protocol(42)).unwrap().is_empty());
}

#[test]
fn replace_never_removes_the_route() {
    let Some(ns) = Ns::new("replace_never_removes_the_route") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut w = ns.watcher();
    let mut fib = ns.fib();
    let base4 = KernelRoute::unicast(p("10.2.0.0/16"), Some(ip("10.0.0.2")), Some(va));
    let base6 = KernelRoute::unicast(p("2001:db8:2::/48"), Some(ip("fe80::2")), Some(va));
    fib.add(&base4).unwrap();
    fib.add(&base6).unwrap();

    // Another socket dumps the table as fast as it can while we replace: it must see both
    // destinations in every dump.
    let stop = Arc::new(AtomicBool::new(false));
    let mut observer = ns.fib();
    let observer_stop = Arc::clone(&stop);
    let started = Arc::new(AtomicBool::new(false));
    let observer_started = Arc::clone(&started);
    let observer = std::thread::spawn(move || {
        let (mut dumps, mut gaps) = (0u32, 0u32);
        while !observer_stop.load(Ordering::Relaxed) {
            let routes = observer.dump(&DumpFilter::protocol(42)).unwrap();
            observer_started.store(true, Ordering::Relaxed);
            dumps += 1;
            let has = |d: &str| routes.iter().any(|r| r.dst == p(d));
            if !has("10.2.0.0/16") || !has("2001:db8:2::/48") {
                gaps += 1;
            }
        }
        (dumps, gaps)
    });

    while !started.load(Ordering::Relaxed) {
        std::thread::yield_now();
    }
    let mut current4 = base4.clone();
    let mut current6 = base6.clone();
    for i in 0..200u32 {
        let next4 = KernelRoute {
            gateway: Some(ip(&format!("10.0.0.{}", 2 + i % 3))),
            ..base4.clone()
        };
        let next6 = KernelRoute {
            gateway: Some(ip(&format!("fe80::{}", 2 + i % 3))),
            ..base6.clone()
        };
        if i % 10 == 9 {
            // A metric change too: a different kernel key, done make-before-break.
            let m4 = next4.clone().with_metric(i);
            let m6 = next6.clone().with_metric(i);
            fib.change(&current4, &m4).unwrap();
            fib.change(&current6, &m6).unwrap();
            current4 = m4;
            current6 = m6;
        } else {
            let n4 = KernelRoute {
                metric: current4.metric,
                ..next4
            };
            let n6 = KernelRoute {
                metric: current6.metric,
                ..next6
            };
            fib.replace(&n4).unwrap();
            fib.replace(&n6).unwrap();
            current4 = n4;
            current6 = n6;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (dumps, gaps) = observer.join().unwrap();
    assert!(dumps > 1, "the observer hardly ran ({dumps} dumps)");
    println!("observer: {dumps} dumps during 400 replaces, none without the routes");
    assert_eq!(gaps, 0, "{gaps} of {dumps} concurrent dumps missed a route");

    // The kernel announced every change. Replacements never remove a route (a
    // delete-then-add would show an RTM_DELROUTE); a metric change removes the old key only
    // after the new one is announced.
    let (_, seen) = wait_for_event(&mut w, Duration::from_millis(600), |_| false);
    let ours: Vec<&NetEvent> = seen
        .iter()
        .filter(|e| {
            matches!(e, NetEvent::RouteAdded(r) | NetEvent::RouteRemoved(r) if r.protocol == 42)
        })
        .collect();
    let added = ours
        .iter()
        .filter(|e| matches!(e, NetEvent::RouteAdded(_)))
        .count();
    assert!(added >= 400, "saw only {added} route notifications");
    let mut removals = 0;
    for (pos, ev) in ours.iter().enumerate() {
        if let NetEvent::RouteRemoved(r) = ev {
            removals += 1;
            // The route of this destination with the new metric was announced before.
            let successor_first = ours[..pos].iter().any(
                |e| matches!(e, NetEvent::RouteAdded(a) if a.dst == r.dst && a.metric != r.metric),
            );
            assert!(
                successor_first,
                "{r} removed before its successor was added"
            );
        }
    }
    assert_eq!(removals, 40, "only metric changes remove a route");
    assert_eq!(find(&ns.routes42(false), "10.2.0.0/16").len(), 1);
    assert_eq!(find(&ns.routes42(true), "2001:db8:2::/48").len(), 1);
}

#[test]
fn unreachable_routes() {
    let Some(ns) = Ns::new("unreachable_routes") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    let u4 = KernelRoute::unreachable(p("10.3.0.0/16"));
    let u6 = KernelRoute::unreachable(p("2001:db8:3::/48"));
    fib.add(&u4).unwrap();
    fib.add(&u6).unwrap();
    for (v6, dst) in [(false, "10.3.0.0/16"), (true, "2001:db8:3::/48")] {
        let k = ns.routes42(v6);
        let got = find(&k, dst);
        assert_eq!(got.len(), 1, "{k:?}");
        assert_eq!(got[0]["type"], "unreachable");
        assert_eq!(got[0]["metric"], u64::from(UNREACHABLE_METRIC));
    }
    let dumped = fib.dump(&DumpFilter::protocol(42)).unwrap();
    assert_eq!(dumped.len(), 2);
    assert!(dumped.iter().all(|r| r.kind == RouteKind::Unreachable));
    for asked in [&u4, &u6] {
        assert!(
            dumped.iter().any(|d| asked.same_as_installed(d)),
            "{asked} not in {dumped:?}"
        );
    }
    assert!(
        dumped
            .iter()
            .all(|r| r.metric == UNREACHABLE_METRIC && r.gateway.is_none())
    );
    // A held destination becomes reachable again: unicast in, unreachable out, no gap.
    let r4 = KernelRoute::unicast(p("10.3.0.0/16"), Some(ip("10.0.0.2")), Some(va));
    fib.change(&u4, &r4).unwrap();
    let k = ns.routes42(false);
    let got = find(&k, "10.3.0.0/16");
    assert_eq!(got.len(), 1, "{k:?}");
    assert!(got[0].get("type").is_none() || got[0]["type"] == "unicast");
    // Same key: unreachable replaced in place by unicast.
    fib.replace(
        &KernelRoute::unicast(p("2001:db8:3::/48"), Some(ip("fe80::2")), Some(va))
            .with_metric(UNREACHABLE_METRIC),
    )
    .unwrap();
    let k = ns.routes42(true);
    let got = find(&k, "2001:db8:3::/48");
    assert_eq!(got.len(), 1, "{k:?}");
    assert_eq!(got[0]["gateway"], "fe80::2");
    assert_eq!(fib.purge(42).unwrap(), 2);
}

#[test]
fn ipv4_via_ipv6_next_hop() {
    let Some(ns) = Ns::new("ipv4_via_ipv6_next_hop") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    let r = KernelRoute::unicast(p("10.7.0.0/16"), Some(ip("fe80::2")), Some(va));
    match fib.add(&r) {
        Ok(()) => {}
        Err(FibError::NotSupported | FibError::InvalidArgument) => {
            println!("KERNEL LIMITATION: this kernel refuses IPv4 routes via IPv6 (RTA_VIA)");
            return;
        }
        Err(e) => panic!("v4-via-v6: {e}"),
    }
    let k = ns.routes42(false);
    let got = find(&k, "10.7.0.0/16");
    assert_eq!(got.len(), 1, "{k:?}");
    assert_eq!(got[0]["via"]["family"], "inet6", "{k:?}");
    assert_eq!(got[0]["via"]["host"], "fe80::2");
    let text = ns.ip(&["route", "show", "proto", "42"]);
    assert!(text.contains("via inet6 fe80::2 dev va"), "{text}");
    let dumped = fib.dump(&DumpFilter::protocol(42)).unwrap();
    assert_eq!(dumped, vec![r.clone()]);
    assert!(dumped[0].is_v4_via_v6());
    // Replace the v6 next hop atomically.
    let r2 = KernelRoute {
        gateway: Some(ip("fe80::9")),
        ..r.clone()
    };
    fib.replace(&r2).unwrap();
    assert_eq!(
        fib.dump(&DumpFilter::protocol(42)).unwrap(),
        vec![r2.clone()]
    );
    fib.delete(&r2).unwrap();
    assert!(ns.routes42(false).is_empty());
}

#[test]
fn source_specific_ipv6() {
    let Some(ns) = Ns::new("source_specific_ipv6") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    let r = KernelRoute::unicast(p("2001:db8:4::/48"), Some(ip("fe80::2")), Some(va))
        .with_src(p("2001:db8:9::/48"));
    match fib.add(&r) {
        Ok(()) => {}
        Err(FibError::NotSupported) => {
            println!("KERNEL LIMITATION: no IPv6 subtrees (CONFIG_IPV6_SUBTREES)");
            return;
        }
        Err(e) => panic!("source-specific: {e}"),
    }
    let text = ns.ip(&["-6", "route", "show", "proto", "42"]);
    assert!(
        text.contains("2001:db8:4::/48 from 2001:db8:9::/48 via fe80::2 dev va"),
        "{text}"
    );
    // The same destination without a source is a different route.
    let plain = KernelRoute::unicast(p("2001:db8:4::/48"), Some(ip("fe80::3")), Some(va));
    fib.add(&plain).unwrap();
    let mut dumped = fib.dump(&DumpFilter::protocol(42)).unwrap();
    dumped.sort_by_key(|r| r.src);
    assert_eq!(dumped.len(), 2);
    assert_eq!(dumped[1].src, Some(p("2001:db8:9::/48")));
    fib.delete(&r).unwrap();
    let dumped = fib.dump(&DumpFilter::protocol(42)).unwrap();
    assert_eq!(dumped.len(), 1);
    assert_eq!(dumped[0].src, None);
}

#[test]
fn purge_removes_only_our_protocol() {
    let Some(ns) = Ns::new("purge_removes_only_our_protocol") else {
        return;
    };
    let va = ns.ifindex("va");
    // Routes of other protocols, and a stale route of ours left by "a previous run".
    ns.ip(&[
        "route",
        "add",
        "10.50.0.0/16",
        "via",
        "10.0.0.2",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.51.0.0/16",
        "via",
        "10.0.0.2",
        "proto",
        "43",
    ]);
    ns.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:50::/48",
        "via",
        "fe80::2",
        "dev",
        "va",
        "proto",
        "boot",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.52.0.0/16",
        "via",
        "10.0.0.2",
        "proto",
        "42",
    ]);
    let mut fib = ns.fib();
    fib.add(
        &KernelRoute::unicast(p("10.53.0.0/16"), Some(ip("10.0.0.2")), Some(va)).with_table(100),
    )
    .unwrap();
    fib.add(&KernelRoute::unreachable(p("2001:db8:53::/48")))
        .unwrap();
    fib.add(
        &KernelRoute::unicast(p("2001:db8:54::/48"), Some(ip("fe80::2")), Some(va))
            .with_table(1000),
    )
    .unwrap();
    assert_eq!(fib.dump(&DumpFilter::protocol(42)).unwrap().len(), 4);
    assert_eq!(
        fib.dump(&DumpFilter::protocol(42).in_table(1000))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(fib.purge(42).unwrap(), 4);
    assert!(ns.routes42(false).is_empty());
    assert!(ns.routes42(true).is_empty());
    let all = fib.dump(&DumpFilter::all()).unwrap();
    for (dst, proto) in [
        ("10.50.0.0/16", 4u8),
        ("10.51.0.0/16", 43),
        ("2001:db8:50::/48", 3),
    ] {
        assert!(
            all.iter().any(|r| r.dst == p(dst) && r.protocol == proto),
            "{dst} lost"
        );
    }
    // Kernel routes are visible to `redistribute`: the connected subnet of va.
    assert!(
        all.iter()
            .any(|r| r.dst == p("10.0.0.0/24") && r.protocol == kernel_fib::RTPROT_KERNEL)
    );
    assert_eq!(fib.purge(42).unwrap(), 0);
}

#[test]
fn onlink_and_typed_errors() {
    let Some(ns) = Ns::new("onlink_and_typed_errors") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    // A gateway outside va's subnets: the kernel refuses it without onlink...
    fib.set_auto_onlink(false);
    let off = KernelRoute::unicast(p("10.60.0.0/16"), Some(ip("172.16.0.1")), Some(va));
    assert!(matches!(fib.add(&off), Err(FibError::NetUnreachable)));
    // ...and the automatic decision sets onlink for it (babeld's case), only for it.
    fib.set_auto_onlink(true);
    fib.add(&off).unwrap();
    let text = ns.ip(&["route", "show", "proto", "42"]);
    assert!(
        text.contains("10.60.0.0/16 via 172.16.0.1 dev va onlink"),
        "{text}"
    );
    let dumped = fib.dump(&DumpFilter::protocol(42)).unwrap();
    assert!(dumped[0].onlink);
    assert!(off.same_as_installed(&dumped[0]));
    // No such device.
    let nodev = KernelRoute::unicast(p("10.61.0.0/16"), Some(ip("10.0.0.2")), Some(9999));
    assert!(matches!(fib.add(&nodev), Err(FibError::NoDevice)));
    // A link-local gateway without an interface is refused before sending.
    let bad = KernelRoute::unicast(p("2001:db8:61::/48"), Some(ip("fe80::1")), None);
    assert!(matches!(fib.add(&bad), Err(FibError::InvalidRoute(_))));
    // pref-src that is not local.
    let badsrc = KernelRoute::unicast(p("10.62.0.0/16"), Some(ip("10.0.0.2")), Some(va))
        .with_pref_src(ip("10.99.0.1"));
    assert!(matches!(fib.add(&badsrc), Err(FibError::InvalidArgument)));
    // pref-src that is local, in another table.
    let goodsrc = KernelRoute::unicast(p("10.62.0.0/16"), Some(ip("10.0.0.2")), Some(va))
        .with_pref_src(ip("10.0.0.1"))
        .with_table(1000)
        .with_metric(3);
    fib.add(&goodsrc).unwrap();
    let text = ns.ip(&["route", "show", "table", "1000", "proto", "42"]);
    assert!(
        text.contains("10.62.0.0/16 via 10.0.0.2 dev va src 10.0.0.1 metric 3"),
        "{text}"
    );
    assert_eq!(
        fib.dump(&DumpFilter::all().in_table(1000)).unwrap(),
        vec![goodsrc]
    );
}

#[test]
fn batch_apply_pipelines() {
    let Some(ns) = Ns::new("batch_apply_pipelines") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    let mut changes = Vec::new();
    for i in 0..2000u32 {
        let dst = p(&format!("10.{}.{}.0/24", 100 + i / 256, i % 256));
        changes.push(FibChange::Add(KernelRoute::unicast(
            dst,
            Some(ip("10.0.0.2")),
            Some(va),
        )));
        let dst6 = p(&format!("2001:db8:{:x}::/48", 0x100 + i));
        changes.push(FibChange::Replace(KernelRoute::unicast(
            dst6,
            Some(ip("fe80::2")),
            Some(va),
        )));
    }
    // A duplicate, a bad device and an invalid route in the middle.
    changes.insert(10, changes[0].clone());
    changes.insert(
        20,
        FibChange::Add(KernelRoute::unicast(p("10.99.0.0/16"), None, Some(9999))),
    );
    changes.insert(
        30,
        FibChange::Add(KernelRoute::unicast(
            p("2001:db8:99::/48"),
            Some(ip("fe80::1")),
            None,
        )),
    );
    let results = fib.apply(&changes);
    assert_eq!(results.len(), changes.len());
    assert!(matches!(results[10], Err(FibError::Exists)));
    assert!(matches!(results[20], Err(FibError::NoDevice)));
    assert!(matches!(results[30], Err(FibError::InvalidRoute(_))));
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 3);
    assert_eq!(ns.routes42(false).len(), 2000);
    assert_eq!(ns.routes42(true).len(), 2000);
    assert_eq!(fib.dump(&DumpFilter::protocol(42)).unwrap().len(), 4000);
    // Delete everything (twice: the second time every route is already gone).
    let deletes: Vec<FibChange> = changes
        .iter()
        .filter_map(|c| match c {
            FibChange::Add(r) | FibChange::Replace(r) => Some(FibChange::Delete(r.clone())),
            _ => None,
        })
        .collect();
    assert!(fib.apply(&deletes).iter().all(|r| r.is_ok()));
    assert!(fib.apply(&deletes).iter().all(|r| r.is_ok()));
    assert!(ns.routes42(false).is_empty());
    assert!(ns.routes42(true).is_empty());
}

#[test]
fn watch_links_addresses_and_routes() {
    let Some(ns) = Ns::new("watch_links_addresses_and_routes") else {
        return;
    };
    let va = ns.ifindex("va");
    let vb = ns.ifindex("vb");
    let mut w = ns.watcher();
    let mut fib = ns.fib();

    // One-shot dumps.
    let links = fib.links().unwrap();
    let la = links.iter().find(|l| l.name == "va").expect("va listed");
    assert_eq!(la.index, va);
    assert_eq!(la.mtu, Some(1500));
    assert!(la.is_up());
    assert_eq!(la.hw_addr.len(), 6);
    assert!(links.iter().any(|l| l.is_loopback()));
    let addrs = fib.addresses().unwrap();
    assert!(
        addrs.iter().any(|a| a.index == va
            && a.address == ip("10.0.0.1")
            && a.prefix() == p("10.0.0.0/24"))
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.index == vb && a.address == ip("2001:db8::2") && a.prefix_len == 64)
    );

    // vb down: the kernel reports it not up, and va losing its carrier.
    ns.ip(&["link", "set", "vb", "down"]);
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::LinkChanged(l) if l.index == vb && !l.is_up()),
    );
    assert!(ok, "no link-down event: {seen:?}");
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::LinkChanged(l) if l.index == va && !l.is_running()),
    );
    assert!(ok, "no carrier-loss event for va: {seen:?}");

    // vb up again: running once the carrier is back (linkwatch may take ~1 s).
    ns.ip(&["link", "set", "vb", "up"]);
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::LinkChanged(l) if l.index == vb && l.is_up() && l.is_running()),
    );
    assert!(ok, "no link-up event: {seen:?}");

    // MTU change.
    ns.ip(&["link", "set", "va", "mtu", "1400"]);
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::LinkChanged(l) if l.index == va && l.mtu == Some(1400) && l.name == "va"),
    );
    assert!(ok, "no MTU event: {seen:?}");

    // An address added and removed.
    ns.ip(&["addr", "add", "10.0.5.1/24", "dev", "va"]);
    let (ok, seen) = wait_for_event(&mut w, Duration::from_secs(5), |e| {
        matches!(e, NetEvent::AddressAdded(a)
            if a.index == va && a.address == ip("10.0.5.1") && a.prefix() == p("10.0.5.0/24"))
    });
    assert!(ok, "no address event: {seen:?}");
    ns.ip(&["addr", "add", "2001:db8:5::1/64", "dev", "va", "nodad"]);
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::AddressAdded(a) if a.index == va && a.address == ip("2001:db8:5::1")),
    );
    assert!(ok, "no IPv6 address event: {seen:?}");
    ns.ip(&["addr", "del", "10.0.5.1/24", "dev", "va"]);
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::AddressRemoved(a) if a.address == ip("10.0.5.1")),
    );
    assert!(ok, "no address removal event: {seen:?}");

    // Routes of every protocol are reported, with their protocol.
    ns.ip(&[
        "route",
        "add",
        "10.70.0.0/16",
        "via",
        "10.0.0.2",
        "proto",
        "static",
    ]);
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::RouteAdded(r) if r.dst == p("10.70.0.0/16") && r.protocol == 4),
    );
    assert!(ok, "no route event: {seen:?}");
    let ours = KernelRoute::unicast(p("2001:db8:70::/48"), Some(ip("fe80::2")), Some(va));
    fib.add(&ours).unwrap();
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::RouteAdded(r) if r.dst == ours.dst && r.protocol == 42),
    );
    assert!(ok, "no event for our route: {seen:?}");
    fib.delete(&ours).unwrap();
    let (ok, seen) = wait_for_event(
        &mut w,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::RouteRemoved(r) if r.dst == ours.dst && r.protocol == 42),
    );
    assert!(ok, "no removal event for our route: {seen:?}");

    // Non-blocking read with nothing pending.
    while !w.try_recv().unwrap().is_empty() {}
    assert!(w.try_recv().unwrap().is_empty());
}

#[test]
fn memory_fib_behaves_like_the_kernel() {
    let Some(ns) = Ns::new("memory_fib_behaves_like_the_kernel") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut kernel = ns.fib();
    let mut memory = kernel_fib::MemoryFib::new();
    let a4 = KernelRoute::unicast(p("10.80.0.0/16"), Some(ip("10.0.0.2")), Some(va));
    let a6 = KernelRoute::unicast(p("2001:db8:80::/48"), Some(ip("fe80::2")), Some(va));
    let ops = vec![
        FibChange::Add(a4.clone()),
        FibChange::Add(a4.clone()),
        FibChange::Add(a6.clone()),
        FibChange::Add(a6.clone().with_metric(1024)),
        FibChange::Replace(KernelRoute {
            gateway: Some(ip("10.0.0.3")),
            ..a4.clone()
        }),
        FibChange::Change {
            old: a6.clone(),
            new: a6.clone().with_metric(5),
        },
        FibChange::Add(a6.clone().with_metric(6).with_src(p("2001:db8:99::/48"))),
        FibChange::Delete(KernelRoute::unreachable(p("10.81.0.0/16"))),
        FibChange::Add(KernelRoute::unreachable(p("10.81.0.0/16"))),
        FibChange::Add(KernelRoute::unreachable(p("2001:db8:81::/48")).with_table(200)),
        FibChange::Add(a4.clone().with_metric(9)),
        // Another protocol's route with the same key is not ours to delete.
        FibChange::Delete(a4.clone().with_metric(9).with_protocol(43)),
        FibChange::Delete(a4.clone()),
        // Metric 0 in an IPv4 delete matches any metric: this removes the metric-9 route.
        FibChange::Delete(a4.clone()),
        FibChange::Add(KernelRoute::unreachable(p("10.80.0.0/16"))),
        // Nothing of that kind left: the unreachable route stays.
        FibChange::Delete(a4.clone()),
        FibChange::Replace(
            KernelRoute::unicast(p("10.82.0.0/16"), None, Some(va)).with_protocol(43),
        ),
    ];
    let rk = kernel.apply(&ops);
    let rm = memory.apply(&ops);
    for ((op, k), m) in ops.iter().zip(&rk).zip(&rm) {
        assert_eq!(
            k.as_ref().err().map(ToString::to_string),
            m.as_ref().err().map(ToString::to_string),
            "{op:?}"
        );
    }
    for filter in [
        DumpFilter::protocol(42),
        DumpFilter::protocol(43),
        DumpFilter::protocol(42).in_table(200),
        DumpFilter::protocol(42).family_ipv4(false),
    ] {
        let mut from_kernel = kernel.dump(&filter).unwrap();
        let mut from_memory = memory.dump(&filter).unwrap();
        from_kernel.sort_by_key(|r| r.key());
        from_memory.sort_by_key(|r| r.key());
        assert_eq!(
            from_kernel.len(),
            from_memory.len(),
            "{filter:?}\nkernel {from_kernel:#?}\nmemory {from_memory:#?}"
        );
        for (k, m) in from_kernel.iter().zip(&from_memory) {
            assert!(m.same_as_installed(k), "{filter:?}: {m} vs {k}");
        }
    }
    assert_eq!(kernel.purge(42).unwrap(), memory.purge(42).unwrap());
}

/// Timing of a full-table install: `cargo test -p kernel-fib --release -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand"]
fn bulk_100k_timing() {
    let Some(ns) = Ns::new("bulk_100k_timing") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    let routes: Vec<KernelRoute> = (0..50_000u32)
        .flat_map(|i| {
            let v4 = p(&format!(
                "10.{}.{}.{}/32",
                100 + (i >> 16),
                (i >> 8) & 255,
                i & 255
            ));
            let v6 = p(&format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff));
            [
                KernelRoute::unicast(v4, Some(ip("10.0.0.2")), Some(va)),
                KernelRoute::unicast(v6, Some(ip("fe80::2")), Some(va)),
            ]
        })
        .collect();
    let adds: Vec<FibChange> = routes.iter().cloned().map(FibChange::Replace).collect();
    let start = std::time::Instant::now();
    let results = fib.apply(&adds);
    let install = start.elapsed();
    assert!(results.iter().all(|r| r.is_ok()));
    let start = std::time::Instant::now();
    let n = fib.dump(&DumpFilter::protocol(42)).unwrap().len();
    let dump = start.elapsed();
    assert_eq!(n, 100_000);
    let start = std::time::Instant::now();
    assert_eq!(fib.purge(42).unwrap(), 100_000);
    let purge = start.elapsed();
    println!("100k routes: install {install:?}, dump {dump:?}, purge {purge:?}");
}

/// A daemon setting up a tunnel interface: link up with an MTU, a link-local address added
/// without DAD, visible in the address dump with link scope.
#[test]
fn link_up_and_addresses() {
    let Some(ns) = Ns::new("link_up_and_addresses") else {
        return;
    };
    ns.ip(&["link", "add", "tb0", "type", "ifb"]);
    let ix = ns.ifindex("tb0");
    let mut fib = ns.fib();
    fib.set_link_up(ix, Some(1400)).unwrap();
    let link = fib
        .links()
        .unwrap()
        .into_iter()
        .find(|l| l.index == ix)
        .unwrap();
    assert!(link.is_up(), "{link:?}");
    assert_eq!(link.mtu, Some(1400));
    fib.add_address(ix, ip("fe80::1234"), 64).unwrap();
    fib.add_address(ix, ip("10.50.0.1"), 24).unwrap();
    // Adding the same address again refreshes it rather than failing.
    fib.add_address(ix, ip("fe80::1234"), 64).unwrap();
    let addrs = fib.addresses().unwrap();
    let ll = addrs
        .iter()
        .find(|a| a.index == ix && a.address == ip("fe80::1234"))
        .expect("link-local added");
    assert!(
        babel_wire::is_link_local(&ll.address) && !ll.is_tentative() && ll.prefix_len == 64,
        "{ll:?}"
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.index == ix && a.address == ip("10.50.0.1") && a.prefix_len == 24)
    );
    assert!(fib.add_address(9999, ip("fe80::1"), 64).is_err());
    fib.delete_address(ix, ip("10.50.0.1"), 24).unwrap();
    fib.delete_address(ix, ip("10.50.0.1"), 24).unwrap(); // already gone: fine
    assert!(
        !fib.addresses()
            .unwrap()
            .iter()
            .any(|a| a.index == ix && a.address == ip("10.50.0.1"))
    );
}

/// The rule projection (`ipv6-subtrees false`): tables and `from SRC` rules in the real kernel,
/// and the kernel's own route lookup (`ip -6 route get ... from ...`) follows RFC 9079 §5.3:
/// a more specific destination without a source wins over the source table's default.
#[test]
fn rule_projection_in_the_kernel() {
    let Some(ns) = Ns::new("rule_projection_in_the_kernel") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    ns.ip(&["-6", "addr", "add", "2001:db8:2::5/128", "dev", "lo"]);
    let routes = [
        KernelRoute::unicast(p("::/0"), Some(ip("fe80::2")), Some(va))
            .with_src(p("2001:db8:2::/48")),
        KernelRoute::unicast(p("2001:db8:ee::/64"), Some(ip("fe80::1")), Some(va)),
    ];
    let mut tables = kernel_fib::SourceTables::new(100, 10, 4, 42);
    let proj = tables.project(&routes);
    fib.add(&routes[1]).unwrap();
    for r in &proj.routes {
        fib.add(r).unwrap();
    }
    for rule in &proj.rules {
        fib.add_rule(rule).unwrap();
    }
    let rules = ns.ip(&["-6", "rule", "show"]);
    assert!(
        rules.contains("100:\tfrom 2001:db8:2::/48 lookup 10 proto babel"),
        "{rules}"
    );
    assert_eq!(
        fib.rules()
            .unwrap()
            .iter()
            .filter(|r| r.protocol == 42)
            .count(),
        1
    );
    let get = |dst: &str| ns.ip(&["-6", "route", "get", dst, "from", "2001:db8:2::5"]);
    assert!(
        get("2001:db8:77::1").contains("via fe80::2"),
        "{}",
        get("2001:db8:77::1")
    );
    assert!(
        get("2001:db8:ee::1").contains("via fe80::1"),
        "{}",
        get("2001:db8:ee::1")
    );
    // Without the disambiguation copy, the source table's default would win.
    let copy = proj
        .routes
        .iter()
        .find(|r| r.dst == p("2001:db8:ee::/64"))
        .unwrap();
    fib.delete(copy).unwrap();
    assert!(
        get("2001:db8:ee::1").contains("via fe80::2"),
        "{}",
        get("2001:db8:ee::1")
    );
    for rule in &proj.rules {
        fib.delete_rule(rule).unwrap();
        fib.delete_rule(rule).unwrap(); // already gone: fine
    }
    assert!(!ns.ip(&["-6", "rule", "show"]).contains("2001:db8:2::/48"));
}

/// Route verification's probe rules: `fwmark M lookup T` added, read back and deleted in the real
/// kernel, and the kernel's lookup sends a packet with mark M (only) through table T.
#[test]
fn fwmark_rules_in_the_kernel() {
    let Some(ns) = Ns::new("fwmark_rules_in_the_kernel") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut fib = ns.fib();
    let main = KernelRoute::unicast(p("2001:db8:77::/48"), Some(ip("fe80::1")), Some(va));
    let probe = KernelRoute::unicast(p("2001:db8:77::/48"), Some(ip("fe80::3")), Some(va))
        .with_table(6201)
        .with_protocol(kernel_fib::RTPROT_BOOT);
    fib.add(&main).unwrap();
    fib.replace(&probe).unwrap();
    let rule = KernelRule::fwmark_v6(0x6261_0001, 6201, 1000, 42);
    fib.add_rule(&rule).unwrap();
    assert!(matches!(fib.add_rule(&rule), Err(FibError::Exists)));
    let shown = ns.ip(&["-6", "rule", "show"]);
    assert!(
        shown.contains("1000:\tfrom all fwmark 0x62610001 lookup 6201 proto babel"),
        "{shown}"
    );
    assert!(fib.rules().unwrap().contains(&rule));
    // The next hop the kernel picks for a packet with `mark`.
    let via = |mark: &str| {
        let out = ns.ip(&["-6", "route", "get", "2001:db8:77::1", "mark", mark]);
        let mut words = out.split_whitespace().skip_while(|w| *w != "via");
        words.nth(1).unwrap_or(&out).to_owned()
    };
    assert_eq!(via("0x62610001"), "fe80::3");
    assert_eq!(via("0x62610002"), "fe80::1");
    fib.delete_rule(&rule).unwrap();
    fib.delete_rule(&rule).unwrap(); // already gone: fine
    assert!(!fib.rules().unwrap().contains(&rule));
    assert_eq!(via("0x62610001"), "fe80::1");
}

/// `try_recv_waiting` reads what is waiting without blocking and says when nothing is left,
/// which an edge-triggered poller (the daemon's watcher task) relies on: a notification the
/// kernel queued during a request is there when the request returns.
#[test]
fn try_recv_waiting_says_when_nothing_is_left() {
    let Some(ns) = Ns::new("try_recv_waiting") else {
        return;
    };
    let va = ns.ifindex("va");
    let mut w = ns.watcher();
    // Whatever the set-up left queued.
    while w.try_recv_waiting().unwrap().is_some() {}
    assert!(w.try_recv_waiting().unwrap().is_none());
    ns.ip(&["link", "set", "va", "mtu", "1300"]);
    let mut seen = Vec::new();
    while let Some(events) = w.try_recv_waiting().unwrap() {
        seen.extend(events);
    }
    assert!(
        seen.iter()
            .any(|e| matches!(e, NetEvent::LinkChanged(l) if l.index == va && l.mtu == Some(1300))),
        "no MTU event among {seen:?}"
    );
    assert!(w.try_recv_waiting().unwrap().is_none());
}
