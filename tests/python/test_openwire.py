"""OpenWire: ActiveMQ's own Java client (Debian's libactivemq-java, activemq-client
5.17) against Hawser, unchanged: tests/java/JmsSmoke.java, compiled once per run.
STOMP and JMS clients exchange messages with ActiveMQ's mapping; bad bytes on the
OpenWire port close that connection only."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import HOST, RawClient, free_port, wait_until
from jms_support import JAVA_TIMEOUT_S, compile_java, java_command


@pytest.fixture(scope="session")
def jms(tmp_path_factory) -> Path:
    """The compiled JMS program's class directory."""
    return compile_java(tmp_path_factory, "JmsSmoke", "JmsXa")


def run_jms(jms: Path, url: str, check: str, *args: str, program: str = "JmsSmoke") -> str:
    proc = subprocess.run(java_command(jms, program, url, check, *args),
                          capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    assert proc.returncode == 0, f"{check} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "FAIL" not in proc.stdout
    return proc.stdout


def url(broker) -> str:
    return f"tcp://{HOST}:{broker.openwire_port}"


def test_jms_persistent_text_messages_with_typed_properties(broker, jms):
    out = run_jms(jms, url(broker), "send-receive")
    assert "ok nothing more" in out


def test_jms_client_acknowledge_redelivers_what_was_not_acknowledged(broker, jms):
    out = run_jms(jms, url(broker), "ack-modes")
    assert "ok acknowledged message gone" in out


def test_the_articles_failover_uri(broker, jms):
    out = run_jms(jms, f"failover:({url(broker)})?randomize=false", "send-receive")
    assert "ok nothing more" in out


def test_request_reply_through_a_temporary_queue(broker, jms):
    out = run_jms(jms, url(broker), "request-reply")
    assert "ok temporary queue deleted" in out


def test_a_responder_that_connects_after_the_temporary_queue_exists_can_reply(broker, jms):
    out = run_jms(jms, url(broker), "late-responder")
    assert "ok reply received" in out


def test_a_queue_browser_sees_without_taking(broker, jms):
    out = run_jms(jms, url(broker), "browse")
    assert "ok browsed all three, then the browse ended" in out


def test_prefetch_0_pulls_each_message(broker, jms):
    out = run_jms(jms, url(broker), "pull")
    assert "ok nothing was held for the puller" in out


def test_message_groups_stay_with_one_consumer(broker, jms):
    out = run_jms(jms, url(broker), "groups")
    assert "ok all grouped messages received: 30" in out


def test_a_send_to_a_composite_destination_reaches_every_part(broker, stomp_factory, jms):
    out = run_jms(jms, url(broker), "composite")
    assert "ok the topic's subscriber got its copy" in out
    # STOMP spells it ActiveMQ's way too.
    listener = stomp_factory(broker)
    listener.subscribe("/queue/stomp.comp.a", receipt=True)
    listener.subscribe("/topic/stomp.comp.t", receipt=True)
    stomp_factory(broker).send("/queue/stomp.comp.a,/topic/stomp.comp.t", "both")
    got = listener.wait_messages(2)
    assert sorted(m.headers["destination"] for m in got) == ["/queue/stomp.comp.a", "/topic/stomp.comp.t"]


def test_stomp_and_jms_exchange_messages(broker, raw_factory, stomp_factory, jms):
    # Without content-length (which stomp-py always sends): ActiveMQ's rule makes it text.
    raw = raw_factory(broker)
    raw.connect("1.2")
    raw.send_frame("SEND", {"destination": "/queue/interop.to-jms", "color": "blue",
                            "correlation-id": "c1", "persistent": "true", "receipt": "r1"},
                   b"from stomp", content_length=None)
    receipt = raw.read_frame(5.0)
    assert receipt is not None and receipt.command == "RECEIPT", receipt
    out = run_jms(jms, url(broker), "interop")
    assert "ok answered" in out
    stomp = stomp_factory(broker)
    stomp.subscribe("/queue/interop.to-stomp")
    [got] = stomp.wait_messages(1)
    assert got.body == "from jms"
    assert got.headers["n"] == "7", got.headers
    assert got.headers["correlation-id"] == "c2", got.headers


def test_garbage_on_the_openwire_port_closes_that_connection_only(broker, stomp_factory, jms):
    with socket.create_connection((HOST, broker.openwire_port), timeout=10) as s:
        # A size prefix of 2 GiB: refused before anything is read or allocated.
        s.sendall(b"\x7f\xff\xff\xff\x01junk")
        s.settimeout(10)
        received = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    assert received, "the broker's WireFormatInfo came first"
    # Everyone else goes on.
    stomp = stomp_factory(broker)
    stomp.subscribe("/queue/after-garbage")
    stomp.send("/queue/after-garbage", "still here")
    assert [m.body for m in stomp.wait_messages(1)] == ["still here"]
    run_jms(jms, url(broker), "send-receive")


def test_activemqs_command_line_producer_and_consumer(broker, stomp_factory):
    """Debian's `activemq producer` and `activemq consumer` (ActiveMQ's own tools)."""
    if shutil.which("activemq") is None:
        pytest.fail("ActiveMQ's command-line tools are needed (.ci/run installs activemq)")
    queue = "cli.tools"
    for tool in ("producer", "consumer"):
        proc = subprocess.run(
            ["activemq", tool, "--brokerUrl", url(broker), "--destination", f"queue://{queue}",
             "--messageCount", "10"],
            capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
        assert proc.returncode == 0, f"activemq {tool}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        if tool == "producer":
            # Ten text messages, as the tool writes them, in order.
            stomp = stomp_factory(broker)
            stomp.subscribe(f"/queue/{queue}", ack="client-individual", headers={"activemq.prefetchSize": "10"})
            got = stomp.wait_messages(10)
            assert [m.body for m in got] == [f"test message: {i}" for i in range(10)]
            stomp.drop()  # unacknowledged: back to the queue for the consumer
    # `activemq browse` (its option is --amqurl) lists what is there: nothing.
    proc = subprocess.run(["activemq", "browse", "--amqurl", url(broker), queue],
                          capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    assert proc.returncode == 0, f"activemq browse:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "test message" not in proc.stdout
    # The consumer took all ten.
    check = stomp_factory(broker)
    check.subscribe(f"/queue/{queue}", receipt=True)
    check.send(f"/queue/{queue}", "marker")
    assert [m.body for m in check.wait_messages(1)] == ["marker"]


def test_a_connection_may_open_its_first_session_long_after_connecting(broker_factory, jms, tmp_path):
    """The connect deadline covers the WireFormatInfo exchange only: a JMS client
    sends its ConnectionInfo with its first session, whenever that is."""
    config = tmp_path / "short.toml"
    config.write_text("[openwire]\nconnect_timeout_ms = 500\n")
    b = broker_factory("--config", str(config))
    out = run_jms(jms, url(b), "late-session")
    assert "ok a session opened long after the connection works" in out


def test_connections_of_both_protocols_share_one_engine_identity(broker_factory, stomp_factory, jms):
    """Each session hands the engine who it is (protocol, address, client id):
    /status counts connections by protocol, and a client id held over OpenWire
    is refused to a STOMP client, as within one protocol."""
    status_port = free_port()
    b = broker_factory("--status", f"{HOST}:{status_port}")

    def status():
        with urllib.request.urlopen(f"http://{HOST}:{status_port}/status", timeout=5) as r:
            return json.load(r)

    stomp = stomp_factory(b)
    java = subprocess.Popen(java_command(jms, "JmsSmoke", url(b), "hold"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert java.stdout.readline().strip() == "connected"
        assert status()["connections"] == {"openwire": 1, "stomp": 1}
        raw = socket.create_connection((HOST, b.port), timeout=10)
        raw.sendall(b"CONNECT\naccept-version:1.2\nhost:h\nclient-id:held\n\n\0")
        reply = raw.recv(4096)
        raw.close()
        assert reply.startswith(b"ERROR"), reply
        assert b"held" in reply, reply
    finally:
        java.stdin.close()
        assert java.wait(timeout=JAVA_TIMEOUT_S) == 0
    assert wait_until(lambda: status()["connections"] == {"stomp": 1}, timeout=10), status()
    stomp.disconnect()


def test_xa_two_phase_one_phase_rollback_and_read_only(broker, jms):
    out = run_jms(jms, url(broker), "phases", program="JmsXa")
    assert "ok two-phase commit publishes it" in out
    assert "ok the rollback gives the message back" in out


def test_prepared_xa_transactions_survive_a_kill_and_are_resolved_by_a_new_connection(broker, raw_factory, jms):
    """Two branches prepared, the transaction manager's process gone, the broker
    killed with SIGKILL: after the restart recover lists both; one commits, one
    rolls back, and the queue holds exactly what that means."""
    raw = raw_factory(broker)
    raw.connect("1.2")
    for body in ("taken", "returned"):
        # Without content-length: text messages for the JMS side.
        raw.send_frame("SEND", {"destination": "/queue/xa.restart", "persistent": "true",
                                "receipt": body}, body.encode(), content_length=None)
        receipt = raw.read_frame(5.0)
        assert receipt is not None and receipt.command == "RECEIPT", receipt
    out = run_jms(jms, url(broker), "prepare", program="JmsXa")
    assert "ok roll-me-back prepared" in out
    broker.restart(kill=True)
    out = run_jms(jms, url(broker), "resolve", program="JmsXa")
    assert "ok nothing is left prepared" in out


def test_a_failover_client_given_one_broker_learns_its_peer_from_connection_control(broker_factory, tmp_path, jms):
    """ActiveMQ's updateClusterClients: two brokers of one shared store advertise
    both OpenWire addresses. A client given only the first (`failover:(A)`) is
    told of B in a ConnectionControl; when A is killed and B takes the store
    over, the client reconnects to B by itself and nothing is lost."""
    ports = [free_port(), free_port()]
    advertise = ",".join(f"tcp://{HOST}:{p}" for p in ports)
    store = tmp_path / "shared"
    pair = []
    for port in ports:
        b = broker_factory("--ha", "shared-store", "--ha-poll-ms", "20", "--advertise-openwire", advertise,
                           start=False)
        b.data_dir = store
        b.openwire_port = port
        pair.append(b)
    a, b = pair
    a.start()
    java = subprocess.Popen(
        java_command(jms, "JmsSmoke",
                     f"failover:(tcp://{HOST}:{a.openwire_port})?randomize=false&initialReconnectDelay=50",
                     "learn-peers"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert java.stdout.readline().strip() == "ready"
        a.kill()
        b.start()
        java.stdin.write("go\n")
        java.stdin.flush()
        out, _ = java.communicate(timeout=JAVA_TIMEOUT_S)
        assert java.returncode == 0, out
        assert "ok both messages arrive" in out, out
    finally:
        if java.poll() is None:
            java.kill()
            java.wait(timeout=10)


def test_rebalance_clients_moves_a_failover_client_to_the_first_advertised_broker(broker_factory, jms):
    """ActiveMQ's rebalanceClusterClients: broker A advertises B first and asks
    for a rebalance. A client given only A (`failover:(A)?randomize=false`)
    moves to B by itself; what it sends then is on B. Without the flag it
    stays (test_a_failover_client_given_one_broker_learns_its_peer...)."""
    b = broker_factory()
    a_port = free_port()
    a = broker_factory("--advertise-openwire", f"tcp://{HOST}:{b.openwire_port},tcp://{HOST}:{a_port}",
                       "--rebalance-clients", start=False)
    a.openwire_port = a_port
    a.start()
    out = run_jms(jms, f"failover:(tcp://{HOST}:{a.openwire_port})?randomize=false&initialReconnectDelay=50",
                  "rebalanced", str(b.openwire_port))
    assert f"ok moved to the broker on port {b.openwire_port}" in out, out
    c = RawClient(b.port)
    try:
        c.connect("1.2")
        c.send_frame("SUBSCRIBE", {"destination": "/queue/jms.rebalance", "id": "s", "ack": "auto"})
        assert c.expect("MESSAGE").body == b"rebalanced"
    finally:
        c.close()


def test_a_producer_with_a_window_gets_its_room_back(broker, jms):
    """jms.producerWindowSize: the client counts the bytes of its asynchronous
    sends and waits at the window until the broker's ProducerAcks give them
    back; without them the 65th send of 1 KiB would wait forever."""
    out = run_jms(jms, f"{url(broker)}?jms.producerWindowSize=65536", "producer-window")
    assert "ok all of them arrive (2000)" in out
