"""The kernel side's way in: a scoped token, starting a switch's kernel ahead, switching a session.

Kernels started by this server inherit ``JUPYTER_ENVS_API_URL`` and ``JUPYTER_ENVS_API_TOKEN``
(see :mod:`jupyter_envs.clients.serverlink`). The token is made fresh at every server start and is
accepted by this extension's routes only: a kernel (or a container kernel, later) never holds the
server's own token, so it cannot reach the contents, terminals or kernels APIs with it.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Coroutine
from queue import Empty
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.identity import User

from ...clients.serverlink import API_TOKEN_VAR, API_URL_VAR
from ...errors import KernelStartError

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["KERNEL_USER", "PreparedKernels", "ScopedToken", "link_environment", "switch_session"]

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


def link_environment(serverapp: ServerApp, token: ScopedToken) -> dict[str, str]:
    """The API URL and the scoped token, as the variables a kernel reads them from (empty when
    the server listens on a UNIX socket only). Call it once the server listens: its port is
    final then."""
    url = api_url(serverapp)
    return {} if url is None else {API_URL_VAR: url, API_TOKEN_VAR: token.value}


async def _session_of(serverapp: ServerApp, kernel_id: str) -> dict[str, Any]:
    """The session whose kernel is ``kernel_id``; LookupError when there is none."""
    sessions = await serverapp.session_manager.list_sessions()
    session = next((s for s in sessions if s.get("kernel", {}).get("id") == kernel_id), None)
    if session is None:
        raise LookupError(kernel_id)
    return dict(session)


async def _check_kernelspec(serverapp: ServerApp, kernel_name: str) -> None:
    # jupyter_client raises NoSuchKernel, a KeyError (and so a LookupError, which means "no
    # session" to the callers): turn it into a ValueError.
    ksm = serverapp.kernel_spec_manager
    assert ksm is not None  # a running server always has one
    try:
        await asyncio.to_thread(ksm.get_kernel_spec, kernel_name)
    except Exception:
        raise ValueError(f"no kernel named '{kernel_name}' is installed") from None


# How often a preparing kernel is polled (and checked for death), and asked again for its info.
_POLL = 0.05
_ASK_AGAIN = 2.0


async def _start_for_session(
    serverapp: ServerApp, session: dict[str, Any], kernel_name: str
) -> str:
    """Start a kernel as ``session`` would start it (its path gives the cwd and
    ``JPY_SESSION_NAME``), without attaching it to the session."""
    kernel_id: str = await serverapp.session_manager.start_kernel_for_session(
        session["id"],
        path=session["path"],
        name=session["name"],
        type=session["type"],
        kernel_name=kernel_name,
    )
    return kernel_id


class PreparedKernels:
    """Kernels started ahead of a switch, alive and answering, until their session adopts them.

    A kernel asks for its successor while its ``%%env`` cell still runs: the new environment's
    kernel then starts during the cell instead of after it, and if it cannot start (a broken
    environment) the notebook is never switched to a dead kernel: it keeps the kernel it has. A
    prepared kernel that no session has adopted after ``adopt_timeout`` seconds is shut down.
    """

    def __init__(self, serverapp: ServerApp, *, ready_timeout: float, adopt_timeout: float) -> None:
        self.serverapp = serverapp
        self.ready_timeout = ready_timeout
        self.adopt_timeout = adopt_timeout
        # new kernel id -> the session it was started for
        self._pending: dict[str, str] = {}

    def prepared_for(self, kernel_id: str) -> str | None:
        """The session a still-unadopted prepared kernel was started for."""
        return self._pending.get(kernel_id)

    async def prepare(self, kernel_id: str, kernel_name: str) -> dict[str, Any]:
        """Start a ``kernel_name`` kernel for the session that owns ``kernel_id``; wait until it
        answers. Returns ``{new_kernel_id, session_id, seconds}``.

        Raises LookupError (no session owns the kernel), ValueError (unknown kernelspec) and
        :class:`KernelStartError` (the kernel died or did not answer in time; it is shut down).
        """
        session = await _session_of(self.serverapp, kernel_id)
        await _check_kernelspec(self.serverapp, kernel_name)
        # One successor per session: a newer request replaces an older one not yet adopted.
        for pending, session_id in list(self._pending.items()):
            if session_id == session["id"]:
                await self._discard(pending, "replaced by a newer switch request")
        started = time.monotonic()
        # The session keeps its kernel until the frontend (or POST switch) moves it.
        new_kernel = await _start_for_session(self.serverapp, session, kernel_name)
        try:
            await self._wait_ready(new_kernel, kernel_name)
        except BaseException:
            await _shutdown_kernel(self.serverapp, new_kernel)
            raise
        self._pending[new_kernel] = session["id"]
        loop = asyncio.get_running_loop()
        loop.call_later(self.adopt_timeout, self._expire_soon, new_kernel)
        seconds = time.monotonic() - started
        self.serverapp.log.info(
            "jupyter-envs: kernel %s (%s) ready in %.2f s for session %s",
            new_kernel,
            kernel_name,
            seconds,
            session["id"],
        )
        return {"new_kernel_id": new_kernel, "session_id": session["id"], "seconds": seconds}

    def adopted(self, kernel_id: str) -> None:
        """Forget a prepared kernel: a session uses it now."""
        self._pending.pop(kernel_id, None)

    async def _wait_ready(self, kernel_id: str, kernel_name: str) -> None:
        """Until the kernel answers a ``kernel_info_request`` on its shell channel.

        Not jupyter_client's ``wait_for_ready``: that one also waits for iopub traffic and then
        for 0.2 s of iopub silence, which only a client that reads iopub needs, and it notices a
        dead kernel once a second. Here only the shell answer counts (the frontend opens its own
        channels), and death is noticed within a poll.
        """
        # The server's kernel managers are asynchronous (their clients too); jupyter_client
        # types get_kernel() as the synchronous base class.
        manager: Any = self.serverapp.kernel_manager.get_kernel(kernel_id)
        client: Any = manager.client()
        # (shell: the kernel's shell channel, not a subshell)
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)  # noqa: S604
        deadline = time.monotonic() + self.ready_timeout
        try:
            asked = -1.0
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise KernelStartError(
                        f"the kernel '{kernel_name}' did not answer within {self.ready_timeout:g} s"
                    )
                if now - asked > _ASK_AGAIN:
                    # Queued by zmq until the kernel binds; asked again in case it was dropped.
                    client.kernel_info()
                    asked = now
                try:
                    reply = await client.get_shell_msg(timeout=_POLL)
                except Empty:
                    if not await manager.is_alive():
                        raise KernelStartError(
                            f"the kernel '{kernel_name}' died while starting (the server's log "
                            "has its output)"
                        ) from None
                    continue
                if reply.get("msg_type") == "kernel_info_reply":
                    return  # any answer (to any of our requests) means its shell runs
        finally:
            client.stop_channels()

    def _expire_soon(self, kernel_id: str) -> None:
        _in_background(self._expire(kernel_id))

    async def _expire(self, kernel_id: str) -> None:
        if kernel_id not in self._pending:
            return
        try:
            await _session_of(self.serverapp, kernel_id)
        except LookupError:
            await self._discard(kernel_id, f"not adopted within {self.adopt_timeout:g} s")
        else:
            self.adopted(kernel_id)

    async def _discard(self, kernel_id: str, why: str) -> None:
        self._pending.pop(kernel_id, None)
        self.serverapp.log.info("jupyter-envs: prepared kernel %s shut down: %s", kernel_id, why)
        await _shutdown_kernel(self.serverapp, kernel_id)


async def switch_session(
    serverapp: ServerApp,
    kernel_id: str,
    kernel_name: str,
    *,
    prepared: PreparedKernels | None = None,
    new_kernel_id: str | None = None,
) -> dict[str, Any]:
    """Find the session that owns ``kernel_id``; return it (the switch runs in the background).

    With ``new_kernel_id`` (a kernel prepared for that session) the session adopts that kernel;
    otherwise the server starts a ``kernel_name`` kernel for it. Raises LookupError when no session
    owns the kernel, ValueError when the kernelspec is unknown or the new kernel was not prepared
    for this session.
    """
    session = await _session_of(serverapp, kernel_id)
    await _check_kernelspec(serverapp, kernel_name)
    if new_kernel_id is not None and (
        prepared is None or prepared.prepared_for(new_kernel_id) != session["id"]
    ):
        raise ValueError(
            f"kernel {new_kernel_id} was not prepared for this notebook's session (or it was "
            "adopted or shut down already)"
        )
    _in_background(_replace_kernel(serverapp, session, kernel_name, prepared, new_kernel_id))
    return session


# Keeps the background tasks alive until they finish (asyncio holds only weak references).
_background: set[asyncio.Future[None]] = set()


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _shutdown_kernel(serverapp: ServerApp, kernel_id: str) -> None:
    """Shut ``kernel_id`` down if the server still runs it."""
    km = serverapp.kernel_manager
    if kernel_id in km:
        await km.shutdown_kernel(kernel_id)  # type: ignore[no-untyped-call, unused-ignore]


async def _replace_kernel(
    serverapp: ServerApp,
    session: dict[str, Any],
    kernel_name: str,
    prepared: PreparedKernels | None,
    new_kernel_id: str | None,
) -> None:
    """What ``PATCH /api/sessions/<id>`` with a new kernel does, done by the server."""
    sm = serverapp.session_manager
    old_kernel = session["kernel"]["id"]
    try:
        if new_kernel_id is None:
            new_kernel = await _start_for_session(serverapp, session, kernel_name)
        else:
            new_kernel = new_kernel_id
            assert prepared is not None  # checked by switch_session
            prepared.adopted(new_kernel)
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
    await _shutdown_kernel(serverapp, old_kernel)
