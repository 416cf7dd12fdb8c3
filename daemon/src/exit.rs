//! Exit nodes, the daemon's side (the network paper, "Exit nodes"): the `exit` role and the
//! user node's `exit-server`/`exit-client` lines in the configuration, the MTU of the
//! user-to-exit tunnel, and the nftables tables both ends install. Pure decisions with unit
//! tests; the binary's `exit.rs` runs the tunnel, the sockets and `nft`.
//!
//! The user-to-exit tunnel is the `tunnel` crate's WireGuard-compatible tunnel over TUN whose
//! outer packets are addressed to the other end's mesh address: Babel routes them through the
//! mesh's per-neighbour tunnels, so every relay sees only tunnel packets.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::ParseError;
use crate::discovery::{MIN_MTU, TUNNEL_OVERHEAD};

/// The `exit*` configuration statements, for the man page.
pub const CONFIG_HELP: &str = "Exit nodes (configuration file statements; start-up only):
  exit interface IF private-key KEY pool-v4 PREFIX [pool-v6 PREFIX [prefix-len N]] [fee WEI]
       [free-tier BYTES/S] [close-threshold WEI] [policy open|allow-list] [port N] [tunnel-port N] [state-dir DIR]
                             this node is an exit: users' IPv4 is masqueraded out of IF; KEY is
                             the exit tunnel's key; leases and bills live in DIR/exit.redb (the
                             state file's path + .exit.redb); ports 4877 and 4878 by default
  exit-allow HEX             a user's payment key (ed25519, 64 hex digits) for policy allow-list
  exit-server NAME key HEX address MESH-ADDRESS [port N] [tunnel-port N]
                             an exit this node may use: its payment key and mesh address
  exit-client private-key KEY address MESH-ADDRESS [lan IF]... [hysteresis PERCENT] [hold S]
                             this node uses the exit-servers: KEY is its exit tunnel key, the
                             address its own mesh address; LAN interfaces are masqueraded into
                             the exit tunnel and never forwarded anywhere else; another exit
                             must score PERCENT (20) lower for S seconds (60) before a switch
                             (an unreachable exit is left at once)
       [bill-tolerance PPM] [bill-slack BYTES] [bill-max-price WEI]
                             a bill may count PPM millionths (20000) plus BYTES (262144) more
                             than our own counters of the tunnel, and price the exit's route
                             back to us at most WEI per byte (twice our route's price to it)
The identity in registration and bills is the node's payment key (pay-private-key). Bills and
payments travel inside the exit tunnel (UDP port 4879 at both ends); the user pays each accepted
bill through its payment channel to the exit (ledger: the payment ledger's path + .exit-pay.redb)
unless pay-withhold is set.";

/// Default UDP port of the exit's registration service (on its mesh address).
pub const REGISTRATION_PORT: u16 = 4877;
/// Default UDP port of the exit tunnel on both ends.
pub const TUNNEL_PORT: u16 = 4878;
/// Name of the exit tunnel interface on both ends.
pub const TUNNEL_IFNAME: &str = "exit0";
/// The nftables table (family `inet`) the exit role owns.
pub const EXIT_TABLE: &str = "babeld_rs_exit";
/// The nftables table (family `inet`) a user node owns for its LAN.
pub const USER_TABLE: &str = "babeld_rs_exit_user";
/// The MTU of the exit tunnel interface on both ends. It is the Ethernet MTU, so that any
/// packet the internet sends fits without asking anyone for PMTU discovery (servers that drop
/// ICMP "fragmentation needed" make a smaller MTU a black hole); an outer packet larger than a
/// mesh tunnel's MTU is fragmented by the sending kernel and reassembled by the receiving one.
/// TCP, the bulk of the traffic, never needs that: its MSS is clamped to [`inner_mtu`].
pub const TUNNEL_IF_MTU: u32 = 1500;

/// The largest inner packet that crosses both layers of tunnel without fragmentation: the
/// smallest mesh tunnel MTU on the path (`mesh_mtu`) less one tunnel's worst-case overhead
/// (IPv6 + UDP + transport header + tag), rounded down to a multiple of 16 because the
/// transport pads its plaintext to 16 bytes (WireGuard §5.4.6) up to the interface MTU, which
/// is larger here. 1500-byte links: 1500 - 80 = 1420 for the mesh tunnel, then
/// (1420 - 80) rounded down = 1328 (not 1340: a 1340-byte packet is padded to 1344 and its
/// outer packet no longer fits; measured as fragments on the relay).
pub fn inner_mtu(mesh_mtu: u32) -> u32 {
    (mesh_mtu.saturating_sub(TUNNEL_OVERHEAD) & !15).max(576)
}

/// The TCP MSS clamp for IPv4 through the exit tunnel: [`inner_mtu`] less 40 bytes of IPv4
/// and TCP headers (IPv6 takes 20 more, so it is clamped separately by `rt mtu`).
pub fn mss_v4(mesh_mtu: u32) -> u32 {
    inner_mtu(mesh_mtu).saturating_sub(40)
}

/// Who may register with an exit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Admission {
    /// Any key.
    #[default]
    Open,
    /// Only the keys of `exit-allow` lines.
    AllowList,
}

/// The `exit` line: this node is an exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitRole {
    /// The interface to the internet (masquerade goes out of it).
    pub public_interface: String,
    /// The exit tunnel's (and registration's) private key, base64; checked when parsed.
    pub private_key: String,
    /// Users' IPv4 addresses come from here; the exit takes the first host address.
    pub pool_v4: (Ipv4Addr, u8),
    /// Optional IPv6 prefix split into per-user prefixes of `v6_prefix_len`.
    pub pool_v6: Option<(Ipv6Addr, u8)>,
    /// Length of each user's IPv6 prefix.
    pub v6_prefix_len: u8,
    /// Fee per byte, both ways (download adds the price of the route back).
    pub fee: u64,
    /// Free tier in bytes per second (a user who does not pay is throttled to it).
    pub free_tier: u64,
    /// A user owing more than this (wei) is throttled to the free tier; owing ten times more,
    /// cut (default: the payments crate's close threshold).
    pub close_threshold: Option<u128>,
    /// Who may register.
    pub admission: Admission,
    /// Registration UDP port.
    pub port: u16,
    /// Exit tunnel UDP port.
    pub tunnel_port: u16,
    /// Where the address pool and bills are persisted (default: next to the state file).
    pub state_dir: Option<String>,
}

