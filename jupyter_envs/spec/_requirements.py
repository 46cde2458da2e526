"""Reading pip requirements: requirements.txt text, the ``pip:`` section of an environment.yml,
and lists of PEP 508 strings, with one reader for all three.

Parsing of each requirement is ``packaging``'s; this module splits lines, turns what pip and uv
accept beyond PEP 508 into spec data, and reports errors with the line at fault:

- per-requirement ``--hash=ALGO:HEX`` (pip-compile ``--generate-hashes``, ``uv export``): kept
  on the requirement (``"six==1.17.0 --hash=sha256:..."``); uv checks them;
- bare URLs and VCS references (``git+https://...@ref#egg=name``), local paths and archives:
  ``name @ url`` (the name from ``#egg=``, the file name or the repository's);
- ``-e``: a VCS editable installs from its URL; a local one, resolved against the folder the text
  came from (a notebook's), installs editable (``-e /abs/path`` in the options);
- ``-r`` / ``-c`` files, read relative to that folder: included requirements and constraints
  (their content enters the spec, and so its hash);
- global options uv reads in a requirements file: index options, ``--pre``, ``--no-binary``,
  ``--only-binary``, ``--prefer-binary``, ``--no-index``, ``--require-hashes``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import SpecError
from ._validate import as_string_list

# Options kept in the spec (written to the requirements file uv reads, which accepts them all).
_INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f")
_VALUE_OPTIONS = ("--no-binary", "--only-binary")
_FLAG_OPTIONS = ("--pre", "--prefer-binary", "--no-index", "--require-hashes")
# Options that read another file (relative to the folder the text came from).
_INCLUDE_OPTIONS = ("-r", "--requirement")
_CONSTRAINT_OPTIONS = ("-c", "--constraint")
_EDITABLE_OPTIONS = ("-e", "--editable")
_SUPPORTED = (
    *_INDEX_OPTIONS,
    *_VALUE_OPTIONS,
    *_FLAG_OPTIONS,
    *_INCLUDE_OPTIONS,
    *_CONSTRAINT_OPTIONS,
    *_EDITABLE_OPTIONS,
)
_VCS_SCHEMES = ("git+", "hg+", "svn+", "bzr+")
_URL_SCHEMES = (*_VCS_SCHEMES, "http://", "https://", "file:")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")
_HASH = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]+)$")
_HASH_SUFFIX = re.compile(r"(?:^|\s)--")
_PROJECT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ParsedRequirements:
    """Requirements read from text: normalised PEP 508 strings, options, constraints."""

    requirements: tuple[str, ...]
    options: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()


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


def split_hashes(
    text: str, *, line: int | None = None, source: str | None = None
) -> tuple[str, tuple[str, ...]]:
    """``"six==1.17.0 --hash=sha256:ab --hash sha256:cd"`` → ``("six==1.17.0", (hashes))``.

    ``--hash`` is the one per-requirement option a spec keeps; any other (``--config-settings``,
    ``--global-option``) is refused, naming it.
    """
    found = _HASH_SUFFIX.search(text)
    if found is None:
        return text.strip(), ()
    tokens = text[found.start() :].split()
    hashes: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--hash="):
            value = token.removeprefix("--hash=")
        elif token == "--hash" and i + 1 < len(tokens):  # noqa: S105 - an option, not a secret
            i += 1
            value = tokens[i]
        else:
            raise SpecError(
                f"the per-requirement option '{token}' is not supported (only --hash is)",
                field="pip",
                line=line,
                text=text.strip(),
                source=source,
            )
        if not _HASH.fullmatch(value.lower()):
            raise SpecError(
                f"invalid hash '{value}' (expected sha256:HEX, sha384:HEX or sha512:HEX)",
                field="pip",
                line=line,
                text=text.strip(),
                source=source,
            )
        hashes.append(value.lower())
        i += 1
    return text[: found.start()].strip(), tuple(sorted(set(hashes)))


def requirement_of(text: str) -> Requirement:
    """The PEP 508 part of a normalised spec requirement (its hashes left out)."""
    return Requirement(split_hashes(text)[0])


def _is_url(text: str) -> bool:
    return text.lower().startswith(_URL_SCHEMES)


def _name_from_url(url: str, *, line: int | None, source: str | None) -> tuple[str, str]:
    """A bare URL's project name and the URL to install (``#egg=`` taken out of it): from
    ``#egg=``, else the wheel / sdist file name, else the repository's or folder's name."""
    parts = urlsplit(url)
    fragment = dict(parse_qsl(parts.fragment))
    egg = fragment.pop("egg", "")
    cleaned = urlunsplit(parts._replace(fragment=urlencode(fragment)))
    name = re.sub(r"\[.*\]$", "", egg)
    if not name:
        last = unquote(parts.path).rstrip("/").rsplit("/", 1)[-1]
        last = last.split("@", 1)[0]  # git+https://host/org/repo@v1.0
        if last.endswith(_ARCHIVES):
            name = _name_of_archive(last)
        elif url.lower().startswith(_VCS_SCHEMES):
            name = last.removesuffix(".git")
        else:
            name = ""  # a download link that names no file: nothing to go by
    if not _PROJECT.fullmatch(name):
        raise SpecError(
            f"cannot tell which project {url!r} installs: write it as 'NAME @ {url}' "
            "(or add '#egg=NAME')",
            field="pip",
            line=line,
            source=source,
        )
    return name, cleaned


