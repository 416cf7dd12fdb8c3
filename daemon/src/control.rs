//! babeld's local control protocol, and Althea's dialect of it (its banner, `dump` fields and
//! commands are described in the README, "Althea's dialect").
//!
//! [`Session`] is the protocol of one client, sans-IO: bytes in, bytes out. It owns line
//! framing (several commands per read, a line length limit), the banner, read-only versus
//! read-write rights and the `ok`/`no`/`bad` replies; what a command *does* is asked of a
//! [`Handler`], which the daemon implements over its engine. The `*_line` functions print the
//! `add`/`change`/`flush` lines of `dump` and `monitor`, byte-compatible with babeld 1.12 and,
//! in the Althea dialect, with what rita's `babel_monitor` parses.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use babel_core::ChangeKind;
use babel_wire::{Prefix, RouterId};

use crate::config::{Context, Statement, parse_statement};

/// Longest command line accepted; babeld reads into a 1024-byte buffer.
pub const MAX_LINE: usize = 1024;

/// Which banner and which route fields a socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// babeld: `BABEL 1.0`.
    Babel,
    /// Althea's fork: `ALTHEA 0.1`, `local fee` and `metric factor` first, prices on routes.
    Althea,
}

/// The first word of a dump or monitor line for a change.
fn word(c: ChangeKind) -> &'static str {
    match c {
        ChangeKind::Add => "add",
        ChangeKind::Change => "change",
        ChangeKind::Flush => "flush",
    }
}

/// What a session needs from the daemon.
pub trait Handler {
    /// The lines of a full dump, without the final `ok` (the dialect's first lines included).
    fn dump(&mut self) -> Vec<String>;
    /// A JSON document describing the same state as `dump`.
    fn dump_json(&mut self) -> String;
    /// Applies a runtime configuration statement; `Err` answers `bad`.
    fn statement(&mut self, s: Statement) -> Result<(), String>;
    /// `flush interface NAME`; `Err(message)` answers `no message`.
    fn flush_interface(&mut self, name: &str) -> Result<(), String>;
    /// `dump counters` (ours, read-only): one `counter NAME VALUE` line per engine counter,
    /// including the RFC 8967 authentication counters.
    fn counters(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// `metrics` (ours, read-only): Prometheus/OpenMetrics text, ending `# EOF`.
    fn metrics(&mut self) -> String {
        String::new()
    }
}

/// Banner values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Banner {
    /// Dialect of the socket.
    pub dialect: Dialect,
    /// Version string (`babeld-rs-0.1.0`).
    pub version: String,
    /// Host name.
    pub host: String,
    /// Our router-id.
    pub my_id: RouterId,
}

impl Banner {
    /// The greeting, ending with `ok`.
    pub fn text(&self) -> String {
        let first = match self.dialect {
            Dialect::Babel => "BABEL 1.0",
            Dialect::Althea => "ALTHEA 0.1",
        };
        format!(
            "{first}\nversion {}\nhost {}\nmy-id {}\nok\n",
            self.version, self.host, self.my_id
        )
    }
}

/// One client's protocol state.
#[derive(Debug)]
pub struct Session {
    read_write: bool,
    pending: Vec<u8>,
    /// Set while the rest of an over-long line is being discarded.
    discarding: bool,
    monitoring: bool,
    closed: bool,
}

/// Counts the commands of a session, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Commands answered `bad`.
    pub bad: usize,
    /// A command arrived while more than the allowed output was waiting: the session is
    /// closed and the rest of the input ignored (see [`Session::input_bounded`]).
    pub overflow: bool,
}

impl Session {
    /// A new session; `read_write` for the `-G` socket.
    pub fn new(read_write: bool) -> Self {
        Session {
            read_write,
            pending: Vec::new(),
            discarding: false,
            monitoring: false,
            closed: false,
        }
    }

    /// True after `quit`: the daemon closes the connection once `out` is written.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes of the line being read (at most [`MAX_LINE`]).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// True while the client wants `monitor` lines.
    pub fn is_monitoring(&self) -> bool {
        self.monitoring
    }

    /// Feeds received bytes; appends replies to `out`. Complete lines are executed in order.
    pub fn input(&mut self, bytes: &[u8], h: &mut dyn Handler, out: &mut Vec<u8>) -> Outcome {
        self.input_bounded(bytes, h, out, usize::MAX)
    }

