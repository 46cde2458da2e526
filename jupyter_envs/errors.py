"""Every error jupyter-envs raises on purpose.

The tree::

    EnvsError                      the one root: ``except EnvsError`` catches them all
    ├── SpecError                  a spec is invalid (names the field, and the line for text)
    │   └── SpecTooLargeError      a spec is over a server's size limit (bytes, lines, requirements)
    ├── NotFoundError              no such environment / version in the registry
    ├── BackendUnavailableError    the builder a spec needs is missing or cannot run here
    ├── PythonNotFoundError        the requested interpreter is not on this machine
    ├── BuildError                 a build ran and failed (carries the command and log tail)
    │   └── BuildCancelledError    a build was cancelled or interrupted
    ├── StoreError                 the registry on disk is unusable or busy
    │   └── ReadOnlyStoreError     the store can be read but not written (permissions, read-only fs)
    ├── KernelStartError           an environment's kernel died or did not answer while starting
    ├── KernelLaunchError          a container kernel could not be started (image, engine, GPU…)
    ├── UsageError                 bad command-line or magic words (the message has the usage line)
    ├── ConflictError              a request conflicts with a build's state (cancel a finished one)
    └── ApiError                   the REST API refused a kernel's request (or was unreachable)

Every error reads well when printed: a magic or the CLI prints ``str(error)``, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ApiError",
    "BackendUnavailableError",
    "BuildCancelledError",
    "BuildError",
    "ConflictError",
    "EnvsError",
    "KernelLaunchError",
    "KernelStartError",
    "NotFoundError",
    "PythonNotFoundError",
    "ReadOnlyStoreError",
    "RegistryError",
    "SpecError",
    "SpecTooLargeError",
    "StoreError",
    "UsageError",
]


class EnvsError(Exception):
    """Root of every error raised by jupyter-envs."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: users see the message only,
        # and the cell still fails (so "Run All" stops at a failed build).
        return [f"{type(self).__name__}: {self}"]


class SpecError(EnvsError, ValueError):
    """An environment spec is invalid.

    ``field`` names the attribute at fault (``name``, ``pip``, ``env_vars``…); ``line`` is the
    1-based line of the text the spec was read from, when it came from text.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
        text: str | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.line = line
        self.text = text
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where: list[str] = []
        if self.source:
            where.append(self.source)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        msg = f"{prefix}: {self.message}" if prefix else self.message
        if self.text is not None:
            msg += f"\n    {self.text}"
        return msg


class SpecTooLargeError(SpecError):
    """A spec is over a size limit of the server that received it (its bytes, lines or number
    of requirements); ``limit`` names the setting."""

    def __init__(self, message: str, *, limit: str, field: str | None = None) -> None:
        self.limit = limit
        super().__init__(message, field=field)


class NotFoundError(EnvsError, LookupError):
    """No environment (or version) of that name is registered."""


class BackendUnavailableError(EnvsError):
    """The builder a spec needs is not installed or cannot run on this machine."""

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"the '{backend}' builder is not available: {reason}")


class PythonNotFoundError(EnvsError):
    """No interpreter on this machine matches the requested Python version."""

    def __init__(self, requested: str, found: Sequence[str]) -> None:
        self.requested = requested
        self.found = tuple(found)
        listing = ", ".join(self.found) if self.found else "none"
        super().__init__(
            f"no Python interpreter matching '{requested}' was found on this machine "
            f"(versions found: {listing}). Install that version, or ask for one of those."
        )


class BuildError(EnvsError):
    """A build ran and failed.

    Carries the environment name, the command that failed, its exit code and the tail of the
    build log, so that printing the error is enough to see why.
    """

    def __init__(
        self,
        message: str,
        *,
        env_name: str | None = None,
        command: Sequence[str] | None = None,
        returncode: int | None = None,
        log_tail: Sequence[str] = (),
        log_path: str | None = None,
    ) -> None:
        self.message = message
        self.env_name = env_name
        self.command = tuple(command) if command else None
        self.returncode = returncode
        self.log_tail = tuple(log_tail)
        self.log_path = log_path
        super().__init__(self._render())

    def _render(self, *, with_log_path: bool = True) -> str:
        head = (
            f"building '{self.env_name}' failed: {self.message}" if self.env_name else self.message
        )
        parts = [head]
        if self.log_tail:
            parts.append("last lines of the build log:")
            parts.extend(f"    {line}" for line in self.log_tail)
        if self.log_path and with_log_path:
            parts.append(f"full log: {self.log_path}")
        return "\n".join(parts)

    def without_paths(self) -> str:
        """The message without the log file's path (for those who cannot open the server's
        files: the REST API gives a log URL instead)."""
        return self._render(with_log_path=False)


class LockNotHonouredError(BuildError):
    """A build from a carried lock failed: the locked versions cannot be installed here.

    ``packages`` names the locked packages the installer complained about (empty when its
    output named none); rebuilding from the spec (``re_resolve``) is the way out.
    """

    def __init__(self, cause: BuildError, packages: Sequence[str]) -> None:
        self.packages = tuple(packages)
        which = ", ".join(self.packages) if self.packages else "see the log below for which"
        super().__init__(
            f"the notebook's lock cannot be honoured on this machine ({which}): a version may be "
            "gone from the index, or made for another platform only. Rebuild from the notebook's "
            "spec instead (jupyter envs restore --re-resolve, %envs restore --re-resolve, or "
            "the notebook's Re-resolve button); versions may then differ. "
            f"The installer said: {cause.message}",
            env_name=cause.env_name,
            command=cause.command,
            returncode=cause.returncode,
            log_tail=cause.log_tail,
            log_path=cause.log_path,
        )


class BuildCancelledError(BuildError):
    """A build was cancelled (by the user, an interrupt, or a shutdown)."""


class StoreError(EnvsError):
    """The registry on disk cannot be used (corrupt, unwritable, or locked too long)."""


class ReadOnlyStoreError(StoreError):
    """The store can be read (list, show, export) but not written (build, register, remove):
    no write permission, or a read-only file system. The message says which path and why."""


class KernelStartError(EnvsError):
    """A kernel of a built environment died, or did not answer, while starting."""


class UsageError(EnvsError):
    """Bad command-line or magic words; the message includes the usage line."""


class KernelLaunchError(EnvsError):
    """A container kernel could not be started (missing image, engine, secret, GPU runtime…)."""


class RegistryError(EnvsError):
    """Pushing an image to a registry failed: unreachable, credentials refused, or cut off.

    The version it concerns stays built and usable on this machine; nothing is recorded as
    pushed. ``reason`` is one of ``unreachable``, ``auth``, ``cut-off``, ``refused``.
    """

    def __init__(self, message: str, *, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class ConflictError(EnvsError):
    """The request conflicts with the state of a build (cancel a finished one, remove while
    building)."""


class ApiError(EnvsError):
    """The server's jupyter-envs API refused a request (``status`` is the HTTP status, 0 when the
    server could not be reached)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
