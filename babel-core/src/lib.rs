//! # babel-core
//!
//! A sans-IO Babel routing engine (RFC 8966) that makes babeld 1.12's routing decisions and
//! carries Althea's prices in its route table. One [`Engine`] is one router. It owns no socket,
//! clock, thread or entropy source: time comes in as an [`Instant`] with every input, randomness
//! from a seeded generator ([`EngineConfig::seed`]), and everything it wants done comes out through
//! `poll_*` methods.
//!
//! * Inputs: [`Engine::handle_packet`] (a UDP payload with its interface and source),
//!   [`Engine::handle_timeout`], [`Engine::interface_up`] / [`Engine::interface_down`],
//!   [`Engine::announce`] / [`Engine::withdraw`] (local routes), runtime configuration
//!   ([`Engine::set_fee`], [`Engine::set_metric_factor`], [`Engine::set_policy`]) and the
//!   verification hooks ([`Engine::set_verified_metric`], [`Engine::set_neighbour_accuracy`]).
//! * Outputs: [`Engine::poll_transmit`] (encoded packets, multicast or unicast),
//!   [`Engine::poll_route`] (kernel add/replace/delete), [`Engine::poll_event`] (babeld
//!   `monitor`-style events, including [`Event::SeqnoChanged`] to persist the seqno), and
//!   [`Engine::poll_timeout`] (when to call [`Engine::handle_timeout`] next).
//! * Views for babeld's `dump`: [`Engine::interfaces`], [`Engine::neighbours`],
//!   [`Engine::xroutes`], [`Engine::routes`] (and one route, [`Engine::route`], for an
//!   [`Event::Route`]), plus [`Engine::counters`].
//! * Every input is also a value, [`Input`], applied by [`Engine::handle_input`]. With the
//!   `serde` feature inputs and outputs have a JSON form, `record` drives an engine while
//!   recording it and replays a recording, and `tests/conformance/` holds cases in that form.
//!
//! The engine's parts (one file each under `src/engine/`) and the path of a received Update to
//! the kernel are drawn in `docs/architecture.md`.
//!
//! Route selection is a [`price_metric::Policy`]: plain babeld, Althea's
//! `log2(price) + log2(metric) × factor / 1000`, or the paper's `metric + price × n`.
//!
//! ## babeld's choices, and where we differ
//!
//! Same as babeld 1.12: Hello 4 s, updates 4 × Hello (jittered 3/4 to 5/4), IHU interval
//! advertised 3 × Hello and IHUs with every third Hello (with every Hello to lossy neighbours on
//! link-quality interfaces); 2-out-of-3 on either Hello history (rxcost 96) and babeld's weighted
//! ETX (256); a Hello counts as missed after 1.7 intervals; a seqno more than 8 behind means a
//! reboot; neighbours flushed after 300 s or an empty history; route hold max(6 × interval, 15 s);
//! source GC 200 s; smoothing half-life 4 s with babeld's switch rule; seqno requests with hop
//! count 127, ignored when more than 100 ahead, never forwarded back to the requester, resent
//! after 2 s, doubled, 3 times; urgent updates sent 3 times; split horizon on wired links (the
//! route is not sent back); routes with our own router-id ignored; martian prefixes refused;
//! xroutes advertised with our seqno and price 0.
//!
//! Deliberate differences (decisions are the same; convergence is faster or safer):
//! * an IHU also goes out with the next Hello when our rxcost for a neighbour changed (babeld
//!   waits for the third Hello), and a Hello with IHUs is sent soon after a new neighbour's first
//!   Hello;
//! * a selected route is re-advertised at once when its next hop changes or its metric improves by
//!   [`TRIGGER_IMPROVEMENT`] (babeld waits for the periodic update for small changes);
//! * a wildcard route request inside the one-dump-per-Hello-interval window is served when the
//!   window ends instead of being dropped;
//! * a seqno request for our prefix sets our seqno to the requested one (when at most 100 ahead)
//!   rather than adding 1;
//! * a Hello seqno far ahead of what the elapsed time explains is also a reboot, and a rebooted
//!   neighbour's routes are retracted; every interface starts with a wildcard retraction, except
//!   after a crash ([`EngineConfig::resume_hellos`]: Hello seqnos continued, the previous run's
//!   routes guide selection for [`RESUME_QUIET`], see `engine/resume.rs`);
//! * an unfeasible route that the selection *policy* prefers triggers a unicast seqno request
//!   (so price-aware policies can move traffic);
//! * txcost expires after 3 advertised IHU intervals (babeld's code; RFC 8966 says 3.5); a route
//!   is refreshed by a unicast request after 3 intervals, retracted after 3.5 (RFC 8966 §3.5.3)
//!   and removed after babeld's hold time;
//! * smoothing uses a fixed half-life (babeld randomises it slightly) and fixed-point decay.
//!
//! Packet authentication (RFC 8967 MACs with RFC 9467's separate multicast and unicast PCs) is
//! done here when an interface has keys ([`InterfaceConfig::auth`]): packets are signed as they
//! are sent and checked before any TLV is processed; see `spec/auth.md`.
//!
//! Unicast operation (`spec/unicast.md`): on an interface with [`InterfaceConfig::unicast`] every
//! TLV that would go to the multicast group goes to each neighbour instead, IHUs ride on
//! per-neighbour unicast Hellos; [`InterfaceConfig::neighbours`] (our extension) are neighbours
//! that exist from the start and never expire, for links that carry no multicast.
//!
//! Not implemented here: diversity routing, babeld's filter grammar and redistribution (the
//! daemon's job; the engine asks a [`RouteFilter`] for `in`, `out` and `install` decisions).
//!
//! ## RecordingDriver loop
//!
//! ```
//! use std::net::IpAddr;
//! use babel_core::{EngineConfig, Engine, Instant, InterfaceConfig, InterfaceKind, RouteKey};
//! use babel_wire::RouterId;
//!
//! let now = Instant::ZERO;
//! let mut engine = Engine::new(EngineConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 1])), now).unwrap();
//! let addr: IpAddr = "fe80::1".parse().unwrap();
//! engine.interface_up(now, 2, InterfaceConfig::new("eth0", InterfaceKind::Wired, addr));
//! engine.announce(now, RouteKey::new("2001:db8::/64".parse().unwrap()), 0).unwrap();
//! loop {
//!     // 1. Feed inputs: engine.handle_packet(now, ifindex, src, dst, &bytes), config changes...
//!     // 2. Drain outputs.
//!     while let Some(t) = engine.poll_transmit() { /* socket.send_to(&t.bytes, ...) */ let _ = t; }
//!     while let Some(r) = engine.poll_route() { /* netlink */ let _ = r; }
//!     while let Some(e) = engine.poll_event() { /* monitor clients */ let _ = e; }
//!     // 3. Sleep until the next timer or packet, then run the timers.
//!     let Some(wake) = engine.poll_timeout() else { break };
//!     # break;
//!     engine.handle_timeout(wake);
//! }
//! ```

