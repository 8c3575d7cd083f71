"""``fwv2``: the stage's one command.

fwv2 worker                  run a worker of the consumer group
fwv2 router                  hand each event to the GPU or the CPU pool (docs/ROUTING.md)
fwv2 stack install|up|down|status [--secure]  the embedded stack: genuine Kafka and MinIO on 127.0.0.1
fwv2 submit FILE... [--wait] upload files and produce their events; --wait: a progress bar each, then results
fwv2 tail [--status]         read transcripts (and dead letters), or the job states, from the topics
fwv2 demo                    stack up, worker, submit the sample clips, print transcripts, stack down
fwv2 bench                   the stage against bare faster-whisper, side by side
fwv2 gateway                 the OpenAI-style HTTP gateway: uploads in, transcripts out
fwv2 settings                print the effective settings (secrets masked)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.plumbing.logs import configure_logging
from consumer.plumbing.settings import (
    PROCESSES,
    GatewaySettings,
    KafkaSettings,
    RouterSettings,
    Settings,
    WorkerSettings,
)
from pipeline.render import FORMATS
from pipeline.types import Granularity

if TYPE_CHECKING:
    from consumer.client import StatusReader


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _explained(settings: KafkaSettings, main: Coroutine[Any, Any, int]) -> int:
    """Run a service; if Kafka refused it, say why and how to fix it (``kafka.report_failure``), and exit 1."""
    from aiokafka.errors import KafkaError

    from consumer.plumbing.kafka import report_failure

    try:
        return asyncio.run(main)
    except KafkaError as exc:
        asyncio.run(report_failure(settings, exc))
        return 1


def cmd_worker(settings: WorkerSettings, _: argparse.Namespace) -> int:
    from consumer.worker.runner import run_worker

    return _explained(settings, run_worker(settings))


def cmd_router(settings: RouterSettings, _: argparse.Namespace) -> int:
    from consumer.router.service import run_router

    return _explained(settings, run_router(settings))


@contextlib.asynccontextmanager
async def _status_reader(settings: Settings) -> AsyncIterator[StatusReader | None]:
    """The status topic's reader, or None where the deployment has none: the bars then jump at the end."""
    from consumer.client import StatusReader

    if not settings.kafka_status_topic:
        yield None
        return
    async with StatusReader(settings) as reader:
        yield reader


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.client import ResultReader, new_reference, print_result, publish_references, upload
    from consumer.progress import ProgressBars

    granularities = tuple(Granularity(g) for g in (args.granularity or ["segment"]))

    async def go() -> int:
        refs = []
        for path in map(Path, args.files):
            obj = upload(settings, path)
            refs.append(
                new_reference(
                    obj,
                    profile=args.profile,
                    language=args.language,
                    timestamp_granularities=granularities,
                    diarization=args.diarization,
                )
            )
            _stderr(f"uploaded {path} -> s3://{obj.bucket}/{obj.key} (event {refs[-1].event_id})")
        if not args.wait:
            await publish_references(settings, refs, fmt=args.encoding)
            return 0
        async with ResultReader(settings) as reader, _status_reader(settings) as states:
            await publish_references(settings, refs, fmt=args.encoding)
            _stderr(f"submitted {len(refs)} event(s); waiting for results (up to {args.timeout:.0f} s)...")
            wanted = {r.event_id for r in refs}
            done = 0
            bars = ProgressBars([(r.event_id, Path(r.object.key).name) for r in refs])

            async def show() -> None:
                nonlocal done
                async for result in reader.results():
                    if result.event_id in wanted:
                        print_result(result, args.format, frozenset(granularities))
                        done += 1
                        if done == len(wanted):
                            return

            async def follow() -> None:
                if states is not None:
                    async for event in states.statuses():
                        bars.update(event)

            watcher = asyncio.create_task(follow())
            try:
                await asyncio.wait_for(show(), args.timeout)
            except TimeoutError:
                _stderr(f"timed out: {len(wanted) - done} of {len(wanted)} result(s) missing")
                return 1
            finally:
                watcher.cancel()
                bars.close()
        return 0

    return asyncio.run(go())


def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.client import ResultReader, StatusReader, describe_status, print_result

    async def states() -> int:
        async with StatusReader(settings, from_beginning=args.from_beginning) as reader:
            count = 0
            async for event in reader.statuses(idle_timeout_s=args.idle_timeout):
                if args.format == "avro-json":
                    print(json.dumps(event.to_avro(), ensure_ascii=False, default=str), flush=True)
                else:
                    print(describe_status(event), flush=True)
                count += 1
                if args.max and count >= args.max:
                    break
        return 0

    if args.status:
        return asyncio.run(states())

    async def go() -> int:
        async with ResultReader(settings, from_beginning=args.from_beginning) as reader:
            count = 0
            async for result in reader.results(idle_timeout_s=args.idle_timeout):
                print_result(result, args.format)
                count += 1
                if args.max and count >= args.max:
                    break
        return 0

    return asyncio.run(go())


