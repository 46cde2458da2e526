"""Switch benchmark: from the end of a ``%%env`` cell to the first execution on the new kernel.

Drives Debian's Chromium against a real JupyterLab (started here) and measures, in one run:

- the comm path (labextension) with the new kernel prepared during the cell (the default:
  ``POST switch/prepare``), and the same with ``JupyterEnvsApp.prepare_kernels=False`` (the
  frontend starts the kernel after the cell) as the baseline;
- the fallback path (labextension disabled: the server switches the session and the tab follows
  when it polls).

Two clocks run in the page: "after the cell" starts when ``Run all`` resolves (the ``%%env`` cell
has finished) and "whole" when it is clicked; both stop when ``pass`` has executed on the new
kernel. Preparing moves the kernel's start into the cell, so "whole" shows it is not just moved.

Usage: ``python benchmarks/switch.py [--repeat N]``. Target: comm path <= 1.5 s after the cell.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._timing import spread
from tests._lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_missing,
    jupyter_server,
    write_notebook,
)

# Runs every cell, then times from "the cells have finished" (and from "run all" was clicked) to
# "pass ran on the new kernel". Returns seconds: [after the cell, whole].
JS_TIMED_SWITCH = """
async (target) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  const ctx = panel.sessionContext;
  const started = performance.now();
  // run-all-cells resolves when the cells have finished: the end of the %%env cell.
  await app.commands.execute('notebook:run-all-cells');
  const cellDone = performance.now();
  while (!(ctx.session && ctx.session.kernel && ctx.session.kernel.name === target
           && ctx.session.kernel.status === 'idle')) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await ctx.session.kernel.requestExecute({code: 'pass'}).done;
  const end = performance.now();
  return [(end - cellDone) / 1000, (end - started) / 1000];
}
"""


def one_switch(
    browser: Any, work: Path, index: int, *, labextension: bool = True, prepare: bool = True
) -> tuple[float, float]:
    """Build-and-switch once in a fresh server; return (after the cell, whole) in seconds."""
    root = work / f"nb-{index}"
    root.mkdir()
    name = f"bench{index}"
    write_notebook(root / "s.ipynb", ["%load_ext jupyter_envs", f"%%env {name}\nsix"])
    extra = () if prepare else ("--JupyterEnvsApp.prepare_kernels=False",)
    with jupyter_server(
        "lab", root, work / f"server-{index}", labextension=labextension, extra_args=extra
    ) as srv:
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
            after, whole = page.evaluate(JS_TIMED_SWITCH, f"jenv-{name}-v1")
            return float(after), float(whole)
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
            runs = max(1, args.repeat)
            # Interleaved, so a machine that gets busier part-way hits both modes alike.
            prepared: list[tuple[float, float]] = []
            unprepared: list[tuple[float, float]] = []
            for i in range(runs):
                prepared.append(one_switch(browser, work, i))
                unprepared.append(one_switch(browser, work, 50 + i, prepare=False))
            fallback = [
                one_switch(browser, work, 100 + i, labextension=False)
                for i in range(max(1, runs - 1))
            ]
        finally:
            browser.close()
    rows = (
        ("comm path, kernel prepared in the cell", prepared),
        ("comm path, kernel started after the cell", unprepared),
        ("fallback (server switches the session)", fallback),
    )
    for label, values in rows:
        print(f"{label}:")
        print(f"  after the cell        {spread([v[0] for v in values])}")
        print(f"  whole (cell + switch) {spread([v[1] for v in values])}")
    t_comm = statistics.median(v[0] for v in prepared)
    t_base = statistics.median(v[0] for v in unprepared)
    whole_ratio = statistics.median(v[1] for v in prepared) / statistics.median(
        v[1] for v in unprepared
    )
    print(
        f"comm path target <= 1.5 s after the cell: {'OK' if t_comm <= 1.5 else 'MISSED'} "
        f"({t_comm:.2f} s; {t_base / t_comm:.1f}x quicker than starting the kernel after the "
        f"cell; whole cell + switch {whole_ratio:.2f}x of that baseline)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
