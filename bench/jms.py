#!/usr/bin/env python3
"""JMS over OpenWire: ActiveMQ's own Java client (Debian's libactivemq-java,
activemq-client 5.17) against Hawser and ActiveMQ 5.17 in one run, with
bench/java/JmsBench.java as the load generator, unchanged for both brokers.

Usage: bench/jms.py [--hawser target/release/hawser] [--runs 3] [--seconds 10] [--warmup 5]
                    [--hawser-memory-bytes 4294967296] [--client-timeout 900]
                    [--scenarios send-sync,send-async,drain] [--connections 4] [--size 1024]
                    [--drain-count 200000] [--brokers hawser,activemq]
                    [--json results.json] [--out section.md] [--docs docs/benchmarks.md]
       bench/jms.py --from-json results.json [--out section.md] [--docs docs/benchmarks.md]   (re-render only)

Scenarios (details in bench/java/JmsBench.java):
  send-sync   persistent sends, each waiting for the broker's answer (ActiveMQ's default
              for persistent messages outside a transaction), no consumer
  send-async  persistent sends with useAsyncSend=true (ActiveMQ's "Async Sends"), no
              consumer; each producer ends with one send that waits for the broker's
              answer, so every message counted was taken
  drain       --drain-count persistent messages put on the queue first (not timed),
              then consumers take them: AUTO_ACKNOWLEDGE, receive(), default prefetch
              1000, optimizeAcknowledge off (ActiveMQ's defaults)
A scenario may carry its own number of connections: --scenarios send-sync:16,drain:2.

For every run of every scenario each broker is started fresh in a new temporary
directory (Hawser: `hawser serve` with a new data directory and default fsync
settings; ActiveMQ: the broker of bench/compare.py with an OpenWire connector added,
KahaDB with its defaults), one JVM runs the scenario's warm-up (uncounted, --warmup
seconds, on another queue, then drained) and then, once the broker's CPU is quiet,
the measured run; then the broker is stopped. Runs go round-robin over the brokers
(run 1 of each, then run 2 of each, ...). Broker CPU is user+system time from
/proc/PID/stat of the broker's processes, read when the measured run starts and when
the client reports its result (after closing its connections); client CPU is the
same for the Java process over the same window. At the end of the timed phase, with
every thread still there, the CPU time of each thread of both is read too: the JVMs'
JIT compiler threads are told apart (broker CPU per message is judged without them)
and the output says where the CPU went. The output: a markdown section (printed;
--out, --docs) with msg/s, broker CPU per message, client CPU beside each figure,
ratios and a pass/fail line per target, and every run in --json.

Every process is started by this script, listens on or connects to 127.0.0.1 only
(free ports picked at start), and is stopped by its PID in a finally block; every
wait is bounded. The broker classes, /proc helpers and machine facts come from
bench/compare.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the brokers, /proc helpers and machine facts of the comparison)

HOST = compare.HOST
REPO = compare.REPO
JAVA_SOURCE = REPO / "bench" / "java" / "JmsBench.java"
# The client's jars as Debian installs them (libactivemq-java and what it needs),
# the same list as tests/python/test_openwire.py.
JARS = ["activemq-client", "geronimo-jms_1.1_spec", "geronimo-j2ee-management-1.1-spec",
        "hawtbuf", "slf4j-api", "slf4j-nop"]
CLASSPATH = ":".join(f"/usr/share/java/{jar}.jar" for jar in JARS)

SECTION = "## JMS over OpenWire: Hawser and ActiveMQ 5.17 with ActiveMQ's Java client"
INTRO = [
    "The same JMS program, `bench/java/JmsBench.java` on ActiveMQ's own client (Debian's "
    "`libactivemq-java`, activemq-client 5.17), against Hawser's and ActiveMQ 5.17's OpenWire ports "
    "in one run: persistent synchronous sends (`send-sync`), persistent asynchronous sends "
    "(`send-async`, `useAsyncSend=true`) and consumers draining a pre-filled queue (`drain`, "
    "AUTO_ACKNOWLEDGE, prefetch 1000). Targets: at most 1/5 of ActiveMQ's broker CPU per message "
    "in every scenario, and at least 5× its messages per second wherever the Java client itself is "
    "not the bound; the client's CPU is given beside every figure.",
]
FULL_COMMAND = ("python3 bench/jms.py --runs 3 --seconds 10 --warmup 10 --drain-count 500000 "
                "--json /tmp/jms.json --docs docs/benchmarks.md")
SCENARIOS = ["send-sync", "send-async", "drain"]
# Hawser's memory limit for these runs. Since paging (issue 19) persistent messages beyond
# it stay in the journal and no producer here is held for memory, as with ActiveMQ's KahaDB;
# the default stays 4 GiB so that runs compare with those recorded before paging, when
# Hawser held producers at the limit (send-async fills a queue nobody consumes at some
# 1,200 bytes charged per 1 KiB message). --hawser-memory-bytes 67108864 measures a drain
# read back from the journal (docs/benchmarks.md, "Backlogs larger than memory").
HAWSER_MEMORY = 4 << 30
TITLES = {
    "send-sync": "persistent synchronous sends (no consumer)",
    "send-async": "persistent asynchronous sends, useAsyncSend=true (no consumer)",
    "drain": "a consumer draining a pre-filled queue (AUTO_ACKNOWLEDGE, prefetch 1000)",
}
BROKERS = ["hawser", "activemq"]
EXTRA_BROKERS = ["hawser-1io", "hawser-stored", "activemq-stored"]  # see bench/compare.py

OPENWIRE_TIMEOUT_S = 60   # after STOMP answers, the OpenWire port must accept by then
SETTLE_MAX_S = 20         # at most this long waiting for the broker to go quiet
SETTLE_STEP_S = 0.25
SETTLE_QUIET_CORES = 0.05  # "quiet": less than 5 % of a core over one step
CLIENT_EXIT_S = 30        # the client's exit after its result line
OTHER_LOAD_NOTE_CORES = 0.1  # CPU used by other processes in a measured window: noted above this
JIT_NOTE_SHARE = 0.10     # JIT compiler threads' share of a JVM's CPU in the timed phase: noted above this
CLIENT_BOUND_SHARE = 0.9  # see client_bound()
TARGET_CPU = 5.0          # broker CPU per message at most 1/5 of ActiveMQ's
TARGET_RATE = 5.0         # msg/s at least 5x ActiveMQ's where the client is not the bound

CLIENT_BOUND_RULE = (
    "A run is *client-bound* when the Java client's CPU over the measured window is at least "
    f"{CLIENT_BOUND_SHARE:.0%} of min(connections, CPUs) cores (each connection is one chain of "
    "an application thread and its transport thread, so that is all the client could use), or when "
    f"client and broker together kept the CPUs at least {CLIENT_BOUND_SHARE:.0%} busy and the "
    "client used more of them than the broker (the broker could only have gone faster with CPU "
    "the client was using).")
JIT_RULE = (
    "Broker CPU per message is given without the CPU of the JVM's JIT compiler threads in the timed "
    "phase, and in brackets with it: compiling is a cost of a JVM warming up, which a broker running "
    "for days pays once, not per message, and it can still be running after the warm-up. The target "
    "is judged without it, which is ActiveMQ's lower figure. Hawser has no JIT; its two figures are "
    "the same. Client CPU is given whole, compiling included.")


def log(msg: str) -> None:
    compare.log(msg)


# --------------------------------------------------------------------------- setup


def compile_java(out: Path) -> None:
    missing = [p for p in CLASSPATH.split(":") if not Path(p).exists()]
    if shutil.which("javac") is None or missing:
        raise SystemExit(f"Java 17 and libactivemq-java are needed; missing: {missing or 'javac'}")
    subprocess.run(["javac", "-cp", CLASSPATH, "-d", str(out), str(JAVA_SOURCE)],
                   check=True, timeout=300, stdin=subprocess.DEVNULL)


def parse_scenarios(spec: str, default_connections: int) -> list[tuple[str, int]]:
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, n = item.partition(":")
        name = name.lower()
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r} (one of {', '.join(SCENARIOS)})")
        conns = int(n) if n else default_connections
        if conns < 1:
            raise ValueError(f"{item}: connections must be >= 1")
        out.append((name, conns))
    if not out:
        raise ValueError("no scenario")
    return out


# ActiveMQ's runtime logs through log4j 1.2 (Debian's lib/optional); without a configuration
# it logs nothing. WARN and above to the console (the broker log), which costs nothing unless
# something is wrong (memory limits reached, producer flow control, store problems).
ACTIVEMQ_LOG4J = """log4j.rootLogger=WARN, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d %-5p [%t] %c - %m%n
"""


def make_broker(name: str, tmp: Path, hawser: str) -> compare.Broker:
    b = compare.make_broker(name, tmp, hawser)
    if isinstance(b, compare.ActiveMQ):
        b.openwire_port = compare.free_port()
        command = b.command

        def with_log4j():
            cmd, env = command()
            props = tmp / "conf" / "log4j.properties"
            props.write_text(ACTIVEMQ_LOG4J)
            at = cmd.index("-jar")
            return cmd[:at] + [f"-Dlog4j.configuration=file:{props}"] + cmd[at:], env

        b.command = with_log4j
    return b


def listening(port: int) -> bool:
    """Whether a socket listens on HOST:port, from /proc/net/tcp and tcp6 (a JVM listens on
    an IPv6 socket, 127.0.0.1 mapped); a probe connection would make ActiveMQ log a failed
    connection."""
    v4 = f"{socket.htonl(int.from_bytes(socket.inet_aton(HOST), 'big')):08X}"
    wanted = {f"{v4}:{port:04X}", f"0000000000000000FFFF0000{v4}:{port:04X}"}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(f[1] in wanted and f[3] == "0A" for f in (line.split() for line in lines) if len(f) > 3):
            return True
    return False


def wait_listening(port: int, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def settle(broker: compare.Broker) -> dict:
    """Waits (bounded) until the broker uses less than SETTLE_QUIET_CORES of a core, so that
    the measured window holds no leftover of the warm-up or the fill (ActiveMQ's KahaDB
    writes and indexes after its producers were answered)."""
    t0 = time.monotonic()
    pids = broker.pids()
    last = compare.cpu_s(pids)
    rate = None
    while time.monotonic() - t0 < SETTLE_MAX_S:
        time.sleep(SETTLE_STEP_S)
        now = compare.cpu_s(pids)
        rate = (now - last) / SETTLE_STEP_S
        last = now
        if rate < SETTLE_QUIET_CORES and time.monotonic() - t0 >= 2 * SETTLE_STEP_S:
            break
    return {"settle_s": time.monotonic() - t0, "settle_cores": rate}


# --------------------------------------------------------------------------- CPU accounting


def thread_ticks(pids: list[int]) -> dict[int, tuple[str, int]]:
    """tid -> (thread name, user+system clock ticks) for every thread of these processes."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            except OSError:
                continue
            f = stat.rsplit(")", 1)[1].split()
            out[int(tid)] = (name, int(f[11]) + int(f[12]))
    return out


