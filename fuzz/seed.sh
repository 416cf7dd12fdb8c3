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