    /// Like [`Session::input`], for a client that may have at most `room` bytes of replies
    /// waiting: a command (other than `quit` or an empty line) that arrives when `out` already
    /// holds more than `room` closes the session with [`Outcome::overflow`]. One reply may be
    /// larger than `room` (a full `dump`); a client that pipelines a second one without reading
    /// the first is a slow reader, and is dropped rather than buffered without end.
    pub fn input_bounded(
        &mut self,
        bytes: &[u8],
        h: &mut dyn Handler,
        out: &mut Vec<u8>,
        room: usize,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        for &b in bytes {
            if self.closed {
                break;
            }
            if b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                    out.extend_from_slice(b"bad\n");
                    outcome.bad += 1;
                } else {
                    let line = std::mem::take(&mut self.pending);
                    if out.len() > room && !is_quiet(&line) {
                        self.closed = true;
                        outcome.overflow = true;
                        break;
                    }
                    if !self.command(&line, h, out) {
                        outcome.bad += 1;
                    }
                }
            } else if !self.discarding {
                if self.pending.len() >= MAX_LINE {
                    self.pending.clear();
                    self.discarding = true;
                } else {
                    self.pending.push(b);
                }
            }
        }
        outcome
    }

    /// Executes one line; false if it was answered `bad`.
    fn command(&mut self, line: &[u8], h: &mut dyn Handler, out: &mut Vec<u8>) -> bool {
        let Ok(text) = std::str::from_utf8(line) else {
            out.extend_from_slice(b"bad\n");
            return false;
        };
        let text = text.trim_end_matches('\r').trim();
        match text {
            "" => return true,
            "quit" => {
                self.closed = true;
                return true;
            }
            "dump" => {
                push_lines(out, h.dump());
            }
            "dump counters" => push_lines(out, h.counters()),
            "metrics" => out.extend_from_slice(h.metrics().as_bytes()),
            "dump json" => {
                out.extend_from_slice(h.dump_json().as_bytes());
                out.push(b'\n');
            }
            "monitor" => {
                push_lines(out, h.dump());
                self.monitoring = true;
            }
            "unmonitor" => self.monitoring = false,
            _ if !self.read_write => {
                out.extend_from_slice(b"bad\n");
                return false;
            }
            _ => {
                if let Some(name) = text.strip_prefix("flush interface ") {
                    match h.flush_interface(name.trim()) {
                        Ok(()) => out.extend_from_slice(b"ok\n"),
                        Err(m) => {
                            out.extend_from_slice(format!("no {m}\n").as_bytes());
                        }
                    }
                    return true;
                }
                if text == "reopen-logfile" {
                    out.extend_from_slice(b"ok\n");
                    return true;
                }
                let applied = match parse_statement(text, Context::Runtime) {
                    Ok(Some(s)) => h.statement(s).is_ok(),
                    Ok(None) => true,
                    Err(_) => false,
                };
                if !applied {
                    out.extend_from_slice(b"bad\n");
                    return false;
                }
            }
        }
        out.extend_from_slice(b"ok\n");
        true
    }
}

/// An empty line or `quit`: commands that add nothing to the output.
fn is_quiet(line: &[u8]) -> bool {
    matches!(line.trim_ascii(), b"" | b"quit")
}

fn push_lines(out: &mut Vec<u8>, lines: Vec<String>) {
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
}

/// `local fee N` and `metric factor N`, which Althea's dialect prints first.
pub fn althea_header(fee: u32, metric_factor: u32) -> [String; 2] {
    [
        format!("local fee {fee}"),
        format!("metric factor {metric_factor}"),
    ]
}

/// An interface line: `add interface eth0 up true ipv6 fe80::1 ipv4 10.0.0.1`.
pub fn interface_line(
    c: ChangeKind,
    name: &str,
    up: bool,
    ipv6: Option<Ipv6Addr>,
    ipv4: Option<Ipv4Addr>,
) -> String {
    let mut s = format!("{} interface {name} up {up}", word(c));
    if up {
        if let Some(a) = ipv6 {
            let _ = write!(s, " ipv6 {a}");
        }
        if let Some(a) = ipv4 {
            let _ = write!(s, " ipv4 {a}");
        }
    }
    s
}

/// A neighbour's fields for [`neighbour_line`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighbourLine<'a> {
    /// Stable identifier (babeld prints a pointer; we print a hash of interface and address).
    pub id: u64,
    /// Its address.
    pub address: IpAddr,
    /// Interface name.
    pub ifname: &'a str,
    /// Multicast Hello history.
    pub reach: u16,
    /// Unicast Hello history.
    pub ureach: u16,
    /// Our receive cost.
    pub rxcost: u16,
    /// Its advertised receive cost.
    pub txcost: u16,
    /// RTT in microseconds and its cost, when timestamps are on.
    pub rtt: Option<(u32, u16)>,
    /// Link cost.
    pub cost: u16,
}

/// `add neighbour ID address A if IF reach %04x ureach %04x rxcost N txcost N [rtt MS rttcost N] cost N`.
pub fn neighbour_line(c: ChangeKind, n: &NeighbourLine<'_>) -> String {
    let mut s = format!(
        "{} neighbour {:x} address {} if {} reach {:04x} ureach {:04x} rxcost {} txcost {}",
        word(c),
        n.id,
        n.address,
        n.ifname,
        n.reach,
        n.ureach,
        n.rxcost,
        n.txcost
    );
    if let Some((us, cost)) = n.rtt {
        let _ = write!(s, " rtt {} rttcost {cost}", millis(us));
    }
    let _ = write!(s, " cost {}", n.cost);
    s
}

