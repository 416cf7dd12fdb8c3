//! Attribution of a failing check (`spec/verify.md` §4.2.1): from the session's traces (the
//! neighbour's next hop on the route under test) and the routes we hear, whom the failure
//! blames: the neighbour as the origin of the lie, a relay of a lie told further on, a next
//! hop that routes through us, or nobody.

use super::*;

impl Verifier {
    /// §4.2.1: whom a failing check of `route` with measured cost `cost` blames, given the
    /// first of our neighbours (or us) the session's traces found on the route past the
    /// neighbour, `k` links past it, and the routes we hear.
    pub(super) fn blame(
        &self,
        now: Instant,
        route: &VerifiableRoute,
        s: &Session,
        cost: u16,
        candidates: &[VerifiableRoute],
    ) -> Blame {
        if !self.cfg.score.attribution {
            return Blame::Unknown;
        }
        let offered = self.offered(route.prefix, s, candidates);
        let k = s.trace_links();
        // The next hop found tells us nothing usable for the destination (retracted, or its
        // route expired here since split horizon keeps it off our link).
        if k == 1
            && self.cfg.score.through_us
            && !s.returned()
            && offered.is_none_or(|o| o == babel_wire::INFINITY)
        {
            return self.through_us_blame(route, s, cost, candidates);
        }
        let Some(offered) = offered else {
            return Blame::Unknown;
        };
        let h = self.cfg.cost.hop_cost;
        if offered == babel_wire::INFINITY || k == 0 {
            return Blame::Unknown;
        }
        // An honest router's metric is its next hop's plus a link that costs at least `h`: an
        // honest neighbour's, `k` honest links before the router found, at least that router's
        // plus `k` links. With `origin_at_both_ends`, at the session's start too: a next hop
        // whose metric rose during the session (a loop counting up) is ahead of the neighbour's
        // update.
        let links = h.saturating_mul(u16::from(k));
        let below = |m: u16, offered: u16| m < offered.saturating_add(links);
        let at_start = || {
            self.offered(route.prefix, s, &s.at_start)
                .is_some_and(|o| o < babel_wire::INFINITY && below(s.route.advertised, o))
        };
        // Only the neighbour's own next hop makes it the origin: further on, the lie may start
        // at any router between it and the one found, which we cannot ask.
        if k == 1
            && below(route.advertised, offered)
            && (!self.cfg.score.origin_at_both_ends || at_start())
        {
            if !self.reference_trusted(now, s) {
                return Blame::Unknown;
            }
            return Blame::Origin;
        }
        // The found router's claim, with the cheapest links before it (ours to the neighbour
        // and the `k` past it), already fails against what we measured.
        let through_x = f64::from(offered.saturating_add(links).saturating_add(h));
        if below(route.advertised, offered) {
            // Not at both ends, or somewhere between the neighbour and the router found: nothing
            // can be said.
            return Blame::Unknown;
        }
        self.relay_if_failing(through_x, cost)
    }

    /// §4.2.1: a relay when the cheapest honest claim along the path (`floor`) already fails
    /// against what we measured (`cost`); otherwise nothing can be said.
    fn relay_if_failing(&self, floor: f64, cost: u16) -> Blame {
        if floor < self.cfg.score.threshold * f64::from(cost) {
            Blame::Relay
        } else {
            Blame::Unknown
        }
    }

    /// §4.2.1, the next hop through us (`through_us`): the trace found the neighbour's next hop
    /// `x`, one of our neighbours, and `x` advertises the destination to us as unreachable while
    /// it forwards our probes: split horizon, its route runs through us. An honest `x` then
    /// offers the neighbour at least our own metric `M_v` plus a link, and an honest neighbour
    /// claims at least `M_v + 2h`. A claim under that is a lie of the neighbour's or of `x`'s
    /// (which we cannot hear: it tells us nothing for the destination), so it blames neither
    /// ([`Blame::ThroughUs`]); a claim at least that, failing, repeats a lie told at or past us
    /// (our own route, plus the three links, fails too): a relay. Only while the route through
    /// the neighbour is not our selected route, at the session's start and end.
    fn through_us_blame(
        &self,
        route: &VerifiableRoute,
        s: &Session,
        cost: u16,
        candidates: &[VerifiableRoute],
    ) -> Blame {
        // Only while the neighbour's claim does not win our traffic: a liar that names such a
        // next hop in a forged Time Exceeded defers its eviction only while we do not route
        // through it (as a relay's class needs its claim at least its next hop's plus a link);
        // and only from an answer that arrived on the next hop's own link (one forged by the
        // neighbour under test arrives on the neighbour's).
        if s.next_hop().is_none() || !s.found_on_its_link() {
            return Blame::Unknown;
        }
        if route.selected || s.route.selected {
            // We route through the neighbour and its next hop routes through us: a loop, which
            // the neighbour's lie or its next hop's made (`loop_through_us`, §4.2.5).
            let a_loop = route.selected && s.route.selected && s.looped;
            return if a_loop && self.cfg.score.loop_through_us {
                Blame::ThroughUs
            } else {
                Blame::Unknown
            };
        }
        let Some(ours) = candidates
            .iter()
            .find(|c| c.prefix == route.prefix && c.selected)
            .map(|c| c.metric)
            .filter(|m| *m < babel_wire::INFINITY)
        else {
            return Blame::Unknown;
        };
        let h = self.cfg.cost.hop_cost;
        if route.advertised < ours.saturating_add(h.saturating_mul(2)) {
            return Blame::ThroughUs;
        }
        let through_us = f64::from(ours.saturating_add(h.saturating_mul(3)));
        self.relay_if_failing(through_us, cost)
    }