/// An `exit-server` line on a user node: an exit it may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitServer {
    /// A name for logs and `show exits`.
    pub name: String,
    /// The exit's ed25519 payment key: its identity, which signs its answers and bills (the
    /// tunnel key comes in its signed answer).
    pub key: [u8; 32],
    /// The exit's mesh address (routed by Babel).
    pub address: Ipv6Addr,
    /// Its registration port.
    pub port: u16,
    /// Its tunnel port.
    pub tunnel_port: u16,
}

/// The `exit-client` line: this node is a user of the `exit-server`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitClient {
    /// Our exit tunnel key, base64; it is our identity with the exits (sticky addresses).
    pub private_key: String,
    /// Selection (the reachable exit with the lowest score of metric and price, the exit's
    /// fee included): a challenger must score this many percent lower than a reachable
    /// current exit...
    pub hysteresis_percent: u8,
    /// ... for this many seconds before the user switches (an unreachable exit is left at
    /// once).
    pub hold_s: u32,
    /// LAN interfaces whose traffic goes out through the exit.
    pub lan: Vec<String>,
    /// Our mesh address (announced by Babel): registration requests come from it and the
    /// exit sends the tunnel's packets to it.
    pub address: Ipv6Addr,
    /// How far an exit's bill may count above our own counters of the tunnel over one bill
    /// interval (`bill-tolerance PPM`, `bill-slack BYTES`; `exit::Tolerance`).
    pub tolerance: ::exit::Tolerance,
    /// The most we accept for the price of the exit's route back to us, wei per byte
    /// (`bill-max-price`; default: twice the price of our route to the exit).
    pub max_route_price: Option<u32>,
}

/// The exit settings of a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitSettings {
    /// `exit ...`: this node is an exit.
    pub role: Option<ExitRole>,
    /// `exit-allow KEY`: payment keys that may register under `policy allow-list`.
    pub allow: Vec<[u8; 32]>,
    /// `exit-server ...`: exits this node may use.
    pub servers: Vec<ExitServer>,
    /// `exit-client ...`: this node uses an exit.
    pub client: Option<ExitClient>,
}

/// One `exit*` statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitStatement {
    /// `exit ...`.
    Role(Box<ExitRole>),
    /// `exit-allow KEY`: a user's ed25519 payment key, 64 hex digits.
    Allow([u8; 32]),
    /// `exit-server ...`.
    Server(Box<ExitServer>),
    /// `exit-client ...`.
    Client(Box<ExitClient>),
}

impl ExitSettings {
    /// Applies one statement (a repeated `exit-server NAME` replaces the earlier one).
    pub fn apply(&mut self, s: ExitStatement) {
        match s {
            ExitStatement::Role(r) => self.role = Some(*r),
            ExitStatement::Allow(k) => {
                if !self.allow.contains(&k) {
                    self.allow.push(k);
                }
            }
            ExitStatement::Server(s) => {
                self.servers.retain(|o| o.name != s.name);
                self.servers.push(*s);
            }
            ExitStatement::Client(c) => self.client = Some(*c),
        }
    }
}

fn bad(what: &str, value: &str, why: &'static str) -> ParseError {
    ParseError::BadValue {
        what: what.to_owned(),
        value: value.to_owned(),
        why,
    }
}

fn num<T: TryFrom<u64>>(what: &str, v: &str, min: u64, max: u64) -> Result<T, ParseError> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => {
            T::try_from(n).map_err(|_| bad(what, v, "out of range"))
        }
        Ok(_) => Err(bad(what, v, "out of range")),
        Err(_) => Err(bad(what, v, "not a whole number")),
    }
}

fn private_key(what: &str, v: &str) -> Result<String, ParseError> {
    v.parse::<tunnel::PrivateKey>()
        .map_err(|_| bad(what, "(hidden)", "not a WireGuard base64 key"))?;
    Ok(v.to_owned())
}

/// An ed25519 public key as 64 hex digits (as `pay-private-key` writes seeds).
fn payment_key(what: &str, v: &str) -> Result<[u8; 32], ParseError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v, &mut out).map_err(|_| bad(what, v, "not 64 hex digits"))?;
    Ok(out)
}

fn if_name(what: &str, v: &str) -> Result<String, ParseError> {
    if v.is_empty() || v.len() > 15 || v.contains('/') || v.contains('"') {
        return Err(bad(what, v, "not an interface name"));
    }
    Ok(v.to_owned())
}

/// Key/value pairs after the keyword (every option takes exactly one value).
fn pairs<'a>(keyword: &str, words: &'a [String]) -> Result<Vec<(&'a str, &'a str)>, ParseError> {
    let mut out = Vec::new();
    let mut it = words.iter();
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| ParseError::Missing(format!("{keyword} {k}")))?;
        out.push((k.as_str(), v.as_str()));
    }
    Ok(out)
}

