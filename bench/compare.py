#!/usr/bin/env python3
"""Runs the issue-4 scenarios S1-S6 against Hawser, ActiveMQ 5.17 and RabbitMQ
3.10 (STOMP plugin; classic and quorum queues) on this machine in one run, and
writes the "Comparison with ActiveMQ and RabbitMQ" section of docs/benchmarks.md
plus the chart docs/benchmarks.svg.

Usage: bench/compare.py [--hawser target/release/hawser] [--runs 3] [--seconds 10]
                        [--scenarios S1,S2,...] [--brokers hawser,activemq,rabbitmq-classic,rabbitmq-quorum]
                        [--warmup SECONDS] [--out docs/benchmarks.md] [--json results.json] [--install]
       bench/compare.py --from-json results.json [--out docs/benchmarks.md]   (re-render only)

--install runs `apt-get update` and `apt-get install -y activemq rabbitmq-server`
(Debian packages; Java 17 must already be there) before measuring.

Every broker is started fresh, in a new temporary directory, for each run of each
scenario (then warmed up by one uncounted run of --warmup seconds, default --seconds),
and runs go round-robin over the brokers (run 1 of each, then run 2 of each, ...),
listens on 127.0.0.1 only, and is stopped by its PID (SIGTERM, bounded wait,
SIGKILL) in a finally block. The load generator is `hawser bench`; every one of
its parameters is passed explicitly (no presets).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
SECTION = "## Comparison with ActiveMQ and RabbitMQ"

START_TIMEOUT_S = 120  # a broker not accepting STOMP by then has failed
STOP_TIMEOUT_S = 30  # SIGTERM, then SIGKILL
IDLE_S = 3  # idle time before reading the idle RSS
PREFETCH = 1000
HAWSER_MEMORY = 2147483648  # --max-pending-memory-bytes

ACTIVEMQ_HOME = Path("/usr/share/activemq")
ACTIVEMQ_JVM = ["-Xms512M", "-Xmx512M"]  # Debian's defaults (/usr/share/activemq/activemq-options)
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    topic: bool
    producers: int
    consumers: int
    size: int
    persistent: bool
    window: int
    ack: str
    rate: float | None = None

    def flags(self, seconds: float) -> list[str]:
        """hawser bench flags for this scenario (all explicit, no preset)."""
        f = ["--producers", str(self.producers), "--consumers", str(self.consumers),
             "--size", str(self.size), "--window", str(self.window), "--prefetch", str(PREFETCH),
             "--ack", self.ack, "--duration", f"{seconds:g}", "--threads", "1"]
        if self.persistent:
            f.append("--persistent")
        if self.rate is not None:
            f += ["--rate", f"{self.rate:g}"]
        return f


SCENARIOS = {s.id: s for s in [
    Scenario("S1", "persistent queue, 1 KiB, 4 producers (window 64), 4 consumers",
             False, 4, 4, 1024, True, 64, "client-individual"),
    Scenario("S2", "persistent queue, 1 KiB, 4 producers (window 1: synchronous sends), 4 consumers",
             False, 4, 4, 1024, True, 1, "client-individual"),
    Scenario("S3", "non-persistent queue, 1 KiB, 4 producers (window 64), 4 consumers",
             False, 4, 4, 1024, False, 64, "client-individual"),
    Scenario("S4", "persistent queue latency at 2,000 msg/s, 1 KiB, 1 producer (window 64), 1 consumer",
             False, 1, 1, 1024, True, 64, "client-individual", rate=2000),
    Scenario("S5", "persistent queue, 64 KiB, 2 producers (window 16), 2 consumers",
             False, 2, 2, 65536, True, 16, "client-individual"),
    Scenario("S6", "topic fan-out, non-persistent, 1 KiB, 1 producer (window 64), 16 subscribers, ack auto",
             True, 1, 16, 1024, False, 64, "auto"),
]}

BROKERS = ["hawser", "activemq", "rabbitmq-classic", "rabbitmq-quorum"]
# Not in the default run: ActiveMQ with concurrentStoreAndDispatchQueues="false". By default
# ActiveMQ dispatches a persistent message while its store task waits, and when the consumer
# acks first it cancels the task: the send is confirmed without being written (KahaDBStore's
# removeAsyncMessage). This variant writes every persistent send before confirming it, as
# Hawser does, for a like-for-like look at S1, S2, S4 and S5.
#
# Nor Hawser with one I/O thread (`--io-threads 1`): its engine works under one lock, and a
# second I/O thread mostly moves the engine's state between the cores. The default is one
# per two CPUs, so on 2 CPUs this variant is the default; on larger machines it is a tuning.
#
# Nor Hawser with `--confirm-consumed false`: every RECEIPT waits for the fsync of its
# record, even when a consumer acknowledged the message first. It pairs with
# activemq-stored for a look at both brokers writing every send.
EXTRA_BROKERS = ["activemq-stored", "hawser-1io", "hawser-stored"]
LABELS = {"hawser": "Hawser", "activemq": "ActiveMQ 5.17", "rabbitmq-classic": "RabbitMQ classic",
          "rabbitmq-quorum": "RabbitMQ quorum",
          "activemq-stored": "ActiveMQ 5.17, every send stored", "hawser-1io": "Hawser, 1 I/O thread",
          "hawser-stored": "Hawser, every send stored"}
COLORS = {"hawser": "#d95f02", "activemq": "#1b9e77", "rabbitmq-classic": "#7570b3",
          "rabbitmq-quorum": "#e7298a", "activemq-stored": "#66a61e", "hawser-1io": "#a6761d",
          "hawser-stored": "#e6ab02"}
QUORUM_SCENARIOS = {"S1", "S2", "S4", "S5"}  # queues only: a quorum queue has no topic form


def applies(broker: str, sc: Scenario) -> bool:
    return broker != "rabbitmq-quorum" or sc.id in QUORUM_SCENARIOS


# --------------------------------------------------------------------------- /proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    f = _stat_fields(pid)
    return f is not None and f[0] != "Z"


def descendants(root: int) -> list[int]:
    """root and every process below it, from the ppid links in /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat_fields(int(d))
            if f is not None:
                children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if alive(p):
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pids: list[int]) -> float:
    """User plus system CPU seconds of these processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        f = _stat_fields(p)
        if f is not None:
            total += int(f[11]) + int(f[12])
    return total / tick


def run_bench_command(cmd: list[str], seconds: float, pids: list[int] = ()) -> dict:
    """Runs one ``hawser bench`` command (``seconds`` of sending) and reads
    its last JSON line: throughput, latency, lost and duplicates, and the
    CPU per delivered message of the processes ``pids`` (the brokers')."""
    cpu0 = cpu_s(list(pids))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 3 + 120, stdin=subprocess.DEVNULL)
    cpu = cpu_s(list(pids)) - cpu0
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"command": shlex.join(cmd), "error": (out.stderr or out.stdout)[-800:]}
    r = json.loads(lines[-1])
    result = {"command": shlex.join(cmd), "msgs_per_sec": round(r["msgs_per_sec"]),
              "p50_ms": r["latency_us"]["p50"] / 1000, "p99_ms": r["latency_us"]["p99"] / 1000,
              "lost": r.get("lost", 0), "duplicates": r.get("duplicates", 0)}
    if pids:
        delivered = r.get("received") or r.get("confirmed") or 1
        result["broker_cpu_us_per_msg"] = round(cpu / max(delivered, 1) * 1e6, 1)
    return result


