//! Route verification in the daemon (`spec/verify.md`, "The daemon"): drives the `verify`
//! crate's [`Verifier`] (our checks of our neighbours) and [`Responder`] (our answers for the
//! prefixes we announce) from the engine's routes, and says what the binary must do: datagrams
//! to send (each with the firewall mark that makes it take the route under test, §2.3), policy
//! routes to install, engine inputs (verified metrics, neighbour accuracies) and `monitor` lines.
//! Sans-IO like the crates it drives: time comes in as a parameter; the binary owns the socket,
//! the probe rules and routes (`crate::netlink_ops::probe`, carried out by its netlink thread)
//! and the nftables set that measures which destinations are used (§2.1).
//!
//! Every IPv6 route is verified: the Remote Hellos go to the prefix's probe address
//! ([`verify::probe_address`]: the address of a `/128`, the `::1` of a wider prefix), and the
//! answer must be signed by the key bound to the prefix (`spec/verify.md` §3.2).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use babel_core::{Input, Instant, RouteView, XrouteView};
use babel_wire::{DecodeOptions, Message, Packet, Prefix, RemoteHello, RouterId};
use serde::Serialize;
use verify::{
    Blame, Check, CheckVerdict, Keyring, NeighbourId, ProbeAction, ProbeCounters, Responder,
    SigningKey, VerifiableRoute, Verifier, VerifyConfig,
};

use crate::config::ParseError;

pub mod trace;
pub use trace::{QuotedRemoteHello, TraceParseError, parse_time_exceeded};

/// UDP port of Remote Hellos and Remote IHUs (mesh discovery is 6697, payments 6698).
pub const VERIFY_PORT: u16 = 6699;
/// First firewall mark of the probe routes (one per neighbour probed).
pub const FWMARK_BASE: u32 = 0x6261_0000;
/// First routing table of the probe routes (one per neighbour probed).
pub const TABLE_BASE: u32 = 6200;
/// Priority of the probe rules (before the main table's 32766).
pub const RULE_PRIORITY: u32 = 1000;
/// Neighbours with a probe table at most.
pub const MAX_PROBED_NEIGHBOURS: usize = 64;
/// Routes with a `dump` row at most.
const MAX_ROWS: usize = 1024;
/// Probe routes remembered as installed at most (all are forgotten past it, and installed
/// again as they are used).
const MAX_PROBE_ROUTES: usize = 4096;
/// Remembered Remote Hello senders (to answer them) at most.
const MAX_PEERS: usize = 1024;
/// Longest verification datagram accepted.
pub const MAX_DATAGRAM: usize = 1500;
/// The Babel packet header: magic, version, body length.
const MAGIC: u8 = 42;
const VERSION: u8 = 2;
const TLV_REMOTE_HELLO: u8 = 224;
const TLV_REMOTE_IHU: u8 = 225;
const TLV_CHECK_FAILED: u8 = babel_wire::tlv::CHECK_FAILED;
const TLV_JUSTIFY_REQUEST: u8 = babel_wire::tlv::JUSTIFY_REQUEST;
const TLV_CLAIM_REQUEST: u8 = babel_wire::tlv::CLAIM_REQUEST;
const TLV_SIGNED_CLAIM: u8 = babel_wire::tlv::SIGNED_CLAIM;
/// §2.5: a Check Failed goes over one link, so it is sent with the largest hop limit and taken
/// only with it (a router past the link cannot make one arrive with 255).
pub const CHECK_FAILED_HOP_LIMIT: u8 = 255;

/// The `verify-*` configuration statements, for the man page (spec/verify.md, "The daemon").
pub const CONFIG_HELP: &str = "Route verification (configuration file statements, spec/verify.md):
  verify-enable BOOL            verify neighbours' metrics and answer Remote Hellos (false)
  verify-port PORT              UDP port of Remote Hellos and Remote IHUs (6699)
  verify-private-key HEX        ed25519 seed our Remote IHUs are signed with (random per run)
  verify-key PREFIX HEX         the ed25519 public key that may answer for PREFIX (repeatable)
  verify-derived-range PREFIX   accept self-certifying keys under PREFIX (spec/verify.md 3.2)
  verify-destination PREFIX     always counted as used, e.g. the exit (repeatable)
  verify-owner PREFIX           the prefix our key is bound to, named in our Signed Claims
                                (our address under verify-derived-range if set, else the
                                most specific IPv6 prefix we announce)
  verify-cycle SECONDS          length of a verification cycle (10)
  verify-probes N               Remote Hellos per probe session (20)
  verify-probe-interval MS      between Remote Hellos (250)
  verify-threshold PERMILLE     accuracy under which a check fails, S (800)
  verify-window SECONDS         a failure is confirmed this much later (5)
  verify-hold SECONDS           first eviction, doubled at each further one (300)
  verify-hop-cost N             lowest cost of an honest link (96; 256 on ETX meshes)
  verify-loss-in-metric BOOL    ETX links: delivery enters the measured cost (false)
  verify-correction C1 C2       correction duration D = (C1/d)^C2 (1800 1.5)
  verify-paper-rule BOOL        score with the paper's mean instead of per destination (false)
  verify-attribution BOOL       trace the neighbour's next hop (hop limit 2, ICMPv6 Time
                                Exceeded) and blame the origin of a lie, not its relays (true)
  verify-attribution-returned BOOL  with attribution: a neighbour that forwards the route
                                back to us is the origin of a lie if it claims less than our
                                own metric plus a link (true)
  verify-attribution-both-ends BOOL  with attribution: the origin of a lie only if its claim
                                is under its next hop's plus a link at both ends of the
                                session (true)
  verify-attribution-passing-origin BOOL  with attribution: a passing check whose neighbour
                                claims under S times its next hop's claim plus a link at both
                                ends of the session counts as a failure at the origin (true)
  verify-attribution-through-us BOOL  with attribution: a failing neighbour whose next hop
                                routes through us (tells us nothing for the destination) and
                                that claims under our metric plus two links is not blamed (true)
  verify-attribution-verified-next-hop BOOL  with attribution: the next hop found convicts
                                the neighbour as the origin of a lie only if its own last
                                session passed (false)
  verify-progress BOOL          a measured lie whose claim rose by 1/S and whose accuracy
                                rose by (1 - S)/2 since the destination's last one confirms
                                nothing and restarts that destination's run (true)
  verify-unknown-breadth BOOL   with attribution: failures that blame nobody (no failure of
                                the run blamed on the origin) evict only with failures of two
                                destinations or a third failure of one (false)
  verify-correction-advertised BOOL  a failing check corrects the neighbour's other routes
                                by scaling what it advertised, not our link cost to it (false)
  verify-correction-follow BOOL the neighbour-wide correction follows the neighbour's claims
                                while in force, not only its claims at the check (false)
  verify-relayed-probes-used BOOL  verification packets we forward for others make their
                                destination used for us too (false)
  verify-check-requests BOOL    a failing check tells the neighbour (Check Failed), and a
                                neighbour's Check Failed has our next cycle check our route
                                to that destination first (false)
  verify-justification BOOL     a failing check asks the neighbour to justify its claim
                                with its next hop's Signed Claim; a justified claim is
                                the next hop's, not the neighbour's (true)
  verify-unjustified-origin BOOL  with justification and attribution: a failure blamed on
                                the neighbour as the origin and not justified within 10 s
                                evicts it (true)
  verify-unjustified-unknown BOOL  with verify-unjustified-origin: a measured failure blamed
                                on nobody and not justified within 10 s evicts it too (true)
  verify-unjustified-through-us BOOL  with verify-unjustified-origin: a measured failure
                                blamed on neither because the neighbour's next hop routes
                                through us, not justified within 10 s, evicts it too (true)
  verify-loop-through-us BOOL   with verify-unjustified-through-us: a black hole looping
                                through us while we route through the neighbour, not
                                justified within 10 s, evicts it too (true)
  verify-justify-on-rise BOOL   a Signed Claim refused for a claim under its floor justifies
                                once the claim reaches the floor before the deadline (true)
  verify-reask-moved-claim BOOL  a deadline that finds the claim moved (or made again after
                                a withdrawal) asks once more and judges it 10 s later (true)
  verify-awaits-justification BOOL  a check that confirms failures blamed on nobody evicts
                                only at its deadline, 4 s later, if still unjustified (true)
  verify-reask-infinite-claim BOOL  a Signed Claim of infinity leaves the Justify Request
                                to be sent again (true)
  verify-reask-refused-claim BOOL  a Signed Claim refused for a claim under its floor
                                leaves the Justify Request to be sent again (true)
  verify-correction-meets-next-hop BOOL  a claim risen to the cost measured corrects its
                                failure only if no longer under its next hop's offer (true)
  verify-correction-near-measured BOOL  a claim risen past the cost measured over the
                                threshold corrects nothing: it is asked again (true)
  verify-withdrawn-origin-evicts BOOL  a claim withdrawn after a failure blamed on the
                                neighbour as the origin corrects nothing: unjustified,
                                it evicts at the deadline (true)
  verify-audit-claims BOOL|signers  a passing check whose next hop is none of our
                                neighbours asks the neighbour to justify its claim;
                                unjustified within 10 s, it evicts; signers: only neighbours
                                that have shown they run verification (a destination they
                                originate answered through them), so that stock Babel
                                neighbours are not audited (true)
  verify-fallen-claim MODE      a claim that fell during the session is scored at the end
                                (end), at the start (start), or at the end but as no evidence
                                when the fall alone fails it (no-evidence) (end)
  verify-hop-bound BOOL         with attribution: Remote Hellos also go out with the hop limit
                                the claim allows; their Time Exceeded scores a session the
                                destination does not answer (true)
  verify-last-resort BOOL       a destination only evicted neighbours offer keeps a route
                                through one of them, so that evicting the only way to some
                                routers does not cut them off (true)
  verify-last-resort-penalty M  added to the metric we advertise for a route kept as the
                                last resort, so that routers with a way around the evicted
                                neighbour take it (0-32767; 0)
  verify-prefer-suspicious BOOL draw a neighbour's route to check in proportion to how much
                                it undercuts the other neighbours' routes (false: uniform)
  verify-late-start BOOL        a neighbour with no feasible route to a used destination at
                                a cycle's start gets its sessions when one is feasible again
                                within the cycle (true; false: at the next cycle)
  verify-asked-rises BOOL       a neighbour whose failing claims rose to what they should be
                                only when asked to justify them, twice within the window,
                                is evicted (true)
  verify-asked-rise-window SECONDS  how long such a claim is remembered (90)
  verify-asked-rises-apart BOOL the second such claim evicts only if it was asked about
                                after the first had risen (false)
  verify-asked-rise-lowest-floor BOOL  a claim within a relay's lag of the lowest floor an
                                ask was answered with did not rise only when asked (false)
  verify-fall-back BOOL         a neighbour whose claim rose to its next hop's signed word
                                when asked, fell back under it within the window and rose
                                again (or stayed under it) when asked again is evicted
                                (false; keep it off next to stock Babel routers)
  verify-sessions-per-neighbour N  sessions through each neighbour per cycle, each to
                                another destination, within 16 a cycle (1-8; 2)
  verify-unanswered-rechecks N  rechecks of a route after unanswered sessions in a row
                                without evidence; then it goes back to the ordinary choice
                                (0-255, 255 no limit; 2)
  verify-progress-accuracy BOOL with verify-progress: a claim converges when its accuracy
                                rose by (1 - S)/2, whether or not its metric rose by 1/S
                                (false)
  verify-trace-depth N          with attribution: traces per session, hop limits 2 to N + 1;
                                blame goes to the first of our neighbours on the route past the
                                neighbour (1)
  verify-stable-evidence MODE   evidence only from settled routes: off, settled (a check of a
                                route that changed during its session is no evidence),
                                forgive (a failure is forgiven once the neighbour's metric
                                rises to what was measured), both, forgive-current
                                (forgiven only while the metric stays risen), or
                                forgive-retraction (as forgive, but a black hole is forgiven
                                only when the route is retracted) (forgive-retraction)";

/// A `verify-*` statement (config file only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyStatement {
    /// `verify-enable BOOL`: verify neighbours and answer Remote Hellos.
    Enable(bool),
    /// `verify-port PORT`.
    Port(u16),
    /// `verify-private-key HEX`: the ed25519 seed our Remote IHUs are signed with.
    PrivateKey(String),
    /// `verify-key PREFIX HEX`: the key that may answer for PREFIX and everything inside it.
    Key(Prefix, [u8; 32]),
    /// `verify-derived-range PREFIX`: self-certifying addresses under it (§3.2).
    DerivedRange(Prefix),
    /// `verify-destination PREFIX`: always counted as used (the exits we use).
    Destination(Prefix),
    /// `verify-owner PREFIX`: the prefix our key is bound to, named in our Signed Claims
    /// (§4.2.5).
    Owner(Prefix),
    /// `verify-cycle SECONDS`.
    Cycle(u32),
    /// `verify-probes N`.
    Probes(u16),
    /// `verify-probe-interval MS`.
    ProbeInterval(u32),
    /// `verify-threshold PERMILLE` (`S`).
    Threshold(u16),
    /// `verify-window SECONDS` (confirmation window).
    Window(u32),
    /// `verify-hold SECONDS` (first eviction).
    Hold(u32),
    /// `verify-hop-cost N` (lowest honest link cost).
    HopCost(u16),
    /// `verify-loss-in-metric BOOL` (ETX links).
    LossInMetric(bool),
    /// `verify-correction C1 C2` (the paper's constants: C1 in seconds, C2 kept in
    /// thousandths).
    Correction(u32, u32),
    /// `verify-paper-rule BOOL`: score with the paper's mean instead of ours.
    PaperRule(bool),
    /// `verify-attribution BOOL`: attribution by the next hop (§4.2.1).
    Attribution(bool),
    /// `verify-attribution-returned BOOL`: a trace that comes back to us is attributed against
    /// our own route (§4.2.1).
    AttributionReturned(bool),
    /// `verify-attribution-both-ends BOOL`: the origin of a lie is judged at both ends of the
    /// session (§4.2.1).
    AttributionBothEnds(bool),
    /// `verify-attribution-passing-origin BOOL`: the origin test on passing checks (§4.2.1).
    AttributionPassingOrigin(bool),
    /// `verify-attribution-through-us BOOL`: a lie through a next hop that routes through us
    /// blames neither (§4.2.1).
    AttributionThroughUs(bool),
    /// `verify-attribution-verified-next-hop BOOL`: the origin test trusts only a next hop
    /// whose last session passed (§4.2.1).
    AttributionVerifiedNextHop(bool),
    /// `verify-progress BOOL`: a claim that converges restarts its run (§4.2.3).
    Progress(bool),
    /// `verify-justification BOOL`: justified claims (§4.2.5).
    Justification(bool),
    /// `verify-unjustified-origin BOOL`: an unjustified failure at the origin evicts (§4.2.5).
    UnjustifiedOrigin(bool),
    /// `verify-unjustified-unknown BOOL`: an unjustified measured failure blamed on nobody
    /// evicts too (§4.2.5).
    UnjustifiedUnknown(bool),
    /// `verify-unjustified-through-us BOOL`: an unjustified measured failure whose next hop
    /// routes through us evicts too (§4.2.5).
    UnjustifiedThroughUs(bool),
    /// `verify-loop-through-us BOOL`: an unjustified black hole that loops through us while we
    /// route through the neighbour evicts too (§4.2.5).
    LoopThroughUs(bool),
    /// `verify-justify-on-rise BOOL`: a refused Signed Claim justifies once the claim reaches
    /// its floor before the deadline (§4.2.5).
    JustifyOnRise(bool),
    /// `verify-reask-moved-claim BOOL`: a deadline that finds the neighbour's claim moved (or
    /// made again after a withdrawal) asks again and judges the claim made then at a second
    /// deadline (§4.2.5).
    ReaskMovedClaim(bool),
    /// `verify-awaits-justification BOOL`: a check confirming failures blamed on nobody evicts
    /// at its justification deadline, not at once (§4.2.5).
    AwaitsJustification(bool),
    /// `verify-reask-infinite-claim BOOL`: a Signed Claim of infinity leaves the Justify
    /// Request to be sent again (§4.2.5).
    ReaskInfiniteClaim(bool),
    /// `verify-reask-refused-claim BOOL`: a Signed Claim refused for a claim under its floor
    /// leaves the Justify Request to be sent again (§4.2.5).
    ReaskRefusedClaim(bool),
    /// `verify-correction-meets-next-hop BOOL`: a claim that rose to the cost measured
    /// corrects its failure at the deadline only if it is no longer under what the next hop
    /// found offers now (§4.2.5).
    CorrectionMeetsNextHop(bool),
    /// `verify-correction-near-measured BOOL`: a claim that rose past the cost measured over
    /// the threshold corrects nothing at the deadline; it is asked again (§4.2.5).
    CorrectionNearMeasured(bool),
    /// `verify-withdrawn-origin-evicts BOOL`: a claim withdrawn after a failure blamed on the
    /// neighbour as the origin of its lie corrects nothing; unjustified, it evicts at the
    /// deadline (§4.2.5).
    WithdrawnOriginEvicts(bool),
    /// `verify-audit-claims BOOL|signers`: a passing check that no origin test can judge asks
    /// the neighbour to justify its claim, and evicts it unjustified at the deadline (§4.2.6);
    /// `signers`: only a neighbour that has shown it runs verification.
    AuditClaims {
        /// Audits at all.
        on: bool,
        /// Only of neighbours that have shown they run verification.
        signers_only: bool,
    },
    /// `verify-unknown-breadth BOOL`: failures blamed on nobody need breadth (§4.2.4).
    UnknownBreadth(bool),
    /// `verify-progress-accuracy BOOL`: a claim converges on its accuracy alone (§4.2.3).
    ProgressAccuracy(bool),
    /// `verify-correction-advertised BOOL`: the neighbour-wide correction scales the
    /// neighbour's advertised metric, not our link cost to it (§5.2).
    CorrectionAdvertised(bool),
    /// `verify-correction-follow BOOL`: the neighbour-wide correction follows the claims while
    /// in force (§5.2).
    CorrectionFollow(bool),
    /// `verify-relayed-probes-used BOOL`: verification packets we forward make their
    /// destination used (§2.1).
    RelayedProbesUsed(bool),
    /// `verify-check-requests BOOL`: Check Failed sent and taken (§2.5).
    CheckRequests(bool),
    /// `verify-unanswered-rechecks N`: rechecks after unanswered sessions in a row (§2.2).
    UnansweredRechecks(u8),
    /// `verify-prefer-suspicious BOOL`: routes drawn by how much they undercut the others
    /// (§2.2).
    PreferSuspicious(bool),
    /// `verify-late-start BOOL`: a neighbour without a feasible route at a cycle's start gets
    /// its sessions when one is feasible again within the cycle (§2.2).
    LateStart(bool),
    /// `verify-asked-rises BOOL`: a neighbour whose failing claims rise only when asked to
    /// justify them, twice within the window, is evicted (§4.2.5).
    AskedRises(bool),
    /// `verify-asked-rise-window SECONDS`: how long a claim risen only when asked is
    /// remembered (§4.2.5).
    AskedRiseWindow(u32),
    /// `verify-asked-rises-apart BOOL`: the second claim risen only when asked evicts only if
    /// it was asked about after the first had risen (§4.2.5).
    AskedRisesApart(bool),
    /// `verify-asked-rise-lowest-floor BOOL`: a claim is held against the lowest floor of the
    /// Signed Claims that answered the ask, not only the latest (§4.2.5).
    AskedRiseLowestFloor(bool),
    /// `verify-fall-back BOOL`: a neighbour whose claim rose to its next hop's signed word when
    /// asked, fell back under it and rose again when asked again is evicted (§4.2.5).
    FallBack(bool),
    /// `verify-last-resort BOOL`: evicted neighbours' routes serve destinations nobody else
    /// offers (§4.3; the engine's `accuracy_last_resort`).
    LastResort(bool),
    /// `verify-last-resort-penalty METRIC`: added to the metric advertised for a route on the
    /// last resort (§4.3; the engine's `accuracy_last_resort_penalty`).
    LastResortPenalty(u16),
    /// `verify-sessions-per-neighbour N`: sessions through each neighbour per cycle (§2.2).
    SessionsPerNeighbour(u8),
    /// `verify-stable-evidence MODE`: evidence only from settled routes (§4.2.2).
    StableEvidence(verify::StableEvidence),
    /// `verify-trace-depth N`: traces per session, hop limits 2 to N + 1 (§4.2.1).
    TraceDepth(u8),
    /// `verify-hop-bound BOOL`: Remote Hellos with the hop limit the claim allows, whose Time
    /// Exceeded scores an unanswered session (§1.4).
    HopBound(bool),
    /// `verify-fallen-claim MODE`: how a check treats a claim that fell during its session
    /// (§1.3).
    FallenClaim(verify::FallenClaim),
}

