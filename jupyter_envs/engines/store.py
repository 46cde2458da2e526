"""The registry on disk: a ``Workspace``.

Layout under the store root (default ``<jupyter data dir>/jupyter_envs``, or
``$JUPYTER_ENVS_STORE``)::

    catalog.sqlite            environments, versions, builds
    envs/<name>/v<N>-<id>/    one artifact (venv prefix) per built version
    envs/<name>/.staging-*    builds in progress (never registered; swept when stale)
    logs/<name>/<build>.log   one log per build, failed ones included
    locks/<name>.lock         per-name build lock (flock), shared between processes
    runtime/                  the kernel side of jupyter-envs used by built environments

Only a successful build writes a ``ready`` version, in one transaction, after its artifact is in
place; a failed or killed build never changes what is registered.

A store this process cannot write (permissions, a read-only file system) opens read-only: it
can be listed, shown and exported, and every write raises :class:`ReadOnlyStoreError` saying
which path and why, before anything is touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir

from ..errors import NotFoundError, ReadOnlyStoreError, StoreError
from ..spec._validate import validate_name

__all__ = [
    "KERNELS_DIR_VAR",
    "STATUSES",
    "STORE_VAR",
    "BuildRecord",
    "EnvQuery",
    "Latest",
    "Page",
    "PushRecord",
    "VersionRecord",
    "Workspace",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS environments (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    spec_hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    backend TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('registered', 'ready')),
    artifact TEXT,
    lock TEXT,
    kernel_name TEXT,
    python_version TEXT,
    build_seconds REAL,
    log_path TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, spec_hash)
);
CREATE TABLE IF NOT EXISTS builds (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    started REAL NOT NULL,
    finished REAL,
    log_path TEXT NOT NULL,
    error TEXT,
    version INTEGER
);
CREATE INDEX IF NOT EXISTS builds_by_name ON builds(name, started);
-- Where a version's image was pushed: one row per registry, written only once the registry
-- answered with the pushed digest (a failed or cut-off push records nothing).
CREATE TABLE IF NOT EXISTS pushes (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    registry TEXT NOT NULL,
    reference TEXT NOT NULL,
    digest TEXT NOT NULL,
    pushed REAL NOT NULL,
    PRIMARY KEY (name, version, registry),
    FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE
);
-- One number that changes whenever what is registered changes: readers cache listings on it.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
CREATE TRIGGER IF NOT EXISTS generation_env_insert AFTER INSERT ON environments
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_env_update AFTER UPDATE ON environments
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_env_delete AFTER DELETE ON environments
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_version_insert AFTER INSERT ON versions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_version_update AFTER UPDATE ON versions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_version_delete AFTER DELETE ON versions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
-- A build starting or ending anywhere (the panel shows "building" and "failed" from these).
CREATE TRIGGER IF NOT EXISTS generation_build_insert AFTER INSERT ON builds
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_build_update AFTER UPDATE ON builds
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_push_insert AFTER INSERT ON pushes
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
"""

#: The status a version can have in the catalogue (a listing can be filtered by it).
STATUSES = ("registered", "ready")

# The latest version of every environment, with the numbers of all its versions, in one query
# (a query per name made a listing of 500 environments take 200 ms). Filters and the page bound
# go into the WHERE/LIMIT placeholders; the ORDER BY name is what makes ``after`` a cursor.
_LATEST = """
WITH agg AS (
    SELECT name, MAX(version) AS latest, group_concat(version) AS all_versions
    FROM versions
    WHERE name > :after AND substr(name, 1, :prefix_len) = :prefix
    GROUP BY name
)
SELECT v.*, agg.all_versions
FROM agg JOIN versions v ON v.name = agg.name AND v.version = agg.latest
WHERE (:backend IS NULL OR v.backend = :backend) AND (:status IS NULL OR v.status = :status)
ORDER BY v.name
LIMIT :limit
"""


@dataclass(frozen=True)
class VersionRecord:
    """One registered version of an environment."""

    name: str
    version: int
    spec_hash: str
    spec: dict[str, Any]
    backend: str
    status: str
    artifact: str | None
    lock: str | None
    kernel_name: str | None
    python_version: str | None
    build_seconds: float | None
    log_path: str | None
    created: float


@dataclass(frozen=True)
class Latest:
    """An environment as a listing shows it: its latest version and all its version numbers."""

    record: VersionRecord
    versions: tuple[int, ...]


