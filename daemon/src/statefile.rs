//! The state file: our router-id and seqno across restarts (babeld's `-S`, RFC 8966 §3.2.2).
//!
//! RFC 8966 §3.5.1 wants a router's seqno never to go backwards: neighbours keep the highest
//! seqno they saw from us, and ignore our routes until we exceed it. The daemon therefore
//! writes a seqno here, durably ([`write`]: write, fsync, rename, fsync of the directory),
//! *before* any packet carrying it is sent, and starts the next run above it ([`next_seqno`]).
//! A process killed at any instant then restarts with a seqno it never used.

use std::collections::BTreeMap;
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

/// The file that keeps each interface's last multicast Hello seqno across a crash (graceful
/// restart, issue 11): `STATE.hello` beside the state file.
///
/// It is rewritten with every Hello but never synced: a process killed at any instant leaves the
/// page cache, hence the file, intact (one `pwrite` is never torn by the death of its caller),
/// and only a machine that goes down loses it, when the neighbours see a reboot anyway. No
/// flash write per Hello therefore: on tmpfs (OpenWrt's `/var`) none at all, on a disk one
/// writeback of one page every few tens of seconds at most. The file names the boot it was
/// written in (`/proc/sys/kernel/random/boot_id`): after a reboot it is ignored, since our kernel
/// routes did not survive and the neighbours must hear our wildcard retraction.
pub fn hello_path(state: &Path) -> std::path::PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".hello");
    std::path::PathBuf::from(p)
}

/// This boot's id, if the kernel tells it.
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The Hello seqnos of [`hello_path`], by interface name, if the file was written in boot `boot`
/// and is complete; empty otherwise.
pub fn read_hellos(p: &Path, boot: Option<&str>) -> BTreeMap<String, u16> {
    let Ok(text) = fs::read_to_string(p) else {
        return BTreeMap::new();
    };
    parse_hellos(&text, boot).unwrap_or_default()
}

fn parse_hellos(text: &str, boot: Option<&str>) -> Option<BTreeMap<String, u16>> {
    let mut lines = text.lines();
    let first: Vec<&str> = lines.next()?.split_whitespace().collect();
    match (first.as_slice(), boot) {
        (["boot", id], Some(b)) if *id == b => {}
        _ => return None,
    }
    let mut out = BTreeMap::new();
    for line in lines {
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["hello", name, seqno] => {
                out.insert((*name).to_owned(), seqno.parse().ok()?);
            }
            // Anything after the end marker is left over from a longer earlier content.
            ["end"] => return Some(out),
            _ => return None,
        }
    }
    None
}

/// Writes [`hello_path`] as the Hellos go out (see there why without a sync).
pub struct HelloFile {
    file: fs::File,
    boot: String,
    written: Vec<(String, u16)>,
}

impl HelloFile {
    /// Opens (creates) the file for boot `boot`.
    pub fn open(p: &Path, boot: String) -> std::io::Result<HelloFile> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)?;
        Ok(HelloFile {
            file,
            boot,
            written: Vec::new(),
        })
    }

    /// Records the current Hello seqnos (the last sent on each interface); writes only when they
    /// changed, in one `pwrite` at offset 0.
    pub fn update<'a>(
        &mut self,
        seqnos: impl Iterator<Item = (&'a str, u16)>,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let now: Vec<(String, u16)> = seqnos.map(|(n, s)| (n.to_owned(), s)).collect();
        if now == self.written {
            return Ok(());
        }
        let mut text = format!("boot {}\n", self.boot);
        for (name, seqno) in &now {
            text.push_str(&format!("hello {name} {seqno}\n"));
        }
        text.push_str("end\n");
        self.file.write_all_at(text.as_bytes(), 0)?;
        self.written = now;
        Ok(())
    }
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

    #[test]
    fn hello_seqnos_survive_only_in_the_same_boot() {
        let dir = std::env::temp_dir().join(format!("hellofile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = hello_path(&dir.join("state"));
        assert!(p.ends_with("state.hello"));
        assert!(read_hellos(&p, Some("b1")).is_empty());
        let mut f = HelloFile::open(&p, "b1".into()).unwrap();
        f.update([("eth0", 7u16), ("wlan-long-name", 65535)].into_iter())
            .unwrap();
        // A shorter content later leaves the old tail behind the end marker.
        f.update([("eth0", 8u16)].into_iter()).unwrap();
        let got = read_hellos(&p, Some("b1"));
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [("eth0".into(), 8)]);
        // Another boot, no boot id, a torn or foreign file: nothing.
        assert!(read_hellos(&p, Some("b2")).is_empty());
        assert!(read_hellos(&p, None).is_empty());
        assert_eq!(parse_hellos("boot b1\nhello eth0 8\n", Some("b1")), None);
        assert_eq!(
            parse_hellos("boot b1\nhello eth0 x\nend\n", Some("b1")),
            None
        );
        assert_eq!(parse_hellos("garbage", Some("b1")), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
