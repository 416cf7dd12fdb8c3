//! Accuracy scores and eviction (`spec/verify.md` §4): the paper's procedure and ours.

use std::collections::BTreeMap;
use std::time::Duration;

use babel_core::Instant;
use babel_wire::Prefix;
use serde::Serialize;

use crate::metric::MAX_COST;

/// Which accuracy rule decides eviction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The network paper as written: `A[d] = (A[d] + a)/2`, `s = mean(A)`, evict if `s < S`.
    Paper,
    /// Ours (§4.2): the same per-destination `A[d]`, but a neighbour is judged per destination:
    /// evicted when one destination fails (`a < S`) at two checks at least `window` apart with no
    /// passing check between. The mean cannot hide a lie on a few routes, and an honest relay of
    /// somebody else's lie has `window` to correct itself.
    Confirmed,
}

/// Scoring constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreConfig {
    /// `S`: lowest allowed accuracy (the paper's example 0.8).
    pub threshold: f64,
    /// Rule that evicts.
    pub rule: Rule,
    /// [`Rule::Confirmed`]: the shortest time between the first failing check of a destination
    /// and the failing check that confirms it.
    pub window: Duration,
    /// How long a first eviction lasts; doubles with each further eviction.
    pub hold: Duration,
    /// Longest eviction.
    pub max_hold: Duration,
    /// [`Rule::Confirmed`]: a check that found the route black-holed (§3.4) confirms an
    /// eviction only this long after the first failure, and only with
    /// [`ScoreConfig::black_holes_evict`]: loops are often made by a liar further away, and last
    /// until its own neighbours evict it.
    pub black_hole_window: Duration,
    /// [`Rule::Confirmed`]: whether a black hole can confirm an eviction. Off by default: a
    /// black hole does not say who on the path is at fault (§3.4), so it corrects metrics and
    /// joins the run of failures, but only a measured lie (an answered check) confirms it.
    pub black_holes_evict: bool,
    /// Destinations remembered per neighbour (least recently checked forgotten first).
    pub max_destinations: usize,
    /// [`Rule::Confirmed`]: a run of failures of one destination is broken when two failing
    /// checks are further apart than this (an old failure says nothing about the route now).
    pub confirm_within: Duration,
    /// [`Rule::Confirmed`]: attribution by the next hop (`spec/verify.md` §4.2.1). A failing
    /// check whose [`Blame`] is [`Blame::Relay`] neither starts nor confirms a run, and a black
    /// hole whose blame is [`Blame::Origin`] confirms as a measured lie does.
    pub attribution: bool,
    /// [`Rule::Confirmed`]: evidence only from settled routes (`spec/verify.md` §4.2.2), in
    /// two halves that can be used apart ([`StableEvidence`]).
    pub stable_evidence: StableEvidence,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: a trace that comes back to us
    /// (the neighbour forwards the route to us) is attributed against our own selected route's
    /// metric, which is what we advertise to the neighbour (`spec/verify.md` §4.2.1, a loop
    /// through the verifier).
    pub returned_blame: bool,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: the neighbour is the origin of a
    /// lie only if its claim is under its next hop's plus a link both when the session started
    /// and when it ended (`spec/verify.md` §4.2.1).
    pub origin_at_both_ends: bool,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: how many traces a session sends,
    /// with hop limits from 2 up (`spec/verify.md` §4.2.1, the deeper trace): 1 finds the
    /// neighbour's next hop only; more find the first of our neighbours further on the route.
    /// At most [`crate::MAX_TRACE_DEPTH`].
    pub trace_depth: u8,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: the hop-limit bound
    /// (`spec/verify.md` §1.4). Each session also sends Remote Hellos with the hop limit the
    /// neighbour's claim allows a passing check; one that runs out on the way (an ICMPv6 Time
    /// Exceeded) proves the path longer, so that a session the destination does not answer is
    /// still scored when that alone fails it.
    pub hop_bound: bool,
    /// How a check treats a claim that fell during its session (`spec/verify.md` §1.3,
    /// [`FallenClaim`]).
    pub fallen_claim: FallenClaim,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: the origin test on *passing*
    /// checks (`spec/verify.md` §4.2.1). A check that passes, but where the neighbour claims
    /// under `S` times its next hop's claim plus a link at both ends of the session
    /// ([`Blame::Origin`] on a passing check), joins the run of failures as a failure blamed on
    /// the origin, and confirms an eviction `window` after an earlier one of them: a liar whose
    /// lies are priced out by the corrections around it still claims half of what its next hop
    /// offers it.
    pub passing_origin: bool,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: a failing check whose neighbour's
    /// next hop advertises the destination to us as unreachable, its route running through us
    /// (split horizon), is blamed on neither ([`Blame::ThroughUs`], scored as a relay) when the
    /// neighbour's claim is under our own metric plus the two links: the lie is the
    /// neighbour's or its next hop's, and which cannot be told (`spec/verify.md` §4.2.1).
    pub through_us: bool,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: the origin test (on failing and
    /// passing checks) takes the next hop found as its reference only if the next hop's own
    /// last session passed, within [`crate::NEXT_HOP_TRUST`]; otherwise the check blames
    /// nobody. A lying next hop can tell us more than it tells the neighbour and so frame it
    /// (`spec/verify.md` §4.2.1).
    pub verified_next_hop: bool,
    /// [`Rule::Confirmed`]: a claim that converges (`spec/verify.md` §4.2.3). A measured lie
    /// of a destination whose earlier measured lie is still live, where the neighbour's metric
    /// has since risen by at least `1/S` and the accuracy by at least `(1 − S)/2`, confirms
    /// nothing and starts the destination's run afresh, unless the check blames the origin
    /// ([`Blame::Origin`]): an honest relay corrects its own next hop one link at a time, a
    /// liar's accuracy falls as its path's cost rises.
    pub progress: bool,
    /// [`Rule::Confirmed`] with [`ScoreConfig::progress`]: a claim converges on its accuracy
    /// alone (`spec/verify.md` §4.2.3): the rise of the accuracy by `(1 − S)/2` suffices, the
    /// metric need not have risen by `1/S` (the measured cost may have fallen instead, or the
    /// claim risen less). Off by default.
    pub progress_on_accuracy: bool,
    /// [`Rule::Confirmed`] with [`ScoreConfig::attribution`]: failures blamed on nobody need
    /// breadth (`spec/verify.md` §4.2.4). When no live failure of the run blames the origin
    /// (§4.2.1), the confirming check included, the run confirms an eviction only if it holds
    /// failures of at least two destinations, or the confirming check is at least the third
    /// failure of its destination's run: an honest relay of a lie told past a router we do not
    /// hear fails on the routes through that router, often one destination, and its own
    /// verification corrects it a link at a time. Off by default: a liar whose next hop is not
    /// our neighbour blames nobody either, and is evicted later.
    pub unknown_breadth: bool,
    /// [`Rule::Confirmed`]: justified claims (`spec/verify.md` §4.2.5). A failing check makes
    /// us ask the neighbour to justify its claim; it answers with what its own next hop signs
    /// that it offers it. A claim at least that plus one cheapest link is the next hop's
    /// ([`Blame::Justified`], scored as a relay), and the justification ends the destination's
    /// run of failures. On by default.
    pub justification: bool,
    /// [`Rule::Confirmed`] with [`ScoreConfig::justification`] and
    /// [`ScoreConfig::attribution`]: a failure of a settled route blamed on the neighbour as
    /// the origin (§4.2.1) that it does not justify within [`crate::JUSTIFY_WAIT`] evicts it
    /// then, without a second failure (§4.2.5).
    pub unjustified_origin_evicts: bool,
    /// With [`ScoreConfig::unjustified_origin_evicts`]: a measured failure (answered, not a
    /// black hole) of a settled route blamed on nobody (§4.2.1, the next hop unknown) that the
    /// neighbour does not justify within [`crate::JUSTIFY_WAIT`] evicts it then too (§4.2.5).
    /// An honest relay justifies with its next hop's signature. On by default.
    pub unjustified_unknown_evicts: bool,
    /// With [`ScoreConfig::unjustified_origin_evicts`] and [`ScoreConfig::through_us`]: a
    /// measured failure of a settled route blamed on neither because the neighbour's next hop
    /// routes through us ([`Blame::ThroughUs`], §4.2.1) that the neighbour does not justify
    /// within [`crate::JUSTIFY_WAIT`] evicts it then too (§4.2.5). Its next hop signs what it
    /// offers: a lie of the next hop's justifies the claim, the neighbour's own does not. On
    /// by default.
    pub unjustified_through_us_evicts: bool,
    /// With [`ScoreConfig::unjustified_through_us_evicts`]: a loop through us
    /// (`spec/verify.md` §4.2.5). A black hole of a settled route that we select through the
    /// neighbour, whose Remote Hellos came back looping, and whose next hop (found by the
    /// trace on its own link) routes through us, is blamed on neither ([`Blame::ThroughUs`])
    /// and evicts unless justified within [`crate::JUSTIFY_WAIT`]: among honest routers no
    /// loop forms (RFC 8966 §3.5.1), so the loop is the neighbour's lie or its next hop's,
    /// whose signature tells them apart. On by default.
    pub loop_through_us: bool,
    /// With [`ScoreConfig::justification`]: a Signed Claim refused because the neighbour's
    /// claim was under its floor justifies as soon as the claim we hear reaches the floor,
    /// before the deadline, rather than only if it is there at the deadline
    /// (`spec/verify.md` §4.2.5). The verifier asks for the routes at every timer while such
    /// a claim is pending ([`crate::Verifier::wants_routes`]).
    pub justify_on_rise: bool,
    /// With [`ScoreConfig::justification`]: a failure whose deadline finds the neighbour's
    /// claim moved from the claim that failed, or made again after the verifier saw it
    /// withdrawn (and not corrected), is not judged on the claim it no longer makes. The verifier asks the neighbour once more to justify the claim it
    /// makes now and judges at a second deadline, [`crate::JUSTIFY_WAIT`] later
    /// (`spec/verify.md` §4.2.5). An honest relay that moved onto another's lie in the
    /// meantime justifies with that next hop's signed word; a neighbour's own lie does not.
    /// A claim withdrawn at a deadline corrects the failure only if it stays withdrawn for
    /// [`ScoreConfig::confirm_within`]; back before, it is judged as a claim made anew.
    pub reask_moved_claim: bool,
    /// With [`ScoreConfig::justification`] and [`ScoreConfig::unjustified_origin_evicts`]: a
    /// failing check blamed on nobody ([`Blame::Unknown`]) that confirms the run of failures
    /// does not evict at once ([`CheckVerdict::Awaiting`]); it evicts at its deadline,
    /// [`crate::AWAIT_JUSTIFY`] later, unless the neighbour justifies or corrects the claim
    /// by then (`spec/verify.md` §4.2.5). A neighbour whose next hop signs that it offers
    /// what the neighbour's claim says is not the liar, whoever made the path cost more.
    pub confirmed_awaits_justification: bool,
    /// With [`ScoreConfig::justification`]: a Signed Claim of infinity (the neighbour's next
    /// hop had no route when it signed) does not answer the Justify Request; the request is
    /// sent again as its retries fall due ([`crate::JUSTIFY_RETRY`]), to whichever next hop
    /// the neighbour has then (`spec/verify.md` §4.2.5).
    pub reask_infinite_claim: bool,
    /// With [`ScoreConfig::justification`]: a Signed Claim refused because the neighbour's
    /// claim is under its floor (the signed metric plus a link) does not answer the Justify
    /// Request either; the request is sent again as its retries fall due, to whichever next
    /// hop the neighbour has then (`spec/verify.md` §4.2.5). A next hop signs what it offers
    /// at one instant: a transient rise the neighbour never heard, or a next hop the
    /// neighbour left because of the signed word it relayed, leaves a claim the neighbour
    /// still makes honestly through another. A liar's claim is refused at every sending and
    /// judged at the same deadline.
    pub reask_refused_claim: bool,
    /// With [`ScoreConfig::justification`]: a claim that rose since its failure corrects it
    /// at the deadline (§4.2.2) only if it is no longer under `S` times what the next hop the
    /// session found (or we, when the route came back to us) offers now, plus a link
    /// (`spec/verify.md` §4.2.5, "A rise still under the next hop"). A claim still that far
    /// under its next hop's offer is a claim made anew, asked to justify as one that moved. A
    /// liar whose lie rises with the path behind it (a loop counting up) keeps its ratio to
    /// what it is offered while passing the cost measured before. On by default.
    pub correction_meets_next_hop: bool,
    /// With [`ScoreConfig::justification`]: a claim that rose since its failure corrects it
    /// at the deadline (§4.2.2) only if it lands near the cost we measured, no more than
    /// `1/S` times it (`spec/verify.md` §4.2.5, "A rise past the cost measured"). A claim
    /// risen further says the path behind the neighbour changed since we measured it, not
    /// that the neighbour corrected its claim: it is a claim made anew, asked to justify as
    /// one that moved. A liar whose lie rides a path that grew dearer keeps its ratio to its
    /// path while passing the cost measured on the old one. Black holes (no cost measured)
    /// are not concerned. On by default.
    pub correction_near_measured: bool,
    /// With [`ScoreConfig::justification`]: a failure blamed on the neighbour as the origin of
    /// its lie (§4.2.1: its claim under what its own next hop offered, at both ends of the
    /// session) is not corrected by a withdrawal (`spec/verify.md` §4.2.5, "A withdrawal after
    /// an origin failure"). Its claim seen withdrawn at the deadline, unjustified, it evicts
    /// then, instead of waiting (with `reask_moved_claim`, parked) for the claim to come back,
    /// or being forgiven. The lie was read from two advertisements, not measured, so no
    /// later state of the route undoes it; a liar whose route moves through us, or is lost for
    /// a while, after the failure is judged at the deadline rather than when it lies again.
    /// Not a claim under the floor of the Signed Claim that answered by no more than a relay's
    /// claim lags its route (`TRIGGER_WORSENING`): that withdrawal is judged as without the
    /// option. On by default.
    pub withdrawn_origin_evicts: bool,
    /// With [`ScoreConfig::justification`] and [`ScoreConfig::unjustified_origin_evicts`]:
    /// audited claims (`spec/verify.md` §4.2.6). A *passing* check of a settled route whose
    /// session found no reference for the origin test (the neighbour's next hop is none of our
    /// neighbours, and the trace did not come back to us) asks the neighbour to justify its
    /// claim all the same; a claim still unjustified, and not withdrawn, at its deadline
    /// ([`crate::JUSTIFY_WAIT`], with the rules above) evicts it. A claim under what its own
    /// next hop offers it is a lie whatever the path measured: the lie of a partial liar whose
    /// next hop we cannot hear, once the corrections around it have priced its lies above what
    /// we measure, passes every check. On by default.
    pub audit_claims: bool,
    /// With [`ScoreConfig::audit_claims`]: audit only neighbours that have shown they run
    /// verification (`spec/verify.md` §4.2.6): a destination they originate answered a
    /// session through them, signed with the key bound to it. A router that cannot relay a
    /// Justify Request (a stock Babel router) is then never audited, so a mesh with such
    /// routers keeps its audits of the others; a liar that never lets its own destinations
    /// answer is not audited either. Off by default (every neighbour is audited).
    pub audit_signers_only: bool,
    /// With [`ScoreConfig::justification`]: a neighbour whose failing (or audited) claims
    /// had to be asked before they rose to what they should be, twice within
    /// [`ScoreConfig::asked_rise_window`], is evicted (`spec/verify.md` §4.2.5, "A claim that
    /// rises only when asked"). A liar that answers every Justify Request by telling the
    /// truth about the destination asked, for as long as the floor it was shown is kept, and
    /// lies again afterwards, is otherwise justified or corrected at every deadline. On by
    /// default.
    pub asked_rises_evict: bool,
    /// How long a claim that rose only when asked is remembered
    /// ([`ScoreConfig::asked_rises_evict`]).
    pub asked_rise_window: Duration,
    /// With [`ScoreConfig::asked_rises_evict`]: the second claim risen only once asked evicts
    /// only if it was asked about after the first had risen (`spec/verify.md` §4.2.5): the
    /// evasive liar's pattern (asked, it rises; it lies again; asked again, it rises again),
    /// where an honest relay whose route is in flux rises on several destinations asked about
    /// together. Off by default: an evasive liar asked about several destinations at once
    /// rises on all of them at once too, and in simulation the option let more of them through.
    pub asked_rises_apart: bool,
    /// With [`ScoreConfig::asked_rises_evict`]: the claim asked about is held against the
    /// lowest floor of the Signed Claims that answered the ask (`spec/verify.md` §4.2.5,
    /// condition 4), not only the latest. Off by default.
    pub asked_rise_lowest_floor: bool,
    /// With [`ScoreConfig::justification`]: a neighbour whose claim rose to its next hop's
    /// signed word when asked, fell back under that word within
    /// [`ScoreConfig::asked_rise_window`], and rose to it again when asked once more, is
    /// evicted (`spec/verify.md` §4.2.5, "A claim that falls back"). The verifier watches a
    /// claim that rose to a Signed Claim's floor for the window and asks again as soon as it
    /// falls back under it, with a deadline: a claim still under the floor then is
    /// unjustified. Off by default (a relay whose claim falls onto a next hop that cannot
    /// sign, a stock Babel router, cannot justify it).
    pub fall_back_evicts: bool,
}

