//! babeld 1.12's command line, with Althea's `-F fee` and `-q metric-factor`.
//!
//! Order of application, as in babeld: the flags, then `-C` statements in their order, then the
//! configuration files (`-c`, repeatable; `/etc/babeld.conf` when none is given and it exists),
//! so a file can override a flag.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{
    ConfigError, Context, DaemonConfig, Globals, LocalEndpoint, ParseError, Statement, local,
    parse_statement,
};

/// The default configuration file, as babeld's.
pub const DEFAULT_CONFIG: &str = "/etc/babeld.conf";

/// Command-line flags.
#[derive(Parser, Debug, Clone, Default, PartialEq, Eq)]
#[command(
    name = "babeld-rs",
    about = "A Babel routing daemon (RFC 8966), command-line compatible with babeld",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version and exit.
    #[arg(short = 'V')]
    pub version: bool,
    /// Print help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Multicast group (default ff02::1:6).
    #[arg(short = 'm', value_name = "GROUP", allow_hyphen_values = true)]
    pub group: Option<String>,
    /// UDP port (default 6696).
    #[arg(short = 'p', value_name = "PORT", allow_hyphen_values = true)]
    pub port: Option<String>,
    /// State file for the seqno and router-id.
    #[arg(short = 'S', value_name = "FILE", allow_hyphen_values = true)]
    pub state_file: Option<PathBuf>,
    /// Hello interval of wireless interfaces, seconds.
    #[arg(short = 'h', value_name = "SECS", allow_hyphen_values = true)]
    pub hello_wireless: Option<String>,
    /// Hello interval of wired interfaces, seconds.
    #[arg(short = 'H', value_name = "SECS", allow_hyphen_values = true)]
    pub hello_wired: Option<String>,
    /// Diversity: kind[,factor].
    #[arg(short = 'z', value_name = "KIND[,FACTOR]", allow_hyphen_values = true)]
    pub diversity: Option<String>,
    /// Smoothing half-life, seconds.
    #[arg(short = 'M', value_name = "SECS", allow_hyphen_values = true)]
    pub half_life: Option<String>,
    /// Kernel priority of installed routes.
    #[arg(short = 'k', value_name = "PRIORITY", allow_hyphen_values = true)]
    pub kernel_priority: Option<String>,
    /// Allow duplicate routes with this priority.
    #[arg(short = 'A', value_name = "PRIORITY", allow_hyphen_values = true)]
    pub allow_duplicates: Option<String>,
    /// Link detection.
    #[arg(short = 'l')]
    pub link_detect: bool,
    /// Assume every interface is wireless.
    #[arg(short = 'w')]
    pub all_wireless: bool,
    /// Disable split horizon on wired interfaces.
    #[arg(short = 's')]
    pub no_split_horizon: bool,
    /// Random router-id.
    #[arg(short = 'r')]
    pub random_id: bool,
    /// Debug level.
    #[arg(short = 'd', value_name = "LEVEL", allow_hyphen_values = true)]
    pub debug: Option<String>,
    /// Read-only control socket: a port on ::1 or a Unix path.
    #[arg(short = 'g', value_name = "PORT|PATH", allow_hyphen_values = true)]
    pub local_ro: Option<String>,
    /// Read-write control socket: a port on ::1 or a Unix path.
    #[arg(short = 'G', value_name = "PORT|PATH", allow_hyphen_values = true)]
    pub local_rw: Option<String>,
    /// Export routes to this kernel table.
    #[arg(short = 't', value_name = "TABLE", allow_hyphen_values = true)]
    pub export_table: Option<String>,
    /// Import routes from this kernel table (repeatable).
    #[arg(short = 'T', value_name = "TABLE", allow_hyphen_values = true)]
    pub import_tables: Vec<String>,
    /// Configuration file (repeatable).
    #[arg(short = 'c', value_name = "FILE", allow_hyphen_values = true)]
    pub config_files: Vec<PathBuf>,
    /// A configuration statement (repeatable).
    #[arg(short = 'C', value_name = "STATEMENT", allow_hyphen_values = true)]
    pub statements: Vec<String>,
    /// Daemonise.
    #[arg(short = 'D')]
    pub daemonise: bool,
    /// Log file.
    #[arg(short = 'L', value_name = "FILE", allow_hyphen_values = true)]
    pub log_file: Option<PathBuf>,
    /// Pid file ("" for none).
    #[arg(short = 'I', value_name = "FILE", allow_hyphen_values = true)]
    pub pid_file: Option<String>,
    /// Althea: our fee.
    #[arg(short = 'F', value_name = "FEE", allow_hyphen_values = true)]
    pub fee: Option<String>,
    /// Althea: the metric factor of the price/quality selection.
    #[arg(short = 'q', value_name = "FACTOR", allow_hyphen_values = true)]
    pub metric_factor: Option<String>,
    /// Record every engine input, with its instant, and every output to this file (JSONL; see
    /// `babelctl replay`). It holds the interface keys: it is created readable by root only.
    #[arg(long = "record", value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Interfaces to run on.
    pub interfaces: Vec<String>,
}

