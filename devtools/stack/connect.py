"""Genuine Kafka Connect 4.4.0 (distributed mode) on 127.0.0.1, with the plugins downstream teams use.

Teams that land our transcripts in a database do it with Kafka Connect, Apicurio's converter and
Debezium's JDBC sink, not with code of ours; running those very pieces against the stack is how
we find out whether our records survive that path. No Connect tarball is reachable from these
machines, so the worker and the plugins come from Maven Central through throwaway poms,
resolved once into the shared cache folder. Distributed mode, because that is what teams run:
connectors are created through the REST API and their configuration lives in Kafka topics.

Debezium's sink takes only flat records of primitives: our segments, words and speakers (arrays
of records) fail it, and no stock Kafka transform turns them into anything it takes (Cast handles
primitives only). A third plugin, a ToJSON transform from Central, lets a connector land the
whole event as one JSON document, which PostgreSQL then queries as jsonb.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devtools.stack.process import ManagedProcess, StackError, file_lock, port_open, run_maven

CONNECT_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.5"
APICURIO_VERSION = "2.4.2.Final"
DEBEZIUM_VERSION = "3.6.0.Final"
POSTGRES_JDBC_VERSION = "42.7.8"
# Debezium's pom names org.hibernate:hibernate-agroal, which Central does not serve; the artifact
# moved to org.hibernate.orm, and hibernate-core must be the same release as it.
HIBERNATE_VERSION = "7.2.19.Final"
# The jackson release Debezium's plugin folder carries (see _DEBEZIUM_DEPENDENCIES).
DEBEZIUM_JACKSON_VERSION = "2.21.2"
# Jeremy Custenborder's "common transforms" (Apache 2.0): ToJSON turns a whole record into a JSON
# string through Connect's own JsonConverter. 0.1.0.14 is the only release Central serves; its pom
# asks for connect-utils by a version range, pinned here to the newest release inside it.
JC_TRANSFORMS_VERSION = "0.1.0.14"
JC_CONNECT_UTILS_VERSION = "0.3.148"
DEFAULT_PORT = 19083
JDBC_SINK = "io.debezium.connector.jdbc.JdbcSinkConnector"
APICURIO_AVRO_CONVERTER = "io.apicurio.registry.utils.converter.AvroConverter"
TO_JSON_VALUE = "com.github.jcustenborder.kafka.connect.transform.common.ToJSON$Value"
_RESOLVE_TIMEOUT_S = 15 * 60
# Apicurio's converter and the ToJSON transform ship no ServiceLoader manifest, so the worker
# could only find them by scanning every class of every plugin (9 s of a 2-core machine on each
# start, and about 0.8 GB of RSS instead of 0.2). A one-file jar of ours in their folders supplies it.
_MANIFEST_JAR = "fwv2-services.jar"
_MANIFESTS = {
    "apicurio-converter": ("org.apache.kafka.connect.storage.Converter", [APICURIO_AVRO_CONVERTER]),
    "jcustenborder-transforms": (
        "org.apache.kafka.connect.transforms.Transformation",
        [TO_JSON_VALUE, TO_JSON_VALUE.replace("$Value", "$Key")],
    ),
}

_AGGREGATOR_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `fwv2 stack`: resolves the Connect worker and its plugins, one folder each. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fwv2.stack</groupId>
  <artifactId>connect</artifactId>
  <version>{CONNECT_VERSION}</version>
  <packaging>pom</packaging>
  <modules>
    <module>worker</module>
    <module>apicurio-converter</module>
    <module>debezium-jdbc</module>
    <module>jcustenborder-transforms</module>
  </modules>
</project>
"""


