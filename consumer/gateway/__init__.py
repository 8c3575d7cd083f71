"""The OpenAI-style HTTP front door of the stage: uploads in, transcripts out, through Kafka and the bucket.

`fwv2 gateway` serves it; nothing here transcribes: the workers do, exactly as for any producer.
"""
