//! Justified claims, the verifier's side (`spec/verify.md` §4.2.5): Justify Requests and
//! their retries, the Signed Claims that answer them, and the deadlines of unjustified
//! failures, with the claims watched while a failure waits (a claim that rises to its floor,
//! moves, or is withdrawn and made again), and the audits of passing claims (§4.2.6).

use super::*;

/// §4.2.5, `withdrawn_origin_evicts`: how far a relay's claim can lag the route it has, a rise
/// too small for a triggered update (which waits for the next regular one).
const HONEST_LAG: u16 = babel_core::TRIGGER_WORSENING;

impl Verifier {
    /// §4.2.5: whether a failure awaiting its deadline wants the claims looked at again:
    /// with `justify_on_rise` one whose refused Signed Claim waits for the claim to reach its
    /// floor, with `reask_moved_claim` one whose claim has not been seen withdrawn yet.
    pub(super) fn watching_claims(&self) -> bool {
        (self.cfg.score.justify_on_rise && self.awaiting_rise().next().is_some())
            || (self.cfg.score.reask_moved_claim
                && self.origin_deadlines.values().any(|d| !d.moved || d.parked))
            || self.rise_watches.values().any(|w| !w.fell)
    }

    /// §4.2.5, `reask_moved_claim`: notes every failure awaiting its deadline whose claim
    /// `candidates` show withdrawn or other than the claim that failed. A claim that moved and
    /// is made at the deadline, even at the metric that failed, is a claim made anew, which the
    /// deadline asks to justify rather than judging it on the failure of the claim before
    /// (a relay whose route moves while its next hop's metric moves cannot be judged on a
    /// Signed Claim of another moment); a failure whose claim was withdrawn at its deadline
    /// (parked) is due again as soon as the claim comes back.
    pub(super) fn watch_withdrawals(&mut self, now: Instant, candidates: &[VerifiableRoute]) {
        if !self.cfg.score.reask_moved_claim {
            return;
        }
        for (key, d) in self.origin_deadlines.iter_mut() {
            match claim_in(candidates, key) {
                Some(None) => d.moved = true,
                Some(Some(_)) if d.parked => d.at = d.at.min(now),
                Some(Some(m)) if m != d.claim => d.moved = true,
                _ => {}
            }
        }
    }

