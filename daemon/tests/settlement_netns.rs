//! Settlement on a real chain with real routers (spec/settlement.md, "In the daemon"): three
//! mesh routers A - B - C in network namespaces, C streaming to A through B with iperf3 and
//! paying B, and an EVM node (anvil) in a fourth namespace that every router reaches over a veth
//! of its own. The routers open their channels on the node's escrow contract, pay as traffic
//! flows, and (a) close cooperatively, (b) C closes unilaterally with an old update and B's
//! daemon answers with the newest inside the challenge period (the node's clock is advanced, not
//! waited for), (c) the node goes away while traffic flows and comes back with its state. In
//! every run the chain's payout equals both ledgers to the wei.
//!
//! Needs root, nft, iperf3, /dev/net/tun, anvil under settlement/.tools (scripts/test.sh installs
//! it) and a daemon built with `--features settlement`; skips with the reason otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    dead_code,
    unused_imports
)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::providers::Provider;

use common::{
    DaemonProcess, Netns, can_run_mesh, has_route, keypair, mesh_config, node, start_with_config,
    tmp, try_control, veth, wait_for,
};

use test_support::babelctl;

const BIN: &str = env!("CARGO_BIN_EXE_babeld-rs");
const CHAIN_ID: u64 = 31337;
const PORT: u16 = 8545;
/// anvil's first development account (funded by the node at genesis).
const DEPLOYER: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn usable(test: &str) -> bool {
    if !cfg!(feature = "settlement") {
        println!(
            "SKIP {test}: babeld-rs built without the `settlement` feature (cargo test -p daemon --features settlement --test settlement_netns)"
        );
        return false;
    }
    if !can_run_mesh(test, &["iperf3"]) {
        return false;
    }
    if anvil_bin().is_none() {
        println!(
            "SKIP {test}: anvil not installed under settlement/.tools (scripts/test.sh installs it)"
        );
        return false;
    }
    true
}

fn anvil_bin() -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../settlement/.tools/node_modules/.bin/anvil");
    p.exists().then_some(p)
}

/// The node in its namespace, listening on every address of it.
struct Node(Child);

impl Node {
    fn start(x: &Netns) -> Node {
        let mut c = Command::new("ip")
            .args(["netns", "exec", &x.name])
            .arg(anvil_bin().unwrap())
            .args(["--host", "0.0.0.0", "--port", &PORT.to_string()])
            .args(["--chain-id", &CHAIN_ID.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        for l in lines.by_ref() {
            if l.unwrap().contains("Listening on") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Node(c)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `f` with a runtime on a thread inside the node's namespace (the test's own view of the
/// chain, independent of the daemons').
fn on_chain<T: Send + 'static>(
    x: &Netns,
    f: impl FnOnce(tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    x.spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        f(rt)
    })
    .join()
    .unwrap()
}

fn url() -> String {
    format!("http://127.0.0.1:{PORT}")
}

fn eth_key(seed: u8) -> alloy::signers::local::PrivateKeySigner {
    alloy::signers::local::PrivateKeySigner::from_bytes(&[seed; 32].into()).unwrap()
}

/// Deploys the escrow and funds the routers' accounts; returns the contract address.
fn deploy(x: &Netns, accounts: Vec<alloy::primitives::Address>) -> alloy::primitives::Address {
    on_chain(x, move |rt| {
        rt.block_on(async move {
            let key: alloy::signers::local::PrivateKeySigner = DEPLOYER.parse().unwrap();
            let (c, tx) = settlement::EscrowClient::deploy(&url(), key).await.unwrap();
            println!("GAS deploy {}", tx.gas_used);
            for a in accounts {
                let _: serde_json::Value = c
                    .provider()
                    .raw_request(
                        "anvil_setBalance".into(),
                        (a, alloy::primitives::U256::from(10u128.pow(21))),
                    )
                    .await
                    .unwrap();
            }
            c.address()
        })
    })
}

fn read_channel(
    x: &Netns,
    contract: alloy::primitives::Address,
    id: [u8; 32],
) -> settlement::ChainChannel {
    on_chain(x, move |rt| {
        rt.block_on(async move {
            let c = settlement::EscrowClient::connect(&url(), eth_key(99), contract).unwrap();
            c.channel(&payments::ChannelId(id)).await.unwrap().unwrap()
        })
    })
}

fn rpc(x: &Netns, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    on_chain(x, move |rt| {
        rt.block_on(async move {
            let c = settlement::EscrowClient::connect(
                &url(),
                eth_key(99),
                alloy::primitives::Address::ZERO,
            )
            .unwrap();
            c.provider()
                .raw_request::<_, serde_json::Value>(method.into(), params)
                .await
                .unwrap()
        })
    })
}

/// One `settlement ID neighbour K direction D ...` line of `babelctl settlement show`.
#[derive(Debug, Clone, Default)]
struct Line {
    id: String,
    f: BTreeMap<String, String>,
}

impl Line {
    fn get(&self, k: &str) -> &str {
        self.f.get(k).map_or("", String::as_str)
    }
    fn num(&self, k: &str) -> u128 {
        self.get(k).parse().unwrap_or(0)
    }
}

fn show(ns: &Netns) -> (String, Vec<Line>) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            babelctl(),
            "settlement",
            "-s",
            "33123",
            "show",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 3 || w[0] != "settlement" || w[1] == "chain" {
                return None;
            }
            let mut f = BTreeMap::new();
            for kv in w[2..].chunks(2) {
                if let [k, v] = kv {
                    f.insert((*k).to_owned(), (*v).to_owned());
                }
            }
            Some(Line {
                id: w[1].to_owned(),
                f,
            })
        })
        .collect();
    (text, lines)
}

