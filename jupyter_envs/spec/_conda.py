"""``CondaDependencies``: the conda ``environment.yml`` layout, as AzureML users know it.

Reads and writes the standard layout::

    name: project_environment
    channels: [conda-forge]
    dependencies:
      - python=3.11
      - numpy
      - pip:
        - requests==2.32.3
    variables: {MY_FLAG: "1"}
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from ._requirements import parse_pip_options, parse_requirement, parse_requirement_lines
from ._validate import validate_env_vars, validate_python_version

__all__ = ["CondaDependencies"]

_KNOWN_KEYS = ("name", "channels", "dependencies", "variables", "prefix")
# A conda match spec: a package name, then optionally a version/build ("numpy=1.26", "numpy>=1.2",
# "numpy 1.26 py311*", "conda-forge::numpy"). Shell metacharacters are never part of one.
_MATCH_SPEC = re.compile(
    r"^(?:(?:[A-Za-z0-9_.\-]+|(?:https?|file)://[A-Za-z0-9_.\-:@%~]*)(?:/[A-Za-z0-9_.\-]+)*::)?"
    r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
    r"(?:\s*(?:==|>=|<=|!=|~=|=|<|>)?\s*[A-Za-z0-9_.*+!,<>=|\-]+(?:\s+[A-Za-z0-9_.*+\-]+)?)?$"
)
# A channel name, a URL, or a local folder (absolute, ./relative, ../relative or ~/...).
_CHANNEL = re.compile(
    r"^[A-Za-z0-9_.\-]+$|^(?:https?|file|s3)://\S+$|^(?:/|\./|\.\./|~/)[^\s;&|`$<>]*$"
)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys.

    PyYAML keeps the last of two equal keys, so a second ``dependencies:`` silently dropped the
    first list; conda itself refuses such a file.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _python_pin(spec: str) -> str | None:
    # "python=3.11", "python>=3.10", "python 3.11.*" and "python==3.11.7": the version part,
    # whole (so "python=3.x" is not read as 3). The space-separated form used to be missed, so
    # that pin was ignored by the venv builder.
    match = re.search(r"(?:[=<>~!]+|\s)\s*([^\s,|=<>~!]+)", spec.split("::", 1)[-1])
    return match.group(1).rstrip("*").rstrip(".") if match else None


def _package_name(spec: str) -> str:
    spec = spec.split("::", 1)[-1]
    return re.split(r"[\s=<>!~]", spec, maxsplit=1)[0].lower()


def validate_match_spec(spec: str, *, line: int | None = None, source: str | None = None) -> str:
    """Check one conda package spec and return it stripped."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(
            f"a conda dependency must be a non-empty string, got {spec!r}",
            field="conda_dependencies",
            line=line,
            source=source,
        )
    spec = spec.strip()
    if not _MATCH_SPEC.match(spec):
        raise SpecError(
            "not a valid conda package spec (expected e.g. 'numpy', 'numpy=1.26' or "
            "'conda-forge::numpy>=1.26')",
            field="conda_dependencies",
            line=line,
            text=spec,
            source=source,
        )
    problem = _rattler_problem(spec)
    if problem:
        raise SpecError(
            f"not a valid conda package spec: {problem}",
            field="conda_dependencies",
            line=line,
            text=spec,
            source=source,
        )
    return spec


def _rattler_problem(spec: str) -> str | None:
    """What rattler's own MatchSpec parser (the one the build uses) says is wrong, if anything.

    The regex above keeps shell syntax out; this catches what only a real parser sees
    (``numpy >=< 1``). Without py-rattler installed the regex alone decides.
    """
    try:
        from rattler import MatchSpec
    except ImportError:
        return None
    try:
        MatchSpec(spec)
    except Exception as exc:  # rattler's parse errors have no public common base
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _line_of(text: str | None, needle: str, occurrence: int = 1) -> int | None:
    if not text:
        return None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            occurrence -= 1
            if occurrence == 0:
                return lineno
    return None


