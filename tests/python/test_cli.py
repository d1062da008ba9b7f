"""The ``hawser send``, ``hawser receive`` and ``hawser browse`` client commands,
run as processes against real brokers.

Exit codes under test: 0 done; 1 bad arguments or input; 2 clap's own usage
errors; 3 no broker reachable; 4 the broker refused; 5 ``receive`` timed out
before ``--count``. Every command runs with ``subprocess.run`` and a timeout,
so none outlives its test.
"""

from __future__ import annotations

import json
import subprocess
from typing import Optional, Sequence

import pytest

from conftest import HAWSER_BIN, HOST, free_port, unique

RUN_TIMEOUT = 30.0


def hawser(*args: str, input: Optional[bytes] = None, timeout: float = RUN_TIMEOUT,
           binary: bool = False) -> subprocess.CompletedProcess:
    """Runs the hawser binary; stderr is captured as text, stdout as text or (``binary``) bytes."""
    proc = subprocess.run(
        [HAWSER_BIN, *args],
        input=input if input is not None else b"",
        capture_output=True,
        timeout=timeout,
    )
    if not binary:
        proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def url(broker) -> str:
    return f"tcp://{HOST}:{broker.port}"


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}; stdout {proc.stdout!r}; stderr {proc.stderr!r}"
    return proc


def last_error(proc: subprocess.CompletedProcess) -> str:
    """The last ``hawser: ...`` line on stderr (log lines may come before it)."""
    lines = [l for l in proc.stderr.splitlines() if l.startswith("hawser: ")]
    assert lines, f"no 'hawser: ' error line on stderr: {proc.stderr!r}"
    return lines[-1]


def send(broker, dest: str, *extra: str, body: Optional[str] = None, input: Optional[bytes] = None):
    args = ["send", "--url", url(broker), "-d", dest]
    if body is not None:
        args += ["--body", body]
    return ok(hawser(*args, *extra, input=input))


def receive(broker_or_url, dest: str, *extra: str, count: int = 1, timeout_ms: int = 5000):
    target = broker_or_url if isinstance(broker_or_url, str) else url(broker_or_url)
    return hawser("receive", "--url", target, "-d", dest, "--count", str(count),
                  "--timeout-ms", str(timeout_ms), *extra)


def received_lines(proc) -> list[str]:
    ok(proc)
    return proc.stdout.splitlines()


def browse(broker, dest: str, *extra: str):
    return ok(hawser("browse", "--url", url(broker), "-d", dest, *extra))


def browse_count_line(proc, dest: str) -> str:
    lines = [l for l in proc.stderr.splitlines() if l.endswith(f"message(s) in {dest}")]
    assert len(lines) == 1, f"expected one count line on stderr: {proc.stderr!r}"
    return lines[0]


def assert_empty(broker, dest: str) -> None:
    """Nothing is left: receive times out (5) and prints nothing."""
    p = receive(broker, dest, timeout_ms=300)
    assert p.returncode == 5, f"expected timeout, got {p.returncode}: {p.stdout!r} {p.stderr!r}"
    assert p.stdout == ""


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


def test_send_body_and_receive_round_trip(broker):
    q = "/queue/" + unique("cli")
    p = send(broker, q, body="héllo wörld ✓")
    assert f"sent 1 message(s) to {q}" in p.stderr
    assert p.stdout == ""
    assert received_lines(receive(broker, q)) == ["héllo wörld ✓"]
    assert_empty(broker, q)


def test_send_body_from_file_and_from_stdin(broker, tmp_path):
    q = "/queue/" + unique("cli")
    f = tmp_path / "body.txt"
    f.write_text("from a file")
    send(broker, q, "--file", str(f))
    send(broker, q, input=b"from stdin")
    assert received_lines(receive(broker, q, count=2)) == ["from a file", "from stdin"]
    assert_empty(broker, q)


def test_file_body_is_sent_byte_for_byte(broker, tmp_path, raw_factory):
    q = "/queue/" + unique("bin")
    data = bytes(range(256)) * 4 + b"\x00\x00end\r\n\x00"
    f = tmp_path / "body.bin"
    f.write_bytes(data)
    send(broker, q, "--file", str(f), "--count", "2")
    # The CLI prints bodies as text lines; the bytes are checked on a raw socket.
    raw = raw_factory(broker)
    raw.connect("1.2")
    raw.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "ack": "auto"})
    frames = [raw.expect("MESSAGE"), raw.expect("MESSAGE")]
    assert [fr.body for fr in frames] == [data, data]
    assert [fr.header("content-length") for fr in frames] == [str(len(data))] * 2