/// How a check treats a claim that fell during its session (`spec/verify.md` §1.3): the probes
/// of a session measure the path the claim at its start described, and a claim that fell while
/// they travelled (a lie reaching an honest relay) no longer describes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallenClaim {
    /// Scored at the session's end, as every other claim.
    #[default]
    End,
    /// Scored at the session's start: `m` is the larger of our metric at the end and the
    /// neighbour's claim at the start priced with our link at the end.
    Start,
    /// A check that the fall alone fails (it passes at the start's claim) is no evidence: it
    /// neither joins nor ends the destination's run of failures.
    NoEvidence,
}

impl FallenClaim {
    /// The configuration keyword (`end`, `start`, `no-evidence`).
    pub fn as_str(self) -> &'static str {
        match self {
            FallenClaim::End => "end",
            FallenClaim::Start => "start",
            FallenClaim::NoEvidence => "no-evidence",
        }
    }
}

impl std::fmt::Display for FallenClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `fallen_claim` keyword that is none of `end`, `start`, `no-evidence`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown fallen-claim mode {0:?} (expected end, start or no-evidence)")]
pub struct UnknownFallenClaim(pub String);

impl std::str::FromStr for FallenClaim {
    type Err = UnknownFallenClaim;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "end" => Ok(FallenClaim::End),
            "start" => Ok(FallenClaim::Start),
            "no-evidence" => Ok(FallenClaim::NoEvidence),
            _ => Err(UnknownFallenClaim(s.to_owned())),
        }
    }
}

/// Which halves of §4.2.2 (evidence only from settled routes) are in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StableEvidence {
    /// Neither: every failing check counts.
    #[default]
    Off,
    /// Settled only: a failing check counts towards an eviction only if the route through the
    /// neighbour was stable for the whole session (same advertised metric, our metric not
    /// risen).
    Settled,
    /// Forgiveness only: a live failure is forgiven when the neighbour's own metric for the
    /// destination rises to what we measured, or it retracts the route after a black hole (an
    /// honest node converges; a liar keeps lying).
    Forgive,
    /// Both halves.
    Both,
    /// Forgiveness judged on the metric now (§4.2.2): as [`StableEvidence::Forgive`], but a
    /// failure is set aside only while the neighbour's current metric stays corrected, at every
    /// check of the neighbour, instead of for good at the first moment it was: a liar whose
    /// real path cost wavers (its lie is half of it) rises for a moment and falls back, an
    /// honest neighbour that converged stays where it converged.
    ForgiveCurrent,
    /// As [`StableEvidence::Forgive`], but a black hole is forgiven only when the neighbour
    /// retracts the route (§4.2.2): a looping liar's metric counts up for a moment as the loop
    /// breaks, an honest neighbour that led us into a loop withdraws the route.
    ForgiveRetraction,
}

impl StableEvidence {
    /// Whether an unsettled failing check is no evidence.
    pub fn settled(self) -> bool {
        matches!(self, StableEvidence::Settled | StableEvidence::Both)
    }

    /// Whether a live failure is forgiven when the neighbour's metric rises.
    pub fn forgives(self) -> bool {
        matches!(
            self,
            StableEvidence::Forgive
                | StableEvidence::Both
                | StableEvidence::ForgiveCurrent
                | StableEvidence::ForgiveRetraction
        )
    }

    /// The configuration keyword (`off`, `settled`, `forgive`, `both`, `forgive-current`,
    /// `forgive-retraction`).
    pub fn as_str(self) -> &'static str {
        match self {
            StableEvidence::Off => "off",
            StableEvidence::Settled => "settled",
            StableEvidence::Forgive => "forgive",
            StableEvidence::Both => "both",
            StableEvidence::ForgiveCurrent => "forgive-current",
            StableEvidence::ForgiveRetraction => "forgive-retraction",
        }
    }
}

impl std::fmt::Display for StableEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `stable_evidence` keyword that is none of `off`, `settled`, `forgive`, `both`,
/// `forgive-current`, `forgive-retraction` (or the booleans `false`, `true`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown stable-evidence mode {0:?} (expected off, settled, forgive, both, forgive-current or forgive-retraction)"
)]
pub struct UnknownStableEvidence(pub String);

impl std::str::FromStr for StableEvidence {
    type Err = UnknownStableEvidence;

    /// `false`/`off`, `settled`, `forgive`, `true`/`both`, `forgive-current`,
    /// `forgive-retraction`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" | "false" => Ok(StableEvidence::Off),
            "settled" => Ok(StableEvidence::Settled),
            "forgive" => Ok(StableEvidence::Forgive),
            "both" | "true" => Ok(StableEvidence::Both),
            "forgive-current" => Ok(StableEvidence::ForgiveCurrent),
            "forgive-retraction" => Ok(StableEvidence::ForgiveRetraction),
            _ => Err(UnknownStableEvidence(s.to_owned())),
        }
    }
}

/// Who on the path a failing check points at (`spec/verify.md` §4.2.1), from the neighbour's
/// next hop on the route under test (a hop-limited Remote Hello's ICMPv6 Time Exceeded) and the
/// metrics both advertise to us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blame {
    /// The next hop is unknown, or not our neighbour, or nothing can be said.
    #[default]
    Unknown,
    /// The neighbour advertises less than its own next hop offers it plus one cheapest link:
    /// the lie starts at the neighbour.
    Origin,
    /// The neighbour's metric is its next hop's plus at least one link, and the next hop's own
    /// claim already fails the check: the neighbour repeats a lie told further on.
    Relay,
    /// The neighbour's next hop routes through us (it advertises the destination to us as
    /// unreachable, split horizon, yet forwards our probes), so an honest next hop offers the
    /// neighbour at least our own metric plus a link, and the neighbour claims less than that
    /// plus its own link: the next hop lied to it or it lies, and which cannot be told. Scored
    /// as a relay ([`ScoreConfig::through_us`], `spec/verify.md` §4.2.1).
    ThroughUs,
    /// The neighbour justified its claim (§4.2.5): its next hop signed that it offers it a
    /// metric that, plus one cheapest link, is at most the neighbour's claim. Scored as a relay.
    Justified,
}

