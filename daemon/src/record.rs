//! `babeld-rs --record FILE`: the daemon's engine as a [`RecordingDriver`] with a sink, and what
//! `babelctl replay` needs to rebuild the daemon's side of the engine (its filters, from which
//! it builds the engine's filter hook, the one engine hook that is not an input).

use std::fs::OpenOptions;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use babel_core::record::{Header, RecordingDriver};
use babel_core::{Engine, EngineConfig, Instant, RouteFilter};

use crate::config::{Filter, FilterKind};
use crate::redistribute::{FilterRules, TunnelEndpoint};

/// Wraps a new `engine` (created at `start` with `config`, nothing fed yet) in a driver that
/// records to `path`, truncating it. The file is created with mode 0600: it holds the keys.
pub fn start(
    path: &Path,
    engine: Engine,
    start: Instant,
    config: EngineConfig,
    filters: &[(FilterKind, Filter)],
    endpoints: &[TunnelEndpoint],
) -> anyhow::Result<RecordingDriver> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("record file {}", path.display()))?;
    // Every filter: the replay builds the engine's hook from them as the daemon does.
    let header = Header::new(
        start,
        config,
        serde_json::json!({
            "daemon": "babeld-rs",
            "filters": filters,
            "tunnel_endpoints": endpoints,
        }),
    );
    RecordingDriver::recording(engine, &header, Box::new(BufWriter::new(file)))
        .with_context(|| format!("writing {}", path.display()))
}

/// The engine's filter hook, built from the filters in a recording's header as the daemon
/// built it from its configuration.
pub fn route_filter(header: &Header) -> anyhow::Result<Option<Arc<dyn RouteFilter>>> {
    let filters: Vec<(FilterKind, Filter)> = match header.driver.get("filters") {
        Some(f) => serde_json::from_value(f.clone()).context("the header's filters")?,
        None => Vec::new(),
    };
    let endpoints: Vec<TunnelEndpoint> = match header.driver.get("tunnel_endpoints") {
        Some(e) => serde_json::from_value(e.clone()).context("the header's tunnel endpoints")?,
        None => Vec::new(),
    };
    Ok(FilterRules::new(&filters, endpoints).map(|f| Arc::new(f) as Arc<dyn RouteFilter>))
}
