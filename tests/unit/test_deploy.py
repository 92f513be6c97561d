"""deploy/: the Kubernetes manifests validate against Kubernetes' own schemas (offline, bundled by
kubernetes-validate), the overlays render, the compose file and the Dockerfile say what the
deployment needs, and the entrypoint turns mounted secret files into settings.

No cluster and no container daemon is needed: the image is built by deploy/build-image.sh, not
here. ``kubectl kustomize`` and ``docker compose config`` are asked too where they are installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hashguard.cli import build_parser

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ["overlays/dev", "overlays/prod", "backfill"]
# The oldest Kubernetes release still supported upstream when this was written; every API used
# here (autoscaling/v2, policy/v1, batch/v1 Indexed Jobs) is stable in it.
K8S_VERSION = "1.30.0"
# Today's cold start with one 10,000,000-entry PDQ list, from `hashguard serve` to ready (issue 16).
COLD_START_S = 28.8
INDEX_DIR = "/var/lib/hashguard/index"


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_render", DEPLOY / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_render"] = module
    spec.loader.exec_module(module)
    return module


render = _renderer()

# The Prometheus Operator's ServiceMonitor is a CRD, so kubernetes-validate has no schema for it:
# this is the part of its schema these manifests use, as strict as the operator's CRD.
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                    "additionalProperties": False,
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scheme": {"enum": ["http", "https"]},
                        },
                    },
                },
            },
        },
    },
}


def rendered(overlay: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = render.render(K8S / overlay)
    return docs


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    docs = rendered(overlay)
    assert docs
    for doc in docs:
        where = f"{overlay}: {doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] == "ServiceMonitor":
            jsonschema.validate(doc, SERVICE_MONITOR)
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:  # the full message quotes the whole schema
            raise AssertionError(f"{where}: {str(exc).splitlines()[0]} at {list(exc.path)}") from None
        assert doc["metadata"].get("namespace"), f"{where} has no namespace"


def test_the_validation_refuses_a_broken_manifest() -> None:
    """The schemas are strict: an unknown field or a wrong type in a manifest fails the check above."""
    deployment = one(rendered("overlays/prod"), "Deployment")
    pod_spec(deployment)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    monitor = one(rendered("overlays/prod"), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = 15
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR)


def test_the_renderer_agrees_with_kubectl_kustomize_where_kubectl_is_installed() -> None:
    """Our renderer exists for machines without kustomize; where kubectl is installed both must agree."""
    kubectl = shutil.which("kubectl")
    for overlay in OVERLAYS:
        ours = sorted(rendered(overlay), key=lambda d: (d["kind"], d["metadata"]["name"]))
        if kubectl is None:
            continue
        out = subprocess.run([kubectl, "kustomize", str(K8S / overlay)], capture_output=True, text=True, check=True).stdout
        theirs = sorted((d for d in yaml.safe_load_all(out) if d), key=lambda d: (d["kind"], d["metadata"]["name"]))
        assert ours == theirs, overlay
    if kubectl is None:
        print("kubectl is not installed: the overlays were rendered by deploy/render.py only")


def test_the_renderer_refuses_what_it_does_not_support(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(render.RenderError, match="commonLabels"):
        render.render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(render.RenderError, match="does not exist"):
        render.render(tmp_path)


def test_strategic_merge_merges_named_lists_and_removes_nulls() -> None:
    base = {"spec": {"minAvailable": 1, "containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}]}}
    patch = {
        "spec": {"minAvailable": None, "maxUnavailable": 1, "containers": [{"name": "a", "env": [{"name": "F", "value": "2"}]}]}
    }
    assert render.strategic_merge(base, patch) == {
        "spec": {
            "maxUnavailable": 1,
            "containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]}],
        }
    }


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_the_deployment_probes_runs_unprivileged_and_keeps_its_index_on_a_volume(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment", "hashguard")
    spec = pod_spec(deployment)
    [container] = spec["containers"]
    # A real command line of this version: what the container runs parses.
    build_parser().parse_args(container["args"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    # The index loads before the server answers: the startup probe allows three cold starts at least.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3 * COLD_START_S
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert INDEX_DIR in mounts and "/tmp" in mounts
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(mounts.values()) <= set(volumes)
    config = one(docs, "ConfigMap", "hashguard-config")
    assert config["data"]["HASHGUARD_INDEX_DIR"] == INDEX_DIR
    # Memory: the limit leaves room for the peak of a load above the request.
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert _bytes(limits["memory"]) > _bytes(requests["memory"])
    # Settings only from the environment: a ConfigMap and Secrets, no literal secret in the pod.
    assert "env" not in container
    refs = [e["secretRef"] for e in container["envFrom"] if "secretRef" in e]
    defined = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for ref in refs:
        # Required secrets exist in dev (example values); in prod they come from the secret store.
        assert ref.get("optional") or overlay.endswith("prod") or ref["name"] in defined, ref


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_service_budget_autoscaler_policy_and_monitor_all_select_the_api_pods(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment", "hashguard")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(docs, "Service", "hashguard")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == pod_spec(deployment)["containers"][0]["ports"][0]["name"]
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]) == ("Deployment", "hashguard")
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    budget = one(docs, "PodDisruptionBudget")["spec"]
    # A budget that allows no disruption at the minimum replica count would block every node drain.
    assert budget.get("minAvailable", 0) < hpa["spec"]["minReplicas"] or "maxUnavailable" in budget
    job = one(docs, "Job", "hashguard-migrate")
    build_parser().parse_args(pod_spec(job)["containers"][0]["args"])
    assert pod_spec(job)["containers"][0]["args"] == ["migrate"]
    assert pod_spec(job)["containers"][0]["image"] == pod_spec(deployment)["containers"][0]["image"]


def test_the_prod_overlay_pins_a_registry_image_and_spreads_its_replicas() -> None:
    docs = rendered("overlays/prod")
    deployment = one(docs, "Deployment", "hashguard")
    image = pod_spec(deployment)["containers"][0]["image"]
    assert re.fullmatch(r"[a-z0-9.-]+/hashguard:[0-9][0-9.]*", image), image
    keys = {c["topologyKey"] for c in pod_spec(deployment)["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert {d["metadata"]["namespace"] for d in docs} == {"hashguard"}
    assert not [d for d in docs if d["kind"] == "Secret"], "production secrets come from the secret store"


def test_the_backfill_job_is_an_indexed_job_whose_shards_cover_the_catalogue() -> None:
    job = one(rendered("backfill"), "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] > 1
    [container] = pod_spec(job)["containers"]
    args = [a.replace("$(JOB_COMPLETION_INDEX)", "3") for a in container["args"]]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "backfill"
    assert parsed.shard == (3, spec["completions"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(e.get("secretRef", {}).get("name") == "hashguard-backfill" for e in container["envFrom"])


# ---------------------------------------------------------------- compose, Dockerfile, entrypoint


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def test_compose_runs_postgres_a_migration_two_replicas_prometheus_and_grafana() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == {"postgres", "migrate", "hashguard-1", "hashguard-2", "prometheus", "grafana"}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    build_parser().parse_args(services["migrate"]["command"])
    for name in ("hashguard-1", "hashguard-2"):
        replica = services[name]
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert replica["read_only"] is True and replica["user"] != "0"
        assert any(v.endswith(":" + INDEX_DIR) for v in replica["volumes"])
        env = replica["environment"]
        # Secrets as mounted files only, never a value in the compose file.
        assert env["HASHGUARD_DATABASE_URL_FILE"].startswith("/run/secrets/")
        assert not [k for k in env if "SECRET" in k and not k.endswith("_FILE")]
        for secret in replica["secrets"]:
            assert env.get(f"HASHGUARD_{secret.upper()}_FILE") == f"/run/secrets/{secret}"
    assert services["hashguard-1"]["volumes"] != services["hashguard-2"]["volumes"], "one index volume per replica"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert sorted(job["static_configs"][0]["targets"]) == ["hashguard-1:8080", "hashguard-2:8080"]
    assert any(v.startswith("./prometheus/prometheus.yml:") for v in services["prometheus"]["volumes"])
    assert any(v.startswith("./monitoring/rules:") for v in services["prometheus"]["volumes"])
    assert any(v.startswith("./monitoring/grafana:") for v in services["grafana"]["volumes"])
    # Every secret file compose names is one make-dev-secrets.sh writes.
    script = (DEPLOY / "make-dev-secrets.sh").read_text()
    for name, secret in doc["secrets"].items():
        assert secret["file"] == f"./secrets/{name}" and f"put {name} " in script


def test_compose_config_is_accepted_by_docker_compose_where_it_is_installed(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    usable = docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    if not usable:
        print("docker compose is not installed: compose.yaml was checked by its structure only")
        return
    assert docker is not None
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("secrets"))
    subprocess.run(["sh", str(copy / "make-dev-secrets.sh")], check=True, capture_output=True)
    subprocess.run([docker, "compose", "-f", str(copy / "compose.yaml"), "config", "--quiet"], check=True)


def test_make_dev_secrets_writes_private_files_once(tmp_path: Path) -> None:
    copy = tmp_path / "deploy"
    copy.mkdir()
    shutil.copy(DEPLOY / "make-dev-secrets.sh", copy)
    subprocess.run(["sh", str(copy / "make-dev-secrets.sh")], check=True, capture_output=True)
    secrets = copy / "secrets"
    files = {p.name: p for p in secrets.iterdir()}
    assert set(files) == set(compose()["secrets"])
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text()
    password = files["postgres_password"].read_text()
    assert files["database_url"].read_text() == f"postgresql://hashguard:{password}@postgres:5432/hashguard"
    again = subprocess.run(["sh", str(copy / "make-dev-secrets.sh")], check=True, capture_output=True, text=True)
    assert again.stdout == "" and files["postgres_password"].read_text() == password


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_the_dockerfile_builds_in_stages_and_runs_unprivileged_with_a_health_check() -> None:
    steps = dockerfile()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) >= 2 and stages[-1].endswith("AS runtime")
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    [user] = [args for op, args in final if op == "USER"]
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    [health] = [args for op, args in final if op == "HEALTHCHECK"]
    assert "/healthz" in health
    env = " ".join(args for op, args in final if op == "ENV")
    assert f"HASHGUARD_INDEX_DIR={INDEX_DIR}" in env
    assert not re.search(r"(SECRET|PASSWORD|DATABASE_URL)=", env), "no secret or database URL baked into the image"
    [volume] = [args for op, args in final if op == "VOLUME"]
    assert INDEX_DIR in volume
    [entrypoint] = [args for op, args in final if op == "ENTRYPOINT"]
    assert "hashguard-entrypoint" in entrypoint
    [cmd] = [args for op, args in final if op == "CMD"]
    build_parser().parse_args(yaml.safe_load(cmd))
    # Everything the builder copies is let through .dockerignore.
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for op, args in steps:
        if op == "COPY" and "--from" not in args:
            sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
            for source in sources:
                assert source.rstrip("/") in allowed, source
                assert (ROOT / source).exists(), source


@pytest.fixture
def fake_hashguard(tmp_path: Path) -> dict[str, str]:
    """A PATH on which `hashguard` prints its arguments and HASHGUARD_* environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "hashguard"
    fake.write_text('#!/bin/sh\necho "args: $*"\nenv | grep "^HASHGUARD_" | sort\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_entrypoint_reads_secret_files_into_settings(tmp_path: Path, fake_hashguard: dict[str, str]) -> None:
    secret = tmp_path / "database_url"
    secret.write_text("postgresql://u:p@db/h\n")
    env = {
        **fake_hashguard,
        "HASHGUARD_DATABASE_URL_FILE": str(secret),
        "HASHGUARD_WEBHOOK_SECRET": "set-directly",
        "HASHGUARD_WEBHOOK_SECRET_FILE": str(tmp_path / "absent-but-unused"),
        "HASHGUARD_LOG_LEVEL": "INFO",
    }
    out = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), "serve", "--port", "8080"], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "args: serve --port 8080"
    assert sorted(out[1:]) == [
        "HASHGUARD_DATABASE_URL=postgresql://u:p@db/h",
        "HASHGUARD_LOG_LEVEL=INFO",
        "HASHGUARD_WEBHOOK_SECRET=set-directly",
    ]


def test_the_entrypoint_refuses_a_secret_file_it_cannot_read(tmp_path: Path, fake_hashguard: dict[str, str]) -> None:
    env = {**fake_hashguard, "HASHGUARD_DATABASE_URL_FILE": str(tmp_path / "missing")}
    done = subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), "serve"], env=env, capture_output=True, text=True)
    assert done.returncode == 64
    assert "HASHGUARD_DATABASE_URL_FILE" in done.stderr and "args:" not in done.stdout
