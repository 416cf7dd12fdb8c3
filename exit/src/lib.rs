//! # exit
//!
//! Exit nodes, sans-IO (network paper, "Exit nodes"; `spec/exits.md` is the specification). An
//! exit carries user nodes' traffic to and from the internet through a tunnel, gives each user
//! addresses, meters and bills it, and throttles or cuts a user who does not pay. This crate
//! holds every decision of that and no I/O except the exit's durable store: the daemon passes
//! `now` and bytes in and gets bytes and decisions out.
//!
//! * [`wire`]: the signed messages (register, registered, refused, bill) and their codec;
//! * [`replay`]: the bounded replay rule for registration requests;
//! * [`pool`]: the sticky address pool (one slot per key gives its IPv4 address and IPv6 prefix);
//! * [`store`]: leases and billed totals, committed durably (`redb`) before any answer or bill;
//! * [`server`]: the exit's side ([`ExitServer`]): registration, metering, bills, service level;
//! * [`client`]: the user's side of registration ([`Registrar`], [`Pending`]);
//! * [`bill`]: accounts, the bill formula, and the user's check of a bill ([`UserLedger`]);
//! * [`payment`]: bills and payments inside the exit tunnel: the user's check and its payment
//!   channel to the exit ([`UserPayments`]), the exit's ends of those channels ([`ExitPayments`]);
//! * [`select`]: the user's choice of exit with hysteresis ([`Selector`]).
//!
//! Keys: the ed25519 key that signs registrations and bills is the node's payment key (the one
//! its `payments` channels use), so the key an exit registers is the key whose channel pays it.

pub mod bill;
pub mod client;
pub mod payment;
pub mod pool;
pub mod replay;
pub mod select;
pub mod server;
pub mod store;
pub mod wire;

pub use bill::{
    Account, BillError, Checked, ServiceThresholds, Tolerance, UserLedger, UserService, Way,
};
pub use client::{AnswerError, Pending, Registrar, RegistrationOutcome};
pub use payment::{
    BillCounters, ExitPayments, Frame, FrameError, PAY_PORT, Transition, UserBilling, UserPayments,
};
pub use pool::{Ipv4Pool, Ipv6Pool, Pool};
pub use replay::{ExitReplayError, ReplayGuard};
pub use select::{
    ExitCandidate, ExitRouteView, Selection, SelectionPolicy, SelectionReason, Selector,
};
pub use server::{
    Admission, Answer, Decision, ExitConfig, ExitCounters, ExitServer, RegisterError, TunnelParams,
    UserView, unix_ms,
};
pub use store::{ExitMemStore, ExitRedbStore, ExitStore, Lease, Stored, Totals};
pub use wire::{Bill, ExitMessage, ExitRefusal, ExitWireError, Refused, Register, Registered};
