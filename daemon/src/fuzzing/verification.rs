//! The check the `verification` fuzz target runs (`fuzz/`): a router's route verification
//! (`crate::verification`, `spec/verify.md` §6, §9) fed everything a peer can send it, as
//! the binary feeds it. Datagrams on the verification socket from anybody (a neighbour over
//! its link or not, a destination, a stranger), ICMPv6 messages on the raw socket, time passing
//! and the kernel's record of used addresses, in any order and any number.
//!
//! After every input it checks what must hold whatever the input:
//!
//! - nothing panics;
//! - every table stays within its bound ([`Verification::table_sizes`]);
//! - a datagram that did not come from one of our neighbours over its link (link-local source
//!   on the neighbour's interface, hop limit 255) makes us send nothing: nobody past the link
//!   can use us to send;
//! - what we send in answer to a datagram goes over a link, to one of our neighbours;
//! - a datagram that is not a Babel packet is counted as malformed;
//! - the drop counters (and our other counters) never go down.
//!
//! The router: router-id `0a0a…`, announcing `fd77::1/128`, verifying `fd77::4/128` (the key
//! of seed `[7; 32]` bound to it) through neighbours `fe80::a%2` (selected, metric 200) and
//! `fe80::b%3` (metric 300), and `fd77::5/128` (no key bound) through `fe80::b%3`.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use babel_core::{Instant, RouteView, XrouteView};
use babel_wire::{Metric, RouterId, Seqno};
use verify::{NeighbourId, SigningKey};

use crate::verification::{
    ClaimRoutes, MAX_DATAGRAM, VERIFY_PORT, Verification, VerificationOutputs, VerifySettings,
    VerifyStatement, tlvs,
};

/// The source port of our traces (the binary's trace socket's).
pub const TRACE_PORT: u16 = 40_000;
/// Inputs read from one fuzz input at most.
const MAX_STEPS: usize = 4096;
/// The accuracy threshold the binary passes (per mille).
const THRESHOLD_PM: u16 = 800;

/// Who a datagram or an ICMPv6 message comes from: `(address, interface)`.
pub const SOURCES: [(&str, u32); 6] = [
    ("fe80::a", 2),     // neighbour A over its link
    ("fe80::b", 3),     // neighbour B over its link
    ("fd77::4", 0),     // the destination verified
    ("2001:db8::9", 0), // a stranger
    ("fe80::a", 3),     // A's address on B's interface: not A
    ("fd77::1", 0),     // our own address
];

/// The router under test and what it is judged against.
#[derive(Clone)]
pub struct Harness {
    /// Its verification.
    pub v: Verification,
    /// Time now.
    pub now: Instant,
    /// Prefixes it announces.
    pub ours: Vec<XrouteView>,
    /// Its neighbours.
    pub neighbours: Vec<NeighbourId>,
    /// Its routes.
    pub routes: Vec<RouteView>,
}

/// One input, as read from the fuzz input (and written by the tests that build one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A datagram on the verification socket from `SOURCES[from]` with IPv6 hop limit
    /// `hop_limit`.
    Datagram {
        /// Index into [`SOURCES`] (modulo its length).
        from: u8,
        /// The IPv6 hop limit it arrived with.
        hop_limit: u8,
        /// The UDP payload.
        bytes: Vec<u8>,
    },
    /// An ICMPv6 message on the raw socket from `SOURCES[from]`, arrived on interface
    /// `arrived_on` if known.
    Icmp {
        /// Index into [`SOURCES`] (modulo its length).
        from: u8,
        /// The interface, if the binary knew it.
        arrived_on: Option<u32>,
        /// The ICMPv6 message (its header first).
        bytes: Vec<u8>,
    },
    /// Time passes by `centis` hundredths of a second, then the timers run.
    Tick {
        /// Hundredths of a second.
        centis: u16,
    },
    /// The kernel saw traffic to `address`.
    Used {
        /// The address.
        address: Ipv6Addr,
    },
}

