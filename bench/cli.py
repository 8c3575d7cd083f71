"""The benchmarks' command line: ``fwv2 bench`` in a checkout, or ``python -m bench``; both parse the same flags.

The flags are defined here, beside the benchmarks they drive, so the service's CLI carries none of them:
``consumer.cli`` finds ``register`` by name (``DEV_PLUGINS``) where this package is present.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from devtools.settings import DevSettings

# The script modes that draw their figures with --plot (bench/plot.py): the others record numbers only.
PLOTTED = ("long",)


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--profile", action="append", help="profiles to run (default whisper-1-fast and whisper-1)")
    bench.add_argument("--repeat", type=int, default=5, help="copies of the sample set per run")
    bench.add_argument("--rounds", type=int, default=2, help="runs per profile, to see the noise")
    bench.add_argument("--files", nargs="*", help="audio files (default: the sample clips)")
    bench.add_argument("--speakers", action="store_true", help="the stage also diarizes (word+speaker granularity)")
    bench.add_argument("--cache", action="store_true", help="a duplicate served from the result cache against a miss")
    bench.add_argument("--json", type=Path, default=None, help="also write the results here as JSON")
    bench.add_argument("--latency", action="store_true", help="one 5 s clip at a time: p50/p95 against bare inference")
    bench.add_argument("--soak", action="store_true", help="worker RSS over many events (default 500)")
    bench.add_argument(
        "--status", action="store_true", help="the stage with StatusEvents against without, alternating rounds"
    )
    bench.add_argument("--long", action="store_true", help="one long file (default 1 h): peak RSS, partitions kept")
    bench.add_argument("--scale", action="store_true", help="1 worker against 2 in one group on a 4-partition topic")
    bench.add_argument("--events", type=int, default=None, help="events for --latency, --soak, --scale")
    bench.add_argument("--seconds", type=int, default=None, help="length of --long's generated file")
    bench.add_argument("--markdown", type=Path, default=None, help="write a BENCHMARKS.md section here")
    bench.add_argument(
        "--plot", type=Path, default=None, help="also draw the run's figures as PNGs into this folder (bench/plot.py)"
    )


def run(settings: DevSettings, args: argparse.Namespace) -> int:
    if argv := script_argv(args):  # --latency, --soak, --long, --scale: their own scripts
        return int(importlib.import_module(f"bench.{argv[0]}").main(argv[1:]))
    from bench.main import run_bench

    return run_bench(settings, args)


def script_argv(args: argparse.Namespace) -> list[str]:
    """``fwv2 bench --latency|--soak|--long|--scale|--status``: which script, and the options it takes."""
    mode = next((m for m in ("latency", "soak", "long", "scale", "status") if getattr(args, m, False)), None)
    if mode is None:
        return []
    argv = [mode]
    if args.profile:
        argv += ["--profile", args.profile[0]]
    if args.json:
        argv += ["--json", str(args.json)]
    if args.events and mode not in ("long", "status"):
        argv += ["--events", str(args.events)]
    if args.files and mode != "status":
        argv += {"latency": ["--clip", args.files[0]], "long": ["--file", args.files[0]]}.get(
            mode, ["--files", *args.files]
        )
    if mode in ("scale", "status"):
        argv += ["--rounds", str(args.rounds)]
    if mode == "long" and args.seconds:
        argv += ["--seconds", str(args.seconds)]
    if args.plot:
        if mode in PLOTTED:
            argv += ["--plot", str(args.plot)]
        else:
            say(f"--plot: --{mode} has no figure yet; nothing is drawn")
    return argv


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def register(sub: Any, summaries: dict[str, str]) -> list[str]:
    """Add ``bench`` to ``fwv2``'s subcommands; ``summaries`` are the service CLI's words."""
    bench = sub.add_parser("bench", help=summaries["bench"])
    add_arguments(bench)
    bench.set_defaults(func=run, settings=DevSettings)
    return ["bench"]


def main(argv: list[str] | None = None) -> int:
    from consumer.plumbing.logs import configure_logging

    parser = argparse.ArgumentParser(prog="python -m bench", description=run.__module__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings = DevSettings()
    configure_logging(settings.log_level, settings.log_format)
    return run(settings, args)
