"""The REST handlers under ``/jupyter-envs/api/``.

Thin, in jupyter_server's way: authenticate, authorize, call the manager (in a worker thread: it
is synchronous) or the build queue, serialize. Domain errors become HTTP errors only here, as JSON
``{"message", "reason"}``; anything unexpected is logged with its traceback and answered with a
plain 500 that leaks nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from http.client import responses
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ...engines.store import STATUSES, EnvQuery
from ...errors import (
    BackendUnavailableError,
    ConflictError,
    EnvsError,
    KernelStartError,
    NotFoundError,
    ReadOnlyStoreError,
    RegistryError,
    SpecError,
    SpecTooLargeError,
)
from ...facade.interop import juv_parts
from ._logstream import follow
from ._payloads import (
    environment_json,
    parse_create,
    parse_record,
    parse_restore,
    push_json,
    versions_json,
)
from ._switch import switch_session

if TYPE_CHECKING:
    from types import TracebackType

    from ._app import JupyterEnvsApp

__all__ = ["API_PREFIX", "AUTH_RESOURCE", "default_handlers"]

#: The resource name given to jupyter_server's Authorizer for every route.
AUTH_RESOURCE = "jupyter_envs"
API_PREFIX = "/jupyter-envs/api"

# Most specific first: the first matching class decides the status.
_STATUS: tuple[tuple[type[EnvsError], int], ...] = (
    (SpecTooLargeError, 413),
    (SpecError, 400),
    (BackendUnavailableError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    # The server's store cannot be written: the request is fine, this server cannot do it.
    (ReadOnlyStoreError, 503),
    (KernelStartError, 502),
    # The registry (upstream of this server) failed or refused the push.
    (RegistryError, 502),
)


def status_for(error: EnvsError) -> int:
    """The HTTP status of a domain error (500 for those that are the server's problem)."""
    return next((code for cls, code in _STATUS if isinstance(error, cls)), 500)


def _bad_request(message: str) -> web.HTTPError:
    # "%s" keeps a message containing "%" from being read as a format string by tornado.
    return web.HTTPError(400, "%s", message)


#: The largest number a query argument or header may carry: SQLite's integers are 64-bit, and
#: a larger one ended in an OverflowError (a 500) instead of a 400.
MAX_INT_ARGUMENT = 2**63 - 1
#: JSON nesting allowed in a body; a spec needs a handful of levels (a deeper body could exhaust
#: the parser's recursion: a RecursionError, a 500).
MAX_BODY_DEPTH = 32


def _non_negative(raw: str) -> int | None:
    # str.isdigit() also accepts digits int() refuses ("²"): only ASCII 0-9 here; and at most
    # 19 digits before int(), so a huge string is refused without converting it.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
        return None
    value = int(raw)
    return value if value <= MAX_INT_ARGUMENT else None


def _nesting_depth(text: bytes) -> int:
    """How deeply JSON arrays/objects nest in ``text`` (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _http_error_message(exc: web.HTTPError) -> str | None:
    # tornado < 6.5 has no get_message(); its log_message is the raw format string.
    getter = getattr(exc, "get_message", None)
    if getter is not None:
        return cast("str | None", getter())
    raw = exc.log_message
    return raw % exc.args if raw and exc.args else raw


class EnvsAPIHandler(APIHandler):
    """Base of the jupyter-envs handlers: JSON errors, the app's manager and build queue."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, envs: JupyterEnvsApp) -> None:
        """Called by tornado with the route's keyword arguments."""
        self.envs = envs

    async def prepare(self) -> None:  # type: ignore[override]
        """Accept the scoped token kernels hold, for these routes only; else the server's auth.

        A scoped request still goes through ``@authorized`` (as the user ``jupyter-envs-kernel``),
        so a server's own Authorizer keeps the last word.
        """
        if self.envs.scoped_token.matches(self.request.headers.get("Authorization")):
            # The rules jupyter_server applies to its own token in a header apply to this one:
            # the Host header is checked (DNS rebinding: 403); as token-authenticated it skips
            # the Origin and XSRF checks that guard cookie logins, exactly like that token.
            if not self.check_host():
                self.current_user = self._jupyter_current_user = None
                raise web.HTTPError(403)
            self._token_authenticated = True  # read by the IdentityProvider's origin/XSRF rules
            self.current_user = self._jupyter_current_user = self.envs.scoped_token.user()
            self.set_cors_headers()
            return
        await super().prepare()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as ``{"message", "reason"}``; never a traceback."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = responses.get(status_code, "Unknown")
        message = reason
        if isinstance(exc, EnvsError):
            status_code = status_for(exc)
            self.set_status(status_code)
            message, reason = str(exc), type(exc).__name__
        elif isinstance(exc, web.HTTPError):
            reason = exc.reason or reason
            message = _http_error_message(exc) or reason
        elif exc is not None:
            message = "internal server error; the server log has the details"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": reason}))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A user's mistake (bad spec, unknown name) or a known condition of this server (a
        read-only store, a kernel that would not start) is one log line, not a traceback."""
        if isinstance(value, EnvsError) and status_for(value) != 500:
            self.log.info("jupyter-envs: %s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def reply(self, data: object, status: int = 200) -> None:
        """Finish with ``data`` as JSON."""
        self.set_status(status)
        self.finish(json.dumps(data))

    def json_body(self) -> object:
        """The request body parsed as JSON (None when empty); 413 over the server's
        ``max_request_bytes``, 400 when nested deeper than :data:`MAX_BODY_DEPTH`."""
        body = self.request.body
        if not body:
            return None
        limit = self.envs.max_request_bytes
        if len(body) > limit:
            raise web.HTTPError(
                413,
                "%s",
                f"the request body is over this server's limit of {limit} bytes "
                "(its setting: max_request_bytes)",
            )
        if _nesting_depth(body) > MAX_BODY_DEPTH:
            raise _bad_request(f"the request body nests deeper than {MAX_BODY_DEPTH} levels")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _bad_request("the request body is not valid JSON") from None

    def int_argument(self, name: str, default: int | None = None) -> int | None:
        """A non-negative integer query argument."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        value = _non_negative(raw)
        if value is None:
            raise _bad_request(
                f"'{name}' must be a non-negative integer up to {MAX_INT_ARGUMENT}, "
                f"got {raw[:40]!r}"
            )
        return value


