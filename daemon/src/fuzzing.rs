//! The checks the `config` and `verification` fuzz targets run (`fuzz/`), shared with the
//! regression tests that replay saved crash inputs (`daemon/tests/fuzz_regressions.rs`). Panics
//! mean a bug. The verification target's is in [`verification`].
//!
//! Configuration files, `-C` statements and the control socket's statements go through the
//! same grammar ([`crate::config::parse_statement`]); the command line goes through
//! [`crate::cli::Cli`] and reads every value through that grammar too.

pub mod verification;

use clap::Parser;

use crate::cli::Cli;
use crate::config::{Context, DaemonConfig, parse_statement};

/// The first octet picks the input: even, a configuration text (also read line by line as
/// runtime statements); odd, a command line (arguments separated by NUL octets), read without
/// touching any file.
pub fn config_check(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first & 1 == 0 {
        let text = String::from_utf8_lossy(rest);
        let mut config = DaemonConfig::default();
        if config.parse_text("fuzz.conf", &text).is_ok() {
            for (name, _) in &config.interfaces {
                let _ = config.interface_options(name);
            }
        }
        for line in text.lines() {
            if let Ok(Some(s)) = parse_statement(line, Context::Runtime) {
                config.apply(s);
            }
        }
    } else {
        let args = rest
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned());
        if let Ok(cli) = Cli::try_parse_from(std::iter::once("babeld-rs".to_owned()).chain(args)) {
            // `load` would read files; the flags and `-C` statements are the untrusted part.
            let _ = cli.flags_config();
        }
    }
}
