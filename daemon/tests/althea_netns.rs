//! babeld-rs as a drop-in for Althea's fork under rita, on real links in network namespaces:
//! the dialect from the deployed configuration, held routes as babeld shows them (proved
//! against Debian's babeld), `fee` without cost, no AE 4 in Althea's dialect, and `babelctl
//! show` against babeld, a control server that reads as the fork does, and babeld-rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::{
    DaemonProcess, Netns, can_use_netns, control, forwarding, has_route, have, start_with_config,
    tmp, veth, wait_for,
};

/// What Althea's OpenWrt package writes (no `althea-compatible`), with the test's prefixes.
const DEPLOYED: &str = "random-id true\nipv6-subtrees true\nfee 100\n\
default enable-timestamps true\ndefault max-rtt-penalty 1000\n\
redistribute local ip 10.77.0.0/16 allow\nredistribute local ip fd77::/16 allow\n\
redistribute ip 10.78.0.0/16 allow\nredistribute local deny\n";

/// Plain babeld configuration with the same prefixes.
const PLAIN: &str = "redistribute local ip 10.77.0.0/16 allow\nredistribute local ip fd77::/16 allow\n\
redistribute ip 10.78.0.0/16 allow\nredistribute local deny\n";

fn node(tag: &str, n: u8) -> Netns {
    common::node(tag, n)
}

/// Routers 1 and 2 (`{tag}a`, `{tag}b`) joined by `{tag}ab` - `{tag}ba`.
fn linked(tag: &str) -> (Netns, Netns) {
    let a = node(&format!("{tag}a"), 1);
    let b = node(&format!("{tag}b"), 2);
    veth(&a, &format!("{tag}ab"), &b, &format!("{tag}ba"));
    (a, b)
}

/// `dump` over the control port (empty while the daemon is not listening yet).
fn dump(ns: &Netns) -> String {
    common::try_control(ns, "dump\nquit\n")
}

/// The `add route` line for `prefix` in a dump, if any.
fn route_line(dump: &str, prefix: &str) -> Option<String> {
    dump.lines()
        .find(|l| l.starts_with("add route") && l.contains(&format!(" prefix {prefix} ")))
        .map(str::to_owned)
}

/// `ip route show table all` lines for `dst` (IPv4).
fn kernel_lines(ns: &Netns, dst: &str) -> Vec<String> {
    ns.ip(&["route", "show", "table", "all"])
        .lines()
        .filter(|l| l.contains(dst))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// `A -- B`, A announcing 10.78.0.0/24 (a kernel route it redistributes); B runs `program`.
struct Pair {
    a: Netns,
    b: Netns,
    da: DaemonProcess,
    db: DaemonProcess,
}

fn pair(tag: &str, a_prog: &str, b_prog: &str, conf: &str) -> Pair {
    let a = node(&format!("{tag}a"), 1);
    let b = node(&format!("{tag}b"), 2);
    let (ia, ib) = (format!("{tag}ab"), format!("{tag}ba"));
    veth(&a, &ia, &b, &ib);
    // A numbered link, so that IPv4 crosses in Althea's dialect too (no AE 4 there).
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", &ia]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", &ib]);
    a.ip(&[
        "route",
        "add",
        "10.78.0.0/24",
        "dev",
        "lo",
        "proto",
        "static",
    ]);
    // babeld sends nothing it can use until the link-local addresses exist.
    a.link_local(&ia);
    b.link_local(&ib);
    let da = start_with_config(&a, &format!("{tag}a"), a_prog, conf, &[&ia]);
    let db = start_with_config(&b, &format!("{tag}b"), b_prog, conf, &[&ib]);
    Pair { a, b, da, db }
}

