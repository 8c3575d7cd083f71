"""The developer's settings: the embedded stack's ports and folder, and ``DevSettings``, every group at once.

They live here, not in ``consumer/plumbing/settings``, because no service reads them: the worker, router and
gateway run against any Kafka and S3, and the service image holds no embedded stack. The names are the same
environment variables as before (``STACK_DIR``, ``KAFKA_PORT``...).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from consumer.plumbing.settings import Settings
from consumer.plumbing.settings.groups import SettingsGroup

# The checkout this package runs from: devtools/ sits at the top of the repository.
REPO_ROOT = Path(__file__).resolve().parents[1]


class StackSettings(SettingsGroup):
    """Embedded stack: the local Kafka and MinIO of the demo, the tests and the benchmarks (`fwv2 stack`)."""

    stack_dir: Path = Field(REPO_ROOT / ".stack", description="Data and logs of the embedded stack.")
    kafka_port: int = Field(19092, description="Broker port of the embedded stack.")
    kafka_controller_port: int = Field(19093, description="Controller port of the embedded stack.")
    minio_port: int = Field(19000, description="S3 port of the embedded stack.")
    minio_console_port: int = Field(19001, description="Console port of the embedded stack.")
    kafka_topic_partitions: int = Field(
        6, ge=1, description="Partitions of the topics `fwv2 stack up` creates; the most workers one group can use."
    )
    registry_port: int = Field(19081, description="Port of the stack's schema registry (`--with registry`).")
    connect_port: int = Field(19083, description="REST port of the stack's Kafka Connect (`--with connect`).")
    postgres_port: int = Field(19432, description="Port of the stack's PostgreSQL (`--with postgres`).")


# The pydantic mypy plugin synthesises a model_construct per class and calls two of them incompatible
# when diamonds of groups meet; at run time pydantic merges the fields of every base (a unit test checks).
class DevSettings(Settings, StackSettings):  # type: ignore[misc]
    """Every group, the stack's too: what `fwv2 stack`, `fwv2 demo`, the benchmarks and the tests read."""
