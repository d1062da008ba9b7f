"""What one client can make the broker hold (issue 17): every such thing has a
named limit, and reaching it slows or refuses that client only.

Each test shows the limit from the client's side (an ERROR frame, a socket the
broker stops reading) and then that another client is still served.
"""

from __future__ import annotations

import socket
import time

from conftest import HOST, encode_frame, unique, wait_until


def served(raw_factory, broker) -> None:
    """A fresh client can still send and receive."""
    q = "/queue/" + unique("alive")
    c = raw_factory(broker)
    c.connect("1.2")
    c.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "receipt": "s"})
    c.expect_receipt("s")
    c.send_frame("SEND", {"destination": q, "receipt": "p"}, b"still here")
    c.expect_receipt("p")
    assert c.expect("MESSAGE").body == b"still here"


def test_a_client_that_does_not_read_is_not_read_from(broker_factory, raw_factory):
    # Every SEND asks for a RECEIPT that the client never reads. Were the broker
    # to keep reading, it would queue every receipt in memory; it stops reading
    # once max_outbound_frames are waiting, so the client's writes block.
    broker = broker_factory("--max-outbound-frames", "1000")
    s = socket.create_connection((HOST, broker.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(encode_frame("CONNECT", {"accept-version": "1.2", "host": "x"}))
    frame = encode_frame("SEND", {"destination": "/queue/" + unique("unread"), "receipt": "r"})
    batch = frame * 1000
    total = 2_000_000
    s.settimeout(2.0)
    sent = 0
    try:
        for _ in range(total // 1000):
            s.sendall(batch)
            sent += 1000
    except socket.timeout:
        pass
    assert sent < total // 2, f"the broker read {sent} frames from a client that reads nothing"
    served(raw_factory, broker)
    s.close()


def test_heart_beat_values_that_would_overflow_are_refused(broker, raw_factory):
    for value in ("18446744073709551615,0", "0,18446744073709551615", "86400001,0"):
        c = raw_factory(broker)
        c.send_frame("CONNECT", {"accept-version": "1.2", "host": "x", "heart-beat": value})
        error = c.expect_error_and_close()
        assert "heart-beat" in error.header("message"), error
    served(raw_factory, broker)


def test_frames_before_connect_are_small(broker, raw_factory):
    c = raw_factory(broker)
    c.send_frame("CONNECT", {"accept-version": "1.2", "host": "x", "padding": "p" * 8000,
                             "more": "m" * 8000, "even-more": "e" * 8000} | {f"h{i}": "v" * 9000 for i in range(8)},
                 tolerant=True)
    error = c.expect_error_and_close()
    assert "frame exceeds 65536 bytes" in error.header("message"), error
    # After CONNECT the full limit applies: the same bytes in a SEND are fine.
    ok = raw_factory(broker)
    ok.connect("1.2")
    q = "/queue/" + unique("big")
    ok.send_frame("SEND", {"destination": q, "receipt": "r"}, b"x" * 200_000)
    ok.expect_receipt("r")


def test_a_silent_connection_without_heart_beats_is_closed(broker_factory, raw_factory):
    broker = broker_factory("--idle-timeout-ms", "600")
    quiet = raw_factory(broker)
    quiet.connect("1.2", headers={"heart-beat": "0,0"})
    started = time.monotonic()
    error = quiet.expect_error_and_close(timeout=5)
    assert "idle" in error.header("message"), error
    assert time.monotonic() - started >= 0.5
    # One that keeps talking stays.
    talker = raw_factory(broker)
    talker.connect("1.2", headers={"heart-beat": "0,0"})
    for i in range(6):
        time.sleep(0.2)
        talker.send_frame("BEGIN", {"transaction": f"t{i}", "receipt": f"b{i}"})
        talker.expect_receipt(f"b{i}")
        talker.send_frame("ABORT", {"transaction": f"t{i}"})


def test_temporary_destinations_per_connection_are_bounded(broker, raw_factory):
    c = raw_factory(broker)
    c.connect("1.2")
    for i in range(100):
        c.send_frame("SUBSCRIBE", {"destination": f"/temp-queue/t{i}", "id": f"s{i}"})
    c.send_frame("SUBSCRIBE", {"destination": "/temp-queue/one-too-many", "id": "x", "receipt": "x"})
    error = c.expect_error_and_close()
    assert "temporary destinations per connection" in error.header("message"), error
    served(raw_factory, broker)


def test_a_send_to_a_temporary_queue_that_does_not_exist_is_refused(broker, raw_factory):
    # A reply to a temporary queue whose connection is gone (ActiveMQ refuses
    # these too): it would otherwise create a queue nobody can ever consume.
    replier = raw_factory(broker)
    replier.connect("1.2")
    replier.send_frame("SEND", {"destination": "/remote-temp-queue/hawser-tmp-999-nobody", "receipt": "late"},
                       b"late reply")
    error = replier.expect_error_and_close()
    assert "does not exist" in error.header("message"), error
    served(raw_factory, broker)


def test_browsers_count_as_subscriptions(broker_factory, raw_factory, tmp_path):
    config = tmp_path / "hawser.toml"
    config.write_text("[limits]\nmax_subscriptions_per_connection = 2\n")
    broker = broker_factory("--config", str(config))
    q = "/queue/" + unique("browsed")
    c = raw_factory(broker)
    c.connect("1.2")
    for i in range(2):
        c.send_frame("SUBSCRIBE", {"destination": q, "id": f"b{i}", "browser": "true"})
        end = c.expect("MESSAGE")
        assert end.header("browser") == "end"
    c.send_frame("SUBSCRIBE", {"destination": q, "id": "third", "receipt": "t"})
    error = c.expect_error_and_close()
    assert "subscriptions per connection" in error.header("message"), error
    served(raw_factory, broker)


def test_prefetch_is_capped(broker_factory, raw_factory, tmp_path):
    config = tmp_path / "hawser.toml"
    config.write_text("[limits]\nmax_prefetch = 3\n")
    broker = broker_factory("--config", str(config))
    q = "/queue/" + unique("capped")
    p = raw_factory(broker)
    p.connect("1.2")
    for i in range(6):
        p.send_frame("SEND", {"destination": q, "receipt": f"m{i}"}, f"m{i}".encode())
        p.expect_receipt(f"m{i}")
    c = raw_factory(broker)
    c.connect("1.2")
    c.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "ack": "client-individual",
                               "activemq.prefetchSize": "1000"})
    first = [c.expect("MESSAGE") for _ in range(3)]
    # A browser shows what the capped consumer could not take: three still wait.
    b = raw_factory(broker)
    b.connect("1.2")
    b.send_frame("SUBSCRIBE", {"destination": q, "id": "b", "browser": "true"})
    waiting = [b.expect("MESSAGE") for _ in range(4)]
    assert [f.body for f in waiting[:3]] == [b"m3", b"m4", b"m5"]
    assert waiting[3].header("browser") == "end"
    c.send_frame("ACK", {"id": first[0].header("ack")})
    assert c.expect("MESSAGE").body == b"m3"


def test_a_browser_is_sent_at_most_max_browse_messages(broker_factory, raw_factory, tmp_path):
    config = tmp_path / "hawser.toml"
    config.write_text("[limits]\nmax_browse_messages = 5\n")
    broker = broker_factory("--config", str(config))
    q = "/queue/" + unique("many")
    p = raw_factory(broker)
    p.connect("1.2")
    for i in range(8):
        p.send_frame("SEND", {"destination": q, "receipt": f"m{i}"}, f"m{i}".encode())
        p.expect_receipt(f"m{i}")
    b = raw_factory(broker)
    b.connect("1.2")
    b.send_frame("SUBSCRIBE", {"destination": q, "id": "b", "browser": "true"})
    frames = [b.expect("MESSAGE") for _ in range(6)]
    assert [f.body for f in frames[:5]] == [f"m{i}".encode() for i in range(5)]
    assert frames[5].header("browser") == "end"


def test_producer_ids_per_connection_are_bounded(broker_factory, raw_factory, tmp_path):
    config = tmp_path / "hawser.toml"
    config.write_text("[limits]\nmax_producers_per_connection = 3\n")
    broker = broker_factory("--config", str(config))
    q = "/queue/" + unique("producers")
    c = raw_factory(broker)
    c.connect("1.2")
    for i in range(3):
        c.send_frame("SEND", {"destination": q, "hawser-producer": f"p{i}", "hawser-seq": "1",
                              "receipt": f"r{i}"}, b"x")
        c.expect_receipt(f"r{i}")
    c.send_frame("SEND", {"destination": q, "hawser-producer": "p3", "hawser-seq": "1", "receipt": "r3"}, b"x")
    error = c.expect_error_and_close()
    assert "producer ids per connection" in error.header("message"), error
    served(raw_factory, broker)


def test_a_transaction_too_large_for_one_store_record_is_refused_at_the_send(broker_factory, raw_factory):
    # 10 MiB frames, 16 MiB records: the second 9 MiB send of one transaction
    # could not be committed, so it is refused when it arrives.
    broker = broker_factory()
    q = "/queue/" + unique("bigtx")
    c = raw_factory(broker)
    c.connect("1.2")
    c.send_frame("BEGIN", {"transaction": "t"})
    c.send_frame("SEND", {"destination": q, "transaction": "t", "persistent": "true", "receipt": "a"},
                 b"a" * (9 << 20))
    c.expect_receipt("a", timeout=10)
    c.send_frame("SEND", {"destination": q, "transaction": "t", "persistent": "true", "receipt": "b"},
                 b"b" * (9 << 20))
    error = c.expect_error_and_close(timeout=10)
    assert "too large" in error.header("message"), error
    served(raw_factory, broker)
