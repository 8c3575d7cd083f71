"""Genuine Apache Kafka 4.4.0 as one KRaft node (broker and controller) on 127.0.0.1.

No Kafka tarball is reachable from these machines, so the server jars come from Maven Central
through a throwaway pom, resolved once into the cache folder that every clone shares.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable

from devtools.settings import DevSettings
from devtools.stack.process import ManagedProcess, StackError, file_lock, port_open, run_maven
from devtools.stack.secure import ADMIN, MECHANISM, SecureLayout
from devtools.stack.tls import SERVER_CN

KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.5"
# Partitions of __consumer_offsets and __transaction_state. The defaults (50) make the first
# group or transaction on a fresh node create 50 partitions; one node gains nothing from them.
INTERNAL_TOPIC_PARTITIONS = 5

_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `fwv2 stack`: only resolves the Kafka server jars into lib/. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fwv2.stack</groupId>
  <artifactId>kafka-server-jars</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <!-- Kafka's pom declares no SLF4J binding; without one the broker logs nothing useful. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """# Written by `fwv2 stack up`: everything to stdout, which the stack sends to logs/kafka.log.
status = warn
# Kafka logs its own shutdown from a JVM shutdown hook; log4j's hook would stop logging first.
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
# Request-level chatter would drown the lines that explain a failure.
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = WARN
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
"""

_STARTED = "Kafka Server started"


class KafkaNode:
    def __init__(self, settings: DevSettings, echo: Callable[[str], None], secure: SecureLayout | None = None) -> None:
        self.settings = settings
        self.echo = echo
        self.secure = secure
        self.home = settings.cache_dir / f"kafka-{KAFKA_VERSION}"
        self.lib = self.home / "lib"
        self.dir = settings.stack_dir / "kafka"
        self.data = self.dir / "data"
        self.properties = self.dir / "server.properties"
        self.log4j = self.dir / "log4j2.properties"
        # The properties path is unique to this stack folder: it tells our broker from any other.
        self.process = ManagedProcess(
            "Kafka",
            pid_file=settings.stack_dir / "kafka.pid",
            log_file=settings.stack_dir / "logs" / "kafka.log",
            marker=str(self.properties),
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    # --- install ---------------------------------------------------------------------------
    def installed(self) -> bool:
        marker = self.home / "lib.complete"
        if not marker.is_file():
            return False
        jars = marker.read_text().split()
        return bool(jars) and all((self.lib / jar).is_file() for jar in jars)

    def install(self) -> None:
        if self.installed():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        with file_lock(self.home / ".install.lock"):
            if self.installed():  # another process finished it while we waited for the lock
                return
            self.echo(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central (once, ~10 s)...")
            (self.home / "pom.xml").write_text(_POM)
            shutil.rmtree(self.lib, ignore_errors=True)  # never mix a partial copy with a new one
            server = self.lib / f"kafka_2.13-{KAFKA_VERSION}.jar"
            run_maven(
                ["dependency:copy-dependencies", "-DoutputDirectory=lib", "-DincludeScope=runtime"],
                self.home,
                "resolving the Kafka jars",
                missing=lambda: [] if server.is_file() else [server.name],
            )
            jars = sorted(p.name for p in self.lib.glob("*.jar"))
            # Written last: its presence means lib/ holds every jar it lists.
            (self.home / "lib.complete").write_text("\n".join(jars) + "\n")

    # --- configure -------------------------------------------------------------------------
    def configure(self) -> None:
        """(Re)write the configuration on every start, so changed settings take effect."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.log4j.write_text(_LOG4J2)
        self.properties.touch(mode=0o600)  # the secure broker's holds its admin password
        self.properties.write_text(self._server_properties())

    def _server_properties(self) -> str:
        s = self.settings
        broker, controller = f"127.0.0.1:{s.kafka_port}", f"127.0.0.1:{s.kafka_controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": str(s.kafka_topic_partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Topics are created by `stack up` with the right partition count, never by a typo.
            "auto.create.topics.enable": "false",
            # One node: every internal topic has one replica, or groups and transactions never start.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": str(INTERNAL_TOPIC_PARTITIONS),
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": str(INTERNAL_TOPIC_PARTITIONS),
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests join groups constantly; the default 3 s delay would be paid on every join.
            "group.initial.rebalance.delay.ms": "0",
            "num.recovery.threads.per.data.dir": "1",
        }
        if self.secure is not None:
            props.update(self._secure_properties(broker, controller))
        return "# Written by `fwv2 stack up` on every start; edit the settings, not this file.\n" + "".join(
            f"{key}={value}\n" for key, value in props.items()
        )

    def _secure_properties(self, broker: str, controller: str) -> dict[str, str]:
        """TLS everywhere, SCRAM-SHA-512 logins for clients, and an authorizer that denies what no ACL allows.

        Clients and the broker itself (transaction markers go through the inter-broker listener) log in
        with SCRAM over TLS. The controller listener cannot use SCRAM (its credentials live in the very
        metadata the controller serves), so it takes only mutual TLS: the broker presents the stack's
        server certificate, whose subject is a super user. Nothing without that key gets in there.
        """
        assert self.secure is not None
        tls, password = self.secure.tls, self.secure.credentials.kafka[ADMIN]
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{password}";'
        )
        return {
            "listeners": f"SASL_SSL://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"SASL_SSL://{broker},CONTROLLER://{controller}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(tls.server_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca),
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:CN={SERVER_CN}",
        }

    def format_storage(self) -> None:
        """Format the KRaft storage once; a formatted folder keeps its cluster id and data."""
        if (self.data / "meta.properties").is_file():
            return
        self.echo("formatting Kafka storage (first start)...")
        cluster_id = self._storage_tool("random-uuid").strip().splitlines()[-1]
        # The secure broker's SCRAM users must exist before its first start: its own inter-broker
        # login is one of them. (Passwords are on this command line for its 2 s; the stack is local.)
        scram = [
            arg
            for name, password in (self.secure.credentials.kafka.items() if self.secure else ())
            for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={password}]")
        ]
        self._storage_tool("format", "--standalone", "-t", cluster_id, "-c", str(self.properties), *scram)

    def _storage_tool(self, *args: str) -> str:
        cmd = [*self._java(), "kafka.tools.StorageTool", *args]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"kafka-storage {args[0]} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j}",
            "-cp",
            f"{self.lib}/*",  # java expands the wildcard itself; no shell involved
        ]

    # --- run -------------------------------------------------------------------------------
    def start(self) -> None:
        for port in (self.settings.kafka_port, self.settings.kafka_controller_port):
            if port_open(port):
                raise StackError(f"port {port} is already in use by another process; Kafka cannot start")
        self.configure()
        self.format_storage()
        self.echo(f"starting Kafka {KAFKA_VERSION} on {self.bootstrap}...")
        self.process.start([*self._java(), "kafka.Kafka", str(self.properties)], cwd=self.dir)

    def wait_started(self, deadline: float) -> None:
        """Until the port is open and this run's log says the server started (not enough alone)."""
        pid = self.process.pid()
        while time.monotonic() < deadline:
            if pid is None or self.process.exited(pid):
                raise StackError(f"Kafka exited during start; see {self.process.log_file}:\n{self.process.log_tail()}")
            if port_open(self.settings.kafka_port) and self.process.log_contains(_STARTED):
                return
            time.sleep(0.2)
        raise StackError(f"Kafka did not start in time; see {self.process.log_file}:\n{self.process.log_tail()}")