impl Blame {
    /// Its name in `dump`, `monitor` and `dump json` (`unknown`, `origin`, `relay`,
    /// `through-us`).
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Unknown => "unknown",
            Blame::Origin => "origin",
            Blame::Relay => "relay",
            Blame::ThroughUs => "through-us",
            Blame::Justified => "justified",
        }
    }
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            threshold: 0.8,
            rule: Rule::Confirmed,
            window: Duration::from_secs(5),
            hold: Duration::from_secs(300),
            max_hold: Duration::from_secs(86_400),
            black_hole_window: Duration::from_secs(45),
            black_holes_evict: false,
            max_destinations: 64,
            confirm_within: Duration::from_secs(45),
            attribution: true,
            stable_evidence: StableEvidence::ForgiveRetraction,
            returned_blame: true,
            origin_at_both_ends: true,
            trace_depth: 1,
            hop_bound: true,
            fallen_claim: FallenClaim::End,
            passing_origin: true,
            through_us: true,
            verified_next_hop: false,
            progress: true,
            progress_on_accuracy: false,
            unknown_breadth: false,
            justification: true,
            unjustified_origin_evicts: true,
            unjustified_unknown_evicts: true,
            unjustified_through_us_evicts: true,
            loop_through_us: true,
            justify_on_rise: true,
            reask_moved_claim: true,
            confirmed_awaits_justification: true,
            reask_infinite_claim: true,
            reask_refused_claim: true,
            correction_meets_next_hop: true,
            correction_near_measured: true,
            withdrawn_origin_evicts: true,
            audit_claims: true,
            audit_signers_only: false,
            asked_rises_evict: true,
            asked_rise_window: Duration::from_secs(90),
            asked_rises_apart: false,
            asked_rise_lowest_floor: false,
            fall_back_evicts: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct DestScore {
    /// The paper's `A[d]`.
    a: f64,
    /// First failing check of the current run of failures.
    first_fail: Option<Instant>,
    /// First failing check of the current run blamed on the neighbour (§4.2.1).
    first_origin: Option<Instant>,
    /// Last failing check of the current run.
    last_fail: Option<Instant>,
    /// Failing checks in the current run (§4.2.4, saturating).
    fails: u8,
    /// The last failing check's metric `m`, measured cost `c` and our link cost then (§4.2.2:
    /// a rise of the neighbour's claim, priced with that link, to `S · c` forgives the run).
    fail_measure: Option<(u16, u16, u16)>,
    /// [`StableEvidence::ForgiveCurrent`]: the run's failure is set aside, as the neighbour's
    /// metric was corrected at its last check.
    forgiven: bool,
    last: Instant,
}

impl DestScore {
    /// Ends the destination's run of failures (a passing check, a correction, readmission).
    fn end_run(&mut self) {
        self.restart_run();
        self.last_fail = None;
        self.fail_measure = None;
        self.forgiven = false;
    }

    /// Starts the destination's run afresh at the failure being recorded: earlier failures no
    /// longer count towards confirming it (§4.2, §4.2.3, §4.2.4).
    fn restart_run(&mut self) {
        self.first_fail = None;
        self.first_origin = None;
        self.fails = 0;
    }
}

/// What one check found, as the score needs it ([`NeighbourScore::record_evidence`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evidence {
    /// The accuracy `a = min(m/c, 1)`.
    pub a: f64,
    /// Unanswered, and scored as a black hole (§3.4, §4.2).
    pub black_hole: bool,
    /// Whom it blames (§4.2.1, only with [`ScoreConfig::attribution`]).
    pub blame: Blame,
    /// The route's metric `m`, the measured cost `c`, and whether the route was stable for the
    /// whole session (§4.2.2, only with [`ScoreConfig::stable_evidence`]: an unstable failure
    /// is no evidence, and a stable one is forgiven when the neighbour's metric rises to `c`);
    /// `None`: not known, the check counts as evidence.
    pub measure: Option<(u16, u16, bool)>,
    /// Our link cost to the neighbour at the check (`m` less the metric the neighbour
    /// advertised): §4.2.2 judges a correction on the neighbour's claim priced with this link,
    /// so that our link to it failing or worsening since forgives nothing.
    pub link: u16,
}

/// What a check did to a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckVerdict {
    /// Nothing changed in its standing.
    Kept,
    /// It is evicted now, until the given time.
    Evicted(Instant),
    /// With [`ScoreConfig::confirmed_awaits_justification`]: the check confirmed a run of
    /// failures blamed on nobody; the neighbour is evicted at the failure's justification
    /// deadline unless it justifies or corrects its claim by then (`spec/verify.md` §4.2.5).
    Awaiting,
}

/// Why a neighbour was evicted (§4.3), kept with its standing so that an operator can tell a
/// metric that failed its checks from a claim that went unjustified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionCause {
    /// Checks of the route failed: a run of failures confirmed (§4.2), one failure on
    /// probation (§4.3), or the score under the threshold (the paper's rule, §4.1).
    Checks,
    /// A failing claim was not justified by its deadline (§4.2.5).
    Unjustified,
    /// A passing claim, audited, was not justified by its deadline (§4.2.6).
    Audit,
    /// Claims rose to what they should be only when asked, twice (§4.2.5, `asked_rises_evict`).
    AskedRises,
    /// A claim rose to its next hop's signed word when asked, fell back under it, and rose
    /// again when asked again (§4.2.5, `fall_back_evicts`).
    FellBack,
}

impl EvictionCause {
    /// The word `dump`, `monitor` and `babelctl show` print.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionCause::Checks => "checks",
            EvictionCause::Unjustified => "unjustified",
            EvictionCause::Audit => "audit",
            EvictionCause::AskedRises => "asked-rises",
            EvictionCause::FellBack => "fell-back",
        }
    }
}

/// One eviction (§4.3): the route whose checks or claim caused it, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eviction {
    /// The destination of the route.
    pub prefix: Prefix,
    /// How it came about.
    pub cause: EvictionCause,
}

/// The accuracy state of one neighbour (bounded: [`ScoreConfig::max_destinations`]).
#[derive(Clone, Debug, Default)]
pub struct NeighbourScore {
    dests: BTreeMap<Prefix, DestScore>,
    evicted_until: Option<Instant>,
    /// Until when any failing check evicts at once (probation after readmission).
    probation_until: Option<Instant>,
    evictions: u32,
    last_eviction: Option<Eviction>,
    /// It has shown that it runs verification (§4.2.6, `audit_signers_only`).
    signed: bool,
    /// When its claims rose only once asked (§4.2.5, `asked_rises_evict`), the oldest first;
    /// at most [`MAX_ASKED_RISES`].
    asked_rises: Vec<Instant>,
}

/// How many claims that rose only once asked a neighbour's score remembers (two evict; with
/// `asked_rises_apart` the second must be asked about after the first rose).
const MAX_ASKED_RISES: usize = 4;

impl NeighbourScore {
    /// The neighbour's score `s` under `rule`: the mean of `A` (paper) or its minimum (ours); 1
    /// with no checks.
    pub fn score(&self, rule: Rule) -> f64 {
        if self.dests.is_empty() {
            return 1.0;
        }
        match rule {
            Rule::Paper => self.dests.values().map(|d| d.a).sum::<f64>() / self.dests.len() as f64,
            Rule::Confirmed => self.dests.values().map(|d| d.a).fold(1.0, f64::min),
        }
    }

    /// The per-destination score `A[d]`.
    pub fn destination(&self, prefix: &Prefix) -> Option<f64> {
        self.dests.get(prefix).map(|d| d.a)
    }

    /// Destinations remembered.
    pub fn destinations(&self) -> usize {
        self.dests.len()
    }

    /// Whether the neighbour is evicted at `now`.
    pub fn is_evicted(&self, now: Instant) -> bool {
        self.evicted_until.is_some_and(|t| now < t)
    }

    /// When the current eviction ends.
    pub fn evicted_until(&self) -> Option<Instant> {
        self.evicted_until
    }

    /// How many times it was evicted.
    pub fn evictions(&self) -> u32 {
        self.evictions
    }

    /// Its latest eviction, over or not.
    pub fn last_eviction(&self) -> Option<Eviction> {
        self.last_eviction
    }

    /// Whether it has shown that it runs verification: a destination it originates answered
    /// a session through it, signed with the key bound to the destination (§4.2.6,
    /// [`ScoreConfig::audit_signers_only`]).
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// Notes that a destination it originates answered a session through it (§4.2.6).
    pub fn note_signed(&mut self) {
        self.signed = true;
    }

    /// Records one check of the route to `prefix` through this neighbour with accuracy `a`
    /// (§4.1 update, then §4.2 or the paper's rule).
    pub fn record(
        &mut self,
        now: Instant,
        cfg: &ScoreConfig,
        prefix: Prefix,
        a: f64,
    ) -> CheckVerdict {
        self.record_check(now, cfg, prefix, a, false, Blame::Unknown)
    }

    /// [`NeighbourScore::record`], saying whether the check found a black hole (§3.4, §4.2) and
    /// whom it blames (§4.2.1, only with [`ScoreConfig::attribution`]); the route's stability
    /// (§4.2.2) is not known, and the check counts as evidence.
    pub fn record_check(
        &mut self,
        now: Instant,
        cfg: &ScoreConfig,
        prefix: Prefix,
        a: f64,
        black_hole: bool,
        blame: Blame,
    ) -> CheckVerdict {
        let e = Evidence {
            a,
            black_hole,
            blame,
            measure: None,
            link: 0,
        };
        self.record_evidence(now, cfg, prefix, e)
    }

    /// §4.2.2 (with [`ScoreConfig::stable_evidence`]): forgives the live failure of every
    /// destination whose route through this neighbour is now advertised at no less than the
    /// failing check found, `advertised_of` giving the metric the neighbour advertises for the
    /// destination now (`INFINITY` when retracted, `None` when unknown); the route's metric `m`
    /// is that plus our link cost at the failing check, so that our link to the neighbour
    /// failing or worsening since is no correction of its claim. A measured lie is forgiven
    /// when `m ≥ S · c`; a black hole when the route is retracted or its metric rose by at
    /// least `1/S` (with [`StableEvidence::ForgiveRetraction`], only when it is retracted).
    /// With [`StableEvidence::ForgiveCurrent`] a failure is only set aside while
    /// this holds, judged again at every call, and its run goes on if the metric falls back.
    /// Returns how many were forgiven (set aside) now.
    pub fn forgive_corrected(
        &mut self,
        now: Instant,
        cfg: &ScoreConfig,
        advertised_of: impl Fn(&Prefix) -> Option<u16>,
    ) -> usize {
        if !cfg.stable_evidence.forgives() || cfg.rule != Rule::Confirmed {
            return 0;
        }
        let mut n = 0;
        for (prefix, d) in self.dests.iter_mut() {
            let live = d
                .last_fail
                .is_some_and(|l| now.saturating_since(l) <= cfg.confirm_within);
            let (Some((m0, c, link)), true) = (d.fail_measure, live) else {
                continue;
            };
            let Some(m) = advertised_of(prefix).map(|a| claim_metric(a, link)) else {
                continue;
            };
            let corrected = corrected(cfg, m, m0, c);
            if cfg.stable_evidence == StableEvidence::ForgiveCurrent {
                // Set aside while corrected; counted again if the metric falls back.
                d.forgiven = corrected;
                n += usize::from(corrected);
            } else if corrected {
                d.end_run();
                n += 1;
            }
        }
        n
    }