class EnvironmentsHandler(EnvsAPIHandler):
    """``GET`` lists environments; ``POST`` creates one and starts its build."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Registered environments (their latest versions), sorted by name.

        Filters ``?prefix=&backend=&status=``; pages ``?limit=N&after=NAME``. When there is a
        next page, a ``Link: <...>; rel="next"`` header gives its URL.
        """
        query = self.env_query()
        body, next_after = await asyncio.to_thread(self.envs.listings.page, query)
        if next_after is not None:
            args = {
                key: value
                for key, value in (
                    ("prefix", query.prefix),
                    ("backend", query.backend),
                    ("status", query.status),
                    ("limit", str(query.limit)),
                    ("after", next_after),
                )
                if value
            }
            url = url_path_join(self.base_url, API_PREFIX, "environments")
            self.set_header("Link", f'<{url}?{urlencode(args)}>; rel="next"')
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def env_query(self) -> EnvQuery:
        """The listing's filters and page from the query string (400 naming a bad one)."""
        status = self.get_query_argument("status", None) or None
        if status is not None and status not in STATUSES:
            known = ", ".join(STATUSES)
            raise _bad_request(f"'status' must be one of {known}, got {status[:40]!r}")
        limit = self.int_argument("limit")
        if limit == 0:
            raise _bad_request("'limit' must be at least 1")
        return EnvQuery(
            prefix=self.get_query_argument("prefix", ""),
            backend=self.get_query_argument("backend", None) or None,
            status=status,
            after=self.get_query_argument("after", ""),
            limit=limit,
        )

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Validate the spec, queue its build (or join the identical running one); 202."""
        self.envs.manager.ws.require_writable()  # 503 now, rather than a build that fails
        body = self.json_body()
        # Parsing may run builder detection and availability checks: keep them off the loop.
        request = await asyncio.to_thread(
            parse_create, body, self.envs.manager, self.envs.default_backend, self.envs.limits
        )
        job = self.envs.queue.submit(request.env, request.spec_hash, force=request.force)
        self.set_header("Location", url_path_join(self.base_url, API_PREFIX, "builds", job.id))
        self.reply(job.to_json(), status=202)


class EnvironmentHandler(EnvsAPIHandler):
    """One environment: ``GET`` its latest version, ``DELETE`` it (or one version)."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """The latest version, the list of versions and the active build id, if any."""
        data = await asyncio.to_thread(environment_json, self.envs.manager, name)
        active = self.envs.queue.active(name)
        self.reply({**data, "active_build": active.id if active else None})

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Unregister the environment (``?version=N``: one version) and delete its files; 204."""
        version = self.int_argument("version")
        active = self.envs.queue.active(name)
        if active is not None:
            # Removing waits for the per-name build lock: refuse instead of hanging the request.
            raise ConflictError(
                f"environment '{name}' is being built (build {active.id}); cancel the build or "
                "wait for it to finish, then remove it"
            )
        await asyncio.to_thread(self.envs.manager.remove, name, version)
        self.set_status(204)
        self.finish()


