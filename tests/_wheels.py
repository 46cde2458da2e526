"""Wheels made by the tests, so that no index knows them: a find-links folder the test fills."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

__all__ = ["slow_project", "tiny_wheel"]


def tiny_wheel(folder: Path, version: str) -> None:
    """A pure-Python wheel of ``jenvs-tinypkg`` (made here: the index must not know it)."""
    files = {
        "jenvs_tinypkg/__init__.py": f'VERSION = "{version}"\n',
        f"jenvs_tinypkg-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: jenvs-tinypkg\nVersion: {version}\n"
        ),
        f"jenvs_tinypkg-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: jupyter-envs-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = f"jenvs_tinypkg-{version}.dist-info/RECORD"
    lines = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        lines.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files[record] = "\n".join([*lines, f"{record},,"]) + "\n"
    with zipfile.ZipFile(folder / f"jenvs_tinypkg-{version}-py3-none-any.whl", "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)


def slow_project(folder: Path, seconds: int = 300) -> Path:
    """A local project whose wheel takes ``seconds`` to build (an in-tree PEP 517 backend that
    sleeps): a build that is still running when a test cancels it. Needs nothing from an index."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "jenvs-slowpkg"\nversion = "1.0"\n\n'
        '[build-system]\nrequires = []\nbuild-backend = "slow_backend"\nbackend-path = ["."]\n'
    )
    (folder / "slow_backend.py").write_text(
        "import time\n\n\n"
        "def get_requires_for_build_wheel(config_settings=None):\n    return []\n\n\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        f"    time.sleep({seconds})\n"
        "    raise RuntimeError('the slow test package never builds')\n"
    )
    return folder