    /// [`NeighbourScore::record`] of one check described by `e` (§4.2, §4.2.1, §4.2.2).
    pub fn record_evidence(
        &mut self,
        now: Instant,
        cfg: &ScoreConfig,
        prefix: Prefix,
        e: Evidence,
    ) -> CheckVerdict {
        let Evidence {
            a,
            black_hole,
            blame,
            measure,
            link,
        } = e;
        let a = a.clamp(0.0, 1.0);
        let blame = if cfg.attribution {
            blame
        } else {
            Blame::Unknown
        };
        crate::bounded::make_room(&mut self.dests, cfg.max_destinations, &prefix, |d| d.last);
        let d = self.dests.entry(prefix).or_insert(DestScore {
            a: 1.0,
            first_fail: None,
            first_origin: None,
            last_fail: None,
            fails: 0,
            fail_measure: None,
            forgiven: false,
            last: now,
        });
        d.a = (d.a + a) / 2.0;
        d.last = now;
        let failed = a < cfg.threshold;
        // §4.2.1, the origin test on passing checks: the check passes, but the neighbour
        // claims well under what its own next hop offers it, at both ends of the session. It
        // counts as a failure blamed on the origin (it neither ends the run nor corrects).
        let origin_claim = !failed
            && cfg.passing_origin
            && cfg.attribution
            && cfg.rule == Rule::Confirmed
            && blame == Blame::Origin
            && !black_hole;
        // §4.2.1: a relayed lie is the next hop's; it corrects metrics (the driver) and
        // lowers `A[d]`, but says nothing about this neighbour's honesty. Nor does a lie that
        // is the neighbour's or its next hop's, which routes through us (`ThroughUs`).
        // A black hole that does not start at the neighbour blames nobody in particular: it
        // corrects metrics, and does not count against the neighbour either.
        let unattributed_hole = cfg.attribution && black_hole && blame != Blame::Origin;
        if failed
            && (matches!(blame, Blame::Relay | Blame::ThroughUs | Blame::Justified)
                || unattributed_hole)
        {
            return CheckVerdict::Kept;
        }
        // §4.2.2: a route that changed during the session was reconverging; what it measured
        // says nothing about the neighbour's honesty (it corrects metrics all the same).
        let unsettled = cfg.stable_evidence.settled()
            && cfg.rule == Rule::Confirmed
            && measure.is_some_and(|m| !m.2);
        if (failed || origin_claim) && unsettled {
            return CheckVerdict::Kept;
        }
        // §4.2.3: the neighbour's claim converges towards what we measure: its metric rose by
        // at least `1/S` since the destination's live measured lie, and its accuracy by at
        // least `(1 − S)/2`. The run of the destination starts afresh here, and this check
        // confirms nothing. Not when the check blames the origin: a liar's claim follows its
        // next hop's, which the corrections around it can raise while the path stays as it is.
        let progressed = cfg.progress
            && cfg.rule == Rule::Confirmed
            && failed
            && !black_hole
            && blame != Blame::Origin
            && !d.forgiven
            && d.last_fail
                .is_some_and(|l| now.saturating_since(l) <= cfg.confirm_within)
            && match (d.fail_measure, measure) {
                (Some((m0, c0, _)), Some((m1, c1, _))) => converges(cfg, (m0, c0), (m1, c1)),
                _ => false,
            };
        if failed || origin_claim {
            if d.last_fail
                .is_some_and(|l| now.saturating_since(l) > cfg.confirm_within)
                || progressed
            {
                d.restart_run();
            }
            // A failure set aside as corrected (judged on the metric now) does not carry on:
            // this one starts the destination's run afresh.
            if d.forgiven {
                d.restart_run();
                d.forgiven = false;
            }
            d.last_fail = Some(now);
            d.fails = d.fails.saturating_add(1);
            // A passing check's measure would forgive it at once (`m ≥ S · c`): its lie is in
            // the claims, and only a check without it (which ends the run) clears it.
            d.fail_measure = if origin_claim {
                None
            } else {
                measure.map(|(m, c, _)| (m, c, link))
            };
            d.first_fail.get_or_insert(now);
            if blame == Blame::Origin {
                d.first_origin.get_or_insert(now);
            }
        } else {
            d.end_run();
        }
        let run_fails = d.fails;
        // §4.2: the neighbour's run of failures is every destination whose latest check failed,
        // no longer than `confirm_within` ago; it is confirmed by a failing check at least
        // `window` after the earliest of them. A passing check clears its destination only,
        // so a partial liar's honest routes do not hide its lies.
        // Confirmed by a failing check at least `window` after the earliest live failure, or
        // `black_hole_window` when the confirming check is a black hole (loops are often made by
        // a liar further away, and honest relays need time to leave them).
        // §4.2.1: a black hole that starts at the neighbour (it is the origin of the lie that
        // made the loop) is as good as a measured lie, once an earlier failure of the run was
        // blamed on the neighbour too (one comparison of metrics can catch an update in flight).
        // §4.2.1, passing checks: a claim under the next hop's confirms as a black hole blamed
        // on the origin does, `window` after an earlier failure blamed on the origin.
        let origin_hole = black_hole && blame == Blame::Origin;
        let origin_only = origin_hole || origin_claim;
        let confirmed = !progressed
            && (failed || origin_claim)
            && (!black_hole || origin_hole || cfg.black_holes_evict)
            && {
                let window = if black_hole && !origin_hole {
                    cfg.black_hole_window.max(cfg.window)
                } else {
                    cfg.window
                };
                self.dests
                    .values()
                    .filter(|d| {
                        !d.forgiven
                            && d.last_fail
                                .is_some_and(|l| now.saturating_since(l) <= cfg.confirm_within)
                    })
                    .filter_map(|d| {
                        if origin_only {
                            d.first_origin
                        } else {
                            d.first_fail
                        }
                    })
                    .min()
                    .is_some_and(|first| now.saturating_since(first) >= window)
            };
        // §4.2.4: a run that blames nobody (no live failure blamed on the origin, this check
        // included, as it joined the run above) confirms only with breadth: failures of two
        // destinations, or a third failure of this one.
        let confirmed = confirmed && {
            let live = || {
                self.dests.values().filter(|d| {
                    !d.forgiven
                        && d.last_fail
                            .is_some_and(|l| now.saturating_since(l) <= cfg.confirm_within)
                })
            };
            let blames_nobody = cfg.unknown_breadth
                && cfg.attribution
                && cfg.rule == Rule::Confirmed
                && live().all(|d| d.first_origin.is_none());
            !blames_nobody || run_fails >= 3 || live().nth(1).is_some()
        };
        if self.is_evicted(now) {
            return CheckVerdict::Kept;
        }
        let on_probation = self.probation_until.is_some_and(|t| now < t);
        let evict = match cfg.rule {
            Rule::Paper => self.score(Rule::Paper) < cfg.threshold,
            Rule::Confirmed => confirmed || (failed && on_probation),
        };
        if !evict {
            return CheckVerdict::Kept;
        }
        // `confirmed_awaits_justification`: a confirmation blamed on nobody evicts at its
        // deadline (the verifier sets it), unless justified or corrected by then.
        if cfg.confirmed_awaits_justification
            && cfg.rule == Rule::Confirmed
            && confirmed
            && !on_probation
            && cfg.justification
            && cfg.unjustified_origin_evicts
            && cfg.attribution
            && blame == Blame::Unknown
            && failed
        {
            return CheckVerdict::Awaiting;
        }
        let why = Eviction {
            prefix,
            cause: EvictionCause::Checks,
        };
        self.evict(now, cfg, why)
    }

    /// §4.3: evicts the neighbour now (unless it is already), for `hold` doubled at every
    /// earlier eviction, with probation as long after it; `why` is kept as its latest.
    pub fn evict(&mut self, now: Instant, cfg: &ScoreConfig, why: Eviction) -> CheckVerdict {
        if self.is_evicted(now) {
            return CheckVerdict::Kept;
        }
        self.last_eviction = Some(why);
        let shift = self.evictions.min(16);
        let hold = cfg.hold.saturating_mul(1u32 << shift).min(cfg.max_hold);
        self.evictions = self.evictions.saturating_add(1);
        let until = now + hold;
        self.evicted_until = Some(until);
        self.probation_until = Some(until + hold);
        CheckVerdict::Evicted(until)
    }

    /// §4.2.5, `asked_rises_evict`: the neighbour's claim for `prefix`, which failed (or was
    /// audited) and was asked about at `asked_at`, rose to what it should be only once we
    /// asked it to justify the claim, at `now`. The second such rise within
    /// `asked_rise_window` evicts it; with `asked_rises_apart`, only one asked about after an
    /// earlier rise (the neighbour lied again after rising): the rises of several claims
    /// asked about together, one event of a route in flux, count once.
    pub fn asked_rise(
        &mut self,
        now: Instant,
        asked_at: Instant,
        cfg: &ScoreConfig,
        prefix: Prefix,
    ) -> CheckVerdict {
        if !cfg.asked_rises_evict {
            return CheckVerdict::Kept;
        }
        self.asked_rises
            .retain(|at| now.saturating_since(*at) <= cfg.asked_rise_window);
        let again = if cfg.asked_rises_apart {
            self.asked_rises.iter().any(|rose| asked_at > *rose)
        } else {
            !self.asked_rises.is_empty()
        };
        if !again {
            // The oldest are kept: the earliest rise is the one a later ask is after.
            if self.asked_rises.len() < MAX_ASKED_RISES {
                self.asked_rises.push(now);
            }
            return CheckVerdict::Kept;
        }
        self.asked_rises.clear();
        self.evict(
            now,
            cfg,
            Eviction {
                prefix,
                cause: EvictionCause::AskedRises,
            },
        )
    }

    /// §4.2.5: the neighbour justified its claim for `prefix`; the destination's run of
    /// failures ends (its failures were the next hop's). Returns whether a live failure ended.
    pub fn justify(&mut self, now: Instant, cfg: &ScoreConfig, prefix: &Prefix) -> bool {
        let Some(d) = self.dests.get_mut(prefix) else {
            return false;
        };
        let live = d
            .last_fail
            .is_some_and(|l| now.saturating_since(l) <= cfg.confirm_within);
        d.end_run();
        live
    }

    /// §4.3: ends an eviction whose hold has passed. The neighbour is back on probation: its
    /// per-destination scores are kept, and under [`Rule::Confirmed`] one failing check during
    /// the probation (as long as the hold) evicts it again, for twice as long. Returns true if it
    /// was readmitted now.
    pub fn readmit(&mut self, now: Instant) -> bool {
        match self.evicted_until {
            Some(t) if now >= t => {
                self.evicted_until = None;
                // Failures older than the eviction do not count towards a new one.
                for d in self.dests.values_mut() {
                    d.end_run();
                    d.a = d.a.max(0.5);
                }
                true
            }
            _ => false,
        }
    }
}