/// After A retracts 10.78.0.0/24, B holds it as babeld does: `installed yes ... metric 65535`
/// and an `unreachable` kernel route of metric 4294967295, the unicast route gone.
fn assert_held(p: &Pair, who: &str, fields: &[&str]) {
    assert!(
        wait_for(60, || route_line(&dump(&p.b), "10.78.0.0/24")
            .is_some_and(|l| l.contains("installed yes"))
            && has_route(&p.b, "10.78.0.0/24")),
        "{who}: never learned 10.78.0.0/24:\n{}\n{}",
        dump(&p.b),
        p.db.log_text()
    );
    p.a.ip(&["route", "del", "10.78.0.0/24"]);
    let held = || {
        let d = dump(&p.b);
        let k = kernel_lines(&p.b, "10.78.0.0/24");
        route_line(&d, "10.78.0.0/24").is_some_and(|l| {
            l.contains("installed yes")
                && l.contains(" metric 65535 ")
                && fields.iter().all(|f| l.contains(f))
        }) && k == ["unreachable 10.78.0.0/24 proto babel metric 4294967295"]
    };
    let seen = wait_for(90, held);
    if !seen && who.contains("reference") {
        // Debian's babeld holds a retracted route for 0.7-6.5 s only; a poll on a loaded
        // machine can miss that window. The reference is printed, not required.
        println!("{who}: the hold was not observed (babeld holds for a few seconds only)");
        return;
    }
    assert!(
        seen,
        "{who}: not held: {:?}\n{}\n{}",
        kernel_lines(&p.b, "10.78.0.0/24"),
        dump(&p.b),
        p.db.log_text()
    );
    // The hold ends when the route leaves the table (babeld: its hold time after the last
    // Update), and the unreachable route goes with it.
    let start = std::time::Instant::now();
    assert!(
        wait_for(240, || kernel_lines(&p.b, "10.78.0.0/24").is_empty()
            && route_line(&dump(&p.b), "10.78.0.0/24").is_none()),
        "{who}: never released: {:?}",
        kernel_lines(&p.b, "10.78.0.0/24")
    );
    println!(
        "{who}: held for {:?} after it was seen held",
        start.elapsed()
    );
}

/// Point 2: a retracted route is held the same way by Debian's babeld and by babeld-rs in both
/// dialects, next to a babeld (Babel dialect) or babeld-rs (Althea dialect) neighbour.
#[test]
fn held_routes_as_babeld_shows_them_in_both_dialects() {
    let t = "held_routes_as_babeld_shows_them_in_both_dialects";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    // The three pairs are independent and spend their time waiting on protocol timers (the
    // hold lasts about a minute): they run side by side, each on a thread of its own, with
    // their files in the test's scratch directory; a failed assertion on any of them fails the
    // test.
    let scratch = test_support::scratch::dir();
    std::thread::scope(|s| {
        s.spawn(|| {
            test_support::scratch::share(&scratch);
            let reference = pair("hrr", "babeld", "babeld", PLAIN);
            assert_held(&reference, "babeld (reference)", &[]);
        });
        s.spawn(|| {
            test_support::scratch::share(&scratch);
            let ours = pair("hro", "babeld", common::daemon_bin(), PLAIN);
            assert_held(&ours, "babeld-rs beside babeld", &[]);
        });
        s.spawn(|| {
            test_support::scratch::share(&scratch);
            let althea = pair("hra", common::daemon_bin(), common::daemon_bin(), DEPLOYED);
            assert!(wait_for(20, || dump(&althea.b).starts_with("ALTHEA 0.1")));
            // With the fields rita's parser requires, as the fork prints them.
            assert_held(
                &althea,
                "babeld-rs in Althea's dialect",
                &[" price ", " fee 100 ", " full-path-rtt "],
            );
        });
    });
}

