"""The widget panel (issue #13), driven through its widget models against the real manager:
the fake builder for most cases (a gated one where a test must act while a build runs, a chatty
one for a long log), and one real uv build. Clicks are ``Button.click()``; what the user sees is
read from the widgets' values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from jupyter_envs import Environment, Workspace
from jupyter_envs.clients import background
from jupyter_envs.clients.envs import EnvsClient
from jupyter_envs.engines import builders
from jupyter_envs.engines.builders import BuildOutput, BuildRequest, FakeBuilder
from jupyter_envs.errors import BuildCancelledError
from jupyter_envs.events import Event, LogLine, Progress
from jupyter_envs.facade.manager import EnvManager
from jupyter_envs.frontends.panel._view import EnvPanel


class GatedBuilder(FakeBuilder):
    """A fake builder that waits for :attr:`gate` before finishing (cancellable meanwhile)."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        yield Progress("install", 0.3, "waiting at the gate")
        yield LogLine("at the gate")
        self.started.set()
        while not self.gate.wait(0.02):
            if request.cancel.cancelled:
                raise BuildCancelledError("cancelled at the gate", env_name=request.env.name)
        return (yield from super().build(request))


class ChattyBuilder(FakeBuilder):
    """A fake builder that prints 5,000 lines."""

    name = "chatty"

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        for i in range(5000):
            yield LogLine(f"line {i}")
            if i % 500 == 0:
                yield Progress("install", i / 5000, f"{i} lines")
                time.sleep(0.05)
        return (yield from super().build(request))


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedBuilder]:
    builder = GatedBuilder()
    chain = builders.available_builders()
    monkeypatch.setattr(builders, "available_builders", lambda: (*chain, builder, ChattyBuilder()))
    yield builder
    builder.gate.set()


@pytest.fixture
def client(workspace: Workspace) -> EnvsClient:
    return EnvsClient(None, EnvManager(workspace))


@pytest.fixture
def panels(client: EnvsClient) -> Iterator[Callable[[], EnvPanel]]:
    made: list[EnvPanel] = []

    def make() -> EnvPanel:
        made.append(EnvPanel(client, poll=0.05))
        return made[-1]

    yield make
    for panel in made:
        panel.close()
    for build in background.running():
        build.cancel()
        build.wait(10)


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def fill(panel: EnvPanel, name: str, spec: str, backend: str = "fake") -> None:
    panel.name.value = name
    panel.spec.value = spec
    panel.backend.options = [*panel.backend.options, (backend, backend)]
    panel.backend.value = backend


def build_view(panel: EnvPanel, name: str) -> Any:
    return wait_for(lambda: panel._views.get(name))


# -- the table -----------------------------------------------------------------------------------
def test_the_table_lists_environments_and_follows_builds_made_elsewhere(
    panels: Callable[[], EnvPanel], workspace: Workspace
) -> None:
    Environment("first", pip=["six"], backend="fake").build(ws=workspace)
    panel = panels()
    assert "first" in panel.table.value
    assert "jenv-first-v1" in panel.table.value
    assert panel.selected.options == ("first",)
    # Built by someone else (the CLI, another notebook, the server): the panel follows.
    Environment("second", pip=["six"], backend="fake").build(ws=workspace)
    wait_for(lambda: "second" in panel.table.value)
    assert panel.selected.options == ("first", "second")
    text = panel._repr_mimebundle_()["text/plain"]
    assert "first" in text
    assert "second" in text
    assert "%%env NAME" in text  # the fallback of a frontend without widgets


# -- the form ------------------------------------------------------------------------------------
def test_bad_input_is_shown_next_to_its_field_and_nothing_is_built(
    panels: Callable[[], EnvPanel], workspace: Workspace
) -> None:
    panel = panels()
    fill(panel, "Bad Name", "six\n")
    panel.build_button.click()
    assert "invalid environment name" in panel.errors["name"].value
    fill(panel, "ok", "six\npandas>=>1\n")
    panel.build_button.click()
    assert panel.errors["name"].value == ""
    assert "line 2" in panel.errors["spec"].value
    panel.python.value = "three"
    fill(panel, "ok", "six\n")
    panel.build_button.click()
    assert "invalid Python version" in panel.errors["python"].value
    assert workspace.names() == []
    assert background.running() == []


def test_build_from_the_form_shows_progress_and_the_result(
    panels: Callable[[], EnvPanel], workspace: Workspace
) -> None:
    panel = panels()
    fill(panel, "demo", "six==1.17.0\n")
    panel.build_button.click()
    view = build_view(panel, "demo")
    wait_for(lambda: view.build.done)
    wait_for(lambda: "demo v1" in view.result.value)
    assert view.bar.value == 1.0
    assert view.bar.bar_style == "success"
    wait_for(lambda: "ready" in panel.table.value)
    assert workspace.get("demo").status == "ready"


