"""The verbs shared by ``jupyter envs`` and ``%envs``: one parser, one implementation each.

Each verb takes parsed arguments, a façade (:class:`Verbs`: the manager for the CLI, the kernel
client of :mod:`jupyter_envs.clients.envs` for the magic) and an :class:`Output`, and writes
text; the CLI and the line magic differ only in how they show progress and where the text goes.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..engines.kernels.kernelspec import kernel_name, swarm_kernel_name
from ..engines.store import STATUSES, EnvQuery, Page, PushRecord, VersionRecord
from ..errors import UsageError
from ..events import Event
from ..facade._maintenance import EXPORT_FORMATS
from ..facade.carry import RestorePlan, read_notebook
from ..facade.cluster import Placement
from ..facade.manager import BuildResult, EnvManager, Garbage
from ..spec import curated
from ..spec._carried import Carried
from ..spec._environment import Environment
from ..spec._validate import read_spec_file
from ._restore import notebook_path, run_notebook, write_juv

if TYPE_CHECKING:
    from ..engines.kernels.k8s import K8sSettings

__all__ = ["Output", "Verbs", "make_parser", "restore_command", "run_command"]

EventSink = Callable[[Event], None]


class Verbs(Protocol):
    """The façade verbs the commands call (EnvManager and EnvsClient both have them)."""

    def names(self) -> list[str]: ...
    def page(self, query: EnvQuery | None = None) -> Page: ...
    def record(self, name: str, version: int | None = None) -> VersionRecord: ...
    def get(self, name: str, version: int | None = None) -> Environment: ...
    def versions(self, name: str) -> list[VersionRecord]: ...
    def build(
        self,
        env: Environment,
        *,
        force: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> BuildResult: ...
    def build_named(
        self, name: str, *, force: bool = False, on_event: Callable[[Event], None] | None = None
    ) -> BuildResult: ...
    def remove(self, name: str, version: int | None = None) -> list[VersionRecord]: ...
    def export(self, name: str, version: int | None = None, fmt: str = "lock") -> str: ...
    def log_path(self, name: str) -> Path: ...
    def gc(self, *, remove: bool = True) -> list[Garbage]: ...
    def restore_plan(
        self, record: Carried, *, name: str | None = None, re_resolve: bool = False
    ) -> RestorePlan: ...
    def where(self, name: str | None = None) -> list[Placement]: ...
    def push(
        self,
        name: str,
        version: int | None = None,
        *,
        registry: str | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> PushRecord: ...
    def pushes(self, name: str, version: int | None = None) -> list[PushRecord]: ...
    def k8s_pod(
        self,
        name: str,
        version: int | None = None,
        *,
        image: str | None = None,
        settings: K8sSettings | None = None,
    ) -> dict[str, Any]: ...
    def restore(
        self,
        record: Carried,
        *,
        name: str | None = None,
        re_resolve: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> BuildResult: ...


class Output(Protocol):
    """Where a verb writes: ``say`` for results, ``event`` for build progress."""

    def say(self, text: str) -> None:
        """Print result text."""

    def event(self, event: Event) -> None:
        """Show a build event."""


def _version_arg(value: str) -> int:
    try:
        number = int(value.lstrip("v"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a version number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("versions start at 1")
    return number


class RaisingParser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting (a magic must not exit the kernel)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _page_size(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("a page holds at least 1 environment")
    return number


_NAME_RULE = "1-63 lowercase letters, digits, '-', '_' or '.'"
_NAME_HELP = f"the environment's name ({_NAME_RULE})"
_VERSION_HELP = "a version number (default: the latest), e.g. 3 or v3"


def make_parser(prog: str) -> argparse.ArgumentParser:
    """The parser for every verb; every argument has a help text (a test checks it)."""
    parser = RaisingParser(prog=prog, description="Build and manage jupyter-envs environments.")
    sub = parser.add_subparsers(
        dest="verb", required=True, parser_class=RaisingParser, metavar="VERB"
    )
    p = sub.add_parser("list", help="list registered environments (filters and pages)")
    p.add_argument("--prefix", default="", help="only names that start with this")
    p.add_argument("--backend", help="only environments built by this builder (uv, docker...)")
    p.add_argument("--status", choices=STATUSES, help="only environments with this status")
    p.add_argument(
        "--limit", type=_page_size, help="show at most this many (default: all)", metavar="N"
    )
    p.add_argument(
        "--after",
        default="",
        help="start after this name (the next page's start, printed under a limited list)",
        metavar="NAME",
    )
    p = sub.add_parser("show", help="show an environment's spec, lock and kernel")
    p.add_argument("name", help=_NAME_HELP)
    p.add_argument("--version", type=_version_arg, help=_VERSION_HELP)
    p = sub.add_parser("versions", help="list an environment's versions")
    p.add_argument("name", help=_NAME_HELP)
    p = sub.add_parser("build", help="build a registered or curated environment")
    p.add_argument("name", help="a registered or curated environment's name")
    p.add_argument(
        "--force", action="store_true", help="rebuild even if an identical build is registered"
    )
    p = sub.add_parser("create", help="create and build an environment from a file")
    p.add_argument(
        "-f",
        "--file",
        required=True,
        help="requirements.txt, environment.yml, Dockerfile, pylock.toml, or a script with a "
        "PEP 723 block",
    )
    p.add_argument("name", help=f"the name to register it under ({_NAME_RULE})")
    p.add_argument(
        "--format", help="requirements, conda, dockerfile, pep723 or pylock (default: detected)"
    )
    p.add_argument("--python", help="Python version, e.g. 3.11 (default: the file's, or uv's)")
    p.add_argument(
        "--force", action="store_true", help="rebuild even if an identical build is registered"
    )
    p = sub.add_parser("remove", help="remove an environment (or one version) and its kernels")
    p.add_argument("name", help=_NAME_HELP + "; also cleans leftovers of failed first builds")
    p.add_argument("--version", type=_version_arg, help="remove only this version")
    p = sub.add_parser("export", help="print an environment as text")
    p.add_argument("name", help=_NAME_HELP)
    p.add_argument("--version", type=_version_arg, help=_VERSION_HELP)
    p.add_argument(
        "--format",
        default="lock",
        choices=list(EXPORT_FORMATS),
        help="lock: exact versions (default); requirements, conda: the spec; json: everything; "
        "pep723: an inline script block pinning the lock's versions (uv run, juv, marimo); "
        "pylock: a PEP 751 pylock.toml",
    )
    p.add_argument("-o", "--output", help="write to this file instead of printing")
    p = sub.add_parser("logs", help="print the log of an environment's latest build")
    p.add_argument("name", help=_NAME_HELP)
    p = sub.add_parser("restore", help="build the environment a notebook carries (from its lock)")
    p.add_argument(
        "notebook",
        nargs="?",
        help="the .ipynb file whose metadata carries the environment (in a notebook, %%envs "
        "restore alone reads this notebook as last saved)",
    )
    p.add_argument("--name", help="register it under this name (default: the carried name)")
    p.add_argument(
        "--re-resolve",
        action="store_true",
        help="resolve the carried spec anew instead of installing the locked versions",
    )
    p.add_argument(
        "--no-activate",
        action="store_true",
        help="in a notebook: build only, do not switch the notebook to it",
    )
    p = sub.add_parser(
        "run", help="restore a notebook's environment, then execute the notebook on it"
    )
    p.add_argument("notebook", help="the .ipynb file to execute")
    p.add_argument("-o", "--output", help="write the executed notebook (with outputs) here")
    p.add_argument("--name", help="register the environment under this name")
    p.add_argument(
        "--re-resolve",
        action="store_true",
        help="resolve the carried spec anew instead of installing the locked versions",
    )
    p = sub.add_parser(
        "juv",
        help="write the environment a notebook carries the way juv keeps it (a PEP 723 cell and "
        "metadata uv.lock), so juv and uv open it with the same versions",
    )
    p.add_argument("notebook", help="the .ipynb file (saved, and closed in JupyterLab)")
    p = sub.add_parser(
        "where", help="where each environment's kernel can run: local, container, swarm, k8s"
    )
    p.add_argument("name", nargs="?", help="only this environment")
    p = sub.add_parser(
        "push", help="push a Docker environment's image to a registry (for Swarm kernels)"
    )
    p.add_argument("name", help=_NAME_HELP)
    p.add_argument("--version", type=_version_arg, help=_VERSION_HELP)
    p.add_argument(
        "--registry",
        help="host[:port][/path] (default: the spec's registry, else $JUPYTER_ENVS_REGISTRY)",
    )
    p = sub.add_parser(
        "k8s",
        help="the Kubernetes pod of a Docker environment's kernel, checked; with -o, a "
        "kernelspec for gateway_provisioners' KubernetesProvisioner",
    )
    p.add_argument("name", help=_NAME_HELP)
    p.add_argument("--version", type=_version_arg, help=_VERSION_HELP)
    p.add_argument("--image", help="the image as the cluster pulls it (default: the local tag)")
    p.add_argument("--namespace", default="default", help="the pods' namespace (default)")
    p.add_argument(
        "--secret-name",
        default="jupyter-envs-secrets",
        help="the Kubernetes Secret holding the spec's secrets, one key each",
    )
    p.add_argument("-o", "--output", help="write the kernelspec into this kernels folder")
    sub.add_parser("curated", help="list the curated environments")
    sub.add_parser(
        "panel", help="in a notebook: show the widget panel (create, build, activate, remove)"
    )
    p = sub.add_parser(
        "gc",
        help="remove Docker images of removed environments and containers of dead kernels",
    )
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    return parser


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def cmd_list(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    rows = [["NAME", "VERSION", "STATUS", "BACKEND", "PYTHON", "KERNEL", "UPDATED"]]
    query = EnvQuery(
        prefix=args.prefix,
        backend=args.backend,
        status=args.status,
        after=args.after,
        limit=args.limit,
    )
    page = mgr.page(query)
    for item in page.items:
        rec = item.record
        rows.append(
            [
                rec.name,
                str(rec.version),
                rec.status,
                rec.backend,
                rec.python_version or "-",
                rec.kernel_name or "-",
                _when(rec.created),
            ]
        )
    filtered = query != EnvQuery(limit=query.limit)
    if len(rows) > 1:
        out.say(_table(rows))
    elif filtered:
        out.say("No environment matches.")
    else:
        out.say("No environments yet. Create one with %%env NAME or 'jupyter envs create'.")
    if page.next_after is not None:
        out.say(f"(more: add --after {page.next_after})")


def cmd_show(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    rec = mgr.record(args.name, args.version)
    env = mgr.get(args.name, rec.version)
    lines = [
        f"{rec.name} v{rec.version} ({rec.status}, {rec.backend} builder)",
        f"  spec hash:   {rec.spec_hash}",
        f"  python:      {rec.python_version or env.effective_python() or 'default'}",
        f"  requires:    {', '.join(env.all_pip_requirements()) or '-'}",
        f"  kernel:      {rec.kernel_name or '- (not built)'}",
        f"  artifact:    {rec.artifact or '-'}",
    ]
    if env.description:
        lines.insert(1, f"  description: {env.description}")
    if rec.build_seconds is not None:
        lines.append(f"  build time:  {rec.build_seconds:.1f} s")
    if rec.lock:
        locked = [ln for ln in rec.lock.splitlines() if ln.strip()]
        lines.append(
            f"  lock:        {len(locked)} packages (jupyter envs export {rec.name} --format lock)"
        )
    if env.env_vars:
        lines.append(f"  env vars:    {', '.join(sorted(env.env_vars))}")
    lines.extend(f"  pushed:      {p.pinned}" for p in mgr.pushes(rec.name, rec.version))
    out.say("\n".join(lines))


def cmd_versions(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    rows = [["VERSION", "STATUS", "HASH", "KERNEL", "BUILD", "CREATED"]]
    for rec in mgr.versions(args.name):
        build = f"{rec.build_seconds:.1f}s" if rec.build_seconds is not None else "-"
        rows.append(
            [
                str(rec.version),
                rec.status,
                rec.spec_hash[:12],
                rec.kernel_name or "-",
                build,
                _when(rec.created),
            ]
        )
    out.say(_table(rows))


def _built(result: BuildResult, out: Output) -> None:
    out.say(result.summary())


def cmd_build(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    _built(mgr.build_named(args.name, force=args.force, on_event=out.event), out)


def cmd_create(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    path = Path(args.file)
    env = Environment.from_text(
        args.name,
        read_spec_file(path, "file"),
        format=args.format,
        base_dir=path.parent,  # -r, -c, -e and local paths are the file's neighbours
        source=str(path),
    )
    if args.python:
        env.python.version = args.python
    out.say(f"Read {path} as {env.detected_format}.")
    _built(mgr.build(env, force=args.force, on_event=out.event), out)


def cmd_remove(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    removed = mgr.remove(args.name, args.version)
    if not removed:
        out.say(f"Removed what failed builds of {args.name} left (it was never registered).")
        return
    versions = ", ".join(f"v{r.version}" for r in removed)
    out.say(f"Removed {args.name} ({versions}) and its kernelspecs.")


def cmd_export(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    text = mgr.export(args.name, args.version, args.format)
    if args.output:
        Path(args.output).write_text(text)
        out.say(f"Wrote {args.output}")
    else:
        out.say(text.rstrip("\n"))


def cmd_logs(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    path = mgr.log_path(args.name)
    # Logs can be long: stream them out a line at a time rather than reading them whole.
    with open(path) as handle:
        for line in handle:
            out.say(line.rstrip("\n"))


def _local_manager(mgr: Verbs, verb: str, why: str = "builds in this process") -> EnvManager:
    if not isinstance(mgr, EnvManager):
        raise UsageError(f"'{verb}' {why}: run 'jupyter envs {verb} NOTEBOOK' in a terminal")
    return mgr


def cmd_restore(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    restore_command(args, mgr, out)


def restore_command(args: argparse.Namespace, mgr: Verbs, out: Output) -> BuildResult:
    """Show what the notebook's record would install, then build it."""
    record = read_notebook(notebook_path(args.notebook))
    for note in mgr.restore_plan(record, name=args.name, re_resolve=args.re_resolve).notes():
        out.say(f"  {note}")
    result = mgr.restore(record, name=args.name, re_resolve=args.re_resolve, on_event=out.event)
    _built(result, out)
    return result


