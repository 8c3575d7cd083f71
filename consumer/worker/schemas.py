"""The worker's side of the schema registry: register the outputs' schemas, learn the inputs', wait out outages.

Only registry mode (``SCHEMA_REGISTRY_URL``) calls the registry; otherwise ``Wire`` answers at once.
An unreachable registry is waited for, with backoff, and never turns an event into a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.structs import ConsumerRecord

from consumer.contract.cloudevents import input_event_id
from consumer.contract.registry import RegistryError, RegistryUnavailable
from consumer.contract.wire import Wire
from consumer.plumbing.logs import get_logger
from consumer.plumbing.retry import backoff
from consumer.plumbing.settings import WorkerSettings
from consumer.worker.metrics import WorkerMetrics

log = get_logger("fwv2.worker")


class Schemas:
    def __init__(self, settings: WorkerSettings, wire: Wire, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.wire = wire
        self.metrics = metrics

    async def register(self, stop: asyncio.Event) -> bool:
        """Register the output schemas before any record is written (registry mode); False if stopped first.

        A registry that cannot be reached is waited for; one that refuses a schema (an incompatible
        change under the subject's rule) stops the worker, since every record would be refused too.
        """
        s = self.settings
        attempt = 0
        while True:
            try:
                ids = await asyncio.to_thread(
                    self.wire.register, s.kafka_output_topic, s.kafka_dead_letter_topic, s.kafka_status_topic
                )
            except RegistryUnavailable as exc:
                attempt += 1
                if await self._wait(exc, attempt, stop, None):
                    return False
                continue
            except RegistryError as exc:
                log.error("schema_refused", error=exc.message)
                raise
            if ids:
                log.info("schemas_registered", subjects=ids, framing=self.wire.framing)
            return True

    async def learn(self, record: ConsumerRecord, stop: asyncio.Event) -> bool:
        """Look up the writer schema a Confluent-framed input names, waiting out a down registry.

        The event waits, uncommitted, rather than being dead-lettered for the registry's outage;
        False when the worker is stopped meanwhile (the record is then left for the next owner).
        """
        attempt = 0
        while True:
            try:
                await self.wire.learn(record.value)
                return True
            except RegistryUnavailable as exc:
                attempt += 1
                event_id = input_event_id(record.headers) or (record.key or b"").decode(errors="replace") or None
                if await self._wait(exc, attempt, stop, event_id):
                    return False

    async def _wait(self, exc: RegistryUnavailable, attempt: int, stop: asyncio.Event, event_id: str | None) -> bool:
        """Log and count a registry outage, then back off; True when stopped meanwhile."""
        delay = backoff(self.settings, attempt)
        log.warning(
            "schema_registry_unavailable",
            event_id=event_id,
            error=exc.message,
            attempt=attempt,
            delay_s=round(delay, 2),
        )
        self.metrics.registry_unavailable.inc()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        return stop.is_set()
