"""The embedded default: virtual environments made and filled by uv."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BuildCancelledError, BuildError
from ...events import Event, LogLine, Progress
from .. import uvlock
from ..kernels.runtimes import KernelTarget
from ..runtime import KERNEL_SIDE_REQUIREMENTS
from . import bytecode, pipconfig
from ._process import run_streaming
from .base import Builder, BuildOutput, BuildRequest
from .pythons import python_site_packages, select_interpreter
from .uvtool import find_uv, uv_environment

if TYPE_CHECKING:
    from ...spec._environment import Environment

__all__ = ["UvBuilder", "find_uv", "freeze", "uv_environment"]

# uv's summary lines, mapped to how far through the install they put us.
_UV_STEPS = (
    (re.compile(r"^Resolved \d+ package"), 0.45, "resolved"),
    (re.compile(r"^(Prepared|Downloaded) \d+ package"), 0.75, "downloaded"),
    (re.compile(r"^Installed \d+ package"), 0.9, "installed"),
)
RUNTIME_PTH = "_jupyter_envs_runtime.pth"


def freeze(
    uv: str, python: str, uv_env: dict[str, str], request: BuildRequest
) -> Generator[Event, None, list[str]]:
    """``uv pip freeze`` of an interpreter's environment: its requirement lines."""
    lines = yield from run_streaming(
        [uv, "pip", "freeze", "--python", python],
        env=uv_env,
        cancel=request.cancel,
        what="uv pip freeze",
        env_name=request.env.name,
        collect=True,
    )
    return [line for line in lines if line and not line.startswith("Using ")]


