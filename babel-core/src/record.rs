//! Record and replay (feature `serde`).
//!
//! A [`RecordingDriver`] is the one way a driver touches the engine: every input goes through
//! [`RecordingDriver::input`] (so a recorder cannot miss one), every output comes out of
//! [`RecordingDriver::drain`], and reads go through `Deref<Target = Engine>`. With a sink it writes a
//! recording, one JSON object per line:
//!
//! * the first line, `{"header": {...}}`: format, version, the instant the engine was created
//!   at and its whole [`EngineConfig`] (the seed, the initial seqno, the RFC 8967 entropy), plus
//!   whatever the driver needs to rebuild its hooks (the daemon's `in`/`out` filters);
//! * an input, `{"at": MICROS, "input": "packet", ...}` ([`Timed`]);
//! * the outputs of a drain, `{"outputs": [...]}` ([`Output`]), written only when not empty.
//!
//! Drains are recorded because they are interactions too: the engine packs the small messages
//! produced since the last drain into shared packets, so where the driver drained decides the
//! bytes it sent. [`replay`] feeds the inputs to a fresh engine built from the header, drains
//! where the recording drained, and compares. The engine's randomness comes from its seed and
//! its clock from the recorded instants, so a replay gives the same outputs, in the same order.
//!
//! A recording holds the interface keys and the seed: keep it as secret as the configuration.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Deref;
use std::sync::Arc;

use babel_wire::{DecodeOptions, Flavour, Message};

use crate::config::EngineConfig;
use crate::engine::{Engine, EngineError};
use crate::filter::RouteFilter;
use crate::input::{Input, InputError, hex_bytes};
use crate::output::{Destination, Event, RouteChange, Transmit};
use crate::time::Instant;

/// The `format` of a recording's header.
pub const RECORD_FORMAT: &str = "babel-core-record";
/// The `version` of the format written here.
pub const RECORD_VERSION: u32 = 1;

/// First line of a recording: what a fresh engine needs to behave the same.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// [`RECORD_FORMAT`].
    pub format: String,
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The instant the engine was created at.
    pub start: Instant,
    /// The engine's configuration, seed included.
    pub config: EngineConfig,
    /// Anything the driver needs to rebuild what is not an input (the daemon: its filters).
    #[serde(default)]
    pub driver: serde_json::Value,
}

impl Header {
    /// A header for an engine created at `start` with `config`.
    pub fn new(start: Instant, config: EngineConfig, driver: serde_json::Value) -> Header {
        Header {
            format: RECORD_FORMAT.to_owned(),
            version: RECORD_VERSION,
            start,
            config,
            driver,
        }
    }
}

/// An input with its instant: one line of a recording or of a conformance case.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timed {
    /// When it happened.
    pub at: Instant,
    /// What happened.
    #[serde(flatten)]
    pub input: Input,
}

/// A packet the engine sent, with its messages decoded (so that a case can be read).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransmitRecord {
    /// Outgoing interface.
    pub ifindex: u32,
    /// Destination.
    pub dst: Destination,
    /// The packet's messages, decoded with the interface's flavour.
    pub messages: Vec<Message>,
    /// Errors the decoder found in it (an engine bug if not empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decode_errors: Vec<String>,
    /// The encoded packet (MACs included).
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
}

impl TransmitRecord {
    /// The record of a transmit, decoded with `flavour`.
    pub fn new(t: &Transmit, flavour: Flavour) -> TransmitRecord {
        let (messages, decode_errors) =
            match babel_wire::decode(&t.bytes, &DecodeOptions { flavour }) {
                Ok(d) => (
                    d.packet.messages,
                    d.errors.iter().map(ToString::to_string).collect(),
                ),
                Err(e) => (Vec::new(), vec![e.to_string()]),
            };
        TransmitRecord {
            ifindex: t.ifindex,
            dst: t.dst,
            messages,
            decode_errors,
            bytes: t.bytes.to_vec(),
        }
    }
}

/// One output of the engine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// A packet to send ([`Engine::poll_transmit`]).
    Transmit(TransmitRecord),
    /// A kernel route change ([`Engine::poll_route`]).
    Route(RouteChange),
    /// An observer event ([`Engine::poll_event`]).
    Event(Event),
}

/// Everything the engine had queued at a drain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Packets, in order.
    pub transmits: Vec<Transmit>,
    /// Kernel route changes, in order.
    pub routes: Vec<RouteChange>,
    /// Events, in order.
    pub events: Vec<Event>,
}

impl Outputs {
    /// True if nothing was queued.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.routes.is_empty() && self.events.is_empty()
    }
}

