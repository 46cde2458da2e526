"""``%%env`` and ``%envs``: the notebook front-end. Translates cells to manager calls, no more.

IPython's own ``%env`` *line* magic keeps working: only a *cell* magic named ``env`` is added.
"""

from __future__ import annotations

import argparse
import html
import shlex
import time
from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import DisplayHandle, display

from ..clients import remote
from ..errors import SpecError, UsageError
from ..events import Event, LogLine, Progress
from ..facade.manager import get_manager
from ..spec._environment import Environment
from ..spec._validate import validate_env_vars
from ._commands import RaisingParser, make_parser, run_command
from .activation import SwitchTarget, parse_reference, switch_notebook, target_for

__all__ = ["EnvMagics", "register"]

_MIN_UPDATE_SECONDS = 0.1


class NotebookOutput:
    """Shows build progress in one display that is updated in place.

    Only the latest phase and log line are shown (a whole log re-sent on every update would grow
    quadratically); the full log is on disk and ``%envs logs NAME`` prints it.
    """

    def __init__(self) -> None:
        self._handle: DisplayHandle | None = None
        self._progress = Progress("start", 0.0, "")
        self._line = ""
        self._last_update = 0.0

    def say(self, text: str) -> None:
        """Print result text."""
        print(text)

    def event(self, event: Event) -> None:
        """Record the event; redraw at most every 0.1 s (and always at the end)."""
        if isinstance(event, Progress):
            self._progress = event
        elif isinstance(event, LogLine) and event.text.strip():
            self._line = event.text.strip()
        now = time.monotonic()
        final = isinstance(event, Progress) and event.fraction >= 1.0
        if final or now - self._last_update >= _MIN_UPDATE_SECONDS:
            self._last_update = now
            self._draw()

    def _bundle(self) -> dict[str, str]:
        p = self._progress
        pct = int(p.fraction * 100)
        bar = "#" * (pct // 5) + "-" * (20 - pct // 5)
        text = f"[{bar}] {pct:3d}% {p.phase}: {p.message}"
        if self._line and p.fraction < 1.0:
            text += f"\n    {self._line[:200]}"
        page = (
            f'<div><progress value="{pct}" max="100" style="width:20em"></progress> '
            f"<b>{pct}%</b> {html.escape(p.phase)}: {html.escape(p.message)}"
        )
        if self._line and p.fraction < 1.0:
            page += f'<br><code style="font-size:85%">{html.escape(self._line[:200])}</code>'
        return {"text/plain": text, "text/html": page + "</div>"}

    def _draw(self) -> None:
        bundle = self._bundle()
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)


def _env_parser() -> argparse.ArgumentParser:
    cell = RaisingParser(prog="%%env", add_help=False)
    cell.add_argument("name")
    cell.add_argument("--python")
    cell.add_argument("--backend")
    cell.add_argument("--format")
    cell.add_argument("--force", action="store_true")
    cell.add_argument("--no-activate", action="store_true")
    cell.add_argument("--env", action="append", default=[], metavar="K=V")
    return cell


def _parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SpecError(f"--env expects KEY=VALUE, got {pair!r}", field="env_vars")
        out[key] = value
    return validate_env_vars(out)


@magics_class
class EnvMagics(Magics):
    """The ``%%env`` cell magic and the ``%envs`` line magic."""

    @cell_magic("env")  # type: ignore[arg-type, unused-ignore]  # IPython 9 stubs: Never
    def env_cell(self, line: str, cell: str) -> None:
        """%%env NAME [--python X] [--backend B] [--format F] [--force] [--no-activate] [--env K=V]


        The cell body is requirements.txt, environment.yml or Dockerfile text. Builds (or reuses)
        the environment and registers a kernel for it.
        """
        try:
            args = _env_parser().parse_args(shlex.split(line))
        except (UsageError, ValueError) as exc:
            raise SpecError(str(exc), field="%%env arguments") from None
        env = Environment.from_text(args.name, cell, format=args.format)
        if args.python:
            env.python.version = args.python
        if args.backend:
            env.backend = args.backend
        if args.env:
            env.env_vars = {**env.env_vars, **_parse_env_pairs(args.env)}
        out = NotebookOutput()
        if not args.format and env.detected_format:
            print(f"Reading the cell as {env.detected_format}.")
        # In a kernel of a server with the extension, the server builds (remote.build).
        result = remote.build(env, force=args.force, on_event=out.event)
        print(result.summary())
        if not args.no_activate:
            switch_notebook(
                SwitchTarget(
                    env=result.name,
                    version=result.version,
                    spec_hash=result.spec_hash,
                    kernel_name=result.kernel_name,
                    display_name=result.display_name,
                )
            )
        return None

    @line_magic("envs")  # type: ignore[arg-type, unused-ignore]
    def envs_line(self, line: str) -> None:
        """%envs list | show | versions | build | remove | export | logs | activate NAME

        Also ``%envs curated`` (the ready-made environments) and ``%envs create -f FILE NAME``.
        """
        words = shlex.split(line)
        if words[:1] == ["activate"]:
            self._activate(words[1:])
            return
        try:
            args = make_parser("%envs").parse_args(words)
        except SystemExit:
            return  # --help printed
        except (UsageError, ValueError) as exc:
            raise SpecError(str(exc), field="%envs arguments") from None
        run_command(args, get_manager(), NotebookOutput())

    @staticmethod
    def _activate(words: list[str]) -> None:
        """%envs activate NAME[:VERSION] — switch this notebook to a built version."""
        if len(words) != 1:
            raise SpecError("usage: %envs activate NAME[:VERSION]", field="%envs arguments")
        name, version = parse_reference(words[0])
        target = target_for(get_manager().record(name, version))
        print(f"{target.env} v{target.version} — kernel: {target.kernel_name}")
        switch_notebook(target)


def register(ipython: InteractiveShell | Any) -> None:
    """Register the magics on a shell (called by ``%load_ext jupyter_envs``)."""
    ipython.register_magics(EnvMagics)
