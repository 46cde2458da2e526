"""What ``%%env`` and ``%envs`` do (the magics in :mod:`.magics` call in here on first use).

Builds and removals go through :func:`jupyter_envs.clients.envs.connect`: to the server when
this kernel has one, in process otherwise.
"""

from __future__ import annotations

import argparse
import html
import shlex
import time
from pathlib import Path

from IPython.display import DisplayHandle, display

from ..clients.envs import connect
from ..engines.registry import REGISTRY_VAR, default_registry
from ..errors import EnvsError, SpecError, UsageError
from ..events import Event, LogLine, Progress
from ..facade._types import BuildResult
from ..spec._environment import Environment
from ..spec._text import other_formats_hint
from ..spec._validate import validate_env_vars
from ._commands import RaisingParser, make_parser, restore_command, run_command
from .activation import SwitchTarget, parse_reference, switch_notebook, target_for

__all__ = ["NotebookOutput", "activate", "env_cell", "envs_line", "restore"]

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
    cell.add_argument("--push", action="store_true")
    cell.add_argument("--registry")
    return cell


def _parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SpecError(f"--env expects KEY=VALUE, got {pair!r}", field="env_vars")
        out[key] = value
    return validate_env_vars(out)


def env_cell(line: str, cell: str) -> None:
    """``%%env``: build (or reuse) the cell's environment, then switch to it."""
    try:
        args = _env_parser().parse_args(shlex.split(line))
    except (UsageError, ValueError) as exc:
        raise SpecError(str(exc), field="%%env arguments") from None
    # Files the cell names (-r, -c, -e, local paths) are the notebook's: a kernel runs in the
    # notebook's folder.
    env = Environment.from_text(args.name, cell, format=args.format, base_dir=Path.cwd())
    if args.python:
        env.python.version = args.python
    if args.backend:
        env.backend = args.backend
    if args.env:
        env.env_vars = {**env.env_vars, **_parse_env_pairs(args.env)}
    if args.push or args.registry:
        # The server's own default (JupyterEnvsApp.registry) applies without --push.
        env.registry = args.registry or default_registry()
        if not env.registry:
            raise SpecError(
                f"--push needs a registry: --registry HOST:PORT/PATH, or set {REGISTRY_VAR}",
                field="registry",
            )
    out = NotebookOutput()
    if not args.format and env.detected_format:
        hint = other_formats_hint(env.detected_format)
        print(f"Reading the cell as {env.detected_format} (to read it otherwise: {hint}).")
    result = connect().build(env, force=args.force, on_event=out.event)
    print(result.summary())
    if env.local_paths():
        print(
            "It installs from this machine's files (rebuild with --force after changing them; "
            f"another machine needs them too): {', '.join(env.local_paths())}"
        )
    if not args.no_activate:
        switch_notebook(_switch_target(result))


def _switch_target(result: BuildResult) -> SwitchTarget:
    """Where the notebook goes after a build, with the catalogue's record of it (spec and lock:
    what the notebook carries). A container kernel has no store to read (it is on the host):
    then the notebook switches without that record."""
    try:
        client = connect()
        record = client.record(result.name, result.version)
        return target_for(record, client.pushes(record.name, record.version))
    except EnvsError:
        return SwitchTarget(
            env_name=result.name,
            version=result.version,
            spec_hash=result.spec_hash,
            kernel_name=result.kernel_name,
            display_name=result.display_name,
        )


def envs_line(line: str) -> None:
    """``%envs VERB ...``: the verbs of ``jupyter envs``, through the kernel's client."""
    words = shlex.split(line)
    if words[:1] == ["activate"]:
        activate(words[1:])
        return
    if words[:1] == ["panel"]:
        from .panel import panel

        panel()
        return
    try:
        args = make_parser("%envs").parse_args(words)
    except SystemExit:
        return  # --help printed
    except (UsageError, ValueError) as exc:
        raise SpecError(str(exc), field="%envs arguments") from None
    if args.verb == "restore":
        restore(args)
        return
    run_command(args, connect(), NotebookOutput())


def restore(args: argparse.Namespace) -> None:
    """``%envs restore [NOTEBOOK]``: build what this notebook (as last saved) carries, from its
    lock, then switch the notebook to it."""
    client = connect()
    result = restore_command(args, client, NotebookOutput())
    if not args.no_activate:
        switch_notebook(_switch_target(result))


def activate(words: list[str]) -> None:
    """``%envs activate NAME[:VERSION]``: switch this notebook to a built version."""
    if len(words) != 1:
        raise SpecError("usage: %envs activate NAME[:VERSION]", field="%envs arguments")
    name, version = parse_reference(words[0])
    client = connect()
    record = client.record(name, version)
    target = target_for(record, client.pushes(record.name, record.version))
    print(f"{target.env_name} v{target.version} — kernel: {target.kernel_name}")
    switch_notebook(target)
