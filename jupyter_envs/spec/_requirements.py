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

from ..errors import SpecError
from ._validate import as_string_list

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
    # The line of each entry of ``reqs`` (None for those read from an included file), so that a
    # conflict names both lines at fault rather than only the first mention of the project.
    req_lines: list[int | None] = []
    lines = _join_continuations(text.splitlines())
    for lineno, raw in lines:
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("-"):
            _parse_option(line, lineno, source, base_dir, reqs, options)
            req_lines.extend([None] * (len(reqs) - len(req_lines)))
            continue
        reqs.append(parse_requirement(line, line=lineno, source=source))
        req_lines.append(lineno)
    check_conflicts(reqs, source=source, lines=req_lines)
    return ParsedRequirements(tuple(reqs), tuple(options))


def parse_pip_options(options: Iterable[str]) -> tuple[str, ...]:
    """Validate ``pip_options`` given directly (not read from text) and return them normalised.

    They are written verbatim into the requirements file handed to the installer, so they get
    the same rules as options in requirements text: index options only, each with a value.
    """
    out: list[str] = []
    for option in as_string_list(options, "pip_options"):
        text = option.strip() if isinstance(option, str) else ""
        if not text.startswith("-") or "\n" in text:
            raise SpecError(
                f"invalid pip option {option!r} (expected e.g. '--index-url https://…')",
                field="pip_options",
            )
        reqs: list[str] = []
        found: list[str] = []
        try:
            _parse_option(text, 1, None, None, reqs, found)
        except SpecError as exc:
            raise SpecError(exc.message, field="pip_options", text=text) from None
        out.extend(found)
    return tuple(out)


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


def check_conflicts(
    reqs: Iterable[str],
    *,
    source: str | None = None,
    lines: Sequence[int | None] | None = None,
) -> None:
    """Refuse requirements that pin one project to versions no release can satisfy at once.

    Only the cheap, certain case is checked here (``==`` pins against the other specifiers of
    the same project); the resolver finds the rest and its message is reported by the build.
    ``lines`` gives the line of each requirement (same order), to name both lines at fault.
    """
    line_of = list(lines or ())
    by_name: dict[str, list[tuple[Requirement, int | None]]] = {}
    for index, text in enumerate(reqs):
        req = Requirement(text)
        if req.marker is None:
            line = line_of[index] if index < len(line_of) else None
            by_name.setdefault(canonicalize_name(req.name), []).append((req, line))
    for name, group in by_name.items():
        for pinned, pin_line in group:
            for spec in pinned.specifier:
                if spec.operator != "==" or "*" in spec.version:
                    continue
                for other, other_line in group:
                    if other.specifier.contains(spec.version, prereleases=True):
                        continue
                    known = [n for n in (pin_line, other_line) if n is not None]
                    raise SpecError(
                        f"conflicting requirements for '{name}': '{pinned}'{_at(pin_line)} pins "
                        f"version {spec.version}, which '{other}'{_at(other_line)} excludes",
                        field="pip",
                        line=max(known) if known else None,
                        source=source,
                    )


def _at(line: int | None) -> str:
    return f" (line {line})" if line is not None else ""
