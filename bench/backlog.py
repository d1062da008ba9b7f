#!/usr/bin/env python3
"""A backlog larger than memory on one Hawser broker: how fast it fills, how much
memory the broker holds with it, and how long a restart takes.

Usage: bench/backlog.py [--hawser target/release/hawser] [--backlog-mib 1024]
                        [--memory-mib 64] [--non-persistent] [--activemq] [--json out.json]

One broker (`hawser serve`, its own temporary data directory, the journal's
default fsync settings, `--max-pending-memory-bytes` = --memory-mib) is filled
with --backlog-mib of persistent 1 KiB messages by `hawser bench --consumers 0`
(4 producers, 64 sends each awaiting a receipt): the fill rate, beside the
same command's S1 rate (4 producers and 4 consumers, 10 s) on a fresh broker.
Then the broker's RSS; then a restart (SIGTERM, start): the time from starting
the process to its first STOMP CONNECTED, and its RSS after; then the same
after SIGKILL. Every process listens on 127.0.0.1 only and is stopped by its PID.

With --non-persistent the messages are non-persistent (they spill to the
journal beyond memory, and no restart keeps them), and S1 is run with
non-persistent messages too. With --activemq, ActiveMQ 5.17 (as shipped:
its default memoryUsage and tempUsage, 512 MiB of heap) is filled with the
same backlog by the same command, for its fill rate and RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402


def bench(hawser: str, port: int, *args: str, persistent: bool = True) -> tuple[dict, str]:
    mode = "--persistent" if persistent else "--non-persistent"
    cmd = [hawser, "bench", "--broker", f"127.0.0.1:{port}", "--size", "1024", mode,
           "--window", "64", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed: {out.stderr[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), shlex.join(cmd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default="target/release/hawser")
    ap.add_argument("--backlog-mib", type=int, default=1024)
    ap.add_argument("--memory-mib", type=int, default=64)
    ap.add_argument("--non-persistent", action="store_true")
    ap.add_argument("--activemq", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    a.hawser = str(Path(a.hawser).resolve())
    persistent = not a.non_persistent
    result: dict = {"backlog_mib": a.backlog_mib, "memory_mib": a.memory_mib, "persistent": persistent}
    with tempfile.TemporaryDirectory(prefix="hawser-backlog-") as t:
        tmp = Path(t)
        # S1 on a fresh broker, for the ratio.
        (tmp / "s1").mkdir()
        b = compare.Hawser(tmp / "s1", a.hawser)
        b.max_pending_memory = a.memory_mib << 20
        try:
            b.start()
            r, cmd = bench(a.hawser, b.port, "--producers", "4", "--consumers", "4", "--duration", "10",
                           "--destination", "/queue/s1", persistent=persistent)
            result["s1_msgs_per_sec"] = r["msgs_per_sec"]
            result["s1_command"] = cmd
        finally:
            b.stop()
        (tmp / "fill").mkdir()
        b = compare.Hawser(tmp / "fill", a.hawser)
        b.max_pending_memory = a.memory_mib << 20
        try:
            b.start()
            per_producer = a.backlog_mib * 1024 // 4
            t0 = time.monotonic()
            r, cmd = bench(a.hawser, b.port, "--producers", "4", "--consumers", "0", "--count",
                           str(per_producer), "--destination", "/queue/backlog", persistent=persistent)
            took = time.monotonic() - t0
            result["fill"] = {"messages": r["confirmed"], "seconds": round(took, 2),
                              "msgs_per_sec": round(r["confirmed"] / took), "command": cmd}
            result["rss_mib_filled"] = round(b.rss_mib(), 1)
            for how in ("sigterm", "sigkill"):
                if how == "sigterm":
                    b.stop()
                else:
                    os.kill(b.proc.pid, signal.SIGKILL)
                    b.proc.wait(timeout=30)
                start_s = b.start()
                time.sleep(1)
                result[f"restart_{how}"] = {"to_connected_s": round(start_s, 3),
                                            "rss_mib": round(b.rss_mib(), 1)}
        finally:
            b.stop()
        if a.activemq:
            (tmp / "activemq").mkdir()
            m = compare.ActiveMQ(tmp / "activemq")
            try:
                m.start()
                per_producer = a.backlog_mib * 1024 // 4
                t0 = time.monotonic()
                r, cmd = bench(a.hawser, m.port, "--producers", "4", "--consumers", "0", "--count",
                               str(per_producer), "--destination", "/queue/backlog", *m.bench_flags(),
                               persistent=persistent)
                took = time.monotonic() - t0
                result["activemq_fill"] = {"messages": r["confirmed"], "seconds": round(took, 2),
                                           "msgs_per_sec": round(r["confirmed"] / took), "command": cmd,
                                           "rss_mib_filled": round(m.rss_mib(), 1)}
            finally:
                m.stop()
            result["fill_vs_activemq"] = round(result["fill"]["msgs_per_sec"]
                                               / result["activemq_fill"]["msgs_per_sec"], 2)
    result["fill_vs_s1"] = round(result["fill"]["msgs_per_sec"] / result["s1_msgs_per_sec"], 2)
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