/// Point 2, the neighbour-lost case (the fork's 60-80 s with its 4 s Hellos): the route is held
/// while the neighbour is unreachable, then goes with it, in babeld and in babeld-rs.
#[test]
fn lost_neighbour_routes_are_held_then_flushed_like_babeld() {
    let t = "lost_neighbour_routes_are_held_then_flushed_like_babeld";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    // babeld and babeld-rs side by side (each waits a minute or more on its timers).
    let scratch = test_support::scratch::dir();
    std::thread::scope(|s| {
        for (tag, prog) in [("lnr", "babeld"), ("lno", common::daemon_bin())] {
            let scratch = &scratch;
            s.spawn(move || {
                test_support::scratch::share(scratch);
                lost_neighbour_route_is_held_then_flushed(tag, prog)
            });
        }
    });
}

/// One of the pairs above: `prog` beside a babeld that goes silent.
fn lost_neighbour_route_is_held_then_flushed(tag: &str, prog: &str) {
    let mut p = pair(tag, "babeld", prog, PLAIN);
    assert!(
        wait_for(60, || has_route(&p.b, "10.78.0.0/24")),
        "{prog}: {}",
        dump(&p.b)
    );
    // No retraction: the neighbour just goes silent.
    p.da.child.kill().unwrap();
    let unreachable = || {
        kernel_lines(&p.b, "10.78.0.0/24")
            == ["unreachable 10.78.0.0/24 proto babel metric 4294967295"]
    };
    assert!(
        wait_for(30, unreachable),
        "{prog}: {:?}",
        kernel_lines(&p.b, "10.78.0.0/24")
    );
    assert!(
        route_line(&dump(&p.b), "10.78.0.0/24")
            .is_some_and(|l| l.contains("installed yes") && l.contains(" metric 65535 ")),
        "{prog}: {}",
        dump(&p.b)
    );
    assert!(
        wait_for(400, || kernel_lines(&p.b, "10.78.0.0/24").is_empty()
            && route_line(&dump(&p.b), "10.78.0.0/24").is_none()),
        "{prog}: never flushed: {:?}",
        kernel_lines(&p.b, "10.78.0.0/24")
    );
    let _ = p.db.terminate();
}

/// Point 1: started as Althea's firmware starts babeld (its configuration, no
/// `althea-compatible`), babeld-rs speaks the fork's dialect; `-F` alone does too; an explicit
/// `althea-compatible false` overrides.
#[test]
fn althea_dialect_from_the_deployed_configuration() {
    let t = "althea_dialect_from_the_deployed_configuration";
    if !can_use_netns(t) {
        return;
    }
    let (a, b) = linked("adc");
    let _da = start_with_config(&a, "adca", common::daemon_bin(), DEPLOYED, &["adcab"]);
    let _db = start_with_config(&b, "adcb", common::daemon_bin(), DEPLOYED, &["adcba"]);
    assert!(wait_for(20, || common::try_control(&a, "dump\nquit\n")
        .starts_with("ALTHEA 0.1\n")));
    let d = dump(&a);
    assert!(
        d.lines().nth(5) == Some("local fee 100"),
        "rita reads the fee from the first dump line: {d}"
    );
    // Prices on the wire: B's route to A's address costs A's fee... A is the destination, so
    // the price B shows is 0 plus B's own fee.
    assert!(
        wait_for(60, || route_line(&dump(&b), "fd77::1/128")
            .is_some_and(|l| l.contains(" price 0 fee 100 "))),
        "{}",
        dump(&b)
    );
    let c = node("adcc", 3);
    let _dc = start_with_config(
        &c,
        "adcc",
        common::daemon_bin(),
        "fee 100\nalthea-compatible false\n",
        &["lo"],
    );
    assert!(wait_for(20, || common::try_control(&c, "dump\nquit\n")
        .starts_with("BABEL 1.0\n")));
    let e = node("adce", 4);
    let log = tmp("adce.log");
    let _de = DaemonProcess::start(
        &e,
        common::daemon_bin(),
        &[
            "-I",
            "",
            "-S",
            tmp("adce.state").to_str().unwrap(),
            "-L",
            log.to_str().unwrap(),
            "-G",
            "33123",
            "-F",
            "7",
            "lo",
        ],
        log.clone(),
    );
    assert!(wait_for(20, || common::try_control(&e, "dump\nquit\n")
        .starts_with("ALTHEA 0.1\n")));
}