impl VerifyStatement {
    /// Parses `keyword` and its values.
    pub fn parse<'a>(
        keyword: &str,
        mut values: impl Iterator<Item = &'a str>,
    ) -> Result<VerifyStatement, ParseError> {
        let v = values
            .next()
            .ok_or_else(|| ParseError::Missing(keyword.to_owned()))?;
        let bad = |why: &'static str| ParseError::BadValue {
            what: keyword.to_owned(),
            value: v.to_owned(),
            why,
        };
        let flag = || match v {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            _ => Err(bad("expected true or false")),
        };
        let num = |lo: u32, hi: u32, why| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| bad(why))
        };
        let prefix = || {
            v.parse::<Prefix>()
                .ok()
                .filter(|p| !p.is_ipv4())
                .ok_or_else(|| bad("expected an IPv6 prefix"))
        };
        let s = match keyword {
            "verify-enable" => VerifyStatement::Enable(flag()?),
            "verify-loss-in-metric" => VerifyStatement::LossInMetric(flag()?),
            "verify-paper-rule" => VerifyStatement::PaperRule(flag()?),
            "verify-attribution" => VerifyStatement::Attribution(flag()?),
            "verify-attribution-returned" => VerifyStatement::AttributionReturned(flag()?),
            "verify-attribution-both-ends" => VerifyStatement::AttributionBothEnds(flag()?),
            "verify-attribution-passing-origin" => {
                VerifyStatement::AttributionPassingOrigin(flag()?)
            }
            "verify-attribution-through-us" => VerifyStatement::AttributionThroughUs(flag()?),
            "verify-attribution-verified-next-hop" => {
                VerifyStatement::AttributionVerifiedNextHop(flag()?)
            }
            "verify-progress" => VerifyStatement::Progress(flag()?),
            "verify-hop-bound" => VerifyStatement::HopBound(flag()?),
            "verify-fallen-claim" => VerifyStatement::FallenClaim(
                v.parse()
                    .map_err(|_| bad("expected end, start or no-evidence"))?,
            ),
            "verify-justification" => VerifyStatement::Justification(flag()?),
            "verify-unjustified-origin" => VerifyStatement::UnjustifiedOrigin(flag()?),
            "verify-unjustified-unknown" => VerifyStatement::UnjustifiedUnknown(flag()?),
            "verify-unjustified-through-us" => VerifyStatement::UnjustifiedThroughUs(flag()?),
            "verify-loop-through-us" => VerifyStatement::LoopThroughUs(flag()?),
            "verify-justify-on-rise" => VerifyStatement::JustifyOnRise(flag()?),
            "verify-reask-moved-claim" => VerifyStatement::ReaskMovedClaim(flag()?),
            "verify-awaits-justification" => VerifyStatement::AwaitsJustification(flag()?),
            "verify-reask-infinite-claim" => VerifyStatement::ReaskInfiniteClaim(flag()?),
            "verify-reask-refused-claim" => VerifyStatement::ReaskRefusedClaim(flag()?),
            "verify-correction-meets-next-hop" => {
                VerifyStatement::CorrectionMeetsNextHop(flag()?)
            }
            "verify-correction-near-measured" => {
                VerifyStatement::CorrectionNearMeasured(flag()?)
            }
            "verify-withdrawn-origin-evicts" => VerifyStatement::WithdrawnOriginEvicts(flag()?),
            "verify-audit-claims" => match v {
                "signers" => VerifyStatement::AuditClaims {
                    on: true,
                    signers_only: true,
                },
                _ => VerifyStatement::AuditClaims {
                    on: flag().map_err(|_| bad("expected true, false or signers"))?,
                    signers_only: false,
                },
            },
            "verify-unknown-breadth" => VerifyStatement::UnknownBreadth(flag()?),
            "verify-progress-accuracy" => VerifyStatement::ProgressAccuracy(flag()?),
            "verify-correction-advertised" => VerifyStatement::CorrectionAdvertised(flag()?),
            "verify-correction-follow" => VerifyStatement::CorrectionFollow(flag()?),
            "verify-relayed-probes-used" => VerifyStatement::RelayedProbesUsed(flag()?),
            "verify-check-requests" => VerifyStatement::CheckRequests(flag()?),
            "verify-prefer-suspicious" => VerifyStatement::PreferSuspicious(flag()?),
            "verify-late-start" => VerifyStatement::LateStart(flag()?),
            "verify-asked-rises" => VerifyStatement::AskedRises(flag()?),
            "verify-asked-rises-apart" => VerifyStatement::AskedRisesApart(flag()?),
            "verify-asked-rise-lowest-floor" => VerifyStatement::AskedRiseLowestFloor(flag()?),
            "verify-fall-back" => VerifyStatement::FallBack(flag()?),
            "verify-asked-rise-window" => VerifyStatement::AskedRiseWindow(num(
                1,
                86_400,
                "expected 1 to 86400 seconds",
            )?),
            "verify-last-resort" => VerifyStatement::LastResort(flag()?),
            "verify-last-resort-penalty" => VerifyStatement::LastResortPenalty(num(
                0,
                32767,
                "expected a metric from 0 to 32767",
            )? as u16),
            "verify-sessions-per-neighbour" => VerifyStatement::SessionsPerNeighbour(num(
                1,
                8,
                "expected 1 to 8 sessions",
            )? as u8),
            "verify-unanswered-rechecks" => VerifyStatement::UnansweredRechecks(num(
                0,
                255,
                "expected 0 to 255 rechecks (255: no limit)",
            )? as u8),
            "verify-trace-depth" => VerifyStatement::TraceDepth(num(
                1,
                u32::from(verify::MAX_TRACE_DEPTH),
                "expected 1 to 8 traces",
            )? as u8),
            "verify-stable-evidence" => VerifyStatement::StableEvidence(
                v.parse()
                    .map_err(|_| {
                        bad("expected off, settled, forgive, both, forgive-current or forgive-retraction")
                    })?,
            ),
            "verify-port" => VerifyStatement::Port(num(1, 65535, "expected a UDP port")? as u16),
            "verify-private-key" => {
                if hex32(v).is_none() {
                    return Err(bad("expected 64 hex digits (an ed25519 seed)"));
                }
                VerifyStatement::PrivateKey(v.to_owned())
            }
            "verify-key" => {
                let p = prefix()?;
                let k = values
                    .next()
                    .ok_or_else(|| ParseError::Missing(keyword.to_owned()))?;
                let key = hex32(k).ok_or(ParseError::BadValue {
                    what: keyword.to_owned(),
                    value: k.to_owned(),
                    why: "expected 64 hex digits (an ed25519 public key)",
                })?;
                VerifyStatement::Key(p, key)
            }
            "verify-derived-range" => VerifyStatement::DerivedRange(prefix()?),
            "verify-destination" => VerifyStatement::Destination(prefix()?),
            "verify-owner" => VerifyStatement::Owner(prefix()?),
            "verify-cycle" => VerifyStatement::Cycle(num(1, 3600, "expected 1 to 3600 seconds")?),
            "verify-probes" => {
                VerifyStatement::Probes(num(1, 64, "expected 1 to 64 Remote Hellos")? as u16)
            }
            "verify-probe-interval" => VerifyStatement::ProbeInterval(num(
                10,
                10_000,
                "expected 10 to 10000 milliseconds",
            )?),
            "verify-threshold" => {
                VerifyStatement::Threshold(num(1, 1000, "expected 1 to 1000 per mille")? as u16)
            }
            "verify-window" => VerifyStatement::Window(num(0, 3600, "expected 0 to 3600 seconds")?),
            "verify-hold" => VerifyStatement::Hold(num(1, 86_400, "expected 1 to 86400 seconds")?),
            "verify-hop-cost" => {
                VerifyStatement::HopCost(num(1, 65534, "expected a link cost")? as u16)
            }
            "verify-correction" => {
                let c1 = num(1, 1_000_000, "expected C1 in seconds, 1 to 1000000")?;
                let w = values
                    .next()
                    .ok_or_else(|| ParseError::Missing(keyword.to_owned()))?;
                let c2 = w
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0 && *x <= 10.0)
                    .map(|x| (x * 1000.0).round() as u32)
                    .ok_or(ParseError::BadValue {
                        what: keyword.to_owned(),
                        value: w.to_owned(),
                        why: "expected C2 in (0, 10]",
                    })?;
                VerifyStatement::Correction(c1, c2)
            }
            _ => return Err(ParseError::Unknown(keyword.to_owned())),
        };
        Ok(s)
    }
}

fn hex32(v: &str) -> Option<[u8; 32]> {
    let b = hex::decode(v).ok()?;
    b.try_into().ok()
}

/// The `verify-*` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifySettings {
    /// `verify-enable`.
    pub enable: bool,
    /// `verify-port`.
    pub port: Option<u16>,
    /// `verify-private-key` (hex seed).
    pub private_key: Option<String>,
    /// `verify-key` bindings.
    pub keys: Vec<(Prefix, [u8; 32])>,
    /// `verify-derived-range`.
    pub derived: Vec<Prefix>,
    /// `verify-destination`.
    pub destinations: Vec<Prefix>,
    /// `verify-owner`.
    pub owner: Option<Prefix>,
    /// The other options, in order, over the crate's defaults ([`VerifySettings::config`]);
    /// one per option, the last one written.
    pub tuning: Vec<VerifyStatement>,
    /// `verify-key`, `verify-derived-range` and `verify-destination` statements left out
    /// because their list was full ([`MAX_CONFIGURED_KEYS`], [`MAX_DERIVED_RANGES`],
    /// [`MAX_DESTINATIONS`]); [`Verification::new`] logs them, once logging is set up.
    pub ignored: u32,
}

/// `verify-key` bindings kept at most.
pub const MAX_CONFIGURED_KEYS: usize = 1024;
/// `verify-derived-range` prefixes kept at most.
pub const MAX_DERIVED_RANGES: usize = 64;
/// `verify-destination` prefixes kept at most.
pub const MAX_DESTINATIONS: usize = 256;

/// Adds `x` to `list` unless it is there already or the list holds `max`; false if it was left
/// out for want of room.
fn push_bounded<T: PartialEq>(list: &mut Vec<T>, x: T, max: usize) -> bool {
    if list.contains(&x) {
        return true;
    }
    if list.len() >= max {
        return false;
    }
    list.push(x);
    true
}

impl VerifySettings {
    /// Applies one statement.
    pub fn apply(&mut self, s: VerifyStatement) {
        match s {
            VerifyStatement::Enable(b) => self.enable = b,
            VerifyStatement::Port(p) => self.port = Some(p),
            VerifyStatement::PrivateKey(k) => self.private_key = Some(k),
            VerifyStatement::Key(p, k) => {
                // Several keys may answer for one prefix (a key rolled over, exits sharing
                // a prefix); the same binding written again is kept once.
                let kept = push_bounded(&mut self.keys, (p, k), MAX_CONFIGURED_KEYS);
                self.count_ignored(kept);
            }
            VerifyStatement::DerivedRange(p) => {
                let kept = push_bounded(&mut self.derived, p, MAX_DERIVED_RANGES);
                self.count_ignored(kept);
            }
            VerifyStatement::Destination(p) => {
                let kept = push_bounded(&mut self.destinations, p, MAX_DESTINATIONS);
                self.count_ignored(kept);
            }
            VerifyStatement::Owner(p) => self.owner = Some(p),
            other => {
                // Applied in order, so only the last of each option counts: the list holds
                // one per option and stays as short as the list of options.
                let kind = std::mem::discriminant(&other);
                self.tuning.retain(|t| std::mem::discriminant(t) != kind);
                self.tuning.push(other);
            }
        }
    }

    fn count_ignored(&mut self, kept: bool) {
        if !kept {
            self.ignored = self.ignored.saturating_add(1);
        }
    }

    /// `verify-last-resort`, the engine's `accuracy_last_resort` (`spec/verify.md` §4.3), if
    /// the file sets it (`None`: the engine's default stands).
    pub fn last_resort(&self) -> Option<bool> {
        self.tuning.iter().rev().find_map(|s| match s {
            VerifyStatement::LastResort(b) => Some(*b),
            _ => None,
        })
    }

    /// `verify-last-resort-penalty`, the engine's `accuracy_last_resort_penalty`
    /// (`spec/verify.md` §4.3), if the file sets it.
    pub fn last_resort_penalty(&self) -> Option<u16> {
        self.tuning.iter().rev().find_map(|s| match s {
            VerifyStatement::LastResortPenalty(m) => Some(*m),
            _ => None,
        })
    }

    /// The `verify` crate's configuration: its defaults (`spec/verify.md` §7) with the options
    /// applied in order.
    pub fn config(&self) -> VerifyConfig {
        let mut c = VerifyConfig::default();
        for s in &self.tuning {
            match *s {
                VerifyStatement::Cycle(s) => c.schedule.cycle = Duration::from_secs(u64::from(s)),
                VerifyStatement::Probes(n) => c.schedule.probes = n,
                VerifyStatement::ProbeInterval(ms) => {
                    c.schedule.probe_interval = Duration::from_millis(u64::from(ms));
                }
                VerifyStatement::Threshold(pm) => c.score.threshold = f64::from(pm) / 1000.0,
                VerifyStatement::Window(s) => c.score.window = Duration::from_secs(u64::from(s)),
                VerifyStatement::Hold(s) => c.score.hold = Duration::from_secs(u64::from(s)),
                VerifyStatement::HopCost(h) => c.cost.hop_cost = h,
                VerifyStatement::LossInMetric(b) => c.cost.loss_in_metric = b,
                VerifyStatement::Correction(c1, c2) => {
                    c.correction.c1 = f64::from(c1);
                    c.correction.c2 = f64::from(c2) / 1000.0;
                }
                VerifyStatement::PaperRule(b) => {
                    c.score.rule = if b {
                        verify::Rule::Paper
                    } else {
                        verify::Rule::Confirmed
                    };
                }
                VerifyStatement::Attribution(b) => c.score.attribution = b,
                VerifyStatement::AttributionReturned(b) => c.score.returned_blame = b,
                VerifyStatement::AttributionBothEnds(b) => c.score.origin_at_both_ends = b,
                VerifyStatement::AttributionPassingOrigin(b) => c.score.passing_origin = b,
                VerifyStatement::AttributionThroughUs(b) => c.score.through_us = b,
                VerifyStatement::AttributionVerifiedNextHop(b) => c.score.verified_next_hop = b,
                VerifyStatement::Progress(b) => c.score.progress = b,
                VerifyStatement::Justification(b) => c.score.justification = b,
                VerifyStatement::UnjustifiedOrigin(b) => c.score.unjustified_origin_evicts = b,
                VerifyStatement::UnjustifiedUnknown(b) => c.score.unjustified_unknown_evicts = b,
                VerifyStatement::UnjustifiedThroughUs(b) => {
                    c.score.unjustified_through_us_evicts = b
                }
                VerifyStatement::LoopThroughUs(b) => c.score.loop_through_us = b,
                VerifyStatement::JustifyOnRise(b) => c.score.justify_on_rise = b,
                VerifyStatement::ReaskMovedClaim(b) => c.score.reask_moved_claim = b,
                VerifyStatement::AwaitsJustification(b) => {
                    c.score.confirmed_awaits_justification = b
                }
                VerifyStatement::ReaskInfiniteClaim(b) => c.score.reask_infinite_claim = b,
                VerifyStatement::ReaskRefusedClaim(b) => c.score.reask_refused_claim = b,
                VerifyStatement::CorrectionMeetsNextHop(b) => c.score.correction_meets_next_hop = b,
                VerifyStatement::CorrectionNearMeasured(b) => c.score.correction_near_measured = b,
                VerifyStatement::WithdrawnOriginEvicts(b) => c.score.withdrawn_origin_evicts = b,
                VerifyStatement::AuditClaims { on, signers_only } => {
                    c.score.audit_claims = on;
                    c.score.audit_signers_only = signers_only;
                }
                VerifyStatement::UnknownBreadth(b) => c.score.unknown_breadth = b,
                VerifyStatement::ProgressAccuracy(b) => c.score.progress_on_accuracy = b,
                VerifyStatement::CorrectionAdvertised(b) => c.correction.scale_advertised = b,
                VerifyStatement::CorrectionFollow(b) => c.correction.follow_claims = b,
                VerifyStatement::RelayedProbesUsed(b) => c.schedule.relayed_probes_used = b,
                VerifyStatement::CheckRequests(b) => c.schedule.check_requests = b,
                VerifyStatement::UnansweredRechecks(n) => c.schedule.unanswered_rechecks = n,
                VerifyStatement::PreferSuspicious(b) => c.schedule.prefer_suspicious = b,
                VerifyStatement::LateStart(b) => c.schedule.late_start = b,
                VerifyStatement::AskedRises(b) => c.score.asked_rises_evict = b,
                VerifyStatement::AskedRisesApart(b) => c.score.asked_rises_apart = b,
                VerifyStatement::AskedRiseLowestFloor(b) => c.score.asked_rise_lowest_floor = b,
                VerifyStatement::FallBack(b) => c.score.fall_back_evicts = b,
                VerifyStatement::AskedRiseWindow(s) => {
                    c.score.asked_rise_window = Duration::from_secs(u64::from(s));
                }
                // The engine's, read by [`VerifySettings::last_resort`] and
                // [`VerifySettings::last_resort_penalty`].
                VerifyStatement::LastResort(_) | VerifyStatement::LastResortPenalty(_) => {}
                VerifyStatement::SessionsPerNeighbour(n) => c.schedule.sessions_per_neighbour = n,
                VerifyStatement::StableEvidence(m) => c.score.stable_evidence = m,
                VerifyStatement::TraceDepth(n) => c.score.trace_depth = n,
                VerifyStatement::HopBound(b) => c.score.hop_bound = b,
                VerifyStatement::FallenClaim(m) => c.score.fallen_claim = m,
                _ => {}
            }
        }
        c
    }