def test_binary_file_body_round_trips_through_send_and_receive(broker, tmp_path):
    """``receive`` prints each body followed by a newline: a binary body must come out as
    the bytes that went in, not re-encoded as text."""
    q = "/queue/" + unique("bin")
    data = bytes(range(256)) + b"\xff\xfe\x80 not utf-8"
    f = tmp_path / "body.bin"
    f.write_bytes(data)
    send(broker, q, "--file", str(f))
    p = hawser("receive", "--url", url(broker), "-d", q, "--timeout-ms", "5000", binary=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data + b"\n", f"{len(p.stdout)} bytes out for {len(data) + 1} expected"


def test_stdin_body_is_sent_byte_for_byte(broker, raw_factory):
    q = "/queue/" + unique("bin")
    data = b"line one\nline two\n\x00\xff\xfe trailing newline\n"
    send(broker, q, input=data)
    raw = raw_factory(broker)
    raw.connect("1.2")
    raw.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "ack": "auto"})
    assert raw.expect("MESSAGE").body == data


def test_count_sends_and_receives_that_many(broker):
    q = "/queue/" + unique("count")
    p = send(broker, q, "--count", "5", body="same")
    assert f"sent 5 message(s) to {q}" in p.stderr
    assert received_lines(receive(broker, q, count=3)) == ["same"] * 3
    assert received_lines(receive(broker, q, count=2)) == ["same"] * 2
    assert_empty(broker, q)


def test_receive_timeout_keeps_what_it_printed_acknowledged(broker):
    q = "/queue/" + unique("partial")
    send(broker, q, "--count", "2", body="x")
    p = receive(broker, q, count=3, timeout_ms=500)
    assert p.returncode == 5, f"{p.returncode}: {p.stderr!r}"
    assert p.stdout.splitlines() == ["x", "x"]
    assert "received 2 of 3 message(s) within 500 ms" in last_error(p)
    # The two printed were acknowledged: they are gone.
    assert browse_count_line(browse(broker, q), q) == f"0 message(s) in {q}"


def test_persistent_messages_survive_a_broker_crash(broker):
    q = "/queue/" + unique("durable-q")
    send(broker, q, "--persistent", "--count", "3", body="kept")
    broker.kill()
    broker.start()
    assert received_lines(receive(broker, q, count=3)) == ["kept"] * 3
    assert_empty(broker, q)


def test_selector_filters_messages(broker):
    q = "/queue/" + unique("sel")
    send(broker, q, "-H", "color:red", "-H", "n:1", body="red-1")
    send(broker, q, "-H", "color:blue", "-H", "n:2", body="blue-2")
    send(broker, q, "-H", "color:red", "-H", "n:3", body="red-3")
    send(broker, q, "-H", "color:blue", "-H", "n:4", body="blue-4")
    assert received_lines(receive(broker, q, "--selector", "color = 'blue'", count=2)) == ["blue-2", "blue-4"]
    # Nothing else matches; the red ones are still there.
    p = receive(broker, q, "--selector", "color = 'blue'", timeout_ms=300)
    assert (p.returncode, p.stdout) == (5, "")
    assert received_lines(receive(broker, q, "--selector", "color = 'red' AND n > 1")) == ["red-3"]
    assert received_lines(receive(broker, q)) == ["red-1"]
    assert_empty(broker, q)


# ---------------------------------------------------------------------------
# Browse
# ---------------------------------------------------------------------------


def test_browse_leaves_messages_in_place(broker):
    q = "/queue/" + unique("browse")
    for i in range(3):
        send(broker, q, body=f"b{i}")
    first = browse(broker, q)
    assert first.stdout.splitlines() == ["b0", "b1", "b2"]
    assert browse_count_line(first, q) == f"3 message(s) in {q}"
    again = browse(broker, q)
    assert again.stdout.splitlines() == ["b0", "b1", "b2"]
    limited = browse(broker, q, "--limit", "2")
    assert limited.stdout.splitlines() == ["b0", "b1"]
    as_json = [json.loads(l) for l in browse(broker, q, "--json").stdout.splitlines()]
    assert [m["body"] for m in as_json] == ["b0", "b1", "b2"]
    assert all(m["headers"]["destination"] == q for m in as_json)
    # Browsing consumed nothing: a receiver gets all three, then the queue is empty.
    assert received_lines(receive(broker, q, count=3)) == ["b0", "b1", "b2"]
    empty = browse(broker, q)
    assert empty.stdout == ""
    assert browse_count_line(empty, q) == f"0 message(s) in {q}"


# ---------------------------------------------------------------------------
# JSON output
# ---------------------------------------------------------------------------


