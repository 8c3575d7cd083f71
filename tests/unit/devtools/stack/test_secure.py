"""The secure stack's pure parts: ACLs per principal, MinIO policies, refusals explained without secrets."""

from __future__ import annotations

import ssl

from aiokafka.errors import SaslAuthenticationFailed, TopicAuthorizationFailedError
from pydantic import SecretStr

from consumer.plumbing.kafka import NotAuthorizedError, _diagnosis, explain
from consumer.plumbing.settings import Settings
from devtools.stack.acls import Operation, Pattern, Resource, gateway_acls, router_acls, worker_acls
from devtools.stack.secure import audio_read_policy, upload_policy


def _rules(acls: list) -> set[str]:
    return {str(a) for a in acls}


def test_the_worker_reads_its_input_and_group_writes_its_outputs_and_its_prefixed_transactional_ids() -> None:
    s = Settings(
        kafka_group_id="pool",
        kafka_input_topic="in",
        kafka_output_topic="out",
        kafka_dead_letter_topic="dlq",
        kafka_status_topic="status",
    )
    rules = _rules(worker_acls(s, "User:w"))
    assert "User:w READ TOPIC:in" in rules and "User:w WRITE TOPIC:in" not in rules
    assert {"User:w WRITE TOPIC:out", "User:w WRITE TOPIC:dlq", "User:w READ GROUP:pool"} <= rules
    assert "User:w WRITE TOPIC:status" in rules and "User:w READ TOPIC:status" not in rules  # StatusEvents
    # Under exactly_once: one producer per input partition, "<group>-<topic>-<partition>".
    assert "User:w WRITE TRANSACTIONAL_ID:pool-*" in rules
    assert not any(a.resource is Resource.CLUSTER for a in worker_acls(s, "User:w"))
    assert not any("TOPIC:audio" in r for r in rules)  # only the settings' own topics


def test_the_router_and_the_gateway_get_only_their_parts() -> None:
    s = Settings(
        router_group_id="r", kafka_input_topic="in", kafka_gpu_topic="g", kafka_cpu_topic="c", kafka_status_topic="st"
    )
    router = router_acls(s, "User:r")
    assert {
        "User:r READ TOPIC:in",
        "User:r WRITE TOPIC:g",
        "User:r WRITE TOPIC:c",
        "User:r DESCRIBE GROUP:fwv2-gpu",
        "User:r WRITE TRANSACTIONAL_ID:r-*",
    } <= _rules(router)
    assert "User:r WRITE TOPIC:in" not in _rules(router)
    fixed = router_acls(s.model_copy(update={"router_transactional_id": "router-1"}), "User:r")
    assert [(a.name, a.pattern) for a in fixed if a.resource is Resource.TRANSACTIONAL_ID] == [
        ("router-1", Pattern.LITERAL),
        ("router-1", Pattern.LITERAL),
    ]
    gateway = gateway_acls(s, "User:g")
    assert {(a.name, a.operation) for a in gateway if a.operation is not Operation.DESCRIBE} == {
        ("in", Operation.WRITE),
        (s.kafka_output_topic, Operation.READ),
        (s.kafka_dead_letter_topic, Operation.READ),
        ("st", Operation.READ),  # the job states its async GETs report
    }


def test_minio_policies_read_the_audio_bucket_and_write_only_the_upload_prefix() -> None:
    read = audio_read_policy("audio")["Statement"]
    assert read[0] == {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::audio/*"]}
    write = upload_policy("audio", "gateway/")["Statement"][0]
    assert write["Resource"] == ["arn:aws:s3:::audio/gateway/*"] and "s3:GetObject" not in write["Action"]


def test_refusals_name_cause_and_remedy_and_never_the_password() -> None:
    s = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="fwv2-worker",
        kafka_sasl_password=SecretStr("hunter2-secret"),
    )
    login = _diagnosis(s, "b:9093", SaslAuthenticationFailed("invalid credentials"))
    assert "fwv2-worker" in login.cause and "KAFKA_SASL_PASSWORD" in login.remedy
    cert = _diagnosis(s, "b:9093", ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert "not trusted" in cert.cause and "KAFKA_SSL_CAFILE" in cert.remedy
    acl = explain(s, TopicAuthorizationFailedError("audio.transcripts"))
    assert "User:fwv2-worker" in acl and "WRITE" in acl and "audio.transcripts" in acl
    assert NotAuthorizedError.retriable  # the event waits for the ACL; it is never dead-lettered for it
    for text in (login.cause, login.remedy, cert.cause, cert.remedy, acl):
        assert "hunter2-secret" not in text