def _name_of_local(path: Path) -> str:
    """The project name of a local folder (its pyproject.toml) or archive (its file name)."""
    if path.is_dir():
        try:
            pyproject = (path / "pyproject.toml").read_text()
        except OSError:
            pyproject = ""
        # The [project] table's name (tomllib is Python 3.11+; this is all that is needed).
        table = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", pyproject, re.M | re.S)
        named = (
            re.search(r'^name\s*=\s*["\']([^"\']+)["\']', table.group(1), re.M) if table else None
        )
        if named and _PROJECT.fullmatch(named.group(1)):
            return named.group(1)
        return path.name
    return _name_of_archive(path.name)


def _name_of_archive(filename: str) -> str:
    """The project of a wheel (``name-1.0-py3-none-any.whl``) or sdist (``name-1.0.tar.gz``)."""
    if filename.endswith(".whl"):
        return filename.split("-", 1)[0]
    stem = next((filename[: -len(s)] for s in _ARCHIVES if filename.endswith(s)), filename)
    return stem.rsplit("-", 1)[0]


def parse_requirement(text: str, *, line: int | None = None, source: str | None = None) -> str:
    """Validate one requirement and return its normalised form.

    PEP 508, plus what pip accepts on a requirement line: ``--hash`` options (kept, sorted) and
    a bare URL or VCS reference (made ``name @ url``).
    """
    stripped, hashes = split_hashes(text, line=line, source=source)
    if not stripped:
        raise SpecError("empty requirement", field="pip", line=line, source=source)
    if _is_url(stripped):
        # pip reads "URL; marker" (whitespace after the semicolon: URLs may hold ";").
        url_part, _, marker = stripped.partition("; ")
        marker = marker.strip()
        name, url = _name_from_url(url_part.strip(), line=line, source=source)
        stripped = f"{name} @ {url}" + (f" ; {marker}" if marker else "")
    try:
        req = Requirement(stripped)
    except InvalidRequirement as exc:
        detail = str(exc).splitlines()[0]
        raise SpecError(
            f"not a valid requirement ({detail})",
            field="pip",
            line=line,
            text=text.strip(),
            source=source,
        ) from None
    # packaging accepts "name===" (arbitrary equality with an empty string); pip would not.
    if any(not spec.version.strip() for spec in req.specifier):
        raise SpecError(
            "not a valid requirement (a version operator needs a version)",
            field="pip",
            line=line,
            text=text.strip(),
            source=source,
        )
    norm = normalize_requirement(req)
    return " ".join([norm, *(f"--hash={h}" for h in hashes)])


