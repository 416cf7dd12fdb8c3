//! The kernel check at 1,000,000 routes (issue 11 point 2).
//!
//! `cargo bench -p daemon --bench kernel_check` prints:
//! * the algorithm against kernel-fib's `MemoryFib`: the whole check, and its longest step
//!   (the longest a route change can wait behind it), next to the old quadratic comparison
//!   timed at 5,000 and 10,000 routes;
//! * with `KERNEL_CHECK_REAL=1`, as root, the same on a real kernel in a network namespace:
//!   1,000,000 routes of protocol 42 installed over netlink, then the check's dump and indexing
//!   (on its own thread in the daemon) and its comparison, with the CPU time they take. This
//!   stalls netlink for everyone on the machine while the routes go in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use daemon::kernel_check::{CHECK_STEP, CheckRun};
use kernel_fib::{DumpFilter, Fib, FibChange, KernelRoute, MemoryFib, NetlinkFib, RouteRecord};

const N: u32 = 1_000_000;

fn route(i: u32, oif: u32) -> KernelRoute {
    let p = format!(
        "10.{}.{}.{}/32",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    );
    KernelRoute::unicast(p.parse().unwrap(), None, Some(oif)).with_protocol(42)
}

fn cpu() -> Duration {
    let t = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let us = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    us(t.user_time()) + us(t.system_time())
}

/// Runs a check to the end; returns (indexing, steps in total, longest step, changes). The
/// daemon indexes the dump on the check thread; only the steps run on the route thread.
fn check(present: Vec<KernelRoute>, ours: &RouteRecord) -> (Duration, Duration, Duration, usize) {
    let t = Instant::now();
    let run = CheckRun::new(present);
    let index = t.elapsed();
    let (total, longest, changes) = steps(run, ours);
    (index, total, longest, changes)
}

fn steps(mut run: CheckRun, ours: &RouteRecord) -> (Duration, Duration, usize) {
    let t0 = Instant::now();
    let mut longest = Duration::ZERO;
    let mut changes = 0;
    loop {
        let s = Instant::now();
        let (c, done) = run.step(ours, |_| false, CHECK_STEP);
        longest = longest.max(s.elapsed());
        changes += c.len();
        if done {
            return (t0.elapsed(), longest, changes);
        }
    }
}

fn old_quadratic(present: &[KernelRoute], ours: &RouteRecord) -> usize {
    ours.iter()
        .filter(|r| !present.iter().any(|k| r.same_as_installed(k)))
        .count()
}

fn memory_part() {
    let mut fib = MemoryFib::new();
    let ours: RouteRecord = (0..N).map(|i| route(i, 2)).collect();
    for r in ours.iter() {
        fib.replace(&r).unwrap();
    }
    // 1% of the routes vanished from the kernel.
    for i in (0..N).step_by(100) {
        fib.delete(&route(i, 2)).unwrap();
    }
    let t = Instant::now();
    let present = fib.dump(&DumpFilter::protocol(42)).unwrap();
    let dump = t.elapsed();
    let (index, total, longest, changes) = check(present, &ours);
    println!(
        "MemoryFib, {N} routes: dump {:.0} ms, indexing {:.0} ms (check thread); comparison {:.0} ms in steps of {CHECK_STEP}, longest step {:.2} ms (route thread); {changes} routes to put back",
        dump.as_secs_f64() * 1e3,
        index.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3
    );
    for n in [5_000usize, 10_000] {
        let small: RouteRecord = ours.iter().take(n).collect();
        let present: Vec<KernelRoute> = small.iter().collect();
        let t = Instant::now();
        let missing = old_quadratic(&present, &small);
        let old = t.elapsed();
        let t = Instant::now();
        let _ = check(present, &small);
        let new = t.elapsed();
        println!(
            "{n} routes: old quadratic check {:.1} ms ({missing} missing), linear check {:.2} ms",
            old.as_secs_f64() * 1e3,
            new.as_secs_f64() * 1e3
        );
    }
}

fn kernel_part() {
    // Installing a million routes holds the kernel's rtnl lock for long stretches, stalling
    // every netlink user on the machine (other namespaces too): opt in.
    if std::env::var_os("KERNEL_CHECK_REAL").is_none() {
        println!("real kernel: skipped (set KERNEL_CHECK_REAL=1, as root)");
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        println!("real kernel: skipped (needs root for a network namespace)");
        return;
    }
    let name = format!("brs-kcheck-{}", std::process::id());
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let ns = name.clone();
    let result = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let sh = |args: &[&str]| {
            assert!(
                std::process::Command::new("ip")
                    .args(["-n", &ns])
                    .args(args)
                    .status()
                    .unwrap()
                    .success()
            );
        };
        sh(&["link", "add", "kc0", "type", "veth", "peer", "name", "kc1"]);
        sh(&["link", "set", "kc0", "up"]);
        sh(&["link", "set", "kc1", "up"]);
        let out = std::process::Command::new("ip")
            .args(["-n", &ns, "-o", "link", "show", "dev", "kc0"])
            .output()
            .unwrap();
        let oif: u32 = String::from_utf8_lossy(&out.stdout)
            .split(':')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut fib = NetlinkFib::new().unwrap();
        let ours: RouteRecord = (0..N).map(|i| route(i, oif)).collect();
        let t = Instant::now();
        let batch: Vec<FibChange> = ours.iter().map(FibChange::Replace).collect();
        for chunk in batch.chunks(10_000) {
            for r in fib.apply(chunk) {
                r.unwrap();
            }
        }
        let install = t.elapsed();
        drop(batch);
        let (c0, t) = (cpu(), Instant::now());
        let present = fib.dump(&DumpFilter::protocol(42)).unwrap();
        let got = present.len();
        let run = CheckRun::new(present);
        let (dump, dump_cpu) = (t.elapsed(), cpu() - c0);
        let c0 = cpu();
        let (total, longest, changes) = steps(run, &ours);
        let check_cpu = cpu() - c0;
        (
            install, got, dump, dump_cpu, total, check_cpu, longest, changes,
        )
    })
    .join();
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &name])
        .status();
    let (install, got, dump, dump_cpu, total, check_cpu, longest, changes) = result.unwrap();
    println!(
        "real kernel, {got} routes (installed in {:.1} s): dump and indexing {:.0} ms ({:.0} ms CPU, on the check thread), comparison {:.0} ms ({:.0} ms CPU, on the route thread), longest step {:.2} ms; {changes} to put back",
        install.as_secs_f64(),
        dump.as_secs_f64() * 1e3,
        dump_cpu.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        check_cpu.as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3
    );
    println!(
        "at the default kernel-check-interval (300 s): {:.3}% of one core",
        (dump_cpu + check_cpu).as_secs_f64() / 300.0 * 100.0
    );
}

fn main() {
    memory_part();
    kernel_part();
}