def by_thread(before: dict, after: dict, top: int = 8) -> list[list]:
    """CPU seconds per thread name (digits folded: 'GC Thread#3' -> 'GC Thread##'), largest first."""
    tick = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = {}
    for tid, (name, ticks) in after.items():
        d = ticks - before.get(tid, (name, 0))[1]
        if d > 0:
            key = re.sub(r"\d+", "#", name)
            groups[key] = groups.get(key, 0) + d / tick
    return [[k, round(v, 3)] for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:top]]


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (not idle, not waiting for I/O), all CPUs."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in f[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / os.sysconf("SC_CLK_TCK")


def log_size(broker: compare.Broker) -> int:
    try:
        return broker.log_path.stat().st_size
    except OSError:
        return 0


def log_warnings(broker: compare.Broker, start: int = 0, end: int | None = None, n: int = 10) -> list[str]:
    """The WARN and ERROR lines (the first n) of the broker log's bytes start..end."""
    try:
        with open(broker.log_path, "rb") as f:
            f.seek(start)
            text = f.read(None if end is None else max(0, end - start)).decode(errors="replace")
    except OSError:
        return []
    return [line[:300] for line in text.splitlines()
            if re.search(r"\b(WARN|WARNING|ERROR)\b", line) and not line.startswith("log4j:")][:n]


