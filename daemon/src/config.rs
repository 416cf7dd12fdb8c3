//! babeld's configuration grammar (babeld 1.12 `babeld.man`, "CONFIGURATION FILE FORMAT"), with
//! Althea's `fee` and `metric-factor`, babeld 1.13's `kernel-check-interval` and
//! `shutdown-delay-ms`, and our `althea-compatible` switch.
//!
//! The same parser reads configuration files, `-C` statements and the statements a read-write
//! control client sends at runtime; [`Context::Runtime`] accepts only what babeld accepts then.
//! Input is untrusted: every problem is a [`ParseError`] saying which word was wrong and why.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use babel_wire::{Prefix, RouterId};

/// Where a statement comes from, which decides what it may say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// A configuration file or a `-C` statement: everything.
    Startup,
    /// A read-write control client after start-up: interfaces, keys and a few options.
    Runtime,
}

/// A statement that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A word was expected after `after`.
    #[error("missing value after {0:?}")]
    Missing(String),
    /// A word that is not valid where it stands.
    #[error("bad value {value:?} for {what}: {why}")]
    BadValue {
        /// The keyword it belongs to.
        what: String,
        /// The offending word.
        value: String,
        /// Why it is wrong.
        why: &'static str,
    },
    /// A keyword we do not know.
    #[error("unknown keyword {0:?}")]
    Unknown(String),
    /// Something only allowed at start-up was sent at runtime.
    #[error("{0:?} cannot be changed at runtime")]
    NotAtRuntime(String),
    /// An unterminated quoted string.
    #[error("unterminated quoted string")]
    Unterminated,
}

/// A [`ParseError`] in a file, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {error}")]
pub struct ConfigError {
    /// The file (or `-C` for a command-line statement).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub error: ParseError,
}

/// The `type` option as written: an engine [`babel_core::InterfaceKind`] (decides the link cost
/// algorithm and defaults), or `auto` (resolved from what the kernel says of the link) or `mesh`
/// (Babel runs not on the link itself but on one tunnel per discovered neighbour).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConfiguredKind {
    /// Detect wireless interfaces through the kernel.
    #[default]
    Auto,
    /// 2-out-of-3, rxcost 96, split horizon.
    Wired,
    /// ETX, rxcost 256, no split horizon.
    Wireless,
    /// Like wired, with timestamps and an RTT penalty.
    Tunnel,
    /// Ours: a physical link that runs no Babel itself; the daemon discovers its neighbours and
    /// runs Babel over one tunnel per neighbour (crate::discovery, spec/discovery.md).
    Mesh,
}

/// `channel` (babeld 1.12 diversity routing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A channel number 1-254.
    Number(u8),
    /// Interferes with every channel.
    Interfering,
    /// Interferes with none.
    Noninterfering,
}

/// Per-interface options; `None` leaves the default (or the `default` statement's value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceOptions {
    /// `rxcost`.
    pub rxcost: Option<u16>,
    /// `hello-interval`, milliseconds.
    pub hello_interval_ms: Option<u32>,
    /// `update-interval`, milliseconds.
    pub update_interval_ms: Option<u32>,
    /// `type`.
    pub kind: Option<ConfiguredKind>,
    /// `faraway`.
    pub faraway: Option<bool>,
    /// `unicast`: send everything unicast to each neighbour.
    pub unicast: Option<bool>,
    /// `link-quality`; `Some(None)` is `default`/`auto`.
    pub link_quality: Option<Option<bool>>,
    /// `split-horizon`; `Some(None)` is `default`/`auto`.
    pub split_horizon: Option<Option<bool>>,
    /// `channel`.
    pub channel: Option<Channel>,
    /// `enable-timestamps`.
    pub enable_timestamps: Option<bool>,
    /// `rfc6126-compatible`.
    pub rfc6126_compatible: Option<bool>,
    /// `rtt-decay` (1-256).
    pub rtt_decay: Option<u16>,
    /// `rtt-min`, microseconds.
    pub rtt_min_us: Option<u32>,
    /// `rtt-max`, microseconds.
    pub rtt_max_us: Option<u32>,
    /// `max-rtt-penalty`.
    pub max_rtt_penalty: Option<u16>,
    /// `key`: the id of a configured key.
    pub key: Option<String>,
    /// `accept-bad-signatures`.
    pub accept_bad_signatures: Option<bool>,
    /// `v4-via-v6`.
    pub v4_via_v6: Option<bool>,
    /// `probe-mtu` (babeld 1.13.1).
    pub probe_mtu: Option<bool>,
    /// `neighbour ADDR` (our extension, repeatable): a link-local neighbour to send unicast
    /// Hellos to from start-up, for links that carry no multicast.
    pub neighbours: Vec<std::net::Ipv6Addr>,
}

impl InterfaceOptions {
    /// `self` with every option that `over` sets replaced by its value.
    pub fn merged(&self, over: &InterfaceOptions) -> InterfaceOptions {
        macro_rules! pick {
            ($($f:ident),*) => { InterfaceOptions {
                $($f: over.$f.clone().or_else(|| self.$f.clone())),*,
                neighbours: {
                    let mut v = self.neighbours.clone();
                    v.extend(over.neighbours.iter().filter(|a| !self.neighbours.contains(a)));
                    v
                },
            } };
        }
        pick!(
            rxcost,
            hello_interval_ms,
            update_interval_ms,
            kind,
            faraway,
            unicast,
            link_quality,
            split_horizon,
            channel,
            enable_timestamps,
            rfc6126_compatible,
            rtt_decay,
            rtt_min_us,
            rtt_max_us,
            max_rtt_penalty,
            key,
            accept_bad_signatures,
            v4_via_v6,
            probe_mtu
        )
    }
}

/// Which filter list a filter goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterKind {
    /// `in`: routes learned from neighbours.
    In,
    /// `out`: routes announced to neighbours.
    Out,
    /// `redistribute`: kernel routes and local addresses to announce.
    Redistribute,
    /// `install`: routes installed in the kernel.
    Install,
}

/// What a matching filter does. Several may be combined on one line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterAction {
    /// `allow`.
    Allow,
    /// `deny`.
    Deny,
    /// `metric N`: add N to the metric.
    Metric(u16),
    /// `src-prefix P`: redistribute as source-specific.
    SrcPrefix(Prefix),
    /// `table N`: install into this table.
    Table(u32),
    /// `pref-src IP`: preferred source address of installed routes.
    PrefSrc(IpAddr),
}

