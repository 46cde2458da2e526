"""How a kernel reaches the jupyter-envs REST API of the server that launched it.

The server extension puts two variables in the environment every kernel it starts inherits:
``JUPYTER_ENVS_API_URL`` (the API root, ending in ``/``) and ``JUPYTER_ENVS_API_TOKEN`` (a token
that the extension accepts for its own routes only; never the server's token). Without them the
kernel is not under such a server and front-ends fall back to the in-process manager.

A container kernel cannot reach the server's loopback address: the server also serves the API on a
Unix socket (``JUPYTER_ENVS_API_SOCKET``), the container launcher mounts it into the container and
hands the kernel an ``http+unix://<percent-encoded socket path>/<api path>`` URL, which
:class:`ServerLink` speaks as well.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any

from ..engines.kernels.environ import (
    API_SOCKET_VAR,
    API_TOKEN_VAR,
    API_URL_VAR,
    CONTAINER_VAR,
    UNIX_SCHEME,
    container_kernel_problem,
    unix_socket_url,
)
from ..errors import ApiError

# The variable names and helpers of the kernel environment are re-exported: callers of the link
# use them with it.
__all__ = [
    "API_SOCKET_VAR",
    "API_TOKEN_VAR",
    "API_URL_VAR",
    "CONTAINER_VAR",
    "ServerLink",
    "container_kernel_problem",
    "current_kernel_id",
    "unix_socket_url",
]


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket; ``host`` is the percent-encoded socket path."""

    def __init__(self, host: str, timeout: float | None = None, **_: Any) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = urllib.parse.unquote(host)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


class _UnixHandler(urllib.request.AbstractHTTPHandler):
    def unix_request(self, req: urllib.request.Request) -> urllib.request.Request:
        # The URL's "host" is the encoded socket path: not a Host header a server accepts.
        req.add_unredirected_header("Host", "localhost")
        return self.do_request_(req)

    def unix_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_UnixConnection, req)


# urllib finds a scheme's handler methods by name: "<scheme>_open", "<scheme>_request" and
# "<scheme>_response" (the last turns 4xx/5xx into HTTPError, as for http).
setattr(_UnixHandler, f"{UNIX_SCHEME}_open", _UnixHandler.unix_open)
setattr(_UnixHandler, f"{UNIX_SCHEME}_request", _UnixHandler.unix_request)
setattr(_UnixHandler, f"{UNIX_SCHEME}_response", urllib.request.HTTPErrorProcessor.http_response)

# The API is always this machine's: never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _UnixHandler)


@dataclass(frozen=True)
class ServerLink:
    """The API root and the scoped token, as handed to the kernel by the server."""

    url: str
    token: str

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ServerLink | None:
        """The link from ``JUPYTER_ENVS_API_URL``/``_TOKEN``, or None when not under a server."""
        env = os.environ if environ is None else environ
        url = env.get(API_URL_VAR, "")
        token = env.get(API_TOKEN_VAR, "")
        if not url or not token:
            return None
        return cls(url if url.endswith("/") else url + "/", token)

    @staticmethod
    def open(req: urllib.request.Request, timeout: float) -> IO[bytes]:
        """Open ``req`` (``http``, ``https`` or ``http+unix``), bypassing proxies."""
        return _OPENER.open(req, timeout=timeout)  # type: ignore[no-any-return]

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> Any:
        """Call the API; return the decoded JSON body (None when empty).

        A JSON error body ``{message, reason}`` becomes an :class:`ApiError` with that message and
        the HTTP status; an unreachable server, an :class:`ApiError` with status 0.
        """
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - the URL comes from our own server
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with self.open(req, timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            message, reason = _error_message(exc)
            raise ApiError(message, exc.code, reason) from None
        except OSError as exc:
            raise ApiError(f"cannot reach the jupyter-envs API at {self.url}: {exc}") from None
        return json.loads(raw) if raw else None


def _error_message(exc: urllib.error.HTTPError) -> tuple[str, str]:
    try:
        payload = json.loads(exc.read() or b"{}")
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    message = payload.get("message") or f"jupyter-envs API answered {exc.code} {exc.reason}"
    return str(message), str(payload.get("reason") or "")


_KERNEL_FILE = re.compile(r"kernel-([0-9a-f-]{8,})\.json$")


def current_kernel_id() -> str | None:
    """The id of the kernel this code runs in (from its connection file name), if any."""
    try:
        from ipykernel.connect import get_connection_file
    except ImportError:
        return None
    try:
        path = get_connection_file()
    except (RuntimeError, AttributeError, TypeError):
        return None  # not inside a running kernel
    match = _KERNEL_FILE.search(os.path.basename(path))
    return match.group(1) if match else None
