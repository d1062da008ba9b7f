"""Shared fixtures of Hawser's Python integration tests.

* ``Broker`` runs one ``hawser serve`` process on a loopback port with its own
  data directory; it is always stopped by PID in teardown.
* ``StompClient`` wraps a stomp-py connection (a client we did not write) with
  a listener that collects frames and helpers that wait with timeouts.
* ``RawClient`` speaks STOMP over a plain socket, byte for byte, for malformed
  input and precise protocol checks.

Every wait in this file has a timeout; every loop is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import pytest
import stomp

REPO = Path(__file__).resolve().parents[2]
HAWSER_BIN = os.environ.get("HAWSER_BIN", str(REPO / "target" / "release" / "hawser"))

HOST = "127.0.0.1"
READY_TEXT = "Hawser ready: accepting STOMP connections on"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# Short timeouts so that tests about stalled clients stay short.
TEST_TIMEOUT_ARGS = ("--connect-timeout-ms", "2000", "--frame-timeout-ms", "1000")
DEFAULT_ARGS = ("--persistence", "journal") + TEST_TIMEOUT_ARGS


# ---------------------------------------------------------------------------
# Generic helpers
# ---------------------------------------------------------------------------


def wait_until(cond: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Polls ``cond`` until it is truthy or ``timeout`` seconds pass. Returns the outcome."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return bool(cond())
        time.sleep(interval)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def unique(prefix: str = "t") -> str:
    """A destination-safe unique name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------
# The broker process
# ---------------------------------------------------------------------------


