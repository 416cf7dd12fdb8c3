//! The user's side of registration (`spec/exits.md`, "Registration"): build a signed request,
//! check that an answer is the exit's, for this user, and for this very request.

use std::net::Ipv6Addr;
use std::time::SystemTime;

use ed25519_dalek::SigningKey;

use crate::server::unix_ms;
use crate::wire::{ExitMessage, ExitWireError, Refused, Register, Registered};

/// Why an answer is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AnswerError {
    /// Not an authentic message.
    #[error("answer does not decode: {0}")]
    Wire(#[from] ExitWireError),
    /// An authentic message, but not an answer to a registration.
    #[error("not a registration answer")]
    NotAnAnswer,
    /// Signed by another exit, or for another user.
    #[error("answer from another exit or for another user")]
    WrongParty,
    /// Not the answer to the pending request (an old answer replayed, or a late one).
    #[error("answer to another request")]
    OtherRequest,
}

/// What the exit answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationOutcome {
    /// Registered.
    Registered(Registered),
    /// Refused, with the reason.
    Refused(Refused),
}

/// A request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The request.
    pub request: Register,
}

impl Pending {
    /// Checks an answer against this request.
    pub fn answer(&self, bytes: &[u8]) -> Result<RegistrationOutcome, AnswerError> {
        let r = &self.request;
        let (exit, user, ts, nonce, out) = match ExitMessage::decode(bytes)? {
            ExitMessage::Registered(m) => (
                m.exit,
                m.user,
                m.timestamp_ms,
                m.nonce,
                RegistrationOutcome::Registered(m),
            ),
            ExitMessage::Refused(m) => (
                m.exit,
                m.user,
                m.timestamp_ms,
                m.nonce,
                RegistrationOutcome::Refused(m),
            ),
            _ => return Err(AnswerError::NotAnAnswer),
        };
        if exit != r.exit || user != r.user {
            return Err(AnswerError::WrongParty);
        }
        if ts != r.timestamp_ms || nonce != r.nonce {
            return Err(AnswerError::OtherRequest);
        }
        Ok(out)
    }
}

/// The user's registration state with its exits: keeps its request timestamps strictly
/// increasing (the exit's replay rule) even if the clock stands still or steps back.
#[derive(Debug, Clone, Default)]
pub struct Registrar {
    last_ms: u64,
}

impl Registrar {
    /// A registrar.
    pub fn new() -> Registrar {
        Registrar::default()
    }

    /// A signed request to `exit` for `tunnel_key` at `mesh_address`, at `now`, with `nonce`
    /// (random bytes from the daemon). Returns what to send and what to match the answer with.
    pub fn request(
        &mut self,
        key: &SigningKey,
        exit: [u8; 32],
        tunnel_key: [u8; 32],
        mesh_address: Ipv6Addr,
        now: SystemTime,
        nonce: [u8; 16],
    ) -> (Vec<u8>, Pending) {
        let ts = unix_ms(now).max(self.last_ms.saturating_add(1));
        self.last_ms = ts;
        let request = Register {
            user: key.verifying_key().to_bytes(),
            exit,
            tunnel_key,
            mesh_address,
            timestamp_ms: ts,
            nonce,
        };
        (
            ExitMessage::Register(request).sign(key),
            Pending { request },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ExitRefusal;
    use std::time::{Duration, UNIX_EPOCH};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn refused(exit: u8, user: [u8; 32], p: &Pending) -> Vec<u8> {
        ExitMessage::Refused(Refused {
            exit: key(exit).verifying_key().to_bytes(),
            user,
            timestamp_ms: p.request.timestamp_ms,
            nonce: p.request.nonce,
            reason: ExitRefusal::NotAllowed,
            exit_time_ms: 0,
        })
        .sign(&key(exit))
    }

    #[test]
    fn only_the_expected_exits_answer_to_this_request_is_taken() {
        let mut r = Registrar::new();
        let exit = key(2).verifying_key().to_bytes();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (req, p) = r.request(&key(1), exit, [3; 32], Ipv6Addr::LOCALHOST, now, [4; 16]);
        let me = p.request.user;
        assert!(matches!(
            p.answer(&refused(2, me, &p)),
            Ok(RegistrationOutcome::Refused(_))
        ));
        // Another exit, or an answer for another user.
        assert_eq!(p.answer(&refused(9, me, &p)), Err(AnswerError::WrongParty));
        assert_eq!(
            p.answer(&refused(2, [0; 32], &p)),
            Err(AnswerError::WrongParty)
        );
        // Our own request echoed back is not an answer; garbage does not decode.
        assert_eq!(p.answer(&req), Err(AnswerError::NotAnAnswer));
        assert!(matches!(p.answer(&[1, 3, 0]), Err(AnswerError::Wire(_))));
    }

    #[test]
    fn timestamps_strictly_increase_even_when_the_clock_does_not() {
        let mut r = Registrar::new();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut last = 0;
        for back in [0u64, 0, 5, 0, 1000] {
            let t = now - Duration::from_millis(back);
            let (_, p) = r.request(&key(1), [2; 32], [3; 32], Ipv6Addr::LOCALHOST, t, [0; 16]);
            assert!(p.request.timestamp_ms > last);
            last = p.request.timestamp_ms;
        }
    }
}
