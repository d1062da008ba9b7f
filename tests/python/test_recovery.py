"""What the broker does with a damaged journal at start.

* A torn record at the tail of the last segment (a crash while writing) is cut
  off with a log line naming the file and offset; every confirmed message is
  still there.
* A corrupt record in any other segment stops the start with a message naming
  the file and the offset: nothing is skipped silently.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from conftest import unique

SEGMENT = 16 * 1024


def segments(broker) -> list[Path]:
    return sorted((broker.data_dir / "journal").glob("journal-*.log"))


SEGMENT_HEADER = 20
# Format 2 (docs/architecture.md): len u32 | synced u32 | payload crc u32 | header crc u32.
RECORD_HEADER = 16


def records_end(path: Path) -> int:
    """Where the last segment's records end. The file may run on past them: the
    journal allocates a segment's space ahead (zeros, which no record is)."""
    data = path.read_bytes()
    at = SEGMENT_HEADER
    while at + RECORD_HEADER <= len(data):
        header = data[at:at + RECORD_HEADER]
        if header == bytes(RECORD_HEADER):
            break
        (length,) = struct.unpack_from("<I", header)
        at += RECORD_HEADER + length
    return at


def fill(client, queue: str, n: int) -> None:
    for i in range(n):
        client.send(queue, f"message {i} " + "x" * 500, headers={"persistent": "true"})


def test_torn_tail_is_cut_and_confirmed_messages_survive(broker_factory, stomp_factory):
    broker = broker_factory("--segment-bytes", str(SEGMENT))
    queue = "/queue/" + unique("torn")
    producer = stomp_factory(broker)
    fill(producer, queue, 20)
    producer.close()
    broker.kill()

    # A crash mid-write: where the records end, a record header promising 1000
    # bytes, then only 10 of them.
    last = segments(broker)[-1]
    size = records_end(last)
    with open(last, "r+b") as f:
        f.seek(size)
        f.write(struct.pack("<IIII", 1000, 0, 0xDEADBEEF, 0xDEADBEEF) + b"0123456789")

    broker.start()
    log = broker.log_text()
    assert "cut torn tail" in log, log
    assert last.name in log and f"offset={size}" in log, log
    assert last.stat().st_size == size

    consumer = stomp_factory(broker)
    consumer.subscribe(queue, ack="client-individual")
    got = consumer.wait_messages(20, timeout=10)
    assert sorted(int(m.body.split()[1]) for m in got) == list(range(20))


def test_corruption_in_an_older_segment_stops_the_start(broker_factory, stomp_factory):
    broker = broker_factory("--segment-bytes", str(SEGMENT))
    queue = "/queue/" + unique("corrupt")
    producer = stomp_factory(broker)
    fill(producer, queue, 80)
    producer.close()
    assert broker.stop() == 0
    files = segments(broker)
    assert len(files) >= 3, files

    first = files[0]
    data = bytearray(first.read_bytes())
    at = len(data) // 2
    data[at] ^= 0xFF
    first.write_bytes(bytes(data))

    # The start reads the journal's checkpoint, not the older segments: it
    # meets the damage when it reads the messages back (the first batch is
    # read before it takes clients), and stops, naming the file, rather than
    # skip a message or serve past it.
    try:
        broker.start()
    except BaseException:
        pass
    code = broker.proc.wait(timeout=10)
    assert code != 0, "broker went on with a corrupt journal"
    log = broker.log_text()
    assert first.name in log, log
    m = re.search(r"at offset (\d+)", log)
    assert m, log
    assert int(m.group(1)) <= at, f"reported offset {m.group(1)} is after the damage at {at}"
