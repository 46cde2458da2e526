"""Listing benchmark: ``GET /jupyter-envs/api/environments`` with 500 and 5,000 environments.

For each size, a store is filled straight through the catalogue (records like real ones, no
builds) and a real ``jupyter server`` with the extension serves it. Timed, alternating round by
round with the baseline of the same run:

- one client: a GET of the whole list (HTTP, a new connection each time, body read in full)
  against reading the same environments from the catalogue directly in this process
  (``Workspace.page()``, what the CLI does);
- 20 clients at once: the latency of each of 20 simultaneous GETs;
- after a change: the first GET after the catalogue changed (its listing is read and
  serialized anew; later ones are served from memory until the next change).

Targets (issue #16): 500 environments in <= 20 ms p50 for one client, <= 100 ms p50 with 20 at
once. Usage: ``python benchmarks/list.py [--sizes 500 5000] [--rounds 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._timing import alternate, ratio, spread, verdict
from jupyter_envs.engines.store import Workspace
from tests._catalogue import fill
from tests._lab import jupyter_server

PATH = "/jupyter-envs/api/environments"


def get(url: str, token: str) -> float:
    """Seconds for one GET, the whole body read."""
    request = urllib.request.Request(  # noqa: S310 - our own local server
        url, headers={"Authorization": f"token {token}"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local server
        response.read()
    return time.perf_counter() - started


def parallel(url: str, token: str, clients: int) -> list[float]:
    """The latencies of ``clients`` GETs started together."""
    barrier = threading.Barrier(clients)
    latencies: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        took = get(url, token)
        with lock:
            latencies.append(took)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def touch(ws: Workspace, name: str) -> None:
    """Change the catalogue (an environment's description), as a build or a remove would."""
    with ws.transaction() as db:
        db.execute(
            "UPDATE environments SET description = description || '.' WHERE name = ?", (name,)
        )


def run(size: int, rounds: int, clients: int) -> dict[str, float]:
    """Measure one catalogue size; print the figures; return the medians (seconds)."""
    with tempfile.TemporaryDirectory(prefix="jupyter-envs-list-") as tmp:
        home = Path(tmp)
        (home / "root").mkdir()
        ws = Workspace(home / "data" / "jupyter_envs", home / "data" / "kernels")
        names = fill(ws, size)
        with jupyter_server("server", home / "root", home) as server:
            url = server.base + PATH
            count = len(server.api("GET", PATH))
            assert count == size, f"the server listed {count} of {size} environments"
            times = alternate(
                {
                    "server": lambda: get(url, server.token),
                    "direct": lambda: float(_timed(ws.page)),
                },
                rounds,
            )
            together = [
                t for _ in range(max(3, rounds // 3)) for t in parallel(url, server.token, clients)
            ]
            cold = []
            for i in range(max(3, rounds // 3)):
                touch(ws, names[i])
                cold.append(get(url, server.token))
        value, text = ratio(times["server"], times["direct"])
        print(f"\n{size} environments:")
        print(f"  GET, one client:          {spread(times['server'], 'ms', 1e3)}")
        print(f"  catalogue read directly:  {spread(times['direct'], 'ms', 1e3)}")
        print(f"  ratio server / direct:    {text}")
        print(f"  GET, {clients} clients at once: {spread(together, 'ms', 1e3)}")
        print(f"  first GET after a change: {spread(cold, 'ms', 1e3)}")
        return {
            "single": statistics.median(times["server"]),
            "parallel": statistics.median(together),
            "ratio": value,
        }


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    results = {size: run(size, args.rounds, args.clients) for size in args.sizes}
    if 500 in results:
        single, together = results[500]["single"], results[500]["parallel"]
        print(
            f"\ntarget, 500 environments, one client <= 20 ms: {single * 1e3:.1f} ms "
            f"{verdict(single, at_most=0.020)}"
        )
        print(
            f"target, 500 environments, {args.clients} clients <= 100 ms: {together * 1e3:.1f} ms "
            f"{verdict(together, at_most=0.100)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
