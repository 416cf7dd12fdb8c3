//! Reading Babel datagrams out of pcap and pcapng captures (UDP port 6696 over IPv4 or IPv6).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, bail};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

/// A UDP datagram found in a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedDatagram {
    /// 1-based frame number in the capture.
    pub frame: usize,
    /// Source address and port.
    pub src: (IpAddr, u16),
    /// Destination address and port.
    pub dst: (IpAddr, u16),
    /// The UDP payload, as far as the capture holds it.
    pub payload: Vec<u8>,
    /// The payload's length on the wire (from the UDP header): more than `payload.len()` when
    /// the capture's snaplen cut the frame.
    pub wire_len: usize,
}

/// Reads every UDP datagram to or from `port` in a pcap or pcapng stream.
pub fn read_capture(mut r: impl Read, port: u16) -> anyhow::Result<Vec<CapturedDatagram>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).context("reading capture")?;
    let frames = match bytes.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => pcapng_frames(&bytes)?,
        Some(_) => pcap_frames(&bytes)?,
        None => bail!("capture file is empty"),
    };
    let mut out = Vec::new();
    for (i, (link, data)) in frames.into_iter().enumerate() {
        if let Some((src, dst, payload, wire_len)) = udp_of_frame(link, &data)
            && (src.1 == port || dst.1 == port)
        {
            out.push(CapturedDatagram {
                frame: i + 1,
                src,
                dst,
                payload: payload.to_vec(),
                wire_len: wire_len.max(payload.len()),
            });
        }
    }
    Ok(out)
}

fn pcap_frames(bytes: &[u8]) -> anyhow::Result<Vec<(DataLink, Vec<u8>)>> {
    let mut reader = PcapReader::new(bytes).context("not a pcap or pcapng file")?;
    let link = reader.header().datalink;
    let mut out = Vec::new();
    // Raw records: pcap-file's checked packets reject an original length above the snaplen,
    // which every capture taken with a short snaplen (`tcpdump -s 96`) has. A truncated frame
    // still yields what it holds; decoding reports the cut.
    while let Some(p) = reader.next_raw_packet() {
        let p = p.context("reading pcap packet")?;
        out.push((link, p.data.into_owned()));
    }
    Ok(out)
}

fn pcapng_frames(bytes: &[u8]) -> anyhow::Result<Vec<(DataLink, Vec<u8>)>> {
    let mut reader = PcapNgReader::new(bytes).context("not a pcapng file")?;
    // Interface Description Blocks come before the packets that name them.
    let mut links: Vec<DataLink> = Vec::new();
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        let block = block.context("reading pcapng block")?;
        let link_of = |id: u32| {
            links
                .get(id as usize)
                .copied()
                .unwrap_or(DataLink::ETHERNET)
        };
        match block {
            Block::InterfaceDescription(i) => links.push(i.linktype),
            Block::EnhancedPacket(p) => out.push((link_of(p.interface_id), p.data.into_owned())),
            Block::SimplePacket(p) => out.push((link_of(0), p.data.into_owned())),
            _ => {}
        }
    }
    Ok(out)
}

/// Finds the IP packet inside a link-layer frame.
fn ip_of_frame(link: DataLink, f: &[u8]) -> Option<&[u8]> {
    match link {
        DataLink::ETHERNET => {
            let mut off = 12;
            let mut ethertype = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                off += 4;
                ethertype = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
            }
            f.get(off + 2..)
        }
        DataLink::LINUX_SLL => f.get(16..),
        DataLink::LINUX_SLL2 => f.get(20..),
        DataLink::NULL | DataLink::LOOP => f.get(4..),
        _ => Some(f),
    }
}

type Endpoints<'a> = ((IpAddr, u16), (IpAddr, u16), &'a [u8], usize);

/// Extracts source, destination and payload of a UDP datagram in a frame.
fn udp_of_frame(link: DataLink, f: &[u8]) -> Option<Endpoints<'_>> {
    let ip = ip_of_frame(link, f)?;
    let (src, dst, udp) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if *ip.get(9)? != 17 {
                return None;
            }
            let a = |o: usize| -> Option<IpAddr> {
                let b = ip.get(o..o + 4)?;
                Some(IpAddr::V4(Ipv4Addr::new(
                    *b.first()?,
                    *b.get(1)?,
                    *b.get(2)?,
                    *b.get(3)?,
                )))
            };
            (a(12)?, a(16)?, ip.get(ihl..)?)
        }
        6 => {
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 16] = ip.get(o..o + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            };
            let mut next = *ip.get(6)?;
            let mut off = 40;
            // Hop-by-hop, routing and destination options headers may precede UDP.
            while matches!(next, 0 | 43 | 60) {
                next = *ip.get(off)?;
                off += (usize::from(*ip.get(off + 1)?) + 1) * 8;
            }
            if next != 17 {
                return None;
            }
            (a(8)?, a(24)?, ip.get(off..)?)
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    let payload = udp.get(8..len.max(8)).or_else(|| udp.get(8..))?;
    Some(((src, sport), (dst, dport), payload, len.saturating_sub(8)))
}
