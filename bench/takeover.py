#!/usr/bin/env python3
"""Master/slave takeover time on a shared store, Hawser beside ActiveMQ 5.17.

Usage: bench/takeover.py [--hawser target/release/hawser] [--kills 5] [--backlog-mib 1024]
                         [--brokers hawser,activemq] [--json out.json] [--out docs/benchmarks.md]

Two brokers share one store (Hawser: `--ha shared-store`, file lock; ActiveMQ:
two brokers on one KahaDB directory with its default shared-file locker). A probe
sends persistent messages one at a time over STOMP, each waiting for its RECEIPT
(which both brokers send only once the message is on disk), to whichever broker
accepts the connection; a standby accepts none. The master is killed with
SIGKILL; the takeover time is from the kill to the first RECEIPT from the other
broker. The killed broker is restarted as the new standby before the next kill.
Each case runs `--kills` times: with an empty store, and with `--backlog-mib` of
persistent 1 KiB messages pending (filled with `hawser bench --consumers 0`), so
every takeover recovers that backlog.

Every broker listens on 127.0.0.1 only, runs in its own temporary directory and
is stopped by its PID. Writes the "Takeover on a shared store" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the brokers and process helpers of the comparison)

HOST = compare.HOST
REPO = compare.REPO
SECTION = "## Takeover on a shared store"
PROBE_PAUSE_S = 0.002       # between two probe sends
RECEIPT_TIMEOUT_S = 2.0     # a RECEIPT not back by then: the connection is given up
CONNECT_TIMEOUT_S = 1.0
TAKEOVER_TIMEOUT_S = 120.0  # a takeover not done by then counts as failed
STANDBY_SETTLE_S = {"hawser": 0.5, "activemq": 5.0}  # let a restarted standby reach its lock


class Probe(threading.Thread):
    """Synchronous persistent sends to whichever of `ports` accepts; notes each RECEIPT."""

    def __init__(self, ports: list[int], headers: dict[str, str]):
        super().__init__(daemon=True)
        self.ports = ports
        self.headers = headers
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.receipts: list[tuple[float, int]] = []  # (monotonic time, port)
        self.sock: socket.socket | None = None
        self.port: int | None = None
        self.seq = 0

    def connect(self) -> bool:
        frame = ("CONNECT\naccept-version:1.2\n" + "".join(f"{k}:{v}\n" for k, v in self.headers.items())
                 + "\n\0").encode()
        for port in self.ports:
            try:
                s = socket.create_connection((HOST, port), timeout=CONNECT_TIMEOUT_S)
                s.settimeout(CONNECT_TIMEOUT_S)
                s.sendall(frame)
                if self.read_frame(s).startswith(b"CONNECTED"):
                    s.settimeout(RECEIPT_TIMEOUT_S)
                    self.sock, self.port = s, port
                    return True
                s.close()
            except OSError:
                continue
        return False

    @staticmethod
    def read_frame(s: socket.socket) -> bytes:
        data = b""
        while b"\0" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data.lstrip(b"\r\n")

    def run(self) -> None:
        while not self.stop.is_set():
            if self.sock is None and not self.connect():
                time.sleep(0.005)
                continue
            self.seq += 1
            frame = (f"SEND\ndestination:/queue/takeover.probe\npersistent:true\nreceipt:{self.seq}\n\n"
                     f"probe {self.seq}\0").encode()
            try:
                self.sock.sendall(frame)
                reply = self.read_frame(self.sock)
                if not reply.startswith(b"RECEIPT"):
                    raise OSError(reply[:80])
                with self.lock:
                    self.receipts.append((time.monotonic(), self.port))
            except OSError:
                try:
                    self.sock.close()
                except OSError:
                    pass
                self.sock, self.port = None, None
                continue
            time.sleep(PROBE_PAUSE_S)

    def first_receipt_after(self, t: float, port: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for when, p in self.receipts:
                    if when > t and p == port:
                        return when
            time.sleep(0.001)
        return None


class HawserShared(compare.Hawser):
    def __init__(self, tmp: Path, binary: str, store: Path):
        super().__init__(tmp, binary)
        self.store = store

    def command(self):
        return [self.binary, "serve", "--data-dir", str(self.store), "--stomp", f"{HOST}:{self.port}",
                "--openwire", f"{HOST}:0", "--ha", "shared-store", "--max-pending-memory-bytes", str(4 << 30)], None


class ActiveMQShared(compare.ActiveMQ):
    """One of two ActiveMQ brokers on one KahaDB directory (its shared-file locker)."""

    def __init__(self, tmp: Path, store: Path):
        super().__init__(tmp)
        self.kahadb = store / "kahadb"


def spawn(b: compare.Broker) -> None:
    """Starts the process without waiting for STOMP (a standby never answers)."""
    cmd, env = b.command()
    with open(b.log_path, "ab") as log:
        b.proc = subprocess.Popen(cmd, env=env, cwd=b.tmp, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)


def accepting(port: int, headers: dict[str, str]) -> bool:
    return compare.stomp_connected(port, headers)


def kill9(b: compare.Broker) -> None:
    for p in b.pids():
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if b.proc is not None:
        b.proc.wait(timeout=30)


def fill(hawser: str, port: int, headers: list[str], mib: int) -> dict:
    per_producer = mib * 1024 // 4
    cmd = [hawser, "bench", "--broker", f"{HOST}:{port}", "--producers", "4", "--consumers", "0", "--size", "1024",
           "--persistent", "--window", "64", "--count", str(per_producer), "--destination", "/queue/backlog",
           "--scenario", "fill", *headers]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"fill failed: {out.stderr[-500:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"messages": r["confirmed"], "seconds": time.monotonic() - t0, "command": shlex.join(cmd)}


def run_case(kind: str, hawser: str, kills: int, backlog_mib: int) -> dict:
    case: dict = {"broker": kind, "backlog_mib": backlog_mib, "takeovers_s": [], "errors": []}
    with tempfile.TemporaryDirectory(prefix=f"hawser-takeover-{kind}-") as t:
        root = Path(t)
        store = root / "store"
        store.mkdir()
        pair = []
        for name in ("a", "b"):
            d = root / name
            d.mkdir()
            pair.append(HawserShared(d, hawser, store) if kind == "hawser" else ActiveMQShared(d, store))
        headers = pair[0].connect_headers
        bench_flags = pair[0].bench_flags()
        try:
            spawn(pair[0])
            if compare.first_connected(pair[0].port, headers, time.monotonic() + 120, pair[0].proc) is None:
                raise RuntimeError(f"{kind}: the first broker never served; log:\n{pair[0].log_tail()}")
            spawn(pair[1])
            time.sleep(STANDBY_SETTLE_S[kind])
            if accepting(pair[1].port, headers):
                raise RuntimeError(f"{kind}: the standby accepts STOMP connections")
            if backlog_mib:
                case["fill"] = fill(hawser, pair[0].port, bench_flags, backlog_mib)
                compare.log(f"  {kind}: filled {case['fill']['messages']:,} messages in {case['fill']['seconds']:.0f} s")
            probe = Probe([b.port for b in pair], headers)
            probe.start()
            if probe.first_receipt_after(0, pair[0].port, 30) is None:
                raise RuntimeError(f"{kind}: the probe got no receipt")
            master, standby = 0, 1
            for k in range(kills):
                time.sleep(0.3)
                t_kill = time.monotonic()
                kill9(pair[master])
                got = probe.first_receipt_after(t_kill, pair[standby].port, TAKEOVER_TIMEOUT_S)
                if got is None:
                    case["errors"].append(f"kill {k + 1}: no receipt from the standby within {TAKEOVER_TIMEOUT_S:.0f} s")
                    compare.log(f"  {kind} kill {k + 1}: FAILED")
                    break
                case["takeovers_s"].append(got - t_kill)
                compare.log(f"  {kind} backlog {backlog_mib} MiB, kill {k + 1}: takeover {(got - t_kill) * 1000:,.0f} ms")
                spawn(pair[master])
                time.sleep(STANDBY_SETTLE_S[kind])
                master, standby = standby, master
            probe.stop.set()
            probe.join(5)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            case["errors"].append(str(e))
            compare.log(f"  {kind}: ERROR {e}")
        finally:
            for b in pair:
                b.stop()
    return case


def render(data: dict) -> str:
    L = [SECTION, "", "<!-- Generated by bench/takeover.py: rerun it to refresh this section. -->", "",
         "Reproduce with:", "", "```sh", "cargo build --release -p hawser",
         "python3 bench/takeover.py --kills 5 --backlog-mib 1024", "```", "",
         f"Run of {data['date']} ({data['versions']['hawser']}, commit {data['versions']['hawser_commit']}; "
         f"ActiveMQ {data['versions']['activemq']}), command line:", "", "```sh", data["command"], "```", "",
         "Two brokers share one store: Hawser with `--ha shared-store` (file lock; a standby tries every 50 ms, "
         "the default), ActiveMQ 5.17 as two brokers on one KahaDB directory with its default shared-file locker "
         "(a slave tries the lock every 10 s, `lockAcquireSleepInterval`). A probe sends persistent messages one at "
         "a time over STOMP, each waiting for its RECEIPT, to whichever broker accepts it (a standby accepts no "
         "connection). Takeover: from the master's SIGKILL to the first RECEIPT from the other broker, which "
         "includes the probe noticing the broken connection and connecting again (it retries every 5 ms). The killed "
         "broker is restarted as the new standby before the next kill. With a backlog, the store holds that many "
         "MiB of pending persistent 1 KiB messages, which every takeover recovers.", "",
         "| broker | pending | kills | takeover median | min | worst | failed |", "|---|---|---|---|---|---|---|"]
    for c in data["cases"]:
        t = sorted(c["takeovers_s"])
        label = "Hawser" if c["broker"] == "hawser" else "ActiveMQ 5.17"
        pend = "empty" if not c["backlog_mib"] else (
            f"{c['backlog_mib']} MiB ({c.get('fill', {}).get('messages', 0):,} messages)")
        if t:
            L.append(f"| {label} | {pend} | {len(t)} | **{statistics.median(t) * 1000:,.0f} ms** | "
                     f"{t[0] * 1000:,.0f} ms | {t[-1] * 1000:,.0f} ms | {'; '.join(c['errors']) or 0} |")
        else:
            L.append(f"| {label} | {pend} | 0 | n/a | n/a | n/a | {'; '.join(c['errors']) or 'not run'} |")
    L.append("")
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default=str(REPO / "target/release/hawser"))
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--backlog-mib", type=int, default=1024)
    ap.add_argument("--brokers", default="hawser,activemq")
    ap.add_argument("--activemq-backlog", action="store_true",
                    help="also fill ActiveMQ's store (slow: ActiveMQ stores a few thousand messages a second)")
    ap.add_argument("--json")
    ap.add_argument("--out", default=str(REPO / "docs/benchmarks.md"))
    a = ap.parse_args()
    data = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": shlex.join(["python3", "bench/takeover.py", *sys.argv[1:]]), "cases": [],
            "versions": compare.versions(a.hawser)}
    for kind in a.brokers.split(","):
        backlogs = [0, a.backlog_mib] if a.backlog_mib and (kind == "hawser" or a.activemq_backlog) else [0]
        for mib in backlogs:
            data["cases"].append(run_case(kind, a.hawser, a.kills, mib))
    if a.json:
        Path(a.json).write_text(json.dumps(data, indent=1))
    out = Path(a.out)
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    section = render(data)
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip() == SECTION), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        text = "".join(lines[:start]) + section + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    out.write_text(text)
    compare.log(f"wrote {out}")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
