"""The widget panel: ipywidgets over the kernel's client façade.

Everything it does goes through :func:`jupyter_envs.clients.envs.connect` (builds in the server
when the kernel has one) and :class:`~jupyter_envs.clients.background.BackgroundBuild`; it never
touches builders or the store. Widget traits are set from background threads (the build's, the
refresher's): ipykernel sends comm messages from any thread, and each update is batched (a build
notifies at most every 0.25 s; the log tail is one HTML value, never appended line by line).
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from typing import Any

import ipywidgets as w
from IPython.display import DisplayHandle, display

from ...clients.background import BackgroundBuild, Snapshot, running
from ...clients.envs import EnvsClient, connect
from ...errors import EnvsError, SpecError
from ...spec._environment import Environment
from ..activation import switch_notebook, target_for
from ._rows import FIELDS, Row, field_of, rows, table_html, tail_html, text_table

__all__ = ["BuildView", "EnvPanel"]

_FORMATS = [
    ("auto (detect)", ""),
    ("requirements.txt", "requirements"),
    ("environment.yml", "conda"),
    ("Dockerfile", "dockerfile"),
    ("PEP 723 block", "pep723"),
    ("pylock.toml", "pylock"),
]
_BACKENDS = [("auto", ""), ("venv (uv)", "venv"), ("docker", "docker"), ("conda", "conda")]
_VIEWS = [
    ("spec (requirements)", "requirements"),
    ("lock", "lock"),
    ("spec (JSON)", "json"),
    ("where it can run", "where"),
]
_POLL = 1.0


def _error_html(text: str) -> str:
    return (
        "<div class='jp-envs-panel-error' style='color:var(--jp-error-color1);"
        f"white-space:pre-wrap;font-size:90%'>{html.escape(text)}</div>"
    )


class BuildView:
    """One build's progress: bar, phase, elapsed time, log tail, Cancel, full log."""

    def __init__(self, build: BackgroundBuild, panel: EnvPanel) -> None:
        self.build = build
        self.panel = panel
        name = build.env.name
        self.title = w.HTML(f"<b>Building {html.escape(name)}</b>")
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="")
        self.bar.add_class("jp-envs-panel-progress")
        self.phase = w.Label("queued")
        self.elapsed = w.Label("0 s")
        self.elapsed.add_class("jp-envs-panel-elapsed")
        self.log = w.HTML(tail_html([]))
        self.cancel = w.Button(description="Cancel", button_style="warning", icon="stop")
        self.cancel.add_class("jp-envs-panel-cancel")
        self.full = w.Button(description="Full log", icon="file-text")
        self.result = w.HTML("")
        self.cancel.on_click(lambda _b: self._cancel())
        self.full.on_click(lambda _b: self.panel.show_text(f"Log of {name}", self._full_log()))
        self.box = w.VBox(
            [
                self.title,
                w.HBox([self.bar, self.phase, self.elapsed]),
                self.log,
                w.HBox([self.cancel, self.full]),
                self.result,
            ],
            layout=w.Layout(border="1px solid var(--jp-border-color2)", padding="4px"),
        )
        self.box.add_class("jp-envs-panel-build")
        build.watch(self.update)

    def _cancel(self) -> None:
        self.cancel.disabled = True
        self.cancel.description = "Cancelling…"
        self.build.cancel()

    def _full_log(self) -> str:
        try:
            return self.panel.client.log_path(self.build.env.name).read_text(errors="replace")
        except (EnvsError, OSError) as exc:
            return f"(no log: {exc})"

    def update(self, snap: Snapshot) -> None:
        """Show a snapshot (called from the build's threads, batched)."""
        self.bar.value = max(0.0, min(1.0, snap.fraction))
        self.phase.value = f"{snap.phase}: {snap.message}"[:160]
        self.elapsed.value = f"{snap.elapsed:.0f} s"
        self.log.value = tail_html(snap.tail)
        if not snap.done:
            return
        self.cancel.layout.display = "none"
        name = html.escape(snap.name)
        ended = "built" if snap.result else ("cancelled" if snap.cancelled else "failed")
        self.title.value = f"<b>{name}: {ended}</b> ({snap.elapsed:.0f} s)"
        if snap.result is not None:
            self.bar.bar_style = "success"
            self.result.value = f"<b>{html.escape(snap.result.summary())}</b>"
        else:
            self.bar.bar_style = "warning" if snap.cancelled else "danger"
            kept = "The previous version, if any, is kept."
            said = f"Cancelled. {kept}" if snap.cancelled else f"{snap.error or 'failed'}\n{kept}"
            self.result.value = _error_html(said)
        self.panel.build_finished(self.build)


