"""ExactlyOnce's shared transactions, on a fake producer and consumer (the broker's side is tested in
tests/integration: test_freeze.py, test_reliability.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from consumer.plumbing.settings import Settings
from consumer.worker import delivery
from consumer.worker.delivery import ExactlyOnce, NotOwner

TP = TopicPartition("in", 0)


class FakeProducer:
    def __init__(self, log: list[Any], fail_commit: Exception | None = None) -> None:
        self.log, self.fail_commit = log, fail_commit

    async def start(self) -> None:
        self.log.append("init")

    async def stop(self) -> None:
        self.log.append("close")

    async def begin_transaction(self) -> None:
        self.log.append("begin")

    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> asyncio.Future[None]:
        self.log.append(("send", value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, int], group: str) -> None:
        self.log.append(("offsets", offsets[TP]))

    async def commit_transaction(self) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        self.log.append("commit")


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[int] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets[TP])


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("in", 0, offset, 0, 0, None, b"v", None, 0, 1, [])


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    entries: list[Any] = []
    monkeypatch.setattr(delivery, "make_producer", lambda *a, **k: FakeProducer(entries))
    return entries


def exactly_once(**settings: Any) -> tuple[ExactlyOnce, FakeConsumer, list[tuple[int, list[str]]]]:
    discarded: list[tuple[int, list[str]]] = []
    consumer = FakeConsumer()
    eos = ExactlyOnce(
        Settings(processing_guarantee="exactly_once", **settings),
        consumer,  # type: ignore[arg-type]
        asyncio.Event(),
        lambda tp, first, events, reason: discarded.append((first, events)),
    )
    return eos, consumer, discarded


async def test_quick_outcomes_share_one_transaction_committed_past_the_last(log: list[Any]) -> None:
    eos, consumer, _ = exactly_once()
    await eos.assigned([TP])
    for offset in (5, 6):
        await eos.deliver(record(offset), "out", None, f"o{offset}".encode(), f"e{offset}")
    await eos.skip(record(7))  # a duplicate joins the open transaction
    assert eos.pending and "commit" not in log
    await eos.flush()
    assert not eos.pending
    assert log == ["init", "begin", ("send", b"o5"), ("send", b"o6"), ("offsets", 8), "commit"]
    assert consumer.commits == []  # the offset went with the transaction, not past it


async def test_a_transaction_is_committed_at_its_size_limit(log: list[Any]) -> None:
    eos, _, _ = exactly_once(transaction_max_outcomes=2)
    await eos.assigned([TP])
    for offset in (1, 2, 3):
        await eos.deliver(record(offset), "out", None, b"x", f"e{offset}")
    assert log.count("commit") == 1 and ("offsets", 3) in log and eos.pending


async def test_a_fenced_commit_discards_every_outcome_of_the_transaction_from_its_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries: list[Any] = []
    monkeypatch.setattr(delivery, "make_producer", lambda *a, **k: FakeProducer(entries, ProducerFenced()))
    eos, _, discarded = exactly_once()
    await eos.assigned([TP])
    await eos.deliver(record(10), "out", None, b"a", "e10")
    await eos.deliver(record(11), "out", None, b"b", "e11")
    await eos.flush()
    assert discarded == [(10, ["e10", "e11"])]
    assert not eos.pending and TP not in eos.producers  # closed: the next one is opened after an ownership check


async def test_the_size_limit_commit_failing_is_the_outcome_discarded(monkeypatch: pytest.MonkeyPatch) -> None:
    entries: list[Any] = []
    monkeypatch.setattr(
        delivery, "make_producer", lambda *a, **k: FakeProducer(entries, KafkaConnectionError("broker gone"))
    )
    eos, _, discarded = exactly_once(transaction_max_outcomes=1)
    await eos.assigned([TP])
    with pytest.raises(NotOwner):
        await eos.deliver(record(3), "out", None, b"a", "e3")
    assert discarded == [(3, ["e3"])]
