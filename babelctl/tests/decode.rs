//! `babelctl decode` as a person runs it: pcap, pcapng and hex input, text and JSON output, and
//! malformed packets in the middle of a capture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
use common::babelctl;

fn captures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/captures")
}

#[test]
fn malformed_packets_print_their_error_and_decoding_goes_on() {
    let file = captures().join("malformed-mixed.pcapng");
    let (ok, out, _) = babelctl(&["decode", file.to_str().unwrap()]);
    assert!(ok);
    let headers: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headers.len(), 7, "{out}");
    assert!(
        out.contains("#4 ") && out.contains("error: bad magic 43, expected 42"),
        "{out}"
    );
    assert!(
        out.contains("error: body length 20 exceeds the 4 bytes after the header"),
        "{out}"
    );
    assert!(
        out.contains("ignored: TLV type 4 at offset 4: length 9 runs past the end"),
        "{out}"
    );
    // The packet after the broken ones is decoded in full.
    let last = out.split("#7 ").nth(1).unwrap();
    assert!(
        last.contains("update 10.78.2.0/24 metric 0 seqno 11263"),
        "{out}"
    );
}

#[test]
fn json_is_one_object_per_packet() {
    let file = captures().join("malformed-mixed.pcapng");
    let (ok, out, _) = babelctl(&["decode", "--json", file.to_str().unwrap()]);
    assert!(ok);
    let packets: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(packets.len(), 7);
    assert_eq!(packets[3]["error"], "bad magic 43, expected 42");
    assert_eq!(packets[0]["messages"][0]["type"], "hello");
    assert_eq!(packets[0]["src"], "[fe80::e4e0:4aff:fe80:97c2]:6696");
    let update = &packets[6]["messages"][2];
    assert_eq!(update["type"], "update");
    assert_eq!(update["prefix"], "fd77::2/128");
    assert_eq!(update["router_id"], "e4:ce:63:61:59:cb:e3:54");
    assert!(
        packets[5]["ignored"][0]
            .as_str()
            .unwrap()
            .contains("offset 4")
    );
}

#[test]
fn pcap_and_pcapng_give_the_same_packets() {
    let pcap = captures().join("babeld-1.12-plain.pcap");
    let (_, from_pcap, _) = babelctl(&["decode", pcap.to_str().unwrap()]);
    let (_, from_ng, _) = babelctl(&[
        "decode",
        captures().join("malformed-mixed.pcapng").to_str().unwrap(),
    ]);
    // The first three frames of the pcapng are the first three of the pcap.
    let first3 = |s: &str| s.split("#4 ").next().unwrap().to_owned();
    assert_eq!(first3(&from_pcap), first3(&from_ng));
}

#[test]
fn hex_string_input_in_both_flavours() {
    let (ok, out, _) = babelctl(&["decode", "2a02000c 0406 0000 0102 0190 0302 beef"]);
    assert!(ok);
    assert_eq!(
        out,
        "packet (16 bytes)\n  hello seqno 258 interval 4.00s\n  ack opaque 0xbeef\n"
    );
    let althea = "2a020026 0824 02c08000 01901234 0100 000003e8 fdc55bcb24acb35a4b7f146aa2a1bdc4 2d04 00005915";
    let (ok, out, _) = babelctl(&["decode", "--althea", althea]);
    assert!(ok);
    assert!(out.contains("price 1000 full-path-rtt 22.805ms"), "{out}");
    // Read as a standard Update, the price octets become the prefix.
    let (_, out, _) = babelctl(&["decode", althea]);
    assert!(!out.contains("price"), "{out}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let (ok, _, err) = babelctl(&["decode", "not-a-file-nor-hex"]);
    assert!(!ok);
    assert!(err.contains("neither a file nor a hex string"), "{err}");
    let junk = std::env::temp_dir().join(format!("babelctl-junk-{}", std::process::id()));
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let (ok, _, err) = babelctl(&["decode", junk.to_str().unwrap()]);
    std::fs::remove_file(&junk).ok();
    assert!(!ok);
    assert!(
        err.contains("babelctl:") && !err.contains("panicked"),
        "{err}"
    );
}

/// A classic pcap file (little-endian, microseconds, Ethernet) holding one IPv6/UDP frame
/// between ports `port`, cut to `snaplen` bytes as `tcpdump -s SNAPLEN` records it.
fn short_snaplen_pcap(port: u16, snaplen: usize) -> Vec<u8> {
    // Hello (seqno 7, interval 4 s), then an Update for 10.78.2.0/24 that the snaplen cuts.
    let body: Vec<u8> = [
        &[4u8, 6, 0, 0, 0, 7, 1, 144][..],
        &[6, 10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8][..],
        &[8, 13, 1, 0, 24, 0, 0, 100, 0, 0, 0, 96, 10, 78, 2][..],
    ]
    .concat();
    let mut babel = vec![42, 2];
    babel.extend_from_slice(&(body.len() as u16).to_be_bytes());
    babel.extend_from_slice(&body);
    let mut udp = Vec::new();
    udp.extend_from_slice(&port.to_be_bytes());
    udp.extend_from_slice(&port.to_be_bytes());
    udp.extend_from_slice(&((8 + babel.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&babel);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[17, 1]);
    ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 6]);
    ip.extend_from_slice(&udp);
    let mut frame = vec![0x33, 0x33, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    frame.extend_from_slice(&ip);
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&(snaplen as u32).to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    let incl = frame.len().min(snaplen);
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&(incl as u32).to_le_bytes());
    f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    f.extend_from_slice(&frame[..incl]);
    f
}

/// Issue 11 point 8: captures taken with a short snaplen (tcpdump's own test files are) and on
/// the old port 6697 decode: what the snaplen kept is printed, the cut is reported.
#[test]
fn short_snaplen_captures_on_the_old_port_decode() {
    let file = std::env::temp_dir().join(format!("short-snaplen-{}.pcap", std::process::id()));
    // Ethernet 14 + IPv6 40 + UDP 8 + Babel header 4 + the Hello 8 + 4 bytes of the Update.
    std::fs::write(&file, short_snaplen_pcap(6697, 78)).unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = babelctl(&["decode", "--port", "6697", path]);
    assert!(ok, "{err}");
    assert!(out.contains("#1 "), "{out}");
    assert!(out.contains("hello seqno 7"), "{out}");
    assert!(out.contains("captured 16 of 39 bytes"), "{out}");
    // Nothing on the default port.
    let (ok, out, _) = babelctl(&["decode", path]);
    assert!(ok && !out.contains("#1 "), "{out}");
    // The whole frame decodes fully with a long snaplen.
    std::fs::write(&file, short_snaplen_pcap(6697, 65535)).unwrap();
    let (ok, out, _) = babelctl(&["decode", "--port", "6697", path]);
    assert!(ok && out.contains("10.78.2.0/24"), "{out}");
    let _ = std::fs::remove_file(&file);
}
