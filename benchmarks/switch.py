"""Switch benchmark: from the end of a ``%%env`` cell to the first execution on the new kernel.

Drives Debian's Chromium against a real JupyterLab (started here) and measures, in one run, the
comm path (labextension) and the fallback path (labextension disabled: the server switches the
session and the tab follows when it polls). The clock runs in the page: it starts when the old
kernel goes idle after the cell and stops when ``pass`` has executed on the new kernel.

Usage: ``python benchmarks/switch.py [--repeat N]``. Target: comm path <= 1.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_missing,
    jupyter_server,
    write_notebook,
)

# Runs every cell, then times from "the kernel that ran them is idle" to "pass ran on the new
# kernel". Returns seconds.
JS_TIMED_SWITCH = """
async (target) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  const ctx = panel.sessionContext;
  // run-all-cells resolves when the cells have finished: the end of the %%env cell.
  await app.commands.execute('notebook:run-all-cells');
  const cellDone = performance.now();
  while (!(ctx.session && ctx.session.kernel && ctx.session.kernel.name === target
           && ctx.session.kernel.status === 'idle')) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await ctx.session.kernel.requestExecute({code: 'pass'}).done;
  return (performance.now() - cellDone) / 1000;
}
"""


def one_switch(browser: Any, work: Path, index: int, labextension: bool) -> float:
    """Build-and-switch once in a fresh server; return the switch time in seconds."""
    root = work / f"nb-{index}"
    root.mkdir()
    name = f"bench{index}"
    write_notebook(root / "s.ipynb", ["%load_ext jupyter_envs", f"%%env {name}\nsix"])
    with jupyter_server("lab", root, work / f"server-{index}", labextension=labextension) as srv:
        page = browser.new_page()
        try:
            page.goto(f"{srv.base}/lab/tree/s.ipynb?token={srv.token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started")
            page.evaluate("() => window.jupyterapp.started")
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel; return k && k.status === 'idle'; }",
                timeout=60_000,
            )
            return float(page.evaluate(JS_TIMED_SWITCH, f"jenv-{name}-v1"))
        finally:
            page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="jenvs-switch-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            work = Path(tmp)
            comm = [one_switch(browser, work, i, True) for i in range(args.repeat)]
            fallback = [
                one_switch(browser, work, 100 + i, False) for i in range(max(1, args.repeat - 1))
            ]
        finally:
            browser.close()
    t_comm = statistics.median(comm)
    t_fallback = statistics.median(fallback)
    print(f"switch, comm path (labextension) : {t_comm:5.2f} s  runs {_fmt(comm)}")
    print(f"switch, fallback (server PATCH)  : {t_fallback:5.2f} s  runs {_fmt(fallback)}")
    print(
        f"comm path target <= 1.5 s: {'OK' if t_comm <= 1.5 else 'MISSED'}; "
        f"fallback / comm = {t_fallback / t_comm:.1f}x"
    )
    return 0


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
