"""``fwv2``: the stage's one command.

fwv2 worker                  run a worker of the consumer group
fwv2 router                  hand each event to the GPU or the CPU pool (docs/ROUTING.md)
fwv2 stack install|up|down|status [--secure]  the embedded stack: genuine Kafka and MinIO on 127.0.0.1
fwv2 submit FILE...          upload files and produce their AudioReference events
fwv2 tail                    read transcripts (and dead letters) from the output topics
fwv2 demo                    stack up, worker, submit the sample clips, print transcripts, stack down
fwv2 bench                   the stage against bare faster-whisper, side by side
fwv2 gateway                 the OpenAI-style HTTP gateway: uploads in, transcripts out
fwv2 settings                print the effective settings (secrets masked)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

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


def cmd_stack(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.dev.stack import EmbeddedStack

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


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.dev.client import ResultReader, new_reference, print_result, publish_references, upload

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
        async with ResultReader(settings) as reader:
            await publish_references(settings, refs, fmt=args.encoding)
            _stderr(f"submitted {len(refs)} event(s); waiting for results (up to {args.timeout:.0f} s)...")
            wanted = {r.event_id for r in refs}
            done = 0

            async def show() -> None:
                nonlocal done
                async for result in reader.results():
                    if result.event_id in wanted:
                        print_result(result, args.format, frozenset(granularities))
                        done += 1
                        if done == len(wanted):
                            return

            try:
                await asyncio.wait_for(show(), args.timeout)
            except TimeoutError:
                _stderr(f"timed out: {len(wanted) - done} of {len(wanted)} result(s) missing")
                return 1
        return 0

    return asyncio.run(go())


def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.dev.client import ResultReader, print_result

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


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.dev.demo import run_demo

    return run_demo(settings, keep_stack=args.keep_stack, fmt=args.format)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    # The benchmarks live in bench/ beside the package, in a source checkout only (not in the images).
    try:
        from bench.main import run_bench
    except ImportError:
        _stderr("the benchmarks run from a source checkout: `python -m bench --help` in the repository")
        return 2
    if argv := _script_argv(args):  # --latency, --soak, --long, --scale: their own scripts
        import importlib

        return int(importlib.import_module(f"bench.{argv[0]}").main(argv[1:]))
    return run_bench(settings, args)


def _script_argv(args: argparse.Namespace) -> list[str]:
    """``fwv2 bench --latency|--soak|--long|--scale``: which script, and the options it takes from the bench's."""
    mode = next((m for m in ("latency", "soak", "long", "scale") if getattr(args, m, False)), None)
    if mode is None:
        return []
    argv = [mode]
    if args.profile:
        argv += ["--profile", args.profile[0]]
    if args.json:
        argv += ["--json", str(args.json)]
    if args.events and mode != "long":
        argv += ["--events", str(args.events)]
    if args.files:
        argv += {"latency": ["--clip", args.files[0]], "long": ["--file", args.files[0]]}.get(
            mode, ["--files", *args.files]
        )
    if mode == "scale":
        argv += ["--rounds", str(args.rounds)]
    if mode == "long" and args.seconds:
        argv += ["--seconds", str(args.seconds)]
    return argv


def cmd_gateway(settings: GatewaySettings, _: argparse.Namespace) -> int:
    from gateway.server import run_gateway

    return run_gateway(settings)


def cmd_settings(_: Settings, args: argparse.Namespace) -> int:
    # What that process would read, validated as it would be: a bad value fails here as it would there.
    settings = PROCESSES[args.process]()
    for name, value in sorted(settings.model_dump().items()):
        print(f"{name.upper()}={value}")
    return 0


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

    stack = sub.add_parser("stack", help="the embedded Kafka + MinIO stack")
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
    stack.set_defaults(func=cmd_stack)

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
    tail.set_defaults(func=cmd_tail)

    demo = sub.add_parser("demo", help="the whole path on the embedded stack with the sample clips")
    demo.add_argument("--keep-stack", action="store_true", help="leave Kafka and MinIO running afterwards")
    demo.add_argument("--format", default="text", choices=[*FORMATS, "avro-json"])
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="the stage against bare faster-whisper, in one run")
    bench.add_argument("--profile", action="append", help="profiles to run (default whisper-1-fast and whisper-1)")
    bench.add_argument("--repeat", type=int, default=5, help="copies of the sample set per run")
    bench.add_argument("--rounds", type=int, default=2, help="runs per profile, to see the noise")
    bench.add_argument("--files", nargs="*", help="audio files (default: the sample clips)")
    bench.add_argument("--speakers", action="store_true", help="the stage also diarizes (word+speaker granularity)")
    bench.add_argument("--cache", action="store_true", help="a duplicate served from the result cache against a miss")
    bench.add_argument("--json", type=Path, default=None, help="also write the results here as JSON")
    bench.add_argument("--latency", action="store_true", help="one 5 s clip at a time: p50/p95 against bare inference")
    bench.add_argument("--soak", action="store_true", help="worker RSS over many events (default 500)")
    bench.add_argument("--long", action="store_true", help="one long file (default 1 h): peak RSS, partitions kept")
    bench.add_argument("--scale", action="store_true", help="1 worker against 2 in one group on a 4-partition topic")
    bench.add_argument("--events", type=int, default=None, help="events for --latency, --soak, --scale")
    bench.add_argument("--seconds", type=int, default=None, help="length of --long's generated file")
    bench.add_argument("--markdown", type=Path, default=None, help="write a BENCHMARKS.md section here")
    bench.set_defaults(func=cmd_bench)

    sub.add_parser("gateway", help="the OpenAI-style HTTP gateway (GATEWAY_PORT)").set_defaults(
        func=cmd_gateway, settings=GatewaySettings
    )

    show = sub.add_parser("settings", help="print the effective settings (secrets masked)")
    show.add_argument("--process", choices=list(PROCESSES), default="all", help="only what this process reads")
    show.set_defaults(func=cmd_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = getattr(args, "settings", Settings)()
    configure_logging(settings.log_level, settings.log_format)
    return int(args.func(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
