//! A Linux TUN device (`/dev/net/tun`, `IFF_TUN | IFF_NO_PI`) driven by
//! tokio's `AsyncFd`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::unix::AsyncFd;

/// An open TUN interface. The interface disappears when this is dropped.
pub struct TunDevice {
    fd: AsyncFd<File>,
    name: String,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .finish()
    }
}

impl TunDevice {
    /// Creates (or attaches to) TUN interface `name`. Needs CAP_NET_ADMIN
    /// and a tokio runtime.
    pub fn open(name: &str) -> io::Result<Self> {
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
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
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
        // SAFETY: `file` owns its descriptor; the AsyncFd takes ownership
        // of the `File`, so the fd stays open and unchanged for the
        // AsyncFd's whole lifetime, which is what `register` requires
        // (tokio deprecated the safe `AsyncFd::new` for that reason).
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(file) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(TunDevice { fd, name })
    }

    /// Interface name chosen by the kernel.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one IP packet.
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