def test_json_output_has_producer_headers_and_user_headers(broker):
    q = "/queue/" + unique("json")
    send(broker, q, "--count", "3", "-H", "color:green", "-H", "trace:a:b:c", "--persistent", body="payload")
    p = receive(broker, q, "--json", count=3)
    msgs = [json.loads(l) for l in received_lines(p)]
    assert len(msgs) == 3
    assert [m["body"] for m in msgs] == ["payload"] * 3
    for m in msgs:
        h = m["headers"]
        assert set(m) == {"headers", "body"}
        assert h["color"] == "green"
        assert h["trace"] == "a:b:c", "only the first colon separates name and value"
        assert h["persistent"] == "true"
        assert h["destination"] == q
        assert h["hawser-producer"] and h["hawser-producer"] == msgs[0]["headers"]["hawser-producer"]
        assert h["message-id"]
    assert [m["headers"]["hawser-seq"] for m in msgs] == ["1", "2", "3"]
    # Another send is another producer, numbering from 1 again.
    send(broker, q, body="later")
    later = json.loads(received_lines(receive(broker, q, "--json"))[0])
    assert later["headers"]["hawser-seq"] == "1"
    assert later["headers"]["hawser-producer"] != msgs[0]["headers"]["hawser-producer"]


# ---------------------------------------------------------------------------
# Failover URIs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["parenthesized", "bare"])
def test_receive_on_failover_uri_whose_first_broker_is_down(broker, form):
    q = "/queue/" + unique("fo")
    dead = free_port()
    send(broker, q, body="via failover")
    if form == "parenthesized":
        uri = f"failover:(tcp://{HOST}:{dead},tcp://{HOST}:{broker.port})?randomize=false"
    else:
        uri = f"failover:tcp://{HOST}:{dead},tcp://{HOST}:{broker.port}"
    assert received_lines(receive(uri, q)) == ["via failover"]
    # send takes the same URI.
    ok(hawser("send", "--url", uri, "-d", q, "--body", "sent via failover"))
    assert received_lines(receive(broker, q)) == ["sent via failover"]


# ---------------------------------------------------------------------------
# Durable subscriptions
# ---------------------------------------------------------------------------


def test_durable_subscription_keeps_messages_sent_while_away(broker):
    topic = "/topic/" + unique("dur")
    cid, name = unique("client"), unique("sub")
    durable = ("--durable", name, "--client-id", cid)
    send(broker, topic, body="before anyone subscribed")
    # Register the durable subscription; nothing is there yet.
    p = receive(broker, topic, *durable, timeout_ms=300)
    assert (p.returncode, p.stdout) == (5, ""), p.stderr
    # Sent while the receiver is away.
    send(broker, topic, "--persistent", body="away-1")
    send(broker, topic, "--persistent", body="away-2")
    assert received_lines(receive(broker, topic, *durable, count=2)) == ["away-1", "away-2"]
    # Each was delivered once.
    p = receive(broker, topic, *durable, timeout_ms=300)
    assert (p.returncode, p.stdout) == (5, ""), p.stderr
    # A plain (non-durable) topic receiver that was away got nothing kept for it.
    p = receive(broker, topic, timeout_ms=300)
    assert (p.returncode, p.stdout) == (5, ""), p.stderr


def test_durable_subscription_survives_a_broker_restart(broker):
    topic = "/topic/" + unique("dur")
    durable = ("--durable", unique("sub"), "--client-id", unique("client"))
    p = receive(broker, topic, *durable, timeout_ms=300)
    assert p.returncode == 5, p.stderr
    send(broker, topic, "--persistent", body="kept")
    broker.kill()
    broker.start()
    assert received_lines(receive(broker, topic, *durable)) == ["kept"]


# ---------------------------------------------------------------------------
# Exit codes and their messages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["send", "receive", "browse"])
def test_exit_3_when_nothing_listens(command):
    dead = free_port()
    args = [command, "--url", f"tcp://{HOST}:{dead}", "-d", "/queue/x"]
    if command == "send":
        args += ["--body", "x"]
    p = hawser(*args)
    assert p.returncode == 3, f"{p.returncode}: {p.stderr!r}"
    assert p.stdout == ""
    err = last_error(p)
    assert "no broker reachable" in err
    assert f"{HOST}:{dead}" in err


def test_exit_3_when_failover_gives_up():
    dead = free_port()
    uri = f"failover:(tcp://{HOST}:{dead})?maxReconnectAttempts=1"
    p = hawser("receive", "--url", uri, "-d", "/queue/x", "--timeout-ms", "2000")
    assert p.returncode == 3, f"{p.returncode}: {p.stderr!r}"
    err = last_error(p)
    assert "no broker reachable" in err
    assert f"tcp://{HOST}:{dead}" in err