/// What a daemon start-up needs from its command line and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The merged configuration.
    pub config: DaemonConfig,
    /// Interfaces named on the command line (with those of `interface` statements).
    pub interfaces: Vec<String>,
    /// `-h`, milliseconds.
    pub hello_wireless_ms: Option<u32>,
    /// `-H`, milliseconds.
    pub hello_wired_ms: Option<u32>,
    /// `-w`.
    pub all_wireless: bool,
    /// `-s`.
    pub no_split_horizon: bool,
}

fn flag(name: char, error: ParseError) -> ConfigError {
    ConfigError {
        file: "command line".to_owned(),
        line: 0,
        error: rename(error, &format!("-{name}")),
    }
}

fn rename(e: ParseError, what: &str) -> ParseError {
    match e {
        ParseError::BadValue { value, why, .. } => ParseError::BadValue {
            what: what.to_owned(),
            value,
            why,
        },
        other => other,
    }
}

/// Reads one global option through the configuration grammar, so that flags and statements
/// accept exactly the same values.
fn global_flag(c: char, keyword: &str, value: &str) -> Result<Globals, ConfigError> {
    match parse_statement(&format!("{keyword} {value}"), Context::Startup) {
        Ok(Some(Statement::Global(g))) => Ok(*g),
        Ok(_) => Err(flag(c, ParseError::Missing(keyword.to_owned()))),
        Err(e) => Err(flag(c, e)),
    }
}

impl Cli {
    /// The configuration from the flags and `-C` statements alone (no files read).
    pub fn flags_config(&self) -> Result<Invocation, ConfigError> {
        let mut config = DaemonConfig::default();
        let mut apply =
            |c: char, keyword: &str, value: &Option<String>| -> Result<(), ConfigError> {
                if let Some(v) = value {
                    config.apply(Statement::Global(Box::new(global_flag(c, keyword, v)?)));
                }
                Ok(())
            };
        apply('m', "protocol-group", &self.group)?;
        apply('p', "protocol-port", &self.port)?;
        apply('M', "smoothing-half-life", &self.half_life)?;
        apply('k', "kernel-priority", &self.kernel_priority)?;
        apply('A', "allow-duplicates", &self.allow_duplicates)?;
        apply('d', "debug", &self.debug)?;
        apply('t', "export-table", &self.export_table)?;
        apply('F', "fee", &self.fee)?;
        apply('q', "metric-factor", &self.metric_factor)?;
        for t in &self.import_tables {
            apply('T', "import-table", &Some(t.clone()))?;
        }
        if let Some(z) = &self.diversity {
            let (kind, factor) = z
                .split_once(',')
                .map_or((z.as_str(), None), |(k, f)| (k, Some(f.to_owned())));
            apply('z', "diversity", &Some(kind.to_owned()))?;
            apply('z', "diversity-factor", &factor)?;
        }
        let g = &mut config.globals;
        g.link_detect = self.link_detect.then_some(true).or(g.link_detect);
        g.random_id = self.random_id.then_some(true).or(g.random_id);
        g.daemonise = self.daemonise.then_some(true).or(g.daemonise);
        if let Some(p) = &self.state_file {
            g.state_file = Some(p.clone());
        }
        if let Some(p) = &self.log_file {
            g.log_file = Some(p.clone());
        }
        if let Some(p) = &self.pid_file {
            g.pid_file = Some(PathBuf::from(p));
        }
        if let Some(v) = &self.local_ro {
            g.local_ro = Some(local("-g", v).map_err(|e| flag('g', e))?);
        }
        if let Some(v) = &self.local_rw {
            g.local_rw = Some(local("-G", v).map_err(|e| flag('G', e))?);
        }
        let ms = |c: char, v: &Option<String>| -> Result<Option<u32>, ConfigError> {
            v.as_ref()
                .map(|v| {
                    match parse_statement(&format!("default hello-interval {v}"), Context::Startup)
                    {
                        Ok(Some(Statement::Default(o))) => Ok(o.hello_interval_ms.unwrap_or(0)),
                        Ok(_) => Err(flag(c, ParseError::Missing("interval".to_owned()))),
                        Err(e) => Err(flag(c, e)),
                    }
                })
                .transpose()
        };
        let hello_wireless_ms = ms('h', &self.hello_wireless)?;
        let hello_wired_ms = ms('H', &self.hello_wired)?;
        for (i, s) in self.statements.iter().enumerate() {
            let st = parse_statement(s, Context::Startup).map_err(|error| ConfigError {
                file: "-C".to_owned(),
                line: i + 1,
                error,
            })?;
            if let Some(st) = st {
                config.apply(st);
            }
        }
        Ok(Invocation {
            config,
            interfaces: self.interfaces.clone(),
            hello_wireless_ms,
            hello_wired_ms,
            all_wireless: self.all_wireless,
            no_split_horizon: self.no_split_horizon,
        })
    }

