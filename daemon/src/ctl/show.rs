//! `babelctl show`: asks a running daemon for a `dump` over its control socket and prints
//! interfaces, neighbours and routes as tables, or as JSON. It reads babeld's line format, so it
//! works with babeld-rs, babeld and Althea's fork alike.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

/// Arguments of `babelctl show`.
#[derive(clap::Args, Debug, Clone)]
pub struct ShowArgs {
    /// The daemon's control socket: a TCP port on ::1, or a Unix socket path.
    #[arg(short = 's', long, default_value = "33123")]
    pub socket: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// What to show: all, interfaces, neighbours, routes, tunnels, payments, exits or verify.
    #[arg(default_value = "all")]
    pub what: String,
}

/// One `add KIND ID key value ...` line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The id (or the interface name).
    pub id: String,
    /// The key/value fields, in order of appearance.
    pub fields: BTreeMap<String, String>,
}

/// A parsed dump.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Dump {
    /// First banner line (`BABEL 1.0` or `ALTHEA 0.1`).
    pub protocol: String,
    /// Banner fields (`version`, `host`, `my-id`) and Althea's `local fee`/`metric factor`.
    pub info: BTreeMap<String, String>,
    /// Interfaces.
    pub interfaces: Vec<Entry>,
    /// Neighbours.
    pub neighbours: Vec<Entry>,
    /// Exported (local) routes.
    pub xroutes: Vec<Entry>,
    /// Routes.
    pub routes: Vec<Entry>,
    /// Tunnel peers (babeld-rs's `dump json` only), one entry per peer, id = tunnel name.
    pub tunnels: Vec<Entry>,
    /// Neighbours of `type mesh` interfaces (babeld-rs's `mesh-neighbour` lines), id = key.
    pub mesh: Vec<Entry>,
    /// Payments per mesh neighbour (babeld-rs's `payment` lines), id = its tunnel key.
    pub payments: Vec<Entry>,
    /// Exits (babeld-rs's `exit`, `exit-user` and `exit-client` lines), field `kind` = which.
    pub exits: Vec<Entry>,
    /// Verified neighbours (babeld-rs's `verify-neighbour` lines), id = address.
    pub verify_neighbours: Vec<Entry>,
    /// Verified routes (babeld-rs's `verify-route` lines), id = prefix.
    pub verify_routes: Vec<Entry>,
}

/// Parses a banner and `dump` reply.
pub fn parse_dump(text: &str) -> Dump {
    let mut d = Dump::default();
    for (i, line) in text.lines().enumerate() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [p, v] if i == 0 => d.protocol = format!("{p} {v}"),
            ["local", "fee", v] => {
                d.info.insert("local fee".into(), (*v).into());
            }
            ["metric", "factor", v] => {
                d.info.insert("metric factor".into(), (*v).into());
            }
            ["add", kind, id, rest @ ..] => {
                let mut e = Entry {
                    id: (*id).to_string(),
                    fields: BTreeMap::new(),
                };
                for kv in rest.chunks(2) {
                    if let [k, v] = kv {
                        e.fields.insert((*k).to_string(), (*v).to_string());
                    }
                }
                match *kind {
                    "interface" => d.interfaces.push(e),
                    "neighbour" => d.neighbours.push(e),
                    "xroute" => d.xroutes.push(e),
                    "route" => d.routes.push(e),
                    "mesh-neighbour" => d.mesh.push(e),
                    "payment" => d.payments.push(e),
                    "exit" | "exit-user" | "exit-client" => {
                        e.fields.insert("kind".into(), (*kind).to_string());
                        d.exits.push(e);
                    }
                    "verify-neighbour" => d.verify_neighbours.push(e),
                    "verify-route" => d.verify_routes.push(e),
                    _ => {}
                }
            }
            [k, v] if matches!(*k, "version" | "host" | "my-id") => {
                d.info.insert((*k).to_string(), (*v).to_string());
            }
            _ => {}
        }
    }
    d
}

