//! The [`Fib`] trait: what the daemon and the simulator need from a forwarding table.

use crate::{DumpFilter, FibChange, FibError, KernelRoute, KernelRule};

/// A forwarding table: the kernel's ([`crate::NetlinkFib`]) or a simulated one
/// ([`crate::MemoryFib`]).
///
/// Methods are synchronous; the daemon runs its kernel table on a dedicated thread. Routes are
/// identified by their [`crate::KernelRouteKey`] (table, destination, source, metric), as in the
/// kernel.
pub trait Fib {
    /// Installs a new route; [`FibError::Exists`] if a route with its key is there.
    fn add(&mut self, route: &KernelRoute) -> Result<(), FibError>;

    /// Installs `route`, atomically replacing the route with the same key if there is one
    /// (`NLM_F_CREATE | NLM_F_REPLACE`: there is never a moment without a route).
    fn replace(&mut self, route: &KernelRoute) -> Result<(), FibError>;

    /// Removes the route with `route`'s key and protocol. A route that is already gone is not
    /// an error.
    ///
    /// One kernel rule shows through: in an IPv4 delete, metric 0 means "any metric", so
    /// deleting an IPv4 metric-0 route removes the lowest-metric route of that destination,
    /// table, protocol and kind. Deleting such a route that is already gone can therefore
    /// remove another of our routes of the same kind to the same destination with a higher
    /// metric (never an unreachable route when a unicast one is deleted, nor another
    /// protocol's route). [`crate::MemoryFib`] follows the same rule.
    fn delete(&mut self, route: &KernelRoute) -> Result<(), FibError>;

    /// Moves from `old` to `new` without a gap. Equal keys: one atomic replace. Different keys
    /// (the metric changed, say): `new` is installed first and `old` deleted only if that
    /// worked (make before break).
    fn change(&mut self, old: &KernelRoute, new: &KernelRoute) -> Result<(), FibError> {
        self.replace(new)?;
        if old.key() != new.key() {
            self.delete(old)?;
        }
        Ok(())
    }

    /// Applies a batch in order; one result per change. Implementations may pipeline the
    /// requests; a failure does not stop the rest of the batch.
    fn apply(&mut self, changes: &[FibChange]) -> Vec<Result<(), FibError>> {
        changes
            .iter()
            .map(|c| match c {
                FibChange::Add(r) => self.add(r),
                FibChange::Replace(r) => self.replace(r),
                FibChange::Change { old, new } => self.change(old, new),
                FibChange::Delete(r) => self.delete(r),
            })
            .collect()
    }

    /// The routes that pass `filter` (cached clones excluded).
    fn dump(&mut self, filter: &DumpFilter) -> Result<Vec<KernelRoute>, FibError>;

    /// Adds the policy rule `rule` ([`FibError::Exists`] if the same rule is there): the
    /// `from SRC` rules of [`crate::SourceTables`], and `fwmark M lookup T` rules
    /// ([`KernelRule::fwmark_v6`], route verification's probes).
    fn add_rule(&mut self, rule: &KernelRule) -> Result<(), FibError>;

    /// Deletes the policy rule `rule`; a rule that is already gone is not an error.
    fn delete_rule(&mut self, rule: &KernelRule) -> Result<(), FibError>;

    /// Every policy rule that looks up a table and selects on its source and whole firewall
    /// mark alone.
    fn rules(&mut self) -> Result<Vec<KernelRule>, FibError>;

    /// Deletes every route tagged with `protocol` in any table (stale routes of a previous run
    /// at start, ours at shutdown). Returns how many were deleted.
    fn purge(&mut self, protocol: u8) -> Result<usize, FibError> {
        let routes = self.dump(&DumpFilter::protocol(protocol))?;
        let changes: Vec<FibChange> = routes.into_iter().map(FibChange::Delete).collect();
        let mut deleted = 0;
        let mut first_error = None;
        for result in self.apply(&changes) {
            match result {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "purge: could not delete a route");
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }
}

impl<F: Fib + ?Sized> Fib for Box<F> {
    fn add(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        (**self).add(route)
    }
    fn replace(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        (**self).replace(route)
    }
    fn delete(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        (**self).delete(route)
    }
    fn change(&mut self, old: &KernelRoute, new: &KernelRoute) -> Result<(), FibError> {
        (**self).change(old, new)
    }
    fn apply(&mut self, changes: &[FibChange]) -> Vec<Result<(), FibError>> {
        (**self).apply(changes)
    }
    fn dump(&mut self, filter: &DumpFilter) -> Result<Vec<KernelRoute>, FibError> {
        (**self).dump(filter)
    }
    fn add_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        (**self).add_rule(rule)
    }
    fn delete_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        (**self).delete_rule(rule)
    }
    fn rules(&mut self) -> Result<Vec<KernelRule>, FibError> {
        (**self).rules()
    }
    fn purge(&mut self, protocol: u8) -> Result<usize, FibError> {
        (**self).purge(protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_safe_and_send() {
        fn is_send<T: Send>() {}
        is_send::<crate::NetlinkFib>();
        is_send::<crate::MemoryFib>();
        is_send::<crate::Watcher>();
        let mut fib: Box<dyn Fib + Send> = Box::new(crate::MemoryFib::new());
        assert!(fib.dump(&DumpFilter::all()).is_ok_and(|v| v.is_empty()));
        assert!(fib.purge(42).is_ok_and(|n| n == 0));
    }
}