@pytest.mark.parametrize("uri, names", [
    ("failover:(tcp://127.0.0.1:{port})?maxReconnectAttempts=1&bogusOption=3", ["unknown option", "bogusOption"]),
    ("tcp://127.0.0.1:{port}?frobnicate=1", ["unknown option", "frobnicate"]),
    ("tcp//127.0.0.1:{port}", ["unknown scheme", "tcp//127.0.0.1:{port}"]),
    ("tcp://127.0.0.1", ["no port", "tcp://127.0.0.1"]),
    ("tcp://127.0.0.1:99999", ["bad port", "tcp://127.0.0.1:99999"]),
    ("failover:(tcp://127.0.0.1:{port}", ["unbalanced parentheses"]),
])
def test_exit_1_on_bad_uri(broker, uri, names):
    # A broker is up on that port: the URI must be refused before any connection.
    uri = uri.format(port=broker.port)
    p = hawser("send", "--url", uri, "-d", "/queue/" + unique("x"), "--body", "x")
    assert p.returncode == 1, f"{p.returncode}: {p.stderr!r}"
    err = last_error(p)
    for n in names:
        assert n.format(port=broker.port) in err, err


def test_exit_1_on_header_without_colon(broker):
    q = "/queue/" + unique("hdr")
    p = hawser("send", "--url", url(broker), "-d", q, "--body", "x", "-H", "good:1", "-H", "nocolonhere")
    assert p.returncode == 1, f"{p.returncode}: {p.stderr!r}"
    assert '"nocolonhere"' in last_error(p) and "name:value" in last_error(p)
    # Nothing was sent.
    assert browse_count_line(browse(broker, q), q) == f"0 message(s) in {q}"


def test_exit_1_on_unreadable_body_file(broker, tmp_path):
    missing = tmp_path / "no-such-file"
    p = hawser("send", "--url", url(broker), "-d", "/queue/x", "--file", str(missing))
    assert p.returncode == 1, f"{p.returncode}: {p.stderr!r}"
    assert str(missing) in last_error(p)


@pytest.mark.parametrize("args, names", [
    (["receive", "-d", "/queue/{q}", "--selector", "color === 'blue'"], ["invalid selector", "color === 'blue'"]),
    (["receive", "-d", "/topic/{q}", "--durable", "d1"], ["client-id"]),
    (["browse", "-d", "/topic/{q}"], ["only queues can be browsed"]),
    (["send", "-d", "nowhere-{q}", "--body", "x"], ['"nowhere-{q}"']),
])
def test_exit_4_when_the_broker_refuses(broker, args, names):
    q = unique("refused")
    args = [a.format(q=q) for a in args]
    p = hawser(args[0], "--url", url(broker), *args[1:], "--timeout-ms", "2000") if args[0] == "receive" \
        else hawser(args[0], "--url", url(broker), *args[1:])
    assert p.returncode == 4, f"{p.returncode}: {p.stderr!r}"
    assert p.stdout == ""
    err = last_error(p)
    for n in names:
        assert n.format(q=q) in err, err


def test_exit_4_on_failover_uri_too(broker):
    """A refusal is not an outage: the failover client must not retry it forever."""
    uri = f"failover:(tcp://{HOST}:{broker.port})"
    p = hawser("receive", "--url", uri, "-d", "/queue/x", "--selector", "a===", "--timeout-ms", "2000",
               timeout=15)
    assert p.returncode == 4, f"{p.returncode}: {p.stderr!r}"
    assert "invalid selector" in last_error(p)


def test_exit_5_when_receive_times_out(broker):
    q = "/queue/" + unique("nothing")
    p = receive(broker, q, count=1, timeout_ms=300)
    assert p.returncode == 5, f"{p.returncode}: {p.stderr!r}"
    assert p.stdout == ""
    assert last_error(p) == "hawser: received 0 of 1 message(s) within 300 ms"


@pytest.mark.parametrize("args, text", [
    (["send", "--body", "x"], "--destination"),
    (["send", "-d", "/queue/x", "--body", "x", "--file", "/dev/null"], "cannot be used with"),
    (["receive", "-d", "/queue/x", "--count", "lots"], "invalid value 'lots'"),
    (["browse", "-d", "/queue/x", "--frobnicate"], "--frobnicate"),
])
def test_exit_2_on_usage_errors(args, text):
    p = hawser(*args)
    assert p.returncode == 2, f"{p.returncode}: {p.stderr!r}"
    assert p.stdout == ""
    assert text in p.stderr
    assert "Usage:" in p.stderr or "For more information" in p.stderr
