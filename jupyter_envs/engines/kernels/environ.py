"""The environment variables through which a server, its kernels and container kernels meet.

A kernel inherits its environment from the process that starts it; these names are the whole
contract between the server extension (which sets the API URL, token and socket), the container
launcher (which mounts the socket and marks the kernel as a container kernel) and the kernel's
side (:mod:`jupyter_envs.clients.serverlink`, which reads them). They live here, at the bottom,
because all three layers use them.
"""

from __future__ import annotations

import os
import urllib.parse

__all__ = [
    "API_SOCKET_VAR",
    "API_TOKEN_VAR",
    "API_URL_VAR",
    "CONTAINER_VAR",
    "UNIX_SCHEME",
    "container_kernel_problem",
    "unix_socket_url",
]

API_URL_VAR = "JUPYTER_ENVS_API_URL"
API_TOKEN_VAR = "JUPYTER_ENVS_API_TOKEN"  # noqa: S105 - a variable name, not a secret
#: The server's Unix socket serving the same API (set by the server; read by the launcher).
API_SOCKET_VAR = "JUPYTER_ENVS_API_SOCKET"
#: Set by the container launcher in a container kernel's environment (value: the env's name).
CONTAINER_VAR = "JUPYTER_ENVS_CONTAINER"
UNIX_SCHEME = "http+unix"


def unix_socket_url(socket_path: str, api_url: str) -> str:
    """The ``http+unix://`` URL of the API at ``api_url``'s path, served on ``socket_path``."""
    path = urllib.parse.urlsplit(api_url).path or "/jupyter-envs/api/"
    return f"{UNIX_SCHEME}://{urllib.parse.quote(socket_path, safe='')}{path}"


def container_kernel_problem(
    environ: dict[str, str] | None = None, *, registry: bool = False
) -> str | None:
    """Why this process cannot build (or, with ``registry``, read the registry): it is a
    container kernel. None outside container kernels.

    A container kernel builds through the server when the launcher gave it the server's API
    socket; without it, a store of its own would stay inside the container, where no Jupyter
    server sees its kernels. The registry itself is always on the host.
    """
    env = os.environ if environ is None else environ
    name = env.get(CONTAINER_VAR)
    if not name:
        return None
    where = f"this kernel runs in a Docker container (environment '{name}')"
    linked = bool(env.get(API_URL_VAR) and env.get(API_TOKEN_VAR))
    if registry:
        also = "; %%env and Environment.build() work here" if linked else ""
        return (
            f"{where}, and the registry is on the host: run %envs in a notebook on a host "
            f"kernel, or `jupyter envs` on the host{also}"
        )
    if linked:
        return None
    return (
        f"{where} that has no way to its Jupyter server (started without the jupyter_envs server "
        "extension, or by an older version): what it built would stay inside the container, unseen "
        "by Jupyter. Run %%env in a notebook on a host kernel, or `jupyter envs` on the host"
    )
