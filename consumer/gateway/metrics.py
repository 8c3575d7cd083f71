"""Prometheus metrics of a gateway. Labels are bounded: route templates, status codes, formats."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# consumer/gateway/audio.py's outcomes: a result's kind, or no result yet.
OUTCOMES = ("transcript", "dead_letter", "timeout", "accepted_async")
# From an answer straight from the store to a long clip transcribed while the caller waits.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.requests = Counter(
            "fwv2_gateway_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "fwv2_gateway_request_duration_seconds",
            "Seconds from request to answer.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("fwv2_gateway_in_flight_requests", "API requests being answered now.", registry=r)
        self.upload_bytes = Counter("fwv2_gateway_upload_bytes", "Bytes of audio uploaded to the bucket.", registry=r)
        self.outcomes = Counter("fwv2_gateway_outcomes", "Transcription requests by outcome.", ["outcome"], registry=r)
        self.stored = Gauge("fwv2_gateway_results_stored", "Results held for GET in this process.", registry=r)
        self.waiting = Gauge("fwv2_gateway_requests_waiting", "Requests waiting for their result.", registry=r)
        self.ready = Gauge("fwv2_gateway_ready", "1 when the gateway is ready to take requests.", registry=r)
        # Every outcome at 0 from the start, so rate() sees the first ones (consumer/worker/metrics.py says why).
        # requests{status} is not: its status codes are not known in advance.
        for outcome in OUTCOMES:
            self.outcomes.labels(outcome)
