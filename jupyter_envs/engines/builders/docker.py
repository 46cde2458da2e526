"""Docker images built from a spec with the engine's (legacy) builder, through the docker SDK.

Everything here blocks (the SDK is synchronous): builders run in worker threads, never in an
event loop. The engine is found by ``docker.from_env()``, so ``DOCKER_HOST`` is respected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import BuildError
from ...events import Event, LogLine, Progress
from .. import docker as _docker
from ..kernels.runtimes import KernelTarget
from .base import Builder, BuildOutput, BuildRequest
from .dockerfile import VENV_PATH, base_image_line, locked_base, needs_conda, prepare_context
from .images import base_reference, build_image, inspect_python

if TYPE_CHECKING:
    import docker

    from ...spec._environment import Environment

__all__ = ["DockerBuilder", "build_image", "docker_client", "engine_unavailable_reason"]

IMAGE_JSON = "image.json"


def docker_client(timeout: int | None = None) -> docker.DockerClient:
    """A client for the engine ``docker.from_env()`` finds; BackendUnavailableError if none.

    No read timeout unless ``timeout`` is given: builds stream for minutes.
    """
    return _docker.connect(timeout)


def engine_unavailable_reason() -> str | None:
    """Why Docker builds cannot run here (SDK missing, engine unreachable), or None."""
    reason, client = _docker.probe()
    if client is not None:
        client.close()
    return reason


class DockerBuilder(Builder):
    """Builds an image per spec version: ``jupyter-envs/<name>:<hash prefix>``.

    Chosen for specs with Docker settings (base image, Dockerfile, apt packages) or an image.
    The artifact directory holds ``image.json`` (image id, tag, Dockerfile) and the Dockerfile;
    the image itself lives in the engine.
    """

    name = "docker"
    # From a lock: its pip versions, on the base image digest it records (apt packages are
    # installed at the versions the base image's sources have then).
    honours_lock = True

    def detect(self, env: Environment) -> bool:
        """Any Docker setting, or a prebuilt image."""
        return env.docker.enabled or bool(env.image)

    def unavailable_reason(self) -> str | None:
        """The SDK must be installed and the engine must answer a ping."""
        return engine_unavailable_reason()

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        """Render → build (streamed) → inspect the kernel interpreter → write image.json."""
        env = request.env
        client = docker_client()
        try:
            context = request.staging.parent / f"{request.staging.name}.context"
            prefix = request.staging.parent / f"{request.staging.name}.conda"
            conda_lock: str | None = None
            try:
                if needs_conda(env):
                    conda_lock = yield from _conda_prefix(request, prefix)
                yield Progress("dockerfile", 0.5 if conda_lock else 0.01, "writing the Dockerfile")
                plan = prepare_context(
                    env,
                    context,
                    runtime_dir=request.runtime_dir,
                    lock=request.lock,
                    conda_prefix=prefix if conda_lock else None,
                )
                if request.lock is not None:
                    yield from _check_locked_base(client, plan.base_image, request.lock)
                request.staging.mkdir(parents=True, exist_ok=True)
                (request.staging / "Dockerfile").write_text(plan.dockerfile)
                if plan.buildargs:
                    names = ", ".join(sorted(plan.buildargs))
                    yield LogLine(f"Build args from the host configuration: {names}")
                building = build_image(client, plan, request.cancel, env_name=env.name)
                if conda_lock is not None:  # the image build is the second half, after conda's
                    building = _rescaled(building, 0.5, 1.0)
                image = yield from building
            finally:
                shutil.rmtree(context, ignore_errors=True)
                shutil.rmtree(prefix, ignore_errors=True)
            yield Progress("lock", 0.9, "recording the installed packages")
            # Run in the image either way: it proves the kernel's interpreter starts there.
            version, lock = inspect_python(client, image.tag, plan.python, env.name)
            if conda_lock is not None:
                lock = conda_lock
            if plan.base_image is not None:
                lock = base_image_line(*base_reference(client, plan.base_image)) + "\n" + lock
            details = {
                "image_id": image.id,
                "tag": image.tag,
                "python": plan.python,
                "base_image": plan.base_image,
                "dockerfile": plan.dockerfile,
            }
            (request.staging / IMAGE_JSON).write_text(json.dumps(details, indent=1) + "\n")
            yield LogLine(f"Built image {image.tag} ({image.id}) with Python {version}")
            return BuildOutput(
                lock=lock,
                python_version=version,
                details={k: v for k, v in details.items() if k != "dockerfile"},
            )
        finally:
            client.close()

    def kernel_target(self, artifact: Path) -> KernelTarget:
        """The version's image, and the interpreter in it that runs the kernel."""
        info = read_image_json(artifact)
        return KernelTarget(python=str(info.get("python") or "python3"), image=str(info["tag"]))

    def artifact_problem(self, artifact: Path) -> str | None:
        """The image must still be on the engine (``docker rmi``, ``docker system prune``).

        One API call over the engine's socket. Without an engine the image cannot be checked
        (nor rebuilt): the version counts as usable and its kernel reports the engine's absence.
        """
        problem = super().artifact_problem(artifact)
        if problem is not None:
            return problem
        try:
            info = read_image_json(artifact)
        except BuildError as exc:
            return str(exc)
        _reason, client = _docker.probe()
        if client is None:
            return None
        import docker.errors

        try:
            image = client.images.get(info["tag"])
        except docker.errors.ImageNotFound:
            return f"its image {info['tag']} is no longer on the Docker engine"
        except docker.errors.APIError:
            return None
        finally:
            client.close()
        if info.get("image_id") and image.id != info["image_id"]:
            return f"its tag {info['tag']} now names another image ({image.short_id})"
        return None

    def remove(self, artifact: Path) -> None:
        """Remove the version's image tag (kept while another version uses the same image)."""
        try:
            info = read_image_json(artifact)
        except BuildError:
            info = {}
        tag, image_id = info.get("tag"), info.get("image_id")
        shared = False
        if artifact.parent.is_dir():
            for sibling in artifact.parent.iterdir():
                if sibling == artifact or not (sibling / IMAGE_JSON).is_file():
                    continue
                with contextlib.suppress(BuildError):
                    other = read_image_json(sibling)
                    shared = shared or other.get("tag") == tag or other.get("image_id") == image_id
        if tag:
            _remove_tag(tag, image_id, shared)
        shutil.rmtree(artifact, ignore_errors=True)


