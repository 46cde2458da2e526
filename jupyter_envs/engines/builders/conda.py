"""Conda environments solved and installed by py-rattler (no conda, mamba or micromamba needed).

The build: the spec's channels and conda packages (plus ``python``, which a kernel needs) are
solved and linked into the staging prefix by :mod:`.rattler_worker` in a process of its own, with
the final location patched into the installed files (conda packages are not relocatable); the
``pip:`` section and the kernel's own packages are then installed by uv into the prefix's Python;
the lock records every conda archive (URL and sha256) and every pip pin
(:mod:`jupyter_envs.engines.condalock`). Packages are cached once per store, under
``cache/conda``, so a second environment with the same packages links them without a download.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import Version

from ...errors import BuildError, SpecError
from ...events import Event, LogLine, Progress
from ...spec._validate import KERNEL_MIN_PYTHON, too_old_for_kernel
from .. import condalock, rattler_worker
from ..kernels.runtimes import KernelTarget
from ..rattler_worker import PROGRESS_MARK
from ..runtime import KERNEL_SIDE_REQUIREMENTS
from . import bytecode
from ._process import Spare, run_streaming
from .base import Builder, BuildOutput, BuildRequest
from .uv import RUNTIME_PTH, freeze
from .uvtool import find_uv, uv_environment

if TYPE_CHECKING:
    from ...spec._conda import CondaDependencies

__all__ = ["CHANNEL_ALIAS_VAR", "CondaBuilder", "resolve_channels"]

#: Where channel names point (conda's ``channel_alias``): a mirror, or a local folder of channels.
CHANNEL_ALIAS_VAR = "JUPYTER_ENVS_CONDA_CHANNEL_ALIAS"
_DEFAULT_ALIAS = "https://conda.anaconda.org/"
# conda's "defaults" is not a channel on the alias but Anaconda's own repository.
_DEFAULTS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
# Enough of a script to hold its shebang or uv's two-line sh header.
_SCRIPT_HEADER = 1024
_UV_STEPS = (
    (re.compile(r"^Resolved \d+ package"), 0.76, "pip: resolved"),
    (re.compile(r"^(Prepared|Downloaded) \d+ package"), 0.82, "pip: downloaded"),
    (re.compile(r"^Installed \d+ package"), 0.88, "pip: installed"),
)


# Run as a script: "-m" would import the jupyter_envs package first; the worker needs only
# rattler. A spare waits for the next build with rattler imported (~0.2 s of a ~1.5 s build).
_WORKER = (sys.executable, rattler_worker.__file__)
_SPARE = Spare(_WORKER)


def resolve_channels(channels: Iterable[str], alias: str | None = None) -> dict[str, str]:
    """Channel URL → the name the spec gave it, in priority order.

    Names go through the channel alias (``JUPYTER_ENVS_CONDA_CHANNEL_ALIAS``, else
    conda.anaconda.org); ``defaults`` is Anaconda's main and r; ``nodefaults`` only says not to
    add ``defaults`` (which this builder never adds); URLs and local folders stay as they are.
    """
    alias = (alias or os.environ.get(CHANNEL_ALIAS_VAR) or _DEFAULT_ALIAS).rstrip("/") + "/"
    if not re.match(r"^[a-z][a-z0-9+.-]*://", alias):
        alias = Path(alias).expanduser().resolve().as_uri().rstrip("/") + "/"
    urls: dict[str, str] = {}
    for channel in channels:
        if channel == "nodefaults":
            continue
        if channel == "defaults":
            for url in _DEFAULTS:
                urls.setdefault(url, channel)
        elif "://" in channel:
            urls.setdefault(channel.rstrip("/"), channel)
        elif channel.startswith(("/", "./", "../", "~")):
            urls.setdefault(Path(channel).expanduser().resolve().as_uri(), channel)
        else:
            urls.setdefault(alias + channel, channel)
    return urls


def _qualified_channels(specs: Sequence[str]) -> list[str]:
    """Channels named inside specs (``conda-forge::numpy``): conda searches them too."""
    return [s.split("::", 1)[0] for s in specs if "::" in s]


def _python_spec(specs: list[str], wanted: str | None) -> list[str]:
    """The specs with ``python`` in them (a kernel needs it), pinned when the env asks."""
    if any(
        re.split(r"[\s=<>!~\[]", s.split("::", 1)[-1], maxsplit=1)[0] == "python" for s in specs
    ):
        return specs
    return [*specs, f"python {wanted}.*" if wanted else "python"]


MIN_PYTHON = ".".join(map(str, KERNEL_MIN_PYTHON))


class CondaBuilder(Builder):
    """Builds a conda prefix with py-rattler, then its ``pip:`` section with uv."""

    name = "conda"

    def detect(self, env: Any) -> bool:
        """Matches a spec with conda packages beyond ``python`` and ``pip`` (and no Docker)."""
        conda = env.python.conda_dependencies
        return bool(conda and conda.needs_conda()) and not env.docker.enabled and not env.image

    def unavailable_reason(self) -> str | None:
        """py-rattler (a dependency of jupyter-envs) and uv must be importable/installed."""
        try:
            missing = importlib.util.find_spec("rattler") is None
        except (ImportError, ValueError):  # a broken or blocked install
            missing = True
        if missing:
            return "py-rattler is not installed (pip install py-rattler)"
        if find_uv() is None:
            return "uv is not installed (pip install uv), and JUPYTER_ENVS_UV is not set"
        return None

    def kernel_target(self, artifact: Path) -> KernelTarget:
        """The prefix's own interpreter."""
        # What "conda activate" would set that a kernel and its subprocesses need (activation
        # scripts of packages are not run).
        activation = {"CONDA_PREFIX": str(artifact), "PATH": f"{artifact}/bin:${{PATH}}"}
        return KernelTarget(python=str(artifact / "bin" / "python"), env=activation)

    def artifact_problem(self, artifact: Path) -> str | None:
        """The prefix and its interpreter must still be there."""
        problem = super().artifact_problem(artifact)
        if problem is None and not (artifact / "bin" / "python").exists():
            return f"its interpreter {artifact / 'bin' / 'python'} is gone"
        return problem

    # -- the build ---------------------------------------------------------------------------
    def _job(self, request: BuildRequest) -> tuple[dict[str, Any], list[str], list[str]]:
        """The worker's job, and the pip lines and options to install after it."""
        env = request.env
        conda: CondaDependencies | None = env.python.conda_dependencies
        if request.lock is not None:
            lock = condalock.parse(request.lock)
            channels = {url: url for url in lock.channels}
            specs = [pin.match_spec() for pin in lock.pins]
            return self._job_dict(request, channels, specs, []), list(lock.pip), []
        wanted = env.effective_python()
        if too_old_for_kernel(wanted):
            raise SpecError(
                f"Python {wanted} cannot run a kernel: ipykernel needs Python {MIN_PYTHON} or "
                "newer",
                field="conda_dependencies",
            )
        given = list(conda.channels) if conda else []
        specs = list(conda.conda_packages) if conda else []
        channels = resolve_channels([*(given or ["conda-forge"]), *_qualified_channels(specs)])
        specs = _python_spec(specs, wanted)
        pip = [*env.all_pip_options(), *env.all_pip_requirements()]
        constraints = [f"python >={MIN_PYTHON}"]
        return self._job_dict(request, channels, specs, constraints), pip, list(env.pip_constraints)

    def _job_dict(
        self,
        request: BuildRequest,
        channels: dict[str, str],
        specs: list[str],
        constraints: list[str],
    ) -> dict[str, Any]:
        return {
            "sources": list(channels),
            "channel_names": channels,
            "specs": specs,
            "constraints": constraints,
            "target": str(request.staging),
            "final": str(request.target or request.staging),
            "cache_dir": str(request.cache_dir / "conda"),
            "min_python": MIN_PYTHON,
        }

    def _solve_and_link(
        self, request: BuildRequest, job: dict[str, Any]
    ) -> Generator[Event, None, dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="jupyter-envs-conda-") as tmp:
            job["result"] = str(Path(tmp) / "result.json")
            job_file = Path(tmp) / "job.json"
            job_file.write_text(json.dumps(job))
            command = [*_WORKER, str(job_file)]
            started = _SPARE.take()
            if started is not None:
                assert started.stdin is not None
                started.stdin.write(f"{job_file}\n")
                started.stdin.close()
            for line in run_streaming(
                command,
                started=started,
                env=dict(os.environ),
                cancel=request.cancel,
                what="solving and installing the conda packages",
                env_name=request.env.name,
                untailed=PROGRESS_MARK,
            ):
                if line.text.startswith(PROGRESS_MARK):
                    data = json.loads(line.text[len(PROGRESS_MARK) :])
                    yield Progress(data["phase"], data["fraction"], data["message"])
                else:
                    yield line
            result: dict[str, Any] = json.loads(Path(job["result"]).read_text())
            return result

    def _pip(
        self,
        request: BuildRequest,
        uv: str,
        python: str,
        lines: list[str],
        constraints: list[str],
        uv_env: dict[str, str],
    ) -> Generator[Event, None, None]:
        yield Progress("pip", 0.72, "installing the pip section and the kernel's packages")
        folder = Path(tempfile.mkdtemp(prefix="jupyter-envs-pip-"))
        try:
            reqs = folder / "requirements.txt"
            options = []
            if constraints:
                (folder / "constraints.txt").write_text("\n".join(constraints) + "\n")
                options.append(f"-c {folder / 'constraints.txt'}")
            reqs.write_text("\n".join([*options, *lines, *KERNEL_SIDE_REQUIREMENTS]) + "\n")
            for event in run_streaming(
                [uv, "pip", "install", "--python", python, "-r", str(reqs)],
                env=uv_env,
                cancel=request.cancel,
                what="uv pip install (the pip section)",
                env_name=request.env.name,
            ):
                yield event
                for pattern, fraction, label in _UV_STEPS:
                    if pattern.match(event.text.strip()):
                        yield Progress("pip", fraction, label)
        finally:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        """rattler solve + link (worker process) → uv pip install → the lock."""
        env = request.env
        uv = find_uv()
        if uv is None:
            raise BuildError("uv is not installed", env_name=env.name)
        job, pip_lines, pip_constraints = self._job(request)
        if request.lock is not None:
            yield LogLine(f"Installing the {len(job['specs'])} locked conda records (no solve)")
        result = yield from self._solve_and_link(request, job)
        prefix = request.staging
        python = str(prefix / "bin" / "python")
        short = ".".join(result["python"].split(".")[:2])
        uv_env, _ = uv_environment()
        # uv would otherwise refuse to touch an interpreter that is not a virtualenv's.
        uv_env["UV_BREAK_SYSTEM_PACKAGES"] = "1"
        # Once per store, and beside the install: what a kernel imports at start.
        measuring = bytecode.start_measuring(request.cache_dir / "bytecode")
        site = prefix / "lib" / f"python{short}" / "site-packages"
        try:
            yield from self._pip(request, uv, python, pip_lines, pip_constraints, uv_env)
            (site / RUNTIME_PTH).write_text(str(request.runtime_dir) + "\n")
            yield from bytecode.kernel_bytecode(
                request, python, site, Version(result["python"]), measuring, fraction=0.9
            )
        finally:
            if measuring is not None:
                measuring.discard()
        final = Path(job["final"])
        fixed = _retarget_scripts(prefix / "bin", prefix, final)
        if fixed:
            yield LogLine(f"Pointed {fixed} pip-installed scripts at {final}")
        yield Progress("lock", 0.94, "recording the lock")
        frozen = yield from freeze(uv, python, uv_env, request)
        pip_pins = _pip_installed(frozen, site)
        pins = [condalock.CondaPin.from_url(r["url"], r["sha256"]) for r in result["records"]]
        lock = condalock.render(result["platform"], pins, pip_pins)
        return BuildOutput(
            lock=lock,
            python_version=result["python"],
            details={
                "channels": job["channel_names"],
                "conda_packages": len(pins),
                "pip_packages": len(pip_pins),
                "uv": uv,
            },
        )