/// A filter line: every present selector must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    /// `ip P`.
    pub prefix: Option<Prefix>,
    /// `src-ip P`.
    pub src_prefix: Option<Prefix>,
    /// `eq N` (sets both bounds), `le N`, `ge N`.
    pub plen_ge: Option<u8>,
    /// Upper bound on the prefix length.
    pub plen_le: Option<u8>,
    /// `src-eq`, `src-ge`.
    pub src_plen_ge: Option<u8>,
    /// `src-eq`, `src-le`.
    pub src_plen_le: Option<u8>,
    /// `neigh IP`.
    pub neighbour: Option<IpAddr>,
    /// `id EUI64`.
    pub router_id: Option<RouterId>,
    /// `proto N`: the kernel route's protocol.
    pub proto: Option<u8>,
    /// `local`: local addresses rather than routes.
    pub local: bool,
    /// `if NAME`.
    pub interface: Option<String>,
    /// The actions; none means `allow`.
    pub actions: Vec<FilterAction>,
}

/// `type` of a `key` (RFC 8967).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// No authentication.
    None,
    /// HMAC-SHA256.
    HmacSha256,
    /// BLAKE2s-128.
    Blake2s128,
}

/// `key id ID type T value HEX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// Its name.
    pub id: String,
    /// The algorithm.
    pub kind: KeyType,
    /// The secret.
    pub value: Vec<u8>,
}

/// Where a control socket listens (`-g`, `-G`, `local-port`, `local-path`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalEndpoint {
    /// TCP on ::1.
    Port(u16),
    /// A Unix socket path.
    Path(PathBuf),
}

/// Global options (`None`: babeld's default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Globals {
    /// `protocol-group`.
    pub protocol_group: Option<Ipv6Addr>,
    /// `protocol-port`.
    pub protocol_port: Option<u16>,
    /// `kernel-priority`.
    pub kernel_priority: Option<u32>,
    /// `reflect-kernel-metric`.
    pub reflect_kernel_metric: Option<bool>,
    /// `allow-duplicates` priority.
    pub allow_duplicates: Option<u32>,
    /// `random-id`.
    pub random_id: Option<bool>,
    /// `ipv6-subtrees`.
    pub ipv6_subtrees: Option<bool>,
    /// `debug` level.
    pub debug: Option<u8>,
    /// Read-only control socket (`local-port`, `local-path`, `-g`).
    pub local_ro: Option<LocalEndpoint>,
    /// Read-write control socket (`local-port-readwrite`, `local-path-readwrite`, `-G`).
    pub local_rw: Option<LocalEndpoint>,
    /// `export-table`.
    pub export_table: Option<u32>,
    /// `import-table`, repeatable.
    pub import_tables: Vec<u32>,
    /// `link-detect`.
    pub link_detect: Option<bool>,
    /// `diversity` kind (0 = off).
    pub diversity: Option<u8>,
    /// `diversity-factor`.
    pub diversity_factor: Option<u16>,
    /// `smoothing-half-life`, seconds.
    pub smoothing_half_life: Option<u32>,
    /// `daemonise`.
    pub daemonise: Option<bool>,
    /// `skip-kernel-setup`.
    pub skip_kernel_setup: Option<bool>,
    /// `router-id`.
    pub router_id: Option<RouterId>,
    /// `state-file`.
    pub state_file: Option<PathBuf>,
    /// `log-file`.
    pub log_file: Option<PathBuf>,
    /// `pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `first-rule-priority`.
    pub first_rule_priority: Option<u32>,
    /// `kernel-check-interval`, as given (0 = never; rita sends 0).
    pub kernel_check_interval: Option<u32>,
    /// `shutdown-delay-ms`.
    pub shutdown_delay_ms: Option<u32>,
    /// `fee` (Althea): our price per unit of traffic.
    pub fee: Option<u32>,
    /// `metric-factor` (Althea).
    pub metric_factor: Option<u32>,
    /// `althea-compatible`: Althea's wire layout and control dialect.
    pub althea_compatible: Option<bool>,
    /// `max-routes` (ours): routes stored in total; default from the machine's memory
    /// (`daemon::memcaps`).
    pub max_routes: Option<u32>,
    /// `max-routes-per-neighbour` (ours): routes stored from one neighbour.
    pub max_routes_per_neighbour: Option<u32>,
    /// `metrics-port` (ours): Prometheus metrics over HTTP on `[::1]:PORT`.
    pub metrics_port: Option<u16>,
}

impl Globals {
    /// Whether the daemon speaks Althea's dialect (prices in the Update body, `ALTHEA 0.1` on
    /// the control socket, the price-aware selection): `althea-compatible` when given, else
    /// whether the configuration or command line sets `fee` or `metric-factor` (`-F`/`-q`),
    /// which only Althea's fork knows. Althea's firmware starts babeld with `fee 100` in its
    /// configuration, so it comes up in the fork's dialect with no change. Decided once at
    /// start-up (the wire layout cannot be told from a packet); see the README.
    pub fn althea_dialect(&self) -> bool {
        self.althea_compatible
            .unwrap_or(self.fee.is_some() || self.metric_factor.is_some())
    }
}

/// `tunnel NAME private-key KEY [listen-port N] [mtu N]`: a WireGuard-compatible tunnel that is
/// also a Babel interface of kind `tunnel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelOptions {
    /// Our private key, WireGuard base64 (checked when parsed; kept as text so the
    /// configuration can be compared and cloned without copying key material around as a type
    /// that allows it).
    pub private_key: String,
    /// UDP port (`None`: any).
    pub listen_port: Option<u16>,
    /// MTU of the tunnel interface (default 1340, which fits inside a mesh tunnel).
    pub mtu: Option<u32>,
}

