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

use babel_wire::Prefix;
use kernel_fib::KernelRoute;

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
pub enum AdmissionConfig {
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
    pub admission: AdmissionConfig,
    /// Registration UDP port.
    pub port: u16,
    /// Exit tunnel UDP port.
    pub tunnel_port: u16,
    /// Where the address pool and bills are persisted (default: next to the state file).
    pub state_dir: Option<String>,
}

/// An `exit-server` line on a user node: an exit it may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitServerConfig {
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
    pub servers: Vec<ExitServerConfig>,
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
    Server(Box<ExitServerConfig>),
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
        admission: AdmissionConfig::Open,
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
                    "open" => AdmissionConfig::Open,
                    "allow-list" => AdmissionConfig::AllowList,
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
    Ok(ExitStatement::Server(Box::new(ExitServerConfig {
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

    /// The users' IPv6 pool as the `exit` crate cuts it, if the exit has one.
    pub fn ipv6_pool(&self) -> Option<::exit::Ipv6Pool> {
        self.pool_v6.map(|(prefix, prefix_len)| ::exit::Ipv6Pool {
            prefix,
            prefix_len,
            user_prefix_len: self.v6_prefix_len,
        })
    }

    /// The exit's own IPv6 address on its tunnel (the pool's last address, never a user's).
    pub fn gateway_v6(&self) -> Option<Ipv6Addr> {
        self.ipv6_pool().map(|p| p.exit_address())
    }

    /// The IPv6 pool as a prefix (its host bits cleared).
    pub fn pool_v6_prefix(&self) -> Option<Prefix> {
        let (a, len) = self.pool_v6?;
        Prefix::new(IpAddr::V6(a), len).ok()
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
    let _ = writeln!(s, "  set users6 {{ type ipv6_addr; flags interval; }}");
    let _ = writeln!(s, "  counter unregistered {{ }}");
    let _ = writeln!(s, "  counter leak {{ }}");
    let _ = writeln!(
        s,
        "  chain forward {{\n    type filter hook forward priority filter - 5; policy accept;"
    );
    let _ = writeln!(s, "{}", mss_clamp(mss));
    let _ = writeln!(
        s,
        "    iifname \"{t}\" ip saddr != @users counter name \"unregistered\" drop\n    iifname \"{t}\" ip6 saddr != @users6 counter name \"unregistered\" drop"
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
    if let Some(p6) = role.pool_v6_prefix() {
        let _ = writeln!(
            s,
            "    ip6 saddr {p6} counter name \"leak\" drop\n    ip6 daddr {p6} counter name \"leak\" drop"
        );
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{ext}\" ip saddr {pool} masquerade\n  }}"
    );
    let _ = writeln!(s, "}}");
    for u in users {
        s.push_str(&exit_admit(*u, None));
    }
    s
}

/// The `nft` command that admits one more registered address (and its IPv6 prefix).
pub fn exit_admit(v4: Ipv4Addr, v6: Option<(Ipv6Addr, u8)>) -> String {
    let mut s = format!("add element inet {EXIT_TABLE} users {{ {v4} }}\n");
    if let Some(p) = v6.and_then(|(a, l)| Prefix::new(IpAddr::V6(a), l).ok()) {
        let _ = writeln!(s, "add element inet {EXIT_TABLE} users6 {{ {p} }}");
    }
    s
}

/// The TCP MSS clamp both ways through the tunnel: `mss` for IPv4, 20 bytes less for IPv6 (its
/// header is 20 bytes longer), so that neither family's segments outgrow the inner MTU.
fn mss_clamp(mss: u32) -> String {
    let t = TUNNEL_IFNAME;
    let mss6 = mss.saturating_sub(20);
    format!(
        "    iifname \"{t}\" meta nfproto ipv4 tcp flags syn tcp option maxseg size set {mss}\n    oifname \"{t}\" meta nfproto ipv4 tcp flags syn tcp option maxseg size set {mss}\n    iifname \"{t}\" meta nfproto ipv6 tcp flags syn tcp option maxseg size set {mss6}\n    oifname \"{t}\" meta nfproto ipv6 tcp flags syn tcp option maxseg size set {mss6}"
    )
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
    let _ = writeln!(s, "{}", mss_clamp(mss));
    for l in lan {
        let _ = writeln!(
            s,
            "    iifname \"{l}\" meta nfproto ipv4 oifname != \"{t}\" counter name \"leak\" drop"
        );
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{t}\" meta nfproto ipv4 masquerade\n  }}"
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
    /// The exit's IPv6 address in the tunnel, if the tunnel carries IPv6.
    pub exit_ipv6: Option<Ipv6Addr>,
}

/// Route verification learns the exit tunnel ends from the exit view (`dump`'s state, kept by
/// the exit thread), so that it probes them only inside the tunnel.
pub fn sync_stealth(d: &mut crate::state::Daemon) {
    let Some(t) = d
        .exits
        .as_ref()
        .and_then(|v| v.lock().ok().map(|v| v.stealth_tunnels()))
    else {
        return;
    };
    if let Some(v) = d.verification.as_mut() {
        v.set_stealth(t);
    }
}

/// Protocol number of the routes into the exit tunnel (`ip route` shows `proto 44`): not
/// Babel's 42, so the route thread never takes them for its own.
pub const RTPROT_EXIT: u8 = 44;

/// What a user node's exit tunnel interface carries for a grant (`spec/exits.md`, "The data
/// path"): our IPv4 address and the IPv4 default route via the exit; with an IPv6 prefix, its
/// first address, a host route to the exit's address in the tunnel and the IPv6 default route
/// for sources inside the prefix (source-specific, so the mesh's own IPv6 traffic, the tunnel's
/// outer packets included, never enters the tunnel).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPath {
    /// Addresses on the tunnel interface, with their prefix length.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Routes into the tunnel interface.
    pub routes: Vec<KernelRoute>,
}

/// The changes that take a tunnel interface from one [`UserPath`] to another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathChanges {
    /// Addresses to remove (the old exit's: the new exit forwards only what it granted).
    pub del_addresses: Vec<(IpAddr, u8)>,
    /// Addresses to add.
    pub add_addresses: Vec<(IpAddr, u8)>,
    /// Routes to delete.
    pub del_routes: Vec<KernelRoute>,
    /// Routes to add or replace.
    pub add_routes: Vec<KernelRoute>,
}

impl PathChanges {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.del_addresses.is_empty()
            && self.add_addresses.is_empty()
            && self.del_routes.is_empty()
            && self.add_routes.is_empty()
    }
}

/// The user's address in its IPv6 prefix: the prefix's first host.
pub fn user_ipv6(prefix: (Ipv6Addr, u8)) -> Option<Ipv6Addr> {
    let p = Prefix::new(IpAddr::V6(prefix.0), prefix.1).ok()?;
    let IpAddr::V6(a) = p.addr() else { return None };
    (prefix.1 < 128).then(|| Ipv6Addr::from(u128::from(a) | 1))
}

impl UserPath {
    /// The path for `g` on the interface `ifindex`.
    pub fn of(g: &Grant, ifindex: u32) -> UserPath {
        let mut p = UserPath::default();
        p.addresses.push((IpAddr::V4(g.ipv4.0), g.ipv4.1));
        if let Ok(default) = Prefix::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0) {
            let mut r = KernelRoute::unicast(default, Some(IpAddr::V4(g.exit_ipv4)), Some(ifindex));
            r.protocol = RTPROT_EXIT;
            r.onlink = true;
            p.routes.push(r);
        }
        let (Some(prefix), Some(exit6)) = (g.ipv6_prefix, g.exit_ipv6) else {
            return p;
        };
        let (Some(ours), Ok(from)) = (
            user_ipv6(prefix),
            Prefix::new(IpAddr::V6(prefix.0), prefix.1),
        ) else {
            return p;
        };
        p.addresses.push((IpAddr::V6(ours), 128));
        let mut host = KernelRoute::unicast(Prefix::host(IpAddr::V6(exit6)), None, Some(ifindex));
        host.protocol = RTPROT_EXIT;
        host.pref_src = Some(IpAddr::V6(ours));
        p.routes.push(host);
        if let Ok(default) = Prefix::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0) {
            let mut r = KernelRoute::unicast(default, None, Some(ifindex));
            r.src = Some(from);
            r.protocol = RTPROT_EXIT;
            p.routes.push(r);
        }
        p
    }

    /// What to change to go from `self` (installed) to `next`; empty when they are the same, so
    /// the path is written only when the grant changes.
    pub fn changes(&self, next: &UserPath) -> PathChanges {
        let key = |r: &KernelRoute| (r.dst, r.src, r.table, r.metric);
        PathChanges {
            del_addresses: self
                .addresses
                .iter()
                .filter(|a| !next.addresses.contains(a))
                .copied()
                .collect(),
            add_addresses: next
                .addresses
                .iter()
                .filter(|a| !self.addresses.contains(a))
                .copied()
                .collect(),
            del_routes: self
                .routes
                .iter()
                .filter(|r| !next.routes.iter().any(|n| key(n) == key(r)))
                .cloned()
                .collect(),
            add_routes: next
                .routes
                .iter()
                .filter(|r| !self.routes.contains(r))
                .cloned()
                .collect(),
        }
    }
}

/// The allowed IPs of the exit as the user's tunnel peer: everything IPv4, and everything IPv6
/// when the exit routes a prefix to us (the exit checks sources; we take any destination).
pub fn exit_allowed_ips(g: &Grant) -> Vec<Prefix> {
    let mut v = Vec::new();
    v.extend(Prefix::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).ok());
    if g.ipv6_prefix.is_some() && g.exit_ipv6.is_some() {
        v.extend(Prefix::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).ok());
    }
    v
}

