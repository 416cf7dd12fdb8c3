//! Payments on real kernels in network namespaces (spec/payments.md): mesh routers meter the
//! traffic in their tunnels, pay each other by signed channel updates over the tunnels, and
//! shape a neighbour's traffic by what it pays, measured with iperf3.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    dead_code
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    DaemonProcess, Netns, can_run_mesh, has_route, keypair, monitor_until, node, one_at_a_time,
    ping, start_mesh_router, try_control, veth, wait_for,
};

/// A mesh router on `ifaces` with payments on, a fixed mesh key and `extra` configuration.
fn pay_router(
    ns: &Netns,
    name: &str,
    ifaces: &[&str],
    mesh_key: &str,
    extra: &str,
) -> DaemonProcess {
    let extra = format!("mesh-private-key {mesh_key}\npay-enable true\n{extra}");
    start_mesh_router(ns, name, common::daemon_bin(), &extra, ifaces)
}

use common::dump_json as json;

/// One neighbour's payment row (by its mesh public key).
#[derive(Debug, Clone, Default)]
struct Row {
    owed_in: u128,
    owed_out: u128,
    paid_in: u128,
    paid_out: u128,
    nonce_in: u64,
    nonce_out: u64,
    service: String,
    weight: u64,
    known: bool,
    paying: bool,
}

fn num(v: &serde_json::Value) -> u128 {
    v.as_u64()
        .map(u128::from)
        .or_else(|| v.as_f64().map(|f| f as u128))
        .unwrap_or(0)
}

fn row(ns: &Netns, neighbour: &str) -> Option<Row> {
    let v = json(ns);
    let r = v["payments"]
        .as_array()?
        .iter()
        .find(|r| r["neighbour"] == neighbour)?
        .clone();
    Some(Row {
        owed_in: num(&r["owed_in"]),
        owed_out: num(&r["owed_out"]),
        paid_in: num(&r["paid_in"]),
        paid_out: num(&r["paid_out"]),
        nonce_in: num(&r["nonce_in"]) as u64,
        nonce_out: num(&r["nonce_out"]) as u64,
        service: r["service"].as_str().unwrap_or("").to_owned(),
        weight: num(&r["weight"]) as u64,
        known: r["payment_key"].is_string(),
        paying: r["paying"].as_bool().unwrap_or(false),
    })
}

/// (bytes in, bytes out, value in, value out) of a neighbour's meter.
fn meter(ns: &Netns, neighbour: &str) -> (u128, u128, u128, u128) {
    let v = json(ns);
    let mut t = (0, 0, 0, 0);
    for m in v["meters"].as_array().into_iter().flatten() {
        if m["neighbour"] == neighbour {
            t.0 += num(&m["bytes_in"]);
            t.1 += num(&m["bytes_out"]);
            t.2 += num(&m["value_in"]);
            t.3 += num(&m["value_out"]);
        }
    }
    t
}

/// The price of the installed route to `prefix` (Althea's price: what we charge for it).
fn route_price(ns: &Netns, prefix: &str) -> Option<u128> {
    let v = json(ns);
    v["routes"]
        .as_array()?
        .iter()
        .find(|r| r["prefix"] == prefix && r["installed"] == true)
        .map(|r| num(&r["price"]))
}

/// `dst` answers a ping from `ns` (routes exist end to end, both ways).
fn reachable(ns: &Netns, dst: &str) -> bool {
    wait_for(90, || ping(ns, dst))
}

/// An iperf3 server in `ns` on `port`, killed on drop.
struct Server(Child);

