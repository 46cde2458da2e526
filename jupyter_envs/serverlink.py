"""How a kernel reaches the jupyter-envs REST API of the server that launched it.

The server extension puts two variables in the environment every kernel it starts inherits:
``JUPYTER_ENVS_API_URL`` (the API root, ending in ``/``) and ``JUPYTER_ENVS_API_TOKEN`` (a token
that the extension accepts for its own routes only; never the server's token). Without them the
kernel is not under such a server and front-ends fall back to the in-process manager.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

__all__ = ["ServerLink", "container_kernel_problem", "current_kernel_id"]

API_URL_VAR = "JUPYTER_ENVS_API_URL"
API_TOKEN_VAR = "JUPYTER_ENVS_API_TOKEN"  # noqa: S105 - a variable name, not a secret
#: Set by the container launcher in a container kernel's environment (value: the env's name).
CONTAINER_VAR = "JUPYTER_ENVS_CONTAINER"


def container_kernel_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why this process cannot build or switch environments: it is a container kernel.

    Such a kernel has no way to the server's API yet (the server listens on the host's loopback),
    and a store of its own would stay inside the container, where no Jupyter server sees its
    kernels. None outside container kernels.
    """
    env = os.environ if environ is None else environ
    name = env.get(CONTAINER_VAR)
    if not name or ServerLink.from_environment(dict(env)) is not None:
        return None
    return (
        f"this kernel runs in a Docker container (environment '{name}'), where environments "
        "cannot be built or registered: what it built would stay inside the container, unseen "
        "by Jupyter. Run %%env / %envs in a notebook on a host kernel, or `jupyter envs` on the "
        "host"
    )


@dataclass(frozen=True)
class ServerLink:
    """The API root and the scoped token, as handed to the kernel by the server."""

    url: str
    token: str

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ServerLink | None:
        """The link from ``JUPYTER_ENVS_API_URL``/``_TOKEN``, or None when not under a server."""
        env = os.environ if environ is None else environ
        url = env.get(API_URL_VAR, "")
        token = env.get(API_TOKEN_VAR, "")
        if not url or not token:
            return None
        return cls(url if url.endswith("/") else url + "/", token)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> Any:
        """Call the API; return the decoded JSON body (None when empty).

        A JSON error body ``{message, reason}`` becomes an :class:`ApiError` with that message and
        the HTTP status; an unreachable server, an :class:`ApiError` with status 0.
        """
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - the URL comes from our own server
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            message, reason = _error_message(exc)
            raise ApiError(message, exc.code, reason) from None
        except OSError as exc:
            raise ApiError(f"cannot reach the jupyter-envs API at {self.url}: {exc}") from None
        return json.loads(raw) if raw else None


def _error_message(exc: urllib.error.HTTPError) -> tuple[str, str]:
    try:
        payload = json.loads(exc.read() or b"{}")
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    message = payload.get("message") or f"jupyter-envs API answered {exc.code} {exc.reason}"
    return str(message), str(payload.get("reason") or "")


_KERNEL_FILE = re.compile(r"kernel-([0-9a-f-]{8,})\.json$")


def current_kernel_id() -> str | None:
    """The id of the kernel this code runs in (from its connection file name), if any."""
    try:
        from ipykernel.connect import get_connection_file
    except ImportError:
        return None
    try:
        path = get_connection_file()
    except (RuntimeError, AttributeError, TypeError):
        return None  # not inside a running kernel
    match = _KERNEL_FILE.search(os.path.basename(path))
    return match.group(1) if match else None