    /// §4.2.5, `justify_on_rise`: the failures awaiting a justification whose Signed Claim was
    /// refused for a claim under its floor (still fresh): the floor each waits for.
    pub(super) fn awaiting_rise(&self) -> impl Iterator<Item = ((NeighbourId, Prefix), u16)> + '_ {
        self.origin_deadlines.iter().filter_map(|(k, d)| {
            self.justifications
                .get(k)
                // Received for this failure: after its check, before its deadline.
                .filter(|(_, at)| *at <= d.at && d.at.saturating_since(*at) <= crate::JUSTIFY_WAIT)
                .map(|(floor, _)| (*k, *floor))
        })
    }

    /// §4.2.5, `justify_on_rise`: a failure whose refused Signed Claim's floor the neighbour's
    /// claim in `candidates` has reached is justified now, as the Signed Claim would have been
    /// had the claim been there when it came.
    pub(super) fn justified_on_rise(&mut self, now: Instant, candidates: &[VerifiableRoute]) {
        if !self.cfg.score.justify_on_rise {
            return;
        }
        if candidates.is_empty() {
            // No route of a used destination to look at: again later.
            return;
        }
        let risen: Vec<((NeighbourId, Prefix), u16)> = self
            .awaiting_rise()
            .filter_map(|((n, p), floor)| {
                candidates
                    .iter()
                    .find(|c| {
                        c.neighbour == n
                            && c.prefix == p
                            && c.advertised >= floor
                            && c.advertised < babel_wire::INFINITY
                    })
                    .map(|c| ((n, p), c.advertised))
            })
            .collect();
        for (key, claim) in risen {
            if let Some(d) = self.origin_deadlines.remove(&key) {
                self.note_asked_rise(now, key, d.asked(), claim);
            }
            self.counters.justified += 1;
            if let Some(score) = self.scores.get_mut(&key.0) {
                score.justify(now, &self.cfg.score, &key.1);
            }
        }
    }

    /// §4.2.5, `asked_rise_lowest_floor`: the lowest floor of the Signed Claims that answered
    /// the Justify Request for `key` still pending (or being answered), if any.
    fn lowest_floor(&self, key: &(NeighbourId, Prefix)) -> Option<u16> {
        self.justify_requests.get(key).and_then(|r| r.lowest_floor)
    }

    /// §4.2.5: the floor of the Signed Claim that answered a Justify Request for `key` within
    /// [`crate::JUSTIFY_WAIT`] of `now` (the one a deadline judges against), if any.
    fn fresh_floor(&self, now: Instant, key: &(NeighbourId, Prefix)) -> Option<u16> {
        self.justifications
            .get(key)
            .filter(|(_, at)| now.saturating_since(*at) <= crate::JUSTIFY_WAIT)
            .map(|(f, _)| *f)
    }

    /// §4.2.5, `asked_rises_evict`: notes (counts, and with the option scores at the next
    /// timer) whether `risen`, the neighbour's claim that justifies or corrects a failing (or
    /// audited) claim for `p` (key `(n, p)`; `asked`: that claim as its check found it) by
    /// reaching its floor or what we measured, rose only once we asked: the claim asked about,
    /// priced with our link then, is under `S` times the risen one, so that the rise alone
    /// fails the claim before, and the risen one is near the cost measured, no more than `1/S`
    /// times it, and the claim was the neighbour's current word ([`AskedClaim::settled`]: the
    /// session's route settled, §4.2.2, and feasible at its end). A relay whose update was on its
    /// way rises by less unless the path behind it moved by as much; a claim that rises past
    /// what we measured (or with nothing measured, a black hole) rides a path that changed, as
    /// in a loop whose metrics count up; a claim that moved during the session (a lie reaching
    /// a relay) measured a path it no longer describes, and its rise may be the relay's route
    /// moving back. With a Signed Claim's floor, the claim asked about was under it by more than
    /// a relay's lag, and rose to no more than a lag over it.
    pub(super) fn note_asked_rise(
        &mut self,
        now: Instant,
        key: (NeighbourId, Prefix),
        asked: AskedClaim,
        risen: u16,
    ) {
        self.watch_rise(now, key, asked, risen);
        let s = self.cfg.score.threshold;
        let before = f64::from(crate::score::claim_metric(asked.claim, asked.link));
        let after = f64::from(crate::score::claim_metric(risen, asked.link));
        if risen == babel_wire::INFINITY
            || !asked.settled
            || asked.cost >= MAX_COST
            || before >= s * after
            || after > f64::from(asked.cost) / s
        {
            return;
        }
        // With the floor of a Signed Claim: the claim was under it by more than a relay's lag,
        // and rose to it, not past it (a relay whose own route moved, or was corrected, rises
        // past its next hop's word).
        if let Some(floor) = self.fresh_floor(now, &key) {
            // With `asked_rise_lowest_floor`, the claim asked about is held against the
            // lowest floor the ask was answered with: a next hop whose word rose during the
            // ask (a path counting up) had the neighbour's claim within a lag of it at first.
            let first = match self.lowest_floor(&key) {
                Some(l) if self.cfg.score.asked_rise_lowest_floor => l.min(floor),
                _ => floor,
            };
            if asked.claim.saturating_add(HONEST_LAG) >= first
                || risen > floor.saturating_add(HONEST_LAG)
            {
                return;
            }
        }
        // One ask, one rise: seen again (a request sent again answered after the deadline
        // noted it), it is the same rise.
        if self.rises_noted.get(&key) == Some(&asked.at) {
            return;
        }
        crate::bounded::make_room(
            &mut self.rises_noted,
            self.cfg.schedule.max_used.max(1),
            &key,
            |at| *at,
        );
        self.rises_noted.insert(key, asked.at);
        self.counters.asked_rises += 1;
        let rise = AskedRise {
            neighbour: key.0,
            prefix: key.1,
            asked: asked.claim,
            risen,
        };
        self.asked_rises.push((rise, now, asked.at));
    }

    /// §4.2.5, `fall_back_evicts`: `risen`, the neighbour's claim for `key` after we asked it
    /// to justify `asked`, answered by a Signed Claim whose floor is fresh. A claim that was
    /// under the floor by enough to fail (priced with our link, under `S` times it) and rose
    /// to it, not past a relay's lag over it, is watched for `asked_rise_window`. Watched, fallen
    /// back since and asked again, it rising again to a floor no lower (by more than a lag)
    /// than the one it fell from evicts the neighbour: an honest relay's claim falls only as
    /// its next hop's offer falls, and asked then it shows the lower word. A claim that fell
    /// and is justified without a rise ends the watch.
    fn watch_rise(
        &mut self,
        now: Instant,
        key: (NeighbourId, Prefix),
        asked: AskedClaim,
        risen: u16,
    ) {
        if !self.cfg.score.fall_back_evicts {
            return;
        }
        let Some(floor) = self.fresh_floor(now, &key) else {
            return;
        };
        let s = self.cfg.score.threshold;
        let priced = |m: u16| f64::from(crate::score::claim_metric(m, asked.link));
        let rose = risen < babel_wire::INFINITY
            && risen >= floor
            && risen <= floor.saturating_add(HONEST_LAG)
            && priced(asked.claim) < s * priced(floor);
        let watched = self
            .rise_watches
            .get(&key)
            .filter(|w| w.until >= now)
            .copied();
        match watched {
            Some(w) if w.fell && rose && floor.saturating_add(HONEST_LAG) >= w.floor => {
                self.rise_watches.remove(&key);
                self.counters.fell_back += 1;
                self.fell_back.push((key, now));
            }
            Some(w) if w.fell && !rose => {
                // Justified as it is now: its next hop's offer fell with it.
                self.rise_watches.remove(&key);
            }
            Some(_) => {}
            None if rose => {
                crate::bounded::make_room(
                    &mut self.rise_watches,
                    self.cfg.schedule.max_used.max(1),
                    &key,
                    |w| w.until,
                );
                self.rise_watches.insert(
                    key,
                    RiseWatch {
                        floor,
                        link: asked.link,
                        until: now + self.cfg.score.asked_rise_window,
                        fell: false,
                    },
                );
                self.poll_routes_by(now + crate::RISE_POLL);
            }
            None => {}
        }
    }

    /// §4.2.5, `fall_back_evicts`: forgets the watches past their window; asks the neighbour
    /// of every watched claim that `candidates` show fallen back under its floor (by enough
    /// to fail, priced with our link) to justify it again, with a deadline (a claim left under
    /// the floor is unjustified there), and evicts the neighbours whose claims rose again.
    pub(super) fn watch_fall_backs(
        &mut self,
        now: Instant,
        candidates: &[VerifiableRoute],
        out: &mut Vec<ProbeAction>,
    ) {
        for ((neighbour, prefix), at) in std::mem::take(&mut self.fell_back) {
            let why = Eviction {
                prefix,
                cause: EvictionCause::FellBack,
            };
            self.evict(at.min(now), neighbour, why, out);
        }
        self.rise_watches.retain(|_, w| w.until >= now);
        let s = self.cfg.score.threshold;
        let fallen: Vec<((NeighbourId, Prefix), u16, u16)> = self
            .rise_watches
            .iter()
            .filter(|(_, w)| !w.fell)
            .filter_map(|(key, w)| match claim_in(candidates, key) {
                Some(Some(m))
                    if f64::from(crate::score::claim_metric(m, w.link))
                        < s * f64::from(crate::score::claim_metric(w.floor, w.link)) =>
                {
                    Some((*key, m, w.link))
                }
                _ => None,
            })
            .collect();
        for (key, claim, link) in fallen {
            if let Some(w) = self.rise_watches.get_mut(&key) {
                w.fell = true;
            }
            if self.justify_requests.contains_key(&key) {
                continue;
            }
            // Judged at a deadline as an unjustified failure is, with nothing measured: a
            // claim that stays under the floor of the Signed Claim that answers evicts then.
            if self.deadlines_evict() {
                self.insert_deadline(
                    Deadline {
                        at: now + crate::JUSTIFY_WAIT,
                        metric: crate::score::claim_metric(claim, link),
                        cost: MAX_COST,
                        link,
                        claim,
                        asked_again: false,
                        moved: false,
                        parked: false,
                        audit: false,
                        reference: (None, false),
                        origin: false,
                        settled: true,
                        asked_at: now,
                    },
                    key,
                );
            }
            let asked = AskedClaim {
                claim,
                link,
                cost: MAX_COST,
                settled: true,
                at: now,
            };
            self.ask_to_justify(now, key, asked, out);
        }
    }

    /// §4.2.5, `asked_rises_evict`: reports every claim noted as risen only once asked, and
    /// with the option scores it: the second of a neighbour's within `asked_rise_window`
    /// evicts it.
    pub(super) fn asked_rises(&mut self, now: Instant, out: &mut Vec<ProbeAction>) {
        for (rise, at, asked_at) in std::mem::take(&mut self.asked_rises) {
            out.push(ProbeAction::AskedRise(rise));
            if !self.cfg.score.asked_rises_evict {
                continue;
            }
            let AskedRise {
                neighbour, prefix, ..
            } = rise;
            let Some(score) = self.scores.get_mut(&neighbour) else {
                continue;
            };
            let verdict = score.asked_rise(at.min(now), asked_at, &self.cfg.score, prefix);
            if let CheckVerdict::Evicted(_) = verdict {
                self.counters.evictions += 1;
                out.push(ProbeAction::Standing {
                    neighbour,
                    eviction: Some(Eviction {
                        prefix,
                        cause: EvictionCause::AskedRises,
                    }),
                });
            }
        }
    }

    /// §4.2.5: sends again, with the same nonce, every Justify Request not answered within
    /// [`crate::JUSTIFY_RETRY`] of its last sending, up to [`crate::JUSTIFY_SENDS`] sendings;
    /// forgets those older than [`crate::JUSTIFY_WAIT`].
    pub(super) fn retry_justify_requests(&mut self, now: Instant, out: &mut Vec<ProbeAction>) {
        self.justify_requests
            .retain(|_, r| now.saturating_since(r.at) <= crate::JUSTIFY_WAIT);
        for (&(neighbour, prefix), r) in self.justify_requests.iter_mut() {
            if justify_retry_at(r.at, r.sends).is_some_and(|t| t <= now) {
                r.sends += 1;
                self.counters.justify_requests_sent += 1;
                out.push(ProbeAction::SendJustifyRequest {
                    neighbour,
                    request: crate::ClaimRequest {
                        prefix,
                        nonce: r.nonce,
                    },
                });
            }
        }
    }

    /// §4.2.5, `unjustified_origin_evicts`: evicts every neighbour whose failure awaiting a
    /// justification went unjustified and uncorrected (§4.2.2) until its deadline. A Signed
    /// Claim refused because the claim we saw then was under its floor justifies it still if
    /// the neighbour's claim in `candidates` has risen to the floor since (a relay that took
    /// its next hop's signed word, or whose update was on its way).
    pub(super) fn unjustified_origins(
        &mut self,
        now: Instant,
        candidates: &[VerifiableRoute],
        out: &mut Vec<ProbeAction>,
    ) {
        let due: Vec<((NeighbourId, Prefix), Deadline)> = self
            .origin_deadlines
            .iter()
            .filter(|(_, d)| d.at <= now)
            .map(|(k, d)| (*k, *d))
            .collect();
        for (key, d) in due {
            self.origin_deadlines.remove(&key);
            let claim_now = claim_in(candidates, &key);
            let floor = self.fresh_floor(now, &key);
            // `withdrawn_origin_evicts`: the lie of an origin failure was read from what the
            // neighbour and its next hop advertised; withdrawing the claim since undoes nothing.
            // Unless the claim was under its floor by no more than a relay's claim lags its
            // route (a rise too small for a triggered update): then it may be an honest relay
            // whose route moved through us as it was asked, and the withdrawal is judged as
            // any other.
            let lag = floor.is_some_and(|f| d.claim.saturating_add(HONEST_LAG) >= f);
            if self.cfg.score.withdrawn_origin_evicts && d.origin && claim_now == Some(None) && !lag
            {
                self.evict_unjustified(now, key, &d, out);
                continue;
            }
            // `reask_moved_claim`: a claim withdrawn at the deadline corrects the failure only
            // if it stays withdrawn; the failure waits (parked) up to `confirm_within` for the
            // claim to come back, which is then a claim made anew. Parked that long, the
            // withdrawal held: the failure is corrected. So does a destination with no route
            // at all to look at (§2.1: its routes are handed while a deadline is pending): it
            // waits to be seen again.
            if self.cfg.score.reask_moved_claim && claim_now.is_none_or(|c| c.is_none()) {
                if d.parked {
                    continue;
                }
                self.origin_deadlines.insert(
                    key,
                    Deadline {
                        at: now + self.cfg.score.confirm_within,
                        moved: true,
                        parked: true,
                        ..d
                    },
                );
                continue;
            }
            let route = candidates
                .iter()
                .find(|c| c.prefix == key.1 && c.neighbour == key.0);
            // §4.2.2: a failure the neighbour has corrected since (a retraction, or a claim
            // risen to what we measured, priced with our link at the failure) no longer counts,
            // here as in its run of failures.
            if let Some(r) = route
                && !d.audit
                && crate::score::corrected(
                    &self.cfg.score,
                    crate::score::claim_metric(r.advertised, d.link),
                    d.metric,
                    d.cost,
                )
                && !self.still_under_next_hop(&key, &d, r.advertised, candidates)
                && !self.past_measured(&d, r.advertised)
            {
                self.note_asked_rise(now, key, d.asked(), r.advertised);
                continue;
            }
            let claim = route.map(|c| c.advertised);
            if let (Some(f), Some(m)) = (floor, claim)
                && m >= f
                && m < babel_wire::INFINITY
            {
                self.note_asked_rise(now, key, d.asked(), m);
                continue;
            }
            // `reask_moved_claim`: the claim that failed is no longer made (another now, or
            // the same made anew after a withdrawal); ask once more, for the claim made now,
            // and judge that at a second deadline.
            if let Some(m) = claim
                && self.cfg.score.reask_moved_claim
                && !d.asked_again
                && (m != d.claim || d.moved || d.parked)
                && m < babel_wire::INFINITY
            {
                self.origin_deadlines.insert(
                    key,
                    Deadline {
                        at: now + crate::JUSTIFY_WAIT,
                        claim: m,
                        asked_again: true,
                        moved: false,
                        parked: false,
                        asked_at: now,
                        ..d
                    },
                );
                let asked = AskedClaim {
                    claim: m,
                    at: now,
                    ..d.asked()
                };
                self.ask_to_justify(now, key, asked, out);
                continue;
            }
            self.evict_unjustified(now, key, &d, out);
        }
    }

    /// §4.2.5: evicts the neighbour of deadline `d` (key `(n, p)`), its claim unjustified (or,
    /// for an audit, unaudited) at the deadline.
    fn evict_unjustified(
        &mut self,
        now: Instant,
        key: (NeighbourId, Prefix),
        d: &Deadline,
        out: &mut Vec<ProbeAction>,
    ) {
        let why = Eviction {
            prefix: key.1,
            cause: if d.audit {
                EvictionCause::Audit
            } else {
                EvictionCause::Unjustified
            },
        };
        self.evict(now, key.0, why, out);
    }

    /// §4.3: evicts `neighbour` (if scored) for `why`, without a check: counted, and its new
    /// standing among `out` if it was not evicted already.
    fn evict(
        &mut self,
        now: Instant,
        neighbour: NeighbourId,
        why: Eviction,
        out: &mut Vec<ProbeAction>,
    ) {
        let Some(score) = self.scores.get_mut(&neighbour) else {
            return;
        };
        if let CheckVerdict::Evicted(_) = score.evict(now, &self.cfg.score, why) {
            self.counters.evictions += 1;
            out.push(ProbeAction::Standing {
                neighbour,
                eviction: Some(why),
            });
        }
    }

    /// §4.2.5, `correction_meets_next_hop`: whether `claim`, the neighbour's claim now for the
    /// destination of deadline `d` (key `(n, p)`), is still under `S` times what the next hop
    /// the failing session found offers it now plus a link, so that a rise to the cost
    /// measured then corrects nothing. Nothing to hold it against (no next hop found, or it
    /// offers nothing now): not under.
    fn still_under_next_hop(
        &self,
        (_, p): &(NeighbourId, Prefix),
        d: &Deadline,
        claim: u16,
        candidates: &[VerifiableRoute],
    ) -> bool {
        if !self.cfg.score.correction_meets_next_hop {
            return false;
        }
        let (next_hop, returned) = d.reference;
        self.offered_by(*p, next_hop, returned, candidates)
            .is_some_and(|o| {
                o < babel_wire::INFINITY
                    && f64::from(claim)
                        < self.cfg.score.threshold
                            * f64::from(o.saturating_add(self.cfg.cost.hop_cost))
            })
    }

    /// §4.2.5, `correction_near_measured`: whether `claim`, the neighbour's claim now for the
    /// destination of deadline `d`, priced with our link at the failure, rose past `1/S` times
    /// the cost the failing session measured, so that it corrects nothing: the path behind
    /// the neighbour changed. A black hole measured no cost: not past it.
    fn past_measured(&self, d: &Deadline, claim: u16) -> bool {
        self.cfg.score.correction_near_measured
            && d.cost < MAX_COST
            && claim < babel_wire::INFINITY
            && f64::from(crate::score::claim_metric(claim, d.link)) * self.cfg.score.threshold
                > f64::from(d.cost)
    }

    /// §4.2.5: whether the neighbour's claim for the route, at the session's start and end,
    /// is covered by its latest justification (no older than `confirm_within`).
    pub(super) fn justified(&self, now: Instant, route: &VerifiableRoute, s: &Session) -> bool {
        if !self.cfg.score.justification {
            return false;
        }
        self.justifications
            .get(&(route.neighbour, route.prefix))
            .is_some_and(|(floor, at)| {
                now.saturating_since(*at) <= self.cfg.score.confirm_within
                    && route.advertised >= *floor
                    && s.route.advertised >= *floor
            })
    }

    /// §4.2.5: neighbour `from` relays a Signed Claim (`tlv`) in answer to our Justify
    /// Request; `claim` is what `from` advertises to us for the destination now (`None`: no
    /// route). It justifies the claim if its signature verifies, its key is bound to the owner
    /// prefix it names (§3.2), it answers our latest request to `from` for the destination
    /// within [`crate::JUSTIFY_WAIT`], and the claim is at least the signed metric plus one
    /// cheapest link. Then the destination's run of failures through `from` ends, and for
    /// `confirm_within` failing checks of a claim at least that are the next hop's
    /// ([`Blame::Justified`]). Anything else is refused and counted.
    pub fn handle_signed_claim(
        &mut self,
        now: Instant,
        from: NeighbourId,
        tlv: &[u8],
        claim: Option<u16>,
    ) -> Result<(), crate::JustifyError> {
        let r = crate::decode_signed_claim(tlv).and_then(|c| self.justify(now, from, &c, claim));
        match r {
            Ok(()) => self.counters.justified += 1,
            Err(_) => self.counters.claims_refused += 1,
        }
        r
    }

    /// [`Verifier::handle_signed_claim`] once the signature verified.
    fn justify(
        &mut self,
        now: Instant,
        from: NeighbourId,
        c: &crate::SignedClaim,
        claim: Option<u16>,
    ) -> Result<(), crate::JustifyError> {
        use crate::JustifyError::Unexpected;
        if !self.cfg.score.justification {
            return Err(Unexpected);
        }
        let Some(&asked) = self
            .justify_requests
            .get(&(from, c.prefix))
            .filter(|r| r.nonce == c.nonce && now.saturating_since(r.at) <= crate::JUSTIFY_WAIT)
        else {
            return Err(Unexpected);
        };
        // Ours (a relay whose route runs through us asked us), or a key bound to its owner.
        if self.own_key != Some(c.key) && !self.keyring.may_answer(&c.owner, &c.key) {
            return Err(crate::JustifyError::Unbound);
        }
        if c.metric == babel_wire::INFINITY {
            // The next hop has no route at this instant: `from`'s claim is in flux. With
            // `reask_infinite_claim` the request stays, sent again as its retries fall due
            // (to the next hop `from` has then); otherwise it is answered.
            if !self.cfg.score.reask_infinite_claim {
                self.justify_requests.remove(&(from, c.prefix));
            }
            return Err(crate::JustifyError::Unreachable);
        }
        let floor = c.metric.saturating_add(self.cfg.cost.hop_cost);
        if let Some(r) = self.justify_requests.get_mut(&(from, c.prefix)) {
            r.lowest_floor = Some(r.lowest_floor.map_or(floor, |l| l.min(floor)));
        }
        crate::bounded::make_room(
            &mut self.justifications,
            self.cfg.schedule.max_used.max(1),
            &(from, c.prefix),
            |(_, at)| *at,
        );
        self.justifications.insert((from, c.prefix), (floor, now));
        // The neighbour claims less than its own next hop offers it plus a link: no
        // justification now (its route cannot cost it what it claims). The floor is kept: a
        // neighbour whose next hop told it less than it signs raises its claim to it, and a
        // later check of the risen claim is justified.
        // With `reask_refused_claim` the request stays too, sent again as its retries fall due:
        // the next hop signed one instant of its route, and `from` may make its claim through
        // another next hop since (one it moved to on this very signed word).
        // A claim withdrawn (unreachable) is no claim to justify: refused as none, and the
        // deadline judges the withdrawal (a relay whose route runs through us, under split
        // horizon, asks us all the same).
        if claim.is_none_or(|m| m < floor || m == babel_wire::INFINITY) {
            if !self.cfg.score.reask_refused_claim {
                self.justify_requests.remove(&(from, c.prefix));
            }
            if self.cfg.score.justify_on_rise {
                self.route_poll = Some(now + crate::RISE_POLL);
            }
            return Err(crate::JustifyError::UnderFloor);
        }
        // The claim asked about: the failure's awaiting its deadline, else the one we asked.
        let asked_claim = self
            .origin_deadlines
            .remove(&(from, c.prefix))
            .map_or(asked.asked, |d| d.asked());
        if let Some(m) = claim {
            // Before the request goes: the rise is judged with the floors that answered it.
            self.note_asked_rise(now, (from, c.prefix), asked_claim, m);
        }
        self.justify_requests.remove(&(from, c.prefix));
        if let Some(score) = self.scores.get_mut(&from) {
            score.justify(now, &self.cfg.score, &c.prefix);
        }
        Ok(())
    }

    /// §4.2.5: asks `neighbour` to justify its claim for `prefix`, with a fresh nonce (an
    /// answer to an earlier request no longer counts); sent again by
    /// [`Verifier::retry_justify_requests`].
    pub(super) fn ask_to_justify(
        &mut self,
        now: Instant,
        (neighbour, prefix): (NeighbourId, Prefix),
        asked: AskedClaim,
        out: &mut Vec<ProbeAction>,
    ) {
        let nonce = s_rng(&mut self.scheduler, u64::MAX);
        crate::bounded::make_room(
            &mut self.justify_requests,
            self.cfg.schedule.max_used.max(1),
            &(neighbour, prefix),
            |r| r.at,
        );
        self.justify_requests.insert(
            (neighbour, prefix),
            JustifyRequest {
                nonce,
                at: now,
                sends: 1,
                asked,
                lowest_floor: None,
            },
        );
        self.counters.justify_requests_sent += 1;
        out.push(ProbeAction::SendJustifyRequest {
            neighbour,
            request: crate::ClaimRequest { prefix, nonce },
        });
    }

    /// §4.2.5: the deadline of a failing `check` whose justification it awaits (measured cost
    /// `c`, our link to the neighbour `link`): a failure blamed on the neighbour as the origin
    /// (with `unjustified_unknown_evicts`, a measured one blamed on nobody; with
    /// `unjustified_through_us_evicts`, one whose next hop routes through us), of a route that
    /// stayed as it was for the whole session (`stable`), unjustified within `JUSTIFY_WAIT`
    /// and not corrected by then, evicts it then; one that confirms failures blamed on nobody
    /// (`CheckVerdict::Awaiting`) evicts at `AWAIT_JUSTIFY` if still unjustified.
    pub(super) fn await_justification(
        &mut self,
        now: Instant,
        check: &Check,
        stable: bool,
        c: u16,
        link: u16,
    ) {
        let route = &check.route;
        let unjustifiable = match check.blame {
            Blame::Origin => true,
            Blame::Unknown => self.cfg.score.unjustified_unknown_evicts && !check.black_hole,
            // A black hole only as a loop through us (`through_us_blame`).
            Blame::ThroughUs => {
                self.cfg.score.unjustified_through_us_evicts
                    && (!check.black_hole || (self.cfg.score.loop_through_us && route.selected))
            }
            Blame::Relay | Blame::Justified => false,
        };
        let awaiting = check.verdict == CheckVerdict::Awaiting;
        if !((awaiting || (stable && unjustifiable)) && self.deadlines_evict()) {
            return;
        }
        let wait = if awaiting {
            crate::AWAIT_JUSTIFY
        } else {
            crate::JUSTIFY_WAIT
        };
        self.set_deadline(now, check, (c, link), wait, false);
    }

    /// §4.2.5: whether an unjustified claim evicts at its deadline at all
    /// (`unjustified_origin_evicts`, with justification, attribution and the confirmed rule).
    fn deadlines_evict(&self) -> bool {
        let score = &self.cfg.score;
        score.unjustified_origin_evicts
            && score.justification
            && score.attribution
            && score.rule == crate::Rule::Confirmed
    }

    /// §4.2.5: keeps deadline `d` for `key` unless one is pending for it already (the table
    /// bounded by `max_used`, the soonest forgotten first).
    fn insert_deadline(&mut self, d: Deadline, key: (NeighbourId, Prefix)) {
        crate::bounded::make_room(
            &mut self.origin_deadlines,
            self.cfg.schedule.max_used.max(1),
            &key,
            |d| d.at,
        );
        self.origin_deadlines.entry(key).or_insert(d);
    }

    /// §4.2.5, §4.2.6: the deadline, `wait` from `now`, of `check`'s claim (the cost it
    /// measured and our link cost then), a failure's or (`audit`) a passing check's, unless one
    /// is pending for the route already; with `reask_moved_claim` the verifier looks at the
    /// routes while it waits.
    fn set_deadline(
        &mut self,
        now: Instant,
        check: &Check,
        (cost, link): (u16, u16),
        wait: std::time::Duration,
        audit: bool,
    ) {
        let route = &check.route;
        let key = (route.neighbour, route.prefix);
        self.insert_deadline(
            Deadline {
                at: now + wait,
                metric: check.metric,
                cost,
                link,
                claim: route.advertised,
                asked_again: false,
                moved: false,
                parked: false,
                audit,
                reference: (
                    check.next_hop.filter(|_| check.trace_links == 1),
                    check.returned,
                ),
                origin: !audit && check.blame == Blame::Origin,
                settled: AskedClaim::settled(check),
                asked_at: now,
            },
            key,
        );
        if self.cfg.score.reask_moved_claim {
            self.route_poll = Some(now + crate::RISE_POLL);
        }
    }

    /// §4.2.6, `audit_claims`: a passing `check` of session `s` (the cost it measured and our
    /// link cost to the neighbour then) asks the neighbour to justify its claim when nothing
    /// else can test it: a settled route, answered and measured, whose session found no
    /// reference for the origin test (§4.2.1: the neighbour's next hop is none of our
    /// neighbours, and the trace did not come back to us), a claim the neighbour does not
    /// originate (0) and that is not justified already, with no request or deadline pending for
    /// it. The claim unjustified and still made at the deadline, [`crate::JUSTIFY_WAIT`] later,
    /// evicts the neighbour as an unjustified failure does (§4.2.5), the rules that spare a
    /// relay whose claim rises, moves or is withdrawn included. With `audit_signers_only`, only
    /// a neighbour that has shown it runs verification ([`NeighbourScore::signed`]).
    pub(super) fn audit_claim(
        &mut self,
        now: Instant,
        check: &Check,
        s: &Session,
        measured: (u16, u16),
        out: &mut Vec<ProbeAction>,
    ) {
        let route = &check.route;
        let key = (route.neighbour, route.prefix);
        let unproven = || {
            self.cfg.score.audit_signers_only
                && !self
                    .scores
                    .get(&route.neighbour)
                    .is_some_and(NeighbourScore::signed)
        };
        if !self.cfg.score.audit_claims
            || unproven()
            || !self.deadlines_evict()
            || !check.stable
            || check.black_hole
            || check.bounded
            || check.blame != Blame::Unknown
            || s.next_hop().is_some()
            || s.returned()
            || route.advertised == 0
            || route.advertised == babel_wire::INFINITY
            || self.justified(now, route, s)
            || self.justify_requests.contains_key(&key)
            || self.origin_deadlines.contains_key(&key)
        {
            return;
        }
        self.set_deadline(now, check, measured, crate::JUSTIFY_WAIT, true);
        self.counters.audits += 1;
        let asked = AskedClaim {
            claim: route.advertised,
            link: measured.1,
            cost: measured.0,
            settled: AskedClaim::settled(check),
            at: now,
        };
        self.ask_to_justify(now, key, asked, out);
    }
}

/// §4.2.5, `reask_moved_claim`: the neighbour's claim for the destination (`key`) that
/// `candidates` show: `Some(None)` withdrawn (unreachable, or gone while the destination has
/// other routes), `Some(Some(m))` the claim `m`. `None` when the destination has no route there
/// at all (gone from the engine, or no routes handed): that says nothing.
fn claim_in(candidates: &[VerifiableRoute], (n, p): &(NeighbourId, Prefix)) -> Option<Option<u16>> {
    let mut routes = candidates.iter().filter(|c| c.prefix == *p).peekable();
    routes.peek()?;
    Some(
        routes
            .find(|c| c.neighbour == *n)
            .map(|c| c.advertised)
            .filter(|m| *m < babel_wire::INFINITY),
    )
}

/// §4.2.5: when a Justify Request first sent at `at` and sent `sends` times is due again, if
/// it is ([`crate::JUSTIFY_RETRY`] after each sending, [`crate::JUSTIFY_SENDS`] at most).
pub(super) fn justify_retry_at(at: Instant, sends: u8) -> Option<Instant> {
    (sends < crate::JUSTIFY_SENDS).then(|| at + crate::JUSTIFY_RETRY * u32::from(sends))
}
