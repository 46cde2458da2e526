"""End to end in a real browser: a ``%%env`` cell switches the open notebook to the new kernel.

Debian's Chromium, driven by Playwright, against a real JupyterLab / Notebook 7 started by the test,
with a real uv build. Skips (with the reason) where Chromium or Playwright is missing; CI sets
``JUPYTER_ENVS_REQUIRE_ALL=1`` so that such a skip fails instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_envs import Environment, Workspace
from jupyter_envs.facade.carry import carried
from tests._lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    JS_EXECUTE,
    JS_OUTPUTS,
    JS_PANEL,
    JS_RUN_ALL,
    JupyterServer,
    browser_missing,
    jupyter_server,
    write_notebook,
)
from tests._wheels import slow_project, tiny_wheel

pytestmark = [pytest.mark.integration, pytest.mark.browser]

_MISSING = browser_missing()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if _MISSING:
        pytest.skip(_MISSING)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


CELLS = ["%load_ext jupyter_envs\nbefore = 'old kernel'", "%%env e2e\nsix==1.17.0"]


def _open(browser: Any, server: JupyterServer, url_path: str, *, kernel: bool = True) -> Any:
    """The notebook open in a new page, its kernel idle (``kernel``: else only loaded)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(f"{server.base}{url_path}?token={server.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=60_000)
    page.evaluate("() => window.jupyterapp.started")
    if kernel:
        page.wait_for_function(
            f"() => {{ const p = ({JS_PANEL})(); return p && p.status === 'idle'; }}",
            timeout=60_000,
        )
    return page


JS_JUV = """(() => {
  const model = window.jupyterapp.shell.currentWidget.content.model;
  const lock = model.getMetadata('uv.lock');
  if (!lock) return null;
  const first = model.cells.get(0);
  const meta = first.sharedModel.getMetadata();
  return {
    first: first.sharedModel.getSource(),
    hidden: !!(meta.jupyter && meta.jupyter.source_hidden),
    lock,
  };
})()"""


def _switch_and_check(page: Any, server: JupyterServer, timeout_ms: int) -> dict[str, Any]:
    before = page.evaluate(JS_PANEL)
    assert before["kernelName"] == "python3"
    page.evaluate(JS_RUN_ALL)
    try:
        page.wait_for_function(
            f"() => {{ const p = ({JS_PANEL})(); "
            "return p && p.kernelName === 'jenv-e2e-v1' && p.status === 'idle'; }",
            timeout=timeout_ms,
        )
    except Exception:
        outputs = page.evaluate(JS_OUTPUTS)
        raise AssertionError(
            f"the notebook did not switch; cell outputs:\n{outputs}\n"
            f"server log:\n{server.log_tail()}"
        ) from None
    after = page.evaluate(JS_PANEL)
    outputs = page.evaluate(JS_OUTPUTS)
    assert "Switching this notebook to e2e v1" in outputs
    assert "before" in outputs  # the summary names the variables the old kernel loses
    # The server started the new kernel during the cell, and the notebook moved onto that one.
    assert "The kernel of e2e v1 started in" in outputs
    assert f"kernel {after['kernelId']} (jenv-e2e-v1) ready in" in server.log_path.read_text()
    # Code now runs in the environment, and the old kernel is gone from the server.
    prefix = page.evaluate(JS_EXECUTE, "import sys; print(sys.prefix)").strip()
    assert "/jupyter_envs/envs/e2e/v1-" in prefix, prefix
    assert "'old kernel'" not in page.evaluate(JS_EXECUTE, "print(repr(globals().get('before')))")
    # The server shuts the old kernel down right after moving the session (in the background).
    deadline = time.monotonic() + 30
    while before["kernelId"] in (running := {k["id"] for k in server.api("GET", "/api/kernels")}):
        assert time.monotonic() < deadline, "the old kernel is still running"
        time.sleep(0.1)
    assert after["kernelId"] in running
    return dict(after)


@pytest.mark.parametrize(
    ("app", "url_path"), [("lab", "/lab/tree/e2e.ipynb"), ("notebook", "/notebooks/e2e.ipynb")]
)
def test_env_cell_switches_the_notebook(
    browser: Any, tmp_path: Path, app: str, url_path: str
) -> None:
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "e2e.ipynb", CELLS)
    with jupyter_server(app, root, tmp_path / "server") as server:
        page = _open(browser, server, url_path)
        try:
            after = _switch_and_check(page, server, timeout_ms=180_000)
            # The labextension records the env in the notebook's metadata.
            assert after["metadata"]["env"] == "e2e"
            assert after["metadata"]["version"] == 1
            assert len(after["metadata"]["spec_hash"]) == 64
            # ... as the record another machine restores it from: spec and lock (format 1).
            assert after["metadata"]["format"] == 1
            assert "six==" in after["metadata"]["lock"]
            assert after["metadata"]["spec"]["name"] == "e2e"
            # Offered once: the same environment written the way juv keeps it.
            page.get_by_role("button", name="Write them").click(timeout=30_000)
            page.wait_for_function(JS_JUV + " !== null", timeout=60_000)
            juv = page.evaluate(JS_JUV)
            assert juv["first"].startswith("# /// script\n")
            assert '"six==1.17.0",' in juv["first"]
            assert juv["hidden"] is True
            assert 'name = "six"\nversion = "1.17.0"' in juv["lock"]
        finally:
            page.close()