fn channel(ns: &Netns, direction: &str, id: Option<&str>) -> Option<Line> {
    show(ns)
        .1
        .into_iter()
        .find(|l| l.get("direction") == direction && id.is_none_or(|i| l.id == i))
}

fn ctl(ns: &Netns, words: &[&str]) -> String {
    let tool = babelctl();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, tool, "settlement", "-s", "33123"])
        .args(words)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "babelctl settlement {words:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The three routers and the node.
struct World {
    ns: Vec<Netns>,
    x: Netns,
    node: Node,
    contract: alloy::primitives::Address,
    d: Vec<DaemonProcess>,
    public: Vec<String>,
    /// Each router's name and whole configuration, to restart it with the same files.
    confs: Vec<(String, String)>,
}

/// Builds A - B - C and the node's namespace X, deploys the escrow, starts the routers with
/// `settle` appended to every router's settlement statements.
fn world(tag: &str, settle: &str) -> World {
    let ns: Vec<Netns> = (1..=3).map(|i| node(tag, i)).collect();
    let x = Netns::new(&format!("{tag}x"));
    veth(&ns[0], "sla", &ns[1], "slb1");
    veth(&ns[1], "slb2", &ns[2], "slc");
    for (i, n) in ns.iter().enumerate() {
        veth(n, "slx", &x, &format!("slx{i}"));
        n.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{}/30", 4 * i + 2),
            "dev",
            "slx",
        ]);
        x.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{}/30", 4 * i + 1),
            "dev",
            &format!("slx{i}"),
        ]);
    }
    let node = Node::start(&x);
    let accounts: Vec<_> = (0..3).map(|i| eth_key(10 + i as u8).address()).collect();
    let contract = deploy(&x, accounts);
    let (private, public): (Vec<String>, Vec<String>) = (0..3).map(|_| keypair()).unzip();
    let pay = "pay-threshold 1000000\npay-close-threshold 1000000000000\npay-interval 1\n";
    let ifs: [&[&str]; 3] = [&["sla"], &["slb1", "slb2"], &["slc"]];
    let fees = [10, 5, 1];
    let confs = (0..3)
        .map(|i| {
            let key = tmp(&format!("{tag}-{i}.eth"));
            {
                use std::os::unix::fs::OpenOptionsExt;
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&key)
                    .unwrap();
                f.write_all(hex::encode([10 + i as u8; 32]).as_bytes()).unwrap();
            }
            let extra = format!(
                "mesh-private-key {}\npay-enable true\nfee {}\n{pay}\
                 settlement rpc-url http://192.0.2.{}:{PORT} chain-id {CHAIN_ID} contract {contract}\n\
                 settlement key-file {}\nsettlement poll-interval 1\n{settle}",
                private[i],
                fees[i],
                4 * i + 1,
                key.display()
            );
            (format!("{tag}-{i}"), mesh_config(&extra, ifs[i]))
        })
        .collect::<Vec<_>>();
    let d = (0..3)
        .map(|i| start_with_config(&ns[i], &confs[i].0, BIN, &confs[i].1, &[]))
        .collect();
    let w = World {
        ns,
        x,
        node,
        contract,
        d,
        public,
        confs,
    };
    assert!(
        wait_for(120, || has_route(&w.ns[2], "fd77::1")
            && has_route(&w.ns[0], "fd77::3")),
        "routes: {}",
        w.d[1].log_text()
    );
    w
}