/// `tunnel-peer NAME public-key KEY [endpoint ADDR:PORT] [preshared-key KEY]
/// [allowed-ips P[,P...]] [persistent-keepalive S]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelPeer {
    /// The peer's public key.
    pub public_key: tunnel::PublicKey,
    /// Where to reach it.
    pub endpoint: Option<std::net::SocketAddr>,
    /// Optional pre-shared key.
    pub preshared_key: Option<tunnel::PresharedKey>,
    /// Prefixes routed to and accepted from it (default: everything, one peer per tunnel).
    pub allowed_ips: Vec<babel_wire::Prefix>,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
    /// What the tunnel forwards for this peer (`policy allow|block|rate BYTES_PER_SECOND`).
    pub policy: tunnel::ForwardingPolicy,
}

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// A global option (only the field it sets is `Some`/non-empty).
    Global(Box<Globals>),
    /// `interface NAME options`.
    Interface(String, InterfaceOptions),
    /// `default options`.
    Default(InterfaceOptions),
    /// A filter line.
    Filter(FilterKind, Filter),
    /// `key ...`.
    Key(Key),
    /// `tunnel ...`.
    Tunnel(String, TunnelOptions),
    /// `tunnel-peer ...`.
    TunnelPeer(String, TunnelPeer),
    /// `tunnel-policy NAME PEER-KEY allow|block|rate N`: the per-peer switch, at runtime too.
    TunnelPolicy(String, tunnel::PublicKey, tunnel::ForwardingPolicy),
    /// `mesh-*`: discovery on `type mesh` interfaces.
    Mesh(crate::discovery::MeshStatement),
    /// `pay-*`: payments on the mesh tunnels (spec/payments.md).
    Pay(crate::payments::PayStatement),
    /// `verify-*`: route verification (spec/verify.md, "The daemon").
    Verify(crate::verification::VerifyStatement),
    /// `settlement ...`: in a file, the chain settings (spec/settlement.md, "Configuration");
    /// at runtime, an operator's request (`open`, `top-up`, `close`, `finalize`). The words
    /// after `settlement`.
    Settlement(Vec<String>),
    /// `exit` and `exit-*`: the exit role and the exits a user node uses (`crate::exit`).
    Exit(crate::exit::ExitStatement),
}

/// A whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Global options.
    pub globals: Globals,
    /// `default` options.
    pub defaults: InterfaceOptions,
    /// Interfaces in the order they were named, with their options.
    pub interfaces: Vec<(String, InterfaceOptions)>,
    /// Filters, in order, per list.
    pub filters: Vec<(FilterKind, Filter)>,
    /// Keys.
    pub keys: Vec<Key>,
    /// Tunnels with their peers, in the order named.
    pub tunnels: Vec<(String, TunnelOptions, Vec<TunnelPeer>)>,
    /// `mesh-*` settings.
    pub mesh: crate::discovery::MeshSettings,
    /// `pay-*` settings.
    pub pay: crate::payments::PaySettings,
    /// `settlement` statements, each the words after `settlement`, in order.
    pub settlement: Vec<Vec<String>>,
    /// `exit` and `exit-*` settings.
    pub exit: crate::exit::ExitSettings,
    /// `verify-*` settings.
    pub verify: crate::verification::VerifySettings,
}

impl DaemonConfig {
    /// Applies one statement; a repeated interface merges its options.
    pub fn apply(&mut self, s: Statement) {
        match s {
            Statement::Global(g) => merge_globals(&mut self.globals, *g),
            Statement::Interface(name, opts) => {
                match self.interfaces.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, o)) => *o = o.merged(&opts),
                    None => self.interfaces.push((name, opts)),
                }
            }
            Statement::Default(opts) => self.defaults = self.defaults.merged(&opts),
            Statement::Filter(k, f) => self.filters.push((k, f)),
            Statement::Key(k) => {
                self.keys.retain(|old| old.id != k.id);
                self.keys.push(k);
            }
            Statement::Tunnel(name, t) => {
                match self.tunnels.iter_mut().find(|(n, _, _)| *n == name) {
                    Some((_, old, _)) => *old = t,
                    None => self.tunnels.push((name, t, Vec::new())),
                }
            }
            Statement::TunnelPolicy(name, key, policy) => {
                if let Some(p) = self
                    .tunnels
                    .iter_mut()
                    .filter(|(n, _, _)| *n == name)
                    .flat_map(|(_, _, peers)| peers.iter_mut())
                    .find(|p| p.public_key == key)
                {
                    p.policy = policy;
                }
            }
            Statement::Mesh(m) => self.mesh.apply(m),
            Statement::Pay(p) => self.pay.apply(p),
            Statement::Verify(v) => self.verify.apply(v),
            Statement::Settlement(words) => self.settlement.push(words),
            Statement::Exit(e) => self.exit.apply(e),
            Statement::TunnelPeer(name, p) => {
                if let Some((_, _, peers)) = self.tunnels.iter_mut().find(|(n, _, _)| *n == name) {
                    peers.retain(|q| q.public_key != p.public_key);
                    peers.push(p);
                }
            }
        }
    }

    /// Reads a configuration text; `file` names it in errors.
    pub fn parse_text(&mut self, file: &str, text: &str) -> Result<(), ConfigError> {
        for (i, line) in text.lines().enumerate() {
            let s = parse_statement(line, Context::Startup).map_err(|error| ConfigError {
                file: file.to_owned(),
                line: i + 1,
                error,
            })?;
            if let Some(s) = s {
                self.apply(s);
            }
        }
        Ok(())
    }

    /// The options of an interface: defaults overridden by its own.
    pub fn interface_options(&self, name: &str) -> InterfaceOptions {
        let own = self
            .interfaces
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.clone());
        self.defaults.merged(&own.unwrap_or_default())
    }
}

fn merge_globals(g: &mut Globals, n: Globals) {
    macro_rules! take {
        ($($f:ident),*) => { $( if n.$f.is_some() { g.$f = n.$f; } )* };
    }
    take!(
        protocol_group,
        protocol_port,
        kernel_priority,
        reflect_kernel_metric,
        allow_duplicates,
        random_id,
        ipv6_subtrees,
        debug,
        local_ro,
        local_rw,
        export_table,
        link_detect,
        diversity,
        diversity_factor,
        smoothing_half_life,
        daemonise,
        skip_kernel_setup,
        router_id,
        state_file,
        log_file,
        pid_file,
        first_rule_priority,
        kernel_check_interval,
        shutdown_delay_ms,
        fee,
        metric_factor,
        althea_compatible,
        max_routes,
        max_routes_per_neighbour,
        metrics_port
    );
    g.import_tables.extend(n.import_tables);
}

/// Splits a line into words: whitespace separates, `#` starts a comment, double quotes group.
pub fn words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(out),
            Some('"') => {
                chars.next();
                let mut w = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.push(chars.next().ok_or(ParseError::Unterminated)?),
                        Some(c) => w.push(c),
                        None => return Err(ParseError::Unterminated),
                    }
                }
                out.push(w);
            }
            Some(_) => {
                let mut w = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    w.push(c);
                }
                out.push(w);
            }
        }
    }
}

