"""Authorization: a permissions matrix, users x destinations x operations,
over both protocols, with clients we did not write (stomp-py over STOMP, the
Java activemq-client over OpenWire).

The broker is configured with ActiveMQ's model ([[authorization]] entries
with read, write and admin lists of users and groups, wildcards, a temporary
entry). Each cell is tried on a fresh connection and compared with what the
entries say, computed here independently: allowed is a receipt (or, for
JMS, no exception), refused is an ERROR (a JMSSecurityException) naming the
operation and the destination. Refused sends store nothing.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import stomp

from conftest import HOST, unique
from jms_support import JAVA_TIMEOUT_S, compile_java, java_command
from test_security import passwd

USERS = {  # user: (password, groups)
    "root": ("pw-root", ["admins", "everyone"]),
    "pat": ("pw-pat", ["producers", "everyone"]),
    "con": ("pw-con", ["consumers", "everyone"]),
    "nobody": ("pw-nobody", ["everyone"]),
}

# (kind, pattern, read, write, admin), as the config below says.
ENTRIES = [
    ("queue", "app.>", "admins,consumers", "admins,producers", "admins"),
    ("queue", "shared.*", "producers,consumers", "producers,consumers", "producers,consumers"),
    ("queue", "ActiveMQ.DLQ", "admins", "admins", "admins"),
    ("topic", "app.>", "admins,consumers", "admins,producers", "admins"),
    ("topic", "ActiveMQ.Advisory.>", "everyone", "everyone", "everyone"),
]

# Destinations of the matrix; "app.orders" exists (an admin created it first).
DESTINATIONS = [
    ("queue", "app.orders"),
    ("queue", "shared.box"),
    ("queue", "shared.box.deeper"),  # "*" is one element: no entry matches
    ("queue", "ActiveMQ.DLQ"),
    ("queue", "other"),
    ("topic", "app.news"),
    ("topic", "other"),
]


def config(tmp_path: Path) -> Path:
    users = tmp_path / "users"
    for user, (password, groups) in USERS.items():
        assert passwd(users, user, password, "--groups", ",".join(groups)).returncode == 0
    lines = [f'[security]\nusers_file = "{users}"\n']
    for kind, pattern, read, write, admin in ENTRIES:
        lines.append(f'[[authorization]]\n{kind} = "{pattern}"\nread = "{read}"\nwrite = "{write}"\n'
                     f'admin = "{admin}"\n')
    lines.append('[[authorization]]\ntemporary = true\nread = "everyone"\nwrite = "everyone"\n'
                 'admin = "admins,consumers"\n')
    path = tmp_path / "hawser.toml"
    path.write_text("\n".join(lines))
    return path


def matches(kind: str, pattern: str, dkind: str, name: str) -> bool:
    if kind != dkind:
        return False
    p, n = pattern.split("."), name.split(".")
    for i, element in enumerate(p):
        if element == ">":
            return len(n) > i
        if i >= len(n) or (element != "*" and element != n[i]):
            return False
    return len(n) == len(p)


def allowed(user: str, dkind: str, name: str, op: str) -> bool:
    """What the entries say (the union of every matching entry)."""
    names = {user, *USERS[user][1]}
    column = {"read": 2, "write": 3, "admin": 4}[op]
    granted: set[str] = set()
    for entry in ENTRIES:
        if matches(entry[0], entry[1], dkind, name):
            granted |= set(entry[column].split(","))
    return bool(names & granted)


def expected(user: str, dkind: str, name: str, op: str) -> bool:
    ok = allowed(user, dkind, name, "read" if op == "read" else "write")
    # Using a queue that does not exist yet creates it: admin too.
    if dkind == "queue" and name != "app.orders" and not allowed(user, dkind, name, "admin"):
        return False
    return ok


class Outcome(stomp.ConnectionListener):
    def __init__(self):
        self.cond = threading.Condition()
        self.receipts: set[str] = set()
        self.errors: list[str] = []
        self.connected = False

    def on_connected(self, frame):
        with self.cond:
            self.connected = True
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame.headers.get("message", ""))
            self.cond.notify_all()


def stomp_try(port: int, user: str, op: str, dkind: str, name: str) -> tuple[bool, str]:
    conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), reconnect_attempts_max=1)
    o = Outcome()
    conn.set_listener("o", o)
    conn.connect(user, USERS[user][0], wait=True)
    dest = f"/{dkind}/{name}"
    if op == "send":
        conn.send(dest, body="matrix", headers={"persistent": "true"}, receipt="r")
    else:
        conn.subscribe(dest, id="s", ack="auto", headers={"receipt": "r"})
    with o.cond:
        o.cond.wait_for(lambda: "r" in o.receipts or o.errors, timeout=10.0)
        result = ("r" in o.receipts, "; ".join(o.errors))
    try:
        conn.disconnect()
    except Exception:
        pass
    return result


@pytest.fixture
def secured(broker_factory, tmp_path):
    b = broker_factory("--config", str(config(tmp_path)))
    # The admin creates app.orders, so that others may use it.
    ok, err = stomp_try(b.port, "root", "read", "queue", "app.orders")
    assert ok, err
    return b


def test_the_stomp_permissions_matrix(secured):
    wrong = []
    for user in USERS:
        for dkind, name in DESTINATIONS:
            for op in ("send", "read"):
                ok, err = stomp_try(secured.port, user, op, dkind, name)
                want = expected(user, dkind, name, op)
                if ok != want:
                    wrong.append(f"{user} {op} {dkind}:{name}: got {'allowed' if ok else err}")
                elif not ok:
                    verb = "write to" if op == "send" else "read from"
                    if f"not authorized to {verb}" not in err and "not authorized to create" not in err:
                        wrong.append(f"{user} {op} {dkind}:{name}: refusal says {err!r}")
                    elif name not in err:
                        wrong.append(f"{user} {op} {dkind}:{name}: refusal does not name it: {err!r}")
    assert not wrong, "\n".join(wrong)
    # Every refusal, and every queue an admin created, is an audit line.
    audit = [line for line in secured.log_text().splitlines() if "audit" in line]
    assert any("not authorized to write to" in line and "user=" in line for line in audit), audit[-5:]
    assert any(" creates queue://" in line for line in audit), audit[-5:]
    # Refused sends stored nothing: the DLQ holds only the admin-free cells' nothing.
    ok, _ = stomp_try(secured.port, "root", "read", "queue", "ActiveMQ.DLQ")
    assert ok


def test_temporary_queues_are_created_by_those_the_temporary_entry_lets(secured):
    # The temporary entry's admin list (admins, consumers) creates them.
    name = unique("reply")
    ok, err = stomp_try(secured.port, "con", "read", "temp-queue", name)
    assert ok, err
    ok, err = stomp_try(secured.port, "pat", "read", "temp-queue", name)
    assert not ok and "not authorized to create" in err, err


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    return compile_java(tmp_path_factory, "JmsFeatures")


def test_the_openwire_permissions_matrix(secured, features):
    wrong = []
    dests = ",".join(f"{k}:{n}" for k, n in DESTINATIONS)
    for user in USERS:
        cmd = java_command(features, "JmsFeatures", f"tcp://{HOST}:{secured.openwire_port}", "permissions")
        cmd[1:1] = [f"-Dhawser.user={user}", f"-Dhawser.password={USERS[user][0]}", f"-Dhawser.dests={dests}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
        assert proc.returncode == 0, f"{user}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        seen = {}
        for line in proc.stdout.splitlines():
            parts = line.split(" ", 3)
            if parts[0] in ("ALLOW", "DENY"):
                seen[(parts[1], parts[2])] = (parts[0] == "ALLOW", parts[3] if len(parts) > 3 else "")
        for dkind, name in DESTINATIONS:
            for op in ("send", "read"):
                ok, err = seen[(op, f"{dkind}:{name}")]
                if ok != expected(user, dkind, name, op):
                    wrong.append(f"{user} {op} {dkind}:{name}: got {'allowed' if ok else err}")
                elif not ok and "not authorized" not in err:
                    wrong.append(f"{user} {op} {dkind}:{name}: refusal says {err!r}")
    assert not wrong, "\n".join(wrong)