/// Converts babeld-rs's `dump json` into the same entries, with prices (which the text dump
/// shows only in the Althea dialect).
pub fn from_json(banner: &str, v: &serde_json::Value) -> Dump {
    let mut d = parse_dump(banner);
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let entries = |key: &str, id: &str, rename: &[(&str, &str)]| -> Vec<Entry> {
        v.get(key)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .map(|o| {
                        let mut e = Entry {
                            id: o.get(id).map(s).unwrap_or_default(),
                            fields: BTreeMap::new(),
                        };
                        if let Some(map) = o.as_object() {
                            for (k, val) in map {
                                let k = rename
                                    .iter()
                                    .find(|(from, _)| from == k)
                                    .map_or(k.as_str(), |(_, to)| to);
                                e.fields.insert(k.to_string(), s(val));
                            }
                        }
                        e
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    d.interfaces = entries("interfaces", "name", &[]);
    d.neighbours = entries(
        "neighbours",
        "address",
        &[("interface", "if"), ("rtt_ms", "rtt")],
    );
    d.xroutes = entries("xroutes", "prefix", &[]);
    d.payments = entries(
        "payments",
        "neighbour",
        &[
            ("owed_in", "owed-in"),
            ("owed_out", "owed-out"),
            ("paid_in", "paid-in"),
            ("paid_out", "paid-out"),
            ("nonce_in", "nonce-in"),
            ("nonce_out", "nonce-out"),
        ],
    );
    if let Some(v) = v.get("verify") {
        let from = |key: &str, id: &str| -> Vec<Entry> {
            let rows = v.get(key).and_then(|a| a.as_array());
            rows.into_iter()
                .flatten()
                .map(|o| Entry {
                    id: o.get(id).map(s).unwrap_or_default(),
                    fields: o
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, x)| (k.clone(), s(x)))
                        .collect(),
                })
                .collect()
        };
        d.verify_neighbours = from("neighbours", "neighbour");
        d.verify_routes = from("routes", "prefix");
        for e in d
            .verify_neighbours
            .iter_mut()
            .chain(d.verify_routes.iter_mut())
        {
            if let Some(i) = e.fields.remove("interface") {
                e.fields.insert("if".into(), i);
            }
            if let Some(n) = e.fields.remove("neighbour") {
                e.fields.insert("via".into(), n);
            }
            for (from, to) in [
                ("last_resort", "last-resort"),
                ("last_eviction", "last-eviction"),
                ("last_eviction_prefix", "last-eviction-prefix"),
            ] {
                if let Some(n) = e.fields.remove(from) {
                    e.fields.insert(to.into(), n);
                }
            }
        }
    }
    d.routes = entries(
        "routes",
        "prefix",
        &[
            ("interface", "if"),
            ("router_id", "id"),
            ("full_path_rtt_us", "full-path-rtt"),
        ],
    );
    for r in &mut d.routes {
        if let Some(i) = r.fields.get("installed").cloned() {
            r.fields.insert(
                "installed".into(),
                if i == "true" {
                    "yes".into()
                } else {
                    "no".into()
                },
            );
        }
        if let Some(us) = r
            .fields
            .get("full-path-rtt")
            .and_then(|v| v.parse::<u32>().ok())
        {
            r.fields.insert(
                "full-path-rtt".into(),
                format!("{}.{:03}", us / 1000, us % 1000),
            );
        }
    }
    for t in v
        .get("tunnels")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        let name = t.get("name").map(s).unwrap_or_default();
        for p in t
            .get("peers")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            let mut e = Entry {
                id: name.clone(),
                fields: BTreeMap::new(),
            };
            e.fields.insert(
                "public-key".into(),
                t.get("public_key").map(s).unwrap_or_default(),
            );
            e.fields.insert(
                "port".into(),
                t.get("listen_port").map(s).unwrap_or_default(),
            );
            e.fields.insert(
                "peer".into(),
                p.get("public_key").map(s).unwrap_or_default(),
            );
            for (k, out) in [
                ("endpoint", "endpoint"),
                ("rx_bytes", "rx"),
                ("tx_bytes", "tx"),
                ("handshakes", "handshakes"),
                ("last_handshake_s", "handshake-age"),
            ] {
                e.fields
                    .insert(out.into(), p.get(k).map(s).unwrap_or_else(|| "-".into()));
            }
            d.tunnels.push(e);
        }
    }
    for m in v
        .get("mesh")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
    {
        for n in m
            .get("neighbours")
            .and_then(|n| n.as_array())
            .into_iter()
            .flatten()
        {
            let mut e = Entry {
                id: n.get("public_key").map(s).unwrap_or_default(),
                fields: BTreeMap::new(),
            };
            e.fields
                .insert("if".into(), m.get("interface").map(s).unwrap_or_default());
            for (k, out) in [
                ("endpoint", "endpoint"),
                ("state", "state"),
                ("tunnel", "tunnel"),
                ("last_handshake_s", "handshake-age"),
                ("handshakes", "handshakes"),
                ("rx_bytes", "rx"),
                ("tx_bytes", "tx"),
            ] {
                e.fields
                    .insert(out.into(), n.get(k).map(s).unwrap_or_else(|| "-".into()));
            }
            // The same sum as the text dump's `drops`.
            let drops = ["replay_drops", "decrypt_drops", "handshake_drops"]
                .iter()
                .map(|k| n.get(*k).and_then(|v| v.as_u64()))
                .sum::<Option<u64>>();
            e.fields.insert(
                "drops".into(),
                drops.map_or_else(|| "-".into(), |d| d.to_string()),
            );
            d.mesh.push(e);
        }
    }
    if let Some(fee) = v.get("fee") {
        d.info.insert("local fee".into(), s(fee));
    }
    // The exit role's or client's rows, as the text dump gives them.
    if let Some(x) = v
        .get("exits")
        .filter(|x| !x.is_null())
        .and_then(|x| serde_json::from_value::<crate::exit::ExitView>(x.clone()).ok())
    {
        d.exits = parse_dump(&format!("-\n{}", x.lines().join("\n"))).exits;
    }
    d
}

