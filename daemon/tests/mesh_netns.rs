//! Authenticated neighbours (`interface IF type mesh`, spec/discovery.md) on real kernels in
//! network namespaces: routers discover each other, bring up one tunnel per neighbour by
//! themselves, run Babel only over the tunnels, and forward nothing that did not come through
//! one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::needless_range_loop,
    dead_code
)]

mod common;

use std::process::Command;

use common::{
    Daemon, FILTERS, Netns, babel_routes, can_use_netns, has_route, have, node, run,
    start_with_config, tmp, try_control, veth, wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_babeld-rs");
const CTL: &str = env!("CARGO_BIN_EXE_babelctl");

fn usable(test: &str) -> bool {
    if !can_use_netns(test) || !have("nft", test) {
        return false;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        println!("SKIP {test}: no /dev/net/tun");
        return false;
    }
    true
}

fn keypair() -> (String, String) {
    let private = Command::new(CTL).arg("genkey").output().unwrap();
    let private = String::from_utf8(private.stdout).unwrap().trim().to_owned();
    let mut child = Command::new(CTL)
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(private.as_bytes())
        .unwrap();
    let public = String::from_utf8(child.wait_with_output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    (private, public)
}

/// Starts babeld-rs in `ns` with only `interface X type mesh` lines (plus `extra`); no
/// interface on the command line and no tunnel lines.
fn mesh_router(ns: &Netns, name: &str, ifaces: &[&str], extra: &str) -> Daemon {
    let mut conf = format!("{FILTERS}local-port-readwrite 33123\n{extra}");
    for i in ifaces {
        conf.push_str(&format!("interface {i} type mesh\n"));
    }
    start_with_config(ns, name, BIN, &conf, &[])
}

fn json(ns: &Netns) -> serde_json::Value {
    let text = try_control(ns, "dump json\nquit\n");
    text.lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// (physical interface, key, state, tunnel) of every mesh neighbour.
fn neighbours(ns: &Netns) -> Vec<(String, String, String, String)> {
    let v = json(ns);
    let mut out = Vec::new();
    for m in v["mesh"].as_array().into_iter().flatten() {
        for n in m["neighbours"].as_array().into_iter().flatten() {
            out.push((
                m["interface"].as_str().unwrap_or("").to_owned(),
                n["public_key"].as_str().unwrap_or("").to_owned(),
                n["state"].as_str().unwrap_or("").to_owned(),
                n["tunnel"].as_str().unwrap_or("-").to_owned(),
            ));
        }
    }
    out
}

fn up_count(ns: &Netns) -> usize {
    neighbours(ns).iter().filter(|n| n.2 == "up").count()
}

fn ping(ns: &Netns, fam: &str, dst: &str, extra: &[&str]) -> bool {
    let mut a = vec!["netns", "exec", &ns.name, "ping", fam, "-c", "1", "-W", "2"];
    a.extend_from_slice(extra);
    a.push(dst);
    Command::new("ip")
        .args(&a)
        .output()
        .unwrap()
        .status
        .success()
}

/// Packets counted by one of the daemon's nftables counters in `ns`.
fn nft_counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.exec(&["nft", "list", "counter", "inet", "babeld_rs", name]);
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name}: {out}"))
}

/// Every frame of a pcap file (Ethernet link type), as bytes.
fn pcap_frames(path: &std::path::Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() >= 24, "pcap too short");
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
        i += 16;
        if i + incl > b.len() {
            break;
        }
        out.push(b[i..i + incl].to_vec());
        i += incl;
    }
    out
}

/// Classifies a captured frame: `wireguard`, `discovery`, `nd` (ICMPv6 neighbour discovery and
/// MLD, which carry no data), or what else it is.
fn classify(f: &[u8]) -> String {
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    if ethertype != 0x86dd {
        return format!("ethertype {ethertype:#x}");
    }
    let ip = &f[14..];
    let mut next = ip[6];
    let mut off = 40;
    // Hop-by-hop options (MLD reports carry the router alert).
    if next == 0 {
        next = ip[off];
        off += (usize::from(ip[off + 1]) + 1) * 8;
    }
    match next {
        58 => {
            let t = ip[off];
            if (130..=143).contains(&t) {
                "nd".into()
            } else {
                format!("icmpv6 type {t}")
            }
        }
        17 => {
            let dport = u16::from_be_bytes([ip[off + 2], ip[off + 3]]);
            // Lengths from the UDP header: the capture keeps only the first bytes.
            let len = usize::from(u16::from_be_bytes([ip[off + 4], ip[off + 5]])) - 8;
            let payload = &ip[off + 8..];
            if dport == 6697 && len == 48 && &payload[..4] == b"BRSm" {
                return "discovery".into();
            }
            let wg = match payload.first() {
                Some(1) => len == 148,
                Some(2) => len == 92,
                Some(3) => len == 64,
                Some(4) => len >= 32 && (len - 16) % 16 == 0,
                _ => false,
            };
            if wg && payload[1..4] == [0, 0, 0] {
                "wireguard".into()
            } else {
                format!("udp port {dport} len {len}")
            }
        }
        n => format!("ip proto {n}"),
    }
}

