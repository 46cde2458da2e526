"""Registries for the tests: Debian's ``docker-registry`` started on a free 127.0.0.1 port with
storage of its own (optionally with htpasswd auth), stopped by the test that started it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def unavailable() -> str | None:
    """Why no registry can be started here, or None."""
    if not os.path.exists(REGISTRY_BIN):
        return "no registry: install Debian's docker-registry (scripts/docker/install-registry.sh)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    """A running registry: its address and the path under which tests push."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest the registry serves for ``repository:tag`` (its v2 API)."""
        req = urllib.request.Request(
            f"http://{self.host}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own registry
            return str(resp.headers["Docker-Content-Digest"])


def start_registry(folder: Path, auth: tuple[str, str] | None = None) -> Registry:
    port = free_port()
    lines = [
        "version: 0.1",
        "log: {level: warn}",
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: '127.0.0.1:{port}'}}",
    ]
    if auth is not None:
        import bcrypt

        hashed = bcrypt.hashpw(auth[1].encode(), bcrypt.gensalt(rounds=5)).decode()
        (folder / "htpasswd").write_text(f"{auth[0]}:{hashed}\n")
        lines.append(f"auth: {{htpasswd: {{realm: test, path: {folder / 'htpasswd'}}}}}")
    (folder / "config.yml").write_text("\n".join(lines) + "\n")
    log = open(folder / "registry.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(folder / "config.yml")], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return Registry(port, process)
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the registry did not start: {(folder / 'registry.log').read_text()}")


def stop_registry(registry: Registry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