    /// The keyring these settings bind.
    pub fn keyring(&self) -> Keyring {
        let mut k = Keyring::new(1024);
        for (p, key) in &self.keys {
            k.bind(*p, *key);
        }
        for r in &self.derived {
            k.allow_derived(*r);
        }
        k
    }
}

/// A datagram to send from the verification socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The Babel packet.
    pub bytes: Vec<u8>,
    /// Destination address (port: the configured `verify-port`).
    pub dst: Ipv6Addr,
    /// Firewall mark (0: none, the ordinary route).
    pub mark: u32,
    /// A trace (§4.2.1): sent from the trace socket, with hop limit `hop_limit`, whose ICMPv6
    /// Time Exceeded names the router where it runs out (the neighbour's next hop for
    /// [`verify::TRACE_HOP_LIMIT`]).
    pub trace: bool,
    /// A trace's IPv6 hop limit ([`verify::TRACE_HOP_LIMIT`] up to
    /// [`verify::MAX_TRACE_HOP_LIMIT`]) or a bound's (§1.4, up to 63), 255 for a Check Failed
    /// (§2.5, to a neighbour's link-local address); 0 for the other datagrams (the socket's
    /// own).
    pub hop_limit: u8,
    /// The interface of a link-local `dst` (a Check Failed's); 0 for the others.
    pub scope: u32,
}

/// A policy route the binary must install for a probe to take the route under test (§2.3): the
/// rule `fwmark mark lookup table`, and in that table `prefix via neighbour dev ifindex`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRoute {
    /// Firewall mark of the neighbour's probes.
    pub mark: u32,
    /// Its table.
    pub table: u32,
    /// Destination.
    pub prefix: Prefix,
    /// The neighbour under test.
    pub neighbour: NeighbourId,
}

/// What the binary must do after a call.
#[derive(Debug, Default)]
pub struct VerificationOutputs {
    /// Datagrams to send.
    pub datagrams: Vec<Datagram>,
    /// Probe routes to install first.
    pub routes: Vec<ProbeRoute>,
    /// Engine inputs (verified metrics, neighbour accuracies).
    pub inputs: Vec<Input>,
    /// `monitor` lines (without the newline).
    pub lines: Vec<String>,
}

/// The last check of one route (`dump`, `dump json`, `babelctl show`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RouteRow {
    /// Destination.
    #[serde(serialize_with = "as_text")]
    pub prefix: Prefix,
    /// Interface of the neighbour under test.
    #[serde(skip)]
    pub ifindex: u32,
    /// The neighbour under test.
    pub neighbour: IpAddr,
    /// `m`: its metric as we compute it.
    pub metric: u16,
    /// `c`: the measured cost (none: unanswered).
    pub cost: Option<u16>,
    /// `a = min(m/c, 1)`, per mille.
    pub accuracy: Option<u16>,
    /// The metric selection uses instead, and for how many more seconds (at the check).
    pub corrected: Option<u16>,
    /// The neighbour's next hop on the route, found by the check's trace when it is one of our
    /// neighbours (§4.2.1; link-local address).
    pub next_hop: Option<IpAddr>,
    /// The check's trace came back to us: the neighbour forwards the route to us (§4.2.1;
    /// `next-hop self` in `dump`).
    pub returned: bool,
    /// Whom the check blamed (§4.2.1): on a failing check the origin of the lie, a relay of
    /// it, a next hop through us, or nobody known; on a passing check `origin` when the
    /// neighbour claims under its next hop's claim (the origin test on passing checks).
    pub blame: Blame,
    /// When it was checked.
    #[serde(skip)]
    pub at: Instant,
}

/// One neighbour's standing (`dump`, `dump json`, `babelctl show`, metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeighbourRow {
    /// Interface.
    #[serde(skip)]
    pub ifindex: u32,
    /// Its link-local address.
    pub neighbour: IpAddr,
    /// Its score (per mille) under the configured rule.
    pub accuracy: u16,
    /// Evicted now.
    pub evicted: bool,
    /// Seconds left of the eviction.
    pub evicted_for_s: u64,
    /// Evictions so far.
    pub evictions: u32,
    /// How the latest eviction came about (`checks`, `unjustified`, `audit`; §4.3), over or
    /// not; `None` if it was never evicted.
    pub last_eviction: Option<&'static str>,
    /// The destination of the route that caused the latest eviction.
    #[serde(serialize_with = "opt_as_text")]
    pub last_eviction_prefix: Option<Prefix>,
    /// Destinations scored.
    pub destinations: usize,
    /// Our installed routes through it while it is evicted: the destinations no other
    /// neighbour offers, for which it serves as the last resort (`spec/verify.md` §4.3). Zero
    /// while it is not evicted.
    pub last_resort: u32,
}

/// What the engine shows that the neighbour rows need: the accuracy threshold, and how many of
/// our installed routes go through each neighbour (read from [`babel_core::Engine::routes`]).
#[derive(Clone, Debug, Default)]
pub struct EngineSide {
    /// The engine's accuracy threshold (per mille).
    pub threshold_pm: u16,
    installed: BTreeMap<(u32, IpAddr), u32>,
}

impl EngineSide {
    /// The threshold and the installed routes among `routes`, counted per neighbour.
    pub fn new(threshold_pm: u16, routes: &[RouteView]) -> Self {
        let mut installed = BTreeMap::new();
        for r in routes.iter().filter(|r| r.installed) {
            *installed.entry((r.ifindex, r.via)).or_insert(0u32) += 1;
        }
        Self {
            threshold_pm,
            installed,
        }
    }

    /// Our installed routes through the neighbour at `address` on `ifindex`.
    pub fn installed_through(&self, ifindex: u32, address: IpAddr) -> u32 {
        self.installed
            .get(&(ifindex, address))
            .copied()
            .unwrap_or(0)
    }
}

/// `dump json`'s `verify` object.
#[derive(Clone, Debug, Serialize)]
pub struct VerificationReport {
    /// Our public key (hex).
    pub public_key: String,
    /// The verifier's counters.
    pub counters: ProbeCounters,
    /// Datagrams refused before the verify crate saw them.
    pub malformed: u64,
    /// Remote IHUs we sent.
    pub answers_sent: u64,
    /// Remote Hellos we refused.
    pub refused: u64,
    /// Check Failed TLVs we refused (§2.5).
    pub check_failed_refused: u64,
    /// Justify Requests, Claim Requests and Signed Claims refused before the verifier saw them
    /// (§4.2.5): malformed, not from a neighbour over its link.
    pub justify_refused: u64,
    /// Justify Requests answered with our Update for the destination as it is now (§4.2.5,
    /// step 2): a retraction where we had nobody to ask (no route, or ours runs through the
    /// verifier).
    pub readvertised: u64,
    /// Signed Claims we sent in answer to a neighbour's Claim Request (§4.2.5).
    pub claims_signed: u64,
    /// The raw ICMPv6 socket could not be opened (0 or 1, §9.6).
    pub trace_socket_failed: u64,
    /// Per neighbour.
    pub neighbours: Vec<Named<NeighbourRow>>,
    /// Per route checked.
    pub routes: Vec<Named<RouteRow>>,
    /// Every bounded table, its entries and its bound ([`Verification::table_sizes`]).
    pub tables: Vec<verify::TableSize>,
}

/// A row of `dump json` with its interface's name (and, for a route, the seconds since the
/// check).
#[derive(Clone, Debug, Serialize)]
pub struct Named<T> {
    /// Interface name.
    pub interface: String,
    /// Seconds since the check (routes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_s: Option<u64>,
    /// The row.
    #[serde(flatten)]
    pub row: T,
}

/// The verification of one daemon.
#[derive(Clone, Debug)]
pub struct Verification {
    settings: VerifySettings,
    cfg: VerifyConfig,
    router_id: RouterId,
    verifier: Verifier,
    responder: Responder,
    /// Probe table index per neighbour (bounded by [`MAX_PROBED_NEIGHBOURS`]).
    marks: BTreeMap<NeighbourId, u32>,
    /// Probe routes installed.
    installed: BTreeMap<(u32, Prefix), NeighbourId>,
    /// Who sent us Remote Hellos, to answer them: (origin, via, prefix) → its address.
    peers: BTreeMap<(RouterId, RouterId, Prefix), (Ipv6Addr, Instant)>,
    rows: BTreeMap<(Prefix, NeighbourId), RouteRow>,
    /// Datagrams refused before the verify crate saw them (not a Babel packet, bad TLV).
    pub malformed: u64,
    /// Remote IHUs sent.
    pub answers_sent: u64,
    /// Check Failed TLVs refused (§2.5): malformed, not from a neighbour over its link, or
    /// with `check_requests` off.
    pub check_failed_refused: u64,
    /// Justify Requests, Claim Requests and Signed Claims refused before the verifier saw them
    /// (§4.2.5): malformed, not from a neighbour over its link.
    pub justify_refused: u64,
    /// Justify Requests answered with our Update for the destination as it is now (§4.2.5,
    /// step 2): a retraction where we had nobody to ask (no route, or ours runs through the
    /// verifier).
    pub readvertised: u64,
    /// Signed Claims we sent in answer to a neighbour's Claim Request (§4.2.5).
    pub claims_signed: u64,
    /// §4.2.5: Justify Requests we forwarded to our next hops.
    relay: verify::ClaimRelay,
    /// §4.2.5: the second (of [`Instant`]) and the Signed Claims signed in it.
    sign_budget: (u64, u32),
    /// The raw ICMPv6 socket could not be opened (0 or 1): verification runs without
    /// attribution and without loop evidence.
    pub trace_socket_failed: u64,
    /// The binary reads ICMPv6 Time Exceeded ([`Verification::trace_unavailable`] clears it).
    trace_io: bool,
    /// Exit tunnel ends, probed only inside the tunnel (§2.3, stealth probing).
    stealth: crate::exit::StealthTunnels,
    /// Addresses that carried traffic recently (measured by the kernel), with when: each marks
    /// the most specific route containing it used (§2.1). Bounded by [`MAX_USED_ADDRESSES`].
    used_addresses: BTreeMap<Ipv6Addr, Instant>,
}

/// What the justification exchange needs of the route table (§4.2.5).
pub trait ClaimRoutes {
    /// Our route to `prefix` through neighbour `n`, or our installed one (`None`).
    fn route_via(&self, prefix: &Prefix, n: Option<&NeighbourId>) -> Option<RouteView>;
}

impl ClaimRoutes for Vec<RouteView> {
    fn route_via(&self, prefix: &Prefix, n: Option<&NeighbourId>) -> Option<RouteView> {
        self.iter()
            .find(|r| {
                r.prefix == *prefix
                    && r.src_prefix.is_none()
                    && n.map_or(r.installed, |n| {
                        r.ifindex == n.ifindex && r.via == n.address
                    })
            })
            .cloned()
    }
}

/// The engine's routes at `now`, each looked up in O(log n).
pub struct EngineRoutes<'a>(pub &'a babel_core::Engine, pub Instant);

impl ClaimRoutes for EngineRoutes<'_> {
    fn route_via(&self, prefix: &Prefix, n: Option<&NeighbourId>) -> Option<RouteView> {
        let key = babel_core::RouteKey::new(*prefix);
        let (ifindex, via) = match n {
            Some(n) => (n.ifindex, n.address),
            None => self.0.installed(&key).map(|i| (i.ifindex, i.via))?,
        };
        self.0.route(self.1, &key, ifindex, via)
    }
}

/// Addresses remembered as used at most (the kernel's set holds as many).
const MAX_USED_ADDRESSES: usize = 4096;

impl Verification {
    /// Verification for router `router_id`. `counter_start` must exceed every counter our key
    /// ever signed (the wall clock in microseconds, §3.3).
    pub fn new(
        settings: VerifySettings,
        router_id: RouterId,
        key: SigningKey,
        counter_start: u64,
        seed: u64,
        now: Instant,
    ) -> Verification {
        let cfg = settings.config();
        if settings.ignored > 0 {
            tracing::warn!(
                ignored = settings.ignored,
                "verify-key, verify-derived-range or verify-destination statements left out: \
                 at most {MAX_CONFIGURED_KEYS} keys, {MAX_DERIVED_RANGES} derived ranges and \
                 {MAX_DESTINATIONS} destinations are kept"
            );
        }
        let mut verifier = Verifier::new(cfg, router_id, settings.keyring(), seed, now);
        let responder = Responder::new(key, counter_start, 256);
        verifier.set_own_key(responder.public_key());
        Verification {
            responder,
            router_id,
            verifier,
            settings,
            cfg,
            marks: BTreeMap::new(),
            installed: BTreeMap::new(),
            peers: BTreeMap::new(),
            rows: BTreeMap::new(),
            malformed: 0,
            answers_sent: 0,
            check_failed_refused: 0,
            justify_refused: 0,
            readvertised: 0,
            claims_signed: 0,
            relay: verify::ClaimRelay::new(256),
            sign_budget: (0, 0),
            trace_socket_failed: 0,
            trace_io: true,
            stealth: crate::exit::StealthTunnels::default(),
            used_addresses: BTreeMap::new(),
        }
    }

    /// The exit tunnel ends (`crate::exit::sync_stealth`).
    pub fn set_stealth(&mut self, t: crate::exit::StealthTunnels) {
        self.stealth = t;
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.settings.port.unwrap_or(VERIFY_PORT)
    }