/// Reads a daemon's state: babeld-rs's `dump json` when it has it, else babeld's `dump`.
pub fn fetch_dump(socket: &str) -> anyhow::Result<Dump> {
    let mut c = Conversation::connect(socket)?;
    let banner = c.banner.clone();
    let (json, end) = c.command("dump json")?;
    if end == "ok"
        && let Some(line) = json.lines().find(|l| l.starts_with('{'))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
    {
        c.quit();
        return Ok(from_json(&banner, &v));
    }
    // babeld and Althea's fork answer `bad`: ask for the text dump on the same connection.
    let (text, end) = c.command("dump")?;
    c.quit();
    if end != "ok" {
        bail!("the daemon answered {end:?} to dump");
    }
    Ok(parse_dump(&format!("{banner}{text}")))
}

/// The line that ends an answer on babeld's control protocol: `ok`, `bad`, or `no[ why]`.
fn is_terminator(line: &str) -> bool {
    line == "ok" || line == "bad" || line == "no" || line.starts_with("no ")
}

/// Either kind of control socket.
enum Stream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// One control connection, spoken one command at a time: each command is written alone and
/// its answer read up to its `ok`/`no`/`bad` before the next is sent. Althea's fork reads one
/// command line per read and drops the rest of what a write carried, so a client that sends
/// `dump json\nquit\n` at once waits forever; babeld and babeld-rs take both ways.
pub struct Conversation {
    stream: Stream,
    pending: Vec<u8>,
    /// The greeting (`BABEL 1.0` or `ALTHEA 0.1`, `version`, `host`, `my-id`), ending `ok`.
    pub banner: String,
}