def test_a_conda_env_cell_switches_the_notebook(
    browser: Any, tmp_path: Path, conda_channel: Path
) -> None:
    """An environment.yml cell: solved and installed by rattler from the local channel, its
    kernel the conda prefix's own Python."""
    root = tmp_path / "notebooks"
    root.mkdir()
    cell = (
        f"%%env e2econda\nchannels: [{conda_channel.as_uri()}]\n"
        "dependencies:\n  - python=3.11\n  - jenvs-tool\n  - pip:\n      - six==1.17.0\n"
    )
    write_notebook(root / "conda.ipynb", ["%load_ext jupyter_envs", cell])
    with jupyter_server("lab", root, tmp_path / "server") as server:
        page = _open(browser, server, "/lab/tree/conda.ipynb")
        try:
            page.evaluate(JS_RUN_ALL)
            try:
                page.wait_for_function(
                    f"() => {{ const p = ({JS_PANEL})(); "
                    "return p && p.kernelName === 'jenv-e2econda-v1' && p.status === 'idle'; }",
                    timeout=180_000,
                )
            except Exception:
                outputs = page.evaluate(JS_OUTPUTS)
                raise AssertionError(
                    f"no switch; outputs:\n{outputs}\nserver log:\n{server.log_tail()}"
                ) from None
            out = page.evaluate(
                JS_EXECUTE,
                "import os, subprocess, sys, six; print(sys.prefix == os.environ['CONDA_PREFIX'],"
                " six.__version__, subprocess.run(['jenvs-tool'], capture_output=True, "
                "text=True).stdout.strip(), sys.prefix)",
            ).split()
            assert out[:4] == ["True", "1.17.0", "jenvs-tool", "1.0"], out
            assert "/jupyter_envs/envs/e2econda/v1-" in out[4]
            metadata = page.evaluate(JS_PANEL)["metadata"]
            assert metadata["backend"] == "conda"
            assert "@EXPLICIT" in metadata["lock"]
        finally:
            page.close()


@pytest.mark.parametrize(
    ("app", "url_path"), [("lab", "/lab/tree/e2e.ipynb"), ("notebook", "/notebooks/e2e.ipynb")]
)
def test_without_the_labextension_the_server_switches(
    browser: Any, tmp_path: Path, app: str, url_path: str
) -> None:
    """The frontend closes the unknown comm; the kernel asks the server; the tab follows."""
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "e2e.ipynb", CELLS)
    with jupyter_server(app, root, tmp_path / "server", labextension=False) as server:
        page = _open(browser, server, url_path)
        try:
            assert not page.evaluate(
                "() => window.jupyterapp.isPluginActivated('jupyter-envs:plugin')"
            )
            started = time.monotonic()
            after = _switch_and_check(page, server, timeout_ms=180_000)
            assert time.monotonic() - started < 170
            # Without the labextension nothing writes the notebook's metadata.
            assert after["metadata"] is None
        finally:
            page.close()


JS_RUN_CELL = """
async (index) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  panel.content.activeCellIndex = index;
  await app.commands.execute('notebook:run-cell');
}
"""

JS_CELL_OUTPUTS = """
(index) => {
  const cell = window.jupyterapp.shell.currentWidget.content.model.cells.get(index);
  return cell.type === 'code' ? cell.outputs.toJSON() : [];
}
"""


