#!/usr/bin/env python3
"""Turns a capture of babeld on one link into a babel-core conformance case.

We take the place of the node that sent the capture's first packet (its link-local address is
ours, so the other node's IHUs are for us) and are fed every packet of the other node at its
captured instant, timers running in between (`run_until`). Step 01 brings our interface up,
step 02 is the capture up to the other node's shutdown (its wildcard retraction), step 03 the
rest. Needs tshark. The outputs come from the engine:

  spec/captures/capture-to-case.py spec/captures/babeld-1.12-plain.pcap \\
      babel-core/tests/conformance/NAME "what it shows" ['{"ipv4": "10.99.1.1"}']
  UPDATE_GOLDEN=1 cargo test -p babel-core --test conformance
"""
import json
import os
import subprocess
import sys

START = 1_000_000_000  # 1000 s, in microseconds
CONFIG = {
    "router_id": "02:00:00:00:00:00:00:01", "seqno": 100, "seed": 1, "fee": 0,
    "policy": {"kind": "babeld"}, "accumulation": "saturating",
    "smoothing_half_life": {"secs": 4, "nanos": 0}, "source_gc_time": {"secs": 200, "nanos": 0},
    "accuracy_threshold": 500, "require_link_local": True, "events": True,
    "limits": {"max_routes_per_neighbour": 250000, "max_routes": 1000000,
               "max_neighbours_per_interface": 1024, "max_pending_requests": 16384},
    "protocol_port": 6696, "protocol_group": "ff02::1:6", "auth_entropy": [0] * 32,
}
# babeld's wired defaults with `-h 1 -H 1`, as the capture scripts run it.
INTERFACE = {
    "name": "eth0", "kind": "wired", "address": None,
    "hello_interval": {"secs": 1, "nanos": 0}, "update_interval": {"secs": 4, "nanos": 0},
    "rxcost": 96, "split_horizon": True, "link_quality": False, "timestamps": False,
    "max_rtt_penalty": 0, "rtt_min": {"secs": 0, "nanos": 10000000},
    "rtt_max": {"secs": 0, "nanos": 120000000}, "rtt_decay": 42,
    "unicast_hello_interval": None, "unicast": False, "neighbours": [], "flavour": "standard",
    "ipv4": None, "v4_via_v6": True, "mtu": 1500, "one_sub_tlv": False, "auth": None,
}


def main():
    pcap, out, description = sys.argv[1:4]
    iface = dict(INTERFACE, **(json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}))
    fields = ["frame.time_relative", "ipv6.src", "ipv6.dst", "udp.payload"]
    cmd = ["tshark", "-r", pcap, "-T", "fields"] + [a for f in fields for a in ("-e", f)]
    rows = [r.split("\t") for r in subprocess.run(cmd, capture_output=True, text=True,
                                                   check=True).stdout.splitlines() if r]
    us = rows[0][1]
    iface["address"] = us
    steps = [[{"at": START, "input": "interface-up", "ifindex": 1, "config": iface}], []]
    now, seen = START, 0
    for t, src, dst, payload in rows:
        if src == us:
            continue
        seen += 1
        # The other node's shutdown: a wildcard retraction (AE 0, metric infinity).
        if seen > 3 and "0a00000000ffff" in payload[:60] and len(steps) == 2:
            steps.append([])
        at = START + round(float(t) * 1e6)
        if at > now:
            now = at
            steps[-1].append({"run_until": at})
        steps[-1].append({"at": at, "input": "packet", "ifindex": 1, "src": src,
                          "dst": "multicast" if dst.startswith("ff02") else {"unicast": dst},
                          "bytes": payload})
    steps[-1].append({"run_until": now + 1_000_000})
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump({"description": description, "start": START, "config": CONFIG}, f, indent=1)
        f.write("\n")
    for i, step in enumerate(steps):
        with open(os.path.join(out, "%02d-input.jsonl" % (i + 1)), "w") as f:
            for line in step:
                f.write(json.dumps(line, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
