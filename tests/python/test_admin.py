"""The admin API, the command-line operations that read it, and ActiveMQ's
console XML pages (issue 23), driven by clients we did not write: stomp-py
sends, consumes and holds messages, and what an operator does through the
API must show in what those clients then get.

The XML pages are checked against the structure of ActiveMQ 5.17's pages
(``activemq-web-console/src/main/webapp/xml/*.jsp``: Debian's ``activemq``
package ships no web console to ask), parsed with a real XML parser."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import HAWSER_BIN, HOST, free_port, unique, wait_until
from test_security import passwd

MEMORY_LIMIT = 256 * 1024


class Api:
    """The admin API of one broker, as one user."""

    def __init__(self, port: int, auth: tuple[str, str] | None = None):
        self.port = port
        self.auth = auth
        self.token = None

    def call(self, method: str, path: str, body=None, token: bool = True) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        r = urllib.request.Request(f"http://{HOST}:{self.port}{path}", data=data, method=method)
        if self.auth:
            r.add_header("Authorization", "Basic " + base64.b64encode(":".join(self.auth).encode()).decode())
        if data is not None:
            r.add_header("Content-Type", "application/json")
        if method != "GET" and token:
            if self.token is None:
                self.token = self.call("GET", "/api/session")[1]["token"]
            r.add_header("X-Hawser-Token", self.token)
        try:
            with urllib.request.urlopen(r, timeout=15) as resp:
                text = resp.read().decode()
                kind = resp.headers.get("Content-Type", "")
                return resp.status, json.loads(text) if "json" in kind else text
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def ok(self, method: str, path: str, body=None):
        status, answer = self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    def row(self, destination: str) -> dict | None:
        rows = self.ok("GET", "/api/destinations")
        return next((r for r in rows if r["destination"] == destination), None)

    def wait_depth(self, destination: str, depth: int, timeout: float = 5.0) -> bool:
        # The registry is sampled once a second.
        return wait_until(lambda: (self.row(destination) or {}).get("depth") == depth, timeout=timeout, interval=0.1)


def q(name: str) -> str:
    return "/api/queues/" + urllib.parse.quote(name, safe="")


@pytest.fixture
def admin_broker(broker_factory):
    port = free_port()
    b = broker_factory("--admin", f"{HOST}:{port}", "--max-pending-memory-bytes", str(MEMORY_LIMIT),
                       "--max-redeliveries", "0")
    b.admin_port = port
    b.api = Api(port)
    return b


def test_purge_empties_a_queue_beyond_memory_and_keeps_what_a_consumer_holds(admin_broker, stomp_factory):
    b, api = admin_broker, admin_broker.api
    queue = unique("purge")
    p = stomp_factory(b)
    body = "x" * 1024
    # Eight times the memory limit: even with a consumer's read-ahead (a
    # batch of 500), most of it waits in the journal only.
    for i in range(2000):
        p.send(f"/queue/{queue}", f"{i:04d}{body}", receipt=(i % 100 == 99), headers={"persistent": "true"})
    c = stomp_factory(b)
    c.subscribe(f"/queue/{queue}", id="held", ack="client-individual", headers={"activemq.prefetchSize": "2"})
    held = c.wait_messages(2)
    assert len(held) == 2
    assert api.wait_depth(f"queue://{queue}", 1998)
    row = api.row(f"queue://{queue}")
    assert row["paged"] > 0, row

    assert api.ok("POST", q(queue) + "/purge") == {"messages": 1998, "left": 0}
    assert api.wait_depth(f"queue://{queue}", 0)
    # The two held are still the consumer's to acknowledge; after them comes
    # only what is sent after the purge, also across a restart.
    for m in held:
        c.ack(m)
    # (Closed before more is sent: what it took and did not acknowledge
    # would be dead-lettered, with --max-redeliveries 0.)
    c.close()
    for i in range(3):
        p.send(f"/queue/{queue}", f"after{i}", headers={"persistent": "true"})
    p.close()
    b.restart(kill=True)
    c2 = stomp_factory(b)
    c2.subscribe(f"/queue/{queue}", id="s", ack="auto")
    got = c2.wait_messages(3)
    assert [m.body for m in got] == ["after0", "after1", "after2"]
    assert wait_until(lambda: Api(b.admin_port).row(f"queue://{queue}")["depth"] == 0, timeout=5)
    assert len(c2.messages) == 3, [m.body[:8] for m in c2.messages]


def test_browse_move_copy_and_delete(admin_broker, stomp_factory):
    b, api = admin_broker, admin_broker.api
    src, dst = unique("src"), unique("dst")
    p = stomp_factory(b)
    for i in range(3):
        p.send(f"/queue/{src}", f"m{i}", headers={"persistent": "true", "tag": f"t{i}"})
    msgs = api.ok("GET", q(src) + "/messages")
    assert [m["body"] for m in msgs] == ["m0", "m1", "m2"]
    assert msgs[1]["properties"]["tag"] == "t1"
    api.ok("POST", q(src) + f"/messages/{msgs[1]['id']}/move", {"to": dst})
    api.ok("POST", q(src) + f"/messages/{msgs[0]['id']}/copy", {"to": dst})
    status, _ = api.call("POST", q(src) + f"/messages/{msgs[1]['id']}/move", {"to": dst})
    assert status == 404, "moved already"
    assert [m["body"] for m in api.ok("GET", q(src) + "/messages")] == ["m0", "m2"]
    moved = api.ok("GET", q(dst) + "/messages")
    assert [m["body"] for m in moved] == ["m1", "m0"]
    assert moved[0]["original_destination"] == f"queue://{src}"
    # The consumer of the target gets them, with their properties.
    c = stomp_factory(b)
    c.subscribe(f"/queue/{dst}", id="s", ack="auto")
    got = c.wait_messages(2)
    assert [(m.body, m.headers.get("tag")) for m in got] == [("m1", "t1"), ("m0", "t0")]
    # A queue with a consumer is not deleted; without one it is, messages and all.
    status, text = api.call("DELETE", q(dst))
    assert status == 409, text
    c.close()
    assert wait_until(lambda: api.call("DELETE", q(dst))[0] == 200, timeout=5)
    assert api.call("DELETE", q(src))[0] == 200
    assert api.row(f"queue://{src}") is None
    # Its messages went with it: what is sent now is the first a consumer gets.
    p.send(f"/queue/{src}", "fresh", headers={"persistent": "true"})
    c2 = stomp_factory(b)
    c2.subscribe(f"/queue/{src}", id="s", ack="auto")
    assert c2.wait_messages(1)[0].body == "fresh"


def test_retry_sends_dead_letters_back(admin_broker, stomp_factory):
    b, api = admin_broker, admin_broker.api
    queue = unique("retry")
    p = stomp_factory(b)
    p.send(f"/queue/{queue}", "poison", headers={"persistent": "true"})
    c = stomp_factory(b)
    c.subscribe(f"/queue/{queue}", id="s", ack="client-individual")
    (m,) = c.wait_messages(1)
    c.nack(m)  # --max-redeliveries 0: dead at once
    c.close()
    dlq = api.ok("GET", q("ActiveMQ.DLQ") + "/messages")
    assert any(d["body"] == "poison" and d["original_destination"] == f"queue://{queue}" for d in dlq)
    done = api.ok("POST", q("ActiveMQ.DLQ") + "/retry")
    assert done["messages"] >= 1
    c2 = stomp_factory(b)
    c2.subscribe(f"/queue/{queue}", id="s", ack="auto")
    (again,) = c2.wait_messages(1)
    assert again.body == "poison"
    assert "dlqDeliveryFailureCause" not in again.headers


def test_a_connection_is_listed_and_closed_by_an_admin(admin_broker, stomp_factory):
    b, api = admin_broker, admin_broker.api
    cid = unique("victim")
    victim = stomp_factory(b, client_id=cid)
    victim.subscribe(f"/queue/{unique('q')}", id="s", ack="auto")
    rows = api.ok("GET", "/api/connections")
    (row,) = [r for r in rows if r["client_id"] == cid]
    assert row["protocol"] == "stomp" and row["subscriptions"] == 1
    api.ok("DELETE", f"/api/connections/{row['id']}")
    err = victim.wait_error()
    assert err.headers.get("message") == "closed by an administrator"
    assert victim.wait_disconnected()
    assert wait_until(lambda: all(r["client_id"] != cid for r in api.ok("GET", "/api/connections")), timeout=5)
    assert api.call("DELETE", f"/api/connections/{row['id']}")[0] == 404


def test_changes_need_the_admin_role_and_the_session_token(broker_factory, stomp_factory, tmp_path):
    users = tmp_path / "users"
    for user, group in (("root", "admins"), ("viewer", "users")):
        assert passwd(users, user, f"pw-{user}", "--groups", group).returncode == 0
    port = free_port()
    b = broker_factory("--users-file", str(users), "--admin", f"{HOST}:{port}")
    queue = unique("guarded")
    p = stomp_factory(b, headers={"login": "root", "passcode": "pw-root"})
    p.send(f"/queue/{queue}", "keep me", headers={"persistent": "true"})
    admin, viewer = Api(port, ("root", "pw-root")), Api(port, ("viewer", "pw-viewer"))
    assert admin.ok("GET", "/api/session")["access"] == "admin"
    assert viewer.ok("GET", "/api/session")["access"] == "read"
    # A reader reads, and is refused every change.
    assert [m["body"] for m in viewer.ok("GET", q(queue) + "/messages")] == ["keep me"]
    status, text = viewer.call("POST", q(queue) + "/purge")
    assert status == 403 and "may read but not change" in text
    # An admin without the token (a cross-site form would have none) too.
    status, text = admin.call("POST", q(queue) + "/purge", token=False)
    assert status == 403 and "token" in text
    # No credentials, or wrong ones: 401.
    assert Api(port).call("GET", "/api/destinations")[0] == 401
    assert Api(port, ("root", "wrong")).call("GET", "/api/destinations")[0] == 401
    assert admin.ok("GET", q(queue) + "/messages")[0]["body"] == "keep me"
    assert admin.ok("POST", q(queue) + "/purge")["messages"] == 1
    log = b.log_text()
    assert "admin: purged 1 messages of queue://" in log and "user=root" in log


def hawser(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = {"HAWSER_PASSWORD": password} if password else {}
    import os
    return subprocess.run([HAWSER_BIN, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_the_command_line_operations_read_the_api(admin_broker, stomp_factory):
    b, api = admin_broker, admin_broker.api
    admin = f"{HOST}:{b.admin_port}"
    a, z = unique("cli-a"), unique("cli-z")
    out = hawser("queue", "create", z, "--admin", admin)
    assert out.returncode == 0, out.stderr
    p = stomp_factory(b)
    for i in range(4):
        p.send(f"/queue/{a}", f"c{i}", headers={"persistent": "true"})
    first = api.ok("GET", q(a) + "/messages")[0]["id"]
    out = hawser("move", a, str(first), z, "--admin", admin)
    assert out.returncode == 0 and "moved" in out.stdout, out.stderr
    out = hawser("purge", a, "--admin", admin)
    assert out.returncode == 0 and "purged 3 messages" in out.stdout, (out.stdout, out.stderr)
    assert [m["body"] for m in api.ok("GET", q(z) + "/messages")] == ["c0"]
    out = hawser("connections", "--admin", admin, "--json")
    rows = json.loads(out.stdout)
    assert any(r["protocol"] == "stomp" for r in rows)
    out = hawser("queue", "delete", z, "--admin", admin)
    assert out.returncode == 0, out.stderr
    out = hawser("purge", "no.such.queue." + unique(), "--admin", admin)
    assert out.returncode == 4 and "404" in out.stderr, (out.returncode, out.stderr)
    out = hawser("retry", "--admin", f"{HOST}:{free_port()}")
    assert out.returncode == 3


# ---------------------------------------------------------------------------
# ActiveMQ's console XML pages
# ---------------------------------------------------------------------------

# Elements and attributes of ActiveMQ 5.17's xml/queues.jsp, topics.jsp and
# subscribers.jsp (read from activemq-web-console's sources).
STATS = {"size", "consumerCount", "enqueueCount", "dequeueCount"}
SUBSCRIBER = {"clientId", "subscriptionName", "connectionId", "destinationName", "selector", "active"}
SUBSCRIBER_STATS = {"pendingQueueSize", "dispatchedQueueSize", "dispatchedCounter", "enqueueCounter",
                    "dequeueCounter"}


def page(port: int, name: str) -> ET.Element:
    r = urllib.request.urlopen(f"http://{HOST}:{port}/admin/xml/{name}", timeout=10)
    assert r.headers["Content-Type"] == "text/xml;charset=UTF-8"
    return ET.fromstring(r.read())


def test_the_xml_pages_have_activemqs_structure_and_the_apis_numbers(admin_broker, stomp_factory):
    b, api = admin_broker, admin_broker.api
    queue, topic = unique("xq") + "<&\"'>", unique("xt")
    p = stomp_factory(b)
    for i in range(3):
        p.send(f"/queue/{queue}", f"x{i}", headers={"persistent": "true"})
    cid = unique("xml-client")
    d = stomp_factory(b, client_id=cid)
    d.subscribe(f"/topic/{topic}", id="dsub", ack="client-individual",
                headers={"activemq.subscriptionName": "audit", "selector": "kind = 'a'"})
    off = stomp_factory(b, client_id=cid + "-off")
    off.subscribe(f"/topic/{topic}", id="d2", ack="client-individual", headers={"activemq.subscriptionName": "later"})
    off.disconnect()
    p.send(f"/topic/{topic}", "t1", headers={"persistent": "true", "kind": "a"})
    d.wait_messages(1)
    assert api.wait_depth(f"queue://{queue}", 3)

    queues = page(b.admin_port, "queues.jsp")
    assert queues.tag == "queues"
    mine = [e for e in queues if e.get("name") == queue]
    assert len(mine) == 1, ET.tostring(queues)[:500]
    (qe,) = mine
    assert qe.tag == "queue" and set(qe.attrib) == {"name"}
    assert [c.tag for c in qe] == ["stats", "feed"]
    stats = qe.find("stats")
    assert set(stats.attrib) == STATS
    row = api.row(f"queue://{queue}")
    assert (int(stats.get("size")), int(stats.get("enqueueCount"))) == (row["depth"], row["enqueued"]) == (3, 3)
    feed = qe.find("feed")
    assert [c.tag for c in feed] == ["atom", "rss"]
    assert feed.find("atom").text == f"queueBrowse/{queue}?view=rss&feedType=atom_1.0"
    assert feed.find("rss").text == f"queueBrowse/{queue}?view=rss&feedType=rss_2.0"

    topics = page(b.admin_port, "topics.jsp")
    assert topics.tag == "topics"
    (te,) = [e for e in topics if e.get("name") == topic]
    assert te.tag == "topic" and [c.tag for c in te] == ["stats"]
    assert set(te.find("stats").attrib) == STATS
    assert int(te.find("stats").get("consumerCount")) >= 1

    subs = page(b.admin_port, "subscribers.jsp")
    assert subs.tag == "subscribers"
    by_name = {s.get("subscriptionName"): s for s in subs if s.get("destinationName") == topic}
    assert set(by_name) == {"audit", "later"}, ET.tostring(subs)[:800]
    for s in by_name.values():
        assert s.tag == "subscriber" and set(s.attrib) == SUBSCRIBER
        assert [c.tag for c in s] == ["stats"] and set(s.find("stats").attrib) == SUBSCRIBER_STATS
    active, offline = by_name["audit"], by_name["later"]
    assert (active.get("active"), active.get("clientId"), active.get("selector")) == ("yes", cid, "kind = 'a'")
    assert active.find("stats").get("dispatchedCounter") == "1"
    assert (offline.get("active"), offline.get("connectionId")) == ("no", "NOTSET")
    assert offline.find("stats").get("pendingQueueSize") == "1"


def test_the_cluster_view_shows_master_and_standby_and_the_takeover(tmp_path):
    from test_stomppy_master_slave import SharedBroker, wait_for_master

    data = tmp_path / "shared"
    pair = [SharedBroker(tmp_path / n, data, n) for n in ("M", "S")]
    for me, other in ((pair[0], pair[1]), (pair[1], pair[0])):
        config = me.workdir / "hawser.toml"
        config.write_text(f'[admin]\npeers = ["{HOST}:{other.status_port}"]\n')
        me.extra = ("--config", str(config))
    try:
        pair[0].start()
        assert wait_for_master(pair[:1], timeout=15.0) is pair[0]
        pair[1].start()
        m, s = Api(pair[0].status_port), Api(pair[1].status_port)
        view = m.ok("GET", "/api/cluster")
        assert view["this"]["role"] == "master"
        epoch = view["this"]["epoch"]
        assert [p["status"]["role"] for p in view["peers"]] == ["slave"]
        assert s.ok("GET", "/api/cluster")["peers"][0]["status"]["epoch"] == epoch
        # The master goes; the standby takes over in a later epoch, and its
        # timeline shows it; the old master is reported unreachable.
        pair[0].kill()
        assert wait_until(lambda: s.ok("GET", "/api/cluster")["this"]["role"] == "master", timeout=15.0)
        after = s.ok("GET", "/api/cluster")
        assert after["this"]["epoch"] > epoch
        assert [(e["role"]) for e in after["events"]][-2:] == ["slave", "master"]
        assert after["events"][-1]["epoch"] == after["this"]["epoch"]
        # Changes only: a standby's polls that found the same role add none.
        changes = [(e["role"], e["epoch"]) for e in after["events"]]
        assert all(a != b for a, b in zip(changes, changes[1:])), changes
        assert after["peers"][0]["status"] is None and after["peers"][0]["error"]
    finally:
        for b in pair:
            b.stop()


def test_a_client_that_reads_nothing_is_still_closed(broker_factory, stomp_factory):
    """A client whose socket is full (it stopped reading) cannot take the
    ERROR: the broker cuts it off after a grace period, and what it held
    goes back to the queue."""
    import socket

    port = free_port()
    b = broker_factory("--admin", f"{HOST}:{port}")
    api = Api(port)
    queue = unique("stuck")
    p = stomp_factory(b)
    body = "x" * (100 * 1024)
    for i in range(100):
        p.send(f"/queue/{queue}", f"{i:03d}{body}", receipt=(i % 10 == 9), headers={"persistent": "true"})
    cid = unique("deaf")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    try:
        sock.connect((HOST, b.port))
        sock.sendall(f"CONNECT\naccept-version:1.2\nhost:localhost\nclient-id:{cid}\n\n\0".encode())
        assert sock.recv(1).startswith(b"C")
        sock.sendall(f"SUBSCRIBE\nid:s\ndestination:/queue/{queue}\nack:client-individual\n"
                     "activemq.prefetchSize:1000\n\n\0".encode())
        # It reads nothing more: the broker's writes to it stall.
        assert wait_until(lambda: (api.row(f"queue://{queue}") or {}).get("inflight") == 100, timeout=10)
        (row,) = [r for r in api.ok("GET", "/api/connections") if r["client_id"] == cid]
        api.ok("DELETE", f"/api/connections/{row['id']}")
        assert wait_until(lambda: all(r["client_id"] != cid for r in api.ok("GET", "/api/connections")),
                          timeout=10), "the stuck connection is gone"
    finally:
        sock.close()
    c = stomp_factory(b)
    c.subscribe(f"/queue/{queue}", id="s", ack="auto")
    got = c.wait_messages(100, timeout=20)
    assert sorted(int(m.body[:3]) for m in got) == list(range(100))
