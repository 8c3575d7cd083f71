"""Audio in, transcript out. Knows nothing of Kafka or object storage."""