impl World {
    /// Kills router `i` with SIGKILL and starts it again with the same configuration and
    /// state files.
    fn kill_and_restart(&mut self, i: usize) {
        let pid = nix::unistd::Pid::from_raw(self.d[i].child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        let _ = self.d[i].child.wait();
        let (name, conf) = &self.confs[i];
        self.d[i] = start_with_config(&self.ns[i], name, BIN, conf, &[]);
    }

    /// C's channel to B once it is open on chain, and B's view of it.
    fn channel_c_to_b(&self) -> (Line, Line) {
        let mut found = None;
        assert!(
            wait_for(120, || {
                let Some(c) = channel(&self.ns[2], "out", None) else {
                    return false;
                };
                let b = channel(&self.ns[1], "in", Some(&c.id));
                let ok = c.get("chain") == "open"
                    && b.as_ref().is_some_and(|b| b.get("chain") == "open");
                if ok {
                    found = Some((c, b.unwrap()));
                }
                ok
            }),
            "C: {}\nB: {}\n{}",
            show(&self.ns[2]).0,
            show(&self.ns[1]).0,
            self.d[2].log_text()
        );
        found.unwrap()
    }

    /// Runs iperf3 UDP from C to A through B at `rate` for `secs`; returns bytes received.
    fn traffic(&self, rate: &str, secs: u32) -> f64 {
        let mut server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns[0].name,
                "iperf3",
                "-s",
                "-1",
                "-p",
                "5201",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_for(10, || self.ns[0]
            .exec(&["ss", "-ltn"])
            .contains(":5201")));
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns[2].name,
                "iperf3",
                "-c",
                "fd77::1",
                "-u",
            ])
            .args(["-b", rate, "-l", "1000", "-J", "-p", "5201", "-t"])
            .arg(secs.to_string())
            .output()
            .unwrap();
        let _ = server.kill();
        let _ = server.wait();
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let got = v["end"]["sum"]["bytes"].as_f64().unwrap_or(0.0);
        println!("iperf3 C -> A at {rate} for {secs} s: {got} bytes");
        got
    }

    /// Waits until C's newest update is B's best and has stayed so for three payment
    /// intervals (nothing more owed above the threshold); returns (C's out line, B's in line).
    fn quiet(&self, id: &str) -> (Line, Line) {
        let mut last = None;
        let mut since: Option<(u128, std::time::Instant)> = None;
        assert!(
            wait_for(120, || {
                let (Some(c), Some(b)) = (
                    channel(&self.ns[2], "out", Some(id)),
                    channel(&self.ns[1], "in", Some(id)),
                ) else {
                    return false;
                };
                let v = c.num("ledger-cumulative");
                let agree = v > 0
                    && c.get("ledger-nonce") == b.get("ledger-nonce")
                    && v == b.num("ledger-cumulative");
                last = Some((c, b));
                if !agree {
                    since = None;
                    return false;
                }
                match since {
                    Some((x, t)) if x == v => t.elapsed() >= Duration::from_secs(3),
                    _ => {
                        since = Some((v, std::time::Instant::now()));
                        false
                    }
                }
            }),
            "not quiet: {last:?}"
        );
        last.unwrap()
    }

    fn key_of_b_at_c(&self) -> String {
        channel(&self.ns[2], "out", None)
            .unwrap()
            .get("neighbour")
            .to_owned()
    }

    /// Waits until the channel is closed on chain and checks that the chain paid B what both
    /// ledgers say (C's newest update, B's best) to the wei.
    fn closed_as_the_ledgers_say(&self, id: &str, c: &Line, b: &Line) {
        assert!(
            wait_for(90, || self.chain(id).closed),
            "not closed: {}\n{}",
            show(&self.ns[1]).0,
            self.d[1].log_text()
        );
        let ch = self.chain(id);
        println!("on chain: {ch:?}");
        assert_eq!(
            ch.paid.0,
            c.num("ledger-cumulative"),
            "the chain paid B what C's ledger says"
        );
        assert_eq!(
            ch.paid.0,
            b.num("ledger-cumulative"),
            "and what B's ledger says"
        );
    }

    fn chain(&self, id: &str) -> settlement::ChainChannel {
        let id = <[u8; 32]>::try_from(hex::decode(id).unwrap().as_slice()).unwrap();
        read_channel(&self.x, self.contract, id)
    }
}

