"""deploy/kubernetes/, validated offline: every object against the Kubernetes API schemas that
kubernetes-validate ships (strict: an unknown field is an error), then what a schema cannot
see — the probes hit /readyz and /healthz on the container's port, the Service and the
budget select the pods, the autoscaler scales the Deployment on CPU, the ConfigMap and Secret
name only variables the gateway reads and together configure a complete server, secrets stay
out of the ConfigMap, and the image is pinned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.doctor import setting_variables
from gateway.settings import Settings
from logging_pipeline.remote import STOP_MARGIN_SECONDS
from tests.deployfiles import KUBERNETES_DIR

KUBERNETES_VERSION = "1.31.0"
"""The oldest Kubernetes release the manifests target (every API used is GA there)."""

SECRET_VARIABLES = {
    "DATABASE_URL", "GATEWAY_ENCRYPTION_KEY", "CLICKHOUSE_URL", "S3_ACCESS_KEY",
    "S3_SECRET_KEY", "REDIS_URL",
}  # fmt: skip
"""Variables that hold a credential (a password inside a URL counts)."""

SERVER_VARIABLES = SECRET_VARIABLES | {"S3_ENDPOINT", "S3_BUCKET_NAME", "GATEWAY_WORKERS"}
"""What a gateway on external stores needs set."""


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(KUBERNETES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path, document))
    return found


def _objects() -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for _, document in _documents()}


def test_every_object_is_valid_against_the_kubernetes_schemas() -> None:
    documents = _documents()
    assert {d["kind"] for _, d in documents} == {
        "ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }  # fmt: skip
    for path, document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {exc}")
    # Strict validation does reject a misspelt field (so the loop above can fail).
    broken = _objects()["Deployment"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _container() -> dict[str, Any]:
    containers = _objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_probes_hit_readyz_and_healthz_on_the_gateway_port() -> None:
    container = _container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8787}  # GATEWAY_PORT's default, which the image sets
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    # /readyz answers within GATEWAY_READY_TIMEOUT_SECONDS (2 s by default) + a margin.
    assert readiness["timeoutSeconds"] >= 3
    assert container["args"] == ["serve"]


def test_service_and_budget_select_the_pods() -> None:
    objects = _objects()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )
    target = objects["Service"]["spec"]["ports"][0]["targetPort"]
    assert target in {port["name"] for port in _container()["ports"]}


def test_autoscaler_scales_the_deployment_on_cpu() -> None:
    objects = _objects()
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "name": objects["Deployment"]["metadata"]["name"],
    }  # fmt: skip
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert hpa["minReplicas"] >= 2
    # Utilisation is relative to the request: the container must request CPU.
    assert "cpu" in _container()["resources"]["requests"]


def test_env_comes_from_the_configmap_and_secret_and_is_all_read() -> None:
    objects = _objects()
    config = objects["ConfigMap"]
    secret = objects["Secret"]
    sources = {
        ("configMapRef", config["metadata"]["name"]),
        ("secretRef", secret["metadata"]["name"]),
    }
    assert {(kind, ref["name"]) for s in _container()["envFrom"] for kind, ref in s.items()} == (
        sources
    )
    reads = set(setting_variables())
    config_keys, secret_keys = set(config["data"]), set(secret["stringData"])
    assert (config_keys | secret_keys) - reads == set(), "the gateway would ignore these"
    assert SERVER_VARIABLES - (config_keys | secret_keys) == set(), "a server needs these"
    assert config_keys & SECRET_VARIABLES == set(), "credentials belong in the Secret"
    assert config_keys & secret_keys == set()
    # The image fixes host, port and data directory; the manifests must not move them.
    assert {"GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_DATA_DIR"} & (config_keys | secret_keys) == (
        set()
    )


def test_workers_fit_the_cpu_request() -> None:
    workers = int(_objects()["ConfigMap"]["data"]["GATEWAY_WORKERS"])
    cpu = str(_container()["resources"]["requests"]["cpu"])
    cores = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    assert workers <= max(1, round(cores))


def test_pods_run_unprivileged_and_pinned() -> None:
    deployment = _objects()["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    container = _container()
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    image = container["image"]
    assert ":" in image and not image.endswith(":latest")
    # Writable paths are volumes (the root filesystem is read-only): /data and /tmp.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert mounts == {"/data", "/tmp"}
    # Time to drain on SIGTERM: longer than the pre-stop pause.
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_termination_grace_covers_the_gateway_shutdown() -> None:
    """Kubernetes kills the pod terminationGracePeriodSeconds after it starts stopping it
    (preStop included): by then the gateway must have let its streams finish
    (GATEWAY_SHUTDOWN_GRACE_SECONDS), drained its log writer
    (GATEWAY_SHUTDOWN_LOG_DRAIN_SECONDS) and let the writer close its stores."""
    pod = _objects()["Deployment"]["spec"]["template"]["spec"]
    config = _objects()["ConfigMap"]["data"]
    defaults = Settings.model_fields
    grace = int(config.get("GATEWAY_SHUTDOWN_GRACE_SECONDS",
                           defaults["shutdown_grace_seconds"].default))  # fmt: skip
    drain = int(config.get("GATEWAY_SHUTDOWN_LOG_DRAIN_SECONDS",
                           defaults["shutdown_log_drain_seconds"].default))  # fmt: skip
    pre_stop = _container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = int(pre_stop[1]) + grace + drain + STOP_MARGIN_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= needed
