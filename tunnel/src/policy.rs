//! Per-peer forwarding policy, enforced on data packets.

use clock::Instant;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What the tunnel does with data packets to/from a peer. Keepalives and
/// handshakes are never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ForwardingPolicy {
    /// Forward everything.
    #[default]
    Allow,
    /// Drop every data packet (counted).
    Block,
    /// Token bucket over plaintext bytes, separately per direction.
    RateLimit {
        /// Sustained rate.
        bytes_per_sec: u64,
        /// Bucket depth.
        burst: u64,
    },
}

/// A local UDP service (address, port) on this end of the tunnel whose packets the
/// [`ForwardingPolicy`] never drops or slows: what the peer sends to it and what it sends to the
/// peer. An exit uses it for its billing and payment service, so that throttling a user who owes
/// never blocks the payment that would lift the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyExempt {
    /// The service's address on this end (inside the tunnel).
    pub address: IpAddr,
    /// Its UDP port.
    pub udp_port: u16,
}

impl PolicyExempt {
    /// Whether `packet` (an inner IP packet) is UDP to the service (`inbound`: from the peer) or
    /// from it (to the peer). A fragment (no UDP header) is not exempt.
    pub fn matches(&self, packet: &[u8], inbound: bool) -> bool {
        let Some((src, dst, udp)) = udp_of(packet) else {
            return false;
        };
        let Some(ports) = udp.first_chunk::<4>() else {
            return false;
        };
        let sport = u16::from_be_bytes([ports[0], ports[1]]);
        let dport = u16::from_be_bytes([ports[2], ports[3]]);
        if inbound {
            dst == self.address && dport == self.udp_port
        } else {
            src == self.address && sport == self.udp_port
        }
    }
}

/// Source, destination and UDP header onwards of an unfragmented IPv4 or IPv6 UDP packet (IPv6
/// without extension headers).
fn udp_of(p: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    match p.first()? >> 4 {
        4 => {
            let h: &[u8; 20] = p.first_chunk()?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
            if h[9] != 17 || frag != 0 || ihl < 20 {
                return None;
            }
            let src = std::net::Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = std::net::Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            Some((src.into(), dst.into(), p.get(ihl..)?))
        }
        6 => {
            let h: &[u8; 40] = p.first_chunk()?;
            if h[6] != 17 {
                return None;
            }
            let s: [u8; 16] = h.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = h.get(24..40)?.try_into().ok()?;
            Some((
                std::net::Ipv6Addr::from(s).into(),
                std::net::Ipv6Addr::from(d).into(),
                p.get(40..)?,
            ))
        }
        _ => None,
    }
}

/// A token bucket driven by the caller's clock.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn new() -> Self {
        TokenBucket {
            tokens: 0.0,
            last: None,
        }
    }

    /// Takes `n` tokens if available.
    pub(crate) fn take(&mut self, now: Instant, rate: u64, burst: u64, n: u64) -> bool {
        let burst = burst as f64;
        match self.last {
            None => self.tokens = burst,
            Some(last) => {
                let dt = now.saturating_since(last).as_secs_f64();
                self.tokens = (self.tokens + dt * rate as f64).min(burst);
            }
        }
        self.last = Some(now);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

/// Policy state for one direction.
#[derive(Debug, Clone)]
pub(crate) struct PolicyGate {
    bucket: TokenBucket,
}

impl PolicyGate {
    pub(crate) fn new() -> Self {
        PolicyGate {
            bucket: TokenBucket::new(),
        }
    }

    pub(crate) fn admit(&mut self, policy: ForwardingPolicy, now: Instant, bytes: usize) -> bool {
        match policy {
            ForwardingPolicy::Allow => true,
            ForwardingPolicy::Block => false,
            ForwardingPolicy::RateLimit {
                bytes_per_sec,
                burst,
            } => self.bucket.take(now, bytes_per_sec, burst, bytes as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_refills_with_time() {
        let t0 = clock::now();
        let mut g = PolicyGate::new();
        let p = ForwardingPolicy::RateLimit {
            bytes_per_sec: 1000,
            burst: 1500,
        };
        assert!(g.admit(p, t0, 1000));
        assert!(!g.admit(p, t0, 1000));
        assert!(g.admit(p, t0 + Duration::from_millis(600), 1000));
        assert!(!g.admit(p, t0 + Duration::from_millis(600), 200));
        assert!(g.admit(p, t0 + Duration::from_secs(10), 1500));
        assert!(!g.admit(ForwardingPolicy::Block, t0, 1));
        assert!(g.admit(ForwardingPolicy::Allow, t0, 1 << 30));
    }

    #[allow(clippy::indexing_slicing)]
    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, frag: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0];
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        p
    }

    #[test]
    #[allow(clippy::unwrap_used, clippy::indexing_slicing)]
    fn only_udp_to_and_from_the_service_is_exempt() {
        let ex = PolicyExempt {
            address: "10.0.0.1".parse().unwrap(),
            udp_port: 4700,
        };
        let (me, peer, other) = ([10, 0, 0, 1], [10, 0, 0, 5], [198, 51, 100, 1]);
        assert!(ex.matches(&udp4(peer, me, 9999, 4700, 0), true));
        assert!(ex.matches(&udp4(me, peer, 4700, 9999, 0), false));
        // The right port at another address, the wrong port, the wrong way, fragments, TCP and
        // garbage are policed as usual.
        assert!(!ex.matches(&udp4(peer, other, 9999, 4700, 0), true));
        assert!(!ex.matches(&udp4(peer, me, 9999, 4701, 0), true));
        assert!(!ex.matches(&udp4(peer, me, 4700, 9999, 0), true));
        assert!(!ex.matches(&udp4(me, peer, 9999, 4700, 0), false));
        assert!(!ex.matches(&udp4(peer, me, 9999, 4700, 0x2000), true));
        let mut tcp = udp4(peer, me, 9999, 4700, 0);
        tcp[9] = 6;
        assert!(!ex.matches(&tcp, true));
        assert!(!ex.matches(&[0x45, 0, 0], true));
        assert!(!ex.matches(&[], false));
    }
}