/// Longest answer read (a big mesh's dump is a few MB); a peer sending more is refused.
const MAX_ANSWER: usize = 64 << 20;

impl Conversation {
    /// Connects (a TCP port on ::1, or a Unix socket path) and reads the banner.
    pub fn connect(socket: &str) -> anyhow::Result<Conversation> {
        let timeout = Some(Duration::from_secs(10));
        let stream = if socket.starts_with('/') {
            let s = std::os::unix::net::UnixStream::connect(socket)
                .with_context(|| format!("connecting to {socket}"))?;
            s.set_read_timeout(timeout)?;
            Stream::Unix(s)
        } else {
            let port: u16 = socket
                .parse()
                .with_context(|| format!("{socket:?} is neither a port nor a path"))?;
            let s = std::net::TcpStream::connect(("::1", port))
                .with_context(|| format!("connecting to [::1]:{port}"))?;
            s.set_read_timeout(timeout)?;
            Stream::Tcp(s)
        };
        let mut c = Conversation {
            stream,
            pending: Vec::new(),
            banner: String::new(),
        };
        let (banner, end) = c.answer()?;
        c.banner = format!("{banner}{end}\n");
        Ok(c)
    }

    /// Sends one command and reads its answer: the lines before the terminator, and the
    /// terminator (`ok`, `bad`, `no ...`).
    pub fn command(&mut self, line: &str) -> anyhow::Result<(String, String)> {
        self.stream.write_all(format!("{line}\n").as_bytes())?;
        self.stream.flush()?;
        self.answer()
    }

    /// `quit` (no answer), then the connection closes.
    pub fn quit(mut self) {
        let _ = self.stream.write_all(b"quit\n");
    }

    fn answer(&mut self) -> anyhow::Result<(String, String)> {
        let mut text = String::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
                let rest = self.pending.split_off(pos + 1);
                let line = std::mem::replace(&mut self.pending, rest);
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if is_terminator(line) {
                    return Ok((text, line.to_owned()));
                }
                text.push_str(line);
                text.push('\n');
            }
            if text.len() + self.pending.len() > MAX_ANSWER {
                bail!("answer longer than {MAX_ANSWER} bytes");
            }
            let n = self
                .stream
                .read(&mut buf)
                .context("reading the daemon's answer")?;
            if n == 0 {
                bail!("the daemon closed the connection before ending its answer");
            }
            self.pending
                .extend_from_slice(buf.get(..n).unwrap_or_default());
        }
    }
}

fn table(out: &mut dyn Write, header: &[&str], rows: Vec<Vec<String>>) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(
        out,
        "{}",
        line(header.iter().map(|s| s.to_string()).collect())
    )?;
    for r in rows {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}

/// A tunnel peer's row: tunnel, port, peer, endpoint, rx, tx, handshakes, handshake age (s).
pub fn tunnel_row(e: &Entry) -> Vec<String> {
    let mut r = vec![e.id.clone()];
    r.extend(
        [
            "port",
            "peer",
            "endpoint",
            "rx",
            "tx",
            "handshakes",
            "handshake-age",
        ]
        .iter()
        .map(|k| get(e, k)),
    );
    r
}

/// One table row per entry: its id, then the fields `keys`.
fn rows_of(entries: &[Entry], keys: &[&str]) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            let mut r = vec![e.id.clone()];
            r.extend(keys.iter().map(|k| get(e, k)));
            r
        })
        .collect()
}

fn get(e: &Entry, k: &str) -> String {
    e.fields.get(k).cloned().unwrap_or_else(|| "-".into())
}

