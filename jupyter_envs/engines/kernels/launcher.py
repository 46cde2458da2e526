"""The foreground container launcher, for clients that ignore kernel provisioners.

It is the ``argv`` of a container kernel's kernelspec (VS Code runs it; JupyterLab uses the
provisioner, which starts the very same container through :mod:`.containers`)::

    python -m jupyter_envs.engines.kernels.launcher --image IMG -f CONNECTION_FILE \
        [--env NAME] [--spec-hash H] [--cpu N] [--memory 4g] [--gpu N] \
        [--secret NAME]... [--env-var KEY=VALUE]...

It runs the container in the foreground, forwards SIGINT to the kernel, stops the container on
SIGTERM/SIGHUP (or when its parent goes away) and always removes it before exiting.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from ...errors import EnvsError
from .containers import (
    KernelContainer,
    connect,
    remove_container,
    signal_container,
    start_kernel_container,
)
from .settings import ContainerSettings

__all__ = ["main"]

_KERNEL_FILE = re.compile(r"kernel-(.+)\.json\Z")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_envs.engines.kernels.launcher",
        description="Run a Jupyter kernel in a container, in the foreground.",
    )
    ContainerSettings.add_flags(parser)
    parser.add_argument("-f", dest="connection_file", required=True, help="connection file")
    parser.add_argument("--kernel-id", default=None, help="default: from the connection file")
    return parser.parse_args(argv)


def _run(args: argparse.Namespace) -> int:
    settings = ContainerSettings.from_flags(args)
    info = json.loads(Path(args.connection_file).read_text())
    match = _KERNEL_FILE.search(os.path.basename(args.connection_file))
    kernel_id = args.kernel_id or (match.group(1) if match else str(uuid.uuid4()))

    # Signals only queue work: the main thread does the Docker calls, never a signal handler
    # interrupting one midway.
    events: queue.Queue[int] = queue.Queue()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: events.put(s))

    client = connect()
    container: KernelContainer | None = None
    try:
        container = start_kernel_container(
            client,
            settings,
            connection_info=info,
            kernel_id=kernel_id,
            cwd=os.getcwd(),
            environ=os.environ,
        )
        exit_code: list[int] = []

        def wait_exit(cid: str) -> None:
            # A separate client: the main thread keeps using its own for kill/inspect.
            waiter = connect()
            try:
                exit_code.append(int(waiter.api.wait(cid, timeout=None)["StatusCode"]))
            except Exception:
                exit_code.append(1)
            finally:
                waiter.close()
                events.put(0)

        threading.Thread(target=wait_exit, args=(container.id,), daemon=True).start()
        parent = os.getppid()
        stopping = False
        while not exit_code:
            try:
                got = events.get(timeout=1.0)
            except queue.Empty:
                # The client died without telling us (no SIGTERM): do not outlive it.
                got = signal.SIGTERM if os.getppid() != parent and not stopping else -1
            if got == signal.SIGINT:
                signal_container(client, container.id, signal.SIGINT)
            elif got in (signal.SIGTERM, signal.SIGHUP) and not stopping:
                stopping = True
                signal_container(client, container.id, signal.SIGTERM)
                timer = threading.Timer(5.0, events.put, args=(signal.SIGKILL,))
                timer.daemon = True
                timer.start()
            elif got == signal.SIGKILL:
                signal_container(client, container.id, signal.SIGKILL)
        return exit_code[0]
    finally:
        if container is not None:
            remove_container(client, container.id, container.runtime_dir)
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jupyter_envs.engines.kernels.launcher``; returns the exit status."""
    args = _parse_args(argv)
    try:
        return _run(args)
    except EnvsError as exc:
        print(f"jupyter-envs: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
