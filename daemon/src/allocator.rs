//! glibc's allocator, set for a router that learns a full table in a burst and then stays quiet.
//!
//! By default glibc gives each thread that allocates an arena of its own and raises its
//! thresholds after the first large free (up to 32 MiB kept at the top of the heap, large
//! buffers no longer mapped on their own), so the memory of a 100,000-route burst (the engine's
//! queues, the kernel thread's batches) stays resident long after it was freed. [`tune`] fixes
//! the thresholds and uses one arena; [`release_free_memory`] gives freed pages inside the heap
//! back to the kernel. Only on glibc; elsewhere both do nothing.

/// Allocations from this size on get their own mapping, returned to the kernel when freed. At
/// 32 KiB (128 KiB before) a burst's batches and buffers of 32-128 KiB never become holes in
/// the heap that small long-lived blocks then pin (docs/benchmarks.md, "Ninth pass: steady
/// memory"); a long-lived allocation this large loses at most a page to rounding.
pub const MMAP_THRESHOLD: i32 = 32 * 1024;
/// Free memory at the top of the heap beyond this is returned at once.
pub const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Sets glibc's allocator: one arena for every thread, fixed mapping and trim thresholds. Call
/// first thing in `main`, before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only sets the allocator's parameters; it takes plain integers and is
    // called before other threads exist.
    unsafe {
        use nix::libc::{M_ARENA_MAX, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, mallopt};
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns the heap's free pages to the kernel (`malloc_trim`): after a burst the freed
/// queues and batches are holes in the middle of the heap, which the thresholds alone never
/// return. It walks the free lists, so call it now and then (the daemon: at most every few
/// seconds, when it has been woken by a timer), not per packet.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` takes the allocator's own lock; it only releases pages that hold no
    // allocation.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// How often [`Trim::tick`] releases free memory.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// [`release_free_memory`] at most every [`TRIM_EVERY`].
#[derive(Debug, Default)]
pub struct Trim {
    next: Option<clock::Instant>,
}

impl Trim {
    /// Releases free memory if the last release is [`TRIM_EVERY`] old.
    pub fn tick(&mut self, now: clock::Instant) {
        if self.next.is_none_or(|n| now >= n) {
            release_free_memory();
            self.next = Some(now + TRIM_EVERY);
        }
    }
}
