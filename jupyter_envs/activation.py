"""Switching the open notebook to an environment's kernel, from inside the running kernel.

Three paths, tried in order:

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

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import EnvsError, SpecError
from .kernelspec import display_name
from .serverlink import ServerLink, current_kernel_id
from .store import VersionRecord

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


@dataclass(frozen=True)
class SwitchTarget:
    """The environment version the notebook should switch to."""

    env: str
    version: int
    spec_hash: str
    kernel_name: str
    display_name: str

    def message(self) -> dict[str, Any]:
        """The comm payload the labextension reads (and records in the notebook's metadata)."""
        return {
            "kernel_name": self.kernel_name,
            "display_name": self.display_name,
            "env": self.env,
            "version": self.version,
            "spec_hash": self.spec_hash,
        }


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


def target_for(record: VersionRecord) -> SwitchTarget:
    """The switch target of a registered version; it must have been built."""
    if record.status != "ready" or not record.kernel_name:
        raise EnvsError(
            f"{record.name} v{record.version} is registered but not built: "
            f"run `%envs build {record.name}` first"
        )
    return SwitchTarget(
        env=record.name,
        version=record.version,
        spec_hash=record.spec_hash,
        kernel_name=record.kernel_name,
        display_name=display_name(record.name, record.version, record.python_version or ""),
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
        f"Switching this notebook to {target.env} v{target.version} "
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
    pick). Never raises for a missing frontend: switching is best effort, the build stands.
    """
    shell = _kernel_shell()
    if link is None:
        link = ServerLink.from_environment()
    if shell is None:
        say(manual_instruction(target))
        return "manual"
    from IPython.display import display

    say(_summary(target, lost_variables(shell.user_ns, shell.user_ns_hidden)))
    status = display(  # type: ignore[no-untyped-call, unused-ignore]
        {"text/plain": "Asking JupyterLab to switch the kernel..."}, raw=True, display_id=True
    )
    _Switch(target, link, status).start()
    return "comm"


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
            self.link.request(
                "POST",
                "switch",
                {"kernel_id": kernel_id, **self.target.message()},
            )
        except EnvsError as exc:
            self._show(f"The server could not switch: {exc}. " + manual_instruction(self.target))
            return
        self._show(
            f"The server is switching this notebook to '{self.target.kernel_name}'; "
            "the tab follows within about 10 seconds."
        )