def kill_pid(pid: int, timeout: float = 10) -> None:
    """SIGTERM a process that is not our child, wait until it is gone, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        if not alive(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


# --------------------------------------------------------------------------- STOMP probe


def stomp_connected(port: int, headers: dict[str, str]) -> bool:
    frame = "CONNECT\naccept-version:1.2\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n\0"
    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.settimeout(2)
            s.sendall(frame.encode())
            data = b""
            while len(data) < 9:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.lstrip(b"\r\n").startswith(b"CONNECTED")
    except OSError:
        return False


def first_connected(port: int, headers: dict[str, str], deadline: float,
                    proc: subprocess.Popen) -> float | None:
    """Polls every 5 ms until CONNECT is answered with CONNECTED; returns when (monotonic)."""
    while time.monotonic() < deadline:
        if stomp_connected(port, headers):
            return time.monotonic()
        if proc.poll() is not None:
            return None
        time.sleep(0.005)
    return None


# --------------------------------------------------------------------------- brokers


class BrokerError(RuntimeError):
    pass


class Broker:
    """One broker process in its own temporary directory and process group."""

    kind = ""
    connect_headers: dict[str, str] = {"host": "localhost"}

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start_s: float | None = None
        self.log_path = tmp / "broker.log"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        raise NotImplementedError

    def bench_flags(self) -> list[str]:
        return ["--vhost", "localhost"]

    def start(self) -> float:
        cmd, env = self.command()
        with open(self.log_path, "wb") as log:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        t1 = first_connected(self.port, self.connect_headers, t0 + START_TIMEOUT_S, self.proc)
        if t1 is None:
            raise BrokerError(f"{self.kind} did not answer CONNECT within {START_TIMEOUT_S} s "
                              f"(exit code {self.proc.poll()}); log tail:\n{self.log_tail()}")
        self.start_s = t1 - t0
        return self.start_s

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def pids(self) -> list[int]:
        """The broker's processes whose memory and CPU count."""
        return descendants(self.proc.pid) if self.proc else []

    def rss_mib(self) -> float:
        return sum(rss_kib(p) for p in self.pids()) / 1024

    def stop(self) -> int | None:
        """SIGTERM the process group we created, wait, SIGKILL; every wait bounded."""
        if self.proc is None:
            return None
        pgid = self.proc.pid
        members = self.pids()
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=30)
        for p in members:  # children that outlived the leader
            if p != pgid:
                kill_pid(p, timeout=5)
        try:
            os.killpg(pgid, signal.SIGKILL)  # anything left in our own group
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode


class Hawser(Broker):
    kind = "hawser"

    def __init__(self, tmp: Path, binary: str, io_threads: int | None = None,
                 confirm_consumed: bool = True):
        super().__init__(tmp)
        self.binary = binary
        self.io_threads = io_threads
        self.confirm_consumed = confirm_consumed
        self.openwire_port = free_port()  # bench/jms.py's Java client connects there
        self.max_pending_memory = HAWSER_MEMORY

    def command(self):
        extra = ["--io-threads", str(self.io_threads)] if self.io_threads else []
        if not self.confirm_consumed:
            extra += ["--confirm-consumed", "false"]
        return [self.binary, "serve", "--data-dir", str(self.tmp / "data"), "--stomp", f"{HOST}:{self.port}",
                "--openwire", f"{HOST}:{self.openwire_port}",
                "--max-pending-memory-bytes", str(self.max_pending_memory)] + extra, None


ACTIVEMQ_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="bench" dataDirectory="{dir}/data">
    <persistenceAdapter>
      <kahaDB directory="{kahadb}" concurrentStoreAndDispatchQueues="{concurrent}"/>
    </persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://{host}:{port}"/>{openwire}
    </transportConnectors>
  </broker>
</beans>
"""


class ActiveMQ(Broker):
    kind = "activemq"
    kahadb: Path | None = None  # the KahaDB directory; brokers sharing one are master and slave
    concurrent_store_and_dispatch = True  # ActiveMQ's default; see EXTRA_BROKERS
    openwire_port: int | None = None  # set: an OpenWire connector too (bench/jms.py)

    def command(self):
        conf = self.tmp / "conf"
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        (self.tmp / "tmp").mkdir(exist_ok=True)
        conf.mkdir(exist_ok=True)
        kahadb = self.kahadb or self.tmp / "data" / "kahadb"
        concurrent = "true" if self.concurrent_store_and_dispatch else "false"
        openwire = (f'\n      <transportConnector name="openwire" uri="tcp://{HOST}:{self.openwire_port}"/>'
                    if self.openwire_port else "")
        (conf / "activemq.xml").write_text(ACTIVEMQ_XML.format(dir=self.tmp, kahadb=kahadb, host=HOST,
                                                               port=self.port, concurrent=concurrent,
                                                               openwire=openwire))
        return ["java", *ACTIVEMQ_JVM, f"-Dactivemq.base={self.tmp}", f"-Dactivemq.home={ACTIVEMQ_HOME}",
                f"-Dactivemq.conf={conf}", f"-Dactivemq.data={self.tmp / 'data'}",
                f"-Djava.io.tmpdir={self.tmp / 'tmp'}",
                "-jar", str(ACTIVEMQ_HOME / "bin/activemq.jar"), "start", f"xbean:file:{conf / 'activemq.xml'}"], None


class RabbitMQ(Broker):
    kind = "rabbitmq"
    connect_headers = {"host": "/", "login": "guest", "passcode": "guest"}

    def __init__(self, tmp: Path):
        super().__init__(tmp)
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"bench-{self.port}@localhost"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HOME": str(self.tmp), "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_MNESIA_BASE": str(self.tmp / "mnesia"), "RABBITMQ_LOG_BASE": str(self.tmp / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.tmp / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.tmp / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.tmp / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.tmp / "rabbitmq-env.conf"),
            "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_PORT": str(self.epmd_port),
        })
        return env

    def command(self):
        (self.tmp / "enabled_plugins").write_text("[rabbitmq_stomp].\n")
        (self.tmp / "rabbitmq-env.conf").write_text("")
        (self.tmp / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {HOST}:{self.amqp_port}\n"
            f"stomp.listeners.tcp.1 = {HOST}:{self.port}\n"
            "loopback_users = none\n")
        return [str(RABBITMQ_BIN / "rabbitmq-server")], self.env()

    def bench_flags(self) -> list[str]:
        return ["--vhost", "/", "--login", "guest", "--passcode", "guest"]

    def pids(self) -> list[int]:
        """beam.smp and its children (the Popen child may be a shell wrapper)."""
        tree = super().pids()
        beams = [p for p in tree if comm(p) == "beam.smp"]
        return descendants(beams[0]) if beams else tree

    def epmd_pids(self) -> list[int]:
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or comm(int(d)) != "epmd":
                continue
            try:
                environ = Path(f"/proc/{d}/environ").read_bytes().split(b"\0")
                cmdline = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            port = str(self.epmd_port).encode()
            if b"ERL_EPMD_PORT=" + port in environ or any(
                    a == b"-port" and i + 1 < len(cmdline) and cmdline[i + 1] == port
                    for i, a in enumerate(cmdline)):
                found.append(int(d))
        return found

    def ctl(self, tool: str, *args: str, timeout: float = 90) -> str:
        out = subprocess.run([str(RABBITMQ_BIN / tool), "-n", self.node, *args], env=self.env(),
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise BrokerError(f"{tool} {' '.join(args)} failed: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def queues(self) -> list[dict]:
        out = self.ctl("rabbitmqctl", "list_queues", "-q", "--formatter", "json",
                       "name", "type", "durable", "arguments", "messages")
        return json.loads(out)

    def stop(self) -> int | None:
        try:
            return super().stop()
        finally:
            for p in self.epmd_pids():
                kill_pid(p, timeout=5)


# --------------------------------------------------------------------------- measurements


def fsync_rate(directory: Path, seconds: float, append: bool) -> dict:
    """4 KiB write + fdatasync in a loop: appended (like a journal) or overwritten in place."""
    path = directory / f"fsync-{'append' if append else 'overwrite'}.bin"
    block = os.urandom(4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n = 0
    try:
        if not append:
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if append:
                os.write(fd, block)
            else:
                os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            n += 1
        elapsed = time.monotonic() - t0
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"fsyncs": n, "seconds": elapsed, "per_sec": n / elapsed}


def run_bench(hawser: str, broker: Broker, sc: Scenario, destination: str, seconds: float,
              label: str, extra: list[str]) -> dict:
    cmd = [hawser, "bench", "--broker", f"{HOST}:{broker.port}", "--destination", destination,
           *sc.flags(seconds), *broker.bench_flags(), *extra, "--scenario", label]
    rec: dict = {"command": shlex.join(cmd)}
    pids = broker.pids()
    cpu0 = cpu_s(pids)
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 3 + 90,
                             stdin=subprocess.DEVNULL)
        rec["wall_s"] = time.monotonic() - t0
        rec["broker_cpu_s"] = cpu_s(pids) - cpu0
        warnings = [l for l in out.stderr.splitlines() if l and not l.startswith("[")]
        if warnings:
            rec["stderr"] = warnings[-20:]
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            rec["error"] = f"hawser bench exited {out.returncode}: " + " | ".join(warnings[-5:])
        else:
            rec["result"] = json.loads(lines[-1])
    except subprocess.TimeoutExpired:
        rec["wall_s"] = time.monotonic() - t0
        rec["error"] = f"hawser bench did not finish within {seconds * 3 + 90:g} s (killed)"
    rec["broker_alive_after"] = broker.proc is not None and broker.proc.poll() is None
    return rec


def install() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, env=env, timeout=900)
    subprocess.run(["apt-get", "install", "-y", "activemq", "rabbitmq-server"], check=True, env=env, timeout=1800)


def sh(cmd: list[str], timeout: float = 30) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def dpkg_version(pkg: str) -> str:
    """'5.17.2 (Debian 5.17.2+dfsg-2+deb12u1)' from the installed package's version."""
    full = sh(["dpkg-query", "-W", "-f", "${Version}", pkg])
    if not full or " " in full:
        return "not installed"
    upstream = re.sub(r"^\d+:", "", full).split("+")[0].split("-")[0]
    return f"{upstream} (Debian {full})"


