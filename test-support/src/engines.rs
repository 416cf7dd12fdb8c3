//! Two `babel-core` engines on one lossless link, for engine-level tests: every transmit of one
//! is handed to the other at the instant it is sent (unicast only to its addressee), and time
//! advances from timer to timer.

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{Destination, Engine, Instant, Transmit};

/// One engine and the link-local address it sends from.
pub struct Node {
    pub e: Engine,
    pub addr: IpAddr,
}

/// Two engines on interface `ifindex` of one link.
pub struct EnginePair {
    pub a: Node,
    pub b: Node,
    /// Interface index both engines know the link by.
    pub ifindex: u32,
    /// The link's clock.
    pub now: Instant,
    /// Every transmit of `b`, in order (what an attacker on the link captures).
    pub captured: Vec<Transmit>,
}

impl EnginePair {
    /// Joins `a` and `b`, whose interface `ifindex` is up, with the clock at `now`.
    pub fn new(a: Node, b: Node, ifindex: u32, now: Instant) -> EnginePair {
        EnginePair {
            a,
            b,
            ifindex,
            now,
            captured: Vec::new(),
        }
    }

    /// Hands every pending transmit to the other engine until both are quiet (at most 50
    /// rounds, so two engines that answer each other forever cannot hang a test).
    pub fn deliver(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some(t) = self.a.e.poll_transmit() {
                moved = true;
                if let Some(dst) = received_as(&t, self.b.addr) {
                    self.b
                        .e
                        .handle_packet(self.now, self.ifindex, self.a.addr, dst, &t.bytes);
                }
            }
            while let Some(t) = self.b.e.poll_transmit() {
                moved = true;
                if let Some(dst) = received_as(&t, self.a.addr) {
                    self.a
                        .e
                        .handle_packet(self.now, self.ifindex, self.b.addr, dst, &t.bytes);
                }
                self.captured.push(t);
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs both engines for `d`: delivers, then jumps to the earlier of their next timers,
    /// until `d` has passed.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.deliver();
            let next = [self.a.e.poll_timeout(), self.b.e.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.e.handle_timeout(self.now);
                    self.b.e.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
    }
}

/// How `peer` receives transmit `t`: multicast as multicast, unicast only when addressed to it.
pub fn received_as(t: &Transmit, peer: IpAddr) -> Option<Destination> {
    match t.dst {
        Destination::Multicast => Some(Destination::Multicast),
        Destination::Unicast(a) if a == peer => Some(Destination::Unicast(a)),
        Destination::Unicast(_) => None,
    }
}
