//! TAP and TUN devices in namespaces, and a delaying Ethernet link. The kernel of the CI
//! machine has no `sch_netem`, so [`TapLink`] joins two TAP devices (one in each test
//! namespace) by a thread that copies every frame from one to the other after a one-way delay
//! that can be changed while the link runs. Frames keep their order and none is dropped by the
//! forwarder. Dropping the [`TapLink`] stops the thread and closes both TAP file descriptors,
//! which removes the (non-persistent) devices.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::Netns;

/// Two TAP devices in two namespaces, joined with a delay.
pub struct TapLink {
    delay_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl TapLink {
    /// Creates TAP `dev_a` in `a` and `dev_b` in `b`, sets both up, and forwards between them
    /// with `one_way` delay in each direction (so the RTT is twice that).
    pub fn new(a: &Netns, dev_a: &str, b: &Netns, dev_b: &str, one_way: Duration) -> TapLink {
        let fa = open_tap_in(a, dev_a);
        let fb = open_tap_in(b, dev_b);
        a.ip(&["link", "set", dev_a, "up"]);
        b.ip(&["link", "set", dev_b, "up"]);
        let delay_us = Arc::new(AtomicU64::new(micros(one_way)));
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let thread = {
            let (delay_us, stop, forwarded) = (delay_us.clone(), stop.clone(), forwarded.clone());
            std::thread::spawn(move || forward(&[fa, fb], &delay_us, &stop, &forwarded))
        };
        TapLink {
            delay_us,
            stop,
            forwarded,
            thread: Some(thread),
        }
    }

    /// Changes the one-way delay for frames read from now on.
    pub fn set_delay(&self, one_way: Duration) {
        self.delay_us.store(micros(one_way), Ordering::Relaxed);
    }

    /// Frames delivered so far (both directions).
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for TapLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `struct ifreq` restricted to the fields TUNSETIFF uses (name, flags; 40 bytes in all).
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens TAP device `name` inside `ns` (created there, never in the root namespace): a
/// non-blocking descriptor that reads and writes whole Ethernet frames. The device goes when the
/// descriptor is closed.
pub fn open_tap_in(ns: &Netns, name: &str) -> File {
    let name = name.to_owned();
    ns.spawn(move || open_tuntap(&name, libc::IFF_TAP))
        .join()
        .unwrap()
}

/// Opens TUN device `name` inside `ns`: like [`open_tap_in`], with whole IP packets.
pub fn open_tun_in(ns: &Netns, name: &str) -> File {
    let name = name.to_owned();
    ns.spawn(move || open_tuntap(&name, libc::IFF_TUN))
        .join()
        .unwrap()
}

fn open_tuntap(name: &str, kind: libc::c_int) -> File {
    assert!(!name.is_empty() && name.len() < libc::IFNAMSIZ, "{name}");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (kind | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: TUNSETIFF is the kernel's only interface for binding a /dev/net/tun descriptor
    // to a TUN or TAP device, and there is no safe wrapper for it in our dependencies. `req` is
    // an initialised `struct ifreq`-compatible buffer that outlives the call, and the
    // descriptor is the open /dev/net/tun file.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
    assert!(
        rc >= 0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    file
}

/// The forwarding loop: `taps[0]` ↔ `taps[1]`. `queues[i]` holds frames read from `taps[i]`
/// with the time they are due on the other side; due times never decrease within a queue, so
/// a shorter delay set later cannot reorder frames.
fn forward(taps: &[File; 2], delay_us: &AtomicU64, stop: &AtomicBool, forwarded: &AtomicU64) {
    let mut queues: [VecDeque<(Instant, Vec<u8>)>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        for (i, q) in queues.iter_mut().enumerate() {
            let out = &taps[1 - i];
            while let Some((due, frame)) = q.front() {
                if *due > now {
                    break;
                }
                match (&*out).write(frame) {
                    Ok(_) => {
                        forwarded.fetch_add(1, Ordering::Relaxed);
                        q.pop_front();
                    }
                    // Kernel queue full: keep the frame and retry on the next round.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // The device is down (EIO): the frame is lost on the wire, as on a cable.
                    Err(_) => {
                        q.pop_front();
                    }
                }
            }
        }
        // Sleep until a frame arrives, the next one is due, or 20 ms pass (to see `stop`).
        let next = queues
            .iter()
            .filter_map(|q| q.front().map(|(d, _)| *d))
            .min();
        let wait = next.map_or(Duration::from_millis(20), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20))
        });
        // Round up to whole milliseconds so the loop does not spin before a due time.
        let ms = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(20);
        let mut fds = [
            PollFd::new(taps[0].as_fd(), PollFlags::POLLIN),
            PollFd::new(taps[1].as_fd(), PollFlags::POLLIN),
        ];
        if poll(&mut fds, PollTimeout::from(ms)).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        let delay = Duration::from_micros(delay_us.load(Ordering::Relaxed));
        for (i, tap) in taps.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            loop {
                match (&*tap).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let q = &mut queues[i];
                        let mut due = Instant::now() + delay;
                        if let Some((last, _)) = q.back() {
                            due = due.max(*last);
                        }
                        q.push_back((due, buf[..n].to_vec()));
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
