//! babeld-rs on real links: network namespaces, veth pairs, kernel routes, ping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{
    DaemonProcess, FILTERS, Netns, babel_routes, can_use_netns, control, has_route, node, ping,
    start_router, tmp, veth, wait_for,
};

const PORT: u16 = 33123;

fn start(ns: &Netns, name: &str, extra: &str, ifaces: &[&str]) -> DaemonProcess {
    start_router(ns, name, common::daemon_bin(), extra, ifaces)
}

#[test]
fn line_of_three_installs_every_route_and_forwards() {
    if !can_use_netns("line_of_three_installs_every_route_and_forwards") {
        return;
    }
    let (a, b, c) = (node("l3a", 1), node("l3b", 2), node("l3c", 3));
    veth(&a, "l3ab", &b, "l3ba");
    veth(&b, "l3bc", &c, "l3cb");
    let _da = start(&a, "l3a", "", &["l3ab"]);
    let mut db = start(&b, "l3b", "", &["l3ba", "l3bc"]);
    let _dc = start(&c, "l3c", "", &["l3cb"]);
    let nodes = [(&a, 1), (&b, 2), (&c, 3)];
    for (ns, me) in nodes {
        for n in [1, 2, 3].into_iter().filter(|n| *n != me) {
            for dst in [format!("10.77.0.{n}"), format!("fd77::{n}")] {
                assert!(
                    wait_for(60, || has_route(ns, &dst)),
                    "{} never got {dst}: {:?}\n{}",
                    ns.name,
                    babel_routes(ns),
                    db.log_text()
                );
            }
        }
    }
    assert!(
        ping(&a, "10.77.0.3")
            && ping(&a, "fd77::3")
            && ping(&c, "10.77.0.1")
            && ping(&c, "fd77::1")
    );

    // The control socket shows the same, in babeld's format.
    let dump = control(&b, PORT, "dump\nquit\n");
    assert!(dump.starts_with("BABEL 1.0\nversion babeld-rs-"), "{dump}");
    assert_eq!(
        dump.lines()
            .filter(|l| l.starts_with("add neighbour"))
            .count(),
        2,
        "{dump}"
    );
    assert_eq!(
        dump.lines()
            .filter(|l| l.starts_with("add route") && l.contains("installed yes"))
            .count(),
        4,
        "{dump}"
    );

    // babelctl show: tables with prices (from `dump json`), and JSON.
    let show = b.exec(&[test_support::babelctl(), "show", "-s", "33123"]);
    assert!(
        show.contains("PRICE") && show.contains("ROUTER-ID"),
        "{show}"
    );
    assert_eq!(
        show.lines()
            .filter(
                |l| (l.starts_with("fd77::1/128") || l.starts_with("10.77.0.3/32"))
                    && l.split_whitespace().nth(2) == Some("yes")
            )
            .count(),
        2,
        "{show}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&b.exec(&[test_support::babelctl(), "show", "--json"])).unwrap();
    // Four installed routes; the others are the neighbours' echoes of routes learned from us or
    // each other (auto-typed interfaces have no split horizon, as in babeld).
    let installed = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fields"]["installed"] == "yes")
        .count();
    assert_eq!(installed, 4, "{json}");
    assert_eq!(json["neighbours"].as_array().unwrap().len(), 2, "{json}");

    // SIGUSR1 writes the dump to the log.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(db.child.id() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    assert!(
        wait_for(10, || db.log_text().contains("add route")),
        "{}",
        db.log_text()
    );

    // SIGTERM: b retracts everything and removes its kernel routes; a loses c.
    let status = db.terminate().expect("b exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(babel_routes(&b).is_empty(), "{:?}", babel_routes(&b));
    // The state file keeps the seqno (and router-id) for the next start (RFC 8966 §3.2.2).
    let state = std::fs::read_to_string(tmp("l3b.state")).unwrap();
    assert!(
        state.contains("seqno ") && state.contains("router-id "),
        "{state}"
    );
    assert!(
        wait_for(30, || !has_route(&a, "10.77.0.3")
            && !has_route(&a, "fd77::3")),
        "{:?}",
        babel_routes(&a)
    );
}

#[test]
fn bad_config_fails_with_file_line_and_reason() {
    if !can_use_netns("bad_config_fails_with_file_line_and_reason") {
        return;
    }
    let ns = Netns::new("badc");
    let conf = tmp("bad.conf");
    std::fs::write(&conf, "fee 5\ninterface eth0 hello-interval banana\n").unwrap();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            common::daemon_bin(),
            "-I",
            "",
            "-c",
            conf.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.conf:2:") && err.contains("hello-interval") && err.contains("banana"),
        "{err}"
    );
}

