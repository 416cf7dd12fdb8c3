//! Neighbour state: Hello histories (RFC 8966 Appendix A.1) and link cost (§3.4.3, A.2).

use std::net::IpAddr;
use std::time::Duration;

use babel_wire::{INFINITY, Seqno};

use crate::config::InterfaceConfig;
use crate::rtt;
use crate::time::{Instant, from_centis};

/// babeld drops an IHU's txcost after this long whatever its interval.
const IHU_GIVE_UP: Duration = Duration::from_secs(180);

/// A 16-bit Hello history (RFC 8966 Appendix A.1): bit 15 is the most recent Hello.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct History {
    pub reach: u16,
    pub seqno: Option<u16>,
    /// When the last Hello (or the last one accounted as missed) was expected.
    pub time: Instant,
    /// Advertised interval in centiseconds; 0 = unknown.
    pub interval: u16,
}

/// Outcome of feeding a Hello into a history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HelloOutcome {
    /// The history changed in a way that may change the link cost.
    pub changed: bool,
    /// The neighbour rebooted (seqno went back by more than 8): history was reset.
    pub rebooted: bool,
}

impl History {
    /// RFC 8966 A.1: a Hello with `seqno` and `interval` (centiseconds, 0 = unscheduled) arrived.
    /// babeld's rules: a seqno more than 8 behind means the neighbour rebooted (history reset);
    /// a slightly late Hello shifts the history left; missing seqnos count as missed Hellos.
    pub fn hello(&mut self, now: Instant, seqno: u16, interval: u16) -> HelloOutcome {
        let mut out = HelloOutcome::default();
        let mut missed: i32 = 0;
        if let (Some(last), true) = (self.seqno, self.reach != 0) {
            missed = Seqno(seqno).minus(Seqno(last)) - 1;
            // A jump far beyond what the elapsed time explains is a reboot too (a restarted
            // neighbour draws a new random seqno that may land ahead of the old one).
            let elapsed =
                u64::try_from(now.saturating_since(self.time).as_micros()).unwrap_or(u64::MAX);
            let explained = if self.interval == 0 {
                u64::MAX
            } else {
                elapsed / (u64::from(self.interval) * 10_000)
            };
            let far_ahead = u64::try_from(missed).is_ok_and(|m| m > explained.saturating_add(8));
            if missed < -8 || far_ahead {
                self.reach = 0;
                missed = 0;
                out.changed = true;
                out.rebooted = true;
            } else if missed < 0 {
                let shift = u32::try_from(-missed).unwrap_or(16);
                self.reach = self.reach.checked_shl(shift).unwrap_or(0);
                missed = 0;
                out.changed = true;
            }
        }
        if missed > 0 {
            self.reach = if missed >= 16 {
                0
            } else {
                self.reach >> missed
            };
            out.changed = true;
        }
        self.seqno = Some(seqno);
        self.reach = (self.reach >> 1) | 0x8000;
        if self.reach & 0xFC00 != 0xFC00 {
            out.changed = true;
        }
        if interval != 0 {
            self.time = now;
            self.interval = interval;
        }
        out
    }

    /// RFC 8966 A.1 missed-Hello detection: a Hello is counted missed once 1.7 intervals have
    /// passed without it (babeld). Returns true if the history changed.
    pub fn check_missed(&mut self, now: Instant) -> bool {
        if self.reach == 0 {
            return false;
        }
        let missed: u64 = if self.interval == 0 {
            0
        } else {
            let iv = u64::from(self.interval) * 10_000; // µs
            let elapsed = now.saturating_since(self.time).as_micros();
            let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
            elapsed.saturating_sub(iv * 7 / 10) / iv
        };
        if missed == 0 {
            return false;
        }
        let iv = from_centis(self.interval);
        self.time = self.time + iv * u32::try_from(missed.min(16)).unwrap_or(16);
        self.reach = if missed >= 16 {
            0
        } else {
            self.reach >> missed
        };
        true
    }

    /// When [`History::check_missed`] would next count a missed Hello.
    pub fn next_miss(&self) -> Option<Instant> {
        if self.reach == 0 || self.interval == 0 {
            return None;
        }
        Some(self.time + from_centis(self.interval) * 17 / 10)
    }
}

/// babeld's 2-out-of-3 rule (RFC 8966 A.2.1).
fn two_three(reach: u16) -> bool {
    match reach & 0xC000 {
        0xC000 => true,
        0 => false,
        _ => reach & 0x2000 != 0,
    }
}

