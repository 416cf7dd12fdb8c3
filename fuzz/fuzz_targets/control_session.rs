//! The control protocol's session (issue 11): any bytes, in reads of any size, from a
//! read-write client. Nothing may panic, a session holds at most one line, and its output stays
//! within one reply of its room.
#![no_main]

use daemon::config::Statement;
use daemon::control::{Handler, MAX_LINE, Session};
use libfuzzer_sys::fuzz_target;

/// A handler with a table of a few routes; statements alternate between applied and refused.
struct Fake {
    n: usize,
}

impl Handler for Fake {
    fn dump(&mut self) -> Vec<String> {
        (0..4).map(|i| format!("add route {i} prefix 10.0.0.{i}/32")).collect()
    }
    fn dump_json(&mut self) -> String {
        "{\"routes\":[]}".into()
    }
    fn statement(&mut self, _: Statement) -> Result<(), String> {
        self.n += 1;
        if self.n % 2 == 0 { Ok(()) } else { Err("no".into()) }
    }
    fn flush_interface(&mut self, name: &str) -> Result<(), String> {
        Err(format!("no interface {name}"))
    }
}

const ROOM: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let mut s = Session::new(true);
    let mut h = Fake { n: 0 };
    let mut out = Vec::new();
    // The first byte of each chunk gives its length: reads of 0 to 255 bytes. An endless input
    // is the same chunks repeated.
    let mut rest = data;
    for _ in 0..64 {
        let Some((&n, tail)) = rest.split_first() else {
            break;
        };
        let n = usize::from(n).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = if tail.is_empty() { data } else { tail };
        let before = out.len();
        s.input_bounded(chunk, &mut h, &mut out, ROOM);
        assert!(s.pending_len() <= MAX_LINE);
        // One reply at most past the room; the largest here is a dump (well under 1 KiB).
        assert!(out.len() <= ROOM.max(before) + 1024, "{}", out.len());
        if s.is_closed() {
            break;
        }
    }
});