def cmd_gateway(settings: GatewaySettings, _: argparse.Namespace) -> int:
    from consumer.gateway.server import run_gateway

    return run_gateway(settings)


def cmd_settings(_: Settings, args: argparse.Namespace) -> int:
    # What that process would read, validated as it would be: a bad value fails here as it would there.
    settings = PROCESSES[args.process]()
    for name, value in sorted(settings.model_dump().items()):
        print(f"{name.upper()}={value}")
    return 0


DEV_COMMANDS = {
    "stack": "the embedded Kafka + MinIO stack",
    "demo": "the whole path on the embedded stack with the sample clips",
    "bench": "the stage against bare faster-whisper, in one run",
}


# Where the developer's commands come from, in a checkout: each module has register(subparsers, summaries).
DEV_PLUGINS = ("devtools.cli", "bench.cli")


def _developer_commands(sub: Any) -> None:
    """``fwv2 stack|demo|bench``: from the developer's tools (devtools/, bench/) where a checkout has them.

    The service (its wheel and its images) holds none of them, and imports them by name only here; without
    them each command says how to get them instead of failing with an import error.
    """
    import importlib

    found: set[str] = set()
    for name in DEV_PLUGINS:
        try:
            plugin = importlib.import_module(name)
        except ImportError:
            continue
        found |= set(plugin.register(sub, DEV_COMMANDS))
    for name, summary in DEV_COMMANDS.items():
        if name not in found:
            parser = sub.add_parser(name, help=f"{summary} (source checkout only)", add_help=False)
            parser.add_argument("rest", nargs=argparse.REMAINDER)
            parser.set_defaults(func=_no_devtools)


def _no_devtools(_: Settings, args: argparse.Namespace) -> int:
    _stderr(
        f"`fwv2 {args.command}` is a developer's tool: it runs from a source checkout after `bash scripts/setup.sh` "
        "(devtools/ and bench/ are not in the service's package or images)"
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fwv2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    # Each service loads only the settings groups it uses (consumer/plumbing/settings); the tools load all.
    sub.add_parser("worker", help="run a worker").set_defaults(func=cmd_worker, settings=WorkerSettings)
    sub.add_parser("router", help="route events to the GPU or CPU pool").set_defaults(
        func=cmd_router, settings=RouterSettings
    )

    submit = sub.add_parser("submit", help="upload files and produce their events")
    submit.add_argument("files", nargs="+")
    submit.add_argument("--profile", default="whisper-1")
    submit.add_argument("--language", default=None)
    submit.add_argument("--granularity", action="append", choices=[g.value for g in Granularity])
    submit.add_argument("--diarization", default="auto", choices=["auto", "always", "never"])
    submit.add_argument("--encoding", default="json", choices=["json", "avro"], help="how the event value is written")
    submit.add_argument("--wait", action="store_true", help="print each result as it arrives")
    submit.add_argument("--format", default="text", choices=[*FORMATS, "avro-json"])
    submit.add_argument("--timeout", type=float, default=300.0)
    submit.set_defaults(func=cmd_submit)

    tail = sub.add_parser("tail", help="print transcripts and dead letters")
    tail.add_argument("--format", default="text", choices=[*FORMATS, "avro-json"])
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=0, help="stop after this many results")
    tail.add_argument("--idle-timeout", type=float, default=None, help="stop after this many idle seconds")
    tail.add_argument(
        "--status", action="store_true", help="the job states instead (accepted, progress, completed, dead_lettered)"
    )
    tail.set_defaults(func=cmd_tail)

    sub.add_parser("gateway", help="the OpenAI-style HTTP gateway (GATEWAY_PORT)").set_defaults(
        func=cmd_gateway, settings=GatewaySettings
    )

    _developer_commands(sub)

    show = sub.add_parser("settings", help="print the effective settings (secrets masked)")
    show.add_argument("--process", choices=list(PROCESSES), default="all", help="only what this process reads")
    show.set_defaults(func=cmd_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Known arguments only for the placeholders of the developer's commands, which take any (and explain).
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.func is not _no_devtools:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    settings = getattr(args, "settings", Settings)()
    configure_logging(settings.log_level, settings.log_format)
    return int(args.func(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