/// A cursor over the words of a statement.
struct Words<'a> {
    words: &'a [String],
    pos: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let w = self.words.get(self.pos)?;
        self.pos += 1;
        Some(w.as_str())
    }

    /// The value after keyword `key`.
    fn value(&mut self, key: &str) -> Result<&'a str, ParseError> {
        self.next()
            .ok_or_else(|| ParseError::Missing(key.to_owned()))
    }
}

fn bad(what: &str, value: &str, why: &'static str) -> ParseError {
    ParseError::BadValue {
        what: what.to_owned(),
        value: value.to_owned(),
        why,
    }
}

fn int<T: TryFrom<u64>>(what: &str, v: &str, min: u64, max: u64) -> Result<T, ParseError> {
    let n: u64 = v.parse().map_err(|_| bad(what, v, "not a whole number"))?;
    if n < min || n > max {
        return Err(bad(what, v, "out of range"));
    }
    T::try_from(n).map_err(|_| bad(what, v, "out of range"))
}

fn boolean(what: &str, v: &str) -> Result<bool, ParseError> {
    match v {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(bad(what, v, "expected true, false, yes or no")),
    }
}

/// A boolean that may also be `default` or `auto` (babeld's tri-state options).
fn tristate(what: &str, v: &str) -> Result<Option<bool>, ParseError> {
    match v {
        "default" | "auto" => Ok(None),
        _ => boolean(what, v).map(Some),
    }
}

/// A decimal number of units, scaled by `scale` (seconds to ms: 1000; ms to µs: 1000).
fn decimal(what: &str, v: &str, scale: u64, max: u64) -> Result<u32, ParseError> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = scale.to_string().len() - 1;
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > digits
    {
        return Err(bad(what, v, "not a decimal number"));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad(what, v, "too large"))?
    };
    let frac_padded = format!("{frac:0<digits$}");
    let frac: u64 = if digits == 0 {
        0
    } else {
        frac_padded
            .parse()
            .map_err(|_| bad(what, v, "bad fraction"))?
    };
    let total = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .ok_or(bad(what, v, "too large"))?;
    if total > max {
        return Err(bad(what, v, "out of range"));
    }
    u32::try_from(total).map_err(|_| bad(what, v, "too large"))
}

fn prefix(what: &str, v: &str) -> Result<Prefix, ParseError> {
    v.parse().map_err(|_| bad(what, v, "not a prefix"))
}

fn address(what: &str, v: &str) -> Result<IpAddr, ParseError> {
    v.parse().map_err(|_| bad(what, v, "not an IP address"))
}

fn router_id(what: &str, v: &str) -> Result<RouterId, ParseError> {
    v.parse()
        .map_err(|_| bad(what, v, "not an EUI-64 router-id"))
}

/// A control socket endpoint: a port number, or a Unix path when it starts with `/`.
pub fn local(what: &str, v: &str) -> Result<LocalEndpoint, ParseError> {
    if v.starts_with('/') {
        Ok(LocalEndpoint::Path(PathBuf::from(v)))
    } else {
        int(what, v, 1, 0xFFFE).map(LocalEndpoint::Port)
    }
}

/// Parses one line. Blank lines and comments give `Ok(None)`.
pub fn parse_statement(line: &str, ctx: Context) -> Result<Option<Statement>, ParseError> {
    let ws = words(line)?;
    let mut w = Words { words: &ws, pos: 0 };
    let Some(first) = w.next() else {
        return Ok(None);
    };
    let s = match first {
        "interface" => {
            let name = w.value(first)?;
            if name.is_empty() || name.len() > 15 || name.contains('/') {
                return Err(bad(first, name, "not an interface name"));
            }
            Statement::Interface(name.to_owned(), interface_options(&mut w)?)
        }
        "default" => Statement::Default(interface_options(&mut w)?),
        "in" | "out" | "redistribute" | "install" => {
            if ctx == Context::Runtime {
                return Err(ParseError::NotAtRuntime(first.to_owned()));
            }
            let kind = match first {
                "in" => FilterKind::In,
                "out" => FilterKind::Out,
                "redistribute" => FilterKind::Redistribute,
                _ => FilterKind::Install,
            };
            Statement::Filter(kind, filter(&mut w)?)
        }
        "key" => Statement::Key(key(&mut w)?),
        "tunnel-policy" => {
            let name = w.value(first)?.to_owned();
            let key_text = w.value("tunnel-policy NAME")?;
            let key = parsed("tunnel-policy", key_text, "not a WireGuard base64 key")?;
            let policy = forwarding_policy(&mut w, "tunnel-policy")?;
            Statement::TunnelPolicy(name, key, policy)
        }
        m if m.starts_with("mesh-") => {
            let s = crate::discovery::MeshStatement::parse(m, w.next())?;
            if ctx == Context::Runtime && !s.runtime() {
                return Err(ParseError::NotAtRuntime(first.to_owned()));
            }
            if let Some(extra) = w.next() {
                return Err(bad(first, extra, "unexpected word after the value"));
            }
            Statement::Mesh(s)
        }
        e if e == "exit" || e.starts_with("exit-") => {
            if ctx == Context::Runtime {
                return Err(ParseError::NotAtRuntime(first.to_owned()));
            }
            let rest = ws.get(1..).unwrap_or_default();
            Statement::Exit(crate::exit::ExitStatement::parse(e, rest)?)
        }
        "settlement" => {
            let mut words = Vec::new();
            while let Some(x) = w.next() {
                words.push(x.to_owned());
            }
            if words.is_empty() || words.len() > 32 {
                return Err(ParseError::Missing("settlement".to_owned()));
            }
            Statement::Settlement(words)
        }
        p if p.starts_with("verify-") => {
            if ctx == Context::Runtime {
                return Err(ParseError::NotAtRuntime(first.to_owned()));
            }
            let mut rest: Vec<&str> = Vec::new();
            while let Some(x) = w.next() {
                rest.push(x);
            }
            let takes = if matches!(p, "verify-key" | "verify-correction") {
                2
            } else {
                1
            };
            if let Some(extra) = rest.get(takes) {
                return Err(bad(first, extra, "unexpected word after the value"));
            }
            Statement::Verify(crate::verification::VerifyStatement::parse(
                p,
                rest.into_iter(),
            )?)
        }
        p if p.starts_with("pay-") => {
            let s = crate::payments::PayStatement::parse(p, w.next())?;
            if ctx == Context::Runtime && !s.runtime() {
                return Err(ParseError::NotAtRuntime(first.to_owned()));
            }
            if let Some(extra) = w.next() {
                return Err(bad(first, extra, "unexpected word after the value"));
            }
            Statement::Pay(s)
        }
        "tunnel" | "tunnel-peer" => {
            if ctx == Context::Runtime {
                return Err(ParseError::NotAtRuntime(first.to_owned()));
            }
            let name = w.value(first)?;
            if name.is_empty() || name.len() > 15 || name.contains('/') {
                return Err(bad(first, name, "not an interface name"));
            }
            if first == "tunnel" {
                Statement::Tunnel(name.to_owned(), tunnel_options(&mut w)?)
            } else {
                Statement::TunnelPeer(name.to_owned(), tunnel_peer(&mut w)?)
            }
        }
        _ => {
            let g = global(first, &mut w)?;
            if ctx == Context::Runtime && !runtime_global(first) {
                return Err(ParseError::NotAtRuntime(first.to_owned()));
            }
            if let Some(extra) = w.next() {
                return Err(bad(first, extra, "unexpected word after the value"));
            }
            Statement::Global(Box::new(g))
        }
    };
    Ok(Some(s))
}