/// Prints a parsed dump as tables.
pub fn print_tables(d: &Dump, what: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let all = what == "all";
    if all {
        let info: Vec<String> = d.info.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "{}  {}", d.protocol, info.join("  "))?;
    }
    if all || what == "interfaces" {
        writeln!(out, "\nInterfaces")?;
        let rows = d
            .interfaces
            .iter()
            .map(|e| vec![e.id.clone(), get(e, "up"), get(e, "ipv6"), get(e, "ipv4")])
            .collect();
        table(out, &["NAME", "UP", "IPV6", "IPV4"], rows)?;
    }
    if all || what == "neighbours" {
        writeln!(out, "\nNeighbours")?;
        let rows = d
            .neighbours
            .iter()
            .map(|e| {
                ["address", "if", "reach", "rxcost", "txcost", "rtt", "cost"]
                    .iter()
                    .map(|k| get(e, k))
                    .collect()
            })
            .collect();
        table(
            out,
            &["ADDRESS", "IF", "REACH", "RXCOST", "TXCOST", "RTT", "COST"],
            rows,
        )?;
    }
    if (all || what == "neighbours") && !d.mesh.is_empty() {
        writeln!(out, "\nMesh neighbours")?;
        let rows = d
            .mesh
            .iter()
            .map(|e| {
                let mut r = vec![get(e, "if"), e.id.clone()];
                r.extend(
                    [
                        "endpoint",
                        "state",
                        "tunnel",
                        "handshake-age",
                        "rx",
                        "tx",
                        "drops",
                    ]
                    .iter()
                    .map(|k| get(e, k)),
                );
                r
            })
            .collect();
        table(
            out,
            &[
                "IF", "KEY", "ENDPOINT", "STATE", "TUNNEL", "AGE-S", "RX-BYTES", "TX-BYTES",
                "DROPS",
            ],
            rows,
        )?;
    }
    if (all && !d.tunnels.is_empty()) || what == "tunnels" {
        writeln!(out, "\nTunnels")?;
        let rows = d.tunnels.iter().map(tunnel_row).collect();
        table(
            out,
            &[
                "TUNNEL",
                "PORT",
                "PEER",
                "ENDPOINT",
                "RX-BYTES",
                "TX-BYTES",
                "HANDSHAKES",
                "AGE-S",
            ],
            rows,
        )?;
    }
    if (all && !d.payments.is_empty()) || what == "payments" {
        writeln!(out, "\nPayments (wei)")?;
        let keys = [
            "tunnel",
            "owed-in",
            "owed-out",
            "paid-in",
            "paid-out",
            "nonce-in",
            "nonce-out",
            "service",
            "weight",
            "paying",
        ];
        let rows = rows_of(&d.payments, &keys);
        table(
            out,
            &[
                "NEIGHBOUR",
                "TUNNEL",
                "OWED-IN",
                "OWED-OUT",
                "PAID-IN",
                "PAID-OUT",
                "NONCE-IN",
                "NONCE-OUT",
                "SERVICE",
                "WEIGHT",
                "PAYING",
            ],
            rows,
        )?;
    }
    if (all && !d.exits.is_empty()) || what == "exits" {
        writeln!(out, "\nExits")?;
        let rows = d
            .exits
            .iter()
            .map(|e| {
                let rest: Vec<String> = e
                    .fields
                    .iter()
                    .filter(|(k, _)| *k != "kind")
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                vec![get(e, "kind"), e.id.clone(), rest.join("  ")]
            })
            .collect();
        table(out, &["KIND", "ID", "DETAILS"], rows)?;
    }
    if (all && !(d.verify_neighbours.is_empty() && d.verify_routes.is_empty())) || what == "verify"
    {
        writeln!(out, "\nVerified neighbours")?;
        let keys = [
            "if",
            "accuracy",
            "evicted",
            "evictions",
            "destinations",
            "last-resort",
        ];
        let mut rows = rows_of(&d.verify_neighbours, &keys);
        // Why it was last evicted (spec/verify.md §4.3): the cause and the route's destination.
        for (r, e) in rows.iter_mut().zip(&d.verify_neighbours) {
            r.push(
                match (get(e, "last-eviction"), get(e, "last-eviction-prefix")) {
                    (c, _) if c == "-" => c,
                    (c, p) => format!("{c} {p}"),
                },
            );
        }
        table(
            out,
            &[
                "NEIGHBOUR",
                "IF",
                "ACCURACY",
                "EVICTED",
                "EVICTIONS",
                "DESTINATIONS",
                "LAST-RESORT",
                "LAST-EVICTION",
            ],
            rows,
        )?;
        writeln!(out, "\nVerified routes")?;
        let keys = [
            "via",
            "if",
            "metric",
            "cost",
            "accuracy",
            "corrected",
            "blame",
        ];
        let rows = rows_of(&d.verify_routes, &keys);
        table(
            out,
            &[
                "PREFIX",
                "VIA",
                "IF",
                "METRIC",
                "COST",
                "ACCURACY",
                "CORRECTED",
                "BLAME",
            ],
            rows,
        )?;
    }
    if all || what == "routes" {
        writeln!(out, "\nRoutes")?;
        let priced = d.routes.iter().any(|e| e.fields.contains_key("price"));
        let mut keys = vec!["prefix", "from", "installed", "metric", "refmetric"];
        let mut header = vec!["PREFIX", "FROM", "INSTALLED", "METRIC", "REFMETRIC"];
        if priced {
            keys.extend(["price", "fee", "full-path-rtt"]);
            header.extend(["PRICE", "FEE", "PATH-RTT"]);
        }
        keys.extend(["via", "if", "id"]);
        header.extend(["VIA", "IF", "ROUTER-ID"]);
        // A route installed through a neighbour evicted for inaccurate metrics is there as the
        // last resort (spec/verify.md §4.3): nobody else offers its destination.
        let evicted: std::collections::BTreeSet<(String, String)> = d
            .verify_neighbours
            .iter()
            .filter(|e| get(e, "evicted") == "true")
            .map(|e| (e.id.clone(), get(e, "if")))
            .collect();
        let mut rows: Vec<Vec<String>> = d
            .routes
            .iter()
            .map(|e| {
                let last_resort = get(e, "installed") == "yes"
                    && evicted.contains(&(get(e, "via"), get(e, "if")));
                keys.iter()
                    .map(|k| match *k {
                        "installed" if last_resort => "last-resort".into(),
                        _ => get(e, k),
                    })
                    .collect()
            })
            .collect();
        rows.extend(d.xroutes.iter().map(|e| {
            let mut r: Vec<String> = vec![
                get(e, "prefix"),
                get(e, "from"),
                "local".into(),
                get(e, "metric"),
                "-".into(),
            ];
            if priced {
                r.extend(["0".into(), "-".into(), "-".into()]);
            }
            r.extend(["-".into(), "-".into(), "(this router)".into()]);
            r
        }));
        table(out, &header, rows)?;
    }
    Ok(())
}