def machine_info(tmp: Path) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        mem_kib = 0
    df = sh(["df", "-T", str(tmp)]).splitlines()
    fs = df[-1].split() if len(df) > 1 else []
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "mem_gib": mem_kib / 2**20,
            "kernel": platform.release(), "python": platform.python_version(),
            "tmp_dir": str(tmp), "tmp_fs": f"{fs[1]} on {fs[0]}" if len(fs) > 1 else "unknown",
            "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}


def versions(hawser: str) -> dict:
    java = sh(["java", "-version"]).splitlines()
    jv = re.search(r'version "([^"]+)"', java[0]) if java else None
    head = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "hawser": sh([hawser, "--version"]) or "unknown",
        "hawser_commit": head + (" + uncommitted changes" if dirty else ""),
        "activemq": dpkg_version("activemq"),
        "java": f"OpenJDK {jv.group(1)}" if jv else (java[0] if java else "unknown"),
        "rabbitmq": dpkg_version("rabbitmq-server"),
        "erlang": dpkg_version("erlang-base"),
    }


# --------------------------------------------------------------------------- the run


def make_broker(name: str, tmp: Path, hawser: str) -> Broker:
    if name == "hawser":
        return Hawser(tmp, hawser)
    if name == "hawser-1io":
        return Hawser(tmp, hawser, io_threads=1)
    if name == "hawser-stored":
        return Hawser(tmp, hawser, confirm_consumed=False)
    if name == "activemq":
        return ActiveMQ(tmp)
    if name == "activemq-stored":
        broker = ActiveMQ(tmp)
        broker.concurrent_store_and_dispatch = False
        return broker
    return RabbitMQ(tmp)


def measure(a: argparse.Namespace, scenarios: list[Scenario], brokers: list[str], data: dict) -> None:
    """Round-robin: run r of every broker before run r+1 of any. Each run gets a broker
    of its own, started fresh and warmed up, so that a slow spell of this shared machine
    (its speed was seen to change twofold within minutes) falls on all brokers alike
    instead of on whichever was measuring then."""
    tag = uuid.uuid4().hex[:6]
    total = sum(applies(b, sc) for sc in scenarios for b in brokers) * a.runs
    step = 0
    for sc in scenarios:
        for r in range(1, a.runs + 1):
            for name in brokers:
                if not applies(name, sc):
                    continue
                step += 1
                one_broker_run(a, sc, name, r, f"{tag}.{r}", f"[{step}/{total}]", data)


def one_broker_run(a: argparse.Namespace, sc: Scenario, name: str, r: int, tag: str,
                   step: str, data: dict) -> None:
    """Starts `name` fresh, measures it idle, warms it up, runs `sc` once as run `r`, stops it."""
    with tempfile.TemporaryDirectory(prefix=f"hawser-compare-{name}-") as t:
        broker = make_broker(name, Path(t), a.hawser)
        start: dict = {"broker": name, "scenario": sc.id, "run": r}
        data["starts"].append(start)
        try:
            start["start_s"] = broker.start()
            time.sleep(IDLE_S)
            start["idle_rss_mib"] = broker.rss_mib()
            start["processes"] = [f"{comm(p)}:{p}" for p in broker.pids()]
            if isinstance(broker, RabbitMQ):
                start["epmd_rss_mib"] = sum(rss_kib(p) for p in broker.epmd_pids()) / 1024
            log(f"{step} {sc.id} run {r} {name}: CONNECTED after {start['start_s'] * 1000:.0f} ms, "
                f"idle RSS {start['idle_rss_mib']:.1f} MiB")
            kind = "topic" if sc.topic else "queue"
            extra = ["--header", "x-queue-type:quorum"] if name == "rabbitmq-quorum" else []
            if a.warmup > 0:  # not counted: lets a JIT (ActiveMQ) or caches settle
                dest = f"/{kind}/bench.{sc.id.lower()}.{name}.{tag}.warmup"
                rec = run_bench(a.hawser, broker, sc, dest, a.warmup,
                                f"compare-{name}-{sc.id}-warmup{r}", extra)
                rec.update({"broker": name, "scenario": sc.id, "destination": dest})
                data["warmups"].append(rec)
                log("    warm-up: %s" % summary(rec))
                if not rec["broker_alive_after"]:
                    raise BrokerError(f"{name} exited during the {sc.id} warm-up; log tail:\n"
                                      f"{broker.log_tail()}")
            dest = f"/{kind}/bench.{sc.id.lower()}.{name}.{tag}.r{r}"
            rec = run_bench(a.hawser, broker, sc, dest, a.seconds,
                            f"compare-{name}-{sc.id}-run{r}", extra)
            rec.update({"broker": name, "scenario": sc.id, "run": r, "destination": dest})
            data["runs"].append(rec)
            log("    run %d: %s" % (r, summary(rec)))
            if not rec["broker_alive_after"]:
                raise BrokerError(f"{name} exited during {sc.id} run {r}; log tail:\n"
                                  f"{broker.log_tail()}")
            if isinstance(broker, RabbitMQ) and not sc.topic:  # topic queues are gone by now
                check_rabbit_queues(broker, name, sc, data)
        except (BrokerError, OSError, subprocess.SubprocessError, ValueError) as e:
            start["error"] = str(e)
            log(f"    ERROR: {e}")
        finally:
            start["exit_code"] = broker.stop()


