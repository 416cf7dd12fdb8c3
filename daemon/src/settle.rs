//! What the control socket and the payment loop share about settlement on a chain
//! (spec/settlement.md, section "In the daemon"): operators' requests (`settlement open|top-up|
//! close|finalize ...` on a read-write control socket) on their way to the payment loop, and the
//! loop's `add settlement ...` lines for `dump` and `babelctl settlement show`. Nothing here
//! needs the `settlement` crate, so the daemon builds without it.

use std::collections::VecDeque;

/// Requests queued at most (a client flooding the socket is refused, not buffered).
pub const MAX_REQUESTS: usize = 64;

/// Settlement state shared between the main loop and the payment loop.
#[derive(Debug, Default)]
pub struct SettleBoard {
    /// Whether the payment loop settles on a chain (set once at start).
    pub enabled: bool,
    /// Operators' requests, the words after `settlement`.
    pub requests: VecDeque<Vec<String>>,
    /// `dump` lines, rewritten by the payment loop.
    pub lines: Vec<String>,
}

impl SettleBoard {
    /// Queues an operator's request; the payment loop checks its words.
    pub fn request(&mut self, words: Vec<String>) -> Result<(), String> {
        if !self.enabled {
            return Err("settlement is not configured (or not built in)".to_owned());
        }
        if self.requests.len() >= MAX_REQUESTS {
            return Err("too many settlement requests queued".to_owned());
        }
        self.requests.push_back(words);
        Ok(())
    }
}
