"""The secure stack's layout: its own ports and folder, its principals, their credentials and settings.

`fwv2 stack up --secure` runs beside the plaintext stack (Kafka 19092, MinIO 19000), never instead
of it: its own ports and its own folder (``<STACK_DIR>-secure``). Credentials are random, made
once per folder (the broker's SCRAM users are written into its storage when it is formatted) and
kept in ``credentials.json`` (mode 600); ``<role>.env`` files next to it hold each principal's
settings, for ``set -a; . .stack-secure/worker.env; fwv2 worker``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from devtools.settings import DevSettings
from devtools.stack.tls import TlsFiles

PORTS = {"kafka_port": 29092, "kafka_controller_port": 29093, "minio_port": 29000, "minio_console_port": 29001}
MECHANISM = "SCRAM-SHA-512"
ADMIN = "fwv2-admin"  # the broker's super user and MinIO's root: stack set-up and operators only
ROLES = ("worker", "router", "gateway")


def user(role: str) -> str:
    """The Kafka principal name (User:<this>) and, for worker and gateway, the MinIO user of a role."""
    return ADMIN if role == "admin" else f"fwv2-{role}"


def secure_dir(settings: DevSettings) -> Path:
    return settings.stack_dir.with_name(settings.stack_dir.name + "-secure")


@dataclass(frozen=True)
class Credentials:
    """Password of each Kafka user and secret of each MinIO user, by user name."""

    kafka: dict[str, str]
    s3: dict[str, str]

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        if path.is_file():
            data = json.loads(path.read_text())
            return cls(kafka=data["kafka"], s3=data["s3"])
        made = cls(
            kafka={user(r): secrets.token_urlsafe(18) for r in ("admin", *ROLES)},
            s3={user(r): secrets.token_urlsafe(18) for r in ("admin", "worker", "gateway")},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({"kafka": made.kafka, "s3": made.s3}, indent=2) + "\n")
        return made


class SecureLayout:
    """Where the secure stack lives and what each of its clients is given."""

    def __init__(self, base: DevSettings) -> None:
        self.base = base
        self.dir = secure_dir(base)
        self.tls = TlsFiles(self.dir / "tls")
        self.credentials = Credentials.load_or_create(self.dir / "credentials.json")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{PORTS['kafka_port']}"

    @property
    def s3_endpoint(self) -> str:
        return f"127.0.0.1:{PORTS['minio_port']}"

    def settings(self, role: str, **overrides: Any) -> DevSettings:
        """``base`` as the principal of ``role`` ("admin", "worker", "router", "gateway") sees this stack."""
        name = user(role)
        s3_user = name if name in self.credentials.s3 else None
        update: dict[str, Any] = {
            **PORTS,
            "stack_dir": self.dir,
            "kafka_bootstrap_servers": self.bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": MECHANISM,
            "kafka_sasl_username": name,
            "kafka_sasl_password": SecretStr(self.credentials.kafka[name]),
            "kafka_ssl_cafile": self.tls.ca,
            "s3_endpoint": self.s3_endpoint,
            "s3_secure": True,
            "s3_ca_file": self.tls.ca,
            # The router reaches no object store; it gets no S3 user.
            "s3_access_key": SecretStr(s3_user or ""),
            "s3_secret_key": SecretStr(self.credentials.s3[s3_user] if s3_user else ""),
            **overrides,
        }
        return self.base.model_copy(update=update)

    def env(self, role: str) -> dict[str, str]:
        """The environment variables that make a process ``role`` on this stack."""
        s = self.settings(role)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": s.kafka_security_protocol,
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": s.kafka_sasl_username or "",
            "KAFKA_SASL_PASSWORD": s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else "",
            "KAFKA_SSL_CAFILE": str(self.tls.ca),
            "S3_ENDPOINT": s.s3_endpoint,
            "S3_SECURE": "true",
            "S3_CA_FILE": str(self.tls.ca),
        }
        if s.s3_access_key.get_secret_value():
            env["S3_ACCESS_KEY"] = s.s3_access_key.get_secret_value()
            env["S3_SECRET_KEY"] = s.s3_secret_key.get_secret_value()
        return env

    def write_env_files(self) -> list[Path]:
        written = []
        for role in ("admin", *ROLES):
            path = self.dir / f"{role}.env"
            path.touch(mode=0o600)
            path.write_text("".join(f"{k}={v}\n" for k, v in self.env(role).items()))
            written.append(path)
        return written


def _BUCKET_LOCATION(bucket: str) -> dict[str, object]:  # noqa: N802 - reads as the constant it nearly is
    # minio-py asks a bucket's region before its first request when S3_REGION is unset.
    return {"Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [f"arn:aws:s3:::{bucket}"]}


def audio_read_policy(bucket: str) -> dict[str, object]:
    """The worker's MinIO policy: read objects of the audio bucket, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/*"]},
            _BUCKET_LOCATION(bucket),
        ],
    }


def upload_policy(bucket: str, prefix: str) -> dict[str, object]:
    """The gateway's: write (and remove, when the publish after an upload fails) under its upload prefix."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"],
            },
            _BUCKET_LOCATION(bucket),
        ],
    }