/// Global options a read-write client may change at runtime: babeld 1.12's list, Althea's two,
/// and babeld 1.13's `kernel-check-interval` (which rita sends, with 0).
fn runtime_global(name: &str) -> bool {
    matches!(
        name,
        "link-detect"
            | "log-file"
            | "diversity"
            | "diversity-factor"
            | "smoothing-half-life"
            | "fee"
            | "metric-factor"
            | "kernel-check-interval"
    )
}

fn global(name: &str, w: &mut Words<'_>) -> Result<Globals, ParseError> {
    let mut g = Globals::default();
    let v = w.value(name)?;
    match name {
        "protocol-group" => match address(name, v)? {
            IpAddr::V6(a) if a.segments()[0] & 0xff00 == 0xff00 => g.protocol_group = Some(a),
            _ => return Err(bad(name, v, "not an IPv6 multicast group")),
        },
        "protocol-port" => g.protocol_port = Some(int(name, v, 1, 0xFFFE)?),
        "kernel-priority" => g.kernel_priority = Some(int(name, v, 0, u64::from(u32::MAX))?),
        "reflect-kernel-metric" => g.reflect_kernel_metric = Some(boolean(name, v)?),
        "allow-duplicates" => g.allow_duplicates = Some(int(name, v, 0, u64::from(u32::MAX))?),
        "random-id" => g.random_id = Some(boolean(name, v)?),
        "ipv6-subtrees" => g.ipv6_subtrees = Some(boolean(name, v)?),
        "debug" => g.debug = Some(int(name, v, 0, 3)?),
        "local-port" => g.local_ro = Some(LocalEndpoint::Port(int(name, v, 1, 0xFFFE)?)),
        "local-port-readwrite" => g.local_rw = Some(LocalEndpoint::Port(int(name, v, 1, 0xFFFE)?)),
        "local-path" => g.local_ro = Some(LocalEndpoint::Path(PathBuf::from(v))),
        "local-path-readwrite" => g.local_rw = Some(LocalEndpoint::Path(PathBuf::from(v))),
        "export-table" => g.export_table = Some(int(name, v, 1, 0xFFFE)?),
        "import-table" => g.import_tables.push(int(name, v, 1, 0xFFFE)?),
        "link-detect" => g.link_detect = Some(boolean(name, v)?),
        "diversity" => {
            g.diversity = Some(match v {
                "true" | "yes" => 3,
                "false" | "no" => 0,
                _ => int(name, v, 0, 3)?,
            })
        }
        "diversity-factor" => g.diversity_factor = Some(int(name, v, 1, 256)?),
        "smoothing-half-life" => g.smoothing_half_life = Some(int(name, v, 0, 3600)?),
        "daemonise" => g.daemonise = Some(boolean(name, v)?),
        "skip-kernel-setup" => g.skip_kernel_setup = Some(boolean(name, v)?),
        "router-id" => g.router_id = Some(router_id(name, v)?),
        "state-file" => g.state_file = Some(PathBuf::from(v)),
        "log-file" => g.log_file = Some(PathBuf::from(v)),
        "pid-file" => g.pid_file = Some(PathBuf::from(v)),
        "first-rule-priority" => g.first_rule_priority = Some(int(name, v, 1, 32_000)?),
        "kernel-check-interval" => {
            g.kernel_check_interval = Some(int(name, v, 0, u64::from(u32::MAX))?)
        }
        "shutdown-delay-ms" => g.shutdown_delay_ms = Some(int(name, v, 0, 60_000)?),
        "fee" => g.fee = Some(int(name, v, 0, u64::from(u32::MAX))?),
        "metric-factor" => g.metric_factor = Some(int(name, v, 0, u64::from(u32::MAX))?),
        "althea-compatible" => g.althea_compatible = Some(boolean(name, v)?),
        "max-routes" => g.max_routes = Some(int(name, v, 1, u64::from(u32::MAX))?),
        "max-routes-per-neighbour" => {
            g.max_routes_per_neighbour = Some(int(name, v, 1, u64::from(u32::MAX))?)
        }
        "metrics-port" => g.metrics_port = Some(int(name, v, 1, 0xFFFE)?),
        other => return Err(ParseError::Unknown(other.to_owned())),
    }
    Ok(g)
}