#[test]
fn a_channel_opened_paid_and_closed_cooperatively_pays_out_what_the_ledgers_say() {
    let test = "a_channel_opened_paid_and_closed_cooperatively_pays_out_what_the_ledgers_say";
    if !usable(test) {
        return;
    }
    // Deposit 10^7 wei; C tops up by 10^7 once it signed 60 % of it; B redeems once 30 % is
    // owed unredeemed. At 2 Mbit/s for 8 s C owes B about 5 wei x 2 MB = 10^7 wei.
    let w = world(
        "stla",
        "settlement deposit 10000000 top-up-below 600 top-up-step 10000000 redeem-at 300\n",
    );
    let (c0, _) = w.channel_c_to_b();
    let id = c0.id.clone();
    assert_eq!(c0.num("deposit"), 10_000_000);
    assert!(w.traffic("2M", 8) > 1_000_000.0);
    let (c, b) = w.quiet(&id);
    let paid = c.num("ledger-cumulative");
    println!("C paid B {paid} wei over nonce {}", c.get("ledger-nonce"));
    // The payee redeemed before the deposit ran out, the payer topped up.
    assert!(
        wait_for(60, || w.chain(&id).paid.0 > 0
            && w.chain(&id).deposit.0 > 10_000_000),
        "no redemption or top-up: {:?}\n{}\n{}",
        w.chain(&id),
        show(&w.ns[1]).0,
        show(&w.ns[2]).0
    );
    // (a) C asks B to close cooperatively; B sends it to the contract.
    let bkey = w.key_of_b_at_c();
    ctl(&w.ns[2], &["close", &bkey]);
    w.closed_as_the_ledgers_say(&id, &c, &b);
    // B's show has the chain's state next to its ledger's.
    assert!(wait_for(30, || channel(&w.ns[1], "in", Some(&id))
        .is_some_and(
            |l| l.get("chain") == "closed" && l.num("paid") == paid
        )));
}

#[test]
fn a_stale_unilateral_close_is_answered_with_the_newest_update() {
    let test = "a_stale_unilateral_close_is_answered_with_the_newest_update";
    if !usable(test) {
        return;
    }
    // B never redeems on its own (redeem-at 1000 ‰): the chain's best stays 0 until the close.
    let w = world("stlb", "settlement deposit 1000000000 redeem-at 1000\n");
    let (c0, _) = w.channel_c_to_b();
    let id = c0.id.clone();
    // An early update of C's, kept by the "cheating" payer.
    let server_and_early = {
        assert!(w.traffic("2M", 3) > 100_000.0);
        let c = w.quiet(&id).0;
        (
            c.get("ledger-update").to_owned(),
            c.num("ledger-cumulative"),
            c.num("ledger-nonce"),
        )
    };
    let (old, old_amount, old_nonce) = server_and_early;
    assert!(w.traffic("2M", 5) > 100_000.0);
    let (c, b) = w.quiet(&id);
    let newest = b.num("ledger-cumulative");
    assert!(newest > old_amount);
    println!("old update pays {old_amount}, newest {newest}");
    // (b) C closes alone, presenting the old update.
    let bkey = w.key_of_b_at_c();
    ctl(&w.ns[2], &["close", &bkey, "unilateral", &old]);
    assert!(
        wait_for(60, || w.chain(&id).closing_at.is_some()),
        "no close: {}\n{}",
        show(&w.ns[2]).0,
        w.d[2].log_text()
    );
    // The close presented the old update.
    assert!(
        wait_for(30, || show(&w.ns[2]).0.contains(&format!(
            "started_with_nonce_{}_cumulative_{old_amount}_",
            old_nonce
        ))),
        "{}",
        show(&w.ns[2]).0
    );
    // B's watchtower answers inside the challenge period with its newest update.
    assert!(
        wait_for(60, || w.chain(&id).best.0 == newest
            && channel(&w.ns[1], "in", Some(&id)).is_some_and(|l| l
                .get("note")
                .starts_with("answered_a_unilateral_close"))),
        "not answered: {:?}\n{}\n{}",
        w.chain(&id),
        show(&w.ns[1]).0,
        w.d[1].log_text()
    );
    assert!(w.chain(&id).closing_at.is_some() && !w.chain(&id).closed);
    // C signs nothing more on the channel it asked to close: it opened epoch 1's channel, B
    // followed, and traffic is paid there; C's and B's totals are the two channels' amounts.
    let mut next = None;
    assert!(
        wait_for(120, || {
            let Some(c1) = channel(&w.ns[2], "out", None).filter(|l| l.id != id) else {
                return false;
            };
            let ok = c1.get("chain") == "open"
                && channel(&w.ns[1], "in", Some(&c1.id)).is_some_and(|b| b.get("chain") == "open");
            if ok {
                next = Some(c1.id);
            }
            ok
        }),
        "no next epoch:\nC: {}\nB: {}",
        show(&w.ns[2]).0,
        show(&w.ns[1]).0
    );
    let id1 = next.unwrap();
    assert!(w.traffic("2M", 3) > 100_000.0);
    let (c1, _) = w.quiet(&id1);
    assert_eq!(c1.get("epoch"), "1");
    let (_, c_total) = paid_totals(&w.ns[2], &bkey);
    let (b_total, _) = paid_totals(&w.ns[1], b.get("neighbour"));
    println!(
        "C's total {c_total} = {} + {}",
        c.num("ledger-cumulative"),
        c1.num("ledger-cumulative")
    );
    assert_eq!(
        c_total,
        c.num("ledger-cumulative") + c1.num("ledger-cumulative")
    );
    assert_eq!(b_total, c_total);
    // The challenge period passes on the node's clock; C finalizes.
    rpc(&w.x, "evm_increaseTime", serde_json::json!([3601]));
    rpc(&w.x, "evm_mine", serde_json::json!([]));
    ctl(&w.ns[2], &["finalize", &bkey]);
    assert!(wait_for(60, || w.chain(&id).closed), "{}", show(&w.ns[2]).0);
    let ch = w.chain(&id);
    println!("on chain: {ch:?}");
    assert_eq!(ch.paid.0, newest, "the chain paid B its newest update");
    assert_eq!(
        ch.paid.0,
        c.num("ledger-cumulative"),
        "what C's ledger says it paid"
    );
}