class VersionsHandler(EnvsAPIHandler):
    """``GET`` every version of one environment, oldest first."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """All versions of ``name``."""
        self.reply(await asyncio.to_thread(versions_json, self.envs.manager, name))


class PushHandler(EnvsAPIHandler):
    """``POST`` push a Docker version's image to a registry."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Body ``{"version"?: N, "registry"?: "host:port/path"}`` (defaults: the latest
        version; the spec's registry, else the server's ``registry`` setting). Waits for the
        push; 200 with ``{"registry", "reference", "digest", "image", "pushed"}``; 502 when
        the registry is unreachable, refuses the credentials or the push is cut off."""
        self.envs.manager.ws.require_writable()
        body = self.json_body() or {}
        if not isinstance(body, dict):
            raise SpecError("must be a JSON object", field="body")
        version, registry = body.get("version"), body.get("registry")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise SpecError("must be a version number", field="version")
        if registry is not None and not isinstance(registry, str):
            raise SpecError("must be a string like 'host:5000/team'", field="registry")
        active = self.envs.queue.active(name)
        if active is not None:
            raise ConflictError(
                f"environment '{name}' is being built (build {active.id}): push it once the "
                "build has finished"
            )
        pushed = await asyncio.to_thread(self.envs.manager.push, name, version, registry=registry)
        self.reply(push_json(pushed))


class WhereHandler(EnvsAPIHandler):
    """``GET`` where each environment's kernel can run (``?name=`` for one)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``[{"name", "version", "places": {"local", "container", "swarm", "k8s"}}]``: each
        place "yes", or "no: why"."""
        name = self.get_query_argument("name", None) or None
        found = await asyncio.to_thread(self.envs.manager.where, name)
        self.reply([{"name": p.name, "version": p.version, "places": p.places} for p in found])


class BuildsHandler(EnvsAPIHandler):
    """``GET`` the builds this server knows (``?name=`` filters by environment)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Known builds, oldest first."""
        name = self.get_query_argument("name", None)
        self.reply([job.to_json() for job in self.envs.queue.jobs(name)])


class BuildHandler(EnvsAPIHandler):
    """``GET`` one build."""

    @web.authenticated
    @authorized
    async def get(self, build_id: str) -> None:
        """The build's status, version, kernel name and error."""
        self.reply(self.envs.queue.get(build_id).to_json())


