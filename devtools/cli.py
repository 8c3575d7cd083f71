"""The developer's commands of ``fwv2``: ``stack`` and ``demo``, added where this package is present.

``consumer.cli`` finds this module by name (``DEV_PLUGINS``) inside a source checkout set up by
``scripts/setup.sh``; the service never imports the developer's tools otherwise, and this module imports
the service, never the other way. ``bench`` comes from ``bench/cli.py`` the same way.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from devtools.settings import DevSettings
from pipeline.render import FORMATS


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_stack(settings: DevSettings, args: argparse.Namespace) -> int:
    from devtools.stack import EmbeddedStack

    extras = [name.strip() for name in (args.with_ or "").split(",") if name.strip()]
    stack = EmbeddedStack(settings, echo=_stderr, secure=args.secure, extras=extras)
    if args.action == "install":
        stack.install()
    elif args.action == "up":
        stack.up()
        s = stack.settings
        scheme = "https" if args.secure else "http"
        _stderr(f"stack ready: kafka {s.kafka_bootstrap_servers}, s3 {scheme}://{s.s3_endpoint}")
    elif args.action == "down":
        stack.down()
    else:
        print("running" if stack.is_running() else "stopped")
    return 0


def cmd_demo(settings: DevSettings, args: argparse.Namespace) -> int:
    from devtools.demo import run_demo

    return run_demo(settings, keep_stack=args.keep_stack, fmt=args.format)


def register(sub: Any, summaries: dict[str, str]) -> list[str]:
    """Add ``stack`` and ``demo`` to ``fwv2``'s subcommands; ``summaries`` are the service CLI's words."""
    stack = sub.add_parser("stack", help=summaries["stack"])
    stack.add_argument("action", choices=["install", "up", "down", "status"])
    stack.add_argument(
        "--secure",
        action="store_true",
        help="the locked-down stack beside the plaintext one: TLS, SASL/SCRAM, ACLs, MinIO users (docs/SECURITY.md)",
    )
    stack.add_argument(
        "--with",
        dest="with_",
        metavar="registry,connect,postgres",
        help="also the downstream servers: a schema registry, Kafka Connect with the JDBC sink, PostgreSQL",
    )
    stack.set_defaults(func=cmd_stack, settings=DevSettings)

    demo = sub.add_parser("demo", help=summaries["demo"])
    demo.add_argument("--keep-stack", action="store_true", help="leave Kafka and MinIO running afterwards")
    demo.add_argument("--format", default="text", choices=[*FORMATS, "avro-json"])
    demo.set_defaults(func=cmd_demo, settings=DevSettings)

    return ["stack", "demo"]
