"""The kernel side's way in: a scoped token, and switching the session that owns a kernel.

Kernels started by this server inherit ``JUPYTER_ENVS_API_URL`` and ``JUPYTER_ENVS_API_TOKEN``
(see :mod:`jupyter_envs.serverlink`). The token is made fresh at every server start and is
accepted by this extension's routes only: a kernel (or a container kernel, later) never holds the
server's own token, so it cannot reach the contents, terminals or kernels APIs with it.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.identity import User

from ..serverlink import API_TOKEN_VAR, API_URL_VAR

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["KERNEL_USER", "ScopedToken", "export_link", "switch_session"]

#: The user a request made with the scoped token acts as (authorizers see this name).
KERNEL_USER = "jupyter-envs-kernel"
_LOOPBACK = {"", "0.0.0.0", "::", "localhost", "127.0.0.1", "::1"}  # noqa: S104 - a comparison


class ScopedToken:
    """A random token valid for the jupyter-envs routes of this server process only."""

    def __init__(self) -> None:
        self.value = secrets.token_urlsafe(32)

    def matches(self, authorization: str | None) -> bool:
        """True when an ``Authorization: token <value>`` header carries this token."""
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        return hmac.compare_digest(value.strip().encode(), self.value.encode())

    @staticmethod
    def user() -> User:
        """The identity of requests made with the token."""
        return User(username=KERNEL_USER, name="jupyter-envs kernel client")


def api_url(serverapp: ServerApp) -> str | None:
    """The URL local kernels reach the API at, or None (the server listens on a UNIX socket)."""
    if getattr(serverapp, "sock", ""):
        return None
    ip = serverapp.ip
    host = "127.0.0.1" if ip in _LOOPBACK else (f"[{ip}]" if ":" in ip else ip)
    scheme = "https" if serverapp.certfile else "http"
    base = serverapp.base_url if serverapp.base_url.endswith("/") else serverapp.base_url + "/"
    return f"{scheme}://{host}:{serverapp.port}{base}jupyter-envs/api/"


def export_link(serverapp: ServerApp, token: ScopedToken) -> str | None:
    """Put the API URL and the scoped token in the environment kernels inherit.

    Called once the server is listening (its port is final then). Returns the URL.
    """
    url = api_url(serverapp)
    if url is None:
        return None
    os.environ[API_URL_VAR] = url
    os.environ[API_TOKEN_VAR] = token.value
    return url


async def switch_session(serverapp: ServerApp, kernel_id: str, kernel_name: str) -> dict[str, Any]:
    """Find the session that owns ``kernel_id``; return it (the switch runs in the background).

    Raises LookupError when no session owns the kernel, ValueError when the kernelspec is unknown.
    """
    sm = serverapp.session_manager
    sessions = await sm.list_sessions()
    session = next((s for s in sessions if s.get("kernel", {}).get("id") == kernel_id), None)
    if session is None:
        raise LookupError(kernel_id)
    # Checked before anything changes. jupyter_client raises NoSuchKernel, a KeyError (and so a
    # LookupError, which means "no session" here): turn it into a ValueError.
    ksm = serverapp.kernel_spec_manager
    assert ksm is not None  # a running server always has one
    try:
        await asyncio.to_thread(ksm.get_kernel_spec, kernel_name)
    except Exception:
        raise ValueError(f"no kernel named '{kernel_name}' is installed") from None
    task = asyncio.ensure_future(_replace_kernel(serverapp, session, kernel_name))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return dict(session)


# Keeps the switch tasks alive until they finish (asyncio holds only weak references).
_background: set[asyncio.Future[None]] = set()


async def _replace_kernel(serverapp: ServerApp, session: dict[str, Any], kernel_name: str) -> None:
    """What ``PATCH /api/sessions/<id>`` with a new kernel name does, done by the server."""
    sm = serverapp.session_manager
    km = serverapp.kernel_manager
    old_kernel = session["kernel"]["id"]
    try:
        new_kernel = await sm.start_kernel_for_session(
            session["id"],
            path=session["path"],
            name=session["name"],
            type=session["type"],
            kernel_name=kernel_name,
        )
        await sm.update_session(session["id"], kernel_id=new_kernel)
    except Exception:
        serverapp.log.exception("jupyter-envs: could not switch session %s", session["id"])
        return
    serverapp.log.info(
        "jupyter-envs: session %s switched from kernel %s to %s (%s)",
        session["id"],
        old_kernel,
        new_kernel,
        kernel_name,
    )
    if old_kernel in km:
        await km.shutdown_kernel(old_kernel)  # type: ignore[no-untyped-call, unused-ignore]
