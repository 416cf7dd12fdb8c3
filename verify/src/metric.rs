//! The verifiable metric (`spec/verify.md` §1): what a verifier measures end to end and how it is
//! compared with the metric a neighbour advertised.

use std::time::Duration;

use babel_wire::INFINITY;

/// The largest measured cost `c`: a path too costly to measure, and the cost a check scores
/// for a black hole (`spec/verify.md` §3.4). One under [`INFINITY`], so `m/c` stays defined.
pub const MAX_COST: u16 = INFINITY - 1;

/// How the mesh's link costs are built, so that the measured cost `c` is a lower bound of what an
/// honest route costs (`spec/verify.md` §1.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostModel {
    /// The lowest cost of one honest hop: babeld's nominal cost of the link type the mesh uses
    /// (96 wired and tunnel, 256 wireless). Every honest link costs at least this.
    pub hop_cost: u16,
    /// Whether link costs grow with loss (babeld's ETX on wireless links: 256 / (p_in·p_out)).
    /// Then the end-to-end delivery ratio enters `c`; on 2-out-of-3 links it must not.
    pub loss_in_metric: bool,
    /// Confidence, in standard deviations, of the upper bound taken on the delivery ratio (so
    /// that sampling noise lowers `c`, never raises it).
    pub z: f64,
    /// RFC 9616 RTT penalty of the mesh's links, if link costs include one.
    pub rtt: Option<RttPenalty>,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            hop_cost: 96,
            loss_in_metric: false,
            z: 2.0,
            rtt: None,
        }
    }
}

/// babeld's RTT penalty of one link: 0 below `rtt_min`, `max_penalty` above `rtt_max`, linear
/// between (RFC 9616 §4.1, babeld `rtt-min`/`rtt-max`/`max-rtt-penalty`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttPenalty {
    /// Below this RTT a link has no penalty.
    pub rtt_min: Duration,
    /// At and above this RTT a link has the whole penalty.
    pub rtt_max: Duration,
    /// The largest penalty.
    pub max_penalty: u16,
}

impl RttPenalty {
    /// The penalty of one link with round-trip time `rtt`.
    pub fn of(&self, rtt: Duration) -> u16 {
        if rtt <= self.rtt_min {
            return 0;
        }
        if rtt >= self.rtt_max || self.rtt_max <= self.rtt_min {
            return self.max_penalty;
        }
        let num = (rtt - self.rtt_min).as_micros();
        let den = (self.rtt_max - self.rtt_min).as_micros().max(1);
        u16::try_from(u128::from(self.max_penalty) * num / den).unwrap_or(self.max_penalty)
    }
}

/// What one probe session measured (`spec/verify.md` §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// Links crossed by the Remote Hellos, from the IPv6 hop limit the destination read.
    pub hops: u8,
    /// Remote Hellos the verifier sent in the session.
    pub sent: u16,
    /// Remote Hellos the destination received (signed count).
    pub received: u16,
    /// Round-trip time from the Remote IHU's timestamps (RFC 9616 arithmetic), if measured.
    pub rtt: Option<Duration>,
}

impl CostModel {
    /// The measured cost `c` of the path (`spec/verify.md` §1.2), or `None` when nothing arrived.
    ///
    /// `c = hops·h·p̂^(−1/hops) + f(R)`: with per-link delivery ratios `p_i` an honest ETX path
    /// costs at least `Σ h/p_i ≥ hops·h·(Π p_i)^(−1/hops)` (arithmetic and geometric means), and
    /// the end-to-end delivery ratio is `Π p_i`; `p̂` is an upper confidence bound on it. The RTT
    /// penalty `f` is zero up to `rtt_min`, then concave, so `Σ f(r_i) ≥ f(R − (hops−1)·rtt_min)`
    /// for a path of round-trip time `R = Σ r_i`.
    pub fn cost(&self, m: &Measurement) -> Option<u16> {
        if m.received == 0 || m.sent == 0 || m.hops == 0 {
            return None;
        }
        let hops = f64::from(m.hops);
        let mut c = hops * f64::from(self.hop_cost);
        if self.loss_in_metric {
            let p = delivery_upper_bound(m.received.min(m.sent), m.sent, self.z);
            c *= p.powf(-1.0 / hops);
        }
        if let (Some(pen), Some(rtt)) = (self.rtt, m.rtt) {
            let slack = pen.rtt_min.saturating_mul(u32::from(m.hops) - 1);
            c += f64::from(pen.of(rtt.saturating_sub(slack)));
        }
        Some(clamp_metric(c))
    }
}

