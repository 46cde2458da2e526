"""The lock of a conda environment: an explicit spec file with the pip pins as comments.

::

    # jupyter-envs conda lock 1
    # platform: linux-64
    # Recreate with: conda create --name NAME --file THIS_FILE (or micromamba create -f),
    # then pip install the "# pip:" lines; jupyter envs restore does both.
    @EXPLICIT
    https://conda.anaconda.org/conda-forge/linux-64/python-3.11.9-hb806964_0_cpython.conda#sha256:…
    # pip: requests==2.32.3 --hash=sha256:…

Every conda record is a URL (channel, subdir and file name, hence name-version-build) with the
sha256 of the archive, the form conda's explicit files accept; pip pins are comments to conda,
so the whole file is both our lock and an explicit spec for other tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import SpecError

__all__ = ["HEADER", "CondaLock", "CondaPin", "is_conda_lock", "parse", "render"]

HEADER = "# jupyter-envs conda lock 1"
_PIP = "# pip: "
_RECORD = re.compile(
    r"^(?P<channel>\S+?)/(?P<subdir>[A-Za-z0-9_-]+)/(?P<file>[^/#\s]+?\.(?:tar\.bz2|conda))"
    r"(?:#(?:sha256:)?(?P<sha256>[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class CondaPin:
    """One locked conda record."""

    channel: str
    subdir: str
    name: str
    version: str
    build: str
    url: str
    sha256: str

    @classmethod
    def from_url(cls, url: str, sha256: str) -> CondaPin:
        """A pin from an archive URL (``…/<subdir>/<name>-<version>-<build>.conda``)."""
        match = _RECORD.match(url)
        if match is None:
            raise ValueError(f"not a conda package URL: {url}")
        stem = re.sub(r"\.(tar\.bz2|conda)$", "", match["file"])
        name, version, build = stem.rsplit("-", 2)
        return cls(match["channel"], match["subdir"], name, version, build, url, sha256)

    def line(self) -> str:
        """The explicit-file line: the URL and its sha256."""
        return f"{self.url}#sha256:{self.sha256}"

    def match_spec(self) -> str:
        """A match spec that only this record satisfies (what a rebuild from the lock solves)."""
        return (
            f"{self.channel}/{self.subdir}::{self.name} =={self.version} {self.build}"
            f"[sha256={self.sha256}]"
        )


@dataclass(frozen=True)
class CondaLock:
    """A parsed conda lock."""

    platform: str | None
    pins: tuple[CondaPin, ...]
    pip: tuple[str, ...]

    @property
    def channels(self) -> list[str]:
        """The channels the records come from, in the order first seen."""
        return list(dict.fromkeys(pin.channel for pin in self.pins))


def render(platform: str, pins: Sequence[CondaPin], pip: Iterable[str]) -> str:
    """The lock text of solved records and frozen pip pins."""
    lines = [
        HEADER,
        f"# platform: {platform}",
        "# Recreate with: conda create --name NAME --file THIS_FILE (or micromamba create -f),",
        '# then pip install the "# pip:" lines; jupyter envs restore does both.',
        "@EXPLICIT",
    ]
    lines += [pin.line() for pin in sorted(pins, key=lambda p: p.name)]
    lines += [_PIP + line for line in pip if line.strip()]
    return "\n".join(lines) + "\n"


def is_conda_lock(text: str) -> bool:
    """True for a lock this module wrote (or any explicit spec file)."""
    return any(line.strip() == "@EXPLICIT" for line in text.splitlines())


def parse(text: str, *, source: str = "the lock") -> CondaLock:
    """Read a conda lock (or a plain explicit spec file); malformed lines name their number."""
    platform: str | None = None
    pins: list[CondaPin] = []
    pip: list[str] = []
    explicit = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(_PIP.strip()):
            pip.append(line[len(_PIP.strip()) :].strip())
        elif line.startswith("# platform:"):
            platform = line.split(":", 1)[1].strip()
        elif line.startswith("#"):
            continue
        elif line == "@EXPLICIT":
            explicit = True
        else:
            match = _RECORD.match(line)
            if not explicit or match is None or match["sha256"] is None:
                raise SpecError(
                    "not a locked conda record (expected the URL of a .conda or .tar.bz2 "
                    "archive followed by #sha256:<hash>, after an @EXPLICIT line)",
                    field="lock",
                    line=number,
                    text=line,
                    source=source,
                )
            url = line.split("#", 1)[0]
            try:
                pins.append(CondaPin.from_url(url, match["sha256"]))
            except ValueError as exc:
                raise SpecError(str(exc), field="lock", line=number, source=source) from None
    if not explicit:
        raise SpecError("a conda lock needs an @EXPLICIT line", field="lock", source=source)
    return CondaLock(platform, tuple(pins), tuple(pip))