def cmd_run(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    manager = _local_manager(mgr, args.verb)
    result = restore_command(args, mgr, out)
    output = Path(args.output) if args.output else None
    run_notebook(result.kernel_name, Path(args.notebook), output, manager.ws.kernels_dir)
    out.say(
        f"{args.notebook} ran on {result.kernel_name}" + (f"; wrote {output}" if output else "")
    )


def cmd_juv(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    # Writing the file under a notebook open in JupyterLab would fight its unsaved copy.
    _local_manager(mgr, "juv", "rewrites the notebook file, which an open notebook would overwrite")
    block, packages = write_juv(Path(args.notebook))
    out.say(block.rstrip("\n"))
    out.say(
        f"Wrote this PEP 723 cell and a uv.lock of {packages} packages into {args.notebook} "
        "(run again after switching it to another environment, to keep them in step)."
    )


def cmd_where(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    places = mgr.where(args.name)
    rows = [["NAME", "VERSION", "LOCAL", "CONTAINER", "SWARM", "K8S"]]
    notes: list[str] = []
    for item in places:
        cells = [item.name, f"v{item.version}"]
        for place in ("local", "container", "swarm", "k8s"):
            said = item.places[place]
            cells.append(said.split(":", 1)[0])
            if said != "yes" and ":" in said:
                notes.append(f"{item.name} {place}: {said.split(':', 1)[1].strip()}")
        rows.append(cells)
    out.say(_table(rows))
    for note in notes:
        out.say(f"  {note}")


def cmd_push(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    pushed = mgr.push(args.name, args.version, registry=args.registry, on_event=out.event)
    out.say(f"{pushed.name} v{pushed.version} is in {pushed.registry} as {pushed.pinned}")
    kernel = swarm_kernel_name(kernel_name(pushed.name, pushed.version))
    out.say(f"  kernel: {kernel} (runs it as a Docker Swarm service)")


def cmd_k8s(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    import yaml

    from ..engines.kernels.k8s import K8sSettings

    settings = K8sSettings(namespace=args.namespace, secret_name=args.secret_name)
    if args.output:
        manager = _local_manager(mgr, "k8s", "writes a kernelspec on this machine")
        folder, _pod = manager.k8s_kernelspec(
            args.name, Path(args.output), args.version, image=args.image, settings=settings
        )
        out.say(f"Wrote the KubernetesProvisioner kernelspec {folder}")
        return
    pod = mgr.k8s_pod(args.name, args.version, image=args.image, settings=settings)
    out.say(yaml.safe_dump(pod, sort_keys=False).rstrip("\n"))


def cmd_panel(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    # %envs panel is handled by the notebook front-end before parsing; a terminal has no widgets.
    raise UsageError("the panel is shown in a notebook: run %envs panel in a cell")


def cmd_curated(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    rows = [["NAME", "DESCRIPTION"]]
    rows.extend([name, curated.get(name).description] for name in curated.names())
    out.say(_table(rows))


def cmd_gc(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    remove = not args.dry_run
    verb = "would remove" if args.dry_run else "removed"
    found = mgr.gc(remove=remove)
    for item in found:
        out.say(f"{verb} {item.kind} {item.name} ({item.detail})")
    out.say(f"{verb} {len(found)} item(s)" if found else "nothing to remove")


_VERBS: dict[str, Callable[[argparse.Namespace, Verbs, Output], None]] = {
    "list": cmd_list,
    "show": cmd_show,
    "versions": cmd_versions,
    "build": cmd_build,
    "create": cmd_create,
    "remove": cmd_remove,
    "export": cmd_export,
    "logs": cmd_logs,
    "restore": cmd_restore,
    "run": cmd_run,
    "juv": cmd_juv,
    "curated": cmd_curated,
    "panel": cmd_panel,
    "where": cmd_where,
    "push": cmd_push,
    "k8s": cmd_k8s,
    "gc": cmd_gc,
}


def run_command(args: argparse.Namespace, mgr: Verbs, out: Output) -> None:
    """Run the verb named by ``args.verb``."""
    _VERBS[args.verb](args, mgr, out)