    /// §4.2.1, the origin test on passing checks (`passing_origin`): whether the neighbour's
    /// claim is under `S` times what its next hop (the first trace's router, or us) offers it
    /// plus a link, both with the routes we held at the session's start and at its end.
    pub(super) fn claim_under_next_hop(
        &self,
        now: Instant,
        route: &VerifiableRoute,
        s: &Session,
        candidates: &[VerifiableRoute],
    ) -> bool {
        if !self.cfg.score.attribution || !self.cfg.score.passing_origin || s.trace_links() != 1 {
            return false;
        }
        let h = self.cfg.cost.hop_cost;
        let under = |m: u16, offered: Option<u16>| {
            offered.is_some_and(|o| {
                o < babel_wire::INFINITY
                    && f64::from(m) < self.cfg.score.threshold * f64::from(o.saturating_add(h))
            })
        };
        under(route.advertised, self.offered(route.prefix, s, candidates))
            && under(
                s.route.advertised,
                self.offered(route.prefix, s, &s.at_start),
            )
            && self.reference_trusted(now, s)
    }

    /// §4.2.1, `verified_next_hop`: whether the next hop the trace found may serve as the
    /// reference of the origin test. Its claim to us is what the test holds the neighbour's
    /// against, and a lying next hop can tell us more than it tells the neighbour. With the
    /// option, only a next hop whose last session (through it, any destination) passed, within
    /// [`NEXT_HOP_TRUST`], is taken at its word; we ourselves (a trace back to us) always are.
    fn reference_trusted(&self, now: Instant, s: &Session) -> bool {
        if !self.cfg.score.verified_next_hop || s.returned() {
            return true;
        }
        s.next_hop().is_some_and(|x| {
            self.passed
                .get(&x)
                .is_some_and(|(t, ok)| *ok && now.saturating_since(*t) <= NEXT_HOP_TRUST)
        })
    }

    /// Records how `neighbour`'s session ending at `now` went (for [`Self::reference_trusted`]).
    pub(super) fn session_passed(&mut self, now: Instant, neighbour: NeighbourId, passed: bool) {
        crate::bounded::make_room(
            &mut self.passed,
            self.max_neighbours,
            &neighbour,
            |(t, _)| *t,
        );
        self.passed.insert(neighbour, (now, passed));
    }

    /// What the neighbour's next hop on the route to `prefix` (the session's trace) offers it,
    /// by `routes`: the next hop's advertised metric, or, when the next hop is us (with
    /// `returned_blame`), the metric of our own selected route, which is what we advertise.
    fn offered(&self, prefix: Prefix, s: &Session, routes: &[VerifiableRoute]) -> Option<u16> {
        self.offered_by(prefix, s.next_hop(), s.returned(), routes)
    }

    /// [`Self::offered`] for a next hop `next_hop` found before, or us (`returned`).
    pub(super) fn offered_by(
        &self,
        prefix: Prefix,
        next_hop: Option<NeighbourId>,
        returned: bool,
        routes: &[VerifiableRoute],
    ) -> Option<u16> {
        if returned && self.cfg.score.returned_blame {
            routes
                .iter()
                .find(|c| c.prefix == prefix && c.selected)
                .map(|c| c.metric)
        } else {
            let x = next_hop?;
            routes
                .iter()
                .find(|c| c.prefix == prefix && c.neighbour == x)
                .map(|c| c.advertised)
        }
    }
}