def _strip_comment(raw: str) -> str:
    # pip treats "#" as a comment only at line start or after whitespace (URLs may hold "#egg=").
    return re.sub(r"(^|\s)#.*$", "", raw).strip()


def parse_requirements_text(
    text: str, *, source: str | None = None, base_dir: Path | None = None
) -> ParsedRequirements:
    """Parse requirements.txt content.

    ``-r``/``-c`` files, ``-e`` folders and local paths are read relative to ``base_dir`` (the
    file's folder, or a notebook's); without one they are refused, saying so.
    """
    lines = [
        (lineno, _strip_comment(raw)) for lineno, raw in _join_continuations(text.splitlines())
    ]
    return parse_requirement_lines(lines, source=source, base_dir=base_dir)


def parse_requirement_lines(
    lines: Iterable[tuple[int | None, str]],
    *,
    source: str | None = None,
    base_dir: Path | None = None,
) -> ParsedRequirements:
    """The reader every requirements list goes through (requirements text, an environment.yml's
    ``pip:`` section): numbered lines, comments already removed."""
    reqs: list[str] = []
    found = _Found()
    # The line of each entry of ``reqs`` (None for those read from an included file), so that a
    # conflict names both lines at fault rather than only the first mention of the project.
    req_lines: list[int | None] = []
    for lineno, line in lines:
        line = line.strip()
        if not line:
            continue
        if line.startswith("-"):
            _parse_option(line, lineno, source, base_dir, found)
            reqs.extend(found.take_requirements())
            req_lines.extend([None] * (len(reqs) - len(req_lines)))
            continue
        if _is_local_path(line):
            reqs.append(_local_requirement(line, lineno, source, base_dir))
        else:
            reqs.append(parse_requirement(line, line=lineno, source=source))
        req_lines.append(lineno)
    check_conflicts(reqs, source=source, lines=req_lines)
    return ParsedRequirements(tuple(reqs), tuple(found.options), tuple(found.constraints))


class _Found:
    """What options add while a list is read: options, constraints, included requirements."""

    def __init__(self) -> None:
        self.options: list[str] = []
        self.constraints: list[str] = []
        self.requirements: list[str] = []

    def take_requirements(self) -> list[str]:
        taken, self.requirements = self.requirements, []
        return taken


def _is_local_path(line: str) -> bool:
    first = line.split(maxsplit=1)[0]
    if "://" in first or first.startswith(_URL_SCHEMES):
        return False
    return first.startswith((".", "/", "~")) or first.endswith(_ARCHIVES)


def _resolve(
    value: str, what: str, lineno: int | None, source: str | None, base_dir: Path | None
) -> Path:
    """A path named in the text (``what`` says by what), made absolute against ``base_dir``;
    it must exist."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        if base_dir is None:
            raise SpecError(
                f"{what}: '{value}' is a relative path, and this text comes from no folder to "
                "read it from: give an absolute path, or read the text from a file or a notebook",
                field="pip",
                line=lineno,
                source=source,
            )
        path = base_dir / path
    if not path.exists():
        where = f" (relative to {base_dir})" if base_dir is not None and value[:1] != "/" else ""
        raise SpecError(
            f"{what}: not found, looked for {path}{where}",
            field="pip",
            line=lineno,
            source=source,
        )
    return path.resolve()


def _split_extras(value: str) -> tuple[str, str]:
    """``".[socks,test]"`` → ``(".", "[socks,test]")``: pip's extras after a path."""
    match = re.fullmatch(r"(.*?)(\[[A-Za-z0-9_,.\s-]*\])?", value.strip())
    assert match is not None  # the pattern matches any text
    return match.group(1), (match.group(2) or "").replace(" ", "")