#[test]
fn five_routers_on_veth_tunnel_to_each_other_by_themselves() {
    let test = "five_routers_on_veth_tunnel_to_each_other_by_themselves";
    if !usable(test) || !have("tcpdump", test) {
        return;
    }
    // r1 - r2 - r3 - r4 - r5 on plain veth links.
    let ns: Vec<Netns> = (1..=5).map(|i| node("msh5", i)).collect();
    for i in 0..4 {
        veth(
            &ns[i],
            &format!("m5r{}", i + 2),
            &ns[i + 1],
            &format!("m5l{}", i + 1),
        );
    }
    let mut daemons = Vec::new();
    for i in 0..5 {
        let mut ifs = Vec::new();
        if i > 0 {
            ifs.push(format!("m5l{i}"));
        }
        if i < 4 {
            ifs.push(format!("m5r{}", i + 2));
        }
        let ifs: Vec<&str> = ifs.iter().map(String::as_str).collect();
        daemons.push(mesh_router(&ns[i], &format!("msh5-{i}"), &ifs, ""));
    }
    // Tunnels come up by themselves: two on each inner router, one on each end.
    let started = std::time::Instant::now();
    let want = [1, 2, 2, 2, 1];
    assert!(
        wait_for(60, || (0..5).all(|i| up_count(&ns[i]) == want[i])),
        "tunnels: {:?}\n{}",
        (0..5).map(|i| neighbours(&ns[i])).collect::<Vec<_>>(),
        daemons[0].log_text()
    );
    let tunnels_s = started.elapsed().as_secs_f64();
    // Babel converges over them: r1 reaches r5's prefixes, through a tunnel.
    assert!(
        wait_for(90, || has_route(&ns[0], "fd77::5")
            && has_route(&ns[0], "10.77.0.5")
            && has_route(&ns[4], "fd77::1")
            && has_route(&ns[4], "10.77.0.1")),
        "r1: {:?}\nr5: {:?}",
        babel_routes(&ns[0]),
        babel_routes(&ns[4])
    );
    println!(
        "tunnels up after {tunnels_s:.1} s, routes after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let r1_tunnel = neighbours(&ns[0])[0].3.clone();
    for r in babel_routes(&ns[0]) {
        assert!(r.contains(&format!("dev {r1_tunnel}")), "{r}");
    }
    // Babel runs only over the tunnels: its interfaces are the tunnels, of kind tunnel.
    let v = json(&ns[2]);
    let names: Vec<&str> = v["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with('m') && n.contains('k')));
    // A capture on the r2-r3 link while pings cross the whole mesh.
    let pcap = tmp("msh5.pcap");
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns[1].name,
            "tcpdump",
            "-U",
            "-n",
            "-s",
            "200",
            "-i",
            "m5r3",
            "-w",
            pcap.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(10, || std::fs::metadata(&pcap).is_ok_and(|m| m.len() >= 24)),
        "tcpdump did not start"
    );
    for (fam, dst) in [("-6", "fd77::5"), ("-4", "10.77.0.5")] {
        assert!(
            wait_for(30, || ping(&ns[0], fam, dst, &[])),
            "ping {dst} across the mesh"
        );
    }
    assert!(ping(&ns[0], "-6", "fd77::5", &["-s", "1000"]));
    // Let a discovery announcement pass too (they go every 5 s).
    let discovery_seen = wait_for(15, || {
        pcap_frames(&pcap)
            .iter()
            .any(|f| classify(f) == "discovery")
    });
    let pid = nix::unistd::Pid::from_raw(dump.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = dump.wait();
    let frames = pcap_frames(&pcap);
    let mut kinds = std::collections::BTreeMap::new();
    for f in &frames {
        *kinds.entry(classify(f)).or_insert(0) += 1;
    }
    println!("capture on r2-r3: {kinds:?}");
    assert!(discovery_seen, "{kinds:?}");
    assert!(
        kinds.get("wireguard").copied().unwrap_or(0) >= 4,
        "{kinds:?}"
    );
    assert!(
        kinds
            .keys()
            .all(|k| k == "wireguard" || k == "discovery" || k == "nd"),
        "cleartext on the physical link: {kinds:?}"
    );
    // Operators see it: babelctl show neighbours lists key, endpoint, state, handshake, bytes.
    let show = ns[2].exec(&[CTL, "show", "-s", "33123", "neighbours"]);
    let key = &neighbours(&ns[2])[0].1;
    assert!(show.contains(&key[..16]), "{show}");
    assert!(show.contains("up"), "{show}");
    let dump_text = try_control(&ns[2], "dump\nquit\n");
    let line = dump_text
        .lines()
        .find(|l| l.starts_with("add mesh-neighbour"))
        .unwrap_or_else(|| panic!("{dump_text}"));
    for field in [
        " endpoint [fe80::",
        " state up",
        " handshake-age ",
        " rx ",
        " tx ",
    ] {
        assert!(line.contains(field), "{line}");
    }
    // The filter is in place while running and gone after exit.
    assert!(ns[2].exec(&["nft", "list", "tables"]).contains("babeld_rs"));
    for d in &mut daemons {
        assert!(d.terminate().is_some());
    }
    assert!(!ns[2].exec(&["nft", "list", "tables"]).contains("babeld_rs"));
    assert!(
        !ns[2]
            .ip(&["-o", "link", "show"])
            .lines()
            .any(|l| l.contains(&r1_tunnel)),
        "tunnel interfaces left behind"
    );
    let _ = run(&["true"]);
}
