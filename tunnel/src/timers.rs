//! Protocol constants from the WireGuard whitepaper (§6) and the
//! reference implementations.

use std::time::Duration;

/// Initiator starts a new handshake when the current keypair is this old.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Keypairs older than this are never used.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Give up retrying a handshake after this long.
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Retransmit an unanswered initiation after this (plus jitter).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Maximum jitter added to `REKEY_TIMEOUT` (0–333 ms).
pub const REKEY_TIMEOUT_JITTER_MS: u64 = 334;
/// Send a keepalive if we received data and sent nothing for this long.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Start a handshake after sending this many messages on a keypair.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Never use a keypair for more messages than this.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// Cookies and the cookie secret are valid this long.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// A received cookie is used for mac2 while younger than this.
pub const COOKIE_VALIDITY: Duration = Duration::from_secs(120 - 5);
/// At most this many initiations per second are accepted from one peer.
pub const INITIATIONS_PER_SECOND: u32 = 50;
/// Rekey on receive when the (initiator's) keypair is this old.
pub const REKEY_ON_RECEIVE_AGE: Duration = Duration::from_secs(180 - 10 - 5);
/// Ephemeral state is wiped after three times `REJECT_AFTER_TIME` without
/// a new handshake.
pub const ZERO_KEYS_AFTER: Duration = Duration::from_secs(3 * 180);
/// Handshake messages per second per source address while under load.
pub const HANDSHAKES_PER_SECOND_PER_IP: u32 = 20;
/// Burst for the per-source handshake limiter.
pub const HANDSHAKE_BURST_PER_IP: u32 = 5;
/// The "under load" state lasts this long after it was detected.
pub const UNDER_LOAD_DURATION: Duration = Duration::from_secs(1);
/// Maximum packets queued per peer while a handshake is in progress.
pub const MAX_QUEUED_PACKETS: usize = 256;
