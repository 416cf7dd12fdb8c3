//! A NETLINK_ROUTE socket: requests with acks, dumps, notifications. Bounded buffers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::FibError;
use crate::codec::{self, MsgBuilder, NLM_F_DUMP_INTR, NlMsg};

/// Bytes of our receive buffer: kernel dump datagrams are at most 32 KiB, notifications and
/// acks far smaller. A larger datagram is reported as [`FibError::Truncated`]. The buffer is
/// reserved, not zeroed: only the bytes the kernel writes into it become resident, so an idle
/// router pays for the largest datagram it received, not for 64 KiB per socket. After a dump the
/// buffer is given back to the allocator and reserved again on the next receive, so the large
/// datagrams of a dump do not stay resident while the socket only receives acks.
pub(crate) const RECV_BUFFER: usize = 64 * 1024;

/// How often a dump interrupted by concurrent changes is restarted.
const DUMP_ATTEMPTS: usize = 5;

#[derive(Debug)]
pub(crate) struct NlSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl NlSocket {
    /// Opens a NETLINK_ROUTE socket bound to the legacy multicast `groups` bitmask (0: none),
    /// with a kernel receive buffer of `rcvbuf` bytes (forced past `rmem_max` when privileged)
    /// and, if given, a receive timeout.
    pub(crate) fn open(
        groups: u32,
        rcvbuf: usize,
        timeout: Option<Duration>,
    ) -> Result<NlSocket, FibError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(FibError::Socket)?;
        if setsockopt(&fd, sockopt::RcvBufForce, &rcvbuf).is_err() {
            // Unprivileged: the kernel caps the request at rmem_max.
            let _ = setsockopt(&fd, sockopt::RcvBuf, &rcvbuf);
        }
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(FibError::Socket)?;
        let mut sock = NlSocket {
            fd,
            seq: 0,
            buf: Vec::new(),
        };
        sock.set_timeout(timeout)?;
        // Start sequence numbers somewhere unlikely to match a previous socket's stray answers.
        sock.seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() | 1);
        Ok(sock)
    }

    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), FibError> {
        let tv = match timeout {
            Some(t) => TimeVal::new(
                i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
                i64::from(t.subsec_micros()).max(if t.is_zero() { 0 } else { 1 }),
            ),
            None => TimeVal::new(0, 0),
        };
        setsockopt(&self.fd, sockopt::ReceiveTimeout, &tv).map_err(FibError::Socket)
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reserves `n` consecutive sequence numbers and returns the first.
    pub(crate) fn take_seqs(&mut self, n: u32) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n.max(1));
        first
    }

    pub(crate) fn send(&self, bytes: &[u8]) -> Result<(), FibError> {
        let kernel = NetlinkAddr::new(0, 0);
        loop {
            match sendto(self.fd.as_raw_fd(), bytes, &kernel, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(FibError::Socket(e)),
            }
        }
    }

    /// Receives one datagram into the internal buffer and returns its length. `Ok(None)`:
    /// nothing there (non-blocking) or the receive timeout passed.
    pub(crate) fn recv(&mut self, dontwait: bool) -> Result<Option<usize>, FibError> {
        let mut flags = MsgFlags::MSG_TRUNC;
        if dontwait {
            flags |= MsgFlags::MSG_DONTWAIT;
        }
        loop {
            match self.recv_uninit(flags) {
                Ok(n) if n > self.buf.len() => return Err(FibError::Truncated(n)),
                Ok(n) => return Ok(Some(n)),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(None),
                Err(e) => return Err(FibError::Socket(e)),
            }
        }
    }

    /// One `recv(2)` into the buffer's reserved capacity; the buffer's length becomes the bytes
    /// the kernel wrote. Returns the datagram's length (larger than the buffer when truncated,
    /// with `MSG_TRUNC`).
    fn recv_uninit(&mut self, flags: MsgFlags) -> Result<usize, Errno> {
        self.buf.clear();
        if self.buf.capacity() < RECV_BUFFER {
            self.buf.reserve_exact(RECV_BUFFER);
        }
        let spare = self.buf.spare_capacity_mut();
        #[allow(unsafe_code)]
        // SAFETY: `recv` writes at most `spare.len()` bytes into `spare`, memory this Vec owns
        // and reserved; `set_len` then covers only the bytes it wrote (`n`, capped at the
        // capacity when the datagram was truncated). Zeroing the buffer first, as a safe `&mut
        // [u8]` would need, makes all 64 KiB of every socket's buffer resident for good.
        unsafe {
            let n = nix::libc::recv(
                self.fd.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                flags.bits(),
            );
            let n = usize::try_from(n).map_err(|_| Errno::last())?;
            self.buf.set_len(n.min(self.buf.capacity()));
            Ok(n)
        }
    }

    pub(crate) fn buffer(&self, len: usize) -> &[u8] {
        self.buf.get(..len).unwrap_or(&[])
    }

    /// Sends the requests in `msgs`, which carry sequence numbers `first..first+count`, each
    /// with `NLM_F_ACK`, and returns one result per request, in order.
    pub(crate) fn transact(
        &mut self,
        msgs: &MsgBuilder,
        first: u32,
        count: usize,
    ) -> Vec<Result<(), FibError>> {
        let mut results: Vec<Option<Result<(), FibError>>> = (0..count).map(|_| None).collect();
        if count == 0 {
            return Vec::new();
        }
        if let Err(e) = self.send(msgs.as_bytes()) {
            let errno = e.errno().unwrap_or(Errno::EIO);
            return (0..count).map(|_| Err(FibError::Socket(errno))).collect();
        }
        let mut missing = count;
        while missing > 0 {
            let len = match self.recv(false) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    tracing::warn!(missing, "netlink: no ack from the kernel in time");
                    return finish(results, || FibError::Timeout);
                }
                Err(FibError::Socket(Errno::ENOBUFS)) => {
                    // Our receive buffer overflowed: some acks are lost for good.
                    tracing::warn!(missing, "netlink: acks lost (ENOBUFS)");
                    return finish(results, || FibError::Socket(Errno::ENOBUFS));
                }
                Err(e) => {
                    let errno = e.errno().unwrap_or(Errno::EIO);
                    return finish(results, || FibError::Socket(errno));
                }
            };
            for msg in codec::messages(self.buffer(len)) {
                let Ok(msg) = msg else {
                    tracing::warn!("netlink: malformed answer skipped");
                    break;
                };
                if msg.ty != codec::NLMSG_ERROR {
                    continue;
                }
                let offset = usize::try_from(msg.seq.wrapping_sub(first)).unwrap_or(usize::MAX);
                if let Some(slot) = results.get_mut(offset)
                    && slot.is_none()
                {
                    *slot = Some(codec::decode_error(msg.payload));
                    missing -= 1;
                }
            }
        }
        finish(results, || FibError::Timeout)
    }

    /// Runs a dump request of message type `ty` and decodes every answer with `decode`
    /// (answers it cannot decode are logged and skipped). Restarted when the kernel flags the
    /// dump as interrupted.
    pub(crate) fn dump<T>(
        &mut self,
        ty: u16,
        header_len: usize,
        decode: impl FnMut(&NlMsg<'_>) -> Result<Option<T>, FibError>,
    ) -> Result<Vec<T>, FibError> {
        let dumped = self.dump_attempts(ty, header_len, decode);
        // The dump's datagrams filled the buffer; give it back (see RECV_BUFFER).
        self.buf = Vec::new();
        dumped
    }

    fn dump_attempts<T>(
        &mut self,
        ty: u16,
        header_len: usize,
        mut decode: impl FnMut(&NlMsg<'_>) -> Result<Option<T>, FibError>,
    ) -> Result<Vec<T>, FibError> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.take_seqs(1);
            let mut req = MsgBuilder::new();
            req.dump_request(ty, header_len, seq);
            self.send(req.as_bytes())?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                let len = self.recv(false)?.ok_or(FibError::Timeout)?;
                for msg in codec::messages(self.buffer(len)) {
                    let msg = msg?;
                    if msg.seq != seq {
                        continue;
                    }
                    if msg.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match msg.ty {
                        codec::NLMSG_DONE => {
                            // A dump that failed half-way ends with a negative errno here.
                            if msg.payload.len() >= 4 {
                                codec::decode_error(msg.payload)?;
                            }
                            break 'recv;
                        }
                        codec::NLMSG_ERROR => {
                            codec::decode_error(msg.payload)?;
                        }
                        codec::NLMSG_NOOP => {}
                        _ => match decode(&msg) {
                            Ok(Some(item)) => out.push(item),
                            Ok(None) => {}
                            Err(e) => tracing::warn!(error = %e, "netlink dump: entry skipped"),
                        },
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
            tracing::debug!("netlink dump interrupted, restarting");
        }
        Err(FibError::DumpInterrupted)
    }
}

fn finish(
    results: Vec<Option<Result<(), FibError>>>,
    missing: impl Fn() -> FibError,
) -> Vec<Result<(), FibError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(missing())))
        .collect()
}