#[test]
fn bad_commands_and_garbage_on_the_control_socket() {
    if !can_use_netns("bad_commands_and_garbage_on_the_control_socket") {
        return;
    }
    let (a, b) = (node("ctla", 1), node("ctlb", 2));
    veth(&a, "ctlab", &b, "ctlba");
    let mut d = start(&a, "ctla", "", &["ctlab"]);
    let _db = start(&b, "ctlb", "", &["ctlba"]);
    assert!(wait_for(60, || has_route(&a, "fd77::2")));
    let mut garbage =
        String::from("bogus command\nredistribute local deny\nflush interface nope\n");
    garbage.push_str(&"x".repeat(5000));
    garbage.push_str("\nfee 3\ninterface ctlab hello-interval 2\ndump\nquit\n");
    let out = control(&a, PORT, &garbage);
    let replies: Vec<&str> = out
        .lines()
        .skip(5)
        .filter(|l| !l.starts_with("add "))
        .collect();
    assert_eq!(
        replies,
        vec![
            "bad",
            "bad",
            "no No such interface",
            "bad",
            "ok",
            "ok",
            "ok"
        ],
        "{out}"
    );
    // Binary junk, many clients at once: the daemon keeps serving.
    let handles: Vec<_> = (0..130)
        .map(|i| {
            let ns_name = a.name.clone();
            std::thread::spawn(move || {
                let path = format!("/var/run/netns/{ns_name}");
                let f = std::fs::File::open(path).unwrap();
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(("::1", PORT)).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                let junk: Vec<u8> = (0..2000u32).map(|x| (x * 7 + i) as u8).collect();
                let _ = s.write_all(&junk);
                s.write_all(b"\ndump\nquit\n").unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out
            })
        })
        .collect();
    let outs: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        outs.iter()
            .all(|o| o.starts_with("BABEL 1.0") && o.trim_end().ends_with("ok")),
        "{:?}",
        &outs[..2]
    );
    assert!(d.alive());
    assert!(control(&a, PORT, "dump\nquit\n").contains("add route"));
}

/// `monitor` streams `add`/`change`/`flush` lines as the mesh changes; kernel routes and
/// addresses that appear at runtime are redistributed.
#[test]
fn monitor_and_runtime_redistribution() {
    if !can_use_netns("monitor_and_runtime_redistribution") {
        return;
    }
    let (a, b) = (node("mona", 1), node("monb", 2));
    veth(&a, "monab", &b, "monba");
    b.ip(&["link", "add", "monbh", "type", "ifb"]);
    b.ip(&["link", "set", "monbh", "up"]);
    let _da = start(&a, "mona", "", &["monab"]);
    let mut db = start(&b, "monb", "redistribute ip fd88::/16 allow\n", &["monba"]);
    assert!(wait_for(60, || has_route(&a, "fd77::2")));
    // A monitor client on a: it gets the dump, then lines as things change.
    let ns = a.name.clone();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let monitor = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        use std::io::{BufRead, Write};
        let mut s = std::net::TcpStream::connect(("::1", PORT)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(90)))
            .unwrap();
        s.write_all(b"monitor\n").unwrap();
        for line in std::io::BufReader::new(s).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut until = |pred: &dyn Fn(&str) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
                let hit = pred(&l);
                seen.push(l);
                if hit {
                    return;
                }
            }
        }
        panic!("monitor never showed {what}: {seen:#?}");
    };
    until(&|l| l == "ok", "the end of the initial dump");
    // A kernel route and an address appear on b at runtime: a learns them, live.
    b.ip(&[
        "route",
        "add",
        "fd88::/64",
        "dev",
        "monbh",
        "proto",
        "static",
    ]);
    b.ip(&["addr", "add", "fd77::22/128", "dev", "lo"]);
    until(
        &|l| l.starts_with("add route") && l.contains("prefix fd88::/64 "),
        "fd88::/64 added",
    );
    assert!(
        wait_for(30, || has_route(&a, "fd88::/64")
            && has_route(&a, "fd77::22")),
        "{:?}",
        babel_routes(&a)
    );
    // The route goes away on b: it is retracted.
    b.ip(&["route", "del", "fd88::/64", "dev", "monbh"]);
    until(
        &|l| {
            l.contains("prefix fd88::/64 ")
                && (l.starts_with("flush route") || l.contains(" metric 65535 "))
        },
        "fd88::/64 retracted",
    );
    assert!(
        wait_for(30, || !has_route(&a, "fd88::/64")),
        "{:?}",
        babel_routes(&a)
    );
    // b stops: a's monitor sees the neighbour go.
    db.terminate().unwrap();
    until(
        &|l| l.starts_with("flush neighbour"),
        "the neighbour flushed",
    );
    drop(rx);
    let _ = monitor.join();
}

