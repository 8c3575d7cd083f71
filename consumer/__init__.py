"""The Kafka side of the stage, in rooms by role (docs/ARCHITECTURE.md):

- ``contract``: what crosses Kafka (the AudioReference, transcript and dead-letter events, Avro, error codes);
- ``plumbing``: Kafka and S3 clients, settings, logs, health probes and retry, shared by every process;
- ``worker``: the worker process (loop, delivery, dedupe, result cache, notifications, metrics);
- ``router``: the router process in front of the GPU and CPU pools;
- ``dev``: the developer's tools (embedded stack, demo, sample clips, submit/tail client);
- ``cli``: the ``fwv2`` command, which starts each of them.

``pipeline/`` (audio in, transcript out) never imports this package.
"""
