//! Sliding-window replay protection (RFC 6479-style bitmap).

/// Bits in the bitmap.
pub const WINDOW_BITS: u64 = 8192;
const WORD_BITS: u64 = 64;
const WORDS: usize = (WINDOW_BITS / WORD_BITS) as usize;
/// Counters this far behind the highest seen one are still accepted once
/// (8192 − 64 = 8128, like Linux and wireguard-go).
pub const WINDOW_SIZE: u64 = WINDOW_BITS - WORD_BITS;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received.
    Duplicate,
    /// Older than the window.
    TooOld,
    /// At or beyond `REJECT_AFTER_MESSAGES`.
    Exhausted,
}

/// An 8192-bit replay window. Check with [`ReplayWindow::check`] before
/// decrypting, then [`ReplayWindow::update`] after authentication, so forged
/// packets can never move the window.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest accepted counter (valid only when `any`).
    top: u64,
    any: bool,
    bitmap: Box<[u64; WORDS]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("top", &self.top)
            .finish_non_exhaustive()
    }
}

fn word_and_bit(counter: u64) -> (usize, u64) {
    (
        ((counter / WORD_BITS) % WORDS as u64) as usize,
        1u64 << (counter % WORD_BITS),
    )
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> Self {
        ReplayWindow {
            top: 0,
            any: false,
            bitmap: Box::new([0; WORDS]),
        }
    }

    /// Would `counter` be accepted?
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        if counter >= crate::timers::REJECT_AFTER_MESSAGES {
            return Err(ReplayError::Exhausted);
        }
        if !self.any || counter > self.top {
            return Ok(());
        }
        if self.top - counter > WINDOW_SIZE {
            return Err(ReplayError::TooOld);
        }
        let (w, bit) = word_and_bit(counter);
        match self.bitmap.get(w) {
            Some(word) if word & bit == 0 => Ok(()),
            _ => Err(ReplayError::Duplicate),
        }
    }

    /// Checks and records `counter`.
    pub fn update(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        if !self.any || counter > self.top {
            let new_word = counter / WORD_BITS;
            let old_word = if self.any {
                self.top / WORD_BITS
            } else {
                new_word.wrapping_sub(WORDS as u64)
            };
            let advance = new_word.wrapping_sub(old_word).min(WORDS as u64);
            if !self.any {
                self.bitmap.fill(0);
            } else {
                for i in 1..=advance {
                    let idx = ((old_word + i) % WORDS as u64) as usize;
                    if let Some(w) = self.bitmap.get_mut(idx) {
                        *w = 0;
                    }
                }
            }
            self.top = counter;
            self.any = true;
        }
        let (w, bit) = word_and_bit(counter);
        if let Some(word) = self.bitmap.get_mut(w) {
            *word |= bit;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_old_and_reordered() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.update(0), Ok(()));
        assert_eq!(w.update(0), Err(ReplayError::Duplicate));
        assert_eq!(w.update(5), Ok(()));
        assert_eq!(w.update(3), Ok(())); // reordered, inside window
        assert_eq!(w.update(3), Err(ReplayError::Duplicate));
        assert_eq!(w.update(10_000), Ok(()));
        assert_eq!(w.update(10_000 - WINDOW_SIZE), Ok(()));
        assert_eq!(w.update(10_000 - WINDOW_SIZE - 1), Err(ReplayError::TooOld));
        assert_eq!(w.update(5), Err(ReplayError::TooOld));
        for c in (9_000..10_000).rev() {
            assert_eq!(w.update(c), Ok(()), "{c}");
        }
        for c in 9_000..10_001 {
            assert_eq!(w.update(c), Err(ReplayError::Duplicate));
        }
        assert_eq!(
            w.update(crate::timers::REJECT_AFTER_MESSAGES),
            Err(ReplayError::Exhausted)
        );
    }

    #[test]
    fn large_jumps_clear_window() {
        let mut w = ReplayWindow::new();
        for c in 0..200 {
            w.update(c).unwrap();
        }
        // Jump far ahead: old bits for counters that map to the same
        // words must not be mistaken for duplicates.
        let far = 200 + WINDOW_BITS * 3;
        w.update(far).unwrap();
        for c in far - 100..far {
            assert_eq!(w.check(c), Ok(()), "{c}");
        }
        // Exhaustive check against a naive model over a random-ish walk.
        let mut w = ReplayWindow::new();
        let mut seen = std::collections::HashSet::new();
        let mut top: Option<u64> = None;
        let mut x: u64 = 12345;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let base = top.unwrap_or(0);
            let c = (base + (x >> 33) % 9000).saturating_sub(8500);
            let expect = if top.is_some_and(|t| c <= t && t - c > WINDOW_SIZE) {
                Err(ReplayError::TooOld)
            } else if seen.contains(&c) {
                Err(ReplayError::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(w.update(c), expect, "counter {c} top {top:?}");
            if expect.is_ok() {
                seen.insert(c);
                top = Some(top.map_or(c, |t| t.max(c)));
            }
        }
    }
}