class EnvPanel:
    """Create, build, watch, cancel, activate and remove environments from a notebook."""

    def __init__(self, client: EnvsClient | None = None, *, poll: float = _POLL) -> None:
        self.client = client or connect()
        self._sizes: dict[str, int | None] = {}
        self._rows: list[Row] = []
        self._generation: int | None = None
        self._handle: DisplayHandle | None = None
        self._stop = threading.Event()
        self._views: dict[str, BuildView] = {}
        self._lock = threading.RLock()

        # -- environments
        self.status = w.HTML("")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.table = w.HTML("")
        self.table.add_class("jp-envs-panel-envs")
        wide = {"description_width": "initial"}
        self.selected = w.Dropdown(description="Environment", options=[], style=wide)
        self.selected.observe(lambda _c: self._selection_changed(), names="value")
        self.activate_button = w.Button(description="Activate", button_style="primary")
        self.activate_button.add_class("jp-envs-panel-activate")
        self.rebuild_button = w.Button(description="Rebuild")
        self.remove_button = w.Button(description="Remove…", button_style="danger")
        self.activate_button.on_click(lambda _b: self.activate())
        self.rebuild_button.on_click(lambda _b: self.rebuild())
        self.remove_button.on_click(lambda _b: self._ask_remove())
        self.confirm = w.HTML("")
        self.confirm_yes = w.Button(description="Remove it", button_style="danger")
        self.confirm_no = w.Button(description="Keep it")
        self.confirm_yes.on_click(lambda _b: self.remove())
        self.confirm_no.on_click(lambda _b: self._hide_confirm())
        self.confirm_box = w.HBox([self.confirm, self.confirm_yes, self.confirm_no])
        self.confirm_box.layout.display = "none"
        self.view_kind = w.Dropdown(options=_VIEWS, description="View")
        self.view_button = w.Button(description="Show")
        self.view_button.on_click(lambda _b: self.view())
        self.older = w.Dropdown(description="Compare v", options=[], style=wide)
        self.newer = w.Dropdown(description="with v", options=[], style=wide)
        self.explain_button = w.Button(description="What changed")
        self.explain_button.on_click(lambda _b: self.explain())
        self.message = w.HTML("")
        self.viewer_title = w.HTML("")
        self.viewer = w.Textarea(layout=w.Layout(width="100%", height="14em"), disabled=True)
        self.viewer_box = w.VBox([self.viewer_title, self.viewer])
        self.viewer_box.layout.display = "none"

        # -- create
        self.name = w.Text(description="Name", placeholder="nlp")
        self.format = w.Dropdown(description="Format", options=_FORMATS)
        self.spec = w.Textarea(
            description="Spec",
            placeholder="spacy==3.8\npandas",
            layout=w.Layout(width="100%", height="10em"),
        )
        self.backend = w.Dropdown(description="Backend", options=_BACKENDS)
        self.python = w.Text(description="Python", placeholder="3.11 (default: the server's)")
        self.base_image = w.Text(description="Base image", placeholder="python:3.12-slim")
        self.errors = {field: w.HTML("") for field in FIELDS}
        for field, widget in self.errors.items():
            widget.add_class(f"jp-envs-panel-error-{field}")
        self.build_button = w.Button(description="Build", button_style="success", icon="play")
        self.build_button.add_class("jp-envs-panel-build-button")
        self.build_button.on_click(lambda _b: self.create())
        for widget, cls in ((self.name, "name"), (self.spec, "spec"), (self.python, "python")):
            widget.add_class(f"jp-envs-panel-{cls}")
        form = w.VBox(
            [
                self.name,
                self.errors["name"],
                self.format,
                self.errors["format"],
                self.spec,
                self.errors["spec"],
                w.HBox([self.backend, self.python]),
                self.errors["backend"],
                self.errors["python"],
                self.base_image,
                self.errors["base_image"],
                self.build_button,
            ]
        )
        self.builds = w.VBox([])
        self.widget = w.VBox(
            [
                w.HBox([w.HTML("<b>jupyter-envs</b>"), self.refresh_button, self.status]),
                self.table,
                w.HBox([self.selected, self.activate_button, self.rebuild_button]),
                w.HBox([self.remove_button, self.confirm_box]),
                w.HBox([self.view_kind, self.view_button]),
                w.HBox([self.older, self.newer, self.explain_button]),
                self.message,
                self.viewer_box,
                w.HTML("<b>New environment</b>"),
                form,
                self.builds,
            ]
        )
        self.widget.add_class("jp-envs-panel")
        self.refresh()
        for build in running():
            self._attach(build)
        # The refresher holds the panel weakly: a panel nobody shows any more is collected.
        me = weakref.ref(self)
        stop = self._stop
        thread = threading.Thread(
            target=_refresher, args=(me, stop, poll), name="jupyter-envs-panel", daemon=True
        )
        thread.start()

    # -- showing ---------------------------------------------------------------------------------
    def show(self) -> EnvPanel:
        """Display the panel (with a text fallback for frontends without widgets)."""
        # The panel itself, not its box: its bundle adds the text form to the widget view.
        self._handle = display(self, display_id=True)
        return self

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.text_fallback()
        return bundle

    def text_fallback(self) -> str:
        """What a frontend without widget support shows: the table and how to use the magics."""
        table = text_table(self._rows) if self._rows else "No environments yet."
        return (
            table + "\n\nThis frontend does not show widgets. The same from cells: %%env NAME "
            "(build from the cell's text), %envs list | show | build | remove | logs NAME, "
            "%envs activate NAME[:VERSION]."
        )

    def close(self) -> None:
        """Stop refreshing and close the widgets (the builds go on)."""
        self._stop.set()
        with self._lock:
            for view in self._views.values():
                view.build.unwatch(view.update)
        self.widget.close()

    # -- the table ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the registry again (also done whenever it changes, in any process)."""
        with self._lock:
            try:
                self._generation = self.client.generation()
                self._rows = rows(self.client, self._sizes)
            except EnvsError as exc:
                self.status.value = _error_html(f"cannot read the registry: {exc}")
                return
            self.table.value = table_html(self._rows)
            names = [r.name for r in self._rows]
            current = self.selected.value
            self.selected.options = names
            # ipywidgets 8 clears the value when the options change: keep the choice, else the
            # first environment.
            if current in names:
                self.selected.value = current
            elif names:
                self.selected.value = names[0]
            self.status.value = (
                f"<span style='font-size:90%'>{len(names)} environment(s), updated "
                f"{time.strftime('%H:%M:%S')}</span>"
            )
            self._selection_changed()

    def changed(self) -> bool:
        """True when the registry moved since the last refresh."""
        try:
            return self.client.generation() != self._generation
        except EnvsError:
            return False

    def _row(self) -> Row | None:
        return next((r for r in self._rows if r.name == self.selected.value), None)

    def _selection_changed(self) -> None:
        row = self._row()
        versions = [str(v) for v in row.versions] if row else []
        self.older.options = versions
        self.newer.options = versions
        if len(versions) >= 2:
            self.older.value, self.newer.value = versions[-2], versions[-1]
        self._hide_confirm()

    # -- actions on one environment ----------------------------------------------------------------
    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.value = _error_html(text) if error else html.escape(text)

    def activate(self) -> None:
        """Switch this notebook to the selected environment (leaving a static summary)."""
        row = self._row()
        if row is None:
            self._say("Select an environment first.", error=True)
            return
        try:
            record = self.client.record(row.name)
            target = target_for(record, self.client.pushes(record.name, record.version))
        except EnvsError as exc:
            self._say(str(exc), error=True)
            return
        summary = (
            f"<p><b>jupyter-envs</b>: this notebook switched to <b>{html.escape(row.name)} "
            f"v{row.version}</b> (kernel <code>{html.escape(target.kernel_name)}</code>). The "
            "panel belonged to the previous kernel; show it again with "
            "<code>%envs panel</code>.</p>"
        )
        # Widgets die with this kernel: leave their place to a static summary, then switch.
        if self._handle is not None:
            plain = (
                f"jupyter-envs: this notebook switched to {row.name} v{row.version} (kernel "
                f"{target.kernel_name}); %envs panel shows the panel again.\n\n"
                + text_table(self._rows)
            )
            self._handle.update({"text/html": summary, "text/plain": plain}, raw=True)
        self._stop.set()
        try:
            switch_notebook(target, say=lambda text: self._say(text))
        except EnvsError as exc:
            self._say(str(exc), error=True)

    def rebuild(self) -> None:
        """Build the selected environment's spec again (a new version when it changed)."""
        row = self._row()
        if row is None:
            self._say("Select an environment first.", error=True)
            return
        try:
            env = self.client.get(row.name)
        except EnvsError as exc:
            self._say(str(exc), error=True)
            return
        self.start(env, force=True)

    def _ask_remove(self) -> None:
        row = self._row()
        if row is None:
            return
        self.confirm.value = f"Remove <b>{html.escape(row.name)}</b>, all its versions and kernels?"
        self.confirm_box.layout.display = "flex"

    def _hide_confirm(self) -> None:
        self.confirm_box.layout.display = "none"

    def remove(self) -> None:
        """Remove the selected environment (after the confirmation)."""
        self._hide_confirm()
        row = self._row()
        if row is None:
            return
        try:
            removed = self.client.remove(row.name)
        except EnvsError as exc:
            self._say(str(exc), error=True)
            return
        self._say(f"Removed {row.name} ({len(removed)} version(s)) and its kernels.")
        self.refresh()

    def view(self) -> None:
        """Show the selected environment's spec, lock or JSON."""
        row = self._row()
        if row is None:
            return
        kind = self.view_kind.value
        if kind == "where":
            try:
                places = self.client.where(row.name)[0].places
            except EnvsError as exc:
                self._say(str(exc), error=True)
                return
            lines = [f"{place}: {said}" for place, said in places.items()]
            self.show_text(f"Where {row.name} v{row.version} can run", "\n".join(lines))
            return
        if row.backend == "docker" and kind == "requirements":
            from ...engines.builders.dockerfile import render_dockerfile

            try:
                self.show_text(f"Dockerfile of {row.name}", render_dockerfile(
                    self.client.get(row.name)))  # fmt: skip
            except EnvsError as exc:
                self._say(str(exc), error=True)
            return
        try:
            self.show_text(f"{kind} of {row.name} v{row.version}", self.client.export(row.name,
                           None, kind))  # fmt: skip
        except EnvsError as exc:
            self._say(str(exc), error=True)

    def explain(self) -> None:
        """What changed between the two chosen versions."""
        row = self._row()
        if row is None or not self.older.value or not self.newer.value:
            self._say("Pick an environment with two versions.", error=True)
            return
        try:
            old = self.client.get(row.name, int(self.older.value))
            new = self.client.get(row.name, int(self.newer.value))
        except EnvsError as exc:
            self._say(str(exc), error=True)
            return
        lines = new.explain(old) or ["nothing that changes the build"]
        self.show_text(f"{row.name}: v{self.older.value} → v{self.newer.value}", "\n".join(lines))

    def show_text(self, title: str, text: str) -> None:
        """Show text in the viewer (read-only)."""
        self.viewer_title.value = f"<b>{html.escape(title)}</b>"
        self.viewer.value = text
        self.viewer_box.layout.display = "flex"

    # -- creating and building ---------------------------------------------------------------------
    def _clear_errors(self) -> None:
        for widget in self.errors.values():
            widget.value = ""

    def environment(self) -> Environment:
        """The form as an Environment; SpecError names the field at fault."""
        name = self.name.value.strip()
        if not name:
            raise SpecError("is required", field="name")
        env = Environment.from_text(name, self.spec.value, format=self.format.value or None)
        if self.python.value.strip():
            env.python.version = self.python.value.strip()
        if self.base_image.value.strip():
            env.docker.base_image = self.base_image.value.strip()
        if self.backend.value:
            env.backend = self.backend.value
        return env

    def create(self) -> BackgroundBuild | None:
        """Validate the form and start its build; errors go next to their field."""
        self._clear_errors()
        try:
            env = self.environment()
        except SpecError as exc:
            self.errors[field_of(exc.field)].value = _error_html(str(exc))
            return None
        return self.start(env)

    def start(self, env: Environment, *, force: bool = False) -> BackgroundBuild | None:
        """Start a build of ``env`` in the background and show its progress."""
        if running(env.name):
            self._say(f"{env.name} is already being built.", error=True)
            return None
        build = BackgroundBuild(self.client, env, force=force).start()
        self._attach(build)
        self._say(f"Building {env.name}…")
        return build

    def _attach(self, build: BackgroundBuild) -> None:
        with self._lock:
            old = self._views.get(build.env.name)
            if old is not None:
                old.build.unwatch(old.update)
            view = BuildView(build, self)
            self._views[build.env.name] = view
            self.builds.children = tuple(v.box for v in self._views.values())

    def build_finished(self, build: BackgroundBuild) -> None:
        """Called by a build's view when it ends: the table shows the new state."""
        snap = build.snapshot()
        if snap.result is not None:
            self._say(snap.result.summary())
        else:
            self._say(f"{build.env.name}: {'cancelled' if snap.cancelled else 'failed'}.",
                      error=not snap.cancelled)  # fmt: skip
        self.refresh()


def _refresher(ref: weakref.ReferenceType[EnvPanel], stop: threading.Event, poll: float) -> None:
    while not stop.wait(poll):
        panel = ref()
        if panel is None:
            return
        if panel.changed():
            panel.refresh()
        del panel
