"""Kernels on Kubernetes, on paper: the pod an environment's kernel runs in, checked against the
``kubernetes`` client's models, and a kernelspec for gateway_provisioners' KubernetesProvisioner.

jupyter-envs does not schedule anything: KubernetesProvisioner (PyPI ``gateway-provisioners``)
launches the kernel; its launcher script renders ``kernel-pod.yaml.j2`` from the kernelspec's
``scripts/`` folder with the kernel's id, namespace and connection values, and creates the pod.
:func:`write_kernelspec` writes that template from :func:`render_pod` (our pod: the env's image,
resources, environment variables, secrets, spot settings, the Flyte-style ``pod_template``), the
provisioner's own launcher beside it, and a ``kernel.json`` naming the provisioner.

No Kubernetes API server runs on these machines, so the pods are validated, not run:
:func:`validate` walks a pod (or a pod template) through the client's model classes and names
the first field that is not one of theirs, or a required one that is missing.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendUnavailableError, SpecError
from ...spec._environment import Environment

__all__ = [
    "PROVISIONER_NAME",
    "K8sSettings",
    "render_pod",
    "validate",
    "write_kernelspec",
]

#: gateway_provisioners' entry point for KubernetesProvisioner.
PROVISIONER_NAME = "kubernetes-provisioner"
#: Label keys on every kernel pod (a cluster-side reaper or a person can select on them).
LABEL_ENV = "jupyter-envs/env"
LABEL_VERSION = "jupyter-envs/version"
LABEL_SPEC_HASH = "jupyter-envs/spec-hash"

# What the KubernetesProvisioner's launcher fills in when it renders the template.
_KERNEL_ID = "{{ kernel_id }}"
_POD_NAME = "{{ kernel_pod_name }}"
_NAMESPACE = "{{ kernel_namespace }}"
_LAUNCH_ENV = (
    "PORT_RANGE",
    "RESPONSE_ADDRESS",
    "PUBLIC_KEY",
    "KERNEL_ID",
    "KERNEL_LANGUAGE",
    "KERNEL_NAME",
    "KERNEL_NAMESPACE",
    "KERNEL_USERNAME",
)
_PLACEHOLDERS = {
    "PORT_RANGE": "{{ port_range }}",
    "RESPONSE_ADDRESS": "{{ response_address }}",
    "PUBLIC_KEY": "{{ public_key }}",
    "KERNEL_ID": "{{ kernel_id }}",
    "KERNEL_LANGUAGE": "{{ kernel_language }}",
    "KERNEL_NAME": "{{ kernel_name }}",
    "KERNEL_NAMESPACE": "{{ kernel_namespace }}",
    "KERNEL_USERNAME": "{{ kernel_username }}",
}


@dataclass(frozen=True)
class K8sSettings:
    """How a cluster wants its kernel pods (server settings, not the spec's business)."""

    namespace: str = "default"
    #: The Kubernetes Secret whose keys hold the spec's secrets (each spec secret name is a key).
    secret_name: str = "jupyter-envs-secrets"  # noqa: S105 - a name, not a secret
    service_account: str | None = None
    image_pull_policy: str = "IfNotPresent"
    #: What ``interruptible=True`` adds: spot / preemptible nodes' taints and labels.
    spot_tolerations: tuple[Mapping[str, Any], ...] = (
        {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
         "effect": "NoSchedule"},
        {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
         "effect": "NoSchedule"},
    )  # fmt: skip
    spot_node_selector_terms: tuple[Mapping[str, Any], ...] = (
        {"matchExpressions": [{"key": "cloud.google.com/gke-spot", "operator": "In",
                               "values": ["true"]}]},
        {"matchExpressions": [{"key": "eks.amazonaws.com/capacityType", "operator": "In",
                               "values": ["SPOT"]}]},
    )  # fmt: skip
    gpu_resource: str = "nvidia.com/gpu"
    extra_labels: Mapping[str, str] = field(default_factory=dict)


def _quantity(cpu: float) -> str:
    return str(int(cpu)) if float(cpu).is_integer() else f"{int(cpu * 1000)}m"


def render_pod(
    env: Environment,
    image: str,
    *,
    version: int | None = None,
    settings: K8sSettings | None = None,
) -> dict[str, Any]:
    """The kernel pod of ``env`` on ``image`` (Kubernetes JSON, camelCase), with the launcher's
    placeholders (``{{ kernel_id }}`` ...) where the KubernetesProvisioner fills values in.

    Resources become requests and limits (GPUs as ``settings.gpu_resource``); ``env_vars``
    become the container's environment; each secret an environment variable read from the
    Kubernetes Secret ``settings.secret_name`` (never its value); ``interruptible`` adds the spot
    tolerations and node affinity of ``settings``; ``pod_template`` is merged last (its
    primary container, the first or the one named by ``primary_container_name``, over ours).
    """
    settings = settings or K8sSettings()
    labels = {
        LABEL_ENV: env.name,
        LABEL_SPEC_HASH: env.spec_hash[:63],
        "kernel_id": _KERNEL_ID,
        "component": "kernel",
        **settings.extra_labels,
    }
    if version is not None:
        labels[LABEL_VERSION] = str(version)
    container: dict[str, Any] = {
        "name": "kernel",
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "env": [{"name": n, "value": _PLACEHOLDERS[n]} for n in _LAUNCH_ENV]
        + [{"name": k, "value": v} for k, v in sorted(env.kernel_env_vars.items())]
        + [
            {
                "name": secret,
                "valueFrom": {"secretKeyRef": {"name": settings.secret_name, "key": secret}},
            }
            for secret in env.secrets
        ],
    }
    resources = env.resources
    amounts: dict[str, str] = {}
    if resources.cpu is not None:
        amounts["cpu"] = _quantity(resources.cpu)
    if resources.memory:
        amounts["memory"] = resources.memory
    if resources.gpu:
        amounts[settings.gpu_resource] = str(resources.gpu)
    if amounts:
        container["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if env.interruptible:
        spec["tolerations"] = [dict(t) for t in settings.spot_tolerations]
        terms = [copy.deepcopy(dict(t)) for t in settings.spot_node_selector_terms]
        required = {"nodeSelectorTerms": terms}
        spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
        }
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": _POD_NAME, "namespace": _NAMESPACE, "labels": labels},
        "spec": spec,
    }
    if env.pod_template:
        pod = merge_template(pod, env.pod_template)
    return pod


