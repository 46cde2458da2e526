"""Telling requirements.txt, environment.yml and Dockerfile text apart."""

from __future__ import annotations

import re

import yaml

from .errors import SpecError

REQUIREMENTS = "requirements.txt"
CONDA = "environment.yml"
DOCKERFILE = "Dockerfile"
FORMATS = (REQUIREMENTS, CONDA, DOCKERFILE)

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
}
_DOCKER_FIRST = re.compile(r"^(FROM|ARG)\s+\S", re.IGNORECASE)
_CONDA_KEYS = {"dependencies", "channels", "variables"}


def normalize_format(value: str) -> str:
    """Map user spellings (``pip``, ``conda``, ``docker``…) to one of :data:`FORMATS`."""
    try:
        return _ALIASES[value.strip().lower()]
    except KeyError:
        raise SpecError(
            f"unknown format {value!r} (use one of: requirements, conda, dockerfile)",
            field="format",
        ) from None


def detect_format(text: str) -> str:
    """Guess the format of spec text.

    A first instruction of ``FROM``/``ARG`` means a Dockerfile; a YAML mapping with
    ``dependencies``/``channels``/``variables`` means environment.yml; anything else is read as
    requirements.txt (whose own parser then reports any bad line).
    """
    lines = [ln.strip() for ln in text.splitlines()]
    first = next((ln for ln in lines if ln and not ln.startswith("#")), "")
    if not first:
        raise SpecError("the spec is empty: write requirements, an environment.yml or a Dockerfile")
    if _DOCKER_FIRST.match(first):
        return DOCKERFILE
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
