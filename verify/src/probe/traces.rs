//! Traces and loops (`spec/verify.md` §4.2.1, §1.4): the ICMPv6 Time Exceeded that answer a
//! session's hop-limited Remote Hellos (the neighbour's next hop, or us) and those that show
//! the route loops.

use super::*;

impl Verifier {
    /// An ICMPv6 Time Exceeded quoting one of our Remote Hellos arrived: the route under test
    /// loops (§3.4). Returns whether it matched the current session.
    pub fn handle_time_exceeded(&mut self, _now: Instant, quoted: &RemoteHello) -> bool {
        let Some(s) = self
            .sessions
            .values_mut()
            .find(|s| s.via == quoted.via && s.route.prefix == quoted.prefix)
        else {
            return false;
        };
        let back = s
            .first_seqno
            .wrapping_add(s.sent)
            .wrapping_sub(quoted.seqno);
        let ours = quoted.origin == self.router_id
            && quoted.via == s.via
            && quoted.prefix == s.route.prefix
            && back >= 1
            && back <= s.sent;
        if ours {
            s.looped = true;
            self.counters.looped += 1;
        }
        ours
    }

    /// An ICMPv6 Time Exceeded quoting the session's hop-limited Remote Hello
    /// ([`ProbeAction::SendTrace`]) came from `from`, one of our neighbours: it is the next hop of
    /// the neighbour under test on the route (§4.2.1). Returns whether it was accepted
    /// ([`Verifier::handle_trace_answer`]).
    pub fn handle_trace(&mut self, now: Instant, quoted: &RemoteHello, from: NeighbourId) -> bool {
        self.handle_trace_answer(now, quoted, Some(from)) == TraceAnswer::Accepted
    }

    /// An ICMPv6 Time Exceeded quoting `quoted` came from `from` (`None`: a router that is not
    /// our neighbour). It answers a session's trace only if it quotes that trace's Remote Hello
    /// exactly (origin, via tag, prefix, seqno, interval and timestamp) while the session is
    /// under way, and only the first answer counts: a second one naming another router makes
    /// the next hop unknown (§4.2.1, what an attacker can still do). Anything else is dropped
    /// and counted (`traces_dropped`).
    pub fn handle_trace_answer(
        &mut self,
        _now: Instant,
        quoted: &RemoteHello,
        from: Option<NeighbourId>,
    ) -> TraceAnswer {
        self.answer_trace(quoted, from, false, None)
    }

    /// [`Verifier::handle_trace_answer`], knowing the interface the Time Exceeded arrived on:
    /// an answer naming our neighbour `from` that arrived on the link to it may class a check
    /// as a next hop through us (§4.2.1, `through_us`); one that arrived on another link
    /// (forged by the neighbour under test, or the next hop's way back to us runs elsewhere)
    /// names the next hop for every other rule only.
    pub fn handle_trace_answer_on(
        &mut self,
        _now: Instant,
        quoted: &RemoteHello,
        from: Option<NeighbourId>,
        arrived_on: u32,
    ) -> TraceAnswer {
        self.answer_trace(quoted, from, false, Some(arrived_on))
    }

    /// A session's trace came back to us: its hop limit ran out here, or we received it to
    /// forward (§4.2.1): the neighbour under test forwards the route to us. It is matched,
    /// counted and dropped as [`Verifier::handle_trace_answer`]'s answers are.
    pub fn handle_trace_returned(&mut self, _now: Instant, quoted: &RemoteHello) -> TraceAnswer {
        self.answer_trace(quoted, None, true, None)
    }

    fn answer_trace(
        &mut self,
        quoted: &RemoteHello,
        from: Option<NeighbourId>,
        us: bool,
        arrived_on: Option<u32>,
    ) -> TraceAnswer {
        // §1.4: a bound's Time Exceeded, from whichever router, says the path is longer.
        if let Some(b) = self
            .sessions
            .values_mut()
            .find_map(|s| s.bounds.iter_mut().find(|b| b.hello == *quoted))
        {
            if b.exceeded {
                self.counters.traces_dropped += 1;
                return TraceAnswer::Repeated;
            }
            b.exceeded = true;
            self.counters.bounds_exceeded += 1;
            return TraceAnswer::Accepted;
        }
        let Some((neighbour, trace)) = self.sessions.values_mut().find_map(|s| {
            let n = s.route.neighbour;
            s.traces
                .iter_mut()
                .find(|t| t.hello() == quoted)
                .map(|t| (n, t))
        }) else {
            self.counters.traces_dropped += 1;
            return TraceAnswer::Unmatched;
        };
        // The neighbour under test answering for itself names nobody behind it.
        let from = from.filter(|f| *f != neighbour);
        let on_its_link = from.is_some_and(|f| arrived_on == Some(f.ifindex));
        let from = if us { TraceHop::Us } else { TraceHop::of(from) };
        let hello = quoted.clone();
        match trace {
            Trace::Sent(_) => {
                *trace = Trace::Answered(hello, from, on_its_link);
                self.counters.traces_answered += 1;
                TraceAnswer::Accepted
            }
            Trace::Answered(_, first, _) => {
                if *first != from {
                    *trace = Trace::Conflicting(hello);
                }
                self.counters.traces_dropped += 1;
                TraceAnswer::Repeated
            }
            Trace::Conflicting(_) => {
                self.counters.traces_dropped += 1;
                TraceAnswer::Repeated
            }
        }
    }

    /// Counts an ICMPv6 Time Exceeded the driver dropped before it could be offered (it does
    /// not parse): `traces_dropped`.
    pub fn trace_dropped(&mut self) {
        self.counters.traces_dropped += 1;
    }
}
