//! Babel's UDP socket (RFC 8966 §4.1, §5): IPv6, port 6696, ff02::1:6 joined per interface,
//! the receiving interface and destination address known for every datagram (IPV6_PKTINFO),
//! hop limit 1, and a receive buffer of several MiB read in batches.
//!
//! Why the buffer: with default buffers (208 KiB) babeld drops hundreds of datagrams when a
//! neighbour sends a full table, and recovers only at the next periodic update; 10,000 routes
//! took it 27-65 s in our measurements on Debian's babeld 1.12. We ask for [`RECV_BUFFER`], forcing
//! it past `net.core.rmem_max` when privileged (SO_RCVBUFFORCE), and drain the socket completely
//! on every wake-up.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Receive buffer we ask for: enough for a burst of several thousand full datagrams.
pub const RECV_BUFFER: usize = 8 << 20;

/// Largest datagram we read: Babel packets fit an interface MTU (RFC 8966 §4), jumbo frames
/// included. A larger one (only IPv6 fragments can carry it) arrives truncated and is dropped, as
/// babeld, whose buffer is the largest MTU, drops it. Each of the daemon's receive slots is this
/// big: 64 slots of 64 KiB cost 4 MiB of resident memory after the first burst, these 576 KiB.
pub const MAX_DATAGRAM: usize = 9216;

/// One received datagram: its addressing and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Sender address and port; its scope id is the receiving interface for link-local senders.
    pub src: SocketAddrV6,
    /// The address it was sent to (ff02::1:6 for multicast, ours for unicast).
    pub dst: Ipv6Addr,
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The datagram, exactly as long as it is.
    pub bytes: Vec<u8>,
}

/// The Babel socket.
pub struct BabelSocket {
    sock: UdpSocket,
    group: Ipv6Addr,
    port: u16,
    recv_buffer: usize,
}

impl BabelSocket {
    /// Opens `[::]:port`, ready for [`BabelSocket::join`]. Must run inside a tokio runtime.
    pub fn open(port: u16, group: Ipv6Addr) -> io::Result<BabelSocket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(true)?;
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)?;
        s.set_multicast_loop_v6(false)?;
        s.set_multicast_hops_v6(1)?;
        s.set_unicast_hops_v6(1)?;
        setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        // Forcing needs CAP_NET_ADMIN; without it we get what rmem_max allows.
        if setsockopt(&s, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
            s.set_recv_buffer_size(RECV_BUFFER)?;
        }
        let recv_buffer = s.recv_buffer_size()?;
        s.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into())?;
        let sock = UdpSocket::from_std(s.into())?;
        Ok(BabelSocket {
            sock,
            group,
            port,
            recv_buffer,
        })
    }

    /// The receive buffer the kernel granted (it reports twice the requested size).
    pub fn recv_buffer(&self) -> usize {
        self.recv_buffer
    }

    /// Joins the Babel group on an interface.
    pub fn join(&self, ifindex: u32) -> io::Result<()> {
        match self.sock.join_multicast_v6(&self.group, ifindex) {
            Err(e) if e.raw_os_error() == Some(libc_eaddrinuse()) => Ok(()),
            r => r,
        }
    }

    /// Leaves the Babel group on an interface (errors of a vanished interface are ignored).
    pub fn leave(&self, ifindex: u32) {
        let _ = self.sock.leave_multicast_v6(&self.group, ifindex);
    }

    /// Sends `bytes` to `dst` out of `ifindex`: multicast to the group, or unicast to a
    /// neighbour. The interface picks the link-local source address.
    pub async fn send(&self, bytes: &[u8], dst: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        self.send_from(bytes, Ipv6Addr::UNSPECIFIED, dst, ifindex)
            .await
    }

    /// Like [`BabelSocket::send`] from the source address `src` (unspecified: the kernel
    /// chooses). Signed packets (RFC 8967) use it: their MAC covers the source address.
    pub async fn send_from(
        &self,
        bytes: &[u8],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ifindex: u32,
    ) -> io::Result<()> {
        let to = SockaddrIn6::from(SocketAddrV6::new(dst, self.port, 0, ifindex));
        let info = nix::libc::in6_pktinfo {
            ipi6_addr: nix::libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: ifindex,
        };
        let iov = [IoSlice::new(bytes)];
        let fd = self.sock.as_raw_fd();
        self.sock
            .async_io(Interest::WRITABLE, || {
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
                .map(|_| ())
                .map_err(io::Error::from)
            })
            .await
    }

    /// Waits for datagrams and reads up to `max` of them without blocking again, each through
    /// `scratch` (one datagram's room, [`MAX_DATAGRAM`]) into a buffer of its own length: an
    /// idle router keeps one 9 KiB buffer resident, not one per datagram of its largest burst.
    /// A datagram that is dropped (truncated, or without addressing) is not in `out`.
    pub async fn recv_batch(
        &self,
        scratch: &mut Vec<u8>,
        max: usize,
        out: &mut Vec<Received>,
    ) -> io::Result<()> {
        out.clear();
        scratch.resize(MAX_DATAGRAM, 0);
        let fd = self.sock.as_raw_fd();
        loop {
            self.sock.readable().await?;
            for _ in 0..max {
                // try_io clears readiness on WouldBlock, so the next readable() waits.
                match self
                    .sock
                    .try_io(Interest::READABLE, || recv_one(fd, scratch))
                {
                    Ok(Some(r)) => out.push(r),
                    Ok(None) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if !out.is_empty() {
                return Ok(());
            }
        }
    }
}

/// One non-blocking recvmsg through `buf` ([`MAX_DATAGRAM`] long); `Ok(None)` for a datagram
/// without usable addressing or longer than the buffer.
fn recv_one(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Option<Received>> {
    let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let len = msg.bytes;
    let Some(src) = msg.address.map(SocketAddrV6::from) else {
        return Ok(None);
    };
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        tracing::debug!(%src, "datagram larger than {MAX_DATAGRAM} bytes dropped");
        return Ok(None);
    }
    let mut pktinfo = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv6PacketInfo(i) = c {
                pktinfo = Some((Ipv6Addr::from(i.ipi6_addr.s6_addr), i.ipi6_ifindex));
            }
        }
    }
    let Some((dst, ifindex)) = pktinfo else {
        return Ok(None);
    };
    let Some(bytes) = buf.get(..len) else {
        return Ok(None);
    };
    Ok(Some(Received {
        src,
        dst,
        ifindex,
        bytes: bytes.to_vec(),
    }))
}

fn libc_eaddrinuse() -> i32 {
    nix::libc::EADDRINUSE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram dropped in the middle of a batch leaves nothing of its bytes under the next
    /// one's sender.
    #[test]
    fn dropped_datagram_leaves_its_slot() -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let sock = BabelSocket::open(0, Ipv6Addr::LOCALHOST)?;
            let port = sock.sock.local_addr()?.port();
            let to = SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0);
            let big = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0))?;
            let small = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0))?;
            big.send_to(&[0xaa; MAX_DATAGRAM + 100], to)?;
            small.send_to(b"hello", to)?;
            let mut scratch = Vec::new();
            let mut out = Vec::new();
            sock.recv_batch(&mut scratch, 4, &mut out).await?;
            assert_eq!(out.len(), 1);
            let got = out.first().map(|r| (r.src.port(), r.bytes.as_slice()));
            assert_eq!(got, Some((small.local_addr()?.port(), &b"hello"[..])));
            Ok(())
        })
    }
}