/// `-D` daemonises: the command returns, the pid file names the daemon, and it serves.
#[test]
fn daemonise_and_pid_file() {
    if !can_use_netns("daemonise_and_pid_file") {
        return;
    }
    let ns = node("dmn", 1);
    ns.ip(&["link", "add", "dmnbh", "type", "ifb"]);
    ns.ip(&["link", "set", "dmnbh", "up"]);
    let pid_file = tmp("dmn.pid");
    let conf = tmp("dmn.conf");
    std::fs::write(&conf, FILTERS).unwrap();
    let status = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            common::daemon_bin(),
            "-D",
            "-I",
            pid_file.to_str().unwrap(),
            "-S",
            tmp("dmn.state").to_str().unwrap(),
        ])
        .args([
            "-L",
            tmp("dmn.log").to_str().unwrap(),
            "-G",
            "33124",
            "-c",
            conf.to_str().unwrap(),
            "dmnbh",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(wait_for(10, || std::fs::read_to_string(&pid_file)
        .is_ok_and(|s| !s.trim().is_empty())));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let guard = scopeguard(pid);
    assert!(wait_for(10, || std::panic::catch_unwind(|| control(
        &ns,
        33124,
        "dump\nquit\n"
    ))
    .is_ok_and(|o| o.contains("add xroute"))));
    // A second instance with the same pid file refuses to start.
    let second = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            common::daemon_bin(),
            "-I",
            pid_file.to_str().unwrap(),
            "-c",
            conf.to_str().unwrap(),
            "dmnbh",
        ])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("is running"));
    drop(guard);
    assert!(
        wait_for(15, || !pid_file.exists()),
        "the pid file is removed at exit"
    );
}

/// Kills a daemonised process when dropped.
struct Kill(i32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

fn scopeguard(pid: i32) -> Kill {
    Kill(pid)
}

/// `link-detect`: when the carrier goes (the peer's end of the veth is set down), the interface
/// is taken down and its routes go at once; when it comes back, so do they.
#[test]
fn link_detection_follows_the_carrier() {
    if !can_use_netns("link_detection_follows_the_carrier") {
        return;
    }
    let (a, b) = (node("lda", 1), node("ldb", 2));
    veth(&a, "ldab", &b, "ldba");
    let _da = start(&a, "lda", "link-detect true\n", &["ldab"]);
    let _db = start(&b, "ldb", "", &["ldba"]);
    assert!(wait_for(60, || has_route(&a, "fd77::2")));
    assert!(control(&a, PORT, "dump\nquit\n").contains("add interface ldab up true"));
    b.ip(&["link", "set", "ldba", "down"]);
    assert!(
        wait_for(10, || control(&a, PORT, "dump\nquit\n")
            .contains("add interface ldab up false")),
        "{}",
        control(&a, PORT, "dump\nquit\n")
    );
    assert!(
        wait_for(10, || !has_route(&a, "fd77::2")),
        "{:?}",
        babel_routes(&a)
    );
    b.ip(&["link", "set", "ldba", "up"]);
    assert!(
        wait_for(60, || has_route(&a, "fd77::2")),
        "{:?}",
        babel_routes(&a)
    );
}

/// `kernel-check-interval`: a route of ours that someone deletes is put back at the next check
/// (the engine still believes it installed, so nothing else would restore it).
#[test]
fn kernel_check_restores_deleted_routes() {
    if !can_use_netns("kernel_check_restores_deleted_routes") {
        return;
    }
    let (a, b) = (node("kca", 1), node("kcb", 2));
    veth(&a, "kcab", &b, "kcba");
    let da = start(&a, "kca", "kernel-check-interval 1\n", &["kcab"]);
    let _db = start(&b, "kcb", "", &["kcba"]);
    assert!(wait_for(60, || has_route(&a, "fd77::2")
        && has_route(&a, "10.77.0.2")));
    // `ip route del` fails the test unless the route was there and is gone. Whether it is
    // still gone when looked at next is a race with the check, which may run in between (once a
    // second here), so the check's own account is what shows that it put the routes back.
    a.ip(&["-6", "route", "del", "fd77::2", "proto", "42"]);
    a.ip(&["route", "del", "10.77.0.2", "proto", "42"]);
    assert!(
        wait_for(10, || has_route(&a, "fd77::2")
            && has_route(&a, "10.77.0.2")),
        "{:?}",
        babel_routes(&a)
    );
    assert!(
        wait_for(10, || da.log_text().contains("routes reinstalled")),
        "{}",
        da.log_text()
    );
}
