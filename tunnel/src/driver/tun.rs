//! A Linux TUN device (`/dev/net/tun`, `IFF_TUN | IFF_NO_PI`) driven by
//! tokio's `AsyncFd`, optionally with the virtio-net header
//! (`IFF_VNET_HDR`) and segmentation offloads (`TUNSETOFFLOAD`), see
//! [`TunDevice::open_offload`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::unix::AsyncFd;

/// An open TUN interface. The interface disappears when this is dropped.
pub struct TunDevice {
    fd: AsyncFd<File>,
    name: String,
    /// Every read and write starts with a virtio-net header.
    vnet_hdr: bool,
    /// `TUN_F_*` offloads the kernel accepted.
    offloads: libc::c_uint,
}

/// Offloads asked for by [`TunDevice::open_offload`], best first: TCP and
/// UDP segmentation (TSO, USO) with checksum offload; then TSO only (USO
/// needs Linux 6.2); then checksum offload only.
const OFFLOAD_CHOICES: [libc::c_uint; 3] = [
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_USO4 | libc::TUN_F_USO6,
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6,
    libc::TUN_F_CSUM,
];

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .finish()
    }
}

impl TunDevice {
    /// Creates (or attaches to) TUN interface `name`: one IP packet per
    /// read and write. Needs CAP_NET_ADMIN and a tokio runtime.
    pub fn open(name: &str) -> io::Result<Self> {
        Self::open_with(name, false)
    }

    /// Like [`TunDevice::open`], but with the virtio-net header and the
    /// best segmentation offloads the kernel accepts, so one read may
    /// return a TCP or UDP segment of up to 64 KiB (split it with
    /// `offload::split`) and one write may carry many coalesced segments.
    /// Falls back to a plain device when the kernel refuses the header.
    pub fn open_offload(name: &str) -> io::Result<Self> {
        match Self::open_with(name, true) {
            Ok(t) => Ok(t),
            Err(e) => {
                tracing::info!(error = %e, "tun: no virtio-net header, plain packets");
                Self::open_with(name, false)
            }
        }
    }

    fn open_with(name: &str, vnet_hdr: bool) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad interface name",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut name_buf = [0 as libc::c_char; libc::IFNAMSIZ];
        for (d, s) in name_buf.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        let mut req = IfReq {
            name: name_buf,
            flags: (libc::IFF_TUN | libc::IFF_NO_PI | if vnet_hdr { libc::IFF_VNET_HDR } else { 0 })
                as libc::c_short,
            _pad: [0; 22],
        };
        // SAFETY: TUNSETIFF is the kernel's only interface to bind a TUN
        // fd to an interface. `req` is a properly initialised `struct
        // ifreq`-compatible buffer (name + flags, 40 bytes) that lives for
        // the whole call, and the fd is the open /dev/net/tun file.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let len = req
            .name
            .iter()
            .position(|c| *c == 0)
            .unwrap_or(req.name.len());
        let name = req
            .name
            .iter()
            .take(len)
            .map(|c| *c as u8 as char)
            .collect();
        let mut offloads = 0;
        if vnet_hdr {
            for want in OFFLOAD_CHOICES {
                // SAFETY: TUNSETOFFLOAD takes its argument by value (an
                // unsigned long of TUN_F_* bits), no pointer is passed;
                // the fd is the open, bound /dev/net/tun file.
                #[allow(unsafe_code)]
                let rc = unsafe {
                    libc::ioctl(
                        file.as_raw_fd(),
                        libc::TUNSETOFFLOAD,
                        libc::c_ulong::from(want),
                    )
                };
                if rc == 0 {
                    offloads = want;
                    break;
                }
            }
        }
        // SAFETY: `file` owns its descriptor; the AsyncFd takes ownership
        // of the `File`, so the fd stays open and unchanged for the
        // AsyncFd's whole lifetime, which is what `register` requires
        // (tokio deprecated the safe `AsyncFd::new` for that reason).
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(file) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(TunDevice {
            fd,
            name,
            vnet_hdr,
            offloads,
        })
    }

    /// Whether reads and writes carry a virtio-net header.
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// Whether the kernel hands us TCP segments larger than the MTU.
    pub fn tso(&self) -> bool {
        self.offloads & libc::TUN_F_TSO4 != 0
    }

    /// Whether the kernel hands us UDP segments larger than the MTU.
    pub fn uso(&self) -> bool {
        self.offloads & libc::TUN_F_USO4 != 0
    }

    /// Interface name chosen by the kernel.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one IP packet (after a virtio-net header if
    /// [`TunDevice::vnet_hdr`]).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|f| f.get_ref().read(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads one IP packet if one is queued (`WouldBlock` otherwise).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.get_ref().read(buf)
    }

    /// Writes one IP packet.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|f| f.get_ref().write(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// `struct ifreq` restricted to the fields TUNSETIFF uses.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}