impl Step {
    /// Reads one step from `data`: the first octet picks the kind (modulo 4), and, for a
    /// datagram or an ICMPv6 message, with bit 4 set the payload is wrapped in the headers it
    /// needs (a Babel packet header; an ICMPv6 Time Exceeded quoting an IPv6/UDP packet), so
    /// that a fuzzer reaches the parsers behind them.
    pub fn read(data: &[u8]) -> Option<(Step, &[u8])> {
        let (&op, rest) = data.split_first()?;
        let (&a, rest) = rest.split_first()?;
        let (&b, rest) = rest.split_first()?;
        let wrap = op & 0x10 != 0;
        match op % 4 {
            0 | 1 => {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                let len = usize::from(u16::from_be_bytes(*len)).min(MAX_DATAGRAM);
                let (payload, rest) = rest.split_at(len.min(rest.len()));
                if op % 4 == 0 {
                    let bytes = if wrap {
                        crate::verification::packet(payload)
                    } else {
                        payload.to_vec()
                    };
                    Some((
                        Step::Datagram {
                            from: a,
                            hop_limit: b,
                            bytes,
                        },
                        rest,
                    ))
                } else {
                    let arrived_on = (b != 0).then_some(u32::from(b % 4));
                    let bytes = if wrap {
                        // The quoted packet: from our address or the sender's, from the
                        // verification port or the trace port, with the hop limit it had.
                        let (&q, payload) = payload.split_first()?;
                        let src = if q & 1 == 0 { "fd77::1" } else { source(a).0 };
                        let sport = if q & 2 == 0 { TRACE_PORT } else { VERIFY_PORT };
                        time_exceeded(payload, parse(src), q >> 2, sport)
                    } else {
                        payload.to_vec()
                    };
                    Some((
                        Step::Icmp {
                            from: a,
                            arrived_on,
                            bytes,
                        },
                        rest,
                    ))
                }
            }
            2 => Some((
                Step::Tick {
                    centis: u16::from_be_bytes([a, b]),
                },
                rest,
            )),
            _ => {
                // The low octets of an address under fd77::/64 (a route's or not).
                let mut o = parse("fd77::").octets();
                let [.., x, y] = &mut o;
                (*x, *y) = (a, b);
                Some((
                    Step::Used {
                        address: Ipv6Addr::from(o),
                    },
                    rest,
                ))
            }
        }
    }

    /// The octets [`Step::read`] reads back as this step (a datagram's or an ICMPv6
    /// message's payload unwrapped, at most [`MAX_DATAGRAM`] octets).
    pub fn write(&self, out: &mut Vec<u8>) {
        let payload = |out: &mut Vec<u8>, b: &[u8]| {
            let b = b.get(..MAX_DATAGRAM).unwrap_or(b);
            let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Step::Datagram {
                from,
                hop_limit,
                bytes,
            } => {
                out.extend_from_slice(&[0, *from, *hop_limit]);
                payload(out, bytes);
            }
            Step::Icmp {
                from,
                arrived_on,
                bytes,
            } => {
                let on = arrived_on.map_or(0, |i| 4 + (i % 4) as u8); // read back as `on % 4`
                out.extend_from_slice(&[1, *from, on]);
                payload(out, bytes);
            }
            Step::Tick { centis } => {
                out.push(2);
                out.extend_from_slice(&centis.to_be_bytes());
            }
            Step::Used { address } => {
                let [.., x, y] = address.octets();
                out.extend_from_slice(&[3, x, y]);
            }
        }
    }
}

