//! A local EVM node (foundry's `anvil`, installed from the npm registry by `scripts/test.sh`) for
//! tests and demonstrations: started on a loopback port chosen by the node, stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where `scripts/test.sh` installs the node and the compiler.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SETTLEMENT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"))
}

/// The anvil binary, if installed.
pub fn binary() -> Option<PathBuf> {
    let path = tools_dir().join("node_modules/.bin/anvil");
    path.exists().then_some(path)
}

/// A running anvil process; killed when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    url: String,
    port: u16,
}

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// The binary is not installed (run `scripts/test.sh` or `npm install --prefix`).
    #[error("anvil is not installed under {0}")]
    Missing(PathBuf),
    /// Spawning or reading it failed.
    #[error("anvil: {0}")]
    Io(#[from] std::io::Error),
    /// It exited before it said where it listens.
    #[error("anvil exited before listening")]
    NoListenLine,
}

impl Anvil {
    /// Starts a node with `chain_id` on 127.0.0.1 and a port the node picks.
    pub fn start(chain_id: u64) -> Result<Anvil, AnvilError> {
        Anvil::start_on(chain_id, 0)
    }

    /// Starts a node on a given port (0: the node picks), e.g. to bring a chain back where it was.
    pub fn start_on(chain_id: u64, port: u16) -> Result<Anvil, AnvilError> {
        let bin = binary().ok_or_else(|| AnvilError::Missing(tools_dir()))?;
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--chain-id")
            .arg(chain_id.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AnvilError::NoListenLine);
        };
        let mut lines = BufReader::new(stdout).lines();
        let mut found = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(addr) = line.trim().strip_prefix("Listening on ") {
                found = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                break;
            }
        }
        let Some(port) = found else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AnvilError::NoListenLine);
        };
        // Keep draining the node's log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Anvil {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
        })
    }

    /// The node's JSON-RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The node's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
