"""What the stack's downstream servers share: their names, and the registry's compatibility rule.

The registry starts empty (in-memory storage), so the rule is set on every start. It is the global
rule, not one per subject: a subject exists only once the worker registers into it, and a rule set
before then would not protect the first change after it.
"""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

# In start order: Connect's converter reads schemas from the registry.
EXTRAS = ("registry", "connect", "postgres")
COMPATIBILITY = "BACKWARD"


def set_backward_compatibility(ccompat_url: str) -> None:
    """BACKWARD on the registry (PUT /config): a new schema must read what the previous one wrote."""
    client = SchemaRegistryClient({"url": ccompat_url})
    try:
        client.set_compatibility(level=COMPATIBILITY)
    finally:
        client.close()
