#!/usr/bin/env python3
"""A userspace stand-in for `tc qdisc netem delay D loss L` on one host's cable (tests/net).

Kernels built without the netem qdisc (CONFIG_NET_SCH_NETEM) cannot delay or drop packets, so
lib.sh's `netem_user` replaces a host's veth pair with two tap devices and runs this program
between them: every Ethernet frame the host sends (read from --host-tap) is dropped with
probability --loss-percent, else written to --switch-tap --delay-ms later; frames towards the
host pass at once. That is what netem on the host's eth0 does (it shapes egress only), so on every
host it gives each direction of a path one delay and one loss chance, like the kernel qdisc.
The random stream is seeded (--seed), so a run drops the same frames each time.

--block-file FILE makes a partial partition: while FILE exists and holds an IPv4 address, every
IPv4 or ARP frame from or to that address is dropped in both directions (checked every 100 ms),
so the host can still reach every other host but not that one.

The taps are created here (in the caller's network namespace, not persistent: they vanish when
this process exits); the caller moves them into the host's and the switch's namespaces once the
--ready file exists. Exits on SIGTERM/SIGINT or when --parent is gone (a killed test leaves no
forwarder behind). Counts go to --stats each second and to stderr at exit.
"""
import argparse
import fcntl
import heapq
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError as e:
        os.close(fd)
        sys.exit(f"netem_user: cannot create tap device {name!r}: {e}")
    return fd


def ipv4_peers(frame):
    """The (source, target) IPv4 addresses of an IPv4 or ARP Ethernet frame, else None."""
    if len(frame) < 42:
        return None
    ethertype = frame[12:14]
    if ethertype == b"\x08\x00":
        return frame[26:30], frame[30:34]
    if ethertype == b"\x08\x06":
        return frame[28:32], frame[38:42]
    return None


def read_block(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    try:
        return socket.inet_aton(text) if text else None
    except OSError:
        sys.exit(f"netem_user: {path}: expected an IPv4 address, got {text!r}")


def write_frame(fd, frame, counts):
    try:
        os.write(fd, frame)
    except OSError:  # the other side is down (a partition) or its queue is full: lost, like a wire
        counts["write_errors"] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host-tap", required=True)
    ap.add_argument("--switch-tap", required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--loss-percent", type=float, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ready", required=True, help="file created once both taps exist")
    ap.add_argument("--parent", type=int, default=0, help="exit when this pid is gone")
    ap.add_argument("--stats", help="file rewritten each second: sent dropped received errors")
    ap.add_argument("--block-file", help="while it holds an IPv4 address, frames to/from it drop")
    a = ap.parse_args()
    if a.delay_ms < 0 or not 0 <= a.loss_percent <= 100:
        sys.exit("netem_user: --delay-ms must be >= 0 and --loss-percent in [0, 100]")

    host = open_tap(a.host_tap)
    switch = open_tap(a.switch_tap)
    with open(a.ready, "w") as f:
        f.write(f"{os.getpid()}\n")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    rng = random.Random(a.seed)
    delay = a.delay_ms / 1000.0
    loss = a.loss_percent / 100.0
    queue = []  # (due time, sequence, frame) for frames the host sent
    seq = 0
    counts = {"sent": 0, "dropped": 0, "received": 0, "write_errors": 0}
    sel = selectors.DefaultSelector()
    sel.register(host, selectors.EVENT_READ, "host")
    sel.register(switch, selectors.EVENT_READ, "switch")
    next_parent_check = 0.0
    next_block_check = 0.0
    blocked = None  # packed IPv4 address cut off from this host, or None
    counts["blocked"] = 0
    while not stop:
        now = time.monotonic()
        if a.block_file and now >= next_block_check:
            blocked = read_block(a.block_file)
            next_block_check = now + 0.1
        while queue and queue[0][0] <= now:
            write_frame(switch, heapq.heappop(queue)[2], counts)
        if now >= next_parent_check:
            if a.parent and not os.path.exists(f"/proc/{a.parent}"):
                break
            if a.stats:
                with open(a.stats + ".tmp", "w") as f:
                    f.write("{sent} {dropped} {received} {write_errors}\n".format(**counts))
                os.replace(a.stats + ".tmp", a.stats)
            next_parent_check = now + 1.0
        timeout = min(queue[0][0] - now, 0.1) if queue else 0.1
        for key, _ in sel.select(max(timeout, 0.0)):
            fd = key.fd
            while True:
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:  # the device went away (its namespace was deleted)
                    stop.append(1)
                    break
                if blocked is not None:
                    peers = ipv4_peers(frame)
                    if peers is not None and blocked in peers:
                        counts["blocked"] += 1
                        continue
                if key.data == "switch":
                    counts["received"] += 1
                    write_frame(host, frame, counts)
                elif rng.random() < loss:
                    counts["dropped"] += 1
                else:
                    counts["sent"] += 1
                    seq += 1
                    heapq.heappush(queue, (time.monotonic() + delay, seq, frame))
    print(f"netem_user {a.host_tap}: host sent {counts['sent']} frames, dropped "
          f"{counts['dropped']}, received {counts['received']}, write errors "
          f"{counts['write_errors']}, blocked {counts['blocked']}", file=sys.stderr)


if __name__ == "__main__":
    main()