/// Counter `name` from `dump counters`.
fn counter(ns: &Netns, name: &str) -> u64 {
    let out = control(ns, 33123, "dump counters\nquit\n");
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("counter {name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no counter {name}: {out}"))
}

/// Point 3: rita's `fee` every 60 s with an unchanged fee sends nothing; a new fee sends
/// nothing by itself either (as the fork), and shows at once in `dump`.
#[test]
fn fee_commands_cost_nothing_on_the_wire() {
    let t = "fee_commands_cost_nothing_on_the_wire";
    if !can_use_netns(t) {
        return;
    }
    let (a, b) = linked("fee");
    // Long update interval: periodic updates do not blur the window.
    let conf = format!("{DEPLOYED}default update-interval 120\n");
    let _da = start_with_config(&a, "feea", common::daemon_bin(), &conf, &["feeab"]);
    let _db = start_with_config(&b, "feeb", common::daemon_bin(), &conf, &["feeba"]);
    assert!(
        wait_for(60, || route_line(&dump(&a), "fd77::2/128").is_some()),
        "{}",
        dump(&a)
    );
    // Let triggered updates of the convergence settle: the counter stops moving.
    let mut last = counter(&a, "updates_sent");
    assert!(wait_for(30, || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let now = counter(&a, "updates_sent");
        std::mem::replace(&mut last, now) == now
    }));
    let before = counter(&a, "updates_sent");
    for _ in 0..20 {
        let r = control(&a, 33123, "fee 100\nquit\n");
        assert!(r.ends_with("ok\n"), "{r}");
    }
    let r = control(&a, 33123, "fee 250\nquit\n");
    assert!(r.ends_with("ok\n"), "{r}");
    assert!(
        route_line(&dump(&a), "fd77::2/128").is_some_and(|l| l.contains(" fee 250 ")),
        "{}",
        dump(&a)
    );
    // Well past the 0.5 s in which a triggered full dump would have gone out.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let after = counter(&a, "updates_sent");
    assert_eq!(after, before, "updates sent because of `fee`");
}

/// Point 4: in Althea's dialect no AE 4 (IPv4 via IPv6) Update goes on a link without IPv4
/// addresses, since the fork cannot parse it; IPv4 reaches the neighbour once the link has
/// IPv4 addresses (AE 1 with an IPv4 next hop), as with the fork.
#[test]
fn althea_dialect_sends_no_ae4_and_ipv4_crosses_numbered_links() {
    let t = "althea_dialect_sends_no_ae4_and_ipv4_crosses_numbered_links";
    if !can_use_netns(t) || !have("tcpdump", t) {
        return;
    }
    let (a, b) = linked("ae4");
    let pcap = tmp("ae4.pcap");
    let mut cap = Command::new("ip")
        .args([
            "netns", "exec", &b.name, "tcpdump", "-U", "-i", "ae4ba", "-w",
        ])
        .arg(&pcap)
        .args(["udp", "port", "6696"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _da = start_with_config(&a, "ae4a", common::daemon_bin(), DEPLOYED, &["ae4ab"]);
    let _db = start_with_config(&b, "ae4b", common::daemon_bin(), DEPLOYED, &["ae4ba"]);
    assert!(wait_for(60, || has_route(&b, "fd77::1")), "{}", dump(&b));
    // A full update interval after convergence: every route has been advertised.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(!has_route(&b, "10.77.0.1"), "{}", dump(&b));
    let _ = cap.kill();
    let _ = cap.wait();
    let out = Command::new(test_support::babelctl())
        .args(["decode", "--althea"])
        .arg(&pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fd77::1/128"),
        "the capture holds Updates: {text}"
    );
    assert!(
        !text.contains("10.77.0.1"),
        "an IPv4 Update went out on a link without IPv4: {text}"
    );
    // Numbered link: IPv4 routes cross with IPv4 next hops.
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "ae4ab"]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "ae4ba"]);
    assert!(wait_for(60, || has_route(&b, "10.77.0.1")), "{}", dump(&b));
    let r = common::babel_routes(&b)
        .into_iter()
        .find(|l| l.starts_with("10.77.0.1"))
        .unwrap();
    assert!(r.contains("via 192.0.2.1"), "{r}");
}

