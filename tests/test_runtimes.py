"""The two plug-in axes (builders, kernel runtimes) and the settings the façade is handed."""

from __future__ import annotations

import json
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from jupyter_envs import BackendUnavailableError, Environment, EnvManager, EnvsError, Workspace
from jupyter_envs.engines import builders
from jupyter_envs.engines.builders import Builder, BuildOutput, BuildRequest
from jupyter_envs.engines.kernels import runtimes
from jupyter_envs.engines.kernels.runtimes import (
    ContainerRuntime,
    KernelRequest,
    KernelRuntime,
    KernelTarget,
    LocalProcessRuntime,
    choose_runtime,
)
from jupyter_envs.events import Event
from jupyter_envs.facade.manager import Settings


def _kernel_json(ws: Workspace, kernel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ws.kernels_dir / kernel / "kernel.json").read_text())
    return data


# -- the spec's kind and hash do not depend on the plug-ins installed ----------------------------
class _Greedy(Builder):
    """A plug-in that claims every spec."""

    name = "greedy"

    def detect(self, env: Environment) -> bool:
        return True

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        raise AssertionError("never built here")

    def kernel_target(self, artifact: Path) -> KernelTarget:
        return KernelTarget(python=sys.executable)


def test_spec_hash_ignores_which_builders_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    env = Environment("h", pip=["six"])
    before = (env.kind, env.backend, env.spec_hash)
    greedy = _Greedy()
    monkeypatch.setattr(builders, "available_builders", lambda: (greedy,))
    assert (env.kind, env.backend, env.spec_hash) == before == ("venv", "venv", before[2])
    # The façade still hands it to the plug-in that claims it.
    assert builders.choose_builder(env) is greedy
    docker = Environment("d", pip=["six"], base_image="python:3.12-slim")
    assert docker.kind == docker.backend == "docker"


# -- kernel runtimes -----------------------------------------------------------------------------
def test_runtime_chain_picks_by_target() -> None:
    assert isinstance(choose_runtime(KernelTarget(python="/v/bin/python")), LocalProcessRuntime)
    assert isinstance(choose_runtime(KernelTarget("python3", image="img:1")), ContainerRuntime)


def test_unknown_or_unfit_runtime_is_named_in_the_error() -> None:
    with pytest.raises(BackendUnavailableError, match=r"'swarm'.*known: docker, local"):
        choose_runtime(KernelTarget(python="/v/bin/python"), "swarm")
    with pytest.raises(BackendUnavailableError, match="'docker' cannot run a kernel of interp"):
        choose_runtime(KernelTarget(python="/v/bin/python"), "docker")


def test_local_runtime_argv_loads_the_magics_unless_told_not_to() -> None:
    env = Environment("r", pip=["six"])
    fields = LocalProcessRuntime().kernelspec_fields(
        KernelRequest(KernelTarget("/v/bin/python"), env, 1, "0" * 64)
    )
    assert fields == {
        "argv": ["/v/bin/python", "-m", "ipykernel_launcher", "--ext=jupyter_envs", "-f",
                 "{connection_file}"]
    }  # fmt: skip
    bare = LocalProcessRuntime().kernelspec_fields(
        KernelRequest(KernelTarget("/p", magics=False), env, 1, "0" * 64)
    )
    assert "--ext=jupyter_envs" not in bare["argv"]


class _Remote(KernelRuntime):
    """A runtime a plug-in adds (as a cluster runtime would)."""

    name = "remote"

    def accepts(self, target: KernelTarget) -> bool:
        return True

    def kernelspec_fields(self, request: KernelRequest) -> dict[str, object]:
        return {
            "argv": ["remote-launch", request.env.name, "{connection_file}"],
            "metadata": {"remote": {"where": "cluster"}},
        }


