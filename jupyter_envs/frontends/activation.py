"""Switching the open notebook to an environment's kernel, from inside the running kernel.

First, under a Jupyter server with the extension, the kernel asks the server to start its
successor and waits for it to answer (``POST switch/prepare``), during the cell: the switch after
the cell then only moves the session onto a running kernel, and a kernel that cannot start fails
the cell while the notebook keeps its working kernel. Then three paths, tried in order:

1. **Comm** (primary): the kernel opens a comm on ``jupyter_envs.switch``; the labextension, in
   the tab whose client sent the running cell, answers ``{"status": "switching"}``, waits for the
   kernel to go idle and changes that notebook's kernel. Nothing else is needed from the kernel.
2. **Server** (fallback): if the frontend closes the comm without answering (no labextension),
   the kernel asks the jupyter-envs server extension to switch the session that owns this
   kernel; the tab follows when it next polls its session.
3. **Manual**: without a server (nbclient, VS Code, plain IPython) the user is told which kernel
   to pick.

Before anything switches, the cell gets a static summary (env, version, the variables the old
kernel takes with it): widgets and state die with the old kernel, the summary stays.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..clients.serverlink import ServerLink, current_kernel_id
from ..engines.kernels.kernelspec import display_name
from ..engines.store import PushRecord, VersionRecord
from ..errors import ApiError, EnvsError, KernelStartError, SpecError
from ..facade.carry import carried

__all__ = [
    "SWITCH_TARGET",
    "SwitchTarget",
    "lost_variables",
    "parse_reference",
    "switch_notebook",
    "target_for",
]

SWITCH_TARGET = "jupyter_envs.switch"
# After this long without an answer the status line tells the user which kernel to pick. It does
# not switch anything: the answer is a shell message, so it waits behind cells queued after this
# one ("Run all"), and switching from here as well would switch twice.
ANSWER_TIMEOUT = 10.0
# How long a kernel waits for the server to start its successor (the server gives up first, after
# JupyterEnvsApp.kernel_ready_timeout, 60 s by default).
PREPARE_TIMEOUT = 300.0


@dataclass(frozen=True)
class SwitchTarget:
    """The environment version the notebook should switch to."""

    env_name: str
    version: int
    spec_hash: str
    kernel_name: str
    display_name: str
    #: A kernel of ``kernel_name`` the server already started for this notebook's session.
    new_kernel_id: str | None = None
    #: What the notebook records of the environment (``metadata["jupyter_envs"]``, format 1).
    carried: dict[str, Any] | None = None

    def message(self) -> dict[str, Any]:
        """The comm payload the labextension reads (and records in the notebook's metadata)."""
        message: dict[str, Any] = {
            "kernel_name": self.kernel_name,
            "display_name": self.display_name,
            "env": self.env_name,
            "version": self.version,
            "spec_hash": self.spec_hash,
        }
        if self.new_kernel_id:
            message["new_kernel_id"] = self.new_kernel_id
        if self.carried is not None:
            message["carried"] = self.carried
        return message


def parse_reference(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:VERSION`` (``nlp:2``) → (name, version or None for the latest)."""
    name, sep, version = ref.partition(":")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise SpecError(
            f"expected NAME or NAME:VERSION with a version number >= 1, got {ref!r}",
            field="version",
        )
    return name, int(version)


def target_for(record: VersionRecord, pushes: Sequence[PushRecord] = ()) -> SwitchTarget:
    """The switch target of a registered version (with where its image was pushed, which the
    notebook then carries); it must have been built."""
    if record.status != "ready" or not record.kernel_name:
        raise EnvsError(
            f"{record.name} v{record.version} is registered but not built: "
            f"run `%envs build {record.name}` first"
        )
    return SwitchTarget(
        env_name=record.name,
        version=record.version,
        spec_hash=record.spec_hash,
        kernel_name=record.kernel_name,
        display_name=display_name(record.name, record.version, record.python_version or ""),
        carried=carried(record, pushes).to_metadata(),
    )


def lost_variables(user_ns: dict[str, Any], hidden: dict[str, Any]) -> list[str]:
    """The user's variables in the kernel's namespace (what a kernel switch loses)."""
    return sorted(
        name
        for name in user_ns
        if not name.startswith("_")
        and name not in hidden
        and name not in ("In", "Out", "exit", "quit", "get_ipython")
    )


def _summary(target: SwitchTarget, lost: list[str]) -> str:
    text = (
        f"Switching this notebook to {target.env_name} v{target.version} "
        f"(kernel '{target.kernel_name}', spec {target.spec_hash[:12]})."
    )
    if lost:
        shown = ", ".join(lost[:12]) + (f" and {len(lost) - 12} more" if len(lost) > 12 else "")
        text += f"\nThe current kernel's variables are not carried over: {shown}."
    else:
        text += "\nThe current kernel has no variables to lose."
    return text


def manual_instruction(target: SwitchTarget) -> str:
    """What to tell a user whose frontend cannot be switched for them."""
    return (
        f"To use it, select the kernel '{target.display_name}' ({target.kernel_name}) "
        "in your notebook's kernel picker."
    )


def switch_notebook(
    target: SwitchTarget,
    *,
    link: ServerLink | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Ask the frontend (or the server) to switch this notebook to ``target``'s kernel.

    Returns the path taken: ``"comm"`` (a comm was opened; the labextension or the server
    fallback finishes the job after the cell ends) or ``"manual"`` (the user was told what to
    pick). Never raises for a missing frontend: switching is best effort, the build stands. Raises
    :class:`KernelStartError` when the server started the new kernel and it did not come up: the
    notebook stays on its current kernel.
    """
    shell = _kernel_shell()
    if link is None:
        link = ServerLink.from_environment()
    if shell is None:
        say(manual_instruction(target))
        return "manual"
    from IPython.display import display

    say(_summary(target, lost_variables(shell.user_ns, shell.user_ns_hidden)))
    first = (
        f"Starting the kernel of {target.env_name} v{target.version}..."
        if link is not None
        else "Asking JupyterLab to switch the kernel..."
    )
    status = display(  # type: ignore[no-untyped-call, unused-ignore]
        {"text/plain": first}, raw=True, display_id=True
    )
    target = _prepare(target, link, status, say)
    _Switch(target, link, status).start()
    return "comm"


def _prepare(
    target: SwitchTarget, link: ServerLink | None, status: Any, say: Callable[[str], None]
) -> SwitchTarget:
    """Have the server start ``target``'s kernel for this notebook now; wait until it answers.

    Returns the target with the new kernel's id, or unchanged when the server cannot do it
    (no server link, no session owns this kernel, an older server, turned off): the frontend then
    starts the kernel itself after the cell.
    """
    kernel_id = current_kernel_id() if link is not None else None
    if link is None or kernel_id is None:
        return target
    try:
        reply = link.request(
            "POST",
            "switch/prepare",
            {"kernel_id": kernel_id, "kernel_name": target.kernel_name},
            timeout=PREPARE_TIMEOUT,
        )
    except ApiError as exc:
        if exc.reason == KernelStartError.__name__:
            status.update({"text/plain": "The notebook keeps its current kernel."}, raw=True)
            raise KernelStartError(
                f"{target.env_name} v{target.version} is built, but {exc}; this notebook keeps its "
                "current kernel"
            ) from None
        reply = None  # the frontend starts the kernel after the cell instead
    new_kernel = reply.get("new_kernel_id") if isinstance(reply, dict) else None
    if not isinstance(new_kernel, str) or not new_kernel:
        status.update({"text/plain": "Asking JupyterLab to switch the kernel..."}, raw=True)
        return target
    seconds = reply.get("seconds")
    took = f" in {seconds:.1f} s" if isinstance(seconds, int | float) else ""
    say(f"The kernel of {target.env_name} v{target.version} started{took}.")
    status.update({"text/plain": "Asking JupyterLab to switch the kernel..."}, raw=True)
    return dataclasses.replace(target, new_kernel_id=new_kernel)


def _kernel_shell() -> Any:
    """The IPython shell when it runs inside a Jupyter kernel with comm support, else None."""
    try:
        from IPython.core.interactiveshell import InteractiveShell
    except ImportError:
        return None
    if not InteractiveShell.initialized():
        return None
    shell = InteractiveShell.instance()
    if getattr(shell, "kernel", None) is None:
        return None  # plain IPython: no frontend to switch
    return shell


class _Switch:
    """One switch request: the comm, its answer, and the fallback when nobody answers."""

    def __init__(self, target: SwitchTarget, link: ServerLink | None, status: Any) -> None:
        self.target = target
        self.link = link
        self.status = status
        self._lock = threading.Lock()
        self._settled = False  # an answer came, or the fallback started

    def start(self) -> None:
        from comm import create_comm

        comm = create_comm(target_name=SWITCH_TARGET, data=self.target.message())
        comm.on_msg(self._on_msg)
        comm.on_close(self._on_close)
        timer = threading.Timer(ANSWER_TIMEOUT, self._no_answer)
        timer.daemon = True
        timer.start()

    def _show(self, text: str) -> None:
        self.status.update({"text/plain": text}, raw=True)

    def _claim(self) -> bool:
        with self._lock:
            if self._settled:
                return False
            self._settled = True
            return True

    def _on_msg(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data", {}) or {}
        if data.get("status") == "switching" and self._claim():
            self._show(f"JupyterLab is switching this notebook to '{self.target.kernel_name}'.")
        elif data.get("status") == "error":
            with self._lock:
                self._settled = True
            self._show(
                f"JupyterLab could not switch: {data.get('message', 'unknown error')}. "
                + manual_instruction(self.target)
            )

    def _no_answer(self) -> None:
        with self._lock:
            if self._settled:
                return
        self._show("No answer from JupyterLab yet. " + manual_instruction(self.target))

    def _on_close(self, msg: dict[str, Any]) -> None:
        # A frontend without the labextension closes comms whose target it does not know.
        self._fallback()

    def _fallback(self) -> None:
        if not self._claim():
            return
        if self.link is None:
            self._show("No JupyterLab extension answered. " + manual_instruction(self.target))
            return
        # The request goes out from a thread: the server replaces this very kernel.
        thread = threading.Thread(target=self._ask_server, name="jupyter-envs-switch", daemon=True)
        thread.start()

    def _ask_server(self) -> None:
        assert self.link is not None
        kernel_id = current_kernel_id()
        if kernel_id is None:
            self._show("Cannot tell which kernel this is. " + manual_instruction(self.target))
            return
        try:
            self.link.request("POST", "switch", {**self.target.message(), "kernel_id": kernel_id})
        except EnvsError as exc:
            self._show(f"The server could not switch: {exc}. " + manual_instruction(self.target))
            return
        self._show(
            f"The server is switching this notebook to '{self.target.kernel_name}'; "
            "the tab follows within about 10 seconds."
        )
