//! Errors of every [`crate::Fib`] implementation and of the netlink socket.

use nix::errno::Errno;

/// Why a kernel-table operation failed.
///
/// The kernel's errno values that a routing daemon reacts to get their own variant; anything
/// else is kept as [`FibError::Kernel`] with the raw errno.
#[derive(Debug, thiserror::Error)]
pub enum FibError {
    /// `EEXIST`: `add` of a route whose key (table, destination, source, metric) is taken.
    #[error("route exists")]
    Exists,
    /// `ESRCH`/`ENOENT`: no such route or table. `delete` never returns it (a missing route
    /// counts as deleted).
    #[error("no such route")]
    NotFound,
    /// `ENODEV`: the output interface does not exist (or, on kernels ≥ 4.16, an unreachable
    /// route was sent with `RTNH_F_ONLINK`, babeld#14).
    #[error("no such device")]
    NoDevice,
    /// `ENETUNREACH`: the gateway is not reachable through the output interface (an IPv4
    /// gateway off the link's subnet without `onlink`).
    #[error("network unreachable (gateway not on link?)")]
    NetUnreachable,
    /// `ENETDOWN`: the output interface is down.
    #[error("network is down")]
    NetDown,
    /// `EINVAL`: the kernel refused the message (bad gateway, bad pref-src, bad flags...).
    #[error("invalid argument")]
    InvalidArgument,
    /// `EADDRNOTAVAIL`: the preferred source address is not local.
    #[error("address not available")]
    AddrNotAvailable,
    /// `EOPNOTSUPP`/`EAFNOSUPPORT`/`EPROTONOSUPPORT`: the kernel lacks the feature (for example
    /// source-specific IPv6 routes without `CONFIG_IPV6_SUBTREES`, or `RTA_VIA`).
    #[error("not supported by this kernel")]
    NotSupported,
    /// `EPERM`/`EACCES`: no `CAP_NET_ADMIN`.
    #[error("permission denied (CAP_NET_ADMIN needed)")]
    PermissionDenied,
    /// Any other errno the kernel answered with.
    #[error("kernel error: {0}")]
    Kernel(Errno),
    /// The route cannot be expressed (family mismatch, link-local gateway without an interface,
    /// gateway on an unreachable route...). Nothing was sent.
    #[error("invalid route: {0}")]
    InvalidRoute(&'static str),
    /// A system call on the netlink socket failed.
    #[error("netlink socket: {0}")]
    Socket(Errno),
    /// The kernel did not answer in time (the socket has a receive timeout).
    #[error("timed out waiting for the kernel")]
    Timeout,
    /// A datagram was larger than the bounded receive buffer and was dropped.
    #[error("netlink datagram of {0} bytes exceeds the receive buffer")]
    Truncated(usize),
    /// The kernel's answer could not be parsed.
    #[error("malformed netlink message: {0}")]
    Malformed(&'static str),
    /// A dump kept being interrupted by concurrent changes (`NLM_F_DUMP_INTR`).
    #[error("dump interrupted by concurrent changes")]
    DumpInterrupted,
}

impl FibError {
    /// Maps a positive errno from a netlink error message.
    pub fn from_errno(errno: Errno) -> FibError {
        match errno {
            Errno::EEXIST => FibError::Exists,
            Errno::ESRCH | Errno::ENOENT => FibError::NotFound,
            Errno::ENODEV => FibError::NoDevice,
            Errno::ENETUNREACH => FibError::NetUnreachable,
            Errno::ENETDOWN => FibError::NetDown,
            Errno::EINVAL => FibError::InvalidArgument,
            Errno::EADDRNOTAVAIL => FibError::AddrNotAvailable,
            Errno::EOPNOTSUPP | Errno::EAFNOSUPPORT | Errno::EPROTONOSUPPORT => {
                FibError::NotSupported
            }
            Errno::EPERM | Errno::EACCES => FibError::PermissionDenied,
            other => FibError::Kernel(other),
        }
    }

    /// The errno this error stands for, when it came from the kernel or the socket.
    pub fn errno(&self) -> Option<Errno> {
        Some(match self {
            FibError::Exists => Errno::EEXIST,
            FibError::NotFound => Errno::ESRCH,
            FibError::NoDevice => Errno::ENODEV,
            FibError::NetUnreachable => Errno::ENETUNREACH,
            FibError::NetDown => Errno::ENETDOWN,
            FibError::InvalidArgument => Errno::EINVAL,
            FibError::AddrNotAvailable => Errno::EADDRNOTAVAIL,
            FibError::NotSupported => Errno::EOPNOTSUPP,
            FibError::PermissionDenied => Errno::EPERM,
            FibError::Kernel(e) | FibError::Socket(e) => *e,
            FibError::Timeout => Errno::EAGAIN,
            FibError::InvalidRoute(_)
            | FibError::Truncated(_)
            | FibError::Malformed(_)
            | FibError::DumpInterrupted => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert!(matches!(
            FibError::from_errno(Errno::EEXIST),
            FibError::Exists
        ));
        assert!(matches!(
            FibError::from_errno(Errno::ENODEV),
            FibError::NoDevice
        ));
        assert!(matches!(
            FibError::from_errno(Errno::ENETUNREACH),
            FibError::NetUnreachable
        ));
        assert!(matches!(
            FibError::from_errno(Errno::EINVAL),
            FibError::InvalidArgument
        ));
        assert!(matches!(
            FibError::from_errno(Errno::ESRCH),
            FibError::NotFound
        ));
        assert!(matches!(
            FibError::from_errno(Errno::EBUSY),
            FibError::Kernel(Errno::EBUSY)
        ));
        assert_eq!(FibError::Exists.errno(), Some(Errno::EEXIST));
        assert_eq!(FibError::InvalidRoute("x").errno(), None);
    }
}