def test_the_configured_runtime_writes_the_kernelspec(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = runtimes.available_runtimes()
    monkeypatch.setattr(runtimes, "available_runtimes", lambda: (_Remote(), *chain))
    manager = EnvManager(workspace, Settings(kernel_runtime="remote"))
    result = manager.build(Environment("rt", pip=["six"], backend="fake"))
    spec = _kernel_json(workspace, result.kernel_name)
    assert spec["argv"] == ["remote-launch", "rt", "{connection_file}"]
    metadata = spec["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["remote"] == {"where": "cluster"}
    assert metadata["jupyter_envs"]["runtime"] == "remote"
    # Without the setting, plug-ins are tried first: one that accepts the target wins.
    default = EnvManager(workspace).build(Environment("rt2", pip=["six"], backend="fake"))
    assert _kernel_json(workspace, default.kernel_name)["argv"][0] == "remote-launch"


def test_without_plug_ins_a_venv_kernel_is_a_local_process(workspace: Workspace) -> None:
    result = EnvManager(workspace).build(Environment("rt4", pip=["six"], backend="fake"))
    spec = _kernel_json(workspace, result.kernel_name)
    assert spec["argv"] == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    metadata = spec["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["jupyter_envs"]["runtime"] == "local"


def test_a_runtime_that_cannot_start_fails_the_build_and_registers_nothing(
    workspace: Workspace,
) -> None:
    manager = EnvManager(workspace, Settings(kernel_runtime="nowhere"))
    with pytest.raises(BackendUnavailableError, match="'nowhere'"):
        manager.build(Environment("rt3", pip=["six"], backend="fake"))
    assert "rt3" not in Environment.list(ws=workspace)
    assert not list(workspace.kernels_dir.glob("jenv-rt3-*"))


# -- settings are passed in, and those that change the result enter the hash ---------------------
def test_default_base_image_is_part_of_what_is_built(workspace: Workspace) -> None:
    """Changing the server's default base image builds anew (it used to reuse the image built
    on the old base: the default was not in the spec hash)."""
    spec = Environment("base", pip=["six"], apt_packages=["curl"], backend="fake")
    first = EnvManager(workspace, Settings(default_base_image="example/one:1")).build(spec)
    again = EnvManager(workspace, Settings(default_base_image="example/one:1")).build(spec)
    other = EnvManager(workspace, Settings(default_base_image="example/two:2")).build(spec)
    assert again.cache_hit
    assert again.version == first.version
    assert not other.cache_hit
    assert other.version == first.version + 1
    assert other.spec_hash != first.spec_hash
    assert Environment.get("base", ws=workspace).docker.base_image == "example/two:2"
    assert Environment.get("base", version=1, ws=workspace).docker.base_image == "example/one:1"
    # A spec that names its base keeps it, whatever the default.
    named = Environment("named", pip=["six"], base_image="example/mine:3", backend="fake")
    built = EnvManager(workspace, Settings(default_base_image="example/one:1")).build(named)
    assert built.spec_hash == named.spec_hash


# -- plug-ins merged into a chain (builders and runtimes alike) ----------------------------------
class _EP:
    """An entry point as importlib.metadata gives one."""

    def __init__(self, name: str, value: str, load: Any) -> None:
        self.name, self.value, self._load = name, value, load

    def load(self) -> Any:
        return self._load()


def test_plugins_replace_a_builtin_by_name_or_join_the_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_envs.engines import _plugins

    def broken() -> Any:
        raise ImportError("no module named nowhere")

    found = [
        _EP("local", "theirs:Local", lambda: type("L", (_Remote,), {"name": "local"})),
        _EP("remote", "theirs:Remote", lambda: _Remote),
        _EP("ours", "jupyter_envs.engines.kernels.runtimes:LocalProcessRuntime", broken),
    ]
    monkeypatch.setattr(_plugins, "entry_points", lambda group: found)
    chain = _plugins.merge_plugins(
        [ContainerRuntime(), LocalProcessRuntime()], "g", "kernel runtime", insert_at=0
    )
    assert [r.name for r in chain] == ["remote", "docker", "local"]
    assert isinstance(chain[2], _Remote)  # the built-in "local" was replaced in place
    found.append(_EP("bad", "theirs:Bad", broken))
    with pytest.raises(EnvsError, match=r"kernel runtime plug-in 'bad' \(theirs:Bad\) failed"):
        _plugins.merge_plugins([], "g", "kernel runtime", insert_at=0)
