"""Telling requirements.txt, environment.yml, Dockerfile, PEP 723 and pylock.toml text apart."""

from __future__ import annotations

import re

import yaml

from ..errors import SpecError

REQUIREMENTS = "requirements.txt"
CONDA = "environment.yml"
DOCKERFILE = "Dockerfile"
#: A PEP 723 ``# /// script`` block (uv run scripts, marimo sandboxes, juv's notebook cell).
SCRIPT = "PEP 723 script block"
#: A PEP 751 lock file.
PYLOCK = "pylock.toml"
FORMATS = (REQUIREMENTS, CONDA, DOCKERFILE, SCRIPT, PYLOCK)

_ALIASES = {
    "requirements": REQUIREMENTS,
    "requirements.txt": REQUIREMENTS,
    "pip": REQUIREMENTS,
    "txt": REQUIREMENTS,
    "conda": CONDA,
    "environment.yml": CONDA,
    "environment.yaml": CONDA,
    "env.yml": CONDA,
    "yaml": CONDA,
    "yml": CONDA,
    "dockerfile": DOCKERFILE,
    "docker": DOCKERFILE,
    "pep723": SCRIPT,
    "script": SCRIPT,
    "pylock": PYLOCK,
    "pylock.toml": PYLOCK,
}
_SCRIPT_START = re.compile(r"(?m)^# /// script\s*$")
_PYLOCK_KEY = re.compile(r"(?m)^lock-version\s*=")
_DOCKER_FIRST = re.compile(r"^(FROM|ARG)\s+\S", re.IGNORECASE)
# Other Dockerfile instructions (upper case, followed by an argument that cannot continue a
# requirement): such text is a Dockerfile missing its FROM, and the Dockerfile check says so,
# where reading it as requirements.txt reported "not a valid requirement".
_DOCKER_OTHER = re.compile(
    r"^(RUN|COPY|ADD|ENV|WORKDIR|USER|CMD|ENTRYPOINT|EXPOSE|LABEL|VOLUME|SHELL|ONBUILD|"
    r"HEALTHCHECK|STOPSIGNAL|MAINTAINER)\s+[^\s<>=!~;\[@(,]"
)
_CONDA_KEYS = {"dependencies", "channels", "variables"}


def other_formats_hint(chosen: str) -> str:
    """How to read text as another format than ``chosen`` (for the note a front-end prints)."""
    others = {REQUIREMENTS: "requirements", CONDA: "conda", DOCKERFILE: "dockerfile"}
    if chosen not in others:  # a PEP 723 block or a pylock.toml: nothing else looks like one
        return " or ".join(f"--format {word}" for word in others.values())
    return " or ".join(f"--format {word}" for fmt, word in others.items() if fmt != chosen)


def normalize_format(value: str) -> str:
    """Map user spellings (``pip``, ``conda``, ``docker``…) to one of :data:`FORMATS`."""
    try:
        return _ALIASES[value.strip().lower()]
    except KeyError:
        raise SpecError(
            f"unknown format {value!r} (use one of: requirements, conda, dockerfile, pep723, "
            "pylock)",
            field="format",
        ) from None


def detect_format(text: str) -> str:
    """Guess the format of spec text.

    A ``# /// script`` block means PEP 723; ``lock-version =`` with ``[[packages]]`` a
    pylock.toml. Comment lines are skipped. A first instruction of ``FROM``/``ARG`` (or another
    Dockerfile instruction) means a Dockerfile; a YAML document start (``---``) or directive, a YAML
    mapping with ``dependencies``/``channels``/``variables``/``name``, or a YAML list, means
    environment.yml; anything else is read as requirements.txt (whose own parser then reports
    any bad line).
    """
    # A PEP 723 block is all comments: look for it before comments are skipped.
    if _SCRIPT_START.search(text):
        return SCRIPT
    if _PYLOCK_KEY.search(text) and "[[packages]]" in text:
        return PYLOCK
    lines = [ln.strip() for ln in text.splitlines()]
    meaningful = [ln for ln in lines if ln and not ln.startswith("#")]
    # A YAML document start ("---", after a comment block or not) or directive ("%YAML 1.2")
    # says YAML: an environment file, whatever follows.
    if meaningful and (
        meaningful[0] in ("---", "...") or meaningful[0].startswith(("%YAML", "%TAG", "--- "))
    ):
        return CONDA
    first = meaningful[0] if meaningful else ""
    if not first:
        # field="text": every SpecError names what is at fault; here it is the text as a whole.
        raise SpecError(
            "the spec is empty: write requirements, an environment.yml or a Dockerfile",
            field="text",
        )
    if _DOCKER_FIRST.match(first) or _DOCKER_OTHER.match(first):
        return DOCKERFILE
    if first == "-" or first.startswith("- "):
        # A YAML list ("- numpy"): never a pip option, so the conda parser, which says an
        # environment file must be a mapping, explains it better than "pip option '-'".
        return CONDA
    if re.match(r"^[A-Za-z_]+\s*:", first):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            # A line like "name:" that is not valid YAML is still meant as YAML: let the conda
            # parser report where it breaks.
            return CONDA
        if isinstance(data, dict) and (_CONDA_KEYS & set(data) or "name" in data):
            return CONDA
    return REQUIREMENTS