/// Wilson score upper bound of a binomial proportion `k/n` at `z` standard deviations.
pub fn delivery_upper_bound(k: u16, n: u16, z: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let n = f64::from(n);
    let p = f64::from(k) / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre + spread) / (1.0 + z2 / n)).clamp(f64::MIN_POSITIVE, 1.0)
}

fn clamp_metric(c: f64) -> u16 {
    if !c.is_finite() || c >= f64::from(MAX_COST) {
        MAX_COST
    } else {
        c.round().max(1.0) as u16
    }
}

/// The paper's per-check accuracy `a = min(m/c, 1)` ("Accuracy score"), where `m` is the metric
/// of the route through the neighbour as we compute it (its advertised metric plus our link cost
/// to it), so that it covers the same path as `c`.
pub fn accuracy(m: u16, c: u16) -> f64 {
    if c == 0 {
        return 1.0;
    }
    (f64::from(m) / f64::from(c)).min(1.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn meas(hops: u8, sent: u16, received: u16) -> Measurement {
        Measurement {
            hops,
            sent,
            received,
            rtt: None,
        }
    }

    /// §1.2: on 2-out-of-3 links the cost is hop count × nominal cost, whatever the loss.
    #[test]
    fn wired_cost_is_hops_times_nominal() {
        let m = CostModel::default();
        assert_eq!(m.cost(&meas(3, 20, 20)), Some(288));
        assert_eq!(m.cost(&meas(3, 20, 12)), Some(288));
        assert_eq!(m.cost(&meas(3, 20, 0)), None);
    }

    /// §1.2: with ETX links, the cost is a lower bound of every honest path with that delivery.
    #[test]
    fn etx_cost_is_lower_bound_of_honest_paths() {
        let model = CostModel {
            hop_cost: 256,
            loss_in_metric: true,
            z: 0.0,
            rtt: None,
        };
        // Three links with delivery 0.9, 0.8, 1.0 both ways: honest babeld cost 256/(p·p) each.
        let ps = [0.9f64, 0.8, 1.0];
        let honest: f64 = ps.iter().map(|p| 256.0 / (p * p)).sum();
        let e2e: f64 = ps.iter().product();
        let received = (e2e * 1000.0).round() as u16;
        let c = model.cost(&meas(3, 1000, received)).unwrap_or(0);
        assert!(f64::from(c) <= honest, "{c} > {honest}");
        assert!(f64::from(c) > 3.0 * 256.0);
    }

    /// §1.2: sampling noise lowers c (upper confidence bound on delivery).
    #[test]
    fn confidence_bound_lowers_cost() {
        let mut model = CostModel {
            hop_cost: 256,
            loss_in_metric: true,
            z: 0.0,
            rtt: None,
        };
        let exact = model.cost(&meas(2, 20, 15)).unwrap_or(0);
        model.z = 2.0;
        let bounded = model.cost(&meas(2, 20, 15)).unwrap_or(u16::MAX);
        assert!(bounded < exact);
        assert!(delivery_upper_bound(20, 20, 2.0) <= 1.0);
        assert!(delivery_upper_bound(0, 20, 2.0) > 0.0);
    }

    /// §1.2: f(a + b − rtt_min) never exceeds f(a) + f(b), so the RTT term is a lower bound.
    #[test]
    fn rtt_penalty_lower_bound() {
        let pen = RttPenalty {
            rtt_min: Duration::from_millis(10),
            rtt_max: Duration::from_millis(120),
            max_penalty: 96,
        };
        for (a, b) in [(5u64, 50u64), (60, 70), (200, 3), (11, 11)] {
            let sum = pen.of(Duration::from_millis(a)) + pen.of(Duration::from_millis(b));
            assert!(
                pen.of(Duration::from_millis(a + b - 10)) <= sum + 1,
                "{a} {b}"
            );
        }
        let model = CostModel {
            rtt: Some(pen),
            ..CostModel::default()
        };
        let mut m = meas(1, 10, 10);
        m.rtt = Some(Duration::from_millis(120));
        assert_eq!(model.cost(&m), Some(96 + 96));
    }

    /// The paper's a = min(m/c, 1).
    #[test]
    fn accuracy_is_capped_ratio() {
        assert!((accuracy(100, 200) - 0.5).abs() < 1e-9);
        assert!((accuracy(300, 200) - 1.0).abs() < 1e-9);
        assert!((accuracy(5, 0) - 1.0).abs() < 1e-9);
    }
}
