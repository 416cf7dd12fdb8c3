//! Transport keypairs.

use clock::Instant;

use crate::aead::{AeadProvider, TransportKey};
use crate::noise::SessionKeys;
use crate::replay::ReplayWindow;
use crate::timers::{REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME};

pub(crate) struct Keypair {
    pub(crate) send: Box<dyn TransportKey>,
    pub(crate) recv: Box<dyn TransportKey>,
    pub(crate) send_counter: u64,
    pub(crate) replay: ReplayWindow,
    pub(crate) local_index: u32,
    pub(crate) remote_index: u32,
    pub(crate) created: Instant,
    pub(crate) initiator: bool,
}

impl Keypair {
    pub(crate) fn new(
        provider: &dyn AeadProvider,
        keys: &SessionKeys,
        local_index: u32,
        created: Instant,
        initiator: bool,
    ) -> Self {
        Keypair {
            send: provider.key(&keys.send),
            recv: provider.key(&keys.recv),
            send_counter: 0,
            replay: ReplayWindow::new(),
            local_index,
            remote_index: keys.remote_index,
            created,
            initiator,
        }
    }

    pub(crate) fn age(&self, now: Instant) -> std::time::Duration {
        now.saturating_since(self.created)
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.age(now) >= REJECT_AFTER_TIME
    }

    pub(crate) fn can_send(&self, now: Instant) -> bool {
        !self.expired(now) && self.send_counter < REJECT_AFTER_MESSAGES
    }
}
