//! Responder-side DoS protection: load detection, cookies (mac2) and a
//! per-source handshake rate limiter.

use clock::Instant;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::{ct_eq, mac, xaead_seal};
use crate::messages;
use crate::policy::TokenBucket;
use crate::timers::{
    COOKIE_SECRET_MAX_AGE, HANDSHAKE_BURST_PER_IP, HANDSHAKES_PER_SECOND_PER_IP,
    UNDER_LOAD_DURATION,
};

/// Bound on the per-source limiter table (entries are cleared when full
/// and every second).
const MAX_SOURCES: usize = 4096;

pub(crate) struct CookieChecker {
    secret: [u8; 32],
    secret_born: Option<Instant>,
    under_load_until: Option<Instant>,
    window_start: Option<Instant>,
    window_count: u32,
    /// Handshake messages per second above which we are "under load".
    pub(crate) load_threshold: u32,
    /// Test/operator override.
    pub(crate) force_under_load: bool,
    per_source: HashMap<IpAddr, TokenBucket>,
    last_sweep: Option<Instant>,
}

fn addr_bytes(src: SocketAddr) -> Vec<u8> {
    let mut v = match src.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    v.extend_from_slice(&src.port().to_be_bytes());
    v
}

impl CookieChecker {
    pub(crate) fn new(load_threshold: u32) -> Self {
        CookieChecker {
            secret: [0; 32],
            secret_born: None,
            under_load_until: None,
            window_start: None,
            window_count: 0,
            load_threshold,
            force_under_load: false,
            per_source: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Counts one handshake message and reports whether we are under load.
    pub(crate) fn note_handshake(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(s) if now.saturating_since(s) < Duration::from_secs(1) => {
                self.window_count = self.window_count.saturating_add(1);
            }
            _ => {
                self.window_start = Some(now);
                self.window_count = 1;
            }
        }
        if self.window_count > self.load_threshold {
            self.under_load_until = Some(now + UNDER_LOAD_DURATION);
        }
        self.force_under_load || self.under_load_until.is_some_and(|t| now < t)
    }

    fn rotate<R: RngCore + CryptoRng>(&mut self, now: Instant, rng: &mut R) {
        let stale = self
            .secret_born
            .is_none_or(|b| now.saturating_since(b) >= COOKIE_SECRET_MAX_AGE);
        if stale {
            rng.fill_bytes(&mut self.secret);
            self.secret_born = Some(now);
        }
    }

    fn cookie<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        rng: &mut R,
    ) -> [u8; 16] {
        self.rotate(now, rng);
        mac(&self.secret, &[&addr_bytes(src)])
    }

    /// Is mac2 on `msg` valid for `src`?
    pub(crate) fn mac2_valid<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        msg: &[u8],
        mac2_off: usize,
        rng: &mut R,
    ) -> bool {
        let cookie = self.cookie(now, src, rng);
        let expect = crate::noise::mac_prefix(&cookie, msg, mac2_off);
        msg.get(mac2_off..mac2_off + 16)
            .is_some_and(|m| ct_eq(m, &expect))
    }

    /// Per-source token bucket (only consulted under load).
    pub(crate) fn allow_source(&mut self, now: Instant, src: IpAddr) -> bool {
        if self
            .last_sweep
            .is_none_or(|t| now.saturating_since(t) >= Duration::from_secs(1))
            || self.per_source.len() >= MAX_SOURCES
        {
            // Buckets refill to full within a second; forgetting them is
            // equivalent to refilling.
            self.per_source.clear();
            self.last_sweep = Some(now);
        }
        self.per_source
            .entry(src)
            .or_insert_with(TokenBucket::new)
            .take(
                now,
                u64::from(HANDSHAKES_PER_SECOND_PER_IP),
                u64::from(HANDSHAKE_BURST_PER_IP),
                1,
            )
    }

    /// Writes a cookie reply for the message `msg` (whose sender index is
    /// `receiver` and whose mac1 sits at `mac1_off`).
    #[allow(clippy::too_many_arguments)] // internal; every input is distinct
    pub(crate) fn cookie_reply<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        receiver: u32,
        msg: &[u8],
        mac1_off: usize,
        our_cookie_key: &[u8; 32],
        rng: &mut R,
        out: &mut [u8; messages::COOKIE_REPLY_LEN],
    ) {
        let cookie = self.cookie(now, src, rng);
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let mac1 = msg.get(mac1_off..mac1_off + 16).unwrap_or(&[]);
        let mut enc = [0u8; 32];
        xaead_seal(our_cookie_key, &nonce, &cookie, mac1, &mut enc);
        messages::put_header(out, messages::TYPE_COOKIE_REPLY);
        messages::put(out, 4, &receiver.to_le_bytes());
        messages::put(out, 8, &nonce);
        messages::put(out, 32, &enc);
    }
}