def _template_parts(template: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(metadata, pod spec, primary container name) of a pod template: a Pod-shaped mapping
    (``metadata``/``spec``) or Flyte's PodTemplate (``pod_spec``, ``labels``,
    ``annotations``, ``primary_container_name``)."""
    if "pod_spec" in template or "primary_container_name" in template:
        known = {"pod_spec", "labels", "annotations", "primary_container_name"}
        unknown = sorted(set(template) - known)
        if unknown:
            raise SpecError(
                f"unknown keys {unknown} of a Flyte pod template (known: {sorted(known)})",
                field="pod_template",
            )
        meta = {k: dict(template[k]) for k in ("labels", "annotations") if template.get(k)}
        return (
            meta,
            dict(template.get("pod_spec") or {}),
            str(template.get("primary_container_name") or "primary"),
        )
    unknown = sorted(set(template) - {"metadata", "spec", "apiVersion", "kind"})
    if unknown:
        raise SpecError(
            f"unknown keys {unknown} (a pod template has metadata and spec, or Flyte's "
            "pod_spec, labels, annotations and primary_container_name)",
            field="pod_template",
        )
    return dict(template.get("metadata") or {}), dict(template.get("spec") or {}), ""


def _merge(ours: Any, theirs: Any) -> Any:
    if isinstance(ours, dict) and isinstance(theirs, Mapping):
        merged = dict(ours)
        for key, value in theirs.items():
            merged[key] = _merge(ours.get(key), value) if key in ours else copy.deepcopy(value)
        return merged
    return copy.deepcopy(theirs)


def merge_template(pod: dict[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """``pod`` with ``template`` over it: its metadata and spec fields win; its primary
    container is merged into ours (name and image stay ours); other containers are added."""
    meta, spec, primary = _template_parts(template)
    merged = copy.deepcopy(pod)
    merged["metadata"] = _merge(merged["metadata"], meta)
    their_containers = list(spec.pop("containers", None) or [])
    merged["spec"] = _merge(merged["spec"], spec)
    ours = merged["spec"]["containers"][0]
    for index, container in enumerate(their_containers):
        if not isinstance(container, Mapping):
            raise SpecError("must be an object", field=f"pod_template.spec.containers[{index}]")
        is_primary = container.get("name") == primary if primary else index == 0
        if is_primary:
            env = list(ours.get("env", [])) + list(container.get("env", []) or [])
            updated = _merge(ours, {k: v for k, v in container.items() if k != "env"})
            updated.update(name=ours["name"], image=ours["image"], env=env)
            merged["spec"]["containers"][0] = updated
            ours = updated
        else:
            merged["spec"]["containers"].append(copy.deepcopy(dict(container)))
    return merged


# -- validation against the kubernetes client's models ---------------------------------------------
def _models() -> Any:
    try:
        from kubernetes import client
    except ImportError:
        raise BackendUnavailableError(
            "k8s", "the kubernetes client is not installed (pip install 'jupyter-envs[k8s]')"
        ) from None
    return client


# The client's type strings: "list[V1Container]" / "dict(str, str)" (older releases) or
# "List[V1Container]" / "Dict[str, str]" (its pydantic models, 35+).
_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(str, (.+)\)|Dict\[str, (.+)\])$")
_PRIMITIVE: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "object": object,
}


def _check(client: Any, value: Any, kind: str, path: str) -> Any:
    """``value`` as an instance of ``kind`` (a model name or an OpenAPI type string)."""
    if value is None:
        return None
    if match := _LIST.match(kind):
        if not isinstance(value, list):
            raise SpecError(f"must be a list, got {type(value).__name__}", field=path)
        return [_check(client, v, match.group(1), f"{path}[{i}]") for i, v in enumerate(value)]
    if match := _DICT.match(kind):
        if not isinstance(value, Mapping):
            raise SpecError(f"must be an object, got {type(value).__name__}", field=path)
        inner = match.group(1) or match.group(2)
        return {k: _check(client, v, inner, f"{path}.{k}") for k, v in value.items()}
    if kind in _PRIMITIVE:
        if not isinstance(value, _PRIMITIVE[kind]) or (kind == "int" and isinstance(value, bool)):
            raise SpecError(f"must be {kind}, got {type(value).__name__}", field=path)
        return value
    model = getattr(client, kind, None)
    if model is None:  # a type the client names but does not model (e.g. "datetime")
        return value
    if not isinstance(value, Mapping):
        raise SpecError(f"must be an object ({kind}), got {type(value).__name__}", field=path)
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            known = ", ".join(sorted(by_json))
            raise SpecError(
                f"is not a field of {kind} (its fields: {known})", field=f"{path}.{key}"
            )
        kwargs[attr] = _check(client, item, model.openapi_types[attr], f"{path}.{key}")
    try:
        return model(**kwargs)
    except ValueError as exc:  # the client's own check of required fields and enums
        raise SpecError(f"{kind}: {exc}", field=path) from None


def validate(pod: Mapping[str, Any], field: str = "pod") -> Any:
    """Check ``pod`` against the client's ``V1Pod`` model; the model instance, or SpecError
    naming the first field at fault (``pod.spec.containers[0].imagePullPolicyy``)."""
    return _check(_models(), pod, "V1Pod", field)


def validate_template(template: Mapping[str, Any]) -> None:
    """Check an Environment's ``pod_template`` alone (SpecError names ``pod_template.…``)."""
    client = _models()
    meta, spec, _primary = _template_parts(template)
    if "pod_spec" in template or "primary_container_name" in template:
        _check(client, spec, "V1PodSpec", "pod_template.pod_spec")
        return
    _check(client, meta, "V1ObjectMeta", "pod_template.metadata")
    # A template's spec may leave out what ours provides (containers' names, images).
    containers = spec.get("containers") or []
    for index, container in enumerate(containers):
        if isinstance(container, Mapping):
            filled = {"name": "kernel", "image": "image", **container}
            _check(client, filled, "V1Container", f"pod_template.spec.containers[{index}]")
    rest = {k: v for k, v in spec.items() if k != "containers"}
    _check(client, {**rest, "containers": []}, "V1PodSpec", "pod_template.spec")


