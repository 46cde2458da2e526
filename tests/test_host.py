"""Interpreter discovery and the host pip configuration handed to uv."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.version import Version

from jupyter_envs.engines.builders import pipconfig
from jupyter_envs.engines.builders.pythons import find_interpreters, select_interpreter
from jupyter_envs.errors import PythonNotFoundError, SpecError


def test_default_interpreter_matches_running_python() -> None:
    interp = select_interpreter(None)
    assert (interp.version.major, interp.version.minor) == sys.version_info[:2]


def test_interpreters_are_real_and_newest_first() -> None:
    found = find_interpreters()
    assert found, "at least the running interpreter is found"
    versions = [i.version for i in found]
    assert versions == sorted(versions, reverse=True)
    assert all(Path(i.path).exists() for i in found)


def test_missing_version_lists_what_was_found() -> None:
    with pytest.raises(PythonNotFoundError) as info:
        select_interpreter("3.2")
    message = str(info.value)
    assert "'3.2'" in message
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert current in message
    assert "versions found:" in message


def test_version_ranges_are_understood() -> None:
    assert select_interpreter(">=3.9").version >= Version("3.9")
    assert select_interpreter(f"=={sys.version.split()[0]}").version == Version(
        sys.version.split()[0]
    )
    with pytest.raises(SpecError, match="invalid Python version"):
        select_interpreter(">>3")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_pip_config_files_and_variables_reach_uv(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write(tmp_path / "xdg" / "pip" / "pip.conf", "[global]\nconstraint = /c.txt\n")
    _write(
        home / ".config" / "pip" / "pip.conf",
        "[global]\nindex-url = https://user:secret@pypi.example/simple\n"
        "extra-index-url = file:///a/simple\n    file:///b/simple\ncert = /ca.pem\n",
    )
    environ = {
        "HOME": str(home),
        "XDG_CONFIG_DIRS": str(tmp_path / "xdg"),
        "PIP_FIND_LINKS": "/wheels",
    }
    uv = pipconfig.uv_environment(environ)
    assert uv["UV_DEFAULT_INDEX"] == "https://user:secret@pypi.example/simple"
    assert uv["UV_EXTRA_INDEX_URL"] == "file:///a/simple file:///b/simple"
    assert uv["UV_FIND_LINKS"] == "/wheels"
    assert uv["UV_CONSTRAINT"] == "/c.txt"
    assert uv["SSL_CERT_FILE"] == "/ca.pem"
    # pip looks at every index for the best version; uv must too, or extra indexes shadow.
    assert uv["UV_INDEX_STRATEGY"] == "unsafe-best-match"
    described = " ".join(pipconfig.describe(pipconfig.pip_settings(environ)))
    assert "secret" not in described
    assert "***@pypi.example" in described


def test_explicit_uv_settings_win(tmp_path: Path) -> None:
    _write(tmp_path / "pip.conf", "[global]\nindex-url = https://a/simple\ncert = /ca.pem\n")
    environ = {
        "HOME": str(tmp_path / "nohome"),
        "XDG_CONFIG_DIRS": str(tmp_path / "none"),
        "PIP_CONFIG_FILE": str(tmp_path / "pip.conf"),
        "UV_INDEX_URL": "https://mine/simple",
        "SSL_CERT_FILE": "/mine.pem",
    }
    assert pipconfig.uv_environment(environ) == {}
