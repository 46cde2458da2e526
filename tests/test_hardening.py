"""Hardening of the REST API (issue #16): hostile and oversized requests, strict types, spec
limits, listings at scale, a read-only store, and a fuzz test of every route.

Runs against the same real in-process server as ``test_rest.py``, whose fixtures it borrows.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures: see test_rest.py)

from jupyter_envs.engines.store import Workspace
from tests._catalogue import fill
from tests._rest import *  # noqa: F403  (the server fixtures: api, link_env...)
from tests._rest import Api, Fetch, exported, fake, on_loop

ROOT = Path(__file__).resolve().parent.parent


# -- hostile requests (issue #16, items 1-3) -----------------------------------------------------
@on_loop
async def test_the_scoped_token_passes_the_same_request_checks_as_the_server_token(
    link_env: None, api: Api, jp_fetch: Fetch, jp_auth_header: dict[str, str]
) -> None:
    _, token = await exported(api)
    scoped = {"Authorization": f"token {token}"}
    for extra in ({"Host": "attacker.example"}, {"Origin": "http://attacker.example"}):
        ours, _ = await api.call("GET", "environments", headers={**scoped, **extra})
        servers, _ = await api.call("GET", "environments", headers={**jp_auth_header, **extra})
        assert ours == servers, extra
    # DNS rebinding: a foreign Host is refused (it used to get 200 with the scoped token).
    code, _ = await api.call("GET", "environments", headers={**scoped, "Host": "attacker.example"})
    assert code == 403
    code, _ = await api.call("GET", "environments", headers=scoped)
    assert code == 200  # and a plain request still works


@on_loop
async def test_oversized_and_deeply_nested_bodies_are_refused_before_parsing(api: Api) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    code, error = await api.call("POST", "environments", body=deep)
    assert code == 400
    assert "deeper than 32 levels" in error["message"]
    big = json.dumps({"name": "big", "text": "x\n" * 1_500_000})
    code, error = await api.call("POST", "environments", body=big)
    assert code == 413
    assert "(its setting: max_request_bytes)" in error["message"]
    assert await api.call("GET", "environments") == (200, [])  # nothing registered


@on_loop
async def test_numbers_beyond_64_bits_are_a_400_not_a_500(api: Api) -> None:
    await api.finished((await api.create(fake("nums")))["id"])
    huge = "99999999999999999999999"
    code, error = await api.call("DELETE", "environments", "nums", params={"version": huge})
    assert code == 400
    assert "'version' must be a non-negative integer" in error["message"]
    code, _ = await api.call("DELETE", "environments", "nums", params={"version": str(2**63 - 1)})
    assert code == 404  # in range, just not there
    code, _ = await api.call("GET", "environments", "nums")
    assert code == 200  # nothing was removed


@on_loop
async def test_a_spec_of_the_wrong_type_is_a_400_naming_the_field(api: Api) -> None:
    code, error = await api.call(
        "POST", "environments", body={"name": "typed", "spec": {"pip": {"a": 1}, "backend": "fake"}}
    )
    assert code == 400
    assert error["reason"] == "SpecError"
    assert "'pip'" in error["message"]
    assert "must be a list of strings, not dict" in error["message"]
    assert await api.call("GET", "environments") == (200, [])  # nothing registered or built


# -- listings at scale (item 8) -------------------------------------------------------------------
def _next_link(headers: Any) -> str | None:
    link = headers.get("Link")
    if link is None:
        return None
    target, rel = link.split(";")
    assert rel.strip() == 'rel="next"'
    return str(target.strip()[1:-1])


@on_loop
async def test_listing_pages_and_filters(jp_fetch: Fetch, api: Api, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "store", tmp_path / "kernels")
    names = fill(ws, 120)
    code, listed = await api.call("GET", "environments")
    assert code == 200
    assert [e["name"] for e in listed] == names
    assert listed[0]["versions"] == [1, 2]
    assert listed[0]["version"] == 2  # the latest
    assert set(listed[1]) == set(listed[0])  # the form of GET environments/NAME

    # Pages of 50, following the Link header to the end: every name once, in order.
    seen: list[str] = []
    params: dict[str, str] | None = {"limit": "50", "prefix": "env-"}
    while params is not None:
        response = await jp_fetch("jupyter-envs", "api", "environments", params=params)
        page = json.loads(response.body)
        assert len(page) <= 50
        seen += [e["name"] for e in page]
        link = _next_link(response.headers)
        params = None
        if link is not None:
            assert link.startswith("/jupyter-envs/api/environments?") or "/jupyter-envs/" in link
            query = link.split("?", 1)[1]
            params = dict(part.split("=", 1) for part in query.split("&"))
            assert (params["limit"], params["prefix"]) == ("50", "env-")
    assert seen == names

    async def names_for(**params: str) -> list[str]:
        code, page = await api.call("GET", "environments", params=params)
        assert code == 200, page
        return [e["name"] for e in page]

    assert await names_for(prefix="env-0011") == [f"env-0011{i}" for i in range(10)]
    assert await names_for(prefix="nothing") == []
    docker = await names_for(backend="docker")
    assert docker == [n for i, n in enumerate(names) if i % 4 == 3]
    registered = await names_for(status="registered")
    assert registered == [n for i, n in enumerate(names) if i % 5 == 0]
    assert await names_for(backend="docker", status="registered", limit="2") == [
        "env-00015",
        "env-00035",
    ]
    assert await names_for(after="env-00117") == ["env-00118", "env-00119"]
    assert len(await names_for(limit=str(2**63 - 1))) == 120  # found by the fuzz test: a 500

    # A change by another process (this Workspace) shows at the next request: no stale cache.
    ws.delete("env-00118")
    assert await names_for(after="env-00117") == ["env-00119"]
    with ws.transaction() as db:
        ws.upsert_version(
            db,
            name="env-00118",
            description="",
            spec_hash="f" * 64,
            spec={},
            backend="uv",
            status="registered",
        )
    assert await names_for(after="env-00117") == ["env-00118", "env-00119"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "broken"}, "'status' must be one of registered, ready"),
        ({"limit": "0"}, "'limit' must be at least 1"),
        ({"limit": "-5"}, "'limit' must be a non-negative integer"),
        ({"limit": "9" * 30}, "'limit' must be a non-negative integer"),
    ],
)
@on_loop
async def test_bad_listing_arguments_are_400(
    api: Api, params: dict[str, str], expected: str
) -> None:
    code, error = await api.call("GET", "environments", params=params)
    assert code == 400
    assert expected in error["message"]


# -- spec size limits (item 5) --------------------------------------------------------------------
def _many(count: int) -> list[str]:
    return [f"package-{i}" for i in range(count)]


OVERSIZED: list[tuple[dict[str, Any], str]] = [
    # 30,000 lines of text (the reported attack had 800,000): over max_spec_lines.
    ({"text": "six\n" * 30_000}, "max_spec_lines"),
    # 1.1 MB in one comment line: over max_spec_bytes (the body itself is under 2 MiB).
    ({"text": "# " + "x" * 1_100_000 + "\nsix\n"}, "max_spec_bytes"),
    ({"text": "\n".join(_many(2_001))}, "max_requirements"),
    ({"spec": {"pip": _many(2_001), "backend": "fake"}}, "max_requirements"),
    (
        {"spec": {"pip": ["six"], "description": "d" * 1_100_000, "backend": "fake"}},
        "max_spec_bytes",
    ),
    (
        {
            "spec": {
                "python": {"conda_dependencies": {"dependencies": _many(1_500)}},
                "pip": _many(600),
                "backend": "fake",
            }
        },
        "max_requirements",
    ),
]


@pytest.mark.parametrize(("body", "limit"), OVERSIZED)
@on_loop
async def test_specs_over_a_limit_are_413_and_nothing_is_built(
    api: Api, body: dict[str, Any], limit: str
) -> None:
    code, error = await api.call("POST", "environments", body={"name": "huge", **body})
    assert code == 413, error
    assert error["reason"] == "SpecTooLargeError"
    assert f"(its setting: {limit})" in error["message"]
    assert await api.call("GET", "builds") == (200, [])
    assert await api.call("GET", "environments") == (200, [])


@on_loop
async def test_a_spec_at_the_limits_is_accepted(api: Api) -> None:
    text = "\n".join(["# a comment"] * 17_000 + _many(2_000))
    build = await api.create({"name": "big", "text": text})
    assert build["status"] in ("queued", "running")


def test_limits_are_settings_and_must_be_positive() -> None:
    from traitlets import TraitError

    from jupyter_envs.frontends.server import JupyterEnvsApp

    app = JupyterEnvsApp(max_spec_lines=5, max_requirements=3, max_spec_bytes=100)
    assert (app.max_spec_lines, app.max_requirements, app.max_spec_bytes) == (5, 3, 100)
    for trait in ("max_request_bytes", "max_spec_bytes", "max_spec_lines", "max_requirements"):
        with pytest.raises(TraitError, match=f"{trait} must be at least 1"):
            JupyterEnvsApp(**{trait: 0})


# -- a read-only store (item 7) -------------------------------------------------------------------
def _unprivileged() -> tuple[str, ...]:
    """A command prefix under which permission bits bind this process: none for a normal user;
    for root (CI), setpriv dropping the capabilities that override them (root stays root, so it
    can still read everything it owns)."""
    if os.geteuid() != 0:
        return ()
    return ("setpriv", "--bounding-set", "-dac_override,-fowner", "--")


def _call(server: Any, method: str, path: str, body: object = None) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - our own local server
        server.base + "/jupyter-envs/api/" + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {server.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _read_only(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        item.chmod(item.stat().st_mode & ~0o222)


def test_a_read_only_store_lists_and_shows_and_refuses_writes(tmp_path: Path) -> None:
    from tests._lab import jupyter_server

    home, root = tmp_path / "home", tmp_path / "root"
    root.mkdir()
    store = home / "data" / "jupyter_envs"
    names = fill(Workspace(store, home / "data" / "kernels"), 3)
    before = sorted(p.name for p in store.iterdir())
    _read_only(store)
    try:
        with jupyter_server("server", root, home, run_as=_unprivileged()) as server:
            code, listed = _call(server, "GET", "environments")
            assert code == 200, listed
            assert [e["name"] for e in listed] == names
            code, shown = _call(server, "GET", f"environments/{names[1]}")
            assert (code, shown["name"]) == (200, names[1])
            code, versions = _call(server, "GET", f"environments/{names[0]}/versions")
            assert (code, [v["version"] for v in versions]) == (200, [1, 2])

            code, error = _call(server, "POST", "environments", fake("new"))
            assert code == 503
            assert error["reason"] == "ReadOnlyStoreError"
            assert f"the store {store} is read-only (no write permission on" in error["message"]
            code, error = _call(server, "DELETE", f"environments/{names[1]}")
            assert (code, error["reason"]) == (503, "ReadOnlyStoreError")
            assert _call(server, "GET", "builds") == (200, [])
            assert [e["name"] for e in _call(server, "GET", "environments")[1]] == names
            pid = server.proc.pid if server.proc else None
            sockets = list(Path(tempfile.gettempdir()).glob(f"jupyter-envs-*/jupyter-envs-{pid}-*"))
            sockets += list((home / "data" / "runtime").glob(f"jupyter-envs-{pid}-*.sock"))
            assert sockets  # the API is served to container kernels too (reads work)
        log = server.log_path.read_text()
        warnings = [ln for ln in log.splitlines() if "JupyterEnvsApp]" in ln and "read-only" in ln]
        assert len(warnings) == 1, warnings  # one clear message at start
        assert str(store) in warnings[0]
        assert "no write permission" in warnings[0]
        assert "Traceback" not in log
        assert not [s for s in sockets if s.exists()]  # nothing left behind
    finally:
        for item in [store, *store.rglob("*")]:
            item.chmod(item.stat().st_mode | 0o200)
    assert sorted(p.name for p in store.iterdir()) == before  # nothing was written


def test_a_store_that_cannot_be_created_reads_as_empty(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    _read_only(parent)
    code = (
        "from jupyter_envs.engines.store import Workspace\n"
        "from jupyter_envs.errors import ReadOnlyStoreError\n"
        f"ws = Workspace({str(parent / 'store')!r}, {str(tmp_path / 'k')!r})\n"
        "print(ws.read_only)\n"
        "print(ws.names(), ws.page().items, ws.generation() is not None)\n"
        "try:\n"
        "    ws.require_writable()\n"
        "except ReadOnlyStoreError as exc:\n"
        "    print(exc)\n"
    )
    try:
        done = subprocess.run(
            [*_unprivileged(), sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    finally:
        parent.chmod(0o755)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"no write permission on {parent} for user ")
    assert lines[1] == "[] [] True"
    assert lines[2].startswith(f"the store {parent / 'store'} is read-only (no write permission")
    assert not (parent / "store").exists()


# -- a fuzz test of every route --------------------------------------------------------------------
# Values chosen to break parsers and validators: wrong types, boundaries of 64-bit integers and
# floats, empty and huge strings, control characters, path tricks, format strings, deep-ish
# nesting. Random picks from these (and random strings) fill every field of every route.
_BOUNDARY: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**400,
    0.5,
    -0.0,
    1e308,
    "",
    " ",
    "0",
    "-1",
    "99999999999999999999999",
    "1e5",
    "0x10",
    "²",
    "NaN",
    "a" * 5000,
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "nul\x00byte",
    "\r\n",
    "tab\t",
    "%s%n%d",
    "{0}",
    "{{}}",
    "<script>alert(1)</script>",
    "💥",
    "é",
    "ﬁ",
    "six==1.17.0",
    "fail-build",
    "-r /etc/passwd",
    "--index-url http://attacker.example/",
    "-e .",
    "FROM scratch",
    "dependencies:\n  - python=3.11",
    "[]",
    "{}",
    [],
    {},
    [None],
    [1, "a"],
    ["six"],
    {"a": 1},
    {"": None},
    [[[[["deep"]]]]],
    {"pip": {"pip": {"pip": None}}},
]
_SPEC_KEYS = [
    "name",
    "description",
    "python",
    "pip",
    "pip_options",
    "docker",
    "image",
    "env_vars",
    "secrets",
    "resources",
    "depends_on",
    "interruptible",
    "pod_template",
    "backend",
]
_NESTED = {
    "python": ["version", "conda_dependencies", "user_managed_dependencies", "interpreter_path"],
    "docker": ["base_image", "apt_packages", "base_dockerfile", "enabled"],
    "resources": ["cpu", "mem", "gpu", "ephemeral_storage"],
}


def _value(rng: Any) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(_BOUNDARY)
    if roll < 0.8:
        return "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(0, 40)))
    if roll < 0.9:
        return [_value(rng) for _ in range(rng.randrange(0, 4))]
    return {str(_value(rng))[:20]: _value(rng) for _ in range(rng.randrange(0, 3))}


def _spec(rng: Any) -> Any:
    if rng.random() < 0.1:
        return _value(rng)
    spec: dict[str, Any] = {}
    for key in rng.sample(_SPEC_KEYS, rng.randrange(0, 5)):
        if key in _NESTED and rng.random() < 0.7:
            keys = _NESTED[key]
            spec[key] = {k: _value(rng) for k in rng.sample(keys, rng.randrange(0, len(keys)))}
        else:
            spec[key] = _value(rng)
    # Never a real builder: a fuzz case valid enough to build must not start uv or Docker.
    spec["backend"] = rng.choice(["fake", "fake", None, "nope", 7, ""])
    if spec["backend"] is None:
        del spec["backend"]
    return spec


def _create_body(rng: Any) -> Any:
    roll = rng.random()
    if roll < 0.1:
        return _value(rng)
    body: dict[str, Any] = {}
    for key in ("name", "text", "format", "spec", "force"):
        if rng.random() < 0.6:
            body[key] = _spec(rng) if key == "spec" else _value(rng)
    if rng.random() < 0.5:
        body["name"] = rng.choice(["fuzz", "fuzz-2", "Fuzz", "f" * 64, "a.b", ".."])
    if rng.random() < 0.1:
        body[str(_value(rng))[:10]] = _value(rng)
    return body


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _segment(rng: Any) -> str:
    return urllib.parse.quote(_text(_value(rng))[:200] or "x", safe="")


def _requests(rng: Any, build_ids: list[str]) -> Any:
    """Endless (method, path segments, params, body, headers) for every route."""
    while True:
        name = rng.choice(["fuzz", "nosuch", _segment(rng)])
        build = rng.choice([*build_ids, "nosuch", _segment(rng)]) if build_ids else "x"
        params = {
            key: _text(_value(rng))[:300]
            for key in rng.sample(
                ["prefix", "backend", "status", "limit", "after", "version", "offset", "name"],
                rng.randrange(0, 4),
            )
        }
        raw_body = rng.random() < 0.15
        body: Any = (
            rng.choice(["{", "NaN", "[1,]", "\x00", "{'a': 1}", "1e999", '"\\ud800"', "[" * 40])
            if raw_body
            else None
        )
        # A header value is visible latin-1 (anything else never reaches a handler: the client
        # refuses to send it, or tornado answers 400 itself).
        header = _text(_value(rng))[:100].encode("latin-1", "replace").decode("latin-1")
        header = "".join(c for c in header if " " <= c < "\x7f" or c >= "\xa0")
        headers = {"Last-Event-ID": header} if rng.random() < 0.2 else {}
        route = rng.randrange(11)
        if route == 0:
            yield "GET", ("environments",), params, None, headers
        elif route == 1:
            yield "POST", ("environments",), params, body or _create_body(rng), headers
        elif route == 2:
            yield "GET", ("environments", name), params, None, headers
        elif route == 3:
            yield "DELETE", ("environments", name), params, None, headers
        elif route == 4:
            yield "GET", ("environments", name, "versions"), params, None, headers
        elif route == 5:
            yield "GET", ("builds",), params, None, headers
        elif route == 6:
            yield "GET", ("builds", build), params, None, headers
        elif route == 7:
            yield "POST", ("builds", build, "cancel"), params, body, headers
        elif route == 8:
            yield "GET", ("builds", build, "log"), params, None, headers
        else:
            switch = {
                key: _value(rng)
                for key in ("kernel_id", "kernel_name", "new_kernel_id")
                if rng.random() < 0.7
            }
            path = ("switch",) if route == 9 else ("switch", "prepare")
            yield "POST", path, params, body or switch, headers


# Fixed seeds keep runs reproducible; JUPYTER_ENVS_FUZZ_SEED adds one (to explore).
_SEEDS = [20261203, 7, 4242, *(int(s) for s in [os.environ.get("JUPYTER_ENVS_FUZZ_SEED")] if s)]


@pytest.mark.parametrize("seed", _SEEDS)
@on_loop
async def test_fuzzing_every_route_never_gives_a_500_or_a_traceback(
    jp_fetch: Fetch, api: Api, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    import logging
    import random

    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    build_ids = [(await api.create(fake("fuzz")))["id"]]
    await api.finished(build_ids[0])
    caplog.set_level(logging.ERROR)
    deadline = time.monotonic() + 60  # bounded in time as well as in count
    count, statuses = 0, collections.Counter[int]()
    for method, path, params, body, headers in _requests(rng, build_ids):
        if count == 400 or time.monotonic() > deadline:
            break
        count += 1
        kwargs: dict[str, Any] = {"method": method, "raise_error": False, "headers": headers}
        if method == "POST":
            kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
        response = await jp_fetch("jupyter-envs", "api", *path, params=params, **kwargs)
        text = response.body.decode(errors="replace")
        case = f"seed {seed}, case {count}: {method} {'/'.join(path)} {params} {text[:300]}"
        statuses[response.code] += 1
        assert response.code < 500 or response.code in (502, 503), case
        assert "Traceback" not in text, case
        if response.code >= 400:
            assert set(json.loads(text)) == {"message", "reason"}, case
        elif method == "POST" and path == ("environments",):
            build_ids.append(json.loads(text)["id"])
    uncaught = [r.getMessage() for r in caplog.records if r.exc_info]
    assert uncaught == [], uncaught[:3]
    assert count >= 100, f"only {count} requests in the time allowed"
    assert len(statuses) >= 4, statuses  # the cases reached past the first check of each route
