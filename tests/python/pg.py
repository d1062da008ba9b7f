"""A real PostgreSQL 15 server for Hawser's store tests: a fresh cluster in
a temporary directory (initdb), on a loopback port, stopped by its PID. As
root (CI), the server runs as the ``postgres`` user: PostgreSQL refuses to
run as root. ``setpriv`` execs the server itself, so its PID is the
postmaster's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import HOST, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 30.0


def available() -> bool:
    return (PG_BIN / "postgres").exists()


def _as_postgres(program: str, *args: str) -> list[str]:
    cmd = [str(PG_BIN / program), *args]
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", *cmd]
    return cmd


class PgServer:
    """A cluster in a directory of its own under /tmp (the postgres user must
    reach it; pytest's directories are private to root), removed by ``stop``.

    ``settings`` are extra ``-c name=value`` server settings. A standby is
    made from a running primary with ``standby_of`` (pg_basebackup)."""

    def __init__(self, settings: dict[str, str] | None = None, init: bool = True):
        self.dir = Path(tempfile.mkdtemp(prefix="hawser-pg-"))
        self.data = self.dir / "pgdata"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.settings = dict(settings or {})
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        if init:
            out = subprocess.run(_as_postgres("initdb", "-A", "trust", "-U", "hawser", "--no-sync", "-D", str(self.data)),
                                 capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr

    @classmethod
    def standby_of(cls, primary: "PgServer", name: str) -> "PgServer":
        """A streaming standby of ``primary``, copied with pg_basebackup and
        named ``name`` (its ``application_name``, which
        ``synchronous_standby_names`` lists). Started."""
        standby = cls(init=False)
        conninfo = f"host={HOST} port={primary.port} user=hawser application_name={name}"
        out = subprocess.run(_as_postgres("pg_basebackup", "-d", conninfo, "-D", str(standby.data),
                                          "-X", "stream", "-R", "--no-sync"),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        standby.settings["primary_conninfo"] = conninfo
        return standby.start()

    def start(self) -> "PgServer":
        log = open(self.dir / "server.log", "ab")
        settings = {"fsync": "on", "max_connections": "100", **self.settings}
        args = [a for k, v in settings.items() for a in ("-c", f"{k}={v}")]
        self.proc = subprocess.Popen(
            _as_postgres("postgres", "-D", str(self.data), "-p", str(self.port), "-h", HOST, "-k", str(self.dir),
                         *args),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            ready = subprocess.run([str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(self.port)],
                                   capture_output=True, timeout=10).returncode == 0
            if ready:
                return self
            assert self.proc.poll() is None, (self.dir / "server.log").read_text()
            assert time.monotonic() < deadline, "postgres did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL of the postmaster, as a crash of its machine would end it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def promote(self) -> None:
        """Makes a standby the primary (``pg_ctl promote``, waiting for it)."""
        out = subprocess.run(_as_postgres("pg_ctl", "promote", "-w", "-t", "60", "-D", str(self.data)),
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stdout + out.stderr

    def replay_lsn(self) -> str:
        return self.sql("postgres", "SELECT pg_last_wal_replay_lsn()")

    def url(self, dbname: str = "postgres") -> str:
        return f"host={HOST} port={self.port} user=hawser dbname={dbname} connect_timeout=5"

    def create_database(self, name: str) -> str:
        out = subprocess.run(["psql", "-h", HOST, "-p", str(self.port), "-U", "hawser", "-d", "postgres",
                              "-c", f"CREATE DATABASE {name}"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return self.url(name)

    def sql(self, dbname: str, query: str) -> str:
        out = subprocess.run(["psql", "-h", HOST, "-p", str(self.port), "-U", "hawser", "-d", dbname,
                              "-At", "-c", query], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def stop(self) -> None:
        """Stops the server by its PID (SIGINT: a fast shutdown, clients
        disconnected; SIGKILL if it does not end in 15 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        """Stops the server and deletes its cluster."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
