//! `babelctl decode`: prints the Babel packets of a capture file or of a hex string.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use babel_wire::{DecodeOptions, Flavour, decode};
use serde::Serialize;

use crate::capture::{CapturedDatagram, read_capture};

/// Arguments of `babelctl decode`.
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// A pcap or pcapng file, or one packet as a hex string (spaces and colons allowed).
    pub input: String,
    /// Print one JSON object per packet instead of text.
    #[arg(long)]
    pub json: bool,
    /// Read Updates in Althea's layout (price field between metric and prefix).
    #[arg(long)]
    pub althea: bool,
    /// UDP port to pick out of a capture.
    #[arg(long, default_value_t = babel_wire::PORT)]
    pub port: u16,
}

#[derive(Serialize)]
struct JsonPacket<'a> {
    frame: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<String>,
    length: usize,
    /// Set when the capture holds only `length` of these bytes (short snaplen).
    #[serde(skip_serializing_if = "Option::is_none")]
    wire_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_end: Option<usize>,
    messages: &'a [babel_wire::Message],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    macs: Vec<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ignored: Vec<String>,
}

/// Runs `babelctl decode`, writing to `out`. A malformed packet prints its error; decoding goes
/// on with the next one.
pub fn run(args: &DecodeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let datagrams = load(&args.input, args.port)?;
    let opts = DecodeOptions {
        flavour: if args.althea {
            Flavour::Althea
        } else {
            Flavour::Standard
        },
    };
    for d in &datagrams {
        let src = (d.frame > 0).then(|| format!("[{}]:{}", d.src.0, d.src.1));
        let dst = (d.frame > 0).then(|| format!("[{}]:{}", d.dst.0, d.dst.1));
        // A frame cut by the capture's snaplen: decode the messages it holds whole (tcpdump
        // prints them too), with the body length clamped to what was captured.
        let cut = d.payload.len() < d.wire_len;
        let clamped;
        let bytes = if cut {
            clamped = clamp_body(&d.payload);
            &clamped
        } else {
            &d.payload
        };
        let decoded = decode(bytes, &opts);
        if args.json {
            let (messages, error, body_end, macs, ignored) = match &decoded {
                Ok(p) => (
                    p.packet.messages.as_slice(),
                    None,
                    Some(p.body_end),
                    p.packet.macs.iter().map(hex::encode).collect(),
                    p.errors.iter().map(|e| e.to_string()).collect(),
                ),
                Err(e) => (&[][..], Some(e.to_string()), None, Vec::new(), Vec::new()),
            };
            let j = JsonPacket {
                frame: d.frame,
                wire_length: cut.then_some(d.wire_len),
                src,
                dst,
                length: d.payload.len(),
                error,
                body_end,
                messages,
                macs,
                ignored,
            };
            writeln!(out, "{}", serde_json::to_string(&j)?)?;
            continue;
        }
        match (&src, &dst) {
            (Some(s), Some(t)) => {
                writeln!(out, "#{} {s} > {t} ({} bytes)", d.frame, d.payload.len())?
            }
            _ => writeln!(out, "packet ({} bytes)", d.payload.len())?,
        }
        if cut {
            writeln!(
                out,
                "  (captured {} of {} bytes: the capture's snaplen cut the rest)",
                d.payload.len(),
                d.wire_len
            )?;
        }
        match decoded {
            Ok(p) => {
                for m in &p.packet.messages {
                    writeln!(out, "  {m}")?;
                }
                for mac in &p.packet.macs {
                    writeln!(out, "  mac {}", hex::encode(mac))?;
                }
                for e in &p.errors {
                    writeln!(out, "  ignored: {e}")?;
                }
            }
            Err(e) => writeln!(out, "  error: {e}")?,
        }
    }
    Ok(())
}

/// A capture file's datagrams, or the single packet of a hex string (frame 0).
fn load(input: &str, port: u16) -> anyhow::Result<Vec<CapturedDatagram>> {
    let path = Path::new(input);
    if path.exists() {
        let f = std::fs::File::open(path).with_context(|| format!("opening {input}"))?;
        return read_capture(std::io::BufReader::new(f), port)
            .with_context(|| format!("reading {input}"));
    }
    let cleaned: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '\n' | '\t'))
        .collect();
    let payload = hex::decode(&cleaned)
        .with_context(|| format!("{input:?} is neither a file nor a hex string"))?;
    let unspecified = (std::net::IpAddr::from([0u8; 16]), 0);
    Ok(vec![CapturedDatagram {
        frame: 0,
        src: unspecified,
        dst: unspecified,
        wire_len: payload.len(),
        payload,
    }])
}

/// A copy of a cut packet whose header's body length is no more than the bytes captured.
fn clamp_body(p: &[u8]) -> Vec<u8> {
    let mut v = p.to_vec();
    let held = u16::try_from(p.len().saturating_sub(4)).unwrap_or(u16::MAX);
    if let Some(len) = v.get_mut(2..4)
        && let Ok(b) = <[u8; 2]>::try_from(&*len)
    {
        len.copy_from_slice(&u16::from_be_bytes(b).min(held).to_be_bytes());
    }
    v
}
