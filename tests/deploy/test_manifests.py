"""Static checks of deploy/: compose, Kubernetes manifests, Prometheus config, Grafana dashboard.

No Docker or cluster is needed: every YAML file is parsed and its structure checked against
the code it deploys (settings names, API routes, the exported Prometheus metric names).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.catalog import Catalog
from stream_app.metrics import ApiMetrics, WorkerMetrics
from stream_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "persona-stream.json"
CATALOG = ROOT / "models" / "catalogs" / "b2b_saas.yaml"
NAMESPACE = "persona-stream"

SETTINGS_VARS = {f"PERSONA_{name.upper()}" for name in Settings.model_fields}


# --- helpers -----------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"})
    assert files, "no YAML under deploy/"
    return files


def load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def compose() -> dict[str, Any]:
    docs = load_all(COMPOSE_DIR / "docker-compose.yml")
    assert len(docs) == 1
    return dict(docs[0])


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S_DIR.glob("*.y*ml")):
        docs.extend(load_all(path))
    assert docs, "no manifests in deploy/k8s"
    return docs


def k8s_find(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d
        for d in k8s_docs()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def deployment_by_role(role: str) -> dict[str, Any]:
    found = [
        d
        for d in k8s_find("Deployment")
        if d["spec"]["template"]["spec"]["containers"][0].get("args") == [role]
    ]
    assert len(found) == 1, f"expected one Deployment running `persona-stream {role}`"
    return found[0]


def api_routes() -> set[str]:
    from stream_app.api.app import create_app

    return set(create_app(Settings()).openapi()["paths"])


def exported_metric_names() -> set[str]:
    """Series names a scrape of the API or a worker can contain (family name + suffixes)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names: set[str] = set()
    for metrics in (ApiMetrics(), WorkerMetrics()):  # each builds a fresh registry
        for family in metrics.registry.collect():
            names.update(family.name + s for s in suffixes[family.type])
    return names


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
PROMQL_WORDS |= {"and", "or", "unless", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not functions, labels, keywords or variables)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        before = s[m.start() - 1] if m.start() else ""
        if before == "$" or before.isdigit() or before == ".":
            continue  # a Grafana variable or the exponent of a number
        if s[m.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        if m.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(m.group(0))
    return names


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    return exprs


def unknown_metrics(dashboard: dict[str, Any], allowed: set[str]) -> dict[str, set[str]]:
    """Expression -> the metric names in it that no persona-stream process exports."""
    bad = {}
    for expr in dashboard_exprs(dashboard):
        names = promql_metric_names(expr)
        if not names:
            bad[expr] = {"<no metric at all>"}
        elif names - allowed:
            bad[expr] = names - allowed
    return bad


# --- every YAML file ----------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(d, dict) for d in docs), f"{path}: a document is not a mapping"


# --- docker compose -----------------------------------------------------------------------


def test_compose_has_every_service() -> None:
    services = compose()["services"]
    assert {"kafka", "redis", "api", "prometheus", "grafana"} <= set(services)
    workers = [n for n, s in services.items() if s.get("command") == ["worker"]]
    assert len(workers) >= 2, f"two workers expected, got {workers}"
    assert services["api"]["command"] == ["api"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose_kafka_is_kraft_and_redis_is_7() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "zookeeper" not in json.dumps(services).lower()
    assert services["redis"]["image"].startswith("redis:7")


def test_compose_app_settings_are_real_and_reachable() -> None:
    services = compose()["services"]
    app_services = {n: s for n, s in services.items() if s.get("image") == "persona-stream:local"}
    assert set(app_services) >= {"api", "worker-1", "worker-2"}
    for name, service in app_services.items():
        env = service["environment"]
        unknown = {k for k in env if k.startswith("PERSONA_")} - SETTINGS_VARS
        assert not unknown, f"{name}: no such setting {unknown}"
        assert env["PERSONA_KAFKA_BOOTSTRAP"].split(":")[0] in services
        assert env["PERSONA_REDIS_URL"].split("//")[1].split(":")[0] in services
        build = service["build"]
        assert (COMPOSE_DIR / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).is_file()
    assert services["api"]["environment"]["PERSONA_API_HOST"] == "0.0.0.0"


def test_dockerfile() -> None:
    text = (COMPOSE_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install ." in text
    assert 'ENTRYPOINT ["persona-stream"]' in text
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for src in copied.split():
            assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_prometheus_scrapes_api_and_every_worker() -> None:
    services = compose()["services"]
    prom_service = services["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom_service["volumes"]
    (config,) = load_all(COMPOSE_DIR / "prometheus.yml")
    targets = {
        (job["metrics_path"], target)
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
        for target in sc["targets"]
    }
    assert "/metrics" in api_routes()
    api_port = services["api"]["environment"]["PERSONA_API_PORT"]
    assert ("/metrics", f"api:{api_port}") in targets
    for name, service in services.items():
        if service.get("command") == ["worker"]:
            port = service["environment"].get("PERSONA_WORKER_WEB_PORT", "6066")
            assert ("/metrics", f"{name}:{port}") in targets, f"{name} is not scraped"
    for _, target in targets:
        assert target.split(":")[0] in services


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.rsplit(":", 2)[:2] for v in grafana["volumes"] if v.startswith("."))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert (COMPOSE_DIR / "grafana/provisioning").is_dir()
    (datasources,) = load_all(COMPOSE_DIR / "grafana/provisioning/datasources/prometheus.yml")
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    (providers,) = load_all(COMPOSE_DIR / "grafana/provisioning/dashboards/persona-stream.yml")
    dashboards_path = providers["providers"][0]["options"]["path"]
    assert mounts["../grafana"] == dashboards_path
    assert (COMPOSE_DIR / "../grafana" / DASHBOARD.name).resolve() == DASHBOARD


# --- Kubernetes -----------------------------------------------------------------------------


def test_k8s_kinds_and_namespace() -> None:
    docs = k8s_docs()
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    } <= kinds
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"]
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == NAMESPACE, d["metadata"]["name"]
    assert k8s_find("Namespace", NAMESPACE)


def test_k8s_hpa_targets_the_api_deployment() -> None:
    (hpa,) = k8s_find("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    api = deployment_by_role("api")
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        api["apiVersion"],
        "Deployment",
        api["metadata"]["name"],
    )
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["metrics"]


def test_k8s_api_service_selects_the_api_pods() -> None:
    api = deployment_by_role("api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in api["spec"]["template"]["spec"]["containers"][0]["ports"]}
    services = [
        s for s in k8s_find("Service") if s["spec"]["selector"].items() <= pod_labels.items()
    ]
    assert services, "no Service selects the API pods"
    for port in services[0]["spec"]["ports"]:
        assert port["targetPort"] in port_names


def test_k8s_deployments_resources_and_references() -> None:
    config_maps = {d["metadata"]["name"] for d in k8s_find("ConfigMap")}
    secrets = {d["metadata"]["name"] for d in k8s_find("Secret")}
    for dep in k8s_find("Deployment"):
        spec = dep["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        )
        pod = spec["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in config_maps
        for c in pod["containers"]:
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), (c["name"], part)
            assert c.get("readinessProbe") and c.get("livenessProbe"), c["name"]
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    assert ref["configMapRef"]["name"] in config_maps
                if "secretRef" in ref:
                    assert ref["secretRef"]["name"] in secrets
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes


def test_k8s_api_probes_point_at_real_routes() -> None:
    routes = api_routes()
    container = deployment_by_role("api")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= routes


def test_k8s_settings_secret_and_worker_sizing(monkeypatch: pytest.MonkeyPatch) -> None:
    (config,) = k8s_find("ConfigMap", "persona-stream-config")
    (secret,) = k8s_find("Secret")
    env = {**config["data"], **secret["stringData"]}
    assert set(env) <= SETTINGS_VARS, set(env) - SETTINGS_VARS
    keys = {"PERSONA_WRITE_KEYS", "PERSONA_READ_KEYS", "PERSONA_ADMIN_KEYS"}
    assert {"PERSONA_REDIS_URL", *keys} <= set(secret["stringData"])
    assert not ({"PERSONA_REDIS_URL", *keys} & set(config["data"]))  # secrets stay secret
    for name in keys:  # one key of each role, and no role shares a key
        assert len(json.loads(secret["stringData"][name])) >= 1, name
    assert len({k for n in keys for k in json.loads(secret["stringData"][n])}) == 3
    assert config["data"]["PERSONA_API_HOST"] == "0.0.0.0"
    for name, value in env.items():  # the values must pass Settings' own validation
        monkeypatch.setenv(name, value)
    loaded = Settings()
    assert loaded.topic_partitions == int(env["PERSONA_TOPIC_PARTITIONS"])
    assert not loaded.auth_disabled and loaded.cors_origins  # keys checked; the tracker's site
    assert loaded.write_keys and loaded.read_keys and loaded.admin_keys
    worker = deployment_by_role("worker")
    partitions = int(config["data"]["PERSONA_TOPIC_PARTITIONS"])
    assert 1 <= worker["spec"]["replicas"] <= partitions, "workers beyond partitions sit idle"


def test_k8s_catalog_configmap_is_the_catalog(tmp_path: Path) -> None:
    (config,) = k8s_find("ConfigMap", "persona-stream-config")
    (catalog_cm,) = k8s_find("ConfigMap", "persona-stream-catalog")
    (key,) = catalog_cm["data"]
    assert catalog_cm["data"][key] == CATALOG.read_text(encoding="utf-8"), (
        "deploy/k8s catalog ConfigMap differs from models/catalogs/b2b_saas.yaml"
    )
    copy = tmp_path / key
    copy.write_text(catalog_cm["data"][key], encoding="utf-8")
    assert Catalog.load(copy)
    catalog_path = config["data"]["PERSONA_CATALOG_PATH"]
    for role in ("api", "worker"):
        pod = deployment_by_role(role)["spec"]["template"]["spec"]
        volume = next(
            v["name"]
            for v in pod["volumes"]
            if v.get("configMap", {}).get("name") == "persona-stream-catalog"
        )
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume)
        assert f"{mount['mountPath']}/{key}" == catalog_path, role


# --- Grafana --------------------------------------------------------------------------------


def test_promql_parser_finds_metric_names() -> None:
    assert promql_metric_names(
        "histogram_quantile(0.99, sum by (le, route) "
        '(rate(a_bucket{route="/x"}[$__rate_interval])))'
    ) == {"a_bucket"}
    assert promql_metric_names("sum(rate(a_total[5m])) / scalar(sum(b)) * 1e3 > bool 0") == {
        "a_total",
        "b",
    }


def test_metric_check_can_fail() -> None:
    allowed = exported_metric_names()
    bogus = {"panels": [{"targets": [{"expr": "rate(persona_worker_lag_total[1m])"}]}]}
    assert unknown_metrics(bogus, allowed) == {
        "rate(persona_worker_lag_total[1m])": {"persona_worker_lag_total"}
    }
    bare_counter = {"panels": [{"targets": [{"expr": "persona_worker_dead_letters"}]}]}
    assert unknown_metrics(bare_counter, allowed)


def test_dashboard_references_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    allowed = exported_metric_names()
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 10
    assert unknown_metrics(dashboard, allowed) == {}
    used = set().union(*(promql_metric_names(e) for e in exprs))
    for required in (
        "persona_worker_events_processed_total",
        "persona_worker_dead_letters_total",
        "persona_worker_event_to_redis_seconds_bucket",
        "persona_worker_redis_write_duration_seconds_bucket",
        "persona_worker_batch_duration_seconds_bucket",
        "persona_worker_visitors",
        "persona_model_version",
        "persona_model_log_loss",
        "persona_model_accuracy",
        "persona_api_request_duration_seconds_bucket",
    ):
        assert required in used, f"the dashboard does not chart {required}"
    e2r = [e for e in exprs if "persona_worker_event_to_redis_seconds_bucket" in e]
    assert any(e.startswith("histogram_quantile(0.5,") for e in e2r)
    assert any(e.startswith("histogram_quantile(0.99,") for e in e2r)
    api = [e for e in exprs if "persona_api_request_duration_seconds" in e]
    assert any("route" in e and "status" in e for e in api)


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
