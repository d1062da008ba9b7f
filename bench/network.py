#!/usr/bin/env python3
"""Network of brokers: throughput across one hop against one broker, and a
kill drill counting stranded and duplicated messages; Hawser beside two
networked ActiveMQ 5.17 brokers, in the same run.

Usage: bench/network.py [--hawser target/release/hawser] [--brokers hawser,activemq]
                        [--scenarios S1,S3] [--seconds 8] [--warmup 4]
                        [--drill-messages 3000] [--json out.json]

Throughput: broker A has a network connector to broker B
(`static:(tcp://B)`; ActiveMQ's over OpenWire, as it always is). The same
`hawser bench` command runs each scenario with its producers on A and its
consumers on B (`--consumer-broker`), so every message crosses the link;
and, for the ratio, with both on one broker.

Kill drill (what the issue measured on ActiveMQ): B and A link to each
other. A producer on A sends persistent messages, each confirmed by a
receipt, to a queue whose one consumer, on B, is slow. Midway B is killed
with SIGKILL and restarted, and the consumer moves to A (as a failover
client whose broker died would). At the end, every confirmed message that
never reached the consumer within the drain time is stranded; every one
it received twice is a duplicate.

Everything listens on 127.0.0.1; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import stomp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402

HOST = compare.HOST


class HawserNode(compare.Hawser):
    """A Hawser broker with network connectors to `peers` (set before start)."""

    def __init__(self, tmp: Path, binary: str):
        super().__init__(tmp, binary)
        self.peers: list[compare.Broker] = []

    def command(self):
        cmd, env = super().command()
        for p in self.peers:
            cmd += ["--network-connector", f"static:(tcp://{HOST}:{p.port})"]
        return cmd, env


class ActiveMQNode(compare.ActiveMQ):
    """An ActiveMQ broker of its own name, with an OpenWire connector and
    network connectors to `peers` (over OpenWire, ActiveMQ's only kind)."""

    def __init__(self, tmp: Path, name: str):
        super().__init__(tmp)
        self.name = name
        self.openwire_port = compare.free_port()
        self.peers: list[compare.ActiveMQ] = []

    def command(self):
        cmd, env = super().command()
        conf = self.tmp / "conf" / "activemq.xml"
        xml = conf.read_text().replace('brokerName="bench"', f'brokerName="{self.name}"', 1)
        if self.peers:
            uris = ",".join(f"tcp://{HOST}:{p.openwire_port}" for p in self.peers)
            xml = xml.replace("<persistenceAdapter>", f'<networkConnectors><networkConnector '
                              f'uri="static:({uris})"/></networkConnectors>\n    <persistenceAdapter>', 1)
        conf.write_text(xml)
        return cmd, env


def node(kind: str, tmp: Path, name: str, hawser: str):
    d = tmp / name
    d.mkdir()
    return HawserNode(d, hawser) if kind == "hawser" else ActiveMQNode(d, name)


def bench(hawser: str, producer_broker, consumer_broker, sc, seconds: float, destination: str) -> dict:
    cmd = [hawser, "bench", "--broker", f"{HOST}:{producer_broker.port}",
           "--consumer-broker", f"{HOST}:{consumer_broker.port}", "--destination", destination,
           *sc.flags(seconds), *producer_broker.bench_flags(), "--scenario", sc.id]
    return compare.run_bench_command(cmd, seconds)


class SlowConsumer(stomp.ConnectionListener):
    """Acknowledges each message after `delay_s`, with a receipt: a message
    is settled when that receipt comes. One received again after it settled
    is a duplicate; one received again before (its broker died first) is an
    honest redelivery."""

    def __init__(self, port: int, queue: str, received: list[str], delay_s: float,
                 settled: set[str], duplicates: list[str]):
        self.received, self.delay_s = received, delay_s
        self.settled, self.duplicates = settled, duplicates
        self.pending: dict[str, str] = {}
        self.conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), reconnect_attempts_max=1)
        self.conn.set_listener("c", self)
        self.conn.connect("admin", "admin", wait=True, headers={"host": "localhost"})
        self.conn.subscribe(queue, id="c", ack="client-individual", headers={"activemq.prefetchSize": "100"})

    def on_message(self, frame):
        if frame.body in self.settled:
            self.duplicates.append(frame.body)
        self.received.append(frame.body)
        time.sleep(self.delay_s)
        receipt = f"ack-{len(self.received)}"
        self.pending[receipt] = frame.body
        try:
            self.conn.ack(frame.headers["ack"], receipt=receipt)
        except Exception:
            pass

    def on_receipt(self, frame):
        body = self.pending.pop(frame.headers.get("receipt-id"), None)
        if body is not None:
            self.settled.add(body)

    def close(self):
        try:
            self.conn.disconnect()
        except Exception:
            pass