impl Server {
    fn start(ns: &Netns, port: u16) -> Server {
        let c = Command::new("ip")
            .args(["netns", "exec", &ns.name, "iperf3", "-s", "-J", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server(c)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a UDP iperf3 client in `ns` to `dst:port` at `rate` for `secs`, JSON output with the
/// server's per-second receive report.
fn udp_client(ns: &Netns, dst: &str, port: u16, rate: &str, secs: u32) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "iperf3", "-c", dst, "-u", "-b", rate,
        ])
        .args(["-l", "1000", "-J", "--get-server-output", "-p"])
        .arg(port.to_string())
        .arg("-t")
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The receiver's bytes per second, per interval, from an iperf3 client's JSON.
fn received_per_second(out: std::process::Output) -> Vec<f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "iperf3 output ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["server_output_json"]["intervals"]
        .as_array()
        .unwrap_or_else(|| panic!("no server intervals: {text}"))
        .iter()
        .map(|i| {
            i["sum"]["bytes"].as_f64().unwrap_or(0.0) / i["sum"]["seconds"].as_f64().unwrap_or(1.0)
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Routers on a line with fixed mesh keys: (namespaces, private keys, public keys).
fn keys(n: usize) -> (Vec<String>, Vec<String>) {
    (0..n).map(|_| keypair()).unzip()
}

#[test]
fn a_line_pays_by_the_prices_and_service_follows_payment() {
    let _serial = one_at_a_time();
    let test = "a_line_pays_by_the_prices_and_service_follows_payment";
    if !can_run_mesh(test, &["iperf3"]) {
        return;
    }
    // A - B - C - D; D sends to A through C and B. A destination charges nothing for its own
    // prefixes (Althea's prices are the fees of the routers that forward), so two hops pay:
    // D pays C (C's price: B's fee plus C's), C pays B (B's price: its fee).
    let ns: Vec<Netns> = (1..=4).map(|i| node("pay4", i)).collect();
    veth(&ns[0], "pya", &ns[1], "pyb1");
    veth(&ns[1], "pyb2", &ns[2], "pyc1");
    veth(&ns[2], "pyc2", &ns[3], "pyd");
    let (private, public) = keys(4);
    // Payments every 5 * 10^6 wei owed, cut-off above 5 * 10^7, metering interval 2 s, free
    // tier 1000 kbit/s (the default).
    let pay = "pay-threshold 5000000\npay-close-threshold 50000000\npay-interval 2\n";
    let ifs: [&[&str]; 4] = [&["pya"], &["pyb1", "pyb2"], &["pyc1", "pyc2"], &["pyd"]];
    let fees = [10, 5, 3, 1];
    let mut d: Vec<DaemonProcess> = (0..4)
        .map(|i| {
            pay_router(
                &ns[i],
                &format!("pay4-{i}"),
                ifs[i],
                &private[i],
                &format!("fee {}\n{pay}", fees[i]),
            )
        })
        .collect();
    assert!(
        wait_for(120, || has_route(&ns[3], "fd77::1")
            && has_route(&ns[0], "fd77::4")),
        "routes: {}",
        d[2].log_text()
    );
    // Payment keys exchanged over the tunnels.
    assert!(
        wait_for(30, || row(&ns[3], &public[2]).is_some_and(|r| r.known)
            && row(&ns[2], &public[3]).is_some_and(|r| r.known)
            && row(&ns[2], &public[1]).is_some_and(|r| r.known)
            && row(&ns[1], &public[2]).is_some_and(|r| r.known)),
        "{}",
        try_control(&ns[2], "dump\nquit\n")
    );
    // What each payer pays per byte to A: the price its next hop advertised.
    let price_d = route_price(&ns[3], "fd77::1/128").unwrap();
    let price_c = route_price(&ns[2], "fd77::1/128").unwrap();
    println!("price of fd77::1: at D {price_d}, at C {price_c}");
    assert_eq!((price_d, price_c), (8, 5));
    let _server = Server::start(&ns[0], 5201);
    let before_c = meter(&ns[3], &public[2]);
    let before_b = meter(&ns[2], &public[1]);
    // (a) D sends 4 Mbit/s to A for 8 s.
    assert!(reachable(&ns[3], "fd77::1"));
    let mut client = udp_client(&ns[3], "fd77::1", 5201, "4M", 8);
    assert!(wait_for(60, || {
        let o = client.try_wait().unwrap();
        o.is_some()
    }));
    // The claims of (a) are about the meters and the ledgers, not the throughput: a route flap
    // under load that ends the run early does not matter here.
    let _ = client.wait_with_output().unwrap();
    // Quiet: every debt above the pay threshold is paid and acknowledged.
    let thr = 5_000_000u128;
    assert!(
        wait_for(30, || {
            let (c, b, b2, a) = (
                row(&ns[3], &public[2]).unwrap_or_default(),
                row(&ns[2], &public[3]).unwrap_or_default(),
                row(&ns[2], &public[1]).unwrap_or_default(),
                row(&ns[1], &public[2]).unwrap_or_default(),
            );
            // The ledgers have taken in everything the meters counted (they read the meters
            // once a second).
            let fed = c.paid_out + c.owed_out >= meter(&ns[3], &public[2]).3
                && b2.paid_out + b2.owed_out >= meter(&ns[2], &public[1]).3;
            fed && c.paid_out == b.paid_in
                && b2.paid_out == a.paid_in
                && c.owed_out <= thr
                && b2.owed_out <= thr
                && c.paid_out > 0
                && b2.paid_out > 0
        }),
        "C {:?}\nB<-C {:?}\nB->A {:?}\nA {:?}",
        row(&ns[3], &public[2]),
        row(&ns[2], &public[3]),
        row(&ns[2], &public[1]),
        row(&ns[1], &public[2])
    );
    let (c, bc, ba, a) = (
        row(&ns[3], &public[2]).unwrap(),
        row(&ns[2], &public[3]).unwrap(),
        row(&ns[2], &public[1]).unwrap(),
        row(&ns[1], &public[2]).unwrap(),
    );
    let mc = meter(&ns[3], &public[2]);
    let mb = meter(&ns[2], &public[1]);
    let bytes_c = mc.1 - before_c.1;
    let bytes_b = mb.1 - before_b.1;
    println!(
        "C -> B: {bytes_c} bytes, paid {} (owed {}), B -> A: {bytes_b} bytes, paid {} (owed {})",
        c.paid_out, c.owed_out, ba.paid_out, ba.owed_out
    );
    println!("B from C {bc:?}\nA from B {a:?}");
    // What the prices say: D pays C's price for every byte it sent through C, C pays B's price
    // for every byte it sent through B. Paid plus still owed (at most the pay threshold) is
    // within 2 % of bytes times price: Babel's and the payment loop's own packets are counted in
    // bytes at price 0, and the payer may pay up to the drift tolerance (2 %) above its own
    // metering when the payee claims more.
    let check = |what: &str, paid: u128, owed: u128, bytes: u128, price: u128| {
        let want = bytes * price;
        let total = paid + owed;
        let err = total.abs_diff(want) as f64 / want as f64;
        println!(
            "{what}: paid+owed {total}, bytes x price {want}, error {:.3} %",
            err * 100.0
        );
        assert!(err < 0.02, "{what}: paid+owed {total} vs {want}");
        assert!(owed <= thr, "{what}: owes {owed}");
    };
    check("D pays C", c.paid_out, c.owed_out, bytes_c, price_d);
    check("C pays B", ba.paid_out, ba.owed_out, bytes_b, price_c);
    // The payee's view of the same channel agrees: what it was paid is what was signed.
    assert_eq!(c.paid_out, bc.paid_in);
    assert_eq!(ba.paid_out, a.paid_in);
    assert_eq!((c.nonce_out, ba.nonce_out), (bc.nonce_in, a.nonce_in));

    // (b) D stops paying: it falls to the free tier at C, then pays and recovers. C's monitor
    // sees it all.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let mon = monitor_until(&ns[2], 600, move |_| {
        stopped.load(std::sync::atomic::Ordering::Relaxed)
    });
    let free = 125_000.0;
    assert!(reachable(&ns[3], "fd77::1"));
    let mut client = udp_client(&ns[3], "fd77::1", 5201, "4M", 34);
    let start = Instant::now();
    assert!(wait_for(15, || start.elapsed() > Duration::from_secs(5)));
    assert!(try_control(&ns[3], "pay-withhold true\nquit\n").contains("ok"));
    let withheld = start.elapsed();
    // B's view: when C's debt passed the close threshold, and when C was cut off.
    let (mut passed, mut cut) = (None, None);
    assert!(
        wait_for(30, || {
            let r = row(&ns[2], &public[3]).unwrap_or_default();
            if passed.is_none() && r.owed_in > 50_000_000 {
                passed = Some(start.elapsed());
            }
            if cut.is_none() && r.service == "free-tier" {
                cut = Some(start.elapsed());
            }
            cut.is_some()
        }),
        "never cut off: {:?}",
        row(&ns[2], &public[3])
    );
    let (passed, cut) = (passed.unwrap_or(cut.unwrap()), cut.unwrap());
    println!("withheld at {withheld:?}, debt past close at {passed:?}, free tier at {cut:?}");
    assert!(
        cut.saturating_sub(passed) <= Duration::from_secs(2),
        "{passed:?} {cut:?}"
    );
    // Measure the free tier for a while, then pay again.
    assert!(wait_for(30, || start.elapsed() > cut + Duration::from_secs(7)));
    assert!(try_control(&ns[3], "pay-withhold false\nquit\n").contains("ok"));
    let paid_again = start.elapsed();
    assert!(
        wait_for(20, || row(&ns[2], &public[3])
            .is_some_and(|r| r.service == "full")),
        "{:?}",
        row(&ns[2], &public[3])
    );
    let restored = start.elapsed();
    println!("paying again at {paid_again:?}, full service at {restored:?}");
    assert!(wait_for(60, || client.try_wait().unwrap().is_some()));
    let got = received_per_second(client.wait_with_output().unwrap());
    println!("A received (B/s): {got:?}");
    let at = |t: Duration| t.as_secs() as usize;
    let full_before = mean(&got[1..at(withheld)]);
    let shaped = mean(&got[at(cut) + 2..at(paid_again)]);
    let after = mean(&got[(at(restored) + 2).min(got.len() - 2)..got.len() - 1]);
    println!(
        "full {full_before:.0} B/s, free tier {shaped:.0} B/s (configured {free}), after paying {after:.0} B/s"
    );
    assert!(full_before > 3.0 * free, "{full_before}");
    assert!(shaped < 1.3 * free && shaped > 0.5 * free, "{shaped}");
    assert!(after > 3.0 * free, "{after}");
    // Operators see it: monitor events, show payments, metrics.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let events = mon.join().unwrap();
    for e in [
        format!("payment received neighbour {} nonce", public[3]),
        format!("payment sent neighbour {} nonce", public[1]),
        format!("payment cut-off neighbour {} service free-tier", public[3]),
        format!("payment restored neighbour {} service full", public[3]),
    ] {
        assert!(events.contains(&e), "no {e:?} in:\n{events}");
    }
    let show = ns[2].exec(&[test_support::babelctl(), "show", "-s", "33123", "payments"]);
    println!("{show}");
    let d_line = show
        .lines()
        .find(|l| l.starts_with(&public[3]))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(d_line.contains("full"), "{show}");
    let metrics = try_control(&ns[2], "metrics\nquit\n");
    assert!(
        metrics.contains("babel_payments_total{name=\"cut_offs\"} 1"),
        "{metrics}"
    );
    for x in &mut d {
        x.terminate();
    }
}

/// Weights are what each sender pays per unit of the traffic it offered B (spec/payments.md,
/// "Service follows payment"): S1 bids twice B's price (`pay-premium 100`), S2 pays the price.
#[test]
fn two_senders_paying_two_to_one_share_a_contended_link_two_to_one() {
    let _serial = one_at_a_time();
    let test = "two_senders_paying_two_to_one_share_a_contended_link_two_to_one";
    if !can_run_mesh(test, &["iperf3"]) {
        return;
    }
    // S1 and S2 reach B over one shared link (a bridge in B), B forwards to A. B's links are
    // configured at 1600 kbit/s; both send 1.6 Mbit/s to A; S1 pays twice B's price. (Rates
    // stay low enough for debug builds on a loaded machine: packets a busy router loses before
    // its shaper were paid for by the sender but weigh nothing at the receiver.)
    let a = node("payc", 1);
    let b = node("payc", 2);
    let s1 = node("payc", 3);
    let s2 = node("payc", 4);
    veth(&a, "pca", &b, "pcba");
    veth(&s1, "pcs1", &b, "pcb1");
    veth(&s2, "pcs2", &b, "pcb2");
    b.ip(&[
        "link",
        "add",
        "pcbr",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    for p in ["pcb1", "pcb2"] {
        b.ip(&["link", "set", p, "master", "pcbr"]);
    }
    b.ip(&["link", "set", "pcbr", "up"]);
    let (private, public) = keys(4);
    let pay = "pay-threshold 1000000\npay-close-threshold 1000000000000\npay-interval 1\n";
    let mut d = vec![
        pay_router(
            &a,
            "payc-a",
            &["pca"],
            &private[0],
            &format!("fee 10\n{pay}"),
        ),
        pay_router(
            &b,
            "payc-b",
            &["pcba", "pcbr"],
            &private[1],
            &format!("fee 5\npay-link-capacity 1600\n{pay}"),
        ),
        pay_router(
            &s1,
            "payc-s1",
            &["pcs1"],
            &private[2],
            &format!("fee 1\npay-premium 100\n{pay}"),
        ),
        pay_router(
            &s2,
            "payc-s2",
            &["pcs2"],
            &private[3],
            &format!("fee 1\n{pay}"),
        ),
    ];
    assert!(
        wait_for(120, || has_route(&s1, "fd77::1")
            && has_route(&s2, "fd77::1")
            && has_route(&a, "fd77::3")
            && has_route(&a, "fd77::4")),
        "routes: {}",
        d[1].log_text()
    );
    assert!(wait_for(30, || row(&b, &public[2])
        .is_some_and(|r| r.known)
        && row(&b, &public[3]).is_some_and(|r| r.known)));
    let _s5201 = Server::start(&a, 5201);
    let _s5202 = Server::start(&a, 5202);
    assert!(wait_for(10, || {
        a.exec(&["ss", "-ltn"]).contains(":5202")
    }));
    assert!(reachable(&s1, "fd77::1") && reachable(&s2, "fd77::1"));
    let c1 = udp_client(&s1, "fd77::1", 5201, "1600K", 24);
    let c2 = udp_client(&s2, "fd77::1", 5202, "1600K", 24);
    // Weights follow payments within a few metering intervals.
    assert!(
        wait_for(40, || {
            let (w1, w2) = (
                row(&b, &public[2]).unwrap_or_default().weight,
                row(&b, &public[3]).unwrap_or_default().weight,
            );
            w1 > 1700 && w2 < 1200 && w2 > 800
        }),
        "weights: {:?} {:?}\nmeters at B: {}\nmesh at B: {}\nmesh at S1: {}\n{}",
        row(&b, &public[2]),
        row(&b, &public[3]),
        json(&b)["meters"],
        json(&b)["mesh"],
        json(&s1)["mesh"],
        b.exec(&["nstat", "-az", "Udp6RcvbufErrors", "Udp6InErrors"])
    );
    let (r1, r2) = (
        row(&b, &public[2]).unwrap_or_default(),
        row(&b, &public[3]).unwrap_or_default(),
    );
    println!("at B: S1 {r1:?}\n      S2 {r2:?}");
    let g1 = received_per_second(c1.wait_with_output().unwrap());
    let g2 = received_per_second(c2.wait_with_output().unwrap());
    println!("A from S1 (B/s): {g1:?}\nA from S2 (B/s): {g2:?}");
    // The last 10 s, when the weights have settled.
    let tail = |g: &[f64]| mean(&g[g.len().saturating_sub(11)..g.len() - 1]);
    let (t1, t2) = (tail(&g1), tail(&g2));
    let ratio = t1 / t2;
    println!(
        "S1 {t1:.0} B/s, S2 {t2:.0} B/s, ratio {ratio:.2}, link {:.0} B/s of 200000",
        t1 + t2
    );
    assert!((ratio - 2.0).abs() / 2.0 < 0.15, "ratio {ratio}");
    for x in &mut d {
        x.terminate();
    }
}

#[test]
fn payments_survive_sigkill_of_either_daemon_at_random_instants() {
    let _serial = one_at_a_time();
    let test = "payments_survive_sigkill_of_either_daemon_at_random_instants";
    if !can_run_mesh(test, &["iperf3"]) {
        return;
    }
    let kills: u32 = std::env::var("PAY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // A - B - C; C streams to A through B and pays B; B or C is killed at random instants.
    let ns: Vec<Netns> = (1..=3).map(|i| node("payk", i)).collect();
    veth(&ns[0], "pka", &ns[1], "pkb1");
    veth(&ns[1], "pkb2", &ns[2], "pkc");
    let (private, public) = keys(3);
    let pay = "pay-threshold 1000000\npay-close-threshold 1000000000000\npay-interval 1\n";
    let ifs: [&[&str]; 3] = [&["pka"], &["pkb1", "pkb2"], &["pkc"]];
    let fees = [10, 5, 1];
    let start = |i: usize| {
        pay_router(
            &ns[i],
            &format!("payk-{i}"),
            ifs[i],
            &private[i],
            &format!("fee {}\n{pay}", fees[i]),
        )
    };
    let mut d: Vec<DaemonProcess> = (0..3).map(start).collect();
    // A steady stream from C to A.
    let mut sender = common::Stream::start(&ns[2], "[fd77::1]:9");
    let c_row = || row(&ns[2], &public[1]).unwrap_or_default();
    let b_row = || row(&ns[1], &public[2]).unwrap_or_default();
    // C's nonce at the last kill, read while every router was up (a restarting C answers with
    // no row, which must not count as nonce 0).
    let mut n0 = 0;
    let mut rnd = common::seeded("PAY_SEED");
    for k in 0..kills {
        // Payments flow: the payer signs two more after the last restart.
        assert!(
            wait_for(120, || c_row().nonce_out > n0 + 1),
            "kill {k}: payments did not resume: C {:?} B {:?}\n{}",
            c_row(),
            b_row(),
            d[2].log_text()
        );
        // Kill B or C at a random instant within the next 2 s.
        let victim = 1 + (rnd() % 2) as usize;
        let pause = Duration::from_millis(rnd() % 2000);
        let t = Instant::now();
        assert!(wait_for(5, || t.elapsed() >= pause));
        n0 = row(&ns[2], &public[1]).map_or(n0, |r| r.nonce_out);
        let pid = nix::unistd::Pid::from_raw(d[victim].child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        let _ = d[victim].child.wait();
        println!("kill {k}: {} after {pause:?}", ["A", "B", "C"][victim]);
        d[victim] = start(victim);
    }
    assert!(wait_for(120, || c_row().nonce_out > n0 + 1));
    sender.stop();
    // Quiet: C signs nothing new (the stream's last second is metered after it stops and would
    // otherwise be paid after the rows below are read), its last update is acknowledged and
    // both sides agree. C's row shows `paying` off only once its payment loop has applied it.
    assert!(try_control(&ns[2], "pay-withhold true\nquit\n").contains("ok"));
    assert!(
        wait_for(60, || {
            let (c, b) = (c_row(), b_row());
            !c.paying && c.paid_out == b.paid_in && c.nonce_out == b.nonce_in && c.paid_out > 0
        }),
        "C {:?}\nB {:?}",
        c_row(),
        b_row()
    );
    let (c, b) = (c_row(), b_row());
    let c_key = json(&ns[1])["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["neighbour"] == public[2].as_str())
        .and_then(|r| r["payment_key"].as_str().map(str::to_owned))
        .unwrap();
    let b_key = json(&ns[2])["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["neighbour"] == public[1].as_str())
        .and_then(|r| r["payment_key"].as_str().map(str::to_owned))
        .unwrap();
    for x in &mut d {
        x.terminate();
    }
    let key = |h: &str| <[u8; 32]>::try_from(hex::decode(h).unwrap().as_slice()).unwrap();
    let ledger = |i: usize| common::tmp(&format!("payk-{i}.state.payments.redb"));
    let lc = payments::RedbStore::open(&ledger(2)).unwrap();
    let lb = payments::RedbStore::open(&ledger(1)).unwrap();
    let signed = lc.journal(&key(&b_key), payments::Direction::Out).unwrap();
    let accepted = lb.journal(&key(&c_key), payments::Direction::In).unwrap();
    // The payer's updates: nonces 1..n, cumulative strictly increasing.
    for (i, u) in signed.iter().enumerate() {
        assert_eq!(u.update.nonce, i as u64 + 1);
        if i > 0 {
            assert!(u.update.cumulative > signed[i - 1].update.cumulative);
        }
    }
    // Nothing invented: every update the payee accepted is one the payer committed, byte for
    // byte. Nothing lost or counted twice: the payee ends on the payer's newest update, and the
    // credited total is that update's cumulative amount.
    for u in &accepted {
        let mine = signed.iter().find(|s| s.update.nonce == u.update.nonce);
        assert_eq!(mine.map(|s| s.to_bytes()), Some(u.to_bytes()));
    }
    let last = signed.last().unwrap();
    let best = accepted.last().unwrap();
    assert_eq!(best.to_bytes(), last.to_bytes());
    assert_eq!(best.update.cumulative.0, b.paid_in);
    assert_eq!(last.update.cumulative.0, c.paid_out);
    println!(
        "{kills} kills: {} updates signed, {} accepted, {} wei paid; ledgers agree",
        signed.len(),
        accepted.len(),
        c.paid_out
    );
}