def test_quickstart_notebook_runs_cell_by_cell(browser: Any, tmp_path: Path) -> None:
    """The README's quickstart, as a user runs it: build, switch, then work in the env."""
    import nbformat

    root = tmp_path / "notebooks"
    root.mkdir()
    quickstart = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"
    nb = nbformat.read(str(quickstart), as_version=4)
    nbformat.write(nb, str(root / "quickstart.ipynb"))
    with jupyter_server("lab", root, tmp_path / "server") as server:
        page = _open(browser, server, "/lab/tree/quickstart.ipynb")
        try:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                page.evaluate(JS_RUN_CELL, index)
                if cell.source.startswith("%%env quickstart"):
                    page.wait_for_function(
                        f"() => {{ const p = ({JS_PANEL})(); "
                        "return p && p.kernelName === 'jenv-quickstart-v1'; }",
                        timeout=180_000,
                    )
                page.wait_for_function(
                    f"() => {{ const p = ({JS_PANEL})(); return p && p.status === 'idle'; }}",
                    timeout=180_000,
                )
                outputs = page.evaluate(JS_CELL_OUTPUTS, index)
                errors = [o for o in outputs if o.get("output_type") == "error"]
                assert not errors, f"cell {index} failed: {errors}"
            everything = page.evaluate(JS_OUTPUTS)
            assert "/jupyter_envs/envs/quickstart/v1-" in everything  # sys.prefix, in the env
            assert "Removed api-demo" in everything
        finally:
            page.close()


# -- a notebook that carries its environment, opened where it is missing --------------------------
JS_NOTICE = """
() => {
  const notice = document.querySelector('.jp-envs-restore');
  return notice ? notice.textContent : null;
}
"""


@pytest.mark.parametrize(
    ("app", "url_path"),
    [("lab", "/lab/tree/carried.ipynb"), ("notebook", "/notebooks/carried.ipynb")],
)
def test_a_notebook_whose_env_is_missing_offers_to_build_it_and_switches(
    browser: Any, tmp_path: Path, app: str, url_path: str
) -> None:
    """Built on "machine A" (a store of the test's), only the .ipynb reaches the server
    ("machine B"); the notice shows what it would install, the button builds it from the lock
    (1.0, though 2.0 has been published since) and switches the notebook."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "1.0")
    first = Workspace(tmp_path / "a" / "store", tmp_path / "a" / "kernels")
    Environment.from_text("carried", f"--find-links {wheels}\njenvs-tinypkg\n").build(ws=first)
    record = carried(first.get("carried")).to_metadata()
    tiny_wheel(wheels, "2.0")
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(
        root / "carried.ipynb",
        ["import jenvs_tinypkg; print(jenvs_tinypkg.VERSION)"],
        kernel="jenv-carried-v1",  # as the first machine saved it: not a kernel here
        metadata={"jupyter_envs": record},
    )
    with jupyter_server(app, root, tmp_path / "server") as server:
        page = _open(browser, server, url_path, kernel=False)
        try:
            # The notebook's kernel is not installed here: JupyterLab asks which to start; the
            # notice shows behind that dialog. A user who reads it starts none.
            page.locator(".jp-Dialog").get_by_role("button", name="No Kernel", exact=True).click(
                timeout=60_000
            )
            page.wait_for_selector(".jp-envs-restore-build", timeout=30_000)
            assert page.locator(".jp-envs-restore").is_visible()
            text = page.evaluate(JS_NOTICE)
            assert "made in environment carried v1 (venv builder" in text, text
            assert "It is not on this server" in text
            assert "jenvs-tinypkg==1.0" in text  # the locked versions it would install
            assert f"--find-links {wheels}" in text
            assert f"it adds a package source this machine is not configured with: {wheels}" in text
            # Nothing is built before the click.
            assert server.api("GET", "/jupyter-envs/api/builds") == []
            page.click(".jp-envs-restore-build")
            try:
                page.wait_for_function(
                    f"() => {{ const p = ({JS_PANEL})(); "
                    "return p && p.kernelName === 'jenv-carried-v1' && p.status === 'idle'; }",
                    timeout=180_000,
                )
            except Exception:
                raise AssertionError(
                    f"no switch; notice: {page.evaluate(JS_NOTICE)}\n{server.log_tail()}"
                ) from None
            out = page.evaluate(
                JS_EXECUTE, "import jenvs_tinypkg, sys; print(jenvs_tinypkg.VERSION, sys.prefix)"
            )
            version, prefix = out.split()
            assert version == "1.0"  # the lock won over the newer release
            assert "/jupyter_envs/envs/carried/v1-" in prefix
            page.wait_for_function(f"() => ({JS_NOTICE})() === null", timeout=10_000)
            builds = server.api("GET", "/jupyter-envs/api/builds")
            assert [(b["name"], b["status"], b["from_lock"]) for b in builds] == [
                ("carried", "succeeded", True)
            ]
        finally:
            page.close()


def test_a_lock_that_cannot_be_honoured_offers_to_re_resolve(browser: Any, tmp_path: Path) -> None:
    """The locked version is gone from the index: the notice names it, builds nothing until
    asked, and its Re-resolve button builds from the spec (the newer release) and switches."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "1.0")
    first = Workspace(tmp_path / "a" / "store", tmp_path / "a" / "kernels")
    Environment.from_text("gone", f"--find-links {wheels}\njenvs-tinypkg\n").build(ws=first)
    record = carried(first.get("gone")).to_metadata()
    (wheels / "jenvs_tinypkg-1.0-py3-none-any.whl").unlink()  # withdrawn
    tiny_wheel(wheels, "2.0")
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "g.ipynb", ["print(1)"], metadata={"jupyter_envs": record})
    with jupyter_server("lab", root, tmp_path / "server") as server:
        page = _open(browser, server, "/lab/tree/g.ipynb")
        try:
            page.click(".jp-envs-restore-build", timeout=30_000)
            page.wait_for_selector(".jp-envs-restore-reresolve", timeout=180_000)
            text = page.evaluate(JS_NOTICE)
            assert "the notebook's lock cannot be honoured on this machine" in text, text
            assert "jenvs-tinypkg==1.0" in text
            assert server.api("GET", "/jupyter-envs/api/environments") == []  # nothing kept
            page.click(".jp-envs-restore-reresolve")
            page.wait_for_function(
                f"() => {{ const p = ({JS_PANEL})(); "
                "return p && p.kernelName === 'jenv-gone-v1' && p.status === 'idle'; }",
                timeout=180_000,
            )
            out = page.evaluate(JS_EXECUTE, "import jenvs_tinypkg; print(jenvs_tinypkg.VERSION)")
            assert out.strip() == "2.0"
            builds = server.api("GET", "/jupyter-envs/api/builds")
            assert [(b["status"], b["from_lock"]) for b in builds] == [
                ("failed", True),
                ("succeeded", False),
            ]
        finally:
            page.close()


