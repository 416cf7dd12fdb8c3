#!/usr/bin/env bash
# Seeds the fuzz corpora with the Babel payloads of the babeld captures in spec/captures.
# Needs tshark and xxd.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode corpus/roundtrip
for f in ../spec/captures/*.pcap; do
  tshark -r "$f" -T fields -e udp.payload 2>/dev/null | while read -r h; do
    [ -n "$h" ] || continue
    name="$(basename "$f" .pcap)-$(printf '%s' "$h" | md5sum | cut -c1-12)"
    printf '%s' "$h" | xxd -r -p > "corpus/decode/$name"
    # The first octet of a roundtrip input picks the flavour and the packet size.
    { printf '\x00'; cat "corpus/decode/$name"; } > "corpus/roundtrip/$name-standard"
    { printf '\x01'; cat "corpus/decode/$name"; } > "corpus/roundtrip/$name-althea"
  done
done
echo "seeded $(ls corpus/decode | wc -l) packets"
# Route verification: a minute of a router's life through every input path, written by its test.
mkdir -p corpus/verification
FUZZ_SEED_DIR="$PWD/corpus/verification" cargo test --quiet --manifest-path ../Cargo.toml -p daemon --lib \
  fuzzing::verification::tests::the_story_reaches_every_input_path_and_reads_back >/dev/null
echo "seeded corpus/verification/story"