fn interface_options(w: &mut Words<'_>) -> Result<InterfaceOptions, ParseError> {
    let mut o = InterfaceOptions::default();
    while let Some(k) = w.next() {
        let v = w.value(k)?;
        match k {
            "rxcost" => o.rxcost = Some(int(k, v, 1, 0xFFFF)?),
            "hello-interval" => o.hello_interval_ms = Some(decimal(k, v, 1000, 655_350)?.max(1)),
            "update-interval" => o.update_interval_ms = Some(decimal(k, v, 1000, 655_350)?.max(1)),
            "type" => {
                o.kind = Some(match v {
                    "auto" => ConfiguredKind::Auto,
                    "wired" => ConfiguredKind::Wired,
                    "wireless" => ConfiguredKind::Wireless,
                    "tunnel" => ConfiguredKind::Tunnel,
                    "mesh" => ConfiguredKind::Mesh,
                    _ => return Err(bad(k, v, "expected auto, wired, wireless, tunnel or mesh")),
                })
            }
            // Deprecated since babeld 1.7, still accepted.
            "wired" => {
                o.kind = Some(match tristate(k, v)? {
                    Some(true) => ConfiguredKind::Wired,
                    Some(false) => ConfiguredKind::Wireless,
                    None => ConfiguredKind::Auto,
                })
            }
            "faraway" => o.faraway = Some(boolean(k, v)?),
            "unicast" => o.unicast = Some(boolean(k, v)?),
            "neighbour" | "neighbor" => match v.parse::<std::net::Ipv6Addr>() {
                Ok(a) if babel_wire::is_link_local(&std::net::IpAddr::V6(a)) => {
                    if !o.neighbours.contains(&a) {
                        o.neighbours.push(a);
                    }
                }
                _ => return Err(bad(k, v, "not a link-local IPv6 address")),
            },
            "link-quality" => o.link_quality = Some(tristate(k, v)?),
            "split-horizon" => o.split_horizon = Some(tristate(k, v)?),
            "channel" => {
                o.channel = Some(match v {
                    "interfering" => Channel::Interfering,
                    "noninterfering" => Channel::Noninterfering,
                    _ => Channel::Number(int(k, v, 1, 254)?),
                })
            }
            "enable-timestamps" => o.enable_timestamps = Some(boolean(k, v)?),
            "rfc6126-compatible" => o.rfc6126_compatible = Some(boolean(k, v)?),
            "rtt-decay" => o.rtt_decay = Some(int(k, v, 1, 256)?),
            "rtt-min" => o.rtt_min_us = Some(decimal(k, v, 1000, u64::from(u32::MAX))?),
            "rtt-max" => o.rtt_max_us = Some(decimal(k, v, 1000, u64::from(u32::MAX))?),
            "max-rtt-penalty" => o.max_rtt_penalty = Some(int(k, v, 0, 0xFFFF)?),
            "key" => o.key = Some(v.to_owned()),
            "accept-bad-signatures" => o.accept_bad_signatures = Some(boolean(k, v)?),
            "v4-via-v6" => o.v4_via_v6 = Some(boolean(k, v)?),
            "probe-mtu" => o.probe_mtu = Some(boolean(k, v)?),
            other => return Err(ParseError::Unknown(other.to_owned())),
        }
    }
    Ok(o)
}

/// Protocol numbers by name, as in iproute2's `rt_protos`.
fn proto(k: &str, v: &str) -> Result<u8, ParseError> {
    Ok(match v {
        "kernel" => 2,
        "boot" => 3,
        "static" => 4,
        "babel" => 42,
        _ => int(k, v, 0, 255)?,
    })
}

fn filter(w: &mut Words<'_>) -> Result<Filter, ParseError> {
    let mut f = Filter::default();
    while let Some(k) = w.next() {
        match k {
            "local" => f.local = true,
            "allow" => f.actions.push(FilterAction::Allow),
            "deny" => f.actions.push(FilterAction::Deny),
            _ => {
                let v = w.value(k)?;
                match k {
                    "ip" => f.prefix = Some(prefix(k, v)?),
                    "src-ip" => f.src_prefix = Some(prefix(k, v)?),
                    "eq" => {
                        let n = int(k, v, 0, 128)?;
                        (f.plen_ge, f.plen_le) = (Some(n), Some(n));
                    }
                    "le" => f.plen_le = Some(int(k, v, 0, 128)?),
                    "ge" => f.plen_ge = Some(int(k, v, 0, 128)?),
                    "src-eq" => {
                        let n = int(k, v, 0, 128)?;
                        (f.src_plen_ge, f.src_plen_le) = (Some(n), Some(n));
                    }
                    "src-le" => f.src_plen_le = Some(int(k, v, 0, 128)?),
                    "src-ge" => f.src_plen_ge = Some(int(k, v, 0, 128)?),
                    "neigh" => f.neighbour = Some(address(k, v)?),
                    "id" => f.router_id = Some(router_id(k, v)?),
                    "proto" => f.proto = Some(proto(k, v)?),
                    "if" => f.interface = Some(v.to_owned()),
                    "metric" => f.actions.push(FilterAction::Metric(int(k, v, 0, 0xFFFF)?)),
                    "src-prefix" => f.actions.push(FilterAction::SrcPrefix(prefix(k, v)?)),
                    "table" => f.actions.push(FilterAction::Table(int(k, v, 1, 0xFFFE)?)),
                    "pref-src" => f.actions.push(FilterAction::PrefSrc(address(k, v)?)),
                    other => return Err(ParseError::Unknown(other.to_owned())),
                }
            }
        }
    }
    Ok(f)
}

fn parsed<T: std::str::FromStr>(what: &str, v: &str, why: &'static str) -> Result<T, ParseError> {
    v.parse().map_err(|_| bad(what, v, why))
}

/// `allow`, `block`, or `rate BYTES_PER_SECOND` (burst: one second's worth).
fn forwarding_policy(
    w: &mut Words<'_>,
    what: &str,
) -> Result<tunnel::ForwardingPolicy, ParseError> {
    match w.value(what)? {
        "allow" => Ok(tunnel::ForwardingPolicy::Allow),
        "block" => Ok(tunnel::ForwardingPolicy::Block),
        "rate" => {
            let v = w.value("rate")?;
            let bytes_per_sec: u64 = int("rate", v, 1, u64::from(u32::MAX))?;
            Ok(tunnel::ForwardingPolicy::RateLimit {
                bytes_per_sec,
                burst: bytes_per_sec,
            })
        }
        other => Err(bad(what, other, "expected allow, block or rate N")),
    }
}

fn tunnel_options(w: &mut Words<'_>) -> Result<TunnelOptions, ParseError> {
    let (mut private_key, mut listen_port, mut mtu) = (None, None, None);
    while let Some(k) = w.next() {
        let v = w.value(k)?;
        match k {
            "private-key" => {
                // Checked now; the error does not repeat the secret.
                v.parse::<tunnel::PrivateKey>()
                    .map_err(|_| bad(k, "(hidden)", "not a WireGuard base64 key"))?;
                private_key = Some(v.to_owned());
            }
            "listen-port" => listen_port = Some(int(k, v, 1, 0xFFFF)?),
            "mtu" => mtu = Some(int(k, v, 1280, 65_535)?),
            other => return Err(ParseError::Unknown(other.to_owned())),
        }
    }
    let private_key =
        private_key.ok_or_else(|| ParseError::Missing("tunnel private-key".to_owned()))?;
    Ok(TunnelOptions {
        private_key,
        listen_port,
        mtu,
    })
}