/// A neighbour (RFC 8966 §3.2.4).
#[derive(Clone, Debug)]
pub(crate) struct Neighbour {
    pub id: u64,
    pub ifindex: u32,
    pub address: IpAddr,
    pub hello: History,
    pub uhello: History,
    /// Last rxcost received in an IHU.
    pub txcost: u16,
    pub ihu_time: Option<Instant>,
    /// Advertised IHU interval in centiseconds.
    pub ihu_interval: u16,
    /// Cached link cost and rxcost (recomputed by [`Neighbour::refresh_cost`]).
    pub cost: u16,
    pub rxcost: u16,
    /// rxcost last put in an IHU to this neighbour.
    pub rxcost_sent: u16,
    /// RFC 9616: the last Hello timestamp we received from it, and our receive time (as a
    /// 32-bit µs timestamp, and as an instant for its age).
    pub hello_ts: Option<(u32, u32)>,
    pub hello_ts_time: Instant,
    /// Smoothed RTT (µs precision) and the time of its last sample.
    pub rtt: Option<Duration>,
    pub rtt_time: Instant,
    /// Next unicast Hello seqno (its time is the engine's `Timer::UnicastHello`).
    pub uhello_seqno: u16,
    /// Unicast Hellos sent (IHUs ride on every third one on `unicast` interfaces).
    pub uhello_count: u32,
    /// Put an IHU in the next unicast Hello (a new neighbour on a `unicast` interface).
    pub ihu_asap: bool,
    /// When the last unicast Hello arrived, scheduled or not: babeld sends unscheduled ones
    /// (interval 0) with its IHUs on `unicast` interfaces, which never move `uhello.time`.
    pub uheard: Instant,
    /// A configured neighbour (our `neighbour` option): never flushed for silence.
    pub configured: bool,
    /// Accuracy, per mille.
    pub accuracy: u16,
    pub limit_logged: bool,
    pub created: Instant,
    /// When the link cost first became finite (the first IHU, or the first Hellos of a
    /// configured neighbour): routes learned before it never had a usable metric, so selection
    /// takes their first finite metric as it takes a new route's, unsmoothed.
    pub first_up: Option<Instant>,
}

impl Neighbour {
    /// Proved itself (issue 11: spoofed Hellos): configured, or it has heard us (an IHU came
    /// back, so the link is bidirectional and, on an authenticated interface, its packets
    /// carried a valid MAC). One spoofed Hello proves nothing.
    pub fn is_proven(&self) -> bool {
        self.configured || self.ihu_time.is_some()
    }

    pub fn new(id: u64, ifindex: u32, address: IpAddr, now: Instant) -> Neighbour {
        Neighbour {
            id,
            ifindex,
            address,
            hello: History {
                time: now,
                ..History::default()
            },
            uhello: History {
                time: now,
                ..History::default()
            },
            txcost: INFINITY,
            ihu_time: None,
            ihu_interval: 0,
            cost: INFINITY,
            rxcost: INFINITY,
            rxcost_sent: INFINITY,
            hello_ts: None,
            hello_ts_time: now,
            rtt: None,
            rtt_time: now,
            uhello_seqno: 0,
            uhello_count: 0,
            ihu_asap: false,
            uheard: now,
            configured: false,
            accuracy: 1000,
            limit_logged: false,
            created: now,
            first_up: None,
        }
    }

    /// Receive cost (RFC 8966 A.2): babeld's 2-out-of-3 on either history, or babeld's ETX with
    /// the two most recent Hellos weighted more, penalised when the last Hello is over 40 s old.
    pub fn compute_rxcost(&self, now: Instant, ifc: &InterfaceConfig) -> u16 {
        let delay = now.saturating_since(self.hello.time);
        let udelay = now.saturating_since(self.uhello.time.max(self.uheard));
        let stale = Duration::from_secs(180);
        let dead = (self.hello.reach & 0xFFF0 == 0 || delay >= stale)
            && (self.uhello.reach & 0xFFF0 == 0 || udelay >= stale);
        if dead {
            return INFINITY;
        }
        if ifc.link_quality {
            let r = u32::from(self.hello.reach);
            let sreach = ((r & 0x8000) >> 2) + ((r & 0x4000) >> 1) + (r & 0x3FFF);
            let mut cost = 0x8000u64 * u64::from(ifc.rxcost) / (u64::from(sreach) + 1);
            let d = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            if d >= 40_000 {
                cost = (cost.saturating_mul(d - 20_000) + 10_000) / 20_000;
            }
            u16::try_from(cost.min(u64::from(INFINITY))).unwrap_or(INFINITY)
        } else if two_three(self.hello.reach) || two_three(self.uhello.reach) {
            ifc.rxcost
        } else {
            INFINITY
        }
    }