/// The engine, with every input and output going through it (and optionally recorded).
pub struct RecordingDriver {
    engine: Engine,
    /// Flavour of each interface, from its last configuration, to decode what it sends.
    flavours: BTreeMap<u32, Flavour>,
    sink: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for RecordingDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingDriver")
            .field("recording", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl Deref for RecordingDriver {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl RecordingDriver {
    /// A driver that does not record. What is not an input (the route filter) is set on the
    /// engine before: a driver offers no other mutable access to it.
    pub fn new(engine: Engine) -> RecordingDriver {
        RecordingDriver {
            engine,
            flavours: BTreeMap::new(),
            sink: None,
        }
    }

    /// A driver that records to `sink`, starting with `header` (which must describe how
    /// `engine` was created). Nothing may have been fed to `engine` yet.
    pub fn recording(
        engine: Engine,
        header: &Header,
        mut sink: Box<dyn Write + Send>,
    ) -> std::io::Result<RecordingDriver> {
        write_line(&mut sink, &serde_json::json!({ "header": header }))?;
        sink.flush()?;
        Ok(RecordingDriver {
            engine,
            flavours: BTreeMap::new(),
            sink: Some(sink),
        })
    }

    /// [`Engine::set_route_events`], except on a driver that records: a recording holds every
    /// output, as a replay on a fresh engine produces them.
    pub fn set_route_events(&mut self, which: crate::RouteEvents) {
        if self.sink.is_none() {
            self.engine.set_route_events(which);
        }
    }

    /// [`Engine::set_paced_dumps`], except on a driver that records (a replay makes each dump
    /// whole, as the engine does by default).
    pub fn set_paced_dumps(&mut self, on: bool) {
        if self.sink.is_none() {
            self.engine.set_paced_dumps(on);
        }
    }

    /// [`Engine::continue_dump`]; its packets are taken with [`RecordingDriver::drain`].
    /// Dumps are only paced on a driver that does not record.
    pub fn continue_dump(&mut self, now: Instant, ifindex: u32) -> bool {
        self.engine.continue_dump(now, ifindex)
    }

    /// True while a recording is being written.
    pub fn is_recording(&self) -> bool {
        self.sink.is_some()
    }

    /// Applies an input at `now` (and records it first).
    pub fn input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        if let Input::InterfaceUp { ifindex, config }
        | Input::SetInterfaceConfig { ifindex, config } = &input
        {
            self.flavours.insert(*ifindex, config.flavour);
        }
        if let Some(sink) = &mut self.sink {
            let line = Timed { at: now, input };
            let r = write_line(sink, &line);
            self.check(r);
            self.engine.handle_input(now, line.input)
        } else {
            self.engine.handle_input(now, input)
        }
    }

    /// Takes everything the engine has queued (and records it when not empty).
    pub fn drain(&mut self) -> Outputs {
        let (transmits, routes, events) = self.engine.take_outputs();
        let out = Outputs {
            transmits,
            routes,
            events,
        };
        if self.sink.is_some() && !out.is_empty() {
            let records = self.records(&out);
            if let Some(sink) = &mut self.sink {
                let r = write_line(sink, &serde_json::json!({ "outputs": records }))
                    .and_then(|()| sink.flush());
                self.check(r);
            }
        }
        out
    }

    /// The JSON form of drained outputs.
    pub fn records(&self, out: &Outputs) -> Vec<Output> {
        let mut v = Vec::with_capacity(out.transmits.len() + out.routes.len() + out.events.len());
        for t in &out.transmits {
            let flavour = self.flavours.get(&t.ifindex).copied().unwrap_or_default();
            v.push(Output::Transmit(TransmitRecord::new(t, flavour)));
        }
        v.extend(out.routes.iter().cloned().map(Output::Route));
        v.extend(out.events.iter().cloned().map(Output::Event));
        v
    }

    /// Stops recording after a write error (the daemon keeps routing).
    fn check(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r {
            tracing::error!("recording stopped: {e}");
            self.sink = None;
        }
    }
}

fn write_line(sink: &mut dyn Write, v: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *sink, v)?;
    sink.write_all(b"\n")
}

/// Errors reading or replaying a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A line is not JSON of the expected shape.
    #[error("line {line}: {error}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        error: String,
    },
    /// The first line is not a header of a known format and version.
    #[error("not a babel-core recording (format {format:?} version {version})")]
    Format {
        /// Its format.
        format: String,
        /// Its version.
        version: u32,
    },
    /// The engine refused the recorded configuration.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
}

