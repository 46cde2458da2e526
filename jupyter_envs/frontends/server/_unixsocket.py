"""The jupyter-envs API on a Unix socket, for container kernels.

A kernel in a container cannot reach the server's loopback address. The server therefore also
serves this extension's routes (and nothing else) on a Unix socket that only its user can open;
the container launcher bind-mounts the socket into the kernel's container. Requests on it are
authenticated exactly as on the TCP port: in practice with the scoped kernel token.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_core.paths import jupyter_runtime_dir
from jupyter_server.utils import url_path_join
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket
from tornado.web import Application

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["UnixSocketAPI"]

# sockaddr_un.sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included.
_MAX_PATH = 100


def _socket_path() -> Path:
    # The pid tells whose it is; the suffix keeps two servers of one process apart (tests).
    name = f"jupyter-envs-{os.getpid()}-{secrets.token_hex(3)}.sock"
    path = Path(jupyter_runtime_dir()) / name
    if len(os.fsencode(str(path))) <= _MAX_PATH:
        return path
    # A deep runtime dir (a test's tmp dir): a private directory under the temp dir instead.
    short = Path(tempfile.gettempdir()) / f"jupyter-envs-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / name


def _remove_stale(directory: Path) -> None:
    """Sockets of servers that died without cleaning up (killed hard): their pid is gone."""
    from ...engines.kernels.reaper import process_alive

    for old in directory.glob("jupyter-envs-*-*.sock"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                old.unlink()


class UnixSocketAPI:
    """An HTTP server for ``handlers`` on a Unix socket, with the main server's settings."""

    def __init__(self, serverapp: ServerApp, handlers: list[tuple[str, Any, dict[str, Any]]]):
        base_url = serverapp.web_app.settings["base_url"]
        routes = [(url_path_join(base_url, path), cls, kw) for path, cls, kw in handlers]
        # The main server's settings: same authentication, authorizer, logging and base URL.
        self.app = Application(routes, **serverapp.web_app.settings)
        self.path = _socket_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.path.parent)
        # Created 0600: only the server's user (and its kernels' containers, which run as that
        # user) can connect.
        sock = bind_unix_socket(str(self.path), mode=0o600)
        self.server = HTTPServer(self.app, xheaders=False)
        self.server.add_socket(sock)

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        self.server.stop()
        with contextlib.suppress(OSError):
            self.path.unlink()