impl ExitStatement {
    /// Parses a line whose first word is `keyword` (`exit` or `exit-*`) and whose other words
    /// are `rest`.
    pub fn parse(keyword: &str, rest: &[String]) -> Result<ExitStatement, ParseError> {
        match keyword {
            "exit" => parse_role(rest),
            "exit-allow" => match rest {
                [k] => Ok(ExitStatement::Allow(payment_key(keyword, k)?)),
                [] => Err(ParseError::Missing(keyword.to_owned())),
                [_, extra, ..] => Err(bad(keyword, extra, "unexpected word after the value")),
            },
            "exit-server" => parse_server(rest),
            "exit-client" => parse_client(rest),
            other => Err(ParseError::Unknown(other.to_owned())),
        }
    }
}

/// `ADDRESS/LEN`.
fn split_prefix(v: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = v.split_once('/')?;
    Some((a.parse().ok()?, l.parse().ok()?))
}

fn parse_role(rest: &[String]) -> Result<ExitStatement, ParseError> {
    let (mut iface, mut key, mut pool_v4, mut pool_v6) = (None, None, None, None);
    let mut r = ExitRole {
        public_interface: String::new(),
        private_key: String::new(),
        pool_v4: (Ipv4Addr::UNSPECIFIED, 0),
        pool_v6: None,
        v6_prefix_len: 64,
        fee: 0,
        free_tier: 125_000,
        close_threshold: None,
        admission: Admission::Open,
        port: REGISTRATION_PORT,
        tunnel_port: TUNNEL_PORT,
        state_dir: None,
    };
    for (k, v) in pairs("exit", rest)? {
        match k {
            "interface" => iface = Some(if_name(k, v)?),
            "private-key" => key = Some(private_key(k, v)?),
            "pool-v4" => match split_prefix(v) {
                // At least 4 addresses: network, the exit, one user, broadcast.
                Some((IpAddr::V4(a), len)) if (8..=30).contains(&len) => pool_v4 = Some((a, len)),
                _ => return Err(bad(k, v, "expected an IPv4 prefix of length 8 to 30")),
            },
            "pool-v6" => match split_prefix(v) {
                Some((IpAddr::V6(a), len)) if (16..=120).contains(&len) => pool_v6 = Some((a, len)),
                _ => return Err(bad(k, v, "expected an IPv6 prefix of length 16 to 120")),
            },
            "prefix-len" => r.v6_prefix_len = num(k, v, 48, 128)?,
            "fee" => r.fee = num(k, v, 0, u64::MAX)?,
            "free-tier" => r.free_tier = num(k, v, 1, u64::from(u32::MAX))?,
            "close-threshold" => {
                r.close_threshold = Some(
                    v.parse::<u128>()
                        .map_err(|_| bad(k, v, "not a whole number of wei"))?,
                )
            }
            "policy" => {
                r.admission = match v {
                    "open" => Admission::Open,
                    "allow-list" => Admission::AllowList,
                    _ => return Err(bad(k, v, "expected open or allow-list")),
                }
            }
            "port" => r.port = num(k, v, 1, 0xFFFF)?,
            "tunnel-port" => r.tunnel_port = num(k, v, 1, 0xFFFF)?,
            "state-dir" => r.state_dir = Some(v.to_owned()),
            other => return Err(ParseError::Unknown(other.to_owned())),
        }
    }
    r.public_interface = iface.ok_or_else(|| ParseError::Missing("exit interface".to_owned()))?;
    r.private_key = key.ok_or_else(|| ParseError::Missing("exit private-key".to_owned()))?;
    r.pool_v4 = pool_v4.ok_or_else(|| ParseError::Missing("exit pool-v4".to_owned()))?;
    if let Some((a, len)) = pool_v6 {
        if r.v6_prefix_len < len {
            return Err(bad(
                "prefix-len",
                &r.v6_prefix_len.to_string(),
                "shorter than the pool-v6 prefix",
            ));
        }
        r.pool_v6 = Some((a, len));
    }
    if r.port == r.tunnel_port {
        return Err(bad(
            "tunnel-port",
            &r.tunnel_port.to_string(),
            "the same as the registration port",
        ));
    }
    Ok(ExitStatement::Role(Box::new(r)))
}

fn parse_server(rest: &[String]) -> Result<ExitStatement, ParseError> {
    let Some((name, rest)) = rest.split_first() else {
        return Err(ParseError::Missing("exit-server".to_owned()));
    };
    if name.is_empty() || name.len() > 32 || !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad(
            "exit-server",
            name,
            "not a name (1 to 32 printable characters)",
        ));
    }
    let (mut key, mut address) = (None, None);
    let (mut port, mut tunnel_port) = (REGISTRATION_PORT, TUNNEL_PORT);
    for (k, v) in pairs("exit-server", rest)? {
        match k {
            "key" => key = Some(payment_key(k, v)?),
            "address" => match v.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) if !a.is_unspecified() && !a.is_multicast() => address = Some(a),
                _ => return Err(bad(k, v, "expected the exit's IPv6 mesh address")),
            },
            "port" => port = num(k, v, 1, 0xFFFF)?,
            "tunnel-port" => tunnel_port = num(k, v, 1, 0xFFFF)?,
            other => return Err(ParseError::Unknown(other.to_owned())),
        }
    }
    Ok(ExitStatement::Server(Box::new(ExitServer {
        name: name.clone(),
        key: key.ok_or_else(|| ParseError::Missing("exit-server key".to_owned()))?,
        address: address.ok_or_else(|| ParseError::Missing("exit-server address".to_owned()))?,
        port,
        tunnel_port,
    })))
}

