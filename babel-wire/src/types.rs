//! Plain data types for Babel messages, fully resolved (RFC 8966 §4.5: the decoder applies the
//! parser state, so an [`Update`] carries its whole prefix, router-id and next hop).
//!
//! Metric, cost and seqno fields stay raw `u16` here, as the bytes on the wire: the codec
//! round-trips any value a peer sends (the round-trip tests and fuzz targets generate raw
//! fields), and giving them meaning is the engine's job: it does the RFC's arithmetic on them
//! through [`crate::Metric`] and [`crate::Seqno`], and its public views carry those types.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Metric value meaning "unreachable" (RFC 8966 §2.1).
pub const INFINITY: u16 = 0xFFFF;

/// Which layout the Update TLV and the price take on an interface (`spec/wire.md`, "Flavours").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Flavour {
    /// RFC 8966 Update; price as the non-mandatory sub-TLV [`crate::SUBTLV_PRICE`].
    #[default]
    Standard,
    /// Althea's fork: a u32 price between Metric and Prefix (14-byte fixed part), path RTT as
    /// sub-TLV 45.
    Althea,
}

/// An 8-octet router-id (RFC 8966 §4.1.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RouterId(pub [u8; 8]);

impl RouterId {
    /// RFC 8966 §4.6.7: the all-zeros and all-ones router-ids are reserved.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8] && self.0 != [0xFF; 8]
    }
}

impl fmt::Display for RouterId {
    /// babeld's format: eight colon-separated hex octets (`ba:27:eb:ff:fe:09:06:dd`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g, h, i] = self.0;
        write!(
            f,
            "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}:{h:02x}:{i:02x}"
        )
    }
}

impl fmt::Debug for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouterId({self})")
    }
}

/// Error parsing a router-id from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("router-id must be eight colon-separated hex octets, got {0:?}")]
pub struct RouterIdParseError(pub String);

