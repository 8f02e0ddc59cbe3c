"""A real single-node Apache Kafka (KRaft: broker + controller) for development and tests.

The jars come from Maven Central through `kafka/pom.xml` (no Docker engine needed); the node
listens on 127.0.0.1 only. `LocalBroker` formats its storage once, starts the JVM in its own
process group, waits until the broker answers a Kafka metadata request, and stops it by PID.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from monitor.settings import LocalBrokerSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class BrokerError(RuntimeError):
    """The local broker could not be prepared, started or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    answering: bool
    data_dir: Path

    def describe(self) -> str:
        if self.running and self.answering:
            return f"running (pid {self.pid}) on {self.bootstrap}, data in {self.data_dir}"
        if self.running:
            return f"starting or unresponsive (pid {self.pid}) on {self.bootstrap}"
        return f"stopped (data in {self.data_dir})"


def default_kafka_dir() -> Path:
    return PROJECT_ROOT / "kafka"


def resolve_jars(kafka_dir: Path, *, quiet: bool = True) -> Path:
    """Resolve the Kafka runtime jars into `kafka_dir/libs` with Maven, once; return that folder."""
    libs = kafka_dir / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    pom = kafka_dir / "pom.xml"
    if not pom.is_file():
        raise BrokerError(f"no {pom}: the Kafka jars are resolved from it")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars from Maven "
            "Central (Debian: apt-get install maven)"
        )
    cmd = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(pom), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={libs}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise BrokerError("mvn could not resolve the Kafka jars:\n" + "\n".join(tail))
    return libs


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Java is not on PATH: the local Kafka needs Java 17 or newer (apt-get install "
                          "openjdk-17-jre-headless)")
    return java


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def new_cluster_id() -> str:
    """A KRaft cluster id, as `kafka-storage random-uuid` prints it (URL-safe base64, 22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_kafka(pid: int, data_dir: Path) -> bool:
    """The PID file may be stale and the PID reused: check the process is our Kafka."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # no /proc: trust the PID file
    return "kafka.Kafka" in cmdline and str(data_dir) in cmdline


class LocalBroker:
    """One local KRaft node whose files all live under `settings.data_dir`."""

    def __init__(self, settings: LocalBrokerSettings) -> None:
        self.settings = settings
        self.kafka_dir = (settings.kafka_dir or default_kafka_dir()).resolve()
        self.data_dir = settings.data_dir.resolve()
        self.host = settings.host

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.settings.port}"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def _properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    def pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _pid_alive(pid) and _is_our_kafka(pid, self.data_dir):
            return pid
        return None

    def status(self) -> BrokerStatus:
        pid = self.pid()
        answering = pid is not None and port_is_open(self.host, self.settings.port)
        return BrokerStatus(pid is not None, pid, self.bootstrap, answering, self.data_dir)

    def _write_config(self) -> None:
        s = self.settings
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.host}:{s.controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        self._properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self.data_dir / "log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=INFO, file\n"
            "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
            f"log4j.appender.file.File={self.log_file}\n"
            "log4j.appender.file.MaxFileSize=20MB\n"
            "log4j.appender.file.MaxBackupIndex=2\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
        )

    def _jvm(self, libs: Path) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.settings.heap}",
            f"-Xms{min(256, _megabytes(self.settings.heap))}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            f"{libs}/*",
        ]

    def _format_storage(self, libs: Path) -> None:
        if (self.data_dir / "data" / "meta.properties").is_file():
            return
        # `--cluster-id=` form: a URL-safe base64 id may begin with "-" and be read as a flag.
        cmd = [*self._jvm(libs), "kafka.tools.StorageTool", "format", f"--cluster-id={new_cluster_id()}",
               f"--config={self._properties}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def start(self) -> BrokerStatus:
        """Start the node unless it already runs; return once it answers. Idempotent."""
        current = self.status()
        if current.running:
            if not current.answering:
                self._wait_until_answering(current.pid)
            return self.status()
        s = self.settings
        for port in (s.port, s.controller_port):
            if port_is_open(s.host, port):
                raise BrokerError(
                    f"port {s.host}:{port} is taken by another process; choose other ports with "
                    "--port/--controller-port (AGENTMON_BROKER__PORT, AGENTMON_BROKER__CONTROLLER_PORT)"
                )
        libs = resolve_jars(self.kafka_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format_storage(libs)
        out = open(self.data_dir / "logs" / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [*self._jvm(libs), "kafka.Kafka", str(self._properties)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped by PID, not by our Ctrl-C
            )
        finally:
            out.close()
        self._pid_file.write_text(str(proc.pid))
        self._wait_until_answering(proc.pid)
        return self.status()

    def _wait_until_answering(self, pid: int | None) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if pid is not None and not _pid_alive(pid):
                raise BrokerError(f"Kafka exited while starting; see {self.log_file}:\n{self._log_tail()}")
            if port_is_open(self.host, self.settings.port) and _answers_metadata(self.bootstrap):
                return
            time.sleep(0.25)
        raise BrokerError(
            f"Kafka did not answer on {self.bootstrap} within {self.settings.start_timeout_s:.0f} s; "
            f"see {self.log_file}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the node by its PID (SIGTERM, then SIGKILL after `timeout`). False if it was not running."""
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if not _pid_alive(pid):
                    break
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)
        return True


def _megabytes(heap: str) -> int:
    unit = heap[-1].lower()
    value = int(heap[:-1]) if unit in "kmg" else int(heap) // (1024 * 1024)
    return {"k": value // 1024, "m": value, "g": value * 1024}.get(unit, value)


def _answers_metadata(bootstrap: str) -> bool:
    """True once the broker serves a metadata request (the TCP port opens a little earlier)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    # Its own thread and loop, so that callers inside a running event loop can use it too.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe()).result()
