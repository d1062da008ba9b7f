#!/usr/bin/env python3
"""S1 and S3 over TLS against plain TCP, Hawser beside ActiveMQ 5.17.

Usage: bench/tls.py [--hawser target/release/hawser] [--brokers hawser,activemq]
                    [--scenarios S1,S3] [--seconds 8] [--warmup 4] [--json out.json]

A CA and a server certificate (for 127.0.0.1) are made with openssl in a
temporary directory. Hawser serves STOMP over TLS with `--stomp-ssl` and the
PEM files; ActiveMQ 5.17 with a `stomp+ssl://` connector and the same
certificate as a PKCS#12 keystore (its `sslContext`). Each broker runs each
scenario over TCP and over TLS with the same `hawser bench` command (the
load generator's TLS: rustls, `--broker ssl://...`, the CA trusted with
`--ca-file`), in the same run, after a warm-up; the broker's CPU per message
is read from /proc. Everything listens on 127.0.0.1 and every process is
stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402

HOST = compare.HOST


def make_pki(d: Path) -> None:
    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=d, check=True, capture_output=True, timeout=60)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker", "-keyout", "broker.key",
        "-out", "broker.csr")
    (d / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "broker.ext", "-out", "broker.pem")
    run("openssl", "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-name", "broker",
        "-out", "broker.p12", "-passout", "pass:changeit")


class HawserTls(compare.Hawser):
    def __init__(self, tmp: Path, binary: str, pki: Path):
        super().__init__(tmp, binary)
        self.pki = pki
        self.ssl_port = compare.free_port()

    def command(self):
        cmd, env = super().command()
        return cmd + ["--stomp-ssl", f"{HOST}:{self.ssl_port}", "--tls-cert", str(self.pki / "broker.pem"),
                      "--tls-key", str(self.pki / "broker.key")], env


class ActiveMQTls(compare.ActiveMQ):
    def __init__(self, tmp: Path, pki: Path):
        super().__init__(tmp)
        self.pki = pki
        self.ssl_port = compare.free_port()

    def command(self):
        cmd, env = super().command()
        conf = self.tmp / "conf" / "activemq.xml"
        xml = conf.read_text()
        ssl = (f'<sslContext><sslContext keyStore="file:{self.pki / "broker.p12"}" keyStorePassword="changeit" '
               f'keyStoreType="pkcs12"/></sslContext>\n    <persistenceAdapter>')
        xml = xml.replace("<persistenceAdapter>", ssl, 1)
        connector = (f'<transportConnector name="stomp" uri="stomp://{HOST}:{self.port}"/>\n      '
                     f'<transportConnector name="stomp+ssl" uri="stomp+ssl://{HOST}:{self.ssl_port}"/>')
        xml = xml.replace(f'<transportConnector name="stomp" uri="stomp://{HOST}:{self.port}"/>', connector, 1)
        conf.write_text(xml)
        return cmd, env


def bench(hawser: str, broker, url: str, sc, seconds: float, pki: Path, destination: str) -> dict:
    cmd = [hawser, "bench", "--broker", url, "--ca-file", str(pki / "ca.pem"), "--destination", destination,
           *sc.flags(seconds), *broker.bench_flags(), "--scenario", sc.id]
    return compare.run_bench_command(cmd, seconds, broker.pids())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default="target/release/hawser")
    ap.add_argument("--brokers", default="hawser,activemq")
    ap.add_argument("--scenarios", default="S1,S3")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=4)
    ap.add_argument("--json")
    a = ap.parse_args()
    a.hawser = str(Path(a.hawser).resolve())
    results: dict = {"command": "python3 bench/tls.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
                     "runs": []}
    with tempfile.TemporaryDirectory(prefix="hawser-tls-") as t:
        tmp = Path(t)
        pki = tmp / "pki"
        pki.mkdir()
        make_pki(pki)
        for kind in a.brokers.split(","):
            d = tmp / kind
            d.mkdir()
            b = HawserTls(d, a.hawser, pki) if kind == "hawser" else ActiveMQTls(d, pki)
            try:
                b.start()
                time.sleep(1)
                for sid in a.scenarios.split(","):
                    sc = compare.SCENARIOS[sid]
                    for transport, url in (("tcp", f"tcp://{HOST}:{b.port}"), ("tls", f"ssl://{HOST}:{b.ssl_port}")):
                        dest = f"/queue/tls.{sid}.{transport}"
                        bench(a.hawser, b, url, sc, a.warmup, pki, dest + ".warm")
                        r = bench(a.hawser, b, url, sc, a.seconds, pki, dest)
                        r.update(broker=kind, scenario=sid, transport=transport)
                        results["runs"].append(r)
                        print(json.dumps(r), flush=True)
            finally:
                b.stop()
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