def test_an_environment_already_here_is_offered_as_it_is(browser: Any, tmp_path: Path) -> None:
    """The server has the notebook's environment (same spec) and the notebook runs another
    kernel: the notice offers to switch to it, builds nothing, and switches."""
    first = Workspace(tmp_path / "a" / "store", tmp_path / "a" / "kernels")
    Environment.from_text("here", "six==1.17.0\n").build(ws=first)
    record = carried(first.get("here")).to_metadata()
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "h.ipynb", ["print(1)"], metadata={"jupyter_envs": record})
    with jupyter_server("lab", root, tmp_path / "server") as server:
        body = {"metadata": record}
        build = server.api("POST", "/jupyter-envs/api/restore", body)
        deadline = time.monotonic() + 180
        while build["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, build
            time.sleep(0.5)
            build = server.api("GET", f"/jupyter-envs/api/builds/{build['id']}")
        assert build["status"] == "succeeded", build
        page = _open(browser, server, "/lab/tree/h.ipynb")
        try:
            page.wait_for_selector(".jp-envs-restore-switch", timeout=30_000)
            assert "This server has it: here v1" in page.evaluate(JS_NOTICE)
            page.click(".jp-envs-restore-switch")
            page.wait_for_function(
                f"() => {{ const p = ({JS_PANEL})(); "
                "return p && p.kernelName === 'jenv-here-v1' && p.status === 'idle'; }",
                timeout=120_000,
            )
            page.wait_for_function(f"() => ({JS_NOTICE})() === null", timeout=10_000)
            assert len(server.api("GET", "/jupyter-envs/api/builds")) == 1  # none more
        finally:
            page.close()


def test_a_tampered_record_is_shown_as_an_error_and_nothing_is_built(
    browser: Any, tmp_path: Path
) -> None:
    first = Workspace(tmp_path / "a" / "store", tmp_path / "a" / "kernels")
    Environment("carried", pip=["six"], backend="fake").build(ws=first)
    record = carried(first.get("carried")).to_metadata()
    record["spec"]["pip"] = ["evil==6.6.6"]  # edited apart from its hash
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "t.ipynb", ["print(1)"], metadata={"jupyter_envs": record})
    with jupyter_server("lab", root, tmp_path / "server") as server:
        page = _open(browser, server, "/lab/tree/t.ipynb")
        try:
            page.wait_for_function(f"() => ({JS_NOTICE})() !== null", timeout=30_000)
            page.wait_for_selector(".jp-envs-restore-dismiss", timeout=30_000)
            text = page.evaluate(JS_NOTICE)
            assert "cannot be used; nothing will be built from it" in text, text
            assert "does not match its spec hash" in text
            assert page.locator(".jp-envs-restore-build").count() == 0
            assert server.api("GET", "/jupyter-envs/api/builds") == []
            page.click(".jp-envs-restore-dismiss")
            page.wait_for_function(f"() => ({JS_NOTICE})() === null", timeout=10_000)
        finally:
            page.close()