fn tunnel_peer(w: &mut Words<'_>) -> Result<TunnelPeer, ParseError> {
    let (mut public_key, mut endpoint, mut preshared_key, mut keepalive) = (None, None, None, None);
    let mut policy = tunnel::ForwardingPolicy::Allow;
    let mut allowed_ips = Vec::new();
    while let Some(k) = w.next() {
        let v = w.value(k)?;
        match k {
            "public-key" => public_key = Some(parsed(k, v, "not a WireGuard base64 key")?),
            "endpoint" => endpoint = Some(parsed(k, v, "not an address:port")?),
            "preshared-key" => preshared_key = Some(parsed(k, v, "not a WireGuard base64 key")?),
            "persistent-keepalive" => keepalive = Some(int(k, v, 1, 0xFFFF)?),
            "policy" => {
                w.pos -= 1;
                policy = forwarding_policy(w, k)?;
            }
            "allowed-ips" => {
                for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    allowed_ips.push(parsed(k, p, "not a prefix")?);
                }
            }
            other => return Err(ParseError::Unknown(other.to_owned())),
        }
    }
    let public_key =
        public_key.ok_or_else(|| ParseError::Missing("tunnel-peer public-key".to_owned()))?;
    if allowed_ips.is_empty() {
        allowed_ips = vec![
            parsed("allowed-ips", "0.0.0.0/0", "")?,
            parsed("allowed-ips", "::/0", "")?,
        ];
    }
    Ok(TunnelPeer {
        public_key,
        endpoint,
        preshared_key,
        allowed_ips,
        persistent_keepalive: keepalive,
        policy,
    })
}

