"""Is the broker REALLY ready? Proven by doing what the stage does, not by a log line.

For about half a second after "Kafka Server started" the group coordinator answers
NOT_COORDINATOR, and aiokafka's admin ``list_consumer_group_offsets`` turns that into ``{}``
instead of an error. So readiness is a real round trip: commit an offset in a throwaway group
and read the same value back; then run one empty transaction so the transaction coordinator
(and its internal topic) exists before the first test needs it.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.plumbing.provision import NotReady, retry_until

# Fixed names: repeated checks reuse one group and one transactional id instead of piling up.
READY_GROUP = "fwv2-stack-readiness"
READY_TRANSACTIONAL_ID = "fwv2-stack-readiness"


async def wait_group_coordinator(
    bootstrap: str, topic: str, deadline: float, security: dict[str, Any] | None = None
) -> None:
    """Until an offset committed in a group can be read back from the coordinator.

    ``security``: TLS and SASL options of the clients (``kafka.security_options``), for the secure stack.
    """
    tp = TopicPartition(topic, 0)

    async def attempt() -> None:
        # commit() raises unless the coordinator accepted it, and committed() must then return
        # the value rather than None. Offset 0 keeps the group's lag sane in any monitoring.
        token = 0
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=READY_GROUP,
            client_id="fwv2-stack-readiness",
            enable_auto_commit=False,
            request_timeout_ms=5_000,
            **(security or {}),
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.commit({tp: token})
            got = await consumer.committed(tp)
            if got != token:
                raise NotReady(f"committed {token} but the coordinator answered {got}")
        finally:
            await consumer.stop()

    await retry_until(deadline, "group coordinator", attempt)


async def wait_transactions(bootstrap: str, deadline: float, security: dict[str, Any] | None = None) -> None:
    """Until a transactional producer gets a producer id and commits (an empty transaction)."""

    async def attempt() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="fwv2-stack-readiness",
            transactional_id=READY_TRANSACTIONAL_ID,
            request_timeout_ms=5_000,
            **(security or {}),
        )
        await producer.start()
        try:
            async with producer.transaction():
                pass
        finally:
            await producer.stop()

    await retry_until(deadline, "transaction coordinator", attempt)