# -- the widget panel (issue #13) ---------------------------------------------------------------
JS_PANEL_TEXT = """
(selector) => {
  const node = document.querySelector(selector);
  return node ? node.textContent : null;
}
"""


@pytest.mark.parametrize(
    ("app", "url_path"), [("lab", "/lab/tree/p.ipynb"), ("notebook", "/notebooks/p.ipynb")]
)
def test_the_panel_builds_cancels_and_activates(
    browser: Any, tmp_path: Path, app: str, url_path: str
) -> None:
    """Show the panel, fill the form, Build (progress, then ready), start a slow build and
    Cancel it (the previous version stays), Activate (the notebook's kernel changes)."""
    slow = slow_project(tmp_path / "slowpkg")
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "p.ipynb", ["%load_ext jupyter_envs\n%envs panel"])
    with jupyter_server(app, root, tmp_path / "server") as server:
        page = _open(browser, server, url_path)
        try:
            page.evaluate(JS_RUN_ALL)
            page.wait_for_selector(".jp-envs-panel .jp-envs-panel-build-button", timeout=60_000)
            assert "No environments yet" in page.evaluate(JS_PANEL_TEXT, ".jp-envs-panel-envs")
            page.fill(".jp-envs-panel-name input", "pw")
            page.fill(".jp-envs-panel-spec textarea", "six==1.17.0\n")
            page.click(".jp-envs-panel-build-button")
            page.wait_for_selector(".jp-envs-panel-progress", timeout=30_000)
            page.wait_for_function(
                f"() => ({JS_PANEL_TEXT})('.jp-envs-panel-envs').includes('jenv-pw-v1')",
                timeout=180_000,
            )
            assert "ready" in page.evaluate(JS_PANEL_TEXT, ".jp-envs-panel-envs")

            # A slow second version, cancelled: v1 stays as it was.
            page.fill(".jp-envs-panel-spec textarea", f"six==1.17.0\n{slow}\n")
            page.click(".jp-envs-panel-build-button")
            page.wait_for_function(
                f"() => ({JS_PANEL_TEXT})('.jp-envs-panel-envs').includes('building')",
                timeout=60_000,
            )
            # The panel keeps updating while another cell runs (the build reports from its
            # own thread): the elapsed time moves during a busy kernel's sleep.
            page.evaluate(
                "() => { window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                ".requestExecute({code: 'import time; time.sleep(5)'}); }"
            )
            page.wait_for_function(f"() => ({JS_PANEL})().status === 'busy'", timeout=10_000)
            before = page.evaluate(JS_PANEL_TEXT, ".jp-envs-panel-elapsed")
            page.wait_for_function(
                f"() => ({JS_PANEL_TEXT})('.jp-envs-panel-elapsed') !== {before!r}",
                timeout=4_000,
            )
            assert page.evaluate(JS_PANEL)["status"] == "busy"
            page.wait_for_function(f"() => ({JS_PANEL})().status === 'idle'", timeout=30_000)
            page.click(".jp-envs-panel-cancel")
            page.wait_for_function(
                f"() => ({JS_PANEL_TEXT})('.jp-envs-panel-build').includes('previous version')",
                timeout=60_000,
            )
            versions = server.api("GET", "/jupyter-envs/api/environments/pw/versions")
            assert [(v["version"], v["status"]) for v in versions] == [(1, "ready")]

            page.click(".jp-envs-panel-activate")
            page.wait_for_function(
                f"() => {{ const p = ({JS_PANEL})(); "
                "return p && p.kernelName === 'jenv-pw-v1' && p.status === 'idle'; }",
                timeout=120_000,
            )
            # The panel left a static summary behind (its widgets died with the old kernel).
            assert "this notebook switched to pw v1" in page.evaluate(JS_OUTPUTS) or (
                "switched to pw v1" in page.inner_text(".jp-OutputArea")
            )
            prefix = page.evaluate(JS_EXECUTE, "import sys; print(sys.prefix)").strip()
            assert "/jupyter_envs/envs/pw/v1-" in prefix
            # The environment's own kernel shows the panel again.
            page.evaluate(JS_RUN_ALL)
            page.wait_for_function(
                f"() => ({JS_PANEL_TEXT})('.jp-envs-panel-envs')?.includes('jenv-pw-v1')",
                timeout=60_000,
            )
        finally:
            page.close()