class CancelHandler(EnvsAPIHandler):
    """``POST`` cancels a queued or running build."""

    @web.authenticated
    @authorized
    async def post(self, build_id: str) -> None:
        """Ask the build to stop; 202 (a running build ends as ``cancelled`` shortly after)."""
        self.reply(self.envs.queue.cancel(build_id).to_json(), status=202)


class BuildLogHandler(EnvsAPIHandler):
    """``GET`` a build's log as Server-Sent Events, live, from line ``?offset=N`` on."""

    @web.authenticated
    @authorized
    async def get(self, build_id: str) -> None:
        """Stream the log; the stream ends with a ``done`` event when the build finishes.

        ``offset`` (or the ``Last-Event-ID`` header an EventSource sends when it reconnects) is
        the number of log lines already received.
        """
        job = self.envs.queue.get(build_id)
        last_id = _non_negative(self.request.headers.get("Last-Event-ID", ""))
        offset = self.int_argument("offset", last_id or 0) or 0
        content_type = "text/event-stream; charset=utf-8"
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        # Proxies that buffer responses (nginx) would hold the events back until the end.
        self.set_header("X-Accel-Buffering", "no")
        try:
            self.write(f": build {job.id} of {job.name}\n\n")
            await self.flush()
            async with contextlib.aclosing(follow(job, offset)) as events:
                async for event in events:
                    self.write(event.encode())
                    await self.flush()
        except StreamClosedError:
            return  # the client went away; the build carries on without it
        self.finish(set_content_type=content_type)


class RestorePreviewHandler(EnvsAPIHandler):
    """``POST`` says what restoring a notebook's carried environment would do; builds nothing."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body ``{metadata[, name, re_resolve]}``: the plan (what it installs, from where, what
        differs from this machine, and the ready version here with the same spec, if any)."""
        body = self.json_body()
        request = await asyncio.to_thread(
            parse_restore, body, self.envs.manager, self.envs.default_backend, self.envs.limits
        )
        self.reply(request.plan.to_json())


class RestoreHandler(EnvsAPIHandler):
    """``POST`` builds a notebook's carried environment, from its lock; 202 with the build."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body ``{metadata[, name, re_resolve]}``: queue the build like ``POST environments``
        (a ready version with the same spec answers at once, as a cache hit)."""
        self.envs.manager.ws.require_writable()
        body = self.json_body()
        request = await asyncio.to_thread(
            parse_restore, body, self.envs.manager, self.envs.default_backend, self.envs.limits
        )
        job = self.envs.queue.submit(request.plan.env, request.spec_hash, lock=request.lock)
        self.set_header("Location", url_path_join(self.base_url, API_PREFIX, "builds", job.id))
        self.reply(job.to_json(), status=202)


class JuvHandler(EnvsAPIHandler):
    """``POST`` makes what a notebook needs so juv opens it with the same versions."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body ``{metadata}`` (a notebook's ``metadata.jupyter_envs``): ``{"cell", "uv_lock"}``,
        the PEP 723 cell source and the ``metadata["uv.lock"]`` text (``uv lock --script``)."""
        record = parse_record(self.json_body(), self.envs.limits)
        cell, uv_lock = await asyncio.to_thread(juv_parts, record)
        self.reply({"cell": cell.rstrip("\n"), "uv_lock": uv_lock})


def _switch_fields(body: object, optional: tuple[str, ...] = ()) -> dict[str, str]:
    """``kernel_id`` and ``kernel_name`` (and the ``optional`` ones given) from a switch body."""
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object with kernel_id and kernel_name")
    fields = {}
    for field in ("kernel_id", "kernel_name", *optional):
        value = body.get(field)
        if field in optional and value is None:
            continue
        if not isinstance(value, str) or not value:
            raise _bad_request(f"'{field}' must be a non-empty string")
        fields[field] = value
    return fields