# --------------------------------------------------------------------------- one run


class Client:
    """The Java program as a child process; its stdout lines arrive on a queue."""

    def __init__(self, cmd: list[str], stderr_path: Path):
        self.cmd = cmd
        self.stderr_path = stderr_path
        self.lines: queue.Queue = queue.Queue()
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_event(self, deadline: float) -> dict | None:
        """The next JSON line, or None when the client ended or the deadline passed."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # not ours (the client library printing something)
            if isinstance(ev, dict) and "event" in ev:
                return ev

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stderr_tail(self, n: int = 1500) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> int | None:
        """Waits for its exit (bounded), then SIGTERM, then SIGKILL, by its PID."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        for sig, wait in ((None, CLIENT_EXIT_S), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                break
            if sig is not None:
                try:
                    os.kill(self.proc.pid, sig)
                except ProcessLookupError:
                    break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        self.reader.join(timeout=5)
        return self.proc.returncode


def client_timeout(a: argparse.Namespace, scenario: str) -> float:
    """The Java program's own hard limit (it halts itself then); the harness waits 30 s more."""
    if scenario == "drain":
        return a.client_timeout
    return min(a.client_timeout, 3 * a.warmup + 3 * a.seconds + 240)


def one_run(a: argparse.Namespace, classes: Path, scenario: str, conns: int, name: str, r: int,
            tag: str, step: str, data: dict) -> None:
    rec: dict = {"broker": name, "scenario": scenario, "run": r, "connections": conns, "size": a.size}
    data["runs"].append(rec)
    with tempfile.TemporaryDirectory(prefix=f"hawser-jms-{name}-") as t:
        tmp = Path(t)
        broker = make_broker(name, tmp, a.hawser)
        if isinstance(broker, compare.Hawser):
            broker.max_pending_memory = a.hawser_memory_bytes
        client: Client | None = None
        started_log = 0
        try:
            rec["start_s"] = broker.start()
            if not wait_listening(broker.openwire_port, broker.proc, OPENWIRE_TIMEOUT_S):
                raise compare.BrokerError(f"{name}: OpenWire port {broker.openwire_port} not accepting; "
                                          f"log tail:\n{broker.log_tail()}")
            started_log = log_size(broker)
            rec["broker_start_warnings"] = log_warnings(broker, 0, started_log)
            url = f"tcp://{HOST}:{broker.openwire_port}"
            queue_name = f"jms.bench.{scenario}.{name}.{tag}.r{r}"
            timeout = client_timeout(a, scenario)
            cmd = ["java", "-cp", f"{CLASSPATH}:{classes}", "JmsBench", url, scenario,
                   "--size", str(a.size), "--connections", str(conns), "--seconds", f"{a.seconds:g}",
                   "--count", str(a.drain_count), "--warmup", f"{a.warmup:g}", "--queue", queue_name,
                   "--wait-go", "--timeout", f"{timeout:g}"]
            rec["command"] = shlex.join(cmd)
            client = Client(cmd, tmp / "client.stderr")
            deadline = time.monotonic() + timeout + 30
            ev = client.next_event(deadline)
            while ev is not None and ev["event"] in ("warmup", "filled"):
                rec[ev["event"]] = {k: v for k, v in ev.items() if k != "event"}
                ev = client.next_event(deadline)
            if ev is None or ev["event"] != "ready":
                if ev is not None and ev["event"] == "result":
                    rec["result"] = ev
                raise RuntimeError(f"the client did not get ready: {ev}; stderr tail:\n{client.stderr_tail()}")
            rec.update(settle(broker))
            bpids, cpids = broker.pids(), [client.proc.pid]
            bt0, ct0 = thread_ticks(bpids), thread_ticks(cpids)
            m0, b0, c0 = machine_busy_s(), compare.cpu_s(bpids), compare.cpu_s(cpids)
            t0 = time.monotonic()
            client.go()
            ev = client.next_event(deadline)
            if ev is not None and ev["event"] == "end":
                # The timed phase is over and every thread of the client is still there.
                rec["timed_window_s"] = time.monotonic() - t0
                rec["broker_cpu_timed_s"] = compare.cpu_s(bpids) - b0
                rec["client_cpu_timed_s"] = compare.cpu_s(cpids) - c0
                rec["broker_threads"] = by_thread(bt0, thread_ticks(bpids))
                rec["client_threads"] = by_thread(ct0, thread_ticks(cpids))
                client.go()  # the client goes on: its workers end, its connections close
                ev = client.next_event(deadline)
            t1 = time.monotonic()
            b1, c1, m1 = compare.cpu_s(bpids), compare.cpu_s(cpids), machine_busy_s()
            rec["other_cpu_s"] = max(0.0, (m1 - m0) - (b1 - b0) - (c1 - c0))
            if ev is None or ev["event"] != "result":
                raise RuntimeError(f"no result from the client: {ev}; stderr tail:\n{client.stderr_tail()}")
            rec["result"] = ev
            rec["window_s"] = t1 - t0
            rec["broker_cpu_s"] = b1 - b0
            rec["client_cpu_s"] = c1 - c0
            rec["broker_alive_after"] = broker.proc.poll() is None
            if ev.get("errors"):
                rec["error"] = f"client reported {ev['errors']} error(s): {ev.get('first_error')}"
            elif not rec["broker_alive_after"]:
                rec["error"] = f"{name} exited during the run; log tail:\n{broker.log_tail()}"
            elif ev["messages"] <= 0:
                rec["error"] = "no message counted"
        except (compare.BrokerError, RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
            rec["error"] = str(e)
        finally:
            if client is not None:
                rec["client_exit"] = client.stop()
                tail = client.stderr_tail(4000).strip()
                if tail:
                    rec["client_stderr_tail"] = tail.splitlines()[-20:]
                if rec.get("client_exit") not in (0, None) and "error" not in rec:
                    rec["error"] = f"client exited {rec['client_exit']}"
            rec["broker_exit"] = broker.stop()
            warnings = log_warnings(broker, started_log)
            if warnings:
                rec["broker_log_warnings"] = warnings
            if "error" in rec:
                rec["broker_log_tail"] = broker.log_tail(3000).splitlines()[-30:]
    derive(rec, data["machine"]["nproc"])
    log(f"{step} {scenario} (x{conns}) run {r} {name}: {summary(rec)}")


def derive(rec: dict, nproc: int) -> None:
    """Per-message and per-core figures of one run, and whether the client was the bound."""
    res = rec.get("result")
    if not res or "error" in rec or not res.get("messages") or not rec.get("window_s"):
        return
    n, w = res["messages"], rec["window_s"]
    rec["msgs_per_sec"] = res["msgs_per_sec"]
    rec["broker_us_per_msg"] = rec["broker_cpu_s"] * 1e6 / n
    rec["client_us_per_msg"] = rec["client_cpu_s"] * 1e6 / n
    # A JVM's JIT compiler threads: a cost of warming up, not of each message (see JIT_RULE).
    rec["broker_jit_s"] = sum(cpu for name, cpu in rec.get("broker_threads", []) if is_jit(name))
    rec["client_jit_s"] = sum(cpu for name, cpu in rec.get("client_threads", []) if is_jit(name))
    rec["broker_us_per_msg_nojit"] = max(0.0, rec["broker_cpu_s"] - rec["broker_jit_s"]) * 1e6 / n
    rec["broker_cores"] = rec["broker_cpu_s"] / w
    rec["client_cores"] = rec["client_cpu_s"] / w
    rec["other_cores"] = rec.get("other_cpu_s", 0) / w
    rec["client_bound"] = client_bound(rec["client_cores"], rec["broker_cores"], rec["connections"], nproc)


def is_jit(thread: str) -> bool:
    """HotSpot's compiler threads ('C2 CompilerThread0', 'C1 CompilerThre' as the kernel cuts it)."""
    return "CompilerThre" in thread


def client_bound(client_cores: float, broker_cores: float, connections: int, nproc: int) -> bool:
    """See CLIENT_BOUND_RULE."""
    if client_cores >= CLIENT_BOUND_SHARE * min(connections, nproc):
        return True
    return client_cores + broker_cores >= CLIENT_BOUND_SHARE * nproc and client_cores > broker_cores


def summary(rec: dict) -> str:
    if "msgs_per_sec" not in rec:
        return "ERROR " + str(rec.get("error", "?"))[:2000]
    return (f"{rec['result']['messages']:,} msgs in {rec['result']['elapsed_s']:.2f} s = "
            f"{rec['msgs_per_sec']:,.0f} msg/s; broker {rec['broker_us_per_msg']:.1f} µs/msg "
            f"({rec['broker_us_per_msg_nojit']:.1f} without JIT) "
            f"({rec['broker_cores']:.2f} cores); client {rec['client_us_per_msg']:.1f} µs/msg "
            f"({rec['client_cores']:.2f} cores{', client-bound' if rec['client_bound'] else ''}); "
            f"settled in {rec.get('settle_s', 0):.1f} s")


def measure(a: argparse.Namespace, classes: Path, scenarios: list[tuple[str, int]], brokers: list[str],
            data: dict) -> None:
    """Round-robin: run r of every broker before run r+1 of any, so that a slow spell of a
    shared machine falls on all brokers alike."""
    tag = os.urandom(3).hex()
    total = len(scenarios) * a.runs * len(brokers)
    step = 0
    for scenario, conns in scenarios:
        for r in range(1, a.runs + 1):
            for name in brokers:
                step += 1
                one_run(a, classes, scenario, conns, name, r, tag, f"[{step}/{total}]", data)


# --------------------------------------------------------------------------- aggregation


def aggregate(data: dict) -> dict:
    """agg[scenario][broker] = medians (min, max) over the runs without error."""
    agg: dict = {}
    for rec in data["runs"]:
        a = agg.setdefault(rec["scenario"], {}).setdefault(rec["broker"], {"ok": [], "errors": []})
        (a["ok"] if "msgs_per_sec" in rec else a["errors"]).append(rec)
        a["connections"] = rec["connections"]
    for rows in agg.values():
        for a in rows.values():
            ok = a["ok"]
            a["n"] = len(ok)
            for key in ("msgs_per_sec", "broker_us_per_msg", "broker_us_per_msg_nojit", "client_us_per_msg",
                        "broker_cores",
                        "client_cores"):
                a[key] = compare.stats([r[key] for r in ok])
            if ok:
                a["client_bound"] = client_bound(a["client_cores"][0], a["broker_cores"][0],
                                                 a["connections"], data["machine"]["nproc"])
                a["client_bound_runs"] = sum(r["client_bound"] for r in ok)
    return agg


def baseline(brokers: list[str]) -> str | None:
    return next((b for b in brokers if b.startswith("activemq")), None)


def targets(data: dict, agg: dict) -> list[dict]:
    """The two targets per scenario, for every Hawser broker against the ActiveMQ baseline."""
    base = baseline(data["brokers"])
    out = []
    if base is None:
        return out
    for scenario in data["scenarios"]:
        rows = agg.get(scenario, {})
        b = rows.get(base)
        for h in (x for x in data["brokers"] if x.startswith("hawser")):
            x = rows.get(h)
            t = {"scenario": scenario, "broker": h, "baseline": base}
            if not x or not b or not x.get("n") or not b.get("n"):
                t["cpu"] = t["rate"] = "no data"
                out.append(t)
                continue
            cpu_ratio = b["broker_us_per_msg_nojit"][0] / x["broker_us_per_msg_nojit"][0]
            t["cpu_ratio_with_jit"] = b["broker_us_per_msg"][0] / x["broker_us_per_msg"][0]
            rate_ratio = x["msgs_per_sec"][0] / b["msgs_per_sec"][0]
            t["cpu_ratio"], t["rate_ratio"] = cpu_ratio, rate_ratio
            t["cpu"] = "met" if cpu_ratio >= TARGET_CPU else "not met"
            if x["client_bound"]:
                t["rate"] = "n/a (client-bound)" if rate_ratio < TARGET_RATE else "met"
            else:
                t["rate"] = "met" if rate_ratio >= TARGET_RATE else "not met"
            out.append(t)
    return out


# --------------------------------------------------------------------------- markdown


def rng(s, fmt) -> tuple[str, str]:
    if not s:
        return "–", "–"
    return fmt(s[0]), f"{fmt(s[1])}–{fmt(s[2])}"


def f0(x: float) -> str:
    return f"{x:,.0f}"


def f1(x: float) -> str:
    return f"{x:,.1f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def label(b: str) -> str:
    return compare.LABELS.get(b, b)


def markdown(data: dict) -> str:
    agg = aggregate(data)
    m, v = data["machine"], data["versions"]
    nproc = m["nproc"]
    o = [SECTION, "", "<!-- Generated by bench/jms.py: rerun it to refresh this section. -->", "",
         *INTRO, "", "Reproduce with:", "", "```sh", "cargo build --release -p hawser", FULL_COMMAND, "```", "",
         f"Run of {data['date']}, command line:", "", "```sh", data["command"], "```", "",
         f"Machine: {nproc} CPUs ({m['cpu']}), {m['mem_gib']:.1f} GiB memory, Linux {m['kernel']}; "
         f"temporary directories on {m['tmp_fs']}; load average before the run "
         f"{' '.join(m['loadavg_before'])}. Client and broker share the CPUs.", ""]
    if data.get("fsync"):
        o += [f"Disk: {f0(data['fsync']['append']['per_sec'])} fsyncs/s (4 KiB appended + `fdatasync`, "
              "in the brokers' file system).", ""]
    o += ["| | version and settings |", "|---|---|",
          f"| client | activemq-client {v.get('activemq_client', '?')}, {v.get('java', '?')}, "
          "`bench/java/JmsBench.java`; one connection, session, producer or consumer and thread per "
          "connection; BytesMessage bodies of random bytes |",
          f"| Hawser | {v.get('hawser', '?')}, commit {v.get('hawser_commit', '?')}: `hawser serve` with a "
          "fresh data directory, STOMP and OpenWire on 127.0.0.1, `--max-pending-memory-bytes "
          f"{data.get('hawser_memory_bytes', compare.HAWSER_MEMORY)}` (its memory limit: beyond it persistent "
          "messages stay in the journal and are read back as consumers need them), fsync and everything else at their defaults |",
          f"| ActiveMQ | {v.get('activemq', '?')}: bench/compare.py's broker (`{' '.join(compare.ACTIVEMQ_JVM)}`, "
          "JMX off, KahaDB with its defaults in a fresh directory) with an OpenWire `tcp://` connector "
          "added, and log4j at WARN to its log (without a configuration it logs nothing) |", ""]
    o += [f"Method: per run of a scenario, each broker is started fresh; the client's JVM runs "
          f"{data['warmup_s']:g} s of the same scenario on another queue (uncounted; JIT warm-up for "
          "client and ActiveMQ; that queue is then drained, so the broker holds nothing of it), then, "
          "once the broker uses less than 5 % of a core, the measured run "
          f"({data['seconds']:g} s of sending; drain: {f0(data['drain_count'])} messages put on the queue "
          f"before, untimed). Message body {data['size']:,} bytes. Runs go round-robin over the brokers. "
          "msg/s: messages over the client's timed phase (send-sync: until the last send in flight is "
          "answered; send-async: until each producer's final, answered send; drain: until the last "
          "message is received). CPU: user+system time from /proc/PID/stat of the broker and of the "
          "Java client, from the start of the measured run until the client has closed its "
          "connections and printed its result; *cores* is that CPU time over that window. "
          "Medians over the runs, with min–max.", "", JIT_RULE, "", CLIENT_BOUND_RULE, ""]
    for scenario in data["scenarios"]:
        rows = agg.get(scenario, {})
        conns = next((x["connections"] for x in rows.values()), data["connections"].get(scenario))
        who = "consumers" if scenario == "drain" else "producers"
        o += [f"### {scenario}: {TITLES[scenario]}, {conns} {who}", "",
              "| broker | runs | msg/s (median) | min–max | broker CPU µs/msg (with JIT) | broker cores | "
              "client CPU µs/msg | client cores | client-bound |",
              "|---|---|---|---|---|---|---|---|---|"]
        for b in data["brokers"]:
            x = rows.get(b)
            if not x:
                continue
            ms, mr = rng(x["msgs_per_sec"], f0)
            cb = (f"{'**yes**' if x['client_bound'] else 'no'} ({x['client_bound_runs']}/{x['n']} runs)"
                  if x.get("n") else "–")
            name = f"**{label(b)}**" if b.startswith("hawser") else label(b)
            o.append(f"| {name} | {x['n']}{' (' + str(len(x['errors'])) + ' failed)' if x['errors'] else ''} "
                     f"| **{ms}** | {mr} | {rng(x['broker_us_per_msg_nojit'], f1)[0]} "
                     f"({rng(x['broker_us_per_msg'], f1)[0]}) | "
                     f"{rng(x['broker_cores'], f2)[0]} | {rng(x['client_us_per_msg'], f1)[0]} | "
                     f"{rng(x['client_cores'], f2)[0]} | {cb} |")
        o.append("")
        where = cpu_shares(data, scenario)
        if where:
            o += ["Where the CPU went (each process's CPU time from the start to the end of the timed "
                  "phase, before the client closes its connections, all runs, by thread name as the "
                  "kernel has it, digits folded to #): " + "; ".join(where) + ".", ""]
    ts = targets(data, agg)
    if ts:
        base = label(ts[0]["baseline"])
        o += ["### Targets", "",
              f"Broker CPU per message at most 1/{TARGET_CPU:g} of {base}'s in every scenario; "
              f"at least {TARGET_RATE:g}× its msg/s wherever the Java client is not the bound (rule above; "
              "decided on the median client and broker cores of Hawser's runs).", "",
              f"| scenario | broker | broker CPU per message, {base} / Hawser (with JIT) | result | "
              f"msg/s, Hawser / {base} "
              "| client cores (Hawser run) | result |",
              "|---|---|---|---|---|---|---|"]
        for t in ts:
            if "cpu_ratio" not in t:
                o.append(f"| {t['scenario']} | {label(t['broker'])} | – | no data | – | – | no data |")
                continue
            x = agg[t["scenario"]][t["broker"]]
            o.append(f"| {t['scenario']} | {label(t['broker'])} | {t['cpu_ratio']:.1f}× less "
                     f"({t['cpu_ratio_with_jit']:.1f}×) | **{t['cpu']}** | "
                     f"{t['rate_ratio']:.1f}× | {x['client_cores'][0]:.2f} of {nproc} | **{t['rate']}** |")
        o.append("")
        o += [f"Overall: {verdict(ts)}", ""]
    notes = []
    for b in data["brokers"]:
        first = next((r for r in data["runs"] if r["broker"] == b and r.get("broker_start_warnings")), None)
        if first:
            lines = "; ".join("`" + re.sub(r"^\S+ \S+ +", "", w)[:160] + "`" for w in first["broker_start_warnings"])
            notes.append(f"{label(b)} logged at start (first run; the same every start): {lines}")
    busy_jit = []
    for scenario in data["scenarios"]:
        for b in data["brokers"]:
            for side, key, total_key in (("broker", "broker_threads", "broker_cpu_timed_s"),
                                         ("client", "client_threads", "client_cpu_timed_s")):
                runs = [r for r in data["runs"] if r["scenario"] == scenario and r["broker"] == b
                        and "msgs_per_sec" in r and r.get(total_key)]
                jit = sum(cpu for r in runs for name, cpu in r.get(key, []) if is_jit(name))
                total = sum(r[total_key] for r in runs)
                if total > 0 and jit / total > JIT_NOTE_SHARE:
                    who = label(b) if side == "broker" else f"client with {label(b)}"
                    busy_jit.append(f"{scenario} {who} {jit / total:.0%}")
    if busy_jit:
        notes.append(f"JIT compiler threads still above {JIT_NOTE_SHARE:.0%} of a JVM's CPU in the timed phase "
                     "(not warmed up yet; a longer --warmup lowers it): " + "; ".join(busy_jit) + ".")
    for rec in data["runs"]:
        where = f"{rec['scenario']} run {rec['run']} {label(rec['broker'])}"
        if "msgs_per_sec" not in rec:
            notes.append(f"{where} failed: " + str(rec.get("error", "?")).replace("\n", " ")[:400])
        if rec.get("other_cores", 0) > OTHER_LOAD_NOTE_CORES:
            notes.append(f"{where}: other processes used {rec['other_cores']:.2f} cores during the measured "
                         "window (the machine was not quiet).")
        res = rec.get("result") or {}
        if res.get("redelivered"):
            notes.append(f"{where}: {res['redelivered']:,} message(s) arrived marked redelivered.")
        if rec.get("broker_log_warnings"):
            w = rec["broker_log_warnings"]
            notes.append(f"{where}: the broker logged {len(w)}{'+' if len(w) >= 10 else ''} warning(s) or "
                         f"error(s), the first: `{w[0][:200]}`")
    if notes:
        o += ["### Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(o)


def cpu_shares(data: dict, scenario: str, top: int = 4) -> list[str]:
    """'Hawser: hawser-io# 55%, journal 30%, ...' per broker and for the client beside it."""
    out = []
    for b in data["brokers"]:
        runs = [r for r in data["runs"] if r["scenario"] == scenario and r["broker"] == b
                and "msgs_per_sec" in r]
        for side, key in (("broker", "broker_threads"), ("client", "client_threads")):
            groups: dict[str, float] = {}
            for r in runs:
                for name, cpu in r.get(key, []):
                    groups[name] = groups.get(name, 0) + cpu
            total = sum(groups.values())
            if total <= 0:
                continue
            parts = [f"`{n}` {v / total:.0%}" for n, v in sorted(groups.items(), key=lambda kv: -kv[1])[:top]]
            who = label(b) if side == "broker" else f"client with {label(b)}"
            out.append(f"{who}: " + ", ".join(parts))
    return out


def verdict(ts: list[dict]) -> str:
    checks = [t["cpu"] for t in ts] + [t["rate"] for t in ts]
    failed = sum(c in ("not met", "no data") for c in checks)
    na = sum(c.startswith("n/a") for c in checks)
    met = sum(c == "met" for c in checks)
    word = "PASS" if failed == 0 else "FAIL"
    return f"**{word}**: {met} met, {failed} not met or without data, {na} not applicable (client-bound)"


def replace_section(text: str, section: str) -> str:
    """`text` with its SECTION (to the next "## " heading) replaced by `section`; without
    one, `section` goes before "## Failover" or at the end."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        at = next((i for i, line in enumerate(lines) if line.startswith("## Failover")), len(lines))
        before = "".join(lines[:at]).rstrip("\n") + "\n\n"
        after = "".join(lines[at:])
        return before + section + ("\n" + after if after else "")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + after if after else "")


# --------------------------------------------------------------------------- main


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default=str(REPO / "target/release/hawser"), help="the hawser binary")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario and broker")
    ap.add_argument("--seconds", type=float, default=10, help="seconds of sending per send run")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of uncounted warm-up in each client JVM")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated, each optionally NAME:CONNECTIONS, e.g. send-sync:16,drain")
    ap.add_argument("--connections", type=int, default=4, help="producers or consumers (default 4)")
    ap.add_argument("--size", type=int, default=1024, help="message body bytes")
    ap.add_argument("--drain-count", type=int, default=200_000, help="messages put on the queue for drain")
    ap.add_argument("--brokers", default=",".join(BROKERS),
                    help="comma-separated subset of " + ",".join(BROKERS + EXTRA_BROKERS))
    ap.add_argument("--hawser-memory-bytes", type=int, default=HAWSER_MEMORY,
                    help="Hawser's --max-pending-memory-bytes (default 4 GiB; see HAWSER_MEMORY)")
    ap.add_argument("--client-timeout", type=float, default=900,
                    help="hard limit on one client JVM (warm-up, fill and measured run)")
    ap.add_argument("--json", help="write every run and the summary here")
    ap.add_argument("--out", help="write the markdown section here (it is always printed)")
    ap.add_argument("--docs", metavar="FILE",
                    help="replace the section '" + SECTION[3:] + "' of FILE (docs/benchmarks.md) with it")
    ap.add_argument("--from-json", metavar="FILE", help="measure nothing: render a previous --json file")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # so the finally blocks stop the processes
    if a.from_json:
        data = json.loads(Path(a.from_json).read_text())
        for rec in data["runs"]:  # derived figures as this version computes them
            derive(rec, data["machine"]["nproc"])
        return output(data, a)
    try:
        scenarios = parse_scenarios(a.scenarios, a.connections)
    except ValueError as e:
        ap.error(str(e))
    brokers = [b.strip().lower() for b in a.brokers.split(",") if b.strip()]
    bad = [b for b in brokers if b not in BROKERS + EXTRA_BROKERS]
    if bad or not brokers or a.runs < 1 or a.seconds <= 0 or a.warmup < 0 or a.size < 0 or a.drain_count < 1:
        ap.error(f"unknown brokers {bad}; runs >= 1, seconds > 0, warmup >= 0, size >= 0, drain-count >= 1")
    brokers = [b for b in BROKERS + EXTRA_BROKERS if b in brokers]
    a.hawser = str(Path(a.hawser).resolve())
    if any(b.startswith("hawser") for b in brokers) and not os.access(a.hawser, os.X_OK):
        ap.error(f"{a.hawser} is not an executable (cargo build --release -p hawser)")
    if any(b.startswith("activemq") for b in brokers) and not (compare.ACTIVEMQ_HOME / "bin/activemq.jar").exists():
        ap.error("ActiveMQ is not installed (/usr/share/activemq; Debian package activemq)")

    t_start = time.monotonic()
    data: dict = {
        "command": "python3 bench/jms.py " + shlex.join(sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs_per_scenario": a.runs, "seconds": a.seconds, "warmup_s": a.warmup, "size": a.size,
        "drain_count": a.drain_count, "scenarios": [s for s, _ in scenarios],
        "hawser_memory_bytes": a.hawser_memory_bytes,
        "connections": {s: c for s, c in scenarios}, "brokers": brokers,
        "client_bound_rule": CLIENT_BOUND_RULE, "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="hawser-jms-") as t:
        tmp = Path(t)
        data["machine"] = compare.machine_info(tmp)
        vers = compare.versions(a.hawser)
        data["versions"] = {k: vers[k] for k in ("hawser", "hawser_commit", "activemq", "java")}
        data["versions"]["activemq_client"] = compare.dpkg_version("libactivemq-java")
        log(f"fsync rate in {data['machine']['tmp_fs']} ...")
        data["fsync"] = {"append": compare.fsync_rate(tmp, 3, append=True)}
        log(f"  {data['fsync']['append']['per_sec']:,.0f} fsyncs/s (append)")
        classes = tmp / "classes"
        classes.mkdir()
        compile_java(classes)
        try:
            measure(a, classes, scenarios, brokers, data)
        except KeyboardInterrupt:
            log("interrupted: reporting what was measured")
    data["total_s"] = time.monotonic() - t_start
    agg = aggregate(data)
    data["summary"] = {sc: {b: {k: v for k, v in x.items() if k not in ("ok", "errors")}
                            | {"failed_runs": len(x["errors"])} for b, x in rows.items()}
                       for sc, rows in agg.items()}
    data["targets"] = targets(data, agg)
    data["verdict"] = verdict(data["targets"]) if data["targets"] else None
    if a.json:
        Path(a.json).write_text(json.dumps(data, indent=2) + "\n")
        log(f"wrote {a.json}")
    log(f"measuring took {data['total_s'] / 60:.1f} min")
    return output(data, a)


def output(data: dict, a: argparse.Namespace) -> int:
    md = markdown(data)
    print(md)
    if a.out:
        Path(a.out).write_text(md + "\n")
        log(f"wrote {a.out}")
    if a.docs:
        doc = Path(a.docs)
        doc.write_text(replace_section(doc.read_text(), md + "\n"))
        log(f"replaced the section {SECTION[3:]!r} of {a.docs}")
    ts = targets(data, aggregate(data))
    for t in ts:
        if "cpu_ratio" in t:
            log(f"  {t['scenario']} {t['broker']}: CPU/msg {t['cpu_ratio']:.1f}x less -> {t['cpu']}; "
                f"msg/s {t['rate_ratio']:.1f}x -> {t['rate']}")
        else:
            log(f"  {t['scenario']} {t['broker']}: no data")
    if ts:
        log("targets: " + verdict(ts).replace("**", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