/// Where the Remote Hellos for a destination go (`spec/verify.md` §2.3, stealth probing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbePath {
    /// By the mesh's routes (policy-routed through the neighbour under test).
    Mesh,
    /// Inside the user-to-exit tunnel, to the other end's address in it: the nodes on the path
    /// see only tunnel packets, as for data.
    Tunnel(Ipv6Addr),
    /// The other end of an exit tunnel that carries no IPv6 now (not registered yet, or no
    /// prefix): not probed at all, rather than probed in the clear.
    Hold,
}

/// The destinations at the other end of an exit tunnel (the user's exits; the exit's users),
/// by mesh address, with the address to probe inside the tunnel when it carries IPv6. At most
/// [`MAX_STEALTH`] destinations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StealthTunnels {
    ends: std::collections::BTreeMap<Prefix, Option<Ipv6Addr>>,
}

/// Exit tunnel ends the verification knows at most.
pub const MAX_STEALTH: usize = 4096;

impl StealthTunnels {
    /// The tunnel ends: (mesh address, address inside the tunnel if any).
    pub fn new(ends: impl IntoIterator<Item = (Ipv6Addr, Option<Ipv6Addr>)>) -> StealthTunnels {
        StealthTunnels {
            ends: ends
                .into_iter()
                .take(MAX_STEALTH)
                .map(|(m, i)| (Prefix::host(IpAddr::V6(m)), i))
                .collect(),
        }
    }

    /// Where Remote Hellos for `prefix` go.
    pub fn path(&self, prefix: &Prefix) -> ProbePath {
        match self.ends.get(prefix) {
            None => ProbePath::Mesh,
            Some(Some(inner)) => ProbePath::Tunnel(*inner),
            Some(None) => ProbePath::Hold,
        }
    }