class Broker:
    """One ``hawser serve`` process. ``start`` waits for the ready line in its log."""

    def __init__(self, workdir: Path, args: Sequence[str] = DEFAULT_ARGS, binary: str = HAWSER_BIN):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.args = list(args)
        self.binary = binary
        self.port: Optional[int] = None
        # OpenWire listens too (the default 61616 would clash between brokers).
        self.openwire_port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.log_path: Optional[Path] = None
        self.exit_codes: list[int] = []

    # -- lifecycle --------------------------------------------------------

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, args: Optional[Sequence[str]] = None) -> "Broker":
        """Starts the broker (same port and data dir as before, if it ran before)."""
        assert not self.running, "broker already running"
        if args is not None:
            self.args = list(args)
        if not Path(self.binary).exists():
            pytest.fail(f"hawser binary not found at {self.binary}; build it or set HAWSER_BIN")
        pinned = self.port is not None
        last_log = ""
        for attempt in range(8):
            if self.port is None:
                self.port = free_port()
            if self.openwire_port is None:
                self.openwire_port = free_port()
            self.starts += 1
            self.log_path = self.workdir / f"broker-{self.starts}.log"
            cmd = [
                self.binary, "serve",
                "--data-dir", str(self.data_dir),
                "--stomp", f"{HOST}:{self.port}",
                *([] if "--openwire" in self.args else ["--openwire", f"{HOST}:{self.openwire_port}"]),
                *self.args,
            ]
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
                )
            ready = f"{READY_TEXT} {HOST}:{self.port}"
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                text = self.log_text()
                if ready in text:
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            last_log = self.log_text()
            if self.proc.poll() is None:
                self._terminate()
                pytest.fail(f"broker did not become ready within {START_TIMEOUT}s; log:\n{last_log}")
            self.exit_codes.append(self.proc.returncode)
            if "cannot listen" not in last_log:
                break
            # The port was taken in the meantime: a fresh one, or the same one a bit later.
            if pinned:
                time.sleep(0.25)
            else:
                self.port = None
                self.openwire_port = None
        pytest.fail(f"broker failed to start (exit {self.proc.returncode}); log:\n{last_log}")

    def _terminate(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        code = self.proc.returncode
        self.exit_codes.append(code)
        return code

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        return self._terminate(signal.SIGTERM, timeout)

    def interrupt(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGINT (Ctrl-C), wait, then SIGKILL. Returns the exit code."""
        return self._terminate(signal.SIGINT, timeout)

    def kill(self) -> Optional[int]:
        """SIGKILL: a crash."""
        return self._terminate(signal.SIGKILL, STOP_TIMEOUT)

    def restart(self, args: Optional[Sequence[str]] = None, kill: bool = False) -> "Broker":
        """Stops (SIGTERM, or SIGKILL with ``kill``) and starts again on the same port and data dir."""
        code = self.kill() if kill else self.stop()
        if not kill:
            assert code == 0, f"broker exited with {code} on SIGTERM; log:\n{self.log_text()}"
        return self.start(args)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except FileNotFoundError:
            return ""


# Brokers told to stop in a fixture teardown, still finishing their graceful shutdown.
_STOPPING: list = []


def _stop_in_background(broker: "Broker") -> None:
    """SIGTERM now; a thread waits up to STOP_TIMEOUT s and then SIGKILLs.

    A graceful stop takes about half a second; waiting for it in every test's
    teardown would double the suite's time. The session fixture below joins
    every such thread, so no process outlives the test session.
    """
    proc = broker.proc
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def reap():
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=STOP_TIMEOUT)

    t = threading.Thread(target=reap, name=f"reap-{proc.pid}", daemon=True)
    t.start()
    _STOPPING.append((proc, t))


@pytest.fixture(scope="session", autouse=True)
def _reap_stopped_brokers():
    yield
    for proc, t in _STOPPING:
        t.join(STOP_TIMEOUT * 2 + 1)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def broker_factory(tmp_path):
    """Makes brokers (``make(*args, defaults=True)``); stops all of them by PID at teardown."""
    brokers: list[Broker] = []

    def make(*args: str, defaults: bool = True, start: bool = True) -> Broker:
        b = Broker(tmp_path / f"broker{len(brokers)}", (DEFAULT_ARGS if defaults else ()) + tuple(args))
        brokers.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in brokers:
        _stop_in_background(b)


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A fresh broker: journal persistence, 2 s connect timeout, 1 s frame timeout."""
    return broker_factory()


# ---------------------------------------------------------------------------
# stomp-py clients
# ---------------------------------------------------------------------------


class Collector(stomp.ConnectionListener):
    """Collects what a stomp-py connection receives."""

    def __init__(self):
        self.cond = threading.Condition()
        self.messages: list = []
        self.errors: list = []
        self.receipts: list[str] = []
        self.connected_frames: list = []
        self.disconnected = threading.Event()
        self.heartbeat_timeouts = 0

    def on_connected(self, frame):
        with self.cond:
            self.connected_frames.append(frame)
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.append(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected.set()
            self.cond.notify_all()

    def on_heartbeat_timeout(self):
        with self.cond:
            self.heartbeat_timeouts += 1
            self.cond.notify_all()

    def wait(self, cond: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
            return True


class StompClient:
    """A stomp-py connection and its collected frames."""

    def __init__(self, port: int, version: str = "1.2", heartbeats=(0, 0), auto_decode: bool = True):
        classes = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}
        kwargs = dict(
            host_and_ports=[(HOST, port)],
            reconnect_attempts_max=1,
            auto_decode=auto_decode,
            timeout=5,
        )
        if version != "1.0":
            kwargs["heartbeats"] = heartbeats
        self.version = version
        self.conn = classes[version](**kwargs)
        self.listener = Collector()
        self.conn.set_listener("collector", self.listener)
        self._receipt_n = 0

    # -- connection -------------------------------------------------------

    def connect(self, client_id: Optional[str] = None, headers: Optional[dict] = None, timeout: float = 5.0):
        hdrs = dict(headers or {})
        if client_id is not None:
            hdrs["client-id"] = client_id
        self.conn.connect(headers=hdrs, wait=False)
        ok = self.listener.wait(
            lambda: bool(self.listener.connected_frames) or bool(self.listener.errors)
            or self.listener.disconnected.is_set(),
            timeout,
        )
        assert ok, "no CONNECTED within timeout"
        assert self.listener.connected_frames, f"connect failed: {self.error_texts()}"
        return self.listener.connected_frames[0]

    @property
    def connected(self) -> bool:
        return self.conn.is_connected() and not self.listener.disconnected.is_set()

    def disconnect(self, timeout: float = 5.0) -> None:
        """DISCONNECT with a receipt; waits (bounded) until the broker has closed the connection."""
        if not self.conn.is_connected():
            return
        rid = self.next_receipt()
        try:
            # Protocol-level DISCONNECT only: stomp-py's connection-level one then
            # waits for its io thread without a timeout.
            proto = next(c for c in type(self.conn).__mro__ if c.__name__.startswith("Protocol"))
            proto.disconnect(self.conn, receipt=rid)
        except Exception:
            pass
        if not self.listener.wait(lambda: self.listener.disconnected.is_set(), timeout):
            self.drop()

    def drop(self) -> None:
        """Closes the socket without DISCONNECT (a client that vanishes)."""
        try:
            self.conn.transport.disconnect_socket()
        except Exception:
            pass
        self.listener.wait(lambda: self.listener.disconnected.is_set(), 2.0)

    def close(self) -> None:
        try:
            self.disconnect(timeout=2.0)
        finally:
            self.drop()

    # -- frames -----------------------------------------------------------

    def next_receipt(self) -> str:
        self._receipt_n += 1
        return f"r-{id(self) & 0xffff:x}-{self._receipt_n}"

    def wait_receipt(self, rid: str, timeout: float = 5.0) -> bool:
        return self.listener.wait(lambda: rid in self.listener.receipts, timeout)

    def _receipted(self, fn, *args, receipt: bool = True, timeout: float = 5.0, **kwargs):
        if not receipt:
            fn(*args, **kwargs)
            return None
        rid = self.next_receipt()
        headers = dict(kwargs.pop("headers", None) or {})
        headers["receipt"] = rid
        fn(*args, headers=headers, **kwargs)
        assert self.wait_receipt(rid, timeout), f"no RECEIPT {rid} within {timeout}s; errors: {self.error_texts()}"
        return rid

    def send(self, destination: str, body="", headers: Optional[dict] = None, receipt: bool = True,
             timeout: float = 5.0, content_type: Optional[str] = None, **kw):
        """SEND; by default waits for its RECEIPT. Keyword arguments become headers."""
        hdrs = dict(headers or {})
        hdrs.update(kw)
        return self._receipted(self.conn.send, destination, body, content_type=content_type, headers=hdrs,
                               receipt=receipt, timeout=timeout)

    def subscribe(self, destination: str, id: Optional[str] = None, ack: str = "auto",
                  headers: Optional[dict] = None, receipt: bool = True, **kw):
        """SUBSCRIBE; by default waits for its RECEIPT so the subscription is active."""
        hdrs = dict(headers or {})
        hdrs.update(kw)
        if self.version == "1.0":
            if id is not None:
                hdrs["id"] = id
            return self._receipted(self.conn.subscribe, destination, ack=ack, headers=hdrs, receipt=receipt)
        return self._receipted(self.conn.subscribe, destination, id or unique("sub"), ack=ack,
                               headers=hdrs, receipt=receipt)

    def unsubscribe(self, id: str, headers: Optional[dict] = None, receipt: bool = True):
        if self.version == "1.0":
            return self._receipted(self.conn.unsubscribe, id=id, headers=headers, receipt=receipt)
        return self._receipted(self.conn.unsubscribe, id, headers=headers, receipt=receipt)

    def ack(self, frame, transaction: Optional[str] = None, receipt: bool = True):
        rid = self.next_receipt() if receipt else None
        h = frame.headers
        if self.version == "1.2":
            self.conn.ack(h["ack"], transaction=transaction, receipt=rid)
        elif self.version == "1.1":
            self.conn.ack(h["message-id"], h["subscription"], transaction=transaction, receipt=rid)
        else:
            self.conn.ack(h["message-id"], transaction=transaction, receipt=rid)
        if rid:
            assert self.wait_receipt(rid), f"no RECEIPT for ACK; errors: {self.error_texts()}"

    def nack(self, frame, transaction: Optional[str] = None, receipt: bool = True):
        rid = self.next_receipt() if receipt else None
        h = frame.headers
        if self.version == "1.2":
            self.conn.nack(h["ack"], transaction=transaction, receipt=rid)
        else:
            self.conn.nack(h["message-id"], h["subscription"], transaction=transaction, receipt=rid)
        if rid:
            assert self.wait_receipt(rid), f"no RECEIPT for NACK; errors: {self.error_texts()}"

    def begin(self, tx: str):
        return self._receipted(self.conn.begin, transaction=tx)

    def commit(self, tx: str):
        return self._receipted(self.conn.commit, transaction=tx)

    def abort(self, tx: str):
        return self._receipted(self.conn.abort, tx)

    # -- what arrived -----------------------------------------------------

    @property
    def messages(self) -> list:
        with self.listener.cond:
            return list(self.listener.messages)

    def bodies(self) -> list:
        return [m.body for m in self.messages]

    def error_texts(self) -> list:
        with self.listener.cond:
            return [(e.headers.get("message"), e.body) for e in self.listener.errors]

    def wait_messages(self, n: int, timeout: float = 5.0) -> list:
        """Waits until at least ``n`` messages arrived; returns all of them. Fails on timeout."""
        ok = self.listener.wait(lambda: len(self.listener.messages) >= n, timeout)
        got = self.messages
        assert ok, f"expected {n} messages within {timeout}s, got {len(got)}: {[m.body for m in got][:20]}"
        return got

    def expect_exactly(self, n: int, timeout: float = 5.0, settle: float = 0.3) -> list:
        """Waits for ``n`` messages, then ``settle`` s more, and checks no extra one came."""
        self.wait_messages(n, timeout)
        time.sleep(settle)
        got = self.messages
        assert len(got) == n, f"expected exactly {n} messages, got {len(got)}: {[m.body for m in got][:20]}"
        return got

    def clear(self) -> None:
        with self.listener.cond:
            self.listener.messages.clear()

    def wait_error(self, timeout: float = 5.0):
        assert self.listener.wait(lambda: bool(self.listener.errors), timeout), "no ERROR frame"
        return self.listener.errors[0]

    def wait_disconnected(self, timeout: float = 5.0) -> bool:
        return self.listener.wait(lambda: self.listener.disconnected.is_set(), timeout)


@pytest.fixture
def stomp_factory():
    """``make(broker, version='1.2', client_id=None, heartbeats=(0,0), auto_decode=True, connect=True)``."""
    clients: list[StompClient] = []

    def make(broker: Broker, version: str = "1.2", client_id: Optional[str] = None, heartbeats=(0, 0),
             auto_decode: bool = True, connect: bool = True, headers: Optional[dict] = None) -> StompClient:
        c = StompClient(broker.port, version=version, heartbeats=heartbeats, auto_decode=auto_decode)
        clients.append(c)
        if connect:
            c.connect(client_id=client_id, headers=headers)
        return c

    yield make
    for c in clients:
        try:
            c.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Raw sockets
# ---------------------------------------------------------------------------

_ESC_11 = {"\\": "\\\\", "\n": "\\n", ":": "\\c"}
_ESC_12 = dict(_ESC_11, **{"\r": "\\r"})


def escape_header(text: str, version: str) -> str:
    table = {"1.0": {}, "1.1": _ESC_11, "1.2": _ESC_12}[version]
    return "".join(table.get(ch, ch) for ch in text)


def unescape_header(text: str, version: str) -> str:
    if version == "1.0":
        return text
    table = {"\\": "\\", "n": "\n", "c": ":"}
    if version == "1.2":
        table["r"] = "\r"
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt not in table:
                raise ValueError(f"invalid escape in header from broker: {text!r}")
            out.append(table[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass
class RawFrame:
    command: str
    headers: list = field(default_factory=list)  # [(name, value)] in wire order, unescaped
    body: bytes = b""
    raw_headers: list = field(default_factory=list)  # [(name, value)] as on the wire

    def header(self, name: str, default=None):
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.headers)

    @property
    def hdict(self) -> dict:
        d = {}
        for k, v in self.headers:
            d.setdefault(k, v)
        return d

    def __repr__(self):
        return f"RawFrame({self.command}, {self.headers}, {self.body[:80]!r})"


def encode_frame(command: str, headers: Iterable = (), body: bytes = b"", content_length: object = "auto",
                 version: Optional[str] = None) -> bytes:
    """Builds frame bytes. ``headers`` is a dict or (name, value) pairs, sent verbatim unless
    ``version`` asks for escaping. ``content_length``: 'auto' (when body non-empty), None, or a value."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    if isinstance(body, str):
        body = body.encode()
    lines = [command.encode()]
    for k, v in headers:
        kb = k if isinstance(k, bytes) else (escape_header(k, version) if version else k).encode()
        vb = v if isinstance(v, bytes) else (escape_header(str(v), version) if version else str(v)).encode()
        lines.append(kb + b":" + vb)
    if content_length == "auto":
        if body:
            lines.append(b"content-length:%d" % len(body))
    elif content_length is not None:
        lines.append(b"content-length:" + str(content_length).encode())
    return b"\n".join(lines) + b"\n\n" + body + b"\x00"


class RawClient:
    """A STOMP client over a plain socket that reads and checks every byte."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self.version = "1.0"
        self.closed = False
        self.reset = False
        self.heartbeats = 0
        self.heartbeat_times: list[float] = []
        self.pending: deque = deque()  # frames read while looking for a RECEIPT

    # -- writing ----------------------------------------------------------

    def send(self, data: bytes, tolerant: bool = False) -> bool:
        """Sends bytes. With ``tolerant`` a peer that already closed is not an error."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            if not tolerant:
                raise
            return False

    def send_frame(self, command: str, headers: Iterable = (), body: bytes = b"", content_length: object = "auto",
                   escape: bool = False, tolerant: bool = False) -> bool:
        version = self.version if escape else None
        return self.send(encode_frame(command, headers, body, content_length, version), tolerant=tolerant)

    def connect(self, version: Optional[str] = "1.2", headers: Optional[dict] = None, command: str = "CONNECT",
                host: bool = True, timeout: float = 5.0) -> RawFrame:
        """CONNECT and wait for CONNECTED. ``version=None`` sends no accept-version (1.0)."""
        hdrs: dict = {}
        if version is not None:
            hdrs["accept-version"] = version
        if host:
            hdrs["host"] = "localhost"
        hdrs.update(headers or {})
        self.send_frame(command, hdrs)
        frame = self.read_frame(timeout)
        assert frame is not None, "connection closed instead of CONNECTED"
        assert frame.command == "CONNECTED", f"expected CONNECTED, got {frame}"
        self.version = frame.header("version", "1.0")
        return frame

    # -- reading ----------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Reads more bytes; False if the peer closed. Raises TimeoutError at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError from None
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def _parse(self):
        """A complete frame from the buffer, or None if incomplete. Heart-beats are counted."""
        while self.buf[:1] in (b"\n", b"\r"):
            if self.buf[:2] == b"\r\n":
                self.buf = self.buf[2:]
            elif self.buf[:1] == b"\r":
                if len(self.buf) < 2:
                    return None
                raise AssertionError(f"stray CR from broker: {self.buf[:40]!r}")
            else:
                self.buf = self.buf[1:]
            self.heartbeats += 1
            self.heartbeat_times.append(time.monotonic())
        end = self.buf.find(b"\n\n")
        end_crlf = self.buf.find(b"\r\n\r\n")
        if end < 0 and end_crlf < 0:
            return None
        if end_crlf >= 0 and (end < 0 or end_crlf < end):
            head, body_start = self.buf[:end_crlf], end_crlf + 4
        else:
            head, body_start = self.buf[:end], end + 2
        lines = head.decode("utf-8").replace("\r\n", "\n").split("\n")
        command = lines[0]
        escaping = self.version if command not in ("CONNECTED",) else "1.0"
        raw_headers, headers = [], []
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            assert sep, f"header line without colon from broker: {line!r}"
            raw_headers.append((k, v))
            headers.append((unescape_header(k, escaping), unescape_header(v, escaping)))
        cl = next((v for k, v in headers if k == "content-length"), None)
        if cl is not None:
            n = int(cl)
            if len(self.buf) < body_start + n + 1:
                return None
            body = self.buf[body_start:body_start + n]
            assert self.buf[body_start + n:body_start + n + 1] == b"\x00", "frame not NUL-terminated"
            self.buf = self.buf[body_start + n + 1:]
        else:
            nul = self.buf.find(b"\x00", body_start)
            if nul < 0:
                return None
            body = self.buf[body_start:nul]
            self.buf = self.buf[nul + 1:]
        return RawFrame(command, headers, body, raw_headers)

    def read_frame(self, timeout: float = 5.0) -> Optional[RawFrame]:
        """The next frame; None if the connection closed first. Raises TimeoutError."""
        if self.pending:
            return self.pending.popleft()
        return self._read_wire(timeout)

    def expect_receipt(self, receipt_id: str, timeout: float = 5.0) -> RawFrame:
        """Waits for RECEIPT ``receipt_id``; other frames read meanwhile are kept for later reads."""
        for i, f in enumerate(self.pending):
            if f.command == "RECEIPT" and f.header("receipt-id") == receipt_id:
                del self.pending[i]
                return f
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            try:
                frame = self._read_wire(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise AssertionError(f"no RECEIPT {receipt_id} within {timeout}s; other frames: "
                                     f"{list(self.pending)}") from None
            assert frame is not None, f"connection closed while waiting for RECEIPT {receipt_id}: {list(self.pending)}"
            assert frame.command != "ERROR", f"ERROR while waiting for RECEIPT {receipt_id}: {frame}"
            if frame.command == "RECEIPT" and frame.header("receipt-id") == receipt_id:
                return frame
            self.pending.append(frame)
        raise AssertionError("expect_receipt loop bound reached")

    def _read_wire(self, timeout: float) -> Optional[RawFrame]:
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            frame = self._parse()
            if frame is not None:
                return frame
            if self.closed or not self._fill(deadline):
                return None
        raise AssertionError("read_frame loop bound reached")

    def expect(self, command: str, timeout: float = 5.0) -> RawFrame:
        """The next frame, which must be ``command``."""
        try:
            frame = self.read_frame(timeout)
        except TimeoutError:
            raise AssertionError(f"no {command} frame within {timeout}s") from None
        assert frame is not None, f"connection closed while waiting for {command}"
        assert frame.command == command, f"expected {command}, got {frame}"
        return frame

    def read_until_closed(self, timeout: float = 5.0) -> list:
        """Every frame until the broker closes the connection; fails if it is still open after ``timeout``."""
        frames = []
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            try:
                frame = self.read_frame(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise AssertionError(
                    f"broker did not close the connection within {timeout}s; frames so far: {frames}") from None
            if frame is None:
                return frames
            frames.append(frame)
        raise AssertionError("read_until_closed loop bound reached")

    def frames_for(self, duration: float) -> list:
        """Every frame arriving within ``duration`` seconds (stops early if closed)."""
        frames = []
        deadline = time.monotonic() + duration
        for _ in range(100000):
            left = deadline - time.monotonic()
            if left <= 0:
                return frames
            try:
                frame = self.read_frame(left)
            except TimeoutError:
                return frames
            if frame is None:
                return frames
            frames.append(frame)
        return frames

    def expect_error_and_close(self, timeout: float = 5.0) -> RawFrame:
        """The broker must send exactly one ERROR (with a message header) and then close."""
        frames = self.read_until_closed(timeout)
        errors = [f for f in frames if f.command == "ERROR"]
        assert errors, f"expected an ERROR frame before close, got {frames} (reset={self.reset})"
        assert frames[-1].command == "ERROR", f"ERROR must be the last frame, got {frames}"
        assert len(errors) == 1, f"expected one ERROR frame, got {errors}"
        msg = errors[0].header("message")
        assert msg, f"ERROR frame without a message header: {errors[0]}"
        return errors[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def raw_factory():
    """``make(broker_or_port, timeout=5)`` opens a RawClient; all are closed at teardown."""
    clients: list[RawClient] = []

    def make(target, timeout: float = 5.0) -> RawClient:
        port = target.port if isinstance(target, Broker) else int(target)
        c = RawClient(port, timeout)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