def check_rabbit_queues(broker: RabbitMQ, name: str, sc: Scenario, data: dict) -> None:
    """Asks RabbitMQ which queues exist and of which type (rabbitmqctl list_queues)."""
    check: dict = {"broker": name, "scenario": sc.id, "node": broker.node,
                   "command": f"rabbitmqctl -n {broker.node} list_queues -q --formatter json "
                              "name type durable arguments messages"}
    try:
        check["queues"] = broker.queues()
        ours = [q for q in check["queues"] if q.get("name", "").startswith(f"bench.{sc.id.lower()}.")]
        if name == "rabbitmq-quorum":
            qq = ours[0]["name"] if ours else None
            if qq:
                check["quorum_status_command"] = f"rabbitmq-queues -n {broker.node} quorum_status {qq}"
                check["quorum_status"] = broker.ctl("rabbitmq-queues", "quorum_status", qq, "-q",
                                                    "--formatter", "json")
        expected = "quorum" if name == "rabbitmq-quorum" else "classic"
        check["expected_type"] = expected
        check["ok"] = bool(ours) and all(q.get("type") == expected for q in ours)
        log(f"    queues: " + ", ".join(f"{q.get('name')}={q.get('type')}" for q in ours)
            + ("" if check["ok"] else f"   <-- expected {expected}"))
    except (BrokerError, subprocess.SubprocessError, ValueError, OSError) as e:
        check["error"] = str(e)
        check["ok"] = False
        log(f"    queue check failed: {e}")
    data["queue_checks"].append(check)


def summary(rec: dict) -> str:
    if "result" not in rec:
        return "ERROR " + rec.get("error", "")
    r = rec["result"]
    return (f"{r['msgs_per_sec']:,.0f} msg/s, {r['mb_per_sec']:.1f} MB/s, p99 {r['latency_us']['p99'] / 1000:.1f} ms, "
            f"lost {r['lost']} dup {r['duplicates']}, sent {r['sent']} confirmed {r['confirmed']}, "
            f"client CPU {r['client_cpu_s']:.1f} s, broker CPU {rec.get('broker_cpu_s', 0):.1f} s")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- aggregation


def stats(values: list[float]) -> tuple[float, float, float] | None:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return (statistics.median(v), min(v), max(v)) if v else None


def aggregate(data: dict) -> dict:
    """agg[scenario][broker] = medians and totals over the runs."""
    agg: dict = {}
    for rec in data["runs"]:
        a = agg.setdefault(rec["scenario"], {}).setdefault(rec["broker"], {"runs": [], "errors": []})
        if "result" in rec:
            a["runs"].append(rec)
        else:
            a["errors"].append(rec.get("error", "?"))
    for sc_id, by_broker in agg.items():
        for name, a in by_broker.items():
            rs = [r["result"] for r in a["runs"]]
            a["n"] = len(rs)
            a["msgs"] = stats([r["msgs_per_sec"] for r in rs])
            a["mb"] = stats([r["mb_per_sec"] for r in rs])
            a["p50_ms"] = stats([r["latency_us"]["p50"] / 1000 for r in rs])
            a["p99_ms"] = stats([r["latency_us"]["p99"] / 1000 for r in rs])
            a["p999_ms"] = stats([r["latency_us"]["p999"] / 1000 for r in rs])
            a["lost"] = sum(r["lost"] for r in rs)
            a["dup"] = sum(r["duplicates"] for r in rs)
            a["unconfirmed"] = sum(r["sent"] - r["confirmed"] for r in rs)
            a["client_cpu"] = stats([r["client_cpu_s"] for r in rs])
            a["elapsed"] = stats([r["elapsed_s"] for r in rs])
            a["broker_cpu"] = stats([x["broker_cpu_s"] for x in a["runs"] if "broker_cpu_s" in x])
            a["client_cores"] = stats([r["client_cpu_s"] / r["elapsed_s"] for r in rs if r["elapsed_s"] > 0])
            # CPU per message: what the broker costs whatever share of the machine it got.
            a["broker_us"] = stats([x["broker_cpu_s"] * 1e6 / x["result"]["received"] for x in a["runs"]
                                    if "broker_cpu_s" in x and x["result"]["received"] > 0])
    return agg


def resources(data: dict) -> dict:
    """Start time and idle RSS per broker program (RabbitMQ classic and quorum runs share one)."""
    res: dict = {}
    for s in data["starts"]:
        prog = "rabbitmq" if s["broker"].startswith("rabbitmq") else s["broker"]
        r = res.setdefault(prog, {"start_s": [], "rss": []})
        if "start_s" in s:
            r["start_s"].append(s["start_s"])
        if "idle_rss_mib" in s:
            r["rss"].append(s["idle_rss_mib"])
    return {k: {"start": stats(v["start_s"]), "rss": stats(v["rss"]), "n": len(v["start_s"])}
            for k, v in res.items()}


def med(agg: dict, sc: str, broker: str, key: str) -> float | None:
    v = agg.get(sc, {}).get(broker, {}).get(key)
    return v[0] if v else None


# --------------------------------------------------------------------------- markdown


def n0(x: float) -> str:
    return f"{x:,.0f}"


def ms(x: float) -> str:
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def rng(s: tuple | None, f: Callable[[float], str] = n0) -> str:
    return "n/a" if s is None else (f(s[1]) if s[1] == s[2] else f"{f(s[1])}–{f(s[2])}")


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    r = a / b
    return f"{r:,.1f}×" if r < 100 else f"{r:,.0f}×"