@contextlib.contextmanager
def _session_errors(kernel_id: str) -> Iterator[None]:
    """The switch helpers' LookupError (no session owns the kernel) → 404, ValueError → 400."""
    try:
        yield
    except LookupError:
        raise NotFoundError(f"no session uses kernel {kernel_id}") from None
    except ValueError as exc:
        raise _bad_request(str(exc)) from None


class PrepareSwitchHandler(EnvsAPIHandler):
    """``POST`` starts the kernel a session is about to switch to, and waits until it answers."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body ``{kernel_id, kernel_name}``; 201 once the new kernel answers.

        A kernel calls this for its successor while its ``%%env`` cell still runs, then hands
        ``new_kernel_id`` to the frontend (or to ``POST switch``), which only has to move the
        session onto it. A kernel that cannot start is answered with 502 and shut down: the
        notebook keeps the kernel it has.
        """
        fields = _switch_fields(self.json_body())
        prepared = self.envs.prepared
        if prepared is None:
            raise ConflictError(
                "this server does not start kernels ahead of a switch "
                "(JupyterEnvsApp.prepare_kernels is False)"
            )
        with _session_errors(fields["kernel_id"]):
            started = await prepared.prepare(fields["kernel_id"], fields["kernel_name"])
        self.reply(
            {
                "status": "ready",
                "kernel_id": fields["kernel_id"],
                "kernel_name": fields["kernel_name"],
                **started,
            },
            status=201,
        )


class SwitchHandler(EnvsAPIHandler):
    """``POST`` switches the session that owns a kernel to another kernelspec."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body ``{kernel_id, kernel_name[, new_kernel_id]}``; 202 with the session, which
        switches right after.

        Used by a kernel whose frontend has no labextension: the kernel asks for its own
        replacement, and the frontend picks the new kernel up when it next polls its session.
        With ``new_kernel_id`` (from ``POST switch/prepare``) the session adopts that kernel.
        """
        fields = _switch_fields(self.json_body(), optional=("new_kernel_id",))
        serverapp = self.envs.serverapp
        assert serverapp is not None  # set once the extension is loaded by a server
        with _session_errors(fields["kernel_id"]):
            session = await switch_session(
                serverapp,
                fields["kernel_id"],
                fields["kernel_name"],
                prepared=self.envs.prepared,
                new_kernel_id=fields.get("new_kernel_id"),
            )
        self.reply(
            {
                "status": "switching",
                "session_id": session["id"],
                "path": session["path"],
                "from_kernel": fields["kernel_id"],
                "kernel_name": fields["kernel_name"],
                "new_kernel_id": fields.get("new_kernel_id"),
            },
            status=202,
        )


def default_handlers(
    envs: JupyterEnvsApp,
) -> list[tuple[str, type[EnvsAPIHandler], dict[str, Any]]]:
    """The routes, relative to the server's base URL."""
    name = r"(?P<name>[^/]+)"
    build = r"(?P<build_id>[^/]+)"
    routes: list[tuple[str, type[EnvsAPIHandler]]] = [
        ("environments", EnvironmentsHandler),
        (f"environments/{name}", EnvironmentHandler),
        (f"environments/{name}/versions", VersionsHandler),
        (f"environments/{name}/push", PushHandler),
        ("where", WhereHandler),
        ("builds", BuildsHandler),
        (f"builds/{build}", BuildHandler),
        (f"builds/{build}/cancel", CancelHandler),
        (f"builds/{build}/log", BuildLogHandler),
        ("switch", SwitchHandler),
        ("switch/prepare", PrepareSwitchHandler),
        ("restore", RestoreHandler),
        ("restore/preview", RestorePreviewHandler),
        ("juv", JuvHandler),
    ]
    return [(f"{API_PREFIX}/{path}", handler, {"envs": envs}) for path, handler in routes]
