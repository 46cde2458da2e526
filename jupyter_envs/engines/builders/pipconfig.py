"""The host's pip configuration, translated for uv.

uv does not read pip.conf. Users behind a private index or a TLS-intercepting proxy have
configured pip already (index URLs, certificates, find-links, constraints), so builds honour
that configuration by passing it to uv through its environment variables. Variables the user
set for uv explicitly always win.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["pip_settings", "uv_environment"]

# pip option → uv environment variable (multi-valued options are space-separated for uv).
_OPTION_TO_UV = {
    "index-url": "UV_DEFAULT_INDEX",
    "extra-index-url": "UV_EXTRA_INDEX_URL",
    "find-links": "UV_FIND_LINKS",
    "constraint": "UV_CONSTRAINT",
    "trusted-host": "UV_INSECURE_HOST",
}
_UV_ALIASES = {"UV_DEFAULT_INDEX": ("UV_INDEX_URL", "UV_INDEX")}


def _config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's own order: global (XDG dirs, /etc), user, site; later files override earlier."""
    files: list[Path] = []
    xdg = environ.get("XDG_CONFIG_DIRS", "/etc/xdg")
    files.extend(Path(d) / "pip" / "pip.conf" for d in xdg.split(os.pathsep) if d)
    files.append(Path("/etc/pip.conf"))
    home = Path(environ.get("HOME", os.path.expanduser("~")))
    files.append(home / ".pip" / "pip.conf")
    files.append(Path(environ.get("XDG_CONFIG_HOME", home / ".config")) / "pip" / "pip.conf")
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return files


def pip_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The pip options that matter to an install, from config files then ``PIP_*`` variables."""
    env = os.environ if environ is None else environ
    settings: dict[str, str] = {}
    names = (*_OPTION_TO_UV, "cert")
    for path in _config_files(env):
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue  # pip itself would complain; a broken file must not break builds
        for section in ("global", "install"):
            if parser.has_section(section):
                for name in names:
                    if parser.has_option(section, name):
                        settings[name] = parser.get(section, name)
    for name in names:
        value = env.get("PIP_" + name.upper().replace("-", "_"))
        if value:
            settings[name] = value
    return settings


def _split(value: str) -> list[str]:
    return [v for v in re.split(r"\s+", value.strip()) if v]


def uv_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables to add for uv so it installs as the host's pip would."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, value in pip_settings(env).items():
        if name == "cert":
            if not env.get("SSL_CERT_FILE"):
                out["SSL_CERT_FILE"] = value
            continue
        var = _OPTION_TO_UV[name]
        if env.get(var) or any(env.get(a) for a in _UV_ALIASES.get(var, ())):
            continue
        out[var] = " ".join(_split(value))
    # pip picks the best version across all indexes; uv by default stops at the first index that
    # has the project at all. Mirror pip, or a partial local mirror listed as an extra index
    # would hide newer releases from the main one.
    if "UV_EXTRA_INDEX_URL" in out and not env.get("UV_INDEX_STRATEGY"):
        out["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return out


def describe(settings: Mapping[str, str]) -> list[str]:
    """Human-readable lines for the build log, with any credentials in URLs masked."""
    return [f"{k}={_mask(v)}" for k, v in sorted(settings.items())]


def _mask(value: str) -> str:
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", value)
