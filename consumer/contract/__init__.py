"""The event contract: the records producers write and consumers read, their Avro schemas and error codes."""