/// Microseconds as milliseconds with three decimals (`22.805`), as babeld prints RTTs.
pub fn millis(us: u32) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// The `from` of a line: the source prefix, or the family's default route.
fn from(prefix: &Prefix, src: Option<&Prefix>) -> String {
    match src {
        Some(s) => s.to_string(),
        None if prefix.is_ipv4() => "0.0.0.0/0".to_owned(),
        None => "::/0".to_owned(),
    }
}

/// `add xroute P-S prefix P from S metric M`.
pub fn xroute_line(c: ChangeKind, prefix: &Prefix, src: Option<&Prefix>, metric: u16) -> String {
    let f = from(prefix, src);
    format!(
        "{} xroute {prefix}-{f} prefix {prefix} from {f} metric {metric}",
        word(c)
    )
}

/// A route's fields for [`route_line`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteLine<'a> {
    /// Stable identifier.
    pub id: u64,
    /// Destination.
    pub prefix: Prefix,
    /// Source prefix.
    pub src_prefix: Option<Prefix>,
    /// Installed in the kernel.
    pub installed: bool,
    /// Originating router.
    pub router_id: RouterId,
    /// Our metric.
    pub metric: u16,
    /// The neighbour's advertised metric.
    pub refmetric: u16,
    /// The price shown: what the route costs before our fee
    /// ([`babel_core::RouteView::received_price`], computed by the engine only).
    pub received_price: u32,
    /// Our current fee.
    pub fee: u32,
    /// Full-path RTT in microseconds.
    pub full_path_rtt: u32,
    /// Neighbour address.
    pub via: IpAddr,
    /// Interface name.
    pub ifname: &'a str,
}

/// babeld: `add route ID prefix P from S installed yes id X metric M refmetric R via A if I`.
/// Althea: `... metric M price P fee F refmetric R full-path-rtt T via A if I`, where the price
/// printed is the received price (the stored price minus our fee, as Althea's fork prints it).
pub fn route_line(c: ChangeKind, d: Dialect, r: &RouteLine<'_>) -> String {
    let mut s = String::with_capacity(160);
    write_route_line(&mut s, c, d, r);
    s
}

/// [`route_line`] appended to `s`, without `format!`: a `monitor` client receives one or two
/// such lines per route learned, so they are written digit by digit (same bytes).
pub fn write_route_line(s: &mut String, c: ChangeKind, d: Dialect, r: &RouteLine<'_>) {
    s.push_str(word(c));
    write_route_body(s, d, r);
}

/// The first word of a route line followed by `body`, a line's rest as
/// [`write_route_body`] wrote it: the `add` and `change` lines of a route differ only there.
pub fn write_route_word(s: &mut String, c: ChangeKind, body: &str) {
    s.push_str(word(c));
    s.push_str(body);
}

/// A route line after its first word (` route ID prefix ... if IF`, no newline).
pub fn write_route_body(s: &mut String, d: Dialect, r: &RouteLine<'_>) {
    write_route_head(s, d, r);
    write_route_tail(s, r.via, r.ifname);
}

/// The end of a route line, ` via A if I`: the same for every route through one neighbour,
/// so a monitor writes it once and copies it.
pub fn write_route_tail(s: &mut String, via: IpAddr, ifname: &str) {
    s.push_str(" via ");
    text::ip(s, via);
    s.push_str(" if ");
    s.push_str(ifname);
}

/// A route line after its first word and before [`write_route_tail`], built on the stack and
/// appended in one piece (a monitor writes one per route learned).
pub fn write_route_head(s: &mut String, d: Dialect, r: &RouteLine<'_>) {
    text::route_head(&mut text::HeadBuf::default(), s, d, r);
}

/// [`write_route_head`] built in `buf`, a buffer kept from line to line (a monitor writes one
/// head per route learned: a fresh buffer would be zeroed for each).
pub fn write_route_head_in(buf: &mut text::HeadBuf, s: &mut String, d: Dialect, r: &RouteLine<'_>) {
    text::route_head(buf, s, d, r);
}

/// Writers of the numbers and addresses of a line, byte-identical to their `Display` forms.
/// Each field is built in a small stack buffer and appended to the line in one piece.
pub mod text {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use babel_wire::{Prefix, RouterId};

    const HEX: &[u8; 16] = b"0123456789abcdef";

