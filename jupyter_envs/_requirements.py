"""Reading pip requirements: requirements.txt text and lists of PEP 508 strings.

Parsing of each requirement is ``packaging``'s; this module only splits lines, handles the few
pip options that make sense in a spec, and reports errors with the line at fault.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import SpecError

# Index options are kept (they change what gets installed); anything else that pip accepts in a
# requirements file either makes no sense for a reproducible spec (-e) or needs a file we cannot
# see (-c) and is refused with a message rather than silently dropped.
_INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f")
_INCLUDE_OPTIONS = ("-r", "--requirement")


@dataclass(frozen=True)
class ParsedRequirements:
    """Requirements read from text: normalised PEP 508 strings and pip index options."""

    requirements: tuple[str, ...]
    options: tuple[str, ...] = ()


def normalize_requirement(req: Requirement) -> str:
    """Return ``req`` as a canonical string (canonical name, sorted extras and specifiers)."""
    out: str = canonicalize_name(req.name)
    if req.extras:
        out += "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
    if req.url:
        out += f" @ {req.url}"
        if req.marker:
            out += " "
    elif req.specifier:
        out += ",".join(sorted(str(s) for s in req.specifier))
    if req.marker:
        out += f"; {req.marker}"
    return out


def parse_requirement(text: str, *, line: int | None = None, source: str | None = None) -> str:
    """Validate one PEP 508 requirement and return its normalised form."""
    stripped = text.strip()
    if not stripped:
        raise SpecError("empty requirement", field="pip", line=line, source=source)
    try:
        req = Requirement(stripped)
    except InvalidRequirement as exc:
        detail = str(exc).splitlines()[0]
        raise SpecError(
            f"not a valid requirement ({detail})",
            field="pip",
            line=line,
            text=stripped,
            source=source,
        ) from None
    # packaging accepts "name===" (arbitrary equality with an empty string); pip would not.
    if any(not spec.version.strip() for spec in req.specifier):
        raise SpecError(
            "not a valid requirement (a version operator needs a version)",
            field="pip",
            line=line,
            text=stripped,
            source=source,
        )
    return normalize_requirement(req)


def _strip_comment(raw: str) -> str:
    # pip treats "#" as a comment only at line start or after whitespace (URLs may hold "#egg=").
    return re.sub(r"(^|\s)#.*$", "", raw).strip()


def parse_requirements_text(
    text: str, *, source: str | None = None, base_dir: Path | None = None
) -> ParsedRequirements:
    """Parse requirements.txt content.

    ``-r other.txt`` includes are followed relative to ``base_dir`` (only when reading a file).
    Index options (``--index-url``, ``--extra-index-url``, ``--find-links``) are kept.
    """
    reqs: list[str] = []
    options: list[str] = []
    lines = _join_continuations(text.splitlines())
    for lineno, raw in lines:
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("-"):
            _parse_option(line, lineno, source, base_dir, reqs, options)
            continue
        reqs.append(parse_requirement(line, line=lineno, source=source))
    check_conflicts(reqs, source=source, lines=_requirement_lines(text))
    return ParsedRequirements(tuple(reqs), tuple(options))


def _join_continuations(lines: Sequence[str]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf = ""
    start = 0
    for i, line in enumerate(lines, start=1):
        if not buf:
            start = i
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _parse_option(
    line: str,
    lineno: int,
    source: str | None,
    base_dir: Path | None,
    reqs: list[str],
    options: list[str],
) -> None:
    opt, _, value = line.replace("=", " ", 1).partition(" ")
    value = value.strip()
    if opt in _INDEX_OPTIONS:
        if not value:
            raise SpecError(f"option {opt} needs a value", line=lineno, source=source, field="pip")
        long = {"-i": "--index-url", "-f": "--find-links"}.get(opt, opt)
        options.append(f"{long} {value}")
        return
    if opt in _INCLUDE_OPTIONS:
        if base_dir is None:
            raise SpecError(
                f"'{opt} {value}' includes another file, which only works when reading a "
                "requirements file from disk (Environment.from_pip_requirements); "
                "paste the requirements themselves instead",
                line=lineno,
                source=source,
                field="pip",
            )
        included = base_dir / value
        if not included.is_file():
            raise SpecError(
                f"included file not found: {included}", line=lineno, source=source, field="pip"
            )
        sub = parse_requirements_text(
            included.read_text(), source=str(included), base_dir=included.parent
        )
        reqs.extend(sub.requirements)
        options.extend(sub.options)
        return
    raise SpecError(
        f"pip option '{opt}' is not supported in an environment spec "
        f"(supported: {', '.join(_INDEX_OPTIONS + _INCLUDE_OPTIONS)})",
        line=lineno,
        text=line,
        source=source,
        field="pip",
    )


def _requirement_lines(text: str) -> dict[str, int]:
    """Map canonical project name → first line mentioning it (for conflict messages)."""
    found: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match and not line.startswith("-"):
            found.setdefault(canonicalize_name(match.group(0)), lineno)
    return found


def check_conflicts(
    reqs: Iterable[str], *, source: str | None = None, lines: dict[str, int] | None = None
) -> None:
    """Refuse requirements that pin one project to versions no release can satisfy at once.

    Only the cheap, certain case is checked here (``==`` pins against the other specifiers of
    the same project); the resolver finds the rest and its message is reported by the build.
    """
    by_name: dict[str, list[Requirement]] = {}
    for text in reqs:
        req = Requirement(text)
        if req.marker is None:
            by_name.setdefault(canonicalize_name(req.name), []).append(req)
    for name, group in by_name.items():
        pins = [
            s.version
            for r in group
            for s in r.specifier
            if s.operator == "==" and "*" not in s.version
        ]
        for pin in pins:
            for other in group:
                if not other.specifier.contains(pin, prereleases=True):
                    raise SpecError(
                        f"conflicting requirements for '{name}': '{other}' excludes the pinned "
                        f"version {pin}",
                        field="pip",
                        line=(lines or {}).get(name),
                        source=source,
                    )