/// One line of a recording after the header.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// An input.
    Input(Timed),
    /// What a drain returned.
    Outputs(Vec<Output>),
}

/// A parsed recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    /// The header.
    pub header: Header,
    /// The lines after it, each with its 1-based line number.
    pub steps: Vec<(usize, Step)>,
}

impl Recording {
    /// Parses a recording (JSONL; blank lines are skipped).
    pub fn parse(text: &str) -> Result<Recording, RecordError> {
        let mut header = None;
        let mut steps = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let line = i + 1;
            if l.trim().is_empty() {
                continue;
            }
            let err = |e: serde_json::Error| RecordError::Parse {
                line,
                error: e.to_string(),
            };
            let mut v: serde_json::Value = serde_json::from_str(l).map_err(err)?;
            if header.is_none() {
                let h: Header = match v.get_mut("header") {
                    Some(h) => serde_json::from_value(h.take()).map_err(err)?,
                    None => {
                        return Err(RecordError::Parse {
                            line,
                            error: "the first line must be the header".into(),
                        });
                    }
                };
                if h.format != RECORD_FORMAT || h.version != RECORD_VERSION {
                    return Err(RecordError::Format {
                        format: h.format,
                        version: h.version,
                    });
                }
                header = Some(h);
            } else if let Some(o) = v.get_mut("outputs") {
                steps.push((
                    line,
                    Step::Outputs(serde_json::from_value(o.take()).map_err(err)?),
                ));
            } else {
                steps.push((line, Step::Input(serde_json::from_value(v).map_err(err)?)));
            }
        }
        let header = header.ok_or(RecordError::Parse {
            line: 1,
            error: "empty recording".into(),
        })?;
        Ok(Recording { header, steps })
    }
}

/// Where a replay first differed from its recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// Line of the recorded outputs that differ.
    pub line: usize,
    /// What was recorded.
    pub expected: Vec<Output>,
    /// What the replay produced.
    pub actual: Vec<Output>,
}

/// What a replay produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replayed {
    /// Inputs fed.
    pub inputs: usize,
    /// Drains compared equal to the recording.
    pub drains_equal: usize,
    /// Every route change, in order.
    pub routes: Vec<RouteChange>,
    /// The first difference, if any.
    pub divergence: Option<Divergence>,
}