class UvBuilder(Builder):
    """Builds a virtualenv with uv from the spec's pip requirements (the default builder)."""

    name = "venv"

    def detect(self, env: Environment) -> bool:
        """Matches any spec without Docker settings or real conda packages."""
        conda = env.python.conda_dependencies
        return not env.docker.enabled and not env.image and not (conda and conda.needs_conda())

    def unavailable_reason(self) -> str | None:
        """uv must be installed (it is a dependency of jupyter-envs, so this is rare)."""
        if find_uv() is None:
            return "uv is not installed (pip install uv), and JUPYTER_ENVS_UV is not set"
        return None

    def kernel_target(self, artifact: Path) -> KernelTarget:
        """The venv's own interpreter."""
        return KernelTarget(python=str(artifact / "bin" / "python"))

    def _hashed(
        self,
        uv: str,
        lock: str,
        options: list[str],
        python: str,
        request: BuildRequest,
        uv_env: dict[str, str],
    ) -> Generator[Event, None, str]:
        """The lock with the sha256 of each pinned version's files (for this platform, and its
        sdist), read from a ``pylock.toml`` uv writes for the pins. Best effort: without them
        (an index that lists no hashes, no network) the lock is the plain freeze."""
        yield Progress("lock", 0.96, "recording file hashes")
        folder = request.staging / ".jupyter-envs-pylock"
        folder.mkdir(exist_ok=True)
        why = ""
        try:
            # From uv's cache first: it has just fetched every index page the pins need (0.03 s
            # where asking the index again takes ~0.4 s); from the index if something is missing.
            for offline in (True, False):
                args = uvlock.pylock_args(lock, options, python, folder, offline=offline)
                try:
                    yield from run_streaming(
                        [uv, *args],
                        env=uv_env,
                        cancel=request.cancel,
                        what="uv pip compile (file hashes for the lock)",
                        env_name=request.env.name,
                    )
                    return uvlock.add_hashes(lock, (folder / "pylock.toml").read_text())
                except BuildCancelledError:
                    raise
                except (BuildError, OSError, ValueError) as exc:
                    why = exc.message if isinstance(exc, BuildError) else str(exc)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        yield LogLine(f"File hashes not recorded in the lock: {why}")
        return lock

    def artifact_problem(self, artifact: Path) -> str | None:
        """The venv's directory and its interpreter must still be there."""
        problem = super().artifact_problem(artifact)
        if problem is None and not (artifact / "bin" / "python").exists():
            return f"its interpreter {artifact / 'bin' / 'python'} is gone"
        return problem

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        """uv venv → uv pip install (user requirements + kernel side) → freeze as the lock."""
        env = request.env
        uv = find_uv()
        if uv is None:
            raise BuildError("uv is not installed", env_name=env.name)
        if env.python.user_managed_dependencies:
            raise BuildError(
                "python.user_managed_dependencies is only supported by the docker builder; "
                "for a venv, list the requirements instead",
                env_name=env.name,
            )
        yield Progress("python", 0.02, "finding a Python interpreter")
        interp = select_interpreter(env.effective_python())
        yield LogLine(f"Using Python {interp.version} at {interp.path}")
        uv_env, settings = uv_environment()
        if settings:
            yield LogLine(
                "Honouring the host pip configuration: " + ", ".join(pipconfig.describe(settings))
            )
        prefix = request.staging
        yield Progress("venv", 0.05, "creating the virtual environment")
        # --relocatable: the venv is built in a staging directory and then moved into place.
        yield from run_streaming(
            [uv, "venv", "--relocatable", "--no-project", "--python", interp.path, str(prefix)],
            env=uv_env,
            cancel=request.cancel,
            what="uv venv",
            env_name=env.name,
        )
        options = list(env.all_pip_options())
        if env.pip_constraints:
            constraints = prefix / "jupyter-envs-constraints.txt"
            constraints.write_text("\n".join(env.pip_constraints) + "\n")
            options.append(f"-c {constraints}")
        # --require-hashes wants a hash on every requirement, which the kernel's own (ipykernel)
        # have not: they are installed in a second step then, beside what was verified.
        kernel_apart = "--require-hashes" in options
        wanted = list(env.all_pip_requirements())
        if request.lock is not None:
            # The lock wins over the spec: the same versions as where it was made. Options stay
            # (the indexes to find them); constraints are moot with exact pins.
            wanted = [ln for ln in request.lock.splitlines() if ln.strip()]
            options = [o for o in options if not o.startswith("-c ")]
            yield LogLine(f"Installing the {len(wanted)} locked versions (not resolving the spec)")
        lists = [[*options, *wanted], list(KERNEL_SIDE_REQUIREMENTS)]
        if not kernel_apart:
            lists = [lists[0] + lists[1]]
        yield Progress("install", 0.1, "resolving and installing packages")
        python = str(prefix / "bin" / "python")
        # Once per store, and beside the install: what a kernel imports at start.
        measuring = bytecode.start_measuring(request.cache_dir / "bytecode")
        try:
            for index, lines in enumerate(lists):
                reqs_file = prefix / f"jupyter-envs-requirements{'-kernel' if index else ''}.txt"
                reqs_file.write_text("\n".join(lines) + "\n")
                step_env = uv_env
                if kernel_apart and index == 0 and "UV_CONSTRAINT" in uv_env:
                    # In --require-hashes mode uv wants every constraint pinned with ==; the
                    # host's (pip.conf "constraint") rarely are, and an exact hashed list needs
                    # none.
                    step_env = {k: v for k, v in uv_env.items() if k != "UV_CONSTRAINT"}
                    yield LogLine(
                        "--require-hashes: the host's pip constraint file is not applied to the "
                        "hash-checked requirements"
                    )
                for event in run_streaming(
                    [uv, "pip", "install", "--python", python, "-r", str(reqs_file)],
                    env=step_env,
                    cancel=request.cancel,
                    what="uv pip install",
                    env_name=env.name,
                ):
                    yield event
                    for pattern, fraction, label in _UV_STEPS:
                        if pattern.match(event.text.strip()):
                            yield Progress("install", fraction, label)
            site = python_site_packages(prefix, interp)
            (site / RUNTIME_PTH).write_text(str(request.runtime_dir) + "\n")
            yield from bytecode.kernel_bytecode(request, python, site, interp.version, measuring)
        finally:
            if measuring is not None:
                measuring.discard()
        yield Progress("lock", 0.93, "recording the lock")
        frozen = yield from freeze(uv, python, uv_env, request)
        lock = "\n".join(frozen) + "\n"
        lock = yield from self._hashed(uv, lock, options, str(interp.version), request, uv_env)
        return BuildOutput(
            lock=lock,
            python_version=str(interp.version),
            details={"interpreter": interp.path, "uv": uv, "host_python": sys.version.split()[0]},
        )
