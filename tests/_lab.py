"""A real Jupyter server (JupyterLab or Notebook 7) and Chromium driving it, for end-to-end tests.

Shared by ``tests/test_browser.py`` and ``benchmarks/switch.py``. The server runs as a subprocess
with its own data and config dirs (so the kernelspecs a test builds, and the extensions it turns
off, stay inside the test); Chromium is Debian's, launched through Playwright.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("JUPYTER_ENVS_CHROMIUM", "/usr/bin/chromium")
# The flags that let Chromium start on a closed network as root (see MACHINE-NOTES).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def browser_missing() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM} (scripts/install-browser.sh installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JupyterServer:
    """One running ``jupyter lab`` / ``jupyter notebook`` subprocess."""

    def __init__(
        self,
        app: str,
        root: Path,
        home: Path,
        *,
        labextension: bool = True,
        extra_args: tuple[str, ...] = (),
        run_as: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.extra_args = extra_args
        self.run_as = run_as
        self.root = root
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = home / "data"
        self.config_dir = home / "config"
        self.log_path = home / f"{app}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        built = REPO / "jupyter_envs" / "labextension"
        if built.is_dir():
            # Prefer the extension built from this checkout over a copy installed earlier.
            target = self.data_dir / "labextensions" / "jupyter-envs"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(built)
        if not labextension:
            labconfig = self.config_dir / "labconfig"
            labconfig.mkdir(parents=True, exist_ok=True)
            (labconfig / "page_config.json").write_text(
                json.dumps({"disabledExtensions": {"jupyter-envs": True}})
            )
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The server's environment: private data and config dirs, nothing from the caller's."""
        env = {**os.environ, "JUPYTER_DATA_DIR": str(self.data_dir)}
        env["JUPYTER_CONFIG_DIR"] = str(self.config_dir)
        for var in ("JUPYTER_ENVS_STORE", "JUPYTER_ENVS_KERNELS_DIR"):
            env.pop(var, None)
        return env

    def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until its API answers."""
        argv = [
            *self.run_as,  # a command that runs the server with other rights (setpriv...)
            sys.executable,
            "-m",
            {"lab": "jupyterlab", "notebook": "notebook", "server": "jupyter_server"}[self.app],
            "--no-browser",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.allow_root=True",
        ]
        if self.app != "server":  # a frontend: JupyterLab or Notebook 7
            app_class = "LabApp" if self.app == "lab" else "JupyterNotebookApp"
            argv += [
                f"--{app_class}.expose_app_in_browser=True",
                # Each test's notebooks are throwaway: no "save?" prompts, no workspaces.
                "--LabApp.workspaces_dir=" + str(self.data_dir / "workspaces"),
            ]
        argv += self.extra_args
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited early:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"{self.app} did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """Call the server's REST API with its token; return decoded JSON (None when empty)."""
        req = urllib.request.Request(  # noqa: S310 - our own local server
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {token or self.token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        """Shut every kernel down through the API, then stop the server."""
        if self.proc is None:
            return
        try:
            for kernel in self.api("GET", "/api/kernels") or []:
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
        except (OSError, urllib.error.URLError):
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def write_notebook(
    path: Path,
    sources: list[str],
    *,
    kernel: str = "python3",
    metadata: dict[str, Any] | None = None,
) -> None:
    """A notebook with one code cell per source, on the kernelspec ``kernel`` (the host's
    python3 by default), with more notebook ``metadata`` when given."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": kernel,
        "display_name": "Python 3" if kernel == "python3" else kernel,
        "language": "python",
    }
    nb.metadata.update(metadata or {})
    nb.cells = [new_code_cell(src) for src in sources]
    nbformat.write(nb, str(path))


@contextmanager
def jupyter_server(
    app: str,
    root: Path,
    home: Path,
    *,
    labextension: bool = True,
    extra_args: tuple[str, ...] = (),
    run_as: tuple[str, ...] = (),
) -> Iterator[JupyterServer]:
    """A started server (``extra_args``: more command-line options; ``run_as``: a command
    prefix, e.g. one that drops rights); stopped, kernels included, on exit."""
    server = JupyterServer(
        app, root, home, labextension=labextension, extra_args=extra_args, run_as=run_as
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home / "data" / "runtime", ignore_errors=True)


# JavaScript run in the page. The current notebook panel works the same in JupyterLab and
# Notebook 7 (both expose window.jupyterapp with expose_app_in_browser).
JS_PANEL = """
() => {
  const app = window.jupyterapp;
  const w = app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content || !w.content.model) return null;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return {
    kernelName: k ? k.name : null,
    kernelId: k ? k.id : null,
    status: k ? k.status : null,
    metadata: w.content.model.getMetadata('jupyter_envs') || null,
  };
}
"""

JS_RUN_ALL = """
async () => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:run-all-cells');
}
"""

JS_EXECUTE = """
async (code) => {
  const w = window.jupyterapp.shell.currentWidget;
  const future = w.sessionContext.session.kernel.requestExecute({code});
  const out = [];
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') out.push(msg.content.text);
    if (msg.header.msg_type === 'error') out.push('ERROR ' + msg.content.evalue);
  };
  await future.done;
  return out.join('');
}
"""

JS_OUTPUTS = """
() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.model.cells;
  const texts = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (const o of c.outputs.toJSON()) {
      texts.push(o.text || (o.data && o.data['text/plain']) || JSON.stringify(o));
    }
  }
  return texts.join('\\n');
}
"""