class CondaDependencies:
    """Conda channels, conda packages, pip packages and variables of an environment.

    Mirrors AzureML's ``CondaDependencies``: build one with :meth:`create` or from a file, edit it
    with the ``add_*``/``remove_*`` methods, attach it with ``env.python.conda_dependencies = cd``.
    """

    def __init__(self, conda_dependencies_file_path: str | Path | None = None) -> None:
        self.name: str = "project_environment"
        self._channels: list[str] = []
        self._conda: list[str] = []
        self._pip: list[str] = []
        self._pip_options: list[str] = []
        self._variables: dict[str, str] = {}
        if conda_dependencies_file_path is not None:
            path = Path(conda_dependencies_file_path)
            try:
                text = path.read_text()
            except OSError as exc:
                raise SpecError(f"cannot read {path}: {exc.strerror}", field="conda") from None
            self._load(text, source=str(path), base_dir=path.parent)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = None,
        channels: Iterable[str] | None = None,
    ) -> CondaDependencies:
        """Create dependencies from lists, as AzureML's ``CondaDependencies.create``."""
        cd = cls()
        if python_version:
            cd.set_python_version(python_version)
        for channel in channels or ():
            cd.add_channel(channel)
        for pkg in conda_packages or ():
            cd.add_conda_package(pkg)
        for pkg in pip_packages or ():
            cd.add_pip_package(pkg)
        return cd

    @classmethod
    def from_string(
        cls, text: str, *, source: str | None = None, base_dir: Path | None = None
    ) -> CondaDependencies:
        """Parse environment.yml content; errors name the line at fault. Files its ``pip:``
        section names (``-r``, ``-e``...) are read relative to ``base_dir``."""
        cd = cls()
        cd._load(text, source=source, base_dir=base_dir)
        return cd

    def _load(self, text: str, *, source: str | None, base_dir: Path | None = None) -> None:
        # YAML forbids tabs in indentation, but files indented with them are common (and the
        # intent is plain): a leading tab counts as two spaces, so line numbers stay right.
        text = re.sub(r"^[ \t]+", lambda m: m.group(0).replace("\t", "  "), text, flags=re.M)
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(
                f"not valid YAML: {problem}",
                field="conda",
                line=mark.line + 1 if mark is not None else None,
                source=source,
            ) from None
        if data is None:
            raise SpecError("the environment file is empty", field="conda", source=source)
        if not isinstance(data, Mapping):
            raise SpecError(
                "an environment file must be a mapping with 'channels' and 'dependencies'",
                field="conda",
                source=source,
            )
        for key in data:
            if key not in _KNOWN_KEYS:
                raise SpecError(
                    f"unknown key '{key}' (known keys: {', '.join(_KNOWN_KEYS)})",
                    field="conda",
                    line=_line_of(text, f"{key}:"),
                    source=source,
                )
        if data.get("name") is not None:
            self.name = str(data["name"])
        for channel in self._as_list(data.get("channels"), "channels", text, source):
            try:
                channel = str(channel)
                if channel.startswith(("./", "../")) and base_dir is not None:
                    # A folder next to the environment file, wherever the build runs from.
                    channel = str((base_dir / channel).resolve())
                self.add_channel(channel)
            except SpecError as exc:  # re-raised with the line, as every other error here
                raise SpecError(
                    exc.message,
                    field=exc.field,
                    line=_line_of(text, str(channel)),
                    source=source,
                ) from None
        pip_seen = False
        for item in self._as_list(data.get("dependencies"), "dependencies", text, source):
            if isinstance(item, Mapping):
                if set(item) != {"pip"} or pip_seen:
                    raise SpecError(
                        f"unexpected entry in dependencies: {dict(item)!r} "
                        "(only one nested 'pip:' list is allowed)",
                        field="conda",
                        # The second "pip:" is the one at fault (the first matched "pip").
                        line=_line_of(text, f"{next(iter(item), '')}:", 1 + pip_seen),
                        source=source,
                    )
                pip_seen = True
                entries = self._as_list(item["pip"], "pip", text, source)
                for pkg in entries:
                    if not isinstance(pkg, str):
                        raise SpecError(
                            f"a pip entry must be a string, got {pkg!r}",
                            field="pip",
                            line=_line_of(text, str(pkg)),
                            source=source,
                        )
                # The requirements.txt reader, so a line means the same in both places (URLs,
                # hashes, -r, -e, options); it also refuses conflicting pins, before adding
                # (which replaces an earlier spec of the same project) could hide them.
                parsed = parse_requirement_lines(
                    [(_line_of(text, pkg), pkg) for pkg in entries],
                    source=source,
                    base_dir=base_dir,
                )
                if parsed.constraints:
                    raise SpecError(
                        "constraints files (-c) are not supported in an environment.yml's pip "
                        "section; pin the versions there instead",
                        field="pip",
                        source=source,
                    )
                for norm in parsed.requirements:
                    self._add_pip(norm)
                for option in parsed.options:
                    if option not in self._pip_options:
                        self._pip_options.append(option)
                continue
            if not isinstance(item, str):
                raise SpecError(
                    f"a dependency must be a string, got {item!r}",
                    field="conda",
                    line=_line_of(text, str(item)),
                    source=source,
                )
            self._add_conda(item, line=_line_of(text, item), source=source)
        variables = data.get("variables") or {}
        if not isinstance(variables, Mapping):
            raise SpecError(
                "'variables' must be a mapping of names to values",
                field="conda",
                line=_line_of(text, "variables:"),
                source=source,
            )
        for key, value in variables.items():
            # Checked here so the error names the line (Environment would only name env_vars).
            try:
                validate_env_vars({key: ""}, field="variables")
            except SpecError as exc:
                raise SpecError(
                    exc.message, field="variables", line=_line_of(text, f"{key}:"), source=source
                ) from None
            self._variables[key] = "" if value is None else str(value)

    @staticmethod
    def _as_list(value: Any, key: str, text: str, source: str | None) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise SpecError(
                f"'{key}' must be a list",
                field="conda",
                line=_line_of(text, f"{key}:"),
                source=source,
            )
        return value

    # -- editing ----------------------------------------------------------------------------
    def add_channel(self, channel: str) -> None:
        """Add a conda channel (kept in order: conda's channel priority follows it)."""
        channel = channel.strip()
        if not _CHANNEL.match(channel):
            raise SpecError(f"not a valid conda channel: {channel!r}", field="channels")
        if channel not in self._channels:
            self._channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        """Remove a channel; no error if it is absent."""
        if channel in self._channels:
            self._channels.remove(channel)

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda package spec, replacing an earlier spec of the same package."""
        self._add_conda(conda_package)

    def _add_conda(self, spec: str, *, line: int | None = None, source: str | None = None) -> None:
        spec = validate_match_spec(spec, line=line, source=source)
        name = _package_name(spec)
        if name == "python" and spec.split("::", 1)[-1].lower() != "python":
            # "python=abc" used to be accepted and then ignored (no Python pin was found in it).
            pin = _python_pin(spec)
            try:
                validate_python_version(pin if pin is not None else spec)
            except SpecError:
                raise SpecError(
                    f"invalid Python version in {spec!r} (expected e.g. 'python=3.11')",
                    field="conda_dependencies",
                    line=line,
                    text=spec,
                    source=source,
                ) from None
        self._conda = [c for c in self._conda if _package_name(c) != name] + [spec]

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove every spec of that package name."""
        name = _package_name(conda_package)
        self._conda = [c for c in self._conda if _package_name(c) != name]

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement (PEP 508), replacing an earlier one of the same project."""
        self._add_pip(pip_package)

    def _add_pip(self, text: str, *, line: int | None = None, source: str | None = None) -> None:
        norm = parse_requirement(text, line=line, source=source)
        name = _package_name(norm)
        self._pip = [p for p in self._pip if _package_name(p) != name] + [norm]

    def set_pip_option(self, pip_option: str) -> None:
        """Add an installer option to the ``pip:`` section (``--extra-index-url URL``,
        ``--pre``...), as AzureML's ``set_pip_option``."""
        for option in parse_pip_options([pip_option]):
            if option not in self._pip_options:
                self._pip_options.append(option)

    def remove_pip_package(self, pip_package: str) -> None:
        """Remove the pip requirement of that project."""
        name = _package_name(parse_requirement(pip_package))
        self._pip = [p for p in self._pip if _package_name(p) != name]

    def set_python_version(self, version: str) -> None:
        """Pin the ``python`` conda package (``"3.11"`` → ``python=3.11``)."""
        self._add_conda(f"python={version}")

    def get_python_version(self) -> str | None:
        """Return the version pinned by the ``python`` conda package, if any."""
        for spec in self._conda:
            if _package_name(spec) == "python":
                return _python_pin(spec)
        return None

    def set_variable(self, name: str, value: str) -> None:
        """Set an environment variable recorded in the ``variables`` section."""
        # Validated as Environment.env_vars would (it receives these when built from a file).
        self._variables.update(validate_env_vars({name: value}, field="variables"))

    # -- reading ----------------------------------------------------------------------------
    @property
    def channels(self) -> tuple[str, ...]:
        """The channels, in priority order."""
        return tuple(self._channels)

    @property
    def conda_packages(self) -> tuple[str, ...]:
        """The conda package specs, in the order added."""
        return tuple(self._conda)

    @property
    def pip_packages(self) -> tuple[str, ...]:
        """The pip requirements, normalised, in the order added."""
        return tuple(self._pip)

    @property
    def pip_options(self) -> tuple[str, ...]:
        """Installer options of the ``pip:`` section, in the order given."""
        return tuple(self._pip_options)

    @property
    def variables(self) -> dict[str, str]:
        """A copy of the ``variables`` section."""
        return dict(self._variables)

    def needs_conda(self) -> bool:
        """True when a conda package other than ``python``/``pip`` is asked for.

        An env.yml that only pins Python and lists pip packages is served by the venv builder.
        """
        return any(_package_name(c) not in ("python", "pip") for c in self._conda)

    def to_dict(self) -> dict[str, Any]:
        """The env.yml structure as plain data."""
        deps: list[Any] = list(self._conda)
        if self._pip or self._pip_options:
            if not any(_package_name(c) == "pip" for c in self._conda):
                deps.append("pip")
            deps.append({"pip": [*self._pip_options, *self._pip]})
        data: dict[str, Any] = {"name": self.name, "channels": list(self._channels)}
        data["dependencies"] = deps
        if self._variables:
            data["variables"] = dict(self._variables)
        return data

    def serialize_to_string(self) -> str:
        """Return the env.yml text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def save(self, path: str | Path) -> Path:
        """Write the env.yml to ``path`` (a file, or a directory to hold environment.yml)."""
        target = Path(path)
        if target.is_dir():
            target = target / "environment.yml"
        target.write_text(self.serialize_to_string())
        return target

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"CondaDependencies(channels={self._channels!r}, conda_packages={self._conda!r}, "
            f"pip_packages={self._pip!r})"
        )
