//! # verify
//!
//! Route verification for babeld-rs (the Althea network paper's "Route metric verification",
//! "Verification scheduling", "Accuracy score" and "Route metric adjustment"), specified in
//! `spec/verify.md`. Sans-IO: time comes in as an [`Instant`](babel_core::Instant), randomness
//! from a seed; the daemon and the simulator drive it the same way.
//!
//! * [`Verifier`]: each cycle picks a recently used destination and one of its feasible routes
//!   ([`Scheduler`]), emits the Remote Hellos to send through that route's neighbour, accepts the
//!   destination's signed Remote IHU ([`decode_signed_ihu`], [`Keyring`]), computes the measured
//!   cost `c` ([`CostModel`]), the accuracy `a = min(m/c, 1)`, a metric correction
//!   ([`CorrectionConfig`]) and the neighbour's standing ([`NeighbourScore`], [`Rule`]).
//! * [`Responder`]: the destination's side, counting Remote Hellos and signing reports.
//!
//! Every Remote IHU that is malformed, badly signed, signed by a key not bound to the prefix,
//! replayed or not for a session of ours is dropped and counted ([`ProbeCounters`]); all state is
//! bounded.

#![forbid(unsafe_code)]

mod auth;
mod bounded;
mod check_failed;
mod correction;
mod justify;
mod metric;
mod probe;
mod responder;
mod schedule;
mod score;

pub use auth::{
    DERIVE_DOMAIN, DERIVED_MIN_BITS, Keyring, REPORT_LEN, REPORT_SUB_TLV, Report, ReportDropReason,
    SIGNING_DOMAIN, SignedIhu, decode_signed_ihu, derived_address, encode_signed_ihu,
    probe_address,
};
pub use bounded::TableSize;
pub use check_failed::{CheckFailedError, decode_check_failed, encode_check_failed};
pub use correction::{CorrectionConfig, Corrections, NeighbourCorrection};
pub use ed25519_dalek::SigningKey;
pub use justify::{
    AWAIT_JUSTIFY, CLAIM_SIGN_RATE, CLAIM_SIGNING_DOMAIN, ClaimRelay, ClaimRequest, JUSTIFY_RETRY,
    JUSTIFY_SENDS, JUSTIFY_WAIT, JustifyError, RISE_POLL, SignedClaim, decode_request,
    decode_signed_claim, encode_request, encode_signed_claim,
};
pub use metric::{CostModel, Measurement, RttPenalty, accuracy, delivery_upper_bound};
pub use probe::{
    AskedRise, BOUND_PROBES, Check, HOP_LIMIT, MAX_TRACE_DEPTH, MAX_TRACE_HOP_LIMIT,
    NEXT_HOP_TRUST, ProbeAction, ProbeCounters, TRACE_HOP_LIMIT, TraceAnswer, Verifier,
    VerifyConfig, bound_hop_limit, via_tag,
};
pub use responder::{REMOTE_IHU_INTERVAL, Responder};
pub use schedule::{NeighbourId, Reason, ScheduleConfig, Scheduler, VerifiableRoute};
pub use score::{
    Blame, CheckVerdict, Eviction, EvictionCause, Evidence, FallenClaim, NeighbourScore, Rule,
    ScoreConfig, StableEvidence, UnknownFallenClaim, UnknownStableEvidence,
};
