"""Push an environment's image to a registry, so a cluster engine can pull it.

The image is tagged ``<registry>/<name>:v<N>-<hash12>`` (one tag per version: a rebuild never
moves an earlier version's tag), pushed through the engine with progress, and the tag is removed
from the engine again (the local image keeps its own ``jupyter-envs/…`` tag). What a push returns
is the digest the registry answered with: ``reference@digest`` names exactly the pushed image on
every node, whatever the tag points to later.

Credentials are the engine's own business as far as possible: the docker SDK reads the user's
Docker config (``$DOCKER_CONFIG/config.json``, credential helpers included; ``docker login``
writes it). A server that has no Docker config gets them as a secret in its environment,
``JUPYTER_ENVS_REGISTRY_USERNAME`` and ``JUPYTER_ENVS_REGISTRY_PASSWORD``. They never enter a
spec, an image, a log line or a kernelspec.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError, RegistryError
from ..spec._fields import check_registry

__all__ = [
    "PASSWORD_VAR",
    "REGISTRY_VAR",
    "USERNAME_VAR",
    "Pushed",
    "default_registry",
    "login_from_environ",
    "push_image",
    "registry_reference",
]

#: The registry every Docker environment is pushed to when it names none (the server's
#: ``JupyterEnvsApp.registry`` setting overrides it).
REGISTRY_VAR = "JUPYTER_ENVS_REGISTRY"
USERNAME_VAR = "JUPYTER_ENVS_REGISTRY_USERNAME"
PASSWORD_VAR = "JUPYTER_ENVS_REGISTRY_PASSWORD"  # noqa: S105 - a variable's name
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Progress is reported at most this often (a push streams a line per layer per chunk).
_PROGRESS_EVERY = 0.5
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "dial tcp",
    "network is unreachable",
    "server gave http response to https client",
    "no route to host",
)
_AUTH = ("unauthorized", "authentication required", "denied", "no basic auth credentials")


@dataclass(frozen=True)
class Pushed:
    """What a push left in the registry."""

    registry: str
    reference: str
    digest: str
    size: int


def default_registry() -> str | None:
    """``$JUPYTER_ENVS_REGISTRY`` (checked), else None."""
    value = os.environ.get(REGISTRY_VAR, "").strip() or None
    return check_registry(value, REGISTRY_VAR)


def registry_reference(registry: str, name: str, version: int, spec_hash: str) -> str:
    """``<registry>/<name>:v<N>-<hash12>`` (repository names are lower case)."""
    return f"{registry}/{name.lower()}:v{version}-{spec_hash[:12]}"


def _auth_config(environ: Mapping[str, str]) -> dict[str, str] | None:
    user, password = environ.get(USERNAME_VAR, ""), environ.get(PASSWORD_VAR, "")
    if not (user and password):
        return None  # the SDK then uses the Docker config's entry for the registry, if any
    return {"username": user, "password": password}


def login_from_environ(client: Any, image: str, environ: Mapping[str, str]) -> None:
    """Give ``client`` the server's registry secret for ``image``'s registry, when it has one,
    so the engine's pulls (a Swarm service's nodes) get it too; kept in memory only.

    Without the secret, the SDK sends what the user's Docker config holds for that registry.
    Raises :class:`RegistryError` when the registry refuses it.
    """
    import docker.errors

    auth = _auth_config(environ)
    host = image.split("/", 1)[0]
    if auth is None or "/" not in image:
        return
    try:
        client.login(auth["username"], auth["password"], registry=host, reauth=True)
    except docker.errors.APIError as exc:
        raise _failure(host, str(exc.explanation or exc)) from None


def _failure(registry: str, message: str, reason: str | None = None) -> RegistryError:
    """The engine's message as a :class:`RegistryError`: one line, classified (unless
    ``reason`` is known), with what to do."""
    text = " ".join(message.split())[:300]
    reason = reason or _classify(text)
    return RegistryError(_explain(reason, registry, text), reason=reason)


def _classify(message: str) -> str:
    low = message.lower()
    if any(word in low for word in _AUTH):
        return "auth"
    if any(word in low for word in _UNREACHABLE):
        return "unreachable"
    if "eof" in low or "connection reset" in low or "broken pipe" in low:
        return "cut-off"
    return "refused"


def _explain(reason: str, registry: str, message: str) -> str:
    if reason == "auth":
        return (
            f"the registry {registry} refused the credentials ({message}): log in with "
            f"`docker login {registry.split('/')[0]}` as the user running jupyter-envs, or set "
            f"{USERNAME_VAR} and {PASSWORD_VAR} for the server"
        )
    if reason == "unreachable":
        return (
            f"the registry {registry} is not reachable ({message}): check the host and port, "
            "and that the engine may talk to it (plain-HTTP registries other than 127.0.0.0/8 "
            "must be listed in the engine's insecure-registries)"
        )
    if reason == "cut-off":
        return f"the push to {registry} was cut off midway ({message}): push again"
    return f"the registry {registry} refused the push: {message}"


class _Progress:
    """Bytes sent over bytes to send, summed over layers; ``report`` at most every 0.5 s."""

    def __init__(self, report: Callable[[float, str], None]) -> None:
        self._report = report
        self._layers: dict[str, tuple[int, int]] = {}
        self._done: set[str] = set()
        self._last = 0.0
        self._fraction = 0.0

    def feed(self, item: Mapping[str, Any]) -> None:
        layer, status = str(item.get("id") or ""), str(item.get("status") or "")
        detail = item.get("progressDetail") or {}
        if not layer:
            return
        if status == "Pushing" and detail.get("total"):
            self._layers[layer] = (int(detail.get("current") or 0), int(detail["total"]))
        elif status in ("Pushed", "Layer already exists") or status.startswith("Mounted from"):
            self._done.add(layer)
        elif status == "Preparing":
            self._layers.setdefault(layer, (0, 0))
        now = time.monotonic()
        if now - self._last >= _PROGRESS_EVERY or status == "Pushed":
            self._last = now
            self._report(*self._state())

    def _state(self) -> tuple[float, str]:
        total_layers = len(self._layers) or 1
        # The engine counts what it has read of a layer: it may pass the layer's stated size.
        pending = [(min(c, t), t) for k, (c, t) in self._layers.items() if k not in self._done]
        sent, size = sum(c for c, _t in pending), sum(t for _c, t in pending)
        fraction = (len(self._done) + (sent / size if size else 0.0)) / (total_layers + 1)
        # Layers appear as the engine gets to them: never let the bar move back.
        self._fraction = max(self._fraction, min(fraction, 0.99))
        mb = f", {sent / 1e6:.0f}/{size / 1e6:.0f} MB of the rest" if size else ""
        return self._fraction, f"{len(self._done)}/{total_layers} layers pushed{mb}"


def push_image(
    client: Any,
    image: str,
    reference: str,
    *,
    environ: Mapping[str, str],
    on_progress: Callable[[float, str], None] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Pushed:
    """Tag ``image`` as ``reference``, push it, untag it; blocking. Raises :class:`RegistryError`.

    ``on_progress(fraction, message)`` gets the push's progress; ``on_line`` the engine's status
    lines (one per layer state change, no byte counters).
    """
    import docker.errors

    repository, _, tag = reference.rpartition(":")
    registry = repository.rsplit("/", 1)[0]
    try:
        client.api.tag(image, repository, tag)
    except docker.errors.ImageNotFound:
        raise NotFoundError(
            f"the image {image} is not on this Docker engine (removed since the build?): "
            "rebuild the environment (--force) to push it"
        ) from None
    except docker.errors.APIError as exc:
        raise RegistryError(
            f"cannot tag {image} as {reference}: {exc.explanation or exc}"
        ) from None
    try:
        stream = client.api.push(
            repository,
            tag=tag,
            stream=True,
            decode=True,
            auth_config=_auth_config(environ),
        )
        return _follow(stream, registry, reference, on_progress, on_line)
    except docker.errors.APIError as exc:
        raise _failure(registry, str(exc.explanation or exc)) from None
    except (OSError, ValueError) as exc:  # the engine's stream broke (requests/urllib3 errors)
        raise _failure(registry, str(exc), "cut-off") from None
    finally:
        with contextlib.suppress(docker.errors.APIError):  # never tagged, or already gone
            client.api.remove_image(reference, noprune=True)


def _follow(
    stream: Iterable[Mapping[str, Any]],
    registry: str,
    reference: str,
    on_progress: Callable[[float, str], None] | None,
    on_line: Callable[[str], None] | None,
) -> Pushed:
    progress = _Progress(on_progress or (lambda _f, _m: None))
    last_status: dict[str, str] = {}
    digest, size = "", 0
    for item in stream:
        if "error" in item or "errorDetail" in item:
            detail = item.get("errorDetail") or {}
            raise _failure(registry, str(detail.get("message") or item.get("error") or ""))
        aux = item.get("aux") or {}
        if aux.get("Digest"):
            digest, size = str(aux["Digest"]), int(aux.get("Size") or 0)
        progress.feed(item)
        status, layer = str(item.get("status") or ""), str(item.get("id") or "")
        if on_line is not None and status not in ("", "Pushing", last_status.get(layer)):
            last_status[layer] = status
            on_line(f"{layer}: {status}" if layer else status)
    if not _DIGEST.match(digest):
        ended = f"the engine's stream ended before the registry answered with {reference}'s digest"
        raise _failure(registry, ended, "cut-off")
    return Pushed(registry=registry, reference=reference, digest=digest, size=size)