fn parse_client(rest: &[String]) -> Result<ExitStatement, ParseError> {
    let (mut key, mut address) = (None, None);
    let mut c = ExitClient {
        private_key: String::new(),
        hysteresis_percent: 20,
        hold_s: 60,
        lan: Vec::new(),
        address: Ipv6Addr::UNSPECIFIED,
        tolerance: ::exit::Tolerance::default(),
        max_route_price: None,
    };
    for (k, v) in pairs("exit-client", rest)? {
        match k {
            "private-key" => key = Some(private_key(k, v)?),
            "hysteresis" => c.hysteresis_percent = num(k, v, 0, 100)?,
            "hold" => c.hold_s = num(k, v, 0, 86_400)?,
            "lan" => c.lan.push(if_name(k, v)?),
            "bill-tolerance" => c.tolerance.ppm = num(k, v, 0, 1_000_000)?,
            "bill-slack" => c.tolerance.slack_bytes = num(k, v, 0, u64::MAX)?,
            "bill-max-price" => c.max_route_price = Some(num(k, v, 0, u64::from(u32::MAX))?),
            "address" => match v.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) if !a.is_unspecified() && !a.is_multicast() => address = Some(a),
                _ => return Err(bad(k, v, "expected our IPv6 mesh address")),
            },
            other => return Err(ParseError::Unknown(other.to_owned())),
        }
    }
    c.private_key = key.ok_or_else(|| ParseError::Missing("exit-client private-key".to_owned()))?;
    c.address = address.ok_or_else(|| ParseError::Missing("exit-client address".to_owned()))?;
    Ok(ExitStatement::Client(Box::new(c)))
}

impl ExitRole {
    /// Where the exit keeps its database `name` (`exit.redb`, `exit-pay.redb`): in `state-dir`,
    /// else next to the state file (its path + `.name`), else in `/var/lib/babeld-rs`.
    pub fn store_path(
        &self,
        state_file: Option<&std::path::Path>,
        name: &str,
    ) -> std::path::PathBuf {
        match (&self.state_dir, state_file) {
            (Some(d), _) => std::path::PathBuf::from(d).join(name),
            (None, Some(f)) => {
                let mut p = f.as_os_str().to_owned();
                p.push(".");
                p.push(name);
                std::path::PathBuf::from(p)
            }
            (None, None) => std::path::Path::new("/var/lib/babeld-rs").join(name),
        }
    }

    /// The exit's own address on its tunnel: the first host of the pool.
    pub fn gateway_v4(&self) -> Ipv4Addr {
        let (a, len) = self.pool_v4;
        Ipv4Addr::from((u32::from(a) & mask(len)).wrapping_add(1))
    }
}

fn mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

/// The exit's nftables table, as one `nft -f` transaction that replaces any earlier copy:
/// masquerade of the pool out of the public interface; forwarding from the exit tunnel only
/// for registered users' addresses (the set `users`, filled as users register) and only to
/// the public interface; back to the tunnel only for established flows; TCP MSS clamped to
/// what the tunnel carries without fragmentation. Forwarding that touches neither the tunnel
/// nor the pool is left alone (the exit may relay mesh traffic too).
pub fn exit_ruleset(role: &ExitRole, mss: u32, users: &[Ipv4Addr]) -> String {
    let (a, len) = role.pool_v4;
    let pool = format!("{}/{len}", Ipv4Addr::from(u32::from(a) & mask(len)));
    let ext = &role.public_interface;
    let t = TUNNEL_IFNAME;
    let mut s = String::new();
    let _ = writeln!(s, "table inet {EXIT_TABLE}");
    let _ = writeln!(s, "delete table inet {EXIT_TABLE}");
    let _ = writeln!(s, "table inet {EXIT_TABLE} {{");
    let _ = writeln!(s, "  set users {{ type ipv4_addr; }}");
    let _ = writeln!(s, "  counter unregistered {{ }}");
    let _ = writeln!(s, "  counter leak {{ }}");
    let _ = writeln!(
        s,
        "  chain forward {{\n    type filter hook forward priority filter - 5; policy accept;"
    );
    let _ = writeln!(
        s,
        "    iifname \"{t}\" tcp flags syn tcp option maxseg size set {mss}\n    oifname \"{t}\" tcp flags syn tcp option maxseg size set {mss}"
    );
    let _ = writeln!(
        s,
        "    iifname \"{t}\" ip saddr != @users counter name \"unregistered\" drop"
    );
    let _ = writeln!(s, "    iifname \"{t}\" oifname \"{ext}\" accept");
    let _ = writeln!(s, "    iifname \"{t}\" counter name \"leak\" drop");
    let _ = writeln!(
        s,
        "    oifname \"{t}\" ct state established,related accept\n    oifname \"{t}\" drop"
    );
    let _ = writeln!(
        s,
        "    ip saddr {pool} counter name \"leak\" drop\n    ip daddr {pool} counter name \"leak\" drop"
    );
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{ext}\" ip saddr {pool} masquerade\n  }}"
    );
    let _ = writeln!(s, "}}");
    for u in users {
        s.push_str(&exit_admit(*u));
    }
    s
}

/// The `nft` command that admits one more registered address.
pub fn exit_admit(v4: Ipv4Addr) -> String {
    format!("add element inet {EXIT_TABLE} users {{ {v4} }}\n")
}

