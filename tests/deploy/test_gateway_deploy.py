"""The HTTP gateway's deployment: Helm (lint, kubernetes-validate, the objects) and compose (issue 8).

Same tools and same way as tests/deploy/test_deploy.py; the gateway is off in the chart's defaults, so
those renders are unchanged, and helm/fwv2/ci/gateway-values.yaml turns it on.
"""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.test_deploy import (
    CHART,
    COMPOSE,
    CRD_KINDS,
    KUBE_VERSION,
    _tool,
    by_kind,
    compose_env,
    helm_template,
    ok,
    run,
)

pytestmark = pytest.mark.tools  # helm, kubernetes-validate and docker-compose check the gateway's objects

GATEWAY = ["-f", str(CHART / "ci" / "gateway-values.yaml")]
GATEWAY_ON_SASL = ["-f", str(CHART / "ci" / "gpu-values.yaml"), *GATEWAY]


@pytest.mark.parametrize("values", [GATEWAY, GATEWAY_ON_SASL], ids=["gateway", "gateway+gpu+sasl"])
def test_gateway_chart_lints_and_validates(values: list[str]) -> None:
    out = ok(run([_tool("helm"), "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *values]))
    assert "0 chart(s) failed" in out
    docs = [d for d in helm_template(*values) if d["kind"] not in CRD_KINDS]
    result = run([_tool("kubernetes-validate"), "-k", KUBE_VERSION, "--strict", "-"], input=yaml.safe_dump_all(docs))
    out = ok(result)
    assert "ERROR" not in out + result.stderr and "WARN" not in out + result.stderr, out + result.stderr
    assert out.count("passed for resource") == len(docs), out


def test_gateway_objects() -> None:
    assert not [d for d in helm_template() if d["metadata"]["name"].endswith("-gateway")], "off by default"
    docs = helm_template(*GATEWAY)
    (dep,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "fwv2-gateway"]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "gateway"
    assert "replicas" not in dep["spec"], "the HPA owns the replica count"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["args"] == ["gateway"] and container["image"] == "fwv2:0.1.0-gateway"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": 8000, "protocol": "TCP"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = {e["name"]: e for e in container["env"]}
    assert env["GATEWAY_PORT"]["value"] == "8000" and env["KAFKA_INPUT_TOPIC"]["value"] == "audio.references"
    assert env["GATEWAY_API_KEYS_FILE"]["value"] == "/etc/fwv2/gateway-keys/api-keys"
    assert all("secretKeyRef" in env[k]["valueFrom"] for k in ("S3_ACCESS_KEY", "S3_SECRET_KEY"))
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/etc/fwv2/gateway-keys"]["readOnly"] is True
    assert volumes[mounts["/etc/fwv2/gateway-keys"]["name"]]["secret"]["secretName"] == "fwv2-gateway-keys"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "uploads are spooled to /tmp"
    (svc,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "fwv2-gateway"]
    assert svc["spec"]["selector"].items() <= labels.items() and svc["spec"]["ports"][0]["targetPort"] == "http"
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "fwv2-gateway"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "fwv2_gateway_in_flight_requests"
    (pdb,) = [p for p in by_kind(docs, "PodDisruptionBudget") if p["metadata"]["name"] == "fwv2-gateway"]
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    # The workers' objects do not select the gateway's pods (metrics Service, PDBs).
    (metrics,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "fwv2-metrics"]
    assert not metrics["spec"]["selector"].items() <= labels.items()
    assert not [n for n in by_kind(docs, "NetworkPolicy")], "none unless networkPolicy.enabled"
    locked = helm_template(*GATEWAY_ON_SASL)
    (policy,) = [n for n in by_kind(locked, "NetworkPolicy") if n["metadata"]["name"] == "fwv2-gateway"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]
    cpu_hpa = helm_template(*GATEWAY, "--set", "gateway.autoscaling.metric=cpu")
    (hpa,) = by_kind(cpu_hpa, "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_compose_runs_the_gateway() -> None:
    out = ok(run([_tool("docker-compose"), "-f", str(COMPOSE), "config"], env=compose_env()))
    services = yaml.safe_load(out)["services"]
    gateway = services["gateway"]
    assert gateway["command"] == ["gateway"]
    assert gateway["build"]["dockerfile"] == "docker/Dockerfile.cpu" and gateway["build"]["args"]["EXTRAS"] == "gateway"
    assert gateway["ports"][0]["target"] == 8000
    env = gateway["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["S3_ENDPOINT"] == "minio:9000"
    assert env["KAFKA_INPUT_TOPIC"] == "audio.references", "where producers write (the router's input when it runs)"
    assert env["S3_ACCESS_KEY"] != services["worker-cpu"]["environment"]["S3_ACCESS_KEY"], (
        "the workers' user is read-only"
    )
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert gateway["read_only"] is True
    init = " ".join(services["minio-init"]["command"])
    assert 'readwrite --user "$$GATEWAY_ACCESS_KEY"' in init or 'readwrite --user "$GATEWAY_ACCESS_KEY"' in init
