"""Kafka and object-storage I/O, the worker loop, delivery, metrics and health."""