def targets(agg: dict, res: dict) -> list[tuple[str, str, str]]:
    rows = []

    def check(name: str, ok: bool | None, measured: str):
        rows.append((name, measured, "n/a (not measured)" if ok is None else ("**met**" if ok else "**not met**")))

    def thr(sc: str, other: str, factor: float, key: str = "msgs", unit: str = "msg/s"):
        h, o = med(agg, sc, "hawser", key), med(agg, sc, other, key)
        if h is None or o is None:
            return None, "n/a"
        return h >= factor * o, f"{n0(h)} vs {n0(o)} {unit}: {ratio(h, o)}"

    check("S1 ≥ 10× ActiveMQ (msg/s)", *thr("S1", "activemq", 10))
    check("S1 ≥ 10× RabbitMQ quorum (msg/s)", *thr("S1", "rabbitmq-quorum", 10))
    check("S2 ≥ 3× ActiveMQ (msg/s)", *thr("S2", "activemq", 3))
    check("S3 ≥ 10× ActiveMQ (msg/s)", *thr("S3", "activemq", 10))
    check("S6 ≥ 10× ActiveMQ (deliveries/s)", *thr("S6", "activemq", 10, unit="deliveries/s"))
    for other, factor in (("activemq", 20), ("rabbitmq-classic", 5), ("rabbitmq-quorum", 5)):
        h, o = med(agg, "S4", "hawser", "p99_ms"), med(agg, "S4", other, "p99_ms")
        if h is None or o is None:
            check(f"S4 p99 ≤ {LABELS[other]} p99 / {factor}", None, "n/a")
        else:
            check(f"S4 p99 ≤ {LABELS[other]} p99 / {factor}", h <= o / factor,
                  f"{ms(h)} vs {ms(o)} ms: {ratio(o, h)} lower")
    others = {b: med(agg, "S5", b, "mb") for b in ("activemq", "rabbitmq-classic", "rabbitmq-quorum")}
    others = {b: v for b, v in others.items() if v is not None}
    h = med(agg, "S5", "hawser", "mb")
    if others and h is not None:
        best = max(others, key=others.get)
        check("S5 ≥ 2× the best of ActiveMQ and RabbitMQ (MB/s)", h >= 2 * others[best],
              f"{h:,.1f} vs {others[best]:,.1f} MB/s ({LABELS[best]}): {ratio(h, others[best])}")
    else:
        check("S5 ≥ 2× the best of ActiveMQ and RabbitMQ (MB/s)", None, "n/a")
    for key, label, unit, f in (("rss", "idle memory (RSS)", "MiB", lambda x: f"{x:,.1f}"),
                                ("start", "start time to first CONNECTED", "ms", lambda x: f"{x * 1000:,.0f}")):
        hv, av = res.get("hawser", {}).get(key), res.get("activemq", {}).get(key)
        if not hv or not av:
            check(f"{label} ≤ 1/10 of ActiveMQ's", None, "n/a")
        else:
            check(f"{label} ≤ 1/10 of ActiveMQ's", hv[0] <= av[0] / 10,
                  f"{f(hv[0])} vs {f(av[0])} {unit}: {ratio(av[0], hv[0])} less")
    hs = [a for sc in agg.values() for b, a in sc.items() if b == "hawser"]
    if hs:
        lost, dup = sum(a["lost"] for a in hs), sum(a["dup"] for a in hs)
        n = sum(a["n"] for a in hs)
        errs = sum(len(a["errors"]) for a in hs)
        check("Hawser: zero lost and zero duplicated", lost == 0 and dup == 0 and errs == 0,
              f"{lost} lost, {dup} duplicates in {n} runs" + (f" ({errs} runs failed)" if errs else ""))
    else:
        check("Hawser: zero lost and zero duplicated", None, "n/a")
    return rows


