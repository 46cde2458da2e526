"""How the host's package-index settings reach an image build without leaking credentials.

The host's pip configuration (and the spec's own ``--index-url``-style options) become build
args, both for pip and uv; credentials in them are secrets the build must keep out of the image
history, its labels and its logs (:func:`mask_secrets`), and settings that only make sense on
the host's disk (``file://`` indexes, find-links directories, constraint files) are skipped
with a note. Proxies go through Docker's predefined proxy args, which never reach the history.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import pipconfig

if TYPE_CHECKING:
    from ...spec._environment import Environment

__all__ = ["ARG_NAMES", "IndexSettings", "has_index_credentials", "index_settings", "mask_secrets"]

# pip option → (pip variable, uv variable); both tools read their settings from the environment,
# so the values travel as build args and never appear in the Dockerfile text.
_INDEX_ARGS = {
    "index-url": ("PIP_INDEX_URL", "UV_DEFAULT_INDEX"),
    "extra-index-url": ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"),
    "find-links": ("PIP_FIND_LINKS", "UV_FIND_LINKS"),
    "trusted-host": ("PIP_TRUSTED_HOST", "UV_INSECURE_HOST"),
}
ARG_NAMES = (
    *(name for pair in _INDEX_ARGS.values() for name in pair),
    "UV_INDEX_STRATEGY",
)
# Docker's predefined proxy build args: usable in RUN without an ARG line, and then kept out of
# the image history (so proxy credentials never reach it).
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
_CREDENTIALS = re.compile(r"(://)([^/@\s]+)@")


def mask_secrets(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL credentials and each of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _CREDENTIALS.sub(r"\1***@", text)


@dataclass(frozen=True)
class IndexSettings:
    """Index settings for the build, split into what may be seen and what may not."""

    buildargs: dict[str, str]
    secrets: tuple[str, ...]
    notes: tuple[str, ...]
    ca_file: Path | None

    @property
    def has_credentials(self) -> bool:
        return bool(self.secrets)


def index_settings(env: Environment, environ: dict[str, str] | None = None) -> IndexSettings:
    host = dict(os.environ if environ is None else environ)
    settings = pipconfig.pip_settings(host)
    notes: list[str] = []
    values: dict[str, list[str]] = {}
    for name in _INDEX_ARGS:
        if settings.get(name):
            values[name] = settings[name].split()
    # The spec's own options come after the host's: --index-url replaces, the others add.
    for option in env.pip_options:
        opt, _, value = option.partition(" ")
        name = opt.removeprefix("--")
        if name not in _INDEX_ARGS:
            continue
        if name == "index-url":
            values[name] = [value.strip()]
        else:
            values.setdefault(name, []).append(value.strip())
    if "constraint" in settings:
        notes.append("the host pip 'constraint' file is not used inside the image build")
    # Directories and file:// indexes on the host do not exist inside the build container.
    for name in ("index-url", "extra-index-url", "find-links"):
        items = values.get(name, [])
        local = [v for v in items if not v.startswith(("http://", "https://"))]
        if local:
            notes.append(
                f"{name} on the host's disk is not visible to the image build, skipped: "
                + " ".join(local)
            )
            values[name] = [v for v in items if v not in local]
    buildargs: dict[str, str] = {}
    for name, items in values.items():
        if items:
            joined = " ".join(items)
            for var in _INDEX_ARGS[name]:
                buildargs[var] = joined
    if "UV_EXTRA_INDEX_URL" in buildargs:
        # As pip does: best version across every index (see pipconfig.uv_environment).
        buildargs["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    secrets = tuple(
        sorted({m.group(2) for v in buildargs.values() for m in _CREDENTIALS.finditer(v)})
    )
    for var in _PROXY_VARS:
        for spelled in (var, var.lower()):
            if host.get(spelled):
                buildargs[spelled] = host[spelled]
                secrets += tuple(m.group(2) for m in _CREDENTIALS.finditer(host[spelled]))
    ca = settings.get("cert") or host.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    ca_file = Path(ca) if Path(ca).is_file() else None
    return IndexSettings(buildargs, tuple(dict.fromkeys(secrets)), tuple(notes), ca_file)


def has_index_credentials(settings: IndexSettings) -> bool:
    # Proxy credentials travel in predefined args, which never reach the history: only the
    # index settings force the separate install stage.
    return any(
        _CREDENTIALS.search(v) for k, v in settings.buildargs.items() if k.upper() in ARG_NAMES
    )