/// A control server that behaves as Althea's fork's is described: banner `ALTHEA 0.1`, one
/// command line answered per read (the rest of what that read carried is dropped), `bad` for
/// what it does not know.
fn fork_like_server(ns: &Netns, port: u16) -> std::thread::JoinHandle<usize> {
    ns.spawn(move || {
        let l = std::net::TcpListener::bind(("::1", port)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"ALTHEA 0.1\nversion babeld-1.8.0-althea\nhost fork\nmy-id 02:00:00:ff:fe:00:00:01\nok\n")
            .unwrap();
        let mut answered = 0;
        let mut buf = [0u8; 1024];
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => return answered,
                Ok(n) => n,
            };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = text.lines().next().unwrap_or("").trim().to_owned();
            answered += 1;
            let reply = match line.as_str() {
                "dump" => "local fee 100\nmetric factor 1900\nadd interface wg0 up true ipv6 fe80::1\n\
add neighbour 1 address fe80::2 if wg0 reach ffff ureach 0000 rxcost 96 txcost 96 cost 96\n\
add route 2 prefix fd77::9/128 from ::/0 installed yes id 02:00:00:ff:fe:00:00:09 metric 96 price 0 fee 100 refmetric 0 full-path-rtt 0.000 via fe80::2 if wg0\nok\n"
                    .to_owned(),
                "quit" => return answered,
                _ => "bad\n".to_owned(),
            };
            if s.write_all(reply.as_bytes()).is_err() {
                return answered;
            }
        }
    })
}

fn babelctl_show(ns: &Netns, port: u16) -> std::process::Output {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "timeout",
            "20",
            test_support::babelctl(),
            "show",
            "-s",
        ])
        .arg(port.to_string())
        .output()
        .unwrap()
}

/// Point 5: `babelctl show` speaks one command at a time and works against the fork's control
/// protocol, Debian's babeld and babeld-rs.
#[test]
fn babelctl_show_against_fork_babeld_and_ours() {
    let t = "babelctl_show_against_fork_babeld_and_ours";
    if !can_use_netns(t) {
        return;
    }
    let f = Netns::new("shf");
    let server = fork_like_server(&f, 6872);
    let mut out = babelctl_show(&f, 6872);
    for _ in 0..50 {
        if out.status.success() {
            break;
        }
        // The server thread may not be listening yet.
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = babelctl_show(&f, 6872);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ALTHEA 0.1") && text.contains("fd77::9/128"),
        "{text}"
    );
    assert!(text.contains("local fee 100"), "{text}");
    // `dump json` (bad), `dump`, then `quit`: each in its own read.
    assert_eq!(server.join().unwrap(), 3);

    for (tag, prog) in [("shb", "babeld"), ("sho", common::daemon_bin())] {
        if prog == "babeld" && !have("babeld", t) {
            continue;
        }
        let a = node(&format!("{tag}a"), 1);
        let b = node(&format!("{tag}b"), 2);
        forwarding(&a);
        veth(&a, &format!("{tag}ab"), &b, &format!("{tag}ba"));
        let _da = start_with_config(&a, &format!("{tag}a"), prog, PLAIN, &[&format!("{tag}ab")]);
        let _db = start_with_config(&b, &format!("{tag}b"), prog, PLAIN, &[&format!("{tag}ba")]);
        assert!(wait_for(60, || has_route(&a, "fd77::2")));
        let out = babelctl_show(&a, 33123);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("fd77::2/128"),
            "{prog}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
