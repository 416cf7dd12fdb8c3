//! Every engine input as one value, [`Input`], and its dispatcher [`Engine::handle_input`].
//!
//! The engine's inputs are method calls ([`Engine::handle_packet`], [`Engine::handle_timeout`],
//! [`Engine::interface_up`], ...). As values they can be written down (with the `serde` feature,
//! as JSON): conformance cases (`babel-core/tests/conformance/`) are files of them, and a
//! recording of a daemon ([`crate::record`]) is one, so a field bug replays on a fresh engine.

use std::net::IpAddr;

use babel_wire::{EncodeError, EncodeOptions, Message, Prefix};
use price_metric::Policy;

use crate::config::InterfaceConfig;
use crate::engine::{Engine, EngineError, RouteKey};
use crate::output::Destination;
use crate::time::Instant;

/// One input to the engine; [`Engine::handle_input`] applies it at an instant.
///
/// JSON form (feature `serde`): an object whose `input` field names the variant in kebab case,
/// with the variant's fields beside it, e.g.
/// `{"input": "announce", "prefix": "2001:db8::/64", "src_prefix": null, "metric": 0}`;
/// packet bytes are hex.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "input", rename_all = "kebab-case"))]
pub enum Input {
    /// A UDP payload arrived ([`Engine::handle_packet`]).
    Packet {
        /// Interface it arrived on.
        ifindex: u32,
        /// Its source address.
        src: IpAddr,
        /// Where it was sent.
        dst: Destination,
        /// The payload, exactly as received.
        #[cfg_attr(feature = "serde", serde(with = "hex_bytes"))]
        bytes: Vec<u8>,
    },
    /// Messages that arrive in one packet, encoded here with babel-wire's standard encoder (the
    /// convenient form for hand-written cases; a recording always has [`Input::Packet`]).
    Messages {
        /// Interface they arrived on.
        ifindex: u32,
        /// Their source address.
        src: IpAddr,
        /// Where they were sent.
        dst: Destination,
        /// The messages, in order.
        messages: Vec<Message>,
    },
    /// The timers ran ([`Engine::handle_timeout`]).
    Timeout,
    /// An interface came up or was reconfigured ([`Engine::interface_up`]).
    InterfaceUp {
        /// Its index.
        ifindex: u32,
        /// Its configuration.
        config: InterfaceConfig,
    },
    /// An up interface was reconfigured ([`Engine::set_interface_config`]).
    SetInterfaceConfig {
        /// Its index.
        ifindex: u32,
        /// Its new configuration.
        config: InterfaceConfig,
    },
    /// An interface went down ([`Engine::interface_down`]).
    InterfaceDown {
        /// Its index.
        ifindex: u32,
    },
    /// A local route is announced ([`Engine::announce`]).
    Announce {
        /// Destination.
        prefix: Prefix,
        /// Source prefix (RFC 9079).
        src_prefix: Option<Prefix>,
        /// Its metric.
        metric: u16,
    },
    /// A local route is withdrawn ([`Engine::withdraw`]).
    Withdraw {
        /// Destination.
        prefix: Prefix,
        /// Source prefix (RFC 9079).
        src_prefix: Option<Prefix>,
    },
    /// Our fee changed ([`Engine::set_fee`]).
    SetFee {
        /// The new fee.
        fee: u32,
    },
    /// The selection policy changed ([`Engine::set_policy`]).
    SetPolicy {
        /// The new policy.
        policy: Policy,
    },
    /// Althea's metric factor changed ([`Engine::set_metric_factor`]).
    SetMetricFactor {
        /// The new factor.
        metric_factor: u32,
    },
    /// Verification hook ([`Engine::set_verified_metric`]).
    SetVerifiedMetric {
        /// Destination.
        prefix: Prefix,
        /// Source prefix.
        src_prefix: Option<Prefix>,
        /// Interface of the route.
        ifindex: u32,
        /// The neighbour it was learned from.
        via: IpAddr,
        /// The metric selection uses.
        metric: u16,
        /// Until when.
        until: Instant,
    },
    /// Verification hook ([`Engine::set_neighbour_accuracy`]).
    SetNeighbourAccuracy {
        /// The neighbour's interface.
        ifindex: u32,
        /// Its address.
        address: IpAddr,
        /// Accuracy, per mille.
        accuracy: u16,
    },
    /// Verification: our current Update for a destination, sent on one interface, a
    /// retraction where split horizon keeps our route off it ([`Engine::readvertise`]).
    Readvertise {
        /// The interface.
        ifindex: u32,
        /// Destination.
        prefix: Prefix,
        /// Source prefix.
        src_prefix: Option<Prefix>,
    },
    /// Graceful shutdown ([`Engine::shutdown`]).
    Shutdown,
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The engine refused it.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// [`Input::Messages`] could not be encoded into packets.
    #[error("encoding messages: {0}")]
    Encode(#[from] EncodeError),
}

impl Engine {
    /// Applies one input at `now`: the single entry point that a recorder wraps, so that no
    /// input is missed. Errors are those of the method called.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        match input {
            Input::Packet {
                ifindex,
                src,
                dst,
                bytes,
            } => self.handle_packet(now, ifindex, src, dst, &bytes),
            Input::Messages {
                ifindex,
                src,
                dst,
                messages,
            } => {
                for p in babel_wire::encode(&messages, &EncodeOptions::default())? {
                    self.handle_packet(now, ifindex, src, dst, &p);
                }
            }
            Input::Timeout => self.handle_timeout(now),
            Input::InterfaceUp { ifindex, config } => self.interface_up(now, ifindex, config),
            Input::SetInterfaceConfig { ifindex, config } => {
                self.set_interface_config(now, ifindex, config)?;
            }
            Input::InterfaceDown { ifindex } => self.interface_down(now, ifindex),
            Input::Announce {
                prefix,
                src_prefix,
                metric,
            } => self.announce(now, RouteKey { prefix, src_prefix }, metric)?,
            Input::Withdraw { prefix, src_prefix } => {
                self.withdraw(now, RouteKey { prefix, src_prefix });
            }
            Input::SetFee { fee } => self.set_fee(now, fee),
            Input::SetPolicy { policy } => self.set_policy(now, policy),
            Input::SetMetricFactor { metric_factor } => self.set_metric_factor(now, metric_factor),
            Input::SetVerifiedMetric {
                prefix,
                src_prefix,
                ifindex,
                via,
                metric,
                until,
            } => self.set_verified_metric(
                now,
                RouteKey { prefix, src_prefix },
                ifindex,
                via,
                metric,
                until,
            )?,
            Input::SetNeighbourAccuracy {
                ifindex,
                address,
                accuracy,
            } => self.set_neighbour_accuracy(now, ifindex, address, accuracy)?,
            Input::Readvertise {
                ifindex,
                prefix,
                src_prefix,
            } => self.readvertise(now, ifindex, RouteKey { prefix, src_prefix }),
            Input::Shutdown => self.shutdown(now),
        }
        Ok(())
    }
}

/// Bytes as a lowercase hex string.
#[cfg(feature = "serde")]
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_ref()).map_err(serde::de::Error::custom)
    }
}
