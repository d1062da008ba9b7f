#!/usr/bin/env python3
"""Measures one Hawser broker on this machine: throughput with 4 producers and
4 consumers (1 KiB bodies, persistent and not), idle memory, and start time
empty and with 1 GiB of persistent messages pending in the journal.

Usage: bench/single_broker.py [--hawser target/release/hawser] [--seconds 10]
                              [--backlog-mib 1024] [--json out.json]

Everything runs on loopback; every process started is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_connected(port: int, deadline: float) -> float | None:
    """Polls until a STOMP CONNECT is answered with CONNECTED; returns when."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
                if s.recv(9).startswith(b"CONNECTED"):
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    return None


class Broker:
    def __init__(self, hawser: str, data_dir: Path, port: int, extra: list[str]):
        self.cmd = [hawser, "serve", "--data-dir", str(data_dir), "--stomp", f"{HOST}:{port}",
                    "--openwire", f"{HOST}:0", *extra]
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Starts the broker; returns seconds until the first CONNECTED."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t1 = first_connected(self.port, t0 + 600)
        if t1 is None:
            self.stop(signal.SIGKILL)
            raise RuntimeError("broker did not accept connections within 600 s")
        return t1 - t0

    def stop(self, sig=signal.SIGTERM) -> int | None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=60)
        return self.proc.returncode if self.proc else None


def bench(hawser: str, port: int, *args: str) -> dict:
    out = subprocess.run([hawser, "bench", "--broker", f"{HOST}:{port}", *args],
                         capture_output=True, text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hawser", default=str(REPO / "target/release/hawser"))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--backlog-mib", type=int, default=1024)
    ap.add_argument("--json")
    a = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="hawser-bench-") as tmp:
        port = free_port()
        memory = ["--max-pending-memory-bytes", str(8 << 30)]
        b = Broker(a.hawser, Path(tmp) / "data", port, memory)
        try:
            results["start_empty_s"] = b.start()
            time.sleep(2)
            results["idle_rss_mib"] = rss_mib(b.proc.pid)
            common = ["--producers", "4", "--consumers", "4", "--size", "1024", "--duration", str(a.seconds)]
            results["persistent"] = bench(a.hawser, port, *common, "--persistent", "--window", "64",
                                          "--destination", "/queue/bench.p", "--scenario", "persistent")
            results["non_persistent"] = bench(a.hawser, port, *common, "--window", "64",
                                              "--destination", "/queue/bench.np", "--scenario", "non-persistent")
            per_producer = a.backlog_mib * 1024 // 4
            bench(a.hawser, port, "--producers", "4", "--consumers", "0", "--size", "1024", "--persistent",
                  "--count", str(per_producer), "--destination", "/queue/backlog", "--scenario", "fill")
            results["backlog_messages"] = per_producer * 4
            results["journal_bytes"] = sum(f.stat().st_size for f in (Path(tmp) / "data" / "journal").glob("*.log"))
            b.stop(signal.SIGKILL)
            results["start_backlog_s"] = b.start()
            results["backlog_rss_mib"] = rss_mib(b.proc.pid)
        finally:
            results["exit_code"] = b.stop()
    p, n = results["persistent"], results["non_persistent"]
    print(f"persistent     4P/4C 1KiB: {p['msgs_per_sec']:,.0f} msg/s  p99 {p['latency_us']['p99']/1000:.1f} ms  lost {p['lost']} dup {p['duplicates']}")
    print(f"non-persistent 4P/4C 1KiB: {n['msgs_per_sec']:,.0f} msg/s  p99 {n['latency_us']['p99']/1000:.1f} ms  lost {n['lost']} dup {n['duplicates']}")
    print(f"idle RSS: {results['idle_rss_mib']:.1f} MiB; start (empty): {results['start_empty_s']*1000:.0f} ms")
    print(f"start with {results['journal_bytes']/2**30:.2f} GiB journal ({results['backlog_messages']:,} messages pending): "
          f"{results['start_backlog_s']:.2f} s, RSS then {results['backlog_rss_mib']:.0f} MiB")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