#[test]
fn a_chain_that_goes_away_and_comes_back_loses_nothing_and_routing_goes_on() {
    let test = "a_chain_that_goes_away_and_comes_back_loses_nothing_and_routing_goes_on";
    if !usable(test) {
        return;
    }
    let mut w = world("stlc", "settlement deposit 1000000000 redeem-at 1000\n");
    let (c0, _) = w.channel_c_to_b();
    let id = c0.id.clone();
    // (c) The node goes away with its state kept.
    let state = rpc(&w.x, "anvil_dumpState", serde_json::json!([]));
    w.node.kill();
    assert!(
        wait_for(60, || show(&w.ns[1]).0.contains("reachable false")
            && show(&w.ns[2]).0.contains("reachable false")),
        "{}",
        show(&w.ns[1]).0
    );
    assert!(w.d[1].log_text().contains("settlement delayed"));
    let delayed = |ns: &Netns| {
        show(ns)
            .0
            .split_whitespace()
            .skip_while(|w| *w != "delayed-rounds")
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        delayed(&w.ns[1]) > 0,
        "the delay is counted: {}",
        show(&w.ns[1]).0
    );
    // Routing and metering go on: traffic flows and C keeps paying B.
    let n0 = channel(&w.ns[2], "out", Some(&id))
        .unwrap()
        .num("ledger-nonce");
    assert!(w.traffic("2M", 5) > 100_000.0);
    let (c, b) = w.quiet(&id);
    assert!(
        c.num("ledger-nonce") > n0,
        "payments went on without the chain"
    );
    assert!(has_route(&w.ns[2], "fd77::1"));
    // A cooperative close asked for meanwhile waits for the node.
    let bkey = w.key_of_b_at_c();
    ctl(&w.ns[2], &["close", &bkey]);
    assert!(
        wait_for(30, || show(&w.ns[1]).0.contains("pending 1")),
        "{}",
        show(&w.ns[1]).0
    );
    // The node comes back with its state; the close goes through.
    w.node = Node::start(&w.x);
    rpc(&w.x, "anvil_loadState", serde_json::json!([state]));
    w.closed_as_the_ledgers_say(&id, &c, &b);
    // The worker says so at the end of the round that carried the close out.
    assert!(wait_for(30, || w.d[1]
        .log_text()
        .contains("chain reachable again")
        && show(&w.ns[1]).0.contains("reachable true")));
}

