//! The state file: our router-id and seqno across restarts (babeld's `-S`, RFC 8966 §3.2.2).
//!
//! RFC 8966 §3.5.1 wants a router's seqno never to go backwards: neighbours keep the highest
//! seqno they saw from us, and ignore our routes until we exceed it. The daemon therefore
//! writes a seqno here, durably ([`write`]: write, fsync, rename, fsync of the directory),
//! *before* any packet carrying it is sent, and starts the next run above it ([`next_seqno`]).
//! A process killed at any instant then restarts with a seqno it never used.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use babel_wire::RouterId;

/// What the state file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The last seqno we may have used.
    pub seqno: Option<u16>,
    /// Our router-id (absent in babeld's own files).
    pub router_id: Option<RouterId>,
}

/// Reads a state file; a missing or unreadable file is an empty state.
pub fn read(p: &Path) -> State {
    let mut s = State::default();
    let Ok(text) = fs::read_to_string(p) else {
        return s;
    };
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("seqno"), Some(v)) => s.seqno = v.parse().ok(),
            (Some("router-id"), Some(v)) => s.router_id = v.parse().ok(),
            // babeld's own state file holds just the seqno.
            (Some(v), None) => s.seqno = v.parse().ok(),
            _ => {}
        }
    }
    s
}

/// The seqno to start with: one above the saved one, or `fresh` (random) without a file.
pub fn next_seqno(saved: &State, fresh: u16) -> u16 {
    saved.seqno.map_or(fresh, |s| s.wrapping_add(1))
}

/// Writes the state durably: a temporary file is written and synced, renamed over the old one,
/// and the directory synced, so that after a crash the file holds either the old or the new
/// state, never a torn one, and the new one once this returns.
pub fn write(p: &Path, id: RouterId, seqno: u16) -> std::io::Result<()> {
    let tmp = p.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(format!("router-id {id}\nseqno {seqno}\n").as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, p)?;
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_babeld_format() {
        let dir = std::env::temp_dir().join(format!("statefile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state");
        assert_eq!(read(&p), State::default());
        assert_eq!(next_seqno(&read(&p), 77), 77);
        let id = RouterId([1, 2, 3, 4, 5, 6, 7, 8]);
        write(&p, id, 65535).unwrap();
        let s = read(&p);
        assert_eq!((s.router_id, s.seqno), (Some(id), Some(65535)));
        // Modulo 2^16, as RFC 8966 §3.2.1 compares seqnos.
        assert_eq!(next_seqno(&s, 77), 0);
        fs::write(&p, "4242\n").unwrap();
        assert_eq!(read(&p).seqno, Some(4242));
        fs::remove_dir_all(&dir).unwrap();
    }
}