fn key(w: &mut Words<'_>) -> Result<Key, ParseError> {
    let (mut id, mut kind, mut value) = (None, None, None);
    while let Some(k) = w.next() {
        let v = w.value(k)?;
        match k {
            "id" => id = Some(v.to_owned()),
            "type" => {
                kind = Some(match v {
                    "none" => KeyType::None,
                    "hmac-sha256" => KeyType::HmacSha256,
                    "blake2s128" => KeyType::Blake2s128,
                    _ => return Err(bad(k, v, "expected none, hmac-sha256 or blake2s128")),
                })
            }
            "value" => value = Some(hex::decode(v).map_err(|_| bad(k, v, "not hexadecimal"))?),
            other => return Err(ParseError::Unknown(other.to_owned())),
        }
    }
    let id = id.ok_or_else(|| ParseError::Missing("key id".to_owned()))?;
    let kind = kind.ok_or_else(|| ParseError::Missing("key type".to_owned()))?;
    let value = value.unwrap_or_default();
    let max = match kind {
        KeyType::None => 0,
        KeyType::HmacSha256 => 64,
        KeyType::Blake2s128 => 32,
    };
    if value.len() > max || (kind != KeyType::None && value.is_empty()) {
        return Err(bad(
            "value",
            &hex::encode(&value),
            "wrong length for the key type",
        ));
    }
    Ok(Key { id, kind, value })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn one(line: &str) -> Statement {
        parse_statement(line, Context::Startup).unwrap().unwrap()
    }

    #[test]
    fn settlement_statements_accumulate_in_order() {
        let mut c = DaemonConfig::default();
        c.parse_text(
            "t.conf",
            "settlement rpc-url http://192.0.2.1:8545 chain-id 100\nsettlement deposit 5 # wei\n",
        )
        .unwrap();
        assert_eq!(
            c.settlement,
            vec![
                vec!["rpc-url", "http://192.0.2.1:8545", "chain-id", "100"],
                vec!["deposit", "5"],
            ]
        );
        assert!(parse_statement("settlement", Context::Startup).is_err());
        // At runtime it is a request for the payment loop, not a setting.
        assert_eq!(
            parse_statement("settlement close 00ff", Context::Runtime).unwrap(),
            Some(Statement::Settlement(vec!["close".into(), "00ff".into()]))
        );
    }

    #[test]
    fn althea_deployed_config_parses() {
        // What Althea's OpenWrt package generates for babeld.
        let text = "\
random-id true
debug 0
log-file /var/log/babeld.log
ipv6-subtrees true
fee 100
local-port-readwrite 6872
default enable-timestamps true
default max-rtt-penalty 1000
interface fake_interface hello-interval 4
interface fake_interface
redistribute eq 128 allow
out eq 128 allow
redistribute local deny
";
        let mut c = DaemonConfig::default();
        c.parse_text("babeld.conf", text).unwrap();
        assert_eq!(c.globals.fee, Some(100));
        assert_eq!(c.globals.local_rw, Some(LocalEndpoint::Port(6872)));
        assert_eq!(c.globals.random_id, Some(true));
        let o = c.interface_options("fake_interface");
        assert_eq!(o.hello_interval_ms, Some(4000));
        assert_eq!(o.enable_timestamps, Some(true));
        assert_eq!(o.max_rtt_penalty, Some(1000));
        assert_eq!(c.filters.len(), 3);
        assert_eq!(c.filters[2].1.actions, vec![FilterAction::Deny]);
        assert!(c.filters[2].1.local);
        assert_eq!(c.filters[0].1.plen_ge, Some(128));
        // Althea's dialect without `althea-compatible`: `fee` is only Althea's.
        assert!(c.globals.althea_dialect());
    }

    #[test]
    fn althea_dialect_from_fee_or_metric_factor_and_the_switch_overrides() {
        let dialect = |text: &str| {
            let mut c = DaemonConfig::default();
            c.parse_text("t.conf", text).unwrap();
            c.globals.althea_dialect()
        };
        assert!(!dialect("local-port-readwrite 33123\n"));
        assert!(dialect("fee 0\n"));
        assert!(dialect("metric-factor 1900\n"));
        assert!(!dialect("fee 100\nalthea-compatible false\n"));
        assert!(dialect("althea-compatible true\n"));
    }

    #[test]
    fn rita_runtime_interface_line() {
        let s = parse_statement(
            "interface wg3 link-quality yes split-horizon yes max-rtt-penalty 200 rtt-min 50 rtt-max 500 hello-interval 5 update-interval 20 enable-timestamps true",
            Context::Runtime,
        )
        .unwrap()
        .unwrap();
        let Statement::Interface(name, o) = s else {
            panic!()
        };
        assert_eq!(name, "wg3");
        assert_eq!(o.link_quality, Some(Some(true)));
        assert_eq!(o.rtt_min_us, Some(50_000));
        assert_eq!(o.rtt_max_us, Some(500_000));
        assert_eq!(o.update_interval_ms, Some(20_000));
    }

    #[test]
    fn runtime_accepts_only_what_babeld_and_althea_accept() {
        for ok in [
            "fee 7",
            "metric-factor 1900",
            "kernel-check-interval 0",
            "smoothing-half-life 4",
            "link-detect true",
        ] {
            assert!(parse_statement(ok, Context::Runtime).is_ok(), "{ok}");
        }
        for no in [
            "redistribute local deny",
            "random-id true",
            "router-id 02:00:00:ff:fe:00:00:01",
        ] {
            assert!(
                matches!(
                    parse_statement(no, Context::Runtime),
                    Err(ParseError::NotAtRuntime(_))
                ),
                "{no}"
            );
        }
    }

    #[test]
    fn decimals_and_units() {
        let Statement::Interface(_, o) = one("interface eth0 hello-interval 0.5 rtt-min 10.25")
        else {
            panic!()
        };
        assert_eq!(o.hello_interval_ms, Some(500));
        assert_eq!(o.rtt_min_us, Some(10_250));
        for bad_line in [
            "interface eth0 hello-interval 1.2345",
            "interface eth0 hello-interval -1",
            "interface eth0 hello-interval x",
        ] {
            assert!(
                parse_statement(bad_line, Context::Startup).is_err(),
                "{bad_line}"
            );
        }
    }

    #[test]
    fn filters_keys_and_quotes() {
        let Statement::Filter(k, f) = one(
            "install ip 10.0.0.0/8 le 24 if \"wg 0\" neigh fe80::1 metric 256 table 10 pref-src 10.0.0.1",
        ) else {
            panic!()
        };
        assert_eq!(k, FilterKind::Install);
        assert_eq!(f.interface.as_deref(), Some("wg 0"));
        assert_eq!(f.plen_le, Some(24));
        assert_eq!(f.actions.len(), 3);
        let Statement::Key(key) = one("key id k1 type hmac-sha256 value 00112233") else {
            panic!()
        };
        assert_eq!(key.value, vec![0, 0x11, 0x22, 0x33]);
        assert!(parse_statement("key id k1 type blake2s128 value zz", Context::Startup).is_err());
        assert!(parse_statement("key type blake2s128 value 00", Context::Startup).is_err());
    }

    #[test]
    fn comments_blank_and_errors_name_the_line() {
        let mut c = DaemonConfig::default();
        let e = c
            .parse_text("x.conf", "# comment\n\nfee 5 # trailing\nbogus-option 3\n")
            .unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(e.error, ParseError::Unknown("bogus-option".into()));
        assert_eq!(e.to_string(), "x.conf:4: unknown keyword \"bogus-option\"");
        assert_eq!(c.globals.fee, Some(5));
        assert!(parse_statement("fee", Context::Startup).is_err());
        assert!(parse_statement("fee 5 6", Context::Startup).is_err());
        assert!(parse_statement("fee 99999999999", Context::Startup).is_err());
        assert!(parse_statement("interface \"unterminated", Context::Startup).is_err());
        assert!(parse_statement("protocol-group 10.0.0.1", Context::Startup).is_err());
    }

    #[test]
    fn tunnels_peers_and_policies() {
        let key = "ZRd1Y9l54FrKeaPRTsjafvVDOrggAzzV9BOmaHpOWWA=";
        let mut c = DaemonConfig::default();
        c.parse_text(
            "t",
            &format!(
                "tunnel wg0 private-key {key} listen-port 51820 mtu 1400\n\
                 tunnel-peer wg0 public-key {key} endpoint 192.0.2.1:51820 allowed-ips fd00::/8,10.0.0.0/8 policy rate 1000 persistent-keepalive 25\n"
            ),
        )
        .unwrap();
        let (name, t, peers) = &c.tunnels[0];
        assert_eq!(
            (name.as_str(), t.listen_port, t.mtu),
            ("wg0", Some(51820), Some(1400))
        );
        assert_eq!(peers[0].allowed_ips.len(), 2);
        assert_eq!(peers[0].persistent_keepalive, Some(25));
        assert_eq!(
            peers[0].policy,
            tunnel::ForwardingPolicy::RateLimit {
                bytes_per_sec: 1000,
                burst: 1000
            }
        );
        // Without allowed-ips a peer carries everything (one neighbour per tunnel).
        let Statement::TunnelPeer(_, p) = one(&format!("tunnel-peer wg0 public-key {key}")) else {
            panic!()
        };
        assert_eq!(p.allowed_ips.len(), 2);
        assert_eq!(p.policy, tunnel::ForwardingPolicy::Allow);
        assert!(matches!(
            parse_statement(&format!("tunnel-policy wg0 {key} block"), Context::Runtime),
            Ok(Some(Statement::TunnelPolicy(
                _,
                _,
                tunnel::ForwardingPolicy::Block
            )))
        ));
        // Keys are checked, and a bad private key is not echoed back.
        let e = parse_statement("tunnel wg0 private-key notakey", Context::Startup).unwrap_err();
        assert!(!e.to_string().contains("notakey"), "{e}");
        assert!(parse_statement("tunnel wg0 listen-port 1", Context::Startup).is_err());
        assert!(
            parse_statement(&format!("tunnel wg0 private-key {key}"), Context::Runtime).is_err()
        );
        assert!(
            parse_statement(&format!("tunnel-policy wg0 {key} maybe"), Context::Runtime).is_err()
        );
    }

    #[test]
    fn repeated_interface_merges() {
        let mut c = DaemonConfig::default();
        c.parse_text(
            "c",
            "default rxcost 300\ninterface a type wired\ninterface a rxcost 50\n",
        )
        .unwrap();
        let o = c.interface_options("a");
        assert_eq!(o.kind, Some(ConfiguredKind::Wired));
        assert_eq!(o.rxcost, Some(50));
        assert_eq!(c.interface_options("b").rxcost, Some(300));
    }

    #[test]
    fn configured_neighbours_accumulate_and_must_be_link_local() {
        let mut c = DaemonConfig::default();
        c.parse_text(
            "c",
            "interface wg0 neighbour fe80::2 neighbor fe80::3\ninterface wg0 neighbour fe80::2 neighbour fe80::4 unicast false\n",
        )
        .unwrap();
        let o = c.interface_options("wg0");
        let want: Vec<std::net::Ipv6Addr> = ["fe80::2", "fe80::3", "fe80::4"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(o.neighbours, want);
        assert_eq!(o.unicast, Some(false));
        for bad in ["2001:db8::1", "10.0.0.1", "fe80::1%wg0", "nope"] {
            let line = format!("interface wg0 neighbour {bad}");
            assert!(parse_statement(&line, Context::Startup).is_err(), "{bad}");
        }
    }
}