/// Money is neither lost nor invented with the chain in the loop: while C streams to A through
/// B, and B redeems and C tops up on chain, B or C is killed with SIGKILL at random instants
/// (`SETTLE_KILLS`, default 6; `SETTLE_SEED` reproduces a run) and started again. Afterwards the
/// ledgers agree, the chain never paid B more than C signed, and a cooperative close pays out
/// exactly what both ledgers say.
#[test]
fn settlement_survives_sigkill_of_payer_and_payee() {
    let test = "settlement_survives_sigkill_of_payer_and_payee";
    if !usable(test) {
        return;
    }
    let kills: u32 = std::env::var("SETTLE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    // Some 10^6 wei a second flow from C to B: B redeems every 4 * 10^6 owed, C tops up by
    // 2 * 10^7 once it signed 60 % of its deposit, so transactions are in flight when the kills
    // come.
    let mut w = world(
        "stlk",
        "settlement deposit 20000000 top-up-below 600 top-up-step 20000000 redeem-at 200\n",
    );
    let (c0, _) = w.channel_c_to_b();
    let id = c0.id.clone();
    // A steady stream from C to A.
    let mut sender = common::Stream::start(&w.ns[2], "[fd77::1]:9");
    // C's newest nonce; None while a restarted C does not answer yet.
    let nonce = |w: &World| channel(&w.ns[2], "out", Some(&id)).map(|l| l.num("ledger-nonce"));
    // The nonce at the last kill, read while every router was up: payments have resumed once
    // C's nonce is 2 past it.
    let mut n0 = 0;
    let mut rnd = common::seeded("SETTLE_SEED");
    for k in 0..kills {
        assert!(
            wait_for(120, || nonce(&w).is_some_and(|n| n > n0 + 1)),
            "kill {k}: payments did not resume\nC: {}\nB: {}\n{}",
            show(&w.ns[2]).0,
            show(&w.ns[1]).0,
            w.d[2].log_text()
        );
        let victim = 1 + (rnd() % 2) as usize;
        let pause = Duration::from_millis(rnd() % 2000);
        let t = std::time::Instant::now();
        assert!(wait_for(5, || t.elapsed() >= pause));
        n0 = nonce(&w).unwrap_or(n0);
        w.kill_and_restart(victim);
        let ch = w.chain(&id);
        println!(
            "kill {k}: {} after {pause:?}; on chain deposit {} paid {}",
            ["A", "B", "C"][victim],
            ch.deposit.0,
            ch.paid.0
        );
    }
    assert!(wait_for(120, || nonce(&w).is_some_and(|n| n > n0 + 1)));
    // Redemptions and top-ups go through after the kills: the stream goes on until C has
    // signed past the top-up mark and B redeemed.
    assert!(
        wait_for(120, || {
            let ch = w.chain(&id);
            ch.paid.0 > 0 && ch.deposit.0 > 20_000_000
        }),
        "no redemption or top-up: {:?}\nC: {}\nB: {}\n{}",
        w.chain(&id),
        show(&w.ns[2]).0,
        show(&w.ns[1]).0,
        w.d[2].log_text()
    );
    sender.stop();
    let (c, b) = w.quiet(&id);
    let signed = c.num("ledger-cumulative");
    // Nothing was paid that C did not sign.
    assert!(w.chain(&id).paid.0 <= signed, "{:?}", w.chain(&id));
    let bkey = w.key_of_b_at_c();
    ctl(&w.ns[2], &["close", &bkey]);
    w.closed_as_the_ledgers_say(&id, &c, &b);
    println!("{kills} kills: {signed} wei signed, paid out on chain to the wei");
}

/// (paid-in, paid-out) of `ns`'s payment row for the neighbour with payment key `key`: the
/// ledger's totals over every channel.
fn paid_totals(ns: &Netns, key: &str) -> (u128, u128) {
    let v = common::dump_json(ns);
    let num = |x: &serde_json::Value| {
        x.as_u64()
            .map(u128::from)
            .or_else(|| x.as_f64().map(|f| f as u128))
            .unwrap_or(0)
    };
    v["payments"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["payment_key"] == key))
        .map_or((0, 0), |r| (num(&r["paid_in"]), num(&r["paid_out"])))
}