@dataclass(frozen=True)
class EnvQuery:
    """Which environments a listing shows: filters, and a page (``after`` a name, ``limit``)."""

    #: Only names starting with this.
    prefix: str = ""
    #: Only environments whose latest version was built (or registered) by this builder.
    backend: str | None = None
    #: Only environments whose latest version has this status (one of :data:`STATUSES`).
    status: str | None = None
    #: Only names sorting after this one: the ``next_after`` of the previous page.
    after: str = ""
    #: At most this many (None: all).
    limit: int | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next_after`` is the cursor of the next page (None: last page)."""

    items: list[Latest]
    next_after: str | None


@dataclass(frozen=True)
class BuildRecord:
    """One build attempt, successful or not."""

    id: str
    name: str
    spec_hash: str
    status: str
    started: float
    finished: float | None
    log_path: str
    error: str | None
    version: int | None


@dataclass(frozen=True)
class PushRecord:
    """A version's image as pushed to one registry: ``reference@digest`` is what to pull."""

    name: str
    version: int
    registry: str
    reference: str
    digest: str
    pushed: float

    @property
    def pinned(self) -> str:
        """``registry/name:tag@sha256:…``: the exact image, whatever the tag points to later."""
        return f"{self.reference}@{self.digest}"


#: Where the store is (default: under the Jupyter data dir); kernels get it from their server.
STORE_VAR = "JUPYTER_ENVS_STORE"
#: Where kernelspecs are written (default: the Jupyter data dir's ``kernels``).
KERNELS_DIR_VAR = "JUPYTER_ENVS_KERNELS_DIR"


#: errno values that mean "this process may not write here" (not "something is broken").
_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _is_read_only_failure(exc: BaseException | None) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(
        words in str(exc) for words in ("readonly database", "unable to open database file")
    )


def _why_not_writable(path: Path, exc: OSError | None) -> str:
    """Which path cannot be written and why, in words: "read-only file system at /x", or
    "no write permission on /x for user alice (uid 1000)"."""
    if exc is not None and exc.errno == errno.EROFS:
        return f"read-only file system at {path}"
    # The first of the path and its parents that exists and cannot be written is the one that
    # refused (SQLite needs both the catalogue and its folder, for its -wal and -shm files).
    while path != path.parent and not (path.exists() and not os.access(path, os.W_OK)):
        path = path.parent
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        user = "?"
    return f"no write permission on {path} for user {user} (uid {os.geteuid()})"


def default_root() -> Path:
    """``$JUPYTER_ENVS_STORE``, else ``<jupyter data dir>/jupyter_envs``."""
    explicit = os.environ.get(STORE_VAR)
    return Path(explicit) if explicit else Path(jupyter_data_dir()) / "jupyter_envs"


def default_kernels_dir() -> Path:
    """Where kernelspecs go: the user's Jupyter kernels directory."""
    explicit = os.environ.get(KERNELS_DIR_VAR)
    return Path(explicit) if explicit else Path(jupyter_data_dir()) / "kernels"