    /// Our public key (hex), which verifiers bind to our prefixes with `verify-key`.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.responder.public_key())
    }

    /// The verifier's counters.
    pub fn counters(&self) -> ProbeCounters {
        self.verifier.counters()
    }

    /// The binary cannot read ICMPv6 (no raw socket): attribution is off (§4.2.1), no trace is
    /// sent, and loops are not seen (§3.4). Counted in `trace_socket_failed`.
    pub fn trace_unavailable(&mut self) {
        self.trace_io = false;
        self.trace_socket_failed = 1;
        self.verifier.disable_attribution();
    }

    /// Whether attribution by the next hop is on (§4.2.1).
    pub fn attribution(&self) -> bool {
        self.verifier.config().score.attribution
    }

    /// An ICMPv6 message arrived from `from` on the raw socket (`bytes` from its ICMPv6
    /// header). A Time Exceeded quoting one of our Remote Hellos sent from `trace_port` with a
    /// hop limit of at most [`verify::MAX_TRACE_HOP_LIMIT`] answers a session's trace (§4.2.1):
    /// `from` names the neighbour's next hop if it is one of our neighbours' own addresses
    /// ([`neighbour_owning`]), and `arrived_on` (the interface it arrived on, if known) says
    /// whether it came over the link to that neighbour (§4.2.1, a next hop through us); if
    /// `from` is the trace's own source address, our kernel sent it:
    /// the trace came back to us. One quoting a Remote Hello from the verification port says the
    /// route under test loops (§3.4). Anything else quoting our port is dropped and counted
    /// (`traces_dropped`); a Time Exceeded about other traffic is not ours and is ignored.
    pub fn on_time_exceeded(
        &mut self,
        now: Instant,
        from: Ipv6Addr,
        arrived_on: Option<u32>,
        bytes: &[u8],
        trace_port: u16,
        routes: &[RouteView],
    ) {
        let q = match parse_time_exceeded(bytes, self.port()) {
            Ok(q) => q,
            Err(TraceParseError::NotTimeExceeded | TraceParseError::NotOurs) => return,
            Err(e) => {
                tracing::debug!("ICMPv6 Time Exceeded from {from} dropped: {e}");
                self.verifier.trace_dropped();
                return;
            }
        };
        if q.src_port == trace_port && q.hop_limit <= verify::MAX_TRACE_HOP_LIMIT && from == q.src {
            // Sent by our own kernel from the address the trace left from: the neighbour
            // forwarded it back to us and its hop limit ran out here (§4.2.1, §9.6).
            let r = self.verifier.handle_trace_returned(now, &q.hello);
            tracing::debug!("trace of {} came back to us: {r:?}", q.hello.prefix);
        } else if q.src_port == trace_port && q.hop_limit <= verify::MAX_TRACE_HOP_LIMIT {
            let x = neighbour_owning(from, routes);
            let r = match arrived_on {
                Some(i) => self.verifier.handle_trace_answer_on(now, &q.hello, x, i),
                None => self.verifier.handle_trace_answer(now, &q.hello, x),
            };
            tracing::debug!(
                "trace of {} answered by {from} (neighbour {:?}): {r:?}",
                q.hello.prefix,
                x.map(|x| x.address)
            );
        } else if q.src_port == self.port() {
            if !self.verifier.handle_time_exceeded(now, &q.hello) {
                self.verifier.trace_dropped();
            }
        } else {
            self.verifier.trace_dropped();
        }
    }

    /// Every table that input from the wire, the kernel or the route table can drive, the
    /// verifier's and the responder's with ours, against its bound (`spec/verify.md` §6).
    pub fn table_sizes(&self) -> Vec<verify::TableSize> {
        use verify::TableSize as T;
        let mut out = self.verifier.table_sizes();
        out.extend([
            self.responder.table_size(),
            self.relay.table_size(),
            T {
                name: "Remote Hello senders",
                len: self.peers.len(),
                max: MAX_PEERS,
            },
            T {
                name: "route rows",
                len: self.rows.len(),
                max: MAX_ROWS,
            },
            T {
                name: "used addresses",
                len: self.used_addresses.len(),
                max: MAX_USED_ADDRESSES,
            },
            T {
                name: "probe marks",
                len: self.marks.len(),
                max: MAX_PROBED_NEIGHBOURS,
            },
            T {
                name: "probe routes",
                len: self.installed.len(),
                max: MAX_PROBE_ROUTES,
            },
        ]);
        out
    }

    /// Our own counters, beside the verifier's ([`Verification::counters`]), by name.
    pub fn own_counters(&self) -> [(&'static str, u64); 8] {
        [
            ("answers_sent", self.answers_sent),
            ("refused", self.refused()),
            ("check_failed_refused", self.check_failed_refused),
            ("justify_refused", self.justify_refused),
            ("readvertised", self.readvertised),
            ("claims_signed", self.claims_signed),
            ("malformed_datagrams", self.malformed),
            ("trace_socket_failed", self.trace_socket_failed),
        ]
    }

    /// Remote Hellos refused by the responder.
    pub fn refused(&self) -> u64 {
        self.responder.refused
    }

    /// Marks and tables in use (for the binary's clean-up at exit).
    pub fn tables(&self) -> Vec<(u32, u32)> {
        self.marks
            .values()
            .map(|k| (FWMARK_BASE + k, TABLE_BASE + k))
            .collect()
    }

    /// When [`Verification::on_timer`] must run next.
    pub fn poll_timeout(&self) -> Instant {
        let t = self.verifier.poll_timeout();
        self.responder.poll_timeout().map_or(t, |r| r.min(t))
    }

    /// Traffic went to these addresses recently (measured by the kernel, §2.1): at the next
    /// cycle, the most specific route containing each of them is used (a `/128`, or the `/64`
    /// of a LAN behind a router).
    pub fn mark_used(&mut self, now: Instant, addresses: &[Ipv6Addr]) {
        for a in addresses {
            if !a.is_multicast() && !a.is_unicast_link_local() && !a.is_loopback() {
                if !self.used_addresses.contains_key(a)
                    && self.used_addresses.len() >= MAX_USED_ADDRESSES
                {
                    let oldest = self
                        .used_addresses
                        .iter()
                        .min_by_key(|(_, t)| **t)
                        .map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.used_addresses.remove(&k);
                    }
                }
                self.used_addresses.insert(*a, now);
            }
        }
    }

    /// Runs the timers: configured destinations stay used; Remote Hellos, ends of sessions and
    /// their consequences; our answers due.
    pub fn on_timer(
        &mut self,
        now: Instant,
        routes: &[RouteView],
        threshold_pm: u16,
    ) -> VerificationOutputs {
        let mut out = VerificationOutputs::default();
        for p in self.settings.destinations.clone() {
            self.verifier.mark_used(now, p);
        }
        let candidates = if self.verifier.wants_routes(now) {
            // An evicted neighbour the engine forgot and heard again starts at full accuracy
            // there: tell it again at every cycle.
            for (n, s) in self.verifier.neighbours() {
                if s.is_evicted(now) {
                    out.inputs.push(Input::SetNeighbourAccuracy {
                        ifindex: n.ifindex,
                        address: n.address,
                        accuracy: self.verifier.engine_accuracy(now, n, threshold_pm),
                    });
                }
            }
            let candidates = candidates(routes);
            let window = self.cfg.schedule.used_window;
            self.used_addresses
                .retain(|_, t| now.saturating_since(*t) <= window);
            for (a, t) in &self.used_addresses {
                let host = Prefix::host(IpAddr::V6(*a));
                let best = candidates
                    .iter()
                    .filter(|c| c.prefix.contains(&host))
                    .map(|c| c.prefix)
                    .max_by_key(Prefix::len);
                if let Some(p) = best {
                    self.verifier.mark_used(*t, p);
                }
            }
            let mut c = candidates;
            if !self.stealth.is_empty() {
                c.retain(|v| self.stealth.may_test(&v.prefix, v.selected));
            }
            c
        } else {
            Vec::new()
        };
        let actions = self.verifier.handle_timeout(now, &candidates);
        for a in actions {
            self.act(now, a, threshold_pm, &mut out);
        }
        // §5.2: the neighbour-wide corrections (the route checked has its own correction,
        // pushed by `act` above; the verifier knows it).
        for (n, prefix, metric, until) in self.verifier.neighbour_corrections(now, routes) {
            out.inputs.push(Input::SetVerifiedMetric {
                prefix,
                src_prefix: None,
                ifindex: n.ifindex,
                via: n.address,
                metric,
                until,
            });
        }
        for (o, v, p, tlv) in self.responder.poll_answers(now) {
            if let Some((addr, _)) = self.peers.get(&(o, v, p)) {
                self.answers_sent += 1;
                out.datagrams.push(Datagram {
                    bytes: packet(&tlv),
                    dst: *addr,
                    mark: 0,
                    trace: false,
                    hop_limit: 0,
                    scope: 0,
                });
            }
        }
        out
    }

    fn act(
        &mut self,
        now: Instant,
        a: ProbeAction,
        threshold_pm: u16,
        out: &mut VerificationOutputs,
    ) {
        match a {
            ProbeAction::SendRemoteHello { neighbour, hello } => {
                self.probe(neighbour, hello, None, out);
            }
            // §4.2.1 and §1.4: both from the trace socket, whose Time Exceeded we read.
            ProbeAction::SendTrace {
                neighbour,
                hello,
                hop_limit,
            }
            | ProbeAction::SendBound {
                neighbour,
                hello,
                hop_limit,
            } => self.probe(neighbour, hello, Some(hop_limit), out),
            // §2.5: over the link, to the neighbour's link-local address, hop limit 255.
            ProbeAction::SendCheckFailed { neighbour, prefix } => {
                if let IpAddr::V6(dst) = neighbour.address {
                    out.datagrams.push(Datagram {
                        bytes: packet(&verify::encode_check_failed(&prefix)),
                        dst,
                        mark: 0,
                        trace: false,
                        hop_limit: CHECK_FAILED_HOP_LIMIT,
                        scope: neighbour.ifindex,
                    });
                }
            }
            // §4.2.5: over the link too.
            ProbeAction::SendJustifyRequest { neighbour, request } => {
                tracing::debug!(
                    "verification: asking {} (if {}) to justify its claim for {} (nonce {:016x})",
                    neighbour.address,
                    neighbour.ifindex,
                    request.prefix,
                    request.nonce
                );
                if let IpAddr::V6(dst) = neighbour.address {
                    out.datagrams.push(Datagram {
                        bytes: packet(&verify::encode_request(TLV_JUSTIFY_REQUEST, &request)),
                        dst,
                        mark: 0,
                        trace: false,
                        hop_limit: CHECK_FAILED_HOP_LIMIT,
                        scope: neighbour.ifindex,
                    });
                }
            }
            ProbeAction::Checked(c) => self.checked(now, &c, threshold_pm, out),
            // §4.2.5: one step from an eviction with `verify-asked-rises` (the second within
            // the window evicts), worth a line with the option off too.
            ProbeAction::AskedRise(r) => {
                let n = r.neighbour;
                out.lines.push(format!(
                    "verify neighbour {} if {} asked-rise {} from {} to {}",
                    n.address, n.ifindex, r.prefix, r.asked, r.risen
                ));
                tracing::info!(
                    "verification: neighbour {} (if {}) raised its claim for {} from {} to {} \
                     only once asked to justify it",
                    n.address,
                    n.ifindex,
                    r.prefix,
                    r.asked,
                    r.risen
                );
            }
            ProbeAction::Standing {
                neighbour,
                eviction,
            } => {
                let accuracy = self.verifier.engine_accuracy(now, &neighbour, threshold_pm);
                out.inputs.push(Input::SetNeighbourAccuracy {
                    ifindex: neighbour.ifindex,
                    address: neighbour.address,
                    accuracy,
                });
                let Some(why) = eviction else {
                    out.lines.push(format!(
                        "verify neighbour {} if {} accuracy {accuracy} readmitted",
                        neighbour.address, neighbour.ifindex,
                    ));
                    tracing::warn!(
                        "verification: neighbour {} (if {}) readmitted, accuracy {accuracy}",
                        neighbour.address,
                        neighbour.ifindex
                    );
                    return;
                };
                out.lines.push(format!(
                    "verify neighbour {} if {} accuracy {accuracy} evicted {} {}",
                    neighbour.address,
                    neighbour.ifindex,
                    why.cause.as_str(),
                    why.prefix,
                ));
                tracing::warn!(
                    "verification: neighbour {} (if {}) evicted, accuracy {accuracy}: {}",
                    neighbour.address,
                    neighbour.ifindex,
                    eviction_reason(why)
                );
            }
        }
    }

    /// A Remote Hello through `neighbour` (§2.3), or a trace with this hop limit (§4.2.1).
    fn probe(
        &mut self,
        neighbour: NeighbourId,
        hello: RemoteHello,
        trace_hop_limit: Option<u8>,
        out: &mut VerificationOutputs,
    ) {
        let trace = trace_hop_limit.is_some();
        let Some(mut dst) = verify::probe_address(&hello.prefix) else {
            return;
        };
        // Inside an exit tunnel: to the other end's address there, no mark (the
        // tunnel's outer packets take the selected route, the one under test).
        let tunnel = match self.stealth.path(&hello.prefix) {
            crate::exit::ProbePath::Hold => return,
            crate::exit::ProbePath::Tunnel(inner) => Some(inner),
            crate::exit::ProbePath::Mesh => None,
        };
        // Inside a tunnel the path's routers never see the inner hop limit: no trace.
        if trace && (tunnel.is_some() || !self.trace_io) {
            return;
        }
        let Some(k) = self.mark_of(neighbour) else {
            return;
        };
        let (mut mark, table) = (FWMARK_BASE + k, TABLE_BASE + k);
        if let Some(inner) = tunnel {
            (dst, mark) = (inner, 0);
        } else if self.installed.get(&(table, hello.prefix)) != Some(&neighbour) {
            if self.installed.len() >= MAX_PROBE_ROUTES {
                self.installed.clear();
            }
            self.installed.insert((table, hello.prefix), neighbour);
            out.routes.push(ProbeRoute {
                mark,
                table,
                prefix: hello.prefix,
                neighbour,
            });
        }
        let mut bytes = Vec::new();
        if babel_wire::encode_packet(
            &Packet {
                messages: vec![Message::RemoteHello(hello)],
                macs: Vec::new(),
            },
            babel_wire::Flavour::Standard,
        )
        .map(|b| bytes.extend_from_slice(&b))
        .is_ok()
        {
            out.datagrams.push(Datagram {
                bytes,
                dst,
                mark,
                trace,
                hop_limit: trace_hop_limit.unwrap_or(0),
                scope: 0,
            });
        }
    }

    fn mark_of(&mut self, n: NeighbourId) -> Option<u32> {
        if let Some(k) = self.marks.get(&n) {
            return Some(*k);
        }
        if self.marks.len() >= MAX_PROBED_NEIGHBOURS {
            return None;
        }
        let k = (0u32..)
            .find(|k| !self.marks.values().any(|v| v == k))
            .unwrap_or(0);
        self.marks.insert(n, k);
        Some(k)
    }

    fn checked(
        &mut self,
        now: Instant,
        c: &Check,
        threshold_pm: u16,
        out: &mut VerificationOutputs,
    ) {
        let n = c.route.neighbour;
        if let Some((metric, until)) = c.correction {
            out.inputs.push(Input::SetVerifiedMetric {
                prefix: c.route.prefix,
                src_prefix: None,
                ifindex: n.ifindex,
                via: n.address,
                metric,
                until,
            });
        }
        if c.cost.is_some() {
            let accuracy = self.verifier.engine_accuracy(now, &n, threshold_pm);
            out.inputs.push(Input::SetNeighbourAccuracy {
                ifindex: n.ifindex,
                address: n.address,
                accuracy,
            });
        }
        let row = RouteRow {
            prefix: c.route.prefix,
            ifindex: n.ifindex,
            neighbour: n.address,
            metric: c.metric,
            cost: c.cost,
            accuracy: c.accuracy.map(|a| (a * 1000.0).round() as u16),
            corrected: c.correction.map(|(m, _)| m),
            next_hop: c.next_hop.map(|x| x.address),
            returned: c.returned,
            blame: c.blame,
            at: now,
        };
        if !self.rows.contains_key(&(c.route.prefix, n)) && self.rows.len() >= MAX_ROWS {
            let oldest = self.rows.iter().min_by_key(|(_, r)| r.at).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.rows.remove(&k);
            }
        }
        self.rows.insert((c.route.prefix, n), row);
        let verdict = match c.verdict {
            CheckVerdict::Kept => "kept",
            CheckVerdict::Evicted(_) => "evicted",
            CheckVerdict::Awaiting => "awaiting",
        };
        out.lines.push(format!(
            "verify route {} via {} if {} metric {} cost {} accuracy {} corrected {} blame {} {verdict}",
            c.route.prefix,
            n.address,
            n.ifindex,
            c.metric,
            opt(c.cost),
            opt(row.accuracy),
            opt(row.corrected),
            c.blame.as_str(),
        ));
        tracing::info!(
            "verification: {} via {}: metric {} cost {} accuracy {}",
            c.route.prefix,
            n.address,
            c.metric,
            opt(c.cost),
            opt(row.accuracy)
        );
    }

    /// A datagram arrived on the verification socket from `src` with IPv6 hop limit
    /// `hop_limit`. `ours` are the prefixes we announce. Malformed input is counted, never a
    /// panic.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        hop_limit: u8,
        bytes: &[u8],
        ours: &[XrouteView],
    ) -> VerificationOutputs {
        self.on_datagram_from(now, (src, 0), hop_limit, bytes, ours, &[], None)
    }

    /// [`Verification::on_datagram`] from `src` on interface `scope` (its scope id, for a
    /// link-local source), with the engine's `neighbours`: a Check Failed (§2.5) is taken only
    /// from one of them, from its link-local address on that interface, with hop limit
    /// [`CHECK_FAILED_HOP_LIMIT`]; the others are refused and counted. The TLVs of justified
    /// claims (§4.2.5) are taken on the same terms, and judged with `routes` (the engine's).
    // One datagram, where it came from, and the router's tables it is judged against.
    #[allow(clippy::too_many_arguments)]
    pub fn on_datagram_from(
        &mut self,
        now: Instant,
        (src, scope): (Ipv6Addr, u32),
        hop_limit: u8,
        bytes: &[u8],
        ours: &[XrouteView],
        neighbours: &[NeighbourId],
        routes: Option<&dyn ClaimRoutes>,
    ) -> VerificationOutputs {
        let mut out = VerificationOutputs::default();
        let Some(tlvs) = tlvs(bytes) else {
            self.malformed += 1;
            return out;
        };
        let from = NeighbourId {
            ifindex: scope,
            address: IpAddr::V6(src),
        };
        // §2.5, §4.2.5: from one of our neighbours, from its link-local address on the
        // interface we hear it on, with hop limit 255 (nobody past the link can forge that).
        let over_link = src.is_unicast_link_local()
            && hop_limit == CHECK_FAILED_HOP_LIMIT
            && neighbours.contains(&from);
        for tlv in tlvs {
            match tlv.first() {
                Some(&TLV_JUSTIFY_REQUEST | &TLV_CLAIM_REQUEST | &TLV_SIGNED_CLAIM) => {
                    if let Err(why) =
                        self.on_justify_tlv(now, from, over_link, tlv, ours, routes, &mut out)
                    {
                        self.justify_refused += 1;
                        tracing::debug!(
                            "verification TLV {:?} from {src}%{scope} (hop limit {hop_limit}) refused: {why}",
                            tlv.first()
                        );
                    }
                }
                Some(&TLV_REMOTE_IHU) => {
                    if let Err(e) = self.verifier.handle_remote_ihu(now, tlv) {
                        tracing::debug!("Remote IHU from {src} dropped: {e:?}");
                    }
                }
                Some(&TLV_CHECK_FAILED) => {
                    let from = NeighbourId {
                        ifindex: scope,
                        address: IpAddr::V6(src),
                    };
                    let prefix = match verify::decode_check_failed(tlv) {
                        Ok(p) => p,
                        Err(e) => {
                            self.check_failed_refused += 1;
                            tracing::debug!("Check Failed from {src}%{scope} dropped: {e}");
                            continue;
                        }
                    };
                    if !src.is_unicast_link_local()
                        || hop_limit != CHECK_FAILED_HOP_LIMIT
                        || !neighbours.contains(&from)
                    {
                        self.check_failed_refused += 1;
                        tracing::debug!(
                            "Check Failed for {prefix} from {src}%{scope} (hop limit {hop_limit}) refused: not from a neighbour over its link"
                        );
                        continue;
                    }
                    if !self.verifier.handle_check_failed(now, from, prefix) {
                        self.check_failed_refused += 1;
                    }
                }
                Some(&TLV_REMOTE_HELLO) => {
                    let Some(h) = decode_remote_hello(tlv) else {
                        self.malformed += 1;
                        continue;
                    };
                    // A verifier's trace (§4.2.1) that reached us before its hop limit ran
                    // out: it measures nothing.
                    if hop_limit <= verify::MAX_TRACE_HOP_LIMIT {
                        continue;
                    }
                    let mine = h.origin != self.router_id
                        && ours
                            .iter()
                            .any(|x| x.prefix == h.prefix && x.src_prefix.is_none());
                    if self.responder.handle_remote_hello(now, &h, hop_limit, mine) {
                        let key = (h.origin, h.via, h.prefix);
                        if !self.peers.contains_key(&key) && self.peers.len() >= MAX_PEERS {
                            let oldest =
                                self.peers.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k);
                            if let Some(k) = oldest {
                                self.peers.remove(&k);
                            }
                        }
                        self.peers.insert(key, (src, now));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// §4.2.5, one TLV of the justification exchange from neighbour `from` (`over_link`: from
    /// its link-local address on its interface, hop limit 255; every one of them must be):
    ///
    /// - a **Justify Request** from a verifier: ask the next hop of our installed route to the
    ///   destination for its Signed Claim (a Claim Request, same nonce);
    /// - a **Claim Request** from a neighbour: answer with our Signed Claim, the metric of our
    ///   installed route (0 for a prefix we announce, infinity for none), signed for our most
    ///   specific IPv6 prefix;
    /// - a **Signed Claim**: from the next hop we asked, relay it unchanged to the verifier that
    ///   asked us; otherwise it answers our own Justify Request (the verifier judges it).
    #[allow(clippy::too_many_arguments)]
    fn on_justify_tlv(
        &mut self,
        now: Instant,
        from: NeighbourId,
        over_link: bool,
        tlv: &[u8],
        ours: &[XrouteView],
        routes: Option<&dyn ClaimRoutes>,
        out: &mut VerificationOutputs,
    ) -> Result<(), String> {
        if !over_link {
            return Err("not from a neighbour over its link".into());
        }
        let to = |n: NeighbourId, bytes: Vec<u8>| match n.address {
            IpAddr::V6(dst) => Some(Datagram {
                bytes: packet(&bytes),
                dst,
                mark: 0,
                trace: false,
                hop_limit: CHECK_FAILED_HOP_LIMIT,
                scope: n.ifindex,
            }),
            IpAddr::V4(_) => None,
        };
        let installed = |p: &Prefix| {
            routes.and_then(|r| r.route_via(p, None)).map(|r| {
                let n = NeighbourId {
                    ifindex: r.ifindex,
                    address: r.via,
                };
                (n, r.metric.0)
            })
        };
        match tlv.first() {
            Some(&TLV_JUSTIFY_REQUEST) => {
                let r =
                    verify::decode_request(TLV_JUSTIFY_REQUEST, tlv).map_err(|e| e.to_string())?;
                let next_hop = installed(&r.prefix).map(|(n, _)| n);
                // Step 2: the verifier gets our Update as it is now, whatever follows. With
                // nobody to ask (no route, or it runs through the verifier) the claim it holds
                // is one we no longer make, and the Update is a retraction under split
                // horizon; with a next hop, the claim it holds may lag a rise of our route too
                // small for a triggered update, which the Signed Claim would not cover.
                self.readvertised += 1;
                out.inputs.push(Input::Readvertise {
                    ifindex: from.ifindex,
                    prefix: r.prefix,
                    src_prefix: None,
                });
                tracing::debug!(
                    "verification: {}%{} asks us to justify {} (nonce {:016x}): Update sent, next hop {}",
                    from.address,
                    from.ifindex,
                    r.prefix,
                    r.nonce,
                    next_hop.map_or_else(
                        || "none".to_owned(),
                        |n| format!("{}%{}", n.address, n.ifindex)
                    )
                );
                if let Some((x, req)) = self.relay.forward(now, from, r, next_hop) {
                    out.datagrams.extend(to(x, req));
                }
                Ok(())
            }
            Some(&TLV_CLAIM_REQUEST) => {
                let r =
                    verify::decode_request(TLV_CLAIM_REQUEST, tlv).map_err(|e| e.to_string())?;
                let mine = |x: &&XrouteView| x.src_prefix.is_none();
                let metric = match ours.iter().filter(mine).find(|x| x.prefix == r.prefix) {
                    Some(x) => x.metric.0,
                    None => installed(&r.prefix).map_or(babel_wire::INFINITY, |(_, m)| m),
                };
                let owner = self.owner(ours).ok_or("no prefix of ours to sign for")?;
                // At most `CLAIM_SIGN_RATE` signatures a second.
                let second = now.as_micros() / 1_000_000;
                if self.sign_budget.0 != second {
                    self.sign_budget = (second, 0);
                }
                if self.sign_budget.1 >= verify::CLAIM_SIGN_RATE {
                    return Err("over the signing rate".into());
                }
                self.sign_budget.1 += 1;
                self.claims_signed += 1;
                tracing::debug!(
                    "verification: {}%{} asks our claim for {} (nonce {:016x}): signed {metric} for {owner}",
                    from.address,
                    from.ifindex,
                    r.prefix,
                    r.nonce
                );
                out.datagrams
                    .extend(to(from, self.responder.sign_claim(&r, metric, &owner)));
                Ok(())
            }
            _ => {
                if let Some(v) = self.relay.answer(now, from, tlv) {
                    tracing::debug!(
                        "verification: Signed Claim from {}%{} relayed to {}%{}",
                        from.address,
                        from.ifindex,
                        v.address,
                        v.ifindex
                    );
                    self.adopt_signed_metric(now, (from, v), tlv, routes, out);
                    out.datagrams.extend(to(v, tlv.to_vec()));
                    return Ok(());
                }
                let c = verify::decode_signed_claim(tlv).map_err(|e| e.to_string())?;
                let claim = routes
                    .and_then(|r| r.route_via(&c.prefix, Some(&from)))
                    .map(|r| r.refmetric.0);
                // Refused claims are counted by the verifier (`claims_refused`).
                let r = self.verifier.handle_signed_claim(now, from, tlv, claim);
                tracing::debug!(
                    "verification: Signed Claim for {} from {}%{} (nonce {:016x}, signed {}, claim {:?}): {r:?}",
                    c.prefix,
                    from.address,
                    from.ifindex,
                    c.nonce,
                    c.metric,
                    claim
                );
                Ok(())
            }
        }
    }

    /// §4.2.5: a Signed Claim from our next hop `x`, relayed to the verifier `v`: its signed
    /// word is what it offers us. If that is more than it advertised to us, our route through
    /// it costs the signed metric plus our link until the first correction's end (`first`,
    /// §5), and our own claim rises with it: a next hop that tells us a lie and signs its true
    /// metric does not leave us unable to justify ours. The risen claim is sent to `v` at once
    /// (step 4): a small rise waits for no triggered update, and `v` judges the claim it hears
    /// against the signed word.
    fn adopt_signed_metric(
        &mut self,
        now: Instant,
        (x, v): (NeighbourId, NeighbourId),
        tlv: &[u8],
        routes: Option<&dyn ClaimRoutes>,
        out: &mut VerificationOutputs,
    ) {
        let Ok(c) = verify::decode_signed_claim(tlv) else {
            return;
        };
        let Some(r) = routes.and_then(|r| r.route_via(&c.prefix, Some(&x))) else {
            return;
        };
        let (refmetric, metric) = (r.refmetric.0, r.metric.0);
        if c.metric <= refmetric {
            return;
        }
        let link = metric.saturating_sub(refmetric);
        out.inputs.push(Input::SetVerifiedMetric {
            prefix: c.prefix,
            src_prefix: None,
            ifindex: x.ifindex,
            via: x.address,
            metric: c.metric.saturating_add(link),
            until: now + self.cfg.correction.first,
        });
        self.readvertised += 1;
        out.inputs.push(Input::Readvertise {
            ifindex: v.ifindex,
            prefix: c.prefix,
            src_prefix: None,
        });
    }

    /// §4.2.5: the prefix our Signed Claims name as their key's owner: `verify-owner`, else
    /// our key-derived address under the first `verify-derived-range` (§3.2), else the most
    /// specific IPv6 prefix we announce (the lowest of those as long).
    pub fn owner(&self, ours: &[XrouteView]) -> Option<Prefix> {
        if let Some(p) = self.settings.owner {
            return Some(p);
        }
        if let Some(a) = self
            .settings
            .derived
            .first()
            .and_then(|r| verify::derived_address(r, &self.responder.public_key()))
        {
            return Some(Prefix::host(a));
        }
        ours.iter()
            .filter(|x| x.src_prefix.is_none() && x.prefix.addr().is_ipv6())
            .max_by(|x, y| {
                (x.prefix.len(), std::cmp::Reverse(x.prefix.addr()))
                    .cmp(&(y.prefix.len(), std::cmp::Reverse(y.prefix.addr())))
            })
            .map(|x| x.prefix)
    }

    /// Per-neighbour standing.
    pub fn neighbour_rows(&self, now: Instant, engine: &EngineSide) -> Vec<NeighbourRow> {
        self.verifier
            .neighbours()
            .map(|(n, s)| {
                let evicted = s.is_evicted(now);
                NeighbourRow {
                    ifindex: n.ifindex,
                    neighbour: n.address,
                    accuracy: self
                        .verifier
                        .engine_accuracy(now, n, engine.threshold_pm)
                        .min((s.score(self.cfg.score.rule) * 1000.0).round() as u16),
                    evicted,
                    evicted_for_s: s
                        .evicted_until()
                        .map_or(0, |u| u.saturating_since(now).as_secs()),
                    evictions: s.evictions(),
                    last_eviction: s.last_eviction().map(|e| e.cause.as_str()),
                    last_eviction_prefix: s.last_eviction().map(|e| e.prefix),
                    destinations: s.destinations(),
                    last_resort: if evicted {
                        engine.installed_through(n.ifindex, n.address)
                    } else {
                        0
                    },
                }
            })
            .collect()
    }

    /// `dump json`'s `verify` object.
    pub fn report(
        &self,
        now: Instant,
        engine: &EngineSide,
        ifname: impl Fn(u32) -> String,
    ) -> VerificationReport {
        VerificationReport {
            public_key: self.public_key_hex(),
            counters: self.counters(),
            malformed: self.malformed,
            answers_sent: self.answers_sent,
            refused: self.refused(),
            check_failed_refused: self.check_failed_refused,
            justify_refused: self.justify_refused,
            readvertised: self.readvertised,
            claims_signed: self.claims_signed,
            trace_socket_failed: self.trace_socket_failed,
            neighbours: self
                .neighbour_rows(now, engine)
                .into_iter()
                .map(|n| Named {
                    interface: ifname(n.ifindex),
                    age_s: None,
                    row: n,
                })
                .collect(),
            routes: self
                .route_rows()
                .into_iter()
                .map(|r| Named {
                    interface: ifname(r.ifindex),
                    age_s: Some(now.saturating_since(r.at).as_secs()),
                    row: r,
                })
                .collect(),
            tables: self.table_sizes(),
        }
    }

    /// The last check per route.
    pub fn route_rows(&self) -> Vec<RouteRow> {
        self.rows.values().copied().collect()
    }

    /// `dump` lines: `add verify-neighbour ADDR if IF accuracy PM evicted B evicted-for S
    /// evictions N last-eviction CAUSE last-eviction-prefix PREFIX destinations N last-resort N`, `add verify-route PREFIX via ADDR if IF metric M cost C accuracy PM corrected M age S
    /// blame B next-hop ADDR`, and the
    /// counters.
    pub fn dump_lines(
        &self,
        now: Instant,
        engine: &EngineSide,
        ifname: impl Fn(u32) -> String,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let c = self.counters();
        out.push(format!(
            "verify public-key {} sessions {} probes-sent {} answers {} unanswered {} bad-signature {} unbound-key {} replayed {} unexpected {} malformed {} checks {} corrections {} evictions {} answers-sent {} refused {} looped {} traces-sent {} traces-answered {} traces-dropped {} trace-socket-failed {} bounds-sent {} bounds-exceeded {} bounded {}",
            self.public_key_hex(),
            c.sessions,
            c.probes_sent,
            c.answers,
            c.unanswered,
            c.bad_signature,
            c.unbound_key,
            c.replayed,
            c.unexpected,
            c.malformed + self.malformed,
            c.checks,
            c.corrections,
            c.evictions,
            self.answers_sent,
            self.refused(),
            c.looped,
            c.traces_sent,
            c.traces_answered,
            c.traces_dropped,
            self.trace_socket_failed,
            c.bounds_sent,
            c.bounds_exceeded,
            c.bounded,
        ));
        for n in self.neighbour_rows(now, engine) {
            out.push(format!(
                "add verify-neighbour {} if {} accuracy {} evicted {} evicted-for {} evictions {} last-eviction {} last-eviction-prefix {} destinations {} last-resort {}",
                n.neighbour,
                ifname(n.ifindex),
                n.accuracy,
                if n.evicted { "true" } else { "false" },
                n.evicted_for_s,
                n.evictions,
                n.last_eviction.unwrap_or("-"),
                n.last_eviction_prefix
                    .map_or_else(|| "-".to_owned(), |p| p.to_string()),
                n.destinations,
                n.last_resort
            ));
        }
        for r in self.route_rows() {
            out.push(format!(
                "add verify-route {} via {} if {} metric {} cost {} accuracy {} corrected {} age {} blame {} next-hop {}",
                r.prefix,
                r.neighbour,
                ifname(r.ifindex),
                r.metric,
                opt(r.cost),
                opt(r.accuracy),
                opt(r.corrected),
                now.saturating_since(r.at).as_secs(),
                r.blame.as_str(),
                match (r.next_hop, r.returned) {
                    (Some(a), _) => a.to_string(),
                    (None, true) => "self".to_owned(),
                    (None, false) => "-".to_owned(),
                },
            ));
        }
        out
    }
}

fn as_text<S: serde::Serializer>(p: &Prefix, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

fn opt_as_text<S: serde::Serializer>(p: &Option<Prefix>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.collect_str(p),
        None => s.serialize_none(),
    }
}

/// An eviction in words, for the log (`spec/verify.md` §4.3, §9.4): what went wrong, and for
/// an unanswered claim what an operator of a mesh with stock Babel routers should know.
fn eviction_reason(why: verify::Eviction) -> String {
    let wait = verify::JUSTIFY_WAIT.as_secs();
    match why.cause {
        verify::EvictionCause::Checks => format!(
            "checks of its route to {} failed: the path measures more than it claims",
            why.prefix
        ),
        verify::EvictionCause::Unjustified => format!(
            "its claim for {} failed a check and was not justified within {wait} s (a router \
             that does not run verification, a stock Babel router, cannot justify one: see \
             verify-unjustified-origin and verify-unjustified-unknown in a mesh with such routers)",
            why.prefix
        ),
        verify::EvictionCause::Audit => format!(
            "its claim for {} passed a check but, audited, was not justified within {wait} s \
             (a router that does not run verification, a stock Babel router, cannot justify \
             one: set verify-audit-claims false, or signers, in a mesh with such routers)",
            why.prefix
        ),
        verify::EvictionCause::AskedRises => format!(
            "its claim for {} rose to what it should be only when asked to justify it, the \
             second such claim within verify-asked-rise-window",
            why.prefix
        ),
        verify::EvictionCause::FellBack => format!(
            "its claim for {} rose to its next hop's signed word when asked, fell back under it \
             within verify-asked-rise-window, and rose again when asked again",
            why.prefix
        ),
    }
}

fn opt(v: Option<u16>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The neighbour whose own address `addr` is (§4.2.1): the one that announces the most
/// specific prefix containing it as its own (advertised metric 0, RFC 8966 §3.7: a router
/// originates its prefixes at metric 0). `None` if no neighbour does, or neighbours with
/// different router-ids do (the router is not identified).
pub fn neighbour_owning(addr: Ipv6Addr, routes: &[RouteView]) -> Option<NeighbourId> {
    let host = Prefix::host(IpAddr::V6(addr));
    let owners: Vec<&RouteView> = routes
        .iter()
        .filter(|r| {
            r.src_prefix.is_none()
                && r.refmetric.0 == 0
                && r.metric.0 < babel_wire::INFINITY
                && r.prefix.contains(&host)
        })
        .collect();
    let len = owners.iter().map(|r| r.prefix.len()).max()?;
    let mut best = owners.into_iter().filter(|r| r.prefix.len() == len);
    let first = best.next()?;
    if best.any(|r| r.router_id != first.router_id) {
        return None;
    }
    Some(NeighbourId {
        ifindex: first.ifindex,
        address: first.via,
    })
}

/// The routes the verifier may test: IPv6 routes of any length (§3.2.1), all of them,
/// feasible or not.
pub fn candidates(routes: &[RouteView]) -> Vec<VerifiableRoute> {
    routes
        .iter()
        .filter(|r| {
            r.src_prefix.is_none()
                && verify::probe_address(&r.prefix).is_some()
                && r.metric.0 < babel_wire::INFINITY
        })
        .map(VerifiableRoute::from_route)
        .collect()
}

/// A Babel packet (RFC 8966 §4.2) holding one TLV.
pub fn packet(tlv: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + tlv.len());
    p.push(MAGIC);
    p.push(VERSION);
    p.extend_from_slice(&(u16::try_from(tlv.len()).unwrap_or(u16::MAX)).to_be_bytes());
    p.extend_from_slice(tlv);
    p
}

/// The TLVs of a Babel packet's body (type octet first), or `None` if it is not one.
pub fn tlvs(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let (&[magic, version, hi, lo], body) = bytes.split_first_chunk::<4>()?;
    if magic != MAGIC || version != VERSION {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let mut body = body.get(..len)?;
    let mut out = Vec::new();
    while let Some(&t) = body.first() {
        if t == 0 {
            // Pad1.
            body = body.get(1..)?;
            continue;
        }
        let l = usize::from(*body.get(1)?);
        let (tlv, rest) = body.split_at_checked(2 + l)?;
        if out.len() >= 64 {
            return None;
        }
        out.push(tlv);
        body = rest;
    }
    Some(out)
}

fn decode_remote_hello(tlv: &[u8]) -> Option<RemoteHello> {
    let d = babel_wire::decode(
        &packet(tlv),
        &DecodeOptions {
            flavour: babel_wire::Flavour::Standard,
        },
    )
    .ok()?;
    d.packet.messages.into_iter().find_map(|m| match m {
        Message::RemoteHello(h) => Some(h),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use babel_wire::Metric;

    fn words(s: &str) -> Result<VerifyStatement, ParseError> {
        let mut w = s.split_whitespace();
        let k = w.next().unwrap();
        VerifyStatement::parse(k, w)
    }

    #[test]
    fn statements_parse_and_refuse() {
        let k = "11".repeat(32);
        assert_eq!(
            words(&format!("verify-key fd77::3/128 {k}")).unwrap(),
            VerifyStatement::Key("fd77::3/128".parse().unwrap(), [0x11; 32])
        );
        assert!(words("verify-key fd77::3/128").is_err());
        assert!(words("verify-key 10.0.0.1/32 00").is_err());
        assert!(words("verify-probes 0").is_err());
        assert!(words("verify-threshold 1001").is_err());
        assert!(words("verify-correction 1800 0").is_err());
        assert!(words("verify-private-key abc").is_err());
        let mut s = VerifySettings::default();
        for l in [
            "verify-enable yes",
            "verify-cycle 5",
            "verify-probes 10",
            "verify-probe-interval 100",
            "verify-threshold 700",
            "verify-window 8",
            "verify-hold 60",
            "verify-correction 900 2",
            "verify-paper-rule true",
            "verify-stable-evidence settled",
        ] {
            s.apply(words(l).unwrap());
        }
        assert!(s.enable);
        let c = s.config();
        assert_eq!(c.schedule.cycle, Duration::from_secs(5));
        assert_eq!(c.schedule.probes, 10);
        assert_eq!(c.schedule.probe_interval, Duration::from_millis(100));
        assert!((c.score.threshold - 0.7).abs() < 1e-9);
        assert_eq!(c.score.window, Duration::from_secs(8));
        assert_eq!(c.score.hold, Duration::from_secs(60));
        assert!((c.correction.c1 - 900.0).abs() < 1e-9);
        assert_eq!(c.score.rule, verify::Rule::Paper);
        assert_eq!(c.score.stable_evidence, verify::StableEvidence::Settled);
    }

    /// The last resort's two statements are the engine's: read apart, and the verifier's
    /// configuration is as without them.
    #[test]
    fn last_resort_is_the_engines_default_unless_the_file_sets_it() {
        let words = |l: &str| words(l).unwrap();
        let mut s = VerifySettings::default();
        assert_eq!(s.last_resort(), None);
        assert!(
            babel_core::EngineConfig::new(RouterId([2, 0, 0, 0, 0, 0, 0, 1])).accuracy_last_resort
        );
        s.apply(words("verify-last-resort false"));
        assert_eq!(s.last_resort(), Some(false));
        s.apply(words("verify-last-resort true"));
        assert_eq!(s.last_resort(), Some(true));
        assert_eq!(s.last_resort_penalty(), None);
        s.apply(words("verify-last-resort-penalty 16384"));
        assert_eq!(s.last_resort_penalty(), Some(16384));
        for bad in ["-1", "32768", "65535", "x"] {
            let line = format!("verify-last-resort-penalty {bad}");
            assert!(super::tests::words(&line).is_err(), "{line}");
        }
        // The engine's own setting, not the verifier's: the verifier's configuration is as
        // without the statement.
        assert_eq!(s.config(), VerifySettings::default().config());
    }

    /// A configuration file is input too: whatever it repeats, the settings stay bounded. An
    /// option written again replaces the earlier one (and the last one counts); a binding
    /// written again is kept once, a second key for a prefix beside the first; lists full
    /// leave statements out and count them.
    #[test]
    fn settings_stay_bounded_whatever_the_file_repeats() {
        let words = |l: &str| words(l).unwrap();
        let mut s = VerifySettings::default();
        for i in 0..5000u32 {
            s.apply(words(&format!("verify-cycle {}", 1 + i % 60)));
            s.apply(words("verify-probes 10"));
        }
        assert_eq!(s.tuning.len(), 2, "{:?}", &s.tuning[..4]);
        assert_eq!(
            s.config().schedule.cycle,
            Duration::from_secs(1 + 4999 % 60)
        );
        assert_eq!(s.config().schedule.probes, 10);
        let key = |i: u32| format!("{:064x}", u64::from(i) + 1);
        for i in 0..MAX_CONFIGURED_KEYS as u32 + 76 {
            s.apply(words(&format!("verify-key fd77::{i:x}/128 {}", key(i))));
            s.apply(words(&format!("verify-destination fd78::{i:x}/128")));
            s.apply(words(&format!("verify-derived-range fd79:{i:x}::/32")));
        }
        assert_eq!(s.keys.len(), MAX_CONFIGURED_KEYS);
        assert_eq!(s.destinations.len(), MAX_DESTINATIONS);
        assert_eq!(s.derived.len(), MAX_DERIVED_RANGES);
        let over = |max: usize| (MAX_CONFIGURED_KEYS + 76 - max) as u32;
        assert_eq!(
            s.ignored,
            over(MAX_CONFIGURED_KEYS) + over(MAX_DESTINATIONS) + over(MAX_DERIVED_RANGES)
        );
        // Written again: kept once, nothing more left out.
        let ignored = s.ignored;
        s.apply(words("verify-destination fd78::1/128"));
        s.apply(words(&format!("verify-key fd77::1/128 {}", key(1))));
        assert_eq!(s.ignored, ignored);
        // A second key for a prefix is a binding of its own: both may answer.
        let mut two = VerifySettings::default();
        for k in [key(1), key(2), key(1)] {
            two.apply(words(&format!("verify-key fd77::1/128 {k}")));
        }
        assert_eq!(two.keys.len(), 2);
        let ring = two.keyring();
        let p: Prefix = "fd77::1/128".parse().unwrap();
        for k in [key(1), key(2)] {
            let k: [u8; 32] = hex::decode(k).unwrap().try_into().unwrap();
            assert!(ring.may_answer(&p, &k));
        }
    }

    /// `verify-stable-evidence` (§4.2.2): each mode and the booleans, the last statement wins,
    /// and anything else is a typed error naming the statement.
    #[test]
    fn stable_evidence_statement() {
        use verify::StableEvidence as M;
        for (w, m) in [
            ("off", M::Off),
            ("false", M::Off),
            ("settled", M::Settled),
            ("forgive", M::Forgive),
            ("both", M::Both),
            ("true", M::Both),
            ("forgive-current", M::ForgiveCurrent),
            ("forgive-retraction", M::ForgiveRetraction),
        ] {
            let mut s = VerifySettings::default();
            s.apply(words(&format!("verify-stable-evidence {w}")).unwrap());
            assert_eq!(s.config().score.stable_evidence, m, "{w}");
        }
        let mut s = VerifySettings::default();
        s.apply(words("verify-stable-evidence forgive").unwrap());
        s.apply(words("verify-stable-evidence settled").unwrap());
        assert_eq!(s.config().score.stable_evidence, M::Settled);
        // The default since 2026-11-30 (`docs/verify.md`, the deeper trace and the defaults).
        assert_eq!(
            VerifySettings::default().config().score.stable_evidence,
            M::ForgiveRetraction
        );
        match words("verify-stable-evidence sometimes") {
            Err(ParseError::BadValue { what, value, .. }) => {
                assert_eq!(what, "verify-stable-evidence");
                assert_eq!(value, "sometimes");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            words("verify-stable-evidence"),
            Err(ParseError::Missing(_))
        ));
    }

    #[test]
    fn attribution_returned_statement() {
        // On by default since 2026-11-30.
        let mut s = VerifySettings::default();
        assert!(s.config().score.attribution && s.config().score.returned_blame);
        s.apply(words("verify-attribution-returned false").unwrap());
        assert!(!s.config().score.returned_blame);
        s.apply(words("verify-attribution-returned true").unwrap());
        assert!(s.config().score.returned_blame);
        assert!(matches!(
            words("verify-attribution-returned sometimes"),
            Err(ParseError::BadValue { .. })
        ));
        assert!(s.config().score.origin_at_both_ends);
        s.apply(words("verify-attribution-both-ends false").unwrap());
        assert!(!s.config().score.origin_at_both_ends);
    }

    /// §1.4: `verify-hop-bound` sets the hop-limit bound; anything but a flag is refused.
    #[test]
    fn hop_bound_statement() {
        let mut s = VerifySettings::default();
        assert_eq!(
            s.config().score.hop_bound,
            verify::ScoreConfig::default().hop_bound
        );
        for b in [true, false] {
            s.apply(words(&format!("verify-hop-bound {b}")).unwrap());
            assert_eq!(s.config().score.hop_bound, b);
        }
        assert!(matches!(
            words("verify-hop-bound 2"),
            Err(ParseError::BadValue { .. })
        ));
    }

    /// §1.3: `verify-fallen-claim` sets how a claim that fell during a session is scored;
    /// anything but a mode is refused.
    #[test]
    fn fallen_claim_statement() {
        let mut s = VerifySettings::default();
        assert_eq!(
            s.config().score.fallen_claim,
            verify::ScoreConfig::default().fallen_claim
        );
        for m in [
            verify::FallenClaim::Start,
            verify::FallenClaim::NoEvidence,
            verify::FallenClaim::End,
        ] {
            s.apply(words(&format!("verify-fallen-claim {m}")).unwrap());
            assert_eq!(s.config().score.fallen_claim, m);
        }
        assert!(matches!(
            words("verify-fallen-claim true"),
            Err(ParseError::BadValue { .. })
        ));
    }

    /// §4.2.1: `verify-attribution-passing-origin` and `verify-attribution-through-us` set
    /// the origin test on passing checks and the next hop through us.
    #[test]
    fn passing_origin_and_through_us_statements() {
        let mut s = VerifySettings::default();
        let d = verify::ScoreConfig::default();
        assert_eq!(s.config().score.passing_origin, d.passing_origin);
        assert_eq!(s.config().score.through_us, d.through_us);
        for b in [true, false] {
            s.apply(words(&format!("verify-attribution-passing-origin {b}")).unwrap());
            s.apply(words(&format!("verify-attribution-through-us {}", !b)).unwrap());
            assert_eq!(s.config().score.passing_origin, b);
            assert_eq!(s.config().score.through_us, !b);
        }
        for k in [
            "verify-attribution-passing-origin",
            "verify-attribution-through-us",
        ] {
            assert!(matches!(
                words(&format!("{k} maybe")),
                Err(ParseError::BadValue { .. })
            ));
        }
    }

    /// The on/off statements of the score, each against its field: §4.2.3 `verify-progress`
    /// (a claim that converges restarts its run) and `verify-progress-accuracy` (it converges
    /// on its accuracy alone), §4.2.4 `verify-unknown-breadth` (failures blamed on nobody
    /// need breadth), §5.2 `verify-correction-advertised` (the neighbour-wide correction
    /// scales the advertised metric). Each starts at the crate's default, turns the field the
    /// other way and back, and refuses a word that is not a boolean.
    #[test]
    fn on_off_statements() {
        type Field = fn(&verify::VerifyConfig) -> bool;
        let statements: [(&str, Field); 28] = [
            ("verify-attribution-verified-next-hop", |c| {
                c.score.verified_next_hop
            }),
            ("verify-justification", |c| c.score.justification),
            ("verify-unjustified-origin", |c| {
                c.score.unjustified_origin_evicts
            }),
            ("verify-unjustified-unknown", |c| {
                c.score.unjustified_unknown_evicts
            }),
            ("verify-unjustified-through-us", |c| {
                c.score.unjustified_through_us_evicts
            }),
            ("verify-loop-through-us", |c| c.score.loop_through_us),
            ("verify-justify-on-rise", |c| c.score.justify_on_rise),
            ("verify-reask-moved-claim", |c| c.score.reask_moved_claim),
            ("verify-awaits-justification", |c| {
                c.score.confirmed_awaits_justification
            }),
            ("verify-reask-infinite-claim", |c| {
                c.score.reask_infinite_claim
            }),
            ("verify-reask-refused-claim", |c| {
                c.score.reask_refused_claim
            }),
            ("verify-correction-meets-next-hop", |c| {
                c.score.correction_meets_next_hop
            }),
            ("verify-correction-near-measured", |c| {
                c.score.correction_near_measured
            }),
            ("verify-withdrawn-origin-evicts", |c| {
                c.score.withdrawn_origin_evicts
            }),
            ("verify-asked-rises-apart", |c| c.score.asked_rises_apart),
            ("verify-asked-rise-lowest-floor", |c| {
                c.score.asked_rise_lowest_floor
            }),
            ("verify-audit-claims", |c| c.score.audit_claims),
            ("verify-progress", |c| c.score.progress),
            ("verify-progress-accuracy", |c| c.score.progress_on_accuracy),
            ("verify-unknown-breadth", |c| c.score.unknown_breadth),
            ("verify-correction-advertised", |c| {
                c.correction.scale_advertised
            }),
            ("verify-correction-follow", |c| c.correction.follow_claims),
            ("verify-relayed-probes-used", |c| {
                c.schedule.relayed_probes_used
            }),
            ("verify-check-requests", |c| c.schedule.check_requests),
            ("verify-prefer-suspicious", |c| c.schedule.prefer_suspicious),
            ("verify-late-start", |c| c.schedule.late_start),
            ("verify-asked-rises", |c| c.score.asked_rises_evict),
            ("verify-fall-back", |c| c.score.fall_back_evicts),
        ];
        for (name, field) in statements {
            let mut s = VerifySettings::default();
            let d = field(&verify::VerifyConfig::default());
            assert_eq!(field(&s.config()), d, "{name}");
            for b in [!d, d, !d] {
                s.apply(words(&format!("{name} {b}")).unwrap());
                assert_eq!(field(&s.config()), b, "{name} {b}");
            }
            assert!(
                matches!(
                    words(&format!("{name} often")),
                    Err(ParseError::BadValue { .. })
                ),
                "{name}"
            );
        }
    }

    /// §4.3, §9.7: the log's words for each eviction name the route, and for a claim left
    /// unjustified the options a mesh with stock Babel routers sets.
    #[test]
    fn eviction_reasons_name_the_route_and_the_options() {
        let prefix: Prefix = "fd77::4/128".parse().unwrap();
        let why = |cause| eviction_reason(verify::Eviction { prefix, cause });
        let checks = why(verify::EvictionCause::Checks);
        assert!(
            checks.contains("fd77::4/128") && checks.contains("failed"),
            "{checks}"
        );
        assert!(!checks.contains("verify-"), "{checks}");
        let unjustified = why(verify::EvictionCause::Unjustified);
        assert!(unjustified.contains("fd77::4/128"), "{unjustified}");
        assert!(
            unjustified.contains("verify-unjustified-origin")
                && unjustified.contains("verify-unjustified-unknown"),
            "{unjustified}"
        );
        let audit = why(verify::EvictionCause::Audit);
        assert!(audit.contains("fd77::4/128"), "{audit}");
        assert!(
            audit.contains("verify-audit-claims false, or signers"),
            "{audit}"
        );
        // Each statement it names is one the daemon reads.
        for name in [
            "verify-unjustified-origin",
            "verify-unjustified-unknown",
            "verify-audit-claims",
        ] {
            assert!(words(&format!("{name} false")).is_ok(), "{name}");
        }
    }

    /// §4.2.6: `verify-audit-claims signers` audits only neighbours that have shown they run
    /// verification; `true` audits every one again, `false` none.
    #[test]
    fn audit_claims_of_signers_only() {
        let mut s = VerifySettings::default();
        let both = |s: &VerifySettings| {
            let c = s.config().score;
            (c.audit_claims, c.audit_signers_only)
        };
        assert_eq!(both(&s), (true, false));
        for (v, want) in [
            ("signers", (true, true)),
            ("true", (true, false)),
            ("signers", (true, true)),
            ("false", (false, false)),
        ] {
            s.apply(words(&format!("verify-audit-claims {v}")).unwrap());
            assert_eq!(both(&s), want, "{v}");
        }
        assert!(matches!(
            words("verify-audit-claims some"),
            Err(ParseError::BadValue { .. })
        ));
    }

    /// §2.2: `verify-unanswered-rechecks N` sets how many rechecks unanswered sessions in a
    /// row get; it starts at the crate's default and refuses what is not 0 to 255.
    #[test]
    fn unanswered_rechecks_statement() {
        let mut s = VerifySettings::default();
        assert_eq!(
            s.config().schedule.unanswered_rechecks,
            verify::VerifyConfig::default().schedule.unanswered_rechecks
        );
        for n in [0u8, 3, 255] {
            s.apply(words(&format!("verify-unanswered-rechecks {n}")).unwrap());
            assert_eq!(s.config().schedule.unanswered_rechecks, n);
        }
        for bad in ["256", "-1", "often"] {
            assert!(matches!(
                words(&format!("verify-unanswered-rechecks {bad}")),
                Err(ParseError::BadValue { .. })
            ));
        }
    }

    /// §2.2: `verify-sessions-per-neighbour N` sets the sessions through each neighbour per
    /// cycle; it starts at the crate's default (one) and refuses what is not 1 to 8.
    #[test]
    fn sessions_per_neighbour_statement() {
        let mut s = VerifySettings::default();
        assert_eq!(
            s.config().schedule.sessions_per_neighbour,
            verify::VerifyConfig::default()
                .schedule
                .sessions_per_neighbour
        );
        for n in [1u8, 2, 8] {
            s.apply(words(&format!("verify-sessions-per-neighbour {n}")).unwrap());
            assert_eq!(s.config().schedule.sessions_per_neighbour, n);
        }
        for bad in ["0", "9", "-1", "two"] {
            assert!(matches!(
                words(&format!("verify-sessions-per-neighbour {bad}")),
                Err(ParseError::BadValue { .. })
            ));
        }
    }

    /// §4.2.1, the deeper trace: `verify-trace-depth N` sends N traces per session from the
    /// trace socket, with hop limits 2 to N + 1 (bounded by `MAX_TRACE_DEPTH`), and the
    /// destination ignores a trace that reaches it with any of them left.
    #[test]
    fn trace_depth_statement_and_hop_limits() {
        assert!(matches!(
            words("verify-trace-depth 9"),
            Err(ParseError::BadValue { .. })
        ));
        assert!(matches!(
            words("verify-trace-depth 0"),
            Err(ParseError::BadValue { .. })
        ));
        let d_key = SigningKey::from_bytes(&[7; 32]);
        let mut a = verifier_of_d(&["verify-attribution true", "verify-trace-depth 3"], &d_key);
        assert_eq!(a.verifier.config().score.trace_depth, 3);
        let routes = vec![route("fd77::4/128", "fe80::2", 3, 288, true)];
        let ours = vec![xroute("fd77::4/128")];
        let mut now = Instant::from_micros(0);
        let mut limits = Vec::new();
        for _ in 0..100 {
            now = a.poll_timeout().max(now);
            let out = a.on_timer(now, &routes, 800);
            for g in out.datagrams.iter() {
                if g.trace {
                    limits.push(g.hop_limit);
                    let mut d = peer(VerifySettings::default(), 0xd, d_key.clone(), 2);
                    d.on_datagram(
                        now,
                        "fd77::1".parse().unwrap(),
                        g.hop_limit - 1,
                        &g.bytes,
                        &ours,
                    );
                    let later = now + Duration::from_secs(5);
                    assert!(d.on_timer(later, &[], 800).datagrams.is_empty());
                } else {
                    assert_eq!(g.hop_limit, 0);
                }
            }
            if !limits.is_empty() {
                break;
            }
        }
        assert_eq!(limits, vec![2, 3, 4]);
    }

    #[test]
    fn every_listed_statement_parses() {
        let listed: Vec<&str> = CONFIG_HELP
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.starts_with("verify-"))
            .collect();
        assert_eq!(listed.len(), 59);
        for k in listed {
            assert!(
                !matches!(
                    VerifyStatement::parse(k, ["x"].into_iter()),
                    Err(ParseError::Unknown(_))
                ),
                "{k}"
            );
        }
        // The defaults listed are the crate's.
        let c = VerifySettings::default().config();
        assert_eq!(c, VerifyConfig::default());
        assert_eq!(c.schedule.cycle, Duration::from_secs(10));
        assert_eq!(c.schedule.probes, 20);
        assert_eq!(c.schedule.probe_interval, Duration::from_millis(250));
        assert!((c.score.threshold - 0.8).abs() < 1e-9);
        assert_eq!(c.score.window, Duration::from_secs(5));
        assert_eq!(c.score.hold, Duration::from_secs(300));
        assert_eq!(c.cost.hop_cost, 96);
        assert!((c.correction.c1 - 1800.0).abs() < 1e-9);
        assert!((c.correction.c2 - 1.5).abs() < 1e-9);
    }

    /// `spec/verify.md` §9 gives the code's port, marks, tables and rule priority, and lists
    /// every statement.
    #[test]
    fn the_spec_says_what_the_code_does() {
        let spec =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/verify.md"))
                .unwrap()
                .replace('\n', " ");
        assert!(spec.contains(&format!("`verify-port` (default {VERIFY_PORT}")));
        assert!(spec.contains(&format!("`{FWMARK_BASE:#x} + k`")));
        assert!(spec.contains(&format!("table `{TABLE_BASE} + k`")));
        assert!(spec.contains(&format!("priority {RULE_PRIORITY}")));
        assert!(spec.contains(&format!("(at most {MAX_PROBED_NEIGHBOURS} neighbours)")));
        for k in CONFIG_HELP
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.starts_with("verify-"))
        {
            assert!(spec.contains(&format!("| `{k} ")), "{k}");
        }
    }

    #[test]
    fn tlv_walker_refuses_junk_without_panicking() {
        assert!(tlvs(&[]).is_none());
        assert!(tlvs(&[42, 2, 0, 5, 1]).is_none());
        assert!(tlvs(&[43, 2, 0, 0]).is_none());
        assert_eq!(tlvs(&[42, 2, 0, 0]).unwrap().len(), 0);
        assert!(tlvs(&[42, 2, 0, 3, 225, 9, 0]).is_none());
        let p = packet(&[225, 1, 7]);
        assert_eq!(tlvs(&p).unwrap(), vec![&[225u8, 1, 7][..]]);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = tlvs(&junk);
            let _ = decode_remote_hello(&junk);
        }
    }

    // A feasible route (seqno 0, router-id `0101…`, refmetric one hop less).
    use crate::fuzzing::verification::route;

    fn xroute(prefix: &str) -> XrouteView {
        XrouteView {
            prefix: prefix.parse().unwrap(),
            src_prefix: None,
            metric: Metric(0),
        }
    }

    /// A daemon's verification at time 0 (router-id `id` repeated, counter from 1).
    fn peer(settings: VerifySettings, id: u8, key: SigningKey, seed: u64) -> Verification {
        Verification::new(
            settings,
            RouterId([id; 8]),
            key,
            1,
            seed,
            Instant::from_micros(0),
        )
    }

    /// A (router-id 0xa, seed 1) verifying D's `fd77::4/128` with D's key, after the statements
    /// `extra`.
    fn verifier_of_d(extra: &[&str], d_key: &SigningKey) -> Verification {
        let mut settings = VerifySettings::default();
        for w in ["verify-enable true", "verify-destination fd77::4/128"]
            .iter()
            .chain(extra)
        {
            settings.apply(words(w).unwrap());
        }
        settings.apply(
            words(&format!(
                "verify-key fd77::4/128 {}",
                hex::encode(d_key.verifying_key().as_bytes())
            ))
            .unwrap(),
        );
        peer(settings, 0xa, SigningKey::from_bytes(&[1; 32]), 1)
    }

    /// Two daemons' verification, A verifying B's route to D: the liar's route (advertised
    /// metric 97 over two hops, `c` = 192) is corrected, then its neighbour evicted, through
    /// encoded datagrams and with the probe route announced first.
    #[test]
    fn a_lie_is_corrected_then_evicted_through_datagrams() {
        let d_key = SigningKey::from_bytes(&[7; 32]);
        let t0 = Instant::from_micros(0);
        // The honest neighbour here relays nothing: §4.2.6's audit of its passing claim would
        // evict it.
        let mut a = verifier_of_d(&["verify-audit-claims false"], &d_key);
        let mut d = peer(VerifySettings::default(), 0xd, d_key, 2);
        let liar = route("fd77::4/128", "fe80::2", 3, 97, true);
        let honest = route("fd77::4/128", "fe80::3", 4, 192, false);
        let routes = vec![liar.clone(), honest];
        let ours = vec![xroute("fd77::4/128")];
        let mut now = t0;
        let mut evicted = false;
        let mut corrected = false;
        let mut probe_routes = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..20_000 {
            now = a.poll_timeout().min(d.poll_timeout()).max(now);
            let out = a.on_timer(now, &routes, 800);
            probe_routes.extend(out.routes);
            lines.extend(out.lines);
            // §4.2.5: the Justify Requests to the liar go over its link, unanswered here.
            for g in out
                .datagrams
                .iter()
                .filter(|g| g.hop_limit != CHECK_FAILED_HOP_LIMIT)
            {
                // Two hops whichever the neighbour: hop limit 64 - 1 at the destination.
                assert_ne!(g.mark, 0, "a Remote Hello without its route's mark");
                let o = d.on_datagram(now, "fd77::1".parse().unwrap(), 63, &g.bytes, &ours);
                assert!(o.datagrams.is_empty());
            }
            for i in &out.inputs {
                match i {
                    Input::SetVerifiedMetric { via, metric, .. } => {
                        assert_eq!(*via, liar.via);
                        assert_eq!(*metric, 192);
                        corrected = true;
                    }
                    Input::SetNeighbourAccuracy {
                        address, accuracy, ..
                    } if *accuracy < 800 => {
                        assert_eq!(*address, liar.via);
                        evicted = true;
                    }
                    _ => {}
                }
            }
            let answers = d.on_timer(now, &[], 800);
            for g in &answers.datagrams {
                assert_eq!(g.dst, "fd77::1".parse::<Ipv6Addr>().unwrap());
                assert_eq!(g.mark, 0);
                a.on_datagram(now, "fd77::4".parse().unwrap(), 62, &g.bytes, &[]);
            }
            if evicted {
                break;
            }
            now = now + Duration::from_millis(1);
        }
        assert!(corrected, "no correction");
        // Monitor lines: the checks, and the eviction.
        assert!(
            lines.iter().any(|l| l.starts_with("verify route fd77::4/128 via fe80::2 if 3 metric 97 cost 192 accuracy 505 corrected 192")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("verify neighbour fe80::2 if 3")
                    && l.ends_with(" evicted unjustified fd77::4/128")),
            "{lines:?}"
        );
        assert!(evicted, "liar not evicted: {:?}", a.counters());
        assert!(now < t0 + Duration::from_secs(120), "took {now:?}");
        // Each neighbour's probes got a table of their own holding the route under test.
        assert!(probe_routes.iter().any(|r| r.neighbour.address == liar.via));
        let tables: std::collections::BTreeSet<u32> =
            probe_routes.iter().map(|r| r.table).collect();
        assert_eq!(tables.len(), 2);
        // The liar's route still installed (nobody else offers it, §4.3): it is counted as
        // served by the last resort; once the honest route is installed instead, it is not.
        // Each neighbour's `dump` line, for the routes installed.
        let standing = |installed: &[RouteView], head: &str| {
            a.dump_lines(now, &EngineSide::new(800, installed), |i| format!("if{i}"))
                .into_iter()
                .find(|l| l.starts_with(head))
                .unwrap_or_default()
        };
        let (liar_line, honest_line) = (
            "add verify-neighbour fe80::2 if if3",
            "add verify-neighbour fe80::3 if if4",
        );
        let l = standing(&routes, liar_line);
        assert!(
            l.contains("evicted true")
                && l.contains(" last-eviction unjustified last-eviction-prefix fd77::4/128 ")
                && l.ends_with(" last-resort 1"),
            "{l}"
        );
        let l = standing(&routes, honest_line);
        assert!(
            l.contains(" last-eviction - last-eviction-prefix - ") && l.ends_with(" last-resort 0"),
            "{l}"
        );
        let moved = [
            route("fd77::4/128", "fe80::2", 3, 97, false),
            route("fd77::4/128", "fe80::3", 4, 192, true),
        ];
        let l = standing(&moved, liar_line);
        assert!(
            l.contains("evicted true") && l.ends_with(" last-resort 0"),
            "{l}"
        );
        let lines = a.dump_lines(now, &EngineSide::new(800, &moved), |i| format!("if{i}"));
        assert!(
            lines.iter().any(
                |l| l.starts_with("add verify-route fd77::4/128 via fe80::3")
                    && l.contains("accuracy 1000")
            ),
            "{lines:?}"
        );
        assert!(a.counters().answers > 0);
        assert_eq!(a.counters().bad_signature, 0);
    }

    /// A router of the justification tests (§4.2.5): its verification, and the tables it judges
    /// datagrams against.
    struct Hop {
        v: Verification,
        ours: Vec<XrouteView>,
        hears: Vec<NeighbourId>,
        routes: Vec<RouteView>,
    }

    impl Hop {
        /// Router-id `id` signing with `key`, announcing `ours`, hearing the neighbours `hears`
        /// (interface, link-local address), with `routes`.
        fn new(
            id: u8,
            key: SigningKey,
            ours: &[&str],
            hears: &[(u32, &str)],
            routes: Vec<RouteView>,
        ) -> Hop {
            Hop {
                v: peer(VerifySettings::default(), id, key, u64::from(id)),
                ours: ours.iter().map(|p| xroute(p)).collect(),
                hears: hears
                    .iter()
                    .map(|(ifindex, a)| NeighbourId {
                        ifindex: *ifindex,
                        address: a.parse().unwrap(),
                    })
                    .collect(),
                routes,
            }
        }

        /// A datagram over the link from `from` (link-local address, interface), hop limit 255.
        fn hear(
            &mut self,
            now: Instant,
            (src, ifindex): (&str, u32),
            bytes: &[u8],
        ) -> VerificationOutputs {
            let src = src.parse().unwrap();
            let routes: &dyn ClaimRoutes = &self.routes;
            self.v.on_datagram_from(
                now,
                (src, ifindex),
                255,
                bytes,
                &self.ours,
                &self.hears,
                Some(routes),
            )
        }
    }

    /// §4.2.5 through encoded datagrams: A verifies B's route to D (B claims 192, its next hop
    /// X offers it 96; the path measures 480 over five links). Each failing check sends B a
    /// Justify Request; B asks X (Claim Request), X signs (Signed Claim), B relays it to A:
    /// every one of them over a link, hop limit 255. With X's key bound to its prefix, A keeps
    /// B; without, the claim is refused and B is evicted as a liar. A Justify Request that
    /// did not come over the link is refused.
    #[test]
    fn a_relay_justifies_through_encoded_datagrams() {
        let d_key = SigningKey::from_bytes(&[7; 32]);
        let x_key = SigningKey::from_bytes(&[5; 32]);
        let ll = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let nb = |ifindex: u32, a: &str| NeighbourId {
            ifindex,
            address: IpAddr::V6(ll(a)),
        };
        for bound in [true, false] {
            let bind = format!(
                "verify-key fd77::5/128 {}",
                hex::encode(x_key.verifying_key().as_bytes())
            );
            // Only the failing check's Justify Request is followed here (§4.2.6's audits of
            // the other neighbour's passing claims are not answered).
            let extra: Vec<&str> = if bound {
                vec![bind.as_str(), "verify-audit-claims false"]
            } else {
                vec!["verify-audit-claims false"]
            };
            let mut a = verifier_of_d(&extra, &d_key);
            let mut d = peer(VerifySettings::default(), 0xd, d_key.clone(), 2);
            let mut b = Hop::new(
                0xb,
                SigningKey::from_bytes(&[2; 32]),
                &[],
                &[(8, "fe80::a"), (7, "fe80::5")],
                vec![route("fd77::4/128", "fe80::5", 7, 192, true)],
            );
            let mut x = Hop::new(
                0x5,
                x_key.clone(),
                &["fd77::5/128"],
                &[(1, "fe80::b")],
                vec![route("fd77::4/128", "fe80::9", 2, 96, true)],
            );
            let relay = route("fd77::4/128", "fe80::2", 3, 288, true);
            let honest = route("fd77::4/128", "fe80::3", 4, 480, false);
            let routes_a = vec![relay.clone(), honest];
            let ours_d = vec![xroute("fd77::4/128")];
            let mut now = Instant::from_micros(0);
            let mut evicted = false;
            let mut exchanged = 0;
            while now < Instant::from_secs(150) && !evicted {
                now = a.poll_timeout().min(d.poll_timeout()).max(now);
                let out = a.on_timer(now, &routes_a, 800);
                for g in &out.datagrams {
                    if g.hop_limit != CHECK_FAILED_HOP_LIMIT {
                        // Five links to the destination.
                        d.on_datagram(now, ll("fd77::1"), 60, &g.bytes, &ours_d);
                        continue;
                    }
                    // A → B → X → B → A, each over its link.
                    assert_eq!((g.dst, g.scope), (ll("fe80::2"), 3));
                    let to_x = b.hear(now, ("fe80::a", 8), &g.bytes);
                    for q in &to_x.datagrams {
                        assert_eq!((q.dst, q.scope, q.hop_limit), (ll("fe80::5"), 7, 255));
                        let signed = x.hear(now, ("fe80::b", 1), &q.bytes);
                        for c in &signed.datagrams {
                            assert_eq!((c.dst, c.scope, c.hop_limit), (ll("fe80::b"), 1, 255));
                            let back = b.hear(now, ("fe80::5", 7), &c.bytes);
                            for r in &back.datagrams {
                                assert_eq!((r.dst, r.scope, r.hop_limit), (ll("fe80::a"), 8, 255));
                                assert_eq!(r.bytes, c.bytes, "relayed unchanged");
                                exchanged += 1;
                                a.on_datagram_from(
                                    now,
                                    (ll("fe80::2"), 3),
                                    255,
                                    &r.bytes,
                                    &[],
                                    &[nb(3, "fe80::2")],
                                    Some(&routes_a),
                                );
                            }
                        }
                    }
                }
                evicted |= out.inputs.iter().any(|i| {
                    matches!(i, Input::SetNeighbourAccuracy { address, accuracy, .. }
                        if *accuracy < 800 && *address == relay.via)
                });
                for g in &d.on_timer(now, &[], 800).datagrams {
                    a.on_datagram(now, ll("fd77::4"), 60, &g.bytes, &[]);
                }
                now = now + Duration::from_millis(1);
            }
            let n = a.counters();
            assert!(exchanged >= 2, "{exchanged} exchanges");
            assert!(x.v.claims_signed >= 2);
            assert_eq!(b.v.justify_refused + x.v.justify_refused, 0);
            if bound {
                assert!(!evicted, "{n:?}");
                assert!(n.justified >= 2, "{n:?}");
                assert_eq!(n.claims_refused, 0);
            } else {
                assert!(evicted, "{n:?}");
                assert_eq!(n.justified, 0);
                assert!(n.claims_refused >= 1);
            }
        }
        // A Justify Request that did not come over a neighbour's link, or from a router that is
        // not our neighbour, is refused and counted.
        let mut b = Hop::new(
            0xb,
            SigningKey::from_bytes(&[2; 32]),
            &[],
            &[(8, "fe80::a")],
            vec![route("fd77::4/128", "fe80::5", 7, 192, true)],
        );
        let r = verify::ClaimRequest {
            prefix: "fd77::4/128".parse().unwrap(),
            nonce: 1,
        };
        let req = packet(&verify::encode_request(TLV_JUSTIFY_REQUEST, &r));
        for (src, hl) in [("fe80::a", 254), ("fe80::c", 255), ("fd77::a", 255)] {
            let routes: &dyn ClaimRoutes = &b.routes;
            let o = b.v.on_datagram_from(
                Instant::from_micros(0),
                (ll(src), 8),
                hl,
                &req,
                &[],
                &b.hears,
                Some(routes),
            );
            assert!(o.datagrams.is_empty());
        }
        assert_eq!(b.v.justify_refused, 3);
    }

    /// §4.2.5, steps 2 and 3: a router asked to justify a claim has the engine send the
    /// verifier its Update for the destination as it is now, and counts it: a retraction where
    /// it has no route, and then it asks nobody; its claim of the moment where its route runs
    /// through a neighbour, which it asks with a Claim Request: another neighbour, or the
    /// verifier itself where its route runs through the verifier (a retraction there under
    /// split horizon, else a claim only the verifier's own word can justify).
    #[test]
    fn a_relay_asked_to_justify_advertises_its_claim_again() {
        let r = verify::ClaimRequest {
            prefix: "fd77::4/128".parse().unwrap(),
            nonce: 1,
        };
        let req = packet(&verify::encode_request(TLV_JUSTIFY_REQUEST, &r));
        let readvertise = Input::Readvertise {
            ifindex: 8,
            prefix: r.prefix,
            src_prefix: None,
        };
        for (routes, asked) in [
            // Through the verifier itself (fe80::a on interface 8): asked.
            (
                vec![route("fd77::4/128", "fe80::a", 8, 192, true)],
                Some(("fe80::a", 8)),
            ),
            // No route at all.
            (vec![], None),
            // Through another neighbour: a Claim Request to it, and the claim of the moment.
            (
                vec![route("fd77::4/128", "fe80::5", 7, 192, true)],
                Some(("fe80::5", 7)),
            ),
        ] {
            let mut b = Hop::new(
                0xb,
                SigningKey::from_bytes(&[2; 32]),
                &[],
                &[(8, "fe80::a"), (7, "fe80::5")],
                routes,
            );
            let o = b.hear(Instant::from_micros(0), ("fe80::a", 8), &req);
            assert!(o.inputs.contains(&readvertise));
            assert_eq!(b.v.readvertised, 1);
            let to: Vec<(Ipv6Addr, u32)> = o.datagrams.iter().map(|g| (g.dst, g.scope)).collect();
            let want: Vec<(Ipv6Addr, u32)> = asked
                .map(|(a, i)| (a.parse().unwrap(), i))
                .into_iter()
                .collect();
            assert_eq!(to, want);
            assert_eq!(b.v.justify_refused, 0);
        }
    }

    /// §4.2.5: a relay whose next hop X told it 48 for D, and signs 96 when asked, takes the
    /// signed word: its route through X costs 96 plus its link (192) for the first correction's
    /// time, it relays the claim unchanged, and it sends the verifier its risen claim. A signed
    /// word no more than what X told it changes nothing.
    #[test]
    fn a_relay_takes_its_next_hops_signed_word() {
        let ll = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let now = Instant::from_secs(5);
        let req = packet(&verify::encode_request(
            TLV_JUSTIFY_REQUEST,
            &verify::ClaimRequest {
                prefix: "fd77::4/128".parse().unwrap(),
                nonce: 9,
            },
        ));
        for (told, adopted) in [(48, Some(192)), (96, None), (120, None)] {
            let mut b = Hop::new(
                0xb,
                SigningKey::from_bytes(&[2; 32]),
                &[],
                &[(8, "fe80::a"), (7, "fe80::5")],
                vec![route("fd77::4/128", "fe80::5", 7, told + 96, true)],
            );
            let mut x = Hop::new(
                0x5,
                SigningKey::from_bytes(&[5; 32]),
                &["fd77::5/128"],
                &[(1, "fe80::b")],
                vec![route("fd77::4/128", "fe80::9", 2, 96, true)],
            );
            let ask = b.hear(now, ("fe80::a", 8), &req);
            let [q] = &ask.datagrams[..] else {
                panic!("{:?}", ask.datagrams);
            };
            let signed = x.hear(now, ("fe80::b", 1), &q.bytes);
            let [c] = &signed.datagrams[..] else {
                panic!("{:?}", signed.datagrams);
            };
            let back = b.hear(now, ("fe80::5", 7), &c.bytes);
            assert_eq!(back.datagrams.len(), 1);
            assert_eq!(back.datagrams[0].bytes, c.bytes);
            let set: Vec<u16> = back
                .inputs
                .iter()
                .filter_map(|i| match i {
                    Input::SetVerifiedMetric {
                        via, metric, until, ..
                    } => {
                        assert_eq!(*via, IpAddr::V6(ll("fe80::5")));
                        assert_eq!(*until, now + verify::CorrectionConfig::default().first);
                        Some(*metric)
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(set, adopted.into_iter().collect::<Vec<_>>(), "told {told}");
            // The risen claim goes to the verifier (on its interface, 8) after the rise, at
            // once; nothing when nothing rose.
            let readvertise = Input::Readvertise {
                ifindex: 8,
                prefix: "fd77::4/128".parse().unwrap(),
                src_prefix: None,
            };
            let at = |want: fn(&Input) -> bool| back.inputs.iter().position(want);
            let (rise, sent) = (
                at(|i| matches!(i, Input::SetVerifiedMetric { .. })),
                back.inputs.iter().position(|i| *i == readvertise),
            );
            assert_eq!(sent.is_some(), adopted.is_some(), "told {told}");
            assert!(rise < sent || adopted.is_none(), "{:?}", back.inputs);
        }
    }

    /// §3.2.1: a route that is not a host route is verified too. Traffic to an address inside a
    /// LAN `/64` marks the `/64` used, the Remote Hellos go to its probe address `::1`, the
    /// answer must be signed by the key bound to the `/64` (a key bound elsewhere is dropped as
    /// unbound), and the liar is corrected and evicted.
    #[test]
    fn a_lie_about_a_lan_prefix_is_caught() {
        let d_key = SigningKey::from_bytes(&[7; 32]);
        let other_key = SigningKey::from_bytes(&[8; 32]);
        let mut a_set = VerifySettings::default();
        a_set.apply(words("verify-enable true").unwrap());
        // The honest neighbour here relays nothing (§4.2.6's audits would evict it).
        a_set.apply(words("verify-audit-claims false").unwrap());
        for (p, k) in [("fd77:4::/64", &d_key), ("fd77:5::/64", &other_key)] {
            a_set.apply(
                words(&format!(
                    "verify-key {p} {}",
                    hex::encode(k.verifying_key().as_bytes())
                ))
                .unwrap(),
            );
        }
        let t0 = Instant::from_micros(0);
        let mut a = peer(a_set, 0xa, SigningKey::from_bytes(&[1; 32]), 1);
        // The destination, and an impostor on the path answering for it with its own key.
        let mut d = peer(VerifySettings::default(), 0xd, d_key, 2);
        let mut x = peer(VerifySettings::default(), 0xe, other_key, 3);
        let liar = route("fd77:4::/64", "fe80::2", 3, 97, true);
        let honest = route("fd77:4::/64", "fe80::3", 4, 192, false);
        let routes = vec![liar.clone(), honest];
        let ours = vec![xroute("fd77:4::/64")];
        let probe: Ipv6Addr = "fd77:4::1".parse().unwrap();
        let mut now = t0;
        let mut evicted = false;
        let mut sent = 0;
        let mut lines = Vec::new();
        for _ in 0..20_000 {
            a.mark_used(now, &["fd77:4::99".parse().unwrap()]);
            now = a.poll_timeout().min(d.poll_timeout()).max(now);
            let out = a.on_timer(now, &routes, 800);
            lines.extend(out.lines);
            // §4.2.5: the Justify Requests to the liar go over its link, unanswered here.
            for g in out
                .datagrams
                .iter()
                .filter(|g| g.hop_limit != CHECK_FAILED_HOP_LIMIT)
            {
                assert_eq!(g.dst, probe);
                sent += 1;
                let o = d.on_datagram(now, "fd77::1".parse().unwrap(), 63, &g.bytes, &ours);
                assert!(o.datagrams.is_empty());
                x.on_datagram(now, "fd77::1".parse().unwrap(), 63, &g.bytes, &ours);
            }
            for i in &out.inputs {
                if let Input::SetNeighbourAccuracy {
                    address, accuracy, ..
                } = i
                    && *accuracy < 800
                {
                    assert_eq!(*address, liar.via);
                    evicted = true;
                }
            }
            for g in d
                .on_timer(now, &[], 800)
                .datagrams
                .iter()
                .chain(&x.on_timer(now, &[], 800).datagrams)
            {
                a.on_datagram(now, probe, 62, &g.bytes, &[]);
            }
            if evicted {
                break;
            }
            now = now + Duration::from_millis(1);
        }
        assert!(sent > 0);
        assert!(evicted, "liar not evicted: {:?}", a.counters());
        assert!(
            lines.iter().any(|l| l.starts_with(
                "verify route fd77:4::/64 via fe80::2 if 3 metric 97 cost 192 accuracy 505"
            )),
            "{lines:?}"
        );
        assert!(a.counters().unbound_key > 0, "{:?}", a.counters());
        assert!(a.counters().answers > 0);
    }

    /// A Remote Hello for a prefix that is not ours is refused; one from ourselves too.
    /// The ICMPv6 Time Exceeded a Linux router at hop 2 sends for a trace from `port`.
    fn time_exceeded_for(bytes: &[u8], port: u16) -> Vec<u8> {
        let mut m = vec![3, 0, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0];
        let plen = u16::try_from(8 + bytes.len()).unwrap();
        m.extend_from_slice(&plen.to_be_bytes());
        m.extend_from_slice(&[17, 1]);
        m.extend_from_slice(&"fd77::1".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&"fd77::4".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&port.to_be_bytes());
        m.extend_from_slice(&VERIFY_PORT.to_be_bytes());
        m.extend_from_slice(&plen.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(bytes);
        m
    }

    /// §4.2.1 through datagrams: A's route to D through B (which forwards to C) is traced; the
    /// Time Exceeded from C's own address names C, B's next hop, in the route's row and `dump`;
    /// a forged one (another timestamp), one from the wrong port and junk are dropped and
    /// counted; the destination ignores a trace that reaches it.
    #[test]
    fn a_trace_names_the_neighbours_next_hop() {
        const TRACE_PORT: u16 = 40_000;
        let d_key = SigningKey::from_bytes(&[7; 32]);
        // Traces alone: the hop-limit bound's Remote Hellos leave by the same socket (§1.4).
        let mut a = verifier_of_d(
            &["verify-attribution true", "verify-hop-bound false"],
            &d_key,
        );
        assert!(a.attribution());
        let mut d = peer(VerifySettings::default(), 0xd, d_key, 2);
        let mut c_own = route("fd77::3/128", "fe80::3", 4, 96, true);
        c_own.router_id = RouterId([0xc; 8]);
        let routes = vec![
            route("fd77::4/128", "fe80::2", 3, 288, true),
            route("fd77::4/128", "fe80::3", 4, 192, false),
            c_own,
        ];
        assert_eq!(
            neighbour_owning("fd77::3".parse().unwrap(), &routes).map(|n| n.address),
            Some("fe80::3".parse().unwrap())
        );
        assert_eq!(neighbour_owning("fd77::9".parse().unwrap(), &routes), None);
        let ours = vec![xroute("fd77::4/128")];
        let mut now = Instant::from_micros(0);
        let mut traces = 0;
        for _ in 0..20_000 {
            now = a.poll_timeout().min(d.poll_timeout()).max(now);
            let out = a.on_timer(now, &routes, 800);
            for g in &out.datagrams {
                if g.trace {
                    traces += 1;
                    // It reaches the destination when the neighbour is next to it, which
                    // ignores it (a responder that saw only the trace has nothing to answer).
                    let mut d2 = peer(
                        VerifySettings::default(),
                        0xe,
                        SigningKey::from_bytes(&[8; 32]),
                        3,
                    );
                    for hl in [1, 2] {
                        d2.on_datagram(now, "fd77::1".parse().unwrap(), hl, &g.bytes, &ours);
                    }
                    let later = now + Duration::from_secs(5);
                    assert!(d2.on_timer(later, &[], 800).datagrams.is_empty());
                    assert_eq!(d2.refused(), 0);
                    if g.mark
                        != FWMARK_BASE
                            + a.marks[&NeighbourId {
                                ifindex: 3,
                                address: "fe80::2".parse().unwrap(),
                            }]
                    {
                        continue;
                    }
                    let from: Ipv6Addr = "fd77::3".parse().unwrap();
                    let mut forged = g.bytes.clone();
                    if let Some(x) = forged.last_mut() {
                        *x ^= 1; // the timestamp's last octet
                    }
                    a.on_time_exceeded(
                        now,
                        from,
                        None,
                        &time_exceeded_for(&forged, TRACE_PORT),
                        TRACE_PORT,
                        &routes,
                    );
                    a.on_time_exceeded(
                        now,
                        from,
                        None,
                        &time_exceeded_for(&g.bytes, 1234),
                        TRACE_PORT,
                        &routes,
                    );
                    a.on_time_exceeded(now, from, None, &[3, 0, 1, 2], TRACE_PORT, &routes);
                    a.on_time_exceeded(
                        now,
                        from,
                        None,
                        &time_exceeded_for(&g.bytes, TRACE_PORT),
                        TRACE_PORT,
                        &routes,
                    );
                    continue;
                }
                let hops = if g.mark == FWMARK_BASE { 62 } else { 63 };
                d.on_datagram(now, "fd77::1".parse().unwrap(), hops, &g.bytes, &ours);
            }
            for g in &d.on_timer(now, &[], 800).datagrams {
                a.on_datagram(now, "fd77::4".parse().unwrap(), 62, &g.bytes, &[]);
            }
            let via_b = a
                .route_rows()
                .into_iter()
                .find(|r| r.neighbour == "fe80::2".parse::<IpAddr>().unwrap());
            if let Some(r) = via_b {
                assert_eq!(r.next_hop, Some("fe80::3".parse().unwrap()), "{r:?}");
                break;
            }
            now = now + Duration::from_millis(1);
        }
        assert!(traces >= 2, "one trace per session: {traces}");
        let c = a.counters();
        assert!(c.traces_sent >= 2 && c.traces_answered == 1, "{c:?}");
        assert_eq!(c.traces_dropped, 3, "{c:?}");
        let dump = a.dump_lines(now, &EngineSide::new(800, &[]), |i| format!("if{i}"));
        assert!(
            dump.iter().any(
                |l| l.starts_with("add verify-route fd77::4/128 via fe80::2")
                    && l.ends_with("next-hop fe80::3")
            ),
            "{dump:?}"
        );
        assert!(dump[0].contains(" traces-sent "), "{dump:?}");
        // Without the raw socket: no trace at all, attribution off.
        a.trace_unavailable();
        assert!(!a.attribution());
        assert!(
            a.dump_lines(now, &EngineSide::new(800, &[]), |i| format!("if{i}"))[0]
                .contains(" trace-socket-failed 1 ")
        );
    }

    /// §4.2.1, a loop through the verifier: a Time Exceeded quoting our trace and sent from the
    /// trace's own source address was sent by our kernel: the neighbour forwarded the trace
    /// back to us. The route's row says so (`next-hop self`).
    #[test]
    fn a_trace_back_to_us_is_recognised() {
        const TRACE_PORT: u16 = 40_000;
        let d_key = SigningKey::from_bytes(&[7; 32]);
        let mut a = verifier_of_d(
            &[
                "verify-attribution true",
                "verify-attribution-returned true",
            ],
            &d_key,
        );
        let mut d = peer(VerifySettings::default(), 0xd, d_key, 2);
        let routes = vec![route("fd77::4/128", "fe80::2", 3, 288, true)];
        let ours = vec![xroute("fd77::4/128")];
        let mut now = Instant::from_micros(0);
        let mut row = None;
        for _ in 0..20_000 {
            now = a.poll_timeout().min(d.poll_timeout()).max(now);
            for g in &a.on_timer(now, &routes, 800).datagrams {
                if g.trace {
                    // Our own kernel answers, from the address the trace left from (fd77::1).
                    let from: Ipv6Addr = "fd77::1".parse().unwrap();
                    let te = time_exceeded_for(&g.bytes, TRACE_PORT);
                    a.on_time_exceeded(now, from, None, &te, TRACE_PORT, &routes);
                    continue;
                }
                d.on_datagram(now, "fd77::1".parse().unwrap(), 62, &g.bytes, &ours);
            }
            for g in &d.on_timer(now, &[], 800).datagrams {
                a.on_datagram(now, "fd77::4".parse().unwrap(), 62, &g.bytes, &[]);
            }
            row = a.route_rows().into_iter().next();
            if row.is_some() {
                break;
            }
            now = now + Duration::from_millis(1);
        }
        let row = row.unwrap();
        assert!(row.returned, "{row:?}");
        assert_eq!(row.next_hop, None);
        assert_eq!(a.counters().traces_answered, 1);
        let dump = a.dump_lines(now, &EngineSide::new(800, &[]), |i| format!("if{i}"));
        assert!(
            dump.iter().any(
                |l| l.starts_with("add verify-route fd77::4/128 via fe80::2")
                    && l.ends_with("next-hop self")
            ),
            "{dump:?}"
        );
    }

    #[test]
    fn remote_hellos_for_others_are_refused() {
        let t0 = Instant::from_micros(0);
        let mut d = Verification::new(
            VerifySettings::default(),
            RouterId([0xd; 8]),
            SigningKey::from_bytes(&[7; 32]),
            1,
            2,
            t0,
        );
        let h = RemoteHello {
            seqno: 1,
            interval: 25,
            origin: RouterId([0xa; 8]),
            via: RouterId([1; 8]),
            prefix: "fd77::9/128".parse().unwrap(),
            timestamp: None,
        };
        let bytes = babel_wire::encode_packet(
            &Packet {
                messages: vec![Message::RemoteHello(h)],
                macs: Vec::new(),
            },
            babel_wire::Flavour::Standard,
        )
        .unwrap();
        d.on_datagram(
            t0,
            "fd77::1".parse().unwrap(),
            63,
            &bytes,
            &[xroute("fd77::4/128")],
        );
        assert_eq!(d.refused(), 1);
        let out = d.on_timer(t0 + Duration::from_secs(2), &[], 800);
        assert!(out.datagrams.is_empty());
        d.on_datagram(t0, "fd77::1".parse().unwrap(), 63, &[1, 2, 3], &[]);
        assert_eq!(d.malformed, 1);
    }
}