/// Channel epochs: after a cooperative close C and B move to the next epoch's channel by
/// themselves (salt 1, read from the chain), traffic goes on, C pays on the new channel from
/// cumulative 0, and a second close pays out what both ledgers say for it; the two payouts add
/// up to the ledgers' totals.
#[test]
fn a_closed_channel_is_followed_by_the_next_epoch_and_payments_resume_on_it() {
    let test = "a_closed_channel_is_followed_by_the_next_epoch_and_payments_resume_on_it";
    if !usable(test) {
        return;
    }
    let w = world("stle", "settlement deposit 100000000\n");
    let (c0, b0) = w.channel_c_to_b();
    let id0 = c0.id.clone();
    assert_eq!(c0.get("epoch"), "0");
    let bkey = c0.get("neighbour").to_owned();
    let ckey = b0.get("neighbour").to_owned();
    assert!(w.traffic("2M", 5) > 500_000.0);
    let (c, b) = w.quiet(&id0);
    let first = c.num("ledger-cumulative");
    ctl(&w.ns[2], &["close", &bkey]);
    w.closed_as_the_ledgers_say(&id0, &c, &b);
    // Both ends move on: C opens epoch 1, B watches it; the id is the one salt 1 gives.
    let mut next = None;
    assert!(
        wait_for(120, || {
            let Some(c) = channel(&w.ns[2], "out", None).filter(|c| c.id != id0) else {
                return false;
            };
            let b = channel(&w.ns[1], "in", Some(&c.id));
            let ok =
                c.get("chain") == "open" && b.as_ref().is_some_and(|b| b.get("chain") == "open");
            if ok {
                next = Some((c, b.unwrap()));
            }
            ok
        }),
        "no next epoch:\nC: {}\nB: {}\n{}",
        show(&w.ns[2]).0,
        show(&w.ns[1]).0,
        w.d[2].log_text()
    );
    let (c1, b1) = next.unwrap();
    let id1 = c1.id.clone();
    assert_eq!((c1.get("epoch"), b1.get("epoch")), ("1", "1"));
    assert_eq!(
        c1.num("ledger-cumulative"),
        0,
        "a new channel starts from 0"
    );
    let key32 = |h: &str| <[u8; 32]>::try_from(hex::decode(h).unwrap().as_slice()).unwrap();
    let expect = settlement::escrow::channel_id(
        CHAIN_ID,
        w.contract,
        &settlement::ChannelParams {
            payer: eth_key(12).address(),
            payee: eth_key(11).address(),
            payer_key: key32(&ckey),
            payee_key: key32(&bkey),
            salt: settlement::epoch::salt(1),
        },
    );
    assert_eq!(hex::encode(expect.0), id1, "epoch 1's channel has salt 1");
    // The old channel's lines stay, closed, with what the ledgers held on it.
    assert!(
        wait_for(30, || channel(&w.ns[2], "out", Some(&id0)).is_some_and(
            |l| l.get("chain") == "closed"
                && l.num("ledger-cumulative") == first
                && l.get("epoch") == "0"
        )),
        "{}",
        show(&w.ns[2]).0
    );
    // Payments resume on the new channel.
    assert!(w.traffic("2M", 5) > 500_000.0);
    let (c2, b2) = w.quiet(&id1);
    let second = c2.num("ledger-cumulative");
    assert!(second > 0, "C paid on the new channel");
    assert_eq!(c2.get("epoch"), "1");
    // The ledgers' totals are both channels' amounts.
    let (_, c_total) = paid_totals(&w.ns[2], &bkey);
    let (b_total, _) = paid_totals(&w.ns[1], &ckey);
    assert_eq!((c_total, b_total), (first + second, first + second));
    // A second close pays out what the ledgers say for epoch 1; both payouts add up to it all.
    ctl(&w.ns[2], &["close", &bkey]);
    w.closed_as_the_ledgers_say(&id1, &c2, &b2);
    let (p0, p1) = (w.chain(&id0).paid.0, w.chain(&id1).paid.0);
    println!("epoch 0 paid {p0}, epoch 1 paid {p1}, ledgers' total {c_total}");
    assert_eq!(p0 + p1, c_total);
    assert_eq!(p0 + p1, b_total);
    // C stopped signing on the closed channels: none of its updates was refused by B.
    let refused = common::dump_json(&w.ns[1])["payments"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["payment_key"] == ckey.as_str())
                .cloned()
        })
        .map_or(0, |r| r["refused"].as_u64().unwrap_or(0));
    println!("B refused {refused} of C's updates");
}
