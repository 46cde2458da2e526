#!/usr/bin/env python3
"""Make the widget panel's screenshots in docs/images/ (ready, building, a validation error,
after a switch) with a real JupyterLab and Chromium, as the browser tests run them.

Usage: ``.venv/bin/python scripts/panel-screenshots.py`` (Chromium and Playwright installed).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests._lab import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    JS_PANEL,
    JS_RUN_ALL,
    jupyter_server,
    write_notebook,
)
from tests._wheels import slow_project  # noqa: E402

OUT = REPO / "docs" / "images"


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jenvs-shots-") as tmp:
        work = Path(tmp)
        slow = slow_project(work / "slowpkg", seconds=60)
        root = work / "notebooks"
        root.mkdir()
        write_notebook(root / "panel.ipynb", ["%load_ext jupyter_envs\n%envs panel"])
        with jupyter_server("lab", root, work / "server") as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1500})
            page.goto(f"{server.base}/lab/tree/panel.ipynb?token={server.token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started")
            page.wait_for_function(
                f"() => {{ const p = ({JS_PANEL})(); return p && p.status === 'idle'; }}"
            )
            page.evaluate(JS_RUN_ALL)
            page.wait_for_selector(".jp-envs-panel-build-button", timeout=60_000)
            page.fill(".jp-envs-panel-name input", "nlp")
            page.fill(".jp-envs-panel-spec textarea", "six==1.17.0\nrequests\n")
            page.click(".jp-envs-panel-build-button")
            page.wait_for_function(
                "() => document.querySelector('.jp-envs-panel-envs').textContent"
                ".includes('jenv-nlp-v1')",
                timeout=180_000,
            )
            page.wait_for_timeout(1000)
            page.locator(".jp-envs-panel").screenshot(path=str(OUT / "panel-ready.png"))
            page.fill(".jp-envs-panel-spec textarea", f"six==1.17.0\nrequests\n{slow}\n")
            page.click(".jp-envs-panel-build-button")
            page.wait_for_timeout(4000)
            page.locator(".jp-envs-panel").screenshot(path=str(OUT / "panel-building.png"))
            page.click(".jp-envs-panel-cancel")
            page.wait_for_timeout(2000)
            page.fill(".jp-envs-panel-name input", "broken")
            page.fill(".jp-envs-panel-spec textarea", "six\npandas>=>1\n")
            page.click(".jp-envs-panel-build-button")
            page.wait_for_selector(".jp-envs-panel-error-spec .jp-envs-panel-error")
            page.locator(".jp-envs-panel").screenshot(path=str(OUT / "panel-error.png"))
            page.click(".jp-envs-panel-activate")
            page.wait_for_function(
                f"() => {{ const p = ({JS_PANEL})(); return p && p.kernelName === 'jenv-nlp-v1' "
                "&& p.status === 'idle'; }",
                timeout=120_000,
            )
            page.wait_for_timeout(1000)
            box = page.locator(".jp-NotebookPanel").bounding_box()
            assert box is not None
            clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": 170}
            page.screenshot(path=str(OUT / "panel-switched.png"), clip=clip)
            browser.close()
    print(f"wrote {OUT}/panel-*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