def markdown(data: dict, agg: dict, res: dict, svg_name: str) -> str:
    m, v = data["machine"], data["versions"]
    fs = data["fsync"]
    scen = [SCENARIOS[s] for s in data["scenarios"]]
    brokers = data["brokers"]
    L: list[str] = [SECTION, ""]
    L += ["<!-- Generated by bench/compare.py: rerun it to refresh this section. -->", ""]
    L += ["Reproduce with (`--install` installs Debian's `activemq` and `rabbitmq-server` "
          "with apt-get; Java 17 must be present):", "", "```sh",
          "cargo build --release -p hawser",
          "python3 bench/compare.py --install --runs 3 --seconds 10", "```", ""]
    L += [f"Run of {data['date']}, command line:", "", "```sh", data["command"], "```", ""]
    L += [f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']:.1f} GiB memory, Linux {m['kernel']}; "
          f"temporary directories on {m['tmp_fs']}; load average before the run "
          f"{' '.join(m['loadavg_before'])}. Client and broker share the CPUs.", ""]
    if fs:
        L += [f"Disk: **{fs['append']['per_sec']:,.0f} fsyncs/s** (4 KiB appended + `fdatasync`, "
              f"{fs['append']['seconds']:.0f} s, in the same file system as the brokers' data; "
              f"{fs['overwrite']['per_sec']:,.0f}/s when overwriting one block in place). A sender that "
              "waits for its own message to be on disk before sending the next cannot exceed that rate; "
              "only group commit (one fsync covering the messages of many senders or a window of unconfirmed "
              "sends) goes beyond it.", ""]
    L += ["### Brokers and settings", "", "| broker | version | settings |", "|---|---|---|"]
    L += [f"| Hawser | {v['hawser']}, built from commit {v['hawser_commit']} | `hawser serve --data-dir DIR --stomp "
          f"127.0.0.1:PORT --max-pending-memory-bytes {HAWSER_MEMORY}`; a receipt for a persistent SEND "
          "is sent after its journal write is fsynced, or once a consumer has acknowledged the message "
          "if that comes first (`confirm_consumed`, the default since 4f06f04) |"]
    L += [f"| ActiveMQ | {v['activemq']}, {v['java']} | `java {' '.join(ACTIVEMQ_JVM)} -jar "
          "activemq.jar start xbean:file:…` (Debian's heap setting); a broker with only a STOMP transport "
          "connector, JMX off, KahaDB with its defaults: `enableJournalDiskSyncs=true`, i.e. a persistent "
          "send is answered after the journal is fsynced, or, with `concurrentStoreAndDispatchQueues=true` "
          "(the default), once a consumer has acknowledged it if that comes before its store task runs; "
          "default memory limits and producer flow control. "
          "Debian's `-Dorg.apache.activemq.UseDedicatedTaskRunner=true` is not set (upstream default: pooled "
          "task runners) |"]
    L += [f"| RabbitMQ | {v['rabbitmq']}, Erlang/OTP {v['erlang']} | `rabbitmq-server` with the "
          "`rabbitmq_stomp` plugin and default settings (only the listeners set to 127.0.0.1, "
          "`loopback_users = none`); the STOMP plugin sends the RECEIPT of a SEND when the publisher confirm "
          "arrives (per RabbitMQ's documentation: for a persistent message in a classic queue once it is "
          "written to disk, or consumed and acknowledged before that; in a quorum queue once the Raft log "
          "entry is fsynced). "
          "Classic: `/queue/NAME` destinations, which the plugin declares as durable classic queues. "
          "Quorum: the same with the header `x-queue-type:quorum` on SEND and SUBSCRIBE, which the plugin "
          "passes as the queue argument when it declares the queue (single-node Raft group) |"]
    L += [""]
    L += [f"Method: for every run of every scenario each broker is started fresh in a new temporary "
          f"directory (so every run starts on an empty store), left idle {IDLE_S} s, then "
          + (f"warmed up by one uncounted {data['warmup_s']:g} s run of the scenario (JIT compilation for "
             "ActiveMQ: without it ActiveMQ's first runs are markedly slower), then "
             if data.get("warmup_s") else "")
          + f"`hawser bench` runs once for {data['seconds']:g} s of sending; then the broker is stopped "
          "(SIGTERM, SIGKILL after 30 s). Scenarios run in the order S1…S6; within one, run 1 of every "
          f"broker (in the order of the table), then run 2 of every broker, and so on to run "
          f"{data['runs_per_scenario']}, so that a slow spell of this shared machine (its speed was seen to "
          "change twofold within minutes) falls on all brokers alike rather than on one. Throughput is messages received per second from the first send to the last delivery "
          "(for the topic, S6, deliveries: every message counts once per subscriber). Latency is send to "
          "receive, in one process. *Lost*: a message the broker confirmed with a RECEIPT that no consumer "
          "received; *duplicates*: deliveries beyond the first (per subscriber for the topic). Every "
          "`hawser bench` flag is given explicitly; consumers use prefetch "
          f"{PREFETCH} (`activemq.prefetchSize` and `prefetch-count`). Medians over the runs, with min–max.",
          ""]
    if "rabbitmq-quorum" in brokers:
        L += quorum_paragraph(data)
    L += [f"![Median throughput and p99 latency per scenario and broker]({svg_name})", ""]

    for sc in scen:
        rows = agg.get(sc.id, {})
        L += [f"### {sc.id}: {sc.title}", "", f"`hawser bench {' '.join(sc.flags(data['seconds']))}`"
              + (" (S6: `/topic/…` destination)" if sc.topic else ""), ""]
        unit = "deliveries/s" if sc.topic else "msg/s"
        head = ["broker", "runs", f"{unit} (median)", "min–max"]
        if sc.id == "S5":
            head += ["MB/s (median)", "MB/s min–max"]
        if sc.id == "S4":
            head += ["p99 ms (median)", "p99 min–max", "p50 ms", "p99.9 ms"]
        else:
            head += ["p99 ms"]
        head += ["lost", "dup", "client CPU s/run (cores)", "broker CPU s/run (cores)",
                 "broker CPU µs per " + ("delivery" if sc.topic else "message")]
        L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for b in brokers:
            if not applies(b, SCENARIOS[sc.id]):
                continue
            x = rows.get(b)
            if not x or not x["n"]:
                err = (x or {}).get("errors") or [e.get("error") for e in data["starts"]
                                                  if e["broker"] == b and e["scenario"] == sc.id and "error" in e]
                msg = "failed: " + (str(err[0])[:120].replace("|", "/").replace("\n", " ") if err else "not run")
                L += [f"| {LABELS[b]} | 0 | {msg} |" + " |" * (len(head) - 3)]
                continue
            cells = [LABELS[b] if b != "hawser" else "**Hawser**",
                     f"{x['n']}" + (f" (+{len(x['errors'])} failed)" if x["errors"] else ""),
                     f"**{n0(x['msgs'][0])}**", rng(x["msgs"])]
            if sc.id == "S5":
                cells += [f"**{x['mb'][0]:,.1f}**", rng(x["mb"], lambda y: f"{y:,.1f}")]
            if sc.id == "S4":
                cells += [f"**{ms(x['p99_ms'][0])}**", rng(x["p99_ms"], ms), ms(x["p50_ms"][0]),
                          ms(x["p999_ms"][0])]
            else:
                cells += [ms(x["p99_ms"][0])]
            bc = x["broker_cpu"]
            el = x["elapsed"][0]
            cells += [str(x["lost"]), str(x["dup"]),
                      f"{x['client_cpu'][0]:.1f} ({x['client_cores'][0]:.2f})",
                      f"{bc[0]:.1f} ({bc[0] / el:.2f})" if bc and el else "n/a",
                      f"{x['broker_us'][0]:,.1f}" if x.get("broker_us") else "n/a"]
            L += ["| " + " | ".join(cells) + " |"]
        key = "p99_ms" if sc.id == "S4" else ("mb" if sc.id == "S5" else "msgs")
        parts = []
        for b in ("activemq", "rabbitmq-classic", "rabbitmq-quorum"):
            if b in brokers and applies(b, sc):
                h, o = med(agg, sc.id, "hawser", key), med(agg, sc.id, b, key)
                parts.append(f"Hawser/{LABELS[b]} {ratio(o, h) if key == 'p99_ms' else ratio(h, o)}")
        cpu_parts = []
        for b in ("activemq", "rabbitmq-classic", "rabbitmq-quorum"):
            if b in brokers and applies(b, sc):
                h, o = med(agg, sc.id, "hawser", "broker_us"), med(agg, sc.id, b, "broker_us")
                cpu_parts.append(f"{LABELS[b]} {ratio(o, h)}")
        if parts and "hawser" in brokers:
            what = {"p99_ms": "p99 latency, times lower", "mb": "MB/s", "msgs": unit}[key]
            L += ["", f"Ratios ({what}, medians): " + "; ".join(parts) + "."]
            if cpu_parts:
                L += ["", "Broker CPU time per " + ("delivery" if sc.topic else "message")
                      + ", times less for Hawser than for: " + "; ".join(cpu_parts) + "."]
        unconf = {b: x["unconfirmed"] for b, x in rows.items() if x.get("unconfirmed")}
        if unconf:
            L += ["", "Sent but never confirmed by a RECEIPT (neither lost nor counted): "
                  + ", ".join(f"{LABELS[b]} {n}" for b, n in unconf.items()) + "."]
        L += [""]

    L += ["### Idle memory and start time", "",
          f"Idle memory: VmRSS {IDLE_S} s after the first CONNECTED (Hawser: its process; ActiveMQ: the "
          "java process; RabbitMQ: beam.smp and its children, without the separate epmd daemon). Start time: "
          "from spawning the process to the first STOMP CONNECT answered with CONNECTED, polling every 5 ms. "
          "One sample per broker start (one start per scenario).", "",
          "| broker | starts | idle RSS MiB (median) | min–max | start ms (median) | min–max |",
          "|---|---|---|---|---|---|"]
    names = {"hawser": "**Hawser**", "activemq": "ActiveMQ 5.17", "rabbitmq": "RabbitMQ 3.10"}
    for prog in ("hawser", "activemq", "rabbitmq"):
        r = res.get(prog)
        if not r or not r["rss"]:
            continue
        L += [f"| {names[prog]} | {r['n']} | **{r['rss'][0]:,.1f}** | {rng(r['rss'], lambda y: f'{y:,.1f}')} | "
              f"**{r['start'][0] * 1000:,.0f}** | {rng(r['start'], lambda y: f'{y * 1000:,.0f}')} |"]
    h = res.get("hawser")
    if h and h["rss"]:
        parts = []
        for prog in ("activemq", "rabbitmq"):
            o = res.get(prog)
            if o and o["rss"]:
                parts.append(f"{names[prog]} uses {ratio(o['rss'][0], h['rss'][0])} Hawser's idle memory and "
                             f"takes {ratio(o['start'][0], h['start'][0])} its start time")
        if parts:
            L += ["", "; ".join(parts) + "."]
    L += ["", "### Issue 4 targets", "", "| target | measured (medians) | result |", "|---|---|---|"]
    L += [f"| {t} | {m_} | {ok} |" for t, m_, ok in targets(agg, res)]
    L += [""]
    L += notes(data, agg)
    return "\n".join(L).rstrip() + "\n"


def quorum_paragraph(data: dict) -> list[str]:
    checks = [c for c in data["queue_checks"] if c["broker"] == "rabbitmq-quorum"]
    if not checks:
        return ["Quorum queues: not verified (no quorum run completed).", ""]
    ok = all(c.get("ok") for c in checks)
    types = sorted({q.get("type") for c in checks for q in c.get("queues", [])
                    if q.get("name", "").startswith("bench.")})
    members = ""
    for c in checks:
        st = c.get("quorum_status")
        if st:
            try:
                parsed = json.loads(st)
                members = f" `rabbitmq-queues quorum_status` lists the Raft member(s): " + ", ".join(
                    f"{p.get('Node Name', '?')} ({p.get('Raft State', '?')})" for p in parsed) + "."
            except (ValueError, AttributeError):
                members = ""
            break
    classic = [c for c in data["queue_checks"] if c["broker"] == "rabbitmq-classic"]
    ctext = ""
    if classic:
        ctext = (" The same check on the classic runs found type(s) "
                 + ", ".join(sorted({q.get("type") for c in classic for q in c.get("queues", [])
                                     if q.get("name", "").startswith("bench.")})) + ".")
    durable = all(q.get("durable") for c in checks for q in c.get("queues", [])
                  if q.get("name", "").startswith("bench."))
    args = sorted({f"{a[0]}={a[-1]}" for c in checks for q in c.get("queues", [])
                   if q.get("name", "").startswith("bench.") for a in q.get("arguments", []) if a})
    verdict = ("every quorum run's queue was a quorum queue" + (", durable" if durable else "")
               + (f", with arguments {', '.join(args)}" if args else "") if ok
               else "**NOT every quorum run's queue was a quorum queue: see the JSON file's queue_checks**")
    return [f"Quorum queues verified: after the runs of each quorum scenario, `rabbitmqctl -n NODE "
            f"list_queues name type durable arguments messages` (same environment as the node) reported "
            f"type(s) {', '.join(map(str, types)) or 'none'} for the benchmark queues: {verdict}.{members}{ctext}", ""]