# -- the kernelspec --------------------------------------------------------------------------------
def _launcher() -> Path:
    try:
        import gateway_provisioners
    except ImportError:
        raise BackendUnavailableError(
            "k8s",
            "gateway_provisioners is not installed (pip install 'jupyter-envs[k8s]'): its "
            "KubernetesProvisioner launches the kernel pods",
        ) from None
    base = Path(gateway_provisioners.__file__).parent / "kernel-launchers" / "kubernetes"
    return base / "scripts" / "launch_kubernetes.py"


def _yaml_template(pod: Mapping[str, Any]) -> str:
    """The pod as the launcher's Jinja template: JSON is YAML, and the placeholders are Jinja
    expressions inside JSON strings; a literal ``{{`` elsewhere is escaped."""
    text = json.dumps(pod, indent=2, sort_keys=False)
    keep = {json.dumps(p)[1:-1] for p in (*_PLACEHOLDERS.values(), _POD_NAME, _NAMESPACE)}
    for index, placeholder in enumerate(sorted(keep)):
        text = text.replace(placeholder, f"\x00{index}\x00")
    for opener in ("{{", "{%", "{#"):
        text = text.replace(opener, "{{ '" + opener + "' }}")
    for index, placeholder in enumerate(sorted(keep)):
        text = text.replace(f"\x00{index}\x00", placeholder)
    return "# Written by jupyter-envs: the kernel pod of this environment.\n" + text + "\n"