/// A user node's table: its LAN's IPv4 masqueraded into the exit tunnel (the exit routes only
/// the address it gave us), TCP MSS clamped both ways, and nothing from the LAN forwarded
/// anywhere but into the exit tunnel (no leak through a gateway's own uplink when the exit is
/// down).
pub fn user_ruleset(lan: &[String], mss: u32) -> String {
    let t = TUNNEL_IFNAME;
    let mut s = String::new();
    let _ = writeln!(s, "table inet {USER_TABLE}");
    let _ = writeln!(s, "delete table inet {USER_TABLE}");
    let _ = writeln!(s, "table inet {USER_TABLE} {{");
    let _ = writeln!(s, "  counter leak {{ }}");
    let _ = writeln!(
        s,
        "  chain forward {{\n    type filter hook forward priority filter - 5; policy accept;"
    );
    let _ = writeln!(
        s,
        "    iifname \"{t}\" tcp flags syn tcp option maxseg size set {mss}\n    oifname \"{t}\" tcp flags syn tcp option maxseg size set {mss}"
    );
    for l in lan {
        let _ = writeln!(
            s,
            "    iifname \"{l}\" meta nfproto ipv4 oifname != \"{t}\" counter name \"leak\" drop"
        );
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{t}\" masquerade\n  }}"
    );
    let _ = writeln!(s, "}}");
    s
}

/// At least the IPv6 minimum: the interface MTU never goes below [`MIN_MTU`].
pub fn tunnel_if_mtu() -> u32 {
    TUNNEL_IF_MTU.max(MIN_MTU)
}

/// What a user node was granted by its exit (the fields of the exit's signed answer that the
/// data path needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The exit's tunnel public key.
    pub tunnel_key: tunnel::PublicKey,
    /// The exit's mesh address (outer packets go there).
    pub mesh_address: Ipv6Addr,
    /// The exit's tunnel UDP port.
    pub tunnel_port: u16,
    /// Our IPv4 address in the tunnel and its prefix length.
    pub ipv4: (Ipv4Addr, u8),
    /// The exit's IPv4 address in the tunnel (our default gateway).
    pub exit_ipv4: Ipv4Addr,
    /// The IPv6 prefix routed to us, if any.
    pub ipv6_prefix: Option<(Ipv6Addr, u8)>,
    /// The exit's fee, wei per byte (what its bills are checked against).
    pub fee: u32,
}

/// A registered user as the exit's data path knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The user's tunnel public key.
    pub tunnel_key: tunnel::PublicKey,
    /// The user's mesh address.
    pub mesh_address: Ipv6Addr,
    /// The user's tunnel port.
    pub tunnel_port: u16,
    /// The user's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// The user's IPv6 prefix, if any.
    pub ipv6_prefix: Option<(Ipv6Addr, u8)>,
}

/// The Babel routes to the configured exits' mesh addresses, published by the main loop after
/// each batch of route changes, read by the exit client (reachability, metric, price).
#[derive(Debug, Default)]
pub struct ExitRoutes {
    routes: std::sync::Mutex<Vec<(Ipv6Addr, RouteToExit)>>,
}

/// Babel's view of the route to one exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteToExit {
    /// The route's metric.
    pub metric: u16,
    /// Its price as received: what our next hop charges per byte to the exit.
    pub price: u32,
}

impl ExitRoutes {
    /// Replaces the table with the installed routes to `watched` addresses.
    pub fn publish(&self, installed: impl IntoIterator<Item = (Ipv6Addr, RouteToExit)>) {
        if let Ok(mut r) = self.routes.lock() {
            *r = installed.into_iter().collect();
        }
    }
    /// The installed route to `exit`, if any.
    pub fn get(&self, exit: Ipv6Addr) -> Option<RouteToExit> {
        self.routes
            .lock()
            .ok()?
            .iter()
            .find(|(a, _)| *a == exit)
            .map(|(_, r)| *r)
    }
}

/// One user as the exit shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRow {
    /// The user's payment (registration) key.
    pub user: String,
    /// The user's tunnel key.
    pub tunnel_key: String,
    /// Its mesh address.
    pub mesh_address: String,
    /// Its IPv4 address.
    pub ipv4: String,
    /// Its IPv6 prefix, if any.
    pub ipv6_prefix: Option<String>,
    /// Bytes received from it in the tunnel (upload).
    pub rx_bytes: u64,
    /// Bytes sent to it in the tunnel (download).
    pub tx_bytes: u64,
    /// Seconds since its last handshake.
    pub last_handshake_s: Option<u64>,
    /// Registrations answered.
    pub registrations: u64,
    /// Bytes metered from it (upload), cumulative since its first registration (persisted).
    pub upload_bytes: u64,
    /// Bytes metered to it (download), cumulative.
    pub download_bytes: u64,
    /// Everything metered, wei: upload x fee + download x (fee + price of the route back).
    pub metered: String,
    /// The newest signed bill's amount, wei (committed to the store before it is signed).
    pub billed: String,
    /// The price of the exit's route back to the user when last metered (wei per byte).
    pub route_back_price: u32,
    /// Service level (`full`, `free-tier`, `cut`).
    pub service: String,
    /// What its payment channel to the exit carries, wei (credited).
    #[serde(default)]
    pub paid: String,
    /// Metered minus paid, wei (what the service level follows).
    #[serde(default)]
    pub owed: String,
    /// Sequence number of the newest bill sent to it.
    #[serde(default)]
    pub bill_seq: u64,
    /// Bills sent to it.
    #[serde(default)]
    pub bills_sent: u64,
    /// Payments accepted from it.
    #[serde(default)]
    pub payments: u64,
}

/// A user node's billing with its current exit.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserBillRow {
    /// The exit's name.
    pub exit: String,
    /// Sequence number of the newest accepted bill.
    pub seq: u64,
    /// Its amount (what we owe in total), wei.
    pub billed: String,
    /// What our channel to the exit carries, wei.
    pub paid: String,
    /// Whether the exit acknowledged our newest payment.
    pub acked: bool,
    /// Whether we pay (`pay-withhold` off).
    pub paying: bool,
    /// The last bill's check: `accepted SEQ`, `duplicate` or `refused: WHY`.
    pub check: String,
    /// Bills accepted.
    pub accepted: u64,
    /// Bills received again.
    pub duplicates: u64,
    /// Bills refused as overcharging (bytes or amounts above our counters and the formula).
    pub overcharged: u64,
    /// Bills refused as replayed or older.
    pub replayed: u64,
    /// Bills refused as forged (not our exit's signature, not for us).
    pub forged: u64,
    /// Payments signed (committed before sent).
    pub payments_sent: u64,
    /// Payment retransmissions.
    pub retries: u64,
}

