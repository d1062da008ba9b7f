"""TLS listeners (stomp+ssl://, ssl://) with clients we did not write: stomp-py
and the Java activemq-client with a truststore built by ``keytool``.

The test makes its own CA and certificates with ``openssl``. Checked: a
client that trusts the CA and checks the name talks to the broker; mutual
TLS lets in a client certificate signed by the configured CA and refuses one
from an unknown CA, and one without; a plain-text client on the TLS port
gets nothing; SIGHUP swaps the certificate for new connections.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import stomp

from conftest import HOST, free_port, unique, wait_until
from jms_support import JAVA_TIMEOUT_S, compile_java, java_command


def run(*cmd: str, cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"


def make_ca(d: Path, name: str) -> None:
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def make_cert(d: Path, ca: str, name: str, server: bool, san: str = "IP:127.0.0.1,DNS:localhost") -> None:
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n" if server
                   else "extendedKeyUsage=clientAuth\n")
    run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", ext.name, "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "rogue-ca")
    make_cert(d, "ca", "broker", server=True)
    make_cert(d, "ca", "broker2", server=True)
    make_cert(d, "ca", "named", server=True, san="DNS:localhost")
    make_cert(d, "ca", "client", server=False)
    make_cert(d, "rogue-ca", "rogue", server=False)
    return d


def tls_broker(broker_factory, pki: Path, *extra: str):
    port = free_port()
    ow_port = free_port()
    b = broker_factory("--stomp-ssl", f"{HOST}:{port}", "--openwire-ssl", f"{HOST}:{ow_port}",
                       "--tls-cert", str(pki / "broker.pem"), "--tls-key", str(pki / "broker.key"), *extra)
    return b, port, ow_port


class Got(stomp.ConnectionListener):
    def __init__(self):
        self.cond = threading.Condition()
        self.messages: list[str] = []

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame.body)
            self.cond.notify_all()


def stomp_tls(port: int, pki: Path, cert: str | None = None):
    conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), reconnect_attempts_max=1, timeout=5)
    kwargs = {"ca_certs": str(pki / "ca.pem")}
    if cert:
        kwargs.update(cert_file=str(pki / f"{cert}.pem"), key_file=str(pki / f"{cert}.key"))
    conn.set_ssl(for_hosts=[(HOST, port)], **kwargs)
    return conn


def round_trip(conn) -> bool:
    got = Got()
    conn.set_listener("g", got)
    conn.connect(wait=True)
    queue = f"/queue/{unique('tls')}"
    conn.subscribe(queue, id="s", ack="auto")
    conn.send(queue, body="over tls", receipt="r")
    with got.cond:
        ok = got.cond.wait_for(lambda: got.messages == ["over tls"], timeout=5.0)
    conn.disconnect()
    return ok


def peer_cn(port: int, pki: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


def test_stomp_over_tls_with_a_verified_certificate(broker_factory, pki):
    b, port, _ = tls_broker(broker_factory, pki)
    assert round_trip(stomp_tls(port, pki))
    assert peer_cn(port, pki) == "broker"
    # A client that does not trust the broker's CA refuses it.
    ctx = ssl.create_default_context(cafile=str(pki / "rogue-ca.pem"))
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    # A plain-text client on the TLS port gets no STOMP frame, and the
    # broker goes on.
    with socket.create_connection((HOST, port), timeout=5) as raw:
        raw.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00")
        raw.settimeout(5)
        data = raw.recv(4096)
        assert b"CONNECTED" not in data
    assert wait_until(lambda: "TLS handshake refused" in b.log_text(), timeout=5.0)
    assert round_trip(stomp_tls(port, pki))


def test_mutual_tls_takes_certificates_of_its_ca_only(broker_factory, pki):
    b, port, _ = tls_broker(broker_factory, pki, "--tls-client-ca", str(pki / "ca.pem"),
                            "--tls-require-client-cert")
    assert round_trip(stomp_tls(port, pki, cert="client"))
    for cert in ("rogue", None):
        conn = stomp_tls(port, pki, cert=cert)
        with pytest.raises(Exception):
            conn.connect(wait=True)
        conn.disconnect()
    assert wait_until(lambda: b.log_text().count("TLS handshake refused") >= 2, timeout=5.0)


def test_sighup_swaps_the_certificate_for_new_connections(broker_factory, pki, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes((pki / "broker.pem").read_bytes())
    key.write_bytes((pki / "broker.key").read_bytes())
    port = free_port()
    b = broker_factory("--stomp-ssl", f"{HOST}:{port}", "--tls-cert", str(cert), "--tls-key", str(key))
    assert peer_cn(port, pki) == "broker"
    cert.write_bytes((pki / "broker2.pem").read_bytes())
    key.write_bytes((pki / "broker2.key").read_bytes())
    os.kill(b.pid, signal.SIGHUP)
    assert wait_until(lambda: "TLS certificate re-read" in b.log_text(), timeout=5.0)
    assert peer_cn(port, pki) == "broker2"


def test_a_tls_listener_without_a_certificate_is_refused_at_start(tmp_path):
    from conftest import HAWSER_BIN
    proc = subprocess.run([HAWSER_BIN, "serve", "--data-dir", str(tmp_path / "d"),
                           "--stomp", f"{HOST}:{free_port()}", "--openwire", f"{HOST}:{free_port()}",
                           "--stomp-ssl", f"{HOST}:{free_port()}"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "needs a certificate" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    return compile_java(tmp_path_factory, "JmsFeatures")


def test_the_java_client_over_ssl_with_a_keytool_truststore(broker_factory, pki, features, tmp_path):
    from test_security import users_file
    b, _, ow_port = tls_broker(broker_factory, pki, "--users-file", str(users_file(tmp_path)))
    store = tmp_path / "trust.jks"
    run("keytool", "-importcert", "-noprompt", "-alias", "hawser-test-ca", "-file", str(pki / "ca.pem"),
        "-keystore", str(store), "-storepass", "changeit", cwd=tmp_path)
    cmd = java_command(features, "JmsFeatures", f"ssl://{HOST}:{ow_port}", "login")
    cmd[1:1] = [f"-Djavax.net.ssl.trustStore={store}", "-Djavax.net.ssl.trustStorePassword=changeit"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{b.log_text()[-2000:]}"
    assert "ok user alice refused: user name or password is invalid" in proc.stdout
    # Without the truststore the client refuses the broker's certificate.
    cmd = java_command(features, "JmsFeatures", f"ssl://{HOST}:{ow_port}", "login")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    assert proc.returncode != 0


def test_hawsers_own_client_speaks_ssl_inside_failover_uris(broker_factory, pki):
    from conftest import HAWSER_BIN
    b, port, _ = tls_broker(broker_factory, pki)
    queue = f"/queue/{unique('cli')}"
    # The first broker of the list is down: the client fails over to the TLS one.
    url = f"failover:(ssl://{HOST}:{free_port()},ssl://localhost:{port})?randomize=false&maxReconnectAttempts=3"
    common = ["--url", url, "--ca-file", str(pki / "ca.pem")]
    out = subprocess.run([HAWSER_BIN, "send", *common, "-d", queue, "--persistent", "-b", "hello over tls"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([HAWSER_BIN, "receive", *common, "-d", queue, "--count", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "hello over tls" in out.stdout, out.stderr
    # Checked against the name: a certificate for "localhost" only is refused
    # when the URI says 127.0.0.1, and taken when it says localhost.
    named = free_port()
    broker_factory("--stomp-ssl", f"{HOST}:{named}", "--tls-cert", str(pki / "named.pem"),
                   "--tls-key", str(pki / "named.key"))
    for host, ok in ((HOST, False), ("localhost", True)):
        out = subprocess.run([HAWSER_BIN, "send", "--url", f"ssl://{host}:{named}",
                              "--ca-file", str(pki / "ca.pem"), "-d", queue, "-b", "x"],
                             capture_output=True, text=True, timeout=60)
        assert (out.returncode == 0) == ok, (host, out.stderr)
        assert ok or "certificate" in out.stderr.lower(), out.stderr
    # Without trusted CAs an ssl:// URI is refused rather than trusted blindly.
    out = subprocess.run([HAWSER_BIN, "send", "--url", f"ssl://{HOST}:{port}", "-d", queue, "-b", "x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "TLS" in out.stderr, out.stderr


def test_a_verified_client_certificate_authenticates_as_the_user_it_names(broker_factory, pki, tmp_path):
    from test_security import passwd
    users = tmp_path / "users"
    assert passwd(users, "alice", "pw-alice").returncode == 0
    b, port, _ = tls_broker(broker_factory, pki, "--tls-client-ca", str(pki / "ca.pem"),
                            "--users-file", str(users))
    # CN=client is nobody in the users file yet: without credentials, refused.
    conn = stomp_tls(port, pki, cert="client")
    with pytest.raises(Exception):
        conn.connect(wait=True)
    assert passwd(users, "client", "unused-password").returncode == 0
    os.kill(b.pid, signal.SIGHUP)
    assert wait_until(lambda: "users file re-read" in b.log_text(), timeout=5.0)
    # Now the certificate is the credential: no login, no passcode.
    assert round_trip(stomp_tls(port, pki, cert="client"))
    # Without a certificate (not required here) a client still needs credentials.
    conn = stomp_tls(port, pki)
    with pytest.raises(Exception):
        conn.connect(wait=True)
    conn = stomp_tls(port, pki)
    conn.connect("alice", "pw-alice", wait=True)
    assert conn.is_connected()
    conn.disconnect()


def test_the_status_endpoint_over_https(broker_factory, pki):
    import json as jsonlib
    import urllib.request
    status = free_port()
    b, _, _ = tls_broker(broker_factory, pki, "--status", f"{HOST}:{status}", "--status-tls")
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with urllib.request.urlopen(f"https://{HOST}:{status}/status", context=ctx, timeout=10) as r:
        assert jsonlib.loads(r.read())["role"] == "standalone"
    # Plain HTTP on the HTTPS port gets no status.
    with socket.create_connection((HOST, status), timeout=5) as raw:
        raw.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(5)
        try:
            data = raw.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert b"standalone" not in data
    assert wait_until(lambda: "status: TLS handshake refused" in b.log_text(), timeout=15.0)
    # hawser stat asks over HTTPS when given the CA.
    from conftest import HAWSER_BIN
    out = subprocess.run([HAWSER_BIN, "stat", "--status", f"{HOST}:{status}", "--ca-file", str(pki / "ca.pem")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "role: standalone" in out.stdout, out.stderr


def test_mutual_tls_with_the_java_client(broker_factory, pki, features, tmp_path):
    from test_security import passwd
    users = tmp_path / "users"
    assert passwd(users, "alice", "s3cret-alice").returncode == 0
    b, _, ow_port = tls_broker(broker_factory, pki, "--users-file", str(users),
                               "--tls-client-ca", str(pki / "ca.pem"), "--tls-require-client-cert")
    trust = tmp_path / "trust.jks"
    run("keytool", "-importcert", "-noprompt", "-alias", "hawser-test-ca", "-file", str(pki / "ca.pem"),
        "-keystore", str(trust), "-storepass", "changeit", cwd=tmp_path)

    def java(cert: str | None):
        cmd = java_command(features, "JmsFeatures", f"ssl://{HOST}:{ow_port}", "login")
        props = [f"-Djavax.net.ssl.trustStore={trust}", "-Djavax.net.ssl.trustStorePassword=changeit"]
        if cert:
            store = tmp_path / f"{cert}.p12"
            run("openssl", "pkcs12", "-export", "-in", str(pki / f"{cert}.pem"), "-inkey", str(pki / f"{cert}.key"),
                "-name", cert, "-out", str(store), "-passout", "pass:changeit", cwd=tmp_path)
            props += [f"-Djavax.net.ssl.keyStore={store}", "-Djavax.net.ssl.keyStorePassword=changeit",
                      "-Djavax.net.ssl.keyStoreType=PKCS12"]
        cmd[1:1] = props
        return subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)

    ok = java("client")
    assert ok.returncode == 0, f"{ok.stdout[-2000:]}\n{ok.stderr[-2000:]}\n{b.log_text()[-2000:]}"
    assert "ok user alice refused" in ok.stdout
    before = b.log_text().count("TLS handshake refused")
    for cert in ("rogue", None):
        refused = java(cert)
        assert refused.returncode != 0, f"{cert}: {refused.stdout[-1000:]}"
    assert wait_until(lambda: b.log_text().count("TLS handshake refused") >= before + 2, timeout=10.0)