class Workspace:
    """A registry of environments: a store directory and the kernels directory it writes to."""

    def __init__(
        self, root: str | Path | None = None, kernels_dir: str | Path | None = None
    ) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.kernels_dir = Path(kernels_dir) if kernels_dir is not None else default_kernels_dir()
        self._db_path = self.root / "catalog.sqlite"
        #: Why this store cannot be written (None: it can); reads work either way.
        self.read_only: str | None = None
        try:
            for sub in ("envs", "logs", "locks"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except OSError as exc:
            if exc.errno not in _NOT_WRITABLE:
                raise StoreError(
                    f"cannot create the store at {self.root}: {exc.strerror}"
                ) from None
            self.read_only = _why_not_writable(Path(exc.filename or self.root), exc)
        except StoreError as exc:
            if not _is_read_only_failure(exc.__cause__):
                raise
            self.read_only = _why_not_writable(self._db_path, None)

    def __repr__(self) -> str:
        mode = ", read-only" if self.read_only else ""
        return f"Workspace({str(self.root)!r}{mode})"

    def require_writable(self) -> None:
        """Raise :class:`ReadOnlyStoreError` (which path, why) unless this store can be written."""
        if self.read_only is not None:
            raise ReadOnlyStoreError(
                f"the store {self.root} is read-only ({self.read_only}): environments can be "
                "listed and shown, not built, registered or removed"
            )

    @classmethod
    def default(cls) -> Workspace:
        """The local workspace at the default location."""
        return cls()

    # -- database ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._open_read_only() if self.read_only else self._open()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the catalogue {self._db_path}: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            yield db
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the catalogue {self._db_path} is unusable: {exc}") from exc
        finally:
            db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._db_path, timeout=30, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        if not self._db_path.exists():
            # Nothing was ever stored here: an empty catalogue in memory answers every read.
            db = sqlite3.connect(":memory:", isolation_level=None)
            db.executescript(_SCHEMA)
            return db
        uri = self._db_path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError:
            # A WAL catalogue needs its -shm file to be read; where that cannot be created
            # either, read the file as it stands (commits still in a -wal file are not seen).
            return sqlite3.connect(
                f"{uri}?mode=ro&immutable=1", uri=True, timeout=30, isolation_level=None
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        self.require_writable()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _version(row: sqlite3.Row) -> VersionRecord:
        data = dict(row)
        data["spec"] = json.loads(data["spec"])
        return VersionRecord(**data)

    # -- reading -----------------------------------------------------------------------------
    def built_names(self) -> set[str]:
        """Names this store ever built, removed ones included (their build records remain)."""
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT DISTINCT name FROM builds")}

    def names(self) -> list[str]:
        """Registered environment names, sorted."""
        with self._connect() as db:
            return [r["name"] for r in db.execute("SELECT name FROM environments ORDER BY name")]

    def page(self, query: EnvQuery | None = None) -> Page:
        """Environments (their latest versions) matching ``query``, sorted by name."""
        query = query or EnvQuery()
        if query.limit is not None and query.limit < 1:
            raise ValueError("a page holds at least one environment")
        params = {
            "after": query.after,
            "prefix": query.prefix,
            "prefix_len": len(query.prefix),
            "backend": query.backend,
            "status": query.status,
            # One more than asked for tells whether there is a next page; -1 is SQLite's "all".
            # (Capped: 2**63 - 1 plus one overflowed SQLite's integers.)
            "limit": -1 if query.limit is None else min(query.limit, 2**62) + 1,
        }
        with self._connect() as db:
            rows = db.execute(_LATEST, params).fetchall()
        items = []
        for row in rows[: query.limit]:
            data = dict(row)
            versions = tuple(sorted(int(n) for n in data.pop("all_versions").split(",")))
            data["spec"] = json.loads(data["spec"])
            items.append(Latest(VersionRecord(**data), versions))
        more = query.limit is not None and len(rows) > query.limit
        return Page(items, items[-1].record.name if more else None)

    def generation(self) -> int | None:
        """A number that changes whenever an environment or version is added, changed or removed,
        or a build starts or ends (in any process): a listing made at one generation is valid
        until it changes. None for
        a catalogue of an older version opened read-only (no counter to read)."""
        with self._connect() as db:
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            except sqlite3.OperationalError:  # "no such table": not upgraded, and cannot be
                return None
        return None if row is None else int(row[0])

    def versions(self, name: str) -> list[VersionRecord]:
        """All versions of ``name``, oldest first (empty if unknown)."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM versions WHERE name=? ORDER BY version", (name,))
            return [self._version(r) for r in rows]

    def find(self, name: str, spec_hash: str) -> VersionRecord | None:
        """The version of ``name`` with that spec hash, if any."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM versions WHERE name=? AND spec_hash=?", (name, spec_hash)
            ).fetchone()
        return self._version(row) if row else None

    def get(self, name: str, version: int | None = None) -> VersionRecord:
        """A version of ``name`` (the latest when ``version`` is None)."""
        validate_name(name)
        with self._connect() as db:
            if version is None:
                row = db.execute(
                    "SELECT * FROM versions WHERE name=? ORDER BY version DESC LIMIT 1", (name,)
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM versions WHERE name=? AND version=?", (name, version)
                ).fetchone()
        if row is None:
            if version is not None and self.versions(name):
                known = ", ".join(str(v.version) for v in self.versions(name))
                raise NotFoundError(
                    f"environment '{name}' has no version {version} (versions: {known})"
                )
            raise NotFoundError(f"no environment named '{name}' is registered")
        return self._version(row)

    def builds(self, name: str) -> list[BuildRecord]:
        """Build attempts for ``name``, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM builds WHERE name=? ORDER BY started", (name,))
            return [BuildRecord(**dict(r)) for r in rows]

    def pushes(self, name: str, version: int | None = None) -> list[PushRecord]:
        """Where versions of ``name`` (or one version) were pushed, newest first."""
        with self._connect() as db:
            try:
                rows = db.execute(
                    "SELECT * FROM pushes WHERE name=? AND (? IS NULL OR version=?) "
                    "ORDER BY version DESC, pushed DESC",
                    (name, version, version),
                ).fetchall()
            except sqlite3.OperationalError:  # a read-only catalogue of an older version
                return []
        return [PushRecord(**dict(r)) for r in rows]

    def record_push(
        self, name: str, version: int, registry: str, reference: str, digest: str
    ) -> PushRecord:
        """Record that ``name`` v``version`` is in ``registry`` as ``reference@digest``."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO pushes (name, version, registry, reference, digest, pushed) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name, version, registry) DO UPDATE SET "
                "reference=excluded.reference, digest=excluded.digest, pushed=excluded.pushed",
                (name, version, registry, reference, digest, now),
            )
        return PushRecord(name, version, registry, reference, digest, now)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Registered environments and versions as plain rows (tests compare these)."""
        with self._connect() as db:
            return {
                "environments": [
                    tuple(r) for r in db.execute("SELECT name FROM environments ORDER BY name")
                ],
                "versions": [
                    tuple(r)
                    for r in db.execute(
                        "SELECT name, version, spec_hash, status, artifact FROM versions "
                        "ORDER BY name, version"
                    )
                ],
            }

    # -- writing -----------------------------------------------------------------------------
    def start_build(self, build_id: str, name: str, spec_hash: str) -> Path:
        """Record a running build and return its (new, empty) log file."""
        self.require_writable()
        log = self.root / "logs" / name / f"{build_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO builds (id, name, spec_hash, status, started, log_path) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (build_id, name, spec_hash, time.time(), str(log)),
            )
        return log

    def finish_build(
        self, build_id: str, status: str, error: str | None = None, version: int | None = None
    ) -> None:
        """Record how a build ended."""
        with self.transaction() as db:
            db.execute(
                "UPDATE builds SET status=?, finished=?, error=?, version=? WHERE id=?",
                (status, time.time(), error, version, build_id),
            )

    def mark_interrupted_builds(self, name: str) -> None:
        """Builds still 'running' when we hold the name lock belong to a process that died."""
        with self.transaction() as db:
            db.execute(
                "UPDATE builds SET status='failed', finished=?, "
                "error='interrupted: the process running this build stopped' "
                "WHERE name=? AND status='running'",
                (time.time(), name),
            )

    def upsert_version(
        self,
        db: sqlite3.Connection,
        *,
        name: str,
        description: str,
        spec_hash: str,
        spec: dict[str, Any],
        backend: str,
        status: str,
        **fields: Any,
    ) -> int:
        """Insert or update the version of ``name`` with ``spec_hash``; return its number.

        Runs inside the caller's :meth:`transaction`, so the environment row, the version row and
        the build record change together.
        """
        now = time.time()
        db.execute(
            "INSERT INTO environments (name, description, created, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET updated=excluded.updated, "
            "description=excluded.description",
            (name, description, now, now),
        )
        row = db.execute(
            "SELECT version FROM versions WHERE name=? AND spec_hash=?", (name, spec_hash)
        ).fetchone()
        if row is None:
            number = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name=?", (name,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO versions (name, version, spec_hash, spec, backend, status, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, number, spec_hash, json.dumps(spec), backend, status, now),
            )
        else:
            number = row["version"]
            db.execute(
                "UPDATE versions SET status=?, spec=? WHERE name=? AND version=?",
                (status, json.dumps(spec), name, number),
            )
        for key, value in fields.items():
            if key not in VersionRecord.__dataclass_fields__:
                raise StoreError(f"unknown version field {key!r}")
            # ``key`` is one of the dataclass's field names (checked above), never user text.
            db.execute(
                f"UPDATE versions SET {key}=? WHERE name=? AND version=?",  # noqa: S608
                (value, name, number),
            )
        return int(number)

    def next_version(self, name: str, spec_hash: str) -> int:
        """The number a build of this hash will be registered under."""
        existing = self.find(name, spec_hash)
        if existing is not None:
            return existing.version
        with self._connect() as db:
            return int(
                db.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name=?", (name,)
                ).fetchone()[0]
            )

    def delete(self, name: str, version: int | None = None) -> list[VersionRecord]:
        """Unregister ``name`` (or one version); returns the removed records."""
        removed = [v for v in self.versions(name) if version is None or v.version == version]
        if not removed:
            self.get(name, version)  # raises NotFoundError with a helpful message
        with self.transaction() as db:
            if version is None:
                db.execute("DELETE FROM versions WHERE name=?", (name,))
                db.execute("DELETE FROM environments WHERE name=?", (name,))
            else:
                db.execute("DELETE FROM versions WHERE name=? AND version=?", (name, version))
                left = db.execute("SELECT COUNT(*) FROM versions WHERE name=?", (name,)).fetchone()[
                    0
                ]
                if left == 0:
                    db.execute("DELETE FROM environments WHERE name=?", (name,))
        return removed

    # -- files -------------------------------------------------------------------------------
    def env_dir(self, name: str) -> Path:
        """The directory holding ``name``'s artifacts."""
        return self.root / "envs" / validate_name(name)

    @contextlib.contextmanager
    def build_lock(self, name: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the per-name build lock (shared across processes through ``flock``)."""
        self.require_writable()  # every build and removal takes this lock first
        path = self.root / "locks" / f"{validate_name(name)}.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