/// One configured exit as a user node shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitRow {
    /// Its name.
    pub name: String,
    /// Its mesh address.
    pub mesh_address: String,
    /// Babel's route to it, if any.
    pub route: Option<RouteToExit>,
    /// Its last answer: `registered`, `refused: WHY` or `none`.
    pub state: String,
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// What `dump`, `dump json` and `babelctl show exits` show about exits.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitView {
    /// `exit` or `user`.
    pub role: String,
    /// Our tunnel public key.
    pub tunnel_key: String,
    /// The tunnel interface's MTU and the TCP MSS clamp.
    pub mtu: u32,
    /// The TCP MSS clamp.
    pub mss: u32,
    /// On an exit: its users.
    pub users: Vec<UserRow>,
    /// Registration requests dropped (malformed, forged, replayed), on an exit.
    pub dropped: u64,
    /// On a user node: the configured exits.
    pub exits: Vec<ExitRow>,
    /// On a user node: the exit in use, if any.
    pub current: Option<String>,
    /// Why it is the current one (or why there is none).
    pub reason: String,
    /// On a user node: our IPv4 address in the tunnel.
    pub ipv4: Option<String>,
    /// On a user node: bytes sent to and received from the current exit in the tunnel.
    pub tx_bytes: u64,
    /// Bytes received from the exit.
    pub rx_bytes: u64,
    /// On a user node: what the current exit granted (the data path follows it).
    #[serde(skip)]
    pub grant: Option<Grant>,
    /// On a user node: bills and payments with the current exit.
    #[serde(default)]
    pub bill: Option<UserBillRow>,
    /// How many times the tunnel's counters were copied in (a bill is checked against a copy
    /// taken after it arrived).
    #[serde(skip)]
    pub snapshots: u64,
}

