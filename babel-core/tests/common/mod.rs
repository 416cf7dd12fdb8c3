//! A one-engine harness: a router under test on interface 1 and fake neighbours that speak
//! real encoded packets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    dead_code
)]

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{
    Destination, Engine, EngineConfig, Event, Instant, InterfaceConfig, InterfaceKind, RouteChange,
    RouteKey,
};
use babel_wire::{
    DecodeOptions, EncodeOptions, Hello, Ihu, Message, Prefix, RouteRequest, RouterId,
    SeqnoRequest, Update, decode, encode,
};

pub const IF: u32 = 1;

pub fn rid(n: u8) -> RouterId {
    RouterId([2, 0, 0, 0, 0, 0, 0, n])
}

pub fn us() -> IpAddr {
    "fe80::1".parse().unwrap()
}

pub fn nb(n: u8) -> IpAddr {
    format!("fe80::{:x}", 0x100 + u16::from(n)).parse().unwrap()
}

pub fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

pub fn key(s: &str) -> RouteKey {
    RouteKey::new(pfx(s))
}

pub struct H {
    pub e: Engine,
    pub now: Instant,
    pub hello_seq: std::collections::BTreeMap<IpAddr, u16>,
}

pub fn config() -> EngineConfig {
    let mut c = EngineConfig::new(rid(1));
    c.seed = 1;
    c.seqno = Some(100);
    c
}

impl H {
    pub fn new() -> H {
        H::with(config(), InterfaceKind::Wired)
    }

    pub fn with(cfg: EngineConfig, kind: InterfaceKind) -> H {
        let now = Instant::from_secs(1000);
        let mut e = Engine::new(cfg, now).unwrap();
        e.interface_up(now, IF, InterfaceConfig::new("eth0", kind, us()));
        let mut h = H {
            e,
            now,
            hello_seq: Default::default(),
        };
        h.sent();
        h.kernel();
        h.events();
        h
    }

    pub fn recv(&mut self, from: IpAddr, msgs: &[Message]) {
        self.recv_to(from, Destination::Multicast, msgs);
    }

    pub fn recv_to(&mut self, from: IpAddr, dst: Destination, msgs: &[Message]) {
        for p in encode(msgs, &EncodeOptions::default()).unwrap() {
            self.e.handle_packet(self.now, IF, from, dst, &p);
        }
    }

    /// Runs every timer up to `now + d`.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        let mut guard = 0;
        while let Some(t) = self.e.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.e.handle_timeout(self.now);
            guard += 1;
            assert!(guard < 100_000, "timer livelock at {:?}", self.now);
        }
        self.now = target;
    }

    /// Packets sent since the last call, decoded.
    pub fn sent(&mut self) -> Vec<(Destination, Vec<Message>)> {
        let mut out = Vec::new();
        while let Some(t) = self.e.poll_transmit() {
            let d = decode(&t.bytes, &DecodeOptions::default()).unwrap();
            assert!(d.errors.is_empty(), "engine sent a bad TLV: {:?}", d.errors);
            out.push((t.dst, d.packet.messages));
        }
        out
    }

    /// Updates sent since the last call, with the interface each went out on.
    pub fn updates_by_iface(&mut self) -> Vec<(u32, Update)> {
        let mut out = Vec::new();
        while let Some(t) = self.e.poll_transmit() {
            let d = decode(&t.bytes, &DecodeOptions::default()).unwrap();
            for m in d.packet.messages {
                if let Message::Update(u) = m {
                    out.push((t.ifindex, u));
                }
            }
        }
        out
    }

    pub fn sent_messages(&mut self) -> Vec<Message> {
        self.sent().into_iter().flat_map(|(_, m)| m).collect()
    }

    pub fn kernel(&mut self) -> Vec<RouteChange> {
        let mut out = Vec::new();
        while let Some(r) = self.e.poll_route() {
            out.push(r);
        }
        out
    }

    pub fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(r) = self.e.poll_event() {
            out.push(r);
        }
        out
    }

    pub fn hello(&mut self, from: IpAddr) -> Message {
        let s = self.hello_seq.entry(from).or_insert(0);
        *s = s.wrapping_add(1);
        Message::Hello(Hello {
            unicast: false,
            seqno: *s,
            interval: 400,
            timestamp: None,
        })
    }

    /// Makes `from` a neighbour with link cost 96: two Hellos and an IHU for us.
    pub fn establish(&mut self, from: IpAddr) {
        let h1 = self.hello(from);
        self.recv(from, &[h1]);
        let h2 = self.hello(from);
        self.recv(from, &[h2, ihu(96)]);
    }

    pub fn installed(&self, k: &str) -> Option<babel_core::InstalledRoute> {
        self.e.installed(&key(k))
    }
}

pub fn ihu(rxcost: u16) -> Message {
    Message::Ihu(Ihu {
        address: Some(us()),
        rxcost,
        interval: 1200,
        timestamp: None,
    })
}

pub fn update(prefix: &str, router: u8, seqno: u16, metric: u16) -> Message {
    Message::Update(Update {
        prefix: Some(pfx(prefix)),
        v4_via_v6: false,
        src_prefix: None,
        interval: 1600,
        seqno,
        metric,
        router_id: Some(rid(router)),
        next_hop: None,
        price: None,
        path_rtt: None,
        diversity: None,
    })
}

pub fn priced(prefix: &str, router: u8, seqno: u16, metric: u16, price: u32) -> Message {
    match update(prefix, router, seqno, metric) {
        Message::Update(mut u) => {
            u.price = Some(price);
            Message::Update(u)
        }
        m => m,
    }
}

pub fn route_request(prefix: Option<&str>) -> Message {
    Message::RouteRequest(RouteRequest {
        prefix: prefix.map(pfx),
        v4_via_v6: false,
        src_prefix: None,
    })
}

pub fn seqno_request(prefix: &str, router: u8, seqno: u16, hop_count: u8) -> Message {
    Message::SeqnoRequest(SeqnoRequest {
        prefix: pfx(prefix),
        v4_via_v6: false,
        src_prefix: None,
        seqno,
        hop_count,
        router_id: rid(router),
    })
}

pub fn updates_in(msgs: &[Message]) -> Vec<Update> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}
