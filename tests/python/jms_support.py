"""ActiveMQ's own Java client for the OpenWire tests: Debian's libactivemq-java
(activemq-client 5.17) with Java 17, and the programs in tests/java compiled
against it, once per test session."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JAVA_DIR = Path(__file__).resolve().parents[1] / "java"
# The client's jars as Debian installs them (libactivemq-java and what it needs).
JARS = [
    "activemq-client", "geronimo-jms_1.1_spec", "geronimo-j2ee-management-1.1-spec",
    "hawtbuf", "slf4j-api", "slf4j-nop",
]
CLASSPATH = ":".join(f"/usr/share/java/{jar}.jar" for jar in JARS)
JAVA_TIMEOUT_S = 120


def compile_java(tmp_path_factory, *programs: str) -> Path:
    """Compiles ``tests/java/<program>.java`` of each program into one class
    directory, which it returns. Fails the test if Java 17 or the client's jars
    are missing."""
    missing = [p for p in CLASSPATH.split(":") if not Path(p).exists()]
    if shutil.which("javac") is None or missing:
        pytest.fail(f"Java 17 and libactivemq-java are needed (.ci/run installs them); missing: "
                    f"{missing or 'javac'}")
    out = tmp_path_factory.mktemp(programs[0].lower())
    sources = [str(JAVA_DIR / f"{program}.java") for program in programs]
    subprocess.run(["javac", "-cp", CLASSPATH, "-d", str(out), *sources], check=True, timeout=JAVA_TIMEOUT_S)
    return out


def java_command(classes: Path, program: str, *args: str) -> list[str]:
    """The command line that runs a compiled program on the client's jars."""
    return ["java", "-cp", f"{CLASSPATH}:{classes}", program, *args]