def _remove_tag(tag: str, image_id: str | None, shared: bool) -> None:
    _reason, client = _docker.probe()
    if client is None:
        return  # nothing to remove without an engine; the directory still goes
    import docker.errors

    try:
        try:
            current: str | None = client.images.get(tag).id
        except docker.errors.ImageNotFound:
            current = None
        if image_id and current != image_id:
            # A forced rebuild moved the tag to a newer image: ours is left untagged. Removing
            # it by id fails harmlessly if something else still refers to it.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image_id)
        elif current is not None and not shared:
            client.images.remove(tag)
    except docker.errors.APIError:
        pass  # in use by a running kernel's container: the tag stays until it is removed
    finally:
        client.close()


def read_image_json(artifact: Path) -> dict[str, Any]:
    """The ``image.json`` of an artifact directory."""
    try:
        data = json.loads((artifact / IMAGE_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"{artifact / IMAGE_JSON} is missing or unreadable: {exc}") from exc
    if not isinstance(data, dict) or "tag" not in data:
        raise BuildError(f"{artifact / IMAGE_JSON} names no image")
    return data


def _conda_prefix(request: BuildRequest, prefix: Path) -> Generator[Event, None, str]:
    """Build the conda prefix of an image on this machine, for the image's path (VENV_PATH):
    solved and linked by rattler, pip section by uv, like a local conda environment. Its
    progress takes the first half of the build. Returns the conda lock."""
    from .conda import CondaBuilder

    conda_request = dataclasses.replace(request, staging=prefix, target=Path(VENV_PATH))
    output = yield from _rescaled(CondaBuilder().build(conda_request), 0.02, 0.48)
    return output.lock


_T = TypeVar("_T")


def _rescaled(
    steps: Generator[Event, None, _T], low: float, high: float
) -> Generator[Event, None, _T]:
    """``steps``' events, their progress fractions mapped into ``[low, high]``."""
    while True:
        try:
            event = next(steps)
        except StopIteration as stop:
            result: _T = stop.value
            return result
        if isinstance(event, Progress):
            event = Progress(event.phase, low + (high - low) * event.fraction, event.message)
        yield event


def _check_locked_base(
    client: docker.DockerClient, base: str | None, lock: str
) -> Iterator[LogLine]:
    """Say so when the base image here is not the one the lock was made on (a local image,
    recorded by id: there is no digest to pin it by)."""
    ref, image_id = locked_base(lock)
    if base is None or ref is None or image_id is None:
        return
    here = base_reference(client, base)[1]
    if here is not None and here != image_id:
        yield LogLine(
            f"Note: the base image {base} here is not the one the lock was made on "
            f"(image {here}, there {image_id}): system packages may differ"
        )
