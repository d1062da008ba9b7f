"""Authentication, with clients we did not write (stomp-py; the Java
activemq-client in test_openwire_security.py).

Users come from a users file that ``hawser passwd`` writes (argon2 hashes).
With one configured, every connection must authenticate: a wrong password or
none gets the protocol's error after a delay that grows with each failure
from the same address, and the connection is closed. SIGHUP re-reads the
file. A broker without users refuses to listen beyond loopback unless told
``--allow-anonymous``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import stomp

from conftest import HAWSER_BIN, HOST, free_port, unique, wait_until

PASSWORDS = {"alice": "s3cret-alice", "bob": "hunter2-bob"}


def passwd(users: Path, user: str, password: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([HAWSER_BIN, "passwd", "--users-file", str(users), user, *extra],
                          input=password + "\n", capture_output=True, text=True, timeout=30)


def users_file(tmp_path: Path) -> Path:
    users = tmp_path / "users"
    for user, password in PASSWORDS.items():
        out = passwd(users, user, password, "--groups", "admins" if user == "alice" else "users")
        assert out.returncode == 0, out.stderr
    return users


class Outcome(stomp.ConnectionListener):
    def __init__(self):
        self.cond = threading.Condition()
        self.connected = False
        self.errors: list[str] = []
        self.disconnected = False
        self.messages: list[str] = []
        self.receipts: list[str] = []

    def receipts_include(self, receipt: str) -> bool:
        return receipt in self.receipts

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.append(frame.headers.get("receipt-id", ""))
            self.cond.notify_all()

    def on_connected(self, frame):
        with self.cond:
            self.connected = True
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame.headers.get("message", ""))
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame.body)
            self.cond.notify_all()


def attempt(port: int, login: str | None, passcode: str | None, timeout: float = 15.0):
    """Connects with stomp-py's own credential arguments; returns the
    connection, its listener and how long the broker took to answer."""
    conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), reconnect_attempts_max=1)
    outcome = Outcome()
    conn.set_listener("o", outcome)
    started = time.monotonic()
    conn.connect(login, passcode, wait=False)
    with outcome.cond:
        outcome.cond.wait_for(lambda: outcome.connected or outcome.errors, timeout=timeout)
    took = time.monotonic() - started
    return conn, outcome, took


def refused(outcome: Outcome, conn, text: str) -> bool:
    with outcome.cond:
        ok = outcome.cond.wait_for(lambda: outcome.disconnected, timeout=5.0)
    return ok and not outcome.connected and any(text in e for e in outcome.errors) and not conn.is_connected()


def test_passwd_writes_argon2_hashes_and_never_the_password(tmp_path):
    users = users_file(tmp_path)
    text = users.read_text()
    assert text.count("$argon2id$") == 2
    for password in PASSWORDS.values():
        assert password not in text
    assert "alice:" in text and ":admins" in text
    out = passwd(users, "alice", "", )
    assert out.returncode != 0 and "no password" in out.stderr
    out = subprocess.run([HAWSER_BIN, "passwd", "--users-file", str(users), "--delete", "bob"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "bob:" not in users.read_text()


def test_the_right_password_connects_and_wrong_ones_are_refused_ever_more_slowly(broker_factory, tmp_path):
    b = broker_factory("--users-file", str(users_file(tmp_path)))
    conn, ok, _ = attempt(b.port, "alice", PASSWORDS["alice"])
    assert ok.connected, ok.errors
    queue = f"/queue/{unique('auth')}"
    conn.subscribe(queue, id="s", ack="auto")
    conn.send(queue, body="hello", receipt="r")
    with ok.cond:
        assert ok.cond.wait_for(lambda: ok.messages == ["hello"], timeout=5.0)
    conn.disconnect()

    delays = []
    for _ in range(3):
        conn, bad, took = attempt(b.port, "alice", "not-the-password")
        assert refused(bad, conn, "user name or password is invalid"), bad.errors
        delays.append(took)
    # 0.5 s, then 1 s, then 2 s before the ERROR: guessing gets slower.
    assert delays[0] >= 0.45, delays
    assert delays[1] >= 0.95 and delays[2] >= 1.95, delays
    # An unknown user gets the same answer (no probing for names).
    conn, unknown, _ = attempt(b.port, "mallory", "x")
    assert refused(unknown, conn, "user name or password is invalid"), unknown.errors
    # No credentials at all: refused too.
    conn, none, _ = attempt(b.port, None, None)
    assert refused(none, conn, "authentication required"), none.errors
    # A success forgets the address's failures.
    conn, ok, _ = attempt(b.port, "bob", PASSWORDS["bob"])
    assert ok.connected, ok.errors
    conn.disconnect()
    conn, bad, took = attempt(b.port, "bob", "wrong")
    assert refused(bad, conn, "user name or password is invalid")
    assert took < 0.95, f"failures were not forgotten at a success: {took:.2f} s"
    log = b.log_text()
    assert "authentication failed" in log and "mallory" in log, "no audit line"
    assert PASSWORDS["alice"] not in log and "not-the-password" not in log, "a password in the log"


def test_allow_anonymous_lets_connections_without_credentials_in_but_not_wrong_ones(broker_factory, tmp_path):
    b = broker_factory("--users-file", str(users_file(tmp_path)), "--allow-anonymous")
    conn, anon, _ = attempt(b.port, None, None)
    assert anon.connected, anon.errors
    conn.disconnect()
    conn, bad, _ = attempt(b.port, "alice", "wrong")
    assert refused(bad, conn, "user name or password is invalid")


def test_sighup_rereads_the_users_file(broker_factory, tmp_path):
    users = users_file(tmp_path)
    b = broker_factory("--users-file", str(users))
    conn, before, _ = attempt(b.port, "carol", "pw-carol")
    assert refused(before, conn, "user name or password is invalid")
    assert passwd(users, "carol", "pw-carol").returncode == 0
    os.kill(b.pid, signal.SIGHUP)
    assert wait_until(lambda: "users file re-read" in b.log_text(), timeout=5.0)
    conn, after, _ = attempt(b.port, "carol", "pw-carol")
    assert after.connected, after.errors
    conn.disconnect()
    # A file that does not parse leaves the users before in force.
    users.write_text(users.read_text() + "garbage line\n")
    os.kill(b.pid, signal.SIGHUP)
    assert wait_until(lambda: "users file not reloaded" in b.log_text(), timeout=5.0)
    conn, still, _ = attempt(b.port, "carol", "pw-carol")
    assert still.connected, still.errors
    conn.disconnect()


def test_a_broker_without_users_refuses_to_listen_beyond_loopback(tmp_path):
    # Refused before any socket is bound: nothing listens on a network here.
    for stomp_host, openwire_host in (("0.0.0.0", HOST), (HOST, "0.0.0.0")):
        proc = subprocess.run([HAWSER_BIN, "serve", "--data-dir", str(tmp_path / "data"),
                               "--stomp", f"{stomp_host}:{free_port()}",
                               "--openwire", f"{openwire_host}:{free_port()}"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0
        assert "without authentication" in proc.stderr and "hawser passwd" in proc.stderr, proc.stderr
        assert "--allow-anonymous" in proc.stderr


def test_connections_per_address_are_limited_before_authentication(broker_factory, tmp_path):
    b = broker_factory("--users-file", str(users_file(tmp_path)), "--max-connections-per-address", "2")

    def raw(source: str) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(5)
        s.connect((HOST, b.port))
        return s

    # Two sockets from 127.0.0.1 hold its places without saying anything...
    held = [raw("127.0.0.1"), raw("127.0.0.1")]
    try:
        third = raw("127.0.0.1")
        data = third.recv(4096)
        assert b"too many connections from 127.0.0.1 (limit 2 per address)" in data, data
        third.close()
        # ...while another address is served, and authenticates as usual.
        conn = stomp.Connection12([(HOST, b.port)], heartbeats=(0, 0), reconnect_attempts_max=1,
                                  bind_host_port=("127.0.0.2", 0))
        conn.connect("alice", PASSWORDS["alice"], wait=True)
        assert conn.is_connected()
        conn.disconnect()
    finally:
        for s in held:
            s.close()
    # Places come back when connections end.
    assert wait_until(lambda: attempt(b.port, "alice", PASSWORDS["alice"])[1].connected, timeout=10.0)


def test_connections_per_listener_are_limited_and_leave_the_other_listeners_served(broker_factory, tmp_path):
    b = broker_factory("--users-file", str(users_file(tmp_path)), "--max-connections-per-listener", "2")

    def raw(port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((HOST, port))
        return s

    # Two silent sockets fill the STOMP listener...
    held = [raw(b.port), raw(b.port)]
    try:
        third = raw(b.port)
        data = third.recv(4096)
        assert b"too many connections on this listener (limit 2)" in data, data
        third.close()
        # ...while OpenWire is still served: the broker opens with its
        # WireFormatInfo, whose marshalled form names "ActiveMQ".
        ow = raw(b.openwire_port)
        got = b""
        deadline = time.monotonic() + 5
        while b"ActiveMQ" not in got and time.monotonic() < deadline:
            chunk = ow.recv(4096)
            if not chunk:
                break
            got += chunk
        assert b"ActiveMQ" in got, got
        ow.close()
    finally:
        for s in held:
            s.close()
    # Places come back when connections end.
    assert wait_until(lambda: attempt(b.port, "alice", PASSWORDS["alice"])[1].connected, timeout=10.0)


def test_the_status_endpoint_authenticates_too(broker_factory, tmp_path):
    import base64
    import urllib.error
    import urllib.request
    status = free_port()
    b = broker_factory("--users-file", str(users_file(tmp_path)), "--status", f"{HOST}:{status}")
    url = f"http://{HOST}:{status}/status"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401 and "Basic" in refused.value.headers["WWW-Authenticate"]
    bad = urllib.request.Request(url, headers={
        "Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 401
    # hawser stat takes the password from the environment, never its arguments.
    out = subprocess.run([HAWSER_BIN, "stat", "--status", f"{HOST}:{status}", "--user", "alice"],
                         env={**os.environ, "HAWSER_PASSWORD": PASSWORDS["alice"]},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "role: standalone" in out.stdout, out.stderr
    out = subprocess.run([HAWSER_BIN, "stat", "--status", f"{HOST}:{status}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "401" in out.stderr, out.stderr
    assert "protocol=http" in b.log_text() and "authentication failed" in b.log_text()


def test_client_ids_and_producer_ids_belong_to_their_user(broker_factory, tmp_path):
    """Alice's durable subscription makes her client id hers: bob is refused
    it, before and after a kill -9, and cannot remove her subscription. While
    a client id has no durable subscriptions anyone may use it, but bob's
    sends with alice's producer id mark windows of his own: her later sends
    with the same sequence numbers are kept, not dropped as resends."""
    b = broker_factory("--users-file", str(users_file(tmp_path)))
    topic, queue = f"/topic/{unique('owned')}", f"/queue/{unique('owned')}"

    def as_user(user: str, client_id: str | None = None):
        # The broker may still be closing the client id's last connection
        # (a DISCONNECT's receipt comes first): a bounded retry for that.
        for _ in range(50):
            conn = stomp.Connection12([(HOST, b.port)], heartbeats=(0, 0), reconnect_attempts_max=1)
            outcome = Outcome()
            conn.set_listener("o", outcome)
            headers = {"client-id": client_id} if client_id else {}
            conn.connect(user, PASSWORDS[user], wait=False, headers=headers)
            with outcome.cond:
                outcome.cond.wait_for(lambda: outcome.connected or outcome.errors, timeout=15.0)
            if not any("already connected" in e for e in outcome.errors):
                return conn, outcome
            time.sleep(0.1)
        raise AssertionError(f"client id {client_id} stayed connected")

    def send(conn, outcome, body: str, seq: int):
        # Hawser's producer id and sequence headers (hawser-client sends
        # them): what duplicate detection keys on.
        receipt = unique("r")
        conn.send(queue, body=body, receipt=receipt, persistent="true",
                  headers={"hawser-producer": "orders-1", "hawser-seq": str(seq)})
        with outcome.cond:
            assert outcome.cond.wait_for(lambda: outcome.receipts_include(receipt), timeout=10.0), outcome.errors

    conn, alice = as_user("alice", "owned-app")
    assert alice.connected, alice.errors
    conn.subscribe(topic, id="s", ack="client-individual", headers={"activemq.subscriptionName": "orders"})
    send(conn, alice, "a1", 1)
    conn.disconnect()

    conn, bob = as_user("bob", "owned-app")
    assert refused(bob, conn, 'client id "owned-app" belongs to another user'), bob.errors

    b.restart(kill=True)
    conn, bob = as_user("bob", "owned-app")
    assert refused(bob, conn, "belongs to another user"), bob.errors
    # Bob publishes while she is away: her subscription keeps it.
    conn, bob = as_user("bob")
    conn.send(topic, body="for alice", receipt="p1", persistent="true")
    with bob.cond:
        assert bob.cond.wait_for(lambda: bob.receipts_include("p1"), timeout=10.0)
    conn.disconnect()
    conn, alice = as_user("alice", "owned-app")
    conn.subscribe(topic, id="s", ack="auto", headers={"activemq.subscriptionName": "orders"})
    with alice.cond:
        assert alice.cond.wait_for(lambda: alice.messages == ["for alice"], timeout=10.0), alice.messages
    conn.unsubscribe(id="s", headers={"activemq.subscriptionName": "orders"})
    conn.disconnect()
    assert wait_until(lambda: 'deletes durable subscription "orders" of client id "owned-app"' in b.log_text(),
                      timeout=5.0), "no audit line for the deletion"
    assert 'client id "owned-app" refused' in b.log_text(), "no audit line for the refusal"

    # No durable subscriptions left: bob may take the client id, and sends
    # with her producer id and the sequence numbers she uses next.
    conn, bob = as_user("bob", "owned-app")
    assert bob.connected, bob.errors
    send(conn, bob, "b2", 2)
    send(conn, bob, "b3", 3)
    conn.disconnect()
    conn, alice = as_user("alice", "owned-app")
    send(conn, alice, "a2", 2)
    send(conn, alice, "a1", 1)  # her own resend: still recognised
    b.restart(kill=True)
    conn, alice = as_user("alice", "owned-app")
    send(conn, alice, "a3", 3)
    conn.subscribe(queue, id="q", ack="auto")
    with alice.cond:
        assert alice.cond.wait_for(lambda: len(alice.messages) >= 5, timeout=10.0), alice.messages
    assert alice.messages == ["a1", "b2", "b3", "a2", "a3"], alice.messages
    conn.disconnect()
