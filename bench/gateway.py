"""``python -m bench.gateway``: the same clips through the HTTP gateway and through a direct publish.

A real ``fwv2 worker`` and a real ``fwv2 gateway`` run as processes on fresh topics of the embedded
stack (the worker's result cache off, so every request is transcribed). Each round sends N uploads at
once both ways: directly as ``fwv2 submit`` does (upload to the bucket, publish the AudioReference,
read the result topic), and as N concurrent multipart POSTs to the gateway, which waits for each
result itself. The clock of a request runs from its first byte sent to its answer in hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from consumer.client import ResultReader, new_reference, upload
from consumer.plumbing.kafka import make_producer
from consumer.plumbing.provision import ensure_topics, stage_topics
from devtools.samples import make_samples
from devtools.settings import DevSettings

PROFILE = "whisper-1-fast"


@dataclass(frozen=True)
class Side:
    name: str
    wall_s: float
    latencies: list[float]

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.wall_s

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def direct(settings: DevSettings, files: list[Path]) -> Side:
    """N at once the way `fwv2 submit` does it (upload, publish, read the result topic), one producer for all."""
    producer = make_producer(settings, "bench")
    await producer.start()
    begun: dict[str, float] = {}
    try:
        async with ResultReader(settings) as reader:
            started = time.perf_counter()

            async def one(path: Path) -> str:
                t0 = time.perf_counter()
                ref = new_reference(await asyncio.to_thread(upload, settings, path), profile=PROFILE)
                begun[ref.event_id] = t0
                await producer.send_and_wait(settings.kafka_input_topic, ref.to_json(), key=ref.event_id.encode())
                return ref.event_id

            ids = await asyncio.gather(*(one(p) for p in files))
            done: dict[str, float] = {}
            async for result in reader.results():
                if result.event_id in begun and result.event_id not in done:
                    done[result.event_id] = time.perf_counter()
                    if len(done) == len(ids):
                        break
            wall = time.perf_counter() - started
    finally:
        await producer.stop()
    return Side("direct publish", wall, [done[i] - begun[i] for i in ids])


async def through_gateway(url: str, files: list[Path]) -> Side:
    """N concurrent multipart POSTs, each answered with its transcript."""
    limits = httpx.Limits(max_connections=len(files) + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def one(path: Path) -> float:
            t0 = time.perf_counter()
            answer = await client.post(
                f"{url}/v1/audio/transcriptions",
                data={"model": PROFILE},
                files={"file": (path.name, path.read_bytes())},
            )
            answer.raise_for_status()
            return time.perf_counter() - t0

        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(p) for p in files))
        return Side("gateway", time.perf_counter() - started, list(latencies))


async def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError("fwv2 gateway exited; see its log")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("fwv2 gateway did not become ready")


async def bench(settings: DevSettings, n: int, rounds: int, threads: int, single: int) -> list[tuple[Side, Side]]:
    run = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={
            "kafka_input_topic": f"bench-gw.{run}.in",
            "kafka_output_topic": f"bench-gw.{run}.out",
            "kafka_dead_letter_topic": f"bench-gw.{run}.dlq",
            "kafka_group_id": f"bench-gw-{run}",
        }
    )
    loop = asyncio.get_running_loop()
    await ensure_topics(s.kafka_bootstrap_servers, stage_topics(s), s.kafka_topic_partitions, loop.time() + 30, _say)
    clips = list(make_samples(Path(tempfile.gettempdir()) / "fwv2-samples").values())
    files = [clips[i % len(clips)] for i in range(n)]
    port = _free_port()
    env = {
        **os.environ,
        "KAFKA_INPUT_TOPIC": s.kafka_input_topic,
        "KAFKA_OUTPUT_TOPIC": s.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": s.kafka_dead_letter_topic,
        "KAFKA_GROUP_ID": s.kafka_group_id,
        "CPU_THREADS": str(threads),
        "METRICS_PORT": "0",
        "RESULT_CACHE_ENABLED": "false",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen([sys.executable, "-m", "consumer.cli", "worker"], env=env)
    gateway = subprocess.Popen([sys.executable, "-m", "consumer.cli", "gateway"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(url, gateway)
        _say("warming up (model load, first request both ways)...")
        await through_gateway(url, files[:1])
        await direct(s, files[:1])
        results = []
        for r in range(rounds):
            # Alternate which side goes first, so neither always meets a warmer machine.
            if r % 2 == 0:
                first = await direct(s, files)
                second = await through_gateway(url, files)
            else:
                second = await through_gateway(url, files)
                first = await direct(s, files)
            _say(f"round {r + 1}: direct {first.per_s:.2f}/s, gateway {second.per_s:.2f}/s")
            results.append((first, second))
        # One request at a time: no queue at the worker, so the difference is the gateway's own cost.
        alone = (Side("direct publish", 0, []), Side("gateway", 0, []))
        for path in files[:single]:
            alone[0].latencies.extend((await direct(s, [path])).latencies)
            alone[1].latencies.extend((await through_gateway(url, [path])).latencies)
        results.append(alone)
        return results
    finally:
        for process in (gateway, worker):
            process.terminate()
        for process in (gateway, worker):
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def markdown(results: list[tuple[Side, Side]], n: int, threads: int) -> str:
    rows = [
        "| round | requests | direct wall s | direct req/s | gateway wall s | gateway req/s | throughput ratio | "
        "direct p50 / p95 s | gateway p50 / p95 s | added p50 / p95 s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    *concurrent, (d1, g1) = results
    for i, (d, g) in enumerate(concurrent, start=1):
        rows.append(
            f"| {i} | {n} | {d.wall_s:.2f} | {d.per_s:.2f} | {g.wall_s:.2f} | {g.per_s:.2f} | **{g.per_s / d.per_s:.3f}** | "
            f"{d.pct(0.5):.2f} / {d.pct(0.95):.2f} | {g.pct(0.5):.2f} / {g.pct(0.95):.2f} | "
            f"{g.pct(0.5) - d.pct(0.5):+.2f} / {g.pct(0.95) - d.pct(0.95):+.2f} |"
        )
    alone = (
        f"\nOne request at a time ({len(d1.latencies)} each way, no queue at the worker): direct p50 {d1.pct(0.5):.3f} s, "
        f"gateway p50 {g1.pct(0.5):.3f} s, added {g1.pct(0.5) - d1.pct(0.5):+.3f} s "
        f"(max {max(d1.latencies):.3f} / {max(g1.latencies):.3f} s).\n"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        "\n".join(rows)
        + "\n"
        + alone
        + (
            f"\n{threads} inference threads, profile {PROFILE}, the four sample clips in turn; "
            f"{os.cpu_count()} cores, load average at the end {load}.\n"
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20, help="concurrent uploads per side and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="the worker's CPU_THREADS")
    parser.add_argument("--single", type=int, default=8, help="requests sent one at a time each way, after the rounds")
    args = parser.parse_args(argv)
    results = asyncio.run(bench(DevSettings(), args.n, args.rounds, args.threads, args.single))
    print(markdown(results, args.n, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