fn parse(s: &str) -> Ipv6Addr {
    s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

fn source(i: u8) -> (&'static str, u32) {
    SOURCES
        .get(usize::from(i) % SOURCES.len())
        .copied()
        .unwrap_or(("::", 0))
}

/// An ICMPv6 Time Exceeded (RFC 4443 §3.3) quoting an IPv6/UDP packet from `src` port `sport`
/// to `fd77::4` port [`VERIFY_PORT`] that had hop limit `hop_limit`, its UDP payload `babel`.
pub fn time_exceeded(babel: &[u8], src: Ipv6Addr, hop_limit: u8, sport: u16) -> Vec<u8> {
    let plen = u16::try_from(8 + babel.len()).unwrap_or(u16::MAX);
    let mut m = vec![3, 0, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0];
    m.extend_from_slice(&plen.to_be_bytes());
    m.extend_from_slice(&[17, hop_limit]);
    m.extend_from_slice(&src.octets());
    m.extend_from_slice(&parse("fd77::4").octets());
    m.extend_from_slice(&sport.to_be_bytes());
    m.extend_from_slice(&VERIFY_PORT.to_be_bytes());
    m.extend_from_slice(&plen.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(babel);
    m
}

/// The key bound to the destination verified, `fd77::4/128`.
pub fn destination_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A feasible route to `prefix` via `via` on `ifindex` (seqno 0, router-id `0101…`, its
/// refmetric one hop of 96 less than `metric`).
pub fn route(prefix: &str, via: &str, ifindex: u32, metric: u16, installed: bool) -> RouteView {
    let via = IpAddr::V6(parse(via));
    RouteView {
        prefix: prefix
            .parse()
            .unwrap_or(babel_wire::Prefix::host(IpAddr::V6(Ipv6Addr::UNSPECIFIED))),
        src_prefix: None,
        installed,
        feasible: true,
        router_id: RouterId([1; 8]),
        metric: Metric(metric),
        smoothed_metric: Metric(metric),
        refmetric: Metric(metric.saturating_sub(96)),
        verified_metric: None,
        price: 0,
        received_price: 0,
        fee: 0,
        seqno: Seqno(0),
        age: Duration::ZERO,
        via,
        next_hop: via,
        ifindex,
        full_path_rtt: 0,
    }
}

impl Harness {
    /// The router described in the module's documentation, at time 0.
    pub fn new() -> Harness {
        let mut settings = VerifySettings::default();
        let key = hex::encode(destination_key().verifying_key().as_bytes());
        for line in [
            "verify-enable true",
            "verify-destination fd77::4/128",
            "verify-check-requests true",
            &format!("verify-key fd77::4/128 {key}"),
        ] {
            let mut w = line.split_whitespace();
            if let Some(k) = w.next()
                && let Ok(s) = VerifyStatement::parse(k, w)
            {
                settings.apply(s);
            }
        }
        let now = Instant::from_micros(0);
        Harness {
            v: Verification::new(
                settings,
                RouterId([0xa; 8]),
                SigningKey::from_bytes(&[1; 32]),
                1,
                1,
                now,
            ),
            now,
            ours: vec![XrouteView {
                prefix: "fd77::1/128"
                    .parse()
                    .unwrap_or(babel_wire::Prefix::host(IpAddr::V6(Ipv6Addr::UNSPECIFIED))),
                src_prefix: None,
                metric: Metric(0),
            }],
            neighbours: [("fe80::a", 2), ("fe80::b", 3)]
                .iter()
                .map(|(a, i)| NeighbourId {
                    ifindex: *i,
                    address: IpAddr::V6(parse(a)),
                })
                .collect(),
            routes: vec![
                route("fd77::4/128", "fe80::a", 2, 200, true),
                route("fd77::4/128", "fe80::b", 3, 300, false),
                route("fd77::5/128", "fe80::b", 3, 150, true),
            ],
        }
    }

    /// Runs one step and checks what must hold after it; returns what the router would do.
    pub fn step(&mut self, step: &Step) -> VerificationOutputs {
        let drops = self.drops();
        let out = match step {
            Step::Datagram {
                from,
                hop_limit,
                bytes,
            } => {
                let (src, scope) = source(*from);
                let src = parse(src);
                let malformed = self.v.malformed;
                let routes: &dyn ClaimRoutes = &self.routes;
                let out = self.v.on_datagram_from(
                    self.now,
                    (src, scope),
                    *hop_limit,
                    bytes,
                    &self.ours,
                    &self.neighbours,
                    Some(routes),
                );
                let from = NeighbourId {
                    ifindex: scope,
                    address: IpAddr::V6(src),
                };
                let over_link = src.is_unicast_link_local()
                    && *hop_limit == 255
                    && self.neighbours.contains(&from);
                assert!(
                    over_link || out.datagrams.is_empty(),
                    "a datagram from {src}%{scope} (hop limit {hop_limit}) made us send {:?}",
                    out.datagrams
                );
                for d in &out.datagrams {
                    let to = NeighbourId {
                        ifindex: d.scope,
                        address: IpAddr::V6(d.dst),
                    };
                    assert!(
                        d.hop_limit == 255 && self.neighbours.contains(&to),
                        "an answer off the link: {d:?}"
                    );
                }
                if tlvs(bytes).is_none() {
                    assert_eq!(self.v.malformed, malformed + 1, "not counted as malformed");
                }
                out
            }
            Step::Icmp {
                from,
                arrived_on,
                bytes,
            } => {
                let src = parse(source(*from).0);
                self.v.on_time_exceeded(
                    self.now,
                    src,
                    *arrived_on,
                    bytes,
                    TRACE_PORT,
                    &self.routes,
                );
                VerificationOutputs::default()
            }
            Step::Tick { centis } => {
                self.now = self.now + Duration::from_millis(u64::from(*centis) * 10);
                self.v.on_timer(self.now, &self.routes, THRESHOLD_PM)
            }
            Step::Used { address } => {
                self.v.mark_used(self.now, &[*address]);
                VerificationOutputs::default()
            }
        };
        for t in self.v.table_sizes() {
            assert!(
                t.within(),
                "{} past its bound: {} > {}",
                t.name,
                t.len,
                t.max
            );
        }
        let after = self.drops();
        for ((name, b), (_, a)) in drops.iter().zip(after.iter()) {
            assert!(a >= b, "{name} went down: {b} -> {a}");
        }
        out
    }

    /// The counters, by name: the verifier's drops and every one of ours.
    fn drops(&self) -> Vec<(&'static str, u64)> {
        let c = self.v.counters();
        let mut out = vec![
            ("malformed Remote IHUs", c.malformed),
            ("bad signatures", c.bad_signature),
            ("unbound keys", c.unbound_key),
            ("replayed", c.replayed),
            ("unexpected", c.unexpected),
            ("traces dropped", c.traces_dropped),
        ];
        out.extend(self.v.own_counters());
        out
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// Any input: steps read one after another ([`Step::read`]), each run and checked
/// ([`Harness::step`]).
pub fn verification_check(data: &[u8]) {
    let mut h = Harness::new();
    let mut rest = data;
    for _ in 0..MAX_STEPS {
        let Some((step, tail)) = Step::read(rest) else {
            break;
        };
        h.step(&step);
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use babel_wire::{Message, Packet, Prefix, RemoteHello};

    fn prefix(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn remote_hello_packet(h: RemoteHello) -> Vec<u8> {
        babel_wire::encode_packet(
            &Packet {
                messages: vec![Message::RemoteHello(h)],
                macs: Vec::new(),
            },
            babel_wire::Flavour::Standard,
        )
        .unwrap()
        .to_vec()
    }

    /// A minute of the router's life through every input path, as steps: its Remote Hellos
    /// answered by the destination (another router's verification, with the bound key), its
    /// traces answered by Time Exceeded, the kernel's used addresses, a Claim Request and a
    /// Justify Request from neighbour B over its link, a Check Failed from A, and a Remote
    /// Hello for our own prefix from a verifier past the mesh.
    fn story() -> Vec<Step> {
        let mut h = Harness::new();
        let mut dest = Verification::new(
            VerifySettings::default(),
            RouterId([0xd; 8]),
            destination_key(),
            1,
            2,
            h.now,
        );
        let dest_ours = vec![XrouteView {
            prefix: prefix("fd77::4/128"),
            src_prefix: None,
            metric: Metric(0),
        }];
        let mut steps = Vec::new();
        let run = |h: &mut Harness, steps: &mut Vec<Step>, s: Step| {
            let out = h.step(&s);
            steps.push(s);
            out
        };
        for s in [
            Step::Used {
                address: parse("fd77::4"),
            },
            Step::Used {
                address: parse("fd77::5"),
            },
        ] {
            run(&mut h, &mut steps, s);
        }
        let extras = |at: usize| -> Option<Step> {
            let over_link = |from: u8, bytes: Vec<u8>| Step::Datagram {
                from,
                hop_limit: 255,
                bytes,
            };
            let request = verify::ClaimRequest {
                prefix: prefix("fd77::4/128"),
                nonce: 99,
            };
            match at {
                100 => Some(over_link(
                    1,
                    crate::verification::packet(&verify::encode_request(
                        babel_wire::tlv::CLAIM_REQUEST,
                        &request,
                    )),
                )),
                110 => Some(over_link(
                    1,
                    crate::verification::packet(&verify::encode_request(
                        babel_wire::tlv::JUSTIFY_REQUEST,
                        &request,
                    )),
                )),
                120 => Some(over_link(
                    0,
                    crate::verification::packet(&verify::encode_check_failed(&prefix(
                        "fd77::4/128",
                    ))),
                )),
                130 => Some(Step::Datagram {
                    from: 3,
                    hop_limit: 60,
                    bytes: remote_hello_packet(RemoteHello {
                        seqno: 1,
                        interval: 100,
                        origin: RouterId([0xe; 8]),
                        via: RouterId([0xf; 8]),
                        prefix: prefix("fd77::1/128"),
                        timestamp: Some(5),
                    }),
                }),
                _ => None,
            }
        };
        // Ten seconds a cycle: six cycles.
        for tick in 0..600 {
            let out = run(&mut h, &mut steps, Step::Tick { centis: 10 });
            for d in &out.datagrams {
                if d.trace {
                    // Its hop limit ran out at the neighbour's next hop, which says so.
                    let icmp = time_exceeded(&d.bytes, parse("fd77::1"), d.hop_limit, TRACE_PORT);
                    let s = Step::Icmp {
                        from: 2,
                        arrived_on: Some(2),
                        bytes: icmp,
                    };
                    run(&mut h, &mut steps, s);
                } else if d.dst == parse("fd77::4") {
                    // Two links to the destination.
                    dest.on_datagram(h.now, parse("fd77::1"), 63, &d.bytes, &dest_ours);
                }
            }
            for a in dest.on_timer(h.now, &[], THRESHOLD_PM).datagrams {
                let s = Step::Datagram {
                    from: 2,
                    hop_limit: 62,
                    bytes: a.bytes,
                };
                run(&mut h, &mut steps, s);
            }
            if let Some(s) = extras(tick) {
                run(&mut h, &mut steps, s);
            }
        }
        steps
    }

    fn bytes_of(steps: &[Step]) -> Vec<u8> {
        let mut b = Vec::new();
        for s in steps {
            s.write(&mut b);
        }
        b
    }

    /// The story reaches the paths it is meant to (so that the fuzz target's corpus starts
    /// past the parsers), reads back as the same steps, and runs the same again.
    #[test]
    fn the_story_reaches_every_input_path_and_reads_back() {
        let steps = story();
        let mut h = Harness::new();
        let mut sent = 0;
        for s in &steps {
            sent += h.step(s).datagrams.len();
        }
        let c = h.v.counters();
        assert!(c.answers > 0, "no Remote IHU taken: {c:?}");
        assert!(
            c.traces_sent > 0 && c.traces_answered + c.traces_dropped > 0,
            "{c:?}"
        );
        assert_eq!(c.bad_signature + c.unbound_key + c.malformed, 0, "{c:?}");
        assert!(h.v.claims_signed >= 1, "no Signed Claim for B");
        assert_eq!(h.v.check_failed_refused, 0);
        assert_eq!(h.v.justify_refused, 0);
        assert_eq!(h.v.refused(), 0, "our prefix's Remote Hello refused");
        assert!(sent > 0);
        // What operators read in `dump json`: every table, with its entries and bound, the
        // route rows as many as the routes it lists.
        let j = serde_json::to_value(h.v.report(
            h.now,
            &crate::verification::EngineSide::new(800, &[]),
            |i| format!("if{i}"),
        ))
        .unwrap();
        let list = |key: &str| j.get(key).and_then(|x| x.as_array()).unwrap();
        let tables = list("tables");
        assert_eq!(tables.len(), h.v.table_sizes().len());
        let len_of = |name: &str| {
            tables
                .iter()
                .find(|t| t["name"] == name)
                .and_then(|t| t["len"].as_u64())
        };
        assert_eq!(len_of("route rows"), Some(list("routes").len() as u64));
        assert!(len_of("route rows") > Some(0));
        assert!(
            tables
                .iter()
                .all(|t| t["len"].as_u64().unwrap() <= t["max"].as_u64().unwrap()),
            "{tables:?}"
        );
        // Written and read back: the same steps.
        let b = bytes_of(&steps);
        let mut rest = &b[..];
        let mut read = Vec::new();
        while let Some((s, tail)) = Step::read(rest) {
            read.push(s);
            rest = tail;
        }
        assert_eq!(read, steps);
        // Run again from its octets: the same router (deterministic).
        let mut again = Harness::new();
        for s in &read {
            again.step(s);
        }
        assert_eq!(again.v.counters(), c);
        if let Some(dir) = std::env::var_os("FUZZ_SEED_DIR") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(std::path::Path::new(&dir).join("story"), &b).unwrap();
        }
    }

    /// What the fuzz target does, on a budget: each datagram and ICMPv6 message of the story
    /// with octets flipped, cut short or wrapped, given to the router as it was at that point.
    /// Nothing panics and every check of [`Harness::step`] holds.
    #[test]
    fn the_story_mutated_holds() {
        let steps = story();
        let mut h = Harness::new();
        let mut mutated = 0;
        let mut kinds = std::collections::BTreeMap::new();
        for s in &steps {
            let (Step::Datagram { bytes, .. } | Step::Icmp { bytes, .. }) = s else {
                h.step(s);
                continue;
            };
            // The first of each kind of TLV (or ICMPv6 message) only: the story repeats.
            let kind = (matches!(s, Step::Icmp { .. }), bytes.get(4).copied());
            let seen = kinds.entry(kind).or_insert(0);
            *seen += 1;
            if *seen == 1 {
                let mut variants = Vec::new();
                for i in 0..bytes.len() {
                    for mask in [0x01, 0xff] {
                        let mut b = bytes.clone();
                        if let Some(x) = b.get_mut(i) {
                            *x ^= mask;
                        }
                        variants.push(b);
                    }
                }
                for n in 0..bytes.len() {
                    variants.push(bytes.get(..n).unwrap().to_vec());
                }
                let mut long = bytes.clone();
                long.extend_from_slice(bytes);
                variants.push(long);
                for b in variants {
                    // From a neighbour over its link, the destination and a stranger.
                    for from in [1, 2, 3] {
                        let mut m = s.clone();
                        if let Step::Datagram {
                            from: f, bytes: x, ..
                        }
                        | Step::Icmp {
                            from: f, bytes: x, ..
                        } = &mut m
                        {
                            (*f, *x) = (from, b.clone());
                        }
                        h.clone().step(&m);
                        mutated += 1;
                    }
                }
            }
            h.step(s);
        }
        assert!(mutated > 3_000, "{mutated}");
    }

    /// Octets read as steps in any way they fall (every cut of the story's octets).
    #[test]
    fn any_octets_hold() {
        let b = bytes_of(&story());
        for start in (0..b.len()).step_by(97).take(64) {
            verification_check(b.get(start..).unwrap());
        }
        for seed in 0u32..64 {
            let junk: Vec<u8> = (0..2048u32)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
                .collect();
            verification_check(&junk);
        }
    }
}