def notes(data: dict, agg: dict) -> list[str]:
    out = []
    for sc_id, rows in agg.items():
        for b, x in rows.items():
            if x["lost"] or x["dup"]:
                out.append(f"{sc_id} {LABELS[b]}: **{x['lost']} lost, {x['dup']} duplicates** over {x['n']} runs "
                           f"(per run: {', '.join(str(r['result']['duplicates']) for r in x['runs'])} "
                           "duplicates).")
            for e in x["errors"]:
                out.append(f"{sc_id} {LABELS[b]}: a run failed: {e[:300]}")
    for w in data.get("warmups", []):
        r = w.get("result")
        if r and (r["lost"] or r["duplicates"]):
            out.append(f"{w['scenario']} {LABELS[w['broker']]}: the uncounted warm-up run had **{r['lost']} lost, "
                       f"{r['duplicates']} duplicates**.")
        elif "error" in w:
            out.append(f"{w['scenario']} {LABELS[w['broker']]}: the warm-up run failed: {w['error'][:300]}")
    for s in data["starts"]:
        if "error" in s:
            out.append(f"{s['scenario']} {LABELS[s['broker']]}: {s['error'][:300]}".replace("\n", " "))
    for c in data["queue_checks"]:
        left = [(q["name"], q.get("messages")) for q in c.get("queues", []) if q.get("messages")]
        if left:
            dups = agg.get(c["scenario"], {}).get(c["broker"], {}).get("dup", 0)
            out.append(f"{c['scenario']} {LABELS[c['broker']]}: after the runs `rabbitmqctl list_queues` still "
                       "showed " + ", ".join(f"{n} message(s) in `{q}`" for q, n in left)
                       + ", although every consumer had received every message: messages whose ACK the queue "
                       "had not applied when their consumer disconnected were requeued"
                       + (" (and those redelivered to a consumer still connected are the duplicates above)"
                          if dups else "") + ". `hawser bench` sends its ACKs and then DISCONNECT without "
                       "waiting for a receipt.")
    s4 = agg.get("S4", {})
    rate = SCENARIOS["S4"].rate
    slow = [f"{LABELS[b]} ({n0(x['msgs'][0])} msg/s)" for b, x in s4.items()
            if x.get("msgs") and x["msgs"][0] < 0.95 * rate]
    if slow:
        out.append(f"S4: {', '.join(slow)} did not sustain the offered {n0(rate)} msg/s; the producer was held "
                   "back by its window of 64 unconfirmed sends, so that latency includes waiting in the window.")
    busy = []
    for sc_id, rows in agg.items():
        for b, x in rows.items():
            cc, el = x.get("client_cores"), x.get("elapsed")
            bc = x.get("broker_cpu")
            if cc and bc and el and el[0]:
                total = cc[0] + bc[0] / el[0]
                if total > 0.8 * data["machine"]["nproc"]:
                    busy.append(f"{sc_id} {LABELS[b]} ({cc[0]:.2f} + {bc[0] / el[0]:.2f})")
    if busy:
        out.append(f"Runs that kept the machine's {data['machine']['nproc']} CPUs more than 80% busy "
                   "(load generator + broker, in cores): " + "; ".join(busy) + ". There the load generator's "
                   "share of the CPUs was not available to the broker, so the broker's figure is a lower bound "
                   "of what it does with the machine to itself. RabbitMQ's Erlang schedulers busy-wait by "
                   "default, which counts as broker CPU time"
                   + ("." if data.get("warmup_s") else "; a JVM's first seconds include JIT compilation."))
    if not out:
        return []
    return ["### Notes", ""] + [f"- {n}" for n in out] + [""]


