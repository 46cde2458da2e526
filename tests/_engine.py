"""What the Docker tests make on the engine, and only that.

A developer's machine may run a Jupyter server with container kernels (and images of its own)
on the same engine as the suite. So the tests never look at "every container" or "every image":
each run builds a tiny base image of its own, ``FROM`` the local test base plus one label,
``jupyter-envs-test.run=<run id>``. Docker copies an image's labels into every image built on it
(intermediate cache layers included) and into every container started from those, so the label
names exactly what this run made: the cleanup removes those things and nothing else, and the leak
checks look for those things and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import uuid

STOCK_BASE = (
    os.environ.get("JUPYTER_ENVS_DEFAULT_BASE_IMAGE") or "jupyter-envs-test/python:bookworm"
)
RUN_LABEL = "jupyter-envs-test.run"
RUN_ID = uuid.uuid4().hex[:12]
RUN_BASE = f"jupyter-envs-test/run-base:{RUN_ID}"


def docker(*args: str, stdin: str | None = None) -> str:
    """``docker ARGS`` output; raises CalledProcessError (with stderr) when it fails."""
    # The legacy builder: the one the engine here has (and the one the docker SDK uses).
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    return subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, check=True, env=env
    ).stdout


def unavailable() -> str | None:
    """Why the Docker tests cannot run here, or None."""
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", STOCK_BASE], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no docker client or engine: {exc}"
    if done.returncode == 0:
        return None
    if "No such image" in done.stderr:
        return f"base image {STOCK_BASE} is missing: run scripts/docker/build-base-image.sh"
    return f"no Docker engine ({done.stderr.strip()[:200]}): run scripts/docker/install-engine.sh"


def ensure_run_base() -> str:
    """Builds (once per run) the labelled base image every Docker test builds on; its tag."""
    if not docker("images", "-q", RUN_BASE).strip():
        docker(
            "build", "-q", "-t", RUN_BASE, "-",
            stdin=f"FROM {STOCK_BASE}\nLABEL {RUN_LABEL}={RUN_ID}\n",
        )  # fmt: skip
    return RUN_BASE


def run_containers() -> list[str]:
    """Ids of the containers this run made (any state)."""
    return docker("ps", "-aq", "--no-trunc", "--filter", f"label={RUN_LABEL}={RUN_ID}").split()


def run_images(keep_base: bool = True) -> list[str]:
    """Ids of the images this run made (cache layers included), newest first."""
    ids = docker("images", "-aq", "--no-trunc", "--filter", f"label={RUN_LABEL}={RUN_ID}").split()
    if keep_base:
        base = docker("images", "-q", "--no-trunc", RUN_BASE).strip()
        ids = [i for i in ids if i != base]
    return list(dict.fromkeys(ids))


def remove_run_images(keep_base: bool = True) -> list[str]:
    """Removes this run's images (children before parents); returns those still there."""
    for _ in range(6):
        left = run_images(keep_base)
        if not left:
            break
        subprocess.run(["docker", "rmi", "-f", *left], capture_output=True, check=False)
    if not keep_base:
        subprocess.run(["docker", "rmi", "-f", RUN_BASE], capture_output=True, check=False)
    return run_images(keep_base)