    /// The two decimal digits of 0 to 99, in order (`00`, `01`, ... `99`): numbers are written
    /// two digits per division.
    #[allow(clippy::indexing_slicing)] // i < 100: both indexes are below 200
    const PAIRS: [u8; 200] = {
        let mut t = [0u8; 200];
        let mut i = 0;
        while i < 100 {
            t[2 * i] = b'0' + (i / 10) as u8;
            t[2 * i + 1] = b'0' + (i % 10) as u8;
            i += 1;
        }
        t
    };

    /// The hex digit of the low 4 bits of `v`.
    fn hex_digit(v: u32) -> u8 {
        HEX.get((v & 0xf) as usize).copied().unwrap_or(b'0')
    }

    /// ASCII text built on the stack: a field (the longest is an IPv6 prefix, `43` bytes) or,
    /// `N` bytes long, the head of a route line.
    struct Field<const N: usize = 48> {
        bytes: [u8; N],
        len: usize,
    }

    impl<const N: usize> Field<N> {
        fn new() -> Self {
            Field {
                bytes: [0; N],
                len: 0,
            }
        }

        /// ASCII `t` as it is.
        fn text(&mut self, t: &[u8]) {
            let end = self.len + t.len();
            if let Some(dst) = self.bytes.get_mut(self.len..end) {
                dst.copy_from_slice(t);
                self.len = end;
            }
        }

        fn prefix(&mut self, p: &Prefix) {
            self.ip(p.addr());
            self.byte(b'/');
            self.decimal(u64::from(p.len()));
        }

        /// Eight `xx:` octets built in one piece.
        fn router_id(&mut self, id: &RouterId) {
            let mut t = [b':'; 23];
            for (d, o) in t.chunks_mut(3).zip(id.0) {
                if let [hi, lo, ..] = d {
                    *hi = hex_digit(u32::from(o >> 4));
                    *lo = hex_digit(u32::from(o));
                }
            }
            self.text(&t);
        }

        fn byte(&mut self, b: u8) {
            if let Some(x) = self.bytes.get_mut(self.len) {
                *x = b;
                self.len += 1;
            }
        }

        /// `{x:x}` of one group of an IPv6 address.
        fn hex16(&mut self, x: u16) {
            let x = u32::from(x);
            let t = [
                hex_digit(x >> 12),
                hex_digit(x >> 8),
                hex_digit(x >> 4),
                hex_digit(x),
            ];
            let skip = match x {
                0..=0xf => 3,
                0x10..=0xff => 2,
                0x100..=0xfff => 1,
                _ => 0,
            };
            self.text(t.get(skip..).unwrap_or_default());
        }

        /// `{v:x}`.
        fn hex(&mut self, v: u64) {
            let digits = (64 - (v | 1).leading_zeros()).div_ceil(4) as usize;
            let end = self.len + digits;
            if let Some(dst) = self.bytes.get_mut(self.len..end) {
                let mut v = v;
                for d in dst.iter_mut().rev() {
                    *d = HEX.get((v & 0xf) as usize).copied().unwrap_or(b'0');
                    v >>= 4;
                }
                self.len = end;
            }
        }

        /// `{v}`, two digits per division.
        fn decimal(&mut self, v: u64) {
            let pair = |r: u64| PAIRS.get(2 * r as usize..2 * r as usize + 2);
            let mut buf = [0u8; 20];
            let mut i = buf.len();
            let mut v = v;
            while v >= 100 {
                i -= 2;
                if let (Some(d), Some(p)) = (buf.get_mut(i..i + 2), pair(v % 100)) {
                    d.copy_from_slice(p);
                }
                v /= 100;
            }
            if v >= 10 {
                i -= 2;
                if let (Some(d), Some(p)) = (buf.get_mut(i..i + 2), pair(v)) {
                    d.copy_from_slice(p);
                }
            } else {
                i -= 1;
                if let Some(d) = buf.get_mut(i) {
                    *d = b'0' + v as u8;
                }
            }
            self.text(buf.get(i..).unwrap_or_default());
        }

        fn ipv4(&mut self, a: Ipv4Addr) {
            for (k, o) in a.octets().into_iter().enumerate() {
                if k > 0 {
                    self.byte(b'.');
                }
                self.decimal(u64::from(o));
            }
        }

        fn ipv6(&mut self, a: Ipv6Addr) {
            if let Some(v4) = a.to_ipv4_mapped() {
                for &b in b"::ffff:" {
                    self.byte(b);
                }
                return self.ipv4(v4);
            }
            let g = a.segments();
            // The first longest run of zero groups.
            let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
            for (i, &x) in g.iter().enumerate() {
                if x == 0 {
                    if run_len == 0 {
                        run = i;
                    }
                    run_len += 1;
                    if run_len > best_len {
                        (best, best_len) = (run, run_len);
                    }
                } else {
                    run_len = 0;
                }
            }
            let groups = |f: &mut Self, from: usize, to: usize| {
                for (k, &x) in g.get(from..to).unwrap_or_default().iter().enumerate() {
                    if k > 0 {
                        f.byte(b':');
                    }
                    f.hex16(x);
                }
            };
            if best_len > 1 {
                groups(self, 0, best);
                self.byte(b':');
                self.byte(b':');
                groups(self, best + best_len, 8);
            } else {
                groups(self, 0, 8);
            }
        }