def replace_section(text: str, section: str) -> str:
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip() == SECTION), None)
    if start is None:
        # Insert after the "Single broker" section if there is one, otherwise at the end.
        sb = next((i for i, l in enumerate(lines) if l.startswith("## Single broker")), None)
        if sb is not None:
            end = next((i for i in range(sb + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
            before = "".join(lines[:end]).rstrip("\n") + "\n\n"
            after = "".join(lines[end:])
            return before + section + ("\n" + after if after else "")
        return text.rstrip("\n") + ("\n\n" if text.strip() else "") + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + after if after else "")


# --------------------------------------------------------------------------- SVG


def si(x: float) -> str:
    for div, suf in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            y = x / div
            return f"{y:.3g}{suf}"
    return f"{x:.3g}"


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(agg: dict, scen: list[str], brokers: list[str], title: str) -> str:
    W, left, right = 980, 80, 20
    panel_h, top0, gap = 260, 88, 110
    H = top0 + 2 * panel_h + gap + 60
    plot_w = W - left - right
    o: list[str] = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
                    'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">',
                    f"<title>{esc(title)}</title>",
                    f'<rect width="{W}" height="{H}" fill="white"/>',
                    f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
                    f'{esc(title)}</text>']
    lx = left
    for b in brokers:
        o.append(f'<rect x="{lx}" y="36" width="12" height="12" fill="{COLORS[b]}"/>')
        o.append(f'<text x="{lx + 16}" y="46" font-size="12">{esc(LABELS[b])}</text>')
        lx += 30 + 7.2 * len(LABELS[b])
    o.append(f'<text x="{W - right}" y="46" font-size="10" text-anchor="end" fill="#555">'
             'bars: median; whiskers: min–max over runs; log scales</text>')
    panels = [("msgs", "Throughput, msg/s (S6: deliveries/s)", si),
              ("p99_ms", "p99 latency, ms (send to receive)", fmt_ms)]
    for k, (key, ptitle, fmt) in enumerate(panels):
        top = top0 + k * (panel_h + gap)
        bottom = top + panel_h
        vals = [x for sc in scen for b in brokers
                for x in (agg.get(sc, {}).get(b, {}).get(key) or ()) if x and x > 0]
        o.append(f'<text x="{left}" y="{top - 8}" font-size="13" font-weight="bold">{esc(ptitle)}</text>')
        o.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#999"/>')
        if not vals:
            o.append(f'<text x="{left + plot_w / 2}" y="{top + panel_h / 2}" text-anchor="middle">no data</text>')
            continue
        lo = math.floor(math.log10(min(vals)))
        hi = math.ceil(math.log10(max(vals)) + 0.15)  # headroom for the value labels
        if hi <= lo:
            hi = lo + 1

        def y(v: float) -> float:
            return bottom - (math.log10(v) - lo) / (hi - lo) * panel_h

        for d in range(lo, hi + 1):
            for mult in (1, 2, 5):
                v = mult * 10 ** d
                if not (10 ** lo <= v <= 10 ** hi):
                    continue
                yy = y(v)
                major = mult == 1
                o.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" '
                         f'stroke="{"#ccc" if major else "#eee"}" stroke-width="1"/>')
                if major or hi - lo <= 3:
                    o.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" '
                             f'fill="{"#000" if major else "#777"}">{fmt(v)}</text>')
        gw = plot_w / len(scen)
        bw = gw * 0.8 / len(brokers)
        for i, sc in enumerate(scen):
            gx = left + i * gw + gw * 0.1
            o.append(f'<text x="{left + i * gw + gw / 2:.1f}" y="{bottom + 18}" text-anchor="middle" '
                     f'font-size="12" font-weight="bold">{sc}</text>')
            o.append(f'<text x="{left + i * gw + gw / 2:.1f}" y="{bottom + 32}" text-anchor="middle" '
                     f'font-size="9" fill="#555">{esc(short(sc))}</text>')
            for j, b in enumerate(brokers):
                x0 = gx + j * bw
                cx = x0 + bw / 2
                s = agg.get(sc, {}).get(b, {}).get(key)
                if not s or s[0] <= 0:
                    label = "failed" if applies(b, SCENARIOS[sc]) else "n/a"
                    o.append(f'<text x="{cx:.1f}" y="{bottom - 4}" text-anchor="middle" font-size="9" '
                             f'fill="#999">{label}</text>')
                    continue
                m_, mn, mx = s
                o.append(f'<rect x="{x0 + 1:.1f}" y="{y(m_):.1f}" width="{bw - 2:.1f}" '
                         f'height="{bottom - y(m_):.1f}" fill="{COLORS[b]}">'
                         f'<title>{esc(LABELS[b])} {sc}: {fmt(m_)} (min {fmt(mn)}, max {fmt(mx)})</title></rect>')
                if mx > mn:
                    o.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(mn):.1f}" y2="{y(mx):.1f}" '
                             'stroke="#222" stroke-width="1"/>')
                    for v in (mn, mx):
                        o.append(f'<line x1="{cx - 3:.1f}" x2="{cx + 3:.1f}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                                 'stroke="#222" stroke-width="1"/>')
                o.append(f'<text x="{cx:.1f}" y="{y(mx) - 4:.1f}" text-anchor="middle" font-size="9">'
                         f'{fmt(m_)}</text>')
    o.append(f'<text x="{W - right}" y="{H - 8}" text-anchor="end" font-size="10" fill="#555">'
             'generated by bench/compare.py</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def fmt_ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def short(sc: str) -> str:
    return {"S1": "persistent, window 64", "S2": "persistent, window 1", "S3": "non-persistent",
            "S4": "persistent, 2,000 msg/s", "S5": "persistent, 64 KiB", "S6": "topic, 16 subscribers"}[sc]


# --------------------------------------------------------------------------- main


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default=str(REPO / "target/release/hawser"), help="the hawser binary")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario and broker")
    ap.add_argument("--seconds", type=float, default=10, help="seconds of sending per run")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, e.g. S1,S4")
    ap.add_argument("--brokers", default=",".join(BROKERS),
                    help="comma-separated subset of " + ",".join(BROKERS + EXTRA_BROKERS))
    ap.add_argument("--out", default=str(REPO / "docs/benchmarks.md"),
                    help="markdown file whose comparison section is rewritten (SVG written beside it)")
    ap.add_argument("--warmup", type=float, help="seconds of a first, uncounted run after each broker start "
                    "(default: --seconds; 0: none)")
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--install", action="store_true", help="apt-get install activemq rabbitmq-server first")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: rewrite the markdown section and SVG from a previous --json file")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # so the finally blocks stop the brokers
    scenarios = [s.strip().upper() for s in a.scenarios.split(",") if s.strip()]
    brokers = [b.strip().lower() for b in a.brokers.split(",") if b.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS] + [b for b in brokers if b not in BROKERS + EXTRA_BROKERS]
    if a.warmup is None:
        a.warmup = a.seconds
    if bad or not scenarios or not brokers or a.runs < 1 or a.seconds <= 0 or a.warmup < 0:
        ap.error(f"unknown or missing scenarios/brokers {bad}; runs >= 1 and seconds > 0")
    brokers = [b for b in BROKERS + EXTRA_BROKERS if b in brokers]  # table order
    scenarios = [s for s in SCENARIOS if s in scenarios]
    if a.from_json:
        data = json.loads(Path(a.from_json).read_text())
        write_outputs(data, Path(a.out))
        return 0
    a.hawser = str(Path(a.hawser).resolve())
    if not os.access(a.hawser, os.X_OK):
        ap.error(f"{a.hawser} is not an executable (cargo build --release -p hawser)")
    if a.install:
        install()
    if "activemq" in brokers and not (ACTIVEMQ_HOME / "bin/activemq.jar").exists():
        ap.error("ActiveMQ is not installed (/usr/share/activemq); use --install")
    if any(b.startswith("rabbitmq") for b in brokers) and not (RABBITMQ_BIN / "rabbitmq-server").exists():
        ap.error("RabbitMQ is not installed (/usr/lib/rabbitmq); use --install")

    t_start = time.monotonic()
    data: dict = {
        "command": "python3 bench/compare.py " + shlex.join(sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs_per_scenario": a.runs, "seconds": a.seconds, "warmup_s": a.warmup,
        "scenarios": scenarios, "brokers": brokers,
        "scenario_flags": {s: SCENARIOS[s].flags(a.seconds) for s in scenarios},
        "starts": [], "warmups": [], "runs": [], "queue_checks": [],
    }
    with tempfile.TemporaryDirectory(prefix="hawser-compare-fsync-") as t:
        data["machine"] = machine_info(Path(t))
        data["versions"] = versions(a.hawser)
        log(f"fsync rate in {data['machine']['tmp_fs']} ...")
        data["fsync"] = {"append": fsync_rate(Path(t), 3, append=True),
                         "overwrite": fsync_rate(Path(t), 1.5, append=False)}
        log(f"  {data['fsync']['append']['per_sec']:,.0f} fsyncs/s (append), "
            f"{data['fsync']['overwrite']['per_sec']:,.0f}/s (overwrite)")
    try:
        measure(a, [SCENARIOS[s] for s in scenarios], brokers, data)
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
    data["total_s"] = time.monotonic() - t_start
    agg = aggregate(data)
    res = resources(data)
    data["summary"] = {"scenarios": {sc: {b: {k: v for k, v in x.items() if k not in ("runs",)}
                                          for b, x in rows.items()} for sc, rows in agg.items()},
                       "resources": res, "targets": targets(agg, res)}
    if a.json:
        Path(a.json).write_text(json.dumps(data, indent=2) + "\n")
        log(f"wrote {a.json}")
    write_outputs(data, Path(a.out))
    return 0


def write_outputs(data: dict, out: Path) -> None:
    """The markdown section and the SVG beside it."""
    agg = aggregate(data)
    res = resources(data)
    svg_path = out.with_suffix(".svg")
    svg = svg_chart(agg, data["scenarios"], data["brokers"], "Hawser vs ActiveMQ 5.17 vs RabbitMQ 3.10 (STOMP), "
                                             f"{data['date'][:10]}, {data['machine']['nproc']} CPUs")
    ET.fromstring(svg)  # well-formed, or fail before writing anything
    section = markdown(data, agg, res, svg_path.name)
    svg_path.write_text(svg)
    out.write_text(replace_section(out.read_text() if out.exists() else "# Benchmarks\n", section))
    log(f"wrote {out} and {svg_path}; measuring took {data['total_s'] / 60:.1f} min")
    for name, measured, ok in targets(agg, res):
        log(f"  {name}: {measured} -> {ok.strip('*')}")


if __name__ == "__main__":
    sys.exit(main())