impl FromStr for RouterId {
    type Err = RouterIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 8];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| RouterIdParseError(s.to_owned()))?;
            if part.is_empty() || part.len() > 2 {
                return Err(RouterIdParseError(s.to_owned()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| RouterIdParseError(s.to_owned()))?;
        }
        if parts.next().is_some() {
            return Err(RouterIdParseError(s.to_owned()));
        }
        Ok(RouterId(out))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for RouterId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for RouterId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv4 or IPv6 prefix whose bits beyond `len` are zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Error building a [`Prefix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The length is larger than the address (32 for IPv4, 128 for IPv6).
    #[error("prefix length {len} is too long for {family}")]
    TooLong {
        /// The offending length.
        len: u8,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// The text is not `address/length`.
    #[error("not a prefix: {0:?}")]
    Syntax(String),
}

impl Prefix {
    /// A prefix of `len` bits of `addr`; host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(PrefixError::TooLong {
                        len,
                        family: "IPv4",
                    });
                }
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                Ok(Prefix {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)),
                    len,
                })
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(PrefixError::TooLong {
                        len,
                        family: "IPv6",
                    });
                }
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                Ok(Prefix {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)),
                    len,
                })
            }
        }
    }

    /// A host prefix (/32 or /128).
    pub fn host(addr: IpAddr) -> Prefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }

    /// The (masked) network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits. (Not a container length: a /0 prefix is not "empty".)
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for the default route of its family (length 0).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// True if this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `other` lies inside this prefix (same family, longer or equal, same leading bits).
    pub fn contains(&self, other: &Prefix) -> bool {
        if other.len < self.len || self.is_ipv4() != other.is_ipv4() {
            return false;
        }
        Prefix::new(other.addr, self.len)
            .map(|p| p == *self)
            .unwrap_or(false)
    }

    /// The address as the octets Babel puts on the wire (4 or 16).
    pub(crate) fn octets(&self) -> ([u8; 16], usize) {
        match self.addr {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (b, 4)
            }
            IpAddr::V6(a) => (a.octets(), 16),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PrefixError::Syntax(s.to_owned());
        match s.split_once('/') {
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| syntax())?;
                let len: u8 = l.parse().map_err(|_| syntax())?;
                Prefix::new(addr, len)
            }
            None => Ok(Prefix::host(s.parse().map_err(|_| syntax())?)),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hello (RFC 8966 §4.6.5), with the RFC 9616 Timestamp sub-TLV.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Hello {
    /// Flag U (0x8000): a unicast Hello, with its own seqno space.
    #[cfg_attr(feature = "serde", serde(default))]
    pub unicast: bool,
    /// Hello seqno.
    pub seqno: u16,
    /// Interval until the next scheduled Hello in centiseconds; 0 = unscheduled.
    pub interval: u16,
    /// RFC 9616 transmit timestamp (microseconds, wrapping).
    pub timestamp: Option<u32>,
}

/// RFC 9616 Timestamp sub-TLV of an IHU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IhuTimestamp {
    /// The transmit timestamp of the Hello being answered.
    pub origin: u32,
    /// Local time at which that Hello arrived.
    pub receive: u32,
}

/// IHU, "I Heard You" (RFC 8966 §4.6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ihu {
    /// The neighbour this IHU is about; `None` (AE 0) means any receiver.
    pub address: Option<IpAddr>,
    /// Receive cost of the link, as measured by the sender.
    pub rxcost: u16,
    /// Interval until the next IHU in centiseconds (MUST NOT be 0).
    pub interval: u16,
    /// RFC 9616 timestamps.
    pub timestamp: Option<IhuTimestamp>,
}

/// Update (RFC 8966 §4.6.9), resolved against the packet's parser state, with Althea's price.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Update {
    /// The destination; `None` is AE 0 (wildcard, only meaningful as a retraction).
    pub prefix: Option<Prefix>,
    /// RFC 9229: an IPv4 prefix encoded with AE 4, whose next hop is the IPv6 next hop.
    #[cfg_attr(feature = "serde", serde(default))]
    pub v4_via_v6: bool,
    /// RFC 9079 Source Prefix sub-TLV (128).
    pub src_prefix: Option<Prefix>,
    /// Interval until the next update in centiseconds.
    pub interval: u16,
    /// The source's seqno.
    pub seqno: u16,
    /// Metric; [`INFINITY`] makes this a retraction.
    pub metric: u16,
    /// The originating router (from a Router-Id TLV or flag 0x40); may be absent on retractions.
    pub router_id: Option<RouterId>,
    /// The next hop from a Next Hop TLV of the prefix's family (the IPv6 one for AE 4). `None`
    /// means the packet's source address (RFC 8966 §4.6.8).
    pub next_hop: Option<IpAddr>,
    /// Althea price (u32): the fixed field in the Althea flavour, sub-TLV 112 in the standard one.
    pub price: Option<u32>,
    /// Althea full-path RTT in microseconds (sub-TLV 45, or 113 in the standard flavour).
    pub path_rtt: Option<u32>,
    /// Diversity sub-TLV (2): channel numbers, as babeld 1.12 sends them.
    pub diversity: Option<Vec<u8>>,
}

impl Update {
    /// True if this is a retraction (metric infinity).
    pub fn is_retraction(&self) -> bool {
        self.metric == INFINITY
    }
}

/// Route Request (RFC 8966 §4.6.10).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RouteRequest {
    /// The requested prefix; `None` (AE 0, plen 0) is a wildcard request for a full dump.
    pub prefix: Option<Prefix>,
    /// RFC 9229 AE 4 encoding.
    #[cfg_attr(feature = "serde", serde(default))]
    pub v4_via_v6: bool,
    /// RFC 9079 source prefix.
    pub src_prefix: Option<Prefix>,
}

/// Seqno Request (RFC 8966 §4.6.11).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SeqnoRequest {
    /// The prefix (AE 0 is not allowed in a Seqno Request).
    pub prefix: Prefix,
    /// RFC 9229 AE 4 encoding.
    #[cfg_attr(feature = "serde", serde(default))]
    pub v4_via_v6: bool,
    /// RFC 9079 source prefix.
    pub src_prefix: Option<Prefix>,
    /// Requested seqno.
    pub seqno: u16,
    /// Remaining hops (MUST NOT be 0).
    pub hop_count: u8,
    /// The router-id whose seqno is requested.
    pub router_id: RouterId,
}

/// Route verification "Remote Hello" (our experimental TLV 224, `spec/wire.md`): sent unicast by a
/// verifier to a destination, saying which neighbour it was forwarded through.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RemoteHello {
    /// Per (verifier, destination, via) seqno.
    pub seqno: u16,
    /// Interval until the next Remote Hello in centiseconds (MUST NOT be 0).
    pub interval: u16,
    /// The verifier's router-id.
    pub origin: RouterId,
    /// The router-id of the neighbour the verifier sent this through.
    pub via: RouterId,
    /// The destination's announced prefix being verified.
    pub prefix: Prefix,
    /// RFC 9616-style transmit timestamp, microseconds.
    pub timestamp: Option<u32>,
}

/// Route verification "Remote IHU" (our experimental TLV 225): the destination's measured cost of
/// the path from `origin` through `via`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RemoteIhu {
    /// The cost the destination computed from the Remote Hellos it received.
    pub rxcost: u16,
    /// Interval until the next Remote IHU in centiseconds (MUST NOT be 0).
    pub interval: u16,
    /// The verifier (the sender of the Remote Hellos being answered).
    pub origin: RouterId,
    /// The neighbour the Remote Hellos were sent through, echoed.
    pub via: RouterId,
    /// The prefix that was verified.
    pub prefix: Prefix,
    /// RFC 9616-style timestamps, as in an IHU.
    pub timestamp: Option<IhuTimestamp>,
}

/// One message in a packet body, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "kebab-case"))]
pub enum Message {
    /// Pad1 (type 0).
    Pad1,
    /// PadN (type 1) with this many MBZ octets.
    PadN {
        /// Body length.
        len: u8,
    },
    /// Acknowledgment Request (type 2).
    AckReq {
        /// Opaque value echoed in the Ack.
        opaque: u16,
        /// Deadline in centiseconds (MUST NOT be 0).
        interval: u16,
    },
    /// Acknowledgment (type 3).
    Ack {
        /// The opaque value of the request.
        opaque: u16,
    },
    /// Hello (type 4).
    Hello(Hello),
    /// IHU (type 5).
    Ihu(Ihu),
    /// Update (type 8) with Router-Id (6) and Next Hop (7) applied.
    Update(Update),
    /// Route Request (type 9).
    RouteRequest(RouteRequest),
    /// Seqno Request (type 10).
    SeqnoRequest(SeqnoRequest),
    /// Packet Counter (RFC 8967, type 17).
    Pc {
        /// The counter.
        pc: u32,
        /// Index (0 to 32 octets).
        index: Vec<u8>,
    },
    /// Challenge Request (RFC 8967, type 18).
    ChallengeRequest {
        /// Nonce (0 to 192 octets).
        nonce: Vec<u8>,
    },
    /// Challenge Reply (RFC 8967, type 19).
    ChallengeReply {
        /// The nonce being answered.
        nonce: Vec<u8>,
    },
    /// Remote Hello (experimental type 224).
    RemoteHello(RemoteHello),
    /// Remote IHU (experimental type 225).
    RemoteIhu(RemoteIhu),
}

/// A Babel packet: the body's messages and the trailer's MACs (RFC 8967).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Packet {
    /// Messages of the body, in order.
    pub messages: Vec<Message>,
    /// MAC TLVs (type 16) found in the trailer, each the MAC's bytes.
    pub macs: Vec<Vec<u8>>,
}

/// Centiseconds as seconds with two decimals, as babeld and tcpdump print intervals.
struct Cs(u16);

impl fmt::Display for Cs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}s", self.0 / 100, self.0 % 100)
    }
}

fn opt_prefix(p: &Option<Prefix>) -> String {
    p.map_or_else(|| "any".to_owned(), |p| p.to_string())
}

impl fmt::Display for Message {
    /// One line, in the spirit of tcpdump's Babel printer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Pad1 => write!(f, "pad1"),
            Message::PadN { len } => write!(f, "padn {len}"),
            Message::AckReq { opaque, interval } => {
                write!(
                    f,
                    "ack-request opaque {opaque:#06x} interval {}",
                    Cs(*interval)
                )
            }
            Message::Ack { opaque } => write!(f, "ack opaque {opaque:#06x}"),
            Message::Hello(h) => {
                let kind = if h.unicast { "unicast hello" } else { "hello" };
                write!(f, "{kind} seqno {} interval {}", h.seqno, Cs(h.interval))?;
                if let Some(t) = h.timestamp {
                    write!(f, " timestamp {t}")?;
                }
                Ok(())
            }
            Message::Ihu(i) => {
                let addr = i
                    .address
                    .map_or_else(|| "any".to_owned(), |a| a.to_string());
                write!(
                    f,
                    "ihu {addr} rxcost {} interval {}",
                    i.rxcost,
                    Cs(i.interval)
                )?;
                if let Some(t) = i.timestamp {
                    write!(f, " timestamp origin {} receive {}", t.origin, t.receive)?;
                }
                Ok(())
            }
            Message::Update(u) => {
                let what = if u.is_retraction() {
                    "retraction"
                } else {
                    "update"
                };
                write!(f, "{what} {}", opt_prefix(&u.prefix))?;
                if let Some(s) = u.src_prefix {
                    write!(f, " from {s}")?;
                }
                if u.v4_via_v6 {
                    write!(f, " (v4-via-v6)")?;
                }
                write!(
                    f,
                    " metric {} seqno {} interval {}",
                    u.metric,
                    u.seqno,
                    Cs(u.interval)
                )?;
                if let Some(id) = u.router_id {
                    write!(f, " id {id}")?;
                }
                if let Some(nh) = u.next_hop {
                    write!(f, " nexthop {nh}")?;
                }
                if let Some(p) = u.price {
                    write!(f, " price {p}")?;
                }
                if let Some(r) = u.path_rtt {
                    write!(f, " full-path-rtt {}.{:03}ms", r / 1000, r % 1000)?;
                }
                if let Some(d) = &u.diversity {
                    write!(f, " diversity {d:?}")?;
                }
                Ok(())
            }
            Message::RouteRequest(r) => {
                write!(f, "route-request {}", opt_prefix(&r.prefix))?;
                if let Some(s) = r.src_prefix {
                    write!(f, " from {s}")?;
                }
                Ok(())
            }
            Message::SeqnoRequest(s) => {
                write!(f, "seqno-request {}", s.prefix)?;
                if let Some(src) = s.src_prefix {
                    write!(f, " from {src}")?;
                }
                write!(
                    f,
                    " seqno {} hop-count {} id {}",
                    s.seqno, s.hop_count, s.router_id
                )
            }
            Message::Pc { pc, index } => write!(f, "pc {pc} index {}", Hex(index)),
            Message::ChallengeRequest { nonce } => write!(f, "challenge-request {}", Hex(nonce)),
            Message::ChallengeReply { nonce } => write!(f, "challenge-reply {}", Hex(nonce)),
            Message::RemoteHello(r) => write!(
                f,
                "remote-hello {} seqno {} interval {} origin {} via {}",
                r.prefix,
                r.seqno,
                Cs(r.interval),
                r.origin,
                r.via
            ),
            Message::RemoteIhu(r) => write!(
                f,
                "remote-ihu {} rxcost {} interval {} origin {} via {}",
                r.prefix,
                r.rxcost,
                Cs(r.interval),
                r.origin,
                r.via
            ),
        }
    }
}

/// Bytes as lowercase hex.
pub(crate) struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Lowercase or uppercase hex as bytes (the JSON form of keys).
#[cfg(feature = "serde")]
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s
        .bytes()
        .map(|c| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("not a hex digit: {:?}", char::from(c))),
        })
        .collect::<Result<_, _>>()?;
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".to_owned());
    }
    Ok(digits
        .chunks(2)
        .map(|p| p.iter().fold(0, |a, d| a * 16 + d))
        .collect())
}