def write_kernelspec(
    folder: Path,
    env: Environment,
    image: str,
    *,
    display_name: str,
    version: int | None = None,
    settings: K8sSettings | None = None,
    launch_timeout: int = 120,
) -> dict[str, Any]:
    """Write a KubernetesProvisioner kernelspec for ``env`` on ``image`` into ``folder``:
    ``kernel.json``, ``scripts/kernel-pod.yaml.j2`` (our validated pod) and the provisioner's
    ``scripts/launch_kubernetes.py``. The image must run gateway_provisioners' kernel
    bootstrap (``jupyter image-bootstrap install`` in its Dockerfile). Returns the pod."""
    settings = settings or K8sSettings()
    pod = render_pod(env, image, version=version, settings=settings)
    validate(pod)
    launcher = _launcher()
    scripts = folder / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(launcher, scripts / launcher.name)
    (scripts / "kernel-pod.yaml.j2").write_text(_yaml_template(pod))
    spec = {
        "language": "python",
        "display_name": display_name,
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER_NAME,
                "config": {"image_name": image, "launch_timeout": launch_timeout},
            },
            "jupyter_envs": {"env": env.name, "version": version, "runtime": "k8s"},
        },
        "env": {"KERNEL_NAMESPACE": settings.namespace},
        "argv": [
            "python",
            str(scripts / launcher.name),
            "--kernel-id",
            "{kernel_id}",
            "--port-range",
            "{port_range}",
            "--response-address",
            "{response_address}",
            "--public-key",
            "{public_key}",
            "--kernel-class-name",
            "ipykernel.ipkernel.IPythonKernel",
        ],
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    return pod