        fn ip(&mut self, a: IpAddr) {
            match a {
                IpAddr::V4(a) => self.ipv4(a),
                IpAddr::V6(a) => self.ipv6(a),
            }
        }

        /// Appends the field to `s`.
        fn to(&self, s: &mut String) {
            // Only ASCII bytes are ever written, so this is always valid UTF-8.
            if let Ok(t) = std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()) {
                s.push_str(t);
            }
        }
    }

    /// Runs `f` on a new field and appends what it wrote to `s`.
    fn field(s: &mut String, f: impl FnOnce(&mut Field)) {
        let mut b = Field::new();
        f(&mut b);
        b.to(s);
    }

    /// The stack space of [`super::write_route_head_in`]: the longest head (Althea, IPv6
    /// prefixes, every number at its widest) is about 270 bytes.
    pub struct HeadBuf(Field<320>);

    impl Default for HeadBuf {
        fn default() -> Self {
            HeadBuf(Field::new())
        }
    }

    impl std::fmt::Debug for HeadBuf {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HeadBuf").finish_non_exhaustive()
        }
    }

    /// [`super::write_route_head`], built in `buf` (emptied first).
    pub(super) fn route_head(
        buf: &mut HeadBuf,
        s: &mut String,
        d: super::Dialect,
        r: &super::RouteLine<'_>,
    ) {
        let f = &mut buf.0;
        f.len = 0;
        f.text(b" route ");
        f.hex(r.id);
        f.text(b" prefix ");
        f.prefix(&r.prefix);
        f.text(b" from ");
        match &r.src_prefix {
            Some(p) => f.prefix(p),
            None if r.prefix.is_ipv4() => f.text(b"0.0.0.0/0"),
            None => f.text(b"::/0"),
        }
        f.text(if r.installed {
            b" installed yes id "
        } else {
            b" installed no id "
        });
        f.router_id(&r.router_id);
        f.text(b" metric ");
        f.decimal(u64::from(r.metric));
        if d == super::Dialect::Althea {
            f.text(b" price ");
            f.decimal(u64::from(r.received_price));
            f.text(b" fee ");
            f.decimal(u64::from(r.fee));
        }
        f.text(b" refmetric ");
        f.decimal(u64::from(r.refmetric));
        if d == super::Dialect::Althea {
            f.text(b" full-path-rtt ");
            f.decimal(u64::from(r.full_path_rtt / 1000));
            f.byte(b'.');
            let ms = r.full_path_rtt % 1000;
            for d in [ms / 100, ms / 10 % 10, ms % 10] {
                f.byte(b'0' + (d % 10) as u8);
            }
        }
        f.to(s);
    }

    /// One decimal digit (`v` < 10).
    pub fn digit(s: &mut String, v: u32) {
        s.push(char::from(b'0' + (v % 10) as u8));
    }

    /// `{v}`.
    pub fn decimal(s: &mut String, v: u64) {
        field(s, |f| f.decimal(v));
    }

    /// `{v:x}`.
    pub fn hex(s: &mut String, v: u64) {
        field(s, |f| f.hex(v));
    }

    /// An IPv4 address as `Display` prints it.
    pub fn ipv4(s: &mut String, a: Ipv4Addr) {
        field(s, |f| f.ipv4(a));
    }

    /// An IPv6 address as `Display` prints it (RFC 5952: lower-case hex, the first longest run
    /// of two or more zero groups as `::`, `::ffff:a.b.c.d` for IPv4-mapped addresses).
    pub fn ipv6(s: &mut String, a: Ipv6Addr) {
        field(s, |f| f.ipv6(a));
    }

    /// An address as `Display` prints it.
    pub fn ip(s: &mut String, a: IpAddr) {
        field(s, |f| f.ip(a));
    }

    /// `address/length`.
    pub fn prefix(s: &mut String, p: &Prefix) {
        field(s, |f| f.prefix(p));
    }

    /// babeld's router-id form: eight colon-separated two-digit hex octets.
    pub fn router_id(s: &mut String, id: &RouterId) {
        field(s, |f| f.router_id(id));
    }
}

