//! The pid file: refuse to run twice, as babeld does, without letting a stale file block a
//! restart.

use std::fs;
use std::io::Write as _;
use std::path::Path;

/// Whether process `pid` is a live instance of this program: it exists, is not a zombie, and
/// runs the same executable name as we do. A pid file left by a crash may name a pid that the
/// system has since given to another process, or a zombie nobody reaped; neither is a daemon.
pub fn is_running_instance(pid: i32) -> bool {
    if pid <= 0 || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        // No procfs: trust the signal check.
        return true;
    };
    // `pid (comm) S ...`: the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return false;
    }
    match (
        fs::read_to_string(format!("/proc/{pid}/comm")),
        fs::read_to_string("/proc/self/comm"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs.trim() == ours.trim(),
        _ => true,
    }
}

/// Creates the pid file with our pid; fails if it names a running instance.
pub fn write(p: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Ok(old) = fs::read_to_string(p)
        && let Ok(pid) = old.trim().parse::<i32>()
        && pid != i32::try_from(std::process::id()).unwrap_or(0)
        && is_running_instance(pid)
    {
        anyhow::bail!("{} exists and process {pid} is running", p.display());
    }
    let tmp = p.with_extension("pid.tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("pid file {}", tmp.display()))?;
    writeln!(f, "{}", std::process::id())?;
    fs::rename(&tmp, p).with_context(|| format!("pid file {}", p.display()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ourselves_block_and_strangers_and_zombies_do_not() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(is_running_instance(me));
        // Another program.
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(other.id()).unwrap();
        assert!(!is_running_instance(pid));
        other.kill().unwrap();
        // Killed but not yet reaped: a zombie.
        let state = || fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let mut tries = 0;
        while !state().contains(") Z") && tries < 200 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            tries += 1;
        }
        assert!(state().contains(") Z"), "{}", state());
        assert!(!is_running_instance(pid));
        other.wait().unwrap();
        assert!(!is_running_instance(pid));
        assert!(!is_running_instance(0) && !is_running_instance(-1));
    }

    #[test]
    fn stale_files_are_replaced() {
        let dir = std::env::temp_dir().join(format!("pidfile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("babeld.pid");
        let mut z = std::process::Command::new("true").spawn().unwrap();
        let zpid = z.id();
        // `true` exits at once and stays a zombie until waited for.
        fs::write(&p, format!("{zpid}\n")).unwrap();
        let stat = || fs::read_to_string(format!("/proc/{zpid}/stat")).unwrap_or_default();
        for _ in 0..200 {
            if stat().contains(") Z") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(stat().contains(") Z"));
        write(&p).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap().trim(),
            std::process::id().to_string()
        );
        z.wait().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
