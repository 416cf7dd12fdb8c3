//! The harness on real parts (root only): namespaces joined by a veth pair and by the delaying
//! TAP link answer pings, a TUN device appears inside its namespace only, and a process guard
//! ends its process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use test_support::{
    DaemonProcess, Netns, TapLink, can_use_netns, open_tun_in, ping, ping_with, tmp, veth, wait_for,
};

#[test]
fn veth_and_ping_both_families() {
    if !can_use_netns("veth_and_ping_both_families") {
        return;
    }
    let a = Netns::new("hva");
    let b = Netns::new("hvb");
    veth(&a, "ha", &b, "hb");
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "ha"]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "hb"]);
    a.ip(&["addr", "add", "2001:db8::1/64", "dev", "ha", "nodad"]);
    b.ip(&["addr", "add", "2001:db8::2/64", "dev", "hb", "nodad"]);
    assert!(wait_for(10, || ping(&a, "192.0.2.2")));
    assert!(wait_for(10, || ping(&b, "2001:db8::1")));
    assert!(ping_with(
        &a,
        "2001:db8::2",
        &["-c", "2", "-i", "0.2", "-W", "2"]
    ));
    // Nobody there: the ping fails.
    assert!(!ping_with(&a, "192.0.2.9", &["-c", "1", "-W", "1"]));
    assert!(a.link_local("ha").segments()[0] == 0xfe80);
    let name = a.name.clone();
    drop(a);
    assert!(!a_exists(&name), "the namespace goes with its guard");
}

fn a_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/var/run/netns/{name}")).exists()
}

#[test]
fn tap_link_delays_frames() {
    if !can_use_netns("tap_link_delays_frames") {
        return;
    }
    let a = Netns::new("hta");
    let b = Netns::new("htb");
    let link = TapLink::new(&a, "hta0", &b, "htb0", Duration::from_millis(100));
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "hta0"]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "htb0"]);
    assert!(wait_for(10, || ping(&a, "192.0.2.2")));
    assert!(link.forwarded() > 0);
    // One echo takes at least the round trip (2 × 100 ms).
    let start = Instant::now();
    assert!(ping(&a, "192.0.2.2"));
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn tun_device_lives_in_its_namespace() {
    if !can_use_netns("tun_device_lives_in_its_namespace") {
        return;
    }
    let a = Netns::new("htun");
    let name = format!("htun{}", std::process::id() % 100_000);
    let tun = open_tun_in(&a, &name);
    assert!(
        a.ip(&["link", "show", "dev", &name])
            .contains("POINTOPOINT")
    );
    assert!(
        !std::process::Command::new("ip")
            .args(["link", "show", "dev", &name])
            .output()
            .unwrap()
            .status
            .success(),
        "not in the root namespace"
    );
    drop(tun);
    assert!(wait_for(10, || a
        .ip(&["-o", "link"])
        .lines()
        .all(|l| !l.contains(&name))));
}

#[test]
fn daemon_guard_ends_its_process() {
    if !can_use_netns("daemon_guard_ends_its_process") {
        return;
    }
    let a = Netns::new("hproc");
    let mut d = DaemonProcess::start(&a, "sleep", &["600"], tmp("none.log"));
    assert!(d.alive());
    assert!(d.terminate().is_some());
    assert!(!d.alive());
    let d = DaemonProcess::start(&a, "sleep", &["600"], tmp("none.log"));
    let pid = d.child.id();
    drop(d);
    // Killed and reaped: no such process any more.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