/// Runs `babelctl show`.
pub fn run(args: &ShowArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let d = fetch_dump(&args.socket)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&d)?)?;
    } else {
        print_tables(&d, &args.what, out)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const ALTHEA: &str = "ALTHEA 0.1\nversion babeld-1.8.0-24-g6335378\nhost raspberrypi\nmy-id ba:27:eb:ff:fe:09:06:dd\nok\nlocal fee 1024\nmetric factor 1900\nadd interface wlan0 up true ipv6 fe80::1a8b:ec1:8542:1bd8 ipv4 10.28.119.131\nadd neighbour 14f19a8 address fe80::2cee:2fff:648:8796 if wg0 reach ffff rxcost 256 txcost 256 rtt 26.723 rttcost 912 cost 1168\nadd xroute 10.28.119.131/32-::/0 prefix 10.28.119.131/32 from ::/0 metric 0\nadd route 14f0820 prefix 10.28.7.7/32 from 0.0.0.0/0 installed yes id ba:27:eb:ff:fe:5b:fe:c7 metric 1596 price 3072 fee 3072 refmetric 638 full-path-rtt 22.805 via fe80::e914:2335:a76:bda3 if wlan0\nok\n";

    #[test]
    fn shows_verification_from_dump_and_json() {
        let text = "BABEL 1.0\nok\nadd route 1 prefix fd77::9/128 from ::/0 installed yes id 02:00:00:00:00:00:00:09 metric 96 refmetric 0 via fe80::2 if a-l\nadd route 2 prefix fd77::4/128 from ::/0 installed no id 02:00:00:00:00:00:00:04 metric 97 refmetric 1 via fe80::2 if a-l\nadd route 3 prefix fd77::4/128 from ::/0 installed yes id 02:00:00:00:00:00:00:04 metric 192 refmetric 96 via fe80::3 if a-h\nadd verify-neighbour fe80::2 if a-l accuracy 499 evicted true evicted-for 290 evictions 1 last-eviction audit last-eviction-prefix fd77::4/128 destinations 1 last-resort 3\nadd verify-neighbour fe80::3 if a-h accuracy 1000 evicted false evicted-for 0 evictions 0 last-eviction - last-eviction-prefix - destinations 1 last-resort 0\nadd verify-route fd77::4/128 via fe80::2 if a-l metric 97 cost 192 accuracy 505 corrected 192 age 3\nok\n";
        let d = parse_dump(text);
        assert_eq!(d.verify_neighbours[0].fields["evicted"], "true");
        assert_eq!(d.verify_routes[0].fields["cost"], "192");
        let mut out = Vec::new();
        print_tables(&d, "verify", &mut out).unwrap();
        let t = String::from_utf8(out).unwrap();
        assert!(t.contains("LAST-RESORT"), "{t}");
        // The routes table marks the route installed through the evicted neighbour, and no
        // other.
        let mut out = Vec::new();
        print_tables(&d, "routes", &mut out).unwrap();
        let r = String::from_utf8(out).unwrap();
        let row = |prefix: &str, via: &str| {
            r.lines()
                .find(|l| l.starts_with(prefix) && l.contains(via))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(row("fd77::9/128", "fe80::2").contains("last-resort"), "{r}");
        assert!(row("fd77::4/128", "fe80::2").contains(" no "), "{r}");
        assert!(row("fd77::4/128", "fe80::3").contains(" yes "), "{r}");
        assert!(
            t.lines().any(|l| l.starts_with("fe80::2")
                && l.contains("499")
                && l.contains("true")
                && l.contains(" 3 ")
                && l.trim_end().ends_with(" audit fd77::4/128")),
            "{t}"
        );
        assert!(t.contains("LAST-EVICTION"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.starts_with("fe80::3") && l.trim_end().ends_with(" -")),
            "{t}"
        );
        assert!(
            t.lines().any(|l| l.starts_with("fd77::4/128")
                && l.contains("97")
                && l.contains("192")
                && l.contains("505")),
            "{t}"
        );
        let j = serde_json::json!({"verify": {
            "neighbours": [{"neighbour": "fe80::2", "interface": "a-l", "accuracy": 499,
                "evicted": true, "evictions": 1, "last_eviction": "checks",
                "last_eviction_prefix": "fd77::4/128", "destinations": 1, "last_resort": 2}],
            "routes": [{"prefix": "fd77::4/128", "neighbour": "fe80::2", "interface": "a-l",
                "metric": 97, "cost": 192, "accuracy": 505, "corrected": null}]}});
        let d = from_json("BABEL 1.0\nok\n", &j);
        assert_eq!(d.verify_neighbours[0].id, "fe80::2");
        assert_eq!(d.verify_neighbours[0].fields["if"], "a-l");
        assert_eq!(d.verify_neighbours[0].fields["last-resort"], "2");
        assert_eq!(d.verify_neighbours[0].fields["last-eviction"], "checks");
        assert_eq!(
            d.verify_neighbours[0].fields["last-eviction-prefix"],
            "fd77::4/128"
        );
        assert_eq!(d.verify_routes[0].fields["via"], "fe80::2");
        assert_eq!(d.verify_routes[0].fields["corrected"], "-");
        let j = serde_json::json!({
            "routes": [{"prefix": "fd77::9/128", "from": null, "installed": true,
                "via": "fe80::2", "interface": "a-l", "metric": 96, "refmetric": 0}],
            "verify": {"neighbours": [{"neighbour": "fe80::2", "interface": "a-l",
                "accuracy": 499, "evicted": true, "last_resort": 1}], "routes": []}});
        let d = from_json("BABEL 1.0\nok\n", &j);
        let mut out = Vec::new();
        print_tables(&d, "routes", &mut out).unwrap();
        let r = String::from_utf8(out).unwrap();
        assert!(
            r.lines()
                .any(|l| l.starts_with("fd77::9/128") && l.contains("last-resort")),
            "{r}"
        );
    }

    #[test]
    fn parses_rita_fixture_and_prints_tables() {
        let d = parse_dump(ALTHEA);
        assert_eq!(d.protocol, "ALTHEA 0.1");
        assert_eq!(d.info["local fee"], "1024");
        assert_eq!(d.interfaces[0].id, "wlan0");
        assert_eq!(d.neighbours[0].fields["rtt"], "26.723");
        assert_eq!(d.routes[0].fields["price"], "3072");
        let mut out = Vec::new();
        print_tables(&d, "all", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("PRICE"), "{text}");
        assert!(
            text.lines().any(|l| l.starts_with("10.28.7.7/32")
                && l.contains("3072")
                && l.contains("22.805")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("10.28.119.131/32") && l.contains("(this router)")),
            "{text}"
        );
        let mut out = Vec::new();
        print_tables(&d, "neighbours", &mut out).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("Routes"));
    }

    #[test]
    fn mesh_drops_from_json_are_the_sum_of_the_drop_counters() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"mesh":[{"interface":"eth0","neighbours":[{"public_key":"AbC+/=","state":"up",
            "replay_drops":3,"decrypt_drops":4,"handshake_drops":1}]}]}"#,
        )
        .unwrap();
        let d = from_json("BABEL 1.0", &v);
        assert_eq!(d.mesh[0].fields["drops"], "8");
    }

    #[test]
    fn mesh_neighbour_lines_become_a_table() {
        let text = "BABEL 1.0\nok\nadd mesh-neighbour AbC+/= if eth0 endpoint [fe80::1%2]:4000 state up tunnel m2kabcdef01 handshake-age 3 handshakes 1 rx 100 tx 200 drops 7\nok\n";
        let d = parse_dump(text);
        assert_eq!(d.mesh[0].id, "AbC+/=");
        assert_eq!(d.mesh[0].fields["state"], "up");
        let mut out = Vec::new();
        print_tables(&d, "neighbours", &mut out).unwrap();
        let t = String::from_utf8(out).unwrap();
        assert!(t.contains("Mesh neighbours"), "{t}");
        assert!(
            t.lines().any(|l| l.starts_with("eth0")
                && l.contains("m2kabcdef01")
                && l.contains("200")
                && l.trim_end().ends_with('7')),
            "{t}"
        );
    }

    #[test]
    fn payment_lines_become_a_table() {
        let text = "BABEL 1.0\nok\nadd payment AbC+/= tunnel m2kab key 00ff owed-in 5 owed-out 7 paid-in 100 paid-out 200 nonce-in 3 nonce-out 4 service free-tier weight 1000 refused 0 paying yes\nok\n";
        let d = parse_dump(text);
        assert_eq!(d.payments[0].fields["service"], "free-tier");
        let mut out = Vec::new();
        print_tables(&d, "payments", &mut out).unwrap();
        let t = String::from_utf8(out).unwrap();
        assert!(
            t.lines().any(|l| l.starts_with("AbC+/=")
                && l.contains("m2kab")
                && l.contains("200")
                && l.contains("free-tier")),
            "{t}"
        );
    }
}