def drill(kind: str, tmp: Path, hawser: str, messages: int, drain_s: float) -> dict:
    a, b = node(kind, tmp, "drill-a", hawser), node(kind, tmp, "drill-b", hawser)
    a.peers, b.peers = [b], [a]
    queue = "/queue/drill"
    received: list[str] = []
    settled: set[str] = set()
    duplicates: list[str] = []
    confirmed: set[str] = set()
    started = []
    try:
        b.start()
        a.start()
        started = [a, b]
        time.sleep(3)  # the links connect
        consumer = SlowConsumer(b.port, queue, received, 0.002, settled, duplicates)
        time.sleep(2)  # the consumer's demand reaches A
        lock = threading.Lock()

        class Receipts(stomp.ConnectionListener):
            def on_receipt(self, frame):
                rid = frame.headers.get("receipt-id", "")
                if rid.startswith("m"):
                    with lock:
                        confirmed.add(rid)

        p = stomp.Connection12([(HOST, a.port)], heartbeats=(0, 0))
        p.set_listener("r", Receipts())
        p.connect("admin", "admin", wait=True, headers={"host": "localhost"})
        for i in range(messages):
            p.send(queue, f"m{i}", headers={"persistent": "true", "receipt": f"m{i}"})
        deadline = time.monotonic() + 60
        while len(confirmed) < messages and time.monotonic() < deadline:
            time.sleep(0.05)
        # Midway through the slow consumer's work, its broker dies.
        while len(received) < messages // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        consumer.close()
        for pid in b.pids():
            os.kill(pid, signal.SIGKILL)
        b.proc.wait(timeout=30)
        b.start()
        moved = SlowConsumer(a.port, queue, received, 0.0, settled, duplicates)
        last, quiet_since = len(received), time.monotonic()
        end = time.monotonic() + drain_s
        while time.monotonic() < end and time.monotonic() - quiet_since < 10:
            time.sleep(0.2)
            if len(received) != last:
                last, quiet_since = len(received), time.monotonic()
        moved.close()
        p.disconnect()
    finally:
        for x in started:
            x.stop()
    seen = set(received)
    return {"broker": kind, "messages": messages, "confirmed": len(confirmed),
            "stranded": len(confirmed - seen), "duplicates": len(duplicates),
            "redelivered_unsettled": len(received) - len(seen) - len(duplicates)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default="target/release/hawser")
    ap.add_argument("--brokers", default="hawser,activemq")
    ap.add_argument("--scenarios", default="S1,S3")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=4)
    ap.add_argument("--drill-messages", type=int, default=3000)
    ap.add_argument("--drain", type=float, default=60)
    ap.add_argument("--json")
    a = ap.parse_args()
    a.hawser = str(Path(a.hawser).resolve())
    results: dict = {"command": "python3 bench/network.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
                     "throughput": [], "drill": []}
    for kind in a.brokers.split(","):
        with tempfile.TemporaryDirectory(prefix=f"hawser-net-{kind}-") as t:
            tmp = Path(t)
            one, two = node(kind, tmp, "net-a", a.hawser), node(kind, tmp, "net-b", a.hawser)
            one.peers = [two]
            started = []
            try:
                two.start()
                one.start()
                started = [one, two]
                time.sleep(3)
                for sid in a.scenarios.split(","):
                    sc = compare.SCENARIOS[sid]
                    for shape, consumer_side in (("single", one), ("one-hop", two)):
                        dest = f"/queue/net.{sid}.{shape}"
                        bench(a.hawser, one, consumer_side, sc, a.warmup, dest + ".warm")
                        r = bench(a.hawser, one, consumer_side, sc, a.seconds, dest)
                        r.update(broker=kind, scenario=sid, shape=shape)
                        results["throughput"].append(r)
                        print(json.dumps(r), flush=True)
            finally:
                for x in started:
                    x.stop()
        with tempfile.TemporaryDirectory(prefix=f"hawser-drill-{kind}-") as t:
            r = drill(kind, Path(t), a.hawser, a.drill_messages, a.drain)
            results["drill"].append(r)
            print(json.dumps(r), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
