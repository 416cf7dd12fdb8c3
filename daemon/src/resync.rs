//! When the daemon re-reads links, addresses and routes from the kernel, as sans-IO decisions.
//!
//! One thread owns the netlink dumps (the binary's `kernel-dumps`); the main loop never dumps
//! itself. It asks for a snapshot when a kernel notification says something changed
//! ([`asks_reread`]) or a mesh tunnel came or went, and [`Resync`] keeps those requests one at a
//! time: a change noticed while a snapshot is on its way asks for one more once it is in, and
//! work that must see the change (forgetting a removed tunnel) waits for the snapshot taken
//! after it. A control client's message never asks for a snapshot: it is answered from the
//! links and addresses last read.

use kernel_fib::NetEvent;

/// Whether a kernel notification asks for a re-read: every change of a link, an address or a
/// route, and lost notifications, except the notifications of the routes of our own
/// `protocol` (we wrote them; they change nothing we redistribute or run on).
pub fn asks_reread(e: &NetEvent, protocol: u8) -> bool {
    !matches!(e, NetEvent::RouteAdded(r) | NetEvent::RouteRemoved(r) if r.protocol == protocol)
}

/// Re-reading the kernel, one snapshot at a time. `T` is the work that waits for a snapshot.
#[derive(Debug)]
pub struct Resync<T> {
    /// A snapshot was asked for and is not in yet.
    pending: bool,
    /// Another one is needed after it.
    again: bool,
    /// Work to finish once the pending snapshot is in.
    after: Vec<T>,
    /// Work to finish after the next one (it came after the pending snapshot was asked for).
    after_next: Vec<T>,
}

impl<T> Default for Resync<T> {
    fn default() -> Self {
        Resync {
            pending: false,
            again: false,
            after: Vec::new(),
            after_next: Vec::new(),
        }
    }
}

impl<T> Resync<T> {
    /// Something changed: true if a snapshot must be asked for now (the caller then calls
    /// [`Resync::asked`]); false if one is on its way, and another will be asked for when it
    /// is in.
    pub fn wanted(&mut self) -> bool {
        if self.pending {
            self.again = true;
            false
        } else {
            true
        }
    }

    /// The snapshot was asked for.
    pub fn asked(&mut self) {
        self.pending = true;
    }

    /// A snapshot is on its way.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Work to finish once a snapshot taken after this change is in; returns whether a
    /// snapshot must be asked for now (as [`Resync::wanted`]).
    pub fn after_change(&mut self, work: T) -> bool {
        if self.pending {
            self.after_next.push(work);
        } else {
            self.after.push(work);
        }
        self.wanted()
    }

    /// The pending snapshot is in (or failed): the work that waited for it, and whether the
    /// next snapshot must be asked for now.
    pub fn done(&mut self) -> (Vec<T>, bool) {
        self.pending = false;
        let finished = std::mem::take(&mut self.after);
        let again = std::mem::take(&mut self.again);
        if again {
            self.after = std::mem::take(&mut self.after_next);
        }
        (finished, again)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use kernel_fib::{KernelRoute, RTPROT_BABEL};

    fn route(protocol: u8) -> KernelRoute {
        KernelRoute::unicast("2001:db8::/64".parse().unwrap(), None, Some(1))
            .with_protocol(protocol)
    }

    #[test]
    fn our_own_routes_ask_for_no_reread() {
        assert!(!asks_reread(
            &NetEvent::RouteAdded(route(RTPROT_BABEL)),
            RTPROT_BABEL
        ));
        assert!(!asks_reread(
            &NetEvent::RouteRemoved(route(RTPROT_BABEL)),
            RTPROT_BABEL
        ));
        // Another protocol's route may be redistributed.
        assert!(asks_reread(&NetEvent::RouteAdded(route(4)), RTPROT_BABEL));
        assert!(asks_reread(&NetEvent::RouteRemoved(route(4)), RTPROT_BABEL));
        assert!(asks_reread(&NetEvent::Overrun, RTPROT_BABEL));
    }

    #[test]
    fn one_snapshot_at_a_time_and_one_more_for_changes_meanwhile() {
        let mut r: Resync<u8> = Resync::default();
        assert!(r.wanted());
        r.asked();
        // Three changes while it is on its way: no request now, one after.
        assert!(!r.wanted() && !r.wanted() && !r.wanted());
        let (finished, again) = r.done();
        assert!(finished.is_empty() && again);
        r.asked();
        let (_, again) = r.done();
        assert!(!again && !r.is_pending());
        assert!(r.wanted());
    }

    #[test]
    fn work_waits_for_a_snapshot_taken_after_its_change() {
        let mut r = Resync::default();
        assert!(r.after_change(1));
        r.asked();
        // Came while snapshot 1 is on its way: snapshot 1 may predate it.
        assert!(!r.after_change(2));
        let (finished, again) = r.done();
        assert_eq!(finished, [1]);
        assert!(again);
        r.asked();
        let (finished, again) = r.done();
        assert_eq!(finished, [2]);
        assert!(!again);
    }

    #[test]
    fn a_failed_request_leaves_nothing_pending() {
        let mut r = Resync::default();
        // The dump thread is gone: the caller does not call `asked`; the next change asks
        // again instead of waiting forever.
        assert!(r.after_change(7));
        assert!(!r.is_pending());
        assert!(r.wanted());
        r.asked();
        assert_eq!(r.done(), (vec![7], false));
    }
}
