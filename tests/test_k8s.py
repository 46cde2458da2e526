"""Kernels on Kubernetes, on paper (issue #14): the kernel pods of a set of environments,
rendered and validated against the ``kubernetes`` client's models; a bad ``pod_template`` field
refused by name; the KubernetesProvisioner kernelspec (its template renders as the provisioner's
launcher renders it, and jupyter_client finds the provisioner). No API server runs here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_envs import Environment
from jupyter_envs.engines.kernels import k8s
from jupyter_envs.errors import SpecError
from jupyter_envs.frontends.cli import main

IMAGE = "registry.example:5000/team/nlp:v3-0123456789ab"

FLYTE_TEMPLATE = {
    "primary_container_name": "primary",
    "labels": {"team": "nlp"},
    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "pod_spec": {
        "containers": [
            {"name": "primary", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "infinity"]},
        ],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "nlp-data"}}],
        "nodeSelector": {"pool": "highmem"},
    },
}

ENVS: dict[str, Environment] = {
    "plain": Environment("plain", pip=["six"], base_image="python:3.12-slim"),
    "resources": Environment(
        "res", pip=["six"], base_image="python:3.12-slim",
        resources={"cpu": 1.5, "memory": "4Gi", "gpu": 1},
    ),
    "env-and-secrets": Environment(
        "sec", pip=["six"], base_image="python:3.12-slim",
        env_vars={"MODE": "prod", "BRACES": "{{ not jinja }}"}, secrets=["HF_TOKEN", "DB_URL"],
    ),
    "interruptible": Environment(
        "spot", pip=["six"], base_image="python:3.12-slim", interruptible=True
    ),
    "flyte-template": Environment(
        "flyte", pip=["six"], base_image="python:3.12-slim", pod_template=FLYTE_TEMPLATE
    ),
    "pod-template": Environment(
        "podt", pip=["six"], base_image="python:3.12-slim",
        pod_template={"spec": {"priorityClassName": "batch", "containers": [
            {"resources": {"limits": {"ephemeral-storage": "10Gi"}}}]}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ENVS))
def test_every_pod_renders_and_validates(case: str) -> None:
    env = ENVS[case]
    pod = k8s.render_pod(env, IMAGE, version=3)
    model = k8s.validate(pod)
    assert model.spec.containers[0].image == IMAGE
    assert model.metadata.labels[k8s.LABEL_ENV] == env.name
    assert model.metadata.labels[k8s.LABEL_VERSION] == "3"
    assert model.spec.restart_policy == "Never"


def test_what_the_spec_asks_for_is_in_the_pod() -> None:
    res = k8s.render_pod(ENVS["resources"], IMAGE)["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "1500m", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert res["limits"] == res["requests"]

    env = k8s.render_pod(ENVS["env-and-secrets"], IMAGE)["spec"]["containers"][0]["env"]
    by_name = {e["name"]: e for e in env}
    assert by_name["MODE"]["value"] == "prod"
    # Secrets are read from a Kubernetes Secret at start: never their values in the pod.
    assert by_name["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "jupyter-envs-secrets", "key": "HF_TOKEN"}},
    }
    assert by_name["KERNEL_ID"]["value"] == "{{ kernel_id }}"  # the launcher fills it in

    settings = k8s.K8sSettings(
        spot_tolerations=({"key": "spot", "operator": "Exists", "effect": "NoSchedule"},)
    )
    spot = k8s.render_pod(ENVS["interruptible"], IMAGE, settings=settings)["spec"]
    assert spot["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
    terms = spot["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == (
        "cloud.google.com/gke-spot"
    )
    assert "tolerations" not in k8s.render_pod(ENVS["plain"], IMAGE)["spec"]

    flyte = k8s.render_pod(ENVS["flyte-template"], IMAGE)
    primary, sidecar = flyte["spec"]["containers"]
    assert (primary["name"], primary["image"]) == ("kernel", IMAGE)  # ours stay
    assert primary["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert sidecar["image"] == "busybox:1.36"
    assert flyte["spec"]["nodeSelector"] == {"pool": "highmem"}
    assert flyte["metadata"]["labels"]["team"] == "nlp"
    assert flyte["metadata"]["labels"][k8s.LABEL_ENV] == "flyte"


BAD_TEMPLATES: list[tuple[dict[str, Any], str]] = [
    (
        {"spec": {"containers": [{"imagePullPolicyy": "Always"}]}},
        "field 'pod.spec.containers[0].imagePullPolicyy': is not a field of V1Container",
    ),
    ({"spec": {"nodeSelector": "pool=x"}}, "field 'pod.spec.nodeSelector': must be an object"),
    ({"spec": {"priority": "high"}}, "field 'pod.spec.priority': must be int"),
    ({"metadata": {"lables": {}}}, "field 'pod.metadata.lables': is not a field of V1ObjectMeta"),
    (
        {"pod_spec": {"tolerations": [{"keyy": "a"}]}},
        "field 'pod.spec.tolerations[0].keyy': is not a field of V1Toleration",
    ),
    ({"spec": {"containers": [{"name": "x", "image": "y"}], "volumes": [{}]}}, "V1Volume"),
    ({"podspec": {}}, "field 'pod_template': unknown keys ['podspec']"),
]


@pytest.mark.parametrize(("template", "says"), BAD_TEMPLATES)
def test_a_bad_pod_template_is_refused_naming_the_field(
    template: dict[str, Any], says: str
) -> None:
    env = Environment("bad", pip=["six"], base_image="python:3.12-slim", pod_template=template)
    with pytest.raises(SpecError) as info:
        k8s.validate(k8s.render_pod(env, IMAGE))
    assert says in str(info.value)


def test_a_template_alone_is_checked_too() -> None:
    with pytest.raises(SpecError, match=r"pod_template\.spec\.containers\[0\]\.imagePullPolicyy"):
        k8s.validate_template({"spec": {"containers": [{"imagePullPolicyy": "Always"}]}})
    k8s.validate_template(FLYTE_TEMPLATE)


def test_the_kernelspec_is_one_the_provisioner_takes(tmp_path: Path) -> None:
    from jinja2 import Environment as Jinja
    from jinja2 import FileSystemLoader
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    env = ENVS["env-and-secrets"]
    folder = tmp_path / "kernels" / "jenv-sec-v1-k8s"
    pod = k8s.write_kernelspec(
        folder, env, IMAGE, display_name="sec v1 on Kubernetes", version=1,
        settings=k8s.K8sSettings(namespace="team-nlp"),
    )  # fmt: skip
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "kubernetes-provisioner"
    assert spec["metadata"]["kernel_provisioner"]["config"]["image_name"] == IMAGE
    assert spec["env"] == {"KERNEL_NAMESPACE": "team-nlp"}
    assert (folder / "scripts" / "launch_kubernetes.py").is_file()
    # Rendered as the launcher renders it (Jinja, from KERNEL_* values): the pod, filled in.
    jinja = Jinja(  # noqa: S701 - YAML, as the launcher renders it (no HTML escaping)
        loader=FileSystemLoader(str(folder / "scripts")), trim_blocks=True
    )
    text = jinja.get_template("kernel-pod.yaml.j2").render(
        kernel_id="k-123", kernel_pod_name="sec-k-123", kernel_namespace="team-nlp"
    )
    rendered = yaml.safe_load(text)
    k8s.validate(rendered)
    assert rendered["metadata"] == {
        **pod["metadata"],
        "name": "sec-k-123",
        "namespace": "team-nlp",
        "labels": {**pod["metadata"]["labels"], "kernel_id": "k-123"},
    }
    values = {e["name"]: e.get("value") for e in rendered["spec"]["containers"][0]["env"]}
    assert values["BRACES"] == "{{ not jinja }}"  # the spec's own braces are not Jinja
    assert values["KERNEL_ID"] == "k-123"
    # jupyter_client finds the provisioner the kernelspec names.
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    kernel_spec = specs.get_kernel_spec("jenv-sec-v1-k8s")
    assert KernelProvisionerFactory.instance().is_provisioner_available(kernel_spec)


def test_where_and_k8s_for_a_venv_say_why_not(
    workspace: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    Environment("venv", pip=["six"], backend="fake").build(ws=workspace)
    assert main(["where"]) == 0
    out = capsys.readouterr().out
    assert "venv" in out
    assert "venv container: it has no image" in out
    assert main(["k8s", "venv"]) == 1
    assert "a cluster runs images" in capsys.readouterr().err
