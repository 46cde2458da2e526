"""Pushing and Swarm kernels without an engine: the registry field, the push's progress and
error reading, the service a kernel becomes, and the notebook record of a pushed image."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_envs import Environment, KernelLaunchError, SpecError
from jupyter_envs.engines.kernels.settings import ContainerSettings
from jupyter_envs.engines.kernels.swarm import GPU_RESOURCE, service_spec
from jupyter_envs.engines.registry import _classify, _follow, _Progress, registry_reference
from jupyter_envs.errors import RegistryError
from jupyter_envs.spec._carried import Carried

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1:5000", "127.0.0.1:5000/team", "registry.example.org/a/b-c", "localhost/x"],
)
def test_registry_accepts_host_port_path(value: str) -> None:
    assert Environment("x", registry=value).registry == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://host:5000", "without a scheme"),
        ("user:pw@host:5000/x", "must not hold credentials"),
        ("team", "host name with a dot or a port"),
        ("host:5000/Team", "lower-case"),
        (5000, "must be a string"),
    ],
)
def test_registry_refuses_what_docker_cannot_push_to(value: Any, says: str) -> None:
    with pytest.raises(SpecError, match=says) as refused:
        Environment("x", registry=value)
    assert refused.value.field == "registry"


def test_registry_is_kept_but_not_hashed() -> None:
    plain = Environment("x", pip=["six"])
    pushed = plain.clone_with(registry="127.0.0.1:5000/t")
    assert pushed.spec_hash == plain.spec_hash
    assert Environment.from_dict(pushed.to_dict()).registry == "127.0.0.1:5000/t"


def test_reference_is_per_version_and_lower_case() -> None:
    ref = registry_reference("h:5000/t", "NLP", 3, "0123456789abcdef")
    assert ref == "h:5000/t/nlp:v3-0123456789ab"


def test_progress_never_moves_back_and_ends_below_one() -> None:
    seen: list[float] = []
    progress = _Progress(lambda f, _m: seen.append(f))
    items: list[dict[str, Any]] = [
        {"id": "a", "status": "Preparing"},
        {"id": "a", "status": "Pushing", "progressDetail": {"current": 50, "total": 100}},
        {"id": "b", "status": "Preparing"},
        {"id": "a", "status": "Pushing", "progressDetail": {"current": 150, "total": 100}},
        {"id": "a", "status": "Pushed"},
        {"id": "b", "status": "Layer already exists"},
    ]
    for item in items:
        progress._last = -1e9  # report every item
        progress.feed(item)
    assert seen == sorted(seen)
    assert 0 < seen[-1] < 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("unauthorized: authentication required", "auth"),
        ("no basic auth credentials", "auth"),
        ('Get "http://h:1/v2/": dial tcp h:1: connect: connection refused', "unreachable"),
        ("EOF", "cut-off"),
        ("manifest invalid", "refused"),
    ],
)
def test_engine_messages_are_classified(message: str, reason: str) -> None:
    assert _classify(message) == reason


def test_a_stream_without_a_digest_is_a_cut_off_push() -> None:
    stream: list[dict[str, Any]] = [
        {"status": "The push refers to repository [h:5000/t/x]"},
        {"id": "a", "status": "Pushing"},
    ]
    with pytest.raises(RegistryError, match="cut off") as cut:
        _follow(stream, "h:5000/t", "h:5000/t/x:v1-a", None, None)
    assert cut.value.reason == "cut-off"


def test_a_stream_error_names_the_registry() -> None:
    stream: list[dict[str, Any]] = [
        {"errorDetail": {"message": "denied: requested access is denied"}, "error": "x"}
    ]
    with pytest.raises(RegistryError, match="h:5000/t refused the credentials"):
        _follow(stream, "h:5000/t", "h:5000/t/x:v1-a", None, None)


def test_the_digest_is_what_the_registry_answered() -> None:
    lines: list[str] = []
    stream: list[dict[str, Any]] = [
        {"id": "a", "status": "Pushed"},
        {"status": "v1: digest: ... size: 9"},
        {"aux": {"Tag": "v1-a", "Digest": DIGEST, "Size": 9}},
    ]
    pushed = _follow(stream, "h:5000/t", "h:5000/t/x:v1-a", None, lines.append)
    assert pushed.digest == DIGEST
    assert lines[0] == "a: Pushed"


def _spec(**settings: Any) -> dict[str, Any]:
    return service_spec(
        ContainerSettings(image=f"h:5000/t/x:v1@{DIGEST}", env_name="x", **settings),
        python="/opt/jenv/bin/python",
        kernel_id="k" * 36,
        ports=[5001, 5002, 5003, 5004, 5005],
        environment={"FOO": "bar"},
        labels={"l": "v"},
        conn_secret=("c1", "jenv-k-conn"),
        env_secret=("e1", "jenv-k-env"),
        cwd="/home/u/nb",
        uid=1000,
        gid=1000,
    )


def test_service_spec_maps_resources_secrets_ports_and_the_notebook_folder() -> None:
    spec = _spec(cpu=1.5, memory="2g", gpu=2, secrets=("TOKEN",))
    task = spec["task_template"]
    container = task["ContainerSpec"]
    assert container["Image"] == f"h:5000/t/x:v1@{DIGEST}"
    assert container["User"] == "1000:1000"
    assert container["Init"] is True
    assert container["Dir"] == "/home/u/nb"
    assert {m["Target"] for m in container["Mounts"]} == {"/run/jupyter-envs", "/home/u/nb"}
    assert [s["File"]["Name"] for s in container["Secrets"]] == ["connection.json", "kernel.env"]
    assert all(s["File"]["Mode"] == 0o400 for s in container["Secrets"])
    assert "FOO=bar" in container["Env"]
    assert not [e for e in container["Env"] if e.startswith("TOKEN")]  # values travel as secrets
    limits = task["Resources"]["Limits"]
    assert limits["NanoCPUs"] == 1_500_000_000
    assert limits["MemoryBytes"] == 2 * 1024**3
    assert task["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": GPU_RESOURCE, "Value": 2}}
    ]
    assert task["RestartPolicy"]["Condition"] == "none"
    ports = spec["endpoint_spec"]["Ports"]
    assert {(p["PublishedPort"], p["PublishMode"]) for p in ports} == {
        (p, "host") for p in range(5001, 5006)
    }


def test_service_spec_refuses_all_gpus() -> None:
    with pytest.raises(KernelLaunchError, match="GPU count"):
        _spec(gpu=-1)


def test_carried_images_are_checked() -> None:
    base = {
        "format": 1,
        "env": "x",
        "version": 1,
        "spec_hash": "h",
        "backend": "docker",
        "spec": {},
        "lock": None,
    }
    good = {"registry": "h:5000/t", "reference": "h:5000/t/x:v1-a", "digest": DIGEST}
    assert Carried.from_metadata({**base, "images": [good]}).images == (good,)
    assert "images" not in Carried.from_metadata(base).to_metadata()
    with pytest.raises(SpecError) as bad:
        Carried.from_metadata({**base, "images": [{"registry": 1}]})
    assert bad.value.field == "metadata.jupyter_envs.images[0]"
