"""The worker process: consume an event, fetch, transcribe (``pipeline``), deliver, commit."""
