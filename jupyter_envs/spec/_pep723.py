"""PEP 723 inline script metadata: the ``# /// script`` block.

Scripts run by ``uv run`` and marimo's sandbox notebooks carry their dependencies in it, and
juv puts one in a notebook's first code cell. Reading one gives a :class:`ScriptMetadata`
(``Environment.from_text`` makes the environment);
:func:`render_block` writes one (``jupyter envs export --format pep723``, and the cell that keeps
a notebook openable by juv).

The block's syntax is PEP 723's: comment lines between ``# /// script`` and ``# ///``, each
``#`` or ``# `` followed by TOML. The fields read are ``dependencies``, ``requires-python`` and,
from ``[tool.uv]``, the package sources and constraints uv would use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from ._requirements import parse_requirement
from ._toml import tomllib

__all__ = ["ScriptMetadata", "find_block", "read_script_metadata", "render_block"]

# PEP 723's own definition of a block (its "reference implementation" regular expression).
_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")

#: ``[tool.uv]`` keys that are package sources, as requirements-file options.
_UV_SOURCES = {"index-url": "--index-url", "extra-index-url": "--extra-index-url"}


@dataclass(frozen=True)
class ScriptMetadata:
    """What a ``script`` block asks for."""

    dependencies: tuple[str, ...]
    requires_python: str | None
    #: Installer options from ``[tool.uv]`` (``--index-url``, ``--find-links`` ...).
    pip_options: tuple[str, ...]
    #: ``[tool.uv] constraint-dependencies``.
    constraints: tuple[str, ...]


def find_block(text: str, source: str = "the script") -> str | None:
    """The ``script`` block of ``text`` (comment markers included), or None.

    Two ``script`` blocks are an error (PEP 723: a tool must not guess).
    """
    blocks = [m for m in _BLOCK.finditer(text) if m.group("type") == "script"]
    if len(blocks) > 1:
        raise SpecError(f"{source} has {len(blocks)} '# /// script' blocks; PEP 723 allows one")
    return blocks[0].group(0) if blocks else None


def _toml_of(block: str) -> str:
    lines = block.splitlines()[1:-1]  # without the "# /// script" and "# ///" lines
    return "\n".join(line[2:] if line.startswith("# ") else line[1:] for line in lines) + "\n"


def read_script_metadata(text: str, source: str = "the script") -> ScriptMetadata | None:
    """The ``script`` block of ``text`` read, or None when there is none."""
    block = find_block(text, source)
    if block is None:
        return None
    first = text[: text.index(block)].count("\n") + 1
    try:
        data = tomllib.loads(_toml_of(block))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(
            f"the '# /// script' block of {source} (from line {first}) is not valid TOML: {exc}",
            field="script",
        ) from None
    deps = _strings(data.get("dependencies", []), "dependencies", source)
    lines = text.splitlines()
    for dep in deps:
        # Checked here, with the line of the text it is on (the TOML has no line numbers).
        line = next(
            (first + i for i, ln in enumerate(lines[first - 1 :]) if dep in ln),
            first,
        )
        parse_requirement(dep, line=line, source=source)
    requires = data.get("requires-python")
    if requires is not None and not isinstance(requires, str):
        raise SpecError(f"must be a string in {source}", field="script.requires-python")
    tool_uv = data.get("tool", {}).get("uv", {}) if isinstance(data.get("tool"), dict) else {}
    if not isinstance(tool_uv, dict):
        raise SpecError(f"must be a table in {source}", field="script.tool.uv")
    return ScriptMetadata(
        dependencies=tuple(deps),
        requires_python=requires,
        pip_options=tuple(_uv_options(tool_uv, source)),
        constraints=tuple(
            _strings(tool_uv.get("constraint-dependencies", []), "constraint", source)
        ),
    )


def _strings(value: Any, key: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"must be a list of strings in {source}", field=f"script.{key}")
    return value


def _uv_options(tool_uv: dict[str, Any], source: str) -> Iterable[str]:
    for key, flag in _UV_SOURCES.items():
        value = tool_uv.get(key)
        for url in [value] if isinstance(value, str) else value or []:
            yield f"{flag} {url}"
    links = tool_uv.get("find-links", [])
    for link in _strings([links] if isinstance(links, str) else links, "find-links", source):
        yield f"--find-links {link}"
    for index in tool_uv.get("index", []) or []:
        # [[tool.uv.index]] url = ..., default = true: the index; others are extra indexes.
        if isinstance(index, dict) and isinstance(index.get("url"), str):
            flag = "--index-url" if index.get("default") else "--extra-index-url"
            yield f"{flag} {index['url']}"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(key: str, items: Iterable[str]) -> list[str]:
    items = list(items)
    if not items:
        return [f"{key} = []"]
    return [f"{key} = [", *(f"    {_toml_string(item)}," for item in items), "]"]


def render_block(
    dependencies: Iterable[str],
    *,
    requires_python: str | None = None,
    pip_options: Iterable[str] = (),
    constraints: Iterable[str] = (),
) -> str:
    """A ``# /// script`` block (ending with a newline) that uv, juv and marimo read."""
    lines: list[str] = []
    if requires_python:
        lines.append(f"requires-python = {_toml_string(requires_python)}")
    lines.extend(_toml_list("dependencies", dependencies))
    uv: dict[str, list[str]] = {}
    for option in pip_options:
        flag, _, value = option.partition(" ")
        key = {
            "--index-url": "index-url",
            "--extra-index-url": "extra-index-url",
            "--find-links": "find-links",
        }.get(flag)
        if key:
            uv.setdefault(key, []).append(value.strip())
    constraints = list(constraints)
    if uv or constraints:
        lines += ["", "[tool.uv]"]
        if "index-url" in uv:
            lines.append(f"index-url = {_toml_string(uv['index-url'][0])}")
        for key in ("extra-index-url", "find-links"):
            if key in uv:
                lines.extend(_toml_list(key, uv[key]))
        if constraints:
            lines.extend(_toml_list("constraint-dependencies", constraints))
    body = [f"# {line}" if line else "#" for line in lines]
    return "\n".join(["# /// script", *body, "# ///"]) + "\n"