/// A stable 48-bit identifier for an object named by these parts (babeld prints pointers).
pub fn line_id(parts: &[&[u8]]) -> u64 {
    // FNV-1a: deterministic across runs, unlike std's RandomState.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h & 0xffff_ffff_ffff
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Default)]
    struct Fake {
        statements: Vec<Statement>,
        flushed: Vec<String>,
    }

    impl Handler for Fake {
        fn dump(&mut self) -> Vec<String> {
            vec!["add interface eth0 up true".into()]
        }
        fn dump_json(&mut self) -> String {
            "{}".into()
        }
        fn statement(&mut self, s: Statement) -> Result<(), String> {
            self.statements.push(s);
            Ok(())
        }
        fn flush_interface(&mut self, name: &str) -> Result<(), String> {
            if name == "eth0" {
                self.flushed.push(name.into());
                Ok(())
            } else {
                Err("No such interface".into())
            }
        }
    }

    fn run(rw: bool, input: &[u8]) -> (String, Fake, Session) {
        let mut s = Session::new(rw);
        let mut h = Fake::default();
        let mut out = Vec::new();
        s.input(input, &mut h, &mut out);
        (String::from_utf8(out).unwrap(), h, s)
    }

    #[test]
    fn several_commands_in_one_read_answered_in_order() {
        let (out, h, _) = run(
            true,
            b"fee 5\nbogus\nflush interface nope\nflush interface eth0\ndump\n",
        );
        assert_eq!(
            out,
            "ok\nbad\nno No such interface\nok\nadd interface eth0 up true\nok\n"
        );
        assert_eq!(h.statements.len(), 1);
        assert_eq!(h.flushed, vec!["eth0".to_owned()]);
    }

    #[test]
    fn commands_split_across_reads() {
        let mut s = Session::new(true);
        let mut h = Fake::default();
        let mut out = Vec::new();
        s.input(b"du", &mut h, &mut out);
        assert!(out.is_empty());
        s.input(b"mp\r\nqu", &mut h, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "add interface eth0 up true\nok\n"
        );
        s.input(b"it\n", &mut h, &mut out);
        assert!(s.is_closed());
    }

    #[test]
    fn dump_counters_is_read_only_and_defaults_to_nothing() {
        // The default handler has no counters: just `ok`, on a read-only socket.
        let (out, _, _) = run(false, b"dump counters\n");
        assert_eq!(out, "ok\n");
    }

    #[test]
    fn read_only_sockets_refuse_changes() {
        let (out, h, _) = run(
            false,
            b"fee 5\nflush interface eth0\ndump\nmonitor\nunmonitor\n",
        );
        assert!(out.starts_with("bad\nbad\nadd interface"), "{out}");
        assert!(h.statements.is_empty() && h.flushed.is_empty());
    }

    #[test]
    fn startup_only_statements_are_bad_at_runtime() {
        let (out, h, _) = run(
            true,
            b"redistribute local deny\nrandom-id true\nkernel-check-interval 0\n",
        );
        assert_eq!(out, "bad\nbad\nok\n");
        assert_eq!(h.statements.len(), 1);
    }

    #[test]
    fn long_lines_and_garbage_are_bad_and_bounded() {
        let mut long = vec![b'x'; MAX_LINE * 5];
        long.extend_from_slice(b"\ndump\n");
        let (out, _, s) = run(true, &long);
        assert_eq!(out, "bad\nadd interface eth0 up true\nok\n");
        assert!(s.pending.capacity() <= MAX_LINE * 2);
        let (out, _, _) = run(true, b"\xff\xfe\x00\n\x01\x02\n");
        assert_eq!(out, "bad\nbad\n");
    }

    #[test]
    fn pipelined_replies_beyond_the_room_close_the_session() {
        let mut s = Session::new(false);
        let mut h = Fake::default();
        let mut out = Vec::new();
        // One reply larger than the room is fine, and so is `quit` after it.
        let o = s.input_bounded(b"dump\nquit\n", &mut h, &mut out, 10);
        assert!(!o.overflow && s.is_closed());
        let mut s = Session::new(false);
        let mut out = Vec::new();
        let o = s.input_bounded(b"dump\ndump\ndump\n", &mut h, &mut out, 10);
        assert!(o.overflow && s.is_closed());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "add interface eth0 up true\nok\n"
        );
    }

    /// Huge and endless inputs (issue 11): whatever arrives, a session holds at most one line,
    /// and its output is at most one reply beyond its room.
    #[test]
    fn huge_and_endless_inputs_stay_bounded() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 64,
            ..ProptestConfig::default()
        });
        let chunk = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4096),
            (any::<u8>(), 0usize..200_000).prop_map(|(b, n)| vec![b; n]),
            Just(b"dump\n".to_vec()),
            Just(b"monitor\n".repeat(50)),
        ];
        runner
            .run(&proptest::collection::vec(chunk, 1..40), |chunks| {
                let mut s = Session::new(true);
                let mut h = Fake::default();
                let mut out = Vec::new();
                for c in &chunks {
                    s.input_bounded(c, &mut h, &mut out, 4096);
                    prop_assert!(s.pending.len() <= MAX_LINE);
                    prop_assert!(s.pending.capacity() <= 2 * MAX_LINE.max(8));
                    // The fake's largest reply is a dump line plus `ok`.
                    prop_assert!(out.len() <= 4096 + 64);
                    if s.is_closed() {
                        break;
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn monitor_then_unmonitor() {
        let (_, _, s) = run(false, b"monitor\n");
        assert!(s.is_monitoring());
        let (_, _, s) = run(false, b"monitor\nunmonitor\n");
        assert!(!s.is_monitoring());
    }

    #[test]
    fn lines_match_babeld_and_althea_formats() {
        let id = RouterId([0x38, 0x78, 0x3a, 0x0b, 0x14, 0x34, 0x36, 0x56]);
        let via: IpAddr = "fe80::289f:edff:fe50:e6d6".parse().unwrap();
        let r = RouteLine {
            id: 0x564b_531f_05b0,
            prefix: "10.5.0.2/32".parse().unwrap(),
            src_prefix: None,
            installed: true,
            router_id: id,
            metric: 96,
            refmetric: 0,
            received_price: 7,
            fee: 5,
            full_path_rtt: 22_805,
            via,
            ifname: "va",
        };
        // Byte for byte what babeld 1.12.1 printed for the same route.
        assert_eq!(
            route_line(ChangeKind::Add, Dialect::Babel, &r),
            "add route 564b531f05b0 prefix 10.5.0.2/32 from 0.0.0.0/0 installed yes id 38:78:3a:0b:14:34:36:56 metric 96 refmetric 0 via fe80::289f:edff:fe50:e6d6 if va"
        );
        assert_eq!(
            route_line(ChangeKind::Change, Dialect::Althea, &r),
            "change route 564b531f05b0 prefix 10.5.0.2/32 from 0.0.0.0/0 installed yes id 38:78:3a:0b:14:34:36:56 metric 96 price 7 fee 5 refmetric 0 full-path-rtt 22.805 via fe80::289f:edff:fe50:e6d6 if va"
        );
        let n = NeighbourLine {
            id: 0x564b_531e_f430,
            address: via,
            ifname: "va",
            reach: 0xfc00,
            ureach: 0,
            rxcost: 96,
            txcost: 96,
            rtt: None,
            cost: 96,
        };
        assert_eq!(
            neighbour_line(ChangeKind::Add, &n),
            "add neighbour 564b531ef430 address fe80::289f:edff:fe50:e6d6 if va reach fc00 ureach 0000 rxcost 96 txcost 96 cost 96"
        );
        let with_rtt = NeighbourLine {
            rtt: Some((26_723, 912)),
            cost: 1168,
            ..n
        };
        assert!(
            neighbour_line(ChangeKind::Add, &with_rtt)
                .ends_with(" rtt 26.723 rttcost 912 cost 1168")
        );
        assert_eq!(
            xroute_line(ChangeKind::Add, &"fd05::1/128".parse().unwrap(), None, 0),
            "add xroute fd05::1/128-::/0 prefix fd05::1/128 from ::/0 metric 0"
        );
        assert_eq!(
            interface_line(
                ChangeKind::Add,
                "va",
                true,
                Some("fe80::50f6:3fff:fe76:686e".parse().unwrap()),
                Some(Ipv4Addr::new(10, 99, 0, 1))
            ),
            "add interface va up true ipv6 fe80::50f6:3fff:fe76:686e ipv4 10.99.0.1"
        );
        assert_eq!(
            interface_line(ChangeKind::Flush, "lo", false, None, None),
            "flush interface lo up false"
        );
        assert_eq!(
            althea_header(1024, 1900),
            ["local fee 1024".to_owned(), "metric factor 1900".to_owned()]
        );
    }

    #[test]
    fn banners() {
        let b = Banner {
            dialect: Dialect::Althea,
            version: "babeld-rs-0.1.0".into(),
            host: "r1".into(),
            my_id: RouterId([1; 8]),
        };
        assert_eq!(
            b.text(),
            "ALTHEA 0.1\nversion babeld-rs-0.1.0\nhost r1\nmy-id 01:01:01:01:01:01:01:01\nok\n"
        );
        let b = Banner {
            dialect: Dialect::Babel,
            ..b
        };
        assert!(b.text().starts_with("BABEL 1.0\n"));
    }

    /// The `format!` rendering [`route_line`] replaced, as the reference for its bytes.
    fn reference_route_line(c: ChangeKind, d: Dialect, r: &RouteLine<'_>) -> String {
        let mut s = format!(
            "{} route {:x} prefix {} from {} installed {} id {} metric {}",
            word(c),
            r.id,
            r.prefix,
            from(&r.prefix, r.src_prefix.as_ref()),
            if r.installed { "yes" } else { "no" },
            r.router_id,
            r.metric
        );
        if d == Dialect::Althea {
            let _ = write!(s, " price {} fee {}", r.received_price, r.fee);
        }
        let _ = write!(s, " refmetric {}", r.refmetric);
        if d == Dialect::Althea {
            let _ = write!(s, " full-path-rtt {}", millis(r.full_path_rtt));
        }
        let _ = write!(s, " via {} if {}", r.via, r.ifname);
        s
    }

    /// Addresses with long and short zero runs, IPv4-mapped ones, and random ones.
    fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
        (any::<[u16; 8]>(), any::<u8>(), 0usize..4).prop_map(|(mut g, zeros, kind)| {
            for (i, x) in g.iter_mut().enumerate() {
                if zeros & (1 << i) != 0 {
                    *x = 0;
                }
            }
            match kind {
                0 => {
                    let [a, b, ..] = g;
                    Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8).to_ipv6_mapped()
                }
                _ => Ipv6Addr::from(g),
            }
        })
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            ipv6().prop_map(IpAddr::V6),
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        ]
    }

    fn prefix() -> impl Strategy<Value = Prefix> {
        (ip(), any::<u8>()).prop_map(|(a, l)| {
            let max = if a.is_ipv4() { 33 } else { 129 };
            Prefix::new(a, l % max).unwrap()
        })
    }

    proptest! {
        #[test]
        fn fast_writers_print_what_display_prints(a in ipv6(), b in any::<u32>(), v in any::<u64>(), p in prefix()) {
            let run = |f: &dyn Fn(&mut String)| { let mut s = String::new(); f(&mut s); s };
            prop_assert_eq!(run(&|s| text::ipv6(s, a)), a.to_string());
            let v4 = Ipv4Addr::from(b);
            prop_assert_eq!(run(&|s| text::ipv4(s, v4)), v4.to_string());
            prop_assert_eq!(run(&|s| text::hex(s, v)), format!("{v:x}"));
            prop_assert_eq!(run(&|s| text::decimal(s, v)), v.to_string());
            prop_assert_eq!(run(&|s| text::decimal(s, u64::from(b % 1000))), (b % 1000).to_string());
            prop_assert_eq!(run(&|s| text::prefix(s, &p)), p.to_string());
            let id = RouterId(v.to_be_bytes());
            prop_assert_eq!(run(&|s| text::router_id(s, &id)), id.to_string());
        }

        #[test]
        fn route_line_is_byte_identical_to_its_format_rendering(
            id in any::<u64>(), p in prefix(), src in proptest::option::of(prefix()),
            installed in any::<bool>(), rid in any::<[u8; 8]>(), metric in any::<u16>(),
            refmetric in any::<u16>(), price in any::<u32>(), fee in any::<u32>(),
            rtt in any::<u32>(), via in ip(), ifname in "[a-z0-9.-]{0,15}",
            c in 0usize..3, althea in any::<bool>(),
        ) {
            let r = RouteLine {
                id: id & 0xffff_ffff_ffff, prefix: p, src_prefix: src, installed,
                router_id: RouterId(rid), metric, refmetric, received_price: price, fee,
                full_path_rtt: rtt, via, ifname: &ifname,
            };
            let c = [ChangeKind::Add, ChangeKind::Change, ChangeKind::Flush][c];
            let d = if althea { Dialect::Althea } else { Dialect::Babel };
            prop_assert_eq!(route_line(c, d, &r), reference_route_line(c, d, &r));
        }
    }

    /// Every value of an address group (one to four hex digits) and every `u16` number, as
    /// `Display` prints them.
    #[test]
    fn every_group_and_u16_matches_display() {
        for x in 0..=u16::MAX {
            let a = Ipv6Addr::new(0x2001, x, 0, 0, 0, 0, x, 1);
            let mut s = String::new();
            text::ipv6(&mut s, a);
            assert_eq!(s, a.to_string());
            s.clear();
            text::decimal(&mut s, u64::from(x));
            assert_eq!(s, x.to_string());
        }
        for v in [
            u64::MAX,
            10u64.pow(19),
            10u64.pow(19) - 1,
            99,
            100,
            101,
            9,
            10,
        ] {
            let mut s = String::new();
            text::decimal(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn ipv6_zero_runs_match_display() {
        for a in [
            "::",
            "::1",
            "1::",
            "1:0:0:2::",
            "1::2:0:0:3",
            "0:1:0:1:0:1:0:1",
            "fe80::1:0:0:0:1",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "64:ff9b::1.2.3.4",
        ] {
            let a: Ipv6Addr = a.parse().unwrap();
            let mut s = String::new();
            text::ipv6(&mut s, a);
            assert_eq!(s, a.to_string());
        }
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(line_id(&[b"a", b"b"]), line_id(&[b"a", b"b"]));
        assert_ne!(line_id(&[b"ab"]), line_id(&[b"a", b"b"]));
        assert!(line_id(&[b"x"]) <= 0xffff_ffff_ffff);
    }
}
