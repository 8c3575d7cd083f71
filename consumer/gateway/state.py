"""What one gateway process holds for all its requests: settings, clients, the result hub, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from consumer.gateway.auth import ApiKeys
from consumer.gateway.metrics import GatewayMetrics
from consumer.gateway.results import ResultHub, ResultStore
from consumer.gateway.submit import Submitter
from consumer.plumbing.settings import GatewaySettings


@dataclass
class Gateway:
    settings: GatewaySettings
    keys: ApiKeys
    metrics: GatewayMetrics
    store: ResultStore
    hub: ResultHub
    submitter: Submitter

    def readiness(self) -> tuple[bool, dict[str, object]]:
        ok = self.submitter.started and self.hub.alive and self.hub.caught_up
        return ok, {
            "producer_started": self.submitter.started,
            "results_reader_alive": self.hub.alive,
            "results_caught_up": self.hub.caught_up,
        }

    def health(self) -> tuple[bool, dict[str, object]]:
        # Before start-up finishes the reader is not running yet; that is "not ready", not "dead".
        alive = self.hub.alive or not self.submitter.started
        return alive, {"results_reader_alive": self.hub.alive}