    /// Flags, `-C` statements, then the configuration files.
    pub fn load(&self) -> Result<Invocation, ConfigError> {
        let mut inv = self.flags_config()?;
        let files: Vec<PathBuf> = if self.config_files.is_empty() {
            let d = PathBuf::from(DEFAULT_CONFIG);
            if d.exists() { vec![d] } else { vec![] }
        } else {
            self.config_files.clone()
        };
        for f in files {
            let name = f.display().to_string();
            let text = std::fs::read_to_string(&f).map_err(|e| ConfigError {
                file: name.clone(),
                line: 0,
                error: ParseError::BadValue {
                    what: "file".to_owned(),
                    value: name.clone(),
                    why: io_why(&e),
                },
            })?;
            inv.config.parse_text(&name, &text)?;
        }
        for (name, _) in &inv.config.interfaces {
            if !inv.interfaces.contains(name) {
                inv.interfaces.push(name.clone());
            }
        }
        Ok(inv)
    }
}

fn io_why(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "cannot be read",
    }
}

/// The endpoint type, re-exported for the daemon's control socket.
pub type Endpoint = LocalEndpoint;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("babeld-rs").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn rita_test_invocation() {
        // rita's integration tests start babeld like this.
        let c = cli(&[
            "-I",
            "/tmp/b.pid",
            "-d",
            "1",
            "-r",
            "-L",
            "/tmp/b.log",
            "-H",
            "1",
            "-G",
            "6872",
            "-w",
            "lo",
            "-D",
        ]);
        let inv = c.flags_config().unwrap();
        assert_eq!(inv.config.globals.debug, Some(1));
        assert_eq!(inv.config.globals.random_id, Some(true));
        assert_eq!(inv.config.globals.local_rw, Some(LocalEndpoint::Port(6872)));
        assert_eq!(inv.hello_wired_ms, Some(1000));
        assert!(inv.all_wireless);
        assert_eq!(inv.interfaces, vec!["lo".to_owned()]);
        assert_eq!(inv.config.globals.daemonise, Some(true));
    }

    #[test]
    fn every_babeld_flag_and_althea_flags() {
        let c = cli(&[
            "-V",
            "-m",
            "ff02::1:6",
            "-p",
            "6697",
            "-S",
            "/tmp/s",
            "-h",
            "2",
            "-H",
            "0.5",
            "-z",
            "3,128",
            "-M",
            "8",
            "-k",
            "10",
            "-A",
            "5",
            "-l",
            "-w",
            "-s",
            "-r",
            "-d",
            "2",
            "-g",
            "/run/babel.sock",
            "-G",
            "33123",
            "-t",
            "20",
            "-T",
            "21",
            "-T",
            "22",
            "-c",
            "/nonexistent",
            "-C",
            "fee 3",
            "-D",
            "-L",
            "/tmp/l",
            "-I",
            "",
            "-F",
            "9",
            "-q",
            "1900",
            "eth0",
            "wlan0",
        ]);
        assert!(c.version);
        let inv = c.flags_config().unwrap();
        let g = &inv.config.globals;
        assert_eq!(g.protocol_port, Some(6697));
        assert_eq!(g.diversity, Some(3));
        assert_eq!(g.diversity_factor, Some(128));
        assert_eq!(g.smoothing_half_life, Some(8));
        assert_eq!(g.kernel_priority, Some(10));
        assert_eq!(g.allow_duplicates, Some(5));
        assert_eq!(g.import_tables, vec![21, 22]);
        assert_eq!(g.export_table, Some(20));
        assert_eq!(
            g.local_ro,
            Some(LocalEndpoint::Path("/run/babel.sock".into()))
        );
        // -C comes after -F, as babeld applies statements after flags.
        assert_eq!(g.fee, Some(3));
        assert_eq!(g.metric_factor, Some(1900));
        assert_eq!(g.pid_file, Some(PathBuf::new()));
        assert_eq!(inv.hello_wireless_ms, Some(2000));
        assert_eq!(inv.hello_wired_ms, Some(500));
        assert!(inv.no_split_horizon);
        assert_eq!(inv.interfaces, vec!["eth0".to_owned(), "wlan0".to_owned()]);
        // The named file does not exist: loading says so.
        let e = c.load().unwrap_err();
        assert_eq!(e.file, "/nonexistent");
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(cli(&["-p", "70000"]).flags_config().is_err());
        assert!(cli(&["-F", "-3"]).flags_config().is_err());
        assert!(cli(&["-G", "port"]).flags_config().is_err());
        let e = cli(&["-C", "nonsense 1"]).flags_config().unwrap_err();
        assert_eq!(e.file, "-C");
        assert!(Cli::try_parse_from(["babeld-rs", "-X"]).is_err());
    }

    #[test]
    fn files_override_flags_and_add_interfaces() {
        let dir = std::env::temp_dir().join(format!("babeld-rs-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("b.conf");
        std::fs::write(&f, "fee 11\ninterface wg0 type tunnel\n").unwrap();
        let inv = cli(&["-F", "4", "-c", f.to_str().unwrap(), "eth0"])
            .load()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(inv.config.globals.fee, Some(11));
        assert_eq!(inv.interfaces, vec!["eth0".to_owned(), "wg0".to_owned()]);
    }
}