impl ExitView {
    /// `dump` lines, babeld style (`add exit ...`).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.role == "exit" {
            for u in &self.users {
                out.push(format!(
                    "add exit-user {} address {} mesh {} rx {} tx {} handshake {} upload {} download {} metered {} billed {} paid {} owed {} bill {} bills {} payments {} service {}",
                    u.user,
                    u.ipv4,
                    u.mesh_address,
                    u.rx_bytes,
                    u.tx_bytes,
                    u.last_handshake_s
                        .map_or_else(|| "never".to_owned(), |s| format!("{s}s")),
                    u.upload_bytes,
                    u.download_bytes,
                    or_dash(&u.metered),
                    or_dash(&u.billed),
                    or_dash(&u.paid),
                    or_dash(&u.owed),
                    u.bill_seq,
                    u.bills_sent,
                    u.payments,
                    or_dash(&u.service),
                ));
            }
        } else {
            for e in &self.exits {
                let route = e.route.map_or_else(
                    || "metric unreachable price -".to_owned(),
                    |r| format!("metric {} price {}", r.metric, r.price),
                );
                out.push(format!(
                    "add exit {} mesh {} {route} state {} current {}",
                    e.name,
                    e.mesh_address,
                    e.state.replace(' ', ""),
                    if self.current.as_deref() == Some(e.name.as_str()) {
                        "yes"
                    } else {
                        "no"
                    }
                ));
            }
            let bill = self.bill.as_ref().map_or_else(String::new, |b| {
                format!(
                    " bill {} billed {} paid {} acked {} paying {} accepted {} refused-overcharge {} refused-replay {} refused-forged {} payments {} check {}",
                    b.seq,
                    or_dash(&b.billed),
                    or_dash(&b.paid),
                    if b.acked { "yes" } else { "no" },
                    if b.paying { "yes" } else { "no" },
                    b.accepted,
                    b.overcharged,
                    b.replayed,
                    b.forged,
                    b.payments_sent,
                    or_dash(&b.check.replace(' ', "-")),
                )
            });
            out.push(format!(
                "add exit-client {} address {} rx {} tx {} reason {}{bill}",
                self.current.as_deref().unwrap_or("none"),
                self.ipv4.as_deref().unwrap_or("none"),
                self.rx_bytes,
                self.tx_bytes,
                self.reason
            ));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::config::{Context, ParseError, Statement, parse_statement};

    const KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const PUB: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    const HEX: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    fn one(line: &str) -> ExitStatement {
        match parse_statement(line, Context::Startup).unwrap().unwrap() {
            Statement::Exit(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exit_role_parses_with_defaults() {
        let ExitStatement::Role(r) = one(&format!(
            "exit interface eth0 private-key {KEY} pool-v4 10.99.0.0/24 fee 7 policy allow-list"
        )) else {
            panic!()
        };
        assert_eq!(r.public_interface, "eth0");
        assert_eq!(r.pool_v4, (Ipv4Addr::new(10, 99, 0, 0), 24));
        assert_eq!(r.fee, 7);
        assert_eq!(r.admission, Admission::AllowList);
        assert_eq!(r.port, REGISTRATION_PORT);
        assert_eq!(r.tunnel_port, TUNNEL_PORT);
        assert_eq!(r.pool_v6, None);
        assert_eq!(r.gateway_v4(), Ipv4Addr::new(10, 99, 0, 1));
        let ExitStatement::Role(r) = one(&format!(
            "exit interface eth0 private-key {KEY} pool-v4 10.99.0.9/16 pool-v6 fd99::/48 prefix-len 60 free-tier 1000 close-threshold 500"
        )) else {
            panic!()
        };
        assert_eq!(r.pool_v6, Some(("fd99::".parse().unwrap(), 48)));
        assert_eq!(r.v6_prefix_len, 60);
        assert_eq!(r.free_tier, 1000);
        assert_eq!(r.close_threshold, Some(500));
        assert_eq!(r.gateway_v4(), Ipv4Addr::new(10, 99, 0, 1));
    }

    #[test]
    fn user_lines_parse() {
        let ExitStatement::Server(s) = one(&format!(
            "exit-server east key {HEX} address fd77::5 port 5000"
        )) else {
            panic!()
        };
        assert_eq!(s.name, "east");
        assert_eq!(s.address, "fd77::5".parse::<Ipv6Addr>().unwrap());
        assert_eq!((s.port, s.tunnel_port), (5000, TUNNEL_PORT));
        let ExitStatement::Client(c) = one(&format!(
            "exit-client private-key {KEY} address fd77::9 hold 5 hysteresis 50 lan br0 lan eth1"
        )) else {
            panic!()
        };
        assert_eq!(c.hold_s, 5);
        assert_eq!(c.address, "fd77::9".parse::<Ipv6Addr>().unwrap());
        assert_eq!(c.hysteresis_percent, 50);
        assert_eq!(c.lan, vec!["br0".to_owned(), "eth1".to_owned()]);
        assert_eq!(c.tolerance, ::exit::Tolerance::default());
        assert_eq!(c.max_route_price, None);
        let ExitStatement::Client(c) = one(&format!(
            "exit-client private-key {KEY} address fd77::9 bill-tolerance 5000 bill-slack 100 bill-max-price 40"
        )) else {
            panic!()
        };
        assert_eq!(
            c.tolerance,
            ::exit::Tolerance {
                ppm: 5000,
                slack_bytes: 100
            }
        );
        assert_eq!(c.max_route_price, Some(40));
        assert_eq!(
            one(&format!("exit-allow {HEX}")),
            ExitStatement::Allow(hex::decode(HEX).unwrap().try_into().unwrap())
        );
    }

    #[test]
    fn bad_lines_are_typed_errors_with_line_numbers() {
        for (line, want) in [
            (
                "exit interface eth0 pool-v4 10.0.0.0/24".to_owned(),
                "private-key",
            ),
            (format!("exit interface eth0 private-key {KEY}"), "pool-v4"),
            (
                format!("exit private-key {KEY} pool-v4 10.0.0.0/24"),
                "interface",
            ),
            (
                format!("exit interface eth0 private-key {KEY} pool-v4 10.0.0.0/31"),
                "length",
            ),
            (
                format!("exit interface eth0 private-key {KEY} pool-v4 fd00::/64"),
                "length",
            ),
            (
                format!("exit interface eth0 private-key {KEY} pool-v4 10.0.0.0/24 policy maybe"),
                "allow-list",
            ),
            (
                format!("exit interface eth0 private-key {KEY} pool-v4 10.0.0.0/24 fee"),
                "fee",
            ),
            (
                format!("exit interface eth0 private-key {KEY} pool-v4 10.0.0.0/24 fee -1"),
                "whole",
            ),
            (
                format!(
                    "exit interface eth0 private-key {KEY} pool-v4 10.0.0.0/24 port 9 tunnel-port 9"
                ),
                "same",
            ),
            (
                format!(
                    "exit interface eth0 private-key {KEY} pool-v4 10.0.0.0/24 pool-v6 fd99::/64 prefix-len 56"
                ),
                "shorter",
            ),
            (
                format!("exit interface eth0 private-key {KEY} pool-v4 10.0.0.0/24 colour red"),
                "colour",
            ),
            (
                "exit interface eth0 private-key nope pool-v4 10.0.0.0/24".to_owned(),
                "hidden",
            ),
            (format!("exit-server e key {HEX} address 10.0.0.1"), "IPv6"),
            (format!("exit-server e key {HEX}"), "address"),
            (format!("exit-server e key {PUB} address fd77::1"), "hex"),
            (format!("exit-client private-key {KEY}"), "address"),
            ("exit-server".to_owned(), "exit-server"),
            ("exit-client hold 1".to_owned(), "private-key"),
            (
                format!("exit-client private-key {KEY} address fd77::1 hysteresis 101"),
                "range",
            ),
            (format!("exit-allow {HEX} {HEX}"), "unexpected"),
            ("exit-allow zz".to_owned(), "hex"),
        ] {
            let e = parse_statement(&line, Context::Startup).unwrap_err();
            assert!(e.to_string().contains(want), "{line}: {e}");
        }
        let mut c = crate::config::DaemonConfig::default();
        let e = c
            .parse_text(
                "f.conf",
                &format!("# exits\nexit-allow {HEX}\nexit-server e\n"),
            )
            .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(matches!(e.error, ParseError::Missing(_)));
        assert!(
            parse_statement(&format!("exit-allow {HEX}"), Context::Runtime).is_err(),
            "exit lines are start-up only"
        );
    }

    #[test]
    fn settings_accumulate() {
        let mut c = crate::config::DaemonConfig::default();
        c.parse_text(
            "f",
            &format!(
                "exit-allow {HEX}\nexit-allow {HEX}\nexit-server a key {HEX} address fd77::1\nexit-server a key {HEX} address fd77::2\nexit-server b key {HEX} address fd77::3\n"
            ),
        )
        .unwrap();
        assert_eq!(c.exit.allow.len(), 1);
        let names: Vec<_> = c
            .exit
            .servers
            .iter()
            .map(|s| (s.name.as_str(), s.address.to_string()))
            .collect();
        assert_eq!(
            names,
            vec![("a", "fd77::2".to_owned()), ("b", "fd77::3".to_owned())]
        );
    }

    #[test]
    fn view_lines_show_users_exits_and_the_current_one() {
        let exit = ExitView {
            role: "exit".into(),
            users: vec![UserRow {
                user: "ab".into(),
                ipv4: "10.99.0.2".into(),
                mesh_address: "fd77::4".into(),
                rx_bytes: 5,
                tx_bytes: 7,
                last_handshake_s: Some(3),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            exit.lines(),
            vec![
                "add exit-user ab address 10.99.0.2 mesh fd77::4 rx 5 tx 7 handshake 3s upload 0 download 0 metered - billed - paid - owed - bill 0 bills 0 payments 0 service -"
            ]
        );
        let user = ExitView {
            role: "user".into(),
            exits: vec![
                ExitRow {
                    name: "east".into(),
                    mesh_address: "fd77::1".into(),
                    route: Some(RouteToExit {
                        metric: 288,
                        price: 11,
                    }),
                    state: "registered".into(),
                },
                ExitRow {
                    name: "west".into(),
                    mesh_address: "fd77::5".into(),
                    route: None,
                    state: "none".into(),
                },
            ],
            current: Some("east".into()),
            reason: "best".into(),
            ipv4: Some("10.99.0.2/24".into()),
            ..Default::default()
        };
        let lines = user.lines();
        assert_eq!(
            lines,
            vec![
                "add exit east mesh fd77::1 metric 288 price 11 state registered current yes",
                "add exit west mesh fd77::5 metric unreachable price - state none current no",
                "add exit-client east address 10.99.0.2/24 rx 0 tx 0 reason best",
            ]
        );
        // `babelctl show exits` reads them back from `dump` and from `dump json`.
        let json = serde_json::json!({ "exits": user });
        let d = crate::ctl::show::from_json("BABEL 1.0", &json);
        assert_eq!(d.exits.len(), 3);
        assert_eq!(d.exits[2].fields["reason"], "best");
        assert_eq!(d.exits[0].fields["kind"], "exit");
        assert_eq!(d.exits[1].fields["metric"], "unreachable");
        assert_eq!(d.exits[1].fields["current"], "no");
        // With bills: what was billed and paid, and the last check, on the client's line.
        let mut user = user;
        user.bill = Some(UserBillRow {
            exit: "east".into(),
            seq: 7,
            billed: "900".into(),
            paid: "800".into(),
            acked: true,
            paying: false,
            check: "refused: Download: billed 5 bytes, counted 1".into(),
            accepted: 6,
            overcharged: 1,
            payments_sent: 5,
            ..Default::default()
        });
        assert_eq!(
            user.lines()[2],
            "add exit-client east address 10.99.0.2/24 rx 0 tx 0 reason best bill 7 billed 900 paid 800 acked yes paying no accepted 6 refused-overcharge 1 refused-replay 0 refused-forged 0 payments 5 check refused:-Download:-billed-5-bytes,-counted-1"
        );
        let json = serde_json::json!({ "exits": user });
        let d = crate::ctl::show::from_json("BABEL 1.0", &json);
        assert_eq!(d.exits[2].fields["paid"], "800");
        assert_eq!(d.exits[2].fields["refused-overcharge"], "1");
        assert_eq!(d.exits[2].fields["paying"], "no");
    }

    #[test]
    fn mtu_covers_both_layers() {
        // A 1500-byte link: mesh tunnel 1420, exit tunnel payload 1328 (padding to 16 bytes
        // included), MSS 1288; the padded payload plus one tunnel's overhead fits the mesh MTU.
        assert_eq!(inner_mtu(crate::discovery::tunnel_mtu(1500)), 1328);
        assert_eq!(mss_v4(1420), 1288);
        assert_eq!(inner_mtu(1280), 1200);
        for mesh in [1280, 1300, 1419, 1420, 1421, 1500, 9000] {
            let inner = inner_mtu(mesh);
            assert_eq!(inner % 16, 0);
            assert!(inner + TUNNEL_OVERHEAD <= mesh, "{mesh}");
            assert!(
                inner + 16 + TUNNEL_OVERHEAD > mesh,
                "{mesh}: not the largest"
            );
        }
        assert!(tunnel_if_mtu() >= 1500);
    }

    #[test]
    fn exit_rules_masquerade_only_the_pool_and_admit_only_users() {
        let ExitStatement::Role(r) = one(&format!(
            "exit interface up0 private-key {KEY} pool-v4 10.99.0.0/24"
        )) else {
            panic!()
        };
        let s = exit_ruleset(&r, 1288, &["10.99.0.2".parse().unwrap()]);
        assert!(
            s.contains("oifname \"up0\" ip saddr 10.99.0.0/24 masquerade"),
            "{s}"
        );
        assert!(s.contains("ip saddr != @users"), "{s}");
        assert!(s.contains("maxseg size set 1288"), "{s}");
        assert!(
            s.contains("add element inet babeld_rs_exit users { 10.99.0.2 }"),
            "{s}"
        );
        assert!(
            s.starts_with("table inet babeld_rs_exit\ndelete table"),
            "{s}"
        );
        assert_eq!(
            exit_admit("10.99.0.3".parse().unwrap()),
            "add element inet babeld_rs_exit users { 10.99.0.3 }\n"
        );
        let u = user_ruleset(&["lan0".to_owned()], 1300);
        assert!(
            u.contains("iifname \"lan0\" meta nfproto ipv4 oifname != \"exit0\""),
            "{u}"
        );
        assert!(u.contains("oifname \"exit0\" masquerade"), "{u}");
    }
}
