//! Kernel forwarding table access for babeld-rs.
//!
//! * [`Fib`]: what the daemon needs from a forwarding table — add, atomically replace,
//!   change without a gap, delete (a missing route is fine), batches, dumps by protocol and
//!   table, and purging a protocol's routes.
//! * [`NetlinkFib`]: the Linux implementation over rtnetlink (`NLM_F_REPLACE`, our own
//!   protocol number, `RTA_VIA` for IPv4 via IPv6, pipelined acks).
//! * [`MemoryFib`]: the same semantics in memory, for the simulator and tests.
//! * [`Watcher`]: link, address and route notifications as [`NetEvent`]s; one-shot dumps are
//!   [`NetlinkFib::links`], [`NetlinkFib::addresses`] and [`Fib::dump`].
//! * [`SourceTables`], [`KernelRule`]: source-specific routes on kernels without IPv6 subtrees
//!   (one table and one `from SRC` rule per source prefix, RFC 9079 §5.3 ordering kept); rules
//!   may also select a firewall mark (`fwmark M lookup T`, route verification's probes).
//! * [`Installed`]: the routes we installed and only those (holds, graceful-restart
//!   [`Leftovers`], the rule projection applied make before break), over any [`Fib`].
//! * [`codec`]: the message layouts, pure and panic-free (for tests and fuzzing).
//!
//! Everything is synchronous: the daemon runs the kernel table on a thread of its own.

pub mod codec;
mod error;
mod fib;
pub mod fuzzing;
mod installed;
mod memory;
mod netlink;
pub mod netns;
mod record;
mod route;
mod rules;
mod socket;
mod watch;

pub use error::FibError;
pub use fib::Fib;
pub use installed::{APPLY_BATCH, InstallOp, Installed, Leftovers};
pub use memory::MemoryFib;
pub use netlink::{NetlinkConfig, NetlinkFib};
pub use record::RouteRecord;
pub use route::{
    DumpFilter, FibChange, IPV6_DEFAULT_METRIC, KernelRoute, KernelRouteKey, RTPROT_BABEL,
    RTPROT_BOOT, RTPROT_KERNEL, RTPROT_STATIC, RouteKind, TABLE_LOCAL, TABLE_MAIN,
    UNREACHABLE_METRIC, ipv4_gateway_needs_onlink,
};
pub use rules::{
    DEFAULT_FIRST_RULE_PRIORITY, DEFAULT_FIRST_SOURCE_TABLE, DEFAULT_MAX_SOURCE_TABLES, KernelRule,
    Projection, SourceTables,
};
pub use watch::{
    AddressInfo, Events, Groups, IF_OPER_UP, IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE,
    LinkInfo, NetEvent, WATCH_RCVBUF, Watcher,
};
