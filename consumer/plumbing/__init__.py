"""Kafka and S3 plumbing every process shares: clients, settings, logs, health probes, retry."""