    /// Transmit cost: infinity once no IHU arrived for 3 advertised IHU intervals (babeld; the
    /// RFC's IHU hold time is 3.5 ×, §3.4.2 / Appendix B).
    ///
    /// babeld's rule (neighbour.c `reset_txcost`): an IHU is trusted for 3 of its advertised
    /// intervals; after that it is dropped only if 10 intervals or 180 s passed, or none of the
    /// last 12 Hellos arrived (a neighbour we still hear has probably just lost an IHU or two).
    pub fn effective_txcost(&self, now: Instant) -> u16 {
        let Some(t) = self.ihu_time else {
            return INFINITY;
        };
        let delay = now.saturating_since(t);
        let iv = from_centis(self.ihu_interval);
        if self.ihu_interval > 0 && delay < iv * 3 {
            return self.txcost;
        }
        let hellos_lost = self.hello.reach & 0xFFF0 == 0 && self.uhello.reach & 0xFFF0 == 0;
        if delay >= IHU_GIVE_UP || hellos_lost || (self.ihu_interval > 0 && delay >= iv * 10) {
            INFINITY
        } else {
            self.txcost
        }
    }

    /// When the txcost could next expire (for scheduling the next check).
    pub fn next_txcost_check(&self, now: Instant) -> Option<Instant> {
        let t = self.ihu_time?;
        let iv = from_centis(self.ihu_interval);
        let mut candidates = vec![t + IHU_GIVE_UP];
        if self.ihu_interval > 0 {
            candidates.extend([t + iv * 3, t + iv * 10]);
        }
        candidates.into_iter().filter(|c| *c > now).min()
    }

    /// The smoothed RTT while it is valid: its last sample is younger than
    /// [`rtt::RTT_VALIDITY`] (babeld `valid_rtt`, 180 s).
    pub fn valid_rtt(&self, now: Instant) -> Option<Duration> {
        self.rtt
            .filter(|_| now.saturating_since(self.rtt_time) < rtt::RTT_VALIDITY)
    }

    /// RFC 9616 §3.1: feeds one RTT sample (µs) into the moving average with babeld's
    /// `rtt-decay` (see [`rtt::smooth`]).
    pub fn rtt_sample(&mut self, now: Instant, sample_us: u32, decay: u16) {
        let old = self
            .valid_rtt(now)
            .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        let v = rtt::smooth(old, sample_us, decay);
        self.rtt = Some(Duration::from_micros(u64::from(v)));
        self.rtt_time = now;
    }

    /// RFC 9616 §3.2 / babeld `neighbour_rttcost`: linear penalty between rtt-min and rtt-max,
    /// 0 without a valid RTT.
    pub fn rttcost(&self, now: Instant, ifc: &InterfaceConfig) -> u16 {
        self.valid_rtt(now).map_or(0, |d| {
            rtt::cost(u32::try_from(d.as_micros()).unwrap_or(u32::MAX), ifc)
        })
    }

    /// Recomputes rxcost and cost (RFC 8966 §3.4.3, babeld `neighbour_cost`); returns whether
    /// the cost changed.
    pub fn refresh_cost(&mut self, now: Instant, ifc: &InterfaceConfig) -> bool {
        self.rxcost = self.compute_rxcost(now, ifc);
        let a = u32::from(self.effective_txcost(now));
        let b = u32::from(self.rxcost);
        let inf = u32::from(INFINITY);
        let cost = if a >= inf || b >= inf {
            inf
        } else {
            let base = if !ifc.link_quality || (a < 256 && b < 256) {
                a
            } else {
                (a.max(256) * b.max(256) + 128) >> 8
            };
            (base + u32::from(self.rttcost(now, ifc))).min(inf)
        };
        let cost = u16::try_from(cost).unwrap_or(INFINITY);
        let changed = cost != self.cost;
        self.cost = cost;
        if cost < INFINITY && self.first_up.is_none() {
            self.first_up = Some(now);
        }
        changed
    }
}

/// When an interface's neighbour table is full, the neighbour a newcomer replaces: the unproven
/// one ([`Neighbour::is_proven`]) created first. Proven neighbours are never evicted, so a flood
/// of spoofed one-Hello neighbours cannot lock a real neighbour out, nor push one out that has
/// answered; `None` when every neighbour has proved itself.
pub(crate) fn eviction_victim<'a>(
    on_interface: impl Iterator<Item = &'a Neighbour>,
) -> Option<u64> {
    on_interface
        .filter(|n| !n.is_proven())
        .min_by_key(|n| (n.created, n.id))
        .map(|n| n.id)
}

/// True for a neighbour that has not proved itself ([`Neighbour::is_proven`]) and whose last
/// three Hellos, multicast and unicast, were all missed: a spoofed one-Hello neighbour, three
/// Hello intervals after its Hello, instead of the 16 it takes its history to run dry.
pub(crate) fn unproven_and_silent(n: &Neighbour) -> bool {
    let reach = n.hello.reach | n.uhello.reach;
    !n.is_proven() && reach != 0 && reach & 0xE000 == 0
}
