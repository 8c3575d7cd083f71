"""Genuine Apicurio Registry 2.4.2 on 127.0.0.1: the schema registry downstream readers point at.

No release of Apicurio publishes a runnable jar that these machines can reach, so the server is
assembled once from Maven Central (the app's classes plus Quarkus' build step) into the shared
cache folder. Its Confluent-compatible API lets stock Confluent clients register and look up our
schemas; in-memory storage keeps the dev stack free of another database to look after.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devtools.stack.process import ManagedProcess, StackError, file_lock, port_open, run_maven

APICURIO_VERSION = "2.4.2.Final"
QUARKUS_VERSION = "2.16.4.Final"
# Apicurio's app pom asks for 0.1.18.Final of these, which Central does not serve.
CONFIG_INDEX_VERSION = "0.1.10.Final"
DEFAULT_PORT = 19081
_RUNNER = "apicurio-registry-2.4.2-runner.jar"
_BUILD_TIMEOUT_S = 20 * 60

_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `fwv2 stack`: assembles Apicurio Registry {APICURIO_VERSION} from Maven Central. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fwv2.stack</groupId>
  <artifactId>apicurio-registry</artifactId>
  <version>2.4.2</version>
  <packaging>jar</packaging>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-common-app-components-config-index</artifactId>
        <version>{CONFIG_INDEX_VERSION}</version>
      </dependency>
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-common-app-components-config-index-deployment</artifactId>
        <version>{CONFIG_INDEX_VERSION}</version>
      </dependency>
      <dependency>
        <groupId>io.quarkus</groupId>
        <artifactId>quarkus-bom</artifactId>
        <version>{QUARKUS_VERSION}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <!-- The app's dependencies only; its own classes are unpacked below. -->
    <dependency>
      <groupId>io.apicurio</groupId>
      <artifactId>apicurio-registry-app</artifactId>
      <version>{APICURIO_VERSION}</version>
      <type>pom</type>
      <exclusions>
        <!-- Not on Central; only JSON Schema support needs it, and our schemas are Avro. -->
        <exclusion>
          <groupId>com.github.everit-org.json-schema</groupId>
          <artifactId>*</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.6.1</version>
        <executions>
          <execution>
            <id>unpack-app</id>
            <phase>generate-resources</phase>
            <goals><goal>unpack</goal></goals>
            <configuration>
              <artifactItems>
                <artifactItem>
                  <groupId>io.apicurio</groupId>
                  <artifactId>apicurio-registry-app</artifactId>
                  <version>{APICURIO_VERSION}</version>
                  <type>jar</type>
                  <outputDirectory>${{project.build.outputDirectory}}</outputDirectory>
                </artifactItem>
              </artifactItems>
            </configuration>
          </execution>
        </executions>
      </plugin>
      <plugin>
        <groupId>io.quarkus</groupId>
        <artifactId>quarkus-maven-plugin</artifactId>
        <version>{QUARKUS_VERSION}</version>
        <executions>
          <execution>
            <goals><goal>build</goal></goals>
          </execution>
        </executions>
      </plugin>
    </plugins>
  </build>
</project>
"""


class RegistryNode:
    """Apicurio Registry with in-memory storage: every start begins with no schemas.

    Its Confluent-compatible lookup (POST /subjects/NAME) compares schema text byte for byte:
    confluent-kafka's serializer strips an .avsc file's final newline, so a schema registered
    from the raw file is then "not found" (404, "No artifact with ID"). Register the text as the
    serializer holds it. Apicurio's `registry.ccompat.use-canonical-hash` would match them, but
    it then serves the schema in a canonical form whose fields are reordered, and a converter
    decoding with that schema misreads every record.
    """

    def __init__(self, cache_dir: Path, stack_dir: Path, port: int, echo: Callable[[str], None]) -> None:
        self.port = port
        self.echo = echo
        self.home = cache_dir / "apicurio-registry-2.4.2"
        self.runner = self.home / "target" / _RUNNER
        self.dir = stack_dir / "registry"
        # A system property naming this stack folder: it tells our registry from any other java.
        self._marker_arg = f"-Dfwv2.stack.node={self.dir}"
        self.process = ManagedProcess(
            "Apicurio Registry",
            pid_file=stack_dir / "registry.pid",
            log_file=stack_dir / "logs" / "registry.log",
            marker=self._marker_arg,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ccompat_url(self) -> str:
        """The Confluent-compatible API, for confluent-kafka's SchemaRegistryClient and its kin."""
        return f"{self.url}/apis/ccompat/v7"

    @property
    def native_url(self) -> str:
        """Apicurio's own API, which its Kafka Connect converter talks to."""
        return f"{self.url}/apis/registry/v2"

    # --- install ---------------------------------------------------------------------------
    def installed(self) -> bool:
        marker = self.home / "install.complete"
        return marker.is_file() and self.runner.is_file() and (self.runner.parent / "lib").is_dir()

    def install(self) -> None:
        if self.installed():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        with file_lock(self.home / ".install.lock"):
            if self.installed():  # another process finished it while we waited for the lock
                return
            self.echo(f"assembling Apicurio Registry {APICURIO_VERSION} from Maven Central (once, ~1-2 min)...")
            (self.home / "pom.xml").write_text(_POM)
            shutil.rmtree(self.home / "target", ignore_errors=True)  # never mix a partial build with a new one
            run_maven(
                ["-DskipTests", "package"],
                self.home,
                "assembling Apicurio Registry",
                missing=lambda: [] if self.runner.is_file() else [_RUNNER],
                timeout_s=_BUILD_TIMEOUT_S,
            )
            # Written last: its presence means target/ holds a complete build.
            (self.home / "install.complete").write_text(f"{_RUNNER}\n")

    # --- run -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise StackError(f"port {self.port} is already in use by another process; the registry cannot start")
        if not self.installed():
            raise StackError(f"Apicurio Registry is not installed in {self.home}; run install() first")
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "java",
            "-Xms64m",
            "-Xmx384m",
            "-XX:+UseSerialGC",  # a small heap on a 2-core machine: no parallel GC threads to feed
            "-Djava.awt.headless=true",
            self._marker_arg,
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self.port}",
            "-jar",
            str(self.runner),
        ]
        self.echo(f"starting Apicurio Registry on {self.url}...")
        self.process.start(argv, cwd=self.dir)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the Confluent-compatible API lists subjects (storage is up, not just the port)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise StackError(
                    f"Apicurio Registry exited during start ({self.process.describe()}); "
                    f"see {self.process.log_file}:\n{self.process.log_tail()}"
                )
            if self._subjects_answer():
                return
            time.sleep(0.2)
        raise StackError(
            f"Apicurio Registry was not ready in {timeout_s} s; see {self.process.log_file}:\n{self.process.log_tail()}"
        )

    def _subjects_answer(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.ccompat_url}/subjects", timeout=2.0) as response:  # noqa: S310 - fixed loopback URL
                status: int = response.status
                json.load(response)  # a JSON list: the API itself answered, not a proxy or a stub page
                return status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def running(self) -> bool:
        return self.process.is_running()

    def pid(self) -> int | None:
        return self.process.pid()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM (Quarkus shuts down in about a second); False if it was not running."""
        return self.process.stop(timeout_s)
