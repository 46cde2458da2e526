"""Docker images through the docker SDK: build one (streaming its steps), run a command in one.

The engine's legacy builder is used (the only one a Debian engine has, and the one the SDK
drives). Everything here blocks (the SDK is synchronous): callers run it in worker threads,
never in an event loop. :class:`~.docker.DockerBuilder` and the ``Container`` API use it.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import re
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import BuildCancelledError, BuildError
from ...events import Event, LogLine, Progress
from .. import docker as _docker
from ..docker import LABEL_ROLE
from ._process import CancelToken
from .docker_index import mask_secrets
from .dockerfile import BuildPlan

if TYPE_CHECKING:
    import docker

__all__ = [
    "BuiltImage",
    "base_reference",
    "build_image",
    "inspect_python",
    "run_in_image",
]

TAIL_LINES = 30
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_RUNNING_IN = re.compile(r"^---> Running in ([0-9a-f]{12,64})")
_LAYER = re.compile(r"^---> ([0-9a-f]{12,64})$")
# The legacy builder colours a step's stderr red.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,64})")
# Reported by the engine when a FROM image is neither local nor pullable.
_PULL_FAILURE = re.compile(
    r"pull access denied|manifest unknown|not found: manifest|repository does not exist|"
    r"no such host|dial tcp|i/o timeout|TLS handshake|connection refused",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BuiltImage:
    """The result of :func:`build_image`."""

    id: str
    tag: str


def _ensure_base_image(
    client: docker.DockerClient, image: str, env_name: str | None
) -> Iterator[LogLine]:
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    yield LogLine(f"Base image {image} is not on this machine; pulling it")
    if "@" in image:  # pinned by digest: the engine takes the digest where a tag goes
        repo, _, tag = image.partition("@")
    else:
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    try:
        for item in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if "error" in item:
                raise BuildError(
                    f"the base image '{image}' does not exist locally and cannot be pulled: "
                    f"{item['error']}",
                    env_name=env_name,
                )
            status = " ".join(str(item.get(k, "")) for k in ("id", "status", "progress"))
            if item.get("status") and "progress" not in item:
                yield LogLine(status.strip(), "stdout")
    except docker.errors.APIError as exc:
        raise BuildError(
            f"the base image '{image}' does not exist locally and cannot be pulled: "
            f"{exc.explanation or exc}",
            env_name=env_name,
        ) from exc


def build_image(
    client: docker.DockerClient,
    plan: BuildPlan,
    cancel: CancelToken,
    *,
    env_name: str | None = None,
) -> Generator[Event, None, BuiltImage]:
    """Build ``plan`` with the engine, yielding every output line and per-step progress.

    Output is read in a helper thread so that cancelling is prompt even while a step prints
    nothing: on cancel the running step's container is killed (the legacy builder has no cancel
    call; a killed RUN ends the build, and ``forcerm`` removes its container), and
    :class:`BuildCancelledError` is raised once the engine has let go.
    """
    for note in plan.notes:
        yield LogLine(f"Note: {note}")
    if plan.base_image is not None:
        yield from _ensure_base_image(client, plan.base_image, env_name)
    # A call, not the property: mypy would narrow a property to False after this check and
    # then skip type-checking every later "if cancel.cancelled" branch as unreachable.
    if cancel.wait(0):
        raise BuildCancelledError("cancelled before it started", env_name=env_name)
    items: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
    running: list[str] = []
    stop = threading.Event()

    def kill_running() -> None:
        for cid in list(running):
            with contextlib.suppress(Exception):
                client.api.kill(cid)

    def read() -> None:
        try:
            stream = client.api.build(
                path=str(plan.context),
                tag=plan.tag,
                rm=True,
                forcerm=True,  # remove the intermediate container of a failed step too
                pull=False,
                decode=True,
                buildargs=plan.buildargs,
            )
            for item in stream:
                text = str(item.get("stream", ""))
                match = _RUNNING_IN.match(text.strip())
                if match:
                    running[:] = [match.group(1)]
                    if stop.is_set():
                        kill_running()
                items.put(item)
        except BaseException as exc:
            items.put(exc)
        finally:
            items.put(None)

    reader = threading.Thread(target=read, name="jupyter-envs-docker-build", daemon=True)
    reader.start()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    step = ""
    step_no = 0
    image_id: str | None = None
    stage_images: list[str] = []  # the last layer of each finished stage
    last_layer: str | None = None
    buffer = ""
    try:
        while True:
            try:
                item = items.get(timeout=0.2)
            except queue.Empty:
                if cancel.cancelled and not stop.is_set():
                    stop.set()
                    kill_running()
                continue
            if cancel.cancelled and not stop.is_set():
                stop.set()
                kill_running()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise _api_error(item, plan, env_name, list(tail)) from item
            if "error" in item:
                if stop.is_set():
                    continue  # the step we killed; the cancel is reported below
                raise _step_error(str(item["error"]), step, step_no, plan, env_name, list(tail))
            if "aux" in item and isinstance(item["aux"], dict) and "ID" in item["aux"]:
                image_id = str(item["aux"]["ID"])
            buffer += str(item.get("stream", ""))
            while "\n" in buffer:
                raw, buffer = buffer.split("\n", 1)
                line = mask_secrets(_ANSI.sub("", raw).rstrip("\r"), plan.secrets)
                tail.append(line)
                yield LogLine(line, "stdout")
                stripped = line.strip()
                if (m := _STEP.match(stripped)) is not None:
                    step_no, total = int(m.group(1)), int(m.group(2))
                    step = m.group(3)
                    if step.upper().startswith("FROM ") and last_layer is not None:
                        stage_images.append(last_layer)
                    yield Progress(
                        "build", 0.05 + 0.8 * (step_no - 1) / total, f"step {step_no}/{total}"
                    )
                elif (m := _LAYER.match(stripped)) is not None:
                    last_layer = m.group(1)
                elif (m := _BUILT.match(stripped)) is not None:
                    image_id = image_id or m.group(1)
    finally:
        if reader.is_alive():
            stop.set()
            kill_running()
            # Wait for the engine to let go, so no build container outlives us.
            reader.join(timeout=30)
    if cancel.cancelled:
        raise BuildCancelledError(
            f"the image build was cancelled at step {step_no}",
            env_name=env_name,
            log_tail=list(tail),
        )
    if image_id is None:
        raise BuildError("the engine reported no image id", env_name=env_name, log_tail=list(tail))
    _drop_private_stages(client, plan, stage_images)
    return BuiltImage(id=image_id, tag=plan.tag)


def _drop_private_stages(
    client: docker.DockerClient, plan: BuildPlan, stage_images: list[str]
) -> None:
    """Remove the install stage of a build with index credentials (its history holds them)."""
    if not plan.private_stages:
        return
    # Stages in order: jenv-base, jenv-install, final. The install stage ends where the final
    # stage's FROM begins: the second recorded stage end.
    for image in stage_images[1:2]:
        with contextlib.suppress(Exception):
            client.images.remove(image, force=True)


def _step_error(
    error: str,
    step: str,
    step_no: int,
    plan: BuildPlan,
    env_name: str | None,
    tail: list[str],
) -> BuildError:
    error = mask_secrets(error.strip(), plan.secrets)
    if step.upper().startswith("FROM ") and _PULL_FAILURE.search(error):
        image = step.split()[1] if len(step.split()) > 1 else step
        return BuildError(
            f"the base image '{image}' does not exist locally and cannot be pulled: {error}",
            env_name=env_name,
            log_tail=tail,
        )
    where = f"step {step_no} ({_short(step)})" if step else "the build"
    return BuildError(f"{where} failed: {error}", env_name=env_name, log_tail=tail)


def _short(step: str) -> str:
    first = step.split("\\")[0].strip()
    return first if len(first) <= 120 else first[:117] + "..."


def _api_error(
    exc: BaseException, plan: BuildPlan, env_name: str | None, tail: list[str]
) -> BuildError:
    text = mask_secrets(_docker.one_line(exc), plan.secrets)
    return BuildError(
        f"the Docker engine failed the build: {text}", env_name=env_name, log_tail=tail
    )


_INSPECT_SCRIPT = (
    "import platform, importlib.metadata as m\n"
    "print(platform.python_version())\n"
    "seen = {}\n"
    "for d in m.distributions():\n"
    "    name = d.metadata['Name']\n"
    "    if name: seen.setdefault(name.lower(), f'{name}=={d.version}')\n"
    "print('\\n'.join(sorted(seen.values(), key=str.lower)))\n"
)


def base_reference(client: docker.DockerClient, image: str) -> tuple[str, str | None]:
    """How a lock records the base image: its registry digest (``repo@sha256:...``) when the
    engine knows one, else (a locally built image) its name and image id."""
    import docker.errors

    if "@sha256:" in image:
        return image, None
    try:
        found = client.images.get(image)
    except (docker.errors.ImageNotFound, docker.errors.APIError):
        return image, None
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    digests = [d for d in found.attrs.get("RepoDigests") or [] if d.split("@", 1)[0] == repo]
    return (digests[0], None) if digests else (image, str(found.id))


def inspect_python(
    client: docker.DockerClient, image: str, python: str, env_name: str | None = None
) -> tuple[str, str]:
    """(Python version, freeze-style lock) of the kernel interpreter in ``image``.

    One throwaway container, without network; removed whatever happens.
    """
    out, code = run_in_image(client, image, [python, "-c", _INSPECT_SCRIPT])
    if code != 0:
        raise BuildError(
            f"the built image cannot run its kernel interpreter {python} (exit status {code})",
            env_name=env_name,
            log_tail=out.splitlines()[-TAIL_LINES:],
        )
    version, _, lock = out.partition("\n")
    return version.strip(), lock.strip() + "\n"


def run_in_image(
    client: docker.DockerClient,
    image: str,
    command: list[str] | str | None,
    *,
    environment: dict[str, str] | None = None,
    tty: bool = False,
    network: bool = False,
) -> tuple[str, int]:
    """Run ``command`` in a new container of ``image``; its output and exit status.

    The container is labelled and always removed, even when waiting is interrupted.
    """
    container = client.containers.create(
        image,
        command=command,
        environment=environment or {},
        tty=tty,
        network_disabled=not network,
        labels={LABEL_ROLE: "run"},
    )
    try:
        container.start()
        result = container.wait()
        out = container.logs(stdout=True, stderr=True)
        return out.decode(errors="replace"), int(result.get("StatusCode", 1))
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