/// Feeds a recording's inputs to a fresh engine (with the driver's `filter`, rebuilt from the
/// header), drains where the recording drained, and compares. `each` sees every drain's
/// outputs, with the line of the recorded drain (or of the last input for the final drain).
pub fn replay(
    rec: &Recording,
    filter: Option<Arc<dyn RouteFilter>>,
    mut each: impl FnMut(usize, &[Output]),
) -> Result<Replayed, RecordError> {
    let mut engine = Engine::new(rec.header.config.clone(), rec.header.start)?;
    engine.set_route_filter(filter);
    let mut d = RecordingDriver::new(engine);
    let mut r = Replayed::default();
    let mut last_line = 1;
    for (line, step) in &rec.steps {
        last_line = *line;
        match step {
            Step::Input(t) => {
                // An input the engine refused was refused when recorded too.
                let _ = d.input(t.at, t.input.clone());
                r.inputs += 1;
            }
            Step::Outputs(expected) => {
                let out = d.drain();
                r.routes.extend(out.routes.iter().cloned());
                let actual = d.records(&out);
                each(*line, &actual);
                if &actual == expected {
                    r.drains_equal += 1;
                } else if r.divergence.is_none() {
                    r.divergence = Some(Divergence {
                        line: *line,
                        expected: expected.clone(),
                        actual,
                    });
                }
            }
        }
    }
    let out = d.drain();
    if !out.is_empty() {
        r.routes.extend(out.routes.iter().cloned());
        let actual = d.records(&out);
        // Outputs the recording never drained (the daemon was killed before its next drain):
        // shown, not compared.
        each(last_line, &actual);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::sync::Mutex;

    use babel_wire::{Hello, Ihu, RouterId, Update};

    use super::*;
    use crate::config::{InterfaceConfig, InterfaceKind};

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn config(seed: u64) -> EngineConfig {
        let mut c = EngineConfig::new(RouterId([2, 0, 0, 0, 0, 0, 0, 1]));
        c.seed = seed;
        c
    }

    /// A neighbour comes up, announces a route; we run timers for 20 s.
    fn drive(d: &mut RecordingDriver) {
        let us: std::net::IpAddr = "fe80::1".parse().unwrap();
        let nb: std::net::IpAddr = "fe80::2".parse().unwrap();
        let mut now = Instant::from_secs(10);
        let cfg = InterfaceConfig::new("eth0", InterfaceKind::Wired, us);
        d.input(
            now,
            Input::InterfaceUp {
                ifindex: 1,
                config: cfg,
            },
        )
        .unwrap();
        d.drain();
        for s in 1..=2u16 {
            let mut messages = vec![Message::Hello(Hello {
                unicast: false,
                seqno: s,
                interval: 400,
                timestamp: None,
            })];
            if s == 2 {
                messages.push(Message::Ihu(Ihu {
                    address: Some(us),
                    rxcost: 96,
                    interval: 1200,
                    timestamp: None,
                }));
                messages.push(Message::Update(Update {
                    prefix: Some("2001:db8::/48".parse().unwrap()),
                    v4_via_v6: false,
                    src_prefix: None,
                    interval: 1600,
                    seqno: 3,
                    metric: 100,
                    router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 0, 9])),
                    next_hop: None,
                    price: None,
                    path_rtt: None,
                    diversity: None,
                }));
            }
            let bytes = babel_wire::encode(&messages, &Default::default()).unwrap();
            d.input(
                now,
                Input::Packet {
                    ifindex: 1,
                    src: nb,
                    dst: Destination::Multicast,
                    bytes: bytes[0].to_vec(),
                },
            )
            .unwrap();
        }
        d.drain();
        while let Some(t) = d.poll_timeout().filter(|t| *t <= Instant::from_secs(30)) {
            now = t;
            d.input(now, Input::Timeout).unwrap();
            d.drain();
        }
    }

    fn record(seed: u64) -> String {
        let sink = Shared::default();
        let header = Header::new(
            Instant::from_secs(10),
            config(seed),
            serde_json::Value::Null,
        );
        let engine = Engine::new(config(seed), Instant::from_secs(10)).unwrap();
        let mut d = RecordingDriver::recording(engine, &header, Box::new(sink.clone())).unwrap();
        drive(&mut d);
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_recording_replays_to_the_same_outputs() {
        let text = record(7);
        let rec = Recording::parse(&text).unwrap();
        assert!(rec.steps.len() > 10, "{text}");
        let mut seen = 0;
        let r = replay(&rec, None, |_, o| seen += o.len()).unwrap();
        assert_eq!(r.divergence, None);
        assert!(seen > 0);
        // InstalledRoute, then held (an unreachable kernel route, as babeld) when the silent
        // neighbour's Hellos are missed.
        let ops: Vec<_> = r.routes.iter().map(|c| (c.op, c.metric.0)).collect();
        assert_eq!(
            ops,
            [
                (crate::RouteOp::Add, 196),
                (crate::RouteOp::Unreachable, 196)
            ]
        );
    }

    #[test]
    fn a_replay_with_another_seed_diverges() {
        let text = record(7);
        let mut rec = Recording::parse(&text).unwrap();
        rec.header.config.seed = 8;
        let r = replay(&rec, None, |_, _| {}).unwrap();
        let d = r.divergence.expect("jitter and seqnos differ");
        assert_ne!(d.expected, d.actual);
    }

    #[test]
    fn inputs_round_trip_through_json() {
        let rec = Recording::parse(&record(7)).unwrap();
        for (_, s) in &rec.steps {
            if let Step::Input(t) = s {
                let j = serde_json::to_string(t).unwrap();
                assert_eq!(&serde_json::from_str::<Timed>(&j).unwrap(), t, "{j}");
            }
        }
        let j =
            r#"{"at":5,"input":"announce","prefix":"2001:db8::/64","src_prefix":null,"metric":0}"#;
        let t: Timed = serde_json::from_str(j).unwrap();
        assert_eq!(t.at, Instant::from_micros(5));
        assert!(matches!(t.input, Input::Announce { metric: 0, .. }));
    }

    #[test]
    fn parse_refuses_what_is_not_a_recording() {
        assert!(Recording::parse("").is_err());
        assert!(Recording::parse(r#"{"at":1,"input":"timeout"}"#).is_err());
        let h = Header {
            version: 99,
            ..Header::new(Instant::ZERO, config(1), serde_json::Value::Null)
        };
        let line = serde_json::json!({ "header": h }).to_string();
        assert!(matches!(
            Recording::parse(&line),
            Err(RecordError::Format { version: 99, .. })
        ));
        let bad = format!("{line}\n{{\"at\":1,\"input\":\"no-such-input\"}}");
        let bad = bad.replace("\"version\":99", "\"version\":1");
        assert!(matches!(
            Recording::parse(&bad),
            Err(RecordError::Parse { line: 2, .. })
        ));
    }
}