def _retarget_scripts(bindir: Path, staging: Path, final: Path) -> int:
    """Point the scripts uv wrote at the final prefix: ``#!<staging>/bin/python``, or, for a
    path too long for a shebang, the ``exec "<staging>/bin/python"`` line of uv's sh header."""
    if staging == final or not bindir.is_dir():
        return 0
    old, new = str(staging).encode(), str(final).encode()
    count = 0
    for path in bindir.iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as handle:
            head = handle.read(_SCRIPT_HEADER)
        if not head.startswith(b"#!"):
            continue
        end = head.find(b"\n", head.find(b"\n") + 1)  # the first two lines: the header
        header = head[: end if end > 0 else len(head)]
        if old not in header:
            continue
        data = path.read_bytes()
        path.write_bytes(header.replace(old, new) + data[len(header) :])
        count += 1
    return count


def _pip_installed(frozen: Iterable[str], site: Path) -> list[str]:
    """The freeze lines of what pip/uv installed (conda's own Python packages left out)."""
    by_conda = set()
    for info in site.glob("*.dist-info"):
        installer = info / "INSTALLER"
        if installer.exists() and installer.read_text().strip() == "conda":
            by_conda.add(_norm(info.name.split("-", 1)[0]))
    lines = []
    for line in frozen:
        if line.startswith("#"):
            continue
        name = re.split(r"[\s=@<>!~;\[]", line, maxsplit=1)[0]
        if _norm(name) not in by_conda:
            lines.append(line)
    return lines


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