def _local_requirement(
    line: str, lineno: int | None, source: str | None, base_dir: Path | None
) -> str:
    value, hashes = split_hashes(line, line=lineno, source=source)
    folder, extras = _split_extras(value)
    path = _resolve(folder, f"the local package '{value}'", lineno, source, base_dir)
    name = _name_of_local(path)
    req = parse_requirement(f"{name}{extras} @ {path.as_uri()}", line=lineno, source=source)
    return " ".join([req, *(f"--hash={h}" for h in hashes)])


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
        found = _Found()
        opt = text.split(maxsplit=1)[0]
        if opt in (*_INCLUDE_OPTIONS, *_CONSTRAINT_OPTIONS):
            raise SpecError(
                f"'{opt}' reads a file: use Environment.from_pip_requirements, or give the "
                "requirements (pip) and constraints (pip_constraints) themselves",
                field="pip_options",
                text=text,
            )
        try:
            _parse_option(text, None, None, None, found)
        except SpecError as exc:
            raise SpecError(exc.message, field="pip_options", text=text) from None
        if found.requirements:  # a VCS "editable": a requirement, not an option
            raise SpecError(
                "a VCS URL is a requirement: put it in pip", field="pip_options", text=text
            )
        out.extend(found.options)
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
    lineno: int | None,
    source: str | None,
    base_dir: Path | None,
    found: _Found,
) -> None:
    opt, _, value = line.replace("=", " ", 1).partition(" ")
    value = value.strip()
    if opt in _FLAG_OPTIONS:
        if value:
            raise SpecError(f"option {opt} takes no value", line=lineno, source=source, field="pip")
        found.options.append(opt)
        return
    if opt in (*_INDEX_OPTIONS, *_VALUE_OPTIONS, *_INCLUDE_OPTIONS, *_CONSTRAINT_OPTIONS,
               *_EDITABLE_OPTIONS) and not value:  # fmt: skip
        raise SpecError(f"option {opt} needs a value", line=lineno, source=source, field="pip")
    if opt in (*_INDEX_OPTIONS, *_VALUE_OPTIONS):
        long = {"-i": "--index-url", "-f": "--find-links"}.get(opt, opt)
        found.options.append(f"{long} {value}")
        return
    if opt in _EDITABLE_OPTIONS:
        if _is_url(value):
            # A VCS editable needs a checkout to edit; in an environment it installs from the URL.
            found.requirements.append(parse_requirement(value, line=lineno, source=source))
        else:
            folder, extras = _split_extras(value)
            path = _resolve(folder, f"'{opt} {value}'", lineno, source, base_dir)
            found.options.append(f"-e {path}{extras}")
        return
    if opt in (*_INCLUDE_OPTIONS, *_CONSTRAINT_OPTIONS):
        path = _resolve(value, f"'{opt} {value}'", lineno, source, base_dir)
        sub = parse_requirements_text(path.read_text(), source=str(path), base_dir=path.parent)
        if opt in _INCLUDE_OPTIONS:
            found.requirements.extend(sub.requirements)
            found.options.extend(o for o in sub.options if o not in found.options)
            found.constraints.extend(sub.constraints)
        else:
            if sub.options:
                raise SpecError(
                    f"a constraints file holds requirements only, not options ({sub.options[0]})",
                    line=lineno,
                    source=source,
                    field="pip",
                )
            found.constraints.extend(sub.requirements)
        return
    raise SpecError(
        f"pip option '{opt}' is not supported in an environment spec "
        f"(supported: {', '.join(_SUPPORTED)})",
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
        req = requirement_of(text)
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


def lock_pins(lock: str) -> list[str]:
    """The requirement lines of a lock (a freeze, with hashes or not): without comment lines
    (a Docker lock's ``# base image: ...``) and option lines (``-e ...``)."""
    return [ln.strip() for ln in lock.splitlines() if ln.strip() and ln[0] not in "#-"]
