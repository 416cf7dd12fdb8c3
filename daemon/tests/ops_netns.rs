//! What operators look at, on a real mesh in network namespaces: Prometheus metrics (control
//! command and HTTP port), the `babelctl web` page rendered by headless Chromium, and the
//! Debian package once `scripts/test.sh` has installed it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::{Netns, can_use_netns, control, has_route, have, node, start_router, veth, wait_for};

/// A line a - b - c of babeld-rs routers (b in the middle), converged.
struct Line {
    a: Netns,
    b: Netns,
    c: Netns,
    _d: Vec<common::DaemonProcess>,
}

fn line(tag: &str, extra_b: &str) -> Line {
    let a = node(&format!("{tag}a"), 1);
    let b = node(&format!("{tag}b"), 2);
    let c = node(&format!("{tag}c"), 3);
    veth(&a, &format!("{tag}ab"), &b, &format!("{tag}ba"));
    veth(&b, &format!("{tag}bc"), &c, &format!("{tag}cb"));
    let d = vec![
        start_router(
            &a,
            &format!("{tag}a"),
            common::daemon_bin(),
            "",
            &[&format!("{tag}ab")],
        ),
        start_router(
            &b,
            &format!("{tag}b"),
            common::daemon_bin(),
            extra_b,
            &[&format!("{tag}ba"), &format!("{tag}bc")],
        ),
        start_router(
            &c,
            &format!("{tag}c"),
            common::daemon_bin(),
            "",
            &[&format!("{tag}cb")],
        ),
    ];
    for dst in ["fd77::1", "fd77::3"] {
        assert!(
            wait_for(90, || has_route(&b, dst)),
            "{dst}: {}",
            common::try_control(&b, "dump\nquit\n")
        );
    }
    Line { a, b, c, _d: d }
}

fn my_id(ns: &Netns) -> String {
    control(ns, 33123, "quit\n")
        .lines()
        .find_map(|l| l.strip_prefix("my-id ").map(str::to_owned))
        .unwrap()
}

fn http_get(ns: &Netns, port: u16, path: &str) -> String {
    let path = path.to_owned();
    ns.spawn(move || {
        let mut s = std::net::TcpStream::connect(("::1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .join()
    .unwrap()
}

/// Metrics: the control socket's `metrics` and `metrics-port`'s `GET /metrics` give the
/// counters, neighbours with costs, routes with prices and the fee, in OpenMetrics text.
#[test]
fn metrics_on_the_control_socket_and_http() {
    let t = "metrics_on_the_control_socket_and_http";
    if !can_use_netns(t) {
        return;
    }
    let l = line("met", "metrics-port 9633\nfee 7\nalthea-compatible false\n");
    let m = control(&l.b, 33123, "metrics\nquit\n");
    for want in [
        "babel_neighbours 2",
        "babel_fee 7",
        "babel_engine_events_total{name=\"packets_received\"}",
        "babel_neighbour_cost{interface=\"metba\"",
        "babel_route_price{prefix=\"fd77::1/128\"",
        "babel_routes{installed=\"true\"}",
        "# EOF",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    assert!(m.trim_end().ends_with("ok"), "{m}");
    // The installed route's price is our fee: a is the destination and charges nothing.
    assert!(
        m.lines().any(
            |x| x.starts_with("babel_route_price{prefix=\"fd77::1/128\"") && x.ends_with(" 7")
        ),
        "{m}"
    );
    let h = http_get(&l.b, 9633, "/metrics");
    assert!(h.starts_with("HTTP/1.0 200 OK\r\n"), "{h}");
    assert!(
        h.contains("application/openmetrics-text") && h.contains("babel_neighbours 2"),
        "{h}"
    );
    assert!(http_get(&l.b, 9633, "/").starts_with("HTTP/1.0 404"));
    let _ = (&l.a, &l.c);
}

/// Kills a child process on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium(ns: &Netns, args: &[&str], url: &str) -> std::process::Output {
    let profile = tempdir();
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "timeout", "120", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let d = common::tmp(&format!(
        "chromium-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The page: headless Chromium (Debian's) loads `babelctl web` in the middle router's
/// namespace; its DOM shows both other routers (router-ids and prefixes) in the SVG graph and
/// the tables, and a screenshot is kept in the target directory.
#[test]
fn web_page_in_headless_chromium_shows_the_mesh() {
    let t = "web_page_in_headless_chromium_shows_the_mesh";
    if !can_use_netns(t) || !have("chromium", t) {
        return;
    }
    let l = line("web", "");
    let (ida, idc) = (my_id(&l.a), my_id(&l.c));
    let _web = Child(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &l.b.name,
                test_support::babelctl(),
                "web",
                "-s",
                "33123",
            ])
            .args(["-l", "127.0.0.1:8033"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let url = "http://127.0.0.1:8033/";
    let mut dom = String::new();
    assert!(
        wait_for(120, || {
            let out = chromium(&l.b, &["--dump-dom"], url);
            dom = String::from_utf8_lossy(&out.stdout).into_owned();
            dom.contains("<svg")
        }),
        "no page: {dom}"
    );
    let svg = &dom[dom.find("<svg").unwrap()..dom.find("</svg>").unwrap()];
    for want in [&ida, &idc, "fd77::1/128", "fd77::3/128"] {
        assert!(svg.contains(want), "{want} not in the graph: {svg}");
    }
    assert_eq!(svg.matches("class=\"router\"").count(), 2, "{svg}");
    assert!(dom.contains("Neighbours") && dom.contains("Routes"));
    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("babelctl-web.png");
    let _ = std::fs::remove_file(&png);
    let out = chromium(&l.b, &[&format!("--screenshot={}", png.display())], url);
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} ({size} bytes): {}",
        png.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("screenshot: {}", png.display());
}

/// The Debian package, installed by `scripts/test.sh` (as root): its files, its hardened
/// systemd unit, and its daemon routing in a namespace beside the tree's babeld-rs.
#[test]
fn installed_debian_package_runs_in_a_namespace() {
    let t = "installed_debian_package_runs_in_a_namespace";
    let installed = "/usr/sbin/babeld-rs";
    if !can_use_netns(t) {
        return;
    }
    if !std::path::Path::new(installed).exists() {
        println!(
            "SKIP {t}: the babeld-rs package is not installed (scripts/test.sh installs it as root)"
        );
        return;
    }
    let unit = ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/babeld-rs.service")).ok())
        .expect("systemd unit");
    for want in [
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW",
        "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "ExecStart=/usr/sbin/babeld-rs ",
    ] {
        assert!(unit.contains(want), "{want}: {unit}");
    }
    assert!(std::path::Path::new("/usr/share/man/man8/babeld-rs.8.gz").exists());
    assert!(std::path::Path::new("/usr/bin/babelctl").exists());
    let a = node("pkga", 1);
    let b = node("pkgb", 2);
    veth(&a, "pkgab", &b, "pkgba");
    let _da = start_router(&a, "pkga", installed, "", &["pkgab"]);
    let _db = start_router(&b, "pkgb", common::daemon_bin(), "", &["pkgba"]);
    assert!(wait_for(60, || has_route(&a, "fd77::2") && has_route(&b, "fd77::1")));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.name,
            "/usr/bin/babelctl",
            "show",
            "-s",
            "33123",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("fd77::2/128"));
}