    /// Whether the verifier may test this route: any route to an ordinary destination; to a
    /// tunnel end only the selected one (the tunnel's outer packets take it, so that is the
    /// path the probes inside the tunnel measure), and none while the tunnel carries no IPv6.
    pub fn may_test(&self, prefix: &Prefix, selected: bool) -> bool {
        match self.path(prefix) {
            ProbePath::Mesh => true,
            ProbePath::Tunnel(_) => selected,
            ProbePath::Hold => false,
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// The exit's meter of its tunnel peers' inner bytes (`spec/exits.md`, "Billing"): turns the
/// peers' cumulative counters into the bytes carried since the previous reading. A peer that
/// was re-added (counters back to zero) counts from zero again; a peer that is gone is
/// forgotten, so the state is bounded by the peers the tunnel has.
#[derive(Clone, Debug, Default)]
pub struct ExitMeter {
    counted: std::collections::HashMap<tunnel::PublicKey, (u64, u64)>,
}

impl ExitMeter {
    /// Reads every peer's `(key, rx_bytes, tx_bytes)`; returns `(key, from it, to it)` for the
    /// peers that carried something since the last reading.
    pub fn read(
        &mut self,
        peers: impl IntoIterator<Item = (tunnel::PublicKey, u64, u64)>,
    ) -> Vec<(tunnel::PublicKey, u64, u64)> {
        let mut next = std::collections::HashMap::new();
        let mut out = Vec::new();
        for (key, rx, tx) in peers {
            let (rx0, tx0) = self.counted.get(&key).copied().unwrap_or((0, 0));
            let (rx0, tx0) = if rx < rx0 || tx < tx0 {
                (0, 0)
            } else {
                (rx0, tx0)
            };
            let (up, down) = (rx - rx0, tx - tx0);
            next.insert(key, (rx, tx));
            if up > 0 || down > 0 {
                out.push((key, up, down));
            }
        }
        self.counted = next;
        out
    }
}

/// A registered user as the exit's data path knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataPathLease {
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

/// The leases the exit's data path holds (tunnel peers and the nftables address sets), by user.
/// A user refreshes its registration every second; a refresh whose lease is the one admitted
/// needs no tunnel command and no `nft` run, so an exit with many users does not spawn a process
/// per user per second while its registration service waits.
#[derive(Debug, Default)]
pub struct AdmittedLeases(std::collections::HashMap<[u8; 32], DataPathLease>);

impl AdmittedLeases {
    /// Whether `user` holds `lease` in the data path already.
    pub fn holds(&self, user: &[u8; 32], lease: &DataPathLease) -> bool {
        self.0.get(user) == Some(lease)
    }

    /// `user` holds `lease` in the data path now (taken in without an error).
    pub fn record(&mut self, user: [u8; 32], lease: &DataPathLease) {
        self.0.insert(user, lease.clone());
    }

    /// Users admitted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No user admitted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl DataPathLease {
    /// The lease of a user the exit's store knows.
    pub fn of(u: &::exit::UserView) -> DataPathLease {
        DataPathLease {
            tunnel_key: tunnel::PublicKey(u.lease.tunnel_key),
            mesh_address: u.lease.mesh_address,
            tunnel_port: TUNNEL_PORT,
            ipv4: u.ipv4,
            ipv6_prefix: u.ipv6_prefix,
        }
    }

    /// The allowed IPs of the user as the exit's tunnel peer: its IPv4 address and its IPv6
    /// prefix, nothing else (the tunnel drops any other source from it, and routes only these
    /// destinations to it).
    pub fn allowed_ips(&self) -> Vec<Prefix> {
        let mut v = vec![Prefix::host(IpAddr::V4(self.ipv4))];
        if let Some((a, len)) = self.ipv6_prefix {
            v.extend(Prefix::new(IpAddr::V6(a), len).ok());
        }
        v
    }
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
    /// A metric correction in force for it (route verification found it worse than
    /// advertised; `spec/verify.md` §5).
    #[serde(default)]
    pub verified_metric: Option<u16>,
    /// The cost `c` the last check of this route measured (probes inside the exit tunnel).
    #[serde(default)]
    pub measured_cost: Option<u16>,
    /// That check's accuracy `min(m/c, 1)`, per mille.
    #[serde(default)]
    pub accuracy: Option<u16>,
}

impl RouteToExit {
    /// The verified cost exit selection uses instead of the metric (`spec/exits.md`, "Choosing
    /// an exit"): the worst of a correction in force and the last measured cost, when that is
    /// worse than the metric. A measured cost below the metric changes nothing: `c` is a lower
    /// bound of an honest path's cost (`spec/verify.md` §1.2), so it can show a route worse
    /// than advertised, never better.
    pub fn verified_cost(&self) -> Option<u16> {
        [self.verified_metric, self.measured_cost]
            .into_iter()
            .flatten()
            .max()
            .filter(|c| *c > self.metric)
    }
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

/// How long a check of the route to an exit counts for selection.
pub const CHECK_VALID: std::time::Duration = std::time::Duration::from_secs(600);

/// Babel's routes to the exits' mesh addresses (`watched`): per exit, the best feasible finite
/// host route (the one Babel selects; its kernel installation may still be in flight, so the
/// `installed` flag is not waited for), with its price as received (what our next hop charges
/// per byte to the exit), a metric correction in force, and the last check of that same route
/// (same neighbour) within [`CHECK_VALID`].
pub fn routes_to_exits(
    routes: &[babel_core::RouteView],
    checks: &[crate::verification::RouteRow],
    now: babel_core::Instant,
    watched: &[Ipv6Addr],
) -> Vec<(Ipv6Addr, RouteToExit)> {
    let mut best: Vec<(Ipv6Addr, RouteToExit)> = Vec::new();
    for r in routes {
        let IpAddr::V6(a) = r.prefix.addr() else {
            continue;
        };
        if r.src_prefix.is_some()
            || r.prefix.len() != 128
            || !r.feasible
            || r.metric.0 == babel_wire::INFINITY
            || !watched.contains(&a)
        {
            continue;
        }
        let check = checks.iter().find(|c| {
            c.prefix == r.prefix
                && c.ifindex == r.ifindex
                && c.neighbour == r.via
                && now.saturating_since(c.at) < CHECK_VALID
        });
        let route = RouteToExit {
            metric: r.metric.0,
            price: r.received_price,
            verified_metric: r.verified_metric.map(|m| m.0),
            measured_cost: check.and_then(|c| c.cost),
            accuracy: check.and_then(|c| c.accuracy),
        };
        match best.iter_mut().find(|(x, _)| *x == a) {
            Some((_, old)) if old.metric > route.metric => *old = route,
            Some(_) => {}
            None => best.push((a, route)),
        }
    }
    best
}

/// How often a user node registers again with its exit (renews the lease; notices an exit
/// that restarted with another tunnel key).
pub const RENEW: std::time::Duration = std::time::Duration::from_secs(10);

/// A user node's choice of exit and its registration schedule (`spec/exits.md`, "Choosing an
/// exit"): the selector over the configured exits scored on Babel's routes to them (metric or
/// verified cost, price, fee), the fees the exits announced, and when to register next. The
/// binary sends the requests and installs what was granted.
#[derive(Debug)]
pub struct ExitChoice {
    selector: ::exit::Selector,
    fees: std::collections::HashMap<[u8; 32], u32>,
    last_registered: Option<(usize, clock::Instant)>,
}

/// One decision of [`ExitChoice::decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    /// The selector's decision.
    pub selection: ::exit::Selection,
    /// The index of the chosen exit among the configured ones.
    pub chosen: Option<usize>,
    /// Whether to register with it now (new choice, never registered, or renewal due).
    pub register: bool,
}

impl ExitChoice {
    /// The choice for a user node's `exit-client` settings.
    pub fn new(c: &ExitClient) -> ExitChoice {
        ExitChoice {
            selector: ::exit::Selector::new(::exit::SelectionPolicy {
                margin_percent: c.hysteresis_percent,
                hold: std::time::Duration::from_secs(u64::from(c.hold_s)),
                ..Default::default()
            }),
            fees: Default::default(),
            last_registered: None,
        }
    }

    /// The configured exits as the selector sees them, with Babel's routes to them.
    pub fn candidates(
        &self,
        servers: &[ExitServerConfig],
        routes: &ExitRoutes,
    ) -> Vec<::exit::ExitCandidate> {
        servers
            .iter()
            .map(|s| ::exit::ExitCandidate {
                key: s.key,
                mesh_address: s.address,
                fee: self.fees.get(&s.key).copied().unwrap_or(0),
                route: routes.get(s.address).map(|r| ::exit::ExitRouteView {
                    metric: r.metric,
                    price: r.price,
                    verified_cost: r.verified_cost(),
                }),
            })
            .collect()
    }

    /// Decides at `now` and records the decision in `view` (each exit's route and score, the
    /// reason of the current choice and its details).
    pub fn decide(
        &mut self,
        now: clock::Instant,
        servers: &[ExitServerConfig],
        routes: &ExitRoutes,
        view: &mut ExitView,
    ) -> Decided {
        let candidates = self.candidates(servers, routes);
        let sel = self.selector.decide(now, &candidates);
        let chosen = sel
            .exit
            .and_then(|k| servers.iter().position(|s| s.key == k));
        view.exits = servers
            .iter()
            .zip(&candidates)
            .map(|(s, c)| {
                let old = view.exits.iter().find(|e| e.name == s.name);
                ExitRow {
                    name: s.name.clone(),
                    mesh_address: s.address.to_string(),
                    route: routes.get(s.address),
                    state: old.map_or_else(|| "none".to_owned(), |e| e.state.clone()),
                    score: self.selector.score(c),
                }
            })
            .collect();
        // Why the current exit is the current one: the reason of the decision that chose it
        // (later turns that keep it say "best"), or why there is none or a challenger is held
        // off.
        if sel.changed
            || sel.exit.is_none()
            || view.reason.is_empty()
            || matches!(sel.reason, ::exit::SelectionReason::Holding { .. })
        {
            view.reason = sel.reason.name().to_owned();
            view.why = why(&sel.reason, servers);
        }
        let register = match (chosen, self.last_registered) {
            (Some(i), Some((j, at))) => i != j || now.saturating_since(at) >= RENEW,
            (Some(_), None) => true,
            (None, _) => false,
        };
        Decided {
            selection: sel,
            chosen,
            register,
        }
    }

    /// The exit at `index` answered at `now` (registered with `fee`, or refused: `None`).
    pub fn answered(&mut self, index: usize, key: [u8; 32], fee: Option<u32>, now: clock::Instant) {
        // Keyed by configured exits only: bounded by the configuration.
        if let Some(f) = fee {
            self.fees.insert(key, f);
        }
        self.last_registered = Some((index, now));
    }
}

/// The details of a selection reason for `show exits`, without spaces: the exit left and its
/// score, or the challenger held off and for how long.
fn why(r: &::exit::SelectionReason, servers: &[ExitServerConfig]) -> String {
    let name = |k: &[u8; 32]| {
        servers
            .iter()
            .find(|s| s.key == *k)
            .map_or_else(|| hex::encode(k), |s| s.name.clone())
    };
    match r {
        ::exit::SelectionReason::Unreachable { previous } => format!("left={}", name(previous)),
        ::exit::SelectionReason::Better {
            previous,
            previous_score,
        } => format!("left={},its-score={previous_score}", name(previous)),
        ::exit::SelectionReason::Holding { challenger, for_ } => {
            format!(
                "challenger={},better-for={}s",
                name(challenger),
                for_.as_secs()
            )
        }
        _ => "-".to_owned(),
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
    /// Data packets received from it in the tunnel. Beside the user's own count of packets
    /// sent, the difference is what the mesh lost on the way up.
    #[serde(default)]
    pub rx_packets: u64,
    /// Data packets sent to it in the tunnel: download is metered as sent, so packets the mesh
    /// loses on the way down are billed; the user's `rx_packets` shows how many.
    #[serde(default)]
    pub tx_packets: u64,
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
    /// Its score in the selection (lower is better; none: unreachable).
    #[serde(default)]
    pub score: Option<u64>,
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
    /// The reason's details: the exit left and its score, or the challenger held off.
    #[serde(default)]
    pub why: String,
    /// On a user node: our IPv4 address in the tunnel.
    pub ipv4: Option<String>,
    /// On a user node: the IPv6 prefix the exit routes to us, if any.
    pub ipv6_prefix: Option<String>,
    /// On a user node: bytes sent to and received from the current exit in the tunnel.
    pub tx_bytes: u64,
    /// Bytes received from the exit.
    pub rx_bytes: u64,
    /// On a user node: data packets sent to the current exit in the tunnel.
    #[serde(default)]
    pub tx_packets: u64,
    /// Data packets received from the exit: against the exit's `tx_packets` for us, the packets
    /// billed as download that never arrived.
    #[serde(default)]
    pub rx_packets: u64,
    /// On a user node: what the current exit granted (the data path follows it).
    #[serde(skip)]
    pub grant: Option<Grant>,
    /// On a user node: the grant whose data path the kernel holds (addresses and routes on the
    /// tunnel interface, written by the tunnel thread after `grant` changed). Until then the
    /// exit's address in the tunnel has no route through it, and a packet to it could leave by
    /// another route, in the clear.
    #[serde(skip)]
    pub path_written: Option<Grant>,
    /// On a user node: bills and payments with the current exit.
    #[serde(default)]
    pub bill: Option<UserBillRow>,
    /// How many times the tunnel's counters were copied in (a bill is checked against a copy
    /// taken after it arrived).
    #[serde(skip)]
    pub snapshots: u64,
}

impl ExitView {
    /// An exit admitted `user` with `lease` (a registration, or a lease restored at start):
    /// its row, created if new, shows the lease; a registration counts.
    pub fn admit(&mut self, user: &[u8; 32], lease: &DataPathLease) {
        let user = hex::encode(user);
        let i = match self.users.iter().position(|r| r.user == user) {
            Some(i) => i,
            None => {
                self.users.push(UserRow {
                    user,
                    ..Default::default()
                });
                self.users.len() - 1
            }
        };
        if let Some(r) = self.users.get_mut(i) {
            r.tunnel_key = lease.tunnel_key.to_base64();
            r.mesh_address = lease.mesh_address.to_string();
            r.ipv4 = lease.ipv4.to_string();
            r.ipv6_prefix = lease.ipv6_prefix.map(|(a, l)| format!("{a}/{l}"));
            r.registrations += 1;
        }
    }

    /// The exit tunnel ends route verification must probe inside the tunnel (or not at all): on
    /// a user node every configured exit (the current one at its address in the tunnel, once
    /// the kernel routes that address through the tunnel), on an exit every user (at the first
    /// address of its IPv6 prefix; the exit's route to its pool goes into the tunnel from the
    /// start).
    pub fn stealth_tunnels(&self) -> StealthTunnels {
        if self.role == "exit" {
            StealthTunnels::new(self.users.iter().filter_map(|u| {
                let mesh = u.mesh_address.parse().ok()?;
                let inner = u.ipv6_prefix.as_deref().and_then(|p| {
                    let (a, l) = p.split_once('/')?;
                    user_ipv6((a.parse().ok()?, l.parse().ok()?))
                });
                Some((mesh, inner))
            }))
        } else {
            StealthTunnels::new(self.exits.iter().filter_map(|e| {
                let mesh: Ipv6Addr = e.mesh_address.parse().ok()?;
                let inner = self
                    .grant
                    .as_ref()
                    .filter(|g| self.path_written.as_ref() == Some(*g))
                    .filter(|g| g.mesh_address == mesh && g.ipv6_prefix.is_some())
                    .and_then(|g| g.exit_ipv6);
                Some((mesh, inner))
            }))
        }
    }

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
                let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                let r = e.route.unwrap_or_default();
                out.push(format!(
                    "add exit {} mesh {} {route} state {} current {} measured-cost {} accuracy {} verified-cost {} score {}",
                    e.name,
                    e.mesh_address,
                    e.state.replace(' ', ""),
                    if self.current.as_deref() == Some(e.name.as_str()) {
                        "yes"
                    } else {
                        "no"
                    },
                    dash(r.measured_cost.map(u64::from)),
                    dash(r.accuracy.map(u64::from)),
                    dash(e.route.and_then(|r| r.verified_cost()).map(u64::from)),
                    dash(e.score),
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
                "add exit-client {} address {} rx {} tx {} reason {} why {} ipv6 {}{bill}",
                self.current.as_deref().unwrap_or("none"),
                self.ipv4.as_deref().unwrap_or("none"),
                self.rx_bytes,
                self.tx_bytes,
                self.reason,
                or_dash(&self.why),
                self.ipv6_prefix.as_deref().unwrap_or("none"),
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

    /// A refresh with the admitted lease is not admitted again; a new user, a new address or a
    /// new tunnel key is.
    #[test]
    fn a_refresh_with_the_same_lease_is_not_admitted_again() {
        let lease = DataPathLease {
            tunnel_key: tunnel::PublicKey([1; 32]),
            mesh_address: "fd77::5".parse().unwrap(),
            tunnel_port: TUNNEL_PORT,
            ipv4: Ipv4Addr::new(10, 99, 0, 2),
            ipv6_prefix: Some(("fd99:0:0:2::".parse().unwrap(), 64)),
        };
        let mut a = AdmittedLeases::default();
        assert!(!a.holds(&[7; 32], &lease));
        a.record([7; 32], &lease);
        assert!(a.holds(&[7; 32], &lease));
        assert!(!a.holds(&[8; 32], &lease), "another user");
        let moved = DataPathLease {
            ipv4: Ipv4Addr::new(10, 99, 0, 3),
            ..lease.clone()
        };
        assert!(!a.holds(&[7; 32], &moved));
        a.record([7; 32], &moved);
        assert!(a.holds(&[7; 32], &moved));
        assert!(!a.holds(&[7; 32], &lease), "the lease it held before");
        let rekeyed = DataPathLease {
            tunnel_key: tunnel::PublicKey([2; 32]),
            ..moved
        };
        assert!(!a.holds(&[7; 32], &rekeyed));
        assert_eq!(a.len(), 1);
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
        assert_eq!(r.admission, AdmissionConfig::AllowList);
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
                        measured_cost: Some(400),
                        accuracy: Some(720),
                        ..Default::default()
                    }),
                    state: "registered".into(),
                    score: Some(400_000),
                },
                ExitRow {
                    name: "west".into(),
                    mesh_address: "fd77::5".into(),
                    route: None,
                    state: "none".into(),
                    score: None,
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
                "add exit east mesh fd77::1 metric 288 price 11 state registered current yes measured-cost 400 accuracy 720 verified-cost 400 score 400000",
                "add exit west mesh fd77::5 metric unreachable price - state none current no measured-cost - accuracy - verified-cost - score -",
                "add exit-client east address 10.99.0.2/24 rx 0 tx 0 reason best why - ipv6 none",
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
            "add exit-client east address 10.99.0.2/24 rx 0 tx 0 reason best why - ipv6 none bill 7 billed 900 paid 800 acked yes paying no accepted 6 refused-overcharge 1 refused-replay 0 refused-forged 0 payments 5 check refused:-Download:-billed-5-bytes,-counted-1"
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
            exit_admit("10.99.0.3".parse().unwrap(), None),
            "add element inet babeld_rs_exit users { 10.99.0.3 }\n"
        );
        assert!(s.contains("maxseg size set 1268"), "IPv6 MSS: {s}");
        let u = user_ruleset(&["lan0".to_owned()], 1300);
        assert!(
            u.contains("iifname \"lan0\" meta nfproto ipv4 oifname != \"exit0\""),
            "{u}"
        );
        // IPv4 only: the user's IPv6 is routed, never translated.
        assert!(
            u.contains("oifname \"exit0\" meta nfproto ipv4 masquerade"),
            "{u}"
        );
    }

    #[test]
    fn an_ipv6_pool_gives_the_exit_an_address_and_admits_prefixes() {
        let ExitStatement::Role(r) = one(&format!(
            "exit interface up0 private-key {KEY} pool-v4 10.99.0.0/24 pool-v6 2001:db8:99::/48 prefix-len 64"
        )) else {
            panic!()
        };
        assert_eq!(
            r.gateway_v6(),
            Some("2001:db8:99:ffff:ffff:ffff:ffff:ffff".parse().unwrap())
        );
        assert_eq!(
            r.pool_v6_prefix(),
            Some("2001:db8:99::/48".parse().unwrap())
        );
        let s = exit_ruleset(&r, 1288, &[]);
        assert!(s.contains("ip6 saddr != @users6"), "{s}");
        assert!(
            s.contains("ip6 saddr 2001:db8:99::/48 counter name \"leak\" drop"),
            "{s}"
        );
        assert_eq!(
            exit_admit(
                "10.99.0.3".parse().unwrap(),
                Some(("2001:db8:99:1::".parse().unwrap(), 64))
            ),
            "add element inet babeld_rs_exit users { 10.99.0.3 }\nadd element inet babeld_rs_exit users6 { 2001:db8:99:1::/64 }\n"
        );
        // Without a pool: no IPv6 address, no leak rule for it.
        let ExitStatement::Role(r) = one(&format!(
            "exit interface up0 private-key {KEY} pool-v4 10.99.0.0/24"
        )) else {
            panic!()
        };
        assert_eq!(r.gateway_v6(), None);
        assert!(!exit_ruleset(&r, 1288, &[]).contains("ip6 saddr 2001"));
    }

    fn grant(v6: bool) -> Grant {
        Grant {
            tunnel_key: tunnel::PublicKey([5; 32]),
            mesh_address: "fd77::1".parse().unwrap(),
            tunnel_port: TUNNEL_PORT,
            ipv4: ("10.99.0.2".parse().unwrap(), 24),
            exit_ipv4: "10.99.0.1".parse().unwrap(),
            ipv6_prefix: v6.then(|| ("2001:db8:99::".parse().unwrap(), 64)),
            fee: 0,
            exit_ipv6: v6.then(|| "2001:db8:99:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
        }
    }

    #[test]
    fn the_user_path_follows_the_grant_and_changes_only_on_change() {
        let v4 = UserPath::of(&grant(false), 7);
        assert_eq!(v4.addresses, vec![("10.99.0.2".parse().unwrap(), 24)]);
        assert_eq!(v4.routes.len(), 1);
        assert_eq!(v4.routes[0].dst, "0.0.0.0/0".parse().unwrap());
        assert_eq!(v4.routes[0].gateway, Some("10.99.0.1".parse().unwrap()));
        assert_eq!(exit_allowed_ips(&grant(false)).len(), 1);
        let both = UserPath::of(&grant(true), 7);
        assert!(
            both.addresses
                .contains(&("2001:db8:99::1".parse().unwrap(), 128))
        );
        let default6 = both
            .routes
            .iter()
            .find(|r| r.dst == "::/0".parse().unwrap())
            .unwrap();
        // Source-specific: only the granted prefix's traffic enters the tunnel.
        assert_eq!(default6.src, Some("2001:db8:99::/64".parse().unwrap()));
        assert_eq!((default6.oif, default6.protocol), (Some(7), RTPROT_EXIT));
        assert!(both.routes.iter().any(|r| r.dst
            == "2001:db8:99:ffff:ffff:ffff:ffff:ffff/128".parse().unwrap()
            && r.pref_src == Some("2001:db8:99::1".parse().unwrap())));
        assert_eq!(
            exit_allowed_ips(&grant(true)),
            vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]
        );
        // The same grant again: nothing to write (no re-install every turn).
        assert!(both.changes(&UserPath::of(&grant(true), 7)).is_empty());
        // First grant: everything is added, nothing removed.
        let first = UserPath::default().changes(&both);
        assert_eq!(first.add_addresses.len(), 2);
        assert_eq!(first.add_routes.len(), 3);
        assert!(first.del_addresses.is_empty() && first.del_routes.is_empty());
        // Another exit, another address and no IPv6: the old address and IPv6 routes go.
        let mut other = grant(false);
        other.ipv4 = ("10.98.0.2".parse().unwrap(), 24);
        other.exit_ipv4 = "10.98.0.1".parse().unwrap();
        let c = both.changes(&UserPath::of(&other, 7));
        assert_eq!(c.add_addresses, vec![("10.98.0.2".parse().unwrap(), 24)]);
        assert_eq!(c.del_addresses.len(), 2);
        assert_eq!(c.del_routes.len(), 2);
        assert_eq!(c.add_routes.len(), 1, "the IPv4 default route is replaced");
    }

    #[test]
    fn stealth_tunnels_decide_where_probes_go() {
        let inner: Ipv6Addr = "2001:db8:99:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let t = StealthTunnels::new([
            ("fd77::1".parse().unwrap(), Some(inner)),
            ("fd77::5".parse().unwrap(), None),
        ]);
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        assert_eq!(t.path(&p("fd77::1/128")), ProbePath::Tunnel(inner));
        assert_eq!(t.path(&p("fd77::5/128")), ProbePath::Hold);
        assert_eq!(t.path(&p("fd77::3/128")), ProbePath::Mesh);
        assert!(t.may_test(&p("fd77::1/128"), true));
        assert!(!t.may_test(&p("fd77::1/128"), false));
        assert!(!t.may_test(&p("fd77::5/128"), true));
        assert!(t.may_test(&p("fd77::3/128"), false));
        // From the exit view: a user node with a grant from east (fd77::1) and west configured.
        let mut v = ExitView {
            role: "user".to_owned(),
            grant: Some(grant(true)),
            path_written: Some(grant(true)),
            ..Default::default()
        };
        for (name, a) in [("east", "fd77::1"), ("west", "fd77::5")] {
            v.exits.push(ExitRow {
                name: name.to_owned(),
                mesh_address: a.to_owned(),
                route: None,
                state: String::new(),
                score: None,
            });
        }
        assert_eq!(v.stealth_tunnels(), t);
        // Granted, the data path not written yet: the exit's address in the tunnel has no
        // route through it, so nothing is probed.
        v.path_written = None;
        assert_eq!(v.stealth_tunnels().path(&p("fd77::1/128")), ProbePath::Hold);
        // The path of another grant (the previous exit's) does not count either.
        let mut old = grant(true);
        old.mesh_address = "fd77::5".parse().unwrap();
        v.path_written = Some(old);
        assert_eq!(v.stealth_tunnels().path(&p("fd77::1/128")), ProbePath::Hold);
        // Granted no IPv6: nothing is probed (never in the clear).
        v.grant = Some(grant(false));
        v.path_written = Some(grant(false));
        assert_eq!(v.stealth_tunnels().path(&p("fd77::1/128")), ProbePath::Hold);
        // An exit: each user at the first address of its prefix.
        let x = ExitView {
            role: "exit".to_owned(),
            users: vec![UserRow {
                mesh_address: "fd77::4".to_owned(),
                ipv6_prefix: Some("2001:db8:99::/64".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            x.stealth_tunnels().path(&p("fd77::4/128")),
            ProbePath::Tunnel("2001:db8:99::1".parse().unwrap())
        );
    }

    fn engine_route(
        prefix: &str,
        via: &str,
        ifindex: u32,
        metric: u16,
        installed: bool,
    ) -> babel_core::RouteView {
        babel_core::RouteView {
            prefix: prefix.parse().unwrap(),
            src_prefix: None,
            installed,
            feasible: true,
            router_id: babel_wire::RouterId([1; 8]),
            metric: babel_wire::Metric(metric),
            smoothed_metric: babel_wire::Metric(metric),
            refmetric: babel_wire::Metric(metric.saturating_sub(96)),
            verified_metric: None,
            price: 0,
            received_price: 9,
            fee: 0,
            seqno: babel_wire::Seqno(0),
            age: std::time::Duration::ZERO,
            via: via.parse().unwrap(),
            next_hop: via.parse().unwrap(),
            ifindex,
            full_path_rtt: 0,
        }
    }

    /// Stealth probing, sans-IO (`spec/verify.md` §2.3): the user verifies the route to its
    /// exit with Remote Hellos addressed to the exit's address inside the tunnel, without a
    /// firewall mark or a probe route, only on the selected route; the exit answers inside the
    /// tunnel; the check's cost reaches the exit's row for selection. With the tunnel carrying
    /// no IPv6 nothing is sent at all.
    #[test]
    fn the_user_probes_its_exit_only_inside_the_tunnel() {
        use crate::verification::{Verification, VerifySettings, VerifyStatement};
        let exit_key = verify::SigningKey::from_bytes(&[7; 32]);
        let mut set = VerifySettings::default();
        set.apply(VerifyStatement::Enable(true));
        set.apply(VerifyStatement::Key(
            "fd77::1/128".parse().unwrap(),
            *exit_key.verifying_key().as_bytes(),
        ));
        set.apply(VerifyStatement::Destination("fd77::1/128".parse().unwrap()));
        // Only the probes are looked at here: no audit's Justify Request to the gateway
        // (§4.2.6, a link-local datagram outside the tunnel by design).
        set.apply(VerifyStatement::AuditClaims {
            on: false,
            signers_only: false,
        });
        let t0 = babel_core::Instant::from_micros(0);
        let new_user = |set: &VerifySettings| {
            Verification::new(
                set.clone(),
                babel_wire::RouterId([0xa; 8]),
                verify::SigningKey::from_bytes(&[1; 32]),
                1,
                1,
                t0,
            )
        };
        let mut user = new_user(&set);
        let mut exit = Verification::new(
            VerifySettings::default(),
            babel_wire::RouterId([0xe; 8]),
            exit_key,
            1,
            2,
            t0,
        );
        let inner: Ipv6Addr = "2001:db8:99:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let user_inner: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
        user.set_stealth(StealthTunnels::new([(
            "fd77::1".parse().unwrap(),
            Some(inner),
        )]));
        // The selected route through fe80::2 and another one through fe80::3.
        let selected = engine_route("fd77::1/128", "fe80::2", 3, 288, true);
        let other = engine_route("fd77::1/128", "fe80::3", 4, 384, false);
        let routes = vec![selected.clone(), other];
        let ours = vec![babel_core::XrouteView {
            prefix: "fd77::1/128".parse().unwrap(),
            src_prefix: None,
            metric: babel_wire::Metric(0),
        }];
        let mut now = t0;
        let mut sent = 0;
        for _ in 0..5_000 {
            now = user.poll_timeout().min(exit.poll_timeout()).max(now);
            let out = user.on_timer(now, &routes, 800);
            assert!(out.routes.is_empty(), "a probe route for a tunnel end");
            for g in &out.datagrams {
                assert_eq!((g.dst, g.mark), (inner, 0), "a probe outside the tunnel");
                sent += 1;
                // Inside the tunnel the hop limit arrives untouched.
                let o = exit.on_datagram(now, user_inner, verify::HOP_LIMIT, &g.bytes, &ours);
                assert!(o.datagrams.is_empty());
            }
            for g in &exit.on_timer(now, &[], 800).datagrams {
                assert_eq!(
                    (g.dst, g.mark),
                    (user_inner, 0),
                    "an answer outside the tunnel"
                );
                user.on_datagram(now, inner, verify::HOP_LIMIT, &g.bytes, &[]);
            }
            if user.counters().checks >= 3 {
                break;
            }
            now = now + std::time::Duration::from_millis(1);
        }
        let c = user.counters();
        assert!(sent > 0 && c.answers > 0 && c.checks >= 3, "{c:?}");
        let rows = user.route_rows();
        assert!(!rows.is_empty());
        // Only the selected route (the tunnel's outer packets take it) was tested.
        assert!(rows.iter().all(|r| r.neighbour == selected.via), "{rows:?}");
        let cost = rows[0].cost;
        assert!(cost.is_some(), "{rows:?}");
        // The check reaches the exit's row: measured cost and accuracy (a lower bound here,
        // so no verified cost for selection).
        let exits = routes_to_exits(&routes, &rows, now, &["fd77::1".parse().unwrap()]);
        assert_eq!(exits.len(), 1);
        let (_, r) = exits[0];
        assert_eq!((r.metric, r.price, r.measured_cost), (288, 9, cost));
        assert_eq!(r.accuracy, Some(1000));
        assert_eq!(r.verified_cost(), None);
        // Too old a check no longer counts.
        let later = now + CHECK_VALID;
        assert_eq!(
            routes_to_exits(&routes, &rows, later, &["fd77::1".parse().unwrap()])[0]
                .1
                .measured_cost,
            None
        );

        // Registered without IPv6 in the tunnel: the exit is never probed.
        let mut user = new_user(&set);
        user.set_stealth(StealthTunnels::new([("fd77::1".parse().unwrap(), None)]));
        let mut now = t0;
        for _ in 0..200 {
            now = user.poll_timeout().max(now);
            let out = user.on_timer(now, &routes, 800);
            assert!(out.datagrams.is_empty() && out.routes.is_empty());
            now = now + std::time::Duration::from_millis(100);
        }
        assert_eq!(user.counters().probes_sent, 0);
    }

    #[test]
    fn the_verified_cost_counts_only_when_worse_than_the_metric() {
        let r = RouteToExit {
            metric: 300,
            price: 1,
            ..Default::default()
        };
        assert_eq!(r.verified_cost(), None);
        let lower = RouteToExit {
            measured_cost: Some(96),
            ..r
        };
        assert_eq!(lower.verified_cost(), None);
        let worse = RouteToExit {
            measured_cost: Some(500),
            ..r
        };
        assert_eq!(worse.verified_cost(), Some(500));
        let corrected = RouteToExit {
            verified_metric: Some(700),
            measured_cost: Some(500),
            ..r
        };
        assert_eq!(corrected.verified_cost(), Some(700));
    }

    #[test]
    fn the_meter_counts_each_byte_once_and_restarts_with_a_readded_peer() {
        let (a, b) = (tunnel::PublicKey([1; 32]), tunnel::PublicKey([2; 32]));
        let mut m = ExitMeter::default();
        assert_eq!(m.read([(a, 100, 50), (b, 0, 0)]), vec![(a, 100, 50)]);
        assert_eq!(m.read([(a, 100, 50), (b, 7, 0)]), vec![(b, 7, 0)]);
        assert_eq!(m.read([(a, 150, 80), (b, 7, 0)]), vec![(a, 50, 30)]);
        // a re-added: its counters start again from zero, and count from there.
        assert_eq!(m.read([(a, 10, 5)]), vec![(a, 10, 5)]);
        // b is gone and forgotten: back with the same counts, they are new bytes.
        assert_eq!(m.read([(a, 10, 5), (b, 7, 0)]), vec![(b, 7, 0)]);
    }

    #[test]
    fn an_admitted_user_gets_its_own_addresses_only_and_one_row() {
        let lease = DataPathLease {
            tunnel_key: tunnel::PublicKey([3; 32]),
            mesh_address: "fd77::4".parse().unwrap(),
            tunnel_port: TUNNEL_PORT,
            ipv4: "10.99.0.2".parse().unwrap(),
            ipv6_prefix: Some(("2001:db8:99::".parse().unwrap(), 64)),
        };
        assert_eq!(
            lease.allowed_ips(),
            vec![
                "10.99.0.2/32".parse().unwrap(),
                "2001:db8:99::/64".parse().unwrap()
            ]
        );
        let v4_only = DataPathLease {
            ipv6_prefix: None,
            ..lease.clone()
        };
        assert_eq!(v4_only.allowed_ips().len(), 1);
        let mut v = ExitView {
            role: "exit".to_owned(),
            ..Default::default()
        };
        v.admit(&[0xab; 32], &v4_only);
        v.admit(&[0xab; 32], &lease);
        assert_eq!(v.users.len(), 1);
        let r = &v.users[0];
        assert_eq!(r.user, "ab".repeat(32));
        assert_eq!(r.registrations, 2);
        assert_eq!(r.ipv6_prefix.as_deref(), Some("2001:db8:99::/64"));
        assert_eq!(r.mesh_address, "fd77::4");
    }

    /// The user's choice of exit, sans-IO: first choice and registration, renewal only after
    /// [`RENEW`], an immediate switch when the exit's route goes, a verified cost worse than
    /// advertised held off then taken, each shown with its reason and details.
    #[test]
    fn the_exit_choice_registers_renews_switches_and_says_why() {
        let server = |name: &str, key: u8, a: &str| ExitServerConfig {
            name: name.to_owned(),
            key: [key; 32],
            address: a.parse().unwrap(),
            port: REGISTRATION_PORT,
            tunnel_port: TUNNEL_PORT,
        };
        let servers = vec![server("east", 1, "fd77::1"), server("west", 5, "fd77::5")];
        let c = ExitClient {
            private_key: KEY.to_owned(),
            hysteresis_percent: 20,
            hold_s: 5,
            lan: Vec::new(),
            address: "fd77::4".parse().unwrap(),
            tolerance: ::exit::Tolerance::default(),
            max_route_price: None,
        };
        let mut choice = ExitChoice::new(&c);
        let mut view = ExitView {
            role: "user".to_owned(),
            ..Default::default()
        };
        let routes = ExitRoutes::default();
        let route = |metric, measured_cost| RouteToExit {
            metric,
            price: 0,
            measured_cost,
            ..Default::default()
        };
        let (e, w): (Ipv6Addr, Ipv6Addr) = ("fd77::1".parse().unwrap(), "fd77::5".parse().unwrap());
        let t0 = clock::now();
        let at = |s: u64| t0 + std::time::Duration::from_secs(s);
        // Nothing reachable: nothing chosen, nothing to register.
        let d = choice.decide(t0, &servers, &routes, &mut view);
        assert_eq!((d.chosen, d.register), (None, false));
        assert_eq!(view.reason, "none-reachable");
        routes.publish([(e, route(200, None)), (w, route(300, None))]);
        let d = choice.decide(t0, &servers, &routes, &mut view);
        assert_eq!((d.chosen, d.register), (Some(0), true));
        assert_eq!(view.reason, "first");
        choice.answered(0, [1; 32], Some(3), at(0));
        let d = choice.decide(at(1), &servers, &routes, &mut view);
        assert_eq!((d.chosen, d.register), (Some(0), false));
        assert_eq!(view.exits[0].score, Some(200_000 + 3 * 1000));
        assert_eq!(view.exits[1].score, Some(300_000));
        let d = choice.decide(at(10), &servers, &routes, &mut view);
        assert!(d.register, "the renewal");
        choice.answered(0, [1; 32], Some(3), at(10));
        // Verification measures east's path at 600: west better by the margin, held off...
        routes.publish([(e, route(200, Some(600))), (w, route(300, None))]);
        let d = choice.decide(at(11), &servers, &routes, &mut view);
        assert_eq!(d.chosen, Some(0));
        assert_eq!(
            (view.reason.as_str(), view.why.as_str()),
            ("holding", "challenger=west,better-for=0s")
        );
        let d = choice.decide(at(15), &servers, &routes, &mut view);
        assert_eq!(d.chosen, Some(0));
        assert_eq!(view.why, "challenger=west,better-for=4s");
        // ... then taken after the hold, and registered with at once.
        let d = choice.decide(at(16), &servers, &routes, &mut view);
        assert_eq!((d.chosen, d.register), (Some(1), true));
        assert_eq!(view.reason, "better");
        assert_eq!(view.why, format!("left=east,its-score={}", 600_000 + 3000));
        choice.answered(1, [5; 32], Some(0), at(16));
        // West's route goes: back to east at once.
        routes.publish([(e, route(200, Some(600)))]);
        let d = choice.decide(at(17), &servers, &routes, &mut view);
        assert_eq!((d.chosen, d.register), (Some(0), true));
        assert_eq!(
            (view.reason.as_str(), view.why.as_str()),
            ("previous-unreachable", "left=west")
        );
        assert_eq!(view.exits[1].score, None);
        assert!(
            view.lines()
                .iter()
                .any(|l| l.contains("reason previous-unreachable why left=west"))
        );
    }
}