def test_a_long_log_is_sent_in_a_few_batched_updates(
    panels: Callable[[], EnvPanel], gated: GatedBuilder
) -> None:
    panel = panels()
    fill(panel, "chatty", "six\n", backend="chatty")
    updates = []
    panel.build_button.click()
    view = build_view(panel, "chatty")
    view.log.observe(lambda change: updates.append(change), names="value")
    wait_for(lambda: view.build.done)
    wait_for(lambda: "line 4999" in view.log.value)
    # 5,000 lines in ~0.5 s: a handful of updates (every 0.25 s at most), not 5,000.
    assert len(updates) < 30, len(updates)
    assert view.log.value.count("line ") <= 30  # only the tail is shown
    view.full.click()  # the full log, one click away
    assert panel.viewer.value.count("line ") == 5000


def test_cancel_stops_the_build_and_the_previous_version_stays(
    panels: Callable[[], EnvPanel], gated: GatedBuilder, workspace: Workspace
) -> None:
    Environment("keep", pip=["six"], backend="fake").build(ws=workspace)
    panel = panels()
    fill(panel, "keep", "six\nrequests\n", backend="gated")
    panel.build_button.click()
    view = build_view(panel, "keep")
    assert gated.started.wait(10)
    wait_for(lambda: "building" in panel.table.value)
    view.cancel.click()
    wait_for(lambda: view.build.done)
    assert view.build.snapshot().cancelled
    wait_for(lambda: "previous version" in view.result.value)
    versions = workspace.versions("keep")
    assert [(v.version, v.status) for v in versions] == [(1, "ready")]
    wait_for(lambda: "cancelled" in panel.table.value)


def test_a_build_goes_on_when_the_panel_is_shown_again(
    panels: Callable[[], EnvPanel], gated: GatedBuilder, workspace: Workspace
) -> None:
    first = panels()
    fill(first, "long", "six\n", backend="gated")
    first.build_button.click()
    assert gated.started.wait(10)
    first.close()  # the cell is re-run: the old panel goes, the build does not
    second = panels()
    view = build_view(second, "long")
    gated.gate.set()
    wait_for(lambda: view.build.done)
    wait_for(lambda: "long v1" in view.result.value)
    assert workspace.get("long").status == "ready"


# -- actions on an environment ------------------------------------------------------------------
def test_view_explain_rebuild_and_remove_with_confirmation(
    panels: Callable[[], EnvPanel], workspace: Workspace
) -> None:
    Environment("demo", pip=["six"], backend="fake").build(ws=workspace)
    Environment("demo", pip=["six", "requests"], backend="fake").build(ws=workspace)
    panel = panels()
    panel.selected.value = "demo"
    panel.view_kind.value = "lock"
    panel.view_button.click()
    assert "requests==" in panel.viewer.value
    assert (panel.older.value, panel.newer.value) == ("1", "2")
    panel.explain_button.click()
    assert "requests" in panel.viewer.value
    panel.view_kind.value = "where"
    panel.view_button.click()
    assert "local: yes" in panel.viewer.value
    assert "k8s: no: it has no image" in panel.viewer.value
    panel.rebuild_button.click()
    view = build_view(panel, "demo")
    wait_for(lambda: view.build.done)
    assert view.build.snapshot().result is not None

    panel.remove_button.click()
    assert panel.confirm_box.layout.display == "flex"
    assert "Remove <b>demo</b>" in panel.confirm.value
    panel.confirm_no.click()
    assert workspace.names() == ["demo"]
    panel.remove_button.click()
    panel.confirm_yes.click()
    assert workspace.names() == []
    assert "Removed demo" in panel.message.value
    assert "No environments yet" in panel.table.value


def test_activate_outside_a_kernel_says_which_kernel_to_pick(
    panels: Callable[[], EnvPanel], workspace: Workspace
) -> None:
    Environment("demo", pip=["six"], backend="fake").build(ws=workspace)
    panel = panels()
    panel.selected.value = "demo"
    panel.activate_button.click()
    assert "jenv-demo-v1" in panel.message.value


@pytest.mark.integration
def test_a_real_uv_build_from_the_panel(
    panels: Callable[[], EnvPanel], workspace: Workspace
) -> None:
    panel = panels()
    panel.name.value = "real"
    panel.spec.value = "six==1.17.0\n"
    panel.build_button.click()
    view = build_view(panel, "real")
    wait_for(lambda: view.build.done, timeout=300)
    assert view.build.snapshot().result is not None, view.result.value
    assert "six==1.17.0" in (workspace.get("real").lock or "")
    assert view.bar.value == 1.0
    wait_for(lambda: "ready" in panel.table.value)