/// §4.2.3: whether a measured lie `(m1, c1)` (metric, measured cost) shows the neighbour's
/// claim converging since the earlier one `(m0, c0)`: both answered (neither a black hole),
/// the metric risen by at least `1/S` (not required with
/// [`ScoreConfig::progress_on_accuracy`]), and the accuracy `m/c` by at least `(1 − S)/2`.
fn converges(cfg: &ScoreConfig, (m0, c0): (u16, u16), (m1, c1): (u16, u16)) -> bool {
    if c0 >= MAX_COST || c1 >= MAX_COST || c0 == 0 || c1 == 0 || m1 == babel_wire::INFINITY {
        return false;
    }
    let (m0, c0, m1, c1) = (f64::from(m0), f64::from(c0), f64::from(m1), f64::from(c1));
    let threshold = cfg.threshold;
    (cfg.progress_on_accuracy || m1 * threshold >= m0)
        && m1 / c1 >= m0 / c0 + (1.0 - threshold) / 2.0
}

/// §4.2.2: whether a failure measured at `cost` ([`MAX_COST`]: a black hole) when our metric
/// through the neighbour was `m0` is corrected by its metric now, `m` (`INFINITY`: retracted):
/// a retraction always; a measured lie, a metric that rose to `S` times the cost; a black
/// hole, a rise by `1/S`, or with `forgive-retraction` nothing short of a retraction. Always
/// false when `stable_evidence` does not forgive.
/// §4.2.2: the metric `m` of a route whose neighbour advertises `advertised`, priced with our
/// link cost `link` at the failing check: `INFINITY` only when the neighbour retracted it.
pub(crate) fn claim_metric(advertised: u16, link: u16) -> u16 {
    if advertised == babel_wire::INFINITY {
        babel_wire::INFINITY
    } else {
        advertised
            .saturating_add(link)
            .min(babel_wire::INFINITY - 1)
    }
}