#![forbid(unsafe_code)]

mod auth;
mod config;
mod engine;
mod filter;
mod input;
mod neighbour;
mod output;
pub mod packed;
#[cfg(feature = "serde")]
pub mod record;
mod rng;
pub mod rtt;
mod time;

pub use auth::{CHALLENGE_RATE_LIMIT, CHALLENGE_TIMEOUT, MacAuth, NONCE_LEN};
pub use babel_wire::mac::{MacAlgorithm, MacKey};
pub use config::{EngineConfig, InterfaceConfig, InterfaceKind, Limits, ResumeRoute};
pub use engine::{
    CORRECTION_CEILING, Engine, EngineError, InstalledRoute, MAX_SEQNO_JUMP, MIN_HOLD,
    NEIGHBOUR_FLUSH, REQUEST_RESENDS, REQUEST_TIMEOUT, RESELECT_SLICE, RESUME_QUIET, RouteEvents,
    RouteKey, SEQNO_REQUEST_HOP_COUNT, TRIGGER_IMPROVEMENT, TRIGGER_WORSENING, URGENT_REPEATS,
    URGENT_TIMEOUT, is_martian, link_cost_algorithm,
};
pub use filter::{FilterAnswer, FilterRoute, RouteFilter};
pub use input::{Input, InputError};
pub use output::{
    ChangeKind, Counters, Destination, Event, InterfaceView, NeighbourView, RouteChange, RouteOp,
    RouteView, Transmit, XrouteView,
};
pub use price_metric::{Accumulation, Policy};
pub use rng::Rng;
pub use time::{Instant, from_centis, to_centis};
