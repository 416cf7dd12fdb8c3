//! `babelctl decode` as a person runs it: pcap, pcapng and hex input, text and JSON output, and
//! malformed packets in the middle of a capture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

fn captures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/captures")
}

fn babelctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_babelctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
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