pub(crate) fn corrected(cfg: &ScoreConfig, m: u16, m0: u16, cost: u16) -> bool {
    if !cfg.stable_evidence.forgives() {
        false
    } else if m == babel_wire::INFINITY {
        true
    } else if cost >= MAX_COST {
        cfg.stable_evidence != StableEvidence::ForgiveRetraction
            && f64::from(m) * cfg.threshold >= f64::from(m0)
    } else {
        f64::from(m) >= cfg.threshold * f64::from(cost)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The text names of [`Blame`] (`dump`, `monitor`) are its `dump json` names.
    #[test]
    fn blame_names_are_its_json_names() {
        for b in [
            Blame::Unknown,
            Blame::Origin,
            Blame::Relay,
            Blame::ThroughUs,
        ] {
            assert_eq!(serde_json::to_value(b).unwrap(), b.as_str(), "{b:?}");
        }
    }

    fn p(i: u8) -> Prefix {
        Prefix::host(std::net::IpAddr::V6(std::net::Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            0,
            u16::from(i),
        )))
    }

    /// Two answered failures of one destination, 20 s apart: whether the second evicts.
    fn second_failure_evicts(cfg: &ScoreConfig, first: Evidence, second: Evidence) -> bool {
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), cfg, p(1), first);
        matches!(
            n.record_evidence(t(20), cfg, p(1), second),
            CheckVerdict::Evicted(_)
        )
    }

    /// The defaults with the window the scenarios below are timed for (15 s, the default
    /// before justified claims, §4.2.5).
    /// The defaults, with a shorter window, and a confirming check that evicts at once (not
    /// `Awaiting` its justification, which the verifier's deadline decides): the rules of
    /// the score alone.
    fn base() -> ScoreConfig {
        ScoreConfig {
            window: Duration::from_secs(15),
            confirmed_awaits_justification: false,
            ..ScoreConfig::default()
        }
    }

    fn t(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    /// §4.1: a single check halves the gap to a (the paper's update).
    #[test]
    fn per_destination_update_halves_gap() {
        let cfg = base();
        let mut n = NeighbourScore::default();
        n.record(t(1), &cfg, p(1), 0.5);
        assert!((n.destination(&p(1)).unwrap_or(0.0) - 0.75).abs() < 1e-9);
        n.record(t(2), &cfg, p(1), 0.5);
        assert!((n.destination(&p(1)).unwrap_or(0.0) - 0.625).abs() < 1e-9);
    }

    /// §4.1 (the paper's weakness): lying 2x on 40% of destinations never brings the mean under
    /// 0.8, while the confirmed rule evicts.
    #[test]
    fn partial_liar_escapes_paper_rule_but_not_confirmed() {
        let paper = ScoreConfig {
            rule: Rule::Paper,
            ..base()
        };
        let ours = base();
        let mut a = NeighbourScore::default();
        let mut b = NeighbourScore::default();
        let mut evicted_paper = false;
        let mut evicted_ours = None;
        for round in 0..30u64 {
            // Honest destinations first: the mean is over every destination checked.
            for d in (0..10u8).rev() {
                let acc = if d < 4 { 0.5 } else { 1.0 };
                let now = t(round * 30 + u64::from(d));
                evicted_paper |=
                    matches!(a.record(now, &paper, p(d), acc), CheckVerdict::Evicted(_));
                if let CheckVerdict::Evicted(_) = b.record(now, &ours, p(d), acc) {
                    evicted_ours.get_or_insert(round);
                }
            }
        }
        assert!(!evicted_paper);
        assert!(a.score(Rule::Paper) >= 0.8);
        assert_eq!(evicted_ours, Some(1));
    }

    /// §4.2: an isolated failing check (noise, or a relay that corrects itself) does not evict.
    #[test]
    fn isolated_failure_is_forgiven() {
        let cfg = base();
        let mut n = NeighbourScore::default();
        assert_eq!(n.record(t(0), &cfg, p(1), 0.5), CheckVerdict::Kept);
        assert_eq!(n.record(t(30), &cfg, p(1), 1.0), CheckVerdict::Kept);
        assert_eq!(n.record(t(60), &cfg, p(1), 0.5), CheckVerdict::Kept);
        assert_eq!(n.record(t(70), &cfg, p(1), 0.5), CheckVerdict::Kept);
        assert!(matches!(
            n.record(t(90), &cfg, p(1), 0.5),
            CheckVerdict::Evicted(_)
        ));
    }

    /// §4.2: failures of different destinations confirm each other (a liar cannot spread its
    /// lies thin), a passing check clears only its destination, and a recheck that passes
    /// before the window (an honest relay that corrected itself) ends the run.
    #[test]
    fn confirmation_across_destinations() {
        let cfg = base();
        let mut n = NeighbourScore::default();
        assert_eq!(n.record(t(0), &cfg, p(1), 0.5), CheckVerdict::Kept);
        assert_eq!(n.record(t(10), &cfg, p(2), 1.0), CheckVerdict::Kept);
        assert!(matches!(
            n.record(t(20), &cfg, p(3), 0.5),
            CheckVerdict::Evicted(_)
        ));
        let mut h = NeighbourScore::default();
        assert_eq!(h.record(t(0), &cfg, p(1), 0.6), CheckVerdict::Kept);
        assert_eq!(h.record(t(10), &cfg, p(2), 0.7), CheckVerdict::Kept);
        assert_eq!(h.record(t(20), &cfg, p(1), 1.0), CheckVerdict::Kept);
        assert_eq!(h.record(t(30), &cfg, p(2), 1.0), CheckVerdict::Kept);
        assert_eq!(h.record(t(40), &cfg, p(3), 0.5), CheckVerdict::Kept);
    }

    /// §4.2: failures further apart than `confirm_within` do not confirm each other.
    #[test]
    fn stale_failure_does_not_confirm() {
        let cfg = no_breadth();
        let mut n = NeighbourScore::default();
        assert_eq!(n.record(t(0), &cfg, p(1), 0.5), CheckVerdict::Kept);
        assert_eq!(n.record(t(90), &cfg, p(1), 0.5), CheckVerdict::Kept);
        assert!(matches!(
            n.record(t(110), &cfg, p(1), 0.5),
            CheckVerdict::Evicted(_)
        ));
    }

    /// §4.3: eviction lasts `hold`, doubles on a repeat, and probation re-evicts on one failure.
    #[test]
    fn eviction_hold_doubles_and_probation() {
        let cfg = no_breadth();
        let mut n = NeighbourScore::default();
        n.record(t(0), &cfg, p(1), 0.1);
        let CheckVerdict::Evicted(until) = n.record(t(30), &cfg, p(1), 0.1) else {
            panic!("not evicted");
        };
        assert_eq!(until, t(330));
        assert!(n.is_evicted(t(329)));
        assert!(!n.readmit(t(329)));
        assert!(n.readmit(t(330)));
        assert!(!n.is_evicted(t(330)));
        // Passing checks keep it in.
        assert_eq!(n.record(t(340), &cfg, p(1), 1.0), CheckVerdict::Kept);
        let CheckVerdict::Evicted(until2) = n.record(t(350), &cfg, p(2), 0.3) else {
            panic!("probation failure did not evict");
        };
        assert_eq!(until2, t(350 + 600));
        assert_eq!(n.evictions(), 2);
        // The latest eviction is kept, with the route that caused it.
        let checks = |prefix| Eviction {
            prefix,
            cause: EvictionCause::Checks,
        };
        assert_eq!(n.last_eviction(), Some(checks(p(2))));
        // An eviction asked while it is evicted changes nothing, its cause included.
        let unjustified = Eviction {
            prefix: p(3),
            cause: EvictionCause::Unjustified,
        };
        assert_eq!(n.evict(t(400), &cfg, unjustified), CheckVerdict::Kept);
        assert_eq!(n.last_eviction(), Some(checks(p(2))));
        assert!(n.readmit(until2));
        assert!(matches!(
            n.evict(until2, &cfg, unjustified),
            CheckVerdict::Evicted(_)
        ));
        assert_eq!(n.last_eviction(), Some(unjustified));
        assert_eq!(unjustified.cause.as_str(), "unjustified");
    }

    /// The defaults without §4.2.4 (failures blamed on nobody need breadth), for the tests of
    /// other clauses that confirm on two failures of one destination blamed on nobody.
    fn no_breadth() -> ScoreConfig {
        ScoreConfig {
            unknown_breadth: false,
            ..base()
        }
    }

    /// The defaults before 2026-11-30: no attribution, every failure evidence (what the tests
    /// written against them compare with).
    fn old_defaults() -> ScoreConfig {
        ScoreConfig {
            attribution: false,
            returned_blame: false,
            origin_at_both_ends: false,
            passing_origin: false,
            through_us: false,
            progress: false,
            unknown_breadth: false,
            stable_evidence: StableEvidence::Off,
            ..base()
        }
    }

    /// The defaults since 2026-11-30 (`spec/verify.md` §7): attribution with a trace back to
    /// us and the origin at both ends, black holes forgiven only by a retraction.
    #[test]
    fn defaults_attribute_and_forgive_only_retractions() {
        let c = ScoreConfig::default();
        assert!(c.attribution && c.returned_blame && c.origin_at_both_ends);
        // Since 2026-12-01: the origin test on passing checks, and a next hop through us.
        assert!(c.passing_origin && c.through_us);
        // Since 2026-12-01 (the second pass): a claim that converges restarts its run.
        assert!(c.progress);
        // Not by default (2026-12-01, the third pass): failures blamed on nobody needing
        // breadth, a claim converging on its accuracy alone.
        assert!(!c.unknown_breadth && !c.progress_on_accuracy);
        assert_eq!(c.stable_evidence, StableEvidence::ForgiveRetraction);
        assert_eq!(c.trace_depth, 1);
        // Since 2026-12-03: justified claims, and with them a window of 5 s.
        assert!(c.justification);
        assert_eq!(c.window, Duration::from_secs(5));
    }

    /// §4.2: black holes confirm only after the longer window.
    #[test]
    fn black_holes_confirm_later() {
        let mut cfg = old_defaults();
        // By default a black hole never confirms.
        let mut o = NeighbourScore::default();
        o.record_check(t(0), &cfg, p(1), 0.0, true, Blame::Unknown);
        assert_eq!(
            o.record_check(t(30), &cfg, p(1), 0.0, true, Blame::Unknown),
            CheckVerdict::Kept
        );
        assert_eq!(
            o.record_check(t(60), &cfg, p(1), 0.0, true, Blame::Unknown),
            CheckVerdict::Kept
        );
        cfg.black_holes_evict = true;
        let mut n = NeighbourScore::default();
        n.record_check(t(0), &cfg, p(1), 0.0, true, Blame::Unknown);
        assert_eq!(
            n.record_check(t(30), &cfg, p(1), 0.0, true, Blame::Unknown),
            CheckVerdict::Kept
        );
        assert!(matches!(
            n.record_check(t(45), &cfg, p(1), 0.0, true, Blame::Unknown),
            CheckVerdict::Evicted(_)
        ));
        // A lie found by an answered check still confirms after `window`.
        let mut m = NeighbourScore::default();
        m.record_check(t(0), &cfg, p(1), 0.0, true, Blame::Unknown);
        assert!(matches!(
            m.record_check(t(20), &cfg, p(1), 0.5, false, Blame::Unknown),
            CheckVerdict::Evicted(_)
        ));
    }

    /// §6: state per neighbour is bounded.
    #[test]
    fn destinations_bounded() {
        let cfg = ScoreConfig {
            max_destinations: 8,
            ..base()
        };
        let mut n = NeighbourScore::default();
        for d in 0..100u8 {
            n.record(t(u64::from(d)), &cfg, p(d), 1.0);
        }
        assert_eq!(n.destinations(), 8);
        assert!(n.destination(&p(99)).is_some());
        assert!(n.destination(&p(0)).is_none());
    }

    /// §4.2.1: a failing check that blames the next hop neither starts nor confirms a run.
    #[test]
    fn relayed_lie_is_not_the_neighbours() {
        let cfg = ScoreConfig {
            attribution: true,
            ..no_breadth()
        };
        let mut n = NeighbourScore::default();
        for s in [0, 20, 40] {
            assert_eq!(
                n.record_check(t(s), &cfg, p(1), 0.5, false, Blame::Relay),
                CheckVerdict::Kept
            );
        }
        // The paper's A[d] still records it.
        assert!(n.destination(&p(1)).is_some_and(|a| a < 0.8));
        // A relay failure does not open a run that a later failure would confirm at once.
        assert_eq!(
            n.record_check(t(50), &cfg, p(2), 0.5, false, Blame::Unknown),
            CheckVerdict::Kept
        );
        assert!(matches!(
            n.record_check(t(65), &cfg, p(2), 0.5, false, Blame::Unknown),
            CheckVerdict::Evicted(_)
        ));
        // Without attribution the same checks are scored as before.
        let plain = old_defaults();
        let mut m = NeighbourScore::default();
        m.record_check(t(0), &plain, p(1), 0.5, false, Blame::Relay);
        assert!(matches!(
            m.record_check(t(20), &plain, p(1), 0.5, false, Blame::Relay),
            CheckVerdict::Evicted(_)
        ));
    }

    /// §4.2.1: a black hole that starts at the neighbour confirms after `window`, as a measured
    /// lie does; other black holes still do not confirm.
    #[test]
    fn black_hole_at_the_origin_confirms() {
        let cfg = ScoreConfig {
            attribution: true,
            ..base()
        };
        let mut n = NeighbourScore::default();
        n.record_check(t(0), &cfg, p(1), 0.0, true, Blame::Origin);
        assert_eq!(
            n.record_check(t(10), &cfg, p(1), 0.0, true, Blame::Origin),
            CheckVerdict::Kept
        );
        assert!(matches!(
            n.record_check(t(20), &cfg, p(1), 0.0, true, Blame::Origin),
            CheckVerdict::Evicted(_)
        ));
        for blame in [Blame::Unknown, Blame::Relay] {
            let mut u = NeighbourScore::default();
            for s in [0, 20, 40, 60] {
                assert_eq!(
                    u.record_check(t(s), &cfg, p(1), 0.0, true, blame),
                    CheckVerdict::Kept
                );
            }
            // Nor do they open a run that a measured lie would confirm.
            assert_eq!(
                u.record_check(t(70), &cfg, p(2), 0.5, false, Blame::Unknown),
                CheckVerdict::Kept
            );
        }
        // A measured lie of unknown blame followed by one origin black hole is not enough.
        let mut once = NeighbourScore::default();
        once.record_check(t(0), &cfg, p(1), 0.5, false, Blame::Unknown);
        assert_eq!(
            once.record_check(t(30), &cfg, p(1), 0.0, true, Blame::Origin),
            CheckVerdict::Kept
        );
        // Without attribution an origin black hole is any black hole.
        let plain = old_defaults();
        let mut m = NeighbourScore::default();
        m.record_check(t(0), &plain, p(1), 0.0, true, Blame::Origin);
        assert_eq!(
            m.record_check(t(20), &plain, p(1), 0.0, true, Blame::Origin),
            CheckVerdict::Kept
        );
    }

    /// §4.2.2: a failing check of a route that changed during the session is no evidence; a
    /// failure is forgiven once the neighbour's metric rises to what we measured; a liar that
    /// keeps its metric is evicted as before.
    #[test]
    fn reconvergence_is_no_evidence() {
        let cfg = ScoreConfig {
            stable_evidence: StableEvidence::Both,
            ..old_defaults()
        };
        // A check at `s` seconds of destination `d`: accuracy, black hole, (m, c, settled).
        fn check(
            n: &mut NeighbourScore,
            cfg: &ScoreConfig,
            (s, d): (u64, u8),
            (a, hole): (f64, bool),
            measure: (u16, u16, bool),
        ) -> CheckVerdict {
            let e = Evidence {
                a,
                black_hole: hole,
                blame: Blame::Unknown,
                measure: Some(measure),
                link: 0,
            };
            n.record_evidence(t(s), cfg, p(d), e)
        }
        let lie = (0.5, false);
        // Unsettled failures never start, join or confirm a run.
        let mut n = NeighbourScore::default();
        for s in [0, 20, 40] {
            let v = check(&mut n, &cfg, (s, 1), lie, (200, 400, false));
            assert_eq!(v, CheckVerdict::Kept);
        }
        assert!(n.destination(&p(1)).is_some_and(|a| a < 0.8));
        let v = check(&mut n, &cfg, (50, 2), lie, (200, 400, true));
        assert_eq!(v, CheckVerdict::Kept);
        // The neighbour corrected itself: its metric is now at least S·c.
        assert_eq!(n.forgive_corrected(t(55), &cfg, |_| Some(330)), 1);
        let v = check(&mut n, &cfg, (70, 3), lie, (200, 400, true));
        assert_eq!(v, CheckVerdict::Kept);
        // A liar keeps its metric: not forgiven, evicted at the next settled failure.
        assert_eq!(n.forgive_corrected(t(75), &cfg, |_| Some(200)), 0);
        let v = check(&mut n, &cfg, (85, 3), lie, (200, 400, true));
        assert!(matches!(v, CheckVerdict::Evicted(_)));
        // A black hole is forgiven by a retraction or a rise by 1/S, not by less.
        let bh = ScoreConfig {
            black_holes_evict: true,
            black_hole_window: Duration::from_secs(15),
            ..cfg
        };
        let hole = (0.0, true);
        let inf = MAX_COST;
        let mut b = NeighbourScore::default();
        check(&mut b, &bh, (0, 1), hole, (200, inf, true));
        assert_eq!(b.forgive_corrected(t(5), &bh, |_| Some(240)), 0);
        assert_eq!(b.forgive_corrected(t(6), &bh, |_| Some(250)), 1);
        check(&mut b, &bh, (10, 1), hole, (200, inf, true));
        let retracted = b.forgive_corrected(t(12), &bh, |_| Some(babel_wire::INFINITY));
        assert_eq!(retracted, 1);
        let v = check(&mut b, &bh, (30, 1), hole, (200, inf, true));
        assert_eq!(v, CheckVerdict::Kept);
        // Without the option the same checks are scored as before.
        let plain = old_defaults();
        let mut m = NeighbourScore::default();
        check(&mut m, &plain, (0, 1), lie, (200, 400, false));
        assert_eq!(m.forgive_corrected(t(5), &plain, |_| Some(400)), 0);
        let v = check(&mut m, &plain, (20, 1), lie, (200, 400, false));
        assert!(matches!(v, CheckVerdict::Evicted(_)));
    }

    /// §4.2.2's two halves apart: `settled` ignores unsettled failures but forgives nothing;
    /// `forgive` counts unsettled failures but forgives corrected ones.
    #[test]
    fn stable_evidence_halves_apart() {
        let e = |settled| Evidence {
            a: 0.5,
            black_hole: false,
            blame: Blame::Unknown,
            measure: Some((200, 400, settled)),
            link: 0,
        };
        let rec = |n: &mut NeighbourScore, cfg: &ScoreConfig, s: u64, settled: bool| {
            n.record_evidence(t(s), cfg, p(1), e(settled))
        };
        let settled = ScoreConfig {
            stable_evidence: StableEvidence::Settled,
            ..no_breadth()
        };
        let mut n = NeighbourScore::default();
        for (s, stable) in [(0, false), (20, false), (25, true)] {
            assert_eq!(rec(&mut n, &settled, s, stable), CheckVerdict::Kept);
        }
        // Not forgiven, although the metric rose to what was measured.
        assert_eq!(n.forgive_corrected(t(30), &settled, |_| Some(400)), 0);
        assert!(matches!(
            rec(&mut n, &settled, 40, true),
            CheckVerdict::Evicted(_)
        ));
        let forgive = ScoreConfig {
            stable_evidence: StableEvidence::Forgive,
            ..no_breadth()
        };
        let mut n = NeighbourScore::default();
        assert_eq!(rec(&mut n, &forgive, 0, false), CheckVerdict::Kept);
        assert_eq!(n.forgive_corrected(t(5), &forgive, |_| Some(400)), 1);
        assert_eq!(rec(&mut n, &forgive, 20, false), CheckVerdict::Kept);
        // Not corrected: the unsettled failure 15 s later confirms.
        assert_eq!(n.forgive_corrected(t(25), &forgive, |_| Some(200)), 0);
        assert!(matches!(
            rec(&mut n, &forgive, 35, false),
            CheckVerdict::Evicted(_)
        ));
        assert_eq!("settled".parse(), Ok(StableEvidence::Settled));
        assert_eq!("true".parse(), Ok(StableEvidence::Both));
        assert!("maybe".parse::<StableEvidence>().is_err());
        assert_eq!(StableEvidence::Forgive.to_string(), "forgive");
    }

    /// §4.2.2 `forgive-current`: a failure is set aside only while the neighbour's metric stays
    /// corrected; a liar whose metric rose for a moment and fell back is evicted by its next
    /// failure, where `forgive` had forgiven it for good.
    #[test]
    fn forgiveness_judged_on_the_metric_now() {
        let e = |d: u8, m, c| {
            (
                p(d),
                Evidence {
                    a: f64::from(m) / f64::from(c),
                    black_hole: false,
                    blame: Blame::Unknown,
                    measure: Some((m, c, true)),
                    link: 0,
                },
            )
        };
        for (mode, evicted) in [
            (StableEvidence::Forgive, false),
            (StableEvidence::ForgiveCurrent, true),
        ] {
            let cfg = ScoreConfig {
                stable_evidence: mode,
                ..base()
            };
            let mut n = NeighbourScore::default();
            let (d, x) = e(1, 200, 400);
            assert_eq!(n.record_evidence(t(0), &cfg, d, x), CheckVerdict::Kept);
            // A moment at 400 (at least S·c): forgiven.
            assert_eq!(n.forgive_corrected(t(10), &cfg, |_| Some(400)), 1);
            // Back at 200; another destination fails 20 s after the first failure.
            n.forgive_corrected(t(20), &cfg, |_| Some(200));
            let (d, x) = e(2, 200, 400);
            let v = n.record_evidence(t(20), &cfg, d, x);
            assert_eq!(matches!(v, CheckVerdict::Evicted(_)), evicted, "{mode}");
        }
        // forgive-current: while the metric stays corrected the failure stays set aside, and
        // the same destination failing again starts a run afresh.
        let cfg = ScoreConfig {
            stable_evidence: StableEvidence::ForgiveCurrent,
            ..base()
        };
        let mut n = NeighbourScore::default();
        let (d, x) = e(1, 200, 400);
        n.record_evidence(t(0), &cfg, d, x);
        assert_eq!(n.forgive_corrected(t(20), &cfg, |_| Some(400)), 1);
        let (d, x) = e(2, 200, 400);
        assert_eq!(n.record_evidence(t(20), &cfg, d, x), CheckVerdict::Kept);
        let (d, x) = e(1, 400, 600);
        assert_eq!(
            n.forgive_corrected(t(25), &cfg, |p2| Some(if *p2 == d { 400 } else { 1000 })),
            2
        );
        assert_eq!(n.record_evidence(t(25), &cfg, d, x), CheckVerdict::Kept);
        assert_eq!(
            "forgive-current".parse(),
            Ok(StableEvidence::ForgiveCurrent)
        );
    }

    /// §4.2.2 `forgive-retraction`: a black hole is forgiven only when the neighbour retracts
    /// the route, not when its metric rises by `1/S` (which a looping liar's metric does for a
    /// moment as the loop counts up); a measured lie is still forgiven by a rise to `S · c`.
    /// §4.2.2: a correction is the neighbour's claim rising, priced with our link cost at the
    /// failing check: a claim of 144 over a link of 96 (metric 240) failing against 384 is
    /// forgiven when the claim reaches 212 (212 + 96 ≥ 0.8 · 384), whatever our link does
    /// since, and not while it stays at 144.
    #[test]
    fn a_correction_is_the_claim_priced_with_the_link_at_the_failure() {
        let cfg = ScoreConfig::default();
        let mut n = NeighbourScore::default();
        let e = Evidence {
            a: 0.625,
            black_hole: false,
            blame: Blame::Unknown,
            measure: Some((240, 384, true)),
            link: 96,
        };
        assert_eq!(n.record_evidence(t(0), &cfg, p(1), e), CheckVerdict::Kept);
        assert_eq!(n.forgive_corrected(t(5), &cfg, |_| Some(144)), 0);
        assert_eq!(n.forgive_corrected(t(6), &cfg, |_| Some(211)), 0);
        assert_eq!(n.forgive_corrected(t(7), &cfg, |_| Some(212)), 1);
    }

    #[test]
    fn black_hole_forgiven_only_by_retraction() {
        let inf = MAX_COST;
        let hole = Evidence {
            a: 0.0,
            black_hole: true,
            blame: Blame::Origin,
            measure: Some((200, inf, true)),
            link: 0,
        };
        for (mode, evicted) in [
            (StableEvidence::Forgive, false),
            (StableEvidence::ForgiveRetraction, true),
        ] {
            let cfg = ScoreConfig {
                attribution: true,
                stable_evidence: mode,
                ..base()
            };
            let mut n = NeighbourScore::default();
            assert_eq!(
                n.record_evidence(t(0), &cfg, p(1), hole),
                CheckVerdict::Kept
            );
            // The metric rises by 1/S (200 -> 250), the route is not retracted.
            let forgiven = n.forgive_corrected(t(10), &cfg, |_| Some(250));
            assert_eq!(forgiven, usize::from(!evicted), "{mode}");
            let v = n.record_evidence(t(20), &cfg, p(1), hole);
            assert_eq!(matches!(v, CheckVerdict::Evicted(_)), evicted, "{mode}");
        }
        let cfg = ScoreConfig {
            attribution: true,
            stable_evidence: StableEvidence::ForgiveRetraction,
            ..base()
        };
        // Retracted: forgiven.
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &cfg, p(1), hole);
        let retracted = n.forgive_corrected(t(10), &cfg, |_| Some(babel_wire::INFINITY));
        assert_eq!(retracted, 1);
        assert_eq!(
            n.record_evidence(t(20), &cfg, p(1), hole),
            CheckVerdict::Kept
        );
        // A measured lie: forgiven by a rise to S · c, as with `forgive`.
        let lie = Evidence {
            a: 0.5,
            black_hole: false,
            blame: Blame::Unknown,
            measure: Some((200, 400, true)),
            link: 0,
        };
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &cfg, p(2), lie);
        assert_eq!(n.forgive_corrected(t(10), &cfg, |_| Some(320)), 1);
        assert_eq!(
            n.record_evidence(t(20), &cfg, p(2), lie),
            CheckVerdict::Kept
        );
        assert_eq!(
            "forgive-retraction".parse(),
            Ok(StableEvidence::ForgiveRetraction)
        );
        assert_eq!(
            StableEvidence::ForgiveRetraction.to_string(),
            "forgive-retraction"
        );
    }

    /// §4.2.1, the origin test on passing checks (`passing_origin`): a passing check whose
    /// neighbour claims under its next hop's claim (`Blame::Origin`) joins the run as a failure
    /// blamed on the origin, and confirms `window` after an earlier one; its measure forgives
    /// nothing, a passing check without it ends the destination's run, and without the option
    /// it is a passing check like any other.
    #[test]
    fn passing_claims_under_the_next_hop_confirm() {
        let under = Evidence {
            a: 1.0,
            black_hole: false,
            blame: Blame::Origin,
            measure: Some((900, 800, true)),
            link: 0,
        };
        let plain = Evidence {
            blame: Blame::Unknown,
            ..under
        };
        let on = ScoreConfig {
            passing_origin: true,
            ..base()
        };
        // `metric`: the neighbour's metric at every check.
        let evicts_at = |cfg: &ScoreConfig, metric: u16, checks: &[(u64, u8, Evidence)]| {
            let mut n = NeighbourScore::default();
            checks.iter().any(|(s, d, e)| {
                n.forgive_corrected(t(*s), cfg, |_| Some(metric));
                matches!(
                    n.record_evidence(t(*s), cfg, p(*d), *e),
                    CheckVerdict::Evicted(_)
                )
            })
        };
        // Under what forgives the measured lies below (S · 800).
        let evicts =
            |cfg: &ScoreConfig, checks: &[(u64, u8, Evidence)]| evicts_at(cfg, 600, checks);
        // Two 20 s apart, on two destinations: evicted; without the option, kept.
        let two = [(0, 1, under), (20, 2, under)];
        assert!(evicts(&on, &two));
        let without = ScoreConfig {
            passing_origin: false,
            ..on
        };
        assert!(!evicts(&without, &two));
        // Under `window` apart: not yet.
        assert!(!evicts(&on, &[(0, 1, under), (10, 2, under)]));
        // The neighbour's metric at what we measured does not forgive it: the lie is in the
        // claims, not against the measure.
        assert!(evicts_at(&on, 900, &[(0, 1, under), (20, 1, under)]));
        // A passing check without it ends its destination's run.
        assert!(!evicts(
            &on,
            &[(0, 1, under), (10, 1, plain), (20, 1, under)]
        ));
        // It joins a run of measured lies, and a measured lie joins its run.
        let lie = Evidence {
            a: 0.5,
            measure: Some((400, 800, true)),
            link: 0,
            ..plain
        };
        assert!(evicts(&on, &[(0, 1, under), (20, 2, lie)]));
        // A claim under the next hop's only confirms after a failure blamed on the origin.
        assert!(!evicts(&on, &[(0, 1, lie), (20, 2, under)]));
        let origin_lie = Evidence {
            blame: Blame::Origin,
            ..lie
        };
        assert!(evicts(&on, &[(0, 1, origin_lie), (20, 2, under)]));
        // Without attribution there is no next hop to compare with.
        let off = ScoreConfig {
            attribution: false,
            ..on
        };
        assert!(!evicts(&off, &two));
    }

    /// §4.2.1, the next hop through us (`through_us`): a failing check whose lie is the
    /// neighbour's or its next hop's, which routes through us (`Blame::ThroughUs`), corrects
    /// and lowers `A[d]` but counts against the neighbour no more than a relayed lie does.
    #[test]
    fn a_lie_through_us_is_not_the_neighbours() {
        let cfg = ScoreConfig {
            through_us: true,
            ..base()
        };
        for (blame, evicted) in [(Blame::ThroughUs, false), (Blame::Unknown, true)] {
            let mut n = NeighbourScore::default();
            let mut out = false;
            for s in [0, 20, 40] {
                out |= matches!(
                    n.record_check(t(s), &cfg, p(1), 0.5, false, blame),
                    CheckVerdict::Evicted(_)
                );
            }
            assert_eq!(out, evicted, "{blame:?}");
            assert!(n.destination(&p(1)).unwrap() < 0.8);
        }
    }

    /// §4.2.3, a claim that converges (`progress`): a measured lie whose metric rose by `1/S`
    /// and whose accuracy rose by `(1 − S)/2` since the destination's live measured lie
    /// confirms nothing and restarts the destination's run; a liar's (accuracy falling as its
    /// path's cost rises), a small rise, a black hole and another destination's failure
    /// confirm as before.
    #[test]
    fn a_claim_that_converges_restarts_its_run() {
        let on = ScoreConfig {
            progress: true,
            ..no_breadth()
        };
        let lie = |m: u16, c: u16| Evidence {
            a: f64::from(m) / f64::from(c),
            black_hole: false,
            blame: Blame::Unknown,
            measure: Some((m, c, true)),
            link: 0,
        };
        let evicted = |v| matches!(v, CheckVerdict::Evicted(_));
        // Seed 9's honest relay (docs/verify.md): 648 against 1,248, then 957 against 1,440.
        let mut n = NeighbourScore::default();
        assert!(!evicted(n.record_evidence(t(0), &on, p(1), lie(648, 1248))));
        assert!(!evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            lie(957, 1440)
        )));
        // The run restarted at 20 s: a failure 10 s later does not confirm, 15 s later does.
        let mut m = n.clone();
        assert!(!evicted(m.record_evidence(
            t(30),
            &on,
            p(1),
            lie(957, 1440)
        )));
        assert!(evicted(n.record_evidence(t(35), &on, p(1), lie(957, 1440))));
        // Without the option the same two checks evict.
        let off = ScoreConfig {
            progress: false,
            ..on
        };
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &off, p(1), lie(648, 1248));
        assert!(evicted(n.record_evidence(
            t(20),
            &off,
            p(1),
            lie(957, 1440)
        )));
        // A halving liar whose path grew: its claim rose by 1/S, its accuracy fell.
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(1), lie(576, 960));
        assert!(evicted(n.record_evidence(t(20), &on, p(1), lie(816, 1440))));
        // The claim rose, but by less than 1/S (accuracy up by more than 0.1).
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(1), lie(648, 1248));
        assert!(evicted(n.record_evidence(t(20), &on, p(1), lie(792, 1248))));
        // The claim rose by 1/S, the accuracy by less than (1 − S)/2.
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(1), lie(600, 1200));
        assert!(evicted(n.record_evidence(t(20), &on, p(1), lie(750, 1350))));
        // After a black hole nothing was measured to converge from; a black hole shows none.
        let mut n = NeighbourScore::default();
        n.record_evidence(
            t(0),
            &on,
            p(1),
            Evidence {
                a: 0.0,
                black_hole: true,
                blame: Blame::Origin,
                measure: Some((648, MAX_COST, true)),
                link: 0,
            },
        );
        assert!(evicted(n.record_evidence(t(20), &on, p(1), lie(957, 1440))));
        // A check that blames the origin (the neighbour claims under its own next hop) is
        // not excused: seed 22's partial liar, 432 against 1,440 then 722 against 1,344, its
        // next hop's claim raised by the corrections around it.
        let origin = |m: u16, c: u16| Evidence {
            blame: Blame::Origin,
            ..lie(m, c)
        };
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(1), origin(528, 1440));
        assert!(evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            origin(818, 1344)
        )));
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(1), origin(528, 1440));
        assert!(!evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            lie(818, 1344)
        )));
        // Another destination's earlier failure still confirms with a later failure of its
        // own; the converging destination's check confirms nothing even so.
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(2), lie(300, 600));
        n.record_evidence(t(5), &on, p(1), lie(648, 1248));
        assert!(!evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            lie(957, 1440)
        )));
        assert!(evicted(n.record_evidence(t(25), &on, p(2), lie(300, 600))));
    }

    /// §4.2.4, failures blamed on nobody need breadth (`unknown_breadth`): when no failure of
    /// the run blames the origin, two failures of one destination do not confirm an eviction;
    /// a third of it does, and so do failures of two destinations, or a failure blamed on the
    /// origin in the run or at the confirming check.
    #[test]
    fn failures_blamed_on_nobody_need_breadth() {
        let on = ScoreConfig {
            unknown_breadth: true,
            ..base()
        };
        assert!(on.attribution);
        let lie = |m: u16, c: u16, blame| Evidence {
            a: f64::from(m) / f64::from(c),
            black_hole: false,
            blame,
            measure: Some((m, c, true)),
            link: 0,
        };
        let u = Blame::Unknown;
        let evicted = |v| matches!(v, CheckVerdict::Evicted(_));
        // Seed 36's honest relay (docs/verify.md): 720 against 1,248, then 880 against 1,248
        // 20 s later, both blamed on nobody. Kept; a third failure 10 s later evicts.
        let mut n = NeighbourScore::default();
        assert!(!evicted(n.record_evidence(
            t(0),
            &on,
            p(1),
            lie(720, 1248, u)
        )));
        assert!(!evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            lie(880, 1248, u)
        )));
        assert!(evicted(n.record_evidence(
            t(30),
            &on,
            p(1),
            lie(880, 1248, u)
        )));
        // Without the option the second failure evicts.
        let off = ScoreConfig {
            unknown_breadth: false,
            ..on
        };
        assert!(second_failure_evicts(
            &off,
            lie(720, 1248, u),
            lie(880, 1248, u)
        ));
        // Without attribution nobody is ever blamed, and the rule does not apply.
        let plain = ScoreConfig {
            attribution: false,
            ..on
        };
        assert!(second_failure_evicts(
            &plain,
            lie(720, 1248, u),
            lie(880, 1248, u)
        ));
        // Failures of two destinations confirm each other as before (a liar lies on every
        // route it relays): 2 at 5 s, then 1 at 20 s, 20 s after 1's first failure.
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(1), lie(720, 1248, u));
        assert!(!evicted(n.record_evidence(
            t(5),
            &on,
            p(2),
            lie(300, 600, u)
        )));
        assert!(evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            lie(720, 1248, u)
        )));
        // ... but not once the other destination's run has ended (a passing check).
        let mut n = NeighbourScore::default();
        n.record_evidence(t(0), &on, p(1), lie(720, 1248, u));
        n.record_evidence(t(5), &on, p(2), lie(300, 600, u));
        n.record_evidence(t(10), &on, p(2), lie(600, 600, u));
        assert!(!evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            lie(720, 1248, u)
        )));
        // A passing check of the destination restarts its count of failures.
        let mut n = NeighbourScore::default();
        for (s, m) in [(0, 720), (10, 720), (15, 1248), (20, 720)] {
            assert!(!evicted(n.record_evidence(
                t(s),
                &on,
                p(1),
                lie(m, 1248, u)
            )));
        }
        assert!(!evicted(n.record_evidence(
            t(40),
            &on,
            p(1),
            lie(720, 1248, u)
        )));
        // A failure blamed on the origin in the run, or at the confirming check: as before.
        assert!(second_failure_evicts(
            &on,
            lie(720, 1248, Blame::Origin),
            lie(720, 1248, u)
        ));
        assert!(second_failure_evicts(
            &on,
            lie(720, 1248, u),
            lie(720, 1248, Blame::Origin)
        ));
    }

    /// §4.2.3, a claim that converges on its accuracy alone (`progress_on_accuracy`): seed
    /// 36's honest relay (its claim up by 1.22, under `1/S`) and seed 41's (its claim the
    /// same, the measured path shorter as its flapping route settled) restart their
    /// runs; a claim whose accuracy rose by less than `(1 − S)/2` (seed 47's), a black hole and
    /// a check blamed on the origin confirm as before.
    #[test]
    fn a_claim_converges_on_its_accuracy_alone() {
        let on = ScoreConfig {
            progress_on_accuracy: true,
            ..base()
        };
        assert!(on.progress && !on.unknown_breadth);
        let lie = |m: u16, c: u16, blame| Evidence {
            a: f64::from(m) / f64::from(c),
            black_hole: false,
            blame,
            measure: Some((m, c, true)),
            link: 0,
        };
        let u = Blame::Unknown;
        let evicted = |v| matches!(v, CheckVerdict::Evicted(_));
        let off = ScoreConfig {
            progress_on_accuracy: false,
            ..on
        };
        // Seed 36: 720 against 1,248, then 880 against 1,248. Seed 41: 288 against 576, then
        // 288 against 384.
        for (first, second) in [((720, 1248), (880, 1248)), ((288, 576), (288, 384))] {
            let mut n = NeighbourScore::default();
            n.record_evidence(t(0), &on, p(1), lie(first.0, first.1, u));
            assert!(!evicted(n.record_evidence(
                t(20),
                &on,
                p(1),
                lie(second.0, second.1, u)
            )));
            // The run restarted at 20 s: the same failure 15 s later confirms it.
            assert!(evicted(n.record_evidence(
                t(35),
                &on,
                p(1),
                lie(second.0, second.1, u)
            )));
            // Without the option (the metric must rise by 1/S) the second check evicts.
            assert!(second_failure_evicts(
                &off,
                lie(first.0, first.1, u),
                lie(second.0, second.1, u)
            ));
            // Blamed on the origin: as before.
            assert!(second_failure_evicts(
                &on,
                lie(first.0, first.1, Blame::Origin),
                lie(second.0, second.1, Blame::Origin)
            ));
        }
        // Seed 47: 696 against 1,056, then 720 against 1,056 (accuracy up by 0.02).
        assert!(second_failure_evicts(
            &on,
            lie(696, 1056, u),
            lie(720, 1056, u)
        ));
        // A liar's repeated lie (the same claim, the same cost) does not converge.
        assert!(second_failure_evicts(
            &on,
            lie(576, 960, u),
            lie(576, 960, u)
        ));
        // After a black hole nothing was measured to converge from.
        let mut n = NeighbourScore::default();
        n.record_evidence(
            t(0),
            &on,
            p(1),
            Evidence {
                a: 0.0,
                black_hole: true,
                blame: Blame::Origin,
                measure: Some((720, MAX_COST, true)),
                link: 0,
            },
        );
        assert!(evicted(n.record_evidence(
            t(20),
            &on,
            p(1),
            lie(880, 1248, u)
        )));
        // Without `progress` the option does nothing.
        let none = ScoreConfig {
            progress: false,
            ..on
        };
        assert!(second_failure_evicts(
            &none,
            lie(720, 1248, u),
            lie(880, 1248, u)
        ));
    }

    /// §4.2.5, `confirmed_awaits_justification`: the confirming failure of a run blamed on
    /// nobody awaits its deadline; one blamed on the origin, the paper's rule, and a failure on
    /// probation evict at once as before.
    #[test]
    fn a_confirmation_blamed_on_nobody_awaits() {
        let e = |blame| Evidence {
            a: 0.5,
            black_hole: false,
            blame,
            measure: Some((200, 400, true)),
            link: 0,
        };
        let awaits = ScoreConfig {
            confirmed_awaits_justification: true,
            ..base()
        };
        let second = |cfg: &ScoreConfig, blame| {
            let mut n = NeighbourScore::default();
            n.record_evidence(t(0), cfg, p(1), e(blame));
            n.record_evidence(t(20), cfg, p(2), e(blame))
        };
        assert_eq!(second(&awaits, Blame::Unknown), CheckVerdict::Awaiting);
        assert!(matches!(
            second(&base(), Blame::Unknown),
            CheckVerdict::Evicted(_)
        ));
        assert!(matches!(
            second(&awaits, Blame::Origin),
            CheckVerdict::Evicted(_)
        ));
        let paper = ScoreConfig {
            rule: Rule::Paper,
            ..awaits
        };
        let mut n = NeighbourScore::default();
        let v = n.record_evidence(t(0), &paper, p(1), e(Blame::Unknown));
        assert!(matches!(v, CheckVerdict::Evicted(_)), "{v:?}");
        // Readmitted after the hold: on probation, one failure blamed on nobody evicts at once.
        let mut n = NeighbourScore::default();
        let why = Eviction {
            prefix: p(1),
            cause: EvictionCause::Unjustified,
        };
        let _ = n.evict(t(0), &awaits, why);
        assert!(n.readmit(t(0) + awaits.hold));
        let v = n.record_evidence(t(0) + awaits.hold, &awaits, p(1), e(Blame::Unknown));
        assert!(matches!(v, CheckVerdict::Evicted(_)), "{v:?}");
    }

    /// §4.2.5, `asked_rises_apart`: rises at 13 s and 14 s of two claims asked about at 10 s
    /// (one event: a route in flux) evict without the option and not with it; a third, asked
    /// about at 40 s after those rose, evicts with it; past `asked_rise_window` nothing does.
    #[test]
    fn asked_rises_apart_count_one_event_once() {
        let evicted = |v: CheckVerdict| matches!(v, CheckVerdict::Evicted(_));
        for apart in [false, true] {
            let cfg = ScoreConfig {
                asked_rises_apart: apart,
                ..ScoreConfig::default()
            };
            let mut n = NeighbourScore::default();
            assert!(!evicted(n.asked_rise(t(13), t(10), &cfg, p(1))));
            assert_eq!(evicted(n.asked_rise(t(14), t(10), &cfg, p(2))), !apart);
            if apart {
                assert!(evicted(n.asked_rise(t(43), t(40), &cfg, p(1))));
            }
            // The window passed since the last rise remembered: a first rise again.
            let late = t(43) + cfg.asked_rise_window + Duration::from_secs(1);
            assert!(!evicted(n.asked_rise(late, late, &cfg, p(3))));
        }
    }
}
