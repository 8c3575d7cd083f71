"""Kafka ACLs of the stage's principals: what the worker, the router and the gateway each may do.

The secure stack's broker runs KRaft's StandardAuthorizer with no ACL meaning no access, so each
principal gets exactly this (docs/SECURITY.md has the table):

- worker:  READ its input topics and its group; WRITE its output and dead-letter topics (and READ
           them: on assignment it reads their tails to learn which events are done, consumer.worker.dedupe);
           WRITE its transactional ids, PREFIXED ``<group>-`` (one per input partition under
           exactly_once: ``<group>-<topic>-<partition>``). Its idempotent producer needs nothing on the
           cluster: Kafka 2.8+ lets a principal with WRITE on a topic have a producer id (KIP-679).
- router:  READ the input topic and its group; WRITE the pools' topics; its transactional ids,
           PREFIXED ``<router group>-`` (``<router group>-<host>``); DESCRIBE the GPU pool's group
           and topic, whose lag it watches.
- gateway: WRITE the input topic; READ the output and dead-letter topics (without a group).

aiokafka's admin client has no ACL calls; the CreateAcls and DeleteAcls requests it ships are
sent as they are.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

from devtools.settings import DevSettings


class Resource(enum.IntEnum):  # Kafka's ResourceType codes
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Pattern(enum.IntEnum):  # PatternType codes
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):  # AclOperation codes
    READ = 3
    WRITE = 4
    DESCRIBE = 8


_ALLOW = 3  # AclPermissionType.ALLOW
_ANY_HOST = "*"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule: ``principal`` may ``operation`` on ``resource`` ``name`` (a prefix when PREFIXED)."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = Pattern.LITERAL

    def __str__(self) -> str:
        prefix = "*" if self.pattern is Pattern.PREFIXED else ""
        return f"{self.principal} {self.operation.name} {self.resource.name}:{self.name}{prefix}"


def _grant(
    principal: str, resource: Resource, names: Iterable[str], *ops: Operation, pattern: Pattern = Pattern.LITERAL
) -> list[Acl]:
    return [Acl(principal, resource, name, op, pattern) for name in dict.fromkeys(names) if name for op in ops]


def worker_acls(
    settings: DevSettings,
    principal: str,
    input_topics: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
) -> list[Acl]:
    """The worker's rules; by default for the settings' own input topic and group."""
    s = settings
    inputs = input_topics or [
        s.kafka_input_topic,
        *([s.kafka_notification_topic] if s.kafka_notification_topic else []),
    ]
    groups = groups or [s.kafka_group_id]
    return [
        *_grant(principal, Resource.TOPIC, inputs, Operation.READ, Operation.DESCRIBE),
        *_grant(
            principal,
            Resource.TOPIC,
            [s.kafka_output_topic, s.kafka_dead_letter_topic],
            Operation.WRITE,
            Operation.DESCRIBE,
            Operation.READ,
        ),
        # Its StatusEvents (consumer.worker.status): written only, by their own producer.
        *_grant(principal, Resource.TOPIC, _status(s), Operation.WRITE, Operation.DESCRIBE),
        *_grant(principal, Resource.GROUP, groups, Operation.READ, Operation.DESCRIBE),
        *_grant(
            principal,
            Resource.TRANSACTIONAL_ID,
            [f"{g}-" for g in groups],
            Operation.WRITE,
            Operation.DESCRIBE,
            pattern=Pattern.PREFIXED,
        ),
    ]


def router_acls(settings: DevSettings, principal: str) -> list[Acl]:
    s = settings
    txn = (
        _grant(principal, Resource.TRANSACTIONAL_ID, [s.router_transactional_id], Operation.WRITE, Operation.DESCRIBE)
        if s.router_transactional_id
        else _grant(
            principal,
            Resource.TRANSACTIONAL_ID,
            [f"{s.router_group_id}-"],
            Operation.WRITE,
            Operation.DESCRIBE,
            pattern=Pattern.PREFIXED,
        )
    )
    return [
        *_grant(principal, Resource.TOPIC, [s.kafka_input_topic], Operation.READ, Operation.DESCRIBE),
        *_grant(principal, Resource.GROUP, [s.router_group_id], Operation.READ, Operation.DESCRIBE),
        *_grant(principal, Resource.TOPIC, [s.kafka_gpu_topic, s.kafka_cpu_topic], Operation.WRITE, Operation.DESCRIBE),
        *txn,
        *_grant(principal, Resource.GROUP, [s.router_gpu_group_id], Operation.DESCRIBE),
    ]


def gateway_acls(settings: DevSettings, principal: str) -> list[Acl]:
    s = settings
    return [
        *_grant(principal, Resource.TOPIC, [s.kafka_input_topic], Operation.WRITE, Operation.DESCRIBE),
        *_grant(
            principal,
            Resource.TOPIC,
            [s.kafka_output_topic, s.kafka_dead_letter_topic, *_status(s)],
            Operation.READ,
            Operation.DESCRIBE,
        ),
    ]


def _status(settings: DevSettings) -> list[str]:
    return [settings.kafka_status_topic] if settings.kafka_status_topic else []


async def create_acls(admin: AIOKafkaAdminClient, acls: Iterable[Acl]) -> None:
    """Add each rule (adding one that exists is a no-op for the broker)."""
    for acl in acls:
        request = CreateAclsRequest(
            acl.resource, acl.name, acl.pattern, acl.principal, _ANY_HOST, acl.operation, _ALLOW
        )
        response = await admin._send_request(request)  # noqa: SLF001 - aiokafka has no public ACL call
        for code, message in response.creation_responses:
            if code:
                raise for_code(code)(f"creating ACL {acl}: {message}")


async def delete_acls(admin: AIOKafkaAdminClient, acls: Iterable[Acl]) -> None:
    """Remove exactly these rules."""
    for acl in acls:
        request = DeleteAclsRequest(
            acl.resource, acl.name, acl.pattern, acl.principal, _ANY_HOST, acl.operation, _ALLOW
        )
        response = await admin._send_request(request)  # noqa: SLF001 - aiokafka has no public ACL call
        for result in response.filter_responses:
            if result[0]:
                raise for_code(result[0])(f"deleting ACL {acl}: {result[1]}")