def _module_pom(artifact: str, output: Path, dependencies: str, managed: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `fwv2 stack`: only copies jars into {output}. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fwv2.stack</groupId>
  <artifactId>{artifact}</artifactId>
  <version>{CONNECT_VERSION}</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
{managed}
    </dependencies>
  </dependencyManagement>
  <dependencies>
{dependencies}
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.6.1</version>
        <configuration>
          <outputDirectory>{output}</outputDirectory>
          <includeScope>runtime</includeScope>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
"""


def _dependency(coordinates: str, *, exclusions: tuple[str, ...] = (), scope: str = "") -> str:
    group, artifact, version = coordinates.split(":")
    excluded = "".join(
        f"<exclusion><groupId>{g}</groupId><artifactId>{a}</artifactId></exclusion>"
        for g, a in (e.split(":") for e in exclusions)
    )
    return (
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>"
        + (f"<scope>{scope}</scope>" if scope else "")
        + (f"<exclusions>{excluded}</exclusions>" if excluded else "")
        + "</dependency>"
    )


# The worker's own classpath: Connect has no SLF4J binding of its own, like the broker.
_WORKER_DEPENDENCIES = "\n".join(
    [
        _dependency(f"org.apache.kafka:connect-runtime:{CONNECT_VERSION}"),
        _dependency(f"org.apache.kafka:connect-json:{CONNECT_VERSION}"),
        _dependency(f"org.apache.kafka:connect-transforms:{CONNECT_VERSION}"),
        _dependency(f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}", scope="runtime"),
    ]
)
# Plugins must not carry Kafka's own jars: the worker provides the Connect API, and a second copy
# of kafka-clients in a plugin's class loader breaks the casts between the two.
_APICURIO_DEPENDENCIES = _dependency(
    f"io.apicurio:apicurio-registry-utils-converter:{APICURIO_VERSION}",
    # everit's JSON Schema library is not on Central (the converter pom names Confluent's repository,
    # which these machines cannot reach); only the JSON Schema converter needs it.
    exclusions=("org.apache.kafka:*", "com.github.everit-org.json-schema:*"),
)
_DEBEZIUM_DEPENDENCIES = "\n".join(
    [
        _dependency(
            f"io.debezium:debezium-connector-jdbc:{DEBEZIUM_VERSION}",
            exclusions=("org.apache.kafka:*", "org.hibernate:hibernate-agroal"),
        ),
        _dependency(f"org.hibernate.orm:hibernate-core:{HIBERNATE_VERSION}"),
        _dependency(f"org.hibernate.orm:hibernate-agroal:{HIBERNATE_VERSION}"),
        _dependency(f"org.postgresql:postgresql:{POSTGRES_JDBC_VERSION}"),
        # The worker's jackson-databind lists these modules as services; the plugin's own (older)
        # databind then finds the worker's classes and fails with "BlackbirdModule not a subtype"
        # unless the plugin folder holds its own copies.
        _dependency(f"com.fasterxml.jackson.module:jackson-module-blackbird:{DEBEZIUM_JACKSON_VERSION}"),
        _dependency(
            f"com.fasterxml.jackson.module:jackson-module-jakarta-xmlbind-annotations:{DEBEZIUM_JACKSON_VERSION}"
        ),
    ]
)

_JC_TRANSFORMS_DEPENDENCIES = _dependency(
    f"com.github.jcustenborder.kafka.connect:kafka-connect-transform-common:{JC_TRANSFORMS_VERSION}",
    exclusions=("org.apache.kafka:*",),
)
_JC_TRANSFORMS_MANAGED = _dependency(f"com.github.jcustenborder.kafka.connect:connect-utils:{JC_CONNECT_UTILS_VERSION}")

_LOG4J2 = """# Written by `fwv2 stack`: everything to stdout, which the stack sends to logs/connect.log.
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
# Every client Connect makes prints its whole configuration; keep those out of the way.
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
logger.hibernate.name = org.hibernate
logger.hibernate.level = WARN
"""


class ConnectNode:
    """One Connect worker in distributed mode, its REST API on 127.0.0.1:``port``.

    ``registry_url`` (Apicurio's native API, e.g. RegistryNode.native_url) makes Apicurio's Avro
    converter, in Confluent's wire format, the worker's default value converter; without it the
    default is schemaless JSON and each connector names its converter.
    """

    def __init__(
        self,
        cache_dir: Path,
        stack_dir: Path,
        port: int,
        echo: Callable[[str], None],
        bootstrap: str,
        registry_url: str | None = None,
        group_id: str = "fwv2-connect",
        heap: str = "512m",
    ) -> None:
        self.port = port
        self.echo = echo
        self.bootstrap = bootstrap
        self.registry_url = registry_url
        self.group_id = group_id
        self.heap = heap
        self.home = cache_dir / f"connect-{CONNECT_VERSION}"
        self.lib = self.home / "lib"
        self.plugins = self.home / "plugins"
        self.dir = stack_dir / "connect"
        self.properties = self.dir / "worker.properties"
        self.log4j = self.dir / "log4j2.properties"
        self.process = ManagedProcess(
            "Kafka Connect",
            pid_file=stack_dir / "connect.pid",
            log_file=stack_dir / "logs" / "connect.log",
            marker=str(self.properties),  # unique to this stack folder
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- install ---------------------------------------------------------------------------
    def _folders(self) -> dict[str, tuple[Path, str, str]]:
        """Module name -> (output folder, pom dependencies, a jar that must be there)."""
        return {
            "worker": (self.lib, _WORKER_DEPENDENCIES, f"connect-runtime-{CONNECT_VERSION}.jar"),
            "jcustenborder-transforms": (
                self.plugins / "jcustenborder-transforms",
                _JC_TRANSFORMS_DEPENDENCIES,
                f"kafka-connect-transform-common-{JC_TRANSFORMS_VERSION}.jar",
            ),
            "apicurio-converter": (
                self.plugins / "apicurio-converter",
                _APICURIO_DEPENDENCIES,
                f"apicurio-registry-utils-converter-{APICURIO_VERSION}.jar",
            ),
            "debezium-jdbc": (
                self.plugins / "debezium-jdbc",
                _DEBEZIUM_DEPENDENCIES,
                f"debezium-connector-jdbc-{DEBEZIUM_VERSION}.jar",
            ),
        }

    def installed(self) -> bool:
        marker = self.home / "install.complete"
        if not marker.is_file():
            return False
        jars = marker.read_text().split()
        manifests = {f"plugins/{folder}/{_MANIFEST_JAR}" for folder in _MANIFESTS}
        return manifests <= set(jars) and all((self.home / jar).is_file() for jar in jars)

    def install(self) -> None:
        if self.installed():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        with file_lock(self.home / ".install.lock"):
            if self.installed():  # another process finished it while we waited for the lock
                return
            self.echo(
                f"fetching Kafka Connect {CONNECT_VERSION}, Apicurio's converter and Debezium's JDBC sink (once)..."
            )
            build = self.home / "build"
            build.mkdir(exist_ok=True)
            (build / "pom.xml").write_text(_AGGREGATOR_POM)
            for module, (output, dependencies, _) in self._folders().items():
                shutil.rmtree(output, ignore_errors=True)  # never mix a partial copy with a new one
                (build / module).mkdir(exist_ok=True)
                managed = _JC_TRANSFORMS_MANAGED if module == "jcustenborder-transforms" else ""
                pom = _module_pom(f"connect-{module}", output, dependencies, managed)
                (build / module / "pom.xml").write_text(pom)
            run_maven(
                ["dependency:copy-dependencies"],
                build,
                "resolving the Connect jars",
                missing=lambda: [jar for output, _, jar in self._folders().values() if not (output / jar).is_file()],
                timeout_s=_RESOLVE_TIMEOUT_S,
            )
            for folder, (service, classes) in _MANIFESTS.items():
                with zipfile.ZipFile(self.plugins / folder / _MANIFEST_JAR, "w") as jar:
                    jar.writestr(f"META-INF/services/{service}", "".join(f"{c}\n" for c in classes))
            jars = sorted(
                str(p.relative_to(self.home)) for output, _, _ in self._folders().values() for p in output.glob("*.jar")
            )
            # Written last: its presence means every folder holds every jar it lists.
            (self.home / "install.complete").write_text("\n".join(jars) + "\n")

    # --- configure -------------------------------------------------------------------------
    def configure(self) -> None:
        """(Re)write the configuration on every start, so changed arguments take effect."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log4j.write_text(_LOG4J2)
        self.properties.write_text(self._worker_properties())

    def _worker_properties(self) -> str:
        prefix = self.group_id
        props = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group_id,
            # Distributed mode keeps connector configs, offsets and statuses in Kafka topics; one
            # broker means one replica each, and the broker creates no topic by itself.
            "config.storage.topic": f"{prefix}-configs",
            "offset.storage.topic": f"{prefix}-offsets",
            "status.storage.topic": f"{prefix}-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "5",
            "status.storage.partitions": "1",
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.port),
            "plugin.path": str(self.plugins),
            # Plugins are found through their ServiceLoader manifests only (see _MANIFEST_JAR).
            "plugin.discovery": "service_load",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            # A restarted single worker would otherwise wait up to 5 minutes for the tasks its
            # previous run held to be declared lost before it takes them back.
            "scheduled.rebalance.max.delay.ms": "0",
            # Sinks commit their consumer offsets this often; the default minute is long for tests.
            "offset.flush.interval.ms": "5000",
        }
        if self.registry_url is not None:
            del props["value.converter.schemas.enable"]
            props.update(apicurio_converter_config(self.registry_url, "value.converter"))
        return "# Written by `fwv2 stack` on every start; edit its arguments, not this file.\n" + "".join(
            f"{key}={value}\n" for key, value in props.items()
        )

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms128m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j}",
            "-cp",
            f"{self.lib}/*",  # java expands the wildcard itself; no shell involved
        ]

    # --- run -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise StackError(f"port {self.port} is already in use by another process; Kafka Connect cannot start")
        if not self.installed():
            raise StackError(f"Kafka Connect is not installed in {self.home}; run install() first")
        self.configure()
        self.echo(f"starting Kafka Connect {CONNECT_VERSION} on {self.url} (Kafka at {self.bootstrap})...")
        argv = [*self._java(), "org.apache.kafka.connect.cli.ConnectDistributed", str(self.properties)]
        self.process.start(argv, cwd=self.dir)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until the plugin scan found Debezium's JDBC sink and the worker answers for its connectors.

        /connector-plugins answers as soon as the REST server is up; /connectors answers only once
        the worker has joined its group and read the config topic, so a connector can be put.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise StackError(
                    f"Kafka Connect exited during start ({self.process.describe()}); "
                    f"see {self.process.log_file}:\n{self.process.log_tail()}"
                )
            try:
                plugins = self._request("GET", "/connector-plugins", timeout_s=2.0)
                if any(p.get("class") == JDBC_SINK for p in plugins):
                    self._request("GET", "/connectors", timeout_s=2.0)
                    return
            except (StackError, OSError):
                pass
            time.sleep(0.5)
        raise StackError(
            f"Kafka Connect was not ready in {timeout_s} s; see {self.process.log_file}:\n{self.process.log_tail()}"
        )

    def running(self) -> bool:
        return self.process.is_running()

    def pid(self) -> int | None:
        return self.process.pid()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM: the worker leaves its group and stops its tasks; False if it was not running."""
        return self.process.stop(timeout_s)

    # --- REST helpers ----------------------------------------------------------------------
    def put_connector(self, name: str, config: Mapping[str, str], timeout_s: float = 30.0) -> dict[str, Any]:
        """Create or update a connector (PUT /connectors/NAME/config); returns Connect's answer.

        A worker in the middle of a rebalance answers 409; that is retried until ``timeout_s``.
        """
        path = f"/connectors/{urllib.parse.quote(name, safe='')}/config"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                answer: dict[str, Any] = self._request("PUT", path, dict(config))
                return answer
            except _ConflictError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def connector_status(self, name: str) -> dict[str, Any]:
        """GET /connectors/NAME/status: the connector's and each task's state (and trace when FAILED)."""
        status: dict[str, Any] = self._request("GET", f"/connectors/{urllib.parse.quote(name, safe='')}/status")
        return status

    def wait_running(self, name: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Until the connector and at least one task are RUNNING; a FAILED task raises with its trace."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                status = self.connector_status(name)
            except StackError:
                time.sleep(0.5)
                continue
            tasks = status.get("tasks", [])
            failed = [t for t in tasks if t.get("state") == "FAILED"]
            if failed or status.get("connector", {}).get("state") == "FAILED":
                raise StackError(f"connector {name} failed: {json.dumps(status)[:4000]}")
            if (
                status.get("connector", {}).get("state") == "RUNNING"
                and tasks
                and all(t.get("state") == "RUNNING" for t in tasks)
            ):
                return status
            time.sleep(0.5)
        raise StackError(f"connector {name} was not running in {timeout_s} s: {json.dumps(status)[:2000]}")

    def delete_connector(self, name: str) -> bool:
        """DELETE /connectors/NAME; False if there was no such connector."""
        try:
            self._request("DELETE", f"/connectors/{urllib.parse.quote(name, safe='')}")
        except _NotFoundError:
            return False
        return True

    def _request(self, method: str, path: str, body: Any = None, timeout_s: float = 30.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - fixed loopback URL
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - fixed loopback URL
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            error = {404: _NotFoundError, 409: _ConflictError}.get(exc.code, StackError)
            raise error(f"Kafka Connect {method} {path}: HTTP {exc.code}: {detail[:2000]}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise StackError(f"Kafka Connect {method} {path}: {exc}") from exc
        return json.loads(text) if text else None


class _NotFoundError(StackError):
    pass


class _ConflictError(StackError):
    pass


def apicurio_converter_config(registry_url: str, prefix: str = "value.converter") -> dict[str, str]:
    """Apicurio's Avro converter reading what Confluent's serializers write.

    ``registry_url`` is Apicurio's native API (…/apis/registry/v2). Confluent's framing (a zero byte
    and a 4-byte id) instead of Apicurio's 8-byte ids; the id is the content id, which is what the
    Confluent-compatible API hands to Confluent's serializers; and no id in headers, which
    Confluent's serializers never write.
    """
    return {
        prefix: APICURIO_AVRO_CONVERTER,
        f"{prefix}.apicurio.registry.url": registry_url,
        f"{prefix}.apicurio.registry.as-confluent": "true",
        f"{prefix}.apicurio.registry.use-id": "contentId",
        f"{prefix}.apicurio.registry.headers.enabled": "false",
    }
